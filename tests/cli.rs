//! The `workq` command line, end to end: the real binary against a real SQLite file in a
//! temporary directory. Every command's output, errors and exit codes; every refused
//! command is checked to have changed nothing by listing before and after.

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ helpers

/// The binary, isolated from the caller's environment: a fixed user (history shows
/// `user:tester` / `cli:tester`) and UTC as the local time zone.
fn workq() -> Command {
    let mut c = Command::cargo_bin("workq").unwrap();
    c.env_remove("WORKQ_DB")
        .env("USER", "tester")
        .env("TZ", "UTC")
        .timeout(Duration::from_secs(60));
    c
}

fn stdout(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// The value after `key` on a `key   value` line of `item show` / `queue inspect`.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|rest| rest.starts_with(' '))
                .map(|rest| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no line '{key}' in:\n{text}"))
}

/// The table row whose first cell is `first`, split on whitespace.
fn row(text: &str, first: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row '{first}' in:\n{text}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|i| match &i[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// A database file in a fresh temporary directory.
struct Db {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workq.db");
        Db { dir, path }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = workq();
        c.arg("--db").arg(&self.path).args(args);
        c
    }

    /// Runs `workq --db PATH args…`.
    fn cmd(&self, args: &[&str]) -> Assert {
        self.command(args).assert()
    }

    fn cmd_stdin(&self, args: &[&str], input: impl Into<Vec<u8>>) -> Assert {
        self.command(args).write_stdin(input.into()).assert()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let a = self.cmd(args);
        let out = stdout(&a);
        assert!(
            a.get_output().status.success(),
            "workq {args:?} failed:\n{}",
            stderr(&a)
        );
        out
    }

    /// Runs a command with `--json` that must succeed; its stdout, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let a = self.cmd(&all);
        let out = stdout(&a);
        let err = stderr(&a);
        assert!(
            a.get_output().status.success(),
            "workq {args:?} failed:\n{err}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}):\n{out}"))
    }

    /// Runs a command that must fail with `code`, print nothing on stdout and an
    /// `error: …` on stderr; the stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        check_failure(self.cmd(args), args, code)
    }

    /// Like `fails`, and every `needle` is in the message, and nothing changed.
    fn refuses(&self, args: &[&str], code: i32, needles: &[&str]) -> String {
        let before = self.state();
        let err = self.fails(args, code);
        for n in needles {
            assert!(err.contains(n), "workq {args:?}: no {n:?} in:\n{err}");
        }
        assert_eq!(self.state(), before, "workq {args:?} changed something");
        err
    }

    /// A failing `--json` command's error object; stdout stays empty.
    fn json_err(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let a = self.cmd(&all).code(code);
        assert_eq!(stdout(&a), "", "workq {args:?} printed on stdout");
        let err = stderr(&a);
        let v: Value = serde_json::from_str(&err)
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not JSON ({e}):\n{err}"));
        assert!(v["error"]["kind"].is_string(), "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        v["error"].clone()
    }

    /// Everything a listing shows that does not move with the clock: queues with their
    /// settings, state and counts; every item with its history.
    fn state(&self) -> Value {
        // Reading commands do not create a database; a refused command must not either.
        if !self.path.exists() {
            return json!("no database");
        }
        let mut queues = self.json(&["queue", "ls"]);
        for q in queues.as_array_mut().unwrap() {
            let o = q.as_object_mut().unwrap();
            for k in [
                "oldest_queued_secs",
                "throughput_per_min",
                "throughput_history",
                "avg_handling_ms",
                "error_rate",
                "projection",
            ] {
                o.remove(k);
            }
        }
        let items = self.json(&["item", "ls", "--limit", "10000"]);
        let histories: Vec<Value> = strs(&items, "id")
            .iter()
            .map(|id| self.item(id)["history"].clone())
            .collect();
        json!({ "queues": queues, "items": items, "histories": histories })
    }

    /// `item ls --json` with extra arguments.
    fn items(&self, extra: &[&str]) -> Value {
        let mut all = vec!["item", "ls", "--limit", "1000"];
        all.extend_from_slice(extra);
        self.json(&all)
    }

    fn ids(&self, extra: &[&str]) -> Vec<String> {
        strs(&self.items(extra), "id")
    }

    /// `item show --json`.
    fn item(&self, id: &str) -> Value {
        self.json(&["item", "show", id])
    }

    fn queue(&self, name: &str) -> Value {
        self.json(&["queue", "inspect", name])
    }

    /// Adds an item; its id.
    fn add(&self, queue: &str, value: &str, extra: &[&str]) -> String {
        let mut all = vec!["item", "add", queue, "--value", value];
        all.extend_from_slice(extra);
        let id = self.ok(&all).trim().to_string();
        assert_eq!(id.len(), 26, "an id is a ULID: {id:?}");
        id
    }

    /// Takes one item; its id and lease token.
    fn take(&self, queue: &str) -> (String, String) {
        let l = self.json(&["dequeue", queue]);
        assert!(!l["item"].is_null(), "nothing to take from {queue}: {l}");
        (
            l["item"]["id"].as_str().unwrap().to_string(),
            l["lease"].as_str().unwrap().to_string(),
        )
    }

    /// Takes one item and fails it; its id.
    fn take_and_fail(&self, queue: &str, reason: &str, note: Option<&str>) -> String {
        let (id, lease) = self.take(queue);
        let mut args = vec!["fail", &id, "--lease", &lease, "--reason", reason];
        if let Some(n) = note {
            args.extend(["--note", n]);
        }
        self.ok(&args);
        id
    }

    fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

fn check_failure(a: Assert, args: &[&str], code: i32) -> String {
    let (out, err) = (stdout(&a), stderr(&a));
    let got = a.get_output().status.code();
    assert_eq!(got, Some(code), "workq {args:?}: exit code; stderr:\n{err}");
    assert_eq!(out, "", "workq {args:?} printed on stdout; stderr:\n{err}");
    assert!(err.starts_with("error: "), "workq {args:?}: stderr:\n{err}");
    err
}

/// The action id in "hold: 1 item (action 7; undo with `workq undo 7`)".
fn action_id(out: &str) -> String {
    let rest = out
        .split("(action ")
        .nth(1)
        .unwrap_or_else(|| panic!("no action id in {out:?}"));
    rest.split(';').next().unwrap().to_string()
}

// ------------------------------------------------------------------ general

#[test]
fn help_lists_every_command() {
    let a = workq().arg("--help").assert().success();
    let out = stdout(&a);
    for cmd in [
        "queue",
        "item",
        "import",
        "dequeue",
        "complete",
        "fail",
        "heartbeat",
        "groups",
        "actions",
        "undo",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "--help lacks {cmd}:\n{out}"
        );
    }
    assert!(
        out.contains("--db <PATH|URL>") && out.contains("postgres://") && out.contains("--json"),
        "{out}"
    );
    let a = workq().args(["item", "--help"]).assert().success();
    let out = stdout(&a);
    for cmd in [
        "add",
        "ls",
        "show",
        "requeue",
        "hold",
        "release",
        "processed",
        "delete",
        "priority",
        "extend",
        "note",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "item --help lacks {cmd}:\n{out}"
        );
    }
    let a = workq().args(["queue", "--help"]).assert().success();
    let out = stdout(&a);
    for cmd in [
        "create", "update", "ls", "inspect", "pause", "resume", "delete",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "queue --help lacks {cmd}:\n{out}"
        );
    }
}

#[test]
fn no_command_without_a_terminal_is_a_usage_error() {
    // No command opens the console, which needs a terminal; a script gets told so.
    let db = Db::new();
    let err = db.fails(&[], 2);
    assert!(err.contains("the console needs a terminal"), "{err}");
    let e = db.json_err(&[], 2);
    assert_eq!(e["kind"], "usage");
    assert!(!db.path.exists(), "no database was created for nothing");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let db = Db::new();
    let err = db.fails(&["frobnicate"], 2);
    assert!(err.contains("frobnicate"), "{err}");
}

#[test]
fn database_from_env_and_db_flag_wins() {
    let db = Db::new();
    let other = db.dir.path().join("other.db");
    workq()
        .env("WORKQ_DB", &db.path)
        .args(["queue", "create", "from-env"])
        .assert()
        .success();
    // --db beats the environment.
    workq()
        .env("WORKQ_DB", &other)
        .arg("--db")
        .arg(&db.path)
        .args(["queue", "create", "from-flag"])
        .assert()
        .success();
    assert!(!other.exists(), "the env path was not used");
    let names = strs(&db.json(&["queue", "ls"]), "name");
    assert_eq!(names, ["from-env", "from-flag"]);
    // A missing directory on the way is created.
    let nested = db.dir.path().join("a/b/c.db");
    workq()
        .env("WORKQ_DB", &nested)
        .args(["queue", "create", "deep"])
        .assert()
        .success();
    assert!(nested.exists());
}

#[test]
fn a_directory_as_database_is_refused_clearly() {
    let db = Db::new();
    let d = db.dir.path().join("adir");
    std::fs::create_dir(&d).unwrap();
    let a = workq()
        .arg("--db")
        .arg(&d)
        .args(["queue", "create", "q"])
        .assert();
    let err = check_failure(a, &["--db", "adir", "queue", "create", "q"], 1);
    assert!(err.contains("is a directory"), "{err}");
    assert!(
        err.contains(&d.display().to_string()),
        "names the path: {err}"
    );
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "nothing written");
    let a = workq()
        .arg("--db")
        .arg(&d)
        .args(["--json", "queue", "ls"])
        .assert()
        .code(1);
    let v: Value = serde_json::from_str(&stderr(&a)).unwrap();
    assert_eq!(v["error"]["kind"], "storage");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let db = Db::new();
    let content = "my notes, not a database\n".repeat(200);
    let p = db.file("notes.txt", &content);
    for args in [&["queue", "ls"][..], &["queue", "create", "q"]] {
        let a = workq().arg("--db").arg(&p).args(args).assert();
        let err = check_failure(a, args, 1);
        assert!(err.contains("notes.txt is not a workq database"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&p).unwrap(), content, "unchanged");
    let names: Vec<String> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["notes.txt"], "no -wal or -shm files next to it");
}

#[test]
fn a_foreign_sqlite_database_is_refused_and_left_alone() {
    let db = Db::new();
    let p = db.dir.path().join("crm.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch("CREATE TABLE customers (id INTEGER); INSERT INTO customers VALUES (7);")
        .unwrap();
    drop(c);
    let a = workq()
        .arg("--db")
        .arg(&p)
        .args(["queue", "create", "q"])
        .assert();
    let err = check_failure(a, &["queue", "create", "q"], 1);
    assert!(
        err.contains("crm.db is an SQLite database but not a workq one"),
        "{err}"
    );
    let c = rusqlite::Connection::open(&p).unwrap();
    let tables: i64 = c
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    let id: i64 = c
        .query_row("SELECT id FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!((tables, id), (1, 7), "the foreign database was left alone");
}

#[test]
fn json_errors_have_kind_and_message() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v", &[]);
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["item", "show", "NOPE"],
            "not_found",
            "unknown item 'NOPE'",
        ),
        (
            vec!["queue", "create", "q"],
            "conflict",
            "queue 'q' already exists",
        ),
        (
            vec!["item", "add", "q", "--value", "x", "--priority", "urgent"],
            "invalid",
            "--priority: unknown priority 'urgent'",
        ),
        (
            vec!["item", "release", &id],
            "transition",
            "cannot release an item that is queued",
        ),
    ];
    for (args, kind, message) in cases {
        let before = db.state();
        let e = db.json_err(&args, 1);
        assert_eq!(e["kind"], kind, "{args:?}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(message),
            "{args:?}: {e}"
        );
        // The same message as text, after "error: ".
        let text = db.fails(&args, 1);
        assert_eq!(
            text.trim_end().strip_prefix("error: ").unwrap(),
            e["message"].as_str().unwrap()
        );
        assert_eq!(db.state(), before, "{args:?} changed something");
    }
}

#[test]
fn usage_errors_are_json_with_json() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let e = db.json_err(
        &[
            "item",
            "add",
            "q",
            "--value",
            "x",
            "--expires-at",
            "2030-01-01",
            "--expires-in",
            "1h",
        ],
        2,
    );
    assert_eq!(e["kind"], "usage");
    assert!(
        e["message"].as_str().unwrap().contains("--expires-in"),
        "{e}"
    );
}

// ------------------------------------------------------------------ queues

#[test]
fn queue_create_with_every_setting() {
    let db = Db::new();
    let q = db.json(&[
        "queue",
        "create",
        "invoices",
        "--description",
        "Supplier invoices",
        "--ttl",
        "2h",
        "--sla",
        "30m",
        "--sla-risk",
        "70",
        "--deadline",
        "23:00",
        "--tz",
        "Europe/Berlin",
        "--max-retries",
        "2",
        "--lease",
        "90s",
        "--concurrency",
        "4",
        "--priority",
        "-3",
        "--retry-backoff",
        "30s,10m",
    ]);
    let expect = json!({
        "name": "invoices",
        "description": "Supplier invoices",
        "state": "active",
        "ttl": 7_200_000,
        "sla": 1_800_000,
        "sla_risk_pct": 70,
        "deadline": "23:00",
        "tz": "Europe/Berlin",
        "max_retries": 2,
        "lease": 90_000,
        "concurrency": 4,
        "priority": -3,
        "retry_backoff": {"delay": 30_000, "max": 600_000},
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&q[k], v, "create --json: {k}");
    }
    time(&q["created_at"]);
    let s = db.queue("invoices");
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&s[k], v, "inspect --json: {k}");
    }
    assert_eq!(
        s["counts"],
        json!({"queued": 0, "processing": 0, "processed": 0, "on_hold": 0, "exception": 0})
    );
    let t = db.ok(&["queue", "inspect", "invoices"]);
    for (k, v) in [
        ("queue", "invoices"),
        ("description", "Supplier invoices"),
        ("state", "active"),
        ("priority", "-3"),
        ("default TTL", "2h"),
        ("SLA target", "30m"),
        ("SLA at-risk", "70%"),
        ("deadline", "23:00 Europe/Berlin"),
        ("max retries", "2"),
        ("lease timeout", "1m 30s"),
        ("retry backoff", "30s, doubling up to 10m (with jitter)"),
        ("concurrency", "4"),
        ("queued", "0"),
        ("exception", "0"),
    ] {
        assert_eq!(field(&t, k), v, "inspect text: {k}");
    }
    assert!(
        field(&t, "projection").starts_with("nothing left for 23:00 CE"),
        "an empty backlog has nothing left for the deadline, named in its zone:\n{t}"
    );
}

#[test]
fn queue_create_text_and_defaults() {
    let db = Db::new();
    assert_eq!(db.ok(&["queue", "create", "q"]), "created queue 'q'\n");
    let s = db.queue("q");
    let expect = json!({
        "description": "", "state": "active", "ttl": null, "sla": null, "sla_risk_pct": 80,
        "deadline": null, "tz": "UTC", "max_retries": 0, "lease": 300_000,
        "concurrency": null, "priority": 0, "projection": null, "retry_backoff": null,
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&s[k], v, "default {k}");
    }
    let t = db.ok(&["queue", "inspect", "q"]);
    assert_eq!(field(&t, "concurrency"), "unlimited");
    assert_eq!(field(&t, "lease timeout"), "5m");
    assert_eq!(field(&t, "description"), "-");
    assert_eq!(field(&t, "deadline"), "-");
    assert_eq!(
        field(&t, "retry backoff"),
        "none (retries are queued at once)"
    );
}

#[test]
fn queue_create_duplicate_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--description", "first"]);
    db.refuses(
        &["queue", "create", "q", "--description", "second"],
        1,
        &["queue 'q' already exists"],
    );
    assert_eq!(db.queue("q")["description"], "first");
    assert_eq!(db.json(&["queue", "ls"]).as_array().unwrap().len(), 1);
}

