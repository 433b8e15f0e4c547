//! The rules of workq, in one place and free of storage: the state machine (what each
//! actor may do to an item and what it changes), the conditions stores filter by (expiry,
//! SLA, leases), retry policy and backoff, exception signatures, and the parsing of
//! durations and times. Every store applies these, so SQLite, PostgreSQL and anything later
//! cannot disagree.
//!
//! How a store uses the state machine: it loads an item's `ItemState`, asks the rules
//! whether an event or action may happen (`lease_holder`, `refusal_reason`), lets them
//! change the state (`apply`, `fail`, `act`), and writes the state back with a history row
//! per `Step`. Where a store must change items in SQL (the dequeue's claim, a completion in
//! one statement), it generates the statement from the same `Transition` rows and renders
//! the same `Cond`itions, so the SQL cannot restate a rule differently.

use crate::error::{Conflict, Error, Refused};
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

// ---------------------------------------------------------------- the state machine

/// What happens to an item by a worker or by the engine. (A person's actions are
/// `ActionKind`s, in `ACTION_RULES`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemEvent {
    /// The engine leases a queued item to a worker.
    Dequeue,
    /// The lease holder extends its lease.
    Heartbeat,
    /// The lease holder reports the item processed.
    Complete,
    /// The lease holder reports an exception.
    Fail,
    /// The lease holder gives the item back unworked (its output was lost, it shuts down).
    HandBack,
    /// The lease holder postpones its item after an IT exception (`fail --retry-in`): back
    /// to the queue after the delay it asked for, without counting a retry.
    Postpone,
    /// A lease ran out without a heartbeat: a `timeout` exception.
    LeaseTimeout,
    /// An IT exception or a timeout goes back to the queue while the queue allows retries.
    Retry,
    /// A queued item's expiry passes. Expired is not a status (SPEC §3): the item stays
    /// queued and nothing is written; `EXPIRED` is what every read and the dequeue apply.
    Expire,
}

impl ItemEvent {
    pub const ALL: &'static [ItemEvent] = &[
        ItemEvent::Dequeue,
        ItemEvent::Heartbeat,
        ItemEvent::Complete,
        ItemEvent::Fail,
        ItemEvent::HandBack,
        ItemEvent::Postpone,
        ItemEvent::LeaseTimeout,
        ItemEvent::Retry,
        ItemEvent::Expire,
    ];
}

/// How a transition sets one part of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Keep,
    Clear,
    /// The time of the change.
    Now,
    /// What the caller brings (`Given`): the reported reason, the worker, a delay…
    Given,
    Increment,
    /// Cleared when it has passed (a requeue's expiry), else kept.
    ClearPassed,
}

/// What a transition does to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeasePut {
    Keep,
    /// A new token, valid for the queue's lease timeout from now.
    Grant,
    /// The same token, valid for the lease timeout from now.
    Extend,
    /// No lease any more.
    End,
}

/// What a transition writes besides the status. Every part an item's state machine
/// touches is here, so a transition that forgets one cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    pub reason: Put,
    /// The exception group: `Given` is the signature of the reported note.
    pub signature: Put,
    pub retry_count: Put,
    pub requeue_count: Put,
    pub priority: Put,
    pub started_at: Put,
    pub finished_at: Put,
    pub expires_at: Put,
    /// `Given`: now plus the given delay (none: cleared).
    pub delay_until: Put,
    /// Who holds or last held it.
    pub worker: Put,
    pub lease: LeasePut,
    /// The input; `Given` only when the caller brings one (the store writes it: a value is
    /// not part of `ItemState`).
    pub value: Put,
}

impl Writes {
    pub const NONE: Writes = Writes {
        reason: Put::Keep,
        signature: Put::Keep,
        retry_count: Put::Keep,
        requeue_count: Put::Keep,
        priority: Put::Keep,
        started_at: Put::Keep,
        finished_at: Put::Keep,
        expires_at: Put::Keep,
        delay_until: Put::Keep,
        worker: Put::Keep,
        lease: LeasePut::Keep,
        value: Put::Keep,
    };
}

/// How a finished attempt counts in throughput, handling time and error rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Processed,
    Failed,
}

/// One row of the state machine: who may make an event happen, from where to where, and
/// what it changes.
#[derive(Debug, PartialEq, Eq)]
pub struct Transition {
    pub event: ItemEvent,
    pub actor: Actor,
    pub from: Status,
    pub to: Status,
    pub writes: Writes,
    /// The history row it leaves (its `action`); `None`: none of its own (a dequeue is
    /// told by the row that ends the attempt; a heartbeat or an expiry is no history).
    pub history: Option<&'static str>,
    /// Whether the note reported with it joins the item's notes.
    pub appends_note: bool,
    /// The processing attempt it ends, as the queue's health counts it.
    pub attempt: Option<Attempt>,
}

