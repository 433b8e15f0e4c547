//! `workq queue …`

use super::output::{self, age_secs, dur, say, thousands, Col, Failure, Out};
use super::{QueueCmd, QueueFlags};
use crate::backend::Backend;
use crate::model::*;
use crate::rules::{check_tz, describe_backoff, parse_backoff, parse_duration, parse_hhmm};
use crate::text;

fn settings(f: QueueFlags) -> Result<QueueSettings, Failure> {
    // The engine checks these too, but without naming the flag.
    if let Some(t) = &f.tz {
        check_tz(t).map_err(|e| Failure::invalid(format!("--tz: {e}")))?;
    }
    if let Some(d) = &f.deadline {
        parse_hhmm(d).map_err(|e| Failure::invalid(format!("--deadline: {e}")))?;
    }
    let d = |flag: &str, v: Option<String>| {
        v.map(|s| parse_duration(&s).map_err(|e| Failure::invalid(format!("--{flag}: {e}"))))
            .transpose()
    };
    Ok(QueueSettings {
        description: f.description,
        ttl: d("ttl", f.ttl)?,
        sla: d("sla", f.sla)?,
        sla_risk_pct: f.sla_risk,
        deadline: f.deadline,
        tz: f.tz,
        max_retries: f.max_retries,
        lease: d("lease", f.lease)?,
        max_runtime: d("max-runtime", f.max_runtime)?,
        concurrency: f.concurrency,
        priority: f.priority,
        retry_backoff: f
            .retry_backoff
            .map(|b| {
                parse_backoff(&b).map_err(|e| Failure::invalid(format!("--retry-backoff: {e}")))
            })
            .transpose()?,
        clear: vec![],
    })
}

/// `workq queue ls --names`: the names, one per line, for scripts and completions.
async fn names(store: &dyn Backend) -> Result<(), Failure> {
    let mut text = String::new();
    for q in store.queues().await? {
        text.push_str(&crate::text::line(&q.queue.name));
        text.push('\n');
    }
    output::emit(&text)
}

pub async fn run(store: &dyn Backend, cmd: QueueCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        QueueCmd::Create { name, flags } => {
            let q = store.create_queue(&name, settings(flags)?).await?;
            if out.json {
                out.json(&q)?;
            } else {
                say!("created queue '{}'", q.name);
            }
        }
        QueueCmd::Update { name, flags, clear } => {
            let mut settings = settings(flags)?;
            settings.clear = clear;
            let q = store.update_queue(&name, settings).await?;
            if out.json {
                out.json(&q)?;
            } else {
                say!("updated queue '{}'", q.name);
            }
        }
        QueueCmd::Pause { name } => state(store, &name, QueueState::Paused, out).await?,
        QueueCmd::Resume { name } => state(store, &name, QueueState::Active, out).await?,
        QueueCmd::Ls { names: true } => names(store).await?,
        QueueCmd::Ls { names: false } => {
            let qs = store.queues().await?;
            if out.json {
                out.json(&qs)?;
            } else if qs.is_empty() {
                say!("no queues yet: create one with  workq queue create NAME");
            } else {
                ls(&qs)?;
            }
        }
        QueueCmd::Inspect { name } => {
            let s = store.queue(&name).await?;
            if out.json {
                out.json(&s)?;
            } else {
                inspect(&s)?;
            }
        }
        QueueCmd::Preview { name, hours, limit } => {
            if hours == 0 {
                return Err(Failure::invalid("--hours must be at least 1"));
            }
            let within = std::time::Duration::from_secs(u64::from(hours) * 3600);
            let items = store.upcoming(&name, within, limit).await?;
            if out.json {
                out.json(&items)?;
            } else if items.is_empty() {
                say!(
                    "nothing in '{}' becomes ready in the next {}",
                    text::line(&name),
                    output::count(u64::from(hours), "hour")
                );
            } else {
                let now = chrono::Utc::now();
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        vec![
                            output::time_from_now(i.delay_until, now),
                            i.id.clone(),
                            i.name.clone().unwrap_or_else(|| "-".into()),
                            i.priority.to_string(),
                            i.retry_count.to_string(),
                            output::cell(&i.value, 40),
                        ]
                    })
                    .collect();
                let cols = [
                    Col::left("READY AT"),
                    Col::left("ID"),
                    Col::left("NAME"),
                    Col::left("PRIORITY"),
                    Col::right("RETRIES"),
                    Col::left("VALUE"),
                ];
                output::table(&cols, &rows)?;
            }
        }
        QueueCmd::Delete { name, force } => {
            let n = store.delete_queue(&name, force).await?;
            if out.json {
                out.json(&serde_json::json!({"deleted": name, "items": n}))?;
            } else {
                say!(
                    "deleted queue '{name}' and its {}",
                    output::count(n, "item")
                );
            }
        }
    }
    Ok(())
}

