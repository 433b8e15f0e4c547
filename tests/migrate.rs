//! `workq migrate --from FILE --to postgres://…` with the real binary, a real file and a
//! real PostgreSQL server (`WORKQ_TEST_PG_URL`; skipped without it, except under CI=true):
//! a file holding every status, history, an undoable action, a token and an alert comes
//! across whole and works there; bad requests are refused and copy nothing.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[allow(dead_code, unused_macros, unused_imports)]
mod common;
use common::pg;

fn workq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.env_remove("WORKQ_DB")
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .env("USER", "tester")
        .env("TZ", "UTC");
    c
}

fn ok(db: &str, args: &[&str]) -> String {
    let out = workq().arg("--db").arg(db).args(args).output().unwrap();
    assert!(out.status.success(), "{db} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn json(db: &str, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(db, &a)).unwrap()
}

fn migrate(from: &Path, to: &str) -> std::process::Output {
    workq()
        .args(["migrate", "--from"])
        .arg(from)
        .args(["--to", to])
        .output()
        .unwrap()
}

/// What a person and a bot see of a database, for comparing two of them.
fn seen(db: &str, ids: &[String]) -> Vec<Value> {
    // The rate and the oldest item's age move with the clock: left out.
    let mut queues = json(db, &["queue", "ls"]);
    for q in queues.as_array_mut().unwrap() {
        let q = q.as_object_mut().unwrap();
        q.remove("throughput_per_min");
        q.remove("oldest_queued_secs");
    }
    let mut v = vec![
        queues,
        json(db, &["item", "ls", "inv", "--all"]),
        json(db, &["actions"]),
        json(db, &["token", "ls"]),
        json(db, &["alert", "ls"]),
        json(db, &["groups"]),
    ];
    for id in ids {
        v.push(json(db, &["item", "show", id]));
    }
    v
}

#[test]
fn an_embedded_database_comes_across_whole_and_works_there() {
    let Some(url) = pg::url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.db");
    let db = file.to_str().unwrap();
    ok(
        db,
        &[
            "queue",
            "create",
            "inv",
            "--sla",
            "1h",
            "--max-retries",
            "0",
        ],
    );
    ok(db, &["queue", "create", "empty"]);
    // Values whose bytes, key order and number text must survive.
    for (n, v) in [
        "{\"z\":1,\"a\":1.50,\"ü\":\"x\\u00e9\"}",
        "plain text, with a comma",
        "{\"n\":3}",
        "{\"n\":4}",
        "{\"n\":5}",
        "{\"n\":6}",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("K-{n}");
        ok(
            db,
            &[
                "item",
                "add",
                "inv",
                "--value",
                v,
                "--key",
                &key,
                "--name",
                &format!("Invoice {n}"),
            ],
        );
    }
    // Processed, exception, processing (leased), on hold by an undoable action, queued.
    let took = json(db, &["dequeue", "inv", "--count", "3", "--worker", "bot-1"]);
    let leases = took["leases"].as_array().unwrap();
    let l = |i: usize, k: &str| leases[i][k].as_str().unwrap().to_string();
    let id = |i: usize| leases[i]["item"]["id"].as_str().unwrap().to_string();
    ok(
        db,
        &[
            "complete",
            &id(0),
            "--lease",
            &l(0, "lease"),
            "--note",
            "paid",
        ],
    );
    ok(
        db,
        &[
            "fail",
            &id(1),
            "--lease",
            &l(1, "lease"),
            "--reason",
            "business",
            "--note",
            "vendor 4411 missing",
        ],
    );
    let all = json(db, &["item", "ls", "inv", "--status", "queued"]);
    let queued: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ok(
        db,
        &["item", "hold", &queued[0], "--note", "check with finance"],
    );
    ok(db, &["item", "delete", &queued[1], "--yes"]);
    let secret = ok(db, &["token", "create", "ops", "--role", "admin"])
        .trim()
        .to_string();
    ok(db, &["token", "create", "gone", "--role", "viewer"]);
    ok(db, &["token", "revoke", "gone"]);
    ok(
        db,
        &[
            "alert", "add", "late", "--queue", "inv", "--when", "out>0", "--run", "true",
        ],
    );
    let ids = vec![id(0), id(1), id(2), queued[0].clone(), queued[1].clone()];
    let before = seen(db, &ids);

    let schema = pg::schema(&url);
    let to = schema.url();
    let out = migrate(&file, &to);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("every count checked"), "{said}");

    assert_eq!(
        seen(&to, &ids),
        before,
        "the same on PostgreSQL as in the file"
    );
    // It works there: undo restores the held and the deleted item, the leased one completes with its
    // lease, a new item gets a new sequence number, the token opens a server.
    let actions = json(&to, &["actions"]);
    for a in actions.as_array().unwrap() {
        ok(&to, &["undo", &a["id"].as_i64().unwrap().to_string()]);
    }
    for back in &queued[..2] {
        let i = json(&to, &["item", "show", back]);
        assert_eq!(
            (&i["status"], &i["deleted"]),
            (&Value::from("queued"), &Value::Null),
            "{i}"
        );
    }
    ok(&to, &["complete", &id(2), "--lease", &l(2, "lease")]);
    let added = json(
        &to,
        &["item", "add", "inv", "--value", "new", "--key", "K-new"],
    );
    assert!(added["id"].is_string(), "{added}");
    let mut serve = workq()
        .args(["--db", &to, "serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = BufReader::new(serve.stderr.take().unwrap());
    let mut listening = None;
    for line in err.lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("listening on ") {
            listening = Some(
                line[at + 13..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string(),
            );
            break;
        }
    }
    let base = listening.expect("the server says where it listens");
    let out = workq()
        .args([
            "--remote", &base, "--token", &secret, "--json", "queue", "ls",
        ])
        .output()
        .unwrap();
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    assert!(
        out.status.success(),
        "the migrated token opens the server: {out:?}"
    );

    // The file is as it was.
    assert_eq!(
        seen(db, &ids),
        before,
        "migrate changes nothing in the file"
    );
    // A second copy into the same schema is refused and copies nothing.
    let out = migrate(&file, &to);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds workq data"), "{err}");
    let n = json(&to, &["item", "ls", "inv", "--all"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        n, 7,
        "six copied (one deleted, brought back) and one added, nothing twice"
    );
}

#[test]
fn bad_requests_are_refused_and_copy_nothing() {
    let Some(url) = pg::url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let schema = pg::schema(&url);
    let out = migrate(&missing, &schema.url());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such database file"),
        "{out:?}"
    );
    assert!(!missing.exists(), "no file was made");

    let file = dir.path().join("w.db");
    ok(file.to_str().unwrap(), &["queue", "create", "q"]);
    let out = migrate(&file, "other.db");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--to"),
        "{out:?}"
    );

    // A file that is not workq's.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER)")
        .unwrap();
    let out = migrate(&foreign, &schema.url());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a workq one"),
        "{out:?}"
    );

    // A server that is not there: said, and the file is untouched.
    let out = migrate(&file, "postgres://postgres@127.0.0.1:1/test");
    assert!(!out.status.success());
    assert_eq!(
        ok(file.to_str().unwrap(), &["queue", "ls", "--names"]).trim(),
        "q"
    );
}
