//! Every change but the human side (see `actions`), as a job for the writer: queues, enqueue
//! and import, dequeue, outcomes and the lease sweep. The rules come from `crate::rules`.

use super::rows::*;
use super::writer::Ctx;
use crate::backend::{Conflict, Error, Result};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules::{self, ItemEvent};
use crate::store::spool::{self, Spool};
use crate::store::sql as store_sql;
use rusqlite::{named_params, params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Monotonic ULIDs: ids made in one millisecond still sort in creation order.
    static IDS: RefCell<ulid::Generator> = const { RefCell::new(ulid::Generator::new()) };
}

fn new_id() -> String {
    IDS.with(|g| {
        g.borrow_mut()
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    })
}

pub(super) fn ms(t: Time) -> i64 {
    t.timestamp_millis()
}

fn dur_ms(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| d.as_millis() as i64)
}

// ---------------------------------------------------------------- queues

pub fn create_queue(ctx: &mut Ctx, name: &str, s: QueueSettings) -> Result<Queue> {
    rules::check_queue_name(name).map_err(|m| Error::invalid("name", m))?;
    check_settings(&s)?;
    if queue_by_name(ctx.conn, name).is_ok() {
        return Err(Error::conflict(Conflict::QueueExists {
            queue: name.to_string(),
        }));
    }
    ctx.conn
        .execute(
            "INSERT INTO queues (name, description, ttl_ms, sla_ms, sla_risk_pct, deadline, tz,
                max_retries, lease_ms, concurrency, priority, created_at, retry_backoff_ms,
                retry_backoff_max_ms, max_runtime_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                name,
                s.description.unwrap_or_default(),
                dur_ms(s.ttl),
                dur_ms(s.sla),
                s.sla_risk_pct.unwrap_or(DEFAULT_SLA_RISK_PCT),
                s.deadline,
                s.tz.unwrap_or_else(|| "UTC".into()),
                s.max_retries.unwrap_or(0),
                dur_ms(s.lease).unwrap_or(DEFAULT_LEASE.as_millis() as i64),
                s.concurrency,
                s.priority.unwrap_or(0),
                ms(ctx.now),
                dur_ms(s.retry_backoff.map(|b| b.delay)),
                dur_ms(s.retry_backoff.map(|b| b.max)),
                dur_ms(s.max_runtime),
            ],
        )
        .map_err(sql)?;
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx.conn, name)?.queue)
}

fn check_settings(s: &QueueSettings) -> Result<()> {
    match rules::settings_problem(s) {
        Some((field, m)) => Err(Error::invalid(field, m)),
        None => Ok(()),
    }
}

pub fn update_queue(ctx: &mut Ctx, name: &str, s: QueueSettings) -> Result<Queue> {
    check_settings(&s)?;
    let q = queue_by_name(ctx.conn, name)?;
    ctx.ready = super::writer::WAKE_ALL;
    let c = ctx.conn;
    let set = |col: &str, v: rusqlite::types::Value| -> Result<()> {
        c.execute(
            &format!("UPDATE queues SET {col} = ?1 WHERE id = ?2"),
            params![v, q.id],
        )
        .map(|_| ())
        .map_err(sql)
    };
    use rusqlite::types::Value as V;
    if let Some(v) = s.description {
        set("description", V::Text(v))?;
    }
    if let Some(v) = s.ttl {
        set("ttl_ms", V::Integer(v.as_millis() as i64))?;
    }
    if let Some(v) = s.sla {
        set("sla_ms", V::Integer(v.as_millis() as i64))?;
    }
    if let Some(v) = s.sla_risk_pct {
        set("sla_risk_pct", V::Integer(v as i64))?;
    }
    if let Some(v) = s.deadline {
        set("deadline", V::Text(v))?;
    }
    if let Some(v) = s.tz {
        set("tz", V::Text(v))?;
    }
    if let Some(v) = s.max_retries {
        set("max_retries", V::Integer(v as i64))?;
    }
    if let Some(v) = s.lease {
        set("lease_ms", V::Integer(v.as_millis() as i64))?;
    }
    if let Some(v) = s.max_runtime {
        set("max_runtime_ms", V::Integer(v.as_millis() as i64))?;
    }
    if let Some(v) = s.concurrency {
        set("concurrency", V::Integer(v as i64))?;
    }
    if let Some(v) = s.priority {
        set("priority", V::Integer(v as i64))?;
    }
    if let Some(b) = s.retry_backoff {
        set("retry_backoff_ms", V::Integer(b.delay.as_millis() as i64))?;
        set("retry_backoff_max_ms", V::Integer(b.max.as_millis() as i64))?;
    }
    for field in &s.clear {
        let cols: &[&str] = match field.as_str() {
            "ttl" => &["ttl_ms"],
            "sla" => &["sla_ms"],
            "deadline" => &["deadline"],
            "concurrency" => &["concurrency"],
            "retry-backoff" => &["retry_backoff_ms", "retry_backoff_max_ms"],
            "max-runtime" => &["max_runtime_ms"],
            other => return Err(Error::invalid("clear", format!("cannot clear '{other}'"))),
        };
        for col in cols {
            set(col, V::Null)?;
        }
    }
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx.conn, name)?.queue)
}

pub fn set_queue_state(ctx: &mut Ctx, name: &str, state: QueueState) -> Result<Queue> {
    let q = queue_by_name(ctx.conn, name)?;
    ctx.ready = super::writer::WAKE_ALL;
    ctx.conn
        .execute(
            "UPDATE queues SET state = ?1 WHERE id = ?2",
            params![state.as_str(), q.id],
        )
        .map_err(sql)?;
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx.conn, name)?.queue)
}

pub fn delete_queue(ctx: &mut Ctx, name: &str, force: bool) -> Result<u64> {
    let q = queue_by_name(ctx.conn, name)?;
    let n = q.counts.total();
    if n > 0 && !force {
        return Err(Error::conflict(Conflict::QueueNotEmpty {
            queue: name.to_string(),
            items: n,
        }));
    }
    for table in [
        "items",
        "history",
        "stats",
        "open_minutes",
        "action_queues",
        "worker_queues",
    ] {
        ctx.conn
            .execute(&format!("DELETE FROM {table} WHERE queue_id = ?1"), [q.id])
            .map_err(sql)?;
    }
    ctx.conn
        .execute("DELETE FROM queues WHERE id = ?1", [q.id])
        .map_err(sql)?;
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(n)
}

// ---------------------------------------------------------------- bookkeeping

/// Counter changes, open-item tallies and finished-attempt stats of one job, written once at
/// its end. Every status change goes through here, so the counters cannot drift apart.
#[derive(Default)]
pub(super) struct Deltas {
    counts: HashMap<(i64, Status), i64>,
    /// (queue, minute of enqueue) → change in open items.
    open: HashMap<(i64, i64), i64>,
    /// (queue, minute) → (processed, failed, handling ms).
    stats: HashMap<(i64, i64), (i64, i64, i64)>,
    /// Worker → (processed, failed) since its row was last written; seen now.
    workers: HashMap<String, (i64, i64)>,
    /// (worker, queue) heard from now: a queue's `no-worker` alert reads these.
    worker_queues: std::collections::HashSet<(String, i64)>,
}

