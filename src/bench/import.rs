//! Import: a CSV of vendor invoices through the engine (the CLI's path: a parser thread
//! feeding the store's import), beside the csv crate feeding one prepared INSERT.

use super::{peak_rss_mb, seconds, Engine, Figure};
use crate::import::{self, Format};
use crate::model::*;
use crate::SqliteStore;
use rusqlite::params;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The database the import fills, which the console and reads stages then use.
pub const DB: &str = "engine";
pub const QUEUE: &str = "invoices";

pub async fn figures(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    // The engine first, in a fresh process, so the peak memory is its own.
    let (secs, rows) = import_engine(&dir.join("bench.csv"), dir, engine).await?;
    let engine_mb = peak_rss_mb();
    let (bsecs, brows, goal, how) = if engine.name == "postgres" {
        let (s, n) = super::pg::import_baseline(&dir.join("bench.csv"), "import-baseline").await?;
        (
            s,
            n,
            "≥ 150,000",
            "baseline: csv crate + COPY into the same table, one transaction",
        )
    } else {
        let base_db = dir.join("baseline.db");
        super::fresh(&base_db);
        let (s, n) = import_baseline(&dir.join("bench.csv"), &base_db)?;
        (
            s,
            n,
            "≥ 300,000",
            "baseline: csv crate + one prepared INSERT, one transaction",
        )
    };
    Ok(vec![
        Figure {
            what: format!("import {rows} CSV rows"),
            engine: rows as f64 / secs,
            baseline: Some(brows as f64 / bsecs),
            unit: "rows/s".into(),
            goal: goal.into(),
            note: how.into(),
        },
        Figure {
            what: "import peak memory (process)".into(),
            engine: engine_mb,
            baseline: None,
            unit: "MB".into(),
            goal: "≤ 200".into(),
            note: if engine.name == "postgres" {
                "VmHWM of the workq process after the import (the server's memory is its own)"
            } else {
                "VmHWM after the import; includes SQLite's 64 MB page cache"
            }
            .into(),
        },
    ])
}

/// A realistic CSV of vendor invoices: name, JSON value, unique key.
/// Written beside `path` and renamed into place, so an interrupted run leaves no half file
/// that a later stage would take for whole.
pub fn write_csv(path: &Path, rows: u64) -> std::io::Result<()> {
    let part = path.with_extension("csv.part");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&part)?);
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
    w.flush()?;
    drop(w);
    std::fs::rename(&part, path)
}

/// Import through the engine: the CLI's path (parser thread + store import).
async fn import_engine(csv: &Path, dir: &Path, engine: &Engine) -> Result<(f64, u64), String> {
    let store = engine.fresh(dir, DB)?;
    store
        .create_queue(
            QUEUE,
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
        .import(QUEUE, ImportOptions::default(), rx, "bench")
        .await
        .map_err(|e| e.to_string())?;
    parser.await.map_err(|e| e.to_string())??;
    Ok((seconds(started.elapsed()), report.imported))
}

/// The same import as a plain loop: csv crate records into one prepared INSERT, one transaction.
fn import_baseline(csv: &Path, db: &Path) -> Result<(f64, u64), String> {
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