#[test]
fn queue_bad_settings_are_refused_on_create_and_update() {
    let db = Db::new();
    db.ok(&[
        "queue",
        "create",
        "q",
        "--ttl",
        "1h",
        "--tz",
        "Europe/Paris",
    ]);
    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["--ttl", "5parsecs"], 1, &["--ttl", "5parsecs", "30m"]),
        (&["--sla", "soon"], 1, &["--sla", "soon"]),
        (&["--lease", "forever"], 1, &["--lease", "forever"]),
        (&["--max-runtime", "soon"], 1, &["--max-runtime", "soon"]),
        (
            &["--max-runtime", "0"],
            1,
            &["--max-runtime", "0 has no unit"],
        ),
        (
            &["--max-runtime", "0s"],
            1,
            &["max runtime must be longer than 0"],
        ),
        (
            &["--lease", "500ms"],
            1,
            &["lease timeout must be at least 1s"],
        ),
        (&["--ttl", "0s"], 1, &["TTL must be longer than 0"]),
        (
            &["--tz", "Mars/Base"],
            1,
            &["--tz", "Mars/Base", "time zone"],
        ),
        (
            &["--deadline", "25:00"],
            1,
            &["--deadline", "25:00", "HH:MM"],
        ),
        (&["--deadline", "11pm"], 1, &["--deadline", "11pm", "HH:MM"]),
        (&["--sla-risk", "0"], 1, &["at-risk", "1–100", "got 0"]),
        (&["--sla-risk", "101"], 1, &["at-risk", "1–100", "got 101"]),
        (&["--sla-risk", "300"], 2, &["--sla-risk", "300"]),
        (
            &["--concurrency", "0"],
            1,
            &["concurrency limit must be at least 1"],
        ),
        (&["--concurrency", "-1"], 2, &["'-1' is negative"]),
        (&["--priority", "high"], 2, &["--priority", "high"]),
        (
            &["--retry-backoff", "10m,1m"],
            1,
            &[
                "--retry-backoff",
                "max (1m) is shorter than its delay (10m)",
            ],
        ),
        (
            &["--retry-backoff", "0s"],
            1,
            &["--retry-backoff", "longer than 0"],
        ),
        (
            &["--retry-backoff", "soon"],
            1,
            &["--retry-backoff", "bad duration 'soon'"],
        ),
        (
            &["--retry-backoff", "30s,"],
            1,
            &["--retry-backoff", "empty duration"],
        ),
        (
            &["--retry-backoff", "1d,400000d"],
            1,
            &["--retry-backoff", "too long"],
        ),
    ];
    for (flags, code, needles) in cases {
        for (verb, name) in [("create", "r"), ("update", "q")] {
            let mut args = vec!["queue", verb, name];
            args.extend_from_slice(flags);
            db.refuses(&args, *code, needles);
        }
        // With a good setting alongside, the good one is not applied either.
        let mut args = vec![
            "queue",
            "update",
            "q",
            "--description",
            "new",
            "--max-retries",
            "9",
        ];
        args.extend_from_slice(flags);
        db.refuses(&args, *code, needles);
    }
    let q = db.queue("q");
    assert_eq!(
        (q["ttl"].clone(), q["tz"].clone()),
        (json!(3_600_000), json!("Europe/Paris"))
    );
    assert_eq!(
        (q["description"].clone(), q["max_retries"].clone()),
        (json!(""), json!(0))
    );
    db.refuses(
        &["queue", "create", ""],
        1,
        &["queue name must be 1–100 characters"],
    );
    db.refuses(&["queue", "create", " q"], 1, &["leading/trailing spaces"]);
    let long = "x".repeat(101);
    db.refuses(
        &["queue", "create", &long],
        1,
        &["1–100 characters, got 101"],
    );
}

#[test]
fn retry_backoff_is_set_shown_and_cleared() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-retries", "2"]);
    db.ok(&["queue", "update", "q", "--retry-backoff", "1m"]);
    let ls = db.json(&["queue", "ls"]);
    assert_eq!(
        ls[0]["retry_backoff"],
        json!({"delay": 60_000, "max": 3_600_000}),
        "without a max, an hour"
    );
    assert_eq!(
        field(&db.ok(&["queue", "inspect", "q"]), "retry backoff"),
        "1m, doubling up to 1h (with jitter)"
    );
    db.ok(&["queue", "update", "q", "--retry-backoff", "2h"]);
    assert_eq!(
        field(&db.ok(&["queue", "inspect", "q"]), "retry backoff"),
        "2h (with jitter)",
        "a delay past the default max is its own max"
    );
    // Another setting leaves it as it is; --clear unsets it.
    db.ok(&["queue", "update", "q", "--max-retries", "3"]);
    assert_eq!(
        db.queue("q")["retry_backoff"],
        json!({"delay": 7_200_000, "max": 7_200_000})
    );
    db.ok(&["queue", "update", "q", "--clear", "retry-backoff"]);
    assert_eq!(db.queue("q")["retry_backoff"], json!(null));
    let err = db.refuses(
        &["queue", "update", "q", "--clear", "backoff"],
        1,
        &["cannot clear 'backoff'", "retry-backoff"],
    );
    assert!(err.contains("clearable:"), "{err}");
}

#[test]
fn a_retried_item_shows_its_wait() {
    let db = Db::new();
    db.ok(&[
        "queue",
        "create",
        "q",
        "--max-retries",
        "1",
        "--retry-backoff",
        "1h",
    ]);
    let id = db.add("q", "v", &[]);
    let l = db.json(&["dequeue", "q"]);
    let failed_at = Utc::now();
    let f = db.ok(&[
        "fail",
        &id,
        "--lease",
        l["lease"].as_str().unwrap(),
        "--reason",
        "it",
        "--note",
        "SAP down",
    ]);
    assert_eq!(
        f,
        format!("{id}: failed, queued again for automatic retry 1\n")
    );
    let item = db.json(&["item", "show", &id]);
    let wait = time(&item["delay_until"]) - failed_at;
    assert!(
        (1_799..=3_601).contains(&wait.num_seconds()),
        "waits half to all of an hour: {wait}"
    );
    let retry = item["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (retry["action"].clone(), retry["by"].clone()),
        (json!("retry"), json!("system"))
    );
    assert!(
        retry["note"]
            .as_str()
            .unwrap()
            .starts_with("automatic retry 1 of 1, after a backoff of "),
        "{retry}"
    );
    // Not taken while it waits, and said why.
    let e = db.json(&["dequeue", "q"]);
    assert_eq!(e["lease"], json!(null));
    assert_eq!(e["why_empty"]["reason"], "nothing_ready");
    let t = db.ok(&["item", "ls", "q"]);
    assert!(t.contains("queued (delayed)"), "{t}");
}

/// `--json` errors carry the engine's facts beside kind and message: which item, which
/// statuses, which lease.
#[test]
fn json_errors_carry_the_facts() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v", &[]);
    let e = db.json_err(&["item", "release", &id], 1);
    assert_eq!(e["action"], "release");
    assert_eq!(
        (e["total"].clone(), e["refused"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(e["items"][0]["id"], json!(id));
    assert_eq!(
        (e["items"][0]["from"].clone(), e["items"][0]["to"].clone()),
        (json!("queued"), json!("queued"))
    );
    let l = db.json(&["dequeue", "q"]);
    let e = db.json_err(&["complete", &id, "--lease", "forged.1"], 1);
    assert_eq!(
        (e["kind"].clone(), e["conflict"].clone(), e["id"].clone()),
        (json!("conflict"), json!("stale_lease"), json!(id))
    );
    db.ok(&["complete", &id, "--lease", l["lease"].as_str().unwrap()]);
    let e = db.json_err(
        &["complete", &id, "--lease", l["lease"].as_str().unwrap()],
        1,
    );
    assert_eq!(
        (e["conflict"].clone(), e["status"].clone()),
        (json!("not_leased"), json!("processed"))
    );
    let e = db.json_err(&["item", "show", "NOPE"], 1);
    assert_eq!(
        (e["what"].clone(), e["name"].clone()),
        (json!("item"), json!("NOPE"))
    );
    db.add("q", "w", &["--key", "K-1"]);
    let e = db.json_err(&["item", "add", "q", "--value", "w", "--key", "K-1"], 1);
    assert_eq!(
        (e["conflict"].clone(), e["queue"].clone(), e["key"].clone()),
        (json!("duplicate_key"), json!("q"), json!("K-1"))
    );
}

#[test]
fn queue_update_changes_only_what_is_given() {
    let db = Db::new();
    db.ok(&[
        "queue",
        "create",
        "q",
        "--description",
        "d",
        "--sla",
        "1h",
        "--max-retries",
        "3",
    ]);
    assert_eq!(
        db.ok(&["queue", "update", "q", "--priority", "7", "--lease", "10m"]),
        "updated queue 'q'\n"
    );
    let q = db.queue("q");
    assert_eq!(q["priority"], 7);
    assert_eq!(q["lease"], 600_000);
    assert_eq!(q["description"], "d", "kept");
    assert_eq!(q["sla"], 3_600_000, "kept");
    assert_eq!(q["max_retries"], 3, "kept");
    let j = db.json(&[
        "queue",
        "update",
        "q",
        "--deadline",
        "18:30",
        "--tz",
        "Asia/Tokyo",
    ]);
    assert_eq!(
        (j["deadline"].clone(), j["tz"].clone()),
        (json!("18:30"), json!("Asia/Tokyo"))
    );
    db.refuses(
        &["queue", "update", "nope", "--ttl", "1h"],
        1,
        &["unknown queue 'nope'"],
    );
}

#[test]
fn queue_ls_text_and_json() {
    let db = Db::new();
    // A database without queues (reading commands do not create one).
    db.ok(&["queue", "create", "gone"]);
    db.ok(&["queue", "delete", "gone"]);
    assert_eq!(
        db.ok(&["queue", "ls"]),
        "no queues yet: create one with  workq queue create NAME\n"
    );
    assert_eq!(db.json(&["queue", "ls"]), json!([]));
    db.ok(&["queue", "create", "work", "--concurrency", "2"]);
    db.ok(&["queue", "create", "idle"]);
    db.add("work", "a", &[]);
    let (a, la) = db.take("work");
    db.ok(&["complete", &a, "--lease", &la]);
    db.add("work", "b", &[]);
    db.take_and_fail("work", "business", Some("bad"));
    db.add("work", "c", &["--hold"]);
    db.add("work", "d", &[]);
    db.add("work", "e", &[]);
    db.take("work");
    let t = db.ok(&["queue", "ls"]);
    let head: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &head[..9],
        [
            "QUEUE",
            "QUEUED",
            "PROCESSING",
            "PROCESSED",
            "ON-HOLD",
            "EXCEPTION",
            "EXPIRED",
            "AT-RISK",
            "OUT-SLA"
        ]
    );
    assert_eq!(
        &row(&t, "work")[..9],
        ["work", "1", "1/2", "1", "1", "1", "0", "0", "0"]
    );
    assert_eq!(&row(&t, "idle")[..6], ["idle", "0", "0", "0", "0", "0"]);
    let j = db.json(&["queue", "ls"]);
    assert_eq!(strs(&j, "name"), ["idle", "work"]);
    let w = &j[1];
    assert_eq!(
        w["counts"],
        json!({"queued": 1, "processing": 1, "processed": 1, "on_hold": 1, "exception": 1})
    );
    assert_eq!(w["concurrency"], 2);
    for k in [
        "expired",
        "at_risk",
        "out_of_sla",
        "oldest_queued_secs",
        "throughput_per_min",
        "error_rate",
    ] {
        assert!(w.get(k).is_some(), "queue ls --json lacks {k}: {w}");
    }
    assert!(w["throughput_per_min"].as_f64().unwrap() > 0.0, "{w}");
}

/// Where each column of a text table starts and ends, from its header line: (name, start,
/// end) in characters. Headers are one word and columns are two spaces apart.
fn columns(header: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != ' ' {
            i += 1;
        }
        out.push((chars[start..i].iter().collect(), start, i));
    }
    out
}

/// The character at column `at` of `line` (a space past its end).
fn char_at(line: &str, at: usize) -> char {
    line.chars().nth(at).unwrap_or(' ')
}

/// A right-aligned column ends where its header ends on every line: its last character
/// is there and the one after it is blank. A left-aligned one starts where its header does.
fn assert_aligned(table: &str, right: &[&str], left: &[&str]) {
    let mut lines = table.lines();
    let cols = columns(lines.next().unwrap());
    for l in lines {
        for (name, start, end) in &cols {
            if right.contains(&name.as_str()) {
                assert!(
                    char_at(l, end - 1) != ' ' && char_at(l, *end) == ' ',
                    "{name} is not right-aligned in {l:?}:\n{table}"
                );
            }
            if left.contains(&name.as_str()) {
                assert!(
                    char_at(l, *start) != ' ' && (*start == 0 || char_at(l, start - 1) == ' '),
                    "{name} is not left-aligned in {l:?}:\n{table}"
                );
            }
        }
    }
}

/// Alignment is the column's: a limit beside a count ("1/1") and a column of "-" stay
/// where the column's kind puts them.
#[test]
fn table_columns_align_by_what_they_hold_not_by_their_cells() {
    let db = Db::new();
    db.ok(&["queue", "create", "limited", "--concurrency", "1"]);
    db.ok(&["queue", "create", "open"]);
    db.add("limited", "a", &[]);
    db.add("open", "b", &[]);
    db.take("limited");
    for _ in 0..12 {
        db.add("open", "x", &[]);
    }
    db.take("open");
    let t = db.ok(&["queue", "ls"]);
    assert_eq!(row(&t, "limited")[2], "1/1", "{t}");
    assert_aligned(
        &t,
        &[
            "QUEUED",
            "PROCESSING",
            "PROCESSED",
            "ON-HOLD",
            "EXCEPTION",
            "EXPIRED",
            "AT-RISK",
            "OUT-SLA",
            "OLDEST",
            "PER-MIN",
        ],
        &["QUEUE", "DEADLINE"],
    );
    // Items without names: NAME is a column of "-", still text.
    let items = db.ok(&["item", "ls", "open"]);
    assert_aligned(&items, &[], &["ID", "NAME", "STATUS", "PRIORITY"]);
    // Actions none of which was undone: UNDONE is a column of "-", still text.
    let id = db.add("open", "n", &[]);
    db.ok(&["item", "note", &id, "--note", "checked"]);
    db.ok(&["item", "priority", &id, "--to", "high"]);
    let log = db.ok(&["actions"]);
    assert_aligned(&log, &["ID", "ITEMS"], &["WHO", "ACTION", "UNDONE"]);
}

#[test]
fn queue_inspect_unknown_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "other"]);
    db.refuses(&["queue", "inspect", "nope"], 1, &["unknown queue 'nope'"]);
    let e = db.json_err(&["queue", "inspect", "nope"], 1);
    assert_eq!(e["kind"], "not_found");
}

#[test]
fn queue_pause_and_resume() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "a", &[]);
    assert_eq!(
        db.ok(&["queue", "pause", "q"]),
        "paused queue 'q': items are still accepted but none are handed out\n"
    );
    assert_eq!(db.queue("q")["state"], "paused");
    assert!(db.ok(&["queue", "ls"]).contains("q (paused)"));
    assert_eq!(field(&db.ok(&["queue", "inspect", "q"]), "state"), "paused");
    // Items are still accepted.
    let id2 = db.add("q", "b", &[]);
    // None is handed out; stderr says why, stdout stays clean for scripts.
    let before = db.state();
    let a = db.cmd(&["dequeue", "q"]).success();
    assert_eq!(stdout(&a), "");
    assert_eq!(stderr(&a), "nothing to take: queue 'q' is paused\n");
    let a = db.cmd(&["--json", "dequeue", "q"]).success();
    let none: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert!(none["item"].is_null(), "{none}");
    assert_eq!(none["why_empty"]["reason"], "paused");
    assert_eq!(none["why_empty"]["message"], "queue 'q' is paused");
    assert_eq!(stderr(&a), "", "with --json the reason is in the JSON");
    let a = db
        .cmd(&["--json", "dequeue", "q", "--count", "3"])
        .success();
    let none: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(none["leases"], json!([]));
    assert_eq!(none["why_empty"]["reason"], "paused");
    assert_eq!(db.state(), before, "a paused queue hands out nothing");
    // Pausing twice is harmless.
    db.ok(&["queue", "pause", "q"]);
    assert_eq!(db.ok(&["queue", "resume", "q"]), "resumed queue 'q'\n");
    assert_eq!(db.json(&["queue", "resume", "q"])["state"], "active");
    assert_eq!(db.take("q").0, id);
    assert_eq!(db.take("q").0, id2);
    db.refuses(&["queue", "pause", "nope"], 1, &["unknown queue 'nope'"]);
    db.refuses(&["queue", "resume", "nope"], 1, &["unknown queue 'nope'"]);
}

#[test]
fn queue_delete_needs_force_with_items() {
    let db = Db::new();
    db.ok(&["queue", "create", "empty"]);
    assert_eq!(
        db.ok(&["queue", "delete", "empty"]),
        "deleted queue 'empty' and its 0 items\n"
    );
    db.ok(&["queue", "create", "full"]);
    db.ok(&["queue", "create", "other"]);
    let a = db.add("full", "a", &[]);
    db.add("full", "b", &["--hold"]);
    let keep = db.add("other", "c", &[]);
    db.refuses(
        &["queue", "delete", "full"],
        1,
        &["queue 'full' still has 2 items", "--force"],
    );
    let d = db.json(&["queue", "delete", "full", "--force"]);
    assert_eq!(d, json!({"deleted": "full", "items": 2}));
    assert_eq!(strs(&db.json(&["queue", "ls"]), "name"), ["other"]);
    assert_eq!(db.ids(&[]), [keep], "only the other queue's item is left");
    db.refuses(&["item", "show", &a], 1, &["unknown item"]);
    db.refuses(&["queue", "delete", "full"], 1, &["unknown queue 'full'"]);
    // The name can be used again, and starts empty.
    db.ok(&["queue", "create", "full"]);
    assert_eq!(db.queue("full")["counts"]["queued"], 0);
}

// ------------------------------------------------------------------ adding items