/// Every worker and system transition (SPEC §3, §4). A person's moves are `ACTION_RULES`.
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        event: ItemEvent::Dequeue,
        actor: Actor::System,
        from: Status::Queued,
        to: Status::Processing,
        writes: Writes {
            started_at: Put::Now,
            worker: Put::Given,
            lease: LeasePut::Grant,
            // A delay that passed is done with.
            delay_until: Put::Clear,
            ..Writes::NONE
        },
        history: None,
        appends_note: false,
        attempt: None,
    },
    Transition {
        event: ItemEvent::Heartbeat,
        actor: Actor::LeaseHolder,
        from: Status::Processing,
        to: Status::Processing,
        writes: Writes {
            lease: LeasePut::Extend,
            ..Writes::NONE
        },
        history: None,
        appends_note: false,
        attempt: None,
    },
    Transition {
        event: ItemEvent::Complete,
        actor: Actor::LeaseHolder,
        from: Status::Processing,
        to: Status::Processed,
        writes: Writes {
            reason: Put::Clear,
            finished_at: Put::Now,
            lease: LeasePut::End,
            ..Writes::NONE
        },
        history: Some("complete"),
        appends_note: true,
        attempt: Some(Attempt::Processed),
    },
    Transition {
        event: ItemEvent::Fail,
        actor: Actor::LeaseHolder,
        from: Status::Processing,
        to: Status::Exception,
        writes: FAILURE,
        history: Some("fail"),
        appends_note: true,
        attempt: Some(Attempt::Failed),
    },
    Transition {
        event: ItemEvent::HandBack,
        actor: Actor::LeaseHolder,
        from: Status::Processing,
        to: Status::Queued,
        // Unworked: no retry counted, no attempt in the stats, nobody holds it.
        writes: Writes {
            started_at: Put::Clear,
            worker: Put::Clear,
            lease: LeasePut::End,
            ..Writes::NONE
        },
        history: Some("hand-back"),
        appends_note: false,
        attempt: None,
    },
    Transition {
        event: ItemEvent::Postpone,
        actor: Actor::LeaseHolder,
        from: Status::Processing,
        to: Status::Queued,
        // Like a hand-back, but after the delay the worker asked for and with its note: a
        // postponement (Power Automate's, UiPath's) is no failure, so no retry is counted
        // and the queue's max retries do not stop it.
        writes: Writes {
            started_at: Put::Clear,
            worker: Put::Clear,
            lease: LeasePut::End,
            delay_until: Put::Given,
            ..Writes::NONE
        },
        history: Some("postpone"),
        appends_note: true,
        attempt: None,
    },
    Transition {
        event: ItemEvent::LeaseTimeout,
        actor: Actor::System,
        from: Status::Processing,
        to: Status::Exception,
        writes: FAILURE,
        history: Some("fail"),
        appends_note: true,
        attempt: Some(Attempt::Failed),
    },
    Transition {
        event: ItemEvent::Retry,
        actor: Actor::System,
        from: Status::Exception,
        to: Status::Queued,
        writes: Writes {
            reason: Put::Clear,
            signature: Put::Clear,
            retry_count: Put::Increment,
            finished_at: Put::Clear,
            // The backoff (none: takeable at once).
            delay_until: Put::Given,
            ..Writes::NONE
        },
        history: Some("retry"),
        appends_note: false,
        attempt: None,
    },
    Transition {
        event: ItemEvent::Expire,
        actor: Actor::System,
        from: Status::Queued,
        to: Status::Queued,
        writes: Writes::NONE,
        history: None,
        appends_note: false,
        attempt: None,
    },
];

/// A failed attempt, reported or timed out: an exception with its reason and group.
const FAILURE: Writes = Writes {
    reason: Put::Given,
    signature: Put::Given,
    finished_at: Put::Now,
    lease: LeasePut::End,
    ..Writes::NONE
};

/// The row of an event (each event has exactly one).
pub fn transition(event: ItemEvent) -> &'static Transition {
    TRANSITIONS
        .iter()
        .find(|t| t.event == event)
        .expect("every event has a row in TRANSITIONS")
}

/// The parts of an item the state machine reads and writes, as every store keeps them
/// (times in milliseconds since the epoch). A store loads these, lets the rules change
/// them, and writes them back; the value and the notes stay with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub status: Status,
    pub reason: Option<Reason>,
    pub signature: Option<String>,
    pub retry_count: u32,
    pub requeue_count: u32,
    pub priority: Priority,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub delay_until: Option<i64>,
    pub worker: Option<String>,
    pub lease_token: Option<String>,
    pub lease_until: Option<i64>,
}

impl Default for ItemState {
    /// A new item: queued, normal priority, nothing else set.
    fn default() -> Self {
        ItemState {
            status: Status::Queued,
            reason: None,
            signature: None,
            retry_count: 0,
            requeue_count: 0,
            priority: Priority::Normal,
            started_at: None,
            finished_at: None,
            expires_at: None,
            delay_until: None,
            worker: None,
            lease_token: None,
            lease_until: None,
        }
    }
}

/// A new item as the rules start it (SPEC §2, §6): queued, or on hold when it is made for
/// review; its expiry as given (a time, or a duration from now), else the queue's default
/// TTL from now; not taken before its delay.
pub fn enqueue(it: &NewItem, ttl: Option<Duration>, now: i64) -> ItemState {
    let after = |d: Duration| now.saturating_add(ms_of(d));
    ItemState {
        status: if it.hold {
            Status::OnHold
        } else {
            Status::Queued
        },
        priority: it.priority,
        expires_at: it
            .expires_at
            .map(|t| t.timestamp_millis())
            .or_else(|| it.expires_in.map(after))
            .or_else(|| ttl.map(after)),
        delay_until: it.delay_until.map(|t| t.timestamp_millis()),
        ..ItemState::default()
    }
}

/// What the caller of a change brings: the values `Put::Given` and leases take.
#[derive(Debug, Clone, Default)]
pub struct Given<'a> {
    pub reason: Option<Reason>,
    /// The note reported with a failure: its signature is the exception's group.
    pub note: Option<&'a str>,
    pub worker: Option<&'a str>,
    /// The token of a lease being granted.
    pub lease_token: Option<&'a str>,
    /// How long a granted or extended lease lasts: the queue's lease timeout.
    pub lease: Duration,
    /// A requeue's delay or a retry's backoff (none: no delay).
    pub delay: Option<Duration>,
    pub priority: Option<Priority>,
    /// A new expiry (none: never expires).
    pub expires_at: Option<i64>,
}

