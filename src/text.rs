//! Text for a terminal, shared by the CLI and the console: user data made safe to show,
//! times that name their zone, relative times that tell past from future, and numbers,
//! ages, statuses, deadline projections and tables as people read them.

use crate::model::*;
pub use crate::numbers::{count, thousands};
use crate::rules::format_duration;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// A character a terminal must not receive raw: C0 controls (ESC, BEL, BS, CR…), DEL,
/// C1 controls (U+0080–U+009F, where U+009B is a one-byte CSI), line and paragraph
/// separators, and the bidirectional overrides that reorder what a reader sees.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// User text made safe for a terminal: every control character and escape sequence
/// introducer is shown as a visible escape (`\x1b`, `\r`, `\u{202e}`), so a value can
/// neither move the cursor, clear the screen, set the window title, nor hide text.
/// With `keep_newlines`, `\n` stays a line break (values and notes shown on many lines);
/// otherwise it shows as `\n` too (one table cell, one line). Safe text is borrowed as is.
pub fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| unsafe_char(c) && !(keep_newlines && c == '\n'))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One line of user text, safe for a terminal (see `escape`).
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Where times are shown: a named zone (its abbreviation is printed: CET, UTC), or the
/// system's local time when its zone has no IANA name we know (then the offset is printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Named(chrono_tz::Tz),
    Local,
}

impl Zone {
    pub const UTC: Zone = Zone::Named(chrono_tz::UTC);

    /// The zone of this machine or session: `TZ` when it names an IANA zone, else the
    /// system's configured zone, else local time with its offset.
    pub fn local() -> Zone {
        let tz = std::env::var("TZ").ok();
        let named = match tz.as_deref().map(|t| t.trim_start_matches(':')) {
            Some(t) if !t.is_empty() => t.parse().ok(),
            Some(_) => Some(chrono_tz::UTC),
            None => iana_time_zone::get_timezone()
                .ok()
                .and_then(|n| n.parse().ok()),
        };
        // A TZ that is not an IANA name (a POSIX rule, a file path) is still what
        // chrono's local time follows: show its offset rather than guess a name.
        named.map(Zone::Named).unwrap_or(Zone::Local)
    }

    /// A zone from a queue setting ("Europe/Berlin"); UTC when it does not parse.
    pub fn named(tz: &str) -> Zone {
        Zone::Named(tz.parse().unwrap_or(chrono_tz::UTC))
    }

    /// `t` in this zone with `fmt` (chrono's strftime), followed by the zone's name.
    pub fn format(&self, t: Time, fmt: &str) -> String {
        match self {
            Zone::Named(_) => self.bare(t, &format!("{fmt} %Z")),
            Zone::Local => self.bare(t, &format!("{fmt} %:z")),
        }
    }

    /// `t` in this zone with `fmt`, the zone left unsaid (for a time beside one that says it).
    pub fn bare(&self, t: Time, fmt: &str) -> String {
        match self {
            Zone::Named(z) => t.with_timezone(z).format(fmt).to_string(),
            Zone::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
        }
    }

    /// "2026-11-22 23:00:00 CET".
    pub fn datetime(&self, t: Time) -> String {
        self.format(t, "%Y-%m-%d %H:%M:%S")
    }

    /// "23:00 CET".
    pub fn hhmm(&self, t: Time) -> String {
        self.format(t, "%H:%M")
    }

    /// The calendar date of `t` in this zone.
    pub fn date(&self, t: Time) -> chrono::NaiveDate {
        match self {
            Zone::Named(z) => t.with_timezone(z).date_naive(),
            Zone::Local => t.with_timezone(&chrono::Local).date_naive(),
        }
    }

    /// A time of day that says its day when that is not today here: "18:15 CET",
    /// "tomorrow 02:10 CET", "Tue 24 Nov 02:10 CET".
    pub fn day_hhmm(&self, t: Time, now: Time) -> String {
        match (self.date(t) - self.date(now)).num_days() {
            0 => self.hhmm(t),
            1 => format!("tomorrow {}", self.hhmm(t)),
            _ => self.format(t, "%a %d %b %H:%M"),
        }
    }

    /// A daily deadline, said as whose day it is: "23:00 CET", "tomorrow's 16:15 UTC".
    pub fn deadline(&self, t: Time, now: Time) -> String {
        match (self.date(t) - self.date(now)).num_days() {
            0 => self.hhmm(t),
            1 => format!("tomorrow's {}", self.hhmm(t)),
            _ => self.format(t, "%a %d %b %H:%M"),
        }
    }
}

/// How far `t` is from `now`, in the direction it lies: "in 2h", "5m ago", "now".
/// A future time never reads as past (and never as "0s ago").
pub fn relative(now: Time, t: Time) -> String {
    let ms = (t - now).num_milliseconds();
    let d =
        |ms: i64| crate::rules::format_duration(std::time::Duration::from_secs((ms / 1000) as u64));
    if ms.abs() < 1000 {
        "now".into()
    } else if ms > 0 {
        // Rounded up: "in 1s" for 1.5 s, never "in 0s".
        format!("in {}", d(ms + 999))
    } else {
        format!("{} ago", d(-ms))
    }
}

