//! The rules of workq, in one place and free of storage: which transitions are allowed,
//! SLA maths, retry policy, exception signatures, and the parsing of durations and times.
//! Every store calls these, so SQLite, PostgreSQL and anything later cannot disagree.

pub use crate::model::To;
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

/// SPEC §3's transition table. Same-status moves are never transitions.
pub fn transition_allowed(from: Status, to: To, actor: Actor) -> bool {
    use Actor::*;
    use Status::*;
    match (from, to) {
        (Queued, To::Status(Processing)) => actor == System,
        (Queued, To::Status(OnHold | Processed)) | (Queued, To::Deleted) => actor == Human,
        (Processing, To::Status(Processed | Exception)) => actor == LeaseHolder || actor == System,
        // An automatic retry of an IT exception or a lease timeout (system), or a lease
        // handed back unworked by its holder (output lost, shutting down).
        (Processing, To::Status(Queued)) => actor == System || actor == LeaseHolder,
        (Processing, To::Status(OnHold)) => actor == Human,
        (Exception, To::Status(Queued)) => actor == Human || actor == System,
        (Exception, To::Status(OnHold | Processed)) | (Exception, To::Deleted) => actor == Human,
        (OnHold, To::Status(Queued | Processed)) | (OnHold, To::Deleted) => actor == Human,
        (Processed, To::Status(Queued | OnHold)) | (Processed, To::Deleted) => actor == Human,
        _ => false,
    }
}

/// A refused transition: it names both ends.
pub fn refusal(id: &str, action: &str, from: Status, to: To) -> crate::error::Error {
    crate::error::Error::refused_one(
        action,
        crate::error::Refused {
            id: id.to_string(),
            from,
            to: Some(to),
            why: refusal_why(from, to),
        },
    )
}

/// Why a person may not take an item from `from` to `to`, without naming the item.
fn refusal_why(from: Status, to: To) -> String {
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
    format!("cannot go from {from} to {to}{hint}")
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
    match refusal_reason(from, action) {
        Some(why) => Err(format!("item {id}: {why}")),
        None => Ok(()),
    }
}

/// Why an action is refused for every item in `from` (`None`: it is allowed). It depends on
/// the status alone, so a preview counts refusals per status without reading items.
pub fn refusal_reason(from: Status, action: &ActionKind) -> Option<String> {
    match (action, action_target(action)) {
        // Release means "off hold" and nothing else.
        (ActionKind::Release, _) if from != Status::OnHold => Some(format!(
            "cannot release an item that is {from} (only on-hold items are released)"
        )),
        // Already in the queue: what keeps an expired one from being taken is its expiry.
        (ActionKind::Requeue { .. }, _) if from == Status::Queued => Some(
            "cannot go from queued to queued (it is in the queue already; \
             an expired one needs a new expiry: extend it)"
                .into(),
        ),
        (_, Some(to)) if !transition_allowed(from, to, Actor::Human) => Some(refusal_why(from, to)),
        _ => None,
    }
}

/// Why a dequeue took nothing, from each queue's reason. The overall reason is the one
/// closest to "there is work": `nothing_ready` when any queue could give but had nothing,
/// else `concurrency_limit` when any is full (work comes as slots free up), else `paused`.
pub fn why_empty(queues: Vec<QueueEmpty>) -> WhyEmpty {
    let any = |r: EmptyReason| queues.iter().any(|q| q.reason == r);
    let reason = if queues.is_empty() || any(EmptyReason::NothingReady) {
        EmptyReason::NothingReady
    } else if any(EmptyReason::ConcurrencyLimit) {
        EmptyReason::ConcurrencyLimit
    } else {
        EmptyReason::Paused
    };
    let message = if queues.is_empty() {
        "no queued item is ready".to_string()
    } else {
        queues
            .iter()
            .map(|q| q.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    WhyEmpty {
        reason,
        message,
        queues,
    }
}

// ---------------------------------------------------------------- what actions change

/// The parts of an item a human action changes. Undo puts parts back, never a whole row, so
/// it cannot undo what a worker or another person did since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Status and what belongs to it: reason, exception signature, finished time.
    Status,
    /// A worker's lease (token and deadline): ended by a hold, never given back by undo.
    Lease,
    /// The item's input (a requeue with an edited value).
    Value,
    Priority,
    /// `expires_at`: set by extend; a requeue clears one that has passed.
    Expiry,
    /// `delay_until`: set by a requeue with delay, cleared by release.
    Delay,
    RequeueCount,
    /// The note the action appended (other notes are never touched).
    Note,
    /// The item itself: delete, and the undo that brings it back.
    Existence,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Status => "status",
            Part::Lease => "lease",
            Part::Value => "value",
            Part::Priority => "priority",
            Part::Expiry => "expiry",
            Part::Delay => "delay",
            Part::RequeueCount => "requeue count",
            Part::Note => "note",
            Part::Existence => "existence",
        }
    }
}

