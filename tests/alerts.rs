//! Alerts end to end (issue 9): the real binary on a real file and a real `workq serve`,
//! with a webhook receiver on 127.0.0.1. Each transition must reach the receiver exactly once.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn workq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .env("USER", "tester")
        .env("TZ", "UTC");
    c
}

/// A webhook receiver: records each POSTed body and answers `status`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    rx: mpsc::Receiver<Value>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(vec![]));
        let (tx, rx) = mpsc::channel();
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let v: Value = serde_json::from_slice(&body).unwrap();
                kept.lock().unwrap().push(v.clone());
                let _ = tx.send(v);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, bodies, rx }
    }

    fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// The next body, waiting for it (a server checks on its own timer).
    fn next(&self) -> Value {
        self.rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a webhook body")
    }
}

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workq.db");
        let db = Db { _dir: dir, path };
        db.ok(&["queue", "create", "inv"]);
        db
    }
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        workq()
            .arg("--db")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "workq {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn refused(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(!o.status.success(), "workq {args:?} should be refused");
        String::from_utf8(o.stderr).unwrap()
    }
    fn alerts(&self) -> Value {
        serde_json::from_str(&self.ok(&["--json", "alert", "ls"])).unwrap()
    }
    /// Adds an item and fails it as a business exception; its id.
    fn exception(&self) -> String {
        let id = self.ok(&["item", "add", "inv", "--value", "v", "--name", "inv-1"]);
        let l: Value = serde_json::from_str(&self.ok(&["--json", "dequeue", "inv"])).unwrap();
        let lease = l["lease"].as_str().unwrap().to_string();
        self.ok(&["fail", id.trim(), "--lease", &lease, "--reason", "business"]);
        id.trim().to_string()
    }
}

fn check(db: &Db) -> Vec<Value> {
    serde_json::from_str(&db.ok(&["--json", "alert", "check", "--backoff", "10ms"])).unwrap()
}

#[test]
fn a_webhook_alert_fires_once_and_clears_once_on_a_local_file() {
    let db = Db::new();
    let hook = Receiver::start(200);
    db.ok(&[
        "alert",
        "add",
        "errors",
        "--queue",
        "inv",
        "--when",
        "exceptions>0/1h",
        "--webhook",
        &hook.url,
    ]);
    assert!(check(&db).is_empty());
    let id = db.exception();
    let fired = check(&db);
    assert_eq!(fired.len(), 1);
    // `alert check` waits for its deliveries, so the receiver has it now.
    assert_eq!(hook.count(), 1);
    let body = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["alert"], "errors");
    assert_eq!(body["queue"], "inv");
    assert_eq!(body["rule"], "exceptions>0/1h");
    assert_eq!(body["state"], "fired");
    assert_eq!(body["figures"]["exceptions"], 1);
    assert_eq!(body["examples"][0]["id"], id.as_str());
    assert_eq!(body["examples"][0]["name"], "inv-1");
    assert!(check(&db).is_empty(), "a second check does not fire again");
    assert_eq!(hook.count(), 1);
    assert_eq!(db.alerts()[0]["state"], "fired");
    db.ok(&["item", "delete", &id]);
    let cleared = check(&db);
    assert_eq!(cleared.len(), 1);
    assert_eq!(hook.count(), 2);
    assert_eq!(hook.bodies.lock().unwrap()[1]["state"], "cleared");
    assert!(check(&db).is_empty());
    assert_eq!(hook.count(), 2);
}

#[test]
fn a_run_alert_gets_the_body_on_stdin_and_its_name_and_state_in_env() {
    let db = Db::new();
    let out = db.path.with_file_name("got.txt");
    let cmd = format!(
        "cat >> '{0}'; echo >> '{0}'; echo \"$WORKQ_ALERT_NAME $WORKQ_ALERT_STATE\" >> '{0}'",
        out.display()
    );
    db.ok(&[
        "alert",
        "add",
        "errors",
        "--queue",
        "inv",
        "--when",
        "exceptions>0/1h",
        "--run",
        &cmd,
    ]);
    db.exception();
    assert_eq!(check(&db).len(), 1);
    let got = std::fs::read_to_string(&out).unwrap();
    let mut lines = got.lines();
    let body: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(body["state"], "fired");
    assert!(got.contains("errors fired"), "{got}");
    assert!(check(&db).is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), got, "ran once");
}

