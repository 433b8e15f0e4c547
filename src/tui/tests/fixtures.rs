//! Fixed data and a pure fake backend for console tests: no clock, no database.

use crate::backend::Error;
use crate::model::*;
use crate::tui::state::State;
use crate::tui::update::{update, Effect, Msg};
use chrono::{TimeZone, Utc};
use std::time::Duration;

pub fn now() -> Time {
    Utc.with_ymd_and_hms(2026, 11, 22, 14, 0, 0).unwrap()
}

fn mins_ago(m: i64) -> Time {
    now() - chrono::Duration::minutes(m)
}

pub fn queue(name: &str) -> Queue {
    Queue {
        name: name.into(),
        description: String::new(),
        state: QueueState::Active,
        ttl: None,
        sla: Some(Duration::from_secs(7200)),
        sla_risk_pct: 80,
        deadline: None,
        tz: "UTC".into(),
        max_retries: 2,
        lease: Duration::from_secs(20),
        max_runtime: None,
        concurrency: None,
        priority: 0,
        retry_backoff: None,
        created_at: mins_ago(600),
    }
}

pub fn queues() -> Vec<QueueSummary> {
    let mut inv = queue("vendor-invoices");
    inv.description = "Vendor invoices from the AP mailbox, posted to SAP".into();
    inv.deadline = Some("23:00".into());
    inv.tz = "Europe/Berlin".into();
    inv.concurrency = Some(6);
    inv.priority = 10;
    let mut onb = queue("customer-onboarding");
    onb.ttl = Some(Duration::from_secs(86400));
    onb.concurrency = Some(3);
    let mut addr = queue("address-changes");
    addr.state = QueueState::Paused;
    let deadline = Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap();
    vec![
        QueueSummary {
            queue: inv,
            counts: StatusCounts {
                queued: 1354,
                processing: 6,
                processed: 986,
                on_hold: 3,
                exception: 40,
            },
            expired: 0,
            at_risk: 12,
            out_of_sla: 2,
            oldest_queued_secs: Some(1560),
            throughput_per_min: 23.4,
            throughput_history: (0..30).map(|i| 10 + (i * 7) % 20).collect(),
            avg_handling_ms: Some(2400),
            error_rate: Some(0.081),
            projection: Some(crate::rules::project(deadline, 1360, 23.4, now())),
        },
        QueueSummary {
            queue: onb,
            counts: StatusCounts {
                queued: 406,
                processing: 3,
                processed: 283,
                on_hold: 20,
                exception: 8,
            },
            expired: 5,
            at_risk: 0,
            out_of_sla: 0,
            oldest_queued_secs: Some(600),
            throughput_per_min: 7.0,
            throughput_history: vec![7; 30],
            avg_handling_ms: Some(6000),
            error_rate: Some(0.12),
            projection: None,
        },
        QueueSummary {
            queue: addr,
            counts: StatusCounts {
                queued: 240,
                ..Default::default()
            },
            expired: 0,
            at_risk: 0,
            out_of_sla: 0,
            oldest_queued_secs: Some(2400),
            throughput_per_min: 0.0,
            throughput_history: vec![0; 30],
            avg_handling_ms: None,
            error_rate: None,
            projection: None,
        },
    ]
}

const VENDORS: [&str; 5] = [
    "Fabrikam",
    "Contoso",
    "Trey Research",
    "Litware",
    "Proseware",
];

/// Item `n` of the fixed list: every fifth is an exception, every seventh on hold.
pub fn item(n: u64) -> Item {
    let vendor = VENDORS[(n % 5) as usize];
    let (status, reason, note) = if n % 5 == 2 {
        (
            Status::Exception,
            Some(Reason::Business),
            Some(format!("Vendor '{vendor}' not found in SAP vendor master")),
        )
    } else if n % 7 == 3 {
        (Status::OnHold, None, None)
    } else if n % 4 == 1 {
        (Status::Processed, None, None)
    } else {
        (Status::Queued, None, None)
    };
    let enq = mins_ago(100 - n as i64 % 100);
    Item {
        id: format!("01JDTEST{n:018}"),
        queue: "vendor-invoices".into(),
        name: Some(format!("I-{} {vendor}", 1000 + n)),
        key: Some(format!("I-{}", 1000 + n)),
        value: format!(
            r#"{{"InvoiceId":"I-{}","AccountName":"{vendor}","Amount":{}.50,"Currency":"EUR"}}"#,
            1000 + n,
            100 + n * 37
        ),
        priority: if n.is_multiple_of(6) {
            Priority::High
        } else {
            Priority::Normal
        },
        status,
        reason,
        notes: note
            .map(|text| {
                vec![Note {
                    at: mins_ago(5),
                    by: "sap-bot-04".into(),
                    text,
                }]
            })
            .unwrap_or_default(),
        retry_count: (n % 3) as u32,
        requeue_count: 0,
        enqueued_at: enq,
        started_at: None,
        finished_at: None,
        expires_at: None,
        delay_until: None,
        worker: None,
        sla: Some(if n.is_multiple_of(9) {
            Sla::Out
        } else if n.is_multiple_of(8) {
            Sla::AtRisk
        } else {
            Sla::In
        }),
        expired: false,
        version: 1,
    }
}

