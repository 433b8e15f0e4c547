//! SLA and time tell the truth (issue 6 §4), through the real binary: expired items are out
//! of SLA, a missed deadline says so, a queue nobody works projects no drain time, future
//! times read as future, and every time names its zone.

use assert_cmd::Command;
use chrono::{Duration as Span, Timelike, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use workq::clock::ManualClock;
use workq::model::*;
use workq::Backend;

fn workq(db: &Path, tz: &str) -> Command {
    let mut c = Command::cargo_bin("workq").unwrap();
    c.env_remove("WORKQ_DB")
        .env("USER", "tester")
        .env("TZ", tz)
        .arg("--db")
        .arg(db)
        .timeout(Duration::from_secs(60));
    c
}

fn ok(db: &Path, args: &[&str]) -> String {
    let o = workq(db, "UTC").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(db, &all)).unwrap()
}

/// The value after `key` on a `key   value` line.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|r| r.starts_with(' '))
                .map(|r| r.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no line '{key}' in:\n{text}"))
}

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    (dir, path)
}

#[test]
fn an_expired_item_is_out_of_sla_in_queue_ls_inspect_and_item_ls() {
    let (_d, db) = db();
    ok(&db, &["queue", "create", "q", "--sla", "1h"]);
    ok(&db, &["queue", "create", "plain"]);
    let gone = ok(
        &db,
        &[
            "item",
            "add",
            "q",
            "--value",
            "a",
            "--expires-at",
            "2000-01-01T00:00:00Z",
        ],
    );
    ok(&db, &["item", "add", "q", "--value", "b"]);
    ok(
        &db,
        &[
            "item",
            "add",
            "plain",
            "--value",
            "c",
            "--expires-at",
            "2000-01-01T00:00:00Z",
        ],
    );
    let qs = json(&db, &["queue", "ls"]);
    for q in qs.as_array().unwrap() {
        assert_eq!(
            (q["expired"].clone(), q["out_of_sla"].clone()),
            (1.into(), 1.into()),
            "{q}"
        );
    }
    let t = ok(&db, &["queue", "ls"]);
    let row: Vec<&str> = t
        .lines()
        .find(|l| l.starts_with("q "))
        .unwrap()
        .split_whitespace()
        .collect();
    // QUEUE QUEUED PROCESSING PROCESSED ON-HOLD EXCEPTION EXPIRED AT-RISK OUT-SLA
    assert_eq!(
        &row[..9],
        ["q", "2", "0", "0", "0", "0", "1", "0", "1"],
        "{t}"
    );
    let t = ok(&db, &["queue", "inspect", "q"]);
    assert_eq!(field(&t, "out of SLA"), "1");
    assert_eq!(field(&t, "expired"), "1");
    let out = json(&db, &["item", "ls", "--sla", "out"]);
    let values: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["a", "c"],
        "expired items, with or without an SLA target"
    );
    assert_eq!(json(&db, &["item", "show", gone.trim()])["sla"], "out");
    let inside = json(&db, &["item", "ls", "--sla", "in"]);
    assert_eq!(inside.as_array().unwrap().len(), 1, "{inside}");
}

/// A database whose items were enqueued `ago` before now, by a store on a manual clock.
fn prepared(db: &Path, queue: QueueSettings, items: usize, ago: Span) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let clock = ManualClock::new(Utc::now() - ago);
        let store = workq::SqliteStore::open(db, Arc::new(clock)).unwrap();
        store.create_queue("q", queue).await.unwrap();
        let new: Vec<NewItem> = (0..items)
            .map(|i| NewItem {
                value: format!("v{i}"),
                ..Default::default()
            })
            .collect();
        store.add_items("q", new, "bot").await.unwrap();
    });
}

/// A zone where it is about noon now, so that "40 minutes ago" is still today there.
fn noon_zone() -> (String, i32) {
    let offset = 12 - Utc::now().hour() as i32;
    // Etc/GMT-N is UTC+N.
    let name = if offset == 0 {
        "UTC".to_string()
    } else if offset > 0 {
        format!("Etc/GMT-{offset}")
    } else {
        format!("Etc/GMT+{}", -offset)
    };
    (name, offset)
}