#[test]
fn item_add_prints_the_id_and_json_has_every_field() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "plain", &[]);
    let i = db.json(&[
        "item",
        "add",
        "q",
        "--value",
        r#"{"amount": 12.5}"#,
        "--name",
        "Invoice 7",
        "--key",
        "INV-7",
        "--priority",
        "high",
    ]);
    for k in [
        "id",
        "queue",
        "name",
        "key",
        "value",
        "priority",
        "status",
        "reason",
        "notes",
        "retry_count",
        "requeue_count",
        "enqueued_at",
        "started_at",
        "finished_at",
        "expires_at",
        "delay_until",
        "worker",
        "sla",
        "expired",
    ] {
        assert!(i.get(k).is_some(), "item JSON lacks {k}: {i}");
    }
    assert_eq!(i["queue"], "q");
    assert_eq!(i["name"], "Invoice 7");
    assert_eq!(i["key"], "INV-7");
    assert_eq!(
        i["value"], r#"{"amount": 12.5}"#,
        "the value is kept as text"
    );
    assert_eq!(i["priority"], "high");
    assert_eq!(i["status"], "queued");
    assert_eq!(i["reason"], Value::Null);
    assert_eq!(i["notes"], json!([]));
    assert_eq!(
        (i["retry_count"].clone(), i["requeue_count"].clone()),
        (json!(0), json!(0))
    );
    for k in [
        "started_at",
        "finished_at",
        "expires_at",
        "delay_until",
        "worker",
        "sla",
    ] {
        assert_eq!(i[k], Value::Null, "{k}");
    }
    assert_eq!(i["expired"], false);
    assert!((Utc::now() - time(&i["enqueued_at"])).num_seconds().abs() < 60);
    assert_ne!(i["id"], id.as_str());
    assert_eq!(db.ids(&[]), [id, i["id"].as_str().unwrap().to_string()]);
    // --json is global: it may come after the subcommand too.
    let a = db.cmd(&["item", "ls", "--json"]).success();
    let listed: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(listed[1], db.items(&[])[1]);
    assert_eq!(listed[1]["id"], i["id"]);
    let plain = &db.items(&[])[0];
    assert_eq!(
        (
            plain["name"].clone(),
            plain["key"].clone(),
            plain["priority"].clone()
        ),
        (Value::Null, Value::Null, json!("normal"))
    );
}

#[test]
fn item_add_value_from_stdin() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let input = "{\n  \"invoice\": \"INV-1\",\n  \"lines\": [1, 2]\n}";
    let a = db
        .cmd_stdin(
            &["item", "add", "q", "--value", "-", "--name", "piped"],
            input,
        )
        .success();
    let id = stdout(&a).trim().to_string();
    let i = db.item(&id);
    assert_eq!(i["value"], input, "the value is stdin, byte for byte");
    assert_eq!(i["name"], "piped");
}

#[test]
fn item_add_value_limit_is_1_mib() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db
        .cmd_stdin(&["item", "add", "q", "--value", "-"], vec![b'a'; 1 << 20])
        .success();
    let id = stdout(&a).trim().to_string();
    assert_eq!(db.item(&id)["value"].as_str().unwrap().len(), 1 << 20);
    let before = db.state();
    let a = db.cmd_stdin(
        &["item", "add", "q", "--value", "-"],
        vec![b'a'; (1 << 20) + 1],
    );
    let err = check_failure(a, &["item", "add", "q", "--value", "-"], 1);
    assert!(err.contains("value is 1048577 bytes"), "{err}");
    assert!(err.contains("limit of 1048576 bytes (1 MiB)"), "{err}");
    assert_eq!(db.state(), before, "an oversize value adds nothing");
    // Nor does it replace a value on requeue.
    db.ok(&["item", "hold", &id]);
    let before = db.state();
    let args = ["item", "requeue", &id, "--value", "-"];
    let a = db.cmd_stdin(&args, vec![b'b'; (1 << 20) + 1]);
    let err = check_failure(a, &args, 1);
    assert!(err.contains("value is 1048577 bytes"), "{err}");
    assert_eq!(db.state(), before, "an oversize value changes nothing");
}

#[test]
fn item_add_duplicate_key_is_refused_within_a_queue_only() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "r"]);
    let first = db.add("q", "a", &["--key", "K1"]);
    db.refuses(
        &["item", "add", "q", "--value", "b", "--key", "K1"],
        1,
        &[
            "duplicate key 'K1'",
            "queue 'q' already has an item with this key",
        ],
    );
    let e = db.json_err(&["item", "add", "q", "--value", "b", "--key", "K1"], 1);
    assert_eq!(e["kind"], "conflict");
    assert_eq!(db.item(&first)["value"], "a", "the first one is untouched");
    db.add("r", "b", &["--key", "K1"]);
    db.add("q", "c", &["--key", "K2"]);
    assert_eq!(db.ids(&["q"]).len(), 2);
}

#[test]
fn item_add_bad_input_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "existing", &[]);
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["--priority", "urgent"],
            1,
            &["--priority", "'urgent'", "high, normal, low"],
        ),
        (
            &["--expires-at", "tomorrow"],
            1,
            &["--expires-at", "'tomorrow'", "RFC 3339"],
        ),
        (&["--expires-in", "1zz"], 1, &["--expires-in", "'1zz'"]),
        (
            &["--delay-until", "later"],
            1,
            &["--delay-until", "'later'"],
        ),
        (
            &["--expires-at", "2030-01-01", "--expires-in", "1h"],
            2,
            &["--expires-at", "--expires-in", "cannot be used with"],
        ),
        (&["--bogus"], 2, &["--bogus"]),
    ];
    for (flags, code, needles) in cases {
        let mut args = vec!["item", "add", "q", "--value", "x"];
        args.extend_from_slice(flags);
        db.refuses(&args, *code, needles);
    }
    db.refuses(&["item", "add", "q"], 2, &["--value"]);
    let long = "n".repeat(101);
    db.refuses(
        &["item", "add", "q", "--value", "x", "--name", &long],
        1,
        &["name is 101 characters"],
    );
    db.refuses(
        &["item", "add", "nope", "--value", "x"],
        1,
        &["unknown queue 'nope'"],
    );
}

#[test]
fn item_add_options() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "ttl", "--ttl", "2h"]);
    let held = db.add("q", "h", &["--hold", "--note", "check the vendor"]);
    let h = db.item(&held);
    assert_eq!(h["status"], "on-hold");
    assert_eq!(h["notes"][0]["text"], "check the vendor");
    assert_eq!(h["notes"][0]["by"], "user:tester");
    let acts: Vec<String> = strs(&h["history"], "action");
    assert_eq!(acts, ["enqueue", "hold"]);
    assert_eq!(h["history"][1]["note"], "created on hold for review");

    let delayed = db.add("q", "d", &["--delay-until", "2099-01-01T00:00:00Z"]);
    assert_eq!(
        time(&db.item(&delayed)["delay_until"]),
        time(&json!("2099-01-01T00:00:00Z"))
    );
    let t = db.ok(&["item", "ls", "q"]);
    assert!(
        row(&t, &delayed).join(" ").contains("queued (delayed)"),
        "{t}"
    );
    assert!(row(&t, &held).contains(&"on-hold".to_string()), "{t}");

    let at = db.add("q", "a", &["--expires-at", "2030-05-01T12:00:00Z"]);
    assert_eq!(
        time(&db.item(&at)["expires_at"]),
        time(&json!("2030-05-01T12:00:00Z"))
    );
    // Local times read in the local zone (UTC here).
    let local = db.add("q", "l", &["--expires-at", "2030-05-01 14:30"]);
    assert_eq!(
        time(&db.item(&local)["expires_at"]),
        time(&json!("2030-05-01T14:30:00Z"))
    );
    let rel = db.add("q", "r", &["--expires-in", "1h"]);
    let i = db.item(&rel);
    let d = time(&i["expires_at"]) - time(&i["enqueued_at"]);
    assert!((d.num_milliseconds() - 3_600_000).abs() < 1000, "{d}");
    // The queue's TTL applies when the item has no expiry of its own.
    let t1 = db.add("ttl", "t", &[]);
    let i = db.item(&t1);
    let d = time(&i["expires_at"]) - time(&i["enqueued_at"]);
    assert!((d.num_milliseconds() - 7_200_000).abs() < 1000, "{d}");
    let t2 = db.add("ttl", "t", &["--expires-in", "5m"]);
    let i = db.item(&t2);
    let d = time(&i["expires_at"]) - time(&i["enqueued_at"]);
    assert!(
        (d.num_milliseconds() - 300_000).abs() < 1000,
        "its own wins: {d}"
    );

    // Neither the held nor the delayed item is handed out.
    let l = db.json(&["dequeue", "q", "--count", "10"]);
    let taken = strs(
        &l["leases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["item"].clone())
            .collect(),
        "id",
    );
    assert_eq!(taken, [at, local, rel]);
}

// ------------------------------------------------------------------ listing and showing

/// q: b (exception/business), c (exception/it, low), a (high, queued), d (on-hold); r: e.
struct Listing {
    db: Db,
    a: String,
    b: String,
    c: String,
    d: String,
    e: String,
}

fn listing() -> Listing {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "r"]);
    db.add("q", "bravo", &[]);
    let b = db.take_and_fail("q", "business", Some("Vendor 'Contoso' not found"));
    db.add("q", "charlie", &["--priority", "low"]);
    let c = db.take_and_fail("q", "it", Some("SAP timeout"));
    let a = db.add("q", "alpha", &["--priority", "high", "--name", "INV-77"]);
    let d = db.add("q", "delta", &["--hold"]);
    let e = db.add("r", "echo", &[]);
    Listing { db, a, b, c, d, e }
}

#[test]
fn item_ls_filters() {
    let Listing { db, a, b, c, d, e } = listing();
    let cases: Vec<(Vec<&str>, Vec<&String>)> = vec![
        (vec![], vec![&b, &c, &a, &d, &e]),
        (vec!["q"], vec![&b, &c, &a, &d]),
        (vec!["r"], vec![&e]),
        (vec!["--status", "exception"], vec![&b, &c]),
        (vec!["q", "--status", "queued"], vec![&a]),
        (vec!["--status", "on-hold"], vec![&d]),
        (vec!["--status", "processing"], vec![]),
        (vec!["--reason", "business"], vec![&b]),
        (vec!["--status", "exception", "--reason", "it"], vec![&c]),
        (vec!["--priority", "high"], vec![&a]),
        (vec!["--priority", "low"], vec![&c]),
        (vec!["--search", "Contoso"], vec![&b]),
        (vec!["--search", "alph"], vec![&a]),
        (vec!["--search", "INV-77"], vec![&a]),
        (vec!["--search", "nothing-like-this"], vec![]),
    ];
    for (args, want) in cases {
        let got = db.ids(&args);
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(got, want, "item ls {args:?}");
    }
    let two = db.json(&["item", "ls", "--limit", "2"]);
    assert_eq!(strs(&two, "id"), [b.clone(), c.clone()]);
    let t = db.ok(&["item", "ls", "--limit", "2"]);
    assert_eq!(t.lines().count(), 4, "header, 2 rows, footer:\n{t}");
    assert_eq!(t.lines().last().unwrap(), "1–2 of 5");
    assert!(
        !db.ok(&["item", "ls"]).contains(" of "),
        "no footer when all shown"
    );
}

#[test]
fn item_ls_bad_filters_are_refused() {
    let Listing { db, .. } = listing();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--status", "bogus"], &["--status", "'bogus'", "on-hold"]),
        (
            &["--reason", "cosmic"],
            &["--reason", "'cosmic'", "business"],
        ),
        (&["--priority", "urgent"], &["--priority", "'urgent'"]),
        (&["--sla", "soon"], &["--sla", "'soon'", "at-risk"]),
        (&["nope"], &["unknown queue 'nope'"]),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["item", "ls"];
        args.extend_from_slice(flags);
        db.refuses(&args, 1, needles);
    }
    db.refuses(&["item", "ls", "--limit", "many"], 2, &["--limit"]);
}

#[test]
fn item_ls_text_columns() {
    let Listing { db, a, b, c, .. } = listing();
    let t = db.ok(&["item", "ls", "q"]);
    let head: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["ID", "QUEUE", "NAME", "STATUS", "PRIORITY", "AGE", "SLA", "LATEST", "NOTE"]
    );
    let ra = row(&t, &a);
    assert_eq!(&ra[1..5], ["q", "INV-77", "queued", "high"]);
    let rb = row(&t, &b);
    assert_eq!(&rb[3..5], ["exception/business", "normal"]);
    assert!(
        rb.join(" ").ends_with("Vendor 'Contoso' not found"),
        "{rb:?}"
    );
    assert_eq!(row(&t, &c)[3], "exception/it");
}

#[test]
fn item_ls_sla_and_expired() {
    let db = Db::new();
    db.ok(&[
        "queue",
        "create",
        "risky",
        "--sla",
        "20s",
        "--sla-risk",
        "1",
    ]);
    db.ok(&["queue", "create", "late", "--sla", "1ms"]);
    db.ok(&["queue", "create", "fine", "--sla", "1h"]);
    db.ok(&["queue", "create", "plain"]);
    let risky = db.add("risky", "r", &[]);
    let late = db.add("late", "l", &[]);
    let fine = db.add("fine", "f", &[]);
    let done = db.add("fine", "g", &[]);
    let expired = db.add("plain", "x", &["--expires-at", "2000-01-01T00:00:00Z"]);
    let fresh = db.add("plain", "y", &["--expires-in", "1h"]);
    let (t, l) = db.take("fine");
    assert_eq!(t, fine);
    db.ok(&["complete", &fine, "--lease", &l]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(db.ids(&["--sla", "at-risk"]), std::slice::from_ref(&risky));
    // An expired item is out of SLA too (SPEC §3), in a queue without an SLA target as well.
    assert_eq!(db.ids(&["--sla", "out"]), [late.clone(), expired.clone()]);
    assert_eq!(db.ids(&["--sla", "in"]), std::slice::from_ref(&done));
    assert_eq!(db.ids(&["--sla", "met"]), std::slice::from_ref(&fine));
    assert_eq!(db.ids(&["--expired"]), std::slice::from_ref(&expired));
    assert_eq!(db.item(&risky)["sla"], "at-risk");
    assert_eq!(db.item(&late)["sla"], "out");
    assert_eq!(db.item(&fine)["sla"], "met");
    assert_eq!(db.item(&expired)["sla"], "out");
    assert_eq!(db.item(&expired)["expired"], true);
    assert_eq!(db.item(&fresh)["expired"], false);
    let t = db.ok(&["item", "ls", "plain"]);
    assert!(
        row(&t, &expired).join(" ").contains("queued (expired)"),
        "{t}"
    );
    let t = db.ok(&["item", "ls", "risky"]);
    assert!(row(&t, &risky).contains(&"at-risk".to_string()), "{t}");
    // An expired item is never handed out.
    assert_eq!(db.take("plain").0, fresh);
    let a = db.cmd(&["--json", "dequeue", "plain"]).success();
    let none: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert!(none["item"].is_null(), "{none}");
    // Queue health counts them.
    let qs = db.json(&["queue", "ls"]);
    let by_name = |n: &str| {
        qs.as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("plain")["expired"], 1);
    assert_eq!(by_name("plain")["out_of_sla"], 1, "the expired one");
    assert_eq!(by_name("risky")["at_risk"], 1);
    assert_eq!(by_name("late")["out_of_sla"], 1);
    assert_eq!(by_name("fine")["at_risk"], 0);
}

#[test]
fn item_show_text() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add(
        "q",
        r#"{"amount":12.5,"vendor":"Contoso"}"#,
        &[
            "--name",
            "Invoice 1",
            "--key",
            "K-1",
            "--note",
            "first look",
        ],
    );
    let l = db.json(&["dequeue", "q", "--worker", "bot-7"]);
    let lease = l["lease"].as_str().unwrap();
    db.ok(&["complete", &id, "--lease", lease, "--note", "paid"]);
    let t = db.ok(&["item", "show", &id]);
    for (k, v) in [
        ("id", id.as_str()),
        ("queue", "q"),
        ("name", "Invoice 1"),
        ("key", "K-1"),
        ("status", "processed"),
        ("priority", "normal"),
        ("retries", "0"),
        ("requeues", "0"),
        ("expires", "-"),
        ("worker", "bot-7"),
    ] {
        assert_eq!(field(&t, k), v, "show: {k}\n{t}");
    }
    assert_ne!(field(&t, "finished"), "-");
    // A JSON value is pretty-printed.
    assert!(
        t.contains("value:\n{\n  \"amount\": 12.5,\n  \"vendor\": \"Contoso\"\n}\n"),
        "{t}"
    );
    let notes: Vec<&str> = t
        .split("notes:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(notes.len(), 2, "{t}");
    assert!(notes[0].contains("user:tester") && notes[0].ends_with("first look"));
    assert!(notes[1].contains("bot-7") && notes[1].ends_with("paid"));
    let history = t.split("history:\n").nth(1).unwrap();
    // Cells are padded: compare with single spaces, after the date, time and zone.
    let lines: Vec<String> = history
        .lines()
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines.len(), 4, "header and three changes:\n{history}");
    assert!(history.starts_with("WHEN "), "{history}");
    assert_eq!(lines[1], "user:tester enqueue → queued");
    assert_eq!(lines[2], "bot-7 dequeue queued → processing");
    assert_eq!(lines[3], "bot-7 complete processing → processed paid");
    // A plain value is printed as is.
    let p = db.add("q", "just text", &[]);
    assert!(db.ok(&["item", "show", &p]).contains("value:\njust text\n"));
}

