//! Table-driven tests of the state machine in `rules`: for every actor (worker, system,
//! person) and every status an item can be in, whether each event or action is allowed,
//! and exactly what it changes. The expectations are written out by hand from SPEC §3,
//! not derived from the tables they check.

use std::time::Duration;
use workq::backend::{Conflict, Error};
use workq::model::*;
use workq::rules::*;

use Status::*;

const NOW: i64 = 1_000_000;
const LEASE: Duration = Duration::from_secs(60);

/// An item as a worker holds it: leased at 900,000 to w1 until 960,000, after one retry
/// and one requeue, with an expiry ahead.
fn held() -> ItemState {
    ItemState {
        status: Processing,
        reason: None,
        signature: None,
        retry_count: 1,
        requeue_count: 1,
        priority: Priority::High,
        started_at: Some(900_000),
        finished_at: None,
        expires_at: Some(5_000_000),
        delay_until: None,
        worker: Some("w1".into()),
        lease_token: Some("tok.7".into()),
        lease_until: Some(960_000),
    }
}

/// The same item in another status, as it would be there (no lease outside processing).
fn in_status(s: Status) -> ItemState {
    let mut st = held();
    st.status = s;
    if s != Processing {
        st.lease_token = None;
        st.lease_until = None;
    }
    match s {
        Exception => {
            st.reason = Some(Reason::Business);
            st.signature = Some("Vendor * not found".into());
            st.finished_at = Some(950_000);
        }
        Processed => st.finished_at = Some(950_000),
        _ => {}
    }
    st
}

// ------------------------------------------------------------------ a new item

#[test]
fn leases_are_cut_to_the_max_runtime() {
    let lease = Duration::from_secs(60);
    let max = Some(Duration::from_secs(90));
    assert_eq!(capped_lease(NOW, lease, NOW, None), Ok(lease));
    assert_eq!(capped_lease(NOW, lease, NOW, max), Ok(lease));
    assert_eq!(
        capped_lease(NOW, lease, NOW - 50_000, max),
        Ok(Duration::from_secs(40))
    );
    assert_eq!(
        capped_lease(NOW, lease, NOW - 90_000, max),
        Ok(Duration::ZERO)
    );
    assert_eq!(
        capped_lease(NOW, lease, NOW - 90_001, max),
        Err(Duration::from_secs(90))
    );
}

#[test]
fn a_new_item_starts_queued_or_on_hold_with_its_expiry() {
    let at = |ms: i64| Some(chrono::DateTime::from_timestamp_millis(ms).unwrap());
    let hour = Some(Duration::from_secs(3600));
    let minute = Some(Duration::from_secs(60));
    type Case = (
        bool,
        Option<Time>,
        Option<Duration>,
        Option<Duration>,
        Status,
        Option<i64>,
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // on hold?, expires_at, expires_in, queue TTL → status, expiry
        (false, None, None, None, Queued, None),
        (true, None, None, None, OnHold, None),
        (false, None, None, hour, Queued, Some(NOW + 3_600_000)),
        (false, None, minute, hour, Queued, Some(NOW + 60_000)),
        (false, at(42), minute, hour, Queued, Some(42)),
    ];
    for (hold, expires_at, expires_in, ttl, status, expiry) in cases {
        let it = NewItem {
            value: "v".into(),
            priority: Priority::Low,
            hold: *hold,
            expires_at: *expires_at,
            expires_in: *expires_in,
            delay_until: at(NOW + 5),
            ..Default::default()
        };
        assert_eq!(
            enqueue(&it, *ttl, NOW),
            ItemState {
                status: *status,
                priority: Priority::Low,
                expires_at: *expiry,
                delay_until: Some(NOW + 5),
                ..ItemState::default()
            },
            "{it:?} ttl {ttl:?}"
        );
    }
}

// ------------------------------------------------------------------ worker

const WORKER_EVENTS: [ItemEvent; 5] = [
    ItemEvent::Heartbeat,
    ItemEvent::Complete,
    ItemEvent::Fail,
    ItemEvent::HandBack,
    ItemEvent::Postpone,
];

