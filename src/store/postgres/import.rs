//! Imports: rows spooled to a file as the producer sends them (`store::spool`), their keys
//! checked a chunk per query, then one binary COPY into `items`, in file order. Memory
//! holds a chunk of keys, the keys that land, a flag per row and the rows refused; of the
//! rows themselves, one at a time.
//!
//! The spool is a local file just written, in the page cache: it is read on the runtime's
//! thread, a buffer (1 MiB) at a time.

use super::rows::{queue_by_name, QueueRow};
use super::write::{dormant, ms, new_row, IMPORT_CHUNK};
use super::{p, Ctx};
use crate::backend::{Error, Result};
use crate::model::*;
use crate::store::spool::{duplicate_key, Spool};
use std::collections::{HashMap, HashSet};

/// A row's line and key: what the key checks need of it.
pub type Keyed = (u64, Option<String>);

/// Keys read back from the spool, and checked, at a time.
const CHECK_CHUNK: usize = IMPORT_CHUNK * 10;

/// The key checks of one import, the same verdicts whatever the chunks: a key's first line
/// lands unless the queue holds that key, so a later line repeats it; every line of a key
/// the queue holds is refused as taken.
pub struct Keys {
    queue_id: i64,
    queue: String,
    column: String,
    /// Keys that would land, with their lines.
    landing: HashMap<String, u64>,
}

impl Keys {
    pub fn new(q: &QueueRow, opts: &ImportOptions) -> Keys {
        Keys {
            queue_id: q.id,
            queue: q.queue.name.clone(),
            column: opts.key_column.clone().unwrap_or_else(|| "key".into()),
            landing: HashMap::new(),
        }
    }

