//! Errors as data: what crosses the `Backend` seam when a request is refused or fails. Each
//! is a serde type with a stable `kind` and the facts of the case (which item, which
//! statuses, which queue, which lease…), so a test or an HTTP client reads the facts and a
//! person reads `message`, which is also the error's `Display`.
//!
//! The message is carried, not re-derived: a client that rebuilds an error from JSON shows
//! exactly what the engine said. Constructors below write the messages, so the stores
//! state facts and never word an error themselves where a constructor exists.

use crate::model::{time_ms, KeptItem, RowError, Status, Time, To};
use crate::numbers::{count, thousands};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Error {
    /// An unknown queue, item or action.
    #[error("{message}")]
    NotFound {
        what: Thing,
        name: String,
        message: String,
    },
    /// Bad input from the caller. `field` names the input (a setting, a flag's value, an
    /// item's field, `rows` for an import), `index` which of several items (from 1).
    #[error("{message}")]
    Invalid {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
        /// The bad rows of a refused import, each with its line and column.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rows: Vec<RowError>,
        message: String,
    },
    /// A move the rules refuse: `refused` of the `total` items named cannot take `action`
    /// (its verb: `release`, `hand-back`…); `items` lists the first of them with the status
    /// each is in and why.
    #[error("{message}")]
    Transition {
        action: String,
        total: u64,
        refused: u64,
        items: Vec<Refused>,
        message: String,
    },
    /// The request clashes with the current state: a stale lease, a duplicate key, an item
    /// held by a person, an undo that cannot be made.
    #[error("{message}")]
    Conflict {
        #[serde(flatten)]
        conflict: Conflict,
        message: String,
    },
    /// The database is locked by someone else for longer than the engine waits.
    #[error("{message}")]
    Busy {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// How long the engine waited before giving up, when it waited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited_ms: Option<u64>,
        message: String,
    },
    /// The database cannot be used.
    #[error("{message}")]
    Storage {
        cause: StorageCause,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        message: String,
    },
    /// A server refused the request before it reached the engine: no token, or one it does
    /// not know (wrong, revoked).
    #[error("{message}")]
    Unauthorized { message: String },
    /// The token's role may not do this: `role` is the token's, `needs` the least role that may.
    #[error("{message}")]
    Forbidden {
        role: String,
        needs: String,
        message: String,
    },
    /// A request body over the server's limit (`limit` bytes).
    #[error("{message}")]
    TooLarge { limit: u64, message: String },
    /// Too many requests from one token: try again after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        retry_after_secs: u64,
        message: String,
    },
    /// The server gave up on a request after `after_ms`; it may or may not have been applied
    /// only when the engine had already taken it (a write is all or nothing either way).
    #[error("{message}")]
    Timeout { after_ms: u64, message: String },
}

/// In the API document: an object with its `kind` and `message`, and the facts of its kind.
impl utoipa::PartialSchema for Error {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([
                        "not_found",
                        "invalid",
                        "transition",
                        "conflict",
                        "busy",
                        "storage",
                        "unauthorized",
                        "forbidden",
                        "too_large",
                        "rate_limited",
                        "timeout",
                    ])),
            )
            .required("kind")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::<
                utoipa::openapi::Schema,
            >::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Error {}

/// What an unknown name was meant to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Thing {
    Queue,
    Item,
    Action,
    /// A database file a command that only reads was pointed at (it never makes one).
    Database,
    /// A server's bearer token, by name.
    Token,
    /// A path the server has no route for.
    Route,
    /// An alert, by name.
    Alert,
}

impl Thing {
    pub fn as_str(self) -> &'static str {
        match self {
            Thing::Queue => "queue",
            Thing::Item => "item",
            Thing::Action => "action",
            Thing::Database => "database",
            Thing::Token => "token",
            Thing::Route => "route",
            Thing::Alert => "alert",
        }
    }
}

/// One item a transition refused: where it is and why it cannot go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub id: String,
    pub from: Status,
    /// Where the action would have taken it (`None`: the action keeps the status).
    pub to: Option<To>,
    pub why: String,
}

/// Most refused items a transition error names one by one (`refused` counts them all).
pub const REFUSED_LISTED: usize = 1000;

