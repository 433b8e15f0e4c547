//! The terminal console: `workq` and `workq demo`.
//!
//! `app` runs the loop, `update` changes the state (pure), `effects` talks to the backend,
//! `commands` is the one command table, `views` draws, `theme` colours, `value_edit` is
//! the `$EDITOR` round trip.

pub mod app;
pub mod bench;
pub mod commands;
pub mod effects;
pub mod state;
pub mod theme;
pub mod update;
pub mod value_edit;
pub mod views;

#[cfg(test)]
mod tests;

use crate::backend::Backend;
use crate::cli::output::Failure;
use crate::demo::{self, DemoOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// Logs go to a file: the terminal belongs to the console.
fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = directories::ProjectDirs::from("", "", "workq")
        .map(|d| d.data_local_dir().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::never(dir, "console.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("WORKQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Checked before anything is created: scripts that run `workq` get a clear answer.
fn need_terminal() -> Result<(), Failure> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "the console needs a terminal; for scripts see `workq --help` (queue, item, import …)",
        ));
    }
    Ok(())
}

fn actor() -> String {
    format!("user:{}", crate::cli::os_user())
}

async fn console(
    backend: Arc<dyn Backend>,
    source: String,
    read_only: bool,
) -> Result<(), Failure> {
    let opts = app::Options {
        source,
        read_only,
        actor: actor(),
    };
    app::run(backend, opts)
        .await
        .map_err(|e| Failure::invalid(format!("console: terminal error: {e}")))
}

/// `workq`: the console on the user's database.
pub async fn run_console(db: Option<PathBuf>, read_only: bool) -> Result<(), Failure> {
    need_terminal()?;
    let _guard = init_logging();
    let path = db.unwrap_or_else(crate::cli::default_db);
    // Opening creates the file and its folders on first use.
    let store = crate::cli::open_store(Some(path.clone()), false)?;
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    tracing::info!("console on {}", path.display());
    console(store, source, read_only).await
}

/// `workq demo`: a fresh demo database with bots working live.
pub async fn run_demo(
    db: Option<PathBuf>,
    args: demo::DemoArgs,
    read_only: bool,
) -> Result<(), Failure> {
    need_terminal()?;
    let _guard = init_logging();
    if let Some(p) = &db {
        crate::cli::refuse_url(p)?;
    }
    let path = match db {
        Some(p) if p.exists() => {
            return Err(Failure::invalid(format!(
            "{} exists: the demo writes a fresh database (give another --db, or unset WORKQ_DB)",
            p.display()
        )))
        }
        Some(p) => p,
        None => {
            let dir = std::env::temp_dir().join(format!(
                "workq-demo-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_millis()
            ));
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::invalid(format!("cannot create {}: {e}", dir.display())))?;
            dir.join("demo.db")
        }
    };
    let opts = DemoOptions {
        items: args.items,
        live: !args.no_bots,
        ..Default::default()
    };
    let d = demo::start(&path, opts).await?;
    let store: Arc<dyn Backend> = d.store.clone();
    let r = console(store, format!("demo · {}", path.display()), read_only).await;
    drop(d);
    crate::cli::output::emit_err(&format!(
        "the demo database stays at {} (workq --db {} …)\n",
        path.display(),
        path.display()
    ));
    r
}