fn ms_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A worker not heard from for this long is stale. Agents register every
/// `REGISTER_EVERY` and long-poll every second, so three missed registrations mean it is
/// gone (killed, hung or cut off), whatever state it last reported.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often `workq work` tells the engine it is alive, what it holds and how fast it goes.
pub const REGISTER_EVERY: Duration = Duration::from_secs(5);

/// A worker's state at `now`: what an agent last reported, or running for a scripted
/// worker, unless it has not been heard from for `STALE_AFTER`. A stopped agent stays
/// stopped: it said goodbye, it is not missing.
pub fn worker_state(reported: Option<WorkerState>, last_seen: Time, now: Time) -> WorkerState {
    let quiet = (now - last_seen).num_milliseconds() > ms_of(STALE_AFTER);
    match reported {
        Some(WorkerState::Stopped) => WorkerState::Stopped,
        _ if quiet => WorkerState::Stale,
        Some(s) => s,
        None => WorkerState::Running,
    }
}

/// When a lease granted or extended at `now` runs out.
pub fn lease_until(now: i64, lease: Duration) -> i64 {
    now.saturating_add(ms_of(lease))
}

/// The lease a grant or extension at `now` hands out: the queue's lease, cut so it never
/// runs past the attempt's hard end (`started_at + max_runtime`). `Err` with the max
/// runtime when that end has passed (past it, not at it: as `PastMaxRuntime`).
pub fn capped_lease(
    now: i64,
    lease: Duration,
    started_at: i64,
    max_runtime: Option<Duration>,
) -> Result<Duration, Duration> {
    let Some(max) = max_runtime else {
        return Ok(lease);
    };
    let end = started_at.saturating_add(ms_of(max));
    if end < now {
        return Err(max);
    }
    Ok(lease.min(Duration::from_millis((end - now) as u64)))
}

/// The history note of an item timed out at its queue's max runtime.
pub fn max_runtime_note(worker: Option<&str>, max_runtime: Duration) -> String {
    format!(
        "max runtime reached: {} still held it after {}",
        worker.unwrap_or("the worker"),
        format_duration(max_runtime)
    )
}

/// Takes an item to `to` and writes what `w` says, in place, at `now` (ms).
pub fn apply(s: &mut ItemState, to: Status, w: &Writes, g: &Given, now: i64) {
    fn time(put: Put, v: &mut Option<i64>, now: i64) {
        match put {
            Put::Clear => *v = None,
            Put::Now => *v = Some(now),
            Put::ClearPassed if v.is_some_and(|t| t <= now) => *v = None,
            _ => {}
        }
    }
    fn count(put: Put, v: &mut u32) {
        if put == Put::Increment {
            *v = v.saturating_add(1);
        }
    }
    s.status = to;
    match w.reason {
        Put::Clear => s.reason = None,
        Put::Given => s.reason = g.reason,
        _ => {}
    }
    match w.signature {
        Put::Clear => s.signature = None,
        Put::Given => s.signature = Some(signature(g.note.unwrap_or(""))),
        _ => {}
    }
    count(w.retry_count, &mut s.retry_count);
    count(w.requeue_count, &mut s.requeue_count);
    if let (Put::Given, Some(p)) = (w.priority, g.priority) {
        s.priority = p;
    }
    time(w.started_at, &mut s.started_at, now);
    time(w.finished_at, &mut s.finished_at, now);
    match w.expires_at {
        Put::Given => s.expires_at = g.expires_at,
        put => time(put, &mut s.expires_at, now),
    }
    match w.delay_until {
        Put::Given => s.delay_until = g.delay.map(|d| now.saturating_add(ms_of(d))),
        put => time(put, &mut s.delay_until, now),
    }
    match w.worker {
        Put::Clear => s.worker = None,
        Put::Given => s.worker = g.worker.map(str::to_string),
        _ => {}
    }
    match w.lease {
        LeasePut::Keep => {}
        LeasePut::Grant => {
            s.lease_token = g.lease_token.map(str::to_string);
            s.lease_until = Some(lease_until(now, g.lease));
        }
        LeasePut::Extend => s.lease_until = Some(lease_until(now, g.lease)),
        LeasePut::End => {
            s.lease_token = None;
            s.lease_until = None;
        }
    }
}

/// What a worker may do to the item `id` it reports on, in `status`, where `token_matches`
/// says whether its token is the item's current lease: the transition, or why not. The
/// fencing that makes a stale worker harmless.
pub fn lease_holder(
    event: ItemEvent,
    id: &str,
    status: Status,
    token_matches: bool,
) -> Result<&'static Transition, Error> {
    let t = transition(event);
    debug_assert_eq!(t.actor, Actor::LeaseHolder, "{event:?} is not a worker's");
    let id = id.to_string();
    match status {
        s if s == t.from && token_matches => Ok(t),
        Status::Processing => Err(Error::conflict(Conflict::StaleLease { id })),
        Status::OnHold => Err(Error::conflict(Conflict::OnHold { id })),
        status => Err(Error::conflict(Conflict::NotLeased { id, status })),
    }
}

