//! The data every part of workq speaks: queues, items, leases, filters, events.
//! Field names are snake_case because the CLI's `--json` and the HTTP API share them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub type Time = DateTime<Utc>;

/// Largest item value accepted (SPEC §2).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
pub const MAX_NAME_CHARS: usize = 100;
/// Longest free-text search: a person's words or a pasted id, not a value to match whole
/// (SQLite refuses LIKE patterns past 50,000 bytes; escaping can double the text).
pub const MAX_SEARCH_CHARS: usize = 1000;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        // By hand: the derive does not see a rename whose text comes through the macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($name).to_ascii_lowercase(),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Where an item is in its life (SPEC §3).
    Status {
        Queued = "queued",
        Processing = "processing",
        Processed = "processed",
        OnHold = "on-hold",
        Exception = "exception",
    }
);

string_enum!(
    /// Why an item is an exception.
    Reason {
        Generic = "generic",
        It = "it",
        Business = "business",
        Timeout = "timeout",
    }
);

string_enum!(
    Priority {
        High = "high",
        Normal = "normal",
        Low = "low",
    }
);

string_enum!(
    QueueState {
        Active = "active",
        Paused = "paused",
    }
);

string_enum!(
    /// SLA status of one item: the first three for unfinished items, the last two for finished ones.
    Sla {
        In = "in",
        AtRisk = "at-risk",
        Out = "out",
        Met = "met",
        Missed = "missed",
    }
);

/// Where a change takes an item: a status, or out of existence. In JSON, the status's
/// name or `deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum To {
    Status(Status),
    Deleted,
}

impl fmt::Display for To {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            To::Status(s) => s.fmt(f),
            To::Deleted => f.write_str("deleted"),
        }
    }
}

impl FromStr for To {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deleted" => Ok(To::Deleted),
            s => s.parse().map(To::Status),
        }
    }
}

impl utoipa::PartialSchema for To {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("a status, or `deleted`"))
            .into()
    }
}

impl utoipa::ToSchema for To {}

impl Serialize for To {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for To {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// The enum comes from `string_enum!`, which has no place for `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for Priority {
    fn default() -> Self {
        Priority::Normal
    }
}

impl Priority {
    /// Dequeue order: lower rank first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
    pub fn from_rank(r: i64) -> Priority {
        match r {
            0 => Priority::High,
            2 => Priority::Low,
            _ => Priority::Normal,
        }
    }
}

/// Settings a queue is created or updated with. `None` in an update means "leave as is".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub description: Option<String>,
    /// Default time-to-live of an item enqueued without an expiry.
    #[serde(with = "opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub ttl: Option<Duration>,
    #[serde(with = "opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub sla: Option<Duration>,
    pub sla_risk_pct: Option<u8>,
    /// "HH:MM" in `tz`.
    pub deadline: Option<String>,
    pub tz: Option<String>,
    pub max_retries: Option<u32>,
    #[serde(with = "opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub lease: Option<Duration>,
    /// The longest an item may stay processing from its start, heartbeats or not.
    #[serde(with = "opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub max_runtime: Option<Duration>,
    pub concurrency: Option<u32>,
    pub priority: Option<i32>,
    /// How long automatic retries wait (see `Backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<Backoff>,
    /// Settings to unset on update: any of `rules::CLEARABLE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear: Vec<String>,
}

/// A queue as stored, with every setting resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queue {
    pub name: String,
    pub description: String,
    pub state: QueueState,
    #[serde(with = "opt_duration_ms")]
    #[schema(value_type = Option<u64>)]
    pub ttl: Option<Duration>,
    #[serde(with = "opt_duration_ms")]
    #[schema(value_type = Option<u64>)]
    pub sla: Option<Duration>,
    pub sla_risk_pct: u8,
    pub deadline: Option<String>,
    pub tz: String,
    pub max_retries: u32,
    #[serde(with = "duration_ms")]
    #[schema(value_type = u64)]
    pub lease: Duration,
    /// The longest an item may stay processing from its start; `None`: no limit.
    #[serde(with = "opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub max_runtime: Option<Duration>,
    pub concurrency: Option<u32>,
    pub priority: i32,
    /// How long automatic retries wait; `None`: they are queued again at once.
    #[serde(default)]
    pub retry_backoff: Option<Backoff>,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