#[test]
fn item_show_says_what_each_action_changed_old_to_new() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let old = r#"{"InvoiceId":"I-1","Amount":"4999.00","Vendor":"Contoso Pharmaceuticals"}"#;
    let new = r#"{"InvoiceId":"I-1","Amount":"4999.50","Vendor":"Contoso Pharmaceuticals"}"#;
    let id = db.add("q", old, &[]);
    db.ok(&["item", "priority", &id, "--to", "high", "--note", "vip"]);
    db.ok(&["item", "hold", &id]);
    db.ok(&["item", "requeue", &id, "--value", new]);
    let t = db.ok(&["item", "show", &id]);
    let history = t.split("history:\n").nth(1).unwrap();
    let row = |action: &str| -> String {
        history
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some(action))
            .unwrap_or_else(|| panic!("no {action} row:\n{history}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // A short change reads old → new in its row, after the person's note.
    assert!(
        row("priority").ends_with("vip priority: normal → high (action 1)"),
        "{}",
        row("priority")
    );
    // A value is too long for a row: named there, whole below, each side as written.
    assert!(
        row("requeue").contains("value: changed (old → new below)"),
        "{}",
        row("requeue")
    );
    let changes = t.split("\nchanges:\n").nth(1).expect(&t);
    assert!(changes.contains("requeue (action 3)  value:"), "{changes}");
    assert!(
        changes.contains(
            "    old: {\n           \"InvoiceId\": \"I-1\",\n           \"Amount\": \"4999.00\","
        ),
        "{changes}"
    );
    assert!(changes.contains("\"Amount\": \"4999.50\""), "{changes}");
    assert!(!t.contains("old_value"), "no record text: {t}");
    // --json has the same record, field by field.
    let j = db.json(&["item", "show", &id]);
    let h = j["history"].as_array().unwrap();
    let requeue = h.iter().find(|e| e["action"] == "requeue").unwrap();
    assert_eq!(requeue["changes"][0]["field"], "value");
    assert_eq!(requeue["changes"][0]["old"], old);
    assert_eq!(requeue["changes"][0]["new"], new);
    assert_eq!(requeue["note"], serde_json::Value::Null);
}

#[test]
fn item_show_json_has_history() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "v", &[]);
    let (_, lease) = db.take("q");
    db.ok(&[
        "fail", &id, "--lease", &lease, "--reason", "business", "--note", "no PO",
    ]);
    let out = db.ok(&["item", "hold", &id, "--note", "asking"]);
    let act: i64 = action_id(&out).parse().unwrap();
    let i = db.item(&id);
    assert_eq!(
        i["id"],
        id.as_str(),
        "the item's fields are at the top level"
    );
    assert_eq!(i["status"], "on-hold");
    assert_eq!(i["worker"], "cli:tester");
    assert!(!i["started_at"].is_null());
    let h = i["history"].as_array().unwrap();
    let summary: Vec<(String, Value, Value, String)> = h
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["from"].clone(),
                e["to"].clone(),
                e["by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "enqueue".into(),
                Value::Null,
                json!("queued"),
                "user:tester".into()
            ),
            (
                "dequeue".into(),
                json!("queued"),
                json!("processing"),
                "cli:tester".into()
            ),
            (
                "fail".into(),
                json!("processing"),
                json!("exception"),
                "cli:tester".into()
            ),
            (
                "hold".into(),
                json!("exception"),
                json!("on-hold"),
                "user:tester".into()
            ),
        ]
    );
    assert_eq!(h[2]["reason"], "business");
    assert_eq!(h[2]["note"], "no PO");
    assert_eq!(h[3]["action_id"], act);
    assert_eq!(h[3]["note"], "asking");
    for e in h {
        time(&e["at"]);
    }
    db.refuses(&["item", "show", "NOPE"], 1, &["unknown item 'NOPE'"]);
    db.refuses(&["item", "show"], 2, &["<ID>"]);
}

// ------------------------------------------------------------------ taking work

#[test]
fn dequeue_takes_high_priority_first_then_oldest() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "low1", &["--priority", "low"]);
    db.add("q", "normal1", &[]);
    db.add("q", "high1", &["--priority", "high"]);
    db.add("q", "normal2", &["--priority", "normal"]);
    db.add("q", "high2", &["--priority", "high"]);
    let mut got = Vec::new();
    for _ in 0..5 {
        let l = db.json(&["dequeue", "q"]);
        got.push(l["item"]["value"].as_str().unwrap().to_string());
    }
    assert_eq!(got, ["high1", "high2", "normal1", "normal2", "low1"]);
    let a = db.cmd(&["--json", "dequeue", "q"]).success();
    let none: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert!(none["item"].is_null(), "{none}");
    assert_eq!(none["why_empty"]["reason"], "nothing_ready");
}

#[test]
fn dequeue_across_queues_takes_the_higher_priority_queue_first() {
    let db = Db::new();
    db.ok(&["queue", "create", "lo"]);
    db.ok(&["queue", "create", "hi", "--priority", "5"]);
    db.add("lo", "from-lo", &["--priority", "high"]);
    db.add("hi", "from-hi", &["--priority", "low"]);
    let l = db.json(&["dequeue", "lo", "hi", "--count", "2"]);
    let values: Vec<&str> = l["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["item"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["from-hi", "from-lo"]);
}

#[test]
fn dequeue_json_shapes() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let ids = [
        db.add("q", "a", &[]),
        db.add("q", "b", &[]),
        db.add("q", "c", &[]),
    ];
    let one = db.json(&["dequeue", "q", "--worker", "bot-1"]);
    assert!(one.is_object(), "without --count: one lease object: {one}");
    let mut keys: Vec<&String> = one.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["item", "lease", "lease_until", "why_empty"]);
    assert!(one["why_empty"].is_null());
    let item = &one["item"];
    assert_eq!(item["id"], ids[0].as_str());
    assert_eq!(item["status"], "processing");
    assert_eq!(item["worker"], "bot-1");
    let lease_for = time(&one["lease_until"]) - time(&item["started_at"]);
    assert_eq!(lease_for.num_seconds(), 300, "the default lease is 5m");
    let two = db.json(&["dequeue", "q", "--count", "5"]);
    assert!(two["why_empty"].is_null(), "{two}");
    let list = two["leases"].as_array().expect("with --count: a list");
    assert_eq!(list.len(), 2, "as many as there are");
    assert_eq!(
        strs(
            &Value::Array(list.iter().map(|l| l["item"].clone()).collect()),
            "id"
        ),
        ids[1..]
    );
    assert_eq!(list[0]["item"]["worker"], "cli:tester", "default worker");
    let tokens: std::collections::HashSet<&str> = [&one, &list[0], &list[1]]
        .iter()
        .map(|l| l["lease"].as_str().unwrap())
        .collect();
    assert_eq!(tokens.len(), 3, "every lease has its own token");
    let none = db.json(&["dequeue", "q", "--count", "2"]);
    assert_eq!(none["leases"], json!([]));
    assert_eq!(none["why_empty"]["reason"], "nothing_ready");
    let none = db.json(&["dequeue", "q"]);
    for k in ["item", "lease", "lease_until"] {
        assert!(none[k].is_null(), "{k}: {none}");
    }
    assert_eq!(none["why_empty"]["reason"], "nothing_ready");
    assert_eq!(db.ids(&["--status", "processing"]).len(), 3);
}

#[test]
fn dequeue_text_output() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "the value", &["--name", "N1", "--priority", "high"]);
    let out = db.ok(&["dequeue", "q"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let first: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(first[0], id);
    let token = first[1];
    assert!(
        lines[1].contains("queue q  name N1  priority high  lease until "),
        "{out}"
    );
    assert_eq!(lines[2], "  value the value");
    // The printed token is the lease.
    assert_eq!(
        db.ok(&["complete", &id, "--lease", token]),
        format!("{id}: processed\n")
    );
    // Nothing left: stdout stays empty, stderr says so, and that is not an error.
    let a = db.cmd(&["dequeue", "q"]).success();
    assert_eq!(stdout(&a), "");
    assert_eq!(
        stderr(&a),
        "nothing to take: queue 'q' has no item ready to take\n"
    );
}

#[test]
fn dequeue_wait_returns_empty_after_the_wait() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let started = Instant::now();
    let a = db.cmd(&["dequeue", "q", "--wait", "200ms"]).success();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "waited: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "but not much longer: {took:?}"
    );
    assert_eq!(stdout(&a), "");
    assert!(stderr(&a).contains("nothing to take"));
    let a = db
        .cmd(&["--json", "dequeue", "q", "--wait", "200ms", "--count", "2"])
        .success();
    let none = serde_json::from_str::<Value>(&stdout(&a)).unwrap();
    assert_eq!(none["leases"], json!([]));
    assert_eq!(none["why_empty"]["reason"], "nothing_ready");
}

#[test]
fn dequeue_wait_takes_an_item_added_meanwhile() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("workq"))
        .env_remove("WORKQ_DB")
        .env("USER", "tester")
        .arg("--db")
        .arg(&db.path)
        .args(["--json", "dequeue", "q", "--wait", "20s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let id = db.add("q", "late arrival", &[]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it did not wait it out"
    );
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["item"]["id"], id.as_str());
}

#[test]
fn dequeue_respects_the_concurrency_limit() {
    let db = Db::new();
    db.ok(&["queue", "create", "c", "--concurrency", "1"]);
    db.add("c", "a", &[]);
    db.add("c", "b", &[]);
    let l = db.json(&["dequeue", "c", "--count", "2"]);
    assert_eq!(l["leases"].as_array().unwrap().len(), 1);
    let before = db.state();
    let a = db.cmd(&["dequeue", "c"]).success();
    assert_eq!(stdout(&a), "");
    assert_eq!(
        stderr(&a),
        "nothing to take: queue 'c' is at its concurrency limit (1/1 processing)\n"
    );
    assert_eq!(db.state(), before);
}

#[test]
fn dequeue_bad_input_takes_nothing() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "a", &[]);
    db.refuses(&["dequeue", "q", "nope"], 1, &["unknown queue 'nope'"]);
    db.refuses(
        &["dequeue", "q", "--count", "0"],
        1,
        &["--count must be at least 1"],
    );
    db.refuses(
        &["dequeue", "q", "--wait", "forever"],
        1,
        &["--wait", "'forever'"],
    );
    db.refuses(
        &["dequeue", "q", "--worker", " "],
        1,
        &["worker name must not be empty"],
    );
    db.refuses(&["dequeue"], 2, &["<QUEUES>"]);
    db.refuses(&["dequeue", "q", "--count", "-1"], 2, &["'-1'"]);
}

// ------------------------------------------------------------------ finishing work

#[test]
fn complete_marks_processed() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &[]);
    let b = db.add("q", "b", &[]);
    let (_, la) = db.take("q");
    assert_eq!(
        db.ok(&["complete", &a, "--lease", &la, "--note", "paid"]),
        format!("{a}: processed\n")
    );
    let i = db.item(&a);
    assert_eq!(i["status"], "processed");
    assert_eq!(i["notes"][0]["text"], "paid");
    assert_eq!(i["notes"][0]["by"], "cli:tester");
    assert!(time(&i["finished_at"]) >= time(&i["started_at"]));
    let (_, lb) = db.take("q");
    let j = db.json(&["complete", &b, "--lease", &lb]);
    assert_eq!(
        (j["id"].clone(), j["status"].clone()),
        (json!(b), json!("processed"))
    );
    assert_eq!(db.queue("q")["counts"]["processed"], 2);
}

#[test]
fn a_forged_or_stale_lease_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "a", &[]);
    let (_, lease) = db.take("q");
    for args in [
        vec!["complete", &id, "--lease", "forged"],
        vec!["fail", &id, "--lease", "forged", "--reason", "business"],
        vec!["heartbeat", &id, "--lease", "forged"],
    ] {
        let err = db.refuses(&args, 1, &[&id, "lease", "not recorded"]);
        assert!(!err.contains(&lease), "does not leak the real token: {err}");
        assert_eq!(db.json_err(&args, 1)["kind"], "conflict");
    }
    assert_eq!(db.item(&id)["status"], "processing");
    db.ok(&["complete", &id, "--lease", &lease]);
    // The same lease is spent once the item is finished.
    db.refuses(
        &["complete", &id, "--lease", &lease],
        1,
        &["is processed, not processing under your lease"],
    );
    db.refuses(&["heartbeat", &id, "--lease", &lease], 1, &["is processed"]);
    db.refuses(
        &["complete", "NOPE", "--lease", &lease],
        1,
        &["unknown item 'NOPE'"],
    );
    db.refuses(&["complete", &id], 2, &["--lease"]);
}

#[test]
fn fail_business_makes_an_exception() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-retries", "3"]);
    let id = db.add("q", "a", &[]);
    let (_, lease) = db.take("q");
    assert_eq!(
        db.ok(&["fail", &id, "--lease", &lease, "--reason", "business", "--note", "no PO"]),
        format!("{id}: exception (business)\n"),
        "business exceptions are not retried"
    );
    let i = db.item(&id);
    assert_eq!(
        (i["status"].clone(), i["reason"].clone()),
        (json!("exception"), json!("business"))
    );
    assert_eq!(i["retry_count"], 0);
    assert_eq!(i["notes"][0]["text"], "no PO");
    assert!(!i["finished_at"].is_null());
    let id = db.add("q", "b", &[]);
    let (_, lease) = db.take("q");
    let j = db.json(&["fail", &id, "--lease", &lease, "--reason", "generic"]);
    assert_eq!(
        (j["status"].clone(), j["reason"].clone()),
        (json!("exception"), json!("generic"))
    );
}

#[test]
fn fail_refuses_timeout_and_unknown_reasons() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "a", &[]);
    let (_, lease) = db.take("q");
    db.refuses(
        &["fail", &id, "--lease", &lease, "--reason", "timeout"],
        1,
        &[
            "--reason",
            "timeout is for leases that ran out",
            "generic, it or business",
        ],
    );
    let err = db.refuses(
        &["fail", &id, "--lease", &lease, "--reason", "cosmic"],
        1,
        &["--reason", "'cosmic'", "generic", "it", "business"],
    );
    assert!(
        !err.contains("timeout"),
        "does not offer what it refuses: {err}"
    );
    db.refuses(&["fail", &id, "--lease", &lease], 2, &["--reason"]);
    assert_eq!(db.item(&id)["status"], "processing");
}

#[test]
fn an_it_failure_is_retried_while_retries_are_left() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-retries", "1"]);
    let id = db.add("q", "a", &[]);
    let (_, lease) = db.take("q");
    assert_eq!(
        db.ok(&[
            "fail",
            &id,
            "--lease",
            &lease,
            "--reason",
            "it",
            "--note",
            "SAP down 503"
        ]),
        format!("{id}: failed, queued again for automatic retry 1\n")
    );
    let i = db.item(&id);
    assert_eq!(i["status"], "queued");
    assert_eq!(i["reason"], Value::Null);
    assert_eq!(i["retry_count"], 1);
    let last = i["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["action"].clone(),
            last["from"].clone(),
            last["to"].clone(),
            last["by"].clone()
        ),
        (
            json!("retry"),
            json!("exception"),
            json!("queued"),
            json!("system")
        )
    );
    assert_eq!(last["note"], "automatic retry 1 of 1");
    // Retries used up: the next IT failure stays an exception.
    let (again, lease) = db.take("q");
    assert_eq!(again, id);
    assert_eq!(
        db.ok(&["fail", &id, "--lease", &lease, "--reason", "it"]),
        format!("{id}: exception (it)\n")
    );
    let i = db.item(&id);
    assert_eq!(
        (i["status"].clone(), i["reason"].clone()),
        (json!("exception"), json!("it"))
    );
    assert_eq!(i["retry_count"], 1);
}

/// The command's output; that a heartbeat carries a lease past its first deadline is
/// proven on the store's own clock (contract: a_heartbeat_keeps_the_lease_past_its_first_deadline),
/// not by racing a short lease with the wall clock.
#[test]
fn heartbeat_extends_the_lease() {
    let db = Db::new();
    db.ok(&["queue", "create", "h", "--lease", "1h"]);
    let id = db.add("h", "a", &[]);
    let l = db.json(&["dequeue", "h"]);
    let lease = l["lease"].as_str().unwrap();
    let first = time(&l["lease_until"]);
    // A later millisecond for certain, so the new deadline is strictly later.
    std::thread::sleep(Duration::from_millis(20));
    let hb = db.json(&["heartbeat", &id, "--lease", lease]);
    assert_eq!(hb["id"], id.as_str());
    let extended = time(&hb["lease_until"]);
    assert!(extended > first, "{first} → {extended}");
    assert!(
        extended - first < chrono::Duration::minutes(5),
        "an hour from the heartbeat, not two: {first} → {extended}"
    );
    let out = db.ok(&["heartbeat", &id, "--lease", lease]);
    assert!(
        out.starts_with(&format!("{id}: lease extended until ")),
        "{out}"
    );
    db.ok(&["complete", &id, "--lease", lease]);
    assert_eq!(db.item(&id)["status"], "processed");
}

/// Several leases in one heartbeat: `ID:TOKEN` pairs; each is extended or refused on its
/// own, and a refused one makes the command fail after saying which.
#[test]
fn heartbeat_extends_several_leases_in_one_call() {
    let db = Db::new();
    db.ok(&["queue", "create", "h", "--lease", "1h"]);
    let a = db.add("h", "a", &[]);
    let b = db.add("h", "b", &[]);
    let (ta, la) = db.take("h");
    let (tb, lb) = db.take("h");
    assert_eq!((ta.as_str(), tb.as_str()), (a.as_str(), b.as_str()));
    let (pa, pb) = (format!("{a}:{la}"), format!("{b}:{lb}"));
    let out = db.ok(&["heartbeat", &pa, &pb]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("{a}: lease extended until ")),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("{b}: lease extended until ")),
        "{out}"
    );
    let hb = db.json(&["heartbeat", &pa, &pb]);
    assert_eq!(hb[0]["id"], a.as_str(), "{hb}");
    assert_eq!(hb[1]["id"], b.as_str(), "{hb}");
    assert!(hb[1]["lease_until"].is_string(), "{hb}");
    // A forged token among good ones: the good one is extended, the command fails naming b.
    let forged = format!("{b}:forged");
    let a_cmd = db.cmd(&["heartbeat", &pa, &forged]).code(1);
    assert!(
        stdout(&a_cmd).starts_with(&format!("{a}: lease extended until ")),
        "{}",
        stdout(&a_cmd)
    );
    let err = stderr(&a_cmd);
    assert!(err.contains(&b) && err.contains("lease"), "{err}");
    assert!(!err.contains(&lb), "does not leak the real token: {err}");
    // The shapes that cannot be read change nothing.
    db.refuses(&["heartbeat", &a, &b, "--lease", &la], 2, &["--lease"]);
    db.refuses(&["heartbeat", &a], 2, &[&format!("'{a}'"), "ID:TOKEN"]);
    db.refuses(&["heartbeat", &format!("{a}:")], 2, &["ID:TOKEN"]);
    db.ok(&["complete", &a, "--lease", &la]);
    db.ok(&["complete", &b, "--lease", &lb]);
}