/// How many fixture items exist.
pub const ITEMS: u64 = 300;

pub fn all_items() -> Vec<Item> {
    (0..ITEMS).map(item).collect()
}

pub fn page(f: &Filter, p: &PageRequest) -> Page {
    let mut matching: Vec<Item> = all_items()
        .into_iter()
        .filter(|i| f.statuses.is_empty() || f.statuses.contains(&i.status))
        .filter(|i| f.reason.is_none() || f.reason == i.reason)
        .filter(|i| {
            f.search.as_deref().is_none_or(|q| {
                i.value.contains(q) || i.name.as_deref().is_some_and(|n| n.contains(q))
            })
        })
        .collect();
    if p.descending {
        matching.reverse();
    }
    let total = matching.len() as u64;
    let items = matching
        .into_iter()
        .skip(p.offset as usize)
        .take(p.limit as usize)
        .collect();
    // As the store does: a request that skips the count gets none.
    Page {
        items,
        total: (p.count != Count::Skip).then_some(total),
        exact: p.count != Count::Skip,
    }
}

pub fn detail(id: &str) -> Result<ItemDetail, Error> {
    let item = all_items()
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| Error::not_found(crate::backend::Thing::Item, id))?;
    let mut history = vec![HistoryEntry {
        at: item.enqueued_at,
        by: "demo:import".into(),
        action: "enqueue".into(),
        from: None,
        to: Some(Status::Queued),
        reason: None,
        note: None,
        action_id: None,
        changes: vec![],
    }];
    if item.status == Status::Exception {
        history.push(HistoryEntry {
            at: mins_ago(6),
            by: "sap-bot-04".into(),
            action: "dequeue".into(),
            from: Some(Status::Queued),
            to: Some(Status::Processing),
            reason: None,
            note: None,
            action_id: None,
            changes: vec![],
        });
        history.push(HistoryEntry {
            at: mins_ago(5),
            by: "sap-bot-04".into(),
            action: "fail".into(),
            from: Some(Status::Processing),
            to: Some(Status::Exception),
            reason: item.reason,
            note: item.notes.last().map(|n| n.text.clone()),
            action_id: None,
            changes: vec![],
        });
    }
    Ok(ItemDetail {
        item,
        history,
        deleted: None,
    })
}

pub fn groups() -> Vec<ExceptionGroup> {
    vec![
        ExceptionGroup {
            queue: "vendor-invoices".into(),
            reason: Some(Reason::Business),
            signature: "Vendor * not found in SAP vendor master".into(),
            count: 1240,
            example: Some("Vendor 'Trey Research' not found in SAP vendor master".into()),
            oldest: mins_ago(90),
            newest: mins_ago(1),
        },
        ExceptionGroup {
            queue: "vendor-invoices".into(),
            reason: Some(Reason::Business),
            signature: "Amount * EUR is over the * approval limit: needs approval".into(),
            count: 96,
            example: Some(
                "Amount 9314.38 EUR is over the 5000.00 approval limit: needs approval".into(),
            ),
            oldest: mins_ago(80),
            newest: mins_ago(3),
        },
        ExceptionGroup {
            queue: "customer-onboarding".into(),
            reason: Some(Reason::It),
            signature: "CRM API timed out after *".into(),
            count: 8,
            example: Some("CRM API timed out after 30s".into()),
            oldest: mins_ago(50),
            newest: mins_ago(12),
        },
    ]
}