#[test]
fn a_failing_webhook_is_retried_then_logged_and_the_state_still_moves_once() {
    let db = Db::new();
    let hook = Receiver::start(500);
    db.ok(&[
        "alert",
        "add",
        "errors",
        "--queue",
        "inv",
        "--when",
        "exceptions>0/1h",
        "--webhook",
        &hook.url,
    ]);
    db.exception();
    let o = db.cmd(&["alert", "check", "--attempts", "3", "--backoff", "10ms"]);
    assert!(o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(hook.count(), 3, "three tries");
    assert!(err.contains("attempt 3 of 3"), "{err}");
    assert!(err.contains("gave up delivering"), "{err}");
    assert!(err.contains("answered 500"), "{err}");
    assert!(check(&db).is_empty(), "the transition is not fired again");
    assert_eq!(hook.count(), 3);
}

#[test]
fn bad_alerts_are_refused_clearly_and_change_nothing() {
    let db = Db::new();
    db.ok(&[
        "alert", "add", "late", "--queue", "inv", "--when", "out>0", "--run", "true",
    ]);
    let before = db.alerts();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "alert", "add", "x", "--queue", "inv", "--when", "out>>0", "--run", "true",
            ],
            "'out>>0'",
        ),
        // Neither target: both are named as the choice.
        (
            &["alert", "add", "x", "--queue", "inv", "--when", "out>0"],
            "<--run <RUN>|--webhook <WEBHOOK>>",
        ),
        (
            &[
                "alert",
                "add",
                "x",
                "--queue",
                "inv",
                "--when",
                "no-worker>5",
                "--run",
                "true",
            ],
            "no-worker",
        ),
        (
            &[
                "alert", "add", "x", "--queue", "nope", "--when", "out>0", "--run", "true",
            ],
            "nope",
        ),
        (
            &[
                "alert", "add", "late", "--queue", "inv", "--when", "out>1", "--run", "true",
            ],
            "already exists",
        ),
        (
            &[
                "alert",
                "add",
                "x",
                "--queue",
                "inv",
                "--when",
                "out>0",
                "--webhook",
                "nope",
            ],
            "not an http",
        ),
        (
            &["alert", "add", "x", "--queue", "inv", "--when", "out>0"],
            "--run",
        ),
        (&["alert", "rm", "nope"], "nope"),
    ];
    for (args, want) in cases {
        let err = db.refused(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(db.alerts(), before);
}

struct Server(Child, String);

impl Server {
    fn start(db: &Path) -> Server {
        let mut child = workq()
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0", "--alert-every", "100ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
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
        let url = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Server(child, url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn workq_serve_checks_alerts_and_fires_each_transition_once() {
    let db = Db::new();
    let hook = Receiver::start(200);
    let admin = db.ok(&["token", "create", "ops", "--role", "admin"]);
    let server = Server::start(&db.path);
    let remote = |args: &[&str]| {
        let o = workq()
            .args(["--remote", &server.1, "--token", admin.trim()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    remote(&[
        "alert",
        "add",
        "errors",
        "--queue",
        "inv",
        "--when",
        "exceptions>0/1h",
        "--webhook",
        &hook.url,
    ]);
    let id = db.exception();
    assert_eq!(hook.next()["state"], "fired");
    // The server recorded it: a second checker (this one, over HTTP) finds nothing to fire.
    let again: Vec<Value> = serde_json::from_str(&remote(&["--json", "alert", "check"])).unwrap();
    assert!(again.is_empty());
    let ls: Value = serde_json::from_str(&remote(&["--json", "alert", "ls"])).unwrap();
    assert_eq!(
        (ls[0]["state"].clone(), ls[0]["generation"].clone()),
        ("fired".into(), 1.into())
    );
    remote(&["item", "delete", &id]);
    assert_eq!(hook.next()["state"], "cleared");
    let ls: Value = serde_json::from_str(&remote(&["--json", "alert", "ls"])).unwrap();
    assert_eq!(ls[0]["generation"], 2, "each transition once");
    assert_eq!(hook.count(), 2);
}
