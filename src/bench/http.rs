//! The full cycle over HTTP: a `workq serve` on 127.0.0.1 in this process, workers taking
//! and completing items through it with reqwest (one item per request, and batches of 32),
//! beside the same cycle in-process on the same engine in the same run.

use super::{seconds, Engine, Figure};
use crate::api;
use crate::model::*;
use crate::token::Role;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Most items a one-per-request run takes: two requests an item.
const ONE_BY_ONE: u64 = 20_000;
/// The producer's batches, over HTTP and in-process alike: the figure is the workers'.
const PRODUCE: u32 = 100;

pub async fn figures(
    dir: &Path,
    engine: &Engine,
    items: u64,
    workers: usize,
) -> Result<Vec<Figure>, String> {
    let items = items.min(ONE_BY_ONE);
    let mut out = Vec::new();
    for batch in [1u32, 32] {
        let local = engine.fresh(dir, &format!("http-local-{workers}-{batch}"))?;
        let base = super::cycle::cycle_engine(local, items, workers, 1, batch, PRODUCE).await?;
        let remote = engine.fresh(dir, &format!("http-{workers}-{batch}"))?;
        let rate = cycle_http(remote, items, workers, batch).await?;
        let goal = match (workers, batch) {
            (1, 1) => "≥ 4,000",
            (_, 1) => "≥ 15,000",
            _ => "≥ 50,000",
        };
        out.push(Figure {
            what: format!(
                "full cycle over HTTP, {workers} worker{}, {}",
                if workers == 1 { "" } else { "s" },
                if batch == 1 {
                    "one item per request".to_string()
                } else {
                    format!("batches of {batch}")
                }
            ),
            engine: rate,
            baseline: Some(base),
            unit: "items/s".into(),
            goal: goal.into(),
            note: "baseline: the same cycle in-process".into(),
        });
    }
    Ok(out)
}

async fn cycle_http(
    store: Arc<dyn crate::Backend>,
    items: u64,
    workers: usize,
    batch: u32,
) -> Result<f64, String> {
    let e = |e: crate::Error| e.to_string();
    store
        .create_queue("cycle", Default::default())
        .await
        .map_err(e)?;
    let token = store
        .create_token("bench", Role::Admin)
        .await
        .map_err(e)?
        .token;
    let args = crate::server::ServeArgs {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let server = crate::server::start(store.clone(), &args).await?;
    let url = server.url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers + 1)
        .build()
        .map_err(|e| e.to_string())?;
    let post = {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        move |path: &'static str, body: serde_json::Value| {
            let req = client
                .post(format!("{url}{path}"))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let r = req.send().await.map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("{path}: {}", r.text().await.unwrap_or_default()));
                }
                r.bytes().await.map_err(|e| e.to_string())
            }
        }
    };
    let started = Instant::now();
    let producer = {
        let post = post.clone();
        tokio::spawn(async move {
            let mut left = items;
            while left > 0 {
                let n = left.min(PRODUCE as u64);
                let batch: Vec<_> = (0..n)
                    .map(|i| json!({"value": format!("{{\"n\":{i}}}")}))
                    .collect();
                post("/v1/queues/cycle/items", json!({"items": batch})).await?;
                left -= n;
            }
            Ok::<_, String>(())
        })
    };
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (post, done) = (post.clone(), done.clone());
            tokio::spawn(async move {
                let worker = format!("bench-{w}");
                while done.load(Ordering::Relaxed) < items {
                    let got = post(
                        "/v1/dequeue",
                        json!({"queues": ["cycle"], "worker": worker, "count": batch, "wait": 50}),
                    )
                    .await?;
                    let got: Dequeued = serde_json::from_slice(&got).map_err(|e| e.to_string())?;
                    if got.leases.is_empty() {
                        continue;
                    }
                    if batch == 1 {
                        let l = &got.leases[0];
                        post(
                            "/v1/complete",
                            json!({"id": l.item.id, "lease": l.lease, "worker": worker}),
                        )
                        .await?;
                    } else {
                        let outcomes: Vec<Outcome> =
                            got.leases.iter().map(|l| l.outcome(None, None)).collect();
                        let r = post(
                            "/v1/finish",
                            json!({"outcomes": outcomes, "worker": worker}),
                        )
                        .await?;
                        let each: Vec<api::Each<Finished>> =
                            serde_json::from_slice(&r).map_err(|e| e.to_string())?;
                        if let Some(api::Each::Error(e)) =
                            each.into_iter().find(|x| matches!(x, api::Each::Error(_)))
                        {
                            return Err(e.to_string());
                        }
                    }
                    done.fetch_add(got.leases.len() as u64, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    producer.await.map_err(|e| e.to_string())??;
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    let secs = seconds(started.elapsed());
    server.stop(std::time::Duration::from_secs(5)).await?;
    let c = store.queue("cycle").await.map_err(e)?.counts;
    if c.processed != items {
        return Err(format!(
            "cycle ended with {c:?}, expected {items} processed"
        ));
    }
    Ok(items as f64 / secs)
}
