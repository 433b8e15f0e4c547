//! Table-driven tests of the pure rules: transitions, SLA edges, retry policy, signatures,
//! durations and times, deadline projection.

use chrono::{TimeZone, Utc};
use std::time::Duration;
use workq::model::*;
use workq::rules::*;

use Actor::*;
use Status::*;

/// SPEC §3, written out by hand: every allowed (from, to, actor). Anything else is refused.
const ALLOWED: &[(Status, To, Actor)] = &[
    (Queued, To::Status(Processing), System),
    (Queued, To::Status(OnHold), Human),
    (Queued, To::Status(Processed), Human),
    (Queued, To::Deleted, Human),
    (Processing, To::Status(Processed), LeaseHolder),
    (Processing, To::Status(Exception), LeaseHolder),
    // A lease that ran out is a timeout exception; only its holder completes an item, and
    // an automatic retry goes through the exception (exception → queued, below).
    (Processing, To::Status(Exception), System),
    // A lease handed back unworked (its output was lost, the worker shuts down).
    (Processing, To::Status(Queued), LeaseHolder),
    (Processing, To::Status(OnHold), Human),
    (Exception, To::Status(Queued), Human),
    (Exception, To::Status(Queued), System),
    (Exception, To::Status(OnHold), Human),
    (Exception, To::Status(Processed), Human),
    (Exception, To::Deleted, Human),
    (OnHold, To::Status(Queued), Human),
    (OnHold, To::Status(Processed), Human),
    (OnHold, To::Deleted, Human),
    (Processed, To::Status(Queued), Human),
    (Processed, To::Status(OnHold), Human),
    (Processed, To::Deleted, Human),
];

