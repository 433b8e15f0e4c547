//! `workq work`, the worker agent, as a user runs it: the real binary on a real SQLite file
//! and against a real `workq serve` on 127.0.0.1, running real shell scripts.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn workq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .env("USER", "tester")
        .env("TZ", "UTC");
    c
}

/// Where the commands go: a file, or a server with an admin token.
#[derive(Clone)]
enum On {
    Db(PathBuf),
    Remote(String, String),
}

impl On {
    fn cmd(&self) -> Command {
        let mut c = workq();
        match self {
            On::Db(p) => {
                c.arg("--db").arg(p);
            }
            On::Remote(url, token) => {
                c.args(["--remote", url, "--token", token]);
            }
        }
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn items(&self, queue: &str) -> Vec<Value> {
        self.json(&["item", "ls", queue, "--all"])
            .as_array()
            .unwrap()
            .clone()
    }

    fn work(&self, args: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("work").args(args);
        c
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &Path) -> Server {
        let mut child = workq()
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on ") {
                    let url = line[at + 13..].split_whitespace().next().unwrap();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.to_string());
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server says where it listens");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// Waits (without a time-based assertion: the deadline only stops a hung test) for `ok`.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < end, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the agent's stderr up to the first line that says `what`.
fn line_with(err: &mut impl BufRead, what: &str) -> String {
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("stderr ended before a line with '{what}'");
        }
        if line.contains(what) {
            return line;
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is dead: only its parent's wait is missing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

fn by_value(items: &[Value]) -> std::collections::HashMap<String, Value> {
    items
        .iter()
        .map(|i| (i["value"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn note(i: &Value) -> String {
    i["notes"]
        .as_array()
        .unwrap()
        .last()
        .map(|n| n["text"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Each exit code gives its outcome, with the stdout (processed) or stderr tail as note;
/// the item's fields reach the command; a queue named that does not exist is made, once.
fn exit_codes_map_to_outcomes(on: &On, dir: &Path) {
    on.ok(&["queue", "create", "q", "--max-retries", "0"]);
    for v in ["ok", "biz", "it", "other", "big"] {
        on.ok(&[
            "item",
            "add",
            "q",
            "--value",
            v,
            "--name",
            &format!("n-{v}"),
        ]);
    }
    let s = script(
        dir,
        "codes.sh",
        r#"v=$(cat)
echo "out $v $WORKQ_QUEUE $WORKQ_ITEM_NAME attempt=$WORKQ_ATTEMPT"
echo "err $v" >&2
case $v in
  biz) exit 2;; it) exit 3;; other) exit 7;;
  big) head -c 100000 /dev/zero | tr '\0' a; echo END; exit 0;;
esac
exit 0"#,
    );
    let out = on
        .work(&[
            "--queue",
            "q",
            "--queue",
            "fresh",
            "--run-once",
            "--concurrency",
            "3",
            "--",
            &s,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "an item failed: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("queue 'fresh' did not exist: created it with default settings")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("'q' did not exist"), "{err}");
    let items = by_value(&on.items("q"));
    let st = |v: &str| {
        let i = &items[v];
        (
            i["status"].as_str().unwrap().to_string(),
            i["reason"].as_str().map(str::to_string),
        )
    };
    assert_eq!(st("ok"), ("processed".into(), None));
    assert_eq!(note(&items["ok"]), "out ok q n-ok attempt=1");
    assert_eq!(st("biz"), ("exception".into(), Some("business".into())));
    assert_eq!(note(&items["biz"]), "err biz");
    assert_eq!(st("it"), ("exception".into(), Some("it".into())));
    assert_eq!(st("other"), ("exception".into(), Some("generic".into())));
    assert_eq!(note(&items["other"]), "err other");
    // The last 64 KiB of stdout, exactly, but for its last line ending.
    let big = note(&items["big"]);
    assert_eq!(big.len(), 64 * 1024 - 1);
    assert!(big.ends_with("aaaaEND"), "{}", &big[big.len() - 20..]);
    assert!(on.json(&["queue", "inspect", "fresh"]).is_object());
    // Nothing left: a second run-once ends at once, with nothing failed, saying nothing of
    // queues.
    let out = on
        .work(&["--queue", "q", "--queue", "fresh", "--run-once", "--", &s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("did not exist"));
}

#[test]
fn exit_codes_on_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    exit_codes_map_to_outcomes(&On::Db(dir.path().join("w.db")), dir.path());
}

#[test]
fn exit_codes_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let local = On::Db(db.clone());
    let token = local.ok(&["token", "create", "agent", "--role", "admin"]);
    let server = Server::start(&db);
    let on = On::Remote(server.url.clone(), token.trim().to_string());
    exit_codes_map_to_outcomes(&on, dir.path());
}

/// A worker token may take from queues but not create them: the agent says so before
/// taking anything, and an existing queue still works with it.
#[test]
fn a_worker_token_cannot_create_the_queue_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let local = On::Db(db.clone());
    let token = local.ok(&["token", "create", "bot", "--role", "worker"]);
    local.ok(&["queue", "create", "q"]);
    local.ok(&["item", "add", "q", "--value", "x"]);
    let server = Server::start(&db);
    let on = On::Remote(server.url.clone(), token.trim().to_string());
    let out = on
        .work(&["--queue", "typo", "--run-once", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queue 'typo' does not exist")
            && err.contains("may not create queues")
            && err.contains("a token of role admin"),
        "{err}"
    );
    let names = local.ok(&["queue", "ls", "--names"]);
    assert_eq!(names.trim(), "q", "nothing was created");
    let out = on
        .work(&["--queue", "q", "--run-once", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(local.items("q")[0]["status"], "processed");
}

/// A command that cannot be started is refused at start: no item is taken, no queue made.
#[test]
fn an_unstartable_command_is_refused_before_anything_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q"]);
    on.ok(&["item", "add", "q", "--value", "x"]);
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "echo hi\n").unwrap();
    let missing = dir.path().join("missing.sh");
    for (cmd, says) in [
        (missing.to_str().unwrap(), "No such file"),
        (plain.to_str().unwrap(), "not an executable file"),
        ("no-such-command-workq", "no such command on $PATH"),
    ] {
        let out = on
            .work(&["--queue", "q", "--queue", "other", "--run-once", "--", cmd])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot run") && err.contains(says),
            "{cmd}: {err}"
        );
    }
    let i = &on.items("q")[0];
    assert_eq!(
        (i["status"].as_str(), i["retry_count"].as_u64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(
        on.ok(&["queue", "ls", "--names"]).trim(),
        "q",
        "'other' was not created"
    );
}

/// `--prefetch`: with `--run-once`, an item due within the window is waited for and
/// started at its time (not a poll later); without it, run-once leaves it queued.
fn prefetch_starts_delayed_items_at_their_time(on: &On, dir: &Path) {
    on.ok(&["queue", "create", "q"]);
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let at = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    on.ok(&["item", "add", "q", "--value", "later", "--delay-until", &at]);
    on.ok(&["item", "add", "q", "--value", "now"]);
    let out = on
        .work(&["--queue", "q", "--run-once", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let items = by_value(&on.items("q"));
    assert_eq!(items["now"]["status"], "processed");
    assert_eq!(
        items["later"]["status"], "queued",
        "not due, no prefetch: left"
    );
    let s = script(dir, "stamp.sh", "date +%s%3N");
    let out = on
        .work(&["--queue", "q", "--run-once", "--prefetch", "1m", "--", &s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let items = by_value(&on.items("q"));
    assert_eq!(
        items["later"]["status"], "processed",
        "waited for and taken"
    );
    let started: i64 = note(&items["later"]).trim().parse().unwrap();
    let late = started - due.timestamp_millis();
    eprintln!("started {late} ms after its time");
    assert!(late >= 0, "started {late} ms before its time");
    assert!(
        late < 900,
        "started {late} ms after its time: a poll later, not at it"
    );
}

#[test]
fn prefetch_on_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    prefetch_starts_delayed_items_at_their_time(&On::Db(dir.path().join("w.db")), dir.path());
}

#[test]
fn prefetch_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let token = On::Db(db.clone()).ok(&["token", "create", "agent", "--role", "admin"]);
    let server = Server::start(&db);
    let on = On::Remote(server.url.clone(), token.trim().to_string());
    prefetch_starts_delayed_items_at_their_time(&on, dir.path());
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q", "--max-retries", "0"]);
    on.ok(&["item", "add", "q", "--value", "slow"]);
    let pidfile = dir.path().join("bg.pid");
    let s = script(
        dir.path(),
        "slow.sh",
        &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()),
    );
    let out = on
        .work(&["--queue", "q", "--run-once", "--timeout", "1s", "--", &s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let i = &on.items("q")[0];
    assert_eq!(i["status"], "exception");
    assert_eq!(i["reason"], "timeout");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    until("the background child is gone", || !alive(pid));
}

/// SIGTERM: the running item finishes and is reported; no new item is taken; exit 0.
#[test]
fn sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q"]);
    on.ok(&["item", "add", "q", "--value", "first"]);
    on.ok(&["item", "add", "q", "--value", "second"]);
    let d = dir.path().display().to_string();
    let s = script(
        dir.path(),
        "gated.sh",
        &format!(
            "v=$(cat)\ntouch {d}/started-$v\nwhile [ ! -e {d}/go ]; do sleep 0.05; done\necho done $v"
        ),
    );
    let mut agent = on
        .work(&["--queue", "q", "--", &s])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the first item started", || {
        dir.path().join("started-first").exists()
    });
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let mut err = BufReader::new(agent.stderr.take().unwrap());
    let line = line_with(&mut err, "stopping");
    assert!(line.contains("no new items; waiting up to"), "{line}");
    // Draining, as `workq workers` shows it, while the first item finishes.
    until("the agent is shown draining", || {
        on.json(&["workers"])[0]["state"] == "draining"
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    let status = agent.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let w = &on.json(&["workers"])[0];
    assert_eq!(w["state"], "stopped", "it said goodbye: {w}");
    let items = by_value(&on.items("q"));
    assert_eq!(items["first"]["status"], "processed");
    assert_eq!(note(&items["first"]), "done first");
    assert_eq!(items["second"]["status"], "queued");
    assert!(!dir.path().join("started-second").exists());
}

/// With fast commands the agent takes items ahead; on SIGTERM those never started go back
/// at once, unretried, and every item ran at most once.
#[test]
fn items_taken_ahead_go_back_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q"]);
    let mut values: Vec<String> = (0..30).map(|n| format!("fast{n}")).collect();
    values.insert(20, "slow".into());
    let jsonl: String = values
        .iter()
        .map(|v| format!("{{\"value\":\"{v}\"}}\n"))
        .collect();
    let file = dir.path().join("items.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    on.ok(&["import", "q", file.to_str().unwrap()]);
    let d = dir.path().display().to_string();
    let s = script(
        dir.path(),
        "mixed.sh",
        &format!(
            "v=$(cat)\necho $v >> {d}/ran\nif [ $v = slow ]; then touch {d}/slow; while [ ! -e {d}/go ]; do sleep 0.05; done; fi"
        ),
    );
    let mut agent = on
        .work(&["--queue", "q", "--", &s])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the slow item started", || dir.path().join("slow").exists());
    let held = on.json(&["workers"])[0]["holding"].as_u64().unwrap();
    assert!(
        held > 1,
        "fast commands: items were taken ahead ({held} held)"
    );
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let mut err = BufReader::new(agent.stderr.take().unwrap());
    let line = line_with(&mut err, "stopping");
    assert!(line.contains("no new items; waiting up to"), "{line}");
    until("what was taken ahead is back", || {
        on.json(&["workers"])[0]["holding"] == 1
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(agent.wait().unwrap().code(), Some(0));
    let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
    let ran: Vec<&str> = ran.lines().collect();
    assert_eq!(
        ran.len(),
        21,
        "the 20 before the slow one and the slow one: {ran:?}"
    );
    for i in on.items("q") {
        let v = i["value"].as_str().unwrap();
        if ran.contains(&v) {
            assert_eq!(i["status"], "processed", "{i}");
        } else {
            assert_eq!(
                (i["status"].as_str(), i["retry_count"].as_u64()),
                (Some("queued"), Some(0)),
                "{i}"
            );
        }
    }
}

/// A second signal, past nothing to wait for: the running command is killed and its item
/// handed back, queued again without a retry counted.
#[test]
fn a_second_signal_hands_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q"]);
    on.ok(&["item", "add", "q", "--value", "stuck"]);
    let d = dir.path().display().to_string();
    let s = script(
        dir.path(),
        "stuck.sh",
        &format!("touch {d}/started\nsleep 300"),
    );
    let mut agent = on
        .work(&["--queue", "q", "--", &s])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the item started", || dir.path().join("started").exists());
    let mut err = BufReader::new(agent.stderr.take().unwrap());
    unsafe { libc::kill(agent.id() as i32, libc::SIGINT) };
    let line = line_with(&mut err, "stopping");
    assert!(line.contains("no new items; waiting up to"), "{line}");
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert_eq!(agent.wait().unwrap().code(), Some(0));
    let i = &on.items("q")[0];
    assert_eq!(i["status"], "queued");
    assert_eq!(i["retry_count"], 0);
}

/// SIGKILL of the agent mid-item: nothing is lost; the lease times out and the item is
/// retried.
#[test]
fn a_killed_agent_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&[
        "queue",
        "create",
        "q",
        "--lease",
        "1s",
        "--max-retries",
        "3",
    ]);
    on.ok(&["item", "add", "q", "--value", "x"]);
    let d = dir.path().display().to_string();
    let s = script(
        dir.path(),
        "hang.sh",
        &format!("echo $$ > {d}/pid\nexec sleep 300"),
    );
    let mut agent = on.work(&["--queue", "q", "--", &s]).spawn().unwrap();
    until("the item started", || {
        std::fs::read_to_string(dir.path().join("pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    unsafe { libc::kill(agent.id() as i32, libc::SIGKILL) };
    agent.wait().unwrap();
    // The command lives on in its own group; it is ours to clean up.
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::killpg(pid, libc::SIGKILL) };
    let mut taken: Option<Value> = None;
    until("the item is taken again", || {
        let v = on.json(&["dequeue", "q", "--worker", "w2"]);
        if v["lease"].is_string() {
            taken = Some(v);
        }
        taken.is_some()
    });
    let i = &on.items("q")[0];
    assert_eq!(i["status"], "processing");
    assert_eq!(i["retry_count"], 1);
    let id = i["id"].as_str().unwrap();
    let h = on.json(&["item", "show", id]);
    let text = h.to_string();
    assert!(text.contains("\"timeout\""), "{text}");
}

/// Two agents at concurrency 8 on 5,000 items (as the issue asks): each item runs once and is processed once.
#[test]
fn two_agents_process_every_item_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let on = On::Db(db.clone());
    on.ok(&["queue", "create", "q"]);
    let mut jsonl = String::new();
    for n in 0..5000 {
        jsonl.push_str(&format!("{{\"value\":\"{n}\"}}\n"));
    }
    let file = dir.path().join("items.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    on.ok(&["import", "q", file.to_str().unwrap()]);
    let log = dir.path().join("ran.log");
    let s = script(
        dir.path(),
        "log.sh",
        &format!("echo \"$WORKQ_ITEM_ID\" >> {}", log.display()),
    );
    let agents: Vec<Child> = (0..2)
        .map(|n| {
            on.work(&[
                "--queue",
                "q",
                "--concurrency",
                "8",
                "--run-once",
                "--name",
                &format!("a{n}"),
                "--",
                &s,
            ])
            .spawn()
            .unwrap()
        })
        .collect();
    for mut a in agents {
        assert_eq!(a.wait().unwrap().code(), Some(0));
    }
    let ran = std::fs::read_to_string(&log).unwrap();
    let ids: Vec<&str> = ran.lines().collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (5000, 5000),
        "each command ran once"
    );
    let items = on.items("q");
    assert_eq!(items.len(), 5000);
    assert!(items.iter().all(|i| i["status"] == "processed"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (done, most): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM history \
             WHERE to_status = 'processed' GROUP BY item_seq)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((done, most), (5000, 1), "one processed entry per item");
    // `workq workers` lists both agents by name@host:pid, their counts adding up.
    let workers = on.json(&["workers"]);
    let agents: Vec<&Value> = workers
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            let n = w["name"].as_str().unwrap();
            n.starts_with("a0@") || n.starts_with("a1@")
        })
        .collect();
    assert_eq!(agents.len(), 2, "{workers}");
    let processed: u64 = agents
        .iter()
        .map(|w| w["processed"].as_u64().unwrap())
        .sum();
    assert_eq!(processed, 5000, "{workers}");
    assert!(agents.iter().all(|w| w["holding"] == 0), "{workers}");
    // Each registered itself: host, pid, version, queues, concurrency, and stopped now.
    for w in &agents {
        let a = &w["agent"];
        let name = w["name"].as_str().unwrap();
        assert_eq!(
            name,
            format!(
                "{}@{}:{}",
                &name[..2],
                a["host"].as_str().unwrap(),
                a["pid"]
            )
        );
        assert_eq!(a["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(a["concurrency"], 8);
        assert_eq!(a["queues"], serde_json::json!(["q"]));
        assert_eq!(w["state"], "stopped", "{w}");
        assert!(
            a["per_minute"].as_u64().unwrap() > 0,
            "it finished items this minute: {w}"
        );
    }
    let text = on.ok(&["workers"]);
    assert!(text.starts_with("WORKER") && text.contains("a0@"), "{text}");
    assert!(text.contains("stopped"), "{text}");
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    let out: Output = on
        .work(&["--queue", "q", "--timeout", "soon", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--timeout"),
        "{out:?}"
    );
    let out = on.work(&["--queue", "q"]).output().unwrap();
    assert!(!out.status.success(), "no command: {out:?}");
    for bad in ["soon", "0s", "-1m"] {
        let out = on
            .work(&["--queue", "q", "--prefetch", bad, "--", "true"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--prefetch"),
            "{bad}: {out:?}"
        );
    }
    let out = on
        .work(&["--queue", "q", "--concurrency", "0", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--concurrency"),
        "{out:?}"
    );
}

/// Heartbeats keep a command's lease while it runs past the queue's lease timeout; a lease
/// taken away meanwhile (a person holds the item) kills the command, and nothing is
/// reported over the person's action.
#[test]
fn heartbeats_keep_the_lease_and_a_refused_one_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&[
        "queue",
        "create",
        "q",
        "--lease",
        "1s",
        "--max-retries",
        "0",
    ]);
    on.ok(&["item", "add", "q", "--value", "long"]);
    on.ok(&["item", "add", "q", "--value", "held"]);
    let d = dir.path().display().to_string();
    // "long" outlives three lease timeouts; "held" waits to be taken away.
    let s = script(
        dir.path(),
        "beat.sh",
        &format!(
            "v=$(cat)\necho $$ > {d}/pid-$v.tmp && mv {d}/pid-$v.tmp {d}/pid-$v\n\
             if [ $v = long ]; then sleep 3.5; echo finished; exit 0; fi\nexec sleep 300"
        ),
    );
    let mut agent = on
        .work(&["--queue", "q", "--concurrency", "2", "--", &s])
        .spawn()
        .unwrap();
    let pid = |v: &str| -> Option<i32> {
        std::fs::read_to_string(dir.path().join(format!("pid-{v}")))
            .ok()
            .map(|s| s.trim().parse().unwrap())
    };
    until("both started", || {
        pid("long").is_some() && pid("held").is_some()
    });
    let items = by_value(&on.items("q"));
    let held_id = items["held"]["id"].as_str().unwrap().to_string();
    on.ok(&["item", "hold", &held_id]);
    let held_pid = pid("held").unwrap();
    until("the held item's command is killed", || !alive(held_pid));
    until("the long item is processed", || {
        by_value(&on.items("q"))["long"]["status"] == "processed"
    });
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert_eq!(agent.wait().unwrap().code(), Some(0));
    let items = by_value(&on.items("q"));
    assert_eq!(items["long"]["retry_count"], 0, "never timed out");
    assert_eq!(note(&items["long"]), "finished");
    assert_eq!(items["held"]["status"], "on-hold");
}

/// `--business-exit` and `--it-exit` change which codes mean which exception; a mapping
/// that cannot be meant is refused before anything is taken.
#[test]
fn the_exit_code_mapping_can_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let on = On::Db(dir.path().join("w.db"));
    on.ok(&["queue", "create", "q", "--max-retries", "0"]);
    for v in ["10", "11", "2"] {
        on.ok(&["item", "add", "q", "--value", v]);
    }
    let s = script(dir.path(), "code.sh", "exit $(cat)");
    let bad = |args: &[&str], says: &str| {
        let mut a = vec!["--queue", "q", "--run-once"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--", &s]);
        let out = on.work(&a).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    bad(&["--business-exit", "0"], "exit code 0");
    bad(&["--business-exit", "4", "--it-exit", "4"], "both");
    bad(&["--it-exit", "x"], "--it-exit");
    // Refused: nothing was taken.
    assert!(on.items("q").iter().all(|i| i["status"] == "queued"));
    let out = on
        .work(&[
            "--queue",
            "q",
            "--run-once",
            "--business-exit",
            "10",
            "--it-exit",
            "11",
            "--",
            &s,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let items = by_value(&on.items("q"));
    assert_eq!(items["10"]["reason"], "business");
    assert_eq!(items["11"]["reason"], "it");
    // 2 is no longer business: a generic exception.
    assert_eq!(items["2"]["reason"], "generic");
}
