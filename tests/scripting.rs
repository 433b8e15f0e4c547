//! Scripts can trust the CLI (issue 6 §3), with the real binary on real files: a reader
//! that goes away, hostile text, listings that say when they are partial, empty dequeues
//! that say why, paths that are not databases, durations, negative values, a full disk, a
//! locked file, long searches and the shape of times in JSON.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("workq")
}

/// The binary with a fixed user and zone, on `db`.
fn workq(db: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_remove("WORKQ_DB")
        .env("USER", "tester")
        .env("TZ", "UTC")
        .arg("--db")
        .arg(db)
        .timeout(Duration::from_secs(60));
    c
}

struct Db {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Db { dir, path }
    }
    fn run(&self, args: &[&str]) -> Output {
        workq(&self.path).args(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "workq {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
    /// Fails with exit code `code`; stdout empty; the stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "workq {args:?}: {err}");
        assert!(o.stdout.is_empty(), "workq {args:?} printed on stdout");
        assert!(!err.contains("panicked"), "{err}");
        err
    }
    fn add(&self, queue: &str, value: &str) -> String {
        self.ok(&["item", "add", queue, "--value", value])
            .trim()
            .to_string()
    }
    /// Runs with stdout on a pipe whose reader is already gone.
    fn to_closed_pipe(&self, args: &[&str]) -> Output {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = std::process::Command::new(bin());
        c.env_remove("WORKQ_DB")
            .env("USER", "tester")
            .env("TZ", "UTC")
            .arg("--db")
            .arg(&self.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped());
        c.output().unwrap()
    }
    fn statuses(&self, queue: &str) -> Vec<String> {
        let v = self.json(&["item", "ls", queue, "--all"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["status"].as_str().unwrap().to_string())
            .collect()
    }
}

// ------------------------------------------------------------------ closed pipes

#[test]
fn a_closed_pipe_stops_every_printing_command_quietly() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v");
    db.ok(&["item", "note", &id, "--note", "so the log has a line"]);
    let cases: &[&[&str]] = &[
        &["queue", "ls"],
        &["--json", "queue", "ls"],
        &["queue", "inspect", "q"],
        &["item", "ls"],
        &["--json", "item", "ls"],
        &["item", "ls", "--all"],
        &["--json", "item", "ls", "--all"],
        &["item", "show", &id],
        &["--json", "item", "show", &id],
        &["groups"],
        &["actions"],
        &["--json", "actions"],
        &["undo", "1", "--dry-run"],
        &["item", "add", "q", "--value", "w"],
        &["queue", "create", "other"],
        &["--help"],
    ];
    for args in cases {
        let o = db.to_closed_pipe(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "workq {args:?} panicked: {err}");
        assert_eq!(err, "", "workq {args:?} stops quietly");
        // As `yes | head -1` ends: by SIGPIPE (141 in a shell), or clap's help, which
        // swallows the error and exits 0.
        let quiet = o.status.signal() == Some(libc_sigpipe()) || args == &["--help"];
        assert!(quiet, "workq {args:?}: {:?}", o.status);
    }
}

fn libc_sigpipe() -> i32 {
    13
}

/// The way people meet it: a shell pipeline into `head`, with more output than a pipe holds.
#[test]
fn a_listing_piped_into_head_ends_without_a_panic() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let csv: String = std::iter::once("name,value\n".to_string())
        .chain((0..3000).map(|i| format!("n{i},\"{{\"\"pad\"\":\"\"{}\"\"}}\"\n", "x".repeat(40))))
        .collect();
    let file = db.dir.path().join("items.csv");
    std::fs::write(&file, csv).unwrap();
    db.ok(&["import", "q", file.to_str().unwrap()]);
    for list in [
        "--json item ls --all",
        "--json item ls --limit 3000",
        "item ls --all",
    ] {
        let script = format!(
            "{} --db {} {list} | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
            bin().display(),
            db.path.display()
        );
        let o = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
        assert!(!err.contains("panicked"), "{list}: {err}");
        assert_eq!(
            err.trim(),
            "status=141",
            "{list}: ends like other Unix tools"
        );
    }
}