#[test]
fn every_transition_is_allowed_or_refused_as_the_spec_says() {
    let mut checked = 0;
    for from in Status::ALL {
        let tos = Status::ALL
            .iter()
            .map(|s| To::Status(*s))
            .chain([To::Deleted]);
        for to in tos {
            for actor in [LeaseHolder, Human, System] {
                let expected = ALLOWED.contains(&(*from, to, actor));
                assert_eq!(
                    transition_allowed(*from, to, actor),
                    expected,
                    "{from} → {to} by {actor:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 6 * 3);
}

#[test]
fn a_refusal_names_both_statuses() {
    let m = refusal("01ABC", "processed", Processed, To::Status(Processed)).to_string();
    assert!(
        m.contains("01ABC") && m.contains("from processed to processed"),
        "{m}"
    );
    let m = refusal("X", "delete", Processing, To::Deleted).to_string();
    assert!(
        m.contains("from processing to deleted") && m.contains("hold it first"),
        "{m}"
    );
}

#[test]
fn human_actions_map_to_transitions() {
    let requeue = ActionKind::Requeue {
        delay: None,
        value: None,
    };
    let cases: &[(&ActionKind, Status, bool)] = &[
        (&requeue, Exception, true),
        (&requeue, OnHold, true),
        (&requeue, Processed, true),
        (&requeue, Queued, false),
        (&requeue, Processing, false),
        (&ActionKind::Hold, Queued, true),
        (&ActionKind::Hold, Processing, true),
        (&ActionKind::Hold, OnHold, false),
        (&ActionKind::Release, OnHold, true),
        (&ActionKind::Release, Exception, false),
        (&ActionKind::Release, Queued, false),
        (&ActionKind::Processed, Exception, true),
        (&ActionKind::Processed, Processing, false),
        (&ActionKind::Processed, Processed, false),
        (&ActionKind::Delete, Processing, false),
        (&ActionKind::Delete, Processed, true),
        (&ActionKind::AddNote, Processing, true),
        (
            &ActionKind::SetPriority {
                priority: Priority::High,
            },
            Processing,
            true,
        ),
    ];
    for (action, from, ok) in cases {
        let r = check_action("I1", *from, action);
        assert_eq!(r.is_ok(), *ok, "{} from {from}: {r:?}", action.verb());
        if let Err(m) = r {
            assert!(m.contains(from.as_str()), "refusal names the status: {m}");
        }
    }
}

#[test]
fn retry_policy() {
    use Reason::*;
    let cases = [
        // reason, retries so far, max, retried again?
        (It, 0, 3, true),
        (It, 2, 3, true),
        (It, 3, 3, false),
        (Timeout, 0, 1, true),
        (Timeout, 1, 1, false),
        (Business, 0, 5, false),
        (Generic, 0, 5, false),
        (It, 0, 0, false),
    ];
    for (reason, count, max, again) in cases {
        assert_eq!(
            retries_again(reason, count, max),
            again,
            "{reason} {count}/{max}"
        );
    }
}

#[test]
fn sla_edges() {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
    let sla = Some(Duration::from_secs(100));
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let cases = [
        // elapsed seconds, expected (80 % at-risk threshold = 80 s)
        (0, Sla::In),
        (79, Sla::In),
        (80, Sla::AtRisk),
        (100, Sla::AtRisk),
        (101, Sla::Out),
    ];
    for (elapsed, want) in cases {
        assert_eq!(
            item_sla(sla, 80, Queued, t0, None, None, at(elapsed)),
            Some(want),
            "elapsed {elapsed}s"
        );
    }
    assert_eq!(
        item_sla(sla, 50, Exception, t0, None, None, at(50)),
        Some(Sla::AtRisk)
    );
    assert_eq!(
        item_sla(sla, 80, Processed, t0, Some(at(100)), None, at(900)),
        Some(Sla::Met)
    );
    assert_eq!(
        item_sla(sla, 80, Processed, t0, Some(at(101)), None, at(101)),
        Some(Sla::Missed)
    );
    assert_eq!(
        item_sla(None, 80, Queued, t0, None, None, at(1_000_000)),
        None
    );
}

#[test]
fn expiry_applies_to_queued_items_only() {
    let now = Utc::now();
    let past = Some(now - chrono::Duration::seconds(1));
    assert!(is_expired(Queued, past, now));
    assert!(is_expired(Queued, Some(now), now));
    assert!(!is_expired(
        Queued,
        Some(now + chrono::Duration::seconds(1)),
        now
    ));
    assert!(!is_expired(Exception, past, now));
    assert!(!is_expired(Queued, None, now));
}

#[test]
fn signatures_mask_what_varies() {
    let cases = [
        ("Vendor 'Contoso' not found", "Vendor * not found"),
        ("Vendor \"Fabrikam Ltd\" not found", "Vendor * not found"),
        (
            "Amount 5,253.78 exceeds approval limit of 5,000",
            "Amount * exceeds approval limit of *",
        ),
        (
            "Invoice I-1006 failed on 2026-11-22 10:22:01",
            "Invoice * failed on *",
        ),
        (
            "Timeout after 30s calling SAP (attempt 3)",
            "Timeout after * calling SAP (attempt *)",
        ),
        ("Mail to john.doe@contoso.com bounced", "Mail to * bounced"),
        (
            "Order 9f1c2e4a-77b1-4c55-9a51-1e3f0c8d2b10 missing",
            "Order * missing",
        ),
        ("Paid $1,253.78 twice.", "Paid * twice."),
        ("", ""),
        ("plain text", "plain text"),
    ];
    for (note, want) in cases {
        assert_eq!(signature(note), want, "note: {note}");
    }
    // Two notes that differ only in what is masked share a signature.
    assert_eq!(
        signature("Vendor 'Contoso' not found for I-1006"),
        signature("Vendor 'Northwind Traders' not found for I-20931")
    );
}

#[test]
fn durations_parse_and_print() {
    let ok = [
        ("30s", 30),
        ("30m", 1800),
        ("5h", 18_000),
        ("7d", 604_800),
        ("1h30m", 5400),
        (" 2m ", 120),
    ];
    for (text, secs) in ok {
        assert_eq!(
            parse_duration(text).unwrap(),
            Duration::from_secs(secs),
            "{text}"
        );
    }
    for bad in ["", "5", "abc", "5 parsecs", "-5m"] {
        let e = parse_duration(bad).unwrap_err();
        assert!(e.contains("duration"), "{bad}: {e}");
    }
    let shown = [
        (45, "45s"),
        (90, "1m 30s"),
        (720, "12m"),
        (3600, "1h"),
        (11_100, "3h 5m"),
        (187_200, "2d 4h"),
    ];
    for (secs, text) in shown {
        assert_eq!(format_duration(Duration::from_secs(secs)), text);
    }
}

#[test]
fn times_parse_or_say_what_is_expected() {
    let t = parse_time("2026-11-22T23:00:00Z").unwrap();
    assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 22, 23, 0, 0).unwrap());
    let t = parse_time("2026-11-22T23:00:00+01:00").unwrap();
    assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap());
    assert!(parse_time("2026-11-22 23:00").is_ok());
    assert!(parse_time("2026-11-22").is_ok());
    for bad in ["tomorrow", "2026-13-01", "22/11/2026", ""] {
        let e = parse_time(bad).unwrap_err();
        assert!(
            e.contains("bad time") && e.contains("RFC 3339"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn deadlines_roll_to_the_next_day_in_their_zone() {
    // 21:30 UTC is 22:30 in Berlin (winter): 23:00 Berlin is 30 minutes away.
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 21, 30, 0).unwrap();
    let d = next_deadline("23:00", "Europe/Berlin", now).unwrap();
    assert_eq!(d, Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap());
    // At 22:30 UTC (23:30 Berlin) it is tomorrow's.
    let later = Utc.with_ymd_and_hms(2026, 11, 22, 22, 30, 0).unwrap();
    let d = next_deadline("23:00", "Europe/Berlin", later).unwrap();
    assert_eq!(d, Utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap());
    assert!(next_deadline("25:00", "UTC", now)
        .unwrap_err()
        .contains("HH:MM"));
    assert!(next_deadline("23:00", "Mars/Base", now)
        .unwrap_err()
        .contains("time zone"));
}

#[test]
fn projection_says_drain_time_and_margin() {
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap();
    let deadline = Utc.with_ymd_and_hms(2026, 11, 22, 23, 0, 0).unwrap();
    // 410 items at 10/min: 41 minutes, drains 22:41, 19 minutes early.
    let p = project(deadline, 410, 10.0, now);
    assert_eq!(
        p.drains_at,
        Some(Utc.with_ymd_and_hms(2026, 11, 22, 22, 41, 0).unwrap())
    );
    assert_eq!(p.margin_secs, Some(19 * 60));
    // 1000 items at 10/min: misses by 40 minutes.
    assert_eq!(
        project(deadline, 1000, 10.0, now).margin_secs,
        Some(-40 * 60)
    );
    // Nothing moving: no drain time.
    assert_eq!(project(deadline, 5, 0.0, now).drains_at, None);
    // Empty backlog: drained now.
    assert_eq!(project(deadline, 0, 0.0, now).drains_at, Some(now));
}

#[test]
fn settings_and_items_are_checked() {
    assert!(check_queue_name("invoices").is_ok());
    for bad in ["", " padded", "tab\there", &"x".repeat(101)] {
        assert!(check_queue_name(bad).is_err(), "{bad:?}");
    }
    let bad_settings = [
        QueueSettings {
            sla_risk_pct: Some(0),
            ..Default::default()
        },
        QueueSettings {
            concurrency: Some(0),
            ..Default::default()
        },
        QueueSettings {
            deadline: Some("7pm".into()),
            ..Default::default()
        },
        QueueSettings {
            tz: Some("Nowhere/City".into()),
            ..Default::default()
        },
        QueueSettings {
            lease: Some(Duration::from_millis(10)),
            ..Default::default()
        },
    ];
    for s in bad_settings {
        assert!(check_settings(&s).is_err(), "{s:?}");
    }
    let big = NewItem {
        value: "x".repeat(MAX_VALUE_BYTES + 1),
        ..Default::default()
    };
    let (field, msg) = check_new_item(&big).unwrap_err();
    assert_eq!(field, "value");
    assert!(msg.contains("1 MiB"), "{msg}");
    let exact = NewItem {
        value: "x".repeat(MAX_VALUE_BYTES),
        ..Default::default()
    };
    assert!(check_new_item(&exact).is_ok());
}

// ------------------------------------------------------------------ what actions change

fn every_action() -> Vec<ActionKind> {
    vec![
        ActionKind::Requeue {
            delay: None,
            value: None,
        },
        ActionKind::Hold,
        ActionKind::Release,
        ActionKind::Processed,
        ActionKind::Delete,
        ActionKind::SetPriority {
            priority: Priority::High,
        },
        ActionKind::ExtendExpiry { expires_at: None },
        ActionKind::AddNote,
    ]
}

#[test]
fn every_action_has_one_rule_and_undo_never_gives_a_lease_back() {
    assert_eq!(ACTION_RULES.len(), every_action().len());
    for a in every_action() {
        let r = action_rule(a.verb()).unwrap_or_else(|| panic!("{} has no rule", a.verb()));
        assert!(
            r.undo_restores.iter().all(|p| r.changes.contains(p)),
            "{}: undo restores only what the action changes",
            r.verb
        );
        assert!(!r.undo_restores.contains(&Part::Lease), "{}", r.verb);
        // Only actions that move an item need the item untouched to undo; the others
        // check their own parts, so a worker's heartbeat does not block them.
        let moves = action_target(&a).is_some();
        let want = match (moves, a.verb()) {
            (_, "delete") => UndoWhen::StillDeleted,
            (true, _) => UndoWhen::Untouched,
            (false, _) => UndoWhen::PartsAsLeft,
        };
        assert_eq!(r.undo_when, want, "{}", r.verb);
        assert_eq!(
            r.changes.contains(&Part::Status),
            moves && a.verb() != "delete",
            "{}",
            r.verb
        );
        assert_eq!(r.changes.contains(&Part::Existence), a.verb() == "delete");
    }
}

/// An action's rule, the status before it and now, what the store found, what undo does.
type Case<'a> = (
    &'a ActionRule,
    Option<Status>,
    Option<Status>,
    Result<(), Kept>,
    UndoStep,
);

#[test]
fn undo_steps() {
    let rule = |v: &str| action_rule(v).unwrap();
    let (hold, note, requeue) = (rule("hold"), rule("note"), rule("requeue"));
    let cases: Vec<Case> = vec![
        // As left: the rule's parts go back.
        (
            hold,
            Some(Queued),
            Some(OnHold),
            Ok(()),
            UndoStep::Restore(hold.undo_restores),
        ),
        // A worker held it when it was held: kept on hold, never back to a dead lease.
        (
            hold,
            Some(Processing),
            Some(OnHold),
            Ok(()),
            UndoStep::Keep(Kept::WasProcessing),
        ),
        // A note on a worker's item: only the note goes, the worker keeps the item.
        (
            note,
            Some(Processing),
            Some(Processing),
            Ok(()),
            UndoStep::Restore(&[Part::Note]),
        ),
        // Moved on since: kept, saying where it is.
        (
            requeue,
            Some(Exception),
            Some(Processed),
            Err(Kept::ChangedSince(Some(Processed))),
            UndoStep::Keep(Kept::ChangedSince(Some(Processed))),
        ),
        (
            requeue,
            Some(Exception),
            None,
            Err(Kept::ChangedSince(None)),
            UndoStep::Keep(Kept::ChangedSince(None)),
        ),
        // A status undo never touches what a worker holds now, whatever the store found.
        (
            requeue,
            Some(Exception),
            Some(Processing),
            Ok(()),
            UndoStep::Keep(Kept::Processing),
        ),
    ];
    for (r, was, now, found, want) in cases {
        assert_eq!(
            undo_step(r, was, now, found.clone()),
            want,
            "{} {was:?} → {now:?}",
            r.verb
        );
    }
    let words: Vec<String> = [
        Kept::ChangedSince(Some(Processed)),
        Kept::ChangedSince(Some(OnHold)),
        Kept::ChangedSince(Some(Processing)),
        Kept::ChangedSince(Some(Exception)),
        Kept::ChangedSince(None),
        Kept::PartChanged(Part::Priority),
        Kept::Edited(OnHold),
    ]
    .iter()
    .map(|k| k.why())
    .collect();
    assert_eq!(
        words,
        [
            "processed",
            "on hold",
            "being processed",
            "failed",
            "deleted",
            "priority changed",
            "edited, still on hold"
        ]
    );
    assert!(!Kept::WasProcessing.changed_since());
    assert!(Kept::Edited(OnHold).changed_since());
}

#[test]
fn refusals_are_per_status_and_say_why() {
    let requeue = ActionKind::Requeue {
        delay: None,
        value: None,
    };
    let m = refusal_reason(Queued, &requeue).unwrap();
    assert!(
        m.contains("from queued to queued") && m.contains("extend"),
        "{m}"
    );
    assert_eq!(refusal_reason(Exception, &requeue), None);
    let m = refusal_reason(Exception, &ActionKind::Release).unwrap();
    assert!(m.contains("only on-hold items are released"), "{m}");
    let m = refusal_reason(Processing, &ActionKind::Delete).unwrap();
    assert!(m.contains("hold it first"), "{m}");
    assert_eq!(refusal_reason(Processing, &ActionKind::AddNote), None);
    // The per-item message is the same words with the item named.
    assert_eq!(
        check_action("I7", Queued, &requeue).unwrap_err(),
        format!("item I7: {}", refusal_reason(Queued, &requeue).unwrap())
    );
}

#[test]
fn several_statuses_parse_and_bad_ones_are_named() {
    assert_eq!(
        parse_statuses("exception,on-hold").unwrap(),
        [Exception, OnHold]
    );
    assert_eq!(parse_statuses("queued").unwrap(), [Queued]);
    assert_eq!(
        parse_statuses(" queued , queued ").unwrap(),
        [Queued],
        "once"
    );
    let e = parse_statuses("exception,bogus").unwrap_err();
    assert!(
        e.contains("'bogus'") && e.contains("expected one of"),
        "{e}"
    );
    for bad in ["", ",", "exception,", ",queued"] {
        let e = parse_statuses(bad).unwrap_err();
        assert!(e.contains("empty status"), "{bad:?}: {e}");
    }
}

#[test]
fn actions_fit_the_rows_they_are_offered_for() {
    use Status::*;
    let requeue = ActionKind::Requeue {
        delay: None,
        value: None,
    };
    let extend = ActionKind::ExtendExpiry { expires_at: None };
    let high = ActionKind::SetPriority {
        priority: Priority::High,
    };
    // An exception group: requeue and the rest of a triage, not extend or release.
    for a in [
        &requeue,
        &ActionKind::Hold,
        &ActionKind::Processed,
        &ActionKind::Delete,
        &high,
        &ActionKind::AddNote,
    ] {
        assert!(action_fits(&[Exception], a), "{a:?}");
    }
    assert!(!action_fits(&[Exception], &extend));
    assert!(!action_fits(&[Exception], &ActionKind::Release));
    // Expired (queued) items: extend, not requeue.
    assert!(action_fits(&[Queued], &extend));
    assert!(!action_fits(&[Queued], &requeue));
    // Out of SLA: any unfinished status, so only what fits every one of them.
    let open = [Queued, Processing, OnHold, Exception];
    assert!(action_fits(&open, &high));
    assert!(action_fits(&open, &extend));
    for a in [
        &requeue,
        &ActionKind::Hold,
        &ActionKind::Processed,
        &ActionKind::Delete,
    ] {
        assert!(!action_fits(&open, a), "{a:?}");
    }
    assert!(!action_fits(&[], &high), "nothing to act on");
}

/// Where a queue stands to its deadline, as people read it (`queue ls`, `queue inspect`,
/// the console): every time names its zone, and a deadline or drain time that is not
/// today says which day it is. Fixed times; the rules decide, the text says it.
#[test]
fn projections_name_the_zone_and_the_day_of_every_time() {
    let utc = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
    let july = |h: u32| Utc.with_ymd_and_hms(2026, 7, 1, h, 0, 0).unwrap();
    const BERLIN: &str = "Europe/Berlin";
    // (zone, deadline, now, backlog, per minute, oldest queued, paused, what it says)
    #[rustfmt::skip]
    let cases = [
        // Before today's 23:00 in Berlin (22:00 UTC): 1,350 at 10/min drain 18:15 CET.
        (BERLIN, "23:00", utc(22, 15, 0), 1350, 10.0, utc(22, 8, 0), false,
         "drains 18:15 CET, 4h 45m before 23:00 CET"),
        // 1,800 at 10/min: past midnight in Berlin, so the drain time is tomorrow's.
        (BERLIN, "23:00", utc(22, 20, 0), 1800, 10.0, utc(22, 8, 0), false,
         "misses 23:00 CET by 1h (drains tomorrow 00:00 CET)"),
        // Today's deadline passed with work from before it: missed, never tomorrow's.
        (BERLIN, "23:00", utc(22, 22, 40), 1240, 10.0, utc(22, 8, 0), false,
         "missed 23:00 CET by 40m, 1,240 left"),
        // Only work that arrived after today's 16:15 is left: it is tomorrow's, said so.
        ("UTC", "16:15", utc(22, 17, 0), 50, 10.0, utc(22, 16, 30), false,
         "drains 17:05 UTC, 23h 10m before tomorrow's 16:15 UTC"),
        ("UTC", "16:15", utc(22, 23, 0), 600, 5.0, utc(22, 16, 30), false,
         "drains tomorrow 01:00 UTC, 15h 15m before tomorrow's 16:15 UTC"),
        ("UTC", "16:15", utc(22, 17, 0), 50, 10.0, utc(22, 16, 30), true,
         "paused: 50 items left for tomorrow's 16:15 UTC"),
        (BERLIN, "23:00", utc(22, 22, 40), 0, 10.0, utc(22, 8, 0), false,
         "nothing left for tomorrow's 23:00 CET"),
        // The next morning, tonight's deadline is today's again.
        (BERLIN, "23:00", utc(23, 7, 0), 600, 10.0, utc(23, 6, 0), false,
         "drains 09:00 CET, 14h before 23:00 CET"),
        // Summer time names its own zone.
        (BERLIN, "23:00", july(12), 60, 1.0, july(9), false,
         "drains 15:00 CEST, 8h before 23:00 CEST"),
    ];
    for (tz, deadline, now, backlog, per_min, oldest, paused, want) in cases {
        let facts = DeadlineFacts {
            deadline,
            tz,
            backlog,
            oldest_queued: Some(oldest),
            per_min,
            paused,
            live_leases: 3,
            last_finished: None,
        };
        let p = deadline_status(&facts, now).unwrap();
        assert_eq!(
            workq::text::projection(&p, tz, now),
            want,
            "{facts:?} at {now}"
        );
    }
}
