//! `--db postgres://…` end to end: the real binary against a real PostgreSQL server
//! (`WORKQ_TEST_PG_URL`), each test in a schema of its own. What works (a queue made,
//! filled and worked on through the CLI), and that each way of being unable to use a
//! database says so: a server that cannot be reached, a login it refuses, a schema that is
//! not workq's, one written by a newer workq. Unset, the tests are skipped, except in CI
//! (`CI=true`), where skipping would pass for testing.

use assert_cmd::Command;
use serde_json::Value;
use std::time::Duration;

#[allow(dead_code, unused_macros, unused_imports)]
mod common;
use common::pg::{self, sql, url as server};
use common::PgSchema as Schema;

/// A server's URL with `schema` as the search path of its connections.
fn schema_url(server: &str, schema: &str) -> String {
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-csearch_path%3D{schema}")
}

fn workq(db: &str) -> Command {
    let mut c = Command::cargo_bin("workq").unwrap();
    c.env_remove("WORKQ_DB")
        .env("USER", "tester")
        .env("TZ", "UTC")
        .arg("--db")
        .arg(db)
        .timeout(Duration::from_secs(60));
    c
}

/// The `--json` error of a command that must fail with exit code 1.
fn json_error(db: &str, args: &[&str]) -> Value {
    let o = workq(db).arg("--json").args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
    serde_json::from_slice::<Value>(&o.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))["error"]
        .clone()
}

/// A URL like `server` with another user, host or port.
fn with_authority(server: &str, authority: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap();
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    format!("{scheme}://{authority}{path}")
}

#[test]
fn a_queue_is_made_filled_and_worked_through_the_cli() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    workq(&db)
        .args(["item", "add", "q", "--value", "hello"])
        .assert()
        .success();
    let o = workq(&db).args(["--json", "queue", "ls"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let ls: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ls[0]["name"], "q", "{ls}");
    assert_eq!(ls[0]["counts"]["queued"], 1, "{ls}");
    let o = workq(&db)
        .args(["--json", "dequeue", "q", "--worker", "w1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["item"]["value"], "hello", "{got}");
    assert_eq!(got["item"]["status"], "processing", "{got}");
}

#[test]
fn two_processes_starting_together_on_a_new_schema_both_work() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    // Each creates (and migrates) the schema if it is first: the advisory lock lets one
    // do it while the other waits, then finds it done.
    let runs: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|q| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("workq"))
                .env_remove("WORKQ_DB")
                .args(["--db", &db, "queue", "create", q])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in runs {
        let o = r.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = workq(&db).args(["--json", "queue", "ls"]).output().unwrap();
    let ls: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 4, "{ls}");
}

#[test]
fn a_server_that_cannot_be_reached_says_so() {
    let Some(server) = server() else { return };
    // Port 1 on this machine: nothing listens there.
    let db = with_authority(&server, "postgres@127.0.0.1:1");
    let e = json_error(&db, &["queue", "ls"]);
    assert_eq!(e["kind"], "storage", "{e}");
    assert_eq!(e["cause"], "cannot_open", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("cannot reach PostgreSQL at 127.0.0.1:1"), "{m}");
    assert!(m.contains("is the server running"), "{m}");
}

#[test]
fn a_refused_login_says_whose() {
    let Some(server) = server() else { return };
    let (_, rest) = server.split_once("://").unwrap();
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let db = with_authority(&server, &format!("no_such_workq_user@{host}"));
    let e = json_error(&db, &["queue", "ls"]);
    assert_eq!(e["cause"], "cannot_open", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("refused the login of user 'no_such_workq_user'"),
        "{m}"
    );
}

#[test]
fn a_schema_of_something_else_is_not_taken_for_workq() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    sql(
        &server,
        &format!("CREATE TABLE {}.invoices (id INT PRIMARY KEY)", s.name),
    );
    // Neither a command that reads nor one that writes touches it.
    for args in [&["queue", "ls"][..], &["queue", "create", "q"][..]] {
        let e = json_error(&s.url(), args);
        assert_eq!(e["cause"], "not_workq", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("is not a workq schema"), "{m}");
        assert!(m.contains("invoices"), "{m}");
    }
}

#[test]
fn a_schema_from_a_newer_workq_is_refused() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    workq(&s.url())
        .args(["queue", "create", "q"])
        .assert()
        .success();
    sql(
        &server,
        &format!(
            "UPDATE {}.workq_meta SET value = 999 WHERE key = 'schema_version'",
            s.name
        ),
    );
    for args in [
        &["queue", "ls"][..],
        &["item", "add", "q", "--value", "v"][..],
    ] {
        let e = json_error(&s.url(), args);
        assert_eq!(e["cause"], "newer_schema", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains("schema version 999, newer than this workq"),
            "{m}"
        );
    }
}

#[test]
fn a_command_that_only_reads_does_not_create_the_schema() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let e = json_error(&s.url(), &["queue", "ls"]);
    assert_eq!(e["kind"], "not_found", "{e}");
    assert_eq!(e["what"], "database", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("no workq schema in schema"), "{m}");
    // Still empty: a command that writes then creates it.
    workq(&s.url())
        .args(["queue", "create", "q"])
        .assert()
        .success();
    workq(&s.url()).args(["queue", "ls"]).assert().success();
}

// ------------------------------------------------------------------ several processes

