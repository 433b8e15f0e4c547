//! `workq bench`: the benchmark harness. Each stage runs in a child process of its own (so
//! its peak memory is its own) and measures the engine beside a baseline: the same work as
//! bare statements in a plain loop, in the same run, on the same machine.
//!
//! One file per stage (`import`, `console`, `reads`, `bulk`, `cycle`, `mixed`, `http`,
//! `http-latency` in `latency.rs`, `agent`, and `steady`, run only by name); every stage opens
//! what it measures through an `Engine` (`engine.rs`), so the same stages can run against
//! each backend. The baselines are the bare SQL of the store measured (SQLite's or PostgreSQL's).

mod agent;
mod bulk;
mod console;
mod cycle;
pub mod engine;
mod http;
mod import;
mod latency;
mod mixed;
mod pg;
mod reads;
mod steady;

pub use engine::Engine;
pub use import::write_csv;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Rows in the import benchmark (the read benchmarks run on the imported queue).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Items in each full-cycle benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub items: u64,
    /// Items per dequeue, completion and enqueue call in the cycle benchmarks.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Work in this directory (kept) instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The engine the stages measure.
    #[arg(long, default_value = "sqlite", value_parser = engine::parse)]
    pub engine: String,
    #[arg(long, hide = true)]
    pub stage: Option<String>,
    /// Workers in the cycle, mixed and http stages (default: 16 for mixed, 1 for the others).
    #[arg(long, hide = true)]
    pub workers: Option<usize>,
    /// Producers adding items in the cycle benchmarks (default: as many as workers, so a
    /// single producer is not what limits many workers).
    #[arg(long, hide = true)]
    pub producers: Option<usize>,
    /// Items added per second in the mixed stage (it runs for `--items / --rate` seconds).
    #[arg(long, hide = true, default_value_t = 10_000)]
    pub rate: u64,
    /// How long the steady stage runs (it is not part of a whole run: `--stage steady`).
    #[arg(long, hide = true, default_value_t = 10.0)]
    pub minutes: f64,
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub what: String,
    pub engine: f64,
    /// `None` where a baseline has no meaning (the engine's own peak memory).
    pub baseline: Option<f64>,
    /// "rows/s", "items/s", "ms", "MB".
    pub unit: String,
    pub goal: String,
    pub note: String,
}

/// The stages of a whole run, in order, with the workers each runs with.
const RUN: [(&str, usize); 12] = [
    ("import", 1),
    ("console", 1),
    ("reads", 1),
    ("bulk", 1),
    ("cycle", 1),
    ("cycle", 16),
    ("mixed", 16),
    ("http", 1),
    ("http", 16),
    ("http-latency", 1),
    ("agent", 1),
    ("agent", 16),
];

/// Runs the bench as `a` says and returns what goes to stdout: the results table, or (for
/// one `--stage`, run by the parent) its figures as JSON. `progress` hears what is going on.
pub async fn run(a: BenchArgs, progress: &dyn Fn(&str)) -> Result<String, String> {
    let engine = engine::by_name(&a.engine)?;
    if let Some(stage) = &a.stage {
        let dir = a.dir.clone().ok_or("--stage needs --dir")?;
        let figs = run_stage(stage, &dir, &a, engine).await?;
        return Ok(serde_json::to_string(&figs).expect("figures serialize") + "\n");
    }
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("workq-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    progress(&format!(
        "workq bench in {} ({} cores, engine {})",
        dir.display(),
        cores(),
        engine.name
    ));
    progress(&format!("writing a {}-row CSV…", a.rows));
    write_csv(&dir.join("bench.csv"), a.rows).map_err(|e| e.to_string())?;
    let mut figs = Vec::new();
    for (stage, workers) in RUN {
        progress(&format!("running {stage} (workers {workers})…"));
        figs.extend(child(stage, workers, &dir, &a)?);
    }
    if a.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(table(&figs))
}

