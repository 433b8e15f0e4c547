//! How commands print: text tables for people, JSON for scripts, errors on stderr.

use crate::backend::Error;
use crate::model::*;
use crate::rules::format_duration;
use serde::Serialize;
use std::time::Duration;

pub struct Out {
    pub json: bool,
}

impl Out {
    pub fn json<T: Serialize>(&self, v: &T) {
        println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
    }
}

/// What a failed command prints, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
    pub code: i32,
}

impl Failure {
    pub fn usage(m: impl Into<String>) -> Failure {
        Failure {
            kind: "usage",
            message: m.into(),
            code: 2,
        }
    }
    pub fn invalid(m: impl Into<String>) -> Failure {
        Failure {
            kind: "invalid",
            message: m.into(),
            code: 1,
        }
    }
    /// Prints the failure on stderr, as JSON when asked.
    pub fn print(&self, json: bool) {
        if json {
            eprintln!(
                "{}",
                serde_json::json!({"error": {"kind": self.kind, "message": self.message}})
            );
        } else {
            eprintln!("error: {}", self.message);
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            code: 1,
        }
    }
}

/// Left-aligned columns separated by two spaces; numbers right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
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
    let line = |cells: Vec<&str>| {
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
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn time(t: Time) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn opt_time(t: Option<Time>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

pub fn age_secs(secs: i64) -> String {
    format_duration(Duration::from_secs(secs.max(0) as u64))
}

pub fn dur(d: Option<Duration>) -> String {
    d.map(format_duration).unwrap_or_else(|| "-".into())
}

/// One line, at most `max` characters, for a table cell.
pub fn cell(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
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

/// "drains 22:41, 19m before 23:00" / "misses 23:00 by 40m" / "no throughput", in the
/// queue's time zone: the deadline reads as it was set.
pub fn projection(p: &Projection, tz: &str) -> String {
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let at = |t: Time| t.with_timezone(&zone).format("%H:%M").to_string();
    match (p.drains_at, p.margin_secs) {
        (Some(d), Some(m)) if m >= 0 => format!(
            "drains {}, {} before {}",
            at(d),
            age_secs(m),
            at(p.deadline)
        ),
        (Some(_), Some(m)) => format!("misses {} by {}", at(p.deadline), age_secs(-m)),
        _ => format!("no throughput: misses {}", at(p.deadline)),
    }
}

/// The projection for a table cell: "22:41, 19m before 23:00" / "misses 23:00 by 40m".
pub fn projection_short(p: &Projection, tz: &str) -> String {
    let long = projection(p, tz);
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
