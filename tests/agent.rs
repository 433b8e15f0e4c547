//! `workq work`, the worker agent, run as the real binary on a real SQLite file.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

fn workq(db: &Path) -> Command {
    let mut c = Command::cargo_bin("workq").unwrap();
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .arg("--db")
        .arg(db);
    c
}

fn items(db: &Path) -> Vec<Value> {
    let out = workq(db)
        .args(["--json", "item", "ls", "q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.get("items")
        .cloned()
        .unwrap_or(v)
        .as_array()
        .unwrap()
        .clone()
}

fn by_value<'a>(items: &'a [Value], value: &str) -> &'a Value {
    items.iter().find(|i| i["value"] == value).unwrap()
}

#[test]
fn each_exit_code_maps_to_its_outcome_and_a_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let pidfile = dir.path().join("child.pid");
    let script = dir.path().join("s.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nv=$(cat)\ncase $v in\n ok) echo \"done $WORKQ_QUEUE $WORKQ_ATTEMPT\";;\n biz) echo biz; exit 2;;\n it) exit 3;;\n hang) sleep 600 & echo $! > {}; wait;;\n other) echo boom >&2; exit 7;;\nesac\n",
            pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The queue is created by the agent, which says so once.
    let first = workq(&db)
        .args(["work", "--queue", "q", "--run-once", "--", "true"])
        .output()
        .unwrap();
    assert!(first.status.success());
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(err.matches("did not exist").count(), 1, "{err}");
    for v in ["ok", "biz", "it", "hang", "other"] {
        workq(&db)
            .args(["item", "add", "q", "--value", v])
            .assert()
            .success();
    }
    let out = workq(&db)
        .args([
            "work",
            "--queue",
            "q",
            "--concurrency",
            "5",
            "--timeout",
            "1s",
            "--run-once",
            "--",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = items(&db);
    let ok = by_value(&all, "ok");
    assert_eq!(ok["status"], "processed");
    assert_eq!(ok["notes"][0]["text"], "done q 1\n");
    assert_eq!(by_value(&all, "biz")["reason"], "business");
    assert_eq!(by_value(&all, "it")["reason"], "it");
    let other = by_value(&all, "other");
    assert_eq!(other["reason"], "generic");
    assert_eq!(other["notes"][0]["text"], "boom\n");
    assert_eq!(by_value(&all, "hang")["reason"], "timeout");
    // The script's child died with it: its process group was killed.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Gone, or a zombie waiting for its new parent to reap it: either way no longer running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = !state.is_empty()
        && state
            .rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'));
    assert!(!running, "child {pid} outlived the timeout: {state}");
}