/// The wait before an automatic retry (`rules::retry_delay`): `delay` before the first,
/// doubling for each one after, never more than `max`; jittered over the upper half so
/// items that failed together do not all come back at once. In JSON, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(with = "duration_ms")]
    #[schema(value_type = u64)]
    pub delay: Duration,
    #[serde(with = "duration_ms")]
    #[schema(value_type = u64)]
    pub max: Duration,
}

pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
pub const DEFAULT_SLA_RISK_PCT: u8 = 80;

/// Counts by status, maintained by the store so they are instant on a million items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub queued: u64,
    pub processing: u64,
    pub processed: u64,
    pub on_hold: u64,
    pub exception: u64,
}

impl StatusCounts {
    pub fn get(&self, s: Status) -> u64 {
        match s {
            Status::Queued => self.queued,
            Status::Processing => self.processing,
            Status::Processed => self.processed,
            Status::OnHold => self.on_hold,
            Status::Exception => self.exception,
        }
    }
    pub fn get_mut(&mut self, s: Status) -> &mut u64 {
        match s {
            Status::Queued => &mut self.queued,
            Status::Processing => &mut self.processing,
            Status::Processed => &mut self.processed,
            Status::OnHold => &mut self.on_hold,
            Status::Exception => &mut self.exception,
        }
    }
    pub fn total(&self) -> u64 {
        self.queued + self.processing + self.processed + self.on_hold + self.exception
    }
}

/// Where the backlog stands to the queue's deadline (SPEC §5), from `rules::deadline_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Projection {
    /// The deadline this is about: today's when it passed with backlog left, else the next.
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Time,
    /// When the backlog empties at the current throughput; `None` when that cannot be
    /// told (`stalled` says why) or the deadline was already missed.
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub drains_at: Option<Time>,
    /// Positive: drains this many seconds before the deadline; negative: after it. For a
    /// missed deadline, how long ago it passed (negative).
    pub margin_secs: Option<i64>,
    /// Items still to do (queued and processing).
    #[serde(default)]
    pub backlog: u64,
    /// The deadline passed today with backlog left.
    #[serde(default)]
    pub missed: bool,
    /// Why no drain time is projected: the queue is paused, no worker is live on it, or
    /// nothing was finished lately.
    #[serde(default)]
    pub stalled: Option<Stall>,
}

string_enum!(
    /// Why a queue's backlog is not draining.
    Stall {
        Paused = "paused",
        NoWorkers = "no_live_workers",
        NoThroughput = "no_throughput",
    }
);

/// A queue with its health, as `queue ls` and the console's queue view show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueSummary {
    #[serde(flatten)]
    pub queue: Queue,
    pub counts: StatusCounts,
    pub expired: u64,
    pub at_risk: u64,
    pub out_of_sla: u64,
    /// Age in seconds of the oldest queued item.
    pub oldest_queued_secs: Option<i64>,
    /// Items finished per minute over the last `THROUGHPUT_WINDOW_MIN` minutes, or since
    /// work began within them (`rules::throughput`).
    pub throughput_per_min: f64,
    /// Processed items per minute, oldest first, for a sparkline.
    pub throughput_history: Vec<u64>,
    pub avg_handling_ms: Option<u64>,
    /// Share of finished attempts that ended in an exception, over the same window.
    pub error_rate: Option<f64>,
    pub projection: Option<Projection>,
}

pub const THROUGHPUT_WINDOW_MIN: i64 = 15;
pub const SPARKLINE_MIN: i64 = 30;

/// One processing note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    pub by: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Item {
    pub id: String,
    pub queue: String,
    pub name: Option<String>,
    pub key: Option<String>,
    pub value: String,
    pub priority: Priority,
    pub status: Status,
    pub reason: Option<Reason>,
    pub notes: Vec<Note>,
    pub retry_count: u32,
    pub requeue_count: u32,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub enqueued_at: Time,
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Time>,
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Time>,
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Time>,
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delay_until: Option<Time>,
    pub worker: Option<String>,
    pub sla: Option<Sla>,
    pub expired: bool,
    /// Bumped on every change; undo uses it to see whether an item changed since.
    pub version: u64,
}

/// One row of an item's history: every change, who made it, from → to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    pub by: String,
    pub action: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub reason: Option<Reason>,
    pub note: Option<String>,
    /// The human action (bulk or single) this change belongs to.
    pub action_id: Option<i64>,
    /// What the change set, old → new, field by field: an edited value, a priority, an
    /// expiry, a delay, the lease it ended (`lease`: its worker → none). Read from the
    /// record `FieldChange::record` writes, so the CLI and the console show the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