#[test]
fn a_dequeue_whose_output_is_lost_hands_its_leases_back() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-retries", "2"]);
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|v| db.add("q", v)).collect();
    for args in [
        &["--json", "dequeue", "q", "--count", "2"][..],
        &["dequeue", "q", "--count", "2"][..],
        &["dequeue", "q"][..],
    ] {
        let o = db.to_closed_pipe(args);
        assert_eq!(o.status.signal(), Some(libc_sigpipe()), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "");
        // Nobody got the tokens: the items are queued again at once, no retry counted.
        assert_eq!(db.statuses("q"), ["queued"; 3], "{args:?}");
    }
    for id in &ids[..2] {
        let d = db.json(&["item", "show", id]);
        assert_eq!(d["retry_count"], 0);
        assert!(d["worker"].is_null(), "{d}");
        let backs: Vec<&Value> = d["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == "hand-back")
            .collect();
        assert!(!backs.is_empty(), "{d}");
        assert_eq!(backs[0]["from"], "processing");
        assert_eq!(backs[0]["to"], "queued");
        assert!(backs[0]["note"]
            .as_str()
            .unwrap()
            .contains("output could not be written"));
    }
    // The items are takeable at once, in their order.
    let l = db.json(&["dequeue", "q"]);
    assert_eq!(l["item"]["id"], ids[0].as_str());

    // A write that fails otherwise (a full disk under `> file`) says so, and hands back too.
    let o = std::process::Command::new(bin())
        .env("TZ", "UTC")
        .args([
            "--db",
            db.path.to_str().unwrap(),
            "dequeue",
            "q",
            "--count",
            "5",
        ])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the output") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(db.statuses("q"), ["processing", "queued", "queued"]);
}

/// `workq … >&-`: Rust's runtime puts /dev/null where the closed stdout was, so writes
/// "succeed" unread. A dequeue must notice: nothing is taken (no item sits in processing
/// with nobody holding its token), it fails and says why; other commands say so too.
#[test]
fn a_dequeue_with_stdout_closed_takes_nothing_and_says_why() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-retries", "2"]);
    for v in ["a", "b", "c"] {
        db.add("q", v);
    }
    let closed = |args: &str| {
        let script = format!(
            "exec {} --db {} {args} >&-",
            bin().display(),
            db.path.display()
        );
        std::process::Command::new("bash")
            .args(["-c", &script])
            .env("TZ", "UTC")
            .env("USER", "tester")
            .output()
            .unwrap()
    };
    for (args, json) in [
        ("dequeue q --count 2", false),
        ("--json dequeue q --count 2", true),
        ("dequeue q", false),
        ("dequeue q --wait 10s", false),
    ] {
        let o = closed(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        if json {
            let e: Value = serde_json::from_str(err.trim()).unwrap();
            assert_eq!(e["error"]["kind"], "output", "{err}");
            assert!(e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stdout is closed"));
        } else {
            assert_eq!(
                err,
                "error: stdout is closed, so the lease tokens would reach nobody: \
                 nothing was taken\n",
                "{args}"
            );
        }
        assert_eq!(db.statuses("q"), ["queued"; 3], "{args}");
    }
    for v in db.json(&["item", "ls", "q"]).as_array().unwrap() {
        assert_eq!(v["retry_count"], 0);
        assert!(v["worker"].is_null(), "{v}");
    }
    // Any other command's output is lost too: it says so rather than exit 0.
    let o = closed("queue ls");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: cannot write the output: stdout is closed\n"
    );
    // Still fine with stdout open, and the items are takeable.
    assert_eq!(db.json(&["dequeue", "q"])["item"]["value"], "a");
}

// ------------------------------------------------------------------ hostile text

/// CSI (clear screen), OSC (set the window title, ended by BEL), backspace, carriage
/// return, a C1 CSI, a bidi override.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwned\x07ok\x08\x08\rX\u{9b}31m\u{202e}gnp.exe";
const SHOWN: &str = "\\x1b[2J\\x1b]0;pwned\\x07ok\\x08\\x08\\rX\\x9b31m\\u{202e}gnp.exe";

fn assert_inert(what: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        assert!(!bad, "{what}: {c:?} reaches the terminal in:\n{text}");
    }
    text
}

