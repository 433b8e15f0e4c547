//! How commands print: text tables for people, JSON for scripts, errors on stderr.
//! Everything goes through `emit` (stdout) and `emit_err` (stderr): a reader that went
//! away (`| head -1`) ends the command quietly instead of a panic, and every piece of user
//! text shown as text is escaped first (`crate::text`), so it cannot drive the terminal.

use crate::backend::Error;
use crate::model::*;
use crate::rules::format_duration;
use crate::text::{self, Zone};
// How values read for people, shared with the console (it does not depend on the CLI).
pub use crate::text::{
    age_secs, cell, count, projection, projection_ok, projection_short, status_of, thousands, Col,
};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Prints a line on stdout (`say!("{x}")`); a write that fails ends the command with `?`.
macro_rules! say {
    () => { $crate::cli::output::emit("\n")? };
    ($($t:tt)*) => { $crate::cli::output::emit(&format!("{}\n", format_args!($($t)*)))? };
}
/// Prints a line on stderr (`tell!("{x}")`); an error writing it is ignored, as errors go there.
macro_rules! tell {
    ($($t:tt)*) => { $crate::cli::output::emit_err(&format!("{}\n", format_args!($($t)*))) };
}
pub(crate) use {say, tell};

/// Set when the process started with no stdout at all (`workq … >&-`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records that stdout was closed when the process started. Rust's runtime puts /dev/null
/// in its place before `main`, so every write would succeed and go nowhere: the binary
/// calls this from a check that runs before the runtime does.
pub fn stdout_was_closed() {
    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Fails when stdout was closed at start: checked before taking anything whose only
/// record is what we print (a dequeue's lease tokens).
pub fn check_stdout() -> Result<(), Failure> {
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Failure {
            kind: "output",
            message: "cannot write the output: stdout is closed".into(),
            code: 1,
            error: None,
        });
    }
    Ok(())
}

/// Writes `s` to stdout at once. A closed pipe is `Failure::closed_pipe`; any other
/// failure (a closed stdout, a full disk under `> file`) is an error that says so.
pub fn emit(s: &str) -> Result<(), Failure> {
    check_stdout()?;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .map_err(Failure::output)
}

pub fn emit_err(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes()).and_then(|_| err.flush());
}

pub struct Out {
    pub json: bool,
}

impl Out {
    pub fn json<T: Serialize + ?Sized>(&self, v: &T) -> Result<(), Failure> {
        let mut s = serde_json::to_string_pretty(v).expect("serializable");
        s.push('\n');
        emit(&s)
    }
}

/// What a failed command prints, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
    pub code: i32,
    /// The engine's error, when it is one: `--json` prints its facts beside the message.
    pub error: Option<Box<Error>>,
}

/// The kind of a failure that is no failure to report: the reader of our output left.
pub const CLOSED_PIPE: &str = "closed_pipe";

impl Failure {
    pub fn usage(m: impl Into<String>) -> Failure {
        Failure {
            kind: "usage",
            message: m.into(),
            code: 2,
            error: None,
        }
    }
    pub fn invalid(m: impl Into<String>) -> Failure {
        Failure {
            kind: "invalid",
            message: m.into(),
            code: 1,
            error: None,
        }
    }
    /// Output could not be written. A closed pipe stops the command quietly, the way
    /// Unix tools stop (`main` ends the process by SIGPIPE, exit status 141 in a shell).
    pub fn output(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure {
                kind: CLOSED_PIPE,
                message: "the reader of the output went away".into(),
                code: 141,
                error: None,
            }
        } else {
            Failure {
                kind: "output",
                message: format!("cannot write the output: {e}"),
                code: 1,
                error: None,
            }
        }
    }
    pub fn is_closed_pipe(&self) -> bool {
        self.kind == CLOSED_PIPE
    }
    /// Prints the failure on stderr, as JSON when asked; a closed pipe prints nothing.
    pub fn print(&self, json: bool) {
        if self.is_closed_pipe() {
            return;
        }
        if json {
            // The engine's error as it crosses the seam (kind, facts, message); the CLI's
            // own failures as their kind and message.
            let error = match &self.error {
                Some(e) => serde_json::to_value(e).expect("errors serialize"),
                None => serde_json::json!({"kind": self.kind, "message": self.message}),
            };
            tell!("{}", serde_json::json!({ "error": error }));
        } else {
            // Errors echo what the user typed (a queue name, a duration): escaped too.
            tell!("error: {}", text::escape(&self.message, true));
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            code: 1,
            error: Some(Box::new(e)),
        }
    }
}

/// Columns aligned as each says, separated by two spaces; every cell escaped.
pub fn table(cols: &[Col], rows: &[Vec<String>]) -> Result<(), Failure> {
    emit(&text::table(cols, rows))
}

/// `key           value` lines (`item show`, `queue inspect`), the values escaped;
/// an empty key is an empty line.
pub fn fields(lines: &[(&str, String)]) -> Result<(), Failure> {
    let mut out = String::new();
    for (k, v) in lines {
        if k.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("{k:<14} {}\n", text::line(v)));
        }
    }
    emit(&out)
}

/// A time as the CLI shows it: local, with its zone ("2026-11-22 23:00:00 CET").
pub fn time(t: Time) -> String {
    static LOCAL: std::sync::OnceLock<Zone> = std::sync::OnceLock::new();
    LOCAL.get_or_init(Zone::local).datetime(t)
}

pub fn opt_time(t: Option<Time>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// A time with how far it is from now: "2026-11-22 23:00:00 CET (in 2h)".
pub fn time_from_now(t: Option<Time>, now: Time) -> String {
    match t {
        Some(t) => format!("{} ({})", time(t), text::relative(now, t)),
        None => "-".into(),
    }
}

pub fn dur(d: Option<Duration>) -> String {
    d.map(format_duration).unwrap_or_else(|| "-".into())
}