/// One change an event made to an item, for its history: which transition, by whom (a
/// worker's events are its own, the system's are `system`), why and with what note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub transition: &'static Transition,
    pub reason: Option<Reason>,
    pub note: Option<String>,
}

/// A queue's retry policy (SPEC §1, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Option<Backoff>,
}

impl RetryPolicy {
    pub fn of(q: &Queue) -> RetryPolicy {
        RetryPolicy {
            max_retries: q.max_retries,
            backoff: q.retry_backoff,
        }
    }
}

/// What happens after a failure: back to the queue for another try, or stay an exception.
pub fn retries_again(reason: Reason, retry_count: u32, max_retries: u32) -> bool {
    matches!(reason, Reason::It | Reason::Timeout) && retry_count < max_retries
}

/// A failed attempt: `Fail` (reported by the lease holder) or `LeaseTimeout`, with its
/// reason and note. The item becomes an exception; if the policy has a retry left for the
/// reason, it goes back to the queue after its backoff (`jitter`: a draw in [0, 1) from the
/// store's jitter source). The steps are the history rows, in order: the failure is always
/// recorded, the retry after it.
pub fn fail(
    s: &mut ItemState,
    event: ItemEvent,
    reason: Reason,
    note: Option<&str>,
    policy: &RetryPolicy,
    now: i64,
    jitter: f64,
) -> Vec<Step> {
    debug_assert!(matches!(event, ItemEvent::Fail | ItemEvent::LeaseTimeout));
    let t = transition(event);
    let given = Given {
        reason: Some(reason),
        note,
        ..Default::default()
    };
    apply(s, t.to, &t.writes, &given, now);
    let mut steps = vec![Step {
        transition: t,
        reason: Some(reason),
        note: note.map(str::to_string),
    }];
    if retries_again(reason, s.retry_count, policy.max_retries) {
        let r = transition(ItemEvent::Retry);
        let delay = policy
            .backoff
            .map(|b| retry_delay(&b, s.retry_count + 1, jitter));
        let g = Given {
            delay,
            ..Default::default()
        };
        apply(s, r.to, &r.writes, &g, now);
        let mut text = format!(
            "automatic retry {} of {}",
            s.retry_count, policy.max_retries
        );
        if let Some(d) = delay {
            text.push_str(&format!(", after a backoff of {}", format_duration(d)));
        }
        steps.push(Step {
            transition: r,
            reason: Some(reason),
            note: Some(text),
        });
    }
    steps
}

/// Whether a worker may ask for `retry_in` with its outcome (`reason`: `None` processed):
/// only on an IT exception, and a delay `check_duration` accepts.
pub fn check_retry_in(reason: Option<Reason>, retry_in: Duration) -> Result<(), String> {
    match reason {
        Some(Reason::It) => {}
        None => return Err("retry_in is for an IT exception (reason it), not a processed outcome".into()),
        Some(r) => {
            return Err(format!(
                "retry_in is for an IT exception (reason it), not {r}: only an IT problem is worth trying again"
            ))
        }
    }
    if retry_in.is_zero() {
        return Err("retry_in must be more than 0 (to retry at once, fail with reason it)".into());
    }
    check_duration("retry_in", retry_in)
}

/// What `Backend::upcoming` refuses: an empty window, one past `check_duration`'s bound, or
/// a limit of 0 or above a page.
pub fn check_upcoming(within: Duration, limit: u32) -> Result<(), (&'static str, String)> {
    if within.is_zero() {
        return Err(("within", "the window must be more than 0".into()));
    }
    check_duration("the window", within).map_err(|e| ("within", e))?;
    if limit == 0 || limit > crate::model::MAX_PAGE {
        return Err((
            "limit",
            format!("limit must be 1 to {}, not {limit}", crate::model::MAX_PAGE),
        ));
    }
    Ok(())
}

/// What `Backend::register_worker` refuses: an empty or unprintable name, host or
/// version, no queue, a concurrency of 0, or an agent calling itself stale.
pub fn check_registration(name: &str, a: &AgentInfo) -> Result<(), Error> {
    for (field, v) in [("worker", name), ("host", &a.host), ("version", &a.version)] {
        if v.trim().is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("{field} must be 1 to 200 characters, none of them control characters"),
            ));
        }
    }
    if a.queues.is_empty() {
        return Err(Error::invalid(
            "queues",
            "an agent serves at least one queue",
        ));
    }
    if a.concurrency == 0 {
        return Err(Error::invalid(
            "concurrency",
            "concurrency must be at least 1",
        ));
    }
    if a.state == WorkerState::Stale {
        return Err(Error::invalid(
            "state",
            "an agent reports running, draining or stopped; stale is the engine's word for one not heard from",
        ));
    }
    Ok(())
}

/// The note of a lease that ran out.
pub fn timeout_note(worker: Option<&str>, lease: Duration) -> String {
    format!(
        "lease expired: no heartbeat from {} within {}",
        worker.unwrap_or("the worker"),
        format_duration(lease)
    )
}