impl Deltas {
    /// An item enqueued at `enqueued_at` went from one status to another (`None`: did not
    /// exist, or no longer does).
    pub(super) fn moved(
        &mut self,
        queue_id: i64,
        from: Option<Status>,
        to: Option<Status>,
        enqueued_at: i64,
    ) {
        if from == to {
            return;
        }
        let open = |s: Option<Status>| matches!(s, Some(s) if s != Status::Processed) as i64;
        let d = open(to) - open(from);
        if d != 0 {
            *self
                .open
                .entry((queue_id, enqueued_at.div_euclid(60_000)))
                .or_default() += d;
        }
        if let Some(f) = from {
            *self.counts.entry((queue_id, f)).or_default() -= 1;
        }
        if let Some(t) = to {
            *self.counts.entry((queue_id, t)).or_default() += 1;
        }
    }
    /// `n` new items in status `s`, enqueued at `enqueued_at`.
    fn add(&mut self, queue_id: i64, s: Status, n: i64, enqueued_at: i64) {
        *self.counts.entry((queue_id, s)).or_default() += n;
        if s != Status::Processed {
            *self
                .open
                .entry((queue_id, enqueued_at.div_euclid(60_000)))
                .or_default() += n;
        }
    }
    /// A finished attempt: processed or failed, and how long it was handled.
    fn attempt(&mut self, queue_id: i64, now: Time, processed: bool, handling_ms: i64) {
        let e = self.stats.entry((queue_id, ms(now) / 60_000)).or_default();
        if processed {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        e.2 += handling_ms.max(0);
    }
    /// Ends a job's tallies: they join the job's, to be written with the turn's (see
    /// `settle`); and long-polling workers are told when this job made work takeable: an
    /// item became queued, or a slot freed up on a queue with a concurrency limit.
    pub(super) fn flush(self, ctx: &mut Ctx) -> Result<()> {
        for (&(qid, s), &n) in &self.counts {
            if (s == Status::Queued && n > 0)
                || (s == Status::Processing && n < 0 && limited(ctx.conn, qid)?)
            {
                ctx.ready = ctx.ready.saturating_add(n.unsigned_abs());
            }
        }
        ctx.job.merge(self);
        Ok(())
    }

    pub(super) fn merge(&mut self, other: Deltas) {
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        for (k, n) in other.open {
            *self.open.entry(k).or_default() += n;
        }
        for (k, (p, f, h)) in other.stats {
            let e = self.stats.entry(k).or_default();
            e.0 += p;
            e.1 += f;
            e.2 += h;
        }
        for (k, (p, f)) in other.workers {
            let e = self.workers.entry(k).or_default();
            e.0 += p;
            e.1 += f;
        }
        self.worker_queues.extend(other.worker_queues);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.counts.is_empty()
            && self.open.is_empty()
            && self.stats.is_empty()
            && self.workers.is_empty()
            && self.worker_queues.is_empty()
    }

    /// The change in a queue's counter not written yet.
    fn pending(&self, queue_id: i64, s: Status) -> i64 {
        self.counts.get(&(queue_id, s)).copied().unwrap_or(0)
    }
}

/// Writes the tallies of a writer turn's jobs: counters, open-item minutes, stats and the
/// workers seen, one statement per queue and minute rather than per job.
pub fn settle(ctx: &mut Ctx) -> Result<()> {
    let d = std::mem::take(&mut ctx.turn);
    let conn = ctx.conn;
    for ((qid, minute), n) in d.open {
        if n != 0 {
            conn.prepare_cached(
                "INSERT INTO open_minutes (queue_id, minute, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (queue_id, minute) DO UPDATE SET n = n + excluded.n",
            )
            .and_then(|mut st| st.execute(params![qid, minute, n]))
            .and_then(|_| {
                conn.prepare_cached(
                    "DELETE FROM open_minutes WHERE queue_id = ?1 AND minute = ?2 AND n = 0",
                )?
                .execute(params![qid, minute])
            })
            .map_err(sql)?;
        }
    }
    for ((qid, minute), (p, f, h)) in d.stats {
        conn.prepare_cached(
            "INSERT INTO stats (queue_id, minute, processed, failed, handling_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (queue_id, minute) DO UPDATE SET processed = processed + excluded.processed,
                failed = failed + excluded.failed, handling_ms = handling_ms + excluded.handling_ms",
        )
        .and_then(|mut st| st.execute(params![qid, minute, p, f, h]))
        .map_err(sql)?;
    }
    for ((qid, s), n) in d.counts {
        if n != 0 {
            conn.prepare_cached(count_sql(s))
                .and_then(|mut st| st.execute(params![n, qid]))
                .map_err(sql)?;
        }
    }
    for (name, (p, f)) in d.workers {
        write_worker(ctx, &name, p, f)?;
    }
    for (name, qid) in d.worker_queues {
        write_worker_queue(ctx, &name, qid)?;
    }
    Ok(())
}

/// The counter update of a status, its text built once (the statement cache is keyed by it).
fn count_sql(s: Status) -> &'static str {
    static SQL: std::sync::OnceLock<HashMap<Status, String>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        Status::ALL
            .iter()
            .map(|&s| {
                let col = status_column(s);
                (
                    s,
                    format!("UPDATE queues SET {col} = {col} + ?1 WHERE id = ?2"),
                )
            })
            .collect()
    })[&s]
        .as_str()
}

fn limited(conn: &Connection, queue_id: i64) -> Result<bool> {
    conn.prepare_cached("SELECT concurrency IS NOT NULL FROM queues WHERE id = ?1")
        .and_then(|mut st| st.query_row([queue_id], |r| r.get(0)))
        .map_err(sql)
}

/// One history row.
pub(super) struct Hist<'a> {
    pub by: &'a str,
    pub action: &'a str,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub reason: Option<Reason>,
    pub note: Option<&'a str>,
    pub detail: Option<String>,
    pub action_id: Option<i64>,
}

pub(super) fn history(ctx: &Ctx, row: &ItemRow, h: Hist) -> Result<()> {
    // Leaving processing ends an attempt: record its start and holder (see the schema).
    let ends_attempt = h.from == Some(Status::Processing);
    ctx.conn
        .prepare_cached(
            "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status,
                reason, note, detail, action_id, attempt_started, attempt_worker)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
        )
        .and_then(|mut st| {
            st.execute(params![
                row.seq,
                row.queue_id,
                ms(ctx.now),
                h.by,
                h.action,
                h.from.map(|s| s.as_str()),
                h.to.map(|s| s.as_str()),
                h.reason.map(|r| r.as_str()),
                h.note,
                h.detail,
                h.action_id,
                row.started_at.filter(|_| ends_attempt),
                row.worker.as_deref().filter(|_| ends_attempt),
            ])
        })
        .map(|_| ())
        .map_err(sql)
}

/// The history rows of completions, the hot path, written in one statement per job.
#[derive(Default)]
struct HistoryBatch(Vec<serde_json::Value>);

