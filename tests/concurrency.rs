//! Many workers and a second process on one database, an SQLite file or a PostgreSQL
//! schema (`WORKQ_TEST_PG_URL`): every item is delivered to exactly one worker at a time
//! and processed exactly once. Sixteen threads taking batches; and 64 tasks of one runtime
//! taking one item per call with long polls (the hot path: group commit of many one-item
//! calls, wake-ups of one poller per item).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use workq::backend::Backend;
use workq::model::*;

#[allow(dead_code, unused_macros, unused_imports)]
mod common;

/// The store at `db`: a `postgres://` URL or an SQLite file.
async fn open(db: &str) -> Arc<dyn Backend> {
    if workq::store::postgres::is_url(db) {
        Arc::new(
            workq::store::postgres::PgStore::open(db, workq::clock::system())
                .await
                .unwrap(),
        )
    } else {
        Arc::new(workq::SqliteStore::open(Path::new(db), workq::clock::system()).unwrap())
    }
}

const ITEMS: usize = 20_000;
const THREADS: usize = 16;
const CHILD_ENV: &str = "WORKQ_TEST_CHILD_DB";
/// Where the two processes leave each other word (a folder: a PostgreSQL database is no file).
const CHILD_DIR: &str = "WORKQ_TEST_CHILD_DIR";
/// What the child runs: `threads` (batches) or `tasks` (one item per call).
const CHILD_MODE: &str = "WORKQ_TEST_CHILD_MODE";
/// Items and tasks of the one-item-per-call test (a debug build: kept small).
const ONE_ITEMS: usize = 3_000;
const TASKS: usize = 64;

/// How a worker takes: so many per call, waiting so long for work.
#[derive(Clone, Copy)]
struct Take {
    count: u32,
    wait: Duration,
}

const BATCHES: Take = Take {
    count: 8,
    wait: Duration::ZERO,
};
const ONE_AT_A_TIME: Take = Take {
    count: 1,
    wait: Duration::from_millis(20),
};

/// Takes until the queue is drained; returns the ids it completed.
async fn work(store: Arc<dyn Backend>, name: String, take: Take) -> Vec<String> {
    let mut mine = Vec::new();
    let mut idle = 0;
    loop {
        let got = store
            .dequeue(DequeueRequest {
                queues: vec!["q".into()],
                worker: name.clone(),
                count: take.count,
                wait: take.wait,
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
async fn open_together(db: &str, dir: &Path, prefix: &str) -> Arc<dyn Backend> {
    let store = open(db).await;
    let (ready, go) = (dir.join("ready"), dir.join("go"));
    if prefix == "child" {
        std::fs::write(&ready, "").unwrap();
        wait_for(&go).await;
    } else {
        wait_for(&ready).await;
        std::fs::write(&go, "").unwrap();
    }
    store
}

/// `tasks` workers as tasks of this runtime, sharing one store, one item per call.
async fn run_tasks(db: &str, dir: &Path, tasks: usize, prefix: &str) -> Vec<String> {
    let store = open_together(db, dir, prefix).await;
    let handles: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(work(store.clone(), format!("{prefix}-{i}"), ONE_AT_A_TIME)))
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.expect("worker task"));
    }
    ids
}

async fn run_workers(db: &str, dir: &Path, threads: usize, prefix: &str) -> Vec<String> {
    let store = open_together(db, dir, prefix).await;
    if workq::store::postgres::is_url(db) {
        // A PostgreSQL store's connections are tasks of the runtime that opened them, so
        // its workers are tasks of that runtime too (on its threads).
        let handles: Vec<_> = (0..threads)
            .map(|i| tokio::spawn(work(store.clone(), format!("{prefix}-{i}"), BATCHES)))
            .collect();
        let mut ids = Vec::new();
        for h in handles {
            ids.extend(h.await.expect("worker task"));
        }
        return ids;
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
                    .block_on(work(store, name, BATCHES))
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
    let (Ok(db), Ok(dir)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_DIR)) else {
        return;
    };
    let dir = Path::new(&dir);
    let ids = match std::env::var(CHILD_MODE).as_deref() {
        Ok("tasks") => run_tasks(&db, dir, 16, "child").await,
        _ => run_workers(&db, dir, 8, "child").await,
    };
    std::fs::write(dir.join("child-ids"), ids.join("\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_is_processed_exactly_once() {
    exactly_once(ITEMS, "threads", None).await;
}

/// 64 tasks taking one item per call, and a second process doing the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_is_processed_exactly_once_one_item_per_call() {
    exactly_once(ONE_ITEMS, "tasks", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_every_item_is_processed_exactly_once() {
    let Some(url) = common::pg::url() else { return };
    let schema = common::fresh_schema(&url).await;
    exactly_once(ITEMS, "threads", Some(&schema.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_every_item_is_processed_exactly_once_one_item_per_call() {
    let Some(url) = common::pg::url() else { return };
    let schema = common::fresh_schema(&url).await;
    exactly_once(ONE_ITEMS, "tasks", Some(&schema.url())).await;
}

/// `pg`: a PostgreSQL schema's URL; `None`, an SQLite file of a folder of its own.
async fn exactly_once(items_n: usize, mode: &str, pg: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let db = match pg {
        Some(url) => url.to_string(),
        None => dir.path().join("c.db").display().to_string(),
    };
    {
        let store = open(&db).await;
        store.create_queue("q", Default::default()).await.unwrap();
        let items: Vec<NewItem> = (0..items_n)
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
        .env(CHILD_DIR, dir.path())
        .env(CHILD_MODE, mode)
        .spawn()
        .expect("start the second process");
    let mine = match mode {
        "tasks" => run_tasks(&db, dir.path(), TASKS, "parent").await,
        _ => run_workers(&db, dir.path(), THREADS, "parent").await,
    };
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success(), "child process failed");
    let theirs: Vec<String> = std::fs::read_to_string(dir.path().join("child-ids"))
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
    assert_eq!(total, items_n, "every item was completed");

    let store = open(&db).await;
    let c = store.queue("q").await.unwrap().counts;
    assert_eq!((c.processed, c.total()), (items_n as u64, items_n as u64));
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
