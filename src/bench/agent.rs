//! The worker agent's throughput with a no-op command (`true`): `workq work --run-once`
//! through the engine, beside a bare loop that forks and execs the same command as many
//! times, as many at once, in the same run.

use super::{Engine, Figure};
use crate::model::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Spawns dominate: more items than this would only make the stage long.
const MOST: u64 = 2_000;

pub async fn figures(
    dir: &Path,
    engine: &Engine,
    items: u64,
    workers: usize,
) -> Result<Vec<Figure>, String> {
    let n = items.clamp(1, MOST);
    let e = |e: crate::Error| e.to_string();
    let store = engine.fresh(dir, "agent")?;
    store
        .create_queue("agent", Default::default())
        .await
        .map_err(e)?;
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        let batch = (0..k)
            .map(|i| NewItem {
                value: format!("{{\"n\":{i}}}"),
                ..Default::default()
            })
            .collect();
        store.add_items("agent", batch, "bench").await.map_err(e)?;
        left -= k;
    }
    // The baseline runs half before the agent and half after it, so a machine that gets
    // busier or quieter during the run weighs on both alike.
    let before = bare(n / 2, workers).await;
    let started = Instant::now();
    let code = crate::worker::run(
        store.clone(),
        crate::worker::Options {
            prefetch: None,
            queues: vec!["agent".into()],
            concurrency: workers as u32,
            timeout: None,
            run_once: true,
            name: "bench".into(),
            grace: Duration::from_secs(30),
            command: vec!["true".into()],
            exits: Default::default(),
        },
    )
    .await?;
    let agent = started.elapsed().as_secs_f64();
    if code != 0 {
        return Err("the agent saw an item fail".into());
    }
    let q = store.queue("agent").await.map_err(e)?;
    if q.counts.processed != n {
        return Err(format!("the agent processed {} of {n}", q.counts.processed));
    }
    let after = bare(n - n / 2, workers).await;
    let bare = before + after;
    Ok(vec![Figure {
        what: format!("agent, `true`, concurrency {workers} ({})", engine.name),
        engine: n as f64 / agent,
        baseline: Some(n as f64 / bare),
        unit: "items/s".into(),
        goal: "≥ 0.8× bare fork/exec".into(),
        note: format!(
            "{n} items, run-once; baseline: bare spawn loop, half before the agent, half after"
        ),
    }])
}

/// Seconds to fork and exec `true` `n` times, `workers` at a time, nothing else.
async fn bare(n: u64, workers: usize) -> f64 {
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..n {
        if running.len() >= workers {
            running.join_next().await;
        }
        running.spawn(async {
            tokio::process::Command::new("true")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .status()
                .await
        });
    }
    while running.join_next().await.is_some() {}
    started.elapsed().as_secs_f64()
}