    /// Which keys of `rows` the queue holds: one query, nothing changed here (so a
    /// transaction that is run again asks again).
    pub async fn held(&self, ctx: &Ctx<'_>, rows: &[Keyed]) -> Result<HashSet<String>> {
        let keys: Vec<&str> = rows.iter().filter_map(|(_, k)| k.as_deref()).collect();
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let found = ctx
            .rows(
                "SELECT key FROM items WHERE queue_id = :q AND key = ANY(CAST(:keys AS TEXT[]))",
                p!["q" => self.queue_id, "keys" => keys],
            )
            .await?;
        Ok(found.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// The verdict on each of `rows`, in order (`None`: it would land), given the keys of
    /// theirs the queue holds (`held`).
    pub fn verdicts(&mut self, rows: &[Keyed], held: &HashSet<String>) -> Vec<Option<RowError>> {
        rows.iter()
            .map(|(line, key)| {
                let key = key.as_deref()?;
                let (message, repeats) = if let Some(&earlier) = self.landing.get(key) {
                    (format!("'{key}' repeats line {earlier}"), Some(earlier))
                } else if held.contains(key) {
                    (duplicate_key(&self.queue, key), None)
                } else {
                    self.landing.insert(key.to_string(), *line);
                    return None;
                };
                Some(RowError {
                    line: *line,
                    column: Some(self.column.clone()),
                    message,
                    repeats,
                })
            })
            .collect()
    }

    /// `verdicts` of `rows` after asking which keys the queue holds.
    async fn check(&mut self, ctx: &Ctx<'_>, rows: &[Keyed]) -> Result<Vec<Option<RowError>>> {
        let held = self.held(ctx, rows).await?;
        Ok(self.verdicts(rows, &held))
    }
}

/// The lines and keys of the next chunk of spooled rows (empty at the end).
fn next_chunk(rows: &mut impl Iterator<Item = Result<ImportRow>>) -> Result<Vec<Keyed>> {
    rows.by_ref()
        .take(CHECK_CHUNK)
        .map(|r| r.map(|r| (r.line, r.item.key)))
        .collect()
}

/// Every spooled row the import would refuse for its key, besides those refused before the
/// store looked (an import refused by a bad row names them all).
pub async fn refusal(
    ctx: &Ctx<'_>,
    queue: &str,
    opts: &ImportOptions,
    spool: &mut Spool,
) -> Result<Vec<RowError>> {
    let q = queue_by_name(ctx, queue, false).await?;
    let mut keys = Keys::new(&q, opts);
    let mut rejected = spool.rejected.clone();
    let mut rows = spool.read_back()?;
    loop {
        let chunk = next_chunk(&mut rows)?;
        if chunk.is_empty() {
            return Ok(rejected);
        }
        rejected.extend(keys.check(ctx, &chunk).await?.into_iter().flatten());
    }
}

/// The commit of an import: every row stored in this one transaction, all-or-nothing
/// unless `skip_bad`. A row whose key is taken (by the queue, or by an earlier line) is
/// reported; with all-or-nothing the call then fails and nothing is written.
///
/// The spool is read twice: its keys are checked (a chunk per query), then the rows that may
/// go in are sent by one binary COPY, each built as it is sent. A key another call stored
/// after the check makes the COPY fail; the import is then run again from the start
/// (`Busy`, as `txn!` retries), and the second check sees that key.
pub async fn import(
    ctx: &mut Ctx<'_>,
    queue: &str,
    opts: &ImportOptions,
    spool: &mut Spool,
    actor: &str,
) -> Result<ImportReport> {
    use tokio_postgres::types::Type;
    let q = queue_by_name(ctx, queue, false).await?;
    let mut keys = Keys::new(&q, opts);
    let mut report = ImportReport {
        imported: 0,
        rejected: spool.rejected.clone(),
    };
    // For each spooled row, in order: refused for its key.
    let mut refused = Vec::with_capacity(spool.rows as usize);
    {
        let mut rows = spool.read_back()?;
        loop {
            let chunk = next_chunk(&mut rows)?;
            if chunk.is_empty() {
                break;
            }
            for v in keys.check(ctx, &chunk).await? {
                refused.push(v.is_some());
                report.rejected.extend(v);
            }
        }
    }
    drop(keys);
    if !opts.skip_bad && !report.rejected.is_empty() {
        return Err(crate::store::spool::refused(report.rejected));
    }
    let mut counts = StatusCounts::default();
    let mut on_hold: Vec<String> = Vec::new();
    {
        let sink = ctx
            .copy_in(
                "COPY items (id, queue_id, name, key, value, priority, status, notes,
                    enqueued_at, expires_at, delay_until, created_by, dormant)
                 FROM STDIN BINARY",
            )
            .await?;
        let types = [
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::BOOL,
        ];
        let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        debug_assert_eq!(refused.len() as u64, spool.rows, "a flag per spooled row");
        for (r, refused) in spool.read_back()?.zip(refused) {
            let r = r?;
            if refused {
                continue;
            }
            let row = new_row(ctx, &q, r.item, actor);
            *counts.get_mut(row.status) += 1;
            if row.status == Status::OnHold {
                on_hold.push(row.id.clone());
            }
            writer
                .as_mut()
                .write(&[
                    &row.id,
                    &q.id,
                    &row.name,
                    &row.key,
                    &row.value,
                    &row.priority,
                    &row.status.as_str(),
                    &row.notes,
                    &row.enqueued_at,
                    &row.expires_at,
                    &row.delay_until,
                    &actor,
                    &dormant(&row, ctx.now),
                ])
                .await
                .map_err(copy_error)?;
        }
        writer.finish().await.map_err(copy_error)?;
    }
    report.imported = counts.total();
    if !on_hold.is_empty() {
        // What `created_on_hold` records, for every such row at once.
        ctx.exec(
            "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status,
                note)
             SELECT i.seq, i.queue_id, :at, :by, 'hold', :from, :to, 'created on hold for review'
             FROM items i WHERE i.id = ANY(CAST(:ids AS TEXT[])) ORDER BY i.seq",
            p![
                "at" => ms(ctx.now),
                "by" => actor,
                "from" => Status::Queued.as_str(),
                "to" => Status::OnHold.as_str(),
                "ids" => on_hold,
            ],
        )
        .await?;
    }
    report.rejected.sort_by_key(|e| e.line);
    for s in Status::ALL {
        ctx.deltas.add(q.id, *s, counts.get(*s) as i64, ms(ctx.now));
    }
    ctx.events.push(Event::Items {
        queue: queue.to_string(),
        count: report.imported,
    });
    Ok(report)
}

/// A failed import COPY: a key stored by another call since the check is tried again
/// (`Busy`); if other calls keep storing keys of this file, the caller is told so.
fn copy_error(e: tokio_postgres::Error) -> Error {
    match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Error::Busy {
            path: None,
            waited_ms: None,
            message: "other calls stored keys of this file while it was imported; \
                      nothing imported; try again"
                .into(),
        },
        _ => super::schema::pg_error(e),
    }
}