/// The wait before automatic retry number `retry` (1 for the first): the backoff's delay,
/// doubled for each retry before this one, at most its max; then spread over the upper
/// half of that by `jitter` (a draw in [0, 1]: 0 waits half, 1 the whole), so items that
/// failed together do not all come back together. Never more than `max`.
pub fn retry_delay(b: &Backoff, retry: u32, jitter: f64) -> Duration {
    let doublings = retry.saturating_sub(1);
    let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
    let full = b.delay.saturating_mul(factor).min(b.max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full / 2 + (full - full / 2).mul_f64(jitter)
}

/// Without a given max, retries stop growing at an hour (or at the first delay, if longer).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// Parses `DUR[,MAX]`: `30s`, `30s,10m`.
pub fn parse_backoff(s: &str) -> Result<Backoff, String> {
    let (delay, max) = match s.split_once(',') {
        Some((d, m)) => (d, Some(m)),
        None => (s, None),
    };
    let delay = parse_duration(delay)?;
    let max = match max {
        Some(m) => parse_duration(m)?,
        None => DEFAULT_BACKOFF_MAX.max(delay),
    };
    let b = Backoff { delay, max };
    check_backoff(&b)?;
    Ok(b)
}

pub fn check_backoff(b: &Backoff) -> Result<(), String> {
    if b.delay.is_zero() {
        return Err("retry backoff must be longer than 0 (clear it for no backoff)".into());
    }
    if b.max < b.delay {
        return Err(format!(
            "retry backoff's max ({}) is shorter than its delay ({})",
            exact_duration(b.max),
            exact_duration(b.delay)
        ));
    }
    check_duration("retry backoff", b.max)
}

/// `30s, doubling up to 1h`: a backoff as people read it.
pub fn describe_backoff(b: &Backoff) -> String {
    if b.max == b.delay {
        format!("{} (with jitter)", format_duration(b.delay))
    } else {
        format!(
            "{}, doubling up to {} (with jitter)",
            format_duration(b.delay),
            format_duration(b.max)
        )
    }
}

/// `30s,1h`: a backoff as it is written on the command line and in the console.
pub fn exact_backoff(b: &Backoff) -> String {
    format!("{},{}", exact_duration(b.delay), exact_duration(b.max))
}

/// SPEC §3's transition table, from the two tables that define it: a worker's and the
/// engine's moves (`TRANSITIONS`) and a person's (`ACTION_RULES`). Same-status changes (a
/// heartbeat, an expiry) are never transitions.
pub fn transition_allowed(from: Status, to: To, actor: Actor) -> bool {
    if to == To::Status(from) {
        return false;
    }
    match actor {
        Actor::Human => ACTION_RULES
            .iter()
            .any(|r| r.to == Some(to) && r.from.contains(&from)),
        _ => TRANSITIONS
            .iter()
            .any(|t| t.actor == actor && t.from == from && To::Status(t.to) == to),
    }
}

/// A refused transition of one item: it names both ends.
pub fn refusal(id: &str, action: &str, from: Status, to: To) -> Error {
    Error::refused_one(
        action,
        Refused {
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
    rule_of(action).to
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
    let rule = rule_of(action);
    if rule.from.contains(&from) {
        return None;
    }
    Some(match (action, rule.to) {
        // Release means "off hold" and nothing else.
        (ActionKind::Release, _) => {
            format!("cannot release an item that is {from} (only on-hold items are released)")
        }
        // Already in the queue: what keeps an expired one from being taken is its expiry.
        (ActionKind::Requeue { .. }, _) if from == Status::Queued => {
            "cannot go from queued to queued (it is in the queue already; \
             an expired one needs a new expiry: extend it)"
                .into()
        }
        (_, Some(to)) => refusal_why(from, to),
        (_, None) => format!("cannot {} an item that is {from}", rule.verb),
    })
}

/// What the caller of a human action brings to its row's `Given` writes.
fn given_by(action: &ActionKind) -> Given<'static> {
    match action {
        ActionKind::Requeue { delay, .. } => Given {
            delay: *delay,
            ..Default::default()
        },
        ActionKind::SetPriority { priority } => Given {
            priority: Some(*priority),
            ..Default::default()
        },
        ActionKind::ExtendExpiry { expires_at } => Given {
            expires_at: expires_at.map(|t| t.timestamp_millis()),
            ..Default::default()
        },
        _ => Given::default(),
    }
}

/// A person's action on an item the rules allow it for (see `refusal_reason`): takes it
/// where the action's row says and writes what it says. A delete changes no state (the
/// store removes the item); the action's note and an edited value are the store's to write
/// (`Part::Note`, `Writes::value`).
pub fn act(s: &mut ItemState, action: &ActionKind, now: i64) {
    let rule = rule_of(action);
    let to = match rule.to {
        Some(To::Status(to)) => to,
        Some(To::Deleted) => return,
        None => s.status,
    };
    apply(s, to, &rule.writes, &given_by(action), now);
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

/// How many items a dequeue may take from a queue now (`None`: as many as it likes), or
/// why it may take none: paused, or at its concurrency limit (SPEC §4).
pub fn dequeue_room(q: &Queue, processing: u64, wanted: u64) -> Result<u64, (EmptyReason, String)> {
    if q.state == QueueState::Paused {
        return Err((EmptyReason::Paused, format!("queue '{}' is paused", q.name)));
    }
    match q.concurrency {
        Some(limit) if processing >= limit as u64 => Err((
            EmptyReason::ConcurrencyLimit,
            format!(
                "queue '{}' is at its concurrency limit ({processing}/{limit} processing)",
                q.name
            ),
        )),
        Some(limit) => Ok(wanted.min(limit as u64 - processing)),
        None => Ok(wanted),
    }
}

/// Why a queue that could give had nothing to take.
pub fn nothing_ready(queue: &str) -> (EmptyReason, String) {
    (
        EmptyReason::NothingReady,
        format!("queue '{queue}' has no item ready to take"),
    )
}

// ---------------------------------------------------------------- conditions

/// An item's time column that the rules compare with the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    ExpiresAt,
    DelayUntil,
    LeaseUntil,
    FinishedAt,
}

/// How a time column stands to now. Each needs the column set: an unset time has neither
/// come nor is it ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// At or before now: it has come (an expiry at this very instant has passed).
    Reached,
    /// Strictly before now: it has gone by (a lease is still good at its deadline).
    Passed,
    /// After now: still ahead.
    Ahead,
}

/// The two edges of an SLA (see `sla_edges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Enqueued before it: out of SLA.
    Out,
    /// Enqueued before it: at risk (or out).
    Risk,
}