/// What a request clashed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "conflict", rename_all = "snake_case")]
pub enum Conflict {
    QueueExists {
        queue: String,
    },
    /// Deleting a queue that still has items needs force.
    QueueNotEmpty {
        queue: String,
        items: u64,
    },
    /// `index`: which of several items added at once (from 1).
    DuplicateKey {
        queue: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
    },
    /// The token does not match the item's current lease.
    StaleLease {
        id: String,
    },
    /// A person held the item while a worker processed it.
    OnHold {
        id: String,
    },
    /// The item is not under any lease now (it timed out, or someone else finished it).
    NotLeased {
        id: String,
        status: Status,
    },
    /// The item changed between two steps of one request; trying again is safe.
    Changed {
        id: String,
    },
    AlreadyUndone {
        action_id: i64,
        verb: String,
        #[serde(with = "time_ms")]
        at: Time,
    },
    /// An undo that would restore nothing (or, `strict`, not everything).
    UndoRefused {
        action_id: i64,
        total: u64,
        restorable: u64,
        strict: bool,
        kept: Vec<KeptItem>,
    },
    /// A deleted item cannot come back: a newer item took its key.
    KeyTaken {
        action_id: i64,
        id: String,
    },
    /// The item a listing was to continue after no longer exists.
    ListingGone {
        id: String,
    },
    /// A live token already has this name (revoke it first).
    TokenExists {
        name: String,
    },
    /// An alert already has this name.
    AlertExists {
        name: String,
    },
    /// The item has run past its queue's max runtime: its lease cannot be extended, and the
    /// sweep times it out.
    MaxRuntime {
        id: String,
        #[serde(with = "crate::model::duration_ms")]
        max_runtime: std::time::Duration,
    },
}

impl Conflict {
    /// The message of a conflict that is told by its facts alone.
    fn message(&self) -> String {
        const NOT_RECORDED: &str = "your result was not recorded";
        match self {
            Conflict::QueueExists { queue } => format!("queue '{queue}' already exists"),
            Conflict::QueueNotEmpty { queue, items } => format!(
                "queue '{queue}' still has {}; delete it with --force to delete them too",
                count(*items, "item")
            ),
            Conflict::DuplicateKey { queue, key, index } => format!(
                "{}duplicate key '{key}': queue '{queue}' already has an item with this key",
                index.map(|i| format!("item {i}: ")).unwrap_or_default()
            ),
            Conflict::StaleLease { id } => format!(
                "stale lease for item {id}: the token does not match its current lease (yours \
                 expired and it was leased again, or the token is wrong); {NOT_RECORDED}"
            ),
            Conflict::OnHold { id } => format!(
                "item {id} is on hold: a person held it while it was being processed; {NOT_RECORDED}"
            ),
            Conflict::NotLeased { id, status } => format!(
                "item {id} is {status}, not processing under your lease (it timed out or was \
                 handled by someone else); {NOT_RECORDED}"
            ),
            Conflict::Changed { id } => format!("item {id} changed meanwhile; try again"),
            Conflict::AlreadyUndone {
                action_id,
                verb,
                at,
            } => format!(
                "action {action_id} ({verb}) was already undone at {}",
                at.to_rfc3339()
            ),
            Conflict::UndoRefused {
                action_id,
                total,
                restorable,
                ..
            } => format!(
                "cannot undo action {action_id}: {} of its {} items can be restored",
                thousands(*restorable),
                thousands(*total)
            ),
            Conflict::KeyTaken { action_id, id } => format!(
                "cannot undo action {action_id}: item {id}'s key is taken by a newer item"
            ),
            Conflict::ListingGone { id } => format!(
                "item {id}, where the listing was to continue, no longer exists; list again"
            ),
            Conflict::MaxRuntime { id, max_runtime } => format!(
                "item {id} has run past its queue's max runtime of {}: the lease cannot be \
                 extended and the item is timed out; {NOT_RECORDED}",
                crate::rules::format_duration(*max_runtime)
            ),
            Conflict::TokenExists { name } => format!(
                "a token named '{name}' already exists; revoke it first (workq token revoke {name})"
            ),
            Conflict::AlertExists { name } => format!(
                "an alert named '{name}' already exists; remove it first (workq alert rm {name})"
            ),
        }
    }
}

