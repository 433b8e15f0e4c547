//! Table tests of the time rules at fixed instants: how durations are written, when an
//! item is out of SLA, where a queue stands to its deadline, and why a dequeue is empty.

use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;
use workq::model::*;
use workq::rules::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[test]
fn durations_are_s_m_h_d_and_their_compounds() {
    let ok: &[(&str, u64)] = &[
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("7d", 604_800_000),
        ("1h30m", 5_400_000),
        ("1h 30m", 5_400_000),
        ("2d 4h", 187_200_000),
        ("3h 5m", 11_100_000),
        ("1m 30s", 90_000),
        ("1d2h3m4s", 93_784_000),
        ("500ms", 500),
        ("0s", 0),
        (" 2m ", 120_000),
    ];
    for (text, ms) in ok {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(*ms)),
            "{text}"
        );
    }
    // The exact form reads back as the same duration, to the millisecond.
    for ms in [1, 999, 1000, 90_500, 5_400_000, 93_784_005, 30 * 86_400_000] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&exact_duration(d)), Ok(d), "{ms} ms");
    }
    assert_eq!(
        exact_duration(Duration::from_millis(93_784_005)),
        "1d2h3m4s5ms"
    );
    // What format_duration prints reads back as the same duration.
    for secs in [45, 90, 720, 3600, 11_100, 187_200, 86_400 * 3] {
        let d = Duration::from_secs(secs);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{secs}s");
    }
}

#[test]
fn durations_refuse_what_could_be_misread_and_say_why() {
    let bad: &[(&str, &[&str])] = &[
        (
            "5M",
            &["lower-case", "did you mean 5m", "months are not accepted"],
        ),
        ("2H", &["lower-case", "did you mean 2h"]),
        ("10S", &["did you mean 10s"]),
        ("3D", &["did you mean 3d"]),
        ("5mo", &["months and years are not accepted", "30d"]),
        ("2months", &["months and years are not accepted"]),
        ("1y", &["months and years are not accepted", "365d"]),
        ("1year", &["months and years are not accepted"]),
        ("2w", &["weeks are not accepted", "14d"]),
        ("5min", &["write 5m"]),
        ("2hours", &["write 2h"]),
        ("10sec", &["write 10s"]),
        ("3days", &["write 3d"]),
        ("1.5h", &["whole units", "1h30m"]),
        ("5", &["5 has no unit"]),
        ("1h30", &["30 has no unit"]),
        ("30m1h", &["largest to smallest"]),
        ("1h1h", &["largest to smallest"]),
        ("-5m", &["cannot be negative"]),
        ("", &["empty duration"]),
        ("soon", &["does not start with a number"]),
        ("5 parsecs", &["unknown unit 'parsecs'"]),
        ("99999999999999999999s", &["too large"]),
        ("40000d", &["too long"]),
    ];
    for (text, needles) in bad {
        let e = parse_duration(text).expect_err(text);
        for n in *needles {
            assert!(e.contains(n), "{text:?}: no {n:?} in: {e}");
        }
        if !text.is_empty() {
            assert!(e.contains(&format!("'{text}'")), "{text:?} is quoted: {e}");
        }
    }
}

#[test]
fn an_expired_item_is_out_of_sla_whatever_its_age() {
    let t0 = utc(2026, 11, 22, 9, 0);
    let now = t0 + chrono::Duration::minutes(1);
    let hour = Some(Duration::from_secs(3600));
    // (sla target, status, expired) → SLA
    let cases: &[(Option<Duration>, Status, bool, Option<Sla>)] = &[
        (hour, Status::Queued, false, Some(Sla::In)),
        (hour, Status::Queued, true, Some(Sla::Out)),
        // No SLA target: still a violation once expired (SPEC §3).
        (None, Status::Queued, true, Some(Sla::Out)),
        (None, Status::Queued, false, None),
    ];
    for (sla, status, expired, want) in cases {
        assert_eq!(
            item_sla(*sla, 80, *status, t0, None, expired.then_some(t0), now),
            *want,
            "{sla:?} {status} expired={expired}"
        );
    }
    // is_expired is what says "expired": only queued items past their expiry.
    let past = Some(t0);
    assert!(is_expired(Status::Queued, past, now));
    assert!(!is_expired(Status::OnHold, past, now));
    assert!(!is_expired(
        Status::Queued,
        Some(now + chrono::Duration::seconds(1)),
        now
    ));
}

