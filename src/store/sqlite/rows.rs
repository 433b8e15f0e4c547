//! Rows as stored, and their conversion to the model.

use crate::backend::{Error, Result, StorageCause, Thing};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules;
use rusqlite::{Connection, OptionalExtension, Row as SqlRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

pub const ITEM_COLS: &str = "i.seq, i.id, i.queue_id, i.name, i.key, i.value, i.priority, \
    i.status, i.reason, i.notes, i.signature, i.retry_count, i.requeue_count, i.enqueued_at, \
    i.started_at, i.finished_at, i.expires_at, i.delay_until, i.worker, i.lease_token, \
    i.lease_until, i.version, i.created_by";

/// The same columns without the table alias, for `RETURNING`.
pub fn returning_cols() -> &'static str {
    static COLS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLS.get_or_init(|| ITEM_COLS.replace("i.", ""))
}

/// An item row. Serialized whole into `action_items.before` for undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRow {
    pub seq: i64,
    pub id: String,
    pub queue_id: i64,
    pub name: Option<String>,
    pub key: Option<String>,
    /// `None` only in undo snapshots of actions that leave the value alone.
    pub value: Option<String>,
    pub priority: i64,
    pub status: Status,
    pub reason: Option<Reason>,
    pub notes: Option<String>,
    pub signature: Option<String>,
    pub retry_count: i64,
    pub requeue_count: i64,
    pub enqueued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub delay_until: Option<i64>,
    pub worker: Option<String>,
    pub lease_token: Option<String>,
    pub lease_until: Option<i64>,
    pub version: i64,
    pub created_by: String,
}

fn parse<T: std::str::FromStr<Err = String>>(idx: usize, s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

impl ItemRow {
    pub fn from_sql(r: &SqlRow) -> rusqlite::Result<ItemRow> {
        Ok(ItemRow {
            seq: r.get(0)?,
            id: r.get(1)?,
            queue_id: r.get(2)?,
            name: r.get(3)?,
            key: r.get(4)?,
            value: r.get(5)?,
            priority: r.get(6)?,
            status: parse(7, r.get(7)?)?,
            reason: r
                .get::<_, Option<String>>(8)?
                .map(|s| parse(8, s))
                .transpose()?,
            notes: r.get(9)?,
            signature: r.get(10)?,
            retry_count: r.get(11)?,
            requeue_count: r.get(12)?,
            enqueued_at: r.get(13)?,
            started_at: r.get(14)?,
            finished_at: r.get(15)?,
            expires_at: r.get(16)?,
            delay_until: r.get(17)?,
            worker: r.get(18)?,
            lease_token: r.get(19)?,
            lease_until: r.get(20)?,
            version: r.get(21)?,
            created_by: r.get(22)?,
        })
    }

    pub fn notes(&self) -> Vec<Note> {
        self.notes
            .as_deref()
            .and_then(|n| serde_json::from_str(n).ok())
            .unwrap_or_default()
    }

    /// What the state machine reads and writes of the row.
    pub fn state(&self) -> rules::ItemState {
        rules::ItemState {
            status: self.status,
            reason: self.reason,
            signature: self.signature.clone(),
            retry_count: self.retry_count.max(0) as u32,
            requeue_count: self.requeue_count.max(0) as u32,
            priority: Priority::from_rank(self.priority),
            started_at: self.started_at,
            finished_at: self.finished_at,
            expires_at: self.expires_at,
            delay_until: self.delay_until,
            worker: self.worker.clone(),
            lease_token: self.lease_token.clone(),
            lease_until: self.lease_until,
        }
    }

    /// Takes what the state machine made of the row's state.
    pub fn set_state(&mut self, s: rules::ItemState) {
        self.status = s.status;
        self.reason = s.reason;
        self.signature = s.signature;
        self.retry_count = s.retry_count as i64;
        self.requeue_count = s.requeue_count as i64;
        self.priority = s.priority.rank();
        self.started_at = s.started_at;
        self.finished_at = s.finished_at;
        self.expires_at = s.expires_at;
        self.delay_until = s.delay_until;
        self.worker = s.worker;
        self.lease_token = s.lease_token;
        self.lease_until = s.lease_until;
    }

    /// What the rules' conditions read of the row (`q`: its queue, for the SLA).
    pub fn facts(&self, q: Option<&Queue>) -> rules::Facts {
        rules::Facts {
            status: self.status,
            enqueued_at: self.enqueued_at,
            finished_at: self.finished_at,
            expires_at: self.expires_at,
            delay_until: self.delay_until,
            lease_until: self.lease_until,
            sla_ms: q.and_then(|q| q.sla).map(|d| d.as_millis() as i64),
            risk_pct: q.map_or(0, |q| q.sla_risk_pct),
            started_at: self.started_at,
            max_runtime_ms: q.and_then(|q| q.max_runtime).map(|d| d.as_millis() as i64),
        }
    }

    pub fn to_item(&self, q: &QueueRow, now: Time) -> Item {
        let status = self.status;
        let finished_at = self.finished_at.map(from_ms);
        let expires_at = self.expires_at.map(from_ms);
        let facts = self.facts(Some(&q.queue));
        let now_ms = now.timestamp_millis();
        let expired = rules::EXPIRED.holds(&facts, now_ms);
        Item {
            id: self.id.clone(),
            queue: q.queue.name.clone(),
            name: self.name.clone(),
            key: self.key.clone(),
            value: self.value.clone().unwrap_or_default(),
            priority: Priority::from_rank(self.priority),
            status,
            reason: self.reason,
            notes: self.notes(),
            retry_count: self.retry_count as u32,
            requeue_count: self.requeue_count as u32,
            enqueued_at: from_ms(self.enqueued_at),
            started_at: self.started_at.map(from_ms),
            finished_at,
            expires_at,
            delay_until: self.delay_until.map(from_ms),
            worker: self.worker.clone(),
            sla: rules::sla_of(&facts, now_ms),
            expired,
            version: self.version as u64,
        }
    }
}

/// A queue row: the queue, its counters and its id.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: i64,
    pub queue: Queue,
    pub counts: StatusCounts,
}

