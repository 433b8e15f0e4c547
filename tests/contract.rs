//! The contract suite: one set of behaviours every `Backend` must show. Each test takes an
//! `Env` (a backend and the clock it runs on); the `contract!` list at the bottom runs them
//! all against each implementation of `common` (today SQLite on a real file).

use chrono::TimeZone;
use std::time::Duration;
use workq::backend::{Conflict, Error, Thing};
use workq::clock::ManualClock;
use workq::model::*;
use workq::rules::Kept;

mod common;
use common::{contract, start, Env};

const ME: &str = "user:tester";

fn item(value: &str) -> NewItem {
    NewItem {
        value: value.to_string(),
        ..Default::default()
    }
}

async fn queue(env: &Env, name: &str, s: QueueSettings) {
    env.store.create_queue(name, s).await.unwrap();
}

async fn add(env: &Env, q: &str, values: &[&str]) -> Vec<Item> {
    env.store
        .add_items(q, values.iter().map(|v| item(v)).collect(), "bot")
        .await
        .unwrap()
}

async fn take(env: &Env, queues: &[&str], count: u32) -> Dequeued {
    env.store
        .dequeue(DequeueRequest {
            queues: queues.iter().map(|s| s.to_string()).collect(),
            worker: "w1".into(),
            count,
            wait: Duration::ZERO,
        })
        .await
        .unwrap()
}

fn done(l: &Lease) -> Outcome {
    l.outcome(None, None)
}

fn failed(l: &Lease, reason: Reason, note: &str) -> Outcome {
    l.outcome(Some(reason), Some(note.into()))
}

async fn finish_one(env: &Env, o: Outcome) -> Result<Finished, Error> {
    env.store.finish(vec![o], "w1").await.unwrap().remove(0)
}

/// A heartbeat on one lease.
async fn beat(env: &Env, id: &str, lease: &str) -> Result<Time, Error> {
    let one = LeaseRef {
        id: id.into(),
        lease: lease.into(),
    };
    let mut r = env.store.heartbeat(vec![one]).await.unwrap();
    assert_eq!(r.len(), 1, "one answer per lease");
    r.remove(0)
}

async fn status(env: &Env, id: &str) -> Status {
    env.store.item(id).await.unwrap().item.status
}

async fn act(env: &Env, target: Target, action: ActionKind) -> Result<ActionResult, Error> {
    env.store
        .act(ActionRequest {
            target,
            action,
            note: Some("checked with vendor".into()),
            actor: ME.into(),
            skip_refused: false,
        })
        .await
}

async fn undo(env: &Env, action_id: i64) -> Result<UndoResult, Error> {
    env.store.undo(UndoRequest::new(action_id, ME)).await
}

fn ids(items: &[Item]) -> Target {
    Target::Ids(items.iter().map(|i| i.id.clone()).collect())
}

fn requeue() -> ActionKind {
    ActionKind::Requeue {
        delay: None,
        value: None,
    }
}

async fn counts(env: &Env, q: &str) -> StatusCounts {
    env.store.queue(q).await.unwrap().counts
}

/// What a conflict was about: tests read the facts of an error, never its wording.
#[track_caller]
fn conflict(e: &Error) -> &Conflict {
    e.conflict_of()
        .unwrap_or_else(|| panic!("not a conflict: {e:?}"))
}

/// Which input an invalid request got wrong.
#[track_caller]
fn invalid(e: &Error) -> &str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not invalid input: {other:?}"),
    }
}

#[track_caller]
fn not_found(e: &Error) -> (Thing, &str) {
    match e {
        Error::NotFound { what, name, .. } => (*what, name),
        other => panic!("not a not-found: {other:?}"),
    }
}

/// A refused transition: the action, how many of how many items, and each refused item
/// with the status it was in and where it was to go.
type RefusedFacts<'a> = (&'a str, u64, u64, Vec<(&'a str, Status, Option<To>)>);

#[track_caller]
fn refused(e: &Error) -> RefusedFacts<'_> {
    match e {
        Error::Transition {
            action,
            total,
            refused,
            items,
            ..
        } => (
            action,
            *total,
            *refused,
            items
                .iter()
                .map(|r| (r.id.as_str(), r.from, r.to))
                .collect(),
        ),
        other => panic!("not a transition: {other:?}"),
    }
}

// ------------------------------------------------------------------ queues

pub async fn queue_lifecycle(env: Env) {
    let s = &env.store;
    let q = s
        .create_queue(
            "invoices",
            QueueSettings {
                description: Some("vendor invoices".into()),
                sla: Some(Duration::from_secs(3600)),
                max_retries: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(q.sla_risk_pct, 80);
    assert_eq!(q.lease, DEFAULT_LEASE);
    let e = s
        .create_queue("invoices", Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::QueueExists {
            queue: "invoices".into()
        }
    );
    let q = s
        .update_queue(
            "invoices",
            QueueSettings {
                concurrency: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (q.concurrency, q.max_retries),
        (Some(3), 2),
        "update keeps what it does not name"
    );
    assert_eq!(
        s.set_queue_state("invoices", QueueState::Paused)
            .await
            .unwrap()
            .state,
        QueueState::Paused
    );
    add(&env, "invoices", &["a"]).await;
    let e = s.delete_queue("invoices", false).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::QueueNotEmpty {
            queue: "invoices".into(),
            items: 1
        }
    );
    assert_eq!(
        s.queues().await.unwrap().len(),
        1,
        "refused delete changed nothing"
    );
    assert_eq!(s.delete_queue("invoices", true).await.unwrap(), 1);
    assert!(s.queues().await.unwrap().is_empty());
    for e in [
        s.queue("nope").await.unwrap_err(),
        s.add_items("nope", vec![item("x")], ME).await.unwrap_err(),
        s.set_queue_state("nope", QueueState::Active)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(not_found(&e), (Thing::Queue, "nope"));
    }
    let e = s
        .create_queue(
            "bad",
            QueueSettings {
                tz: Some("Mars/Olympus".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "tz");
    assert!(
        s.queues().await.unwrap().is_empty(),
        "a refused create created nothing"
    );
}

// ------------------------------------------------------------------ dequeue

pub async fn dequeue_takes_priority_then_fifo(env: Env) {
    queue(&env, "q", Default::default()).await;
    let mk = |v: &str, p: Priority| NewItem {
        value: v.into(),
        priority: p,
        ..Default::default()
    };
    env.store
        .add_items(
            "q",
            vec![
                mk("n1", Priority::Normal),
                mk("l1", Priority::Low),
                mk("h1", Priority::High),
                mk("n2", Priority::Normal),
                mk("h2", Priority::High),
            ],
            "bot",
        )
        .await
        .unwrap();
    let got = take(&env, &["q"], 3).await;
    let values: Vec<&str> = got.leases.iter().map(|l| l.item.value.as_str()).collect();
    assert_eq!(values, ["h1", "h2", "n1"]);
    let got = take(&env, &["q"], 10).await;
    let values: Vec<&str> = got.leases.iter().map(|l| l.item.value.as_str()).collect();
    assert_eq!(values, ["n2", "l1"]);
    let empty = take(&env, &["q"], 1).await;
    assert!(empty.leases.is_empty());
    let why = empty.why_empty.expect("an empty answer says why");
    assert_eq!(
        why.reason,
        EmptyReason::NothingReady,
        "an empty queue is just empty"
    );
    assert_eq!(why.queues.len(), 1);
    assert_eq!(why.queues[0].queue, "q");
    let tokens: std::collections::HashSet<_> = got.leases.iter().map(|l| &l.lease).collect();
    assert_eq!(tokens.len(), 2, "every item gets its own lease token");
}

pub async fn dequeue_drains_queues_by_priority(env: Env) {
    queue(&env, "low", QueueSettings::default()).await;
    queue(
        &env,
        "urgent",
        QueueSettings {
            priority: Some(10),
            ..Default::default()
        },
    )
    .await;
    add(&env, "low", &["l1"]).await;
    add(&env, "urgent", &["u1", "u2"]).await;
    let got = take(&env, &["low", "urgent"], 2).await;
    let values: Vec<&str> = got.leases.iter().map(|l| l.item.value.as_str()).collect();
    assert_eq!(values, ["u1", "u2"]);
    assert_eq!(
        take(&env, &["low", "urgent"], 5).await.leases[0].item.value,
        "l1"
    );
}

pub async fn dequeue_says_why_when_the_queue_is_the_reason(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            concurrency: Some(2),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a", "b", "c"]).await;
    let got = take(&env, &["q"], 5).await;
    assert_eq!(got.leases.len(), 2, "the concurrency limit caps a batch");
    let none = take(&env, &["q"], 1).await;
    assert!(none.leases.is_empty());
    let why = none.why_empty.unwrap();
    assert_eq!(why.reason, EmptyReason::ConcurrencyLimit);
    assert!(why.message.contains("concurrency limit (2/2"), "{why:?}");
    env.store
        .set_queue_state("q", QueueState::Paused)
        .await
        .unwrap();
    env.store
        .finish(vec![done(&got.leases[0])], "w1")
        .await
        .unwrap();
    let none = take(&env, &["q"], 1).await;
    assert!(none.leases.is_empty());
    let why = none.why_empty.unwrap();
    assert_eq!(why.reason, EmptyReason::Paused);
    assert_eq!(why.message, "queue 'q' is paused");
    // Paused still accepts work.
    add(&env, "q", &["d"]).await;
    env.store
        .set_queue_state("q", QueueState::Active)
        .await
        .unwrap();
    assert_eq!(take(&env, &["q"], 1).await.leases.len(), 1);
    let e = env
        .store
        .dequeue(DequeueRequest {
            queues: vec!["q".into(), "ghost".into()],
            worker: "w".into(),
            count: 1,
            wait: Duration::ZERO,
        })
        .await
        .unwrap_err();
    assert_eq!(not_found(&e), (Thing::Queue, "ghost"));
}

pub async fn delayed_and_expired_items_are_not_taken(env: Env) {
    queue(&env, "q", Default::default()).await;
    let now = env.clock.now_for_test();
    env.store
        .add_items(
            "q",
            vec![
                NewItem {
                    value: "later".into(),
                    delay_until: Some(now + chrono::Duration::minutes(10)),
                    ..Default::default()
                },
                NewItem {
                    value: "short-lived".into(),
                    expires_in: Some(Duration::from_secs(60)),
                    ..Default::default()
                },
            ],
            "bot",
        )
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(61));
    assert!(take(&env, &["q"], 5).await.leases.is_empty());
    let s = env.store.queue("q").await.unwrap();
    assert_eq!(s.expired, 1);
    let page = env
        .store
        .items(
            Filter {
                expired: Some(true),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(1));
    assert!(page.items[0].expired && page.items[0].value == "short-lived");
    env.clock.advance(Duration::from_secs(600));
    let got = take(&env, &["q"], 5).await;
    assert_eq!(got.leases.len(), 1);
    assert_eq!(got.leases[0].item.value, "later");
    // Extending the expiry revives the expired item.
    let expired = page.items[0].id.clone();
    act(
        &env,
        Target::Ids(vec![expired.clone()]),
        ActionKind::ExtendExpiry { expires_at: None },
    )
    .await
    .unwrap();
    assert_eq!(take(&env, &["q"], 5).await.leases[0].item.id, expired);
}

/// The oldest-queued age counts every queued item, takeable or not: an expired one (read
/// with the expired count), a delayed one, then a takeable one as the older ones leave.
pub async fn the_oldest_queued_age_counts_dormant_items(env: Env) {
    queue(&env, "q", Default::default()).await;
    let now = env.clock.now_for_test();
    let new = |value: &str, expires_in, delay_until| NewItem {
        value: value.into(),
        expires_in,
        delay_until,
        ..Default::default()
    };
    let expiring = env
        .store
        .add_items(
            "q",
            vec![new("expiring", Some(Duration::from_secs(60)), None)],
            "bot",
        )
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(10));
    let later = Some(now + chrono::Duration::hours(1));
    let delayed = env
        .store
        .add_items("q", vec![new("delayed", None, later)], "bot")
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(60));
    // The expired item is dormant once swept, as the delayed one is from the start.
    env.store.sweep().await.unwrap();
    add(&env, "q", &["ready"]).await;
    env.clock.advance(Duration::from_secs(10));
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.expired, s.counts.queued), (1, 3));
    assert_eq!(s.oldest_queued_secs, Some(80), "the expired one");
    for (gone, age) in [(&expiring, 70), (&delayed, 10)] {
        act(&env, ids(gone), ActionKind::Delete).await.unwrap();
        let s = env.store.queue("q").await.unwrap();
        assert_eq!(
            s.oldest_queued_secs,
            Some(age),
            "after deleting {}",
            gone[0].value
        );
    }
}

pub async fn ttl_gives_a_default_expiry(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            ttl: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    )
    .await;
    let it = &add(&env, "q", &["a"]).await[0];
    assert_eq!(
        it.expires_at,
        Some(env.clock.now_for_test() + chrono::Duration::hours(1))
    );
}

// ------------------------------------------------------------------ leases

pub async fn leases_are_fenced(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            lease: Some(Duration::from_secs(60)),
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a"]).await;
    let first = take(&env, &["q"], 1).await.leases.remove(0);
    assert_eq!(
        first.lease_until,
        env.clock.now_for_test() + chrono::Duration::seconds(60)
    );
    // A heartbeat moves the deadline.
    env.clock.advance(Duration::from_secs(30));
    let until = beat(&env, &first.item.id, &first.lease).await.unwrap();
    assert_eq!(
        until,
        env.clock.now_for_test() + chrono::Duration::seconds(60)
    );
    // A wrong token changes nothing.
    let e = beat(&env, &first.item.id, "forged").await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::StaleLease {
            id: first.item.id.clone()
        }
    );
    // The lease runs out: swept into an automatic retry, then leased to someone else.
    env.clock.advance(Duration::from_secs(61));
    assert_eq!(env.store.sweep().await.unwrap(), 1);
    let second = take(&env, &["q"], 1).await.leases.remove(0);
    assert_eq!(second.item.id, first.item.id);
    assert_eq!(second.item.retry_count, 1);
    assert_ne!(second.lease, first.lease);
    // The first worker comes back late: refused, and the item stays with the second.
    let e = finish_one(&env, done(&first)).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::StaleLease {
            id: first.item.id.clone()
        }
    );
    assert_eq!(status(&env, &first.item.id).await, Status::Processing);
    finish_one(&env, done(&second)).await.unwrap();
    assert_eq!(status(&env, &first.item.id).await, Status::Processed);
    // Finishing twice is refused.
    let e = finish_one(&env, done(&second)).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::NotLeased {
            id: first.item.id.clone(),
            status: Status::Processed
        }
    );
}

pub async fn a_timed_out_lease_without_retries_is_a_timeout_exception(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            lease: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    env.clock.advance(Duration::from_secs(11));
    env.store.sweep().await.unwrap();
    let d = env.store.item(&l.item.id).await.unwrap();
    assert_eq!(
        (d.item.status, d.item.reason),
        (Status::Exception, Some(Reason::Timeout))
    );
    assert_eq!(
        d.item.notes.last().unwrap().text,
        workq::rules::timeout_note(Some(&env.worker("w1")), Duration::from_secs(10))
    );
    assert!(d
        .history
        .iter()
        .any(|h| h.by == "system" && h.reason == Some(Reason::Timeout)));
}