/// Why the database cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageCause {
    /// The path is a directory, or its directory cannot be made.
    BadPath,
    ReadOnly,
    /// A file that is not a workq database.
    NotWorkq,
    /// Written by a newer workq.
    NewerSchema,
    /// Needs a schema upgrade that a read-only open cannot make.
    NeedsUpgrade,
    DiskFull,
    CannotOpen,
    /// The engine's own machinery stopped (the writer thread, a reader task).
    Stopped,
    /// Anything else the database reported.
    Io,
}

impl Error {
    pub fn not_found(what: Thing, name: impl Into<String>) -> Self {
        let name = name.into();
        Error::NotFound {
            message: format!("unknown {} '{name}'", what.as_str()),
            what,
            name,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            index: None,
            rows: vec![],
            message: message.into(),
        }
    }

    /// Bad input in the `index`th of several items: the message says which.
    pub fn invalid_item(field: impl Into<String>, index: u64, message: &str) -> Self {
        Error::Invalid {
            field: field.into(),
            index: Some(index),
            rows: vec![],
            message: format!("item {index}: {message}"),
        }
    }

    pub fn conflict(conflict: Conflict) -> Self {
        Error::Conflict {
            message: conflict.message(),
            conflict,
        }
    }

    /// A refused move of one item: "item X: cannot go from … to …".
    pub fn refused_one(action: &str, r: Refused) -> Self {
        Error::Transition {
            action: action.to_string(),
            total: 1,
            refused: 1,
            message: format!("item {}: {}", r.id, r.why),
            items: vec![r],
        }
    }

    /// An all-or-nothing action refused because `refused` of its `total` items cannot take
    /// it ("3 of 5 items cannot be released; nothing changed:" and the first few, by item).
    /// `refused` holds every refused item; the first `REFUSED_LISTED` are kept.
    pub fn refused_action(
        verb: &str,
        past_tense: &str,
        total: u64,
        mut refused: Vec<Refused>,
    ) -> Self {
        let n = refused.len() as u64;
        let mut message = format!(
            "{} of {} items cannot be {past_tense}; nothing changed:",
            thousands(n),
            thousands(total)
        );
        for r in refused.iter().take(5) {
            message.push_str(&format!("\n  item {}: {}", r.id, r.why));
        }
        if n > 5 {
            message.push_str(&format!("\n  … and {} more", thousands(n - 5)));
        }
        refused.truncate(REFUSED_LISTED);
        Error::Transition {
            action: verb.to_string(),
            total,
            refused: n,
            items: refused,
            message,
        }
    }

    /// "database X is locked by another process (waited 5.2s); try again".
    pub fn busy(path: Option<&Path>, waited: Option<Duration>) -> Self {
        let db = match path {
            Some(p) => format!("database {}", p.display()),
            None => "the database".to_string(),
        };
        let message = match waited {
            Some(w) => format!(
                "{db} is locked by another process (waited {:.1}s); try again",
                w.as_secs_f64()
            ),
            None => format!("{db} is locked by another process; try again"),
        };
        Error::Busy {
            path: path.map(|p| p.display().to_string()),
            waited_ms: waited.map(|w| w.as_millis() as u64),
            message,
        }
    }