impl HistoryBatch {
    fn complete(&mut self, d: &Done, by: &str, note: Option<&str>) {
        self.0.push(serde_json::json!([
            d.seq,
            d.queue_id,
            by,
            note,
            d.started_at
        ]));
    }
    fn flush(self, ctx: &Ctx) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        // The row's action and statuses are the completion's, from the state machine.
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text = SQL.get_or_init(|| {
            let t = rules::transition(ItemEvent::Complete);
            format!(
                "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status,
                    note, attempt_started, attempt_worker)
                 SELECT value ->> 0, value ->> 1, ?1, value ->> 2, '{}', '{}', '{}',
                        value ->> 3, value ->> 4, value ->> 2
                 FROM json_each(?2)",
                t.history.expect("a completion is history"),
                t.from,
                t.to
            )
        });
        ctx.conn
            .prepare_cached(text)
            .and_then(|mut st| {
                st.execute(params![
                    ms(ctx.now),
                    serde_json::Value::Array(self.0).to_string()
                ])
            })
            .map(|_| ())
            .map_err(sql)
    }
}

pub(super) fn append_note(row: &mut ItemRow, now: Time, by: &str, text: &str) {
    let mut notes = row.notes();
    notes.push(Note {
        at: now,
        by: by.to_string(),
        text: text.to_string(),
    });
    row.notes = Some(serde_json::to_string(&notes).expect("notes serialize"));
}

/// `items.dormant` (see the schema): `rules::DORMANT`, kept in a column so the ready index
/// holds only what a dequeue may take.
fn dormant(row: &ItemRow, now: Time) -> bool {
    rules::DORMANT.holds(&row.facts(None), ms(now))
}

/// A condition of the rules in this store's SQL, with `:now` for now.
fn cond(c: &rules::Cond, item_alias: &str) -> String {
    let names = store_sql::Names {
        item: item_alias,
        queue: None,
        param: &store_sql::named,
    };
    store_sql::cond(c, &names).0
}

/// Writes every changeable column of a row back, with its version bumped. The value, up to
/// a MiB, is only written when `value_changed`.
pub(super) fn save(ctx: &Ctx, row: &mut ItemRow, value_changed: bool) -> Result<()> {
    row.version += 1;
    ctx.conn
        .prepare_cached(
            "UPDATE items SET value = COALESCE(?1, value), priority = ?2, status = ?3, reason = ?4,
            notes = ?5, signature = ?6, retry_count = ?7, requeue_count = ?8, started_at = ?9,
            finished_at = ?10, expires_at = ?11, delay_until = ?12, worker = ?13,
            lease_token = ?14, lease_until = ?15, version = ?16, dormant = ?18
         WHERE seq = ?17",
        )
        .and_then(|mut st| {
            st.execute(params![
                row.value.as_deref().filter(|_| value_changed),
                row.priority,
                row.status.as_str(),
                row.reason.map(|r| r.as_str()),
                row.notes,
                row.signature,
                row.retry_count,
                row.requeue_count,
                row.started_at,
                row.finished_at,
                row.expires_at,
                row.delay_until,
                row.worker,
                row.lease_token,
                row.lease_until,
                row.version,
                row.seq,
                dormant(row, ctx.now),
            ])
        })
        .map(|_| ())
        .map_err(sql)
}

thread_local! {
    /// When each worker's row (`None`) and its row per queue were last written by this
    /// writer; keyed by name first, so the hot path looks up without allocating.
    static SEEN: RefCell<HashMap<String, HashMap<Option<i64>, i64>>> = RefCell::new(HashMap::new());
}

/// A worker was seen now, on these queues, having processed and failed so many: written
/// with the turn.
fn seen_worker(
    ctx: &mut Ctx,
    name: &str,
    queues: impl IntoIterator<Item = i64>,
    processed: i64,
    failed: i64,
) -> Result<()> {
    let e = match ctx.job.workers.get_mut(name) {
        Some(e) => e,
        None => ctx.job.workers.entry(name.to_string()).or_default(),
    };
    e.0 += processed;
    e.1 += failed;
    for q in queues {
        ctx.job.worker_queues.insert((name.to_string(), q));
    }
    Ok(())
}

/// Whether this worker's row (`queue` none) or its row for a queue was written by this
/// writer less than a second ago; if not, it counts as written now. A polling worker is
/// not worth a write per poll: a second's precision is enough for "last seen".
fn written_lately(name: &str, queue: Option<i64>, now: i64) -> bool {
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let rows = match s.get_mut(name) {
            Some(rows) => rows,
            None => s.entry(name.to_string()).or_default(),
        };
        let recent = rows.get(&queue).is_some_and(|t| now - t < 1000);
        if !recent {
            rows.insert(queue, now);
        }
        recent
    })
}

fn write_worker(ctx: &Ctx, name: &str, processed: i64, failed: i64) -> Result<()> {
    let now = ms(ctx.now);
    if written_lately(name, None, now) && processed == 0 && failed == 0 {
        return Ok(());
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO workers (name, last_seen, processed, failed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen,
                processed = processed + excluded.processed, failed = failed + excluded.failed",
        )
        .and_then(|mut st| st.execute(params![name, now, processed, failed]))
        .map(|_| ())
        .map_err(sql)
}

fn write_worker_queue(ctx: &Ctx, name: &str, queue_id: i64) -> Result<()> {
    let now = ms(ctx.now);
    if written_lately(name, Some(queue_id), now) {
        return Ok(());
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO worker_queues (worker, queue_id, last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (worker, queue_id) DO UPDATE SET last_seen = excluded.last_seen",
        )
        .and_then(|mut st| st.execute(params![name, queue_id, now]))
        .map(|_| ())
        .map_err(sql)
}

/// An agent registers (`Backend::register_worker`): what it says about itself is kept as
/// JSON beside its counts, and it is heard from on each of its queues.
pub fn register_worker(ctx: &mut Ctx, name: &str, agent: &AgentInfo) -> Result<()> {
    rules::check_registration(name, agent)?;
    let ids = agent
        .queues
        .iter()
        .map(|q| queue_by_name(ctx.conn, q).map(|q| q.id))
        .collect::<Result<Vec<_>>>()?;
    let now = ms(ctx.now);
    let json = serde_json::to_string(agent).expect("serializable");
    ctx.conn
        .prepare_cached(
            "INSERT INTO workers (name, last_seen, agent) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, agent = excluded.agent",
        )
        .and_then(|mut st| st.execute(params![name, now, json]))
        .map_err(sql)?;
    SEEN.with(|s| {
        s.borrow_mut()
            .entry(name.to_string())
            .or_default()
            .insert(None, now)
    });
    for qid in ids {
        ctx.conn
            .prepare_cached(
                "INSERT INTO worker_queues (worker, queue_id, last_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT (worker, queue_id) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .and_then(|mut st| st.execute(params![name, qid, now]))
            .map_err(sql)?;
    }
    Ok(())
}

/// Queue rows looked up once per job.
#[derive(Default)]
pub(super) struct Queues(HashMap<i64, QueueRow>);

impl Queues {
    pub(super) fn get(&mut self, conn: &Connection, id: i64) -> Result<&QueueRow> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.0.entry(id) {
            let q = conn
                .prepare_cached(sql_once!("SELECT {QUEUE_COLS} FROM queues WHERE id = ?1"))
                .and_then(|mut st| st.query_row([id], QueueRow::from_sql))
                .map_err(sql)?;
            e.insert(q);
        }
        Ok(&self.0[&id])
    }
}

// ---------------------------------------------------------------- getting work in

/// The row a new item becomes, before it is stored (`seq` is set by the insert): its state
/// as the rules start it, its input and note as given.
fn new_row(ctx: &Ctx, q: &QueueRow, it: NewItem, actor: &str) -> ItemRow {
    let now = ms(ctx.now);
    let state = rules::enqueue(&it, q.queue.ttl, now);
    let notes = it.note.map(|text| {
        serde_json::to_string(&[Note {
            at: ctx.now,
            by: actor.to_string(),
            text,
        }])
        .expect("notes serialize")
    });
    let mut row = ItemRow {
        seq: 0,
        id: new_id(),
        queue_id: q.id,
        name: it.name,
        key: it.key,
        value: Some(it.value),
        priority: 0,
        status: Status::Queued,
        reason: None,
        notes,
        signature: None,
        retry_count: 0,
        requeue_count: 0,
        enqueued_at: now,
        started_at: None,
        finished_at: None,
        expires_at: None,
        delay_until: None,
        worker: None,
        lease_token: None,
        lease_until: None,
        version: 1,
        created_by: actor.to_string(),
    };
    row.set_state(state);
    row
}

/// Stores a row; `Ok(false)` when its key is already taken in the queue. A new row (seq 0)
/// gets the next seq; a restored one (undo of a delete) keeps its own.
pub(super) fn insert(ctx: &Ctx, row: &mut ItemRow) -> Result<bool> {
    let n = ctx
        .conn
        .prepare_cached(
            "INSERT INTO items (id, queue_id, name, key, value, priority, status, notes,
                enqueued_at, expires_at, delay_until, created_by, dormant, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULLIF(?14, 0))
             ON CONFLICT (queue_id, key) WHERE key IS NOT NULL DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                row.id,
                row.queue_id,
                row.name,
                row.key,
                row.value,
                row.priority,
                row.status.as_str(),
                row.notes,
                row.enqueued_at,
                row.expires_at,
                row.delay_until,
                row.created_by,
                dormant(row, ctx.now),
                row.seq,
            ])
        })
        .map_err(sql)?;
    row.seq = ctx.conn.last_insert_rowid();
    Ok(n == 1)
}