#[test]
fn text_output_escapes_terminal_controls_in_every_field() {
    let db = Db::new();
    let h = |tag: &str| format!("{tag} {HOSTILE}");
    db.ok(&["queue", "create", "q", "--description", &h("D")]);
    let id = db
        .ok(&[
            "item",
            "add",
            "q",
            "--value",
            &h("V"),
            "--name",
            &h("N"),
            "--key",
            &h("K"),
            "--note",
            &h("T"),
        ])
        .trim()
        .to_string();
    let worker = h("W");
    let l = db.json(&["dequeue", "q", "--worker", &worker]);
    let lease = l["lease"].as_str().unwrap().to_string();
    db.ok(&[
        "fail",
        &id,
        "--lease",
        &lease,
        "--reason",
        "business",
        "--note",
        &h("F"),
    ]);
    let runs: &[(&[&str], &[&str])] = &[
        (&["item", "show", &id], &["V", "N", "K", "T", "W", "F"]),
        (&["item", "ls"], &["N", "F"]),
        (&["queue", "inspect", "q"], &["D"]),
        (&["groups"], &["F"]),
    ];
    for (args, tags) in runs {
        let o = db.run(args);
        assert!(o.status.success(), "{args:?}");
        let out = assert_inert(&format!("{args:?}"), &o.stdout);
        for tag in *tags {
            // Long cells are cut; what shows is the escaped text.
            let want = format!("{tag} {}", &SHOWN[..20]);
            assert!(out.contains(&want), "{args:?}: no {want:?} in:\n{out}");
        }
    }
    // A value's own lines stay lines in `item show`.
    db.ok(&[
        "item",
        "requeue",
        &id,
        "--value",
        &format!("line one\nline two {HOSTILE}"),
    ]);
    let out = db.ok(&["item", "show", &id]);
    assert_inert("show", out.as_bytes());
    assert!(
        out.contains(&format!("value:\nline one\nline two {SHOWN}\n")),
        "{out}"
    );
    // dequeue's text lines.
    let o = db.run(&["dequeue", "q", "--worker", &worker]);
    let out = assert_inert("dequeue", &o.stdout);
    assert!(
        out.contains(&format!("line one\\nline two {SHOWN}")),
        "{out}"
    );
    // Errors that echo what was typed, ours and clap's.
    for args in [
        &["item", "show", HOSTILE][..],
        &["queue", "create", "r", "--ttl", HOSTILE][..],
        &["item", "ls", "--status", HOSTILE][..],
    ] {
        let o = db.run(args);
        assert!(!o.status.success());
        let err = assert_inert(&format!("{args:?}"), &o.stderr);
        assert!(err.contains(SHOWN), "{args:?}: {err}");
    }
    // clap's plain rendering drops escape sequences itself; what is left is escaped.
    for args in [&[HOSTILE][..], &["queue", "create", "a", HOSTILE][..]] {
        let o = db.run(args);
        assert_eq!(o.status.code(), Some(2));
        let err = assert_inert(&format!("{args:?}"), &o.stderr);
        assert!(
            err.contains("ok\\rX\\x9b31m\\u{202e}gnp.exe"),
            "{args:?}: {err}"
        );
    }
    // JSON is exact: its own escaping is the escaping, and the bytes come back as given.
    let d = db.json(&["item", "show", &id]);
    assert_eq!(d["name"], h("N"));
    assert_eq!(d["key"], h("K"));
    assert_eq!(d["notes"][0]["text"], h("T"));
    let raw = db.ok(&["--json", "item", "show", &id]);
    assert!(!raw.contains('\x1b') && raw.contains("\\u001b[2J"), "{raw}");
}

// ------------------------------------------------------------------ listings

/// The action log and undo print what people wrote and who they are: a note, the OS user
/// an actor is named after, a key an undo quotes. None of it reaches the terminal raw.
#[test]
fn the_action_log_and_undo_escape_user_text() {
    let db = Db::new();
    let h = |tag: &str| format!("{tag} {HOSTILE}");
    let as_user = |user: &str, args: &[&str]| -> Output {
        let o = workq(&db.path)
            .env("USER", user)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    db.ok(&["queue", "create", "q"]);
    let key = h("K");
    let id = db
        .ok(&["item", "add", "q", "--value", "v", "--key", &key])
        .trim()
        .to_string();
    let other = db.add("q", "x");
    let note = h("A");
    as_user(&h("U"), &["item", "hold", &id, "--note", &note]);
    let o = as_user(&h("U"), &["--json", "item", "delete", &id, &other]);
    let delete: Value = serde_json::from_slice(&o.stdout).unwrap();
    let delete = delete["action_id"].to_string();
    // A newer item takes the key: the undo keeps that one and says why.
    db.ok(&["item", "add", "q", "--value", "w", "--key", &key]);
    let o = as_user(&h("Z"), &["undo", &delete]);
    let out = assert_inert("undo", &o.stdout);
    assert!(
        out.contains(&format!("its key 'K {SHOWN}' is taken")),
        "{out}"
    );
    let o = db.run(&["actions"]);
    let out = assert_inert("actions", &o.stdout);
    for want in [
        format!("user:U {}", &SHOWN[..12]),
        format!("A {}", &SHOWN[..20]),
        format!("by user:Z {}", &SHOWN[..12]),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }
    // JSON keeps the bytes as they were given.
    let log = db.json(&["actions"]);
    assert_eq!(log[1]["note"], note);
    assert_eq!(log[0]["undone_by"], format!("user:{}", h("Z")));
}

#[test]
fn a_json_listing_cut_at_the_limit_says_so_on_stderr() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    for i in 0..60 {
        db.add("q", &format!("v{i}"));
    }
    let o = db.run(&["--json", "item", "ls"]);
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page.as_array().unwrap().len(), 50);
    let notice: Value = serde_json::from_slice(&o.stderr).expect("a JSON notice");
    let n = &notice["notice"];
    assert_eq!(
        (n["total"].clone(), n["next_offset"].clone()),
        (60.into(), 50.into())
    );
    assert_eq!(n["shown"], 50);
    assert!(
        n["message"].as_str().unwrap().contains("--offset 50"),
        "{n}"
    );
    // The rest, and no notice once nothing is left out.
    let o = db.run(&["--json", "item", "ls", "--offset", "50"]);
    let rest: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rest.as_array().unwrap().len(), 10);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = db.run(&["--json", "item", "ls", "--limit", "60"]);
    assert!(o.stderr.is_empty());
    // Text says it too.
    let o = db.run(&["item", "ls", "--limit", "10"]);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("1–10 of 60\n"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--offset 10"));
    // A limit past what a page holds is refused, pointing at --all.
    let err = db.fails(&["item", "ls", "--limit", "20000"], 1);
    assert!(
        err.contains("--limit 20000") && err.contains("--all"),
        "{err}"
    );
}