/// What a worker's report meets: allowed only on the item it holds under the lease it
/// holds; otherwise the conflict that tells it why, whatever it reported.
#[test]
fn a_worker_acts_only_on_the_lease_it_holds() {
    for event in WORKER_EVENTS {
        for from in Status::ALL {
            for token_matches in [true, false] {
                let got = lease_holder(event, "I1", *from, token_matches);
                let want: Result<(), Conflict> = match (from, token_matches) {
                    (Processing, true) => Ok(()),
                    (Processing, false) => Err(Conflict::StaleLease { id: "I1".into() }),
                    (OnHold, _) => Err(Conflict::OnHold { id: "I1".into() }),
                    (status, _) => Err(Conflict::NotLeased {
                        id: "I1".into(),
                        status: *status,
                    }),
                };
                match (got, want) {
                    (Ok(t), Ok(())) => assert_eq!(t.event, event),
                    (Err(e), Err(c)) => assert_eq!(e.conflict_of(), Some(&c), "{event:?} {from}"),
                    (got, want) => {
                        panic!("{event:?} from {from} ({token_matches}): {got:?}, want {want:?}")
                    }
                }
            }
        }
    }
}

/// Each worker event, applied to the held item: the whole state after it, written out.
#[test]
fn what_each_worker_event_changes() {
    let given = |reason, note| Given {
        reason,
        note,
        lease: LEASE,
        ..Default::default()
    };
    let cases: Vec<(ItemEvent, Given, ItemState)> = vec![
        (
            ItemEvent::Heartbeat,
            given(None, None),
            // The lease runs a full lease timeout from now; nothing else moves.
            ItemState {
                lease_until: Some(NOW + 60_000),
                ..held()
            },
        ),
        (
            ItemEvent::Complete,
            given(None, Some("posted as 5100123")),
            ItemState {
                status: Processed,
                finished_at: Some(NOW),
                lease_token: None,
                lease_until: None,
                // Who processed it, and when it started, stay.
                ..held()
            },
        ),
        (
            ItemEvent::Fail,
            given(Some(Reason::Business), Some("Vendor 'Contoso' not found")),
            ItemState {
                status: Exception,
                reason: Some(Reason::Business),
                signature: Some("Vendor * not found".into()),
                finished_at: Some(NOW),
                lease_token: None,
                lease_until: None,
                ..held()
            },
        ),
        (
            ItemEvent::HandBack,
            given(None, Some("shutting down")),
            // Unworked: back in line with nobody holding it, no retry counted.
            ItemState {
                status: Queued,
                started_at: None,
                worker: None,
                lease_token: None,
                lease_until: None,
                ..held()
            },
        ),
        (
            ItemEvent::Postpone,
            Given {
                delay: Some(std::time::Duration::from_secs(600)),
                ..given(Some(Reason::It), Some("portal down"))
            },
            // Back in line after the worker's delay; no retry counted, no reason kept.
            ItemState {
                status: Queued,
                started_at: None,
                worker: None,
                lease_token: None,
                lease_until: None,
                delay_until: Some(NOW + 600_000),
                ..held()
            },
        ),
    ];
    for (event, g, want) in cases {
        let t = transition(event);
        assert_eq!((t.actor, t.from), (Actor::LeaseHolder, Processing));
        let mut st = held();
        apply(&mut st, t.to, &t.writes, &g, NOW);
        assert_eq!(st, want, "{event:?}");
    }
}

// ------------------------------------------------------------------ system

