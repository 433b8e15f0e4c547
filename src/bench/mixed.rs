//! The mixed steady state, as production looks: 16 workers taking one item per call and
//! handling each for 0–5 ms, a producer adding items at a fixed rate, a console refreshing
//! a page of items and the queue list every 700 ms, and a person acting on a few hundred
//! items every few seconds. What counts is what is sustained and how long calls wait.

use super::{Engine, Figure};
use crate::model::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 16;
/// The producer adds a batch this often, so its rate is steady, not one burst a second.
const TICK: Duration = Duration::from_millis(10);
const CONSOLE_EVERY: Duration = Duration::from_millis(700);
const BULK_EVERY: Duration = Duration::from_secs(3);
const BULK_ITEMS: u32 = 300;

/// Runs for `items / rate` seconds (at least one), adding `rate` items a second.
pub async fn figures(
    dir: &Path,
    engine: &Engine,
    items: u64,
    rate: u64,
) -> Result<Vec<Figure>, String> {
    let e = |e: crate::Error| e.to_string();
    let rate = rate.max(1);
    let run_for = Duration::from_secs_f64((items as f64 / rate as f64).max(1.0));
    let store = engine.fresh(dir, "mixed")?;
    store
        .create_queue("mixed", Default::default())
        .await
        .map_err(e)?;
    let stop = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicU64::new(0));
    let dequeue_ms = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();

    let producer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut added = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // What the schedule says should be in by now, so a late tick catches up.
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                let n = due.saturating_sub(added);
                if n == 0 {
                    continue;
                }
                let batch = (0..n)
                    .map(|i| NewItem {
                        value: format!("{{\"n\":{}}}", added + i),
                        ..Default::default()
                    })
                    .collect();
                store.add_items("mixed", batch, "producer").await?;
                added += n;
            }
            Ok::<_, crate::Error>(added)
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            let (processed, dequeue_ms) = (processed.clone(), dequeue_ms.clone());
            tokio::spawn(async move {
                let name = format!("mixed-{w}");
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let got = store
                        .dequeue(DequeueRequest {
                            queues: vec!["mixed".into()],
                            worker: name.clone(),
                            count: 1,
                            // No long poll: what is timed is the call, not a wait for work.
                            wait: Duration::ZERO,
                        })
                        .await?;
                    let Some(lease) = got.leases.into_iter().next() else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    };
                    mine.push(asked.elapsed().as_secs_f64() * 1000.0);
                    let handling = fastrand::u64(0..=5);
                    tokio::time::sleep(Duration::from_millis(handling)).await;
                    let r = store.finish(vec![lease.outcome(None, None)], &name).await?;
                    if r.into_iter().all(|r| r.is_ok()) {
                        processed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                dequeue_ms.lock().expect("latencies").extend(mine);
                Ok::<_, crate::Error>(())
            })
        })
        .collect();

    let console = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = Instant::now();
                let filter = Filter {
                    queue: Some("mixed".into()),
                    ..Default::default()
                };
                let page = PageRequest {
                    limit: 50,
                    ..Default::default()
                };
                store.items(filter, page).await?;
                store.queues().await?;
                reads.push(s.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(CONSOLE_EVERY).await;
            }
            Ok::<_, crate::Error>(reads)
        })
    };

    // A person holds a few hundred queued items, and releases them the next time round.
    let person = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut held: Option<Vec<String>> = None;
            let mut acts = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(BULK_EVERY).await;
                let (ids, action) = match held.take() {
                    Some(ids) => (ids, ActionKind::Release),
                    None => {
                        let filter = Filter {
                            queue: Some("mixed".into()),
                            statuses: vec![Status::Queued],
                            ..Default::default()
                        };
                        let page = PageRequest {
                            limit: BULK_ITEMS,
                            ..Default::default()
                        };
                        let ids: Vec<String> = store
                            .items(filter, page)
                            .await?
                            .items
                            .into_iter()
                            .map(|i| i.id)
                            .collect();
                        held = Some(ids.clone());
                        (ids, ActionKind::Hold)
                    }
                };
                if ids.is_empty() {
                    continue;
                }
                store
                    .act(ActionRequest {
                        target: Target::Ids(ids),
                        action,
                        note: Some("bench".into()),
                        actor: "person".into(),
                        // Some were taken meanwhile: those are skipped, as the console does.
                        skip_refused: true,
                    })
                    .await?;
                acts += 1;
            }
            Ok::<_, crate::Error>(acts)
        })
    };

    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let added = producer.await.map_err(|e| e.to_string())?.map_err(e)?;
    for w in workers {
        w.await.map_err(|e| e.to_string())?.map_err(e)?;
    }
    let reads = console.await.map_err(|e| e.to_string())?.map_err(e)?;
    let acts = person.await.map_err(|e| e.to_string())?.map_err(e)?;
    let done = processed.load(Ordering::Relaxed);
    let lat = std::mem::take(&mut *dequeue_ms.lock().expect("latencies"));
    if lat.is_empty() || reads.is_empty() {
        return Err("mixed: nothing was taken or read".into());
    }
    let what = |w: &str| format!("mixed, {rate}/s offered, 16 workers: {w}");
    let note = format!(
        "{added} added, {done} processed in {secs:.1} s, {acts} bulk actions, {} console refreshes",
        reads.len()
    );
    Ok(vec![
        Figure {
            what: what("sustained"),
            engine: done as f64 / secs,
            baseline: Some(added as f64 / secs),
            unit: "items/s".into(),
            goal: format!("≥ {}", crate::text::thousands(rate)),
            note: format!("baseline: the rate items were added at; {note}"),
        },
        Figure {
            what: what("dequeue p50"),
            engine: percentile(lat.clone(), 0.50),
            baseline: None,
            unit: "ms".into(),
            goal: "-".into(),
            note: format!("{} dequeues that found work", lat.len()),
        },
        Figure {
            what: what("dequeue p99"),
            engine: percentile(lat, 0.99),
            baseline: None,
            unit: "ms".into(),
            goal: "≤ 5".into(),
            note: String::new(),
        },
        Figure {
            what: what("console read p99"),
            engine: percentile(reads, 0.99),
            baseline: None,
            unit: "ms".into(),
            goal: "≤ 20".into(),
            note: "a page of 50 items and the queue list".into(),
        },
    ])
}

fn percentile(mut t: Vec<f64>, p: f64) -> f64 {
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let i = ((t.len() as f64 - 1.0) * p).round() as usize;
    t[i.min(t.len() - 1)]
}