async fn state(store: &dyn Backend, name: &str, st: QueueState, out: &Out) -> Result<(), Failure> {
    let q = store.set_queue_state(name, st).await?;
    if out.json {
        out.json(&q)?;
    } else if st == QueueState::Paused {
        say!("paused queue '{name}': items are still accepted but none are handed out");
    } else {
        say!("resumed queue '{name}'");
    }
    Ok(())
}

fn ls(qs: &[QueueSummary]) -> Result<(), Failure> {
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = qs
        .iter()
        .map(|s| {
            let c = &s.counts;
            let name = if s.queue.state == QueueState::Paused {
                format!("{} (paused)", s.queue.name)
            } else {
                s.queue.name.clone()
            };
            let inflight = match s.queue.concurrency {
                Some(l) => format!("{}/{}", thousands(c.processing), thousands(l as u64)),
                None => thousands(c.processing),
            };
            vec![
                name,
                thousands(c.queued),
                inflight,
                thousands(c.processed),
                thousands(c.on_hold),
                thousands(c.exception),
                thousands(s.expired),
                thousands(s.at_risk),
                thousands(s.out_of_sla),
                s.oldest_queued_secs
                    .map(age_secs)
                    .unwrap_or_else(|| "-".into()),
                format!("{:.1}", s.throughput_per_min),
                s.projection
                    .as_ref()
                    .map(|p| output::projection(p, &s.queue.tz, now))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    use output::Col;
    output::table(
        &[
            Col::left("QUEUE"),
            Col::right("QUEUED"),
            Col::right("PROCESSING"),
            Col::right("PROCESSED"),
            Col::right("ON-HOLD"),
            Col::right("EXCEPTION"),
            Col::right("EXPIRED"),
            Col::right("AT-RISK"),
            Col::right("OUT-SLA"),
            Col::right("OLDEST"),
            Col::right("PER-MIN"),
            Col::left("DEADLINE"),
        ],
        &rows,
    )
}

fn inspect(s: &QueueSummary) -> Result<(), Failure> {
    let q = &s.queue;
    let c = &s.counts;
    let pct = |v: Option<f64>| {
        v.map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let lines: Vec<(&str, String)> = vec![
        ("queue", q.name.clone()),
        (
            "description",
            if q.description.is_empty() {
                "-".into()
            } else {
                q.description.clone()
            },
        ),
        ("state", q.state.to_string()),
        ("priority", q.priority.to_string()),
        ("default TTL", dur(q.ttl)),
        ("SLA target", dur(q.sla)),
        ("SLA at-risk", format!("{}%", q.sla_risk_pct)),
        (
            "deadline",
            q.deadline
                .as_ref()
                .map(|d| format!("{d} {}", q.tz))
                .unwrap_or_else(|| "-".into()),
        ),
        ("max retries", q.max_retries.to_string()),
        (
            "retry backoff",
            q.retry_backoff
                .as_ref()
                .map(describe_backoff)
                .unwrap_or_else(|| "none (retries are queued at once)".into()),
        ),
        ("lease timeout", dur(Some(q.lease))),
        (
            "max runtime",
            q.max_runtime
                .map(|m| dur(Some(m)))
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "concurrency",
            q.concurrency
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unlimited".into()),
        ),
        (
            "created",
            output::time_from_now(Some(q.created_at), chrono::Utc::now()),
        ),
        ("", String::new()),
        ("queued", thousands(c.queued)),
        ("processing", thousands(c.processing)),
        ("processed", thousands(c.processed)),
        ("on-hold", thousands(c.on_hold)),
        ("exception", thousands(c.exception)),
        ("expired", thousands(s.expired)),
        ("at risk", thousands(s.at_risk)),
        ("out of SLA", thousands(s.out_of_sla)),
        (
            "oldest queued",
            s.oldest_queued_secs
                .map(age_secs)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "throughput",
            format!(
                "{:.1}/min (last {THROUGHPUT_WINDOW_MIN} min)",
                s.throughput_per_min
            ),
        ),
        (
            "avg handling",
            s.avg_handling_ms
                .map(|m| dur(Some(std::time::Duration::from_millis(m))))
                .unwrap_or_else(|| "-".into()),
        ),
        ("error rate", pct(s.error_rate)),
        (
            "projection",
            s.projection
                .as_ref()
                .map(|p| output::projection(p, &s.queue.tz, chrono::Utc::now()))
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    output::fields(&lines)
}