/// One field a change set: what it was and what it became, as recorded. A value is the
/// user's text as stored (a JSON string holding it), a time or priority as its JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

impl FieldChange {
    /// The old → new pairs of a history row's detail (`{"old_X": …, "new_X": …}`), in the
    /// order written; `None` when the detail is not such a record (then it is shown as
    /// written, so nothing recorded is hidden).
    pub fn parse(detail: &str) -> Option<Vec<FieldChange>> {
        let serde_json::Value::Object(map) = serde_json::from_str(detail).ok()? else {
            return None;
        };
        let mut out = Vec::new();
        for (k, old) in &map {
            match k.strip_prefix("old_") {
                Some(field) => out.push(FieldChange {
                    field: field.to_string(),
                    old: old.clone(),
                    new: map.get(&format!("new_{field}"))?.clone(),
                }),
                None if k.starts_with("new_") => {}
                None => return None,
            }
        }
        let news = map.keys().filter(|k| k.starts_with("new_")).count();
        (!out.is_empty() && news == out.len()).then_some(out)
    }

    /// The history row's detail for these changes, as `parse` reads it back: the one way a
    /// recorded change is written. `None` when nothing changed.
    pub fn record(changes: &[FieldChange]) -> Option<String> {
        if changes.is_empty() {
            return None;
        }
        let mut map = serde_json::Map::new();
        for c in changes {
            map.insert(format!("old_{}", c.field), c.old.clone());
            map.insert(format!("new_{}", c.field), c.new.clone());
        }
        Some(serde_json::Value::Object(map).to_string())
    }

    /// A side as people read it: text as it is, nothing as "-", anything else as JSON.
    pub fn side(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        }
    }

    /// "priority: normal → high".
    pub fn summary(&self) -> String {
        format!(
            "{}: {} → {}",
            self.field,
            Self::side(&self.old),
            Self::side(&self.new)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemDetail {
    #[serde(flatten)]
    pub item: Item,
    pub history: Vec<HistoryEntry>,
    /// Set when the item was deleted: it is in no queue any more, and `item` is how it was
    /// when deleted (its last status), kept with its history; undoing `action_id` brings
    /// it back. `None` for an item that exists.
    #[serde(default)]
    pub deleted: Option<Deleted>,
}

/// Who deleted an item, when, and by which action (`workq undo ACTION` restores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    pub by: String,
    pub action_id: i64,
}

/// What a caller enqueues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub value: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Time>,
    /// Relative expiry; resolved against the engine's clock at enqueue.
    #[serde(default, with = "opt_duration_ms")]
    #[schema(value_type = Option<u64>)]
    pub expires_in: Option<Duration>,
    #[serde(default, with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delay_until: Option<Time>,
    #[serde(default)]
    pub hold: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// A dequeued item and the token that proves the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lease {
    pub lease: String,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub lease_until: Time,
    pub item: Item,
}

/// The answer to a dequeue: the leases taken and, when none, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dequeued {
    pub leases: Vec<Lease>,
    /// Set whenever nothing was taken: why, for the whole request and for each queue.
    pub why_empty: Option<WhyEmpty>,
}

string_enum!(
    /// Why a queue gave nothing to a dequeue.
    EmptyReason {
        Paused = "paused",
        ConcurrencyLimit = "concurrency_limit",
        NothingReady = "nothing_ready",
    }
);

/// Why a dequeue took nothing. `reason` is the one every queue shares, else
/// `nothing_ready` (a queue that could have given something had nothing takeable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhyEmpty {
    pub reason: EmptyReason,
    /// "queue 'a' is paused; queue 'b' is at its concurrency limit (4/4 processing)".
    pub message: String,
    pub queues: Vec<QueueEmpty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueEmpty {
    pub queue: String,
    pub reason: EmptyReason,
    pub message: String,
}

/// A lease a worker holds, named by its item and its token: what a heartbeat extends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub id: String,
    pub lease: String,
}

/// A lease a worker gives back unworked (its output could not be delivered, it is shutting
/// down): the item goes back to `queued` at once, without counting a retry.
pub type HandBack = LeaseRef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DequeueRequest {
    pub queues: Vec<String>,
    pub worker: String,
    pub count: u32,
    #[serde(with = "duration_ms", default)]
    #[schema(value_type = u64)]
    pub wait: Duration,
}

/// What a worker reports for one leased item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub id: String,
    pub lease: String,
    /// `None`: processed. `Some(reason)`: exception.
    pub reason: Option<Reason>,
    pub note: Option<String>,
    /// With reason `it`: postpone the item, back to the queue after this long (ms), without
    /// counting a retry. Absent: the queue's retry policy decides.
    #[serde(
        with = "opt_duration_ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub retry_in: Option<Duration>,
}