#[test]
fn item_ls_all_returns_every_match_in_order() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    // More than two of the pages --all reads at a time.
    let csv: String = std::iter::once("value,priority\n".to_string())
        .chain((0..2500).map(|i| format!("v{i},{}\n", if i % 3 == 0 { "high" } else { "low" })))
        .collect();
    let file = db.dir.path().join("many.csv");
    std::fs::write(&file, csv).unwrap();
    db.ok(&["import", "q", file.to_str().unwrap()]);
    let o = db.run(&["--json", "item", "ls", "--all"]);
    assert!(o.stderr.is_empty(), "nothing is left out: no notice");
    let all: Value = serde_json::from_slice(&o.stdout).unwrap();
    let values: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..2500).map(|i| format!("v{i}")).collect();
    assert_eq!(values, want, "every item once, in enqueue order");
    // The same JSON text as one page of everything would print.
    let page = db.ok(&["--json", "item", "ls", "--limit", "2500"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), page);
    // With a filter; and in text, one row per item under one header.
    let high = db.json(&["item", "ls", "--all", "--priority", "high"]);
    assert_eq!(high.as_array().unwrap().len(), 834);
    let text = db.ok(&["item", "ls", "--all", "--priority", "low"]);
    assert_eq!(text.lines().count(), 1 + 1666);
    assert!(text.starts_with("ID "));
    assert_eq!(
        db.json(&["item", "ls", "--all", "--status", "exception"]),
        Value::Array(vec![])
    );
    db.fails(&["item", "ls", "--all", "--limit", "5"], 2);
}

// ------------------------------------------------------------------ dequeue