#[test]
fn a_lease_that_runs_out_becomes_a_timeout_exception() {
    let db = Db::new();
    db.ok(&["queue", "create", "t", "--lease", "1s"]);
    db.ok(&[
        "queue",
        "create",
        "r",
        "--lease",
        "1s",
        "--max-retries",
        "1",
    ]);
    let id = db.add("t", "a", &[]);
    let rid = db.add("r", "b", &[]);
    let (_, lease) = db.take("t");
    let (_, old_lease) = db.take("r");
    std::thread::sleep(Duration::from_millis(1500));
    // A write waits for the sweep a fresh process starts with (reads do not: see below).
    let err = db.fails(&["complete", &id, "--lease", &lease], 1);
    assert!(
        err.contains("is exception, not processing under your lease")
            && err.contains("not recorded"),
        "{err}"
    );
    let i = db.item(&id);
    assert_eq!(
        (i["status"].clone(), i["reason"].clone()),
        (json!("exception"), json!("timeout"))
    );
    assert_eq!(
        i["notes"][0]["text"],
        "lease expired: no heartbeat from cli:tester within 1s"
    );
    let r = db.item(&rid);
    assert_eq!(
        (r["status"].clone(), r["retry_count"].clone()),
        (json!("queued"), json!(1))
    );
    // Taken again (under a longer lease, not to race it), the first worker's lease is
    // stale: its late result is not recorded.
    db.ok(&["queue", "update", "r", "--lease", "5m"]);
    let (again, new_lease) = db.take("r");
    assert_eq!(again, rid);
    db.refuses(
        &["complete", &rid, "--lease", &old_lease],
        1,
        &["stale lease", &rid, "not recorded"],
    );
    db.ok(&["complete", &rid, "--lease", &new_lease]);
    assert_eq!(db.item(&rid)["status"], "processed");
}

#[test]

fn the_first_read_after_leases_ran_out_shows_the_timeouts() {
    let db = Db::new();
    db.ok(&["queue", "create", "t", "--lease", "1s"]);
    for v in ["a", "b", "c"] {
        db.add("t", v, &[]);
    }
    db.json(&["dequeue", "t", "--count", "3"]);
    std::thread::sleep(Duration::from_millis(1500));
    // No workq has the file open: the next process is the first to see the leases ran out,
    // and "swept before anything else" should hold for what it shows too.
    let shown = db.items(&[]);
    assert_eq!(strs(&shown, "status"), ["exception"; 3], "{shown}");
}

// ------------------------------------------------------------------ groups

#[test]
fn groups_gather_exceptions_by_masked_note() {
    let db = Db::new();
    db.ok(&["queue", "create", "g"]);
    assert_eq!(db.ok(&["groups"]), "no exceptions\n");
    assert_eq!(db.json(&["groups"]), json!([]));
    db.ok(&["queue", "create", "other"]);
    for _ in 0..4 {
        db.add("g", "v", &[]);
    }
    db.add("other", "v", &[]);
    db.take_and_fail("g", "business", Some("Vendor 'Contoso' not found"));
    db.take_and_fail("g", "business", Some("Vendor 'Fabrikam' not found"));
    db.take_and_fail("g", "business", Some("Amount 12.50 too high"));
    db.take_and_fail("g", "it", None);
    db.take_and_fail("other", "business", Some("Vendor 'Initech' not found"));
    let gs = db.json(&["groups", "g"]);
    let find = |sig: &str| {
        gs.as_array()
            .unwrap()
            .iter()
            .find(|g| g["signature"] == sig)
            .unwrap_or_else(|| panic!("no group {sig:?}: {gs}"))
            .clone()
    };
    assert_eq!(gs.as_array().unwrap().len(), 3, "{gs}");
    let vendor = find("Vendor * not found");
    assert_eq!(vendor["count"], 2);
    assert_eq!(vendor["queue"], "g");
    assert_eq!(vendor["reason"], "business");
    assert!(
        ["Vendor 'Contoso' not found", "Vendor 'Fabrikam' not found"]
            .contains(&vendor["example"].as_str().unwrap()),
        "{vendor}"
    );
    assert!(time(&vendor["oldest"]) <= time(&vendor["newest"]));
    assert_eq!(find("Amount * too high")["count"], 1);
    assert_eq!(find("")["reason"], "it");
    let t = db.ok(&["groups", "g"]);
    let r = row(&t, "2");
    assert_eq!(&r[..3], ["2", "g", "business"]);
    assert!(r.join(" ").contains("Vendor * not found"), "{t}");
    assert!(t.contains("(no note)"), "{t}");
    // All queues: the other queue's vendor is its own group.
    let all = db.json(&["groups"]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    db.refuses(&["groups", "nope"], 1, &["unknown queue 'nope'"]);
}

// ------------------------------------------------------------------ human actions

#[test]
fn release_of_a_queued_item_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let queued = db.add("q", "a", &[]);
    let held = db.add("q", "b", &["--hold"]);
    db.refuses(
        &["item", "release", &queued],
        1,
        &[&queued, "cannot release an item that is queued", "on-hold"],
    );
    // One bad item stops the whole action.
    db.refuses(
        &["item", "release", &held, &queued],
        1,
        &["1 of 2 items cannot be released; nothing changed"],
    );
    assert_eq!(db.item(&held)["status"], "on-hold");
    assert_eq!(
        db.json_err(&["item", "release", &queued], 1)["kind"],
        "transition"
    );
}

#[test]
fn refused_transitions_name_both_statuses() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let busy = db.add("q", "b", &[]);
    let queued = db.add("q", "a", &[]);
    let (taken, _) = db.take("q");
    assert_eq!(taken, busy);
    db.refuses(
        &["item", "processed", &busy],
        1,
        &["cannot go from processing to processed", "hold it first"],
    );
    db.refuses(
        &["item", "requeue", &queued],
        1,
        &["cannot go from queued to queued"],
    );
    db.refuses(
        &["item", "delete", &busy],
        1,
        &["cannot go from processing to deleted"],
    );
}

#[test]
fn actions_by_id() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &[]);
    let b = db.add("q", "b", &[]);
    let out = db.ok(&["item", "hold", &a, &b, "--note", "waiting for vendor"]);
    let n1 = action_id(&out);
    assert_eq!(
        out,
        format!("hold: 2 items (action {n1}; undo with `workq undo {n1}`)\n")
    );
    for id in [&a, &b] {
        let i = db.item(id);
        assert_eq!(i["status"], "on-hold");
        assert_eq!(i["notes"][0]["text"], "waiting for vendor");
        let last = i["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["action"], "hold");
        assert_eq!(last["action_id"].to_string(), n1);
        assert_eq!(last["by"], "user:tester");
    }
    let out = db.ok(&["item", "release", &a]);
    assert!(out.starts_with("release: 1 item (action "), "{out}");
    assert_ne!(action_id(&out), n1);
    assert_eq!(db.item(&a)["status"], "queued");
    let r = db.json(&["item", "processed", &a, &b]);
    assert_eq!(
        (r["verb"].clone(), r["touched"].clone()),
        (json!("processed"), json!(2))
    );
    assert!(r["action_id"].as_i64().unwrap() > n1.parse::<i64>().unwrap());
    assert_eq!(db.ids(&["--status", "processed"]), [a.clone(), b.clone()]);
    // Requeue with a new value from stdin and a delay.
    let a_out = db
        .cmd_stdin(
            &["item", "requeue", &a, "--value", "-", "--delay", "1h"],
            "fixed value",
        )
        .success();
    assert!(stdout(&a_out).starts_with("requeue: 1 item"));
    let i = db.item(&a);
    assert_eq!(i["status"], "queued");
    assert_eq!(i["value"], "fixed value");
    assert_eq!(i["requeue_count"], 1);
    let delay = time(&i["delay_until"]) - Utc::now();
    assert!(delay > chrono::Duration::minutes(55) && delay <= chrono::Duration::hours(1));
    db.ok(&["item", "priority", &a, "--to", "high"]);
    assert_eq!(db.item(&a)["priority"], "high");
    db.ok(&["item", "extend", &a, "--expires-at", "2031-01-01T00:00:00Z"]);
    assert_eq!(
        time(&db.item(&a)["expires_at"]),
        time(&json!("2031-01-01T00:00:00Z"))
    );
    db.ok(&["item", "extend", &a, "--expires-in", "2h"]);
    let left = time(&db.item(&a)["expires_at"]) - Utc::now();
    assert!(left > chrono::Duration::minutes(115) && left <= chrono::Duration::hours(2));
    db.ok(&["item", "extend", &a, "--never"]);
    assert_eq!(db.item(&a)["expires_at"], Value::Null);
    let out = db.ok(&["item", "note", &a, "--note", "called the vendor"]);
    assert!(out.starts_with("note: 1 item"), "{out}");
    let i = db.item(&a);
    assert_eq!(
        i["notes"].as_array().unwrap().last().unwrap()["text"],
        "called the vendor"
    );
    assert_eq!(i["status"], "queued", "a note changes no status");
    assert!(db.ok(&["item", "delete", &b]).starts_with("delete: 1 item"));
    assert_eq!(
        field(&db.ok(&["item", "show", &b]), "status"),
        "deleted (was processed)"
    );
    assert_eq!(db.ids(&[]), [a]);
}

#[test]
fn a_person_may_hold_an_item_a_worker_has() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let id = db.add("q", "a", &[]);
    let (_, lease) = db.take("q");
    db.ok(&["item", "hold", &id]);
    db.refuses(
        &["complete", &id, "--lease", &lease],
        1,
        &["is on hold", "not recorded"],
    );
    assert_eq!(db.item(&id)["status"], "on-hold");
}

#[test]
fn action_flag_mistakes_are_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &[]);
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["hold", &a, "--value", "x"],
            1,
            &["--value only goes with `item requeue`"],
        ),
        (
            &["hold", &a, "--delay", "1h"],
            1,
            &["--delay only goes with `item requeue`"],
        ),
        (
            &["hold", &a, "--to", "high"],
            1,
            &["--to only goes with `item priority`"],
        ),
        (
            &["hold", &a, "--never"],
            1,
            &["only goes with `item extend`"],
        ),
        (&["priority", &a], 1, &["--to high|normal|low"]),
        (
            &["priority", &a, "--to", "urgent"],
            1,
            &["--to", "'urgent'"],
        ),
        (
            &["extend", &a],
            1,
            &["--expires-at TIME, --expires-in DUR or --never"],
        ),
        (
            &["extend", &a, "--expires-at", "soon"],
            1,
            &["--expires-at", "'soon'"],
        ),
        (
            &["extend", &a, "--expires-in", "1h", "--never"],
            2,
            &["--never"],
        ),
        (
            &["extend", &a, "--expires-in", "0s"],
            1,
            &["--expires-in", "'0s'", "longer than 0"],
        ),
        (&["note", &a], 1, &["a note action needs the note's text"]),
        (
            &["note", &a, "--note", "  "],
            1,
            &["a note action needs the note's text"],
        ),
        (
            &["requeue", &a, "--delay", "forever"],
            1,
            &["--delay", "'forever'"],
        ),
        (&["hold"], 1, &["name the items: `workq item hold ID...`"]),
        (
            &["hold", &a, "--queue", "q", "--status", "queued"],
            1,
            &["not both"],
        ),
        (
            &["hold", "--queue", "q"],
            1,
            &["needs --queue and --status or --signature"],
        ),
        (
            &["hold", "--status", "queued"],
            1,
            &["needs --queue and --status or --signature"],
        ),
        (
            &["hold", "--queue", "q", "--status", "bogus", "--yes"],
            1,
            &["--status", "'bogus'"],
        ),
        (
            &["hold", "--queue", "nope", "--status", "queued", "--yes"],
            1,
            &["unknown queue 'nope'"],
        ),
        (&["hold", "NOPE"], 1, &["unknown item 'NOPE'"]),
        (&["hold", &a, "NOPE"], 1, &["unknown item 'NOPE'"]),
    ];
    for (flags, code, needles) in cases {
        let mut args = vec!["item"];
        args.extend_from_slice(flags);
        db.refuses(&args, *code, needles);
    }
    assert_eq!(db.item(&a)["status"], "queued");
}

#[test]
fn a_bulk_action_without_yes_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "a", &[]);
    db.add("q", "b", &[]);
    db.take_and_fail("q", "business", Some("x"));
    db.take_and_fail("q", "business", Some("y"));
    db.refuses(
        &["item", "requeue", "--queue", "q", "--status", "exception"],
        1,
        &["this would requeue 2 items; no terminal to confirm at: add --yes to apply"],
    );
    let e = db.json_err(
        &["item", "delete", "--queue", "q", "--status", "exception"],
        1,
    );
    assert_eq!(
        e["message"],
        "this would delete 2 items; no terminal to confirm at: add --yes to apply"
    );
    db.refuses(
        &[
            "item", "hold", "--queue", "q", "--status", "on-hold", "--yes",
        ],
        1,
        &["no items match; nothing changed"],
    );
    assert_eq!(db.ids(&["--status", "exception"]).len(), 2);
}

#[test]
fn a_bulk_requeue_by_filter_and_its_undo() {
    let db = Db::new();
    db.ok(&["queue", "create", "inv"]);
    for v in ["a", "b", "c", "d"] {
        db.add("inv", v, &[]);
    }
    let c1 = db.take_and_fail("inv", "business", Some("Vendor 'Contoso' not found"));
    let c2 = db.take_and_fail("inv", "business", Some("Vendor 'Fabrikam' not found"));
    let it = db.take_and_fail("inv", "it", Some("Vendor service down"));
    let other = db.take_and_fail("inv", "business", Some("Amount too high"));
    let before = db.items(&[]);
    let strip = |items: &Value| -> Value {
        let mut items = items.clone();
        for i in items.as_array_mut().unwrap() {
            i.as_object_mut().unwrap().remove("version");
        }
        items
    };
    let out = db.ok(&[
        "item",
        "requeue",
        "--queue",
        "inv",
        "--status",
        "exception",
        "--reason",
        "business",
        "--search",
        "Vendor",
        "--note",
        "vendors created",
        "--yes",
    ]);
    let n = action_id(&out);
    assert_eq!(
        out,
        format!("requeue: 2 items (action {n}; undo with `workq undo {n}`)\n")
    );
    assert_eq!(db.ids(&["--status", "queued"]), [c1.clone(), c2.clone()]);
    assert_eq!(
        db.ids(&["--status", "exception"]),
        [it.clone(), other.clone()]
    );
    for id in [&c1, &c2] {
        let i = db.item(id);
        assert_eq!(i["reason"], Value::Null);
        assert_eq!(i["requeue_count"], 1);
        assert_eq!(
            i["notes"].as_array().unwrap().last().unwrap()["text"],
            "vendors created"
        );
    }
    assert_eq!(
        db.ok(&["undo", &n]),
        format!("undid action {n} (requeue): restored 2 of 2\n")
    );
    assert_eq!(strip(&db.items(&[])), strip(&before), "exactly as before");
    let h = db.item(&c1)["history"].clone();
    let last = h.as_array().unwrap().last().unwrap();
    assert_eq!(
        (
            last["action"].clone(),
            last["from"].clone(),
            last["to"].clone()
        ),
        (json!("undo"), json!("queued"), json!("exception"))
    );
    assert_eq!(
        db.json(&["groups", "inv"])
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["signature"] == "Vendor * not found")
            .unwrap()["count"],
        2
    );
    db.refuses(
        &["undo", &n],
        1,
        &[&format!("action {n} (requeue) was already undone")],
    );
}

#[test]
fn undo_restores_deleted_items() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &["--key", "KA", "--name", "A"]);
    let b = db.add("q", "b", &["--key", "KB"]);
    let before = db.items(&[]);
    let r = db.json(&[
        "item", "delete", "--queue", "q", "--status", "queued", "--yes",
    ]);
    assert_eq!(r["touched"], 2);
    assert_eq!(db.items(&[]), json!([]));
    assert_eq!(db.queue("q")["counts"]["queued"], 0);
    let u = db.json(&["undo", &r["action_id"].to_string()]);
    assert_eq!(
        u,
        json!({"action_id": r["action_id"], "verb": "delete", "total": 2, "restored": 2,
               "changed": [], "kept": [], "kept_items": [], "dry_run": false})
    );
    let after = db.items(&[]);
    assert_eq!(strs(&after, "id"), [a, b]);
    for k in ["key", "name", "value", "status", "enqueued_at"] {
        assert_eq!(strs(&after, k), strs(&before, k), "{k}");
    }
    assert_eq!(db.queue("q")["counts"]["queued"], 2);
}