pub fn workers() -> Vec<WorkerInfo> {
    vec![
        WorkerInfo {
            name: "sap-bot-01".into(),
            last_seen: now() - chrono::Duration::seconds(2),
            holding: 1,
            holding_ids: vec![item(10).id],
            processed: 302,
            failed: 59,
            queues: vec![QueueSeen {
                queue: "invoices".into(),
                last_seen: now() - chrono::Duration::seconds(2),
            }],
            state: WorkerState::Running,
            agent: Some(AgentInfo {
                host: "rpa-vm-07".into(),
                pid: 4242,
                version: "0.1.0".into(),
                queues: vec!["invoices".into(), "claims".into()],
                concurrency: 4,
                state: WorkerState::Running,
                per_minute: 37,
                started_at: now() - chrono::Duration::hours(3),
            }),
        },
        WorkerInfo {
            name: "crm-bot-02".into(),
            last_seen: now() - chrono::Duration::seconds(4),
            holding: 0,
            holding_ids: vec![],
            processed: 76,
            failed: 10,
            queues: vec![QueueSeen {
                queue: "claims".into(),
                last_seen: now() - chrono::Duration::seconds(4),
            }],
            state: WorkerState::Running,
            agent: None,
        },
        WorkerInfo {
            name: "crm-bot-04".into(),
            last_seen: now() - chrono::Duration::seconds(300),
            holding: 0,
            holding_ids: vec![],
            processed: 61,
            failed: 7,
            queues: vec![],
            state: WorkerState::Stale,
            agent: None,
        },
    ]
}

/// The action log: a bulk requeue by a person, a note, and an undone hold.
pub fn actions() -> Vec<ActionInfo> {
    let action = |id: i64, mins: i64, verb: &str, kind: ActionKind, touched: u64| ActionInfo {
        id,
        at: mins_ago(mins),
        by: "user:ana".into(),
        verb: verb.into(),
        kind: Some(kind),
        note: Some("vendor master fixed".into()),
        touched,
        queues: vec!["vendor-invoices".into()],
        undone_at: None,
        undone_by: None,
        restored: None,
    };
    let mut held = action(3, 30, "hold", ActionKind::Hold, 12);
    held.undone_at = Some(mins_ago(25));
    held.undone_by = Some("user:bo".into());
    held.restored = Some(9);
    vec![
        action(
            9,
            2,
            "requeue",
            ActionKind::Requeue {
                delay: None,
                value: None,
            },
            109,
        ),
        action(5, 10, "note", ActionKind::AddNote, 1),
        held,
    ]
}

/// The fake backend: the answer to a read effect, from the fixtures.
pub fn respond(fx: &Effect) -> Option<Msg> {
    Some(match fx {
        Effect::LoadQueues(seq) => Msg::Queues(*seq, Ok(queues())),
        Effect::LoadAlerts => Msg::Alerts(Ok(vec![])),
        Effect::LoadPage {
            seq,
            filter,
            page: p,
            flip,
            offset,
        } => {
            let mut answer = page(filter, p);
            if *flip {
                answer.items.reverse();
            }
            Msg::Page(*seq, *offset, Ok(answer))
        }
        Effect::LoadDetail(seq, id) => Msg::Detail(*seq, detail(id)),
        Effect::LoadGroups(seq) => Msg::Groups(*seq, Ok(groups())),
        Effect::LoadWorkers(seq) => Msg::Workers(*seq, Ok(workers())),
        Effect::Preview(seq, t, _) => {
            let count = match t {
                Target::Ids(ids) => ids.len() as u64,
                Target::Filter(_) => 1240,
                // Marked inbox rows: what their groups count (each item in one group).
                Target::Any(fs) => fs
                    .iter()
                    .map(|f| {
                        groups()
                            .iter()
                            .find(|g| {
                                Some(&g.queue) == f.queue.as_ref()
                                    && Some(&g.signature) == f.signature.as_ref()
                            })
                            .map_or(1240, |g| g.count)
                    })
                    .sum(),
            };
            Msg::Preview(
                *seq,
                Ok(Preview {
                    count,
                    changes: count,
                    skipped: vec![],
                    warnings: vec![],
                    sample: vec![item(2), item(7)],
                }),
            )
        }
        Effect::LoadActions(seq) => Msg::Actions(*seq, Ok(actions())),
        _ => return None,
    })
}

/// Feeds `msg` and answers every read it causes until the state settles; returns the
/// effects that were not reads (actions, edits).
pub fn settle(s: &mut State, msg: Msg) -> Vec<Effect> {
    let mut queue = vec![msg];
    let mut other = Vec::new();
    while let Some(m) = queue.pop() {
        for fx in update(s, m) {
            match respond(&fx) {
                Some(answer) => queue.insert(0, answer),
                None => other.push(fx),
            }
        }
    }
    other
}

/// A console at `size`, with queues loaded.
pub fn state(w: u16, h: u16) -> State {
    let mut s = State::new(now(), "test.db", "user:tester");
    settle(&mut s, Msg::Resize(w, h));
    settle(&mut s, Msg::Changed);
    s
}
