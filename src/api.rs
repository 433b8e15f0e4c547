//! The HTTP API's bodies: what `workq serve` reads and writes under `/v1/`, and what a
//! remote client sends and reads back. One module for both sides so they cannot drift.
//! Field names are the CLI's `--json` names (the model's serde names); request bodies
//! refuse unknown fields, so a misspelt field is a 400 naming it instead of being ignored.

use crate::error::Error;
use crate::model::*;
use crate::token::Role;
use serde::{Deserialize, Serialize};

/// Every error body: `{"error": {"kind": …, "message": …, …facts}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: Error,
}

/// `POST /v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    pub name: String,
    #[serde(default)]
    pub settings: QueueSettings,
}

/// `DELETE /v1/queues/{name}?force=true`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQueue {
    #[serde(default)]
    pub force: bool,
}

/// What a queue delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueDeleted {
    pub queue: String,
    pub deleted_items: u64,
}

/// `POST /v1/queues/{name}/items`: one item or a batch, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItems {
    pub items: Vec<NewItem>,
}

/// `GET /v1/items?…`: every filter and paging knob of `item ls`, as query parameters.
/// `status` is a comma-separated list; `expired` true or false.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    pub queue: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub priority: Option<String>,
    pub sla: Option<String>,
    pub expired: Option<bool>,
    pub search: Option<String>,
    pub signature: Option<String>,
    pub worker: Option<String>,
    pub offset: Option<u64>,
    pub limit: Option<u32>,
    pub sort: Option<String>,
    pub descending: Option<bool>,
    pub count: Option<String>,
    pub after: Option<String>,
}

impl ItemsQuery {
    /// The filter and page this asks for; a bad value is an error naming its parameter.
    pub fn to_request(&self) -> Result<(Filter, PageRequest), Error> {
        fn parse<T: std::str::FromStr<Err = String>>(
            field: &str,
            v: &Option<String>,
        ) -> Result<Option<T>, Error> {
            v.as_deref()
                .map(|s| s.parse().map_err(|m: String| Error::invalid(field, m)))
                .transpose()
        }
        let statuses = match &self.status {
            None => vec![],
            Some(s) => s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.parse().map_err(|m: String| Error::invalid("status", m)))
                .collect::<Result<_, _>>()?,
        };
        let filter = Filter {
            queue: self.queue.clone(),
            statuses,
            reason: parse("reason", &self.reason)?,
            priority: parse("priority", &self.priority)?,
            sla: parse("sla", &self.sla)?,
            expired: self.expired,
            search: self.search.clone(),
            signature: self.signature.clone(),
            worker: self.worker.clone(),
        };
        let d = PageRequest::default();
        let sort = match self.sort.as_deref() {
            None => d.sort,
            Some("enqueued") => SortBy::Enqueued,
            Some("priority") => SortBy::Priority,
            Some("name") => SortBy::Name,
            Some("status") => SortBy::Status,
            Some(other) => {
                return Err(Error::invalid(
                    "sort",
                    format!("unknown sort '{other}' (expected enqueued, priority, name or status)"),
                ))
            }
        };
        let count = match self.count.as_deref() {
            None => d.count,
            Some("capped") => Count::Capped,
            Some("exact") => Count::Exact,
            Some("skip") => Count::Skip,
            Some(other) => {
                return Err(Error::invalid(
                    "count",
                    format!("unknown count '{other}' (expected capped, exact or skip)"),
                ))
            }
        };
        let page = PageRequest {
            offset: self.offset.unwrap_or(0),
            limit: self.limit.unwrap_or(d.limit),
            sort,
            descending: self.descending.unwrap_or(false),
            count,
            after: self.after.clone(),
        };
        Ok((filter, page))
    }

    /// The query that asks for `filter` and `page` (what a client sends).
    pub fn from_request(filter: &Filter, page: &PageRequest) -> ItemsQuery {
        let sort = match page.sort {
            SortBy::Enqueued => "enqueued",
            SortBy::Priority => "priority",
            SortBy::Name => "name",
            SortBy::Status => "status",
        };
        let count = match page.count {
            Count::Capped => "capped",
            Count::Exact => "exact",
            Count::Skip => "skip",
        };
        ItemsQuery {
            queue: filter.queue.clone(),
            status: (!filter.statuses.is_empty()).then(|| {
                filter
                    .statuses
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            reason: filter.reason.map(|r| r.to_string()),
            priority: filter.priority.map(|p| p.to_string()),
            sla: filter.sla.map(|s| s.to_string()),
            expired: filter.expired,
            search: filter.search.clone(),
            signature: filter.signature.clone(),
            worker: filter.worker.clone(),
            offset: Some(page.offset),
            limit: Some(page.limit),
            sort: Some(sort.into()),
            descending: Some(page.descending),
            count: Some(count.into()),
            after: page.after.clone(),
        }
    }
}

/// `GET /v1/groups?queue=`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupsQuery {
    pub queue: Option<String>,
}

