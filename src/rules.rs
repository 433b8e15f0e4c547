//! The rules of workq, in one place and free of storage: which transitions are allowed,
//! SLA maths, retry policy, exception signatures, and the parsing of durations and times.
//! Every store calls these, so SQLite, PostgreSQL and anything later cannot disagree.

use crate::model::*;
use chrono::{Duration as ChronoDuration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use std::sync::OnceLock;
use std::time::Duration;

/// Who asks for a change; some transitions are only for some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The worker holding the lease.
    LeaseHolder,
    /// A person, through the console or the CLI.
    Human,
    /// The engine itself: dequeue, lease sweeps, automatic retries.
    System,
}

/// Where a change takes an item: a status, or out of existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Status(Status),
    Deleted,
}

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            To::Status(s) => s.fmt(f),
            To::Deleted => f.write_str("deleted"),
        }
    }
}

/// SPEC §3's transition table. Same-status moves are never transitions.
pub fn transition_allowed(from: Status, to: To, actor: Actor) -> bool {
    use Actor::*;
    use Status::*;
    match (from, to) {
        (Queued, To::Status(Processing)) => actor == System,
        (Queued, To::Status(OnHold | Processed)) | (Queued, To::Deleted) => actor == Human,
        (Processing, To::Status(Processed | Exception)) => actor == LeaseHolder || actor == System,
        // An automatic retry of an IT exception or a lease timeout.
        (Processing, To::Status(Queued)) => actor == System,
        (Processing, To::Status(OnHold)) => actor == Human,
        (Exception, To::Status(Queued)) => actor == Human || actor == System,
        (Exception, To::Status(OnHold | Processed)) | (Exception, To::Deleted) => actor == Human,
        (OnHold, To::Status(Queued | Processed)) | (OnHold, To::Deleted) => actor == Human,
        (Processed, To::Status(Queued | OnHold)) | (Processed, To::Deleted) => actor == Human,
        _ => false,
    }
}

/// The message for a refused transition: it names both ends.
pub fn refusal(id: &str, from: Status, to: To) -> String {
    let allowed: Vec<String> = Status::ALL
        .iter()
        .map(|s| To::Status(*s))
        .chain([To::Deleted])
        .filter(|t| transition_allowed(from, *t, Actor::Human))
        .map(|t| t.to_string())
        .collect();
    let hint = if from == Status::Processing {
        " (a worker holds it: hold it first)".to_string()
    } else if allowed.is_empty() {
        String::new()
    } else {
        format!(" (from {from} a person may go to: {})", allowed.join(", "))
    };
    format!("item {id}: cannot go from {from} to {to}{hint}")
}

/// Where a human action takes an item, or `None` when it keeps its status.
pub fn action_target(action: &ActionKind) -> Option<To> {
    match action {
        ActionKind::Requeue { .. } | ActionKind::Release => Some(To::Status(Status::Queued)),
        ActionKind::Hold => Some(To::Status(Status::OnHold)),
        ActionKind::Processed => Some(To::Status(Status::Processed)),
        ActionKind::Delete => Some(To::Deleted),
        ActionKind::SetPriority { .. } | ActionKind::ExtendExpiry { .. } | ActionKind::AddNote => {
            None
        }
    }
}

/// Whether a human action may apply to an item in `from`; `Err` is the refusal message.
pub fn check_action(id: &str, from: Status, action: &ActionKind) -> Result<(), String> {
    match (action, action_target(action)) {
        // Release means "off hold" and nothing else.
        (ActionKind::Release, _) if from != Status::OnHold => Err(format!(
            "item {id}: cannot release an item that is {from} (only on-hold items are released)"
        )),
        (_, Some(to)) if !transition_allowed(from, to, Actor::Human) => Err(refusal(id, from, to)),
        _ => Ok(()),
    }
}

/// Whether a human action fits a set of items that can be in any of `statuses` (an inbox
/// row): the rules allow it from every one of them, and an expiry change only fits where
/// expiry matters (queued items). An action that does not fit is not offered.
pub fn action_fits(statuses: &[Status], action: &ActionKind) -> bool {
    let allowed = statuses
        .iter()
        .all(|st| check_action("-", *st, action).is_ok());
    let matters = match action {
        ActionKind::ExtendExpiry { .. } => statuses.contains(&Status::Queued),
        _ => true,
    };
    !statuses.is_empty() && allowed && matters
}

/// What happens after a failure: back to the queue for another try, or stay an exception.
pub fn retries_again(reason: Reason, retry_count: u32, max_retries: u32) -> bool {
    matches!(reason, Reason::It | Reason::Timeout) && retry_count < max_retries
}

/// The at-risk threshold of an SLA target, in milliseconds.
pub fn risk_ms(sla_ms: i64, risk_pct: u8) -> i64 {
    sla_ms.saturating_mul(risk_pct as i64) / 100
}