/// Two stores on one schema, as two servers on one database are, on one clock.
async fn two_stores(
    s: &Schema,
) -> (
    workq::store::postgres::PgStore,
    workq::store::postgres::PgStore,
    workq::clock::ManualClock,
) {
    use chrono::TimeZone;
    let clock = workq::clock::ManualClock::new(
        chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
    );
    let open = |clock: workq::clock::ManualClock| {
        let url = s.url();
        async move {
            workq::store::postgres::PgStore::open(&url, std::sync::Arc::new(clock))
                .await
                .unwrap()
        }
    };
    // Opened together: the first migrates, the other waits on the lock and finds it done.
    let (a, b) = tokio::join!(open(clock.clone()), open(clock.clone()));
    (a, b, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_schema_never_lease_an_item_twice() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let (a, b, _clock) = two_stores(&s).await;
    a.create_queue("q", Default::default()).await.unwrap();
    let items: Vec<NewItem> = (0..200)
        .map(|i| NewItem {
            value: format!("v{i}"),
            ..Default::default()
        })
        .collect();
    b.add_items("q", items, "bot").await.unwrap();
    let stores: [std::sync::Arc<dyn Backend>; 2] = [std::sync::Arc::new(a), std::sync::Arc::new(b)];
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let store = stores[w % 2].clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let d = store
                        .dequeue(DequeueRequest {
                            queues: vec!["q".into()],
                            worker: format!("w{w}"),
                            count: 5,
                            wait: Duration::ZERO,
                        })
                        .await
                        .unwrap();
                    if d.leases.is_empty() {
                        return got;
                    }
                    let done: Vec<Outcome> =
                        d.leases.iter().map(|l| l.outcome(None, None)).collect();
                    for r in store.finish(done, &format!("w{w}")).await.unwrap() {
                        got.push(r.unwrap().id);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (n, all.len()),
        (200, 200),
        "each item leased and finished once"
    );
    let c = stores[0].queue("q").await.unwrap().counts;
    assert_eq!((c.queued, c.processing, c.processed), (0, 0, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_across_stores() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let (a, b, _clock) = two_stores(&s).await;
    let limited = QueueSettings {
        concurrency: Some(3),
        ..Default::default()
    };
    a.create_queue("lim", limited).await.unwrap();
    let items: Vec<NewItem> = (0..20)
        .map(|i| NewItem {
            value: format!("v{i}"),
            ..Default::default()
        })
        .collect();
    a.add_items("lim", items, "bot").await.unwrap();
    let stores: [std::sync::Arc<dyn Backend>; 2] = [std::sync::Arc::new(a), std::sync::Arc::new(b)];
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .dequeue(DequeueRequest {
                        queues: vec!["lim".into()],
                        worker: format!("w{i}"),
                        count: 1,
                        wait: Duration::ZERO,
                    })
                    .await
                    .unwrap()
                    .leases
                    .len()
            })
        })
        .collect();
    let mut taken = 0;
    for c in calls {
        taken += c.await.unwrap();
    }
    assert_eq!(taken, 3, "three at a time, whichever store was asked");
    let c = stores[1].queue("lim").await.unwrap().counts;
    assert_eq!((c.queued, c.processing), (17, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_is_timed_out_once_when_both_stores_sweep() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let (a, b, clock) = two_stores(&s).await;
    a.create_queue("q", Default::default()).await.unwrap();
    let item = a
        .add_items(
            "q",
            vec![NewItem {
                value: "v".into(),
                ..Default::default()
            }],
            "bot",
        )
        .await
        .unwrap()
        .remove(0);
    let d = b
        .dequeue(DequeueRequest {
            queues: vec!["q".into()],
            worker: "w".into(),
            count: 1,
            wait: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(d.leases.len(), 1);
    clock.advance(Duration::from_secs(3600));
    let (x, y) = tokio::join!(a.sweep(), b.sweep());
    assert_eq!(x.unwrap() + y.unwrap(), 1, "one of them timed it out");
    let detail = a.item(&item.id).await.unwrap();
    assert_eq!(detail.item.status, Status::Exception);
    let timeouts = detail
        .history
        .iter()
        .filter(|h| h.reason == Some(Reason::Timeout))
        .count();
    assert_eq!(timeouts, 1, "{:?}", detail.history);
    let c = b.queue("q").await.unwrap().counts;
    assert_eq!((c.processing, c.exception), (0, 1));
}

#[test]
fn an_older_schema_is_migrated_by_the_first_command_that_opens_it() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    workq(&s.url())
        .args(["queue", "create", "q"])
        .assert()
        .success();
    workq(&s.url())
        .args(["item", "add", "q", "--value", "v"])
        .assert()
        .success();
    // Back to version 1 by hand: migration 4 (sharded counters: the shards folded back
    // into the queue's row, as version 1 kept them), 3 (a sequence) and 2 (agents and
    // workers per queue) undone.
    sql(
        &server,
        &format!(
            "SET search_path = {0};
             UPDATE queues SET
                n_queued = n_queued + COALESCE((SELECT SUM(n_queued) FROM queue_counts c WHERE c.queue_id = queues.id), 0),
                n_processing = n_processing + COALESCE((SELECT SUM(n_processing) FROM queue_counts c WHERE c.queue_id = queues.id), 0);
             DROP TABLE queue_counts;
             DELETE FROM stats WHERE shard <> 0; DELETE FROM open_minutes WHERE shard <> 0;
             ALTER TABLE stats DROP CONSTRAINT stats_pkey, DROP COLUMN shard, ADD PRIMARY KEY (queue_id, minute);
             ALTER TABLE open_minutes DROP CONSTRAINT open_minutes_pkey, DROP COLUMN shard,
                ADD PRIMARY KEY (queue_id, minute);
             DROP SEQUENCE feed_seq;
             DROP TABLE worker_queues; ALTER TABLE workers DROP COLUMN agent;
             DROP INDEX items_finished;
             UPDATE workq_meta SET value = 1 WHERE key = 'schema_version'",
            s.name
        ),
    );
    // Even a command that only reads: what it reads is then true.
    let o = workq(&s.url())
        .args(["--json", "workers"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    workq(&s.url())
        .args(["dequeue", "q", "--worker", "w1"])
        .assert()
        .success();
    let o = workq(&s.url())
        .args(["--json", "workers"])
        .output()
        .unwrap();
    let w: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w[0]["name"], "w1", "{w}");
    assert_eq!(w[0]["queues"][0]["queue"], "q", "{w}");
    // The item counted before the migration was taken after it: counted as processing.
    let o = workq(&s.url())
        .args(["--json", "queue", "inspect", "q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["counts"]["processing"], 1, "{q}");
    assert_eq!(q["counts"]["queued"], 0, "{q}");
}

#[test]
fn a_lease_that_ran_out_while_nothing_ran_shows_timed_out_at_once() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db)
        .args(["queue", "create", "q", "--lease", "1s"])
        .assert()
        .success();
    let o = workq(&db)
        .args(["item", "add", "q", "--value", "v"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    workq(&db)
        .args(["dequeue", "q", "--worker", "w1"])
        .assert()
        .success();
    std::thread::sleep(Duration::from_millis(1500));
    // No workq ran meanwhile: the command that opens the schema next times the lease out
    // before it reads, as with an SQLite file.
    let o = workq(&db)
        .args(["--json", "item", "show", &id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let item: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(item["status"], "exception", "{item}");
    assert_eq!(item["reason"], "timeout", "{item}");
}

#[test]
fn an_agent_works_a_postgres_queue() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    for v in ["a", "b", "c"] {
        workq(&db)
            .args(["item", "add", "q", "--value", v])
            .assert()
            .success();
    }
    // The item's value on stdin, echoed back as the completion's note.
    workq(&db)
        .args([
            "work",
            "--queue",
            "q",
            "--concurrency",
            "2",
            "--run-once",
            "--",
            "sh",
            "-c",
            "cat",
        ])
        .assert()
        .success();
    let o = workq(&db)
        .args(["--json", "item", "ls", "q", "--all"])
        .output()
        .unwrap();
    let items: Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    for it in items {
        assert_eq!(it["status"], "processed", "{it}");
    }
}

#[test]
fn a_server_serves_a_postgres_database() {
    use std::io::{BufRead, BufReader, Read, Write};
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    let o = workq(&db)
        .args(["--json", "token", "create", "adm", "--role", "admin"])
        .output()
        .unwrap();
    let token = serde_json::from_slice::<Value>(&o.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("workq"))
        .env_remove("WORKQ_DB")
        .args(["--db", &db, "serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let err = child.stderr.take().unwrap();
    let child = Kill(child);
    let mut first = String::new();
    BufReader::new(err).read_line(&mut first).unwrap();
    let url = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("where does it listen? {first}"))
        .to_string();
    // It names the database without a password, as --db would take it again.
    assert!(first.contains(&format!("(database {db})")), "{first}");
    // A client on the server adds an item; the database has it.
    let o = Command::cargo_bin("workq")
        .unwrap()
        .env_remove("WORKQ_DB")
        .args(["--remote", &url, "--token", &token])
        .args(["item", "add", "q", "--value", "over http"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = workq(&db)
        .args(["--json", "item", "ls", "q"])
        .output()
        .unwrap();
    let items: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(items[0]["value"], "over http", "{items}");
    // And an unauthenticated request is refused as on SQLite.
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET /v1/queues HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    drop(child);
}

#[test]
fn a_user_who_may_not_write_the_schema_is_told_so() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    workq(&s.url())
        .args(["queue", "create", "q"])
        .assert()
        .success();
    // A role that may read the schema's tables but change nothing.
    let role = format!("{}_ro", s.name);
    sql(
        &server,
        &format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {0} TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {role};",
            s.name
        ),
    );
    struct DropRole {
        server: String,
        schema: String,
        role: String,
    }
    impl Drop for DropRole {
        fn drop(&mut self) {
            let (schema, role) = (&self.schema, &self.role);
            sql(
                &self.server,
                &format!(
                    "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};
                     REVOKE ALL ON SCHEMA {schema} FROM {role}; DROP ROLE IF EXISTS {role}"
                ),
            );
        }
    }
    let _role = DropRole {
        server: server.clone(),
        schema: s.name.clone(),
        role: role.clone(),
    };
    let (_, rest) = server.split_once("://").unwrap();
    let host = rest.split('/').next().unwrap();
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let ro_url = schema_url(&with_authority(&server, &format!("{role}@{host}")), &s.name);
    let e = json_error(&ro_url, &["item", "add", "q", "--value", "v"]);
    assert_eq!(e["cause"], "read_only", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("may not change this schema"), "{m}");
    // Reading still works for it.
    let o = workq(&ro_url)
        .args(["--json", "queue", "ls"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let ls: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ls[0]["name"], "q", "{ls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_for_reading_refuses_every_change() {
    use workq::backend::{Backend, Error, StorageCause};
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = std::sync::Arc::new(workq::clock::SystemClock);
    let url = s.url();
    // Nothing to read yet: a reader does not make the schema.
    let (u, c) = (url.clone(), clock.clone());
    let e = tokio::task::spawn_blocking(move || {
        workq::store::postgres::PgStore::open_blocking(&u, c, false).map(|_| ())
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    workq(&url)
        .args(["queue", "create", "q"])
        .assert()
        .success();
    let (u, c) = (url.clone(), clock.clone());
    let store = tokio::task::spawn_blocking(move || {
        workq::store::postgres::PgStore::open_blocking(&u, c, false).unwrap()
    })
    .await
    .unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.queues().await.unwrap().len(), 1);
    let e = store
        .add_items("q", vec![Default::default()], "bot")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Storage {
                cause: StorageCause::ReadOnly,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(store.queue("q").await.unwrap().counts.total(), 0);
}

#[test]
fn two_agents_in_two_processes_process_every_item_exactly_once() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    let mut csv = String::from("n\n");
    for i in 0..300 {
        csv.push_str(&format!("{i}\n"));
    }
    std::fs::write(&file, csv).unwrap();
    workq(&db)
        .arg("import")
        .arg("q")
        .arg(&file)
        .assert()
        .success();
    let agents: Vec<_> = ["a1", "a2"]
        .iter()
        .map(|name| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("workq"))
                .env_remove("WORKQ_DB")
                .args(["--db", &db, "work", "--queue", "q", "--name", name])
                .args(["--concurrency", "4", "--run-once", "--", "sh", "-c", "cat"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for a in agents {
        let o = a.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = workq(&db).args(["--json", "queue", "ls"]).output().unwrap();
    let ls: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ls[0]["counts"]["processed"], 300, "{ls}");
    assert_eq!(ls[0]["counts"]["queued"], 0, "{ls}");
    // Each item taken once: one attempt in its history, whichever agent took it.
    let o = workq(&db)
        .args(["--json", "item", "ls", "q", "--all"])
        .output()
        .unwrap();
    let items: Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 300);
    for it in items.iter().step_by(37) {
        let id = it["id"].as_str().unwrap();
        let o = workq(&db)
            .args(["--json", "item", "show", id])
            .output()
            .unwrap();
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        let taken = d["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == "dequeue")
            .count();
        assert_eq!(taken, 1, "{d}");
    }
}

// ------------------------------------------------------------------ live across processes

/// A store on `s` with other knobs; the defaults otherwise.
async fn store_with(
    s: &Schema,
    clock: &workq::clock::ManualClock,
    f: impl FnOnce(&mut workq::store::postgres::Options),
) -> workq::store::postgres::PgStore {
    let mut options = workq::store::postgres::Options::default();
    f(&mut options);
    workq::store::postgres::PgStore::open_with(
        &s.url(),
        std::sync::Arc::new(clock.clone()),
        options,
    )
    .await
    .unwrap()
}

fn a_clock() -> workq::clock::ManualClock {
    use chrono::TimeZone;
    workq::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap())
}

/// Waits up to `within` for `ok`, looking every 20ms.
async fn eventually(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok()
}

/// The first of `feed`'s next events and gaps that `want` takes, within `within`; `None`
/// if none came.
async fn first_on(
    feed: &mut workq::backend::Feed,
    within: Duration,
    want: impl Fn(&Result<workq::model::Event, workq::backend::Gap>) -> bool,
) -> Option<Result<workq::model::Event, workq::backend::Gap>> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let got = tokio::time::timeout_at(until, feed.recv()).await.ok()?;
        if want(&got) {
            return Some(got);
        }
    }
}

fn one_item(value: &str) -> Vec<workq::model::NewItem> {
    vec![workq::model::NewItem {
        value: value.into(),
        ..Default::default()
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_store_shows_on_the_others_feed() {
    use workq::backend::Backend;
    use workq::model::Event;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = a_clock();
    let a = store_with(&s, &clock, |_| {}).await;
    let b = store_with(&s, &clock, |_| {}).await;
    assert!(eventually(Duration::from_secs(5), || b.is_listening()).await);
    let mut feed = b.subscribe();
    let t = std::time::Instant::now();
    a.create_queue("q", Default::default()).await.unwrap();
    let got = first_on(
        &mut feed,
        Duration::from_secs(2),
        |e| matches!(e, Ok(Event::Queue { queue }) if queue == "q"),
    )
    .await;
    assert!(got.is_some(), "b heard of the queue a made");
    a.add_items("q", one_item("v"), "bot").await.unwrap();
    let got = first_on(
        &mut feed,
        Duration::from_secs(2),
        |e| matches!(e, Ok(Event::Items { queue, .. }) if queue == "q"),
    )
    .await;
    assert_eq!(
        got,
        Some(Ok(Event::Items {
            queue: "q".into(),
            count: 1
        }))
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Its own commits come once, not again as heard from the database.
    let mut mine = a.subscribe();
    a.add_items("q", one_item("w"), "bot").await.unwrap();
    let first = first_on(&mut mine, Duration::from_secs(1), |_| true).await;
    assert!(matches!(first, Some(Ok(Event::Items { .. }))), "{first:?}");
    let again = first_on(&mut mine, Duration::from_millis(500), |_| true).await;
    assert_eq!(again, None, "a's own commit is not told to a twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_store_returns_when_the_other_adds_an_item() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = a_clock();
    let a = store_with(&s, &clock, |_| {}).await;
    // Without the notification, it would not look again for an hour.
    let b = store_with(&s, &clock, |o| o.poll_every = Duration::from_secs(3600)).await;
    a.create_queue("q", Default::default()).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || b.is_listening()).await);
    let b = std::sync::Arc::new(b);
    let poll = tokio::spawn({
        let b = b.clone();
        async move {
            let t = std::time::Instant::now();
            let d = b
                .dequeue(DequeueRequest {
                    queues: vec!["q".into()],
                    worker: "w".into(),
                    count: 1,
                    wait: Duration::from_secs(30),
                })
                .await
                .unwrap();
            (d, t.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let added = std::time::Instant::now();
    a.add_items("q", one_item("v"), "bot").await.unwrap();
    let (d, waited) = poll.await.unwrap();
    assert_eq!(d.leases.len(), 1, "{d:?}");
    assert!(
        waited >= Duration::from_millis(250),
        "it did wait: {waited:?}"
    );
    assert!(
        added.elapsed() < Duration::from_secs(2),
        "{:?}",
        added.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_the_fallback_still_tells_of_a_change() {
    use workq::backend::{Backend, Gap};
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = a_clock();
    let a = store_with(&s, &clock, |_| {}).await;
    // As through a transaction-pooling proxy: no NOTIFY arrives.
    let b = store_with(&s, &clock, |o| {
        o.listen = false;
        o.poll_every = Duration::from_secs(3600);
    })
    .await;
    a.create_queue("q", Default::default()).await.unwrap();
    // Two readings, so that the queue made before is judged already.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!b.is_listening());
    let mut feed = b.subscribe();
    // b's own change is not taken for another's.
    b.add_items("q", one_item("mine"), "bot").await.unwrap();
    let mine = first_on(&mut feed, Duration::from_secs(3), |e| e.is_err()).await;
    assert_eq!(mine, None, "b's own commit is no unknown change");
    let take = |wait| DequeueRequest {
        queues: vec!["q".into()],
        worker: "w".into(),
        count: 1,
        wait,
    };
    assert_eq!(
        b.dequeue(take(Duration::ZERO)).await.unwrap().leases.len(),
        1
    );
    let b = std::sync::Arc::new(b);
    let poll = tokio::spawn({
        let b = b.clone();
        async move { b.dequeue(take(Duration::from_secs(30))).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "nothing to take yet");
    let t = std::time::Instant::now();
    a.add_items("q", one_item("theirs"), "bot").await.unwrap();
    let got = first_on(&mut feed, Duration::from_secs(6), |e| e.is_err()).await;
    assert_eq!(got, Some(Err(Gap::Changed)));
    // Judged one reading late: two seconds, three at most, and a margin for a busy machine.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let d = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the fallback woke the long poll")
        .unwrap();
    assert!(!d.leases.is_empty(), "{d:?}");
}

/// Ends the sessions of `s`'s schema that `which` selects from `pg_stat_activity` and
/// `pg_locks`, as a dropped connection or a killed process would.
fn terminate(s: &Schema, which: &str) {
    sql(
        &s.server,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM ({}) t",
            which.replace("SCHEMA", &s.name)
        ),
    );
}

/// The session holding the leader lock of the schema named SCHEMA.
const LEADER_SESSION: &str = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
     AND classid = 2003530060 AND objid = hashtext('SCHEMA')::oid";

/// The sessions listening on the channel of the schema named SCHEMA.
const LISTEN_SESSIONS: &str = "SELECT pid FROM pg_stat_activity
     WHERE query = 'LISTEN \"workq_' || md5('SCHEMA') || '\"'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_is_made_again_and_says_what_may_have_been_missed() {
    use workq::backend::{Backend, Gap};
    use workq::model::Event;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = a_clock();
    let a = store_with(&s, &clock, |_| {}).await;
    let b = store_with(&s, &clock, |_| {}).await;
    a.create_queue("q", Default::default()).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || b.is_listening()).await);
    let mut feed = b.subscribe();
    terminate(&s, LISTEN_SESSIONS);
    let got = first_on(&mut feed, Duration::from_secs(5), |e| e.is_err()).await;
    assert_eq!(got, Some(Err(Gap::Changed)), "said after listening again");
    assert!(b.is_listening());
    a.add_items("q", one_item("v"), "bot").await.unwrap();
    let got = first_on(&mut feed, Duration::from_secs(2), |e| e.is_ok()).await;
    assert_eq!(
        got,
        Some(Ok(Event::Items {
            queue: "q".into(),
            count: 1
        })),
        "and hears again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_store_of_a_schema_sweeps_and_another_takes_over_when_it_is_gone() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let clock = a_clock();
    let fast = |o: &mut workq::store::postgres::Options| {
        o.sweep_every = Duration::from_millis(100);
        o.leader_every = Duration::from_millis(200);
    };
    let a = store_with(&s, &clock, fast).await;
    let b = store_with(&s, &clock, fast).await;
    assert!(eventually(Duration::from_secs(5), || a.is_leader() || b.is_leader()).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.is_leader() != b.is_leader(), "exactly one leads");
    let (leader, other) = if a.is_leader() { (a, b) } else { (b, a) };
    assert!(leader.sweeps_run() > 0, "{}", leader.sweeps_run());
    assert_eq!(other.sweeps_run(), 0, "only the leader sweeps");

    // The leader's connection goes away: it stops leading, and one of them leads again.
    terminate(&s, LEADER_SESSION);
    assert!(
        eventually(Duration::from_secs(3), || !leader.is_leader()).await,
        "a leader whose connection failed stops leading"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        eventually(Duration::from_secs(5), || leader.is_leader()
            != other.is_leader())
        .await,
        "one leads again"
    );
    let (leader, other) = if leader.is_leader() {
        (leader, other)
    } else {
        (other, leader)
    };

    // An item leased for a minute by a worker that never reports.
    let settings = QueueSettings {
        lease: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    other.create_queue("q", settings).await.unwrap();
    let item = other
        .add_items("q", one_item("v"), "bot")
        .await
        .unwrap()
        .remove(0);
    let d = other
        .dequeue(DequeueRequest {
            queues: vec!["q".into()],
            worker: "w".into(),
            count: 1,
            wait: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(d.leases.len(), 1);
    // The leader is gone; then the lease runs out: the other takes over and times it out.
    drop(leader);
    clock.advance(Duration::from_secs(61));
    let t = std::time::Instant::now();
    let mut status = Status::Processing;
    while t.elapsed() < Duration::from_secs(5) && status == Status::Processing {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = other.item(&item.id).await.unwrap().item.status;
    }
    assert_eq!(status, Status::Exception, "timed out by the new leader");
    assert!(other.is_leader());
    assert!(other.sweeps_run() > 0);
}

/// A `workq serve` on `db`, killed (SIGKILL) when dropped, and where it listens.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Served {
    fn start(db: &str) -> Served {
        Self::start_with(db, &[])
    }

    /// A server given `more` flags of `workq serve`.
    fn start_with(db: &str, more: &[&str]) -> Served {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("workq"))
            .env_remove("WORKQ_DB")
            .args(["--db", db, "serve", "--listen", "127.0.0.1:0"])
            .args(more)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "the server ended");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // The rest of what it says is read and dropped, so it never waits on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Served { child, addr }
    }

    /// `GET path`'s body.
    fn get(&self, path: &str) -> String {
        self.get_with(path, "")
    }

    /// `GET path`'s body, with a token.
    fn get_with(&self, path: &str, token: &str) -> String {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(&self.addr).unwrap();
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {token}\r\n")
        };
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    }

    fn leads(&self) -> bool {
        self.get("/healthz").contains("\"leader\":true")
    }

    /// A `workq` command on this server.
    fn workq(&self, token: &str) -> Command {
        let mut c = Command::cargo_bin("workq").unwrap();
        c.env_remove("WORKQ_DB")
            .args([
                "--remote",
                &format!("http://{}", self.addr),
                "--token",
                token,
            ])
            .timeout(Duration::from_secs(60));
        c
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ok()
}

#[test]
fn when_the_leading_server_is_killed_another_times_out_a_lease_within_seconds() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db)
        .args(["queue", "create", "q", "--lease", "2s"])
        .assert()
        .success();
    let o = workq(&db)
        .args(["--json", "token", "create", "adm", "--role", "admin"])
        .output()
        .unwrap();
    let token = serde_json::from_slice::<Value>(&o.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut first = Served::start(&db);
    assert!(
        wait_for(Duration::from_secs(5), || first.leads()),
        "the first server leads"
    );
    let second = Served::start(&db);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!second.leads(), "and only it");
    // An item taken through the second server by a worker that never reports.
    let o = second
        .workq(&token)
        .args(["item", "add", "q", "--value", "v"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    second
        .workq(&token)
        .args(["dequeue", "q", "--worker", "w1"])
        .assert()
        .success();
    // The leader dies before the lease runs out.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = std::time::Instant::now();
    let show = || {
        let o = second
            .workq(&token)
            .args(["--json", "item", "show", &id])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    assert!(
        wait_for(Duration::from_secs(10), || show()["status"] == "exception"),
        "{}",
        show()
    );
    let item = show();
    assert_eq!(item["reason"], "timeout", "{item}");
    // The lease (2s), a try for the lock (1s), a sweep (1s), and a margin.
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "{:?}",
        killed.elapsed()
    );
    assert!(second.leads(), "the second server leads now");
    let metrics = second.get_with("/metrics", &token);
    assert!(metrics.contains("\nworkq_leader 1\n"), "{metrics}");
}

/// `serve --retain`: the leader of two servers removes processed items past the retention
/// with their history, and nothing open; a bad retention is refused before serving.
#[test]
fn servers_with_retain_remove_processed_items_past_it_and_nothing_open() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    for v in ["a", "b", "c", "d"] {
        workq(&db)
            .args(["item", "add", "q", "--value", v])
            .assert()
            .success();
    }
    // Two processed, one exception, one left queued.
    for outcome in [
        &["complete"][..],
        &["complete"],
        &["fail", "--reason", "business"],
    ] {
        let o = workq(&db)
            .args(["--json", "dequeue", "q", "--worker", "w1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = got["item"]["id"].as_str().unwrap();
        let lease = got["lease"].as_str().unwrap();
        workq(&db)
            .args([outcome[0], id, "--lease", lease])
            .args(&outcome[1..])
            .assert()
            .success();
    }
    let count = |sql: &str| pg::sql(&db, sql)[0].parse::<i64>().unwrap();
    let processed = "SELECT count(*) FROM items WHERE status = 'processed'";
    assert_eq!(count(processed), 2);
    let history_before = count("SELECT count(*) FROM history");
    for bad in ["0s", "soon"] {
        let o = workq(&db)
            .args(["serve", "--listen", "127.0.0.1:0", "--retain", bad])
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--retain") && err.contains(bad), "{err}");
    }
    let _first = Served::start_with(&db, &["--retain", "1s"]);
    let _second = Served::start_with(&db, &["--retain", "1s"]);
    assert!(
        wait_for(Duration::from_secs(15), || count(processed) == 0),
        "the processed items are removed"
    );
    let left = pg::sql(
        &db,
        "SELECT value || ':' || status FROM items ORDER BY value",
    );
    assert_eq!(left, ["c:exception", "d:queued"]);
    // The removed items' history went with them; the others' stayed.
    let orphans = "SELECT count(*) FROM history h
        WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.seq = h.item_seq)";
    assert_eq!(count(orphans), 0);
    assert!(count("SELECT count(*) FROM history") < history_before);
    let o = workq(&db)
        .args(["--json", "queue", "inspect", "q"])
        .output()
        .unwrap();
    let q: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(q["counts"]["processed"], 0, "{q}");
    assert_eq!(q["counts"]["exception"], 1, "{q}");
}

/// The test: two servers on one schema, 16 workers spread over them (half taking
/// one item per call, half 20), 50,000 items (WORKQ_TEST_MANY to change it), every item
/// processed exactly once.
#[test]
fn sixteen_workers_on_two_servers_process_every_item_exactly_once() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    let n: usize = std::env::var("WORKQ_TEST_MANY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    let o = workq(&db)
        .args(["--json", "token", "create", "adm", "--role", "admin"])
        .output()
        .unwrap();
    let token = serde_json::from_slice::<Value>(&o.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    let mut csv = String::from("n\n");
    for i in 0..n {
        csv.push_str(&format!("{i}\n"));
    }
    std::fs::write(&file, csv).unwrap();
    workq(&db)
        .arg("import")
        .arg("q")
        .arg(&file)
        .assert()
        .success();
    let servers = [Served::start(&db), Served::start(&db)];
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let done: Vec<(usize, Vec<String>)> = rt.block_on(async {
        let workers: Vec<_> = (0..16)
            .map(|w| {
                let url = urls[w % 2].clone();
                let count = if w % 4 < 2 { 1 } else { 20 };
                let token = token.clone();
                tokio::spawn(async move {
                    let client = workq::client::HttpClient::new(&url, Some(token)).unwrap();
                    let name = format!("w{w}");
                    let mut ids = Vec::new();
                    loop {
                        let d = client
                            .dequeue(DequeueRequest {
                                queues: vec!["q".into()],
                                worker: name.clone(),
                                count,
                                wait: Duration::from_millis(500),
                            })
                            .await
                            .unwrap();
                        if d.leases.is_empty() {
                            let c = client.queue("q").await.unwrap().counts;
                            if c.queued == 0 && c.processing == 0 {
                                break;
                            }
                            continue;
                        }
                        let outcomes: Vec<Outcome> = d
                            .leases
                            .iter()
                            .map(|l| Outcome {
                                id: l.item.id.clone(),
                                lease: l.lease.clone(),
                                reason: None,
                                note: None,
                                retry_in: None,
                            })
                            .collect();
                        for r in client.finish(outcomes, &name).await.unwrap() {
                            r.unwrap();
                        }
                        ids.extend(d.leases.into_iter().map(|l| l.item.id));
                    }
                    (w % 2, ids)
                })
            })
            .collect();
        let mut done = Vec::new();
        for w in workers {
            done.push(w.await.unwrap());
        }
        done
    });
    let took = started.elapsed();
    eprintln!("{n} items by 16 workers on two servers in {took:?}");
    let mut all: Vec<&String> = done.iter().flat_map(|(_, ids)| ids).collect();
    assert_eq!(all.len(), n, "as many finished as there were items");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "none finished twice");
    for side in 0..2 {
        let by: usize = done
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, i)| i.len())
            .sum();
        assert!(by > 0, "server {side}'s workers took some");
    }
    // The history agrees: one processed entry per item.
    let one = |text: &str| sql(&db, text).remove(0);
    // Nothing but the completions: no lease timed out or handed back, none taken again.
    let kinds = sql(
        &db,
        "SELECT action || ' ' || coalesce(to_status, '-') || ' ' || count(*) FROM history
         GROUP BY action, to_status ORDER BY 1",
    );
    assert_eq!(kinds, vec![format!("complete processed {n}")]);
    assert_eq!(
        one("SELECT count(DISTINCT item_seq) FROM history WHERE to_status = 'processed'"),
        n.to_string()
    );
    assert_eq!(
        one("SELECT count(*) FROM history WHERE to_status = 'processed'"),
        n.to_string()
    );
    assert_eq!(
        one("SELECT count(*) FROM items WHERE status = 'processed'"),
        n.to_string()
    );
    let o = workq(&db).args(["--json", "queue", "ls"]).output().unwrap();
    let ls: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ls[0]["counts"]["processed"], n, "{ls}");
}

#[test]
fn a_change_through_one_server_shows_on_the_events_of_another() {
    use std::io::{BufRead, BufReader, Write};
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let db = s.url();
    workq(&db).args(["queue", "create", "q"]).assert().success();
    let o = workq(&db)
        .args(["--json", "token", "create", "adm", "--role", "admin"])
        .output()
        .unwrap();
    let token = serde_json::from_slice::<Value>(&o.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (one, two) = (Served::start(&db), Served::start(&db));
    // Listening on the second server's events…
    let mut tcp = std::net::TcpStream::connect(&two.addr).unwrap();
    write!(
        tcp,
        "GET /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        two.addr
    )
    .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut lines = BufReader::new(tcp);
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // …while the second server's LISTEN connection is surely up.
    std::thread::sleep(Duration::from_millis(1000));
    // …an item added through the first shows there.
    let t = std::time::Instant::now();
    one.workq(&token)
        .args(["item", "add", "q", "--value", "v"])
        .assert()
        .success();
    let mut seen = Vec::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            other => panic!("no items event on the other server: {other:?} after {seen:?}"),
        }
        seen.push(line.trim().to_string());
        if line.trim() == "event: items" {
            break;
        }
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A past minute's open-item tally, spread over shards by the connections that wrote it,
/// is folded into one row by the sweep (none when nothing is open): what `open_before`
/// sums stays a few rows per minute with open items, whatever the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_folds_past_minutes_of_open_items_into_one_row() {
    use workq::backend::Backend;
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    let (a, _b, _clock) = two_stores(&s).await;
    a.create_queue("q", Default::default()).await.unwrap();
    let url = s.url();
    sql(
        &url,
        "INSERT INTO open_minutes (queue_id, minute, shard, n)
         SELECT id, m, sh, n FROM queues,
           (VALUES (1000, 5, 3), (1000, 7, -3), (1001, 5, 2), (1001, 9, -1), (1001, 0, 4))
             AS t(m, sh, n)
         WHERE name = 'q'",
    );
    a.sweep().await.unwrap();
    let rows = sql(
        &url,
        "SELECT minute || ':' || shard || ':' || n FROM open_minutes
         WHERE minute IN (1000, 1001) ORDER BY minute, shard",
    );
    assert_eq!(rows, vec!["1001:0:5".to_string()]);
}

/// The migration sets autovacuum for a queue's tables: items vacuumed after 1 % changed,
/// the small hot tables after a few hundred rows (the default 20 % lets dead rows pile up).
#[test]
fn queue_tables_get_autovacuum_settings_for_a_queue() {
    let Some(server) = server() else { return };
    let s = pg::schema(&server);
    workq(&s.url())
        .args(["queue", "create", "q"])
        .assert()
        .success();
    let options = |table: &str| {
        sql(
            &server,
            &format!(
                "SELECT array_to_string(c.reloptions, ',') FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = '{}' AND c.relname = '{table}'",
                s.name
            ),
        )
        .join("")
    };
    let items = options("items");
    assert!(
        items.contains("autovacuum_vacuum_scale_factor=0.01"),
        "{items}"
    );
    for hot in ["queue_counts", "open_minutes", "workers"] {
        let o = options(hot);
        assert!(
            o.contains("autovacuum_vacuum_scale_factor=0")
                && o.contains("autovacuum_vacuum_threshold=200"),
            "{hot}: {o}"
        );
    }
}

/// A server with autovacuum off (as this project's test server is): the leader vacuums the
/// schema's tables once their dead rows pass the allowance, so a queue does not slow down
/// as claimed and completed items leave dead row versions behind. With autovacuum on,
/// that is the server's work and nothing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_autovacuum_off_the_leader_vacuums_the_queue_tables() {
    use workq::backend::Backend;
    use workq::model::*;
    let Some(server) = server() else { return };
    if sql(&server, "SHOW autovacuum")[0] != "off" {
        eprintln!("SKIPPED: autovacuum is on here; the server reclaims dead rows itself");
        return;
    }
    let s = pg::schema(&server);
    let store = store_with(&s, &a_clock(), |o| {
        o.leader_every = Duration::from_millis(200);
    })
    .await;
    store.create_queue("q", Default::default()).await.unwrap();
    let items: Vec<NewItem> = (0..1500)
        .map(|i| NewItem {
            value: format!("{i}"),
            ..Default::default()
        })
        .collect();
    store.add_items("q", items, "bot").await.unwrap();
    let got = store
        .dequeue(DequeueRequest {
            queues: vec!["q".into()],
            worker: "w1".into(),
            count: 1500,
            wait: Duration::ZERO,
        })
        .await
        .unwrap();
    let outcomes = got.leases.iter().map(|l| l.outcome(None, None)).collect();
    store.finish(outcomes, "w1").await.unwrap();
    let vacuums = || {
        sql(
            &server,
            &format!(
                "SELECT vacuum_count FROM pg_stat_user_tables
                 WHERE schemaname = '{}' AND relname = 'items'",
                s.name
            ),
        )[0]
        .parse::<i64>()
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(20), || vacuums() > 0).await,
        "items, with 3,000 dead rows, was vacuumed"
    );
}