#[test]
fn an_empty_dequeue_says_why_in_its_json() {
    let db = Db::new();
    db.ok(&["queue", "create", "full", "--concurrency", "1"]);
    db.ok(&["queue", "create", "off"]);
    db.ok(&["queue", "create", "empty"]);
    db.add("full", "a");
    db.add("full", "b");
    db.add("off", "c");
    db.ok(&["queue", "pause", "off"]);
    db.json(&["dequeue", "full"]);
    let why = |queues: &[&str]| {
        let mut args = vec!["dequeue"];
        args.extend_from_slice(queues);
        args.extend(["--count", "3"]);
        let v = db.json(&args);
        assert_eq!(v["leases"], Value::Array(vec![]), "{v}");
        v["why_empty"].clone()
    };
    assert_eq!(why(&["off"])["reason"], "paused");
    let w = why(&["full"]);
    assert_eq!(w["reason"], "concurrency_limit");
    assert!(
        w["message"].as_str().unwrap().contains("(1/1 processing)"),
        "{w}"
    );
    assert_eq!(why(&["empty"])["reason"], "nothing_ready");
    let w = why(&["off", "full"]);
    assert_eq!(
        w["reason"], "concurrency_limit",
        "work comes when a slot frees up"
    );
    let per: Vec<(&str, &str)> = w["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap(), q["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(per, [("off", "paused"), ("full", "concurrency_limit")]);
    // Without --count: the same keys as a lease, null, and why.
    let v = db.json(&["dequeue", "off"]);
    assert!(v["item"].is_null() && v["lease"].is_null(), "{v}");
    assert_eq!(v["why_empty"]["reason"], "paused");
}

// ------------------------------------------------------------------ database paths

#[test]
fn reading_commands_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo").join("workq.db");
    for args in [
        &["queue", "ls"][..],
        &["queue", "inspect", "q"][..],
        &["item", "ls"][..],
        &["item", "ls", "--all"][..],
        &["item", "show", "01M8S42PYTD940GQENERMK7SJC"][..],
        &["groups"][..],
        &["actions"][..],
        &["undo", "1", "--dry-run"][..],
        &["import", "q", "in.csv", "--dry-run"][..],
    ] {
        let o = workq(&path).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            err.contains(&format!("no workq database at {}", path.display())),
            "{args:?}: {err}"
        );
        assert!(!path.parent().unwrap().exists(), "{args:?} made the folder");
        let o = workq(&path).arg("--json").args(args).output().unwrap();
        let e: Value = serde_json::from_slice(&o.stderr).unwrap();
        assert_eq!(e["error"]["kind"], "not_found");
        assert_eq!(e["error"]["what"], "database", "{e}");
        assert_eq!(e["error"]["name"], path.display().to_string(), "{e}");
    }
    // A command that writes creates it, folders and all.
    let o = workq(&path)
        .args(["queue", "create", "q"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(path.exists());
    assert!(workq(&path)
        .args(["queue", "ls"])
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn a_postgres_url_is_a_database_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1: no server there, whichever command asks. (tests/postgres.rs has a real one.)
    for url in [
        "postgres://localhost:1/workq",
        "postgresql://u@127.0.0.1:1/db",
    ] {
        for args in [
            &["queue", "ls"][..],
            &["queue", "create", "q"][..],
            &["item", "add", "q", "--value", "v"][..],
        ] {
            let mut c = workq(Path::new(url));
            let o = c.current_dir(dir.path()).args(args).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}");
            assert!(err.contains("cannot reach PostgreSQL at "), "{err}");
        }
        let o = workq(Path::new(url))
            .current_dir(dir.path())
            .args(["--json", "queue", "ls"])
            .output()
            .unwrap();
        let e: Value = serde_json::from_slice(&o.stderr).unwrap();
        assert_eq!(
            (&e["error"]["kind"], &e["error"]["cause"]),
            (&"storage".into(), &"cannot_open".into()),
            "{e}"
        );
    }
    let o = workq(Path::new("http://example.org/db"))
        .current_dir(dir.path())
        .args(["queue", "ls"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a database path"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no postgres: folder"
    );
}

/// Makes a file read-only for every process until dropped: immutable where we can (root
/// ignores permission bits, so a chmod alone would not stop it), else mode 0444.
struct ReadOnly {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnly {
    fn new(path: &Path) -> ReadOnly {
        let mut p = std::fs::metadata(path).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(path, p).unwrap();
        let immutable = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ReadOnly {
            path: path.to_path_buf(),
            immutable,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        }
        if let Ok(m) = std::fs::metadata(&self.path) {
            let mut p = m.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            let _ = std::fs::set_permissions(&self.path, p);
        }
    }
}

/// The schema version a file records.
fn user_version(db: &Path) -> i32 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn every_reading_command_works_on_a_file_you_can_only_read() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "Malmö 4999.00");
    db.add("q", "second");
    let l: Value = db.json(&["dequeue", "q"]);
    let taken = l["item"]["id"].as_str().unwrap().to_string();
    db.ok(&[
        "fail",
        &taken,
        "--lease",
        l["lease"].as_str().unwrap(),
        "--reason",
        "business",
        "--note",
        "Vendor 'Contoso' not found",
    ]);
    db.ok(&["item", "hold", &taken, "--note", "waiting for AP"]);
    let shown_before = db.json(&["item", "show", &id]);
    let csv = db.path.with_file_name("in.csv");
    std::fs::write(&csv, "value,key\nnew,K-1\nagain,K-1\n").unwrap();
    let csv = csv.to_str().unwrap();
    let _ro = ReadOnly::new(&db.path);
    // A dry-run import checks the file on a reader: it finds the repeated key all the same.
    let dry = workq(&db.path)
        .args(["import", "q", csv, "--dry-run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 3, column 'key': 'K-1' repeats line 2"),
        "{err}"
    );
    for args in [
        &["import", "q", csv, "--dry-run", "--skip-bad"][..],
        &["queue", "ls"][..],
        &["queue", "inspect", "q"][..],
        &["item", "ls"][..],
        &["item", "ls", "--all"][..],
        &["item", "show", &id][..],
        &["groups"][..],
        &["actions"][..],
        &["undo", "1", "--dry-run"][..],
    ] {
        let out = db.ok(args);
        assert!(!out.trim().is_empty(), "{args:?} printed nothing");
    }
    assert_eq!(db.json(&["item", "show", &id]), shown_before);
    assert_eq!(db.statuses("q"), ["on-hold", "queued"]);
    assert!(db.ok(&["actions"]).contains("hold"));
    // What writes says why it cannot, names the file, and what does work.
    for args in [
        &["item", "add", "q", "--value", "w"][..],
        &["queue", "pause", "q"][..],
        &["dequeue", "q"][..],
        &["item", "release", &taken][..],
        &["import", "q", csv][..],
    ] {
        let err = db.fails(args, 1);
        assert!(
            err.contains(&format!(
                "database {} is read-only for you",
                db.path.display()
            )) && err.contains("commands that only read still work"),
            "{args:?}: {err}"
        );
        let o = workq(&db.path).arg("--json").args(args).output().unwrap();
        let e: Value = serde_json::from_slice(&o.stderr).unwrap();
        assert_eq!(e["error"]["kind"], "storage", "{args:?}");
        assert_eq!(e["error"]["cause"], "read_only", "{args:?}: {e}");
        assert_eq!(e["error"]["path"], db.path.display().to_string(), "{e}");
    }
    assert_eq!(db.statuses("q"), ["on-hold", "queued"], "nothing changed");
}

#[test]
fn a_reading_command_writes_nothing_to_the_file() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--ttl", "1s"]);
    db.add("q", "soon expired");
    db.add("q", "held by a worker");
    db.json(&["dequeue", "q"]);
    std::thread::sleep(Duration::from_millis(1100));
    // The database and its write-ahead log, byte for byte (the -shm is shared memory that
    // every reader uses for its read marks, not data).
    let bytes = |p: &Path| {
        let wal = PathBuf::from(format!("{}-wal", p.display()));
        (
            std::fs::read(p).unwrap(),
            std::fs::read(wal).unwrap_or_default(),
        )
    };
    let before = bytes(&db.path);
    for args in [
        &["queue", "ls"][..],
        &["queue", "inspect", "q"][..],
        &["item", "ls", "--all"][..],
        &["groups"][..],
        &["actions"][..],
    ] {
        db.ok(args);
    }
    assert!(
        bytes(&db.path) == before,
        "a reading command changed the file"
    );
    // What was read is still true: the item past its expiry is shown expired.
    let q = db.json(&["queue", "inspect", "q"]);
    assert_eq!(
        (q["expired"].clone(), q["counts"]["processing"].clone()),
        (1.into(), 1.into()),
        "{q}"
    );
}