/// A condition on an item (and its queue) at a given instant, as data. `holds` evaluates it
/// on an item the caller has loaded; a store renders the same condition in its SQL where
/// it must filter many items, so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Status(Status),
    Time(Col, Cmp),
    /// The item's queue has an SLA target.
    HasSla,
    /// Enqueued before an SLA edge of its queue (never, without an SLA target).
    EnqueuedBefore(Edge),
    /// Finished (or, unfinished, now) within its queue's SLA target.
    FinishedInSla,
    /// Started longer ago than its queue's max runtime (never, without one): strictly
    /// past `started_at + max_runtime`, as a lease is still good at its deadline.
    PastMaxRuntime,
    Not(&'static Cond),
    All(&'static [Cond]),
    Any(&'static [Cond]),
}

/// An expiry that has come, in any status.
pub const EXPIRY_PASSED: Cond = Cond::Time(Col::ExpiresAt, Cmp::Reached);
/// A queued item past its expiry is expired (SPEC §3): shown as such, counted out of SLA,
/// never dequeued.
pub const EXPIRED: Cond = Cond::All(&[Cond::Status(Status::Queued), EXPIRY_PASSED]);
/// Asked to wait (a requeue with delay, a retry's backoff) and still waiting.
pub const DELAYED: Cond = Cond::Time(Col::DelayUntil, Cmp::Ahead);
/// What a dequeue may take (SPEC §4): queued, not delayed, not expired.
pub const TAKEABLE: Cond = Cond::All(&[
    Cond::Status(Status::Queued),
    Cond::Not(&EXPIRY_PASSED),
    Cond::Not(&DELAYED),
]);
/// Queued but not takeable now: delayed or expired.
pub const DORMANT: Cond = Cond::All(&[
    Cond::Status(Status::Queued),
    Cond::Any(&[DELAYED, EXPIRY_PASSED]),
]);
/// A lease nobody renewed in time: the sweep makes it a `timeout` exception.
pub const LEASE_RAN_OUT: Cond = Cond::All(&[
    Cond::Status(Status::Processing),
    Cond::Time(Col::LeaseUntil, Cmp::Passed),
]);
/// Processing past its queue's max runtime, heartbeating or not: the sweep makes it a
/// `timeout` exception, and a heartbeat is refused.
pub const RUNTIME_RAN_OUT: Cond =
    Cond::All(&[Cond::Status(Status::Processing), Cond::PastMaxRuntime]);
/// What the sweep times out: a lease nobody renewed, or an item past the max runtime.
pub const TIMED_OUT: Cond = Cond::Any(&[LEASE_RAN_OUT, RUNTIME_RAN_OUT]);
/// A lease still good: someone is working on the item.
pub const LEASE_LIVE: Cond = Cond::All(&[
    Cond::Status(Status::Processing),
    Cond::Not(&Cond::Time(Col::LeaseUntil, Cmp::Passed)),
]);

/// What `serve --retain` removes, held at "now" = the oldest finish kept: a processed item
/// finished before it. Open items (queued, processing, on hold, exceptions) are never
/// removed, however old.
pub const PAST_RETENTION: Cond = Cond::All(&[
    Cond::Status(Status::Processed),
    Cond::Time(Col::FinishedAt, Cmp::Passed),
]);

const UNFINISHED_IN_SLA: Cond = Cond::All(&[
    Cond::HasSla,
    Cond::Not(&EXPIRED),
    Cond::Not(&Cond::Status(Status::Processed)),
]);

/// The condition of each SLA status (SPEC §5): `in` below the at-risk threshold, `at-risk`
/// up to and including the target, `out` past it, for unfinished items; `met` or `missed`
/// for finished ones. An expired item is `out` whatever its age, and even in a queue
/// without an SLA target: SPEC §3 counts it as a violation. Exactly one holds for an item
/// of a queue with an SLA target or an expired one; none for the others.
pub fn sla_cond(sla: Sla) -> Cond {
    const OUT: Cond = Cond::Any(&[
        EXPIRED,
        Cond::All(&[
            Cond::HasSla,
            Cond::Not(&Cond::Status(Status::Processed)),
            Cond::EnqueuedBefore(Edge::Out),
        ]),
    ]);
    const AT_RISK: Cond = Cond::All(&[
        UNFINISHED_IN_SLA,
        Cond::Not(&Cond::EnqueuedBefore(Edge::Out)),
        Cond::EnqueuedBefore(Edge::Risk),
    ]);
    const IN: Cond = Cond::All(&[
        UNFINISHED_IN_SLA,
        Cond::Not(&Cond::EnqueuedBefore(Edge::Risk)),
    ]);
    const MET: Cond = Cond::All(&[
        Cond::HasSla,
        Cond::Status(Status::Processed),
        Cond::FinishedInSla,
    ]);
    const MISSED: Cond = Cond::All(&[
        Cond::HasSla,
        Cond::Status(Status::Processed),
        Cond::Not(&Cond::FinishedInSla),
    ]);
    match sla {
        Sla::Out => OUT,
        Sla::AtRisk => AT_RISK,
        Sla::In => IN,
        Sla::Met => MET,
        Sla::Missed => MISSED,
    }
}

/// What the conditions read of an item and its queue (times in ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub status: Status,
    pub enqueued_at: i64,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub delay_until: Option<i64>,
    pub lease_until: Option<i64>,
    /// The queue's SLA target and at-risk share.
    pub sla_ms: Option<i64>,
    pub risk_pct: u8,
    /// When the current attempt started, and the queue's max runtime.
    pub started_at: Option<i64>,
    pub max_runtime_ms: Option<i64>,
}

impl Cond {
    /// Whether the condition holds for an item at `now` (ms).
    pub fn holds(&self, f: &Facts, now: i64) -> bool {
        match self {
            Cond::Status(s) => f.status == *s,
            Cond::Time(col, cmp) => {
                let t = match col {
                    Col::ExpiresAt => f.expires_at,
                    Col::DelayUntil => f.delay_until,
                    Col::LeaseUntil => f.lease_until,
                    Col::FinishedAt => f.finished_at,
                };
                t.is_some_and(|t| match cmp {
                    Cmp::Reached => t <= now,
                    Cmp::Passed => t < now,
                    Cmp::Ahead => t > now,
                })
            }
            Cond::HasSla => f.sla_ms.is_some(),
            Cond::EnqueuedBefore(edge) => f.sla_ms.is_some_and(|sla| {
                let e = sla_edges(sla, f.risk_pct, now);
                f.enqueued_at
                    < match edge {
                        Edge::Out => e.out,
                        Edge::Risk => e.risk,
                    }
            }),
            Cond::FinishedInSla => f.sla_ms.is_some_and(|sla| {
                f.finished_at.unwrap_or(now).saturating_sub(f.enqueued_at) <= sla
            }),
            Cond::PastMaxRuntime => match (f.started_at, f.max_runtime_ms) {
                (Some(s), Some(m)) => s.saturating_add(m) < now,
                _ => false,
            },
            Cond::Not(c) => !c.holds(f, now),
            Cond::All(cs) => cs.iter().all(|c| c.holds(f, now)),
            Cond::Any(cs) => cs.iter().any(|c| c.holds(f, now)),
        }
    }
}

/// The at-risk threshold of an SLA target, in milliseconds.
pub fn risk_ms(sla_ms: i64, risk_pct: u8) -> i64 {
    sla_ms.saturating_mul(risk_pct as i64) / 100
}

/// Where an SLA's edges fall at `now`, as enqueue times: an unfinished item enqueued before
/// `out` is out of SLA (older than the target), one enqueued before `risk` is at risk (its
/// age has reached the at-risk threshold). The one place this arithmetic lives; stores
/// render it as `enqueued_at < now - sla` and `enqueued_at < now - risk_ms + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaEdges {
    pub out: i64,
    pub risk: i64,
}

