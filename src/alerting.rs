//! Checking alerts against a backend and delivering their transitions: one pass is
//! `check`, which `workq alert check` runs once and `workq serve` runs on a timer. Which
//! checker fires a transition is settled by the store's compare-and-set
//! (`Backend::set_alert_state`), so two checkers never both fire it.

use crate::alert::{self, Alert, Body, Example, Facts, Rule, Target};
use crate::backend::{Backend, Result};
use crate::model::*;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most exception items read to count those within a window.
const EXCEPTION_SCAN: u64 = 10_000;

/// One pass over every alert at `now`: the bodies of the transitions this checker won, in
/// alert-name order. Delivering them is the caller's (see `Deliveries`).
pub async fn check(store: &dyn Backend, now: Time) -> Result<Vec<(Alert, Body)>> {
    let alerts = store.alerts().await?;
    if alerts.is_empty() {
        return Ok(vec![]);
    }
    let workers = store.workers().await?;
    let mut fired = vec![];
    for a in alerts {
        // A stored rule was checked when added; one that no longer parses is skipped.
        let Ok(rule) = Rule::parse(&a.rule) else {
            tracing::warn!(alert = %a.name, rule = %a.rule, "alert rule no longer parses");
            continue;
        };
        let summary = store.queue(&a.queue).await?;
        let exceptions = match rule.exception_window() {
            Some(w) => exceptions_since(store, &a.queue, now - chrono_of(w)).await?,
            None => 0,
        };
        // Heard from on this queue: a worker busy on another queue does not count.
        let last_worker = workers
            .iter()
            .flat_map(|w| &w.queues)
            .filter(|s| s.queue == a.queue)
            .map(|s| s.last_seen)
            .max();
        let facts = Facts {
            summary: &summary,
            exceptions,
            last_worker,
            since: summary.queue.created_at,
            now,
        };
        let (holds, figures) = alert::judge(&rule, &facts);
        let Some(to) = alert::transition(a.state, holds) else {
            continue;
        };
        let Some(moved) = store.set_alert_state(&a.name, a.generation, to).await? else {
            continue; // another checker fired this transition
        };
        let examples = examples(store, &a.queue, &rule).await?;
        let body = Body {
            alert: moved.name.clone(),
            queue: moved.queue.clone(),
            rule: moved.rule.clone(),
            state: to,
            at: now,
            figures,
            examples,
        };
        fired.push((moved, body));
    }
    Ok(fired)
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(d.as_millis().min(i64::MAX as u128) as i64)
}

async fn exceptions_since(store: &dyn Backend, queue: &str, since: Time) -> Result<u64> {
    let filter = Filter {
        queue: Some(queue.into()),
        statuses: vec![Status::Exception],
        ..Filter::default()
    };
    let (mut n, mut offset) = (0, 0);
    while offset < EXCEPTION_SCAN {
        let page = store
            .items(
                filter.clone(),
                PageRequest {
                    offset,
                    limit: 500,
                    descending: true,
                    count: Count::Skip,
                    ..PageRequest::default()
                },
            )
            .await?;
        let got = page.items.len() as u64;
        n += page
            .items
            .iter()
            .filter(|i| i.finished_at.is_some_and(|t| t >= since))
            .count() as u64;
        if got < 500 {
            break;
        }
        offset += got;
    }
    Ok(n)
}

/// A few items the rule is about: out of SLA, at risk, in exception, or waiting.
async fn examples(store: &dyn Backend, queue: &str, rule: &Rule) -> Result<Vec<Example>> {
    let mut filter = Filter {
        queue: Some(queue.into()),
        ..Filter::default()
    };
    match rule {
        Rule::Out(..) => filter.sla = Some(Sla::Out),
        Rule::AtRisk(..) => filter.sla = Some(Sla::AtRisk),
        Rule::Exceptions(..) => filter.statuses = vec![Status::Exception],
        Rule::DeadlineMiss | Rule::NoWorker(_) => filter.statuses = vec![Status::Queued],
    }
    let page = store
        .items(
            filter,
            PageRequest {
                limit: alert::EXAMPLES as u32,
                count: Count::Skip,
                ..PageRequest::default()
            },
        )
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|i| Example {
            id: i.id,
            name: i.name,
        })
        .collect())
}

/// How long a failing webhook is retried: `attempts` tries, the wait doubling from `first`.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first: Duration::from_secs(1),
        }
    }
}

/// Deliveries run on their own task behind a bounded queue: a slow or failing receiver
/// never holds up the checker or the engine. When the queue is full the body is logged
/// and dropped rather than waited for.
pub struct Deliveries {
    tx: mpsc::Sender<(Target, Body)>,
    task: tokio::task::JoinHandle<()>,
}

const QUEUE_DEPTH: usize = 256;

impl Deliveries {
    pub fn start(retry: Retry) -> Deliveries {
        let (tx, mut rx) = mpsc::channel::<(Target, Body)>(QUEUE_DEPTH);
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            while let Some((target, body)) = rx.recv().await {
                deliver(&http, &target, &body, retry).await;
            }
        });
        Deliveries { tx, task }
    }

    /// Queues a body for delivery; never waits.
    pub fn send(&self, target: Target, body: Body) {
        if let Err(e) = self.tx.try_send((target, body)) {
            let body = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b.1,
            };
            tracing::error!(alert = %body.alert, state = body.state.as_str(),
                "alert delivery queue full: this transition is not delivered");
            eprintln!(
                "workq: alert '{}' {}: delivery queue full, not delivered",
                body.alert,
                body.state.as_str()
            );
        }
    }

    /// Delivers what is queued, then stops (a single `alert check` waits for this).
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// Delivers one body, retrying with backoff; a delivery that never succeeds is logged.
pub async fn deliver(http: &reqwest::Client, target: &Target, body: &Body, retry: Retry) {
    let mut wait = retry.first;
    for attempt in 1..=retry.attempts.max(1) {
        let result = match target {
            Target::Webhook(url) => post(http, url, body).await,
            Target::Run(cmd) => run(cmd, body).await,
        };
        match result {
            Ok(()) => return,
            Err(why) => {
                tracing::warn!(alert = %body.alert, attempt, %why, "alert delivery failed");
                eprintln!(
                    "workq: alert '{}' {} delivery failed (attempt {attempt} of {}): {why}",
                    body.alert,
                    body.state.as_str(),
                    retry.attempts.max(1)
                );
            }
        }
        if attempt < retry.attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    tracing::error!(alert = %body.alert, "alert delivery gave up");
    eprintln!(
        "workq: alert '{}' {}: gave up delivering",
        body.alert,
        body.state.as_str()
    );
}

async fn post(http: &reqwest::Client, url: &str, body: &Body) -> std::result::Result<(), String> {
    let r = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", r.status()))
    }
}

/// Runs `cmd` through the shell with the body on stdin.
async fn run(cmd: &str, body: &Body) -> std::result::Result<(), String> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let json = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WORKQ_ALERT_NAME", &body.alert)
        .env("WORKQ_ALERT_STATE", body.state.as_str())
        .env("WORKQ_QUEUE", &body.queue)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run '{cmd}': {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is fine.
        let _ = stdin.write_all(&json).await;
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("'{cmd}' exited with {status}"))
    }
}

/// One pass with its deliveries (what `workq alert check` does).
pub async fn check_and_deliver(
    store: &dyn Backend,
    now: Time,
    deliveries: &Deliveries,
) -> Result<Vec<(Alert, Body)>> {
    let fired = check(store, now).await?;
    for (a, body) in &fired {
        deliveries.send(a.target.clone(), body.clone());
    }
    Ok(fired)
}
