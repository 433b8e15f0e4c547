//! The terminal console: `workq` and `workq demo`. It is handed a backend (`main` opens it
//! through `crate::connect`) and knows nothing of the command line.
//!
//! `app` runs the loop, `update` changes the state (pure), `effects` talks to the backend,
//! `commands` is the one command table, `views` draws, `theme` colours, `value_edit` is
//! the `$EDITOR` round trip.

pub mod app;
pub mod commands;
pub mod effects;
pub mod settings;
pub mod state;
pub mod theme;
pub mod update;
pub mod value_edit;
pub mod views;

#[cfg(test)]
mod tests;

use crate::backend::Backend;
use std::sync::Arc;

/// Logs go to a file: the terminal belongs to the console. Keep the guard while it runs.
pub fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
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
pub fn need_terminal() -> Result<(), &'static str> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(
            "the console needs a terminal; for scripts see `workq --help` (queue, item, import …)",
        );
    }
    Ok(())
}

/// Runs the console on `backend` until the user quits; `Err` only when the terminal fails.
pub async fn run(backend: Arc<dyn Backend>, opts: app::Options) -> Result<(), String> {
    app::run(backend, opts)
        .await
        .map_err(|e| format!("console: terminal error: {e}"))
}
