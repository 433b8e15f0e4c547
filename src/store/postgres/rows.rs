//! Rows as PostgreSQL returns them, into the rows the SQLite store uses (the same
//! `ItemRow`, so undo records read alike), and the lookups every part needs.

use super::{p, Ctx};
use crate::backend::{Error, Result, Thing};
use crate::clock::from_ms;
use crate::model::*;
use crate::store::sqlite::rows::QUEUE_COLS as SQLITE_QUEUE_COLS;
pub use crate::store::sqlite::rows::{status_column, ItemRow, QueueRow, ITEM_COLS};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::Row;

fn parse<T: std::str::FromStr<Err = String>>(s: String) -> T {
    s.parse()
        .unwrap_or_else(|e: String| panic!("a stored value the model does not know: {e}"))
}

pub fn item(r: &Row) -> ItemRow {
    ItemRow {
        seq: r.get(0),
        id: r.get(1),
        queue_id: r.get(2),
        name: r.get(3),
        key: r.get(4),
        value: r.get(5),
        priority: r.get(6),
        status: parse(r.get(7)),
        reason: r.get::<_, Option<String>>(8).map(parse),
        notes: r.get(9),
        signature: r.get(10),
        retry_count: r.get(11),
        requeue_count: r.get(12),
        enqueued_at: r.get(13),
        started_at: r.get(14),
        finished_at: r.get(15),
        expires_at: r.get(16),
        delay_until: r.get(17),
        worker: r.get(18),
        lease_token: r.get(19),
        lease_until: r.get(20),
        version: r.get(21),
        created_by: r.get(22),
    }
}

pub fn items(rows: &[Row]) -> Vec<ItemRow> {
    rows.iter().map(item).collect()
}

fn ms(v: Option<i64>) -> Option<Duration> {
    v.map(|m| Duration::from_millis(m.max(0) as u64))
}

pub fn queue(r: &Row) -> QueueRow {
    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    QueueRow {
        id: r.get(0),
        queue: Queue {
            name: r.get(1),
            description: r.get(2),
            state: parse(r.get(3)),
            ttl: ms(r.get(4)),
            sla: ms(r.get(5)),
            sla_risk_pct: r.get::<_, i64>(6).clamp(0, 100) as u8,
            deadline: r.get(7),
            tz: r.get(8),
            max_retries: r.get::<_, i64>(9).max(0) as u32,
            lease: ms(Some(r.get(10))).unwrap_or(DEFAULT_LEASE),
            max_runtime: ms(r.get(21)),
            concurrency: r.get::<_, Option<i64>>(11).map(|c| c.max(0) as u32),
            priority: r.get::<_, i64>(12) as i32,
            retry_backoff: match (ms(r.get(19)), ms(r.get(20))) {
                (Some(delay), Some(max)) => Some(Backoff { delay, max }),
                _ => None,
            },
            created_at: from_ms(r.get(13)),
        },
        counts: StatusCounts {
            queued: n(14),
            processing: n(15),
            processed: n(16),
            on_hold: n(17),
            exception: n(18),
        },
    }
}

/// A queue row's SELECT, up to its WHERE: the SQLite store's columns, but each counter
/// the base in `queues` plus its shards' sum in `queue_counts` (schema version 4), the
/// shards read in one pass: a few small rows per queue.
pub fn queue_select() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut cols = SQLITE_QUEUE_COLS.replace("id, name,", "queues.id, name,");
        let mut sums = Vec::new();
        for s in Status::ALL {
            let c = status_column(*s);
            cols = cols.replace(
                &format!("{c},"),
                &format!("(queues.{c} + COALESCE(qc.s_{c}, 0))::bigint,"),
            );
            sums.push(format!("SUM({c}) AS s_{c}"));
        }
        format!(
            "SELECT {cols} FROM queues LEFT JOIN LATERAL (SELECT {} FROM queue_counts \
             WHERE queue_counts.queue_id = queues.id) qc ON true",
            sums.join(", ")
        )
    })
}

/// The queue of this name; `lock`: held until the call commits (its counters are read to
/// decide something: a delete, a concurrency limit).
pub async fn queue_by_name(ctx: &Ctx<'_>, name: &str, lock: bool) -> Result<QueueRow> {
    // Locked first, read after: the counters' shards are other rows, which a statement
    // that waited for the lock would read as of before the holder committed.
    if lock {
        ctx.opt(
            "SELECT 1 FROM queues WHERE name = :name FOR UPDATE",
            p!["name" => name],
        )
        .await?;
    }
    let sql = format!("{} WHERE name = :name", queue_select());
    ctx.opt(&sql, p!["name" => name])
        .await?
        .map(|r| queue(&r))
        .ok_or_else(|| Error::not_found(Thing::Queue, name))
}

pub async fn queue_by_id(ctx: &Ctx<'_>, id: i64) -> Result<QueueRow> {
    let r = ctx
        .row(
            &format!("{} WHERE queues.id = :id", queue_select()),
            p!["id" => id],
        )
        .await?;
    Ok(queue(&r))
}

pub async fn all_queues(ctx: &Ctx<'_>) -> Result<HashMap<i64, QueueRow>> {
    let rows = ctx.rows(queue_select(), &[]).await?;
    Ok(rows.iter().map(queue).map(|q| (q.id, q)).collect())
}

/// The item of this id; `lock`: its row is held until the call commits (it is about to be
/// changed from what was read).
pub async fn item_by_id(ctx: &Ctx<'_>, id: &str, lock: bool) -> Result<ItemRow> {
    let sql = if lock {
        format!("SELECT {ITEM_COLS} FROM items i WHERE i.id = :id FOR UPDATE")
    } else {
        format!("SELECT {ITEM_COLS} FROM items i WHERE i.id = :id")
    };
    ctx.opt(&sql, p!["id" => id])
        .await?
        .map(|r| item(&r))
        .ok_or_else(|| Error::not_found(Thing::Item, id))
}

/// Queue rows looked up once per call.
#[derive(Default)]
pub struct Queues(HashMap<i64, QueueRow>);

impl Queues {
    pub async fn get(&mut self, ctx: &Ctx<'_>, id: i64) -> Result<&QueueRow> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.0.entry(id) {
            e.insert(queue_by_id(ctx, id).await?);
        }
        Ok(&self.0[&id])
    }
}