/// A hard deadline per attempt: leases are cut to it, a heartbeat past it is refused, and
/// the sweep times the item out (retried per max_retries) even though it kept beating.
pub async fn an_item_past_the_max_runtime_is_timed_out_while_heartbeating(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            lease: Some(Duration::from_secs(60)),
            max_runtime: Some(Duration::from_secs(90)),
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    let start = l.item.started_at.unwrap();
    assert_eq!(l.lease_until, start + chrono::Duration::seconds(60));
    env.clock.advance(Duration::from_secs(50));
    // The lease handed out never runs past started_at + max runtime.
    let until = beat(&env, &l.item.id, &l.lease).await.unwrap();
    assert_eq!(until, start + chrono::Duration::seconds(90));
    env.clock.advance(Duration::from_secs(40));
    // At the max runtime itself the lease is still good (as at a lease's deadline).
    let until = beat(&env, &l.item.id, &l.lease).await.unwrap();
    assert_eq!(until, start + chrono::Duration::seconds(90));
    env.clock.advance(Duration::from_millis(1));
    let e = beat(&env, &l.item.id, &l.lease).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::MaxRuntime {
            id: l.item.id.clone(),
            max_runtime: Duration::from_secs(90)
        }
    );
    assert!(e.to_string().contains("max runtime"), "{e}");
    env.store.sweep().await.unwrap();
    let d = env.store.item(&l.item.id).await.unwrap();
    // Retried like a lease timeout: queued again, one retry counted.
    assert_eq!((d.item.status, d.item.retry_count), (Status::Queued, 1));
    assert!(d.item.notes.iter().any(|n| n.text
        == workq::rules::max_runtime_note(Some(&env.worker("w1")), Duration::from_secs(90))));
    // The second attempt runs out too: no retries left, a timeout exception.
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    env.clock.advance(Duration::from_secs(50));
    beat(&env, &l.item.id, &l.lease).await.unwrap();
    env.clock.advance(Duration::from_secs(41));
    env.store.sweep().await.unwrap();
    let d = env.store.item(&l.item.id).await.unwrap();
    assert_eq!(
        (d.item.status, d.item.reason),
        (Status::Exception, Some(Reason::Timeout))
    );
}

pub async fn a_held_item_refuses_its_workers_result(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    act(&env, Target::Ids(vec![l.item.id.clone()]), ActionKind::Hold)
        .await
        .unwrap();
    let e = finish_one(&env, done(&l)).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::OnHold {
            id: l.item.id.clone()
        }
    );
    assert_eq!(status(&env, &l.item.id).await, Status::OnHold);
}

// ------------------------------------------------------------------ outcomes and retries

/// A lease holder may report `timeout` (`workq work --timeout` killed a command that ran
/// too long): retried like a lease that ran out, then a timeout exception.
pub async fn a_holder_reported_timeout_retries_like_a_lease_timeout(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["slow"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    let r = finish_one(&env, failed(&l, Reason::Timeout, "ran past --timeout 5s"))
        .await
        .unwrap();
    assert_eq!((r.status, r.retry_count), (Status::Queued, 1));
    let again = take(&env, &["q"], 1).await.leases.remove(0);
    let r = finish_one(
        &env,
        failed(&again, Reason::Timeout, "ran past --timeout 5s"),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.reason),
        (Status::Exception, Some(Reason::Timeout))
    );
}

pub async fn it_exceptions_retry_and_business_ones_do_not(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["it", "biz"]).await;
    let ls = take(&env, &["q"], 2).await.leases;
    let r = env
        .store
        .finish(
            vec![
                failed(&ls[0], Reason::It, "SAP timeout after 30s"),
                failed(&ls[1], Reason::Business, "Amount 7,200.00 needs approval"),
            ],
            "w1",
        )
        .await
        .unwrap();
    let (it, biz) = (r[0].as_ref().unwrap(), r[1].as_ref().unwrap());
    assert_eq!((it.status, it.retry_count), (Status::Queued, 1));
    assert_eq!(
        (biz.status, biz.reason),
        (Status::Exception, Some(Reason::Business))
    );
    // The retried item fails again: no retries left.
    let again = take(&env, &["q"], 1).await.leases.remove(0);
    let it = finish_one(&env, failed(&again, Reason::It, "SAP timeout after 31s"))
        .await
        .unwrap();
    assert_eq!(
        (it.status, it.reason),
        (Status::Exception, Some(Reason::It))
    );
    let h = env.store.item(&it.id).await.unwrap().history;
    let fails = h.iter().filter(|e| e.action == "fail").count();
    let retries = h.iter().filter(|e| e.action == "retry").count();
    assert_eq!((fails, retries), (2, 1), "history keeps every failure");
    let s = env.store.queue("q").await.unwrap();
    assert_eq!(s.error_rate, Some(1.0));
}

pub async fn notes_are_appended_never_overwritten(env: Env) {
    queue(&env, "q", Default::default()).await;
    let it = env
        .store
        .add_items(
            "q",
            vec![NewItem {
                value: "v".into(),
                note: Some("from the mailbox".into()),
                ..Default::default()
            }],
            "bot",
        )
        .await
        .unwrap()
        .remove(0);
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    finish_one(&env, failed(&l, Reason::Business, "vendor missing"))
        .await
        .unwrap();
    act(&env, Target::Ids(vec![it.id.clone()]), ActionKind::AddNote)
        .await
        .unwrap();
    let notes: Vec<(String, String)> = env
        .store
        .item(&it.id)
        .await
        .unwrap()
        .item
        .notes
        .into_iter()
        .map(|n| (n.by, n.text))
        .collect();
    assert_eq!(
        notes,
        [
            (env.person("bot"), "from the mailbox".to_string()),
            (env.worker("w1"), "vendor missing".to_string()),
            (env.person(ME), "checked with vendor".to_string())
        ]
    );
}

// ------------------------------------------------------------------ human actions

pub async fn human_actions_follow_the_transition_table(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = add(&env, "q", &["a", "b"]).await;
    // Requeue of a queued item is refused, naming both statuses, and changes nothing.
    let e = act(&env, ids(&items), requeue()).await.unwrap_err();
    let queued = Some(To::Status(Status::Queued));
    assert_eq!(
        refused(&e),
        (
            "requeue",
            2,
            2,
            vec![
                (items[0].id.as_str(), Status::Queued, queued),
                (items[1].id.as_str(), Status::Queued, queued)
            ]
        )
    );
    assert_eq!(counts(&env, "q").await.queued, 2);
    // Hold both, release one, process the other from hold.
    act(&env, ids(&items), ActionKind::Hold).await.unwrap();
    assert_eq!(counts(&env, "q").await.on_hold, 2);
    act(&env, ids(&items[..1]), ActionKind::Release)
        .await
        .unwrap();
    act(&env, ids(&items[1..]), ActionKind::Processed)
        .await
        .unwrap();
    assert_eq!(status(&env, &items[0].id).await, Status::Queued);
    assert_eq!(status(&env, &items[1].id).await, Status::Processed);
    // A mixed set where one is refused: nothing changes at all.
    act(&env, ids(&items[..1]), ActionKind::Hold).await.unwrap();
    let e = act(&env, ids(&items), ActionKind::Release)
        .await
        .unwrap_err();
    assert_eq!(
        refused(&e),
        (
            "release",
            2,
            1,
            vec![(items[1].id.as_str(), Status::Processed, queued)]
        )
    );
    assert_eq!(status(&env, &items[0].id).await, Status::OnHold);
    assert_eq!(status(&env, &items[1].id).await, Status::Processed);
    // Reprocess a processed item, delete one; unknown ids are named.
    act(&env, ids(&items[1..]), requeue()).await.unwrap();
    act(&env, ids(&items[..1]), ActionKind::Delete)
        .await
        .unwrap();
    // A deleted item is still shown, as deleted, with who did it and its history.
    let d = env.store.item(&items[0].id).await.unwrap();
    let del = d.deleted.clone().expect("marked deleted");
    assert_eq!(del.by, env.person(ME));
    assert_eq!(d.item.status, Status::OnHold, "as it was when deleted");
    let last = d.history.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.from, last.to, last.action_id),
        ("delete", Some(Status::OnHold), None, Some(del.action_id))
    );
    let e = env.store.item("01NOPE").await.unwrap_err();
    assert_eq!(not_found(&e), (Thing::Item, "01NOPE"));
    let e = act(&env, Target::Ids(vec!["01NOPE".into()]), ActionKind::Hold)
        .await
        .unwrap_err();
    assert_eq!(not_found(&e), (Thing::Item, "01NOPE"));
    let c = counts(&env, "q").await;
    assert_eq!((c.queued, c.total()), (1, 1));
    // Every action is in the history with who did it (the bot's enqueue aside: behind a
    // server the bot and the person are one token).
    let h = env.store.item(&items[1].id).await.unwrap().history;
    let mine: Vec<&str> = h
        .iter()
        .filter(|e| e.by == env.person(ME) && e.action != "enqueue")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(mine, ["hold", "processed", "requeue"]);
    assert!(env
        .store
        .item(&items[1].id)
        .await
        .unwrap()
        .deleted
        .is_none());
}