pub fn add_items(
    ctx: &mut Ctx,
    queue: &str,
    items: Vec<NewItem>,
    actor: &str,
) -> Result<Vec<Item>> {
    let q = queue_by_name(ctx.conn, queue)?;
    let mut out = Vec::with_capacity(items.len());
    let mut deltas = Deltas::default();
    let many = items.len() > 1;
    for (i, it) in items.into_iter().enumerate() {
        let index = many.then_some(i as u64 + 1);
        rules::check_new_item(&it).map_err(|(field, m)| match index {
            Some(i) => Error::invalid_item(field, i, &m),
            None => Error::invalid(field, m),
        })?;
        let mut row = new_row(ctx, &q, it, actor);
        if !insert(ctx, &mut row)? {
            return Err(Error::conflict(Conflict::DuplicateKey {
                queue: queue.to_string(),
                key: row.key.clone().unwrap_or_default(),
                index,
            }));
        }
        if row.status == Status::OnHold {
            created_on_hold(ctx, &row, actor)?;
        }
        deltas.add(q.id, row.status, 1, row.enqueued_at);
        out.push(row.to_item(&q, ctx.now));
    }
    deltas.flush(ctx)?;
    ctx.events.push(Event::Items {
        queue: queue.to_string(),
        count: out.len() as u64,
    });
    Ok(out)
}

/// Items made on hold say so in their history (the enqueue itself is derived, see `read`).
fn created_on_hold(ctx: &Ctx, row: &ItemRow, actor: &str) -> Result<()> {
    history(
        ctx,
        row,
        Hist {
            by: actor,
            action: "hold",
            from: Some(Status::Queued),
            to: Some(Status::OnHold),
            reason: None,
            note: Some("created on hold for review"),
            detail: None,
            action_id: None,
        },
    )
}

/// The commit of an import whose rows were spooled (see `spool`): every row read back and
/// stored in this one transaction, all-or-nothing unless `skip_bad`. Nothing here waits
/// for a producer. A row whose key is taken (by the queue, or by an earlier line) is
/// reported; rows after a failure of all-or-nothing are still tried, so that every bad
/// row is named, and the whole job then rolls back.
pub fn import(
    ctx: &mut Ctx,
    queue: &str,
    opts: &ImportOptions,
    spool: &mut Spool,
    actor: &str,
) -> Result<ImportReport> {
    let q = queue_by_name(ctx.conn, queue)?;
    let key_col = opts.key_column.as_deref().unwrap_or("key");
    let mut report = ImportReport {
        imported: 0,
        rejected: std::mem::take(&mut spool.rejected),
    };
    let mut counts = StatusCounts::default();
    // (seq, line) of the rows with a key that this import stored, in seq order: a key
    // refused because this file already had it names the line it repeats.
    let mut keyed: Vec<(i64, u64)> = Vec::new();
    // The seqs AUTOINCREMENT would give, given here, so that a chunk of rows goes in one
    // statement and each row's seq is still known (a refused row leaves a gap, as a
    // deleted one does).
    let mut next = next_seq(ctx.conn)?;
    let full = chunk_sql(IMPORT_CHUNK);
    let mut chunk: Vec<(ItemRow, u64)> = Vec::with_capacity(IMPORT_CHUNK);
    let mut rows = spool.read_back()?.peekable();
    while rows.peek().is_some() {
        chunk.clear();
        for r in rows.by_ref().take(IMPORT_CHUNK) {
            let r = r?;
            let mut row = new_row(ctx, &q, r.item, actor);
            row.seq = next;
            next += 1;
            chunk.push((row, r.line));
        }
        let landed = if chunk.len() == IMPORT_CHUNK {
            insert_chunk(ctx, &full, &chunk)?
        } else {
            insert_chunk(ctx, &chunk_sql(chunk.len()), &chunk)?
        };
        for (row, line) in &chunk {
            // Only a row with a key can be refused; when none was, none is looked up.
            let stored = landed == chunk.len() || row.key.is_none() || seq_taken(ctx.conn, row)?;
            if stored {
                if row.status == Status::OnHold {
                    created_on_hold(ctx, row, actor)?;
                }
                if row.key.is_some() {
                    keyed.push((row.seq, *line));
                }
                *counts.get_mut(row.status) += 1;
                report.imported += 1;
                continue;
            }
            let key = row.key.as_deref().unwrap_or("");
            let holder = key_holder(ctx.conn, q.id, key)?;
            let repeats = keyed
                .binary_search_by_key(&holder, |(seq, _)| *seq)
                .ok()
                .map(|i| keyed[i].1);
            let message = match repeats {
                Some(earlier) => format!("'{key}' repeats line {earlier}"),
                None => spool::duplicate_key(queue, key),
            };
            report.rejected.push(RowError {
                line: *line,
                column: Some(key_col.to_string()),
                message,
                repeats,
            });
        }
    }
    if !opts.skip_bad && !report.rejected.is_empty() {
        return Err(spool::refused(report.rejected));
    }
    report.rejected.sort_by_key(|e| e.line);
    let mut deltas = Deltas::default();
    for s in Status::ALL {
        deltas.add(q.id, *s, counts.get(*s) as i64, ms(ctx.now));
    }
    deltas.flush(ctx)?;
    ctx.events.push(Event::Items {
        queue: queue.to_string(),
        count: report.imported,
    });
    Ok(report)
}