#[test]
fn an_older_schema_is_upgraded_where_it_may_be_and_refused_clearly_where_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(include_str!("fixtures/schema1.sql"))
        .unwrap();
    drop(c);
    assert_eq!(user_version(&path), 1);
    {
        let _ro = ReadOnly::new(&path);
        let o = workq(&path).args(["queue", "ls"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "database {} was written by an older workq (schema version 1; this one reads {})",
                path.display(),
                workq::store::sqlite::schema_version()
            )) && err.contains("needs write access")
                && err.contains("as a user who can write the file"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
        let o = workq(&path)
            .args(["--json", "item", "ls"])
            .output()
            .unwrap();
        let e: Value = serde_json::from_slice(&o.stderr).unwrap();
        assert_eq!(e["error"]["kind"], "storage");
        assert_eq!(e["error"]["cause"], "needs_upgrade", "{e}");
        assert_eq!(user_version(&path), 1, "nothing changed");
    }
    // Where it may write, a reading command upgrades it as any open does, and reads it.
    let o = workq(&path)
        .args(["--json", "queue", "ls"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let qs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(qs[0]["name"], "invoices", "{qs}");
    assert_eq!(user_version(&path), workq::store::sqlite::schema_version());
}

#[test]
fn leases_that_ran_out_are_timed_out_by_a_reader_that_may_write_and_shown_as_they_are_otherwise() {
    let db = Db::new();
    db.ok(&["queue", "create", "t", "--lease", "1s"]);
    db.add("t", "a");
    db.json(&["dequeue", "t"]);
    std::thread::sleep(Duration::from_millis(1500));
    {
        // Timing them out is a write: a reader that cannot write shows what the file says.
        let _ro = ReadOnly::new(&db.path);
        assert_eq!(db.statuses("t"), ["processing"]);
    }
    assert_eq!(db.statuses("t"), ["exception"]);
}

// ------------------------------------------------------------------ durations, numbers

#[test]
fn durations_refuse_months_and_upper_case_units_everywhere() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v");
    let cases: &[&[&str]] = &[
        &["queue", "create", "r", "--ttl", "5M"],
        &["queue", "update", "q", "--sla", "5M"],
        &["queue", "update", "q", "--lease", "5M"],
        &["item", "add", "q", "--value", "v", "--expires-in", "5M"],
        &["item", "extend", &id, "--expires-in", "5M"],
        &["item", "hold", &id],
        &["item", "requeue", &id, "--delay", "5M"],
        &["dequeue", "q", "--wait", "5M"],
    ];
    for args in cases {
        if args[1] == "hold" {
            db.ok(args);
            continue;
        }
        let err = db.fails(args, 1);
        assert!(
            err.contains("did you mean 5m?") && err.contains("months are not accepted"),
            "{args:?}: {err}"
        );
    }
    let err = db.fails(&["queue", "update", "q", "--ttl", "2mo"], 1);
    assert!(
        err.contains("--ttl") && err.contains("months and years"),
        "{err}"
    );
    let q = db.json(&["queue", "inspect", "q"]);
    assert!(
        q["ttl"].is_null() && q["sla"].is_null(),
        "nothing changed: {q}"
    );
    // Compounds are fine.
    db.ok(&["queue", "update", "q", "--sla", "1h30m", "--ttl", "2d 4h"]);
    let q = db.json(&["queue", "inspect", "q"]);
    assert_eq!(
        (q["sla"].clone(), q["ttl"].clone()),
        (5_400_000.into(), 187_200_000.into())
    );
}

#[test]
fn negative_values_get_a_clear_error() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let dur: &[&[&str]] = &[
        &["queue", "create", "r", "--lease", "-5m"],
        &["queue", "create", "r", "--ttl", "-1h"],
        &["queue", "update", "q", "--sla", "-30m"],
        &["dequeue", "q", "--wait", "-5s"],
        &["item", "add", "q", "--value", "v", "--expires-in", "-1d"],
    ];
    for args in dur {
        let err = db.fails(args, 1);
        assert!(err.contains("cannot be negative"), "{args:?}: {err}");
        assert!(!err.contains("tip:"), "{args:?}: {err}");
    }
    let num: &[&[&str]] = &[
        &["queue", "create", "r", "--concurrency", "-1"],
        &["queue", "create", "r", "--max-retries", "-1"],
        &["queue", "create", "r", "--sla-risk", "-5"],
        &["dequeue", "q", "--count", "-2"],
        &["item", "ls", "--limit", "-5"],
        &["item", "ls", "--offset", "-1"],
    ];
    for args in num {
        let err = db.fails(args, 2);
        assert!(
            err.contains("is negative: give a whole number"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("tip:"), "{args:?}: {err}");
    }
    assert_eq!(
        db.json(&["queue", "ls"]).as_array().unwrap().len(),
        1,
        "no r"
    );
    // A value or note that starts with a minus is just text.
    let id = db
        .ok(&[
            "item",
            "add",
            "q",
            "--value",
            "-5",
            "--note",
            "-1 item missing",
            "--name",
            "-x",
        ])
        .trim()
        .to_string();
    let d = db.json(&["item", "show", &id]);
    assert_eq!(
        (d["value"].clone(), d["name"].clone()),
        ("-5".into(), "-x".into())
    );
    assert_eq!(d["notes"][0]["text"], "-1 item missing");
}

// ------------------------------------------------------------------ disk full, locks

/// A real full disk: a small tmpfs in a mount namespace of our own (`unshare`, which needs
/// user namespaces or root). Where that is not possible the test says so and passes.
#[test]
fn a_full_disk_says_disk_full_for_every_command() {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (unshare -rm); disk-full mapping untested");
        return;
    }
    // The database is made here and closed cleanly (checkpointed, no -wal or -shm left),
    // then copied onto the full disk: every command must then grow a file to run at all.
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "hello");
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    let mnt = db.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let w = bin();
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=2m tmpfs {mnt}
cp {db} {mnt}/d.db
cd {mnt}
W={w}
dd if=/dev/zero of=fill bs=4k 2>/dev/null || true
set +e
for c in "queue ls" "queue inspect q" "item ls" "groups" "item add q --value more" "queue create r" "dequeue q" "--json queue ls"; do
  $W --db d.db $c; echo "rc=$?" >&2