pub async fn requeue_with_an_edited_value_keeps_the_old_one(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &[r#"{"Amount": 9000}"#]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    finish_one(&env, failed(&l, Reason::Business, "needs approval"))
        .await
        .unwrap();
    act(
        &env,
        Target::Ids(vec![l.item.id.clone()]),
        ActionKind::Requeue {
            delay: Some(Duration::from_secs(300)),
            value: Some(r#"{"Amount": 900}"#.into()),
        },
    )
    .await
    .unwrap();
    let d = env.store.item(&l.item.id).await.unwrap();
    assert_eq!(d.item.value, r#"{"Amount": 900}"#);
    assert_eq!(d.item.requeue_count, 1);
    assert_eq!(d.item.reason, None);
    assert_eq!(
        d.item.delay_until,
        Some(env.clock.now_for_test() + chrono::Duration::seconds(300))
    );
    let last = d.history.last().unwrap();
    // The history keeps both values as written, old → new, apart from the person's note,
    // with everything else the requeue changed (its delay).
    assert_eq!(
        last.changes,
        vec![
            FieldChange {
                field: "value".into(),
                old: serde_json::Value::String(r#"{"Amount": 9000}"#.into()),
                new: serde_json::Value::String(r#"{"Amount": 900}"#.into()),
            },
            FieldChange {
                field: "delay_until".into(),
                old: serde_json::Value::Null,
                new: serde_json::Value::String("2026-11-22T09:05:00.000Z".into()),
            },
        ]
    );
    assert_eq!(last.note.as_deref(), Some("checked with vendor"));
    assert!(take(&env, &["q"], 1).await.leases.is_empty(), "delayed");
}

pub async fn bulk_actions_by_filter_and_undo(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b", "c", "d"]).await;
    let ls = take(&env, &["q"], 4).await.leases;
    let outcomes = vec![
        failed(&ls[0], Reason::Business, "Vendor 'Contoso' not found"),
        failed(&ls[1], Reason::Business, "Vendor 'Fabrikam' not found"),
        failed(&ls[2], Reason::Business, "Amount 9,100.00 needs approval"),
        done(&ls[3]),
    ];
    env.store.finish(outcomes, "w1").await.unwrap();
    let groups = env.store.groups(None).await.unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].count, groups[0].signature.as_str()),
        (2, "Vendor * not found")
    );
    assert!(groups[0]
        .example
        .as_deref()
        .unwrap()
        .starts_with("Vendor '"));
    let group = Filter {
        queue: Some("q".into()),
        statuses: vec![Status::Exception],
        reason: Some(Reason::Business),
        signature: Some(groups[0].signature.clone()),
        ..Default::default()
    };
    let p = env
        .store
        .preview(Target::Filter(group.clone()), Some(requeue()), 1)
        .await
        .unwrap();
    assert_eq!((p.count, p.sample.len()), (2, 1));
    let r = act(&env, Target::Filter(group.clone()), requeue())
        .await
        .unwrap();
    assert_eq!(r.touched, 2);
    assert_eq!(counts(&env, "q").await.exception, 1);
    // Undo puts both back as they were.
    let u = undo(&env, r.action_id).await.unwrap();
    assert_eq!(u.restored, 2);
    let c = counts(&env, "q").await;
    assert_eq!((c.exception, c.queued), (3, 0));
    let d = env.store.item(&ls[0].item.id).await.unwrap();
    assert_eq!(
        (d.item.status, d.item.reason),
        (Status::Exception, Some(Reason::Business))
    );
    assert_eq!(
        d.item.value, ls[0].item.value,
        "a bulk action that keeps values keeps them"
    );
    assert_eq!(d.history.last().unwrap().action, "undo");
    let e = undo(&env, r.action_id).await.unwrap_err();
    assert!(
        matches!(conflict(&e), Conflict::AlreadyUndone { action_id, .. } if *action_id == r.action_id),
        "{e:?}"
    );
    // Once an item moved on, a strict undo is refused and changes nothing…
    let r = act(&env, Target::Filter(group), requeue()).await.unwrap();
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    let strict = UndoRequest {
        strict: true,
        ..UndoRequest::new(r.action_id, ME)
    };
    let e = env.store.undo(strict).await.unwrap_err();
    let Conflict::UndoRefused {
        action_id,
        total,
        restorable,
        strict: true,
        kept,
    } = conflict(&e)
    else {
        panic!("a strict undo refused: {e:?}")
    };
    assert_eq!(*action_id, r.action_id);
    assert!(restorable < total, "{e:?}");
    assert!(kept.iter().any(|k| k.id == l.item.id), "{e:?}");
    let c = counts(&env, "q").await;
    assert_eq!(
        (c.processing, c.queued),
        (1, 1),
        "the refused undo changed nothing"
    );
    // …and a plain one restores the other and keeps the one a worker took, naming it.
    let u = undo(&env, r.action_id).await.unwrap();
    assert_eq!((u.restored, u.total), (1, 2));
    assert_eq!(
        u.changed,
        vec![Tally {
            count: 1,
            why: "being processed".into()
        }]
    );
    assert_eq!(u.kept_items[0].id, l.item.id);
    assert_eq!(
        u.summary(),
        "restored 1 of 2; 1 changed since: 1 being processed"
    );
    let c = counts(&env, "q").await;
    assert_eq!((c.processing, c.queued, c.exception), (1, 0, 2));
    finish_one(&env, done(&l)).await.unwrap();
    let e = undo(&env, 9999).await.unwrap_err();
    assert_eq!(not_found(&e), (Thing::Action, "9999"));
}

/// The bug of issue 6: a note (or a new priority or expiry) on an item a worker holds, then
/// undone, took the item from the worker: back to queued, its result refused, processed
/// twice. Undo puts back only the note; status and lease stay the worker's.
pub async fn undo_never_takes_an_item_from_its_worker(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b", "c"]).await;
    let ls = take(&env, &["q"], 3).await.leases;
    let target = |l: &Lease| Target::Ids(vec![l.item.id.clone()]);
    let later = env.clock.now_for_test() + chrono::Duration::hours(8);
    let actions = [
        ActionKind::AddNote,
        ActionKind::SetPriority {
            priority: Priority::High,
        },
        ActionKind::ExtendExpiry {
            expires_at: Some(later),
        },
    ];
    for (l, action) in ls.iter().zip(actions) {
        let r = act(&env, target(l), action).await.unwrap();
        // The worker is still at it: its heartbeat changes the item, not the action's part.
        env.store
            .heartbeat(vec![l.held()])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        let u = undo(&env, r.action_id).await.unwrap();
        assert_eq!((u.restored, u.total), (1, 1), "{}", r.verb);
        let i = env.store.item(&l.item.id).await.unwrap().item;
        assert_eq!(
            i.status,
            Status::Processing,
            "{}: still the worker's",
            r.verb
        );
        assert_eq!(i.worker.as_deref(), Some(env.worker("w1").as_str()));
        assert_eq!(i.priority, Priority::Normal, "{}", r.verb);
        assert_eq!(i.expires_at, None, "{}", r.verb);
        assert!(
            i.notes.is_empty(),
            "{}: the note is gone: {:?}",
            r.verb,
            i.notes
        );
    }
    assert_eq!(counts(&env, "q").await.processing, 3);
    // Every worker's result is taken: each item is processed once, by its worker.
    for l in &ls {
        let f = finish_one(&env, done(l)).await.unwrap();
        assert_eq!(f.status, Status::Processed);
    }
    let c = counts(&env, "q").await;
    assert_eq!((c.processed, c.queued, c.processing), (3, 0, 0));
}

/// Only what the action changed goes back: a priority changed again since, or a note a bot
/// added since, is left as it is.
pub async fn undo_restores_only_the_parts_the_action_changed(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = add(&env, "q", &["a", "b"]).await;
    let high = ActionKind::SetPriority {
        priority: Priority::High,
    };
    let r = act(&env, ids(&items), high).await.unwrap();
    // Someone sets one item low afterwards: that one is kept, the other goes back.
    act(
        &env,
        ids(&items[1..]),
        ActionKind::SetPriority {
            priority: Priority::Low,
        },
    )
    .await
    .unwrap();
    let u = undo(&env, r.action_id).await.unwrap();
    assert_eq!(
        u.summary(),
        "restored 1 of 2; 1 changed since: 1 priority changed"
    );
    let p = |i: usize| {
        let store = env.store.clone();
        let id = items[i].id.clone();
        async move { store.item(&id).await.unwrap().item.priority }
    };
    assert_eq!((p(0).await, p(1).await), (Priority::Normal, Priority::Low));
    // A note action's undo takes away its note and only its note.
    let n = act(&env, ids(&items[..1]), ActionKind::AddNote)
        .await
        .unwrap();
    undo(&env, n.action_id).await.unwrap();
    let d = env.store.item(&items[0].id).await.unwrap();
    assert!(d.item.notes.is_empty(), "{:?}", d.item.notes);
    let h = d.history.last().unwrap();
    assert_eq!(
        (h.action.as_str(), h.by.as_str()),
        ("undo", env.person(ME).as_str())
    );
}

/// Undo of a hold that stopped a worker: the worker was told its item is on hold, so neither
/// processing (a dead lease) nor the queue (a second worker while the first may still be
/// at it) is safe. The item stays held, and the undo says why.
pub async fn undoing_a_hold_of_a_processing_item_keeps_it_held(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b"]).await;
    let ls = take(&env, &["q"], 1).await.leases;
    let hold = act(
        &env,
        Target::Filter(Filter {
            queue: Some("q".into()),
            statuses: vec![Status::Queued, Status::Processing],
            ..Default::default()
        }),
        ActionKind::Hold,
    )
    .await
    .unwrap();
    assert_eq!(hold.touched, 2);
    let u = undo(&env, hold.action_id).await.unwrap();
    assert_eq!((u.restored, u.total), (1, 2));
    assert!(
        u.kept[0].why.contains("held while a worker processed it"),
        "{:?}",
        u.kept
    );
    assert_eq!(u.kept_items[0].id, ls[0].item.id);
    assert_eq!(status(&env, &ls[0].item.id).await, Status::OnHold);
    let c = counts(&env, "q").await;
    assert_eq!((c.queued, c.on_hold, c.processing), (1, 1, 0));
    let e = finish_one(&env, done(&ls[0])).await.unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::OnHold {
            id: ls[0].item.id.clone()
        }
    );
    // Nothing else takes it: the one queued item is the other.
    let next = take(&env, &["q"], 5).await.leases;
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].item.id, ls[0].item.id);
    // A strict undo of only such an item has nothing to restore.
    let only = act(&env, ids(&[next[0].item.clone()]), ActionKind::Hold)
        .await
        .unwrap();
    let e = undo(&env, only.action_id).await.unwrap_err();
    assert!(
        matches!(
            conflict(&e),
            Conflict::UndoRefused {
                total: 1,
                restorable: 0,
                strict: false,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A preview says what the action will change and skip, and why, before anyone confirms;
/// the action then skips what the preview said (or, all or nothing, refuses).
pub async fn previews_count_what_an_action_changes_and_skips(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b", "c", "d", "e"]).await;
    let ls = take(&env, &["q"], 2).await.leases;
    env.store
        .finish(
            vec![failed(&ls[0], Reason::Business, "no"), done(&ls[1])],
            "w1",
        )
        .await
        .unwrap();
    // Now: 3 queued, 1 exception, 1 processed. Requeue of the whole queue:
    let all = Target::Filter(Filter {
        queue: Some("q".into()),
        ..Default::default()
    });
    let p = env
        .store
        .preview(all.clone(), Some(requeue()), 10)
        .await
        .unwrap();
    assert_eq!((p.count, p.changes), (5, 2));
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].count, 3);
    assert!(
        p.skipped[0].why.contains("cannot go from queued to queued"),
        "{:?}",
        p.skipped
    );
    let mut sample: Vec<Status> = p.sample.iter().map(|i| i.status).collect();
    sample.sort();
    assert_eq!(
        sample,
        [Status::Processed, Status::Exception],
        "the sample shows what changes"
    );
    // Without an action, just what the target covers.
    let p = env.store.preview(all.clone(), None, 1).await.unwrap();
    assert_eq!((p.count, p.changes, p.sample.len()), (5, 5, 1));
    // All or nothing refuses; skipping applies to the two and counts the three.
    let e = act(&env, all.clone(), requeue()).await.unwrap_err();
    let (action, total, n, refused_items) = refused(&e);
    assert_eq!((action, total, n), ("requeue", 5, 3));
    assert!(
        refused_items
            .iter()
            .all(|(_, from, _)| *from == Status::Queued),
        "{e:?}"
    );
    let r = env
        .store
        .act(ActionRequest {
            target: all.clone(),
            action: requeue(),
            note: None,
            actor: ME.into(),
            skip_refused: true,
        })
        .await
        .unwrap();
    assert_eq!(r.touched, 2);
    assert_eq!(r.skipped, p_skipped(3));
    assert_eq!(counts(&env, "q").await.queued, 5);
    // Named items are counted the same way.
    let items = env
        .store
        .items(Filter::default(), PageRequest::default())
        .await
        .unwrap()
        .items;
    let p = env
        .store
        .preview(ids(&items), Some(ActionKind::Release), 5)
        .await
        .unwrap();
    assert_eq!((p.count, p.changes), (5, 0));
    assert!(p.skipped[0].why.contains("only on-hold items are released"));
    // When nothing at all can change, skipping does not make it an action.
    let e = env
        .store
        .act(ActionRequest {
            target: all,
            action: ActionKind::Release,
            note: None,
            actor: ME.into(),
            skip_refused: true,
        })
        .await
        .unwrap_err();
    let (action, total, n, _) = refused(&e);
    assert_eq!((action, total, n), ("release", 5, 5));
}

fn p_skipped(n: u64) -> Vec<Tally> {
    vec![Tally {
        count: n,
        why: "cannot go from queued to queued (it is in the queue already; an expired one \
              needs a new expiry: extend it)"
            .into(),
    }]
}

/// Hold then release keeps an expiry that passed meanwhile (the item is then expired, and
/// the preview says so); a requeue clears it, and the history records either change.
pub async fn hold_then_release_keeps_the_expiry(env: Env) {
    queue(&env, "q", Default::default()).await;
    let soon = env.clock.now_for_test() + chrono::Duration::minutes(30);
    let items = env
        .store
        .add_items(
            "q",
            vec![
                NewItem {
                    value: "a".into(),
                    expires_at: Some(soon),
                    ..Default::default()
                },
                NewItem {
                    value: "b".into(),
                    expires_at: Some(soon),
                    ..Default::default()
                },
            ],
            "bot",
        )
        .await
        .unwrap();
    act(&env, ids(&items), ActionKind::Hold).await.unwrap();
    env.clock.advance(Duration::from_secs(3600));
    let p = env
        .store
        .preview(ids(&items[..1]), Some(ActionKind::Release), 5)
        .await
        .unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("1 will be expired once released")),
        "{:?}",
        p.warnings
    );
    act(&env, ids(&items[..1]), ActionKind::Release)
        .await
        .unwrap();
    let d = env.store.item(&items[0].id).await.unwrap();
    assert_eq!(d.item.expires_at, Some(soon), "the expiry is kept");
    assert!(d.item.expired, "and it has passed");
    assert!(take(&env, &["q"], 5).await.leases.is_empty(), "not taken");
    // A requeue is a person asking for it to be done: the passed expiry goes, on record.
    act(&env, ids(&items[1..]), requeue()).await.unwrap();
    let d = env.store.item(&items[1].id).await.unwrap();
    assert_eq!(d.item.expires_at, None);
    let last = d.history.last().unwrap();
    let expiry = last.changes.iter().find(|c| c.field == "expires_at");
    assert!(
        expiry.is_some_and(|c| c
            .old
            .as_str()
            .is_some_and(|t| t.contains("2026-11-22T09:30:00"))
            && c.new.is_null()),
        "{last:?}"
    );
    assert_eq!(take(&env, &["q"], 5).await.leases[0].item.id, items[1].id);
}