/// `GET /v1/queues/{name}/upcoming?within_ms=&limit=`: items whose delay ends within the
/// window, soonest first.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpcomingQuery {
    /// The window from now, in milliseconds.
    pub within_ms: u64,
    /// At most this many items (1 to 10,000; default 100).
    #[serde(default = "upcoming_limit")]
    pub limit: u32,
}

fn upcoming_limit() -> u32 {
    100
}

/// `GET /v1/actions?queue=&limit=`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    pub queue: Option<String>,
    pub limit: Option<u32>,
}

/// `POST /v1/queues/{name}/import?…`: the file is the body, as is.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// csv or jsonl (default csv).
    pub format: Option<String>,
    #[serde(default)]
    pub skip_bad: bool,
    #[serde(default)]
    pub dry_run: bool,
    pub key_column: Option<String>,
    pub name_column: Option<String>,
    pub delimiter: Option<String>,
}

/// What an import did: the store's report, and what the parser saw (for a dry run: how
/// the columns map and the first rows as they would be stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportDone {
    #[serde(flatten)]
    pub report: ImportReport,
    pub rows: u64,
    pub columns: Option<crate::import::Columns>,
    pub sample: Vec<ImportRow>,
}

/// `POST /v1/dequeue`. `worker` names the worker under the token: history says
/// `token:NAME/WORKER` (`token:NAME` without one). `wait` in milliseconds, capped by the
/// server's `--max-wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dequeue {
    pub queues: Vec<String>,
    #[serde(default)]
    pub worker: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub wait: u64,
}

fn one() -> u32 {
    1
}

/// `POST /v1/workers`: an agent registers (`workq work`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The agent's own name; the server records it as `token:NAME/WORKER`.
    pub worker: String,
    pub agent: crate::model::AgentInfo,
}

/// The name a registration was recorded under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub worker: String,
}

/// `POST /v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub id: String,
    pub lease: String,
}

/// The header every answer carries with the id of the server's newest event, so that a
/// client subscribing later resumes from there and misses nothing made after that answer.
pub const LAST_EVENT_HEADER: &str = "x-workq-last-event";

/// `POST /v1/heartbeats`: several leases in one call, each answered alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeats {
    pub leases: Vec<crate::model::LeaseRef>,
}

/// The new deadline of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseUntil {
    pub id: String,
    #[serde(with = "time_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub lease_until: Time,
}

/// `POST /v1/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    pub id: String,
    pub lease: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub worker: Option<String>,
}

/// `POST /v1/fail`: an exception with its reason (generic, it or business).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    pub id: String,
    pub lease: String,
    pub reason: Reason,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub worker: Option<String>,
    /// With reason `it`: postpone the item, back to the queue after this long (ms),
    /// without counting a retry.
    #[serde(with = "crate::model::opt_duration_ms", default)]
    #[schema(value_type = Option<u64>)]
    pub retry_in: Option<std::time::Duration>,
}