done
$W --db fresh.db queue create z; echo "rc=$?" >&2
"#,
        mnt = mnt.display(),
        db = db.path.display(),
        w = w.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 18, "{err}");
    for pair in lines.chunks(2) {
        assert!(pair[0].contains("disk full"), "{err}");
        assert!(!pair[0].contains("disk I/O error"), "{err}");
        assert_eq!(pair[1], "rc=1", "{err}");
    }
    assert!(
        lines[14].starts_with("{\"error\":{\"kind\":\"storage\""),
        "{err}"
    );
}

/// Holds the write lock of `db` from another connection until the returned sender drops.
fn hold_write_lock(db: &Path) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held) = std::sync::mpsc::channel();
    let path = db.to_path_buf();
    std::thread::spawn(move || {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE; INSERT INTO marks VALUES ('lock', 1);")
            .unwrap();
        held_tx.send(()).unwrap();
        let _ = rx.recv();
        c.execute_batch("ROLLBACK").ok();
    });
    held.recv().unwrap();
    tx
}

#[test]
fn reads_do_not_wait_behind_a_writer_and_writes_say_how_long_they_waited() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v");
    let lock = hold_write_lock(&db.path);
    // Not a speed figure: the busy timeout is 5 s, and a read that waited for the lock at
    // all would take that long. Well under it, the read did not wait.
    for args in [
        &["queue", "ls"][..],
        &["queue", "inspect", "q"][..],
        &["item", "ls"][..],
        &["item", "show", &id][..],
        &["groups"][..],
    ] {
        let t = Instant::now();
        let out = db.ok(args);
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{args:?} waited {:?}",
            t.elapsed()
        );
        assert!(!out.is_empty());
    }
    // A write waits its timeout, then says how long it really waited.
    let t = Instant::now();
    let err = db.fails(&["item", "add", "q", "--value", "w"], 1);
    let took = t.elapsed().as_secs_f64();
    let waited: f64 = err
        .split("(waited ")
        .nth(1)
        .and_then(|r| r.split("s)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in: {err}"));
    assert!(err.contains("is locked by another process"), "{err}");
    assert!(waited >= 5.0, "waited its timeout: {err}");
    assert!(waited <= took, "{waited}s reported, {took}s taken");
    assert!(
        took - waited < 2.0,
        "the whole wait is reported: {waited}s of {took}s"
    );
    drop(lock);
    db.add("q", "after");
}