/// Every human action writes what it changed in the item's history.
pub async fn the_history_says_what_an_action_changed(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = add(&env, "q", &["a"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    act(&env, ids(&items), ActionKind::Hold).await.unwrap();
    act(
        &env,
        ids(&items),
        ActionKind::Requeue {
            delay: Some(Duration::from_secs(600)),
            value: None,
        },
    )
    .await
    .unwrap();
    act(
        &env,
        ids(&items),
        ActionKind::SetPriority {
            priority: Priority::Low,
        },
    )
    .await
    .unwrap();
    let r = act(
        &env,
        ids(&items),
        ActionKind::ExtendExpiry {
            expires_at: Some(env.clock.now_for_test() + chrono::Duration::hours(2)),
        },
    )
    .await
    .unwrap();
    undo(&env, r.action_id).await.unwrap();
    let h = env.store.item(&l.item.id).await.unwrap().history;
    // One record of a change, old → new, field by field (`FieldChange`); the person's
    // note stays the note, no record text appended to it.
    let undo_note = format!("undo of action {} (extend-expiry)", r.action_id);
    let changes = |action: &str| -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let e = h.iter().rev().find(|e| e.action == action).unwrap();
        let note = if action == "undo" {
            undo_note.as_str()
        } else {
            "checked with vendor"
        };
        assert_eq!(e.note.as_deref(), Some(note), "{e:?}");
        e.changes
            .iter()
            .map(|c| (c.field.clone(), c.old.clone(), c.new.clone()))
            .collect()
    };
    use serde_json::json;
    assert_eq!(
        changes("hold"),
        [("lease".into(), json!(env.worker("w1")), json!(null))],
        "whose lease the hold ended"
    );
    let requeue = changes("requeue");
    assert_eq!(requeue.len(), 1, "{requeue:?}");
    assert_eq!(
        (requeue[0].0.as_str(), &requeue[0].1),
        ("delay_until", &json!(null))
    );
    assert!(
        requeue[0]
            .2
            .as_str()
            .is_some_and(|t| t.contains("09:10:00")),
        "{requeue:?}"
    );
    assert_eq!(
        changes("priority"),
        [("priority".into(), json!("normal"), json!("low"))]
    );
    // The undo records what it put back the same way.
    let undone = changes("undo");
    assert_eq!(undone.len(), 1, "{undone:?}");
    assert_eq!(undone[0].0, "expires_at");
    assert!(undone[0].2.is_null(), "{undone:?}");
    let summaries: Vec<String> = h
        .iter()
        .find(|e| e.action == "priority")
        .unwrap()
        .changes
        .iter()
        .map(|c| c.summary())
        .collect();
    assert_eq!(summaries, ["priority: normal → low"]);
}

/// An exception's group is its worker's failure note, and the group's example is a note of
/// that group: a person's note before or after the failure is neither.
pub async fn groups_follow_the_workers_failure_note(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = add(&env, "q", &["a", "b", "c"]).await;
    // A person's note first; then the worker fails it without a note of its own.
    act(&env, ids(&items[..1]), ActionKind::AddNote)
        .await
        .unwrap();
    let ls = take(&env, &["q"], 3).await.leases;
    env.store
        .finish(
            vec![
                ls[0].outcome(Some(Reason::Business), None),
                failed(&ls[1], Reason::Business, "Vendor 'Contoso' not found"),
                failed(&ls[2], Reason::Business, "Vendor 'Fabrikam' not found"),
            ],
            "w1",
        )
        .await
        .unwrap();
    // And a person's note on the newest of the vendor group.
    env.store
        .act(ActionRequest {
            target: ids(&items[2..]),
            action: ActionKind::AddNote,
            note: Some("called Fabrikam".into()),
            actor: ME.into(),
            skip_refused: false,
        })
        .await
        .unwrap();
    let groups = env.store.groups(None).await.unwrap();
    let sigs: Vec<(&str, u64, Option<&str>)> = groups
        .iter()
        .map(|g| (g.signature.as_str(), g.count, g.example.as_deref()))
        .collect();
    assert_eq!(
        sigs,
        [
            ("Vendor * not found", 2, Some("Vendor 'Fabrikam' not found")),
            ("", 1, None),
        ]
    );
}

/// The action log: every action with who, when, what, how many, where, and its undo.
pub async fn the_action_log_lists_actions_and_their_undo(env: Env) {
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    let ia = add(&env, "a", &["1", "2"]).await;
    let ib = add(&env, "b", &["3"]).await;
    let both: Vec<Item> = ia.iter().chain(&ib).cloned().collect();
    let hold = act(&env, ids(&both), ActionKind::Hold).await.unwrap();
    env.clock.advance(Duration::from_secs(60));
    let note = act(&env, ids(&ib), ActionKind::AddNote).await.unwrap();
    act(&env, ids(&ia[..1]), ActionKind::Release).await.unwrap();
    env.clock.advance(Duration::from_secs(60));
    let u = undo(&env, hold.action_id).await.unwrap();
    assert_eq!(
        u.summary(),
        "restored 1 of 3; 2 changed since: 1 queued, 1 edited, still on hold"
    );
    let log = env
        .store
        .actions(ActionQuery {
            queue: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].id, hold.action_id, "newest first");
    let h = &log[2];
    assert_eq!(
        (h.verb.as_str(), h.by.as_str(), h.touched),
        ("hold", env.person(ME).as_str(), 3)
    );
    assert_eq!(h.kind, Some(ActionKind::Hold));
    assert_eq!(h.note.as_deref(), Some("checked with vendor"));
    assert_eq!(h.queues, ["a", "b"]);
    assert_eq!(h.at, start());
    assert_eq!(h.undone_at, Some(start() + chrono::Duration::seconds(120)));
    assert_eq!(h.undone_by.as_deref(), Some(env.person(ME).as_str()));
    // The released one moved on, the noted one was changed since: only one goes back.
    assert_eq!(h.restored, Some(1));
    assert_eq!(log[1].id, note.action_id);
    assert_eq!(log[1].undone_at, None);
    // By queue, and limited.
    let only_b = env
        .store
        .actions(ActionQuery {
            queue: Some("b".into()),
            limit: 10,
        })
        .await
        .unwrap();
    let ids_b: Vec<i64> = only_b.iter().map(|a| a.id).collect();
    assert_eq!(ids_b, [note.action_id, hold.action_id]);
    let one = env
        .store
        .actions(ActionQuery {
            queue: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    // Bad input.
    let e = env
        .store
        .actions(ActionQuery {
            queue: Some("nope".into()),
            limit: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(not_found(&e), (Thing::Queue, "nope"));
    let e = env
        .store
        .actions(ActionQuery {
            queue: None,
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "limit");
    // A dry run says what an undo would do and changes nothing.
    let dry = env
        .store
        .undo(UndoRequest {
            dry_run: true,
            ..UndoRequest::new(note.action_id, ME)
        })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.summary(), "would restore 1 of 1");
    assert_eq!(
        env.store.item(&ib[0].id).await.unwrap().item.notes.len(),
        2,
        "the hold's note and the note's"
    );
}

pub async fn undo_of_a_delete_restores_the_items(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = env
        .store
        .add_items(
            "q",
            vec![NewItem {
                value: "precious".into(),
                key: Some("K-1".into()),
                ..Default::default()
            }],
            "bot",
        )
        .await
        .unwrap();
    let r = act(&env, ids(&items), ActionKind::Delete).await.unwrap();
    assert_eq!(counts(&env, "q").await.total(), 0);
    let gone = env.store.item(&items[0].id).await.unwrap();
    assert_eq!(
        gone.deleted.as_ref().map(|d| d.action_id),
        Some(r.action_id)
    );
    assert_eq!(gone.item.value, "precious", "shown as it was");
    assert_eq!((gone.item.sla, gone.item.expired), (None, false));
    undo(&env, r.action_id).await.unwrap();
    let d = env.store.item(&items[0].id).await.unwrap();
    assert_eq!(d.deleted, None, "back in its queue");
    assert_eq!(
        (d.item.value.as_str(), d.item.key.as_deref()),
        ("precious", Some("K-1"))
    );
    assert_eq!(counts(&env, "q").await.queued, 1);
    assert!(
        d.history.iter().any(|h| h.action == "delete"),
        "history survives a delete"
    );
    // Deleted again: the latest delete is the one named.
    let again = act(&env, ids(&items), ActionKind::Delete).await.unwrap();
    let d = env.store.item(&items[0].id).await.unwrap();
    assert_eq!(d.deleted.map(|d| d.action_id), Some(again.action_id));
    // Deleting the queue deletes the history too: then the item is unknown.
    env.store.delete_queue("q", true).await.unwrap();
    let e = env.store.item(&items[0].id).await.unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
}

pub async fn bulk_filter_covers_statuses_and_search(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["alpha invoice", "beta invoice", "gamma"]).await;
    let f = Filter {
        queue: Some("q".into()),
        statuses: vec![Status::Queued],
        search: Some("invoice".into()),
        ..Default::default()
    };
    let r = act(&env, Target::Filter(f), ActionKind::Hold)
        .await
        .unwrap();
    assert_eq!(r.touched, 2);
    let c = counts(&env, "q").await;
    assert_eq!((c.on_hold, c.queued), (2, 1));
    let none = Filter {
        queue: Some("q".into()),
        search: Some("zzz".into()),
        ..Default::default()
    };
    let e = act(&env, Target::Filter(none), ActionKind::Hold)
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "target");
}

// ------------------------------------------------------------------ getting work in

pub async fn keys_and_sizes_are_checked(env: Env) {
    queue(&env, "q", Default::default()).await;
    queue(&env, "other", Default::default()).await;
    let keyed = |k: &str| NewItem {
        value: "v".into(),
        key: Some(k.into()),
        ..Default::default()
    };
    env.store
        .add_items("q", vec![keyed("INV-1")], ME)
        .await
        .unwrap();
    let e = env
        .store
        .add_items("q", vec![keyed("INV-1")], ME)
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::DuplicateKey {
            queue: "q".into(),
            key: "INV-1".into(),
            index: None
        }
    );
    env.store
        .add_items("other", vec![keyed("INV-1")], ME)
        .await
        .expect("keys are unique per queue");
    // A batch with a bad item lands nothing.
    let e = env
        .store
        .add_items("q", vec![keyed("INV-2"), keyed("INV-2")], ME)
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::DuplicateKey {
            queue: "q".into(),
            key: "INV-2".into(),
            index: Some(2)
        }
    );
    let big = NewItem {
        value: "x".repeat(MAX_VALUE_BYTES + 1),
        ..Default::default()
    };
    let e = env.store.add_items("q", vec![big], ME).await.unwrap_err();
    assert_eq!(invalid(&e), "value");
    assert_eq!(counts(&env, "q").await.queued, 1);
}

pub async fn items_created_on_hold_are_not_taken(env: Env) {
    queue(&env, "q", Default::default()).await;
    let it = env
        .store
        .add_items(
            "q",
            vec![NewItem {
                value: "review me".into(),
                hold: true,
                ..Default::default()
            }],
            ME,
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(it.status, Status::OnHold);
    assert!(take(&env, &["q"], 1).await.leases.is_empty());
    act(&env, Target::Ids(vec![it.id.clone()]), ActionKind::Release)
        .await
        .unwrap();
    assert_eq!(take(&env, &["q"], 1).await.leases.len(), 1);
}

async fn import_rows(
    env: &Env,
    skip_bad: bool,
    rows: Vec<Result<ImportRow, RowError>>,
) -> Result<ImportReport, Error> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let send = tokio::spawn(async move {
        for chunk in rows.chunks(2) {
            tx.send(chunk.to_vec()).await.unwrap();
        }
    });
    let r = env
        .store
        .import(
            "q",
            ImportOptions {
                skip_bad,
                ..Default::default()
            },
            rx,
            ME,
        )
        .await;
    send.await.unwrap();
    r
}

fn row(line: u64, key: &str) -> Result<ImportRow, RowError> {
    Ok(ImportRow {
        line,
        item: NewItem {
            value: format!("v{line}"),
            key: Some(key.into()),
            ..Default::default()
        },
    })
}

pub async fn import_is_all_or_nothing_unless_told(env: Env) {
    queue(&env, "q", Default::default()).await;
    env.store
        .add_items(
            "q",
            vec![NewItem {
                value: "old".into(),
                key: Some("K-9".into()),
                ..Default::default()
            }],
            ME,
        )
        .await
        .unwrap();
    let parse_error = Err(RowError {
        line: 4,
        column: Some("priority".into()),
        message: "unknown priority 'urgent'".into(),
        ..Default::default()
    });
    let rows = vec![
        row(2, "K-1"),
        row(3, "K-9"),
        parse_error,
        row(5, "K-1"),
        row(6, "K-2"),
    ];
    let e = import_rows(&env, false, rows.clone()).await.unwrap_err();
    let Error::Invalid {
        field, rows: bad, ..
    } = &e
    else {
        panic!("a refused import is invalid input: {e:?}")
    };
    assert_eq!(field, "rows");
    let bad: Vec<(u64, Option<&str>, Option<u64>)> = bad
        .iter()
        .map(|r| (r.line, r.column.as_deref(), r.repeats))
        .collect();
    assert_eq!(
        bad,
        [
            (3, Some("key"), None),
            (4, Some("priority"), None),
            // A key the file had already says which line had it, not that the queue had it.
            (5, Some("key"), Some(2)),
        ]
    );
    assert_eq!(counts(&env, "q").await.queued, 1, "nothing landed");
    let r = import_rows(&env, true, rows).await.unwrap();
    assert_eq!(r.imported, 2);
    let lines: Vec<u64> = r.rejected.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5]);
    assert_eq!(counts(&env, "q").await.queued, 3);
}

// ------------------------------------------------------------------ health

pub async fn sla_counts_and_filters(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            sla: Some(Duration::from_secs(100)),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["oldest"]).await;
    env.clock.advance(Duration::from_secs(30));
    add(&env, "q", &["middle"]).await;
    env.clock.advance(Duration::from_secs(30));
    add(&env, "q", &["newest"]).await;
    // Ages now 60, 30, 0 → advance 45: 105 (out), 75 (in: under 80), 45 (in).
    env.clock.advance(Duration::from_secs(45));
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.out_of_sla, s.at_risk), (1, 0));
    // +10: 115 out, 85 at-risk, 55 in.
    env.clock.advance(Duration::from_secs(10));
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.out_of_sla, s.at_risk), (1, 1));
    assert_eq!(s.oldest_queued_secs, Some(115));
    for (sla, want) in [
        (Sla::Out, "oldest"),
        (Sla::AtRisk, "middle"),
        (Sla::In, "newest"),
    ] {
        let page = env
            .store
            .items(
                Filter {
                    sla: Some(sla),
                    ..Default::default()
                },
                PageRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(page.total, Some(1), "{sla}");
        assert_eq!(
            (page.items[0].value.as_str(), page.items[0].sla),
            (want, Some(sla))
        );
    }
}

pub async fn throughput_handling_time_and_projection(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            deadline: Some("23:00".into()),
            tz: Some("UTC".into()),
            ..Default::default()
        },
    )
    .await;
    let values: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    add(&env, "q", &refs).await;
    // Process 10 items a minute for 3 minutes, each taking 2 s.
    for _ in 0..3 {
        let ls = take(&env, &["q"], 10).await.leases;
        env.clock.advance(Duration::from_secs(2));
        env.store
            .finish(ls.iter().map(done).collect(), "w1")
            .await
            .unwrap();
        env.clock.advance(Duration::from_secs(58));
    }
    let s = env.store.queue("q").await.unwrap();
    assert_eq!(s.counts.processed, 30);
    assert_eq!(s.avg_handling_ms, Some(2000));
    assert_eq!(s.error_rate, Some(0.0));
    // 10 a minute since work began, three minutes ago: not 30 spread over the 15-minute
    // window, which would make a new queue look a fifth as fast as it is.
    assert!(
        s.throughput_per_min > 9.0 && s.throughput_per_min < 11.0,
        "{}",
        s.throughput_per_min
    );
    assert_eq!(s.throughput_history.iter().sum::<u64>(), 30);
    let p = s.projection.unwrap();
    assert_eq!(
        p.deadline,
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 23, 0, 0)
            .unwrap()
    );
    assert!(
        p.margin_secs.unwrap() > 0,
        "10 items left drain well before 23:00"
    );
}

pub async fn counters_match_the_items(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    let values: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    add(&env, "q", &refs).await;
    let ls = take(&env, &["q"], 20).await.leases;
    let mut outcomes = Vec::new();
    for (i, l) in ls.iter().enumerate() {
        outcomes.push(match i % 4 {
            0 => done(l),
            1 => failed(l, Reason::It, "flaky"),
            2 => failed(l, Reason::Business, "bad"),
            _ => continue,
        });
    }
    env.store.finish(outcomes, "w1").await.unwrap();
    let f = Filter {
        queue: Some("q".into()),
        statuses: vec![Status::Exception],
        ..Default::default()
    };
    act(&env, Target::Filter(f), ActionKind::Hold)
        .await
        .unwrap();
    let want = counts(&env, "q").await;
    let mut real = StatusCounts::default();
    for s in Status::ALL {
        let p = env
            .store
            .items(
                Filter {
                    queue: Some("q".into()),
                    statuses: vec![*s],
                    search: Some("v".into()), // forces a real count, not the counters
                    ..Default::default()
                },
                PageRequest {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        *real.get_mut(*s) = p.total.unwrap();
    }
    assert_eq!(want, real);
    assert_eq!(want.total(), 30);
    assert_eq!((want.processed, want.on_hold, want.processing), (5, 5, 5));
}

/// The SLA counts of a queue summary come from per-minute tallies; they must agree with an
/// exact count after every kind of change, at every moment.
pub async fn sla_counts_agree_with_an_exact_count(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            sla: Some(Duration::from_secs(150)),
            ..Default::default()
        },
    )
    .await;
    // Items enqueued over several minutes, some mid-minute.
    let mut all = Vec::new();
    for i in 0..12 {
        all.extend(add(&env, "q", &[&format!("v{i}"), &format!("w{i}")]).await);
        env.clock.advance(Duration::from_secs(37));
    }
    let ls = take(&env, &["q"], 8).await.leases;
    let mut outcomes: Vec<Outcome> = ls[..5].iter().map(done).collect();
    outcomes.push(failed(&ls[5], Reason::Business, "no"));
    env.store.finish(outcomes, "w1").await.unwrap();
    let deleted = act(&env, ids(&all[10..13]), ActionKind::Delete)
        .await
        .unwrap();
    act(&env, ids(&all[..2]), requeue()).await.unwrap(); // reprocess two processed items
    undo(&env, deleted.action_id).await.unwrap();
    act(&env, ids(&all[14..15]), ActionKind::Processed)
        .await
        .unwrap();
    let exact = |sla: Sla| {
        let store = env.store.clone();
        async move {
            store
                .items(
                    Filter {
                        sla: Some(sla),
                        ..Default::default()
                    },
                    PageRequest::default(),
                )
                .await
                .unwrap()
                .total
                .unwrap()
        }
    };
    for _ in 0..16 {
        let s = env.store.queue("q").await.unwrap();
        let (out, risk) = (exact(Sla::Out).await, exact(Sla::AtRisk).await);
        assert_eq!(
            (s.out_of_sla, s.at_risk),
            (out, risk),
            "at {:?}",
            env.clock.now_for_test()
        );
        env.clock.advance(Duration::from_secs(23));
    }
    assert!(
        env.store.queue("q").await.unwrap().out_of_sla > 10,
        "the walk reached past the SLA"
    );
}

/// A deleted item's or queue's id is never given to a new one: undo records and history
/// must never end up naming someone else.
pub async fn ids_are_never_reused(env: Env) {
    queue(&env, "q", Default::default()).await;
    let items = add(&env, "q", &["x", "y"]).await;
    let y = &items[1];
    let prio = act(
        &env,
        ids(&items[1..]),
        ActionKind::SetPriority {
            priority: Priority::High,
        },
    )
    .await
    .unwrap();
    act(&env, ids(&items[1..]), ActionKind::Delete)
        .await
        .unwrap();
    let z = add(&env, "q", &["z"]).await.remove(0);
    let h = env.store.item(&z.id).await.unwrap().history;
    assert_eq!(h.len(), 1, "the new item has only its own history: {h:?}");
    let l = take(&env, &["q"], 2).await.leases;
    assert!(l.iter().any(|l| l.item.id == z.id));
    let e = undo(&env, prio.action_id).await.unwrap_err();
    let Conflict::UndoRefused { kept, .. } = conflict(&e) else {
        panic!("{e:?}")
    };
    assert!(
        kept.contains(&KeptItem {
            id: y.id.clone(),
            why: Kept::ChangedSince(None).item_why()
        }),
        "{kept:?}"
    );
    assert_eq!(status(&env, &z.id).await, Status::Processing, "z untouched");
    // The same for queues: a deleted queue's undo records do not land in a new queue.
    queue(&env, "old", Default::default()).await;
    let o = add(&env, "old", &["o"]).await;
    let del = act(&env, ids(&o), ActionKind::Delete).await.unwrap();
    env.store.delete_queue("old", true).await.unwrap();
    queue(&env, "new", Default::default()).await;
    let e = undo(&env, del.action_id).await.unwrap_err();
    let Conflict::UndoRefused { kept, .. } = conflict(&e) else {
        panic!("{e:?}")
    };
    assert_eq!(
        kept,
        &[KeptItem {
            id: o[0].id.clone(),
            why: Kept::QueueDeleted.item_why()
        }]
    );
    assert_eq!(counts(&env, "new").await.total(), 0);
}