/// Where each worker and system event goes, by whom, and what history it leaves.
#[test]
fn every_event_has_one_row_from_one_status() {
    use ItemEvent::*;
    type Row = (
        ItemEvent,
        Actor,
        Status,
        Status,
        Option<&'static str>,
        Option<Attempt>,
    );
    #[rustfmt::skip]
    let rows: [Row; 9] = [
        (Dequeue, Actor::System, Queued, Processing, None, None),
        (Heartbeat, Actor::LeaseHolder, Processing, Processing, None, None),
        (Complete, Actor::LeaseHolder, Processing, Processed, Some("complete"), Some(Attempt::Processed)),
        (Fail, Actor::LeaseHolder, Processing, Exception, Some("fail"), Some(Attempt::Failed)),
        (HandBack, Actor::LeaseHolder, Processing, Queued, Some("hand-back"), None),
        (Postpone, Actor::LeaseHolder, Processing, Queued, Some("postpone"), None),
        (LeaseTimeout, Actor::System, Processing, Exception, Some("fail"), Some(Attempt::Failed)),
        (Retry, Actor::System, Exception, Queued, Some("retry"), None),
        (Expire, Actor::System, Queued, Queued, None, None),
    ];
    assert_eq!(TRANSITIONS.len(), rows.len());
    assert_eq!(ItemEvent::ALL.len(), rows.len());
    for (event, actor, from, to, history, attempt) in rows {
        let t = transition(event);
        assert_eq!(
            (t.actor, t.from, t.to, t.history, t.attempt),
            (actor, from, to, history, attempt),
            "{event:?}"
        );
        assert_eq!(
            TRANSITIONS.iter().filter(|t| t.event == event).count(),
            1,
            "{event:?}"
        );
    }
}

/// The engine's own moves, applied where they start: the whole state after each.
#[test]
fn what_each_system_event_changes() {
    // Dequeue: a queued item whose delay has passed.
    let mut st = ItemState {
        delay_until: Some(NOW - 5),
        worker: None,
        started_at: None,
        ..in_status(Queued)
    };
    let t = transition(ItemEvent::Dequeue);
    let g = Given {
        worker: Some("w2"),
        lease_token: Some("new.7"),
        lease: LEASE,
        ..Default::default()
    };
    apply(&mut st, t.to, &t.writes, &g, NOW);
    assert_eq!(
        st,
        ItemState {
            status: Processing,
            started_at: Some(NOW),
            worker: Some("w2".into()),
            lease_token: Some("new.7".into()),
            lease_until: Some(NOW + 60_000),
            delay_until: None,
            ..in_status(Queued)
        }
    );
    // A lease timeout: a timeout exception, noted as such.
    let mut st = held();
    let note = timeout_note(Some("w1"), LEASE);
    assert_eq!(note, "lease expired: no heartbeat from w1 within 1m");
    let steps = fail(
        &mut st,
        ItemEvent::LeaseTimeout,
        Reason::Timeout,
        Some(&note),
        &RetryPolicy::default(),
        NOW,
        0.5,
    );
    assert_eq!(
        st,
        ItemState {
            status: Exception,
            reason: Some(Reason::Timeout),
            signature: Some(signature(&note)),
            finished_at: Some(NOW),
            lease_token: None,
            lease_until: None,
            ..held()
        }
    );
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].transition.event, ItemEvent::LeaseTimeout);
    // A retry from an exception: queued again, counted, the failure's marks gone, after
    // the given backoff.
    let mut st = in_status(Exception);
    let t = transition(ItemEvent::Retry);
    let g = Given {
        delay: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    apply(&mut st, t.to, &t.writes, &g, NOW);
    assert_eq!(
        st,
        ItemState {
            status: Queued,
            reason: None,
            signature: None,
            finished_at: None,
            retry_count: 2,
            delay_until: Some(NOW + 30_000),
            ..in_status(Exception)
        }
    );
    // An expiry changes nothing stored: expired is not a status.
    let mut st = in_status(Queued);
    let t = transition(ItemEvent::Expire);
    apply(&mut st, t.to, &t.writes, &Given::default(), NOW);
    assert_eq!(st, in_status(Queued));
}

