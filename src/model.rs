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

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSettings {
    pub description: Option<String>,
    /// Default time-to-live of an item enqueued without an expiry.
    #[serde(with = "opt_duration_ms", default)]
    pub ttl: Option<Duration>,
    #[serde(with = "opt_duration_ms", default)]
    pub sla: Option<Duration>,
    pub sla_risk_pct: Option<u8>,
    /// "HH:MM" in `tz`.
    pub deadline: Option<String>,
    pub tz: Option<String>,
    pub max_retries: Option<u32>,
    #[serde(with = "opt_duration_ms", default)]
    pub lease: Option<Duration>,
    pub concurrency: Option<u32>,
    pub priority: Option<i32>,
    /// Settings to unset on update: any of `rules::CLEARABLE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear: Vec<String>,
}

/// A queue as stored, with every setting resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    pub description: String,
    pub state: QueueState,
    #[serde(with = "opt_duration_ms")]
    pub ttl: Option<Duration>,
    #[serde(with = "opt_duration_ms")]
    pub sla: Option<Duration>,
    pub sla_risk_pct: u8,
    pub deadline: Option<String>,
    pub tz: String,
    pub max_retries: u32,
    #[serde(with = "duration_ms")]
    pub lease: Duration,
    pub concurrency: Option<u32>,
    pub priority: i32,
    pub created_at: Time,
}

pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
pub const DEFAULT_SLA_RISK_PCT: u8 = 80;

/// Counts by status, maintained by the store so they are instant on a million items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Where the backlog will be when the deadline comes (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The next deadline instant.
    pub deadline: Time,
    /// When the backlog empties at the current throughput; `None` when nothing is being processed.
    pub drains_at: Option<Time>,
    /// Positive: finishes this many seconds before the deadline; negative: misses by that much.
    pub margin_secs: Option<i64>,
}

/// A queue with its health, as `queue ls` and the console's queue view show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    #[serde(flatten)]
    pub queue: Queue,
    pub counts: StatusCounts,
    pub expired: u64,
    pub at_risk: u64,
    pub out_of_sla: u64,
    /// Age in seconds of the oldest queued item.
    pub oldest_queued_secs: Option<i64>,
    /// Items finished per minute over the last `THROUGHPUT_WINDOW_MIN` minutes.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: Time,
    pub by: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub enqueued_at: Time,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub expires_at: Option<Time>,
    pub delay_until: Option<Time>,
    pub worker: Option<String>,
    pub sla: Option<Sla>,
    pub expired: bool,
    /// Bumped on every change; undo uses it to see whether an item changed since.
    pub version: u64,
}

/// One row of an item's history: every change, who made it, from → to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Time,
    pub by: String,
    pub action: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub reason: Option<Reason>,
    pub note: Option<String>,
    /// The human action (bulk or single) this change belongs to.
    pub action_id: Option<i64>,
    /// Fields the change set, old → new (an edited value, a priority, an expiry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

/// One field a change set: what it was and what it became, as recorded. A value is the
/// user's text as stored (a JSON string holding it), a time or priority as its JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

impl FieldChange {
    /// The old → new pairs of a history row's detail (`{"old_X": …, "new_X": …}`), in the
    /// order written; `None` when the detail is not such a record.
    pub fn parse(detail: &str) -> Option<Vec<FieldChange>> {
        let serde_json::Value::Object(map) = serde_json::from_str(detail).ok()? else {
            return None;
        };
        let mut out = Vec::new();
        for (k, old) in &map {
            let Some(field) = k.strip_prefix("old_") else {
                continue;
            };
            out.push(FieldChange {
                field: field.to_string(),
                old: old.clone(),
                new: map.get(&format!("new_{field}"))?.clone(),
            });
        }
        let news = map.keys().filter(|k| k.starts_with("new_")).count();
        (!out.is_empty() && news == out.len()).then_some(out)
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemDetail {
    #[serde(flatten)]
    pub item: Item,
    pub history: Vec<HistoryEntry>,
}

/// What a caller enqueues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewItem {
    pub value: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub expires_at: Option<Time>,
    /// Relative expiry; resolved against the engine's clock at enqueue.
    #[serde(default, with = "opt_duration_ms")]
    pub expires_in: Option<Duration>,
    #[serde(default)]
    pub delay_until: Option<Time>,
    #[serde(default)]
    pub hold: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// A dequeued item and the token that proves the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub lease: String,
    pub lease_until: Time,
    pub item: Item,
}

/// The answer to a dequeue: the leases taken and, when none, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dequeued {
    pub leases: Vec<Lease>,
    /// Set when nothing was taken because of the queues themselves (paused, at limit, unknown).
    pub why_empty: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DequeueRequest {
    pub queues: Vec<String>,
    pub worker: String,
    pub count: u32,
    #[serde(with = "duration_ms", default)]
    pub wait: Duration,
}

/// What a worker reports for one leased item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub lease: String,
    /// `None`: processed. `Some(reason)`: exception.
    pub reason: Option<Reason>,
    pub note: Option<String>,
}

/// Where a reported outcome left the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

/// Which items a listing or a bulk action covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u32,
    pub sort: SortBy,
    pub descending: bool,
    #[serde(default)]
    pub count: Count,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            offset: 0,
            limit: 50,
            sort: SortBy::Enqueued,
            descending: false,
            count: Count::Capped,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What a human does to items (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    Requeue {
        #[serde(with = "opt_duration_ms", default)]
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
}

/// The items a human action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Ids(Vec<String>),
    Filter(Filter),
    /// Items matching any of the filters (several inbox groups marked at once), each
    /// item once: one action, one undo.
    Any(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub target: Target,
    pub action: ActionKind,
    pub note: Option<String>,
    pub actor: String,
}

/// What a bulk action will touch, before it is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub action_id: i64,
    pub verb: String,
    pub touched: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoResult {
    pub action_id: i64,
    pub restored: u64,
}

/// Exceptions that share a queue, a reason and a masked note signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionGroup {
    pub queue: String,
    pub reason: Option<Reason>,
    pub signature: String,
    pub count: u64,
    /// One real note of the group, unmasked.
    pub example: Option<String>,
    pub oldest: Time,
    pub newest: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub last_seen: Time,
    pub holding: u64,
    pub holding_ids: Vec<String>,
    pub processed: u64,
    pub failed: u64,
}

/// Import behaviour for bad rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column '{}': {}", self.line, c, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// The bad rows of an import, one per line under `head`, up to a limit.
pub fn import_failure(head: &str, rejected: &[RowError]) -> String {
    const SHOWN: usize = 20;
    let mut m = format!(
        "{head}: {} bad row{}",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" }
    );
    for r in rejected.iter().take(SHOWN) {
        m.push_str(&format!("\n  {r}"));
    }
    if rejected.len() > SHOWN {
        m.push_str(&format!(
            "\n  … and {} more (use --skip-bad --rejects FILE to import the good rows and keep the bad)",
            rejected.len() - SHOWN
        ));
    }
    m
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    pub line: u64,
    pub item: NewItem,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub imported: u64,
    /// Rows the store refused (duplicate keys, oversize values), with their lines.
    pub rejected: Vec<RowError>,
}

/// What changed, for live consoles. Coarse on purpose: a console refetches what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Items of a queue changed (enqueue, dequeue, completion, human action, sweep).
    Items { queue: String, count: u64 },
    /// A queue was created, changed, paused, resumed or deleted.
    Queue { queue: String },
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
            "{}",
        ] {
            assert_eq!(FieldChange::parse(bad), None, "{bad}");
        }
        assert_eq!(FieldChange::side(&json!(3)), "3");
    }
}