/// When an undo may put an item's parts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoWhen {
    /// Nothing at all happened to the item since the action (its version is the one the
    /// action left): a status undone after a worker took the item would lose that work.
    Untouched,
    /// The parts the action changed still hold what it wrote; anything else (a worker's
    /// heartbeat, a bot's note, the item moving on) is left as it is.
    PartsAsLeft,
    /// The item is still deleted and no newer item took its key.
    StillDeleted,
}

/// One row of the action table: what a human action changes, and what its undo restores.
#[derive(Debug)]
pub struct ActionRule {
    pub verb: &'static str,
    /// Every part the action may change (at most these; a note only when one is given).
    pub changes: &'static [Part],
    /// What the undo puts back: a subset of `changes`, never the lease.
    pub undo_restores: &'static [Part],
    pub undo_when: UndoWhen,
}

/// What each human action changes and what its undo restores (SPEC §7). The stores apply
/// this table; `undo_step` adds the one rule that overrides it (a worker's item).
pub const ACTION_RULES: &[ActionRule] = {
    use Part::*;
    use UndoWhen::*;
    &[
        ActionRule {
            verb: "requeue",
            changes: &[Status, Delay, Value, Expiry, RequeueCount, Note],
            undo_restores: &[Status, Delay, Value, Expiry, RequeueCount, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "hold",
            changes: &[Status, Lease, Note],
            undo_restores: &[Status, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "release",
            changes: &[Status, Delay, Note],
            undo_restores: &[Status, Delay, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "processed",
            changes: &[Status, Note],
            undo_restores: &[Status, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "delete",
            changes: &[Existence],
            undo_restores: &[Existence],
            undo_when: StillDeleted,
        },
        ActionRule {
            verb: "priority",
            changes: &[Priority, Note],
            undo_restores: &[Priority, Note],
            undo_when: PartsAsLeft,
        },
        ActionRule {
            verb: "extend-expiry",
            changes: &[Expiry, Note],
            undo_restores: &[Expiry, Note],
            undo_when: PartsAsLeft,
        },
        ActionRule {
            verb: "note",
            changes: &[Note],
            undo_restores: &[Note],
            undo_when: PartsAsLeft,
        },
    ]
};

/// The table row of an action, by its verb (`ActionKind::verb`).
pub fn action_rule(verb: &str) -> Option<&'static ActionRule> {
    ACTION_RULES.iter().find(|r| r.verb == verb)
}

/// What undo does with one item of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoStep {
    /// Put these parts back from before the action.
    Restore(&'static [Part]),
    /// Leave the item as it is, for this reason.
    Keep(Kept),
}

/// Why undo leaves an item as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// The item moved on since the action; it is now in this status (`None`: deleted).
    ChangedSince(Option<Status>),
    /// A part the action changed was changed again since (another person's priority).
    PartChanged(Part),
    /// Still where the action left it, but changed since (a note, a new priority).
    Edited(Status),
    /// A worker was processing it when the action took it: that worker was stopped, so
    /// neither processing nor the queue is safe to go back to.
    WasProcessing,
    /// A worker holds it now.
    Processing,
    /// A deleted item cannot come back: its queue was deleted since.
    QueueDeleted,
    /// A deleted item cannot come back: a newer item took its key.
    KeyTaken(String),
}

impl Kept {
    /// "processed", "on hold", "deleted": how an item moved on, for "21 changed since: …".
    pub fn why(&self) -> String {
        match self {
            Kept::ChangedSince(Some(Status::Processing)) | Kept::Processing => {
                "being processed".into()
            }
            Kept::ChangedSince(Some(Status::OnHold)) => "on hold".into(),
            Kept::ChangedSince(Some(Status::Queued)) => "queued".into(),
            Kept::ChangedSince(Some(Status::Exception)) => "failed".into(),
            Kept::ChangedSince(Some(s)) => s.to_string(),
            Kept::ChangedSince(None) => "deleted".into(),
            Kept::PartChanged(p) => format!("{} changed", p.as_str()),
            Kept::Edited(s) => format!("edited, still {}", Kept::ChangedSince(Some(*s)).why()),
            Kept::WasProcessing => {
                "held while a worker processed it: its lease is gone (release it to queue it again)"
                    .into()
            }
            Kept::QueueDeleted => "its queue was deleted".into(),
            Kept::KeyTaken(key) => format!("its key '{key}' is taken by a newer item"),
        }
    }
    /// The same for one named item: "processed since", "a worker holds it now".
    pub fn item_why(&self) -> String {
        match self {
            Kept::ChangedSince(Some(Status::Processing)) | Kept::Processing => {
                "a worker holds it now".into()
            }
            Kept::Edited(s) => {
                format!("edited since, still {}", Kept::ChangedSince(Some(*s)).why())
            }
            k if k.changed_since() => format!("{} since", k.why()),
            k => k.why(),
        }
    }
    /// Whether the item moved on since the action (rather than being kept for safety).
    pub fn changed_since(&self) -> bool {
        matches!(
            self,
            Kept::ChangedSince(_) | Kept::PartChanged(_) | Kept::Edited(_)
        )
    }
}

/// What undo does with one item. `was`: its status before the action; `now`: its status now
/// (`None`: deleted); `as_left`: whether it passes the rule's `undo_when`, as the store
/// found, or why not.
///
/// Undo never takes an item out of a worker's hands: it never gives a lease back, never
/// moves an item a worker holds now, and never moves one a worker held when the action ran.
pub fn undo_step(
    rule: &ActionRule,
    was: Option<Status>,
    now: Option<Status>,
    as_left: Result<(), Kept>,
) -> UndoStep {
    if let Err(k) = as_left {
        return UndoStep::Keep(k);
    }
    if rule.undo_restores.contains(&Part::Status) {
        if now == Some(Status::Processing) {
            return UndoStep::Keep(Kept::Processing);
        }
        if was == Some(Status::Processing) {
            return UndoStep::Keep(Kept::WasProcessing);
        }
    }
    UndoStep::Restore(rule.undo_restores)
}

/// Past this many items, a person types the count to confirm an action (k9s-style).
pub const TYPE_THE_COUNT_OVER: u64 = 1000;

/// Parses `exception,on-hold`: several statuses for one filter; `Err` names the bad one.
pub fn parse_statuses(s: &str) -> Result<Vec<Status>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if part.trim().is_empty() {
            return Err(format!(
                "empty status in '{s}' (expected e.g. exception,on-hold)"
            ));
        }
        let st: Status = part.parse()?;
        if !out.contains(&st) {
            out.push(st);
        }
    }
    Ok(out)
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
/// the target, `out` past it; finished items record `met` or `missed`. An expired item
/// (`is_expired`) is `out` whatever its age, and even in a queue without an SLA target:
/// SPEC §3 counts it as an SLA violation.
pub fn item_sla(
    sla: Option<Duration>,
    risk_pct: u8,
    status: Status,
    enqueued_at: Time,
    finished_at: Option<Time>,
    expired: bool,
    now: Time,
) -> Option<Sla> {
    if expired {
        return Some(Sla::Out);
    }
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

/// A daily "HH:MM" deadline on one local date of a zone; a deadline inside a DST gap falls
/// to the first valid instant after it.
fn deadline_on(time: NaiveTime, zone: chrono_tz::Tz, date: NaiveDate) -> Option<Time> {
    zone.from_local_datetime(&date.and_time(time))
        .earliest()
        .or_else(|| {
            // In a gap: the same wall time an hour on is the first that exists.
            zone.from_local_datetime(&(date.and_time(time) + ChronoDuration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn zone_of(tz: &str) -> Result<chrono_tz::Tz, String> {
    tz.parse()
        .map_err(|_| format!("unknown time zone '{tz}' (use an IANA name like Europe/Berlin)"))
}

/// The next instant of a daily "HH:MM" deadline in a time zone, after `now`.
pub fn next_deadline(deadline: &str, tz: &str, now: Time) -> Result<Time, String> {
    let time = parse_hhmm(deadline)?;
    let zone = zone_of(tz)?;
    let local_today = now.with_timezone(&zone).date_naive();
    (0..3)
        .filter_map(|days| deadline_on(time, zone, local_today + ChronoDuration::days(days)))
        .find(|t| *t > now)
        .ok_or_else(|| format!("deadline '{deadline}' never comes in {tz}"))
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
        backlog,
        missed: false,
        stalled: (drains_at.is_none()).then_some(Stall::NoThroughput),
    }
}

/// A worker counts as live on a queue while it holds an unexpired lease there, or finished
/// an item there this recently.
pub const LIVE_WORKER_SECS: i64 = 120;

/// What `deadline_status` needs to know of a queue at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineFacts<'a> {
    pub deadline: &'a str,
    pub tz: &'a str,
    /// Queued plus processing.
    pub backlog: u64,
    /// Enqueue time of the oldest queued item.
    pub oldest_queued: Option<Time>,
    pub per_min: f64,
    pub paused: bool,
    /// Items of the queue under a lease that has not run out.
    pub live_leases: u64,
    /// When an attempt on the queue last finished (to the minute is enough).
    pub last_finished: Option<Time>,
}

/// Where a queue stands to its daily deadline (SPEC §5):
/// - today's deadline passed with backlog from before it left: `missed`, by how long,
///   and how much is left — never silently tomorrow's projection;
/// - otherwise the next deadline, with a drain time at the current throughput, unless the
///   queue is paused or no worker is live on it (`stalled`: no drain time is made up).
pub fn deadline_status(f: &DeadlineFacts, now: Time) -> Result<Projection, String> {
    let time = parse_hhmm(f.deadline)?;
    let zone = zone_of(f.tz)?;
    let today = deadline_on(time, zone, now.with_timezone(&zone).date_naive());
    let stalled = if f.backlog == 0 {
        None
    } else if f.paused {
        Some(Stall::Paused)
    } else if f.live_leases == 0
        && f.last_finished
            .is_none_or(|t| (now - t).num_seconds() > LIVE_WORKER_SECS)
    {
        Some(Stall::NoWorkers)
    } else if f.per_min <= 0.0 {
        Some(Stall::NoThroughput)
    } else {
        None
    };
    if let Some(passed) = today.filter(|t| *t <= now) {
        // Work that arrived after the deadline is the next deadline's, not a miss of this one.
        let from_before = f.oldest_queued.is_none_or(|o| o < passed);
        if f.backlog > 0 && from_before {
            return Ok(Projection {
                deadline: passed,
                drains_at: None,
                margin_secs: Some(-(now - passed).num_seconds()),
                backlog: f.backlog,
                missed: true,
                stalled,
            });
        }
    }
    let next = next_deadline(f.deadline, f.tz, now)?;
    let mut p = project(next, f.backlog, f.per_min, now);
    if stalled.is_some() {
        p.drains_at = None;
        p.margin_secs = None;
        p.stalled = stalled;
    }
    Ok(p)
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

/// The units a duration is written in, largest first, in milliseconds. Months and years
/// are refused: their length varies, and `5M` read as five months by a tool that meant
/// minutes is a silent disaster.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

const DURATION_HINT: &str = "expected e.g. 30s, 30m, 5h, 7d or 1h30m";

/// Parses `30s`, `30m`, `5h`, `7d` and compounds like `1h30m` or `2d 4h` (what
/// `format_duration` prints reads back). Units are lower-case d, h, m, s (and ms for the
/// odd short wait); nothing else.
/// CLI and console both parse here, so they accept the same words.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration ({DURATION_HINT})"));
    }
    let bad = |why: String| Err(format!("bad duration '{s}': {why}"));
    if t.starts_with('-') {
        return bad("a duration cannot be negative".into());
    }
    let mut total: u64 = 0;
    let mut last_rank: Option<usize> = None;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return bad(format!(
                "'{rest}' does not start with a number ({DURATION_HINT})"
            ));
        }
        let (num, after) = rest.split_at(digits);
        // "5 m" reads like "5m"; the unit is what follows the number.
        let after = if after.trim_start().starts_with(|c: char| c.is_alphabetic()) {
            after.trim_start()
        } else {
            after
        };
        let unit_len = after.len() - after.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let (unit, after) = after.split_at(unit_len);
        if after.starts_with(['.', ',']) {
            return bad("write whole units, like 1h30m for one and a half hours".into());
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad duration '{s}': {num} is too large"))?;
        let rank = match unit {
            "" => return bad(format!("{num} has no unit ({DURATION_HINT})")),
            u => match DURATION_UNITS.iter().position(|(name, _)| *name == u) {
                Some(r) => r,
                None => return bad(unit_hint(num, u)),
            },
        };
        if last_rank.is_some_and(|l| rank <= l) {
            return bad(format!(
                "units go from largest to smallest, each once ({DURATION_HINT})"
            ));
        }
        last_rank = Some(rank);
        total = n
            .checked_mul(DURATION_UNITS[rank].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration '{s}' is too long (at most 100 years)"))?;
        rest = after.trim_start();
    }
    let d = Duration::from_millis(total);
    check_duration(&format!("duration '{s}'"), d)?;
    Ok(d)
}

/// Why a unit is refused, and what to write instead.
fn unit_hint(num: &str, unit: &str) -> String {
    let lower = unit.to_lowercase();
    match lower.as_str() {
        "mo" | "mon" | "month" | "months" | "y" | "yr" | "year" | "years" => format!(
            "months and years are not accepted (their length varies): write days, e.g. {}d",
            if lower.starts_with('y') { "365" } else { "30" }
        ),
        "w" | "wk" | "week" | "weeks" => format!(
            "weeks are not accepted: write days, e.g. {}d",
            num.parse::<u64>().map(|n| n.saturating_mul(7)).unwrap_or(7)
        ),
        "us" | "µs" | "ns" => "the smallest unit is ms".to_string(),
        _ if DURATION_UNITS.iter().any(|(name, _)| *name == lower) => {
            format!(
                "units are lower-case d, h, m, s, ms: did you mean {num}{lower}?{}",
                if unit == "M" {
                    " (months are not accepted)"
                } else {
                    ""
                }
            )
        }
        "sec" | "secs" | "second" | "seconds" => format!("write {num}s"),
        "min" | "mins" | "minute" | "minutes" => format!("write {num}m"),
        "hr" | "hrs" | "hour" | "hours" => format!("write {num}h"),
        "day" | "days" => format!("write {num}d"),
        _ => format!("unknown unit '{unit}' (units: d, h, m, s, ms; {DURATION_HINT})"),
    }
}

/// The exact form, every unit down to the millisecond and no spaces: `2d4h30m`, `90s`,
/// `1500ms` → `1s500ms`. For text that is edited and read back (the console's settings
/// line), where the rounded `format_duration` would change a setting nobody touched.
pub fn exact_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
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

/// Checks a filter from any source (CLI, console, API) before it reaches a store.
pub fn check_filter(f: &Filter) -> Result<(), String> {
    if let Some(text) = &f.search {
        let n = text.chars().count();
        if n > MAX_SEARCH_CHARS {
            return Err(format!(
                "search text is {n} characters, over the limit of {MAX_SEARCH_CHARS}"
            ));
        }
    }
    Ok(())
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
    settings_problem(s).map_or(Ok(()), |(_, m)| Err(m))
}

/// What is wrong with queue settings, if anything: the setting (as `QueueSettings` names
/// it) and why.
pub fn settings_problem(s: &QueueSettings) -> Option<(&'static str, String)> {
    let check = || -> Result<(), (&'static str, String)> {
        if let Some(p) = s.sla_risk_pct {
            if !(1..=100).contains(&p) {
                return Err((
                    "sla_risk_pct",
                    format!("SLA at-risk % must be 1–100, got {p}"),
                ));
            }
        }
        if let Some(d) = &s.deadline {
            parse_hhmm(d).map_err(|m| ("deadline", m))?;
        }
        if let Some(tz) = &s.tz {
            check_tz(tz).map_err(|m| ("tz", m))?;
        }
        if s.concurrency == Some(0) {
            return Err((
                "concurrency",
                "concurrency limit must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        if s.lease.is_some_and(|l| l < Duration::from_secs(1)) {
            return Err(("lease", "lease timeout must be at least 1s".into()));
        }
        for (field, what, d) in [
            ("ttl", "TTL", s.ttl),
            ("sla", "SLA target", s.sla),
            ("lease", "lease timeout", s.lease),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err((field, format!("{what} must be longer than 0")));
            }
            if let Some(d) = d {
                check_duration(what, d).map_err(|m| (field, m))?;
            }
        }
        for field in &s.clear {
            if !CLEARABLE.contains(&field.as_str()) {
                return Err((
                    "clear",
                    format!(
                        "cannot clear '{field}' (clearable: {})",
                        CLEARABLE.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    };
    check().err()
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
