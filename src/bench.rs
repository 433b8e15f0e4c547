//! Benchmark stages behind `workq bench`. Each stage runs in a child process of its own (so
//! its peak memory is its own) and measures the engine beside a baseline: the same work
//! as bare rusqlite statements in a plain loop, in the same run, on the same machine.

use crate::backend::Backend;
use crate::import::{self, Format};
use crate::model::*;
use crate::SqliteStore;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One line of the results table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub what: String,
    pub engine: f64,
    /// `None` where a baseline has no meaning (the engine's own peak memory).
    pub baseline: Option<f64>,
    /// "rows/s", "items/s", "ms", "MB".
    pub unit: String,
    pub goal: String,
    pub note: String,
}

/// Peak resident memory of this process so far, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A realistic CSV of vendor invoices: name, JSON value, unique key.
pub fn write_csv(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "name,value,key,priority")?;
    let vendors = ["Fabrikam", "Contoso", "Northwind", "Tailspin", "Woodgrove"];
    for i in 0..rows {
        let p = ["normal", "normal", "high", "low"][(i % 4) as usize];
        writeln!(
            w,
            "I-{i},\"{{\"\"InvoiceId\"\":\"\"I-{i}\"\",\"\"AccountName\"\":\"\"{}\"\",\"\"Amount\"\":{}.{:02}}}\",I-{i},{p}",
            vendors[(i % 5) as usize],
            (i * 7919) % 9000,
            i % 100
        )?;
    }
    w.flush()
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// Import through the engine: the CLI's path (parser thread + store import).
pub async fn import_engine(csv: &Path, db: &Path) -> Result<(f64, u64), String> {
    let store = SqliteStore::open(db, crate::clock::system()).map_err(|e| e.to_string())?;
    store
        .create_queue(
            "invoices",
            QueueSettings {
                sla: Some(Duration::from_secs(4 * 3600)),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let p = csv.to_path_buf();
    let parser = tokio::task::spawn_blocking(move || {
        import::parse(&p, Format::Csv, &Default::default(), tx, &|_| {})
    });
    let report = store
        .import("invoices", ImportOptions::default(), rx, "bench")
        .await
        .map_err(|e| e.to_string())?;
    parser.await.map_err(|e| e.to_string())??;
    Ok((seconds(started.elapsed()), report.imported))
}

/// The same import as a plain loop: csv crate records into one prepared INSERT, one transaction.
pub fn import_baseline(csv: &Path, db: &Path) -> Result<(f64, u64), String> {
    drop(SqliteStore::open(db, crate::clock::system()).map_err(|e| e.to_string())?);
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
         INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority, created_at)
         VALUES ('invoices', 80, 'UTC', 0, 300000, 0, 0);",
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut rdr = csv::Reader::from_path(csv).map_err(|e| e.to_string())?;
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let mut n = 0u64;
    {
        let mut st = tx
            .prepare(
                "INSERT INTO items (id, queue_id, name, key, value, priority, status, enqueued_at, created_by)
                 VALUES (?1, 1, ?2, ?3, ?4, ?5, 'queued', ?6, 'bench')",
            )
            .map_err(|e| e.to_string())?;
        let mut rec = csv::StringRecord::new();
        let now = chrono::Utc::now().timestamp_millis();
        while rdr.read_record(&mut rec).map_err(|e| e.to_string())? {
            let prio: i64 = match &rec[3] {
                "high" => 0,
                "low" => 2,
                _ => 1,
            };
            st.execute(params![
                ulid::Ulid::new().to_string(),
                &rec[0],
                &rec[2],
                &rec[1],
                prio,
                now
            ])
            .map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    tx.execute("UPDATE queues SET n_queued = ?1", [n as i64])
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok((seconds(started.elapsed()), n))
}

/// Enqueue → dequeue → complete through the engine: one producer adding batches of `batch`,
/// `workers` workers taking up to `batch` at a time and completing them in one call.
pub async fn cycle_engine(
    db: &Path,
    items: u64,
    workers: usize,
    batch: u32,
) -> Result<f64, String> {
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(db, crate::clock::system()).map_err(|e| e.to_string())?);
    store
        .create_queue("cycle", Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let producer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut left = items;
            while left > 0 {
                let n = left.min(batch as u64);
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
    };
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let name = format!("bench-{w}");
                while done.load(std::sync::atomic::Ordering::Relaxed) < items {
                    let got = store
                        .dequeue(DequeueRequest {
                            queues: vec!["cycle".into()],
                            worker: name.clone(),
                            count: batch,
                            wait: Duration::from_millis(50),
                        })
                        .await?;
                    if got.leases.is_empty() {
                        continue;
                    }
                    let outcomes = got.leases.iter().map(|l| l.outcome(None, None)).collect();
                    let r = store.finish(outcomes, &name).await?;
                    done.fetch_add(r.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok::<_, crate::Error>(())
            })
        })
        .collect();
    producer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    for h in handles {
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
pub fn cycle_baseline(db: &Path, items: u64, batch: u32) -> Result<f64, String> {
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

/// The median of some timings.
pub fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    t[t.len() / 2]
}

/// Median of `runs` timings of `f`, in milliseconds.
pub async fn median_ms<F, Fut>(runs: usize, mut f: F) -> Result<f64, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f().await?;
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(t))
}

pub fn median_ms_sync(
    runs: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(t))
}