/// `POST /v1/finish`: many outcomes at once, each applied or refused on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    pub outcomes: Vec<Outcome>,
    #[serde(default)]
    pub worker: Option<String>,
}

/// `POST /v1/hand-back`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandBackLeases {
    pub leases: Vec<HandBack>,
    pub note: String,
    #[serde(default)]
    pub worker: Option<String>,
}

/// One answer of a batch: `{"ok": …}` or `{"error": …}`, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Each<T> {
    Ok(T),
    Error(Error),
}

impl<T> From<Result<T, Error>> for Each<T> {
    fn from(r: Result<T, Error>) -> Self {
        match r {
            Ok(t) => Each::Ok(t),
            Err(e) => Each::Error(e),
        }
    }
}

impl<T> From<Each<T>> for Result<T, Error> {
    fn from(e: Each<T>) -> Self {
        match e {
            Each::Ok(t) => Ok(t),
            Each::Error(e) => Err(e),
        }
    }
}

/// `POST /v1/preview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub target: Target,
    #[serde(default)]
    pub action: Option<ActionKind>,
    #[serde(default = "sample")]
    pub sample: u32,
}

fn sample() -> u32 {
    20
}

/// `POST /v1/actions`: a human action; the actor is the token (`token:NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Act {
    pub target: Target,
    pub action: ActionKind,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub skip_refused: bool,
}

/// `POST /v1/actions/{id}/undo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Undo {
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// What `POST /v1/sweep` timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Swept {
    pub timed_out: u64,
}

/// `POST /v1/alerts/{name}/state`: the compare-and-set of an alert's transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlertState {
    pub seen_generation: u64,
    pub to: crate::alert::AlertState,
}

/// The answer of `POST /v1/alerts/{name}/state`: `alert` is `None` when another checker
/// moved it first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertMoved {
    pub alert: Option<crate::alert::Alert>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
}

/// `POST /v1/tokens/verify`: whose token a secret is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyToken {
    pub token: String,
}

/// `GET /healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    /// Whether this server runs the periodic work (lease sweeps, alert checks): on a
    /// database several servers share, exactly one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<bool>,
}

/// The `event:` names of `GET /v1/events` besides the engine's own (`items`, `queue`).
pub const EVENT_REFETCH: &str = "refetch";
pub const EVENT_SHUTDOWN: &str = "shutdown";

/// The data of a `refetch` event: why the stream could not carry on from where the client was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refetch {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_query_says_the_filter_and_page_it_came_from() {
        let filter = Filter {
            queue: Some("q".into()),
            statuses: vec![Status::Exception, Status::OnHold],
            reason: Some(Reason::It),
            sla: Some(Sla::AtRisk),
            expired: Some(false),
            search: Some("a,b&c".into()),
            ..Default::default()
        };
        let page = PageRequest {
            offset: 3,
            limit: 7,
            sort: SortBy::Name,
            descending: true,
            count: Count::Exact,
            after: None,
        };
        let q = ItemsQuery::from_request(&filter, &page);
        assert_eq!(q.to_request().unwrap(), (filter, page));
        let bad = ItemsQuery {
            status: Some("queued,nope".into()),
            ..Default::default()
        };
        match bad.to_request().unwrap_err() {
            Error::Invalid { field, message, .. } => {
                assert_eq!(field, "status");
                assert!(message.contains("'nope'"), "{message}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn batch_answers_read_back_as_results() {
        let each: Vec<Each<u32>> = vec![Ok(1).into(), Err(Error::invalid("x", "bad")).into()];
        let v = serde_json::to_value(&each).unwrap();
        assert_eq!(v[0], serde_json::json!({"ok": 1}));
        assert_eq!(v[1]["error"]["kind"], "invalid");
        let back: Vec<Each<u32>> = serde_json::from_value(v).unwrap();
        assert_eq!(back, each);
    }
}
