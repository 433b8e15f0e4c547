//! A console on an embedded file is live when other processes write to it (bots running
//! `workq work` or `workq dequeue` beside it): the store's change feed says `Changed` for
//! their commits, and only for theirs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use workq::backend::{Backend, Feed, Gap};
use workq::clock;
use workq::SqliteStore;

/// The real binary, writing to `db` as another process.
fn workq(db: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_workq"))
        .env_remove("WORKQ_REMOTE")
        .env_remove("WORKQ_TOKEN")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// What the feed says within `wait`, or nothing.
async fn next(feed: &mut Feed, wait: Duration) -> Option<Result<workq::model::Event, Gap>> {
    tokio::time::timeout(wait, feed.recv()).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writing_the_file_shows_in_the_feed_and_our_own_writes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let store = SqliteStore::open(&db, clock::system()).unwrap();
    let mut feed = store.subscribe();

    workq(&db, &["queue", "create", "theirs"]);
    assert_eq!(
        next(&mut feed, Duration::from_secs(5)).await,
        Some(Err(Gap::Changed)),
        "their commit is seen"
    );
    // Idle (checkpoints run meanwhile): nothing.
    assert_eq!(next(&mut feed, Duration::from_millis(1200)).await, None);

    // Our own write comes as its event, never as an outside change too.
    store
        .create_queue("ours", Default::default())
        .await
        .unwrap();
    assert_eq!(
        next(&mut feed, Duration::from_secs(5)).await,
        Some(Ok(workq::model::Event::Queue {
            queue: "ours".into()
        }))
    );
    assert_eq!(next(&mut feed, Duration::from_millis(1200)).await, None);

    // And what they wrote is there to fetch.
    let names: Vec<String> = store
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue.name)
        .collect();
    assert_eq!(names, ["ours", "theirs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_console_sees_other_processes_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    workq(&db, &["queue", "create", "q"]);
    let store = SqliteStore::open_read_only(&db, clock::system()).unwrap();
    let mut feed = store.subscribe();
    assert_eq!(next(&mut feed, Duration::from_millis(600)).await, None);
    workq(&db, &["item", "add", "q", "--value", "x"]);
    assert_eq!(
        next(&mut feed, Duration::from_secs(5)).await,
        Some(Err(Gap::Changed))
    );
    assert_eq!(store.queue("q").await.unwrap().counts.queued, 1);
}