/// Runs one stage in a child process (this binary, `bench --stage`) and reads its figures.
fn child(stage: &str, workers: usize, dir: &Path, a: &BenchArgs) -> Result<Vec<Figure>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["bench", "--stage", stage, "--dir"])
        .arg(dir)
        .args(["--rows", &a.rows.to_string()])
        .args(["--items", &a.items.to_string()])
        .args(["--batch", &a.batch.to_string()])
        .args(["--workers", &workers.to_string()])
        .args(a.producers.map(|p| format!("--producers={p}")))
        .args(["--rate", &a.rate.to_string()])
        .args(["--engine", &a.engine])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "stage {stage} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("stage {stage}: {e}"))
}

async fn run_stage(
    stage: &str,
    dir: &Path,
    a: &BenchArgs,
    engine: &Engine,
) -> Result<Vec<Figure>, String> {
    match stage {
        "import" => {
            // Run alone, the stage makes its file (--rows) unless an earlier run left one.
            let csv = dir.join("bench.csv");
            if !csv.exists() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                write_csv(&csv, a.rows).map_err(|e| format!("{}: {e}", csv.display()))?;
            }
            import::figures(dir, engine).await
        }
        "console" => console::figures(dir, engine).await,
        "reads" => reads::figures(dir, engine).await,
        "bulk" => bulk::figures(dir, engine, a.items).await,
        "cycle" => {
            let workers = a.workers.unwrap_or(1).max(1);
            let producers = a.producers.unwrap_or(workers).max(1);
            cycle::figures(dir, engine, a.items, workers, producers, a.batch).await
        }
        "mixed" => {
            let workers = a.workers.unwrap_or(mixed::WORKERS).max(1);
            mixed::figures(dir, engine, a.items, a.rate, workers).await
        }
        "http" => http::figures(dir, engine, a.items, a.workers.unwrap_or(1).max(1)).await,
        "http-latency" => latency::figures(dir, engine).await,
        "agent" => agent::figures(dir, engine, a.items, a.workers.unwrap_or(1).max(1)).await,
        "steady" => {
            let workers = a.workers.unwrap_or(mixed::WORKERS).max(1);
            steady::figures(dir, engine, a.minutes, workers, a.batch).await
        }
        other => Err(format!(
            "unknown stage '{other}' (known: import, console, reads, bulk, cycle, mixed, http, \
             http-latency, agent, steady)"
        )),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The results table, one line per figure beside its baseline and their ratio.
fn table(figs: &[Figure]) -> String {
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|f| {
            let fmt = |v: f64| {
                if f.unit == "ms" {
                    format!("{v:.2}")
                } else if f.unit == "MB" {
                    format!("{v:.0}")
                } else {
                    crate::text::thousands(v.round() as u64)
                }
            };
            let (base, ratio) = match f.baseline {
                None => ("-".to_string(), "-".to_string()),
                Some(b) => (
                    format!("{} {}", fmt(b), f.unit),
                    format!("{:.2}×", f.engine / b),
                ),
            };
            vec![
                f.what.clone(),
                format!("{} {}", fmt(f.engine), f.unit),
                base,
                ratio,
                f.goal.clone(),
                f.note.clone(),
            ]
        })
        .collect();
    crate::text::table(
        &[
            "BENCHMARK",
            "WORKQ",
            "BASELINE",
            "WORKQ/BASE",
            "GOAL",
            "NOTE",
        ]
        .map(crate::text::Col::left),
        &rows,
    )
}

/// Removes a database file and its WAL companions, for a stage that starts afresh.
fn fresh(path: &Path) {
    for ext in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{ext}", path.display())).ok();
    }
}

/// Peak resident memory of this process so far, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// The median of some timings.
pub fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    t[t.len() / 2]
}

/// Median of `runs` timings of `f`, in milliseconds.
pub async fn median_ms<F, Fut>(runs: usize, mut f: F) -> Result<f64, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f().await?;
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(t))
}

pub fn median_ms_sync(
    runs: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(t))
}