pub const QUEUE_COLS: &str = "id, name, description, state, ttl_ms, sla_ms, sla_risk_pct, \
    deadline, tz, max_retries, lease_ms, concurrency, priority, created_at, \
    n_queued, n_processing, n_processed, n_on_hold, n_exception, \
    retry_backoff_ms, retry_backoff_max_ms, max_runtime_ms";

fn ms(v: Option<i64>) -> Option<Duration> {
    v.map(|m| Duration::from_millis(m.max(0) as u64))
}

impl QueueRow {
    pub fn from_sql(r: &SqlRow) -> rusqlite::Result<QueueRow> {
        Ok(QueueRow {
            id: r.get(0)?,
            queue: Queue {
                name: r.get(1)?,
                description: r.get(2)?,
                state: parse(3, r.get(3)?)?,
                ttl: ms(r.get(4)?),
                sla: ms(r.get(5)?),
                sla_risk_pct: r.get(6)?,
                deadline: r.get(7)?,
                tz: r.get(8)?,
                max_retries: r.get(9)?,
                lease: ms(Some(r.get(10)?)).unwrap_or(DEFAULT_LEASE),
                max_runtime: ms(r.get(21)?),
                concurrency: r.get(11)?,
                priority: r.get(12)?,
                retry_backoff: match (ms(r.get(19)?), ms(r.get(20)?)) {
                    (Some(delay), Some(max)) => Some(Backoff { delay, max }),
                    _ => None,
                },
                created_at: from_ms(r.get(13)?),
            },
            counts: StatusCounts {
                queued: r.get::<_, i64>(14)?.max(0) as u64,
                processing: r.get::<_, i64>(15)?.max(0) as u64,
                processed: r.get::<_, i64>(16)?.max(0) as u64,
                on_hold: r.get::<_, i64>(17)?.max(0) as u64,
                exception: r.get::<_, i64>(18)?.max(0) as u64,
            },
        })
    }
}

/// A statement's text built from the column lists once, not on every call (the statement
/// cache is keyed by the text, so it was built only to be looked up).
macro_rules! sql_once {
    ($($arg:tt)*) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| format!($($arg)*)).as_str()
    }};
}
pub(super) use sql_once;

pub fn queue_by_name(conn: &Connection, name: &str) -> Result<QueueRow> {
    conn.prepare_cached(sql_once!("SELECT {QUEUE_COLS} FROM queues WHERE name = ?1"))
        .and_then(|mut st| st.query_row([name], QueueRow::from_sql).optional())
        .map_err(sql)?
        .ok_or_else(|| Error::not_found(Thing::Queue, name))
}

pub fn all_queues(conn: &Connection) -> Result<HashMap<i64, QueueRow>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {QUEUE_COLS} FROM queues"))
        .map_err(sql)?;
    let rows = st.query_map([], QueueRow::from_sql).map_err(sql)?;
    let mut out = HashMap::new();
    for r in rows {
        let r = r.map_err(sql)?;
        out.insert(r.id, r);
    }
    Ok(out)
}

pub fn item_by_id(conn: &Connection, id: &str) -> Result<ItemRow> {
    conn.prepare_cached(sql_once!("SELECT {ITEM_COLS} FROM items i WHERE i.id = ?1"))
        .and_then(|mut st| st.query_row([id], ItemRow::from_sql).optional())
        .map_err(sql)?
        .ok_or_else(|| Error::not_found(Thing::Item, id))
}

/// An SQL error inside a job; the file-level ones are mapped by `schema::storage`.
pub fn sql(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    if super::schema::is_disk_full(&e) {
        return Error::storage(
            StorageCause::DiskFull,
            None,
            "disk full: the database cannot grow (free some space and try again)",
        );
    }
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => super::schema::locked(None),
        Some(ReadOnly) => Error::storage(StorageCause::ReadOnly, None, "database is read-only"),
        _ => Error::storage(StorageCause::Io, None, format!("database error: {e}")),
    }
}

pub fn status_column(s: Status) -> &'static str {
    match s {
        Status::Queued => "n_queued",
        Status::Processing => "n_processing",
        Status::Processed => "n_processed",
        Status::OnHold => "n_on_hold",
        Status::Exception => "n_exception",
    }
}