pub fn sla_edges(sla_ms: i64, risk_pct: u8, now: i64) -> SlaEdges {
    SlaEdges {
        out: now.saturating_sub(sla_ms),
        risk: now
            .saturating_sub(risk_ms(sla_ms, risk_pct))
            .saturating_add(1),
    }
}

/// SLA status of one item (see `sla_cond`).
pub fn sla_of(f: &Facts, now: i64) -> Option<Sla> {
    Sla::ALL
        .iter()
        .copied()
        .find(|s| sla_cond(*s).holds(f, now))
}

/// SLA status of one item, from its queue's SLA target and its times (see `sla_cond`).
pub fn item_sla(
    sla: Option<Duration>,
    risk_pct: u8,
    status: Status,
    enqueued_at: Time,
    finished_at: Option<Time>,
    expires_at: Option<Time>,
    now: Time,
) -> Option<Sla> {
    let f = Facts {
        status,
        enqueued_at: enqueued_at.timestamp_millis(),
        finished_at: finished_at.map(|t| t.timestamp_millis()),
        expires_at: expires_at.map(|t| t.timestamp_millis()),
        delay_until: None,
        lease_until: None,
        sla_ms: sla.map(ms_of),
        risk_pct,
        started_at: None,
        max_runtime_ms: None,
    };
    sla_of(&f, now.timestamp_millis())
}

/// Whether an item is expired (`EXPIRED`).
pub fn is_expired(status: Status, expires_at: Option<Time>, now: Time) -> bool {
    let f = Facts {
        status,
        enqueued_at: 0,
        finished_at: None,
        expires_at: expires_at.map(|t| t.timestamp_millis()),
        delay_until: None,
        lease_until: None,
        sla_ms: None,
        risk_pct: 0,
        started_at: None,
        max_runtime_ms: None,
    };
    EXPIRED.holds(&f, now.timestamp_millis())
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

/// One row of the action table: which statuses a human action applies to and where it
/// takes them, what it changes, and what its undo restores.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionRule {
    pub verb: &'static str,
    /// The statuses it applies to; any other is refused (`refusal_reason`). With `to`,
    /// these are SPEC §3's moves for a person.
    pub from: &'static [Status],
    /// Where it takes an item; `None`: the item keeps its status.
    pub to: Option<To>,
    /// What it writes (`act` applies it).
    pub writes: Writes,
    /// Every part the action may change (at most these; a note only when one is given).
    pub changes: &'static [Part],
    /// What the undo puts back: a subset of `changes`, never the lease.
    pub undo_restores: &'static [Part],
    pub undo_when: UndoWhen,
}

