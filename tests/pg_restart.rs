//! A `workq serve` on PostgreSQL whose database goes away under it, as in a restart: all
//! its sessions cut at once and no new login for a while (a role of the test's own, made
//! NOLOGIN, so the other tests on the same server go on). Calls made meanwhile fail with an
//! error that says the database is the trouble, the server reconnects by itself once the
//! database takes logins again, and nothing acknowledged is lost. The real binary, a real server (`WORKQ_TEST_PG_URL`; skipped without it, except
//! under CI=true).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code, unused_macros, unused_imports)]
mod common;
use common::pg::{self, sql};

fn workq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .env("USER", "tester");
    c
}

#[test]
fn a_database_gone_under_a_running_server_is_said_then_reconnected_and_nothing_is_lost() {
    let Some(base) = pg::url() else { return };
    let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let (schema, role) = (format!("wq_{id}"), format!("wq_restart_{id}"));
    sql(
        &base,
        &format!("CREATE ROLE {role} LOGIN; CREATE SCHEMA {schema} AUTHORIZATION {role}"),
    );
    let user = base
        .split("://")
        .nth(1)
        .and_then(|r| r.split_once('@'))
        .map(|(u, _)| u);
    let Some(user) = user else {
        panic!("WORKQ_TEST_PG_URL={base}: give the user in the URL (postgres://USER@host/db)")
    };
    let as_role = base.replacen(&format!("://{user}@"), &format!("://{role}@"), 1);
    let sep = if base.contains('?') { '&' } else { '?' };
    let db = format!("{as_role}{sep}options=-csearch_path%3D{schema}");
    let ok = |args: &[&str]| {
        let out = workq().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["--db", &db, "queue", "create", "q"]);
    let token = ok(&["--db", &db, "token", "create", "t", "--role", "admin"]);
    let token = token.trim().to_string();
    let mut serve = workq()
        .args(["--db", &db, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "the server ended");
        if let Some(at) = line.find("listening on ") {
            break line[at + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    let remote = |args: &[&str]| {
        workq()
            .args(["--remote", &url, "--token", &token])
            .args(args)
            .output()
            .unwrap()
    };
    let mut acknowledged = 0;
    for n in 0..50 {
        let out = remote(&["item", "add", "q", "--value", &format!("before-{n}")]);
        assert!(out.status.success(), "{out:?}");
        acknowledged += 1;
    }

    // The database goes: every session of this server cut, no login taken.
    let cut = sql(
        &base,
        &format!(
            "ALTER ROLE {role} NOLOGIN;
             SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE usename = '{role}'"
        ),
    );
    assert!(!cut.is_empty(), "the server had sessions to cut");
    for n in 0..3 {
        let out = remote(&[
            "--json",
            "item",
            "add",
            "q",
            "--value",
            &format!("during-{n}"),
        ]);
        assert!(
            !out.status.success(),
            "nothing lands while the database is away"
        );
        let e: Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|_| panic!("an error that is not JSON: {out:?}"));
        let text = e.to_string();
        assert!(
            text.contains("PostgreSQL") && text.contains(&role),
            "the refusal says the database refused this login: {text}"
        );
    }
    sql(&base, &format!("ALTER ROLE {role} LOGIN"));

    // Calls go on: each one either lands or says clearly why not, and within seconds they
    // land again.
    let started = Instant::now();
    let (mut refused, mut landed_after) = (0, 0);
    while landed_after < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not recover ({refused} refused)"
        );
        let out = remote(&[
            "--json",
            "item",
            "add",
            "q",
            "--value",
            &format!("after-{landed_after}-{refused}"),
        ]);
        if out.status.success() {
            landed_after += 1;
            acknowledged += 1;
        } else {
            refused += 1;
            let e: Value = serde_json::from_slice(&out.stderr)
                .unwrap_or_else(|_| panic!("an error that is not JSON: {out:?}"));
            let text = e.to_string();
            assert!(
                text.contains("PostgreSQL") || text.contains("storage"),
                "a refusal says the database was the trouble: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!("{refused} call(s) refused while the sessions were made again");
    assert!(
        serve.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    // Nothing acknowledged was lost, nothing was added twice.
    let items: Value =
        serde_json::from_slice(&remote(&["--json", "item", "ls", "q", "--all"]).stdout).unwrap();
    let values: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(values.len(), acknowledged, "{values:?}");
    let unique: std::collections::HashSet<&&str> = values.iter().collect();
    assert_eq!(unique.len(), values.len());
    // And work is taken and finished again.
    let got: Value =
        serde_json::from_slice(&remote(&["--json", "dequeue", "q", "--worker", "w"]).stdout)
            .unwrap();
    let (item, lease) = (
        got["item"]["id"].as_str().unwrap(),
        got["lease"].as_str().unwrap(),
    );
    let out = remote(&["complete", item, "--lease", lease]);
    assert!(out.status.success(), "{out:?}");

    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    sql(
        &base,
        &format!("DROP SCHEMA {schema} CASCADE; DROP ROLE {role}"),
    );
}