/// Rows per INSERT statement of an import: one statement's overhead (cursors on the table
/// and every index, the AUTOINCREMENT bookkeeping) is paid per chunk, not per row.
const IMPORT_CHUNK: usize = 64;

/// The seq the next new item gets: what AUTOINCREMENT would pick.
fn next_seq(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'items'), 0),
                    coalesce((SELECT max(seq) FROM items), 0)) + 1",
        [],
        |r| r.get(0),
    )
    .map_err(sql)
}

/// Stores rows with their seqs in one statement, skipping those whose key is taken in the
/// queue (by an item or an earlier row); says how many went in.
fn insert_chunk(ctx: &Ctx, sql_text: &str, chunk: &[(ItemRow, u64)]) -> Result<usize> {
    let mut st = ctx.conn.prepare_cached(sql_text).map_err(sql)?;
    for (i, (row, _)) in chunk.iter().enumerate() {
        let at = i * COLS;
        let dormant = dormant(row, ctx.now);
        let params: [&dyn rusqlite::ToSql; COLS] = [
            &row.id,
            &row.queue_id,
            &row.name,
            &row.key,
            &row.value,
            &row.priority,
            &row.status.as_str(),
            &row.notes,
            &row.enqueued_at,
            &row.expires_at,
            &row.delay_until,
            &row.created_by,
            &dormant,
            &row.seq,
        ];
        for (c, p) in params.iter().enumerate() {
            st.raw_bind_parameter(at + c + 1, p).map_err(sql)?;
        }
    }
    st.raw_execute().map_err(sql)
}

const COLS: usize = 14;

/// The INSERT of `n` rows for `insert_chunk`.
fn chunk_sql(n: usize) -> String {
    let values = (0..n)
        .map(|i| {
            let p = (1..=COLS)
                .map(|c| format!("?{}", i * COLS + c))
                .collect::<Vec<_>>();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "INSERT INTO items (id, queue_id, name, key, value, priority, status, notes,
            enqueued_at, expires_at, delay_until, created_by, dormant, seq)
         VALUES {values}
         ON CONFLICT (queue_id, key) WHERE key IS NOT NULL DO NOTHING"
    )
}

/// Whether the row given this seq went in (its key was free).
fn seq_taken(conn: &Connection, row: &ItemRow) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM items WHERE seq = ?1")
        .and_then(|mut st| st.exists([row.seq]))
        .map_err(sql)
}

/// The seq of the item that holds `key` in the queue.
fn key_holder(conn: &Connection, queue_id: i64, key: &str) -> Result<i64> {
    conn.prepare_cached("SELECT seq FROM items WHERE queue_id = ?1 AND key = ?2")
        .and_then(|mut st| st.query_row(params![queue_id, key], |r| r.get(0)))
        .map_err(sql)
}

/// Whether an item in the queue holds `key` (an undone delete cannot bring back a key
/// that a newer item took).
pub(super) fn key_taken(conn: &Connection, queue_id: i64, key: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM items WHERE queue_id = ?1 AND key = ?2")
        .and_then(|mut st| st.exists(params![queue_id, key]))
        .map_err(sql)
}

// ---------------------------------------------------------------- taking work

pub fn dequeue(ctx: &mut Ctx, req: &DequeueRequest) -> Result<Dequeued> {
    if req.queues.is_empty() {
        return Err(Error::invalid(
            "queues",
            "name at least one queue to dequeue from",
        ));
    }
    if req.worker.trim().is_empty() {
        return Err(Error::invalid("worker", "worker name must not be empty"));
    }
    if req.count == 0 {
        return Err(Error::invalid("count", "count must be at least 1"));
    }
    // A queue named twice is polled once: its concurrency room is read once per queue.
    let mut seen = std::collections::HashSet::new();
    let mut queues = req
        .queues
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .map(|n| queue_by_name(ctx.conn, n))
        .collect::<Result<Vec<_>>>()?;
    // Higher queue priority first; among equals, the order the worker gave.
    queues.sort_by_key(|q| std::cmp::Reverse(q.queue.priority));
    let now = ms(ctx.now);
    let token = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let mut left = req.count as u64;
    let mut leases = Vec::new();
    let mut why: Vec<QueueEmpty> = Vec::new();
    let mut deltas = Deltas::default();
    for q in &queues {
        if left == 0 {
            break;
        }
        let empty = |(reason, message)| QueueEmpty {
            queue: q.queue.name.clone(),
            reason,
            message,
        };
        // Counters of this turn's earlier jobs are not written yet: counted in.
        let processing =
            (q.counts.processing as i64 + ctx.turn.pending(q.id, Status::Processing)).max(0) as u64;
        let take = match rules::dequeue_room(&q.queue, processing, left) {
            Ok(take) => take,
            Err(e) => {
                why.push(empty(e));
                continue;
            }
        };
        // A new attempt starts now: its lease never runs past the max runtime.
        let lease = rules::capped_lease(now, q.queue.lease, now, q.queue.max_runtime)
            .unwrap_or(q.queue.lease);
        let lease_until = rules::lease_until(now, lease);
        wake_due(ctx, q.id)?;
        let mut st = ctx.conn.prepare_cached(claim_sql()).map_err(sql)?;
        let mut rows = st
            .query_map(
                named_params! {
                    ":now": now,
                    ":worker": req.worker,
                    ":token": token,
                    ":lease_until": lease_until,
                    ":queue": q.id,
                    ":take": take as i64,
                },
                ItemRow::from_sql,
            )
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        drop(st);
        rows.sort_by_key(|r| (r.priority, r.seq));
        let taken = rows.len() as u64;
        let t = rules::transition(ItemEvent::Dequeue);
        for row in rows {
            deltas.moved(q.id, Some(t.from), Some(t.to), row.enqueued_at);
            left -= 1;
            leases.push(Lease {
                lease: row.lease_token.clone().unwrap_or_default(),
                lease_until: from_ms(lease_until),
                item: row.to_item(q, ctx.now),
            });
        }
        if taken > 0 {
            ctx.events.push(Event::Items {
                queue: q.queue.name.clone(),
                count: taken,
            });
        } else {
            why.push(empty(rules::nothing_ready(&q.queue.name)));
        }
    }
    deltas.flush(ctx)?;
    seen_worker(ctx, &req.worker, queues.iter().map(|q| q.id), 0, 0)?;
    let why_empty = leases.is_empty().then(|| rules::why_empty(why));
    Ok(Dequeued { leases, why_empty })
}

/// The claim, written once from the rules: the dequeue's transition as the SET, what may be
/// taken (`rules::TAKEABLE`) as the WHERE, in dequeue order. `dormant = 0` is that same
/// condition as the ready index keeps it. The statement cache is keyed by the text, and
/// this is the hot path: it is built once.
fn claim_sql() -> &'static str {
    static CLAIM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLAIM.get_or_init(|| {
        let t = rules::transition(ItemEvent::Dequeue);
        // Tokens end in the row's seq, so a completion finds its row without the id index.
        let set = store_sql::set(t.to, &t.writes, ":token || '.' || seq", &store_sql::named);
        debug_assert_eq!(set.params, ["now", "worker", "lease_until"]);
        format!(
            "UPDATE items SET {}, version = version + 1
             WHERE seq IN (SELECT seq FROM items
                WHERE queue_id = :queue AND dormant = 0 AND {}
                ORDER BY priority, seq LIMIT :take)
             RETURNING {}",
            set.sql,
            cond(&rules::TAKEABLE, ""),
            returning_cols()
        )
    })
}