/// A person moved the item: whatever a worker or an earlier failure left goes with it.
const TAKEN_OVER: Writes = Writes {
    reason: Put::Clear,
    signature: Put::Clear,
    lease: LeasePut::End,
    ..Writes::NONE
};

/// What each human action does, and what its undo restores (SPEC §3, §7). The stores
/// apply this table; `undo_step` adds the one rule that overrides it (a worker's item).
pub const ACTION_RULES: &[ActionRule] = {
    use crate::model::Status::{Exception, OnHold, Processed, Processing, Queued};
    use Part::*;
    use UndoWhen::*;
    const ANY: &[crate::model::Status] = crate::model::Status::ALL;
    &[
        ActionRule {
            verb: "requeue",
            from: &[Exception, OnHold, Processed],
            to: Some(To::Status(Queued)),
            writes: Writes {
                finished_at: Put::Clear,
                delay_until: Put::Given,
                requeue_count: Put::Increment,
                // A person asked for it to be done again: a passed expiry would keep it from
                // being taken. (The history records the expiry it had.)
                expires_at: Put::ClearPassed,
                value: Put::Given,
                ..TAKEN_OVER
            },
            changes: &[Status, Delay, Value, Expiry, RequeueCount, Note],
            undo_restores: &[Status, Delay, Value, Expiry, RequeueCount, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "hold",
            from: &[Queued, Processing, Exception, Processed],
            to: Some(To::Status(OnHold)),
            // From a worker's hands too: its lease ends, its next report is refused.
            writes: TAKEN_OVER,
            changes: &[Status, Lease, Note],
            undo_restores: &[Status, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "release",
            from: &[OnHold],
            to: Some(To::Status(Queued)),
            // Off hold and nothing else: an expiry that passed meanwhile stays (SPEC §3).
            writes: Writes {
                finished_at: Put::Clear,
                delay_until: Put::Clear,
                ..TAKEN_OVER
            },
            changes: &[Status, Delay, Note],
            undo_restores: &[Status, Delay, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "processed",
            from: &[Queued, Exception, OnHold],
            to: Some(To::Status(Processed)),
            writes: Writes {
                finished_at: Put::Now,
                ..TAKEN_OVER
            },
            changes: &[Status, Note],
            undo_restores: &[Status, Note],
            undo_when: Untouched,
        },
        ActionRule {
            verb: "delete",
            from: &[Queued, Exception, OnHold, Processed],
            to: Some(To::Deleted),
            writes: Writes::NONE,
            changes: &[Existence],
            undo_restores: &[Existence],
            undo_when: StillDeleted,
        },
        ActionRule {
            verb: "priority",
            from: ANY,
            to: None,
            writes: Writes {
                priority: Put::Given,
                ..Writes::NONE
            },
            changes: &[Priority, Note],
            undo_restores: &[Priority, Note],
            undo_when: PartsAsLeft,
        },
        ActionRule {
            verb: "extend-expiry",
            from: ANY,
            to: None,
            writes: Writes {
                expires_at: Put::Given,
                ..Writes::NONE
            },
            changes: &[Expiry, Note],
            undo_restores: &[Expiry, Note],
            undo_when: PartsAsLeft,
        },
        ActionRule {
            verb: "note",
            from: ANY,
            to: None,
            writes: Writes::NONE,
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

/// The table row of an action.
pub fn rule_of(action: &ActionKind) -> &'static ActionRule {
    action_rule(action.verb()).expect("every action has a row in ACTION_RULES")
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

/// Whether a human action fits a set of items that can be in any of `statuses` (an inbox
/// row): the rules allow it from every one of them, and an expiry change only fits where
/// expiry matters (queued items). An action that does not fit is not offered.
pub fn action_fits(statuses: &[Status], action: &ActionKind) -> bool {
    let allowed = statuses
        .iter()
        .all(|st| refusal_reason(*st, action).is_none());
    let matters = match action {
        ActionKind::ExtendExpiry { .. } => statuses.contains(&Status::Queued),
        _ => true,
    };
    !statuses.is_empty() && allowed && matters
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

/// Items processed per minute over the throughput window (`THROUGHPUT_WINDOW_MIN`, the
/// current minute counted as far as it has gone): `processed` in its minutes, the first of
/// them with a finished attempt being `first_active`. When work began inside the window
/// the rate counts from that minute, not from the window's start: workers started five
/// minutes ago are not a third as fast as they are, and a deadline projection made from
/// their rate does not turn to a miss just because they are new. At least a minute counts.
pub fn throughput(processed: i64, first_active: Option<i64>, now_ms: i64) -> f64 {
    let this_min = now_ms.div_euclid(60_000);
    let window_start = this_min - THROUGHPUT_WINDOW_MIN + 1;
    let from = first_active.map_or(window_start, |m| m.clamp(window_start, this_min));
    let minutes = (this_min - from) as f64 + now_ms.rem_euclid(60_000) as f64 / 60_000.0;
    processed.max(0) as f64 / minutes.max(1.0)
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
pub const CLEARABLE: &[&str] = &[
    "ttl",
    "sla",
    "deadline",
    "concurrency",
    "retry-backoff",
    "max-runtime",
];

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
            ("max_runtime", "max runtime", s.max_runtime),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err((field, format!("{what} must be longer than 0")));
            }
            if let Some(d) = d {
                check_duration(what, d).map_err(|m| (field, m))?;
            }
        }
        if let Some(b) = &s.retry_backoff {
            check_backoff(b).map_err(|m| ("retry_backoff", m))?;
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
