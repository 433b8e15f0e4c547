//! The CLI and the console against a real `workq serve` on 127.0.0.1: the same commands
//! with `--db` and with `--remote` print the same `--json`; bad connections (nobody
//! listening, a wrong token, a token of too small a role) say so and change nothing; the
//! console on a server that restarts under it marks its data stale and comes back.

use regex::Regex;
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

fn on_db(db: &Path) -> Command {
    let mut c = workq();
    c.arg("--db").arg(db);
    c
}

fn token(db: &Path, name: &str, role: &str) -> String {
    let out = on_db(db)
        .args(["token", "create", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// `workq serve` on `db`, on `listen` (port 0: any free one).
    fn start(db: &Path, listen: &str) -> Server {
        let mut child = on_db(db)
            .args(["serve", "--listen", listen])
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

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file with a queue and a server on it, and tokens of each role.
struct Remote {
    _dir: tempfile::TempDir,
    db: PathBuf,
    server: Server,
    admin: String,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("remote.db");
        let admin = token(&db, "ops", "admin");
        let server = Server::start(&db, "127.0.0.1:0");
        Remote {
            _dir: dir,
            db,
            server,
            admin,
        }
    }

    fn cmd(&self, token: &str) -> Command {
        let mut c = workq();
        c.args(["--remote", &self.server.url, "--token", token]);
        c
    }
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

/// What differs between two databases by nature: ids, times, lease tokens, and who acted
/// (the OS user locally, the token behind a server).
fn normal(text: &str) -> String {
    let ulid = Regex::new(r"\b[0-9A-HJKMNP-TV-Z]{26}\b").unwrap();
    let time = Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    let lease = Regex::new(r#""lease": "[^"]*""#).unwrap();
    let secs = Regex::new(r#""(age|oldest|waiting)[a-z_]*": [0-9.]+"#).unwrap();
    let t = ulid.replace_all(text, "<ID>");
    let t = time.replace_all(&t, "<T>");
    let t = lease.replace_all(&t, r#""lease": "<L>""#);
    let t = secs.replace_all(&t, "<AGE>");
    t.replace("token:ops/", "")
        .replace("token:ops", "user:tester")
}

#[test]
fn the_cli_prints_the_same_json_on_a_file_and_through_a_server() {
    let remote = Remote::new();
    let local_dir = tempfile::tempdir().unwrap();
    let local = local_dir.path().join("local.db");
    let csv = local_dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "key,value,priority\nk1,\"a, b\",high\nk2,ünï 😀,low\n",
    )
    .unwrap();
    let csv = csv.display().to_string();
    let sides = |args: &[&str]| {
        let a = run(on_db(&local), args);
        let b = run(remote.cmd(&remote.admin), args);
        (a, b)
    };
    // Each step with whether it succeeds: refusals must match too, kind and message.
    let steps: &[(&[&str], bool)] = &[
        (
            &["queue", "create", "q", "--sla", "1h", "--max-retries", "1"],
            true,
        ),
        (&["queue", "create", "q"], false), // exists
        (
            &["item", "add", "q", "--value", "first", "--key", "k0"],
            true,
        ),
        (&["import", "q", &csv], true),
        (&["import", "q", &csv], false), // duplicate keys, by line
        (&["item", "ls", "q"], true),
        (&["item", "ls", "--search", "ünï"], true),
        (&["queue", "ls"], true),
        (&["queue", "inspect", "q"], true),
        (&["dequeue", "q", "--worker", "w1", "--count", "2"], true),
        (&["groups"], true),
        (&["item", "show", "01NOPE0000000000000000000X"], false),
        (
            &[
                "item", "hold", "--queue", "q", "--status", "queued", "--yes",
            ],
            true,
        ),
        (&["actions"], true),
        (&["undo", "1"], true),
        (&["queue", "pause", "q"], true),
        (&["queue", "delete", "q"], false), // not empty
        (&["queue", "delete", "nope"], false),
    ];
    for (step, ok) in steps {
        let mut args = vec!["--json"];
        args.extend_from_slice(step);
        let (a, b) = sides(&args);
        let show = |o: &Output| {
            format!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                o.status.code(),
                normal(&String::from_utf8_lossy(&o.stdout)),
                normal(&String::from_utf8_lossy(&o.stderr))
            )
        };
        assert_eq!(show(&a), show(&b), "workq {}", step.join(" "));
        assert_eq!(
            b.status.success(),
            *ok,
            "workq {}: {}",
            step.join(" "),
            show(&b)
        );
    }
    // What the server stored is the same as the file: values byte for byte.
    let values = |db: &Path| {
        let out = run(on_db(db), &["--json", "item", "ls", "q"]);
        let v: Vec<Value> =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        v.iter()
            .map(|i| i["value"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&local), values(&remote.db));
    assert!(values(&remote.db).contains(&"ünï 😀".to_string()));
}

#[test]
fn bad_connections_say_what_is_wrong_and_change_nothing() {
    let remote = Remote::new();
    run(remote.cmd(&remote.admin), &["queue", "create", "q"]);
    let viewer = token(&remote.db, "watcher", "viewer");
    let count = || {
        let out = run(on_db(&remote.db), &["--json", "item", "ls"]);
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap()
            .len()
    };

    // Nobody listening: the URL and why, in text and as JSON.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = run(workq(), &["--remote", &url, "--token", "x", "queue", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the workq server at {url}")),
        "{err}"
    );
    let out = run(workq(), &["--json", "--remote", &url, "queue", "ls"]);
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        (e["error"]["kind"].as_str(), e["error"]["path"].as_str()),
        (Some("storage"), Some(url.as_str()))
    );
    // No scheme: the URL it should have been; a path: what a URL looks like.
    let out = run(workq(), &["--remote", "127.0.0.1:7878", "queue", "ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs its scheme: http://127.0.0.1:7878"),
        "{err}"
    );
    let out = run(
        workq(),
        &["--remote", "http://127.0.0.1:7878/api", "queue", "ls"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http://127.0.0.1:7878 (no path)"), "{err}");

    // A wrong token: 401's message; a viewer adding: 403's, naming both roles.
    let out = run(
        remote.cmd("wq_wrong"),
        &["item", "add", "q", "--value", "x"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not known to this server"), "{err}");
    let out = run(
        remote.cmd(&viewer),
        &["--json", "item", "add", "q", "--value", "x"],
    );
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["kind"], "forbidden");
    assert_eq!(
        (e["error"]["role"].as_str(), e["error"]["needs"].as_str()),
        (Some("viewer"), Some("operator"))
    );
    let out = run(remote.cmd(&viewer), &["item", "add", "q", "--value", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("viewer") && err.contains("operator"), "{err}");
    assert_eq!(count(), 0, "nothing was added");
    // The viewer still reads.
    let out = run(remote.cmd(&viewer), &["queue", "ls"]);
    assert!(out.status.success(), "{out:?}");

    // Serving needs a file of this machine.
    let out = run(remote.cmd(&remote.admin), &["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("works on a local database file"), "{err}");
}

#[test]
fn a_named_connection_reads_the_config_file_and_refuses_a_readable_token() {
    use std::os::unix::fs::PermissionsExt;
    let remote = Remote::new();
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join("workq");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let tf = cfg_dir.join("prod.token");
    std::fs::write(&tf, format!("{}\n", remote.admin)).unwrap();
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        cfg_dir.join("config.toml"),
        format!(
            "theme = \"dark\"\n\n[connections.prod]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            remote.server.url,
            tf.display()
        ),
    )
    .unwrap();
    let connect = |args: &[&str]| {
        let mut c = workq();
        c.env("XDG_CONFIG_HOME", home.path())
            .env("HOME", home.path())
            .args(["--connect", "prod"])
            .args(args);
        c.output().unwrap()
    };
    let out = connect(&["queue", "create", "q"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chmod 600") && err.contains("prod.token"),
        "{err}"
    );
    assert!(!out.status.success());
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = connect(&["queue", "create", "q"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(on_db(&remote.db), &["--json", "queue", "ls"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"q\""));
    let out = connect(&["--connect", "dev", "queue", "ls"]);
    assert!(!out.status.success());
}

// ------------------------------------------------------------------ the console

#[path = "common/tmux.rs"]
mod tmux;
use tmux::Tmux;

#[test]
fn the_remote_console_names_its_server_goes_stale_when_it_stops_and_recovers() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed; the remote console smoke test needs it");
        return;
    }
    let mut remote = Remote::new();
    run(remote.cmd(&remote.admin), &["queue", "create", "invoices"]);
    let url = remote.server.url.clone();
    let listen = url.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("remote", "remote");
    let cmd = format!(
        "env XDG_CONFIG_HOME={d} XDG_DATA_HOME={d} HOME={d} TERM=xterm-256color WORKQ_TOKEN={t} \
         {bin} --remote {url}; sleep 60",
        d = dir.path().display(),
        t = remote.admin,
        bin = env!("CARGO_BIN_EXE_workq"),
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "40",
        "-s",
        "remote",
        &cmd,
    ]);
    assert!(out.status.success(), "{out:?}");
    // The header names the server; the queue is there.
    tmux.wait_for(&["invoices", &listen], "the queues view on the server");

    // The server goes away: the console says its data is stale.
    remote.server.stop();
    tmux.wait_for(&["STALE"], "the stale marker");

    // It comes back on the same address with new work: the console finds it by itself.
    remote.server = Server::start(&remote.db, &listen);
    run(remote.cmd(&remote.admin), &["queue", "create", "payments"]);
    let s = tmux.wait_for(&["payments", "invoices"], "the console back on the server");
    let start = Instant::now();
    let mut s = s;
    while s.contains("STALE") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still stale:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(300));
        s = tmux.screen();
    }
    tmux.run(&["send-keys", "-t", "remote", "q"]);
}