// ------------------------------------------------------------------ search, times

#[test]
fn a_search_over_the_limit_names_search() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v");
    let long = "a".repeat(1001);
    for args in [
        &["item", "ls", "--search", &long][..],
        &[
            "item", "hold", "--queue", "q", "--status", "queued", "--search", &long, "--yes",
        ][..],
    ] {
        let err = db.fails(args, 1);
        assert!(
            err.contains("--search") && err.contains("limit of 1000"),
            "{err}"
        );
        assert!(!err.contains("LIKE"), "{err}");
    }
    assert_eq!(db.json(&["item", "show", &id])["status"], "queued");
    let ok = "a".repeat(1000);
    assert_eq!(
        db.json(&["item", "ls", "--search", &ok]),
        Value::Array(vec![])
    );
}

/// Every string in `v` that looks like a time, with where it is.
fn times(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s)
            if s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' =>
        {
            out.push((at.to_string(), s.clone()))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| times(x, &format!("{at}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| times(x, &format!("{at}.{k}"), out)),
        _ => {}
    }
}

#[test]
fn json_times_always_have_milliseconds_and_sort_as_text() {
    let db = Db::new();
    db.ok(&[
        "queue",
        "create",
        "q",
        "--deadline",
        "23:00",
        "--tz",
        "Europe/Berlin",
    ]);
    // Whole seconds are where a variable format would drop the fraction.
    let id = db
        .ok(&[
            "item",
            "add",
            "q",
            "--value",
            "v",
            "--expires-at",
            "2030-01-01T00:00:00Z",
            "--note",
            "n",
        ])
        .trim()
        .to_string();
    db.ok(&[
        "item",
        "add",
        "q",
        "--value",
        "w",
        "--delay-until",
        "2030-01-01T00:00:00.5Z",
    ]);
    let l = db.json(&["dequeue", "q"]);
    let lease = l["lease"].as_str().unwrap().to_string();
    let hb = db.json(&["heartbeat", &id, "--lease", &lease]);
    db.ok(&[
        "fail", &id, "--lease", &lease, "--reason", "business", "--note", "bad",
    ]);
    // The action log says when an action was done and when it was undone.
    let extend = db.json(&[
        "item",
        "extend",
        &id,
        "--expires-at",
        "2031-01-01T00:00:00Z",
    ]);
    db.ok(&["undo", &extend["action_id"].to_string()]);
    let mut found = Vec::new();
    for (name, v) in [
        ("queue ls", db.json(&["queue", "ls"])),
        ("item ls", db.json(&["item", "ls"])),
        ("item show", db.json(&["item", "show", &id])),
        ("groups", db.json(&["groups"])),
        ("actions", db.json(&["actions"])),
        ("dequeue", l),
        ("heartbeat", hb),
    ] {
        times(&v, name, &mut found);
    }
    assert!(found.len() > 15, "{found:?}");
    for (at, t) in &found {
        let b = t.as_bytes();
        let shape = t.len() == 24
            && b[19] == b'.'
            && b[20..23].iter().all(u8::is_ascii_digit)
            && b[23] == b'Z';
        assert!(shape, "{at}: {t} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    }
    assert!(found.iter().any(|(_, t)| t == "2030-01-01T00:00:00.000Z"));
    assert!(found.iter().any(|(_, t)| t == "2030-01-01T00:00:00.500Z"));
    for at in ["actions[0].at", "actions[0].undone_at"] {
        assert!(found.iter().any(|(w, _)| w == at), "no {at} in {found:?}");
    }
    // One format: text order is time order.
    let mut texts: Vec<&String> = found.iter().map(|(_, t)| t).collect();
    let mut by_time = texts.clone();
    texts.sort();
    by_time.sort_by_key(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
    assert_eq!(texts, by_time);
}