pub async fn absurd_durations_are_refused_not_overflowed(env: Env) {
    let century = Duration::from_secs(101 * 365 * 86_400);
    for (field, s) in [
        (
            "lease",
            QueueSettings {
                lease: Some(century),
                ..Default::default()
            },
        ),
        (
            "sla",
            QueueSettings {
                sla: Some(century),
                ..Default::default()
            },
        ),
        (
            "ttl",
            QueueSettings {
                ttl: Some(century),
                ..Default::default()
            },
        ),
    ] {
        let e = env.store.create_queue("q", s).await.unwrap_err();
        assert_eq!(invalid(&e), field, "{e}");
    }
    queue(&env, "q", Default::default()).await;
    let e = env
        .store
        .add_items(
            "q",
            vec![NewItem {
                value: "v".into(),
                expires_in: Some(century),
                ..Default::default()
            }],
            ME,
        )
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "expires_in");
    let it = add(&env, "q", &["v"]).await;
    act(&env, ids(&it), ActionKind::Hold).await.unwrap();
    let e = act(
        &env,
        ids(&it),
        ActionKind::Requeue {
            delay: Some(century),
            value: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(invalid(&e), "delay");
    // The writer is alive and well after all that.
    add(&env, "q", &["after"]).await;
}

pub async fn a_queue_named_twice_keeps_its_concurrency_limit(env: Env) {
    queue(
        &env,
        "lim",
        QueueSettings {
            concurrency: Some(2),
            ..Default::default()
        },
    )
    .await;
    add(&env, "lim", &["a", "b", "c", "d"]).await;
    let got = take(&env, &["lim", "lim", "lim"], 6).await;
    assert_eq!(got.leases.len(), 2);
    assert_eq!(counts(&env, "lim").await.processing, 2);
    let e = env
        .store
        .dequeue(DequeueRequest {
            queues: vec!["lim".into()],
            worker: "w".into(),
            count: 0,
            wait: Duration::ZERO,
        })
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "count");
}

pub async fn settings_can_be_cleared(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            sla: Some(Duration::from_secs(60)),
            ttl: Some(Duration::from_secs(60)),
            deadline: Some("23:00".into()),
            concurrency: Some(3),
            ..Default::default()
        },
    )
    .await;
    let q = env
        .store
        .update_queue(
            "q",
            QueueSettings {
                clear: vec![
                    "sla".into(),
                    "ttl".into(),
                    "deadline".into(),
                    "concurrency".into(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (q.sla, q.ttl, q.deadline, q.concurrency),
        (None, None, None, None)
    );
    let e = env
        .store
        .update_queue(
            "q",
            QueueSettings {
                clear: vec!["name".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "clear");
}

pub async fn workers_are_seen_with_what_they_hold(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b", "c"]).await;
    let ls = take(&env, &["q"], 2).await.leases;
    env.store.finish(vec![done(&ls[0])], "w1").await.unwrap();
    let ws = env.store.workers().await.unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(
        (ws[0].name.as_str(), ws[0].holding, ws[0].processed),
        (env.worker("w1").as_str(), 1, 1)
    );
    assert_eq!(ws[0].holding_ids, [ls[1].item.id.clone()]);
    let held = env
        .store
        .items(
            Filter {
                worker: Some(env.worker("w1")),
                statuses: vec![Status::Processing],
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(held.total, Some(1));
    assert_eq!(held.items[0].id, ls[1].item.id);
    let all = env
        .store
        .items(
            Filter {
                worker: Some(env.worker("w1")),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(all.total, Some(2), "held and processed");
}

fn agent(queues: &[&str], state: WorkerState) -> AgentInfo {
    AgentInfo {
        host: "rpa-vm-07".into(),
        pid: 4242,
        version: "0.1.0".into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency: 4,
        state,
        per_minute: 12,
        started_at: start(),
    }
}

pub async fn agents_register_and_turn_stale_when_not_heard_from(env: Env) {
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    let me = agent(&["a", "b"], WorkerState::Running);
    env.store.register_worker("bot", me.clone()).await.unwrap();
    let ws = env.store.workers().await.unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].name, env.worker("bot"));
    assert_eq!(ws[0].agent.as_ref(), Some(&me), "kept as reported");
    assert_eq!(ws[0].state, WorkerState::Running);
    let seen: Vec<&str> = ws[0].queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(seen, ["a", "b"], "heard from on each of its queues");

    // Draining as reported; then not heard from past STALE_AFTER: stale.
    env.store
        .register_worker("bot", agent(&["a", "b"], WorkerState::Draining))
        .await
        .unwrap();
    assert_eq!(
        env.store.workers().await.unwrap()[0].state,
        WorkerState::Draining
    );
    env.clock
        .advance(workq::rules::STALE_AFTER + Duration::from_secs(1));
    assert_eq!(
        env.store.workers().await.unwrap()[0].state,
        WorkerState::Stale
    );
    // Heard from again, then a goodbye: stopped stays stopped however long it is quiet.
    env.store
        .register_worker("bot", agent(&["a", "b"], WorkerState::Stopped))
        .await
        .unwrap();
    env.clock.advance(workq::rules::STALE_AFTER * 2);
    assert_eq!(
        env.store.workers().await.unwrap()[0].state,
        WorkerState::Stopped
    );
}

pub async fn a_worker_is_heard_from_on_the_queues_it_polls(env: Env) {
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    add(&env, "a", &["x"]).await;
    let got = take(&env, &["a"], 1).await;
    let at = start();
    env.clock.advance(Duration::from_secs(120));
    // Heartbeats count on the item's queue: a worker busy on one long item is not gone.
    beat(&env, &got.leases[0].item.id, &got.leases[0].lease)
        .await
        .unwrap();
    let ws = env.store.workers().await.unwrap();
    assert_eq!(
        ws[0].agent, None,
        "a scripted worker reports nothing of itself"
    );
    assert_eq!(ws[0].state, WorkerState::Running);
    assert_eq!(
        ws[0].queues,
        [QueueSeen {
            queue: "a".into(),
            last_seen: at + chrono::Duration::seconds(120),
        }],
        "never on b, which it does not take from"
    );
}

pub async fn a_bad_registration_is_refused_and_changes_nothing(env: Env) {
    queue(&env, "a", Default::default()).await;
    let cases: Vec<(&str, AgentInfo, &str)> = vec![
        ("", agent(&["a"], WorkerState::Running), "worker"),
        ("bot", agent(&[], WorkerState::Running), "queues"),
        (
            "bot",
            AgentInfo {
                concurrency: 0,
                ..agent(&["a"], WorkerState::Running)
            },
            "concurrency",
        ),
        (
            "bot",
            AgentInfo {
                host: "x\ny".into(),
                ..agent(&["a"], WorkerState::Running)
            },
            "host",
        ),
        ("bot", agent(&["a"], WorkerState::Stale), "state"),
    ];
    for (name, a, field) in cases {
        let e = env.store.register_worker(name, a).await.unwrap_err();
        assert_eq!(invalid(&e), field, "{e}");
    }
    let e = env
        .store
        .register_worker("bot", agent(&["a", "nope"], WorkerState::Running))
        .await
        .unwrap_err();
    assert_eq!(not_found(&e), (Thing::Queue, "nope"));
    assert!(
        env.store.workers().await.unwrap().is_empty(),
        "nothing was recorded"
    );
}

// ------------------------------------------------------------------ live

pub async fn the_change_feed_reports_changes(env: Env) {
    let mut feed = env.store.subscribe();
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b"]).await;
    let e1 = feed.recv().await.unwrap();
    let e2 = feed.recv().await.unwrap();
    assert_eq!(e1, Event::Queue { queue: "q".into() });
    assert_eq!(
        e2,
        Event::Items {
            queue: "q".into(),
            count: 2
        }
    );
    // A refused write sends nothing. The next write adds two items, so its event cannot be
    // mistaken for the one item a leak would report; events go out in commit order.
    let e = env
        .store
        .add_items("q", vec![item(&"x".repeat(MAX_VALUE_BYTES + 1))], ME)
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "value");
    add(&env, "q", &["c", "d"]).await;
    assert_eq!(
        feed.recv().await.unwrap(),
        Event::Items {
            queue: "q".into(),
            count: 2
        }
    );
}

/// The store re-polls once an hour here (see `sqlite()`) and the poll waits an hour: only
/// the write's own wake-up can bring the item within the minute this test allows.
pub async fn a_long_poll_wakes_when_work_arrives(env: Env) {
    queue(&env, "q", Default::default()).await;
    let store = env.store.clone();
    let waiter = tokio::spawn(async move {
        store
            .dequeue(DequeueRequest {
                queues: vec!["q".into()],
                worker: "w".into(),
                count: 1,
                wait: Duration::from_secs(3600),
            })
            .await
    });
    // The poll has looked once and found nothing (a dequeue records its worker): from now
    // on, only a wake-up can find the item before the hour is up.
    while !env
        .store
        .workers()
        .await
        .unwrap()
        .iter()
        .any(|w| w.name == env.worker("w"))
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!waiter.is_finished(), "the poll is waiting");
    add(&env, "q", &["late"]).await;
    let got = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("woken by the write, not by the hourly re-poll or the end of the wait")
        .unwrap()
        .unwrap();
    assert_eq!(got.leases[0].item.value, "late");
}

/// One enqueue wakes one long poll, not every poll waiting: the others do not even look
/// (a dequeue records when its worker was last seen, so a poll that looked says so), and
/// each item added later reaches a poll of its own.
pub async fn one_enqueue_wakes_one_long_poll_not_all(env: Env) {
    queue(&env, "q", Default::default()).await;
    let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let polls: Vec<_> = names
        .iter()
        .map(|name| {
            let (store, worker) = (env.store.clone(), name.clone());
            tokio::spawn(async move {
                store
                    .dequeue(DequeueRequest {
                        queues: vec!["q".into()],
                        worker,
                        count: 1,
                        wait: Duration::from_secs(3600),
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Every poll has looked once and found nothing; from now on only wake-ups make them look.
    while env.store.workers().await.unwrap().len() < names.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_look = env.clock.now_for_test();
    // Later on the store's clock, so a second look shows as a later `last_seen`.
    env.clock.advance(Duration::from_secs(2));
    add(&env, "q", &["one"]).await;
    let mut polls: Vec<_> = polls.into_iter().map(Some).collect();
    let winner = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(i) = polls.iter().position(|h| h.as_ref().unwrap().is_finished()) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a poll is woken by the write, not by the hourly re-poll");
    let got = polls[winner].take().unwrap().await.unwrap();
    assert_eq!(got.leases.len(), 1);
    assert_eq!(got.leases[0].item.value, "one");
    // Whatever a wake-up of the others would have sent is written before this sweep.
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.store.sweep().await.unwrap();
    let looked: Vec<String> = env
        .store
        .workers()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.last_seen > first_look)
        .map(|w| w.name)
        .collect();
    assert_eq!(
        looked,
        [env.worker(&names[winner])],
        "only the woken poll looked again"
    );
    let waiting = polls.iter().flatten().filter(|h| !h.is_finished()).count();
    assert_eq!(waiting, names.len() - 1, "the others still wait");
    // Seven more items, one call: each reaches a poll of its own.
    let values: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
    add(&env, "q", &refs).await;
    let mut taken = Vec::new();
    for h in polls.into_iter().flatten() {
        let got = tokio::time::timeout(Duration::from_secs(60), h)
            .await
            .expect("every item wakes a poll")
            .unwrap();
        assert_eq!(got.leases.len(), 1, "{got:?}");
        taken.push(got.leases[0].item.value.clone());
    }
    taken.sort();
    assert_eq!(taken, values);
}

/// Many one-item dequeues at once (grouped into one writer turn, whose counters are written
/// at its end) still keep to a queue's concurrency limit, and the counters come out right.
pub async fn concurrent_dequeues_keep_the_concurrency_limit(env: Env) {
    queue(
        &env,
        "lim",
        QueueSettings {
            concurrency: Some(3),
            ..Default::default()
        },
    )
    .await;
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
    add(&env, "lim", &refs).await;
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let store = env.store.clone();
            tokio::spawn(async move {
                store
                    .dequeue(DequeueRequest {
                        queues: vec!["lim".into()],
                        worker: format!("w{i}"),
                        count: 1,
                        wait: Duration::ZERO,
                    })
                    .await
                    .unwrap()
                    .leases
            })
        })
        .collect();
    let mut leases = Vec::new();
    for c in calls {
        leases.extend(c.await.unwrap());
    }
    assert_eq!(leases.len(), 3, "three at a time: {leases:?}");
    let c = counts(&env, "lim").await;
    assert_eq!((c.queued, c.processing), (17, 3));
    // Each completion frees a slot for one more.
    for l in &leases {
        finish_one(&env, done(l)).await.unwrap();
    }
    let more = take(&env, &["lim"], 10).await.leases;
    assert_eq!(more.len(), 3);
    let c = counts(&env, "lim").await;
    assert_eq!((c.queued, c.processing, c.processed), (14, 3, 3));
}

/// One heartbeat call for several leases: each good one is extended, each bad one is
/// refused on its own (and changes nothing), in the order given.
pub async fn a_batch_heartbeat_extends_each_lease_and_refuses_only_the_bad_ones(env: Env) {
    queue(
        &env,
        "hb",
        QueueSettings {
            lease: Some(Duration::from_secs(60)),
            max_retries: Some(0),
            ..Default::default()
        },
    )
    .await;
    add(&env, "hb", &["a", "b", "c", "d"]).await;
    let got = take(&env, &["hb"], 4).await.leases;
    let [a, b, c, d] = <[Lease; 4]>::try_from(got).expect("four leases");
    finish_one(&env, done(&b)).await.unwrap();
    env.clock.advance(Duration::from_secs(30));
    let forged = LeaseRef {
        id: d.item.id.clone(),
        lease: "forged".into(),
    };
    let unknown = LeaseRef {
        id: "NOPE".into(),
        lease: a.lease.clone(),
    };
    let r = env
        .store
        .heartbeat(vec![a.held(), b.held(), forged, unknown, c.held()])
        .await
        .unwrap();
    assert_eq!(r.len(), 5, "one answer per lease, in order: {r:?}");
    let extended = env.clock.now_for_test() + chrono::Duration::seconds(60);
    assert_eq!(r[0].as_ref().unwrap(), &extended);
    // b is finished: its lease is spent, and says so.
    let e = r[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), "conflict", "{e:?}");
    assert_eq!(
        conflict(r[2].as_ref().unwrap_err()),
        &Conflict::StaleLease {
            id: d.item.id.clone()
        }
    );
    assert_eq!(not_found(r[3].as_ref().unwrap_err()), (Thing::Item, "NOPE"));
    assert_eq!(
        r[4].as_ref().unwrap(),
        &extended,
        "a refusal stops nothing after it"
    );
    // Past d's first deadline: only d, whose heartbeat was refused, times out.
    env.clock.advance(Duration::from_secs(31));
    assert_eq!(env.store.sweep().await.unwrap(), 1);
    assert_eq!(status(&env, &a.item.id).await, Status::Processing);
    assert_eq!(status(&env, &b.item.id).await, Status::Processed);
    assert_eq!(status(&env, &c.item.id).await, Status::Processing);
    assert_eq!(status(&env, &d.item.id).await, Status::Exception);
    // An empty call answers nothing and changes nothing.
    assert!(env.store.heartbeat(Vec::new()).await.unwrap().is_empty());
}

pub async fn a_lease_handed_back_is_queued_again_at_once(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(1),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a", "b"]).await;
    let mut feed = env.store.subscribe();
    let got = take(&env, &["q"], 2).await.leases;
    let (a, b) = (&got[0], &got[1]);
    let back = |l: &Lease, token: &str| HandBack {
        id: l.item.id.clone(),
        lease: token.to_string(),
    };
    let note = "handed back unworked: output lost";
    let r = env
        .store
        .hand_back(vec![back(a, &a.lease), back(b, "forged")], "w1", note)
        .await
        .unwrap();
    let fin = r[0].as_ref().unwrap();
    assert_eq!((fin.status, fin.retry_count), (Status::Queued, 0));
    assert_eq!(
        conflict(r[1].as_ref().unwrap_err()),
        &Conflict::StaleLease {
            id: b.item.id.clone()
        },
        "a wrong token hands nothing back"
    );
    // At once, not after a lease timeout; no retry and no failed attempt counted.
    let d = env.store.item(&a.item.id).await.unwrap();
    assert_eq!(d.item.status, Status::Queued);
    assert_eq!((d.item.retry_count, d.item.requeue_count), (0, 0));
    assert_eq!(d.item.worker, None);
    assert_eq!(d.item.started_at, None);
    let last = d.history.last().unwrap();
    assert_eq!(last.action, "hand-back");
    assert_eq!(
        (last.from, last.to),
        (Some(Status::Processing), Some(Status::Queued))
    );
    assert_eq!(last.by, env.worker("w1"));
    assert_eq!(last.note.as_deref(), Some(note));
    assert_eq!(status(&env, &b.item.id).await, Status::Processing);
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.counts.queued, s.counts.processing), (1, 1));
    assert_eq!(s.error_rate, None, "a hand-back is not a failed attempt");
    // The old token is dead; the item is taken again, first in line.
    let again = env
        .store
        .hand_back(vec![back(a, &a.lease)], "w1", note)
        .await
        .unwrap();
    assert_eq!(
        conflict(again[0].as_ref().unwrap_err()),
        &Conflict::NotLeased {
            id: a.item.id.clone(),
            status: Status::Queued
        }
    );
    let next = take(&env, &["q"], 1).await.leases.remove(0);
    assert_eq!(next.item.id, a.item.id);
    assert_ne!(next.lease, a.lease);
    assert_eq!(
        finish_one(&env, next.outcome(None, None))
            .await
            .unwrap()
            .status,
        Status::Processed
    );
    // Over the wire the events come a moment after the answers: wait for one (the timeout
    // only turns a missing event into a failure).
    let saw = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match feed.recv().await {
                Ok(Event::Items { ref queue, .. }) if queue == "q" => return true,
                Ok(_) | Err(workq::backend::Gap::Lagged(_) | workq::backend::Gap::Changed) => {
                    continue
                }
                Err(workq::backend::Gap::Disconnected(_)) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(saw, "the change feed tells consoles");
}

pub async fn expired_items_count_as_out_of_sla_once(env: Env) {
    let t0 = env.clock.now_for_test();
    queue(
        &env,
        "q",
        QueueSettings {
            sla: Some(Duration::from_secs(3600)),
            sla_risk_pct: Some(50),
            ..Default::default()
        },
    )
    .await;
    queue(&env, "plain", QueueSettings::default()).await;
    let mk = |v: &str, expires: Option<i64>| NewItem {
        value: v.into(),
        expires_at: expires.map(|m| t0 + chrono::Duration::minutes(m)),
        ..Default::default()
    };
    let added = env
        .store
        .add_items("q", vec![mk("lapses", Some(10)), mk("waits", None)], "bot")
        .await
        .unwrap();
    let (lapses, waits) = (added[0].id.clone(), added[1].id.clone());
    env.store
        .add_items("plain", vec![mk("gone", Some(10)), mk("here", None)], "bot")
        .await
        .unwrap();
    let sla = |s: Sla| Filter {
        sla: Some(s),
        queue: Some("q".into()),
        ..Default::default()
    };
    let ids = |p: Page| p.items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    // 40 minutes on: both are at risk by age (past 30m), but one expired: that one is out.
    env.clock.advance(Duration::from_secs(40 * 60));
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.expired, s.out_of_sla, s.at_risk), (1, 1, 1), "{s:?}");
    let out = env
        .store
        .items(sla(Sla::Out), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(out), std::slice::from_ref(&lapses));
    let risky = env
        .store
        .items(sla(Sla::AtRisk), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(risky), std::slice::from_ref(&waits));
    assert_eq!(
        env.store.item(&lapses).await.unwrap().item.sla,
        Some(Sla::Out)
    );
    // 70 minutes on: both out by age; the expired one is not counted twice.
    env.clock.advance(Duration::from_secs(30 * 60));
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.expired, s.out_of_sla, s.at_risk), (1, 2, 0), "{s:?}");
    // Without an SLA target, an expired item is still a violation (SPEC §3).
    let p = env.store.queue("plain").await.unwrap();
    assert_eq!((p.expired, p.out_of_sla, p.at_risk), (1, 1, 0), "{p:?}");
    let out = Filter {
        queue: Some("plain".into()),
        sla: Some(Sla::Out),
        ..Default::default()
    };
    let out = env.store.items(out, PageRequest::default()).await.unwrap();
    assert_eq!(out.items.len(), 1);
    assert_eq!(out.items[0].value, "gone");
    // Extending its expiry takes it out of the count again.
    env.store
        .act(ActionRequest {
            target: Target::Ids(vec![lapses.clone()]),
            action: ActionKind::ExtendExpiry { expires_at: None },
            note: None,
            actor: ME.into(),
            skip_refused: false,
        })
        .await
        .unwrap();
    let s = env.store.queue("q").await.unwrap();
    assert_eq!((s.expired, s.out_of_sla), (0, 2), "both still out by age");
}

pub async fn pages_continue_after_an_item(env: Env) {
    queue(&env, "q", QueueSettings::default()).await;
    let values: Vec<String> = (1..=5).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let items = add(&env, "q", &refs).await;
    let page = |after: Option<&Item>, descending: bool| PageRequest {
        limit: 2,
        after: after.map(|i| i.id.clone()),
        descending,
        ..Default::default()
    };
    let values = |p: Page| p.items.into_iter().map(|i| i.value).collect::<Vec<_>>();
    let f = Filter::default();
    let first = env.store.items(f.clone(), page(None, false)).await.unwrap();
    assert_eq!(values(first), ["v1", "v2"]);
    // What goes before the cursor meanwhile shifts nothing after it.
    env.store
        .act(ActionRequest {
            target: Target::Ids(vec![items[0].id.clone()]),
            action: ActionKind::Delete,
            note: None,
            actor: ME.into(),
            skip_refused: false,
        })
        .await
        .unwrap();
    let next = env
        .store
        .items(f.clone(), page(Some(&items[1]), false))
        .await
        .unwrap();
    assert_eq!(values(next), ["v3", "v4"]);
    let last = env
        .store
        .items(f.clone(), page(Some(&items[3]), false))
        .await
        .unwrap();
    assert_eq!(values(last), ["v5"]);
    let back = env
        .store
        .items(f.clone(), page(Some(&items[3]), true))
        .await
        .unwrap();
    assert_eq!(values(back), ["v3", "v2"]);
    // A cursor on an item that is gone, or with another order, is refused, not guessed.
    let e = env
        .store
        .items(f.clone(), page(Some(&items[0]), false))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&e),
        &Conflict::ListingGone {
            id: items[0].id.clone()
        }
    );
    let mut by_name = page(Some(&items[1]), false);
    by_name.sort = SortBy::Name;
    let e = env.store.items(f, by_name).await.unwrap_err();
    assert_eq!(invalid(&e), "after");
}

