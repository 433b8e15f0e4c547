//! `workq dequeue | complete | fail | heartbeat`: the worker's side, for scripts.

use super::output::{Failure, Out};
use super::{os_user, CompleteArgs, DequeueArgs, FailArgs, HeartbeatArgs};
use crate::backend::Backend;
use crate::model::*;
use crate::rules::parse_duration;
use std::time::Duration;

pub async fn dequeue(store: &dyn Backend, a: DequeueArgs, out: &Out) -> Result<(), Failure> {
    if a.count == Some(0) {
        return Err(Failure::invalid("--count must be at least 1"));
    }
    let wait = a
        .wait
        .as_deref()
        .map(|w| parse_duration(w).map_err(|e| Failure::invalid(format!("--wait: {e}"))))
        .transpose()?
        .unwrap_or(Duration::ZERO);
    let got = store
        .dequeue(DequeueRequest {
            queues: a.queues,
            worker: a.worker.unwrap_or_else(|| format!("cli:{}", os_user())),
            count: a.count.unwrap_or(1),
            wait,
        })
        .await?;
    if let Some(why) = &got.why_empty {
        eprintln!("nothing to take: {why}");
    }
    if out.json {
        match a.count {
            Some(_) => out.json(&got.leases),
            None => out.json(&got.leases.first()),
        }
    } else if got.leases.is_empty() {
        if got.why_empty.is_none() {
            eprintln!("nothing to take: no queued items are ready");
        }
    } else {
        for l in &got.leases {
            println!("{} {}", l.item.id, l.lease);
            println!(
                "  queue {}  name {}  priority {}  lease until {}",
                l.item.queue,
                l.item.name.as_deref().unwrap_or("-"),
                l.item.priority,
                super::output::time(l.lease_until)
            );
            println!("  value {}", l.item.value);
        }
    }
    Ok(())
}

async fn report(store: &dyn Backend, o: Outcome, out: &Out) -> Result<(), Failure> {
    let mut r = store.finish(vec![o], &format!("cli:{}", os_user())).await?;
    let item = r.remove(0)?;
    if out.json {
        out.json(&item);
    } else {
        match (item.status, item.reason) {
            (Status::Queued, _) => println!(
                "{}: failed, queued again for automatic retry {}",
                item.id, item.retry_count
            ),
            (Status::Exception, Some(r)) => println!("{}: exception ({r})", item.id),
            (s, _) => println!("{}: {s}", item.id),
        }
    }
    Ok(())
}

pub async fn complete(store: &dyn Backend, a: CompleteArgs, out: &Out) -> Result<(), Failure> {
    let o = Outcome {
        id: a.id,
        lease: a.lease,
        reason: None,
        note: a.note,
    };
    report(store, o, out).await
}

pub async fn fail(store: &dyn Backend, a: FailArgs, out: &Out) -> Result<(), Failure> {
    let reason: Reason = a
        .reason
        .parse()
        .map_err(|e| Failure::invalid(format!("--reason: {e}")))?;
    if reason == Reason::Timeout {
        return Err(Failure::invalid(
            "--reason: timeout is for leases that ran out; use generic, it or business",
        ));
    }
    let o = Outcome {
        id: a.id,
        lease: a.lease,
        reason: Some(reason),
        note: a.note,
    };
    report(store, o, out).await
}

pub async fn heartbeat(store: &dyn Backend, a: HeartbeatArgs, out: &Out) -> Result<(), Failure> {
    let until = store.heartbeat(&a.id, &a.lease).await?;
    if out.json {
        out.json(&serde_json::json!({"id": a.id, "lease_until": until}));
    } else {
        println!(
            "{}: lease extended until {}",
            a.id,
            super::output::time(until)
        );
    }
    Ok(())
}