/// Delete keeps the history, as help and the dialog say: `item show` of a deleted item
/// shows it as deleted (who, when, which action undoes it) with its history; `--json`
/// marks it; an undo brings it back and the marker goes.
#[test]
fn a_deleted_item_shows_as_deleted_with_its_history() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add(
        "q",
        "{\"InvoiceId\": \"I-1\"}",
        &["--name", "Inv 1", "--key", "I-1"],
    );
    db.ok(&["item", "hold", &a, "--note", "check vendor"]);
    let del = action_id(&db.ok(&["item", "delete", &a, "--note", "duplicate of I-0"]));
    let t = db.ok(&["item", "show", &a]);
    assert_eq!(field(&t, "status"), "deleted (was on-hold)", "{t}");
    let d = field(&t, "deleted");
    assert!(
        d.contains("by user:tester")
            && d.ends_with(&format!(
                "(action {del}; `workq undo {del}` brings it back)"
            )),
        "{t}"
    );
    assert_eq!(field(&t, "key"), "I-1");
    assert!(
        t.contains("\"InvoiceId\": \"I-1\""),
        "the value as it was: {t}"
    );
    let hist = t.split("history:").nth(1).unwrap();
    assert!(
        hist.contains("hold") && hist.contains("check vendor"),
        "{t}"
    );
    assert!(
        hist.contains("on-hold → deleted")
            && hist.contains(&format!("duplicate of I-0 (action {del})")),
        "{t}"
    );
    let j = db.json(&["item", "show", &a]);
    assert_eq!(j["deleted"]["by"], "user:tester", "{j}");
    assert_eq!(j["deleted"]["action_id"].to_string(), del);
    assert!(j["deleted"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(j["status"], "on-hold", "as it was when deleted");
    let last = j["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["to"].as_str()),
        (Some("delete"), None)
    );
    // Not in any listing; unknown ids are still unknown.
    assert_eq!(db.items(&[]), json!([]));
    db.refuses(&["item", "show", "01NOPE"], 1, &["unknown item '01NOPE'"]);
    // Undone, it is back and the marker is gone.
    db.ok(&["undo", &del]);
    let j = db.json(&["item", "show", &a]);
    assert!(j["deleted"].is_null(), "{j}");
    assert_eq!(j["status"], "on-hold");
    assert_eq!(field(&db.ok(&["item", "show", &a]), "status"), "on-hold");
}

#[test]
fn undo_is_refused_when_items_changed_since() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &[]);
    let hold = action_id(&db.ok(&["item", "hold", &a]));
    db.ok(&["item", "release", &a]);
    db.refuses(
        &["undo", &hold],
        1,
        &[
            &format!("cannot undo action {hold} (hold)"),
            &a,
            "changed since",
            "nothing undone",
        ],
    );
    assert_eq!(db.item(&a)["status"], "queued");
}

#[test]
fn undo_of_an_unknown_action_is_refused() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "a", &[]);
    db.refuses(&["undo", "99"], 1, &["unknown action '99'"]);
    assert_eq!(db.json_err(&["undo", "99"], 1)["kind"], "not_found");
    db.refuses(&["undo", "last"], 2, &["'last'"]);
}

/// An undo restoring over 1,000 items is asked like any action that big: without a
/// terminal it needs `--yes`; its counts read with thousands separators.
#[test]
fn a_big_undo_needs_yes_without_a_terminal_and_counts_with_separators() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let rows: String = (0..1200).map(|i| format!("v{i}\n")).collect();
    let csv = db.file("big.csv", format!("value\n{rows}"));
    db.ok(&["import", "q", csv.to_str().unwrap()]);
    let hold = action_id(&db.ok(&[
        "item", "hold", "--queue", "q", "--status", "queued", "--yes",
    ]));
    // Twelve move on: released by hand.
    let moved = db.ids(&["--status", "on-hold"]);
    let mut release = vec!["item", "release"];
    release.extend(moved.iter().take(12).map(String::as_str));
    db.ok(&release);
    let refusal = format!(
        "undo of action {hold} (hold) would restore 1,188 items; no terminal to confirm at: \
         add --yes to apply"
    );
    db.refuses(&["undo", &hold], 1, &[&refusal]);
    let e = db.json_err(&["undo", &hold], 1);
    assert_eq!(e["message"], refusal.as_str(), "{e}");
    assert_eq!(db.queue("q")["counts"]["on_hold"], 1188, "nothing undone");
    // A dry run only reads: it needs no --yes.
    assert_eq!(
        db.ok(&["undo", &hold, "--dry-run"]).lines().next().unwrap(),
        format!(
            "undo of action {hold} (hold): would restore 1,188 of 1,200; \
             12 changed since: 12 queued"
        )
    );
    let out = db.ok(&["undo", &hold, "--yes"]);
    assert_eq!(
        out.lines().next().unwrap(),
        format!("undid action {hold} (hold): restored 1,188 of 1,200; 12 changed since: 12 queued")
    );
    assert_eq!(db.queue("q")["counts"]["queued"], 1200);
    // The action log says it with separators too.
    let log = db.ok(&["actions"]);
    assert!(log.contains("(1,188 of 1,200 restored)"), "{log}");
    assert!(log.contains("1,200"), "{log}");
}

// ------------------------------------------------------------------ import

#[test]
fn import_a_good_csv_file() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file(
        "good.csv",
        "name,value,priority,key,notes\n\
         Inv 1,v1,high,k1,first\n\
         Inv 2,\"a, b\",,k2,\n\
         Inv 3,v3,low,,\n",
    );
    let f = f.to_str().unwrap();
    assert_eq!(db.ok(&["import", "q", f]), "imported 3 items into 'q'\n");
    let items = db.items(&[]);
    assert_eq!(strs(&items, "name"), ["Inv 1", "Inv 2", "Inv 3"]);
    assert_eq!(strs(&items, "value"), ["v1", "a, b", "v3"]);
    assert_eq!(strs(&items, "priority"), ["high", "normal", "low"]);
    assert_eq!(strs(&items, "key"), ["k1", "k2", "null"]);
    assert_eq!(items[0]["notes"][0]["text"], "first");
    assert_eq!(strs(&items, "status"), ["queued"; 3]);
    // Without a value column, each row becomes a JSON object: names, order, text as written.
    db.ok(&["queue", "create", "obj"]);
    let g = db.file("rows.csv", "Invoice,Amount\n00123,1253.70\n");
    let r = db.json(&["import", "obj", g.to_str().unwrap()]);
    assert_eq!(r, json!({"imported": 1, "rejected": []}));
    assert_eq!(
        db.items(&["obj"])[0]["value"],
        r#"{"Invoice":"00123","Amount":"1253.70"}"#
    );
}

const BAD_CSV: &str = "name,value,priority,key\n\
                       A,va,high,k1\n\
                       B,vb,urgent,k2\n\
                       C,vc\n\
                       D,vd,low,k1\n";

#[test]
fn import_is_all_or_nothing_and_says_where() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file("bad.csv", BAD_CSV);
    let f = f.to_str().unwrap();
    let err = db.refuses(
        &["import", "q", f],
        1,
        &[
            "import refused, nothing imported: 3 bad rows",
            "line 3, column 'priority': unknown priority 'urgent'",
            "line 4: has 2 fields, the header has 4",
            "line 5, column 'key': 'k1' repeats line 2",
        ],
    );
    assert!(
        !err.contains("  line 2"),
        "the good row is not blamed: {err}"
    );
    assert_eq!(db.json_err(&["import", "q", f], 1)["kind"], "invalid");
    // A key already in the queue counts too.
    db.add("q", "existing", &["--key", "k9"]);
    let g = db.file("dup.csv", "value,key\nx,k8\ny,k9\n");
    db.refuses(
        &["import", "q", g.to_str().unwrap()],
        1,
        &["1 bad row", "line 3, column 'key': duplicate key 'k9'"],
    );
}

#[test]
fn import_skip_bad_writes_the_rejects() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file("bad.csv", BAD_CSV);
    let rejects = db.dir.path().join("rejects.csv");
    let a = db
        .cmd(&[
            "import",
            "q",
            f.to_str().unwrap(),
            "--skip-bad",
            "--rejects",
            rejects.to_str().unwrap(),
        ])
        .success();
    assert_eq!(stdout(&a), "imported 1 item into 'q'\n");
    let err = stderr(&a);
    for n in [
        "skipped 3 bad rows:",
        "  line 3, column 'priority'",
        "  line 4: has 2 fields",
        "  line 5, column 'key'",
        &format!("wrote 3 bad rows to {}", rejects.display()),
    ] {
        assert!(err.contains(n), "no {n:?} in:\n{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "name,value,priority,key\nB,vb,urgent,k2\nC,vc\nD,vd,low,k1\n",
        "the bad rows, with the header, as they were"
    );
    assert_eq!(strs(&db.items(&[]), "name"), ["A"]);
    // Fixed, the reject file imports.
    let fixed = db.file(
        "fixed.csv",
        "name,value,priority,key\nB,vb,high,k2\nC,vc,,\nD,vd,low,k4\n",
    );
    db.ok(&["import", "q", fixed.to_str().unwrap()]);
    assert_eq!(strs(&db.items(&[]), "name"), ["A", "B", "C", "D"]);
    // --json: the report, rows with line and column.
    db.ok(&["queue", "create", "j"]);
    let r = db.json(&["import", "j", f.to_str().unwrap(), "--skip-bad"]);
    assert_eq!(r["imported"], 1);
    assert_eq!(
        r["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].clone(), e["column"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!(3), json!("priority")),
            (json!(4), Value::Null),
            (json!(5), json!("key"))
        ]
    );
}

/// A German Excel export (';', decimal commas, CRLF, BOM) through the real binary: refused
/// with the flag to add, then imported with it; a key column with an empty cell is a bad
/// row, its reject written as the file has it.
#[test]
fn import_a_semicolon_export_with_a_key_column() {
    let db = Db::new();
    db.ok(&["queue", "create", "inv"]);
    let f = db.file(
        "rechnungen.csv",
        "\u{feff}InvoiceId;Betrag;Status\r\nI-1;4999,00;Bezahlt\r\n;12,50;Offen\r\nI-3;7;Offen",
    );
    let file = f.to_str().unwrap();
    db.refuses(
        &["import", "inv", file],
        1,
        &["the file looks ';'-separated: add --delimiter ';'"],
    );
    db.refuses(
        &[
            "import",
            "inv",
            file,
            "--delimiter",
            ";",
            "--key-column",
            "InvoiceId",
        ],
        1,
        &["line 3, column 'InvoiceId': empty, and --key-column needs a key for every row"],
    );
    assert_eq!(db.queue("inv")["counts"]["queued"], 0);
    let rejects = db.dir.path().join("rej.csv");
    db.ok(&[
        "import",
        "inv",
        file,
        "--delimiter",
        ";",
        "--key-column",
        "InvoiceId",
        "--skip-bad",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&rejects).unwrap(),
        b"\xef\xbb\xbfInvoiceId;Betrag;Status\r\n;12,50;Offen\r\n"
    );
    let items = db.items(&[]);
    assert_eq!(strs(&items, "key"), ["I-1", "I-3"]);
    assert_eq!(
        items[0]["value"],
        r#"{"InvoiceId":"I-1","Betrag":"4999,00","Status":"Bezahlt"}"#
    );
    // What cannot be a separator, and JSON Lines, are refused by name.
    db.refuses(
        &["import", "inv", file, "--delimiter", "semicolon"],
        1,
        &["--delimiter: 'semicolon' is not a field separator"],
    );
    let j = db.file("x.jsonl", "{\"a\": 1}\n");
    db.refuses(
        &["import", "inv", j.to_str().unwrap(), "--delimiter", ";"],
        1,
        &["--delimiter is for CSV files"],
    );
    assert_eq!(db.queue("inv")["counts"]["queued"], 2);
}

#[test]
fn import_rejects_without_skip_bad_is_a_usage_error() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file("bad.csv", BAD_CSV);
    let rejects = db.dir.path().join("rejects.csv");
    db.refuses(
        &[
            "import",
            "q",
            f.to_str().unwrap(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
        2,
        &["--skip-bad"],
    );
    assert!(!rejects.exists());
}

#[test]
fn a_reject_file_that_cannot_be_written_stops_the_import_first() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file("bad.csv", BAD_CSV);
    let f = f.to_str().unwrap();
    let missing = db.dir.path().join("no/such/dir/rejects.csv");
    db.refuses(
        &[
            "import",
            "q",
            f,
            "--skip-bad",
            "--rejects",
            missing.to_str().unwrap(),
        ],
        1,
        &["cannot write", "rejects.csv"],
    );
    let dir = db.dir.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    db.refuses(
        &[
            "import",
            "q",
            f,
            "--skip-bad",
            "--rejects",
            dir.to_str().unwrap(),
        ],
        1,
        &["--rejects", "cannot write"],
    );
    // The input itself, even named another way: it would be emptied before it is read.
    let other_name = db.dir.path().join("adir/../bad.csv");
    db.refuses(
        &[
            "import",
            "q",
            f,
            "--skip-bad",
            "--rejects",
            other_name.to_str().unwrap(),
        ],
        1,
        &["--rejects", "is the file being imported"],
    );
    assert_eq!(
        std::fs::read_to_string(f).unwrap(),
        BAD_CSV,
        "the input is intact"
    );
    assert!(!missing.exists());
}

#[test]
fn import_jsonl_and_file_problems() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let j = db.file(
        "a.jsonl",
        "{\"value\":\"j1\",\"name\":\"J1\"}\n{\"value\":{\"n\":2},\"priority\":\"high\"}\nnot json\n",
    );
    let j = j.to_str().unwrap();
    db.refuses(&["import", "q", j], 1, &["1 bad row", "line 3", "bad JSON"]);
    let rej = db.dir.path().join("r.jsonl");
    db.ok(&[
        "import",
        "q",
        j,
        "--skip-bad",
        "--rejects",
        rej.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&rej).unwrap(), "not json\n");
    let items = db.items(&[]);
    assert_eq!(strs(&items, "value"), ["j1", r#"{"n":2}"#]);
    assert_eq!(strs(&items, "priority"), ["normal", "high"]);
    // --format wins over the file name.
    let t = db.file("rows.txt", "{\"value\":\"t1\"}\n");
    db.ok(&["import", "q", t.to_str().unwrap(), "--format", "jsonl"]);
    assert_eq!(db.items(&[]).as_array().unwrap().len(), 3);
    let t = t.to_str().unwrap();
    db.refuses(
        &["import", "q", t, "--format", "xml"],
        1,
        &["--format", "'xml'", "csv or jsonl"],
    );
    let missing = db.dir.path().join("missing.csv");
    db.refuses(
        &["import", "q", missing.to_str().unwrap()],
        1,
        &["cannot read", "missing.csv"],
    );
    db.refuses(
        &["import", "nope", t, "--format", "jsonl"],
        1,
        &["unknown queue 'nope'"],
    );
    let dup = db.file("dup.csv", "name,value,name\n1,2,3\n");
    db.refuses(
        &["import", "q", dup.to_str().unwrap()],
        1,
        &["dup.csv", "line 1, column 'name': the column appears twice"],
    );
    let unk = db.file("unk.csv", "value,colour\nx,red\n");
    db.refuses(
        &["import", "q", unk.to_str().unwrap()],
        1,
        &["line 1, column 'colour': unknown column"],
    );
    let empty = db.file("empty.csv", "");
    db.refuses(
        &["import", "q", empty.to_str().unwrap()],
        1,
        &["the CSV file has no header row"],
    );
}

/// A Power Automate / Excel "CSV UTF-8" invoice export: byte-order mark, CRLF, a quoted
/// comma, a quoted line break and quotes, mixed-case headers, a `Status` of its own.
const EXPORT: &str = "\u{feff}InvoiceId,InvoiceDate,AccountName,ContactEmail,Amount,Status\r\n\
    00123,2026-11-02,\"Fabrikam, Inc.\",ap@fabrikam.example,4999.00,Paid\r\n\
    I-1007,03/11/2026,Contoso,billing@contoso.example,1253.70,Overdue\r\n\
    I-1008,2026-11-04,\"Northwind \"\"East\"\"\r\nTraders\",ar@northwind.example,-0.50,Open\r\n";

#[test]
fn an_invoice_export_reaches_the_bot_as_written() {
    let db = Db::new();
    db.ok(&["queue", "create", "invoices"]);
    let f = db.file("Invoices_2026-11-04.csv", EXPORT);
    let f = f.to_str().unwrap();
    assert_eq!(
        db.ok(&["import", "invoices", f, "--key-column", "InvoiceId"]),
        "imported 3 items into 'invoices'\n"
    );
    // The bot takes the first invoice and reads its fields back byte for byte.
    let lease = db.json(&["dequeue", "invoices"]);
    let item = &lease["item"];
    assert_eq!(item["key"], "00123");
    assert_eq!(
        item["status"], "processing",
        "the export's Status is data, not ours"
    );
    let text = item["value"].as_str().unwrap();
    assert_eq!(
        text,
        r#"{"InvoiceId":"00123","InvoiceDate":"2026-11-02","AccountName":"Fabrikam, Inc.","ContactEmail":"ap@fabrikam.example","Amount":"4999.00","Status":"Paid"}"#
    );
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["InvoiceId"].as_str(), Some("00123"));
    assert_eq!(v["Amount"].as_str(), Some("4999.00"));
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "InvoiceId",
            "InvoiceDate",
            "AccountName",
            "ContactEmail",
            "Amount",
            "Status"
        ]
    );
    // The quoted line break and quotes of the third row, as Excel wrote them.
    let third = db.items(&["invoices", "--search", "Northwind"]);
    let v: Value = serde_json::from_str(third[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(v["AccountName"], "Northwind \"East\"\r\nTraders");
    assert_eq!(v["Amount"], "-0.50");
    // `item show` prints the value re-indented, every token as stored.
    let id = item["id"].as_str().unwrap();
    let show = db.ok(&["item", "show", id]);
    assert!(
        show.contains("{\n  \"InvoiceId\": \"00123\",\n  \"InvoiceDate\": \"2026-11-02\",\n  \"AccountName\": \"Fabrikam, Inc.\",\n  \"ContactEmail\": \"ap@fabrikam.example\",\n  \"Amount\": \"4999.00\",\n  \"Status\": \"Paid\"\n}\n"),
        "{show}"
    );
    // Tomorrow's import of the same file reports duplicates instead of doubling.
    db.refuses(
        &["import", "invoices", f, "--key-column", "InvoiceId"],
        1,
        &[
            "nothing imported: 3 bad rows",
            "line 2, column 'InvoiceId': duplicate key '00123': queue 'invoices' already has an item with this key",
            "line 4, column 'InvoiceId': duplicate key 'I-1008'",
        ],
    );
    assert_eq!(
        db.ok(&[
            "import",
            "invoices",
            f,
            "--key-column",
            "InvoiceId",
            "--skip-bad"
        ]),
        "imported 0 items into 'invoices'\n"
    );
    assert_eq!(db.items(&["invoices"]).as_array().unwrap().len(), 3);
}

/// The lines of an import error that name rows.
fn row_lines(err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.starts_with("  line "))
        .map(String::from)
        .collect()
}