/// SLA status of one item: `in` below the at-risk threshold, `at-risk` up to and including
/// the target, `out` past it; finished items record `met` or `missed`.
pub fn item_sla(
    sla: Option<Duration>,
    risk_pct: u8,
    status: Status,
    enqueued_at: Time,
    finished_at: Option<Time>,
    now: Time,
) -> Option<Sla> {
    let sla_ms = sla?.as_millis() as i64;
    if status == Status::Processed {
        let took = (finished_at.unwrap_or(now) - enqueued_at).num_milliseconds();
        return Some(if took <= sla_ms {
            Sla::Met
        } else {
            Sla::Missed
        });
    }
    let elapsed = (now - enqueued_at).num_milliseconds();
    Some(if elapsed > sla_ms {
        Sla::Out
    } else if elapsed >= risk_ms(sla_ms, risk_pct) {
        Sla::AtRisk
    } else {
        Sla::In
    })
}

/// A queued item past its expiry is expired (SPEC §3): shown as such, never dequeued.
pub fn is_expired(status: Status, expires_at: Option<Time>, now: Time) -> bool {
    status == Status::Queued && expires_at.is_some_and(|e| e <= now)
}

/// The next instant of a daily "HH:MM" deadline in a time zone, after `now`.
pub fn next_deadline(deadline: &str, tz: &str, now: Time) -> Result<Time, String> {
    let time = parse_hhmm(deadline)?;
    let zone: chrono_tz::Tz = tz
        .parse()
        .map_err(|_| format!("unknown time zone '{tz}' (use an IANA name like Europe/Berlin)"))?;
    let local_today = now.with_timezone(&zone).date_naive();
    for days in 0..3 {
        let date = local_today + ChronoDuration::days(days);
        // A deadline inside a DST gap falls to the first valid instant after it.
        if let Some(t) = zone
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&chrono::Utc))
        {
            if t > now {
                return Ok(t);
            }
        }
    }
    Err(format!("deadline '{deadline}' never comes in {tz}"))
}

/// When the backlog empties at the current throughput, and how that stands to the deadline.
pub fn project(deadline: Time, backlog: u64, per_min: f64, now: Time) -> Projection {
    let drains_at = if backlog == 0 {
        Some(now)
    } else if per_min > 0.0 {
        let ms = (backlog as f64 / per_min * 60_000.0).min(1e15) as i64;
        Some(now + ChronoDuration::milliseconds(ms))
    } else {
        None
    };
    Projection {
        deadline,
        drains_at,
        margin_secs: drains_at.map(|d| (deadline - d).num_seconds()),
    }
}

pub fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("bad time of day '{s}' (expected HH:MM, e.g. 23:00)"))
}

pub fn check_tz(tz: &str) -> Result<(), String> {
    tz.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| format!("unknown time zone '{tz}' (use an IANA name like Europe/Berlin)"))
}

/// Exception signature: the note with what varies between items masked, so that
/// "Vendor 'Contoso' not found" and "Vendor 'Fabrikam' not found" are one group.
/// Masked: quoted text, e-mail addresses, and any word holding a digit (numbers, ids,
/// dates, times, amounts). Runs of masks fold into one `*`.
pub fn signature(note: &str) -> String {
    static QUOTED: OnceLock<regex::Regex> = OnceLock::new();
    let quoted = QUOTED.get_or_init(|| {
        regex::Regex::new(r#""[^"]*"|'[^'\s][^']*'|“[^”]*”|‘[^’]*’|`[^`]*`"#).unwrap()
    });
    let unquoted = quoted.replace_all(note, "*");
    let mut out: Vec<String> = Vec::new();
    for word in unquoted.split_whitespace() {
        let lead = word.len() - word.trim_start_matches(['(', '[', '{', '<']).len();
        let core_end = word
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '>'])
            .len();
        let (head, rest) = word.split_at(lead);
        let (core, tail) = rest.split_at(core_end.saturating_sub(lead));
        let masked = core.contains('*')
            || core.chars().any(|c| c.is_ascii_digit())
            || (core.contains('@') && core.contains('.'));
        let piece = if masked {
            format!("{head}*{tail}")
        } else {
            word.to_string()
        };
        // Fold "* *" (a date and a time, an amount and its currency) into one mask.
        if piece == "*" && out.last().is_some_and(|p| p == "*") {
            continue;
        }
        out.push(piece);
    }
    let mut sig = out.join(" ");
    if sig.chars().count() > 200 {
        sig = sig.chars().take(200).collect();
    }
    sig
}

/// The longest duration anything takes: past it, times overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Checks a duration from any source (CLI, API, library) against `MAX_DURATION`.
pub fn check_duration(what: &str, d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        return Err(format!("{what} is too long (at most 100 years)"));
    }
    Ok(())
}