/// A queue with a 23:00 Europe/Berlin deadline (22:00 UTC in November), working normally.
fn facts(backlog: u64) -> DeadlineFacts<'static> {
    DeadlineFacts {
        deadline: "23:00",
        tz: "Europe/Berlin",
        backlog,
        oldest_queued: Some(utc(2026, 11, 22, 8, 0)),
        per_min: 10.0,
        paused: false,
        live_leases: 3,
        last_finished: None,
    }
}

#[test]
fn a_deadline_passed_today_with_backlog_left_is_missed_not_tomorrows() {
    let today = utc(2026, 11, 22, 22, 0);
    let tomorrow = utc(2026, 11, 23, 22, 0);
    // 40 minutes past 23:00 Berlin with 1,240 left.
    let now = utc(2026, 11, 22, 22, 40);
    let p = deadline_status(&facts(1240), now).unwrap();
    assert!(p.missed, "{p:?}");
    assert_eq!(p.deadline, today);
    assert_eq!(p.margin_secs, Some(-40 * 60));
    assert_eq!(p.backlog, 1240);
    assert_eq!(p.drains_at, None);

    // Drained: the next deadline is tomorrow's, and nothing is left for it.
    let p = deadline_status(&facts(0), now).unwrap();
    assert!(!p.missed);
    assert_eq!(p.deadline, tomorrow);
    assert_eq!(p.drains_at, Some(now));

    // Everything left arrived after 23:00: that is tomorrow's work, not a miss.
    let mut late = facts(50);
    late.oldest_queued = Some(utc(2026, 11, 22, 22, 10));
    let p = deadline_status(&late, now).unwrap();
    assert!(!p.missed, "{p:?}");
    assert_eq!(p.deadline, tomorrow);
    assert_eq!(p.drains_at, Some(now + chrono::Duration::minutes(5)));

    // The next morning (Berlin), yesterday's miss is yesterday's: today's deadline counts.
    let morning = utc(2026, 11, 23, 7, 0);
    let p = deadline_status(&facts(1240), morning).unwrap();
    assert!(!p.missed);
    assert_eq!(p.deadline, tomorrow);
}

#[test]
fn before_the_deadline_the_drain_time_is_projected() {
    let now = utc(2026, 11, 22, 20, 0);
    let deadline = utc(2026, 11, 22, 22, 0);
    // 600 items at 10/min: drains 21:00 UTC, an hour early.
    let p = deadline_status(&facts(600), now).unwrap();
    assert_eq!(p.deadline, deadline);
    assert_eq!(p.drains_at, Some(utc(2026, 11, 22, 21, 0)));
    assert_eq!(p.margin_secs, Some(3600));
    assert_eq!(p.stalled, None);
    // 1,800 items: drains 23:00 UTC, an hour late.
    let p = deadline_status(&facts(1800), now).unwrap();
    assert_eq!(p.margin_secs, Some(-3600));
    assert!(!p.missed, "not missed yet: projected to miss");
}

#[test]
fn a_paused_or_unworked_queue_projects_no_drain_time() {
    let now = utc(2026, 11, 22, 20, 0);
    let mut paused = facts(600);
    paused.paused = true;
    let mut abandoned = facts(600);
    abandoned.live_leases = 0;
    abandoned.last_finished = Some(now - chrono::Duration::minutes(10));
    let mut recent = facts(600);
    recent.live_leases = 0;
    recent.last_finished = Some(now - chrono::Duration::seconds(30));
    let mut idle = facts(600);
    idle.per_min = 0.0;
    let cases = [
        (paused, Some(Stall::Paused)),
        (abandoned, Some(Stall::NoWorkers)),
        // A worker finished an item half a minute ago: it is live.
        (recent, None),
        (idle, Some(Stall::NoThroughput)),
    ];
    for (f, want) in cases {
        let p = deadline_status(&f, now).unwrap();
        assert_eq!(p.stalled, want, "{f:?}");
        if want.is_some() {
            assert_eq!(p.drains_at, None, "no made-up drain time: {f:?}");
            assert_eq!(p.margin_secs, None);
        } else {
            assert!(p.drains_at.is_some());
        }
    }
    // Paused with nothing left is simply done.
    let mut done = facts(0);
    done.paused = true;
    assert_eq!(deadline_status(&done, now).unwrap().stalled, None);
    // Paused after the deadline with backlog: missed, and says it is paused.
    let mut late = facts(10);
    late.paused = true;
    let p = deadline_status(&late, utc(2026, 11, 22, 22, 30)).unwrap();
    assert!(p.missed);
    assert_eq!(p.stalled, Some(Stall::Paused));
}