#[test]
fn import_dry_run_shows_the_mapping_and_every_error_and_writes_nothing() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.add("q", "old", &["--key", "I-3"]);
    let bad = db.file(
        "bad.csv",
        "\u{feff}InvoiceId,Amount,priority\r\nI-1,4999.00,high\r\nI-2,1.00,asap\r\nI-3,3.00,\r\nI-1,5.00,low\r\nI-5,\"5\r\n.00\",\r\n",
    );
    let bad = bad.to_str().unwrap();
    // Rows of every table, and the next item number: a rolled-back write leaves none.
    let tables = || -> Vec<i64> {
        let c = rusqlite::Connection::open(&db.path).unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM history),
                    (SELECT count(*) FROM actions), (SELECT seq FROM sqlite_sequence WHERE name = 'items')",
            [],
            |r| Ok(vec![r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
        )
        .unwrap()
    };
    let rows = tables();
    let before = db.state();
    let args = ["import", "q", bad, "--key-column", "InvoiceId"];
    let dry = db.cmd(&[&args[..], &["--dry-run"]].concat()).code(1);
    let (out, err) = (stdout(&dry), stderr(&dry));
    assert_eq!(db.state(), before, "a dry run changed something");
    assert_eq!(tables(), rows, "a dry run left rows behind");
    for want in [
        "dry run of ",
        "nothing was written",
        "item fields      priority",
        "into the value   InvoiceId, Amount",
        "key              from 'InvoiceId' (it stays in the value)",
        "line 2: key I-1, name -, priority high, queued",
        r#"    value {"InvoiceId":"I-1","Amount":"4999.00"}"#,
        r#"    value {"InvoiceId":"I-5","Amount":"5\r\n.00"}"#,
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    assert!(
        err.starts_with("error: dry run: import refused, nothing would be imported: 3 bad rows"),
        "{err}"
    );
    // Every error, as the real import gives it.
    let real = db.fails(&args, 1);
    assert_eq!(row_lines(&err), row_lines(&real));
    assert_eq!(
        row_lines(&real),
        [
            "  line 3, column 'priority': unknown priority 'asap' (expected one of: high, normal, low)",
            "  line 4, column 'InvoiceId': duplicate key 'I-3': queue 'q' already has an item with this key",
            "  line 5, column 'InvoiceId': 'I-1' repeats line 2",
        ]
    );
    // With --skip-bad: what would land, what would be skipped; still nothing written.
    let dry = db
        .cmd(&[&args[..], &["--dry-run", "--skip-bad"]].concat())
        .success();
    assert!(
        stdout(&dry).contains("would import 2 items into 'q'"),
        "{}",
        stdout(&dry)
    );
    assert!(
        stderr(&dry).starts_with("would skip: 3 bad rows\n  line 3,"),
        "{}",
        stderr(&dry)
    );
    let j = db.json(&[&args[..], &["--dry-run", "--skip-bad"]].concat());
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["refused"], false);
    assert_eq!(j["imported"], 2);
    assert_eq!(
        j["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_string()
            ))
            .collect::<Vec<_>>(),
        [
            (3, "priority".into()),
            (4, "InvoiceId".into()),
            (5, "InvoiceId".into())
        ]
    );
    assert_eq!(j["columns"]["value"], json!(["InvoiceId", "Amount"]));
    assert_eq!(j["columns"]["reserved"], json!(["priority"]));
    assert_eq!(j["columns"]["key_column"], "InvoiceId");
    assert_eq!(j["sample"][0]["line"], 2);
    assert_eq!(j["sample"][0]["key"], "I-1");
    assert_eq!(j["sample"][0]["priority"], "high");
    assert_eq!(
        j["sample"][0]["value"],
        r#"{"InvoiceId":"I-1","Amount":"4999.00"}"#
    );
    assert_eq!(db.state(), before);
    assert_eq!(tables(), rows);
    // A clean file: exit 0; a cell with an escape sequence is shown escaped.
    let good = db.file(
        "good.csv",
        "value,name\n\u{1b}]0;pwned\u{7}\u{1b}[2J,N\u{1b}[31m\n",
    );
    let out = db.ok(&["import", "q", good.to_str().unwrap(), "--dry-run"]);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains(r"name N\x1b[31m,"), "{out}");
    assert!(out.contains(r"value \x1b]0;pwned\x07\x1b[2J"), "{out}");
    assert!(out.contains("would import 1 item into 'q'"), "{out}");
    assert_eq!((db.state(), tables()), (before, rows));
    // Nothing to write, so no reject file either.
    db.refuses(
        &[
            "import",
            "q",
            bad,
            "--dry-run",
            "--skip-bad",
            "--rejects",
            "r.csv",
        ],
        2,
        &["--dry-run", "--rejects"],
    );
}

#[test]
fn import_key_and_name_columns_and_jsonl_settings_are_checked() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let f = db.file("e.csv", EXPORT);
    let f = f.to_str().unwrap();
    db.refuses(
        &["import", "q", f, "--key-column", "invoiceid"],
        1,
        &[
            "e.csv: --key-column 'invoiceid': the header has no such column; did you mean 'InvoiceId'?",
            "(columns: InvoiceId, InvoiceDate, AccountName, ContactEmail, Amount, Status)",
        ],
    );
    db.refuses(
        &["import", "q", f, "--name-column", "Customer"],
        1,
        &["--name-column 'Customer': the header has no such column"],
    );
    db.refuses(
        &["import", "q", f, "--key-column", "", "--dry-run"],
        1,
        &["--key-column: give the name of a column"],
    );
    db.ok(&["import", "q", f, "--name-column", "AccountName"]);
    assert_eq!(
        strs(&db.items(&[]), "name"),
        ["Fabrikam, Inc.", "Contoso", "Northwind \"East\"\r\nTraders"]
    );
    let j = db.file(
        "s.jsonl",
        "{\"value\":\"x\",\"priorty\":\"high\"}\r\n{\"value\":\"y\",\"status\":\"Paid\"}\r\n",
    );
    db.refuses(
        &["import", "q", j.to_str().unwrap()],
        1,
        &[
            "2 bad rows",
            "line 1, column 'priorty': unknown field",
            "line 2, column 'status': unknown status 'Paid' (import accepts queued or on-hold)",
        ],
    );
}

// ------------------------------------------------------------------ issue 6: safe actions

impl Db {
    /// The database's files, byte for byte (the file, its WAL and shared memory).
    fn bytes(&self) -> Vec<Option<Vec<u8>>> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|ext| {
                let mut p = self.path.clone().into_os_string();
                p.push(ext);
                std::fs::read(PathBuf::from(p)).ok()
            })
            .collect()
    }
}

#[test]
fn read_only_refuses_every_command_that_changes_data() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let a = db.add("q", "a", &[]);
    let b = db.add("q", "b", &[]);
    let (_, lease) = db.take("q");
    let hold = action_id(&db.ok(&["item", "hold", &b]));
    let csv = db.file("in.csv", "value\nx\n");
    let csv = csv.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["queue", "create", "r"], "queue create"),
        (vec!["queue", "update", "q", "--sla", "1h"], "queue update"),
        (vec!["queue", "pause", "q"], "queue pause"),
        (vec!["queue", "resume", "q"], "queue resume"),
        (vec!["queue", "delete", "q", "--force"], "queue delete"),
        (vec!["item", "add", "q", "--value", "x"], "item add"),
        (vec!["item", "requeue", &b], "item requeue"),
        (vec!["item", "hold", &a], "item hold"),
        (vec!["item", "release", &b], "item release"),
        (vec!["item", "processed", &b], "item processed"),
        (vec!["item", "delete", &b], "item delete"),
        (
            vec!["item", "priority", &b, "--to", "high"],
            "item priority",
        ),
        (vec!["item", "extend", &b, "--never"], "item extend"),
        (vec!["item", "note", &b, "--note", "x"], "item note"),
        (
            vec![
                "item", "release", "--queue", "q", "--status", "on-hold", "--yes",
            ],
            "item release",
        ),
        (vec!["import", "q", csv], "import"),
        (vec!["dequeue", "q"], "dequeue"),
        (vec!["complete", &a, "--lease", &lease], "complete"),
        (
            vec!["fail", &a, "--lease", &lease, "--reason", "it"],
            "fail",
        ),
        (vec!["heartbeat", &a, "--lease", &lease], "heartbeat"),
        (vec!["undo", &hold], "undo"),
    ];
    for (args, name) in &cases {
        let mut all = vec!["--read-only"];
        all.extend_from_slice(args);
        let want = format!("--read-only: `workq {name}` changes data; nothing was done");
        let err = db.refuses(&all, 1, &[&want]);
        assert_eq!(err.lines().count(), 1, "{err}");
        // Refused before the database is even opened: not a byte differs.
        let before = db.bytes();
        db.fails(&all, 1);
        assert!(db.bytes() == before, "workq {all:?} touched the file");
    }
    let mut all = vec!["--json", "--read-only"];
    all.extend_from_slice(&cases[0].0);
    let a_err = db.cmd(&all).code(1);
    let e: Value = serde_json::from_str(&stderr(&a_err)).unwrap();
    assert_eq!(e["error"]["kind"], "read_only");
    // What only reads still works.
    for args in [
        vec!["queue", "ls"],
        vec!["queue", "inspect", "q"],
        vec!["item", "ls"],
        vec!["item", "show", &a],
        vec!["groups"],
        vec!["actions"],
        vec!["undo", &hold, "--dry-run"],
        // A dry run checks the file against the queue and writes nothing.
        vec!["import", "q", csv, "--dry-run"],
    ] {
        let mut all = vec!["--read-only"];
        all.extend_from_slice(&args);
        db.ok(&all);
    }
    assert_eq!(db.item(&a)["status"], "processing");
    assert_eq!(db.item(&b)["status"], "on-hold");
    assert_eq!(db.ids(&["q"]).len(), 2, "the dry run imported nothing");
}

#[test]
fn actions_lists_who_did_what_and_undo_names_what_it_kept() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "other"]);
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|v| db.add("q", v, &[]))
        .collect();
    let hold = action_id(&db.ok(&[
        "item", "hold", "--queue", "q", "--status", "queued", "--note", "review", "--yes",
    ]));
    let released = action_id(&db.ok(&["item", "release", &ids[0]]));
    // A strict undo refuses, naming the item that moved on, and changes nothing.
    db.refuses(
        &["undo", &hold, "--strict"],
        1,
        &[
            "all or nothing",
            &ids[0],
            "1 changed since: 1 queued",
            "nothing undone",
        ],
    );
    // A dry run says what the undo would do.
    assert_eq!(
        db.ok(&["undo", &hold, "--dry-run"]),
        format!(
            "undo of action {hold} (hold): would restore 2 of 3; 1 changed since: 1 queued\n  kept {}: queued since\n",
            ids[0]
        )
    );
    assert_eq!(
        db.item(&ids[1])["status"],
        "on-hold",
        "a dry run changes nothing"
    );
    let out = db.ok(&["undo", &hold]);
    assert_eq!(
        out,
        format!(
            "undid action {hold} (hold): restored 2 of 3; 1 changed since: 1 queued\n  kept {}: queued since\n",
            ids[0]
        )
    );
    for id in &ids {
        assert_eq!(db.item(id)["status"], "queued");
    }
    // The log: newest first, who, what, how many, where, the note, and the undo.
    let out = db.ok(&["actions"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("ID "), "{out}");
    let row_hold = row(&out, &hold);
    assert!(row_hold.contains(&"user:tester".to_string()), "{out}");
    assert!(row_hold.contains(&"hold".to_string()), "{out}");
    assert!(row_hold.contains(&"review".to_string()), "{out}");
    let hold_line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(&format!("{hold} ")))
        .unwrap();
    assert!(
        hold_line.contains("by user:tester (2 of 3 restored)"),
        "{out}"
    );
    let list = db.json(&["actions"]);
    let first = &list[0];
    assert_eq!(first["id"].to_string(), released);
    assert_eq!(
        (
            first["verb"].clone(),
            first["touched"].clone(),
            first["queues"].clone(),
            first["undone_at"].clone()
        ),
        (json!("release"), json!(1), json!(["q"]), Value::Null)
    );
    let h = &list[1];
    assert_eq!(h["kind"], json!({"kind": "hold"}));
    assert_eq!(h["note"], "review");
    assert_eq!(h["undone_by"], "user:tester");
    assert_eq!(h["restored"], 2);
    assert!(h["undone_at"].is_string());
    assert_eq!(
        db.json(&["actions", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(db.json(&["actions", "--queue", "other"]), json!([]));
    assert_eq!(db.ok(&["actions", "--queue", "other"]), "no actions yet\n");
    db.refuses(
        &["actions", "--queue", "nope"],
        1,
        &["unknown queue 'nope'"],
    );
    db.refuses(
        &["actions", "--limit", "0"],
        1,
        &["limit must be at least 1"],
    );
    db.refuses(&["actions", "--limit", "x"], 2, &["'x'"]);
    db.refuses(
        &["undo", &hold],
        1,
        &[&format!("action {hold} (hold) was already undone")],
    );
}

#[test]
fn groups_signatures_and_several_statuses_select_items() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    let long = format!(
        "Vendor 'Contoso' not found {}",
        "in the master data ".repeat(4)
    );
    let added: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|v| db.add("q", v, &[]))
        .collect();
    let held = db.add("q", "h", &["--hold"]);
    // A person's note before a failure that has none is not the failure's group.
    db.ok(&["item", "note", &added[2], "--note", "checked by Ana"]);
    let contoso = db.take_and_fail("q", "business", Some("Vendor 'Contoso' not found"));
    let fabrikam = db.take_and_fail("q", "business", Some("Vendor 'Fabrikam' not found"));
    let silent = db.take_and_fail("q", "business", None);
    assert_eq!(silent, added[2]);
    let wordy = db.take_and_fail("q", "business", Some(&long));
    // A person's note on the group's newest exception is not its example.
    db.ok(&[
        "item",
        "note",
        &fabrikam,
        "--note",
        "called Fabrikam, waiting",
    ]);
    let out = db.ok(&["groups"]);
    assert!(!out.contains("checked by Ana"), "{out}");
    let masked_long = format!("Vendor * not found {}", "in the master data ".repeat(4));
    let masked_long = masked_long.trim_end();
    assert!(out.contains(masked_long), "the whole signature: {out}");
    assert!(out.contains("(no note)"), "{out}");
    let groups = db.json(&["groups"]);
    let vendor = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["signature"] == "Vendor * not found")
        .unwrap();
    assert_eq!(vendor["count"], 2);
    assert_eq!(vendor["example"], "Vendor 'Fabrikam' not found", "{vendor}");
    // --signature takes the signature as printed.
    assert_eq!(
        db.ids(&["--signature", "Vendor * not found"]),
        [contoso.clone(), fabrikam.clone()]
    );
    assert_eq!(db.ids(&["--signature", "(no note)"]), [silent.as_str()]);
    assert_eq!(db.ids(&["--signature", masked_long]), [wordy.as_str()]);
    assert_eq!(db.ids(&["--signature", "Vendor"]), Vec::<String>::new());
    // Several statuses, and bad ones named.
    let mut both = db.ids(&["--status", "exception,on-hold"]);
    both.sort();
    let mut want = vec![
        held.clone(),
        contoso.clone(),
        fabrikam.clone(),
        silent,
        wordy,
    ];
    want.sort();
    assert_eq!(both, want);
    db.refuses(
        &["item", "ls", "--status", "exception,bogus"],
        1,
        &["--status", "'bogus'"],
    );
    db.refuses(
        &["item", "ls", "--status", "exception,"],
        1,
        &["--status", "empty status"],
    );
    // A bulk action by signature: the group as a whole.
    let out = db.ok(&[
        "item",
        "requeue",
        "--queue",
        "q",
        "--signature",
        "Vendor * not found",
        "--yes",
    ]);
    assert!(out.starts_with("requeue: 2 items"), "{out}");
    assert_eq!(db.item(&contoso)["status"], "queued");
    assert_eq!(db.item(&fabrikam)["status"], "queued");
    db.refuses(
        &["item", "hold", "--signature", "x", "--yes"],
        1,
        &["needs --queue and --status or --signature"],
    );
}