/// Delayed items of a queue whose time has come become takeable (or stay dormant, expired).
/// Their passed delay is cleared, so they leave the index of delayed items for good.
fn wake_due(ctx: &Ctx, queue_id: i64) -> Result<()> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        let due = rules::Cond::Time(rules::Col::DelayUntil, rules::Cmp::Reached);
        // With its delay gone, an item is dormant (`rules::DORMANT`) only when expired.
        format!(
            "UPDATE items SET delay_until = NULL, dormant = {}
             WHERE queue_id = :queue AND status = 'queued' AND dormant = 1 AND {}",
            cond(&rules::EXPIRY_PASSED, ""),
            cond(&due, "")
        )
    });
    ctx.conn
        .prepare_cached(text)
        .and_then(|mut st| st.execute(named_params! {":queue": queue_id, ":now": ms(ctx.now)}))
        .map(|_| ())
        .map_err(sql)
}

/// Marks the queued items that expired since the last sweep (of any process: the bookmark
/// is in the file) as dormant, however many expired items the queues already hold.
fn mark_expired(ctx: &Ctx) -> Result<()> {
    let now = ms(ctx.now);
    let from: i64 = ctx
        .conn
        .prepare_cached("SELECT value FROM marks WHERE name = 'expired_up_to'")
        .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
        .map_err(sql)?
        .unwrap_or(i64::MIN);
    if now <= from {
        return Ok(());
    }
    let ids: Vec<i64> = ctx
        .conn
        .prepare_cached("SELECT id FROM queues")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(sql)?;
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // Expired now (`rules::EXPIRED`) and not yet at the bookmark: a range of the
    // items_expiring index, not every expired item again.
    let mark = SQL.get_or_init(|| {
        format!(
            "UPDATE items SET dormant = 1 WHERE queue_id = :queue AND {}
               AND expires_at > :from AND dormant = 0",
            cond(&rules::EXPIRED, "")
        )
    });
    for qid in ids {
        ctx.conn
            .prepare_cached(mark)
            .and_then(|mut st| {
                st.execute(named_params! {":queue": qid, ":from": from, ":now": now})
            })
            .map_err(sql)?;
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO marks (name, value) VALUES ('expired_up_to', ?1)
             ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        )
        .and_then(|mut st| st.execute([now]))
        .map_err(sql)?;
    Ok(())
}

/// Loads an item a worker reports on and asks the rules whether it may: the token must be
/// the item's lease (the fencing that makes stale workers harmless).
fn leased(
    conn: &Connection,
    event: ItemEvent,
    id: &str,
    token: &str,
) -> Result<(ItemRow, &'static rules::Transition)> {
    let row = item_by_id(conn, id)?;
    let t = rules::lease_holder(
        event,
        id,
        row.status,
        row.lease_token.as_deref() == Some(token),
    )?;
    Ok((row, t))
}

/// Applies a worker's or the engine's transition to a loaded row.
fn apply(ctx: &Ctx, row: &mut ItemRow, t: &rules::Transition, given: &rules::Given) {
    let mut st = row.state();
    rules::apply(&mut st, t.to, &t.writes, given, ms(ctx.now));
    row.set_state(st);
}

/// Extends each lease on its own: a refused one (stale token, item moved on) changes
/// nothing and leaves the others extended. The holder is marked seen once per call.
pub fn heartbeat(ctx: &mut Ctx, leases: &[LeaseRef]) -> Result<Vec<Result<Time>>> {
    let mut queues = Queues::default();
    let mut holders: Vec<(String, i64)> = Vec::new();
    let mut out = Vec::with_capacity(leases.len());
    for l in leases {
        let r = (|| -> Result<Time> {
            let (mut row, t) = leased(ctx.conn, ItemEvent::Heartbeat, &l.id, &l.lease)?;
            let queue = &queues.get(ctx.conn, row.queue_id)?.queue;
            let now = ms(ctx.now);
            let lease = rules::capped_lease(
                now,
                queue.lease,
                row.started_at.unwrap_or(now),
                queue.max_runtime,
            )
            .map_err(|max_runtime| {
                Error::conflict(Conflict::MaxRuntime {
                    id: l.id.clone(),
                    max_runtime,
                })
            })?;
            let given = rules::Given {
                lease,
                ..Default::default()
            };
            apply(ctx, &mut row, t, &given);
            save(ctx, &mut row, false)?;
            if let Some(w) = row.worker.take() {
                if !holders.contains(&(w.clone(), row.queue_id)) {
                    holders.push((w, row.queue_id));
                }
            }
            Ok(from_ms(row.lease_until.unwrap_or(ms(ctx.now))))
        })();
        out.push(r);
    }
    for (w, qid) in &holders {
        seen_worker(ctx, w, [*qid], 0, 0)?;
    }
    Ok(out)
}

/// A failed attempt (`Fail` or `LeaseTimeout`): the rules make it an exception, or queue
/// it again after its backoff; each step is a history row. `by`: the lease holder.
#[allow(clippy::too_many_arguments)]
fn fail(
    ctx: &Ctx,
    deltas: &mut Deltas,
    q: &QueueRow,
    row: &mut ItemRow,
    event: ItemEvent,
    reason: Reason,
    note: Option<&str>,
    by: &str,
) -> Result<()> {
    let from = row.status;
    let started = row.started_at.unwrap_or(ms(ctx.now));
    let mut st = row.state();
    let steps = rules::fail(
        &mut st,
        event,
        reason,
        note,
        &rules::RetryPolicy::of(&q.queue),
        ms(ctx.now),
        ctx.jitter.draw(),
    );
    // The attempt's start and holder stay on the row for the history (a failure keeps
    // them: who last held an item is part of it).
    row.set_state(st);
    for step in &steps {
        let t = step.transition;
        let by = match t.actor {
            rules::Actor::System => "system",
            _ => by,
        };
        if let (true, Some(n)) = (t.appends_note, &step.note) {
            append_note(row, ctx.now, by, n);
        }
        history(
            ctx,
            row,
            Hist {
                by,
                action: t.history.expect("a failure and a retry are history"),
                from: Some(t.from),
                to: Some(t.to),
                reason: step.reason,
                note: step.note.as_deref(),
                detail: None,
                action_id: None,
            },
        )?;
        if let Some(a) = t.attempt {
            let processed = a == rules::Attempt::Processed;
            deltas.attempt(q.id, ctx.now, processed, ms(ctx.now) - started);
        }
    }
    deltas.moved(q.id, Some(from), Some(row.status), row.enqueued_at);
    save(ctx, row, false)
}

