//! How commands print: text tables for people, JSON for scripts, errors on stderr.
//! Everything goes through `emit` (stdout) and `emit_err` (stderr): a reader that went
//! away (`| head -1`) ends the command quietly instead of a panic, and every piece of user
//! text shown as text is escaped first (`crate::text`), so it cannot drive the terminal.

use crate::backend::Error;
use crate::model::*;
use crate::rules::format_duration;
use crate::text::{self, Zone};
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

/// Writes `s` to stdout at once. A closed pipe is `Failure::closed_pipe`; any other
/// failure (a full disk under `> file`) is an error that says so.
pub fn emit(s: &str) -> Result<(), Failure> {
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

/// Left-aligned columns separated by two spaces; numbers right-aligned. Every cell is
/// escaped, so no caller can forget to.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| text::line(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    let c = r[i].replace(',', "");
                    c == "-" || c.parse::<f64>().is_ok()
                })
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    emit(&out)
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

pub fn age_secs(secs: i64) -> String {
    format_duration(Duration::from_secs(secs.max(0) as u64))
}

pub fn dur(d: Option<Duration>) -> String {
    d.map(format_duration).unwrap_or_else(|| "-".into())
}

/// One line, at most `max` characters, for a table cell: control characters escaped.
pub fn cell(s: &str, max: usize) -> String {
    let flat = text::line(s);
    if flat.chars().count() <= max {
        flat.into_owned()
    } else {
        let mut t: String = flat.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// "1 item", "2 items", "1,240 items".
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where a queue stands to its deadline, in the queue's time zone (the deadline reads as
/// it was set, and says which zone that is):
/// "drains 22:41, 19m before 23:00 CET" · "misses 23:00 CET by 40m (drains 23:40)" ·
/// "missed 23:00 CET by 40m, 1,240 left" · "paused: 1,240 left for 23:00 CET" ·
/// "nothing left for 23:00 CET".
pub fn projection(p: &Projection, tz: &str) -> String {
    let zone = Zone::named(tz);
    let deadline = zone.hhmm(p.deadline);
    let left = count(p.backlog, "item");
    if p.missed {
        return format!(
            "missed {deadline} by {}, {} left",
            age_secs(-p.margin_secs.unwrap_or(0)),
            thousands(p.backlog)
        );
    }
    if let Some(why) = p.stalled {
        let why = match why {
            Stall::Paused => "paused",
            Stall::NoWorkers => "no live workers",
            Stall::NoThroughput => "no throughput yet",
        };
        return format!("{why}: {left} left for {deadline}");
    }
    let at = |t: Time| zone.bare(t, "%H:%M");
    match (p.backlog, p.drains_at, p.margin_secs) {
        (0, _, _) => format!("nothing left for {deadline}"),
        (_, Some(d), Some(m)) if m >= 0 => {
            format!("drains {}, {} before {deadline}", at(d), age_secs(m))
        }
        (_, Some(d), Some(m)) => {
            format!("misses {deadline} by {} (drains {})", age_secs(-m), at(d))
        }
        _ => format!("{left} left for {deadline}"),
    }
}

/// Whether a projection is good news (drains in time, or nothing left).
pub fn projection_ok(p: &Projection) -> bool {
    !p.missed && p.stalled.is_none() && (p.backlog == 0 || p.margin_secs.is_some_and(|m| m >= 0))
}

/// The projection for a table cell: "22:41, 19m before 23:00 CET", "misses 23:00 CET by 40m".
pub fn projection_short(p: &Projection, tz: &str) -> String {
    let long = projection(p, tz);
    let long = match long.split_once(" (drains ") {
        Some((head, _)) => head.to_string(),
        None => long,
    };
    match long.strip_prefix("drains ") {
        Some(rest) => rest.to_string(),
        None => long,
    }
}

pub fn status_of(i: &Item) -> String {
    match (i.status, i.reason) {
        (Status::Exception, Some(r)) => format!("exception/{r}"),
        (Status::Queued, _) if i.expired => "queued (expired)".into(),
        (Status::Queued, _) if i.delay_until.is_some() => "queued (delayed)".into(),
        (s, _) => s.to_string(),
    }
}