#[test]
fn a_deadline_missed_today_says_so_instead_of_projecting_tomorrows() {
    let (_d, db) = db();
    let (tz, offset) = noon_zone();
    let passed = Utc::now() - Span::minutes(40) + Span::hours(offset as i64);
    let deadline = passed.format("%H:%M").to_string();
    prepared(
        &db,
        QueueSettings {
            deadline: Some(deadline.clone()),
            tz: Some(tz.clone()),
            ..Default::default()
        },
        1240,
        Span::hours(2),
    );
    let t = ok(&db, &["queue", "inspect", "q"]);
    let p = field(&t, "projection");
    let zone = if offset == 0 {
        "UTC".to_string()
    } else {
        format!("{:+03}", offset)
    };
    let by_40 = format!("missed {deadline} {zone} by 40m, 1,240 left");
    let by_41 = format!("missed {deadline} {zone} by 41m, 1,240 left");
    assert!(p == by_40 || p == by_41, "{p:?}, want {by_40:?}");
    assert!(
        ok(&db, &["queue", "ls"]).contains("missed "),
        "the table says it too"
    );
    let v = json(&db, &["queue", "inspect", "q"]);
    assert_eq!(v["projection"]["missed"], true);
    assert_eq!(v["projection"]["backlog"], 1240);
    assert!(v["projection"]["drains_at"].is_null());
}

#[test]
fn a_paused_or_unworked_queue_projects_no_drain_time() {
    let (_d, db) = db();
    let (tz, offset) = noon_zone();
    let deadline = (Utc::now() + Span::hours(2 + offset as i64))
        .format("%H:%M")
        .to_string();
    let zone = if offset == 0 {
        "UTC".to_string()
    } else {
        format!("{:+03}", offset)
    };
    let due = format!("left for {deadline} {zone}");
    prepared(
        &db,
        QueueSettings {
            deadline: Some(deadline.clone()),
            tz: Some(tz),
            ..Default::default()
        },
        30,
        Span::minutes(1),
    );
    // Nobody has taken anything: no live worker, no drain time made up.
    let p = field(&ok(&db, &["queue", "inspect", "q"]), "projection");
    assert_eq!(p, format!("no live workers: 30 items {due}"));
    // A worker takes one and finishes it: live, and throughput to project from.
    let l = json(&db, &["dequeue", "q"]);
    let (id, lease) = (
        l["item"]["id"].as_str().unwrap(),
        l["lease"].as_str().unwrap(),
    );
    ok(&db, &["complete", id, "--lease", lease]);
    let p = field(&ok(&db, &["queue", "inspect", "q"]), "projection");
    assert!(p.starts_with("drains ") || p.starts_with("misses "), "{p}");
    // Paused: no drain time, whatever the throughput was.
    ok(&db, &["queue", "pause", "q"]);
    let p = field(&ok(&db, &["queue", "inspect", "q"]), "projection");
    assert_eq!(p, format!("paused: 29 items {due}"));
    let v = json(&db, &["queue", "inspect", "q"]);
    assert_eq!(v["projection"]["stalled"], "paused");
    assert!(v["projection"]["drains_at"].is_null());
}

#[test]
fn future_times_read_as_future_and_every_time_names_its_zone() {
    let (_d, db) = db();
    ok(&db, &["queue", "create", "q"]);
    let id = ok(
        &db,
        &[
            "item",
            "add",
            "q",
            "--value",
            "v",
            "--expires-in",
            "2h",
            "--delay-until",
            "2099-01-01T00:00:00Z",
        ],
    );
    let id = id.trim();
    let t = ok(&db, &["item", "show", id]);
    let expires = field(&t, "expires");
    // Two hours from the add, less the moment since (a slow machine may take a second).
    assert!(
        expires.ends_with(" UTC (in 2h)") || expires.ends_with(" UTC (in 1h 59m)"),
        "{expires}"
    );
    assert!(
        field(&t, "delayed until").starts_with("2099-01-01 00:00:00 UTC (in "),
        "{t}"
    );
    assert!(
        field(&t, "enqueued").ends_with(" UTC (now)") || field(&t, "enqueued").ends_with("s ago)"),
        "{t}"
    );
    assert!(!t.contains("0s ago"), "{t}");
    // The zone is the user's, by name.
    let o = workq(&db, "Europe/Berlin")
        .args(["item", "show", id])
        .output()
        .unwrap();
    let t = String::from_utf8(o.stdout).unwrap();
    let delayed = field(&t, "delayed until");
    assert!(
        delayed.starts_with("2099-01-01 01:00:00 CET (in "),
        "{delayed}"
    );
    for line in t.lines().filter(|l| l.contains(" 20") && l.contains(':')) {
        assert!(
            line.contains(" CET") || line.contains(" CEST"),
            "a time without its zone: {line}"
        );
    }
    // And in the other places a time is shown.
    let inspect = ok(&db, &["queue", "inspect", "q"]);
    assert!(field(&inspect, "created").contains(" UTC ("), "{inspect}");
    ok(&db, &["item", "add", "q", "--value", "w"]);
    let d = ok(&db, &["dequeue", "q"]);
    assert!(d.contains("lease until ") && d.contains(" UTC"), "{d}");
}