/// The completion in one statement, written once from the rules: the `Complete`
/// transition's writes as the SET, its `from` and the lease as the WHERE, the reported
/// note appended to the notes.
fn complete_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let t = rules::transition(ItemEvent::Complete);
        debug_assert!(t.appends_note && t.writes.lease == rules::LeasePut::End);
        let set = store_sql::set(t.to, &t.writes, "", &store_sql::named);
        debug_assert_eq!(set.params, ["now"]);
        format!(
            "UPDATE items SET {}, version = version + 1,
                notes = CASE WHEN :note IS NULL THEN notes
                    ELSE json_insert(COALESCE(notes, '[]'), '$[#]',
                         json_set(json(:note), '$.by', COALESCE(worker, :worker))) END
             WHERE seq = :seq AND id = :id AND status = '{}' AND lease_token = :lease
             RETURNING queue_id, worker, started_at, retry_count, seq, enqueued_at",
            set.sql, t.from
        )
    })
}

/// Completes a leased item in one statement; `None` when the lease does not match.
fn complete(ctx: &Ctx, o: &Outcome, worker: &str) -> Result<Option<Done>> {
    let note = o
        .note
        .as_ref()
        .map(|text| serde_json::json!({"at": ctx.now.format(crate::model::time_ms::FORMAT).to_string(), "by": worker, "text": text}).to_string());
    ctx.conn
        .prepare_cached(complete_sql())
        .and_then(|mut st| {
            // The token ends in the row's seq (see `dequeue`): a rowid lookup, not the id index.
            let seq: i64 = lease_seq(&o.lease).unwrap_or(-1);
            st.query_row(
                named_params! {
                    ":now": ms(ctx.now),
                    ":note": note,
                    ":worker": worker,
                    ":seq": seq,
                    ":id": o.id,
                    ":lease": o.lease,
                },
                |r| {
                    Ok(Done {
                        id: o.id.clone(),
                        queue_id: r.get(0)?,
                        worker: r.get(1)?,
                        started_at: r.get(2)?,
                        retry_count: r.get(3)?,
                        seq: r.get(4)?,
                        enqueued_at: r.get(5)?,
                        status: rules::transition(ItemEvent::Complete).to,
                        reason: None,
                    })
                },
            )
            .optional()
        })
        .map_err(sql)
}

/// The row a lease token names: tokens are `{random}.{seq}`.
fn lease_seq(token: &str) -> Option<i64> {
    token.rsplit_once('.')?.1.parse().ok()
}

/// What `finish` needs of an item it finished.
struct Done {
    id: String,
    seq: i64,
    enqueued_at: i64,
    queue_id: i64,
    worker: Option<String>,
    started_at: Option<i64>,
    retry_count: i64,
    status: Status,
    reason: Option<Reason>,
}

impl From<ItemRow> for Done {
    fn from(r: ItemRow) -> Done {
        Done {
            id: r.id,
            seq: r.seq,
            enqueued_at: r.enqueued_at,
            queue_id: r.queue_id,
            worker: r.worker,
            started_at: r.started_at,
            retry_count: r.retry_count,
            status: r.status,
            reason: r.reason,
        }
    }
}

pub fn finish(ctx: &mut Ctx, outcomes: &[Outcome], worker: &str) -> Result<Vec<Result<Finished>>> {
    let mut queues = Queues::default();
    let mut deltas = Deltas::default();
    let mut hist = HistoryBatch::default();
    let mut out = Vec::with_capacity(outcomes.len());
    let (mut done, mut failed) = (0i64, 0i64);
    let mut touched: HashMap<i64, u64> = HashMap::new();
    for o in outcomes {
        let r = (|| -> Result<Finished> {
            if let Some(d) = o.retry_in {
                rules::check_retry_in(o.reason, d)
                    .map_err(|m| Error::invalid("retry_in", format!("item {}: {m}", o.id)))?;
            }
            let row = match o.reason {
                Some(_) if o.retry_in.is_some() => {
                    let (mut row, t) = leased(ctx.conn, ItemEvent::Postpone, &o.id, &o.lease)?;
                    let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
                    let q = queues.get(ctx.conn, row.queue_id)?.clone();
                    // Before the change: the row still says who held it and since when.
                    history(
                        ctx,
                        &row,
                        Hist {
                            by: &by,
                            action: t.history.expect("a postponement is history"),
                            from: Some(t.from),
                            to: Some(t.to),
                            reason: o.reason,
                            note: o.note.as_deref(),
                            detail: None,
                            action_id: None,
                        },
                    )?;
                    if let Some(n) = &o.note {
                        append_note(&mut row, ctx.now, &by, n);
                    }
                    let given = rules::Given {
                        delay: o.retry_in,
                        ..Default::default()
                    };
                    apply(ctx, &mut row, t, &given);
                    deltas.moved(q.id, Some(t.from), Some(t.to), row.enqueued_at);
                    save(ctx, &mut row, false)?;
                    ctx.events.push(Event::Items {
                        queue: q.queue.name.clone(),
                        count: 1,
                    });
                    Done::from(row)
                }
                None => {
                    // The common case in one statement; a miss is explained by the rules.
                    let Some(row) = complete(ctx, o, worker)? else {
                        leased(ctx.conn, ItemEvent::Complete, &o.id, &o.lease)?;
                        return Err(Error::conflict(Conflict::Changed { id: o.id.clone() }));
                    };
                    let t = rules::transition(ItemEvent::Complete);
                    let by = row.worker.as_deref().unwrap_or(worker);
                    hist.complete(&row, by, o.note.as_deref());
                    let started = row.started_at.unwrap_or(ms(ctx.now));
                    deltas.attempt(row.queue_id, ctx.now, true, ms(ctx.now) - started);
                    deltas.moved(row.queue_id, Some(t.from), Some(t.to), row.enqueued_at);
                    done += 1;
                    row
                }
                // A timeout reported by the lease holder (the agent killed a command past
                // its --timeout) is a failed attempt, retried like a lease timeout.
                Some(reason) => {
                    let (mut row, _) = leased(ctx.conn, ItemEvent::Fail, &o.id, &o.lease)?;
                    let q = queues.get(ctx.conn, row.queue_id)?.clone();
                    let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
                    fail(
                        ctx,
                        &mut deltas,
                        &q,
                        &mut row,
                        ItemEvent::Fail,
                        reason,
                        o.note.as_deref(),
                        &by,
                    )?;
                    failed += 1;
                    Done::from(row)
                }
            };
            *touched.entry(row.queue_id).or_default() += 1;
            Ok(Finished {
                id: row.id,
                status: row.status,
                reason: row.reason,
                retry_count: row.retry_count as u32,
            })
        })();
        out.push(r);
    }
    deltas.flush(ctx)?;
    hist.flush(ctx)?;
    seen_worker(ctx, worker, touched.keys().copied(), done, failed)?;
    for (qid, n) in touched {
        let name = queues.get(ctx.conn, qid)?.queue.name.clone();
        ctx.events.push(Event::Items {
            queue: name,
            count: n,
        });
    }
    Ok(out)
}

