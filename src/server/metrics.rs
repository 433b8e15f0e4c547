//! `GET /metrics`: Prometheus text format, written by hand (a few gauges, counters and one
//! histogram do not need a metrics crate). Queue figures are read from the engine at scrape
//! time; request counts, dequeue latency and SSE clients are the server's own.

use super::http::Call;
use crate::backend::Error;
use crate::model::{Reason, Status};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the dequeue latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    /// (route path, method, status) → requests.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// Dequeues that took something: how long each took, by bucket.
    latency: Mutex<(Vec<u64>, f64, u64)>,
    dequeued: AtomicU64,
    finished: AtomicU64,
    pub sse_clients: AtomicI64,
}

impl Metrics {
    pub fn request(&self, path: &'static str, verb: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .expect("metrics")
            .entry((path, verb, status))
            .or_default() += 1;
    }

    pub fn dequeued(&self, took: Duration, items: u64) {
        self.dequeued.fetch_add(items, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let mut l = self.latency.lock().expect("metrics");
        if l.0.is_empty() {
            l.0 = vec![0; BUCKETS.len()];
        }
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            l.0[i] += 1;
        }
        l.1 += secs;
        l.2 += 1;
    }

    pub fn finished(&self, n: u64) {
        self.finished.fetch_add(n, Ordering::Relaxed);
    }
}

/// A label value as Prometheus reads it: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn serve(c: Call) -> Result<Response, Error> {
    let b = &c.state.backend;
    let queues = b.queues().await?;
    let groups = b.groups(None).await?;
    let m = &c.state.metrics;
    let mut out = String::new();
    let w = &mut out;

    let _ = writeln!(w, "# HELP workq_items Items by queue and status.");
    let _ = writeln!(w, "# TYPE workq_items gauge");
    for q in &queues {
        for s in Status::ALL {
            let _ = writeln!(
                w,
                "workq_items{{queue=\"{}\",status=\"{}\"}} {}",
                label(&q.queue.name),
                s,
                q.counts.get(*s)
            );
        }
    }
    for (name, help, get) in [
        (
            "workq_items_expired",
            "Queued items past their expiry.",
            (|q: &crate::model::QueueSummary| q.expired as f64) as fn(&_) -> f64,
        ),
        (
            "workq_items_at_risk",
            "Unfinished items at risk of their SLA.",
            |q| q.at_risk as f64,
        ),
        (
            "workq_items_out_of_sla",
            "Unfinished items out of their SLA.",
            |q| q.out_of_sla as f64,
        ),
        (
            "workq_throughput_per_minute",
            "Items finished per minute over the last 15 minutes.",
            |q| q.throughput_per_min,
        ),
        ("workq_queue_paused", "1 when the queue is paused.", |q| {
            f64::from(u8::from(q.queue.state == crate::model::QueueState::Paused))
        }),
    ] {
        let _ = writeln!(w, "# HELP {name} {help}");
        let _ = writeln!(w, "# TYPE {name} gauge");
        for q in &queues {
            let _ = writeln!(w, "{name}{{queue=\"{}\"}} {}", label(&q.queue.name), get(q));
        }
    }

    let _ = writeln!(
        w,
        "# HELP workq_lease_timeout_exceptions Exceptions whose lease ran out (reason timeout)."
    );
    let _ = writeln!(w, "# TYPE workq_lease_timeout_exceptions gauge");
    let mut timeouts: BTreeMap<&str, u64> =
        queues.iter().map(|q| (q.queue.name.as_str(), 0)).collect();
    for g in groups.iter().filter(|g| g.reason == Some(Reason::Timeout)) {
        *timeouts.entry(g.queue.as_str()).or_default() += g.count;
    }
    for (q, n) in timeouts {
        let _ = writeln!(
            w,
            "workq_lease_timeout_exceptions{{queue=\"{}\"}} {n}",
            label(q)
        );
    }

    for (name, help, v) in [
        (
            "workq_dequeued_total",
            "Items leased through this server.",
            m.dequeued.load(Ordering::Relaxed),
        ),
        (
            "workq_finished_total",
            "Outcomes recorded through this server.",
            m.finished.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(w, "# HELP {name} {help}");
        let _ = writeln!(w, "# TYPE {name} counter");
        let _ = writeln!(w, "{name} {v}");
    }

    let _ = writeln!(
        w,
        "# HELP workq_dequeue_seconds How long dequeues that took items took, waits included."
    );
    let _ = writeln!(w, "# TYPE workq_dequeue_seconds histogram");
    {
        let l = m.latency.lock().expect("metrics");
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += l.0.get(i).copied().unwrap_or(0);
            let _ = writeln!(w, "workq_dequeue_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        let _ = writeln!(w, "workq_dequeue_seconds_bucket{{le=\"+Inf\"}} {}", l.2);
        let _ = writeln!(w, "workq_dequeue_seconds_sum {}", l.1);
        let _ = writeln!(w, "workq_dequeue_seconds_count {}", l.2);
    }

    let _ = writeln!(
        w,
        "# HELP workq_http_requests_total Requests by route and status."
    );
    let _ = writeln!(w, "# TYPE workq_http_requests_total counter");
    for ((path, verb, code), n) in m.requests.lock().expect("metrics").iter() {
        let _ = writeln!(
            w,
            "workq_http_requests_total{{route=\"{}\",method=\"{verb}\",code=\"{code}\"}} {n}",
            label(path)
        );
    }

    let _ = writeln!(w, "# HELP workq_sse_clients Event streams open now.");
    let _ = writeln!(w, "# TYPE workq_sse_clients gauge");
    let _ = writeln!(
        w,
        "workq_sse_clients {}",
        m.sse_clients.load(Ordering::Relaxed)
    );

    let _ = writeln!(
        w,
        "# HELP workq_leader 1 if this server runs the periodic work (sweeps, alert checks)."
    );
    let _ = writeln!(w, "# TYPE workq_leader gauge");
    let _ = writeln!(w, "workq_leader {}", u8::from(b.leads()));

    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response())
}