pub fn age_secs(secs: i64) -> String {
    format_duration(Duration::from_secs(secs.max(0) as u64))
}

/// One line, at most `max` characters, for a table cell: control characters escaped.
pub fn cell(s: &str, max: usize) -> String {
    let flat = line(s);
    if flat.chars().count() <= max {
        flat.into_owned()
    } else {
        let mut t: String = flat.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The bad rows of an import, one per line under `head`, up to a limit.
pub fn import_failure(head: &str, rejected: &[RowError]) -> String {
    const SHOWN: usize = 20;
    let mut m = format!("{head}: {}", count(rejected.len() as u64, "bad row"));
    for r in rejected.iter().take(SHOWN) {
        m.push_str(&format!("\n  {r}"));
    }
    if rejected.len() > SHOWN {
        m.push_str(&format!(
            "\n  … and {} more (use --skip-bad --rejects FILE to import the good rows and keep the bad)",
            thousands((rejected.len() - SHOWN) as u64)
        ));
    }
    m
}

/// Where a queue stands to its deadline at `now`, in the queue's time zone: every time
/// names that zone, and a day that is not today says so (once today's deadline passed
/// with only later work left, the projection is against tomorrow's, and reads that way):
/// "drains 22:41 CET, 19m before 23:00 CET" ·
/// "drains 18:30 UTC, 21h 45m before tomorrow's 16:15 UTC" ·
/// "misses 23:00 CET by 40m (drains 23:40 CET)" · "missed 23:00 CET by 40m, 1,240 left" ·
/// "paused: 1,240 items left for 23:00 CET" · "nothing left for tomorrow's 23:00 CET".
pub fn projection(p: &Projection, tz: &str, now: Time) -> String {
    let zone = Zone::named(tz);
    let deadline = zone.deadline(p.deadline, now);
    let left = count(p.backlog, "item");
    let by = |secs: i64| crate::rules::format_duration(std::time::Duration::from_secs(secs as u64));
    if p.missed {
        return format!(
            "missed {deadline} by {}, {} left",
            by(-p.margin_secs.unwrap_or(0).min(0)),
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
    let at = |t: Time| zone.day_hhmm(t, now);
    match (p.backlog, p.drains_at, p.margin_secs) {
        (0, _, _) => format!("nothing left for {deadline}"),
        (_, Some(d), Some(m)) if m >= 0 => {
            format!("drains {}, {} before {deadline}", at(d), by(m))
        }
        (_, Some(d), Some(m)) => {
            format!("misses {deadline} by {} (drains {})", by(-m), at(d))
        }
        _ => format!("{left} left for {deadline}"),
    }
}

/// Whether a projection is good news (drains in time, or nothing left).
pub fn projection_ok(p: &Projection) -> bool {
    !p.missed && p.stalled.is_none() && (p.backlog == 0 || p.margin_secs.is_some_and(|m| m >= 0))
}

/// The projection for a table cell: "22:41 CET, 19m before 23:00 CET",
/// "misses 23:00 CET by 40m".
pub fn projection_short(p: &Projection, tz: &str, now: Time) -> String {
    let long = projection(p, tz, now);
    let long = match long.split_once(" (drains ") {
        Some((head, _)) => head.to_string(),
        None => long,
    };
    match long.strip_prefix("drains ") {
        Some(rest) => rest.to_string(),
        None => long,
    }
}

/// The projection for a narrow cell, its times still zoned: "22:41 CET, 19m early",
/// "misses by 40m", "missed by 40m, 1,240 left", "paused, 1,240 left", "nothing left".
pub fn projection_tight(p: &Projection, tz: &str, now: Time) -> String {
    let zone = Zone::named(tz);
    let by = |secs: i64| crate::rules::format_duration(std::time::Duration::from_secs(secs as u64));
    if p.missed {
        return format!(
            "missed by {}, {} left",
            by(-p.margin_secs.unwrap_or(0).min(0)),
            thousands(p.backlog)
        );
    }
    if let Some(why) = p.stalled {
        let why = match why {
            Stall::Paused => "paused",
            Stall::NoWorkers => "no live workers",
            Stall::NoThroughput => "no throughput yet",
        };
        return format!("{why}, {} left", thousands(p.backlog));
    }
    match (p.backlog, p.drains_at, p.margin_secs) {
        (0, _, _) => "nothing left".into(),
        (_, Some(d), Some(m)) if m >= 0 => format!("{}, {} early", zone.day_hhmm(d, now), by(m)),
        (_, Some(_), Some(m)) => format!("misses by {}", by(-m)),
        _ => format!("{} left", thousands(p.backlog)),
    }
}

// What an undo did, in words: here with the other text people read, not in the model.
impl UndoResult {
    /// "restored 88 of 109; 21 changed since: 19 processed, 2 on hold".
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would restore"
        } else {
            "restored"
        };
        let mut s = format!(
            "{verb} {} of {}",
            thousands(self.restored),
            thousands(self.total)
        );
        let kept = self.kept_summary();
        if !kept.is_empty() {
            s.push_str("; ");
            s.push_str(&kept);
        }
        s
    }

    /// "21 changed since: 19 processed, 2 on hold" (empty when everything is restored).
    pub fn kept_summary(&self) -> String {
        let n = |t: &[Tally]| thousands(t.iter().map(|t| t.count).sum::<u64>());
        let list = |t: &[Tally]| {
            t.iter()
                .map(|t| format!("{} {}", thousands(t.count), t.why))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.changed.is_empty() {
            parts.push(format!(
                "{} changed since: {}",
                n(&self.changed),
                list(&self.changed)
            ));
        }
        if !self.kept.is_empty() {
            parts.push(format!("{} kept: {}", n(&self.kept), list(&self.kept)));
        }
        parts.join("; ")
    }
}

/// "exception/business", "queued (expired)": an item's status as people read it.
pub fn status_of(i: &Item) -> String {
    match (i.status, i.reason) {
        (Status::Exception, Some(r)) => format!("exception/{r}"),
        (Status::Queued, _) if i.expired => "queued (expired)".into(),
        (Status::Queued, _) if i.delay_until.is_some() => "queued (delayed)".into(),
        (s, _) => s.to_string(),
    }
}

/// A column of a text table: its header, and whether its cells line up right (counts,
/// ages, rates) or left (text). A property of the column, never guessed from its cells:
/// a count beside its limit ("1/1") or a "-" for none stays where the column's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col<'a> {
    pub name: &'a str,
    pub right: bool,
}

impl<'a> Col<'a> {
    pub const fn left(name: &'a str) -> Col<'a> {
        Col { name, right: false }
    }
    pub const fn right(name: &'a str) -> Col<'a> {
        Col { name, right: true }
    }
}

/// Columns separated by two spaces, each aligned as it says (its header too). Every cell
/// is escaped, so no caller can forget to.
pub fn table(cols: &[Col], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| line(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.name.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if cols[i].right {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(cols.iter().map(|c| c.name).collect());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn escapes_every_terminal_control() {
        let cases = [
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"), // CSI: clear screen, home
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"), // OSC: set the title, BEL
            ("ab\x08\x08cd", "ab\\x08\\x08cd"),   // backspace
            ("paid\rOVERDUE", "paid\\rOVERDUE"),  // carriage return
            ("\u{9b}31m red", "\\x9b31m red"),    // C1 CSI
            ("\u{9d}0;t\u{9c}", "\\x9d0;t\\x9c"), // C1 OSC … ST
            ("a\x7fb\x00c", "a\\x7fb\\x00c"),     // DEL, NUL
            ("txt\u{202e}fdp.exe", "txt\\u{202e}fdp.exe"), // bidi override
            ("tab\there", "tab\\there"),
        ];
        for (raw, shown) in cases {
            assert_eq!(line(raw), shown, "{raw:?}");
            assert!(!line(raw).chars().any(unsafe_char));
        }
    }

    #[test]
    fn newlines_stay_only_when_asked() {
        assert_eq!(escape("a\nb\r\n", true), "a\nb\\r\n");
        assert_eq!(escape("a\nb", false), "a\\nb");
    }

    #[test]
    fn safe_text_is_borrowed_unchanged() {
        for s in [
            "",
            "Vendor 'Contoso' not found",
            "Malmö 4999.00 €",
            "C:\\Temp\\x1b",
        ] {
            assert!(matches!(line(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn relative_times_know_past_from_future() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 14, 0, 0).unwrap();
        let at = |s: i64| now + chrono::Duration::milliseconds(s);
        assert_eq!(relative(now, at(2 * 3_600_000)), "in 2h");
        assert_eq!(relative(now, at(1500)), "in 2s");
        assert_eq!(relative(now, at(300)), "now");
        assert_eq!(relative(now, at(-300_000)), "5m ago");
        assert_eq!(
            relative(now, at(-(86_400_000 + 3_600_000 * 4))),
            "1d 4h ago"
        );
    }

    #[test]
    fn an_undo_says_its_counts_with_separators() {
        let u = UndoResult {
            action_id: 4,
            verb: "requeue".into(),
            total: 20_000,
            restored: 19_988,
            changed: vec![Tally {
                count: 12,
                why: "processed".into(),
            }],
            kept: vec![Tally {
                count: 1_500,
                why: "being processed".into(),
            }],
            kept_items: vec![],
            dry_run: false,
        };
        assert_eq!(
            u.summary(),
            "restored 19,988 of 20,000; 12 changed since: 12 processed; \
             1,500 kept: 1,500 being processed"
        );
    }

    #[test]
    fn times_name_their_zone() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 22, 0, 0).unwrap();
        assert_eq!(Zone::UTC.datetime(t), "2026-11-22 22:00:00 UTC");
        assert_eq!(
            Zone::named("Europe/Berlin").datetime(t),
            "2026-11-22 23:00:00 CET"
        );
        assert_eq!(Zone::named("America/New_York").hhmm(t), "17:00 EST");
    }
}