#[test]
fn a_bulk_action_says_what_it_skips_and_strict_refuses() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    for v in ["a", "b", "c", "d", "e"] {
        db.add("q", v, &[]);
    }
    let x = db.take_and_fail("q", "business", Some("x"));
    let y = db.take_and_fail("q", "business", Some("y"));
    let both = [
        "item",
        "requeue",
        "--queue",
        "q",
        "--status",
        "exception,queued",
    ];
    let skip = "cannot go from queued to queued (it is in the queue already; an expired one needs a new expiry: extend it)";
    // No terminal, no --yes: refused, saying what it would do.
    db.refuses(
        &both,
        1,
        &["this would requeue 2 items, skipping 3 the rules refuse; no terminal to confirm at: add --yes to apply"],
    );
    // All or nothing: refused before anything changes.
    let mut strict = both.to_vec();
    strict.extend(["--strict", "--yes"]);
    let err = db.refuses(
        &strict,
        1,
        &["3 of 5 items cannot be requeued; nothing changed"],
    );
    assert!(err.contains(&format!("3 × {skip}")), "{err}");
    let mut yes = both.to_vec();
    yes.push("--yes");
    let out = db.ok(&yes);
    let n = action_id(&out);
    assert_eq!(
        out,
        format!(
            "requeue: 2 items (action {n}; undo with `workq undo {n}`)\nskipped 3 the rules refuse:\n  3 × {skip}\n"
        )
    );
    assert_eq!(db.item(&x)["status"], "queued");
    assert_eq!(db.item(&y)["status"], "queued");
    // Nothing left that a requeue can change: refused, not an empty action.
    let e = db.json_err(&yes, 1);
    assert_eq!(e["kind"], "transition");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("5 of 5 items cannot be requeued; nothing changed"),
        "{e}"
    );
}

/// At a terminal, a bulk action asks: y/N, and past 1,000 items the count itself. Runs the
/// binary in a detached tmux, which gives it a real terminal to ask at.
#[test]
fn at_a_terminal_a_big_bulk_action_asks_for_its_count() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: tmux is not installed; the terminal confirmation test needs it");
        return;
    }
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "small"]);
    let rows: String = (0..1001).map(|i| format!("v{i}\n")).collect();
    let csv = db.file("big.csv", format!("value\n{rows}"));
    db.ok(&["import", "q", csv.to_str().unwrap()]);
    db.add("small", "a", &[]);
    db.add("small", "b", &[]);
    let socket = format!(
        "workq-cli-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    struct Kill<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            (self.0)(&["kill-server"]);
        }
    }
    let _kill = Kill(&tmux);
    // One idle session keeps the server up between runs: a server that quits as its last
    // session ends may still be going when the next run starts.
    tmux(&["new-session", "-d", "-s", "keep", "sleep 600"]);
    let session = std::cell::Cell::new(0);
    let wait = |what: &str| -> String {
        let name = format!("t{}", session.get());
        let start = Instant::now();
        loop {
            let out = tmux(&["capture-pane", "-p", "-t", &name]);
            let screen = String::from_utf8_lossy(&out.stdout).into_owned();
            if screen.contains(what) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "waited 30s for {what:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let run = |args: &str, answer: &str, done: &str| -> String {
        let cmd = format!(
            "env USER=tester TZ=UTC {} --db {} {args}; echo EXITED $?; sleep 60",
            env!("CARGO_BIN_EXE_workq"),
            db.path.display()
        );
        session.set(session.get() + 1);
        let name = format!("t{}", session.get());
        let out = tmux(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "40",
            "-s",
            &name,
            &cmd,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait(if answer.is_empty() { done } else { "apply" });
        if !answer.is_empty() {
            tmux(&["send-keys", "-t", &name, "-l", answer]);
            tmux(&["send-keys", "-t", &name, "Enter"]);
        }
        wait(done)
    };
    let hold = "item hold --queue q --status queued";
    // The count is asked for; a wrong one changes nothing.
    let s = run(hold, "1000", "EXITED 1");
    assert!(
        s.contains("this will hold 1,001 of 1,001 matching items, such as:"),
        "{s}"
    );
    assert!(
        s.contains("that is over 1,000: type the count (1,001) to apply:"),
        "{s}"
    );
    assert!(
        s.contains("'1000' is not the count; cancelled, nothing changed"),
        "{s}"
    );
    assert_eq!(db.queue("q")["counts"]["on_hold"], 0);
    // "y" is not the count either.
    let s = run(hold, "y", "EXITED 1");
    assert!(s.contains("'y' is not the count"), "{s}");
    assert_eq!(db.queue("q")["counts"]["on_hold"], 0);
    // The count, as printed or plain, applies it.
    let s = run(hold, "1,001", "EXITED 0");
    assert!(s.contains("hold: 1,001 items (action"), "{s}");
    assert_eq!(db.queue("q")["counts"]["on_hold"], 1001);
    // --yes asks nothing, for scripts.
    let s = run(
        "item release --queue q --status on-hold --yes",
        "",
        "EXITED 0",
    );
    assert!(s.contains("release: 1,001 items"), "{s}");
    // A small one asks y/N.
    let s = run("item hold --queue small --status queued", "n", "EXITED 1");
    assert!(s.contains("apply? [y/N]"), "{s}");
    assert!(s.contains("cancelled; nothing changed"), "{s}");
    let s = run("item hold --queue small --status queued", "y", "EXITED 0");
    assert!(s.contains("hold: 2 items"), "{s}");
    // Named items past 1,000 are asked for too.
    let ids = strs(&db.json(&["item", "ls", "q", "--limit", "2000"]), "id");
    assert_eq!(ids.len(), 1001);
    let list = db.file("ids.txt", ids.join(" "));
    let s = run(
        &format!("item hold $(cat {})", list.display()),
        "1001",
        "EXITED 0",
    );
    assert!(s.contains("hold: 1,001 items"), "{s}");
    // Its undo restores as many: asked the same way, through the same prompt.
    let undo = format!("undo {}", action_id(&s));
    let s = run(&undo, "1000", "EXITED 1");
    assert!(
        s.contains(": would restore 1,001 of 1,001"),
        "says what it restores first: {s}"
    );
    assert!(
        s.contains("that is over 1,000: type the count (1,001) to apply:"),
        "{s}"
    );
    assert!(s.contains("'1000' is not the count"), "{s}");
    assert_eq!(db.queue("q")["counts"]["on_hold"], 1001);
    let s = run(&undo, "1001", "EXITED 0");
    assert!(s.contains(": restored 1,001 of 1,001"), "{s}");
    assert_eq!(db.queue("q")["counts"]["on_hold"], 0);
}

/// Another process holds the write lock: pause and resume say so and change nothing.
#[test]
fn pause_and_resume_on_a_locked_database_report_the_failure() {
    let db = Db::new();
    db.ok(&["queue", "create", "q"]);
    db.ok(&["queue", "create", "p"]);
    db.ok(&["queue", "pause", "p"]);
    let locker = rusqlite::Connection::open(&db.path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = db.fails(&["queue", "pause", "q"], 1);
    assert!(err.contains("is locked by another process"), "{err}");
    let a = db.cmd(&["--json", "queue", "resume", "p"]).code(1);
    let e: Value = serde_json::from_str(&stderr(&a)).unwrap();
    assert_eq!(e["error"]["kind"], "busy", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is locked by another process"),
        "{e}"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(db.queue("q")["state"], "active");
    assert_eq!(db.queue("p")["state"], "paused");
    db.ok(&["queue", "pause", "q"]);
    assert_eq!(db.queue("q")["state"], "paused");
}

#[test]
fn finish_applies_json_lines_of_outcomes_in_one_call() {
    let db = Db::new();
    db.ok(&["queue", "create", "f", "--max-retries", "0"]);
    let ids: Vec<String> = (0..3).map(|i| db.add("f", &format!("v{i}"), &[])).collect();
    let l: Vec<(String, String)> = (0..3).map(|_| db.take("f")).collect();
    let input = format!(
        "{}\n\n{}\n{}\n",
        json!({"id": l[0].0, "lease": l[0].1, "outcome": "processed", "note": "paid\u{1b}[31m"}),
        json!({"id": l[1].0, "lease": l[1].1, "outcome": "exception", "reason": "business", "note": "bad"}),
        json!({"id": l[2].0, "lease": "forged", "outcome": "processed"}),
    );
    // The forged one is refused, the others applied; one line each in input order.
    let a = db.cmd_stdin(&["finish"], input.clone()).code(1);
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("{}: processed", ids[0]));
    assert_eq!(lines[1], format!("{}: exception (business)", ids[1]));
    assert!(
        lines[2].starts_with(&format!("{}: error: ", ids[2])),
        "{out}"
    );
    assert!(
        stderr(&a).contains("1 outcome of 3 refused"),
        "{}",
        stderr(&a)
    );
    assert_eq!(db.item(&ids[0])["notes"][0]["text"], "paid\u{1b}[31m");
    assert_eq!(db.item(&ids[1])["status"], "exception");
    assert_eq!(db.item(&ids[2])["status"], "processing");
    // From a file, with --json: one JSON object a line.
    let f = db.file(
        "o.jsonl",
        format!(
            "{}\n",
            json!({"id": l[2].0, "lease": l[2].1, "outcome": "processed"})
        ),
    );
    let out = db.ok(&["--json", "finish", f.to_str().unwrap()]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["status"].as_str()),
        (Some(ids[2].as_str()), Some("processed"))
    );
    // Refused items in --json say their error as data.
    let again = format!(
        "{}\n",
        json!({"id": l[2].0, "lease": l[2].1, "outcome": "processed"})
    );
    let a = db.cmd_stdin(&["--json", "finish", "-"], again).code(1);
    let v: Value = serde_json::from_str(stdout(&a).trim()).unwrap();
    assert_eq!(v["id"], ids[2].as_str());
    assert_eq!(v["error"]["kind"], "conflict", "{v}");
}

#[test]
fn finish_refuses_malformed_lines_and_applies_nothing() {
    let db = Db::new();
    db.ok(&["queue", "create", "f"]);
    let id = db.add("f", "v", &[]);
    let (_, lease) = db.take("f");
    let good = json!({"id": id, "lease": lease, "outcome": "processed"}).to_string();
    for (bad, needle) in [
        ("{not json".to_string(), "line 2: "),
        (
            json!({"id": id, "lease": lease, "outcome": "processed", "extra": 1}).to_string(),
            "unknown field `extra`",
        ),
        (
            json!({"lease": lease, "outcome": "processed"}).to_string(),
            "missing field `id`",
        ),
        (
            json!({"id": id, "outcome": "processed"}).to_string(),
            "missing field `lease`",
        ),
        (
            json!({"id": id, "lease": lease, "outcome": "exception"}).to_string(),
            "needs a \"reason\"",
        ),
        (
            json!({"id": id, "lease": lease, "outcome": "exception", "reason": "timeout"})
                .to_string(),
            "timeout is for leases",
        ),
        (
            json!({"id": id, "lease": lease, "outcome": "exception", "reason": "oops"}).to_string(),
            "unknown reason 'oops'",
        ),
        (
            json!({"id": id, "lease": lease, "outcome": "processed", "reason": "it"}).to_string(),
            "not a processed outcome",
        ),
        (
            json!({"id": id, "lease": lease, "outcome": "done"}).to_string(),
            "unknown variant `done`",
        ),
        (
            json!({"id": "", "lease": lease, "outcome": "processed"}).to_string(),
            "\"id\" is empty",
        ),
    ] {
        let before = db.state();
        let a = db.cmd_stdin(&["finish"], format!("{good}\n{bad}\n"));
        let err = check_failure(a, &["finish"], 1);
        assert!(
            err.contains("stdin line 2: ") && err.contains(needle),
            "{bad}: {err}"
        );
        assert!(err.contains("nothing was applied"), "{err}");
        assert_eq!(db.state(), before, "{bad} changed something");
    }
    // Every bad line is named, not only the first.
    let a = db.cmd_stdin(&["finish"], "x\n{}\n");
    let err = check_failure(a, &["finish"], 1);
    assert!(
        err.contains("line 1: ") && err.contains("line 2: ") && err.contains("2 lines"),
        "{err}"
    );
    check_failure(db.cmd_stdin(&["finish"], "\n\n"), &["finish"], 1);
    db.refuses(
        &["finish", "/nonexistent/o.jsonl"],
        1,
        &["cannot read /nonexistent/o.jsonl"],
    );
    assert_eq!(db.item(&id)["status"], "processing");
}

#[test]
fn fail_with_retry_in_postpones_without_counting_a_retry() {
    let db = Db::new();
    db.ok(&["queue", "create", "p"]);
    let id = db.add("p", "v", &[]);
    let (_, lease) = db.take("p");
    for (args, needle) in [
        (
            vec!["--reason", "business", "--retry-in", "10m"],
            "not business",
        ),
        (vec!["--reason", "it", "--retry-in", "10"], "--retry-in"),
        (vec!["--reason", "it", "--retry-in", "0s"], "more than 0"),
        (vec!["--reason", "it", "--retry-in", "-5m"], "--retry-in"),
    ] {
        let mut all = vec!["fail", id.as_str(), "--lease", lease.as_str()];
        all.extend(args);
        db.refuses(&all, 1, &[needle]);
    }
    db.refuses(
        &[
            "fail",
            &id,
            "--lease",
            "forged",
            "--reason",
            "it",
            "--retry-in",
            "10m",
        ],
        1,
        &["lease"],
    );
    let out = db.ok(&[
        "fail",
        &id,
        "--lease",
        &lease,
        "--reason",
        "it",
        "--retry-in",
        "10m",
        "--note",
        "portal down",
    ]);
    assert_eq!(out, format!("{id}: postponed, queued again\n"));
    let i = db.item(&id);
    assert_eq!(
        (i["status"].as_str(), i["retry_count"].as_u64()),
        (Some("queued"), Some(0))
    );
    let wait = time(&i["delay_until"]) - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::minutes(9) && wait <= chrono::Duration::minutes(10),
        "{i}"
    );
    // Not takeable during its delay.
    assert!(db.json(&["dequeue", "p"])["item"].is_null());
    // In `workq finish` too, as a duration text, and only on an IT exception.
    let id2 = db.add("p", "w", &[]);
    let (_, l2) = db.take("p");
    let bad = json!({"id": id2, "lease": l2, "outcome": "processed", "retry_in": "10m"});
    let err = check_failure(
        db.cmd_stdin(&["finish"], format!("{bad}\n")),
        &["finish"],
        1,
    );
    assert!(
        err.contains("line 1") && err.contains("not a processed outcome"),
        "{err}"
    );
    let good =
        json!({"id": id2, "lease": l2, "outcome": "exception", "reason": "it", "retry_in": "1h"});
    let a = db.cmd_stdin(&["finish"], format!("{good}\n")).success();
    assert_eq!(stdout(&a), format!("{id2}: postponed, queued again\n"));
    assert_eq!(db.item(&id2)["retry_count"], 0);
}

#[test]
fn queue_preview_lists_what_becomes_ready_soonest_first() {
    let db = Db::new();
    db.ok(&["queue", "create", "p"]);
    let at = |h: i64| (Utc::now() + chrono::Duration::hours(h)).to_rfc3339();
    let later = db.add(
        "p",
        "in 3h",
        &["--delay-until", &at(3), "--name", "Later\u{1b}[2J"],
    );
    let soon = db.add("p", "in 1h", &["--delay-until", &at(1)]);
    db.add("p", "in 30h", &["--delay-until", &at(30)]);
    db.add("p", "ready", &[]);
    let v = db.json(&["queue", "preview", "p"]);
    assert_eq!(strs(&v, "id"), [soon.clone(), later.clone()], "{v}");
    let v = db.json(&["queue", "preview", "p", "--hours", "48"]);
    assert_eq!(strs(&v, "value"), ["in 1h", "in 3h", "in 30h"], "{v}");
    let v = db.json(&["queue", "preview", "p", "--hours", "2"]);
    assert_eq!(strs(&v, "id"), std::slice::from_ref(&soon), "{v}");
    let out = db.ok(&["queue", "preview", "p"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("READY AT"), "{out}");
    assert!(
        lines[1].contains(&soon) && lines[2].contains(&later),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "the name is escaped: {out:?}");
    db.ok(&["queue", "create", "empty"]);
    db.add("empty", "ready", &[]);
    assert_eq!(
        db.ok(&["queue", "preview", "empty", "--hours", "1"]),
        "nothing in 'empty' becomes ready in the next 1 hour\n"
    );
    db.refuses(&["queue", "preview", "p", "--hours", "0"], 1, &["--hours"]);
    db.refuses(
        &["queue", "preview", "p", "--hours", "-3"],
        2,
        &["negative"],
    );
    db.refuses(
        &["queue", "preview", "p", "--hours", "soon"],
        2,
        &["--hours"],
    );
    db.refuses(&["queue", "preview", "p", "--limit", "0"], 1, &["limit"]);
    db.refuses(&["queue", "preview", "nope"], 1, &["nope"]);
}

#[test]
fn queue_max_runtime_is_set_shown_and_cleared() {
    let db = Db::new();
    db.ok(&["queue", "create", "q", "--max-runtime", "2h"]);
    let out = db.ok(&["queue", "inspect", "q"]);
    assert!(out.contains("max runtime") && out.contains("2h"), "{out}");
    db.ok(&["queue", "update", "q", "--max-runtime", "90m"]);
    let out = db.ok(&["queue", "inspect", "q", "--json"]);
    assert!(out.contains("\"max_runtime\": 5400000"), "{out}");
    db.ok(&["queue", "update", "q", "--clear", "max-runtime"]);
    let out = db.ok(&["queue", "inspect", "q", "--json"]);
    assert!(out.contains("\"max_runtime\": null"), "{out}");
}
