//! schemathesis against `/openapi.json` on a live `workq serve` (real binary, 127.0.0.1):
//! generated requests for every route but the event stream (it never ends) and token
//! revocation (it would revoke the run's own token); no answer may be a 5xx, and every
//! answer must match the document (status, content type, headers, body schema), and a
//! route that needs a token must refuse a request without one (`ignored_auth`).
//!
//! schemathesis comes from PyPI: `.ci/run` installs it into `$HOME/.cache/workq-ci/venv`.
//! Without it the test is skipped with a notice, except under CI=true, where it fails.
//! `WORKQ_SCHEMATHESIS=path` names another binary. The long mode: set
//! `WORKQ_SCHEMATHESIS_EXAMPLES=1000` (default 25 per operation) and `WORKQ_SCHEMATHESIS_SEED=random`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn find() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WORKQ_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let venv = Path::new(&home).join(".cache/workq-ci/venv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    on_path.then(|| PathBuf::from("schemathesis"))
}

fn workq(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.arg("--db")
        .arg(db)
        .env_remove("WORKQ_DB")
        .env("TZ", "UTC");
    c
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(st) = find() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("schemathesis is not installed: .ci/run installs it into $HOME/.cache/workq-ci/venv");
        }
        eprintln!(
            "SKIPPED: schemathesis is not installed (pip install schemathesis, or run .ci/run)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = workq(&db)
        .args(["token", "create", "fuzz", "--role", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut server = workq(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(at) = line.find("listening on ") {
            break line[at + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    // Keep reading what the server says so it never blocks on a full pipe.
    let said = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let examples = std::env::var("WORKQ_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("WORKQ_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let mut cmd = Command::new(&st);
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(format!("{url}/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance,ignored_auth",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["-n", &examples])
        .args(["--exclude-path", "/v1/events"])
        .args(["--exclude-path", "/v1/tokens/{name}"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .args(["--no-color"]);
    if seed != "random" {
        cmd.args(["--seed", &seed]);
    }
    let run = cmd.output().expect("schemathesis runs");
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait_timeout_or_kill(Duration::from_secs(30));
    let report = String::from_utf8_lossy(&run.stdout);
    let server_said = said.join().unwrap_or_default().join("\n");
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}\n{}\nserver:\n{server_said}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, d: Duration) -> std::io::Result<()>;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self, d: Duration) -> std::io::Result<()> {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()?;
        self.wait().map(|_| ())
    }
}
