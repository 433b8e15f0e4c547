//! Sixteen worker threads and a second process on one SQLite file: every item is delivered to exactly one
//! worker at a time and processed exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use workq::backend::Backend;
use workq::model::*;

const ITEMS: usize = 20_000;
const THREADS: usize = 16;
const CHILD_ENV: &str = "WORKQ_TEST_CHILD_DB";

/// Takes batches until the queue is drained; returns the ids it completed.
async fn work(store: Arc<dyn Backend>, name: String) -> Vec<String> {
    let mut mine = Vec::new();
    let mut idle = 0;
    loop {
        let got = store
            .dequeue(DequeueRequest {
                queues: vec!["q".into()],
                worker: name.clone(),
                count: 8,
                wait: Duration::ZERO,
            })
            .await
            .expect("dequeue");
        if got.leases.is_empty() {
            // Drained for good only when nothing is queued or in flight anywhere.
            let c = store.queue("q").await.unwrap().counts;
            if c.queued == 0 && c.processing == 0 {
                return mine;
            }
            idle += 1;
            assert!(idle < 2000, "{name} starved: {c:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        idle = 0;
        let outcomes = got.leases.iter().map(|l| l.outcome(None, None)).collect();
        for r in store.finish(outcomes, &name).await.expect("finish") {
            mine.push(r.expect("every lease we hold completes").id);
        }
    }
}

/// Both processes open the file first, then start together: the child says it is ready,
/// the parent says go. Otherwise the first one up may drain the queue alone.
async fn run_workers(db: &Path, threads: usize, prefix: &str) -> Vec<String> {
    let store: Arc<dyn Backend> =
        Arc::new(workq::SqliteStore::open(db, workq::clock::system()).unwrap());
    let (ready, go) = (flag(db, "ready"), flag(db, "go"));
    if prefix == "child" {
        std::fs::write(&ready, "").unwrap();
        wait_for(&go).await;
    } else {
        wait_for(&ready).await;
        std::fs::write(&go, "").unwrap();
    }
    // Each worker is an OS thread with a runtime of its own, sharing one store.
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, name) = (store.clone(), format!("{prefix}-{i}"));
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(work(store, name))
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
    .await
    .unwrap()
}

fn flag(db: &Path, name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.{name}", db.display()))
}

async fn wait_for(p: &Path) {
    for _ in 0..3000 {
        if p.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", p.display());
}

/// The second process: started by the test below, with the database in the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs as the child process of every_item_is_processed_exactly_once"]
async fn child_process_worker() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let ids = run_workers(Path::new(&db), 8, "child").await;
    std::fs::write(format!("{db}.child-ids"), ids.join("\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_is_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    {
        let store = workq::SqliteStore::open(&db, workq::clock::system()).unwrap();
        store.create_queue("q", Default::default()).await.unwrap();
        let items: Vec<NewItem> = (0..ITEMS)
            .map(|i| NewItem {
                value: format!("item {i}"),
                ..Default::default()
            })
            .collect();
        store.add_items("q", items, "seed").await.unwrap();
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_worker",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &db)
        .spawn()
        .expect("start the second process");
    let mine = run_workers(&db, THREADS, "parent").await;
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success(), "child process failed");
    let theirs: Vec<String> = std::fs::read_to_string(format!("{}.child-ids", db.display()))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert!(!theirs.is_empty(), "the second process took part");
    assert!(!mine.is_empty(), "this process took part");
    let total = mine.len() + theirs.len();
    let unique: HashSet<&String> = mine.iter().chain(theirs.iter()).collect();
    assert_eq!(unique.len(), total, "no item was completed twice");
    assert_eq!(total, ITEMS, "every item was completed");

    let store = workq::SqliteStore::open(&db, workq::clock::system()).unwrap();
    let c = store.queue("q").await.unwrap().counts;
    assert_eq!((c.processed, c.total()), (ITEMS as u64, ITEMS as u64));
    // Each item was dequeued exactly once: one dequeue and one complete in its history.
    let sample = store
        .items(
            Filter::default(),
            PageRequest {
                limit: 200,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for it in sample.items {
        let h = store.item(&it.id).await.unwrap().history;
        let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["enqueue", "dequeue", "complete"], "{}", it.id);
    }
}