/// Leases given back unworked: back to `queued` now, no retry counted, no failed attempt in
/// the stats; the history keeps who held it and why it came back.
pub fn hand_back(
    ctx: &mut Ctx,
    leases: &[HandBack],
    worker: &str,
    note: &str,
) -> Result<Vec<Result<Finished>>> {
    let mut queues = Queues::default();
    let mut deltas = Deltas::default();
    let mut out = Vec::with_capacity(leases.len());
    for h in leases {
        let r = (|| -> Result<Finished> {
            let (mut row, t) = leased(ctx.conn, ItemEvent::HandBack, &h.id, &h.lease)?;
            let q = queues.get(ctx.conn, row.queue_id)?.clone();
            let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
            // Before the change: the row still says who held it and since when.
            history(
                ctx,
                &row,
                Hist {
                    by: &by,
                    action: t.history.expect("a hand-back is history"),
                    from: Some(t.from),
                    to: Some(t.to),
                    reason: None,
                    note: Some(note).filter(|n| !n.is_empty()),
                    detail: None,
                    action_id: None,
                },
            )?;
            apply(ctx, &mut row, t, &rules::Given::default());
            deltas.moved(q.id, Some(t.from), Some(t.to), row.enqueued_at);
            save(ctx, &mut row, false)?;
            ctx.events.push(Event::Items {
                queue: q.queue.name.clone(),
                count: 1,
            });
            Ok(Finished {
                id: row.id,
                status: row.status,
                reason: None,
                retry_count: row.retry_count as u32,
            })
        })();
        out.push(r);
    }
    deltas.flush(ctx)?;
    seen_worker(ctx, worker, [], 0, 0)?;
    Ok(out)
}

/// Times out leases nobody renewed (`rules::LEASE_RAN_OUT`): each becomes a `timeout`
/// failure (retried if allowed). Also puts newly expired items out of the dequeue's way.
pub fn sweep(ctx: &mut Ctx) -> Result<u64> {
    mark_expired(ctx)?;
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let ran_out = SQL.get_or_init(|| {
        format!(
            "SELECT {ITEM_COLS} FROM items i WHERE {} LIMIT 1000",
            cond(&rules::LEASE_RAN_OUT, "i.")
        )
    });
    // Items past their queue's max runtime, heartbeating or not: only queues with one are
    // read, so this stays a walk of a few queues' processing items.
    static RUNTIME_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let past_max = RUNTIME_SQL.get_or_init(|| {
        let names = store_sql::Names {
            item: "i.",
            queue: Some("q."),
            param: &store_sql::named,
        };
        let (c, _) = store_sql::cond(&rules::RUNTIME_RAN_OUT, &names);
        format!(
            "SELECT {ITEM_COLS} FROM queues q JOIN items i ON i.queue_id = q.id \
             WHERE q.max_runtime_ms IS NOT NULL AND {c} LIMIT 1000"
        )
    });
    let mut rows = Vec::new();
    for text in [ran_out, past_max] {
        let got = ctx
            .conn
            .prepare_cached(text)
            .and_then(|mut st| {
                st.query_map(named_params! {":now": ms(ctx.now)}, ItemRow::from_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql)?;
        for r in got {
            if !rows.iter().any(|x: &ItemRow| x.id == r.id) {
                rows.push(r);
            }
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let mut queues = Queues::default();
    let mut deltas = Deltas::default();
    let n = rows.len() as u64;
    for mut row in rows {
        let q = queues.get(ctx.conn, row.queue_id)?.clone();
        let past_max = rules::RUNTIME_RAN_OUT.holds(&row.facts(Some(&q.queue)), ms(ctx.now));
        let note = match q.queue.max_runtime {
            Some(m) if past_max => rules::max_runtime_note(row.worker.as_deref(), m),
            _ => rules::timeout_note(row.worker.as_deref(), q.queue.lease),
        };
        fail(
            ctx,
            &mut deltas,
            &q,
            &mut row,
            ItemEvent::LeaseTimeout,
            Reason::Timeout,
            Some(&note),
            "system",
        )?;
        ctx.events.push(Event::Items {
            queue: q.queue.name.clone(),
            count: 1,
        });
    }
    deltas.flush(ctx)?;
    Ok(n)
}

/// `serve --retain`: removes up to `most` items past retention (`rules::PAST_RETENTION`,
/// processed before `before`, in ms) with their history, oldest first: how many.
pub fn prune(ctx: &mut Ctx, before: i64, most: u64) -> Result<u64> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pick = SQL.get_or_init(|| {
        format!(
            "SELECT i.seq FROM items i WHERE {} ORDER BY i.finished_at LIMIT :most",
            cond(&rules::PAST_RETENTION, "i.")
        )
    });
    let args = named_params! {":now": before, ":most": most as i64};
    let per_queue: Vec<(i64, String, i64)> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT q.id, q.name, count(*) FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE i.seq IN ({pick}) GROUP BY q.id ORDER BY q.name"
        ))
        .and_then(|mut st| {
            st.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(sql)?;
    if per_queue.is_empty() {
        return Ok(0);
    }
    // The same rows twice: this transaction is the only writer.
    for table in [
        "DELETE FROM history WHERE item_seq",
        "DELETE FROM items WHERE seq",
    ] {
        ctx.conn
            .prepare_cached(&format!("{table} IN ({pick})"))
            .and_then(|mut st| st.execute(args))
            .map_err(sql)?;
    }
    let mut deltas = Deltas::default();
    let mut n = 0;
    for (qid, name, count) in per_queue {
        deltas.add(qid, Status::Processed, -count, ms(ctx.now));
        ctx.events.push(Event::Items {
            queue: name,
            count: count as u64,
        });
        n += count as u64;
    }
    deltas.flush(ctx)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements written from the rules keep to the indexes the hand-written ones
    /// used: a rule rendered differently must not turn a dequeue into a scan.
    #[test]
    fn statements_from_the_rules_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open(&dir.path().join("t.db"), true).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Parameters left unbound: the plan does not depend on their values.
            let mut rows = st.raw_query();
            let mut steps = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                steps.push(r.get::<_, String>(3).unwrap());
            }
            steps.join(" | ")
        };
        let sweep = format!(
            "SELECT {ITEM_COLS} FROM items i WHERE {} LIMIT 1000",
            cond(&rules::LEASE_RAN_OUT, "i.")
        );
        let expiring = format!(
            "UPDATE items SET dormant = 1 WHERE queue_id = :queue AND {}
               AND expires_at > :from AND dormant = 0",
            cond(&rules::EXPIRED, "")
        );
        conn.execute_batch(
            "INSERT INTO queues (name, sla_ms, sla_risk_pct, tz, max_retries, lease_ms, priority,
                created_at) VALUES ('q', 3600000, 80, 'UTC', 0, 60000, 0, 0)",
        )
        .unwrap();
        // An SLA window of one queue is a range of its open items, both ends.
        let at_risk = Filter {
            queue: Some("q".into()),
            sla: Some(Sla::AtRisk),
            ..Default::default()
        };
        let w = super::super::filter::build(&conn, &at_risk, from_ms(0)).unwrap();
        let listing = format!(
            "SELECT i.seq FROM items i JOIN queues q ON q.id = i.queue_id WHERE {} \
             ORDER BY i.seq LIMIT 50",
            w.sql
        );
        for (what, sql, index) in [
            (
                "at-risk listing",
                listing,
                "items_open (queue_id=? AND enqueued_at>? AND enqueued_at<?)",
            ),
            ("claim", claim_sql().to_string(), "items_ready"),
            (
                "completion",
                complete_sql().to_string(),
                "INTEGER PRIMARY KEY",
            ),
            ("sweep", sweep, "items_lease"),
            ("expiry marks", expiring, "items_expiring"),
        ] {
            let p = plan(&sql);
            assert!(p.contains(index), "{what}: {p}\n{sql}");
            assert!(!p.contains("SCAN items"), "{what} scans: {p}");
        }
    }
}
