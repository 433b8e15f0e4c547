//! Latencies over HTTP, each beside the same measurement in-process in the same run:
//! dequeue latency at half of the measured peak (open-loop pacing), enqueue to delivery to
//! a waiting long poll, and SSE fan-out lag to 50 clients while 5,000 changes a second are
//! made. Stage `http-latency`.

use super::{Engine, Figure};
use crate::model::*;
use crate::token::Role;
use crate::Backend;
use futures::StreamExt;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent one-item cycles while the peak is measured.
const PEAK_TASKS: usize = 8;
/// Dequeues in the peak run, and at most in the paced run.
const PEAK_OPS: u64 = 3_000;
/// How long the paced run offers its rate.
const PACED: Duration = Duration::from_secs(4);
/// Items added one at a time to a queue long pollers wait on, and the pollers.
const DELIVERIES: usize = 300;
const POLLERS: usize = 4;
/// SSE fan-out: clients, changes a second (one add call each), queues they go to (one
/// producer task each, so a queue's events come in its calls' order), and for how long.
const SSE_CLIENTS: usize = 50;
const CHANGES_PER_SEC: u64 = 5_000;
const SSE_QUEUES: usize = 50;
const SSE_RUN: Duration = Duration::from_secs(6);

/// Where calls go: the engine itself, or a server over HTTP.
#[derive(Clone)]
enum Via {
    Local(Arc<dyn Backend>),
    Http {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

impl Via {
    async fn post(&self, path: &str, body: serde_json::Value) -> Result<Vec<u8>, String> {
        let Via::Http { client, url, token } = self else {
            unreachable!("post is over HTTP")
        };
        let r = client
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let b = r.bytes().await.map_err(|e| e.to_string())?;
        if !ok {
            return Err(format!("{path}: {}", String::from_utf8_lossy(&b)));
        }
        Ok(b.to_vec())
    }

    async fn dequeue(&self, queue: &str, worker: &str, wait_ms: u64) -> Result<Vec<Lease>, String> {
        match self {
            Via::Local(s) => Ok(s
                .dequeue(DequeueRequest {
                    queues: vec![queue.into()],
                    worker: worker.into(),
                    count: 1,
                    wait: Duration::from_millis(wait_ms),
                })
                .await
                .map_err(|e| e.to_string())?
                .leases),
            Via::Http { .. } => {
                let b = self
                    .post(
                        "/v1/dequeue",
                        json!({"queues": [queue], "worker": worker, "count": 1, "wait": wait_ms}),
                    )
                    .await?;
                let d: Dequeued = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                Ok(d.leases)
            }
        }
    }

    async fn complete(&self, l: &Lease, worker: &str) -> Result<(), String> {
        match self {
            Via::Local(s) => {
                let r = s
                    .finish(vec![l.outcome(None, None)], worker)
                    .await
                    .map_err(|e| e.to_string())?;
                r.into_iter()
                    .next()
                    .ok_or("no outcome")?
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
            Via::Http { .. } => self
                .post(
                    "/v1/complete",
                    json!({"id": l.item.id, "lease": l.lease, "worker": worker}),
                )
                .await
                .map(drop),
        }
    }

    async fn add(&self, queue: &str, value: String) -> Result<(), String> {
        match self {
            Via::Local(s) => s
                .add_items(
                    queue,
                    vec![NewItem {
                        value,
                        ..Default::default()
                    }],
                    "producer",
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Via::Http { .. } => self
                .post(
                    &format!("/v1/queues/{queue}/items"),
                    json!({"items": [{"value": value}]}),
                )
                .await
                .map(drop),
        }
    }
}

/// A server on `store` and a client of it.
async fn serve(store: &Arc<dyn Backend>) -> Result<(crate::server::Running, Via), String> {
    let token = store
        .create_token("bench", Role::Admin)
        .await
        .map_err(|e| e.to_string())?
        .token;
    let args = crate::server::ServeArgs {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let server = crate::server::start(store.clone(), &args).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let via = Via::Http {
        client,
        url: server.url.clone(),
        token,
    };
    Ok((server, via))
}

async fn fill(store: &Arc<dyn Backend>, queue: &str, n: u64) -> Result<(), String> {
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        let items = (0..k)
            .map(|i| NewItem {
                value: format!("{{\"n\":{i}}}"),
                ..Default::default()
            })
            .collect();
        store
            .add_items(queue, items, "producer")
            .await
            .map_err(|e| e.to_string())?;
        left -= k;
    }
    Ok(())
}

/// Percentile `p` (0–100) of some milliseconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn figures(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    let mut out = dequeue_latency(dir, engine).await?;
    out.extend(delivery(dir, engine).await?);
    out.extend(fan_out(dir, engine).await?);
    Ok(out)
}

// ------------------------------------------------------------------ dequeue latency

/// One-item cycles (dequeue, complete) by `tasks` at once, closed loop: cycles a second.
async fn peak(via: &Via, ops: u64, tasks: usize) -> Result<f64, String> {
    let left = Arc::new(AtomicU64::new(ops));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (via, left) = (via.clone(), left.clone());
            tokio::spawn(async move {
                let worker = format!("peak-{t}");
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let got = via.dequeue("lat", &worker, 0).await?;
                    let l = got.first().ok_or("the queue ran dry in the peak run")?;
                    via.complete(l, &worker).await?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok(ops as f64 / super::seconds(started.elapsed()))
}

/// Open loop: a dequeue (then its completion) started every 1/`rate` s whether or not the
/// ones before have answered; each dequeue's time from its start to its answer, in ms.
async fn paced(via: &Via, rate: f64, n: u64) -> Result<Vec<f64>, String> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(n as usize);
    for k in 0..n {
        tokio::time::sleep_until(start + interval * k as u32).await;
        let via = via.clone();
        handles.push(tokio::spawn(async move {
            // Timed from when it is sent, not from its slot: the timer's own millisecond
            // of slack is not the server's.
            let sent = Instant::now();
            let got = via.dequeue("lat", "paced", 0).await?;
            let took = ms(sent.elapsed());
            let l = got.first().ok_or("the queue ran dry in the paced run")?;
            via.complete(l, "paced").await?;
            Ok::<_, String>(took)
        }));
    }
    let mut t = Vec::with_capacity(n as usize);
    for h in handles {
        t.push(h.await.map_err(|e| e.to_string())??);
    }
    Ok(t)
}

async fn dequeue_latency(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    let e = |e: crate::Error| e.to_string();
    // HTTP: the peak, then half of it, paced.
    let store = engine.fresh(dir, "http-latency")?;
    store
        .create_queue("lat", Default::default())
        .await
        .map_err(e)?;
    fill(&store, "lat", PEAK_OPS).await?;
    let (server, http) = serve(&store).await?;
    let top = peak(&http, PEAK_OPS, PEAK_TASKS).await?;
    let rate = top / 2.0;
    let n = ((rate * PACED.as_secs_f64()) as u64).clamp(100, PEAK_OPS);
    fill(&store, "lat", n).await?;
    let remote = sorted(paced(&http, rate, n).await?);
    server.stop(Duration::from_secs(5)).await?;
    // In-process: the same rate, on a fresh engine.
    let store = engine.fresh(dir, "local-latency")?;
    store
        .create_queue("lat", Default::default())
        .await
        .map_err(e)?;
    fill(&store, "lat", PEAK_OPS + n).await?;
    let local = Via::Local(store);
    let local_top = peak(&local, PEAK_OPS, PEAK_TASKS).await?;
    let base = sorted(paced(&local, rate, n).await?);
    let note = format!(
        "open loop at {rate:.0}/s = half the HTTP peak of {top:.0} one-item cycles/s \
         ({PEAK_TASKS} at once; in-process peak {local_top:.0}/s); {n} dequeues; \
         baseline: in-process at the same rate"
    );
    Ok(medians_and_tails(
        "dequeue latency over HTTP at half the peak",
        &remote,
        &base,
        "≤ 2 ms",
        note,
    ))
}

// ------------------------------------------------------------------ enqueue to delivery

/// `POLLERS` workers in long-poll dequeues; items added one at a time; for each, the time
/// from its add being sent to its lease reaching a poller, in ms.
async fn deliveries(via: &Via) -> Result<Vec<f64>, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let pollers: Vec<_> = (0..POLLERS)
        .map(|p| {
            let (via, tx) = (via.clone(), tx.clone());
            tokio::spawn(async move {
                let worker = format!("poller-{p}");
                loop {
                    let got = via.dequeue("lp", &worker, 10_000).await?;
                    let arrived = Instant::now();
                    for l in got {
                        let v: serde_json::Value =
                            serde_json::from_str(&l.item.value).map_err(|e| e.to_string())?;
                        let n = v["n"].as_u64().ok_or("an item without n")?;
                        let _ = tx.send((n, arrived));
                        via.complete(&l, &worker).await?;
                    }
                }
                #[allow(unreachable_code)]
                Ok::<_, String>(())
            })
        })
        .collect();
    // Let every poller be waiting before the first add.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut t = Vec::with_capacity(DELIVERIES);
    let mut failed = None;
    for n in 0..DELIVERIES as u64 {
        // A little room for the poller that took the last item to be waiting again
        // (the others are waiting all along).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent = Instant::now();
        if let Err(e) = via.add("lp", format!("{{\"n\":{n}}}")).await {
            failed = Some(e);
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((got, at))) if got == n => t.push(ms(at - sent)),
            other => {
                failed = Some(format!("item {n} was not delivered as expected: {other:?}"));
                break;
            }
        }
    }
    for p in pollers {
        p.abort();
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(1), p)
            .await
            .map(|r| r.map_err(drop))
        {
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

async fn delivery(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    let e = |e: crate::Error| e.to_string();
    let store = engine.fresh(dir, "http-delivery")?;
    store
        .create_queue("lp", Default::default())
        .await
        .map_err(e)?;
    let (server, http) = serve(&store).await?;
    let remote = sorted(deliveries(&http).await?);
    server.stop(Duration::from_secs(5)).await?;
    let store = engine.fresh(dir, "local-delivery")?;
    store
        .create_queue("lp", Default::default())
        .await
        .map_err(e)?;
    let base = sorted(deliveries(&Via::Local(store)).await?);
    let note = format!(
        "{DELIVERIES} items added one at a time, {POLLERS} workers in long polls; add sent → \
         lease at a worker; baseline: the same in-process"
    );
    Ok(medians_and_tails(
        "enqueue to delivery to a waiting long poll",
        &remote,
        &base,
        "≤ 5 ms",
        note,
    ))
}

// ------------------------------------------------------------------ SSE fan-out

/// When each producer's calls were sent, in µs since the run's start (0: not yet).
struct Sent {
    start: Instant,
    calls: Vec<Vec<AtomicU64>>,
}

impl Sent {
    /// The lag of the `j`th event of queue `q` seen now: (sent at, lag) in ms.
    fn lag(&self, q: usize, j: usize) -> Option<(f64, f64)> {
        let at = self.calls.get(q)?.get(j)?.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        let now = self.start.elapsed().as_micros() as u64;
        Some((at as f64 / 1000.0, now.saturating_sub(at) as f64 / 1000.0))
    }
}

/// The N of queue `sse-N` in an event's JSON (`{"type":"items","queue":"sse-N",…}`).
fn queue_index(data: &str) -> Option<usize> {
    let at = data.find("\"queue\":\"sse-")? + 13;
    let rest = &data[at..];
    rest[..rest.find('"')?].parse().ok()
}

/// What one reader saw: (sent at, lag) per event, and events it could not place.
#[derive(Default)]
struct Seen {
    lags: Vec<(f64, f64)>,
    strays: u64,
    refetches: u64,
}

fn record(seen: &mut Seen, next: &mut [usize], sent: &Sent, q: Option<usize>) {
    match q.and_then(|q| {
        let j = *next.get(q)?;
        next[q] += 1;
        sent.lag(q, j)
    }) {
        Some(l) => seen.lags.push(l),
        None => seen.strays += 1,
    }
}

/// Producers making `CHANGES_PER_SEC` one-item adds a second, spread over `SSE_QUEUES`
/// queues, each queue's calls in order; returns the changes made.
async fn produce(store: &Arc<dyn Backend>, sent: Arc<Sent>) -> Result<u64, String> {
    let per_queue = CHANGES_PER_SEC as f64 / SSE_QUEUES as f64;
    let interval = Duration::from_secs_f64(1.0 / per_queue);
    let calls = sent.calls[0].len();
    let made = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..SSE_QUEUES)
        .map(|q| {
            let (store, sent, made) = (store.clone(), sent.clone(), made.clone());
            tokio::spawn(async move {
                let name = format!("sse-{q}");
                let start = tokio::time::Instant::now()
                    + Duration::from_micros((q as u64 * 997) % interval.as_micros() as u64);
                let end = Instant::now() + SSE_RUN;
                for j in 0..calls {
                    tokio::time::sleep_until(start + interval * j as u32).await;
                    if Instant::now() >= end {
                        break;
                    }
                    sent.calls[q][j].store(
                        (sent.start.elapsed().as_micros() as u64).max(1),
                        Ordering::Relaxed,
                    );
                    store
                        .add_items(
                            &name,
                            vec![NewItem {
                                value: "{}".into(),
                                ..Default::default()
                            }],
                            "producer",
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    made.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok(made.load(Ordering::Relaxed))
}

/// One SSE client: reads `/v1/events` until `stop`, placing each items event.
async fn sse_client(via: Via, sent: Arc<Sent>, ready: Arc<AtomicUsize>) -> Result<Seen, String> {
    let Via::Http { client, url, token } = via else {
        unreachable!("SSE is over HTTP")
    };
    let r = client
        .get(format!("{url}/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("/v1/events: {}", r.status()));
    }
    ready.fetch_add(1, Ordering::Relaxed);
    let mut body = r.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = Seen::default();
    let mut next = vec![0usize; SSE_QUEUES];
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 2);
            let event = frame.lines().find_map(|l| l.strip_prefix("event:"));
            let data = frame.lines().find_map(|l| l.strip_prefix("data:"));
            match event.map(str::trim) {
                Some("items") => record(&mut seen, &mut next, &sent, data.and_then(queue_index)),
                Some("shutdown") => return Ok(seen),
                Some(crate::api::EVENT_REFETCH) => seen.refetches += 1,
                _ => {}
            }
        }
    }
    Ok(seen)
}

async fn fan_out(dir: &Path, engine: &Engine) -> Result<Vec<Figure>, String> {
    let store = engine.fresh(dir, "http-sse")?;
    for q in 0..SSE_QUEUES {
        store
            .create_queue(&format!("sse-{q}"), Default::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    let calls = (CHANGES_PER_SEC as f64 / SSE_QUEUES as f64 * SSE_RUN.as_secs_f64()) as usize + 1;
    let sent = Arc::new(Sent {
        start: Instant::now(),
        calls: (0..SSE_QUEUES)
            .map(|_| (0..calls).map(|_| AtomicU64::new(0)).collect())
            .collect(),
    });
    // In-process: a reader of the engine's own feed, the same placing of events.
    let mut feed = store.subscribe();
    let local = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut next = vec![0usize; SSE_QUEUES];
            loop {
                match feed.recv().await {
                    Ok(Event::Items { queue, .. }) => {
                        let q = queue.strip_prefix("sse-").and_then(|n| n.parse().ok());
                        record(&mut seen, &mut next, &sent, q)
                    }
                    Ok(Event::Queue { queue }) if queue == "stop" => return seen,
                    Ok(_) => {}
                    Err(crate::backend::Gap::Lagged(_) | crate::backend::Gap::Changed) => {
                        seen.refetches += 1
                    }
                    Err(_) => return seen,
                }
            }
        })
    };
    let (server, http) = serve(&store).await?;
    let ready = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..SSE_CLIENTS)
        .map(|_| tokio::spawn(sse_client(http.clone(), sent.clone(), ready.clone())))
        .collect();
    while ready.load(Ordering::Relaxed) < SSE_CLIENTS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let made = produce(&store, sent.clone()).await?;
    // A queue event after every change: the in-process reader stops there.
    store
        .create_queue("stop", Default::default())
        .await
        .map_err(|e| e.to_string())?;
    // Room for the streams to drain what they still hold, then a graceful stop ends them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop(Duration::from_secs(5)).await?;
    let mut remote = Vec::new();
    let (mut strays, mut refetches, mut short) = (0u64, 0u64, 0usize);
    let mut worst_p99 = 0f64;
    for c in clients {
        let seen = c.await.map_err(|e| e.to_string())??;
        strays += seen.strays;
        refetches += seen.refetches;
        if (seen.lags.len() as u64) < made {
            short += 1;
        }
        let own = sorted(seen.lags.iter().map(|l| l.1).collect());
        worst_p99 = worst_p99.max(pct(&own, 99.0));
        remote.extend(seen.lags);
    }
    let local = local.await.map_err(|e| e.to_string())?;
    let secs = SSE_RUN.as_secs_f64();
    // First and last tenth of the run, by when the change was sent.
    let (first, last) = tenths(&remote);
    let (lfirst, llast) = tenths(&local.lags);
    let all = sorted(remote.iter().map(|l| l.1).collect());
    let base = sorted(local.lags.iter().map(|l| l.1).collect());
    let note = format!(
        "{SSE_CLIENTS} clients, {made} changes in {secs:.0} s ({:.0}/s asked {CHANGES_PER_SEC}); \
         clients short of an event: {short}, refetches: {refetches}, unplaced: {strays}; \
         baseline: the engine's feed read in-process",
        made as f64 / secs
    );
    let fig = |what: &str, engine: f64, baseline: f64, goal: &str, note: String| Figure {
        what: what.into(),
        engine,
        baseline: Some(baseline),
        unit: "ms".into(),
        goal: goal.into(),
        note,
    };
    Ok(vec![
        fig(
            "SSE fan-out lag, 50 clients at 5,000 changes/s, p50",
            pct(&all, 50.0),
            pct(&base, 50.0),
            "-",
            note.clone(),
        ),
        fig(
            "SSE fan-out lag, 50 clients at 5,000 changes/s, p99",
            pct(&all, 99.0),
            pct(&base, 99.0),
            "-",
            format!("{note}; worst client's own p99 {worst_p99:.2} ms"),
        ),
        fig(
            "SSE fan-out lag, first 10 % of the run, p99",
            pct(&first, 99.0),
            pct(&lfirst, 99.0),
            "-",
            "changes sent in the run's first tenth".into(),
        ),
        fig(
            "SSE fan-out lag, last 10 % of the run, p99",
            pct(&last, 99.0),
            pct(&llast, 99.0),
            "no growth",
            "changes sent in the run's last tenth; lag grows if this is above the first".into(),
        ),
    ])
}

/// The lags (sorted) of the changes sent in the first and the last tenth of the span.
fn tenths(lags: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let lo = lags.iter().map(|l| l.0).fold(f64::INFINITY, f64::min);
    let hi = lags.iter().map(|l| l.0).fold(f64::NEG_INFINITY, f64::max);
    let tenth = (hi - lo) / 10.0;
    let pick = |keep: &dyn Fn(f64) -> bool| {
        sorted(lags.iter().filter(|l| keep(l.0)).map(|l| l.1).collect())
    };
    (pick(&|t| t <= lo + tenth), pick(&|t| t >= hi - tenth))
}

/// The p50 and p99 of one latency over HTTP beside the same in-process (both sorted).
fn medians_and_tails(
    what: &str,
    remote: &[f64],
    base: &[f64],
    goal99: &str,
    note: String,
) -> Vec<Figure> {
    [(50.0, "-"), (99.0, goal99)]
        .into_iter()
        .map(|(p, goal)| Figure {
            what: format!("{what}, p{p}"),
            engine: pct(remote, p),
            baseline: Some(pct(base, p)),
            unit: "ms".into(),
            goal: goal.into(),
            note: note.clone(),
        })
        .collect()
}