/// Where a reported outcome left the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finished {
    pub id: String,
    pub status: Status,
    pub reason: Option<Reason>,
    pub retry_count: u32,
}

impl Lease {
    /// The outcome of this lease: `None` processed, `Some(reason)` an exception.
    pub fn outcome(&self, reason: Option<Reason>, note: Option<String>) -> Outcome {
        Outcome {
            id: self.item.id.clone(),
            lease: self.lease.clone(),
            reason,
            note,
            retry_in: None,
        }
    }

    /// This lease by item and token: what a heartbeat or a hand-back names.
    pub fn held(&self) -> LeaseRef {
        LeaseRef {
            id: self.item.id.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// Which items a listing or a bulk action covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub queue: Option<String>,
    #[serde(default)]
    pub statuses: Vec<Status>,
    pub reason: Option<Reason>,
    pub priority: Option<Priority>,
    pub sla: Option<Sla>,
    /// `Some(true)`: only expired; `Some(false)`: only not expired.
    pub expired: Option<bool>,
    /// Free text over name, key, value and notes.
    pub search: Option<String>,
    /// Exception group signature (see `rules::signature`).
    pub signature: Option<String>,
    /// The worker that holds the items, or last processed them.
    #[serde(default)]
    pub worker: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SortBy {
    /// Enqueue order.
    #[default]
    #[serde(rename = "enqueued")]
    Enqueued,
    #[serde(rename = "priority")]
    Priority,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "status")]
    Status,
}

/// How a listing counts what matches. Counter-backed filters (queue and status only) are
/// always exact and cost nothing; the mode matters for refined filters over many items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    /// Up to `COUNT_CAP`, then "10,000+".
    #[default]
    Capped,
    /// Every match, however long it takes (a console counting once per filter change).
    Exact,
    /// No count: moving a window through a list whose total is already known.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u32,
    pub sort: SortBy,
    pub descending: bool,
    #[serde(default)]
    pub count: Count,
    /// Keyset paging in enqueue order: the page starts after this item (by id), whatever
    /// was added or removed before it meanwhile. Goes with `SortBy::Enqueued` only, and
    /// replaces `offset` (which walks every row it skips).
    #[serde(default)]
    pub after: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            offset: 0,
            limit: 50,
            sort: SortBy::Enqueued,
            descending: false,
            count: Count::Capped,
            after: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<Item>,
    /// Items matching the filter (`None` when asked not to count); at most `COUNT_CAP`
    /// unless `exact`.
    pub total: Option<u64>,
    /// False when `total` stopped at `COUNT_CAP`: "10,000+" matching.
    pub exact: bool,
}

/// Past this many matches a listing stops counting: a refined filter over a million items
/// must not cost a full count per page. Counter-backed totals and previews are always exact.
pub const COUNT_CAP: u64 = 10_000;

/// Most items one page holds; a longer listing pages (the CLI's `item ls --all` does).
pub const MAX_PAGE: u32 = 10_000;

/// What a human does to items (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    Requeue {
        #[serde(with = "opt_duration_ms", default)]
        #[schema(value_type = Option<u64>)]
        delay: Option<Duration>,
        #[serde(default)]
        value: Option<String>,
    },
    Hold,
    Release,
    Processed,
    Delete,
    SetPriority {
        priority: Priority,
    },
    ExtendExpiry {
        #[serde(with = "opt_time_ms")]
        #[schema(value_type = Option<String>, format = DateTime)]
        expires_at: Option<Time>,
    },
    AddNote,
}

impl ActionKind {
    pub fn verb(&self) -> &'static str {
        match self {
            ActionKind::Requeue { .. } => "requeue",
            ActionKind::Hold => "hold",
            ActionKind::Release => "release",
            ActionKind::Processed => "processed",
            ActionKind::Delete => "delete",
            ActionKind::SetPriority { .. } => "priority",
            ActionKind::ExtendExpiry { .. } => "extend-expiry",
            ActionKind::AddNote => "note",
        }
    }
    /// "requeued", "marked processed": for "3 of 5 items cannot be requeued".
    pub fn past_tense(&self) -> &'static str {
        match self {
            ActionKind::Requeue { .. } => "requeued",
            ActionKind::Hold => "held",
            ActionKind::Release => "released",
            ActionKind::Processed => "marked processed",
            ActionKind::Delete => "deleted",
            ActionKind::SetPriority { .. } => "reprioritised",
            ActionKind::ExtendExpiry { .. } => "given a new expiry",
            ActionKind::AddNote => "noted",
        }
    }
}