pub async fn a_deadline_missed_today_says_so(env: Env) {
    // The clock starts at 09:00 UTC; the deadline is 10:00 UTC.
    queue(
        &env,
        "q",
        QueueSettings {
            deadline: Some("10:00".into()),
            tz: Some("UTC".into()),
            lease: Some(Duration::from_secs(3 * 3600)),
            ..Default::default()
        },
    )
    .await;
    let values: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    add(&env, "q", &refs).await;
    // Nobody works it: no drain time is made up.
    let p = env.store.queue("q").await.unwrap().projection.unwrap();
    assert_eq!(p.stalled, Some(Stall::NoWorkers), "{p:?}");
    assert_eq!(p.drains_at, None);
    // A worker does 10, slowly: at 10:40 the deadline has passed with 20 left.
    let ls = take(&env, &["q"], 10).await.leases;
    env.clock.advance(Duration::from_secs(100 * 60));
    env.store
        .finish(ls.iter().map(done).collect(), "w1")
        .await
        .unwrap();
    let p = env.store.queue("q").await.unwrap().projection.unwrap();
    assert!(p.missed, "{p:?}");
    assert_eq!(
        p.deadline,
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .unwrap()
    );
    assert_eq!((p.margin_secs, p.backlog), (Some(-40 * 60), 20));
    // Paused: still missed, and it says it is paused.
    env.store
        .set_queue_state("q", QueueState::Paused)
        .await
        .unwrap();
    let p = env.store.queue("q").await.unwrap().projection.unwrap();
    assert!(p.missed);
    assert_eq!(p.stalled, Some(Stall::Paused));
    // Drained: the next deadline is tomorrow's.
    env.store
        .set_queue_state("q", QueueState::Active)
        .await
        .unwrap();
    let ls = take(&env, &["q"], 20).await.leases;
    env.store
        .finish(ls.iter().map(done).collect(), "w1")
        .await
        .unwrap();
    let p = env.store.queue("q").await.unwrap().projection.unwrap();
    assert!(!p.missed);
    assert_eq!(
        p.deadline,
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .unwrap()
    );
}

/// A heartbeat carries the lease past its first deadline: on the store's own clock, so the
/// margins are exact instead of a race with the wall clock.
pub async fn a_heartbeat_keeps_the_lease_past_its_first_deadline(env: Env) {
    queue(
        &env,
        "h",
        QueueSettings {
            lease: Some(Duration::from_secs(4)),
            ..Default::default()
        },
    )
    .await;
    add(&env, "h", &["a"]).await;
    let l = take(&env, &["h"], 1).await.leases.remove(0);
    let first = l.lease_until;
    env.clock.advance(Duration::from_secs(3));
    let until = env
        .store
        .heartbeat(vec![l.held()])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(until, first + chrono::Duration::seconds(3));
    // Past the first deadline, one millisecond before the new one: still held.
    env.clock.advance(Duration::from_millis(3999));
    assert_eq!(env.store.sweep().await.unwrap(), 0);
    assert_eq!(status(&env, &l.item.id).await, Status::Processing);
    finish_one(&env, done(&l)).await.unwrap();
    assert_eq!(status(&env, &l.item.id).await, Status::Processed);
    // Without a heartbeat, the same wait times the lease out.
    add(&env, "h", &["b"]).await;
    let l = take(&env, &["h"], 1).await.leases.remove(0);
    env.clock.advance(Duration::from_millis(4001));
    assert_eq!(env.store.sweep().await.unwrap(), 1);
    let e = finish_one(&env, done(&l)).await.unwrap_err();
    assert!(
        matches!(conflict(&e), Conflict::NotLeased { id, .. } if *id == l.item.id),
        "{e:?}"
    );
}

// ------------------------------------------------------------------ retry backoff

/// Takes the one item `id` from `q` if it can be taken now; `None` if not.
async fn take_if_ready(env: &Env, q: &str) -> Option<Lease> {
    let mut got = take(env, &[q], 1).await;
    match got.leases.pop() {
        Some(l) => Some(l),
        None => {
            assert_eq!(
                got.why_empty.map(|w| w.reason),
                Some(EmptyReason::NothingReady)
            );
            None
        }
    }
}

/// Whatever the jitter draws, an automatic retry waits between half and all of its
/// backoff (10 s before the first, 20 s before the second): never taken before, always
/// after. Both kinds of retried failure wait: an IT exception and a lease that ran out.
pub async fn automatic_retries_wait_for_their_backoff(env: Env) {
    let backoff = Backoff {
        delay: Duration::from_secs(10),
        max: Duration::from_secs(3600),
    };
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(3),
            lease: Some(Duration::from_secs(30)),
            retry_backoff: Some(backoff),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        env.store.queue("q").await.unwrap().queue.retry_backoff,
        Some(backoff)
    );
    let id = add(&env, "q", &["a"]).await.remove(0).id;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    let failed_at = env.clock.now_for_test();
    let f = finish_one(&env, failed(&l, Reason::It, "SAP is down"))
        .await
        .unwrap();
    assert_eq!((f.status, f.retry_count), (Status::Queued, 1));
    let d = env.store.item(&id).await.unwrap();
    let wait = d.item.delay_until.expect("a retry with a backoff waits") - failed_at;
    assert!(
        (5_000..=10_000).contains(&wait.num_milliseconds()),
        "first retry waits 5–10 s: {wait}"
    );
    // The history has the failure, then the retry that says how long it waits.
    let tail: Vec<(&str, &str)> = d
        .history
        .iter()
        .rev()
        .take(2)
        .map(|h| (h.action.as_str(), h.by.as_str()))
        .collect();
    assert_eq!(
        tail,
        [("retry", "system"), ("fail", env.worker("w1").as_str())]
    );
    assert!(d
        .history
        .last()
        .unwrap()
        .note
        .as_deref()
        .unwrap()
        .contains("backoff"));
    // Not before its time…
    assert!(take_if_ready(&env, "q").await.is_none(), "taken at once");
    env.clock.advance(Duration::from_millis(4_999));
    assert!(take_if_ready(&env, "q").await.is_none(), "taken before 5 s");
    env.clock
        .set(failed_at + chrono::Duration::milliseconds(wait.num_milliseconds() - 1));
    assert!(
        take_if_ready(&env, "q").await.is_none(),
        "taken before its wait"
    );
    // …and then at once.
    env.clock.set(failed_at + wait);
    let l = take_if_ready(&env, "q")
        .await
        .expect("taken once its wait is over");
    assert_eq!((l.item.id.as_str(), l.item.retry_count), (id.as_str(), 1));
    assert_eq!(l.item.delay_until, None, "a passed delay is cleared");
    // The lease runs out: the second retry waits twice as long (10–20 s).
    env.clock.advance(Duration::from_secs(31));
    let timed_out_at = env.clock.now_for_test();
    assert_eq!(env.store.sweep().await.unwrap(), 1);
    let d = env.store.item(&id).await.unwrap();
    assert_eq!((d.item.status, d.item.retry_count), (Status::Queued, 2));
    let wait = d.item.delay_until.unwrap() - timed_out_at;
    assert!(
        (10_000..=20_000).contains(&wait.num_milliseconds()),
        "second retry waits 10–20 s: {wait}"
    );
    env.clock.advance(Duration::from_millis(9_999));
    assert!(
        take_if_ready(&env, "q").await.is_none(),
        "taken before 10 s"
    );
    env.clock.set(timed_out_at + chrono::Duration::seconds(20));
    assert!(take_if_ready(&env, "q").await.is_some());
    // The queue counts it as queued while it waits, and nothing else moved.
    let c = counts(&env, "q").await;
    assert_eq!((c.processing, c.queued, c.exception), (1, 0, 0));
}

/// A backoff delays only automatic retries: a business exception stays an exception, a
/// person's requeue and a hand-back are queued at once.
pub async fn a_backoff_delays_only_automatic_retries(env: Env) {
    queue(
        &env,
        "q",
        QueueSettings {
            max_retries: Some(3),
            retry_backoff: Some(Backoff {
                delay: Duration::from_secs(60),
                max: Duration::from_secs(60),
            }),
            ..Default::default()
        },
    )
    .await;
    add(&env, "q", &["a", "b"]).await;
    let got = take(&env, &["q"], 2).await.leases;
    let f = finish_one(&env, failed(&got[0], Reason::Business, "no PO"))
        .await
        .unwrap();
    assert_eq!(f.status, Status::Exception);
    let back = HandBack {
        id: got[1].item.id.clone(),
        lease: got[1].lease.clone(),
    };
    env.store.hand_back(vec![back], "w1", "bye").await.unwrap();
    act(&env, ids(&[got[0].item.clone()]), requeue())
        .await
        .unwrap();
    let again = take(&env, &["q"], 5).await.leases;
    assert_eq!(again.len(), 2, "both queued at once");
    assert!(again.iter().all(|l| l.item.retry_count == 0));
}

