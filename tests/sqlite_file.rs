//! A database file that cannot be used gets an error that says why, and nothing changes.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workq::backend::{Backend, Error};
use workq::clock;
use workq::SqliteStore;

fn open(path: &std::path::Path) -> Result<SqliteStore, Error> {
    SqliteStore::open(path, clock::system())
}

#[tokio::test]
async fn a_new_file_is_created_with_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/w.db");
    let s = open(&path).unwrap();
    s.create_queue("q", Default::default()).await.unwrap();
    drop(s);
    let s = open(&path).unwrap();
    assert_eq!(s.queues().await.unwrap().len(), 1, "reopened with its data");
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE customers (id INTEGER); INSERT INTO customers VALUES (1);")
        .unwrap();
    drop(c);
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("not a workq one"), "{e}");
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the foreign file was left alone");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are my notes, not a database, and long enough to matter\n".repeat(50),
    )
    .unwrap();
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("not a workq database"), "{e}");
    assert!(e.to_string().contains("notes.txt"), "names the file: {e}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("schema version 99, newer"), "{e}");
    assert!(e.to_string().contains("upgrade workq"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let s: Arc<dyn Backend> = Arc::new(open(&path).unwrap());
    s.create_queue("q", Default::default()).await.unwrap();
    // Another process holds the write lock past our patience.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let e = s.create_queue("r", Default::default()).await.unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "it waited before giving up"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    let names: Vec<String> = s
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue.name)
        .collect();
    assert_eq!(names, ["q"]);
    // Once the lock is gone, writes work again.
    s.create_queue("r", Default::default()).await.unwrap();
}

#[test]
fn a_read_only_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(open(&path).unwrap());
    // Root ignores permission bits, so make the file immutable instead where we can.
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !immutable {
        let mut p = std::fs::metadata(&path).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&path, p).unwrap();
    }
    let r = open(&path);
    if immutable {
        Command::new("chattr")
            .arg("-i")
            .arg(&path)
            .status()
            .unwrap();
    }
    let e = r.err().expect("a read-only file is refused for writing");
    assert!(e.to_string().contains("read-only"), "{e}");
}