/// The items a human action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Ids(Vec<String>),
    Filter(Filter),
    /// Items matching any of the filters (several inbox groups marked at once), each
    /// item once: one action, one undo.
    Any(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub target: Target,
    pub action: ActionKind,
    pub note: Option<String>,
    pub actor: String,
    /// Apply to the items the rules allow and skip (and count) the others, as the preview
    /// said; `false`: all or nothing, any refused item refuses the whole action.
    #[serde(default)]
    pub skip_refused: bool,
}

/// Items counted by why: "28 · cannot release an item that is queued (…)", "19 · processed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    pub count: u64,
    pub why: String,
}

/// Adds `n` to the tally of `why`: the biggest first, ties in first-seen order.
pub fn tally(list: &mut Vec<Tally>, why: String, n: u64) {
    match list.iter_mut().find(|t| t.why == why) {
        Some(t) => t.count += n,
        None => list.push(Tally { count: n, why }),
    }
    list.sort_by_key(|t| std::cmp::Reverse(t.count));
}

/// What a bulk action will touch, before it is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// Items the target covers.
    pub count: u64,
    /// Items the action will change (all of `count` when no action was named).
    pub changes: u64,
    /// Items the rules will refuse, by why (the action skips them).
    #[serde(default)]
    pub skipped: Vec<Tally>,
    /// What a person should know before confirming ("3 stay expired once released").
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A few of the items the action will change (of the target when it changes none).
    pub sample: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionResult {
    pub action_id: i64,
    pub verb: String,
    pub touched: u64,
    /// Items the rules refused and the action skipped, by why.
    #[serde(default)]
    pub skipped: Vec<Tally>,
}

/// An undo of a past action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoRequest {
    pub action_id: i64,
    pub actor: String,
    /// All or nothing: refuse when any item cannot be restored.
    #[serde(default)]
    pub strict: bool,
    /// Only say what the undo would do; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl UndoRequest {
    pub fn new(action_id: i64, actor: &str) -> UndoRequest {
        UndoRequest {
            action_id,
            actor: actor.to_string(),
            strict: false,
            dry_run: false,
        }
    }
}

/// An item an undo left as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeptItem {
    pub id: String,
    pub why: String,
}

/// Most kept items an undo names one by one (the tallies count them all).
pub const KEPT_LISTED: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UndoResult {
    pub action_id: i64,
    pub verb: String,
    /// Items the action touched.
    pub total: u64,
    pub restored: u64,
    /// Items that moved on since the action, by what happened ("processed", "on hold").
    pub changed: Vec<Tally>,
    /// Items left as they are for another reason (a worker held them), by why.
    pub kept: Vec<Tally>,
    /// The items not restored, with why (the first `KEPT_LISTED`).
    pub kept_items: Vec<KeptItem>,
    /// Nothing was changed: this is what the undo would do.
    #[serde(default)]
    pub dry_run: bool,
}

/// Which past actions to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// Only actions that touched this queue.
    pub queue: Option<String>,
    /// Newest first, at most this many.
    pub limit: u32,
}

/// A past human action, as `workq actions` and the console list them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionInfo {
    pub id: i64,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    pub by: String,
    pub verb: String,
    /// What exactly was done ("priority → high"), when known.
    pub kind: Option<ActionKind>,
    pub note: Option<String>,
    pub touched: u64,
    /// The queues its items are in (deleted queues left out).
    pub queues: Vec<String>,
    #[serde(with = "opt_time_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub undone_at: Option<Time>,
    pub undone_by: Option<String>,
    /// Items the undo restored (an undo on a live queue may restore fewer than `touched`).
    pub restored: Option<u64>,
}

/// Exceptions that share a queue, a reason and a masked note signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionGroup {
    pub queue: String,
    pub reason: Option<Reason>,
    pub signature: String,
    pub count: u64,
    /// One real note of the group, unmasked.
    pub example: Option<String>,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub oldest: Time,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub newest: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub name: String,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Time,
    pub holding: u64,
    pub holding_ids: Vec<String>,
    pub processed: u64,
    pub failed: u64,
    /// The queues it dequeued from (or, an agent, registered for) in the last hour, each
    /// with when it was last heard from there: a queue's `no-worker` alert reads these.
    pub queues: Vec<QueueSeen>,
    /// Running, draining or stopped as an agent reports itself; stale when not heard from
    /// for `rules::STALE_AFTER` (a scripted worker is running while it is heard from).
    pub state: WorkerState,
    /// What an agent (`workq work`) says about itself; none for a scripted worker.
    pub agent: Option<AgentInfo>,
}