/// The setting is set, changed, cleared and checked like any other.
pub async fn retry_backoff_is_a_queue_setting(env: Env) {
    let b = |d: u64, m: u64| Backoff {
        delay: Duration::from_secs(d),
        max: Duration::from_secs(m),
    };
    queue(
        &env,
        "q",
        QueueSettings {
            retry_backoff: Some(b(30, 600)),
            ..Default::default()
        },
    )
    .await;
    let set = |s: QueueSettings| {
        let store = env.store.clone();
        async move { store.update_queue("q", s).await }
    };
    let q = set(QueueSettings {
        retry_backoff: Some(b(5, 60)),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(q.retry_backoff, Some(b(5, 60)));
    let q = set(QueueSettings {
        max_retries: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(q.retry_backoff, Some(b(5, 60)), "left as it is");
    for bad in [b(0, 60), b(60, 5), b(1, 101 * 365 * 86_400)] {
        let e = set(QueueSettings {
            retry_backoff: Some(bad),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert_eq!(invalid(&e), "retry_backoff", "{bad:?}");
    }
    let q = set(QueueSettings {
        clear: vec!["retry-backoff".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(q.retry_backoff, None);
    assert_eq!(
        env.store.queue("q").await.unwrap().queue.retry_backoff,
        None
    );
}

/// The names of a page, in order.
async fn page_names(
    env: &Env,
    f: Filter,
    sort: SortBy,
    descending: bool,
    offset: u64,
) -> Vec<String> {
    env.store
        .items(
            f,
            PageRequest {
                offset,
                limit: 3,
                sort,
                descending,
                count: Count::Exact,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.name.unwrap_or_default())
        .collect()
}

pub async fn pages_sort_high_priority_first_and_by_name_across_queues(env: Env) {
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    let new = |name: &str, p: Priority| NewItem {
        value: "{}".into(),
        name: Some(name.into()),
        priority: p,
        ..Default::default()
    };
    env.store
        .add_items(
            "a",
            vec![
                new("low-1", Priority::Low),
                new("high-1", Priority::High),
                new("normal-1", Priority::Normal),
                new("high-2", Priority::High),
            ],
            "bot",
        )
        .await
        .unwrap();
    env.store
        .add_items(
            "b",
            vec![
                new("Bravo", Priority::Normal),
                new("alpha", Priority::Low),
                new("Delta", Priority::High),
            ],
            "bot",
        )
        .await
        .unwrap();
    let qa = Filter {
        queue: Some("a".into()),
        ..Default::default()
    };
    // Descending priority is high first, in the order workers take them.
    assert_eq!(
        page_names(&env, qa.clone(), SortBy::Priority, true, 0).await,
        ["high-1", "high-2", "normal-1"]
    );
    // The reverse is exactly that order backwards.
    assert_eq!(
        page_names(&env, qa.clone(), SortBy::Priority, false, 0).await,
        ["low-1", "normal-1", "high-2"]
    );
    // By name across every queue: one order over all of them, paged.
    let all = Filter::default();
    let mut names = Vec::new();
    for offset in [0, 3, 6] {
        names.extend(page_names(&env, all.clone(), SortBy::Name, false, offset).await);
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 7);
    assert_eq!(
        page_names(&env, all.clone(), SortBy::Name, true, 0).await,
        ["normal-1", "low-1", "high-2"]
    );
    // A status filter over every queue, by name.
    let held = Filter {
        statuses: vec![Status::Queued],
        ..Default::default()
    };
    assert_eq!(
        page_names(&env, held, SortBy::Name, false, 5).await,
        ["low-1", "normal-1"]
    );
}

pub async fn an_action_on_several_filters_touches_each_item_once_and_undoes_whole(env: Env) {
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    add(&env, "a", &["1", "2", "3"]).await;
    add(&env, "b", &["4", "5"]).await;
    let mut ls = take(&env, &["a"], 3).await.leases;
    ls.extend(take(&env, &["b"], 2).await.leases);
    let notes = [
        "Vendor 'X' not found",
        "Vendor 'Y' not found",
        "Amount 5 too high",
        "Vendor 'Z' not found",
        "fine",
    ];
    for (l, n) in ls.iter().zip(notes) {
        if n == "fine" {
            finish_one(&env, done(l)).await.unwrap();
        } else {
            finish_one(&env, failed(l, Reason::Business, n))
                .await
                .unwrap();
        }
    }
    let groups = env.store.groups(None).await.unwrap();
    let group = |q: &str, sig_start: &str| {
        let g = groups
            .iter()
            .find(|g| g.queue == q && g.signature.starts_with(sig_start))
            .unwrap_or_else(|| panic!("{q} {sig_start}: {groups:?}"));
        Filter {
            queue: Some(q.into()),
            statuses: vec![Status::Exception],
            reason: g.reason,
            signature: Some(g.signature.clone()),
            ..Default::default()
        }
    };
    // Two groups of "a", one of "b", and a filter overlapping the first group again.
    let any = Target::Any(vec![
        group("a", "Vendor"),
        group("a", "Amount"),
        group("b", "Vendor"),
        Filter {
            queue: Some("a".into()),
            search: Some("'X'".into()),
            ..Default::default()
        },
    ]);
    // Just the groups, as the inbox sends them.
    let groups_only = Target::Any(vec![
        group("a", "Vendor"),
        group("a", "Amount"),
        group("b", "Vendor"),
    ]);
    let p = env.store.preview(groups_only, None, 10).await.unwrap();
    assert_eq!((p.count, p.changes, p.sample.len()), (4, 4, 4));
    let p = env
        .store
        .preview(any.clone(), Some(requeue()), 10)
        .await
        .unwrap();
    assert_eq!((p.count, p.changes), (4, 4), "each item once");
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    assert_eq!(p.sample.len(), 4);
    let r = act(&env, any, requeue()).await.unwrap();
    assert_eq!(r.touched, 4);
    assert_eq!(counts(&env, "a").await.queued, 3);
    assert_eq!(counts(&env, "b").await.queued, 1);
    assert_eq!(
        counts(&env, "b").await.processed,
        1,
        "the processed one is untouched"
    );
    let log = env
        .store
        .actions(ActionQuery {
            queue: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(log[0].queues, ["a", "b"], "one action across both queues");
    let u = undo(&env, r.action_id).await.unwrap();
    assert_eq!((u.restored, u.total), (4, 4));
    assert_eq!(counts(&env, "a").await.exception, 3);
    assert_eq!(counts(&env, "b").await.exception, 1);

    // Groups with rows an action refuses: the preview counts what changes and what it
    // skips over the union (each item once), the action skips the same, and its undo is
    // partial on a live queue: the item a worker took since stays with the worker.
    let six = add(&env, "b", &["6"]).await.remove(0).id;
    let mixed = Target::Any(vec![
        group("a", "Vendor"),
        Filter {
            queue: Some("b".into()),
            ..Default::default()
        },
        group("b", "Vendor"),
    ]);
    let p = env
        .store
        .preview(mixed.clone(), Some(requeue()), 10)
        .await
        .unwrap();
    assert_eq!((p.count, p.changes), (5, 4), "{p:?}");
    assert_eq!(p.skipped, p_skipped(1));
    let mut sample: Vec<Status> = p.sample.iter().map(|i| i.status).collect();
    sample.sort();
    assert_eq!(
        sample,
        [
            Status::Processed,
            Status::Exception,
            Status::Exception,
            Status::Exception
        ],
        "the sample shows what changes, not the queued item it skips"
    );
    let e = act(&env, mixed.clone(), requeue()).await.unwrap_err();
    assert_eq!(
        refused(&e),
        (
            "requeue",
            5,
            1,
            vec![(
                six.as_str(),
                Status::Queued,
                Some(To::Status(Status::Queued))
            )]
        ),
        "{e:?}"
    );
    assert_eq!(
        counts(&env, "a").await.exception,
        3,
        "refused: nothing changed"
    );
    let r = env
        .store
        .act(ActionRequest {
            target: mixed,
            action: requeue(),
            note: Some("vendors fixed".into()),
            actor: ME.into(),
            skip_refused: true,
        })
        .await
        .unwrap();
    assert_eq!((r.touched, r.skipped.clone()), (4, p_skipped(1)));
    assert_eq!(counts(&env, "a").await.queued, 2);
    assert_eq!(counts(&env, "b").await.queued, 3);
    let held = take(&env, &["a"], 1).await.leases.remove(0);
    let dry = env
        .store
        .undo(UndoRequest {
            dry_run: true,
            ..UndoRequest::new(r.action_id, ME)
        })
        .await
        .unwrap();
    assert_eq!((dry.restored, dry.total), (3, 4), "{dry:?}");
    let u = undo(&env, r.action_id).await.unwrap();
    assert_eq!((u.restored, u.total), (3, 4), "{u:?}");
    assert_eq!(u.kept_items.len(), 1);
    assert_eq!(
        u.kept_items[0].id, held.item.id,
        "the worker's item is kept"
    );
    let a = counts(&env, "a").await;
    assert_eq!((a.exception, a.processing, a.queued), (2, 1, 0));
    let b = counts(&env, "b").await;
    assert_eq!(
        (b.exception, b.processed, b.queued),
        (1, 1, 1),
        "the skipped queued item was never touched"
    );
    finish_one(&env, done(&held)).await.unwrap();

    // Bad targets change nothing.
    let e = act(&env, Target::Any(vec![]), requeue()).await.unwrap_err();
    assert_eq!(invalid(&e), "target", "{e:?}");
    let e = env
        .store
        .preview(Target::Any(vec![]), Some(requeue()), 5)
        .await
        .unwrap_err();
    assert_eq!(invalid(&e), "target", "{e:?}");
    let unknown = Target::Any(vec![
        group("a", "Vendor"),
        Filter {
            queue: Some("nope".into()),
            ..Default::default()
        },
    ]);
    let e = act(&env, unknown, requeue()).await.unwrap_err();
    assert_eq!(not_found(&e), (Thing::Queue, "nope"), "{e:?}");
    assert_eq!(counts(&env, "a").await.exception, 2);
}

/// `fail --reason it --retry-in 10m`: the worker's own postponement. The item is queued
/// again, not takeable until the delay passes, and no retry is counted (so a queue with
/// no retries left still takes it back); anything else with retry_in is refused whole.
pub async fn a_worker_postpones_an_it_exception_without_counting_a_retry(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a"]).await;
    let l = take(&env, &["q"], 1).await.leases.remove(0);
    let id = l.item.id.clone();
    let postpone = |l: &Lease, reason, d: u64| Outcome {
        retry_in: Some(Duration::from_secs(d)),
        ..l.outcome(reason, Some("portal down".into()))
    };
    // Refused, and nothing changes: on processed, on a business or generic exception, a
    // zero delay, and a stale lease.
    for (o, field) in [
        (postpone(&l, None, 600), "processed outcome"),
        (postpone(&l, Some(Reason::Business), 600), "not business"),
        (postpone(&l, Some(Reason::Generic), 600), "not generic"),
        (postpone(&l, Some(Reason::It), 0), "more than 0"),
    ] {
        let e = finish_one(&env, o).await.unwrap_err();
        assert_eq!(e.kind(), "invalid", "{e}");
        assert!(
            e.to_string().contains(field) && e.to_string().contains(&id),
            "{e}"
        );
        assert_eq!(status(&env, &id).await, Status::Processing);
    }
    let stale = Outcome {
        lease: "stale".into(),
        ..postpone(&l, Some(Reason::It), 600)
    };
    let e = finish_one(&env, stale).await.unwrap_err();
    assert_eq!(conflict(&e), &Conflict::StaleLease { id: id.clone() });
    assert_eq!(status(&env, &id).await, Status::Processing);

    let now = env.clock.now_for_test();
    let f = finish_one(&env, postpone(&l, Some(Reason::It), 600))
        .await
        .unwrap();
    assert_eq!((f.status, f.retry_count), (Status::Queued, 0));
    let d = env.store.item(&id).await.unwrap();
    assert_eq!(
        d.item.delay_until,
        Some(now + chrono::Duration::minutes(10))
    );
    assert_eq!(
        d.item.notes.last().map(|n| n.text.as_str()),
        Some("portal down")
    );
    let last = d.history.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.reason),
        ("postpone", Some(Reason::It))
    );
    // The spent lease is refused; the item waits out its delay, then comes back.
    let e = finish_one(&env, done(&l)).await.unwrap_err();
    assert_eq!(e.kind(), "conflict", "{e}");
    assert!(take(&env, &["q"], 1).await.leases.is_empty());
    env.clock.advance(Duration::from_secs(601));
    let again = take(&env, &["q"], 1).await.leases.remove(0);
    assert_eq!(
        (again.item.id.as_str(), again.item.retry_count),
        (id.as_str(), 0)
    );
    // Postponing again works with max_retries 0: it is no retry.
    let f = finish_one(&env, postpone(&again, Some(Reason::It), 60))
        .await
        .unwrap();
    assert_eq!((f.status, f.retry_count), (Status::Queued, 0));
}

/// `queue preview`: the queued items whose delay ends within the window, soonest first;
/// not the ready ones, not those past the window, not one that expires before it wakes.
pub async fn upcoming_lists_delayed_items_by_when_they_become_ready(env: Env) {
    queue(&env, "q", Default::default()).await;
    queue(&env, "other", Default::default()).await;
    let now = env.clock.now_for_test();
    let at = |mins: i64| Some(now + chrono::Duration::minutes(mins));
    let new = |value: &str, delay_until, expires_in| NewItem {
        value: value.into(),
        delay_until,
        expires_in,
        ..Default::default()
    };
    let items = vec![
        new("in 2h", at(120), None),
        new("ready now", None, None),
        new("in 30m", at(30), None),
        new("in 30h", at(30 * 60), None),
        new("expires first", at(60), Some(Duration::from_secs(600))),
        new("in 24h exactly", at(24 * 60), None),
    ];
    env.store.add_items("q", items, "bot").await.unwrap();
    env.store
        .add_items("other", vec![new("elsewhere", at(10), None)], "bot")
        .await
        .unwrap();
    let day = Duration::from_secs(24 * 3600);
    let values = |v: Vec<Item>| v.into_iter().map(|i| i.value).collect::<Vec<_>>();
    let got = env.store.upcoming("q", day, 100).await.unwrap();
    assert_eq!(got[0].delay_until, at(30));
    assert_eq!(values(got), ["in 30m", "in 2h", "in 24h exactly"]);
    assert_eq!(
        values(env.store.upcoming("q", day, 1).await.unwrap()),
        ["in 30m"]
    );
    // Once its delay passed, an item is ready, no longer upcoming.
    env.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        values(env.store.upcoming("q", day, 100).await.unwrap()),
        ["in 2h", "in 24h exactly"]
    );
    // Refused, naming what: an unknown queue, an empty window, a limit of 0 or too many.
    let e = env.store.upcoming("nope", day, 100).await.unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let e = env
        .store
        .upcoming("q", Duration::ZERO, 100)
        .await
        .unwrap_err();
    assert!(
        e.kind() == "invalid" && e.to_string().contains("more than 0"),
        "{e}"
    );
    for limit in [0, MAX_PAGE + 1] {
        let e = env.store.upcoming("q", day, limit).await.unwrap_err();
        assert!(
            e.kind() == "invalid" && e.to_string().contains("limit"),
            "{e}"
        );
    }
    let e = env
        .store
        .upcoming("q", Duration::from_secs(200 * 366 * 86_400), 100)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("too long"), "{e}");
}

/// A clock accessor for the tests.
trait NowForTest {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc> {
        workq::clock::Clock::now(self)
    }
}

// ---------------------------------------------------------------- alerts (issue 9)

fn new_alert(name: &str, queue: &str, rule: &str) -> workq::alert::NewAlert {
    workq::alert::NewAlert {
        name: name.into(),
        queue: queue.into(),
        rule: rule.into(),
        target: workq::alert::Target::Webhook("http://127.0.0.1:9/hook".into()),
    }
}

async fn alerts_are_added_listed_and_removed_and_bad_ones_change_nothing(env: Env) {
    use workq::alert::AlertState;
    queue(&env, "inv", QueueSettings::default()).await;
    let a = env
        .store
        .add_alert(new_alert("late", "inv", " out > 0 "))
        .await
        .unwrap();
    assert_eq!(a.rule, "out>0", "kept in canonical words");
    assert_eq!((a.state, a.generation), (AlertState::Cleared, 0));
    let bad = [
        (new_alert("x", "inv", "out>>0"), "rule"),
        (new_alert("x", "inv", "exceptions>5"), "rule"),
        (new_alert("", "inv", "out>0"), "name"),
        (
            workq::alert::NewAlert {
                target: workq::alert::Target::Webhook("ftp://h/x".into()),
                ..new_alert("x", "inv", "out>0")
            },
            "webhook",
        ),
    ];
    for (b, field) in bad {
        match env.store.add_alert(b.clone()).await {
            Err(Error::Invalid {
                field: f, message, ..
            }) => {
                assert_eq!(f, field, "{message}");
            }
            other => panic!("{b:?}: {other:?}"),
        }
    }
    match env.store.add_alert(new_alert("x", "nope", "out>0")).await {
        Err(Error::NotFound {
            what: Thing::Queue, ..
        }) => {}
        other => panic!("unknown queue: {other:?}"),
    }
    match env
        .store
        .add_alert(new_alert("late", "inv", "at-risk>1"))
        .await
    {
        Err(e) => assert!(
            matches!(e.conflict_of(), Some(Conflict::AlertExists { name }) if name == "late"),
            "{e:?}"
        ),
        other => panic!("duplicate: {other:?}"),
    }
    match env.store.remove_alert("nope").await {
        Err(Error::NotFound {
            what: Thing::Alert, ..
        }) => {}
        other => panic!("rm unknown: {other:?}"),
    }
    let all = env.store.alerts().await.unwrap();
    assert_eq!(all, vec![a.clone()], "the refusals changed nothing");
    assert_eq!(env.store.remove_alert("late").await.unwrap(), a);
    assert!(env.store.alerts().await.unwrap().is_empty());
}

async fn an_alert_transition_is_won_by_one_checker_only(env: Env) {
    use workq::alert::AlertState;
    queue(&env, "inv", QueueSettings::default()).await;
    env.store
        .add_alert(new_alert("late", "inv", "out>0"))
        .await
        .unwrap();
    let won = env
        .store
        .set_alert_state("late", 0, AlertState::Fired)
        .await
        .unwrap()
        .expect("the first checker wins");
    assert_eq!((won.state, won.generation), (AlertState::Fired, 1));
    // A second checker that read generation 0 too loses, and nothing moves.
    let lost = env
        .store
        .set_alert_state("late", 0, AlertState::Fired)
        .await
        .unwrap();
    assert_eq!(lost, None);
    assert_eq!(env.store.alerts().await.unwrap(), vec![won.clone()]);
    match env
        .store
        .set_alert_state("nope", 0, AlertState::Fired)
        .await
    {
        Err(Error::NotFound {
            what: Thing::Alert, ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

async fn an_alert_fires_once_when_its_rule_holds_and_clears_once(env: Env) {
    use workq::alert::AlertState;
    queue(
        &env,
        "inv",
        QueueSettings {
            sla: Some(Duration::from_secs(60)),
            ..QueueSettings::default()
        },
    )
    .await;
    env.store
        .add_alert(new_alert("late", "inv", "out>0"))
        .await
        .unwrap();
    let check = || workq::alerting::check(&*env.store, env.clock.now_for_test());
    assert!(check().await.unwrap().is_empty(), "an empty queue is fine");
    let items = add(&env, "inv", &["a", "b", "c"]).await;
    assert!(check().await.unwrap().is_empty(), "in SLA");
    env.clock.advance(Duration::from_secs(120));
    let fired = check().await.unwrap();
    assert_eq!(fired.len(), 1, "one body for three items out of SLA");
    let body = &fired[0].1;
    assert_eq!(
        (body.state, body.figures.out_of_sla),
        (AlertState::Fired, 3)
    );
    assert_eq!(body.examples.len(), 3);
    assert!(body
        .examples
        .iter()
        .all(|e| items.iter().any(|i| i.id == e.id)));
    assert!(
        check().await.unwrap().is_empty(),
        "a second check fires nothing"
    );
    act(&env, ids(&items), ActionKind::Delete).await.unwrap();
    let cleared = check().await.unwrap();
    assert_eq!(cleared.len(), 1);
    assert_eq!(
        (cleared[0].1.state, cleared[0].1.figures.out_of_sla),
        (AlertState::Cleared, 0)
    );
    assert!(check().await.unwrap().is_empty(), "cleared once");
    let stored = &env.store.alerts().await.unwrap()[0];
    assert_eq!((stored.state, stored.generation), (AlertState::Cleared, 2));
}

async fn no_worker_counts_only_workers_heard_from_on_that_queue(env: Env) {
    use workq::alert::AlertState;
    queue(&env, "a", Default::default()).await;
    queue(&env, "b", Default::default()).await;
    for q in ["a", "b"] {
        env.store
            .add_alert(new_alert(&format!("{q}-quiet"), q, "no-worker>5m"))
            .await
            .unwrap();
    }
    let check = || workq::alerting::check(&*env.store, env.clock.now_for_test());
    assert!(check().await.unwrap().is_empty(), "both queues are new");
    // A worker polls b all along; nobody polls a.
    for _ in 0..6 {
        take(&env, &["b"], 1).await;
        env.clock.advance(Duration::from_secs(60));
    }
    let fired = check().await.unwrap();
    let names: Vec<(&str, AlertState)> = fired
        .iter()
        .map(|(a, b)| (a.name.as_str(), b.state))
        .collect();
    assert_eq!(names, [("a-quiet", AlertState::Fired)], "b has its worker");
    assert!(fired[0].1.figures.no_worker_secs.unwrap() >= 360);
    // An agent registering for a counts as heard from there.
    env.store
        .register_worker("bot", agent(&["a"], WorkerState::Running))
        .await
        .unwrap();
    let cleared = check().await.unwrap();
    assert_eq!(cleared.len(), 1);
    assert_eq!(
        (cleared[0].0.name.as_str(), cleared[0].1.state),
        ("a-quiet", AlertState::Cleared)
    );
}

/// One finish call with outcomes of every kind, a forged lease and an item reported twice
/// among them: each is applied or refused on its own, in order, and what was applied is
/// counted and written to history once.
pub async fn a_batch_finish_applies_each_outcome_on_its_own(env: Env) {
    queue(&env, "q", Default::default()).await;
    add(&env, "q", &["a", "b", "c", "d"]).await;
    let ls = take(&env, &["q"], 4).await.leases;
    let forged = Outcome {
        lease: "forged".into(),
        ..done(&ls[1])
    };
    let r = env
        .store
        .finish(
            vec![
                ls[0].outcome(None, Some("posted as 51".into())),
                forged,
                failed(&ls[2], Reason::Business, "vendor unknown"),
                done(&ls[0]),
                done(&ls[3]),
            ],
            "w1",
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 5, "one answer per outcome");
    assert_eq!(r[0].as_ref().unwrap().status, Status::Processed);
    assert_eq!(
        conflict(r[1].as_ref().unwrap_err()),
        &Conflict::StaleLease {
            id: ls[1].item.id.clone()
        }
    );
    assert_eq!(r[2].as_ref().unwrap().status, Status::Exception);
    assert_eq!(
        conflict(r[3].as_ref().unwrap_err()),
        &Conflict::NotLeased {
            id: ls[0].item.id.clone(),
            status: Status::Processed
        },
        "the second report of one item finds it finished"
    );
    assert_eq!(r[4].as_ref().unwrap().status, Status::Processed);
    let c = counts(&env, "q").await;
    assert_eq!(
        (c.processed, c.exception, c.processing, c.queued),
        (2, 1, 1, 0)
    );
    let first = env.store.item(&ls[0].item.id).await.unwrap();
    let completes = first
        .history
        .iter()
        .filter(|h| h.to == Some(Status::Processed))
        .count();
    assert_eq!(completes, 1, "{:?}", first.history);
    let notes: Vec<&str> = first.item.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["posted as 51"]);
    assert_eq!(first.item.notes[0].by, env.worker("w1"));
    let held = env.store.item(&ls[1].item.id).await.unwrap().item;
    assert_eq!(
        (held.status, held.worker),
        (Status::Processing, Some(env.worker("w1")))
    );
    let w = env.store.workers().await.unwrap();
    let w1 = w.iter().find(|w| w.name == env.worker("w1")).unwrap();
    assert_eq!((w1.processed, w1.failed, w1.holding), (2, 1, 1));
}

/// `serve --retain`: only processed items finished before the edge go, oldest first and at
/// most as many as asked, with their counts; open items stay however old, and a removed
/// item's key is free again.
pub async fn retention_removes_only_processed_items_past_it(env: Env) {
    queue(&env, "q", Default::default()).await;
    let keyed = |v: &str| NewItem {
        key: Some(format!("k-{v}")),
        ..item(v)
    };
    let items = env
        .store
        .add_items("q", ["a", "b", "c", "d"].map(keyed).to_vec(), "bot")
        .await
        .unwrap();
    let got = take(&env, &["q"], 3).await;
    let by_value = |v: &str| got.leases.iter().find(|l| l.item.value == v).unwrap();
    finish_one(&env, done(by_value("a"))).await.unwrap();
    env.clock.advance(Duration::from_secs(60));
    finish_one(&env, done(by_value("b"))).await.unwrap();
    finish_one(&env, failed(by_value("c"), Reason::Business, "bad vendor"))
        .await
        .unwrap();
    act(
        &env,
        Target::Ids(vec![items[3].id.clone()]),
        ActionKind::Hold,
    )
    .await
    .unwrap();
    let edge = env.clock.now_for_test() + chrono::Duration::seconds(1);
    env.clock.advance(Duration::from_secs(10 * 86_400));
    add(&env, "q", &["e"]).await;
    let e = take(&env, &["q"], 1).await.leases.remove(0);
    finish_one(&env, done(&e)).await.unwrap();

    // One at a time: the oldest finish first.
    assert_eq!(env.store.prune(edge, 1).await.unwrap(), 1);
    assert!(env.store.item(&items[0].id).await.is_err(), "a went first");
    assert_eq!(status(&env, &items[1].id).await, Status::Processed);
    assert_eq!(env.store.prune(edge, 1000).await.unwrap(), 1);
    assert_eq!(env.store.prune(edge, 1000).await.unwrap(), 0);
    for gone in &items[..2] {
        let err = env.store.item(&gone.id).await.unwrap_err();
        assert_eq!(not_found(&err), (Thing::Item, gone.id.as_str()));
    }
    let c = counts(&env, "q").await;
    assert_eq!(
        (c.processed, c.exception, c.on_hold, c.queued),
        (1, 1, 1, 0)
    );

    // However far the edge, open items stay; the newer processed one goes.
    let far = env.clock.now_for_test() + chrono::Duration::days(365);
    assert_eq!(env.store.prune(far, 1000).await.unwrap(), 1);
    assert_eq!(status(&env, &items[2].id).await, Status::Exception);
    assert_eq!(status(&env, &items[3].id).await, Status::OnHold);
    let c = counts(&env, "q").await;
    assert_eq!((c.processed, c.exception, c.on_hold), (0, 1, 1));

    // A removed item's key can be used again; an open item's cannot.
    env.store
        .add_items("q", vec![keyed("a")], "bot")
        .await
        .unwrap();
    let err = env
        .store
        .add_items("q", vec![keyed("c")], "bot")
        .await
        .unwrap_err();
    assert!(
        matches!(conflict(&err), Conflict::DuplicateKey { .. }),
        "{err:?}"
    );
}

contract!(
    queue_lifecycle,
    dequeue_takes_priority_then_fifo,
    dequeue_drains_queues_by_priority,
    dequeue_says_why_when_the_queue_is_the_reason,
    delayed_and_expired_items_are_not_taken,
    the_oldest_queued_age_counts_dormant_items,
    ttl_gives_a_default_expiry,
    leases_are_fenced,
    a_timed_out_lease_without_retries_is_a_timeout_exception,
    an_item_past_the_max_runtime_is_timed_out_while_heartbeating,
    a_held_item_refuses_its_workers_result,
    it_exceptions_retry_and_business_ones_do_not,
    a_holder_reported_timeout_retries_like_a_lease_timeout,
    notes_are_appended_never_overwritten,
    human_actions_follow_the_transition_table,
    requeue_with_an_edited_value_keeps_the_old_one,
    bulk_actions_by_filter_and_undo,
    undo_of_a_delete_restores_the_items,
    bulk_filter_covers_statuses_and_search,
    keys_and_sizes_are_checked,
    items_created_on_hold_are_not_taken,
    import_is_all_or_nothing_unless_told,
    sla_counts_and_filters,
    throughput_handling_time_and_projection,
    counters_match_the_items,
    sla_counts_agree_with_an_exact_count,
    ids_are_never_reused,
    absurd_durations_are_refused_not_overflowed,
    a_queue_named_twice_keeps_its_concurrency_limit,
    undoing_a_hold_of_a_processing_item_keeps_it_held,
    undo_never_takes_an_item_from_its_worker,
    undo_restores_only_the_parts_the_action_changed,
    previews_count_what_an_action_changes_and_skips,
    hold_then_release_keeps_the_expiry,
    the_history_says_what_an_action_changed,
    the_action_log_lists_actions_and_their_undo,
    groups_follow_the_workers_failure_note,
    settings_can_be_cleared,
    workers_are_seen_with_what_they_hold,
    agents_register_and_turn_stale_when_not_heard_from,
    a_worker_is_heard_from_on_the_queues_it_polls,
    a_bad_registration_is_refused_and_changes_nothing,
    the_change_feed_reports_changes,
    a_long_poll_wakes_when_work_arrives,
    one_enqueue_wakes_one_long_poll_not_all,
    concurrent_dequeues_keep_the_concurrency_limit,
    a_lease_handed_back_is_queued_again_at_once,
    a_batch_heartbeat_extends_each_lease_and_refuses_only_the_bad_ones,
    expired_items_count_as_out_of_sla_once,
    pages_continue_after_an_item,
    a_deadline_missed_today_says_so,
    a_heartbeat_keeps_the_lease_past_its_first_deadline,
    pages_sort_high_priority_first_and_by_name_across_queues,
    an_action_on_several_filters_touches_each_item_once_and_undoes_whole,
    automatic_retries_wait_for_their_backoff,
    a_backoff_delays_only_automatic_retries,
    retry_backoff_is_a_queue_setting,
    a_worker_postpones_an_it_exception_without_counting_a_retry,
    a_batch_finish_applies_each_outcome_on_its_own,
    upcoming_lists_delayed_items_by_when_they_become_ready,
    alerts_are_added_listed_and_removed_and_bad_ones_change_nothing,
    an_alert_transition_is_won_by_one_checker_only,
    an_alert_fires_once_when_its_rule_holds_and_clears_once,
    no_worker_counts_only_workers_heard_from_on_that_queue,
);

/// Retention is the server's own periodic work, not a request: on the stores only.
mod stores_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_retention_removes_only_processed_items_past_it() {
        let env = super::common::sqlite()
            .await
            .expect("sqlite is always here");
        super::retention_removes_only_processed_items_past_it(env).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_retention_removes_only_processed_items_past_it() {
        let Some(env) = super::common::postgres().await else {
            eprintln!("SKIPPED: postgres is not available here");
            return;
        };
        super::retention_removes_only_processed_items_past_it(env).await
    }
}