#[test]
fn deadline_edges_and_bad_settings() {
    // Exactly at the deadline with backlog: missed by zero.
    let at = utc(2026, 11, 22, 22, 0);
    let p = deadline_status(&facts(5), at).unwrap();
    assert!(p.missed);
    assert_eq!(p.margin_secs, Some(0));
    // A deadline inside the spring-forward gap (02:30 does not exist on 2026-03-29 in
    // Berlin) falls to the first instant after it.
    let mut gap = facts(0);
    gap.deadline = "02:30";
    let p = deadline_status(&gap, utc(2026, 3, 29, 0, 0)).unwrap();
    assert_eq!(p.deadline, utc(2026, 3, 29, 1, 30));
    let mut bad = facts(1);
    bad.tz = "Mars/Base";
    assert!(deadline_status(&bad, at).unwrap_err().contains("Mars/Base"));
    bad.tz = "UTC";
    bad.deadline = "25:00";
    assert!(deadline_status(&bad, at).unwrap_err().contains("25:00"));
}

#[test]
fn an_empty_dequeue_says_why() {
    let q = |name: &str, reason| QueueEmpty {
        queue: name.into(),
        reason,
        message: format!("{name}: {reason}"),
    };
    use EmptyReason::*;
    let cases = [
        (vec![q("a", Paused)], Paused),
        (vec![q("a", Paused), q("b", Paused)], Paused),
        (vec![q("a", ConcurrencyLimit)], ConcurrencyLimit),
        (
            vec![q("a", Paused), q("b", ConcurrencyLimit)],
            ConcurrencyLimit,
        ),
        (vec![q("a", Paused), q("b", NothingReady)], NothingReady),
        (vec![q("a", NothingReady)], NothingReady),
    ];
    for (queues, want) in cases {
        let w = why_empty(queues.clone());
        assert_eq!(w.reason, want, "{queues:?}");
        assert_eq!(w.queues, queues);
        for one in &queues {
            assert!(w.message.contains(&one.message), "{}", w.message);
        }
    }
}

#[test]
fn a_search_longer_than_the_limit_is_refused() {
    let f = |n: usize| Filter {
        search: Some("x".repeat(n)),
        ..Default::default()
    };
    assert_eq!(check_filter(&f(MAX_SEARCH_CHARS)), Ok(()));
    let e = check_filter(&f(MAX_SEARCH_CHARS + 1)).unwrap_err();
    assert!(
        e.contains("1001 characters") && e.contains("limit of 1000"),
        "{e}"
    );
}

/// The rate counts from when work began inside the window, never less than a minute, and
/// over the whole window once work has gone on longer than it.
#[test]
fn throughput_counts_from_when_work_began_within_the_window() {
    use workq::rules::throughput;
    let min = |m: i64| m * 60_000;
    // 30 done in minutes 100-102, now 103:00: three minutes of work, 10 a minute.
    assert_eq!(throughput(30, Some(100), min(103)), 10.0);
    // Half way through minute 103: 3.5 minutes.
    assert!((throughput(35, Some(100), min(103) + 30_000) - 10.0).abs() < 1e-9);
    // Work began long ago: the first active minute of the window is its first minute; at
    // 200:00 the window has run its 14 earlier minutes and none of the current one.
    let window = workq::model::THROUGHPUT_WINDOW_MIN;
    let whole = (window - 1) as f64;
    assert_eq!(
        throughput(150, Some(200 - window + 1), min(200)),
        150.0 / whole
    );
    // Nothing done: 0, whatever the window; a first burst counts as a minute at least.
    assert_eq!(throughput(0, None, min(50)), 0.0);
    assert_eq!(throughput(12, Some(50), min(50) + 1_000), 12.0);
    // A minute from before the window (it cannot be, but is clamped) counts from its start.
    assert_eq!(throughput(15, Some(0), min(200)), 15.0 / whole);
}