/// Parses `30m`, `5h`, `7d`, `90s`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (expected e.g. 30s, 30m, 5h, 7d)".into());
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("bad duration '{s}': {e} (expected e.g. 30s, 30m, 5h, 7d)"))?;
    check_duration(&format!("duration '{s}'"), d)?;
    Ok(d)
}

/// How far from now an extended expiry lies: a duration longer than 0, like a TTL (an
/// expiry of "now" would expire the items it was meant to keep).
pub fn parse_extension(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "expire in '{}': must be longer than 0 (e.g. 2h, 7d, or 'never')",
            s.trim()
        ));
    }
    Ok(d)
}

/// Compact human form: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if days > 0 && hours > 0 => format!("{days}d {hours}h"),
        _ if days > 0 => format!("{days}d"),
        _ if hours > 0 && mins > 0 => format!("{hours}h {mins}m"),
        _ if hours > 0 => format!("{hours}h"),
        _ if mins > 0 && secs > 0 && mins < 10 => format!("{mins}m {secs}s"),
        _ if mins > 0 => format!("{mins}m"),
        _ if s == 0 && d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        _ => format!("{secs}s"),
    }
}

/// Parses an absolute time: RFC 3339 (`2026-11-22T23:00:00Z`), or a local
/// `YYYY-MM-DD HH:MM[:SS]` / `YYYY-MM-DDTHH:MM[:SS]`, or a local date (midnight).
pub fn parse_time(s: &str) -> Result<Time, String> {
    let t = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&chrono::Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN))
    });
    match naive {
        Some(n) => Local
            .from_local_datetime(&n)
            .earliest()
            .map(|l| l.with_timezone(&chrono::Utc))
            .ok_or_else(|| format!("time '{s}' does not exist in the local time zone")),
        None => Err(format!(
            "bad time '{s}' (expected RFC 3339 like 2026-11-22T23:00:00Z, or YYYY-MM-DD HH:MM)"
        )),
    }
}

/// Checks a queue name: what humans type, so it must be printable and short.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(format!(
            "queue name must be 1–{MAX_NAME_CHARS} characters, got {n}"
        ));
    }
    if name.chars().any(|c| c.is_control()) || name.trim() != name {
        return Err(format!(
            "queue name '{}' has control characters or leading/trailing spaces",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Queue settings that can be unset ("none": never expire, no SLA, no deadline, no limit).
pub const CLEARABLE: &[&str] = &["ttl", "sla", "deadline", "concurrency"];

/// Checks the settings of a queue create or update.
pub fn check_settings(s: &QueueSettings) -> Result<(), String> {
    if let Some(p) = s.sla_risk_pct {
        if !(1..=100).contains(&p) {
            return Err(format!("SLA at-risk % must be 1–100, got {p}"));
        }
    }
    if let Some(d) = &s.deadline {
        parse_hhmm(d)?;
    }
    if let Some(tz) = &s.tz {
        check_tz(tz)?;
    }
    if s.concurrency == Some(0) {
        return Err("concurrency limit must be at least 1 (leave it out for no limit)".into());
    }
    if s.lease.is_some_and(|l| l < Duration::from_secs(1)) {
        return Err("lease timeout must be at least 1s".into());
    }
    for (what, d) in [
        ("TTL", s.ttl),
        ("SLA target", s.sla),
        ("lease timeout", s.lease),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(format!("{what} must be longer than 0"));
        }
        if let Some(d) = d {
            check_duration(what, d)?;
        }
    }
    for field in &s.clear {
        if !CLEARABLE.contains(&field.as_str()) {
            return Err(format!(
                "cannot clear '{field}' (clearable: {})",
                CLEARABLE.join(", ")
            ));
        }
    }
    Ok(())
}

/// Checks an item before it is stored; `Err` names the field.
pub fn check_new_item(item: &NewItem) -> Result<(), (&'static str, String)> {
    if item.value.len() > MAX_VALUE_BYTES {
        return Err((
            "value",
            format!(
                "value is {} bytes, over the limit of {} bytes (1 MiB)",
                item.value.len(),
                MAX_VALUE_BYTES
            ),
        ));
    }
    for (field, v) in [("name", &item.name), ("key", &item.key)] {
        if let Some(v) = v {
            let n = v.chars().count();
            if n > MAX_NAME_CHARS {
                return Err((
                    field,
                    format!("{field} is {n} characters, over the limit of {MAX_NAME_CHARS}"),
                ));
            }
        }
    }
    if let Some(d) = item.expires_in {
        check_duration("expires_in", d).map_err(|m| ("expires_in", m))?;
    }
    if item.expires_at.is_some() && item.expires_in.is_some() {
        return Err((
            "expires_at",
            "give expires_at or expires_in, not both".to_string(),
        ));
    }
    Ok(())
}