/// A failure and what follows it, by reason, retries so far and the queue's policy: the
/// item's status, retry count and wait after it, and the history rows it leaves.
#[test]
fn failures_retry_as_the_policy_says() {
    let backoff = Backoff {
        delay: Duration::from_secs(10),
        max: Duration::from_secs(3600),
    };
    let with = |max_retries, backoff| RetryPolicy {
        max_retries,
        backoff,
    };
    type Case = (
        ItemEvent,
        Reason,
        u32,
        RetryPolicy,
        Status,
        u32,
        Option<i64>,
        &'static [&'static str],
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // event, reason, retries so far, policy → status, retries, delay until, history
        (ItemEvent::Fail, Reason::It, 0, with(3, None), Queued, 1, None, &["fail", "retry"]),
        (ItemEvent::Fail, Reason::It, 2, with(3, None), Queued, 3, None, &["fail", "retry"]),
        (ItemEvent::Fail, Reason::It, 3, with(3, None), Exception, 3, None, &["fail"]),
        (ItemEvent::Fail, Reason::Business, 0, with(3, None), Exception, 0, None, &["fail"]),
        (ItemEvent::Fail, Reason::Generic, 0, with(3, None), Exception, 0, None, &["fail"]),
        (ItemEvent::Fail, Reason::It, 0, with(0, None), Exception, 0, None, &["fail"]),
        (ItemEvent::LeaseTimeout, Reason::Timeout, 0, with(1, None), Queued, 1, None, &["fail", "retry"]),
        (ItemEvent::LeaseTimeout, Reason::Timeout, 1, with(1, None), Exception, 1, None, &["fail"]),
        // With a backoff (jitter 1: the whole wait): 10 s before the first retry, 20 s
        // before the second.
        (ItemEvent::Fail, Reason::It, 0, with(3, Some(backoff)), Queued, 1, Some(NOW + 10_000), &["fail", "retry"]),
        (ItemEvent::LeaseTimeout, Reason::Timeout, 1, with(3, Some(backoff)), Queued, 2, Some(NOW + 20_000), &["fail", "retry"]),
        // A business exception is never retried, backoff or not.
        (ItemEvent::Fail, Reason::Business, 0, with(3, Some(backoff)), Exception, 0, None, &["fail"]),
    ];
    for (event, reason, so_far, policy, status, retries, delay_until, history) in cases {
        let mut st = ItemState {
            retry_count: *so_far,
            ..held()
        };
        let steps = fail(
            &mut st,
            *event,
            *reason,
            Some("SAP timed out"),
            policy,
            NOW,
            1.0,
        );
        let what = format!("{event:?} {reason} after {so_far} with {policy:?}");
        assert_eq!(
            (st.status, st.retry_count, st.delay_until),
            (*status, *retries, *delay_until),
            "{what}"
        );
        let actions: Vec<&str> = steps.iter().filter_map(|s| s.transition.history).collect();
        assert_eq!(actions, *history, "{what}");
        // The failure is always recorded, with the reported reason and note.
        assert_eq!(steps[0].reason, Some(*reason));
        assert_eq!(steps[0].note.as_deref(), Some("SAP timed out"));
        assert!(
            st.lease_token.is_none() && st.lease_until.is_none(),
            "{what}"
        );
        if let [_, retry] = steps.as_slice() {
            let note = retry.note.as_deref().unwrap();
            assert!(
                note.starts_with(&format!(
                    "automatic retry {retries} of {}",
                    policy.max_retries
                )),
                "{note}"
            );
            assert_eq!(note.contains("backoff"), policy.backoff.is_some(), "{note}");
            assert_eq!(
                (st.reason, &st.signature, st.finished_at),
                (None, &None, None)
            );
        } else {
            assert_eq!(st.reason, Some(*reason));
            assert_eq!(st.signature.as_deref(), Some("SAP timed out"));
            assert_eq!(st.finished_at, Some(NOW));
        }
    }
}

#[test]
fn retry_delays_double_up_to_the_max_with_jitter_over_the_upper_half() {
    let b = Backoff {
        delay: Duration::from_secs(10),
        max: Duration::from_secs(60),
    };
    let secs = |retry, jitter| retry_delay(&b, retry, jitter).as_secs_f64();
    #[rustfmt::skip]
    let cases: &[(u32, f64, f64)] = &[
        // retry, jitter draw → seconds
        (1, 1.0, 10.0), (1, 0.0, 5.0), (1, 0.5, 7.5),
        (2, 1.0, 20.0), (3, 1.0, 40.0),
        // Capped at the max, jitter and all.
        (4, 1.0, 60.0), (4, 0.0, 30.0), (50, 1.0, 60.0), (u32::MAX, 1.0, 60.0),
        // A draw out of range is held to it; no draw at all waits the least.
        (1, 7.0, 10.0), (1, -3.0, 5.0), (1, f64::NAN, 5.0),
    ];
    for (retry, jitter, want) in cases {
        assert_eq!(
            secs(*retry, *jitter),
            *want,
            "retry {retry}, jitter {jitter}"
        );
    }
    // The first retry counts as the first even when asked for the zeroth.
    assert_eq!(secs(0, 1.0), 10.0);
    // Huge settings saturate, never overflow.
    let huge = Backoff {
        delay: MAX_DURATION,
        max: MAX_DURATION,
    };
    assert_eq!(retry_delay(&huge, 40, 1.0), MAX_DURATION);
}