    pub fn storage(cause: StorageCause, path: Option<&Path>, message: impl Into<String>) -> Self {
        Error::Storage {
            cause,
            path: path.map(|p| p.display().to_string()),
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::Unauthorized {
            message: message.into(),
        }
    }

    pub fn forbidden(role: &str, needs: &str, what: &str) -> Self {
        Error::Forbidden {
            role: role.to_string(),
            needs: needs.to_string(),
            message: format!(
                "{} {role} token may not {what}: that needs {} {needs} token; nothing was changed",
                article(role),
                article(needs)
            ),
        }
    }

    pub fn too_large(limit: u64) -> Self {
        Error::TooLarge {
            limit,
            message: format!(
                "the request body is over the server's limit of {} bytes; nothing was changed",
                thousands(limit)
            ),
        }
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Error::RateLimited {
            retry_after_secs,
            message: format!(
                "too many requests with this token; try again in {}; nothing was changed",
                count(retry_after_secs, "second")
            ),
        }
    }

    pub fn timeout(after: Duration) -> Self {
        Error::Timeout {
            after_ms: after.as_millis() as u64,
            message: format!(
                "the server gave up on the request after {:.1}s",
                after.as_secs_f64()
            ),
        }
    }

    /// A short, stable name for the kind, for `--json` errors and HTTP bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Invalid { .. } => "invalid",
            Error::Transition { .. } => "transition",
            Error::Conflict { .. } => "conflict",
            Error::Busy { .. } => "busy",
            Error::Storage { .. } => "storage",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::TooLarge { .. } => "too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Timeout { .. } => "timeout",
        }
    }

    /// The conflict, when this is one.
    pub fn conflict_of(&self) -> Option<&Conflict> {
        match self {
            Error::Conflict { conflict, .. } => Some(conflict),
            _ => None,
        }
    }
}

/// "a" or "an" before a role's name.
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What an HTTP client will do: read the JSON back into the same error, facts and
    /// message alike.
    #[test]
    fn errors_cross_the_wire_and_come_back_the_same() {
        let at = chrono::DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        let errors = [
            Error::not_found(Thing::Queue, "nope"),
            Error::invalid_item("value", 2, "value is too big"),
            Error::refused_action(
                "release",
                "released",
                2,
                vec![Refused {
                    id: "01A".into(),
                    from: Status::Queued,
                    to: Some(To::Status(Status::Queued)),
                    why: "cannot release an item that is queued".into(),
                }],
            ),
            Error::conflict(Conflict::StaleLease { id: "01A".into() }),
            Error::conflict(Conflict::NotLeased {
                id: "01A".into(),
                status: Status::Processed,
            }),
            Error::conflict(Conflict::AlreadyUndone {
                action_id: 7,
                verb: "hold".into(),
                at,
            }),
            Error::conflict(Conflict::DuplicateKey {
                queue: "q".into(),
                key: "K".into(),
                index: Some(3),
            }),
            Error::busy(Some(Path::new("a.db")), Some(Duration::from_millis(5200))),
            Error::storage(StorageCause::ReadOnly, None, "database is read-only"),
            Error::unauthorized("no token"),
            Error::forbidden("viewer", "admin", "create a queue"),
            Error::too_large(1024),
            Error::rate_limited(3),
            Error::timeout(Duration::from_secs(30)),
            Error::conflict(Conflict::TokenExists { name: "ci".into() }),
        ];
        for e in errors {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["kind"], e.kind(), "{v}");
            assert_eq!(v["message"], e.to_string(), "{v}");
            let back: Error = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(back, e, "{v}");
        }
    }

    #[test]
    fn the_facts_sit_beside_the_kind_and_read_as_before() {
        let e = Error::conflict(Conflict::StaleLease { id: "01A".into() });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["conflict"], "stale_lease");
        assert_eq!(v["id"], "01A");
        assert!(
            e.to_string().starts_with("stale lease for item 01A: "),
            "{e}"
        );
        let e = Error::refused_action(
            "release",
            "released",
            9,
            (0..7)
                .map(|i| Refused {
                    id: format!("I{i}"),
                    from: Status::Exception,
                    to: Some(To::Status(Status::Queued)),
                    why: "only on-hold items are released".into(),
                })
                .collect(),
        );
        assert_eq!(
            e.to_string().lines().collect::<Vec<_>>(),
            [
                "7 of 9 items cannot be released; nothing changed:",
                "  item I0: only on-hold items are released",
                "  item I1: only on-hold items are released",
                "  item I2: only on-hold items are released",
                "  item I3: only on-hold items are released",
                "  item I4: only on-hold items are released",
                "  … and 2 more",
            ]
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["refused"], 7);
        assert_eq!(
            v["items"][0],
            json!({"id": "I0", "from": "exception", "to": "queued", "why": "only on-hold items are released"})
        );
        assert_eq!(
            Error::busy(Some(Path::new("a.db")), Some(Duration::from_millis(5200))).to_string(),
            "database a.db is locked by another process (waited 5.2s); try again"
        );
    }
}
