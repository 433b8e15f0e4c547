//! The benchmark harness runs: each stage, in the child process `workq bench` starts for
//! it, measures the engine and its baseline and reports the figures it names. No timing is
//! asserted (speed is for `workq bench` to print, beside its baseline).

use assert_cmd::Command;
use serde_json::Value;

fn stage(dir: &std::path::Path, name: &str, extra: &[&str]) -> Vec<Value> {
    let o = Command::cargo_bin("workq")
        .unwrap()
        .env_remove("WORKQ_DB")
        .args(["bench", "--stage", name, "--dir"])
        .arg(dir)
        .args(["--rows", "300", "--items", "200", "--batch", "10"])
        .args(extra)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stage {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
}

fn whats(figs: &[Value]) -> Vec<String> {
    for f in figs {
        let v = f["engine"].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{f}");
        if let Some(b) = f["baseline"].as_f64() {
            assert!(b.is_finite() && b >= 0.0, "{f}");
        }
    }
    figs.iter()
        .map(|f| f["what"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_quick_stage_reports_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    workq::bench::write_csv(&dir.path().join("bench.csv"), 300).unwrap();
    assert_eq!(
        whats(&stage(dir.path(), "import", &[])),
        ["import 300 CSV rows", "import peak memory (process)"]
    );
    // The reads run on what the import left.
    let reads = whats(&stage(dir.path(), "reads", &[]));
    assert_eq!(reads.len(), 7, "{reads:?}");
    assert!(
        reads.contains(&"queue ls on 300 items".to_string()),
        "{reads:?}"
    );
    assert_eq!(
        whats(&stage(dir.path(), "bulk", &[])),
        [
            "bulk requeue of 200 items (preview + apply)",
            "undo of that bulk requeue (200 items)"
        ]
    );
    assert_eq!(
        whats(&stage(dir.path(), "cycle", &["--workers", "3"])),
        ["full cycle, 3 workers, 3 producers, batches of 10"]
    );
    assert_eq!(
        whats(&stage(
            dir.path(),
            "cycle",
            &["--workers", "2", "--producers", "1"]
        )),
        ["full cycle, 2 workers, 1 producer, batches of 10"]
    );
    // The mixed steady state, a second at 200 items/s: what it sustained and how long
    // calls took.
    let mixed = stage(dir.path(), "mixed", &["--rate", "200"]);
    let w = "mixed, 200/s offered, 16 workers: ";
    assert_eq!(
        whats(&mixed),
        [
            "sustained",
            "dequeue p50",
            "dequeue p99",
            "console read p99"
        ]
        .map(|x| format!("{w}{x}"))
    );
    assert!(
        mixed.iter().all(|f| f["engine"].as_f64().unwrap() > 0.0),
        "{mixed:?}"
    );
    assert_eq!(
        whats(&stage(dir.path(), "http", &["--workers", "2"])),
        [
            "full cycle over HTTP, 2 workers, one item per request",
            "full cycle over HTTP, 2 workers, batches of 32"
        ]
    );
    let latency = stage(dir.path(), "http-latency", &[]);
    assert_eq!(
        whats(&latency),
        [
            "dequeue latency over HTTP at half the peak, p50",
            "dequeue latency over HTTP at half the peak, p99",
            "enqueue to delivery to a waiting long poll, p50",
            "enqueue to delivery to a waiting long poll, p99",
            "SSE fan-out lag, 50 clients at 5,000 changes/s, p50",
            "SSE fan-out lag, 50 clients at 5,000 changes/s, p99",
            "SSE fan-out lag, first 10 % of the run, p99",
            "SSE fan-out lag, last 10 % of the run, p99",
        ]
    );
    // Every figure measured, over HTTP and in-process: a latency, not a missing one.
    for f in &latency {
        for v in [&f["engine"], &f["baseline"]] {
            assert!(v.as_f64().is_some_and(|x| x > 0.0), "{f}");
        }
    }
}

#[test]
fn the_cycle_runs_through_the_http_client_and_leaves_every_item_processed() {
    let dir = tempfile::tempdir().unwrap();
    let figs = stage(dir.path(), "cycle", &["--engine", "http", "--workers", "1"]);
    assert_eq!(
        whats(&figs),
        ["full cycle, 1 worker, 1 producer, batches of 10"]
    );
    // The server wrote the run's file: every item went round.
    let db = dir.path().join("cycle-1.db");
    let o = Command::cargo_bin("workq")
        .unwrap()
        .env_remove("WORKQ_DB")
        .arg("--db")
        .arg(&db)
        .args(["--json", "queue", "ls"])
        .output()
        .unwrap();
    let qs: Vec<Value> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let processed: u64 = qs
        .iter()
        .map(|q| q["counts"]["processed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(processed, 200, "{qs:?}");
}

#[test]
fn a_bad_stage_or_engine_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("workq")
        .unwrap()
        .args(["bench", "--engine", "oracle"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown engine 'oracle' (known: sqlite, http, postgres)"),
        "{err}"
    );
    let o = Command::cargo_bin("workq")
        .unwrap()
        .args(["bench", "--stage", "warp", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bench: unknown stage 'warp'"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn the_agent_stage_measures_the_agent_beside_bare_spawns_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, workers) in [("sqlite", "1"), ("http", "4")] {
        let figs = stage(
            dir.path(),
            "agent",
            &["--engine", engine, "--workers", workers],
        );
        assert_eq!(
            whats(&figs),
            [format!("agent, `true`, concurrency {workers} ({engine})")]
        );
        assert!(figs[0]["baseline"].as_f64().is_some_and(|b| b > 0.0));
    }
}

/// The PostgreSQL engine's stages (`WORKQ_TEST_PG_URL` as the bench's server; skipped
/// without it, except under CI=true): the import beside a bare COPY, the cycle beside the
/// bare claim and complete from as many connections.
#[test]
fn the_postgres_stages_report_their_figures() {
    let Some(url) = std::env::var("WORKQ_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but WORKQ_TEST_PG_URL is unset"
        );
        eprintln!("SKIPPED: WORKQ_TEST_PG_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    workq::bench::write_csv(&dir.path().join("bench.csv"), 300).unwrap();
    let on_pg = |name: &str, extra: &[&str]| {
        let mut args = vec!["--engine", "postgres"];
        args.extend_from_slice(extra);
        let o = Command::cargo_bin("workq")
            .unwrap()
            .env("WORKQ_BENCH_PG_URL", &url)
            .args(["bench", "--stage", name, "--dir"])
            .arg(dir.path())
            .args(["--rows", "300", "--items", "200", "--batch", "10"])
            .args(&args)
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "stage {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
    };
    let import = on_pg("import", &[]);
    assert_eq!(
        whats(&import),
        ["import 300 CSV rows", "import peak memory (process)"]
    );
    assert!(
        import[0]["note"].as_str().unwrap().contains("COPY"),
        "{import:?}"
    );
    let cycle = on_pg("cycle", &["--workers", "4"]);
    assert_eq!(
        whats(&cycle),
        ["full cycle, 4 workers, 4 producers, batches of 10"]
    );
    assert!(cycle[0]["baseline"].as_f64().unwrap() > 0.0, "{cycle:?}");
    // Steady load, shortened to 6 s: two windows, the last beside the first.
    let steady = on_pg("steady", &["--minutes", "0.1", "--workers", "4"]);
    assert_eq!(
        whats(&steady),
        ["steady cycle for 0.1 min, 4 workers, batches of 10: last window"]
    );
    assert!(steady[0]["engine"].as_f64().unwrap() > 0.0, "{steady:?}");
    assert!(steady[0]["baseline"].as_f64().unwrap() > 0.0, "{steady:?}");
    let note = steady[0]["note"].as_str().unwrap();
    assert!(note.contains("first window (3 s each)"), "{note}");
}

#[test]
fn a_steady_run_of_no_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("workq")
        .unwrap()
        .env_remove("WORKQ_DB")
        .args(["bench", "--stage", "steady", "--minutes", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--minutes 0: give a length above 0"), "{err}");
}
