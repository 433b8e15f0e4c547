//! Steady load: the full cycle, one item per call (`--batch`), for `--minutes` on end, to
//! see whether the engine slows as finished items and dead row versions pile up (bloat).
//! Producers keep a backlog of about `BACKLOG` items, so workers never wait for work and
//! the queue never grows without bound; throughput is read every window (a minute, or
//! half the run when shorter). The figure is the last window beside the first.

use super::{seconds, Engine, Figure};
use crate::model::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Items waiting that the producers keep topping up.
const BACKLOG: u64 = 2_000;

pub async fn figures(
    dir: &Path,
    engine: &Engine,
    minutes: f64,
    workers: usize,
    batch: u32,
) -> Result<Vec<Figure>, String> {
    if !(minutes.is_finite() && minutes > 0.0) {
        return Err(format!("--minutes {minutes}: give a length above 0"));
    }
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let window = Duration::from_secs(60).min(run_for / 2);
    let store = engine.fresh(dir, &format!("steady-{workers}"))?;
    store
        .create_queue("steady", Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let added = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..workers)
        .map(|_| {
            let (store, added, done, stop) =
                (store.clone(), added.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let waiting = added.load(Ordering::Relaxed) - done.load(Ordering::Relaxed);
                    if waiting >= BACKLOG {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    let n = batch as u64;
                    let items = (0..n)
                        .map(|i| NewItem {
                            value: format!("{{\"n\":{i}}}"),
                            ..Default::default()
                        })
                        .collect();
                    store.add_items("steady", items, "producer").await?;
                    added.fetch_add(n, Ordering::Relaxed);
                }
                Ok::<_, crate::Error>(())
            })
        })
        .collect();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let name = format!("steady-{w}");
                while !stop.load(Ordering::Relaxed) {
                    let n =
                        super::cycle::take_and_complete(&*store, "steady", &name, batch).await?;
                    done.fetch_add(n, Ordering::Relaxed);
                }
                Ok::<_, crate::Error>(())
            })
        })
        .collect();
    // Items per second in each window, read off the workers' tally.
    let started = Instant::now();
    let mut rates = Vec::new();
    let (mut at, mut last) = (started, 0u64);
    while started.elapsed() + window / 2 < run_for {
        tokio::time::sleep_until((at + window).into()).await;
        let now = Instant::now();
        let d = done.load(Ordering::Relaxed);
        rates.push((d - last) as f64 / seconds(now - at));
        (at, last) = (now, d);
    }
    stop.store(true, Ordering::Relaxed);
    for h in producers.into_iter().chain(handles) {
        h.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let (first, end) = (rates[0], *rates.last().expect("two windows at least"));
    let per_window: Vec<String> = rates
        .iter()
        .map(|r| crate::text::thousands(r.round() as u64))
        .collect();
    Ok(vec![Figure {
        what: format!(
            "steady cycle for {minutes} min, {workers} workers, batches of {batch}: last window"
        ),
        engine: end,
        baseline: Some(first),
        unit: "items/s".into(),
        goal: "within 10 % of the first minute".into(),
        note: format!(
            "baseline: the same run's first window ({} s each): {} items/s; {} processed",
            window.as_secs(),
            per_window.join(" · "),
            crate::text::thousands(done.load(Ordering::Relaxed))
        ),
    }])
}