/// One queue a worker takes from, and when it was last heard from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueSeen {
    pub queue: String,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Running,
    /// Signalled to stop: finishing what it holds, taking nothing new.
    Draining,
    /// Stopped cleanly: it holds nothing.
    Stopped,
    /// Not heard from lately: killed, hung or cut off; its leases will time out.
    Stale,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Draining => "draining",
            WorkerState::Stopped => "stopped",
            WorkerState::Stale => "stale",
        }
    }
}

/// What an agent reports about itself when it registers (at start, then every few
/// seconds and on each change of state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    pub host: String,
    pub pid: u32,
    /// The workq version it runs.
    pub version: String,
    pub queues: Vec<String>,
    pub concurrency: u32,
    /// Running, draining or stopped (an agent never reports itself stale).
    pub state: WorkerState,
    /// Items it finished in the last minute, as it counts them.
    pub per_minute: u64,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Time,
}

/// Import behaviour for bad rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOptions {
    /// Import the good rows and report the bad; otherwise nothing lands when any row is bad.
    pub skip_bad: bool,
    /// Check every row as an import would (keys against the queue and the file included),
    /// report what would land, and write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The file's column the keys come from, for messages (default `key`).
    #[serde(default)]
    pub key_column: Option<String>,
}

/// A row that could not be imported, with where it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
    /// Its key repeats the key of this earlier line of the same file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u64>,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column '{}': {}", self.line, c, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportRow {
    pub line: u64,
    pub item: NewItem,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub imported: u64,
    /// Rows the store refused (duplicate keys, oversize values), with their lines.
    pub rejected: Vec<RowError>,
}

/// What changed, for live consoles. Coarse on purpose: a console refetches what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Items of a queue changed (enqueue, dequeue, completion, human action, sweep).
    Items { queue: String, count: u64 },
    /// A queue was created, changed, paused, resumed or deleted.
    Queue { queue: String },
}

/// Times in JSON: UTC with exactly three decimals, `2026-11-22T23:00:00.000Z`, so that
/// they sort as text and every one reads alike; any RFC 3339 time is read back.
pub mod time_ms {
    use super::Time;
    use serde::{Deserialize, Deserializer, Serializer};
    pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";
    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(FORMAT))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| serde::de::Error::custom(format!("bad time '{text}': {e}")))
    }
}

pub mod opt_time_ms {
    use super::Time;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&t.format(super::time_ms::FORMAT)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::time_ms")] Time);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(t)| t))
    }
}

/// Durations in JSON are whole milliseconds.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::FieldChange;
    use serde_json::json;

    #[test]
    fn field_changes_are_read_from_old_new_records_only() {
        let c =
            FieldChange::parse(r#"{"old_value": "{\"a\": 1.50}", "new_value": "{\"a\": 1.5}"}"#)
                .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "value");
        assert_eq!(
            FieldChange::side(&c[0].old),
            r#"{"a": 1.50}"#,
            "the text as stored"
        );
        let c = FieldChange::parse(
            r#"{"old_expires_at": null, "new_expires_at": "2026-11-23T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c[0].summary(), "expires_at: - → 2026-11-23T00:00:00Z");
        for bad in [
            "",
            "not json",
            "[1, 2]",
            r#"{"old_value": "a"}"#,
            r#"{"new_value": "a"}"#,
            r#"{"old_value": "a", "new_value": "b", "new_other": 1}"#,
            r#"{"old_value": "a", "new_value": "b", "lease_ended_for": "w1"}"#,
            "{}",
        ] {
            assert_eq!(FieldChange::parse(bad), None, "{bad}");
        }
        // What is recorded reads back the same, field order kept.
        let both = vec![
            FieldChange {
                field: "priority".into(),
                old: json!("normal"),
                new: json!("high"),
            },
            FieldChange {
                field: "lease".into(),
                old: json!("w1"),
                new: json!(null),
            },
        ];
        let text = FieldChange::record(&both).unwrap();
        assert_eq!(FieldChange::parse(&text), Some(both));
        assert_eq!(FieldChange::record(&[]), None);
        assert_eq!(FieldChange::side(&json!(3)), "3");
    }
}
