//! A bulk action: a person requeues every item of a queue at once, then undoes it;
//! beside the bare statements a hand-written bulk requeue needs.

use super::engine::sqlite_file;
use super::{Engine, Figure};
use crate::model::*;
use std::path::Path;

/// A person requeues `n` items at once (they were imported on hold), and undoes it.
pub async fn figures(dir: &Path, engine: &Engine, n: u64) -> Result<Vec<Figure>, String> {
    let e = |e: crate::Error| e.to_string();
    let csv = dir.join("bulk.csv");
    {
        use std::io::Write;
        let mut w =
            std::io::BufWriter::new(std::fs::File::create(&csv).map_err(|e| e.to_string())?);
        writeln!(w, "name,value,status").map_err(|e| e.to_string())?;
        for i in 0..n {
            writeln!(w, "I-{i},\"{{\"\"InvoiceId\"\":\"\"I-{i}\"\"}}\",on-hold")
                .map_err(|e| e.to_string())?;
        }
    }
    let store = engine.fresh(dir, "bulk")?;
    store
        .create_queue("invoices", Default::default())
        .await
        .map_err(e)?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let parser = tokio::task::spawn_blocking(move || {
        crate::import::parse(
            &csv,
            crate::import::Format::Csv,
            &Default::default(),
            tx,
            &|_| {},
        )
    });
    store
        .import("invoices", ImportOptions::default(), rx, "bench")
        .await
        .map_err(e)?;
    parser.await.map_err(|e| e.to_string())??;
    let held = Filter {
        queue: Some("invoices".into()),
        statuses: vec![Status::OnHold],
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let requeue = ActionKind::Requeue {
        delay: None,
        value: None,
    };
    let preview = store
        .preview(Target::Filter(held.clone()), Some(requeue.clone()), 5)
        .await
        .map_err(e)?;
    let r = store
        .act(ActionRequest {
            target: Target::Filter(held),
            action: requeue,
            note: Some("vendor master fixed".into()),
            actor: "user:bench".into(),
            skip_refused: false,
        })
        .await
        .map_err(e)?;
    let engine_ms = started.elapsed().as_secs_f64() * 1000.0;
    if preview.count != n || r.touched != n {
        return Err(format!("bulk touched {} of {n}", r.touched));
    }
    let started = std::time::Instant::now();
    store
        .undo(UndoRequest::new(r.action_id, "user:bench"))
        .await
        .map_err(e)?;
    let undo_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    // Baseline: the bare statements a hand-written bulk requeue needs (status + history).
    let raw = rusqlite::Connection::open(sqlite_file(dir, "bulk")).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    raw.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status, note)
           SELECT seq, queue_id, 0, 'user:bench', 'requeue', 'on-hold', 'queued', 'vendor master fixed'
           FROM items WHERE queue_id = 1 AND status = 'on-hold';
         UPDATE items SET status = 'queued', requeue_count = requeue_count + 1, version = version + 1
           WHERE queue_id = 1 AND status = 'on-hold';
         COMMIT;",
    )
    .map_err(|e| e.to_string())?;
    let base_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(vec![
        Figure {
            what: format!("bulk requeue of {n} items (preview + apply)"),
            engine: engine_ms,
            baseline: Some(base_ms),
            unit: "ms".into(),
            goal: "≤ 2,000".into(),
            note: "with undo records and notes; baseline: bare UPDATE + history INSERT…SELECT"
                .into(),
        },
        Figure {
            what: format!("undo of that bulk requeue ({n} items)"),
            engine: undo_ms,
            baseline: None,
            unit: "ms".into(),
            goal: "-".into(),
            note: "checks every item is unchanged, then restores".into(),
        },
    ])
}