#[test]
fn backoffs_parse_or_say_what_is_wrong() {
    let b = |d: u64, m: u64| Backoff {
        delay: Duration::from_secs(d),
        max: Duration::from_secs(m),
    };
    assert_eq!(parse_backoff("30s"), Ok(b(30, 3600)));
    assert_eq!(parse_backoff("30s,10m"), Ok(b(30, 600)));
    assert_eq!(
        parse_backoff("2h"),
        Ok(b(7200, 7200)),
        "a long delay is its own max"
    );
    assert_eq!(parse_backoff("1m,1m"), Ok(b(60, 60)));
    assert_eq!(parse_backoff(&exact_backoff(&b(90, 5400))), Ok(b(90, 5400)));
    let bad: &[(&str, &str)] = &[
        ("", "empty duration"),
        ("0s", "longer than 0"),
        ("10m,1m", "max (1m) is shorter than its delay (10m)"),
        ("10", "has no unit"),
        ("10s,", "empty duration"),
        ("10s,forever", "bad duration 'forever'"),
        ("1d,40000d", "too long"),
    ];
    for (text, needle) in bad {
        let e = parse_backoff(text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
    assert_eq!(
        describe_backoff(&b(30, 3600)),
        "30s, doubling up to 1h (with jitter)"
    );
}

// ------------------------------------------------------------------ a person

fn every_action() -> Vec<ActionKind> {
    vec![
        ActionKind::Requeue {
            delay: Some(Duration::from_secs(120)),
            value: Some("{\"fixed\": true}".into()),
        },
        ActionKind::Hold,
        ActionKind::Release,
        ActionKind::Processed,
        ActionKind::Delete,
        ActionKind::SetPriority {
            priority: Priority::Low,
        },
        ActionKind::ExtendExpiry {
            expires_at: Some(chrono::DateTime::from_timestamp_millis(9_000_000).unwrap()),
        },
        ActionKind::AddNote,
    ]
}

/// SPEC §3 for a person, action by action: the statuses each applies to. Every other
/// (status, action) is refused, and says why.
#[test]
fn every_action_from_every_status_is_allowed_or_refused() {
    #[rustfmt::skip]
    let allowed: &[(&str, &[Status])] = &[
        ("requeue", &[Exception, OnHold, Processed]),
        ("hold", &[Queued, Processing, Exception, Processed]),
        ("release", &[OnHold]),
        ("processed", &[Queued, Exception, OnHold]),
        ("delete", &[Queued, Exception, OnHold, Processed]),
        ("priority", &[Queued, Processing, Processed, OnHold, Exception]),
        ("extend-expiry", &[Queued, Processing, Processed, OnHold, Exception]),
        ("note", &[Queued, Processing, Processed, OnHold, Exception]),
    ];
    let mut checked = 0;
    for action in every_action() {
        let (_, ok) = allowed.iter().find(|(v, _)| *v == action.verb()).unwrap();
        for from in Status::ALL {
            let why = refusal_reason(*from, &action);
            assert_eq!(
                why.is_none(),
                ok.contains(from),
                "{} from {from}: {why:?}",
                action.verb()
            );
            if let Some(why) = why {
                assert!(
                    why.contains(from.as_str()),
                    "the refusal names the status: {why}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 5);
}

/// Each allowed (status, action), applied: the whole state after it, written out from
/// what SPEC §7 says each does.
#[test]
fn what_each_action_changes() {
    let new_expiry = Some(9_000_000);
    for action in every_action() {
        for from in Status::ALL {
            if refusal_reason(*from, &action).is_some() {
                continue;
            }
            let before = in_status(*from);
            // A person took it over: no lease, no failure marks survive a move.
            let taken = |to: Status| ItemState {
                status: to,
                reason: None,
                signature: None,
                lease_token: None,
                lease_until: None,
                ..before.clone()
            };
            let want = match &action {
                ActionKind::Requeue { .. } => ItemState {
                    finished_at: None,
                    delay_until: Some(NOW + 120_000),
                    requeue_count: 2,
                    ..taken(Queued)
                },
                ActionKind::Hold => taken(OnHold),
                ActionKind::Release => ItemState {
                    finished_at: None,
                    delay_until: None,
                    ..taken(Queued)
                },
                ActionKind::Processed => ItemState {
                    finished_at: Some(NOW),
                    ..taken(Processed)
                },
                // The store deletes it; its state is not the rules' to change.
                ActionKind::Delete => before.clone(),
                ActionKind::SetPriority { .. } => ItemState {
                    priority: Priority::Low,
                    ..before.clone()
                },
                ActionKind::ExtendExpiry { .. } => ItemState {
                    expires_at: new_expiry,
                    ..before.clone()
                },
                ActionKind::AddNote => before.clone(),
            };
            let mut st = before.clone();
            act(&mut st, &action, NOW);
            assert_eq!(st, want, "{} from {from}", action.verb());
        }
    }
}

/// A requeue clears an expiry that passed (or the item could never be taken); one still
/// ahead stays. A release keeps even a passed one (SPEC §3: off hold and nothing else).
#[test]
fn a_requeue_clears_a_passed_expiry_and_a_release_does_not() {
    let requeue = ActionKind::Requeue {
        delay: None,
        value: None,
    };
    for (expires_at, action, want) in [
        (Some(NOW), &requeue, None),
        (Some(NOW - 1), &requeue, None),
        (Some(NOW + 1), &requeue, Some(NOW + 1)),
        (Some(NOW - 1), &ActionKind::Release, Some(NOW - 1)),
    ] {
        let mut st = ItemState {
            expires_at,
            ..in_status(OnHold)
        };
        act(&mut st, action, NOW);
        assert_eq!(st.expires_at, want, "{} of {expires_at:?}", action.verb());
    }
}

/// The table each actor's moves come from gives SPEC §3's table, and nothing moves an
/// item to where it already is.
#[test]
fn the_transition_table_is_the_union_of_the_actors_tables() {
    for from in Status::ALL {
        for to in Status::ALL
            .iter()
            .map(|s| To::Status(*s))
            .chain([To::Deleted])
        {
            let by_person = ACTION_RULES
                .iter()
                .any(|r| r.to == Some(to) && r.from.contains(from) && to != To::Status(*from));
            assert_eq!(transition_allowed(*from, to, Actor::Human), by_person);
            for actor in [Actor::LeaseHolder, Actor::System] {
                let by_row = TRANSITIONS.iter().any(|t| {
                    t.actor == actor && t.from == *from && To::Status(t.to) == to && t.from != t.to
                });
                assert_eq!(
                    transition_allowed(*from, to, actor),
                    by_row,
                    "{from} → {to}"
                );
            }
        }
        assert!(!transition_allowed(*from, To::Status(*from), Actor::Human));
    }
}

// ------------------------------------------------------------------ conditions

fn facts(status: Status) -> Facts {
    Facts {
        status,
        enqueued_at: NOW - 50_000,
        finished_at: None,
        expires_at: None,
        delay_until: None,
        lease_until: None,
        sla_ms: Some(100_000),
        risk_pct: 80,
        started_at: None,
        max_runtime_ms: None,
    }
}

/// Expiry, delay and lease edges, at the exact millisecond.
#[test]
fn conditions_at_their_edges() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Cond, Facts, bool)> = vec![
        ("expired at the instant", EXPIRED, Facts { expires_at: Some(NOW), ..facts(Queued) }, true),
        ("not yet expired", EXPIRED, Facts { expires_at: Some(NOW + 1), ..facts(Queued) }, false),
        ("only queued items expire", EXPIRED, Facts { expires_at: Some(NOW - 9), ..facts(OnHold) }, false),
        ("no expiry", EXPIRED, facts(Queued), false),
        ("takeable", TAKEABLE, facts(Queued), true),
        ("a delay that ends now is over", TAKEABLE, Facts { delay_until: Some(NOW), ..facts(Queued) }, true),
        ("still delayed", TAKEABLE, Facts { delay_until: Some(NOW + 1), ..facts(Queued) }, false),
        ("expired is not takeable", TAKEABLE, Facts { expires_at: Some(NOW), ..facts(Queued) }, false),
        ("on hold is not takeable", TAKEABLE, facts(OnHold), false),
        ("delayed is dormant", DORMANT, Facts { delay_until: Some(NOW + 1), ..facts(Queued) }, true),
        ("expired is dormant", DORMANT, Facts { expires_at: Some(NOW), ..facts(Queued) }, true),
        ("ready is not dormant", DORMANT, facts(Queued), false),
        ("a lease is good at its deadline", LEASE_RAN_OUT, Facts { lease_until: Some(NOW), ..facts(Processing) }, false),
        ("and runs out just after", LEASE_RAN_OUT, Facts { lease_until: Some(NOW - 1), ..facts(Processing) }, true),
        ("live at its deadline", LEASE_LIVE, Facts { lease_until: Some(NOW), ..facts(Processing) }, true),
        ("no lease outside processing", LEASE_LIVE, Facts { lease_until: Some(NOW + 9), ..facts(OnHold) }, false),
        ("good at the max runtime", RUNTIME_RAN_OUT, Facts { started_at: Some(NOW - 90), max_runtime_ms: Some(90), lease_until: Some(NOW + 9), ..facts(Processing) }, false),
        ("past it while the lease is live", RUNTIME_RAN_OUT, Facts { started_at: Some(NOW - 91), max_runtime_ms: Some(90), lease_until: Some(NOW + 9), ..facts(Processing) }, true),
        ("the sweep takes it", TIMED_OUT, Facts { started_at: Some(NOW - 91), max_runtime_ms: Some(90), lease_until: Some(NOW + 9), ..facts(Processing) }, true),
        ("no limit without a max runtime", TIMED_OUT, Facts { started_at: Some(0), lease_until: Some(NOW + 9), ..facts(Processing) }, false),
        ("only processing items run out", RUNTIME_RAN_OUT, Facts { started_at: Some(0), max_runtime_ms: Some(90), ..facts(OnHold) }, false),
    ];
    for (what, c, f, want) in cases {
        assert_eq!(c.holds(&f, NOW), want, "{what}");
        let not = Cond::Not(Box::leak(Box::new(c)));
        assert_eq!(not.holds(&f, NOW), !want, "not: {what}");
    }
}

/// Exactly one SLA status holds for an item of a queue with an SLA target (or an expired
/// one), none otherwise; and each is the one SPEC §5 names at each age.
#[test]
fn sla_statuses_are_exclusive_and_fall_at_their_edges() {
    let sla = 100_000;
    // 80 % at risk: at risk from 80 s of age, out after 100 s.
    #[rustfmt::skip]
    let ages: &[(i64, Option<Sla>)] = &[
        (0, Some(Sla::In)), (79_999, Some(Sla::In)), (80_000, Some(Sla::AtRisk)),
        (100_000, Some(Sla::AtRisk)), (100_001, Some(Sla::Out)),
    ];
    for (age, want) in ages {
        for status in [Queued, Processing, Exception, OnHold] {
            let f = Facts {
                enqueued_at: NOW - age,
                ..facts(status)
            };
            assert_eq!(sla_of(&f, NOW), *want, "{status} aged {age}");
            let holding: Vec<Sla> = Sla::ALL
                .iter()
                .copied()
                .filter(|s| sla_cond(*s).holds(&f, NOW))
                .collect();
            assert_eq!(holding.len(), 1, "{status} aged {age}: {holding:?}");
        }
    }
    let done = |took: i64| Facts {
        finished_at: Some(NOW - 500_000 + took),
        enqueued_at: NOW - 500_000,
        ..facts(Processed)
    };
    assert_eq!(sla_of(&done(sla), NOW), Some(Sla::Met));
    assert_eq!(sla_of(&done(sla + 1), NOW), Some(Sla::Missed));
    let no_target = Facts {
        sla_ms: None,
        ..facts(Queued)
    };
    assert_eq!(sla_of(&no_target, NOW), None);
    // Expired is out, target or not, whatever its age.
    for sla_ms in [None, Some(sla)] {
        let f = Facts {
            expires_at: Some(NOW),
            enqueued_at: NOW,
            sla_ms,
            ..facts(Queued)
        };
        assert_eq!(sla_of(&f, NOW), Some(Sla::Out), "{sla_ms:?}");
    }
    assert_eq!(
        sla_edges(sla, 80, NOW),
        SlaEdges {
            out: NOW - 100_000,
            risk: NOW - 80_000 + 1
        }
    );
}

/// Why a dequeue takes nothing from a queue, and how much it may take.
#[test]
fn dequeue_room_by_queue_state_and_limit() {
    let q = |state, concurrency| Queue {
        name: "q".into(),
        description: String::new(),
        state,
        ttl: None,
        sla: None,
        sla_risk_pct: 80,
        deadline: None,
        tz: "UTC".into(),
        max_retries: 0,
        lease: LEASE,
        max_runtime: None,
        concurrency,
        priority: 0,
        retry_backoff: None,
        created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
    };
    use EmptyReason::*;
    type Case = (QueueState, Option<u32>, u64, u64, Result<u64, EmptyReason>);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // state, limit, processing, wanted → room or why none
        (QueueState::Active, None, 1000, 5, Ok(5)),
        (QueueState::Active, Some(4), 1, 5, Ok(3)),
        (QueueState::Active, Some(4), 4, 5, Err(ConcurrencyLimit)),
        (QueueState::Active, Some(4), 9, 1, Err(ConcurrencyLimit)),
        (QueueState::Paused, None, 0, 5, Err(Paused)),
        (QueueState::Paused, Some(4), 4, 5, Err(Paused)),
    ];
    for (state, limit, processing, wanted, want) in cases {
        let got = dequeue_room(&q(*state, *limit), *processing, *wanted).map_err(|(r, _)| r);
        assert_eq!(got, *want, "{state} {limit:?} {processing}");
    }
    let (_, m) = dequeue_room(&q(QueueState::Active, Some(2)), 2, 1).unwrap_err();
    assert_eq!(m, "queue 'q' is at its concurrency limit (2/2 processing)");
}

/// A refused move names both ends as data, so a client can act on it.
#[test]
fn a_refusal_is_a_transition_error_with_both_ends() {
    let e = refusal("I9", "delete", Processing, To::Deleted);
    let Error::Transition {
        action,
        total,
        refused,
        items,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((action.as_str(), *total, *refused), ("delete", 1, 1));
    assert_eq!(
        (items[0].id.as_str(), items[0].from, items[0].to),
        ("I9", Processing, Some(To::Deleted))
    );
    assert!(e.to_string().contains("hold it first"), "{e}");
}

/// Only an IT exception may be postponed, by a delay that is more than nothing.
#[test]
fn retry_in_is_for_an_it_exception_only() {
    use std::time::Duration;
    use workq::rules::check_retry_in;
    let ten = Duration::from_secs(600);
    assert_eq!(check_retry_in(Some(Reason::It), ten), Ok(()));
    for (reason, needle) in [
        (None, "not a processed outcome"),
        (Some(Reason::Business), "not business"),
        (Some(Reason::Generic), "not generic"),
        (Some(Reason::Timeout), "not timeout"),
    ] {
        let e = check_retry_in(reason, ten).unwrap_err();
        assert!(e.contains(needle), "{reason:?}: {e}");
    }
    assert!(check_retry_in(Some(Reason::It), Duration::ZERO)
        .unwrap_err()
        .contains("more than 0"));
    assert!(
        check_retry_in(Some(Reason::It), Duration::from_secs(200 * 366 * 86_400))
            .unwrap_err()
            .contains("too long")
    );
}
