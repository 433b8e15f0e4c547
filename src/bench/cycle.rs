//! The full cycle: producers adding items, workers taking and completing them, through
//! the engine; beside the same statements in one thread with no engine.

use super::{seconds, Engine, Figure};
use crate::model::*;
use crate::SqliteStore;
use rusqlite::params;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn figures(
    dir: &Path,
    engine: &Engine,
    items: u64,
    workers: usize,
    producers: usize,
    batch: u32,
) -> Result<Vec<Figure>, String> {
    let (base, how) = if engine.name == "postgres" {
        let db = format!("cycle-baseline-{workers}");
        let base = super::pg::cycle_baseline(&db, items, workers, producers, batch).await?;
        (
            base,
            format!("baseline: same SQL, {workers} connections, a transaction per call"),
        )
    } else {
        let base_db = dir.join("cycle-baseline.db");
        super::fresh(&base_db);
        let base = cycle_baseline(&base_db, items, batch)?;
        (
            base,
            "baseline: same SQL, one thread, no engine".to_string(),
        )
    };
    let store = engine.fresh(dir, &format!("cycle-{workers}"))?;
    let rate = cycle_engine(store, items, workers, producers, batch, batch).await?;
    Ok(vec![Figure {
        what: format!(
            "full cycle, {} worker{}, {} producer{}, batches of {}",
            workers,
            if workers == 1 { "" } else { "s" },
            producers,
            if producers == 1 { "" } else { "s" },
            batch
        ),
        engine: rate,
        baseline: Some(base),
        unit: "items/s".into(),
        // The goals: the embedded store's, and PostgreSQL's with 16 workers.
        goal: match (engine.name, batch, workers) {
            ("postgres", 1, _) => "≥ 5,000 with 16 workers",
            ("postgres", _, _) => "≥ 30,000 with 16 workers",
            (_, 1, 1) => "≥ 8,000",
            (_, 1, _) => "≥ 15,000",
            (_, _, 1) => "≥ 25,000",
            _ => "≥ 60,000",
        }
        .into(),
        note: how,
    }])
}

/// One worker's turn: takes up to `batch` items of `queue` (waiting up to 50 ms for work)
/// and completes them in one call; how many.
pub(super) async fn take_and_complete(
    store: &dyn crate::Backend,
    queue: &str,
    worker: &str,
    batch: u32,
) -> Result<u64, crate::Error> {
    let got = store
        .dequeue(DequeueRequest {
            queues: vec![queue.into()],
            worker: worker.into(),
            count: batch,
            wait: Duration::from_millis(50),
        })
        .await?;
    if got.leases.is_empty() {
        return Ok(0);
    }
    let outcomes = got.leases.iter().map(|l| l.outcome(None, None)).collect();
    Ok(store.finish(outcomes, worker).await?.len() as u64)
}

/// Enqueue → dequeue → complete through the engine: `producers` adding batches of `produce`
/// (sharing out the items), `workers` workers taking up to `batch` at a time and
/// completing them in one call.
pub(super) async fn cycle_engine(
    store: Arc<dyn crate::Backend>,
    items: u64,
    workers: usize,
    producers: usize,
    batch: u32,
    produce: u32,
) -> Result<f64, String> {
    store
        .create_queue("cycle", Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let producers: Vec<_> = (0..producers as u64)
        .map(|p| {
            let store = store.clone();
            // The items shared out: the first producers take one more when they do not divide.
            let share = items / producers as u64 + u64::from(p < items % producers as u64);
            tokio::spawn(async move {
                let mut left = share;
                while left > 0 {
                    let n = left.min(produce as u64);
                    let batch_items = (0..n)
                        .map(|i| NewItem {
                            value: format!("{{\"n\":{i}}}"),
                            ..Default::default()
                        })
                        .collect();
                    store.add_items("cycle", batch_items, "producer").await?;
                    left -= n;
                }
                Ok::<_, crate::Error>(())
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let name = format!("bench-{w}");
                while done.load(std::sync::atomic::Ordering::Relaxed) < items {
                    let n = take_and_complete(&*store, "cycle", &name, batch).await?;
                    done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                Ok::<_, crate::Error>(())
            })
        })
        .collect();
    for h in producers.into_iter().chain(handles) {
        h.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let secs = seconds(started.elapsed());
    let c = store
        .queue("cycle")
        .await
        .map_err(|e| e.to_string())?
        .counts;
    if c.processed != items {
        return Err(format!(
            "cycle ended with {c:?}, expected {items} processed"
        ));
    }
    Ok(items as f64 / secs)
}

/// The same cycle as bare statements in one thread: insert a batch, claim it with the same
/// `UPDATE … RETURNING`, complete each with an update and a history row; a transaction each.
fn cycle_baseline(db: &Path, items: u64, batch: u32) -> Result<f64, String> {
    drop(SqliteStore::open(db, crate::clock::system()).map_err(|e| e.to_string())?);
    let e = |e: rusqlite::Error| e.to_string();
    let conn = rusqlite::Connection::open(db).map_err(e)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority, created_at)
         VALUES ('cycle', 80, 'UTC', 0, 300000, 0, 0);",
    )
    .map_err(e)?;
    let started = Instant::now();
    let mut left = items;
    while left > 0 {
        let n = left.min(batch as u64);
        let now = chrono::Utc::now().timestamp_millis();
        let tx = conn.unchecked_transaction().map_err(e)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO items (id, queue_id, value, priority, status, enqueued_at, created_by)
                     VALUES (?1, 1, ?2, 1, 'queued', ?3, 'producer')",
                )
                .map_err(e)?;
            for i in 0..n {
                ins.execute(params![
                    ulid::Ulid::new().to_string(),
                    format!("{{\"n\":{i}}}"),
                    now
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        let tx = conn.unchecked_transaction().map_err(e)?;
        let claimed: Vec<(i64, String)> = tx
            .prepare_cached(
                "UPDATE items SET status = 'processing', started_at = ?1, worker = 'w',
                    lease_token = 'tok.' || seq, lease_until = ?1 + 300000, version = version + 1
                 WHERE seq IN (SELECT seq FROM items WHERE queue_id = 1 AND status = 'queued'
                    AND dormant = 0 AND (delay_until IS NULL OR delay_until <= ?1)
                    AND (expires_at IS NULL OR expires_at > ?1)
                    ORDER BY priority, seq LIMIT ?2)
                 RETURNING seq, id",
            )
            .and_then(|mut st| {
                st.query_map(params![now, n], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(e)?;
        tx.commit().map_err(e)?;
        let tx = conn.unchecked_transaction().map_err(e)?;
        {
            let mut done = tx
                .prepare_cached(
                    "UPDATE items SET status = 'processed', finished_at = ?1, lease_token = NULL,
                        lease_until = NULL, version = version + 1 WHERE seq = ?2",
                )
                .map_err(e)?;
            let mut hist = tx
                .prepare_cached(
                    "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status)
                     VALUES (?1, 1, ?2, 'w', 'complete', 'processing', 'processed')",
                )
                .map_err(e)?;
            for (seq, _id) in &claimed {
                done.execute(params![now, seq]).map_err(e)?;
                hist.execute(params![seq, now]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        left -= n;
    }
    Ok(items as f64 / seconds(started.elapsed()))
}
