//! Every change but the human side (see `actions`): queues, enqueue (imports: `import`), dequeue,
//! outcomes and the lease sweep, each in the call's transaction. The rules come from
//! `crate::rules`, their SQL from `crate::store::sql`, as in the SQLite store.

use super::rows::*;
use super::{p, Ctx, WAKE_ALL};
use crate::backend::{Conflict, Error, Result};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules::{self, ItemEvent};
use crate::store::sql as store_sql;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// See schema version 4.
const SHARDS: i32 = super::schema::COUNT_SHARDS;

/// Monotonic ULIDs: ids made in one millisecond still sort in creation order.
static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

fn new_id() -> String {
    IDS.lock()
        .expect("id generator")
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

pub(super) fn ms(t: Time) -> i64 {
    t.timestamp_millis()
}

fn dur_ms(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| d.as_millis() as i64)
}

/// A condition of the rules with `:now` for now (`item`: the items table's alias and dot).
pub(super) fn cond(c: &rules::Cond, item: &str) -> String {
    let names = store_sql::Names {
        item,
        queue: None,
        param: &store_sql::named,
    };
    store_sql::cond(c, &names).0
}

/// The same over `items i JOIN queues q`.
pub(super) fn cond_q(c: &rules::Cond) -> String {
    let names = store_sql::Names {
        item: "i.",
        queue: Some("q."),
        param: &store_sql::named,
    };
    store_sql::cond(c, &names).0
}

// ---------------------------------------------------------------- queues

pub async fn create_queue(ctx: &mut Ctx<'_>, name: &str, s: QueueSettings) -> Result<Queue> {
    rules::check_queue_name(name).map_err(|m| Error::invalid("name", m))?;
    check_settings(&s)?;
    if queue_by_name(ctx, name, false).await.is_ok() {
        return Err(Error::conflict(Conflict::QueueExists {
            queue: name.to_string(),
        }));
    }
    let inserted = ctx
        .exec(
            "INSERT INTO queues (name, description, ttl_ms, sla_ms, sla_risk_pct, deadline, tz,
                max_retries, lease_ms, concurrency, priority, created_at, retry_backoff_ms,
                retry_backoff_max_ms, max_runtime_ms)
             VALUES (:name, :description, :ttl, :sla, :pct, :deadline, :tz, :retries, :lease,
                :concurrency, :priority, :now, :backoff, :backoff_max, :max_runtime)
             ON CONFLICT (name) DO NOTHING",
            p![
                "name" => name,
                "description" => s.description.clone().unwrap_or_default(),
                "ttl" => dur_ms(s.ttl),
                "sla" => dur_ms(s.sla),
                "pct" => s.sla_risk_pct.unwrap_or(DEFAULT_SLA_RISK_PCT) as i64,
                "deadline" => s.deadline,
                "tz" => s.tz.clone().unwrap_or_else(|| "UTC".into()),
                "retries" => s.max_retries.unwrap_or(0) as i64,
                "lease" => dur_ms(s.lease).unwrap_or(DEFAULT_LEASE.as_millis() as i64),
                "concurrency" => s.concurrency.map(|c| c as i64),
                "priority" => s.priority.unwrap_or(0) as i64,
                "now" => ms(ctx.now),
                "backoff" => dur_ms(s.retry_backoff.map(|b| b.delay)),
                "backoff_max" => dur_ms(s.retry_backoff.map(|b| b.max)),
                "max_runtime" => dur_ms(s.max_runtime),
            ],
        )
        .await?;
    if inserted == 0 {
        // Another process created it in between.
        return Err(Error::conflict(Conflict::QueueExists {
            queue: name.to_string(),
        }));
    }
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx, name, false).await?.queue)
}

fn check_settings(s: &QueueSettings) -> Result<()> {
    match rules::settings_problem(s) {
        Some((field, m)) => Err(Error::invalid(field, m)),
        None => Ok(()),
    }
}

pub async fn update_queue(ctx: &mut Ctx<'_>, name: &str, s: QueueSettings) -> Result<Queue> {
    check_settings(&s)?;
    let q = queue_by_name(ctx, name, true).await?;
    ctx.ready = WAKE_ALL;
    let int = |v: u128| v as i64;
    let mut ints: Vec<(&str, Option<i64>)> = Vec::new();
    let mut texts: Vec<(&str, Option<String>)> = Vec::new();
    if let Some(v) = s.description {
        texts.push(("description", Some(v)));
    }
    if let Some(v) = s.ttl {
        ints.push(("ttl_ms", Some(int(v.as_millis()))));
    }
    if let Some(v) = s.sla {
        ints.push(("sla_ms", Some(int(v.as_millis()))));
    }
    if let Some(v) = s.sla_risk_pct {
        ints.push(("sla_risk_pct", Some(v as i64)));
    }
    if let Some(v) = s.deadline {
        texts.push(("deadline", Some(v)));
    }
    if let Some(v) = s.tz {
        texts.push(("tz", Some(v)));
    }
    if let Some(v) = s.max_retries {
        ints.push(("max_retries", Some(v as i64)));
    }
    if let Some(v) = s.lease {
        ints.push(("lease_ms", Some(int(v.as_millis()))));
    }
    if let Some(v) = s.max_runtime {
        ints.push(("max_runtime_ms", Some(int(v.as_millis()))));
    }
    if let Some(v) = s.concurrency {
        ints.push(("concurrency", Some(v as i64)));
    }
    if let Some(v) = s.priority {
        ints.push(("priority", Some(v as i64)));
    }
    if let Some(b) = s.retry_backoff {
        ints.push(("retry_backoff_ms", Some(int(b.delay.as_millis()))));
        ints.push(("retry_backoff_max_ms", Some(int(b.max.as_millis()))));
    }
    // The settings given, then the clears: a clear after a set wins, as in SQLite.
    for (col, v) in ints {
        ctx.exec(
            &format!("UPDATE queues SET {col} = :v WHERE id = :id"),
            p!["v" => v, "id" => q.id],
        )
        .await?;
    }
    for (col, v) in texts {
        ctx.exec(
            &format!("UPDATE queues SET {col} = :v WHERE id = :id"),
            p!["v" => v, "id" => q.id],
        )
        .await?;
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
            ctx.exec(
                &format!("UPDATE queues SET {col} = NULL WHERE id = :id"),
                p!["id" => q.id],
            )
            .await?;
        }
    }
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx, name, false).await?.queue)
}

pub async fn set_queue_state(ctx: &mut Ctx<'_>, name: &str, state: QueueState) -> Result<Queue> {
    let q = queue_by_name(ctx, name, true).await?;
    ctx.ready = WAKE_ALL;
    ctx.exec(
        "UPDATE queues SET state = :state WHERE id = :id",
        p!["state" => state.as_str(), "id" => q.id],
    )
    .await?;
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(queue_by_name(ctx, name, false).await?.queue)
}

pub async fn delete_queue(ctx: &mut Ctx<'_>, name: &str, force: bool) -> Result<u64> {
    let q = queue_by_name(ctx, name, true).await?;
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
        "queue_counts",
        "open_minutes",
        "stats",
        "action_queues",
        "alerts",
    ] {
        ctx.exec(
            &format!("DELETE FROM {table} WHERE queue_id = :id"),
            p!["id" => q.id],
        )
        .await?;
    }
    ctx.exec("DELETE FROM queues WHERE id = :id", p!["id" => q.id])
        .await?;
    ctx.events.push(Event::Queue {
        queue: name.to_string(),
    });
    Ok(n)
}

// ---------------------------------------------------------------- bookkeeping

/// Counter changes, open-item tallies and finished-attempt stats of one call, written at
/// its commit (`settle`). Every status change goes through here, so the counters cannot
/// drift apart. Ordered maps: counters are written in queue order, so two transactions
/// never wait for each other's counter rows crosswise.
#[derive(Default)]
pub struct Deltas {
    counts: BTreeMap<(i64, Status), i64>,
    /// (queue, minute of enqueue) → change in open items.
    open: BTreeMap<(i64, i64), i64>,
    /// (queue, minute) → (processed, failed, handling ms).
    stats: BTreeMap<(i64, i64), (i64, i64, i64)>,
}

impl Deltas {
    /// An item enqueued at `enqueued_at` went from one status to another (`None`: did not
    /// exist, or no longer does).
    pub fn moved(
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
    pub(super) fn add(&mut self, queue_id: i64, s: Status, n: i64, enqueued_at: i64) {
        if n == 0 {
            return;
        }
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
}

/// Writes a call's tallies before its commit: counters, open-item minutes, stats and the
/// workers seen; and counts how many long polls its changes should wake (an item became
/// queued, or a slot freed up on a queue with a concurrency limit).
pub async fn settle(ctx: &mut Ctx<'_>) -> Result<()> {
    let d = std::mem::take(&mut ctx.deltas);
    let mut freed: [Vec<i64>; 2] = Default::default();
    let mut per_queue: BTreeMap<i64, [i64; 5]> = BTreeMap::new();
    for (&(qid, s), &n) in &d.counts {
        if n == 0 {
            continue;
        }
        if s == Status::Queued && n > 0 {
            ctx.ready = ctx.ready.saturating_add(n.unsigned_abs());
        }
        if s == Status::Processing && n < 0 {
            // Room made on a limited queue is worth a wake-up (asked in the statement).
            freed[0].push(qid);
            freed[1].push(-n);
        }
        let k = Status::ALL.iter().position(|x| *x == s).expect("a status");
        per_queue.entry(qid).or_default()[k] += n;
    }
    // Each change goes to this connection's shard (see schema version 4): no row every
    // worker of a queue writes. One statement (one round trip) for the three tables; rows
    // are written in key order within each, so two calls never wait crosswise. A minute's
    // shard left at zero stays until the sweep folds past minutes (`compact_open_minutes`).
    let mut c: [Vec<i64>; 6] = Default::default();
    for (qid, n) in per_queue {
        if n.iter().all(|n| *n == 0) {
            continue;
        }
        c[0].push(qid);
        for (k, v) in n.iter().enumerate() {
            c[k + 1].push(*v);
        }
    }
    let mut o: [Vec<i64>; 3] = Default::default();
    for ((qid, minute), n) in d.open {
        if n != 0 {
            o[0].push(qid);
            o[1].push(minute);
            o[2].push(n);
        }
    }
    let mut st: [Vec<i64>; 5] = Default::default();
    for ((qid, minute), (pr, f, h)) in d.stats {
        for (k, v) in [qid, minute, pr, f, h].into_iter().enumerate() {
            st[k].push(v);
        }
    }
    // Workers seen (their row at most once a second when they only poll), and the queues
    // they were heard from on, in name order.
    let now = ms(ctx.now);
    let mut w: (Vec<String>, Vec<i64>, Vec<i64>) = Default::default();
    for (name, (pr, f)) in std::mem::take(&mut ctx.workers)
        .into_iter()
        .collect::<BTreeMap<_, _>>()
    {
        if !written_lately(ctx, &name, None, now) || pr != 0 || f != 0 {
            w.0.push(name);
            w.1.push(pr);
            w.2.push(f);
        }
    }
    let mut wq: (Vec<String>, Vec<i64>) = Default::default();
    for (name, qid) in std::mem::take(&mut ctx.worker_queues) {
        if !written_lately(ctx, &name, Some(qid), now) {
            wq.0.push(name);
            wq.1.push(qid);
        }
    }
    if c[0].is_empty() && o[0].is_empty() && st[0].is_empty() && w.0.is_empty() && wq.0.is_empty() {
        return Ok(());
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        format!(
            "WITH c AS (
                INSERT INTO queue_counts (queue_id, shard, n_queued, n_processing,
                    n_processed, n_on_hold, n_exception)
                SELECT q, pg_backend_pid() % {SHARDS}, a, b, c, d, e
                FROM unnest(:cq::bigint[], :ca::bigint[], :cb::bigint[], :cc::bigint[],
                            :cd::bigint[], :ce::bigint[]) AS t(q, a, b, c, d, e)
                ORDER BY q
                ON CONFLICT (queue_id, shard) DO UPDATE SET
                   n_queued = queue_counts.n_queued + excluded.n_queued,
                   n_processing = queue_counts.n_processing + excluded.n_processing,
                   n_processed = queue_counts.n_processed + excluded.n_processed,
                   n_on_hold = queue_counts.n_on_hold + excluded.n_on_hold,
                   n_exception = queue_counts.n_exception + excluded.n_exception
                RETURNING 1
             ), o AS (
                INSERT INTO open_minutes (queue_id, minute, shard, n)
                SELECT q, m, pg_backend_pid() % {SHARDS}, n
                FROM unnest(:oq::bigint[], :om::bigint[], :on::bigint[]) AS t(q, m, n)
                ORDER BY q, m
                ON CONFLICT (queue_id, minute, shard) DO UPDATE
                   SET n = open_minutes.n + excluded.n
                RETURNING 1
             ), s AS (
                INSERT INTO stats (queue_id, minute, shard, processed, failed, handling_ms)
                SELECT q, m, pg_backend_pid() % {SHARDS}, p, f, h
                FROM unnest(:sq::bigint[], :sm::bigint[], :sp::bigint[], :sf::bigint[],
                            :sh::bigint[]) AS t(q, m, p, f, h)
                ORDER BY q, m
                ON CONFLICT (queue_id, minute, shard) DO UPDATE SET
                   processed = stats.processed + excluded.processed,
                   failed = stats.failed + excluded.failed,
                   handling_ms = stats.handling_ms + excluded.handling_ms
                RETURNING 1
             ), w AS (
                INSERT INTO workers (name, last_seen, processed, failed)
                SELECT n, :now, p, f FROM unnest(:wn::text[], :wp::bigint[], :wf::bigint[])
                    AS t(n, p, f)
                ORDER BY n
                ON CONFLICT (name) DO UPDATE SET
                   last_seen = GREATEST(workers.last_seen, excluded.last_seen),
                   processed = workers.processed + excluded.processed,
                   failed = workers.failed + excluded.failed
                RETURNING 1
             ), wq AS (
                INSERT INTO worker_queues (worker, queue_id, last_seen)
                SELECT n, q, :now FROM unnest(:qn::text[], :qq::bigint[]) AS t(n, q)
                ORDER BY n, q
                ON CONFLICT (worker, queue_id) DO UPDATE
                   SET last_seen = GREATEST(worker_queues.last_seen, excluded.last_seen)
                RETURNING 1
             )
             SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM o),
                    (SELECT count(*) FROM s), (SELECT count(*) FROM w),
                    (SELECT count(*) FROM wq),
                    (SELECT COALESCE(SUM(t.n), 0)::bigint
                     FROM unnest(:fq::bigint[], :fn::bigint[]) AS t(q, n)
                     JOIN queues ON queues.id = t.q AND queues.concurrency IS NOT NULL)"
        )
    });
    let row = ctx
        .commit_with(
            text,
            p![
                "cq" => c[0], "ca" => c[1], "cb" => c[2], "cc" => c[3], "cd" => c[4], "ce" => c[5],
                "oq" => o[0], "om" => o[1], "on" => o[2],
                "sq" => st[0], "sm" => st[1], "sp" => st[2], "sf" => st[3], "sh" => st[4],
                "now" => now, "wn" => w.0, "wp" => w.1, "wf" => w.2, "qn" => wq.0, "qq" => wq.1,
                "fq" => freed[0], "fn" => freed[1],
            ],
        )
        .await?;
    let freed_limited: i64 = row.get(5);
    ctx.ready = ctx.ready.saturating_add(freed_limited.max(0) as u64);
    Ok(())
}

/// A worker was seen now, on these queues, having processed and failed so many: written
/// at the commit.
pub(super) fn seen_worker(
    ctx: &mut Ctx<'_>,
    name: &str,
    queues: impl IntoIterator<Item = i64>,
    processed: i64,
    failed: i64,
) {
    let e = ctx.workers.entry(name.to_string()).or_default();
    e.0 += processed;
    e.1 += failed;
    for q in queues {
        ctx.worker_queues.insert((name.to_string(), q));
    }
}

/// Whether this worker's row (`queue` none) or its row for a queue was written by this
/// process less than a second ago; if not, it counts as written now. A polling worker is
/// not worth a write per poll: a second's precision is enough for "last seen".
fn written_lately(ctx: &Ctx<'_>, name: &str, queue: Option<i64>, now: i64) -> bool {
    let mut s = ctx.inner.seen.lock().expect("workers seen");
    let key = (name.to_string(), queue);
    let recent = s.get(&key).is_some_and(|t| now - t < 1000 && now >= *t);
    if !recent {
        s.insert(key, now);
    }
    recent
}

/// An agent registers (`Backend::register_worker`): what it says about itself is kept as
/// JSON beside its counts, and it is heard from on each of its queues.
pub async fn register_worker(ctx: &mut Ctx<'_>, name: &str, agent: &AgentInfo) -> Result<()> {
    rules::check_registration(name, agent)?;
    let mut ids = Vec::with_capacity(agent.queues.len());
    for q in &agent.queues {
        ids.push(queue_by_name(ctx, q, false).await?.id);
    }
    let now = ms(ctx.now);
    let json = serde_json::to_string(agent).expect("serializable");
    ctx.exec(
        "INSERT INTO workers (name, last_seen, agent) VALUES (:name, :now, :agent)
         ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, agent = excluded.agent",
        p!["name" => name, "now" => now, "agent" => json],
    )
    .await?;
    ctx.inner
        .seen
        .lock()
        .expect("workers seen")
        .insert((name.to_string(), None), now);
    for qid in ids {
        ctx.exec(
            "INSERT INTO worker_queues (worker, queue_id, last_seen) VALUES (:w, :q, :now)
             ON CONFLICT (worker, queue_id) DO UPDATE SET last_seen = excluded.last_seen",
            p!["w" => name, "q" => qid, "now" => now],
        )
        .await?;
    }
    Ok(())
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

pub(super) async fn history(ctx: &Ctx<'_>, row: &ItemRow, h: Hist<'_>) -> Result<()> {
    // Leaving processing ends an attempt: record its start and holder.
    let ends_attempt = h.from == Some(Status::Processing);
    ctx.exec(
        "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status,
            reason, note, detail, action_id, attempt_started, attempt_worker)
         VALUES (:seq, :queue, :at, :by, :action, :from, :to, :reason, :note, :detail,
            :action_id, :started, :worker)",
        p![
            "seq" => row.seq,
            "queue" => row.queue_id,
            "at" => ms(ctx.now),
            "by" => h.by,
            "action" => h.action,
            "from" => h.from.map(|s| s.as_str()),
            "to" => h.to.map(|s| s.as_str()),
            "reason" => h.reason.map(|r| r.as_str()),
            "note" => h.note,
            "detail" => h.detail,
            "action_id" => h.action_id,
            "started" => row.started_at.filter(|_| ends_attempt),
            "worker" => row.worker.as_deref().filter(|_| ends_attempt),
        ],
    )
    .await?;
    Ok(())
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

/// `items.dormant`: `rules::DORMANT`, kept in a column so the ready index holds only what a
/// dequeue may take.
pub(super) fn dormant(row: &ItemRow, now: Time) -> bool {
    rules::DORMANT.holds(&row.facts(None), ms(now))
}

/// Writes every changeable column of a row back, with its version bumped. The value is
/// only written when `value_changed`.
pub(super) async fn save(ctx: &Ctx<'_>, row: &mut ItemRow, value_changed: bool) -> Result<()> {
    row.version += 1;
    ctx.exec(
        "UPDATE items SET value = COALESCE(:value, value), priority = :priority,
            status = :status, reason = :reason, notes = :notes, signature = :signature,
            retry_count = :retry_count, requeue_count = :requeue_count,
            started_at = :started_at, finished_at = :finished_at, expires_at = :expires_at,
            delay_until = :delay_until, worker = :worker, lease_token = :lease_token,
            lease_until = :lease_until, version = :version, dormant = :dormant
         WHERE seq = :seq",
        p![
            "value" => row.value.as_deref().filter(|_| value_changed),
            "priority" => row.priority,
            "status" => row.status.as_str(),
            "reason" => row.reason.map(|r| r.as_str()),
            "notes" => row.notes,
            "signature" => row.signature,
            "retry_count" => row.retry_count,
            "requeue_count" => row.requeue_count,
            "started_at" => row.started_at,
            "finished_at" => row.finished_at,
            "expires_at" => row.expires_at,
            "delay_until" => row.delay_until,
            "worker" => row.worker,
            "lease_token" => row.lease_token,
            "lease_until" => row.lease_until,
            "version" => row.version,
            "dormant" => dormant(row, ctx.now),
            "seq" => row.seq,
        ],
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- getting work in

/// The row a new item becomes, before it is stored (`seq` is set by the insert).
pub(super) fn new_row(ctx: &Ctx<'_>, q: &QueueRow, it: NewItem, actor: &str) -> ItemRow {
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
pub(super) async fn insert(ctx: &Ctx<'_>, row: &mut ItemRow) -> Result<bool> {
    let seq_col = if row.seq == 0 { "" } else { ", seq" };
    let seq_val = if row.seq == 0 { "" } else { ", :seq" };
    let sql = format!(
        "INSERT INTO items (id, queue_id, name, key, value, priority, status, notes,
            enqueued_at, expires_at, delay_until, created_by, dormant{seq_col})
         VALUES (:id, :queue, :name, :key, :value, :priority, :status, :notes, :enqueued_at,
            :expires_at, :delay_until, :created_by, :dormant{seq_val})
         ON CONFLICT (queue_id, key) WHERE key IS NOT NULL DO NOTHING
         RETURNING seq"
    );
    let got = ctx
        .opt(
            &sql,
            p![
                "id" => row.id,
                "queue" => row.queue_id,
                "name" => row.name,
                "key" => row.key,
                "value" => row.value,
                "priority" => row.priority,
                "status" => row.status.as_str(),
                "notes" => row.notes,
                "enqueued_at" => row.enqueued_at,
                "expires_at" => row.expires_at,
                "delay_until" => row.delay_until,
                "created_by" => row.created_by,
                "dormant" => dormant(row, ctx.now),
                "seq" => row.seq,
            ],
        )
        .await?;
    match got {
        Some(r) => {
            row.seq = r.get(0);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// One producer's call: the queue, its items, and who adds them.
pub type Adding = (String, Vec<NewItem>, String);

/// Several producers' items in one transaction (see `group`), each call's in its order:
/// one INSERT for all of a queue's from one actor. An item refused (bad input, a key
/// already taken) fails the whole transaction, so that each call is then run alone and
/// told of its own.
pub async fn add_items(ctx: &mut Ctx<'_>, calls: &[Adding]) -> Result<Vec<Vec<Item>>> {
    let mut known: HashMap<&str, QueueRow> = HashMap::new();
    // Rows by (queue, actor), with each item's index in its call (0: a call of one), and
    // where each call's rows are among them.
    type Part<'c> = ((&'c str, &'c str), Vec<(ItemRow, u64)>);
    let mut parts: Vec<Part> = Vec::new();
    let mut places: Vec<Vec<(usize, usize)>> = Vec::with_capacity(calls.len());
    for (queue, items, actor) in calls {
        if !known.contains_key(queue.as_str()) {
            known.insert(queue, queue_by_name(ctx, queue, false).await?);
        }
        let q = &known[queue.as_str()];
        let part = match parts
            .iter()
            .position(|(k, _)| *k == (queue.as_str(), actor.as_str()))
        {
            Some(p) => p,
            None => {
                parts.push(((queue, actor), Vec::new()));
                parts.len() - 1
            }
        };
        let many = items.len() > 1;
        let mut here = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let index = many.then_some(i as u64 + 1);
            rules::check_new_item(it).map_err(|(field, m)| match index {
                Some(i) => Error::invalid_item(field, i, &m),
                None => Error::invalid(field, m),
            })?;
            let row = new_row(ctx, q, it.clone(), actor);
            here.push((part, parts[part].1.len()));
            parts[part].1.push((row, index.unwrap_or(0)));
        }
        places.push(here);
    }
    for ((queue, actor), rows) in &mut parts {
        let q = &known[*queue];
        for chunk in rows.chunks_mut(IMPORT_CHUNK) {
            let landed = insert_chunk(ctx, q, chunk, actor).await?;
            for (row, index) in chunk.iter_mut() {
                let Some(seq) = landed.get(&row.id) else {
                    return Err(Error::conflict(Conflict::DuplicateKey {
                        queue: queue.to_string(),
                        key: row.key.clone().unwrap_or_default(),
                        index: (*index > 0).then_some(*index),
                    }));
                };
                row.seq = *seq;
                if row.status == Status::OnHold {
                    created_on_hold(ctx, row, actor).await?;
                }
                ctx.deltas.add(q.id, row.status, 1, row.enqueued_at);
            }
        }
        ctx.events.push(Event::Items {
            queue: queue.to_string(),
            count: rows.len() as u64,
        });
    }
    Ok(places
        .iter()
        .map(|here| {
            here.iter()
                .map(|&(part, i)| {
                    let ((queue, _), rows) = &parts[part];
                    rows[i].0.to_item(&known[*queue], ctx.now)
                })
                .collect()
        })
        .collect())
}

/// Items made on hold say so in their history.
async fn created_on_hold(ctx: &Ctx<'_>, row: &ItemRow, actor: &str) -> Result<()> {
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
    .await
}

/// Whether an item in the queue holds `key`.
pub(super) async fn key_taken(ctx: &Ctx<'_>, queue_id: i64, key: &str) -> Result<bool> {
    Ok(ctx
        .opt(
            "SELECT 1 FROM items WHERE queue_id = :q AND key = :key",
            p!["q" => queue_id, "key" => key],
        )
        .await?
        .is_some())
}

/// Rows per statement where many are written or looked up at once: one round trip per
/// chunk, not per row.
pub(super) const IMPORT_CHUNK: usize = 1000;

/// Stores rows in one statement, in their order, skipping those whose key is taken in the
/// queue (by an item or an earlier row): the seq of each that went in, by id.
async fn insert_chunk(
    ctx: &Ctx<'_>,
    q: &QueueRow,
    rows: &[(ItemRow, u64)],
    actor: &str,
) -> Result<HashMap<String, i64>> {
    let col = |f: &dyn Fn(&ItemRow) -> Option<String>| -> Vec<Option<String>> {
        rows.iter().map(|(r, _)| f(r)).collect()
    };
    let ids = col(&|r| Some(r.id.clone()));
    let names = col(&|r| r.name.clone());
    let keys = col(&|r| r.key.clone());
    let values = col(&|r| r.value.clone());
    let statuses = col(&|r| Some(r.status.as_str().to_string()));
    let notes = col(&|r| r.notes.clone());
    let priorities: Vec<i64> = rows.iter().map(|(r, _)| r.priority).collect();
    let enqueued: Vec<i64> = rows.iter().map(|(r, _)| r.enqueued_at).collect();
    let expires: Vec<Option<i64>> = rows.iter().map(|(r, _)| r.expires_at).collect();
    let delays: Vec<Option<i64>> = rows.iter().map(|(r, _)| r.delay_until).collect();
    let dormants: Vec<bool> = rows.iter().map(|(r, _)| dormant(r, ctx.now)).collect();
    let got = ctx
        .rows(
            "INSERT INTO items (id, queue_id, name, key, value, priority, status, notes,
                enqueued_at, expires_at, delay_until, created_by, dormant)
             SELECT u.id, :queue, u.name, u.key, u.value, u.priority, u.status, u.notes,
                u.enqueued_at, u.expires_at, u.delay_until, :by, u.dormant
             FROM unnest(CAST(:ids AS TEXT[]), CAST(:names AS TEXT[]), CAST(:keys AS TEXT[]),
                CAST(:values AS TEXT[]), CAST(:priorities AS BIGINT[]),
                CAST(:statuses AS TEXT[]), CAST(:notes AS TEXT[]),
                CAST(:enqueued AS BIGINT[]), CAST(:expires AS BIGINT[]),
                CAST(:delays AS BIGINT[]), CAST(:dormants AS BOOLEAN[]))
                WITH ORDINALITY AS u(id, name, key, value, priority, status, notes,
                    enqueued_at, expires_at, delay_until, dormant, k)
             ORDER BY u.k
             ON CONFLICT (queue_id, key) WHERE key IS NOT NULL DO NOTHING
             RETURNING id, seq",
            p![
                "queue" => q.id,
                "by" => actor,
                "ids" => ids,
                "names" => names,
                "keys" => keys,
                "values" => values,
                "priorities" => priorities,
                "statuses" => statuses,
                "notes" => notes,
                "enqueued" => enqueued,
                "expires" => expires,
                "delays" => delays,
                "dormants" => dormants,
            ],
        )
        .await?;
    Ok(got.iter().map(|r| (r.get(0), r.get(1))).collect())
}

// ---------------------------------------------------------------- taking work

/// What a dequeue must name, checked before it waits to share a transaction.
pub fn check_dequeue(req: &DequeueRequest) -> Result<()> {
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
    Ok(())
}

/// Several workers' dequeues in one transaction (see `group`), each as if it ran alone, in
/// the order given: those naming the same queues share one claim per queue, the items
/// handed out in dequeue order, first to the first.
pub async fn dequeue(ctx: &mut Ctx<'_>, reqs: &[DequeueRequest]) -> Result<Vec<Dequeued>> {
    let mut known: HashMap<String, QueueRow> = HashMap::new();
    // The requests by the queues they name (each once, highest priority first).
    let mut lists: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (r, req) in reqs.iter().enumerate() {
        check_dequeue(req)?;
        let mut seen = std::collections::HashSet::new();
        let mut names = Vec::new();
        for n in req.queues.iter().filter(|n| seen.insert(n.as_str())) {
            if !known.contains_key(n) {
                known.insert(n.clone(), queue_by_name(ctx, n, false).await?);
            }
            names.push(n.clone());
        }
        names.sort_by_key(|n| std::cmp::Reverse(known[n].queue.priority));
        match lists.iter_mut().find(|(l, _)| *l == names) {
            Some((_, rs)) => rs.push(r),
            None => lists.push((names, vec![r])),
        }
    }
    let now = ms(ctx.now);
    let tokens: Vec<String> = reqs
        .iter()
        .map(|_| ulid::Ulid::new().to_string().to_ascii_lowercase())
        .collect();
    let mut left: Vec<u64> = reqs.iter().map(|r| r.count as u64).collect();
    let mut leases: Vec<Vec<Lease>> = reqs.iter().map(|_| Vec::new()).collect();
    let mut why: Vec<Vec<QueueEmpty>> = reqs.iter().map(|_| Vec::new()).collect();
    // Taken by this transaction, which the counters read in it do not show yet.
    let mut taken_here: HashMap<i64, u64> = HashMap::new();
    let mut woken = std::collections::HashSet::new();
    let t = rules::transition(ItemEvent::Dequeue);
    for (names, rs) in &lists {
        for name in names {
            let wanting: Vec<usize> = rs.iter().copied().filter(|&r| left[r] > 0).collect();
            if wanting.is_empty() {
                break;
            }
            // A limited queue's room is read under its row's lock, so concurrent dequeues
            // (of this process or another) cannot both take the last slot.
            if known[name].queue.concurrency.is_some() {
                let fresh = queue_by_name(ctx, name, true).await?;
                known.insert(name.clone(), fresh);
            }
            let q = &known[name];
            let empty = |(reason, message): (EmptyReason, String)| QueueEmpty {
                queue: q.queue.name.clone(),
                reason,
                message,
            };
            let processing = q.counts.processing + taken_here.get(&q.id).copied().unwrap_or(0);
            let wanted: u64 = wanting.iter().map(|&r| left[r]).sum();
            let take = match rules::dequeue_room(&q.queue, processing, wanted) {
                Ok(take) => take,
                Err(e) => {
                    for &r in &wanting {
                        why[r].push(empty(e.clone()));
                    }
                    continue;
                }
            };
            let lease = rules::capped_lease(now, q.queue.lease, now, q.queue.max_runtime)
                .unwrap_or(q.queue.lease);
            let lease_until = rules::lease_until(now, lease);
            if woken.insert(q.id) {
                wake_due(ctx, q.id).await?;
            }
            // Slots in request order, as many as the room allows.
            let (mut workers, mut toks, mut counts) = (Vec::new(), Vec::new(), Vec::new());
            let mut room = take;
            for &r in &wanting {
                let n = left[r].min(room);
                if n == 0 {
                    break;
                }
                room -= n;
                workers.push(reqs[r].worker.as_str());
                toks.push(tokens[r].as_str());
                counts.push(n as i64);
            }
            let got = ctx
                .rows(
                    claim_sql(),
                    p![
                        "now" => now,
                        "workers" => workers,
                        "tokens" => toks,
                        "counts" => counts,
                        "lease_until" => lease_until,
                        "queue" => q.id,
                        "take" => take as i64,
                    ],
                )
                .await?;
            let mut rows: Vec<(ItemRow, usize)> = got
                .iter()
                .map(|r| {
                    (
                        item(r),
                        r.get::<_, i64>(ITEM_COLS.split(',').count()) as usize,
                    )
                })
                .collect();
            rows.sort_by_key(|(r, _)| (r.priority, r.seq));
            let taken = rows.len() as u64;
            let mut got_here = std::collections::HashSet::new();
            for (row, slot) in rows {
                let r = wanting[slot - 1];
                got_here.insert(r);
                ctx.deltas
                    .moved(q.id, Some(t.from), Some(t.to), row.enqueued_at);
                left[r] -= 1;
                leases[r].push(Lease {
                    lease: row.lease_token.clone().unwrap_or_default(),
                    lease_until: from_ms(lease_until),
                    item: row.to_item(q, ctx.now),
                });
            }
            *taken_here.entry(q.id).or_default() += taken;
            if taken > 0 {
                ctx.events.push(Event::Items {
                    queue: q.queue.name.clone(),
                    count: taken,
                });
            }
            for &r in wanting.iter().filter(|r| !got_here.contains(r)) {
                why[r].push(empty(rules::nothing_ready(&q.queue.name)));
            }
        }
    }
    let mut out = Vec::with_capacity(reqs.len());
    for (r, req) in reqs.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<i64> = req
            .queues
            .iter()
            .filter(|n| seen.insert(n.as_str()))
            .map(|n| known[n].id)
            .collect();
        seen_worker(ctx, &req.worker, ids, 0, 0);
        let leases = std::mem::take(&mut leases[r]);
        let why_empty = leases
            .is_empty()
            .then(|| rules::why_empty(std::mem::take(&mut why[r])));
        out.push(Dequeued { leases, why_empty });
    }
    Ok(out)
}

/// The claim, written once from the rules: the dequeue's transition as the SET, what may be
/// taken (`rules::TAKEABLE`) as the WHERE, in dequeue order, on the ready items' partial
/// index; rows another transaction is claiming are skipped, not waited for. The rows are
/// handed out to slots, in order: slot k (its worker, lease token and count) takes the
/// next `counts[k]` rows; each row comes back with its slot's number (from 1).
fn claim_sql() -> &'static str {
    static CLAIM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLAIM.get_or_init(|| {
        let t = rules::transition(ItemEvent::Dequeue);
        // Tokens end in the row's seq, as the SQLite store's do.
        let set = store_sql::set(t.to, &t.writes, "s.token || '.' || i.seq::text", &|n| {
            match n {
                "worker" => "s.worker".to_string(),
                n => store_sql::named(n),
            }
        });
        format!(
            "WITH picked AS (
                SELECT seq, row_number() OVER (ORDER BY priority, seq) AS k FROM (
                    SELECT seq, priority FROM items
                    WHERE queue_id = :queue AND status = 'queued' AND NOT dormant AND {}
                    ORDER BY priority, seq LIMIT :take
                    FOR UPDATE SKIP LOCKED) f),
             slots AS (
                SELECT w.worker, w.token, w.k,
                    SUM(w.n) OVER (ORDER BY w.k) - w.n AS after, SUM(w.n) OVER (ORDER BY w.k) AS upto
                FROM unnest(CAST(:workers AS TEXT[]), CAST(:tokens AS TEXT[]),
                    CAST(:counts AS BIGINT[])) WITH ORDINALITY AS w(worker, token, n, k))
             UPDATE items i SET {}, version = i.version + 1
             FROM picked p JOIN slots s ON p.k > s.after AND p.k <= s.upto
             WHERE i.seq = p.seq
             RETURNING {}, s.k",
            cond(&rules::TAKEABLE, ""),
            set.sql,
            ITEM_COLS
        )
    })
}

/// Delayed items of a queue whose time has come become takeable (or stay dormant, expired).
async fn wake_due(ctx: &Ctx<'_>, queue_id: i64) -> Result<()> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        let due = rules::Cond::Time(rules::Col::DelayUntil, rules::Cmp::Reached);
        format!(
            "UPDATE items SET delay_until = NULL, dormant = {}
             WHERE queue_id = :queue AND status = 'queued' AND dormant AND {}",
            cond(&rules::EXPIRY_PASSED, ""),
            cond(&due, "")
        )
    });
    ctx.exec(text, p!["queue" => queue_id, "now" => ms(ctx.now)])
        .await?;
    Ok(())
}

/// Folds the shards of each past minute's open-item tally into shard 0, and drops the
/// minutes with nothing open left, so `open_before` sums few rows however long a schema has
/// run (calls add to their connection's shard, where a minute's rows would otherwise stay,
/// one per shard, summing to zero). The current and previous minute are left to the calls.
/// Rows are locked in key order, the order calls write them in.
async fn compact_open_minutes(ctx: &Ctx<'_>) -> Result<()> {
    let before = ms(ctx.now).div_euclid(60_000) - 1;
    ctx.exec(
        "WITH locked AS (
            SELECT queue_id, minute, shard FROM open_minutes
            WHERE shard <> 0 AND minute < :before
            ORDER BY queue_id, minute, shard
            FOR UPDATE
         ), gone AS (
            DELETE FROM open_minutes o USING locked l
            WHERE o.queue_id = l.queue_id AND o.minute = l.minute AND o.shard = l.shard
            RETURNING o.queue_id, o.minute, o.n
         ), sums AS (
            SELECT queue_id, minute, SUM(n)::bigint AS n FROM gone
            GROUP BY queue_id, minute HAVING SUM(n) <> 0
         )
         INSERT INTO open_minutes (queue_id, minute, shard, n)
         SELECT queue_id, minute, 0, n FROM sums ORDER BY queue_id, minute
         ON CONFLICT (queue_id, minute, shard) DO UPDATE SET n = open_minutes.n + excluded.n",
        p!["before" => before],
    )
    .await?;
    ctx.exec(
        "DELETE FROM open_minutes WHERE shard = 0 AND n = 0 AND minute < :before",
        p!["before" => before],
    )
    .await?;
    Ok(())
}

/// Marks the queued items that expired since the last sweep (of any process: the bookmark
/// is in the database) as dormant.
async fn mark_expired(ctx: &Ctx<'_>) -> Result<()> {
    let now = ms(ctx.now);
    let from: i64 = ctx
        .opt("SELECT value FROM marks WHERE name = 'expired_up_to'", &[])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(i64::MIN);
    if now <= from {
        return Ok(());
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let mark = SQL.get_or_init(|| {
        format!(
            "UPDATE items SET dormant = TRUE WHERE {}
               AND expires_at > :from AND NOT dormant",
            cond(&rules::EXPIRED, "")
        )
    });
    ctx.exec(mark, p!["from" => from, "now" => now]).await?;
    ctx.exec(
        "INSERT INTO marks (name, value) VALUES ('expired_up_to', :now)
         ON CONFLICT (name) DO UPDATE SET value = GREATEST(marks.value, excluded.value)",
        p!["now" => now],
    )
    .await?;
    Ok(())
}

/// Loads (and locks) an item a worker reports on and asks the rules whether it may: the
/// token must be the item's lease (the fencing that makes stale workers harmless).
async fn leased(
    ctx: &Ctx<'_>,
    event: ItemEvent,
    id: &str,
    token: &str,
) -> Result<(ItemRow, &'static rules::Transition)> {
    let row = item_by_id(ctx, id, true).await?;
    let t = rules::lease_holder(
        event,
        id,
        row.status,
        row.lease_token.as_deref() == Some(token),
    )?;
    Ok((row, t))
}

/// Applies a worker's or the engine's transition to a loaded row.
fn apply(ctx: &Ctx<'_>, row: &mut ItemRow, t: &rules::Transition, given: &rules::Given) {
    let mut st = row.state();
    rules::apply(&mut st, t.to, &t.writes, given, ms(ctx.now));
    row.set_state(st);
}

pub async fn heartbeat(ctx: &mut Ctx<'_>, leases: &[LeaseRef]) -> Result<Vec<Result<Time>>> {
    let mut queues = Queues::default();
    let mut holders: Vec<(String, i64)> = Vec::new();
    let mut out = Vec::with_capacity(leases.len());
    for l in leases {
        let r: Result<Time> = async {
            let (mut row, t) = leased(ctx, ItemEvent::Heartbeat, &l.id, &l.lease).await?;
            let queue = queues.get(ctx, row.queue_id).await?.queue.clone();
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
            save(ctx, &mut row, false).await?;
            if let Some(w) = row.worker.take() {
                if !holders.contains(&(w.clone(), row.queue_id)) {
                    holders.push((w, row.queue_id));
                }
            }
            Ok(from_ms(row.lease_until.unwrap_or(ms(ctx.now))))
        }
        .await;
        out.push(r);
    }
    for (w, qid) in &holders {
        seen_worker(ctx, w, [*qid], 0, 0);
    }
    Ok(out)
}

/// A failed attempt (`Fail` or `LeaseTimeout`): the rules make it an exception, or queue
/// it again after its backoff; each step is a history row. `by`: the lease holder.
#[allow(clippy::too_many_arguments)]
async fn fail(
    ctx: &mut Ctx<'_>,
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
        )
        .await?;
        if let Some(a) = t.attempt {
            let processed = a == rules::Attempt::Processed;
            ctx.deltas
                .attempt(q.id, ctx.now, processed, ms(ctx.now) - started);
        }
    }
    ctx.deltas
        .moved(q.id, Some(from), Some(row.status), row.enqueued_at);
    save(ctx, row, false).await
}

/// One worker's report: its outcomes, and its name.
pub type Report = (Vec<Outcome>, String);

/// The outcomes of several workers' reports, in one transaction (see `group`): the plain
/// completions of all of them in one statement and their history in another, the rest one
/// by one in the order reported.
pub async fn finish(ctx: &mut Ctx<'_>, reports: &[Report]) -> Result<Vec<Vec<Result<Finished>>>> {
    let mut queues = Queues::default();
    let flat: Vec<(usize, &Outcome, &str)> = reports
        .iter()
        .enumerate()
        .flat_map(|(c, (outcomes, worker))| outcomes.iter().map(move |o| (c, o, worker.as_str())))
        .collect();
    let mut out: Vec<Vec<Result<Finished>>> = reports
        .iter()
        .map(|(o, _)| Vec::with_capacity(o.len()))
        .collect();
    // Per worker: items processed and failed, and the items finished per queue.
    let mut tally: BTreeMap<&str, (i64, i64, BTreeMap<i64, u64>)> = BTreeMap::new();
    let mut names: HashMap<i64, String> = HashMap::new();
    // Plain completions of items named once in the group: all in a few statements.
    let mut named: HashMap<&str, usize> = HashMap::new();
    for (_, o, _) in &flat {
        *named.entry(o.id.as_str()).or_default() += 1;
    }
    let plain: Vec<usize> = (0..flat.len())
        .filter(|&i| {
            let o = flat[i].1;
            o.reason.is_none() && o.retry_in.is_none() && named[o.id.as_str()] == 1
        })
        .collect();
    let mut batched = complete_batch(ctx, &flat, &plain).await?;
    for (i, &(call, o, worker)) in flat.iter().enumerate() {
        if let Some(r) = batched.remove(&i) {
            let r = r.map(|(f, qid, name)| {
                let t = tally.entry(worker).or_default();
                t.0 += 1;
                *t.2.entry(qid).or_default() += 1;
                names.insert(qid, name);
                f
            });
            out[call].push(r);
            continue;
        }
        let r: Result<Finished> = async {
            if let Some(d) = o.retry_in {
                rules::check_retry_in(o.reason, d)
                    .map_err(|m| Error::invalid("retry_in", format!("item {}: {m}", o.id)))?;
            }
            let (row, processed, failed) = match o.reason {
                Some(_) if o.retry_in.is_some() => {
                    let (mut row, t) = leased(ctx, ItemEvent::Postpone, &o.id, &o.lease).await?;
                    let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
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
                    )
                    .await?;
                    if let Some(n) = &o.note {
                        append_note(&mut row, ctx.now, &by, n);
                    }
                    let given = rules::Given {
                        delay: o.retry_in,
                        ..Default::default()
                    };
                    apply(ctx, &mut row, t, &given);
                    ctx.deltas
                        .moved(row.queue_id, Some(t.from), Some(t.to), row.enqueued_at);
                    save(ctx, &mut row, false).await?;
                    (row, 0, 0)
                }
                None => {
                    let (mut row, t) = leased(ctx, ItemEvent::Complete, &o.id, &o.lease).await?;
                    let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
                    history(
                        ctx,
                        &row,
                        Hist {
                            by: &by,
                            action: t.history.expect("a completion is history"),
                            from: Some(t.from),
                            to: Some(t.to),
                            reason: None,
                            note: o.note.as_deref(),
                            detail: None,
                            action_id: None,
                        },
                    )
                    .await?;
                    if let (true, Some(n)) = (t.appends_note, &o.note) {
                        append_note(&mut row, ctx.now, &by, n);
                    }
                    let started = row.started_at.unwrap_or(ms(ctx.now));
                    apply(ctx, &mut row, t, &rules::Given::default());
                    ctx.deltas
                        .attempt(row.queue_id, ctx.now, true, ms(ctx.now) - started);
                    ctx.deltas
                        .moved(row.queue_id, Some(t.from), Some(t.to), row.enqueued_at);
                    save(ctx, &mut row, false).await?;
                    (row, 1, 0)
                }
                Some(reason) => {
                    let (mut row, _) = leased(ctx, ItemEvent::Fail, &o.id, &o.lease).await?;
                    let q = queues.get(ctx, row.queue_id).await?.clone();
                    let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
                    fail(
                        ctx,
                        &q,
                        &mut row,
                        ItemEvent::Fail,
                        reason,
                        o.note.as_deref(),
                        &by,
                    )
                    .await?;
                    (row, 0, 1)
                }
            };
            let t = tally.entry(worker).or_default();
            t.0 += processed;
            t.1 += failed;
            *t.2.entry(row.queue_id).or_default() += 1;
            Ok(Finished {
                id: row.id,
                status: row.status,
                reason: row.reason,
                retry_count: row.retry_count as u32,
            })
        }
        .await;
        out[call].push(r);
    }
    let mut finished: BTreeMap<i64, u64> = BTreeMap::new();
    for (worker, (done, failed, per_queue)) in tally {
        for (&qid, &n) in &per_queue {
            *finished.entry(qid).or_default() += n;
        }
        seen_worker(ctx, worker, per_queue.into_keys(), done, failed);
    }
    for (qid, n) in finished {
        let name = match names.remove(&qid) {
            Some(name) => name,
            None => queues.get(ctx, qid).await?.queue.name.clone(),
        };
        ctx.events.push(Event::Items {
            queue: name,
            count: n,
        });
    }
    Ok(out)
}

/// Completes the plain outcomes at `which` (each item named once): one UPDATE over all of
/// them, written from the rules (`Complete`'s writes as the SET, its `from` and the lease
/// as the WHERE, the reported note appended), and one INSERT of their history rows. An
/// outcome whose lease does not match is explained by the rules, one by one. Each that
/// completed comes with its queue's id and name.
async fn complete_batch(
    ctx: &mut Ctx<'_>,
    flat: &[(usize, &Outcome, &str)],
    which: &[usize],
) -> Result<HashMap<usize, Result<(Finished, i64, String)>>> {
    let mut answers = HashMap::new();
    if which.is_empty() {
        return Ok(answers);
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        let t = rules::transition(ItemEvent::Complete);
        debug_assert!(t.appends_note && t.writes.lease == rules::LeasePut::End);
        let set = store_sql::set(t.to, &t.writes, "", &store_sql::named);
        // The note as serde writes a `Note`, appended to the stored JSON array's text.
        let note = "'{\"at\":\"' || CAST(:at AS TEXT) || '\",\"by\":' \
                    || to_json(COALESCE(i.worker, o.worker))::text \
                    || ',\"text\":' || to_json(o.note)::text || '}'";
        // The history rows in the same statement, in the order reported, as the SQLite
        // store writes them.
        format!(
            "WITH u AS (
                UPDATE items i SET {}, version = i.version + 1,
                    notes = CASE WHEN o.note IS NULL THEN i.notes
                        WHEN i.notes IS NULL OR i.notes = '[]' THEN '[' || {note} || ']'
                        ELSE left(i.notes, -1) || ',' || {note} || ']' END
                FROM unnest(CAST(:ids AS TEXT[]), CAST(:leases AS TEXT[]),
                        CAST(:notes AS TEXT[]), CAST(:workers AS TEXT[]))
                    WITH ORDINALITY AS o(id, lease, note, worker, k)
                WHERE i.id = o.id AND i.status = '{from}' AND i.lease_token = o.lease
                RETURNING i.id, i.queue_id, i.worker, i.started_at, i.retry_count, i.seq,
                    i.enqueued_at, o.note, o.k, COALESCE(i.worker, o.worker) AS by
             ), h AS (
                INSERT INTO history (item_seq, queue_id, at, by, action, from_status,
                    to_status, note, attempt_started, attempt_worker)
                SELECT u.seq, u.queue_id, :now, u.by, '{action}', '{from}', '{to}', u.note,
                    u.started_at, u.by
                FROM u ORDER BY u.k
             )
             SELECT u.id, u.queue_id, u.started_at, u.retry_count, u.enqueued_at,
                (SELECT name FROM queues q WHERE q.id = u.queue_id)
             FROM u",
            set.sql,
            from = t.from,
            to = t.to,
            action = t.history.expect("a completion is history"),
        )
    });
    let ids: Vec<&str> = which.iter().map(|&i| flat[i].1.id.as_str()).collect();
    let leases: Vec<&str> = which.iter().map(|&i| flat[i].1.lease.as_str()).collect();
    let notes: Vec<Option<&str>> = which.iter().map(|&i| flat[i].1.note.as_deref()).collect();
    let workers: Vec<&str> = which.iter().map(|&i| flat[i].2).collect();
    let at = ctx.now.format(crate::model::time_ms::FORMAT).to_string();
    let rows = ctx
        .rows(
            text,
            p![
                "now" => ms(ctx.now),
                "at" => at,
                "ids" => ids,
                "leases" => leases,
                "notes" => notes,
                "workers" => workers,
            ],
        )
        .await?;
    struct Done {
        queue_id: i64,
        started_at: Option<i64>,
        retry_count: i64,
        enqueued_at: i64,
        queue: String,
    }
    let mut done: HashMap<String, Done> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Done {
                    queue_id: r.get(1),
                    started_at: r.get(2),
                    retry_count: r.get(3),
                    enqueued_at: r.get(4),
                    queue: r.get(5),
                },
            )
        })
        .collect();
    let t = rules::transition(ItemEvent::Complete);
    for &i in which {
        let (_, o, _) = flat[i];
        let Some(d) = done.remove(&o.id) else {
            // The rules say why (a stale lease, an item that moved on); else it changed.
            let why = match leased(ctx, ItemEvent::Complete, &o.id, &o.lease).await {
                Err(e) => e,
                Ok(_) => Error::conflict(Conflict::Changed { id: o.id.clone() }),
            };
            answers.insert(i, Err(why));
            continue;
        };
        let started = d.started_at.unwrap_or(ms(ctx.now));
        ctx.deltas
            .attempt(d.queue_id, ctx.now, true, ms(ctx.now) - started);
        ctx.deltas
            .moved(d.queue_id, Some(t.from), Some(t.to), d.enqueued_at);
        answers.insert(
            i,
            Ok((
                Finished {
                    id: o.id.clone(),
                    status: t.to,
                    reason: None,
                    retry_count: d.retry_count as u32,
                },
                d.queue_id,
                d.queue,
            )),
        );
    }
    Ok(answers)
}

pub async fn hand_back(
    ctx: &mut Ctx<'_>,
    leases: &[HandBack],
    worker: &str,
    note: &str,
) -> Result<Vec<Result<Finished>>> {
    let mut queues = Queues::default();
    let mut out = Vec::with_capacity(leases.len());
    for h in leases {
        let r: Result<Finished> = async {
            let (mut row, t) = leased(ctx, ItemEvent::HandBack, &h.id, &h.lease).await?;
            let q = queues.get(ctx, row.queue_id).await?.clone();
            let by = row.worker.clone().unwrap_or_else(|| worker.to_string());
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
            )
            .await?;
            apply(ctx, &mut row, t, &rules::Given::default());
            ctx.deltas
                .moved(q.id, Some(t.from), Some(t.to), row.enqueued_at);
            save(ctx, &mut row, false).await?;
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
        }
        .await;
        out.push(r);
    }
    seen_worker(ctx, worker, [], 0, 0);
    Ok(out)
}

/// The items `prune` removes: up to `:most` past retention at `:now`, oldest finish first,
/// skipping rows another call holds locked (left for the next round).
fn prune_pick() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT i.seq FROM items i WHERE {} ORDER BY i.finished_at LIMIT :most
             FOR UPDATE SKIP LOCKED",
            cond(&rules::PAST_RETENTION, "i.")
        )
    })
}

/// `serve --retain`: removes up to `most` items past retention (`rules::PAST_RETENTION`,
/// processed before `before`, in ms) with their history, oldest first: how many.
pub async fn prune(ctx: &mut Ctx<'_>, before: i64, most: u64) -> Result<u64> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        format!(
            "WITH gone AS (DELETE FROM items WHERE seq IN ({}) RETURNING seq, queue_id),
             h AS (DELETE FROM history WHERE item_seq IN (SELECT seq FROM gone))
             SELECT gone.queue_id, q.name, count(*) FROM gone JOIN queues q ON q.id = gone.queue_id
             GROUP BY gone.queue_id, q.name ORDER BY q.name",
            prune_pick()
        )
    });
    let got = ctx
        .rows(text, p!["now" => before, "most" => most as i64])
        .await?;
    let mut n = 0;
    for r in &got {
        let (qid, name, count): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
        ctx.deltas.add(qid, Status::Processed, -count, ms(ctx.now));
        ctx.events.push(Event::Items {
            queue: name,
            count: count as u64,
        });
        n += count as u64;
    }
    Ok(n)
}

/// Times out leases nobody renewed (`rules::LEASE_RAN_OUT`) and items past their queue's
/// max runtime: each becomes a `timeout` failure (retried if allowed). Rows another
/// process is sweeping are skipped. Also puts newly expired items out of the dequeue's way.
pub async fn sweep(ctx: &mut Ctx<'_>) -> Result<u64> {
    mark_expired(ctx).await?;
    compact_open_minutes(ctx).await?;
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let texts = SQL.get_or_init(|| {
        [
            format!(
                "SELECT {ITEM_COLS} FROM items i WHERE i.status = 'processing' AND {}
                 ORDER BY i.seq LIMIT 1000 FOR UPDATE SKIP LOCKED",
                cond(&rules::LEASE_RAN_OUT, "i.")
            ),
            format!(
                "SELECT {ITEM_COLS} FROM queues q JOIN items i ON i.queue_id = q.id
                 WHERE q.max_runtime_ms IS NOT NULL AND i.status = 'processing' AND {}
                 ORDER BY i.seq LIMIT 1000 FOR UPDATE OF i SKIP LOCKED",
                cond_q(&rules::RUNTIME_RAN_OUT)
            ),
        ]
    });
    let mut rows: Vec<ItemRow> = Vec::new();
    for text in texts {
        let got = ctx.rows(text, p!["now" => ms(ctx.now)]).await?;
        for r in items(&got) {
            if !rows.iter().any(|x| x.id == r.id) {
                rows.push(r);
            }
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let mut queues = Queues::default();
    let n = rows.len() as u64;
    for mut row in rows {
        let q = queues.get(ctx, row.queue_id).await?.clone();
        let past_max = rules::RUNTIME_RAN_OUT.holds(&row.facts(Some(&q.queue)), ms(ctx.now));
        let note = match q.queue.max_runtime {
            Some(m) if past_max => rules::max_runtime_note(row.worker.as_deref(), m),
            _ => rules::timeout_note(row.worker.as_deref(), q.queue.lease),
        };
        fail(
            ctx,
            &q,
            &mut row,
            ItemEvent::LeaseTimeout,
            Reason::Timeout,
            Some(&note),
            "system",
        )
        .await?;
        ctx.events.push(Event::Items {
            queue: q.queue.name.clone(),
            count: 1,
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::types::ToSql;

    /// The statements written from the rules keep to their partial indexes on a queue of
    /// many items: a claim walks items_ready (FOR UPDATE SKIP LOCKED), the sweep
    /// items_lease. Needs `WORKQ_TEST_PG_URL` (skipped without it, never under CI).
    #[tokio::test]
    async fn statements_from_the_rules_use_their_partial_indexes() {
        let url = match std::env::var("WORKQ_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "CI=true but WORKQ_TEST_PG_URL is unset"
                );
                eprintln!("SKIPPED: WORKQ_TEST_PG_URL is not set");
                return;
            }
        };
        let name = format!("wq_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let at = format!("{url}{sep}options=-csearch_path%3D{name}");
        let config = super::super::schema::config(&at).unwrap();
        let place = super::super::schema::Place::of(&at, &config);
        let mut client = super::super::schema::connect(&config, &place)
            .await
            .unwrap();
        super::super::schema::prepare(&mut client, &place, true)
            .await
            .unwrap();
        client
            .batch_execute(
                "INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority,
                    created_at) VALUES ('q', 80, 'UTC', 0, 60000, 0, 0), ('r', 80, 'UTC', 0, 60000, 0, 0);
                 INSERT INTO items (id, queue_id, value, priority, status, enqueued_at,
                    created_by, lease_until)
                   SELECT 'i' || k, 1 + k % 2, 'v', k % 3,
                     CASE WHEN k % 10 = 0 THEN 'queued' WHEN k % 10 = 1 THEN 'processing'
                          ELSE 'processed' END,
                     k, 'bot', CASE WHEN k % 10 = 1 THEN k END
                   FROM generate_series(1, 50000) AS k;
                 ANALYZE;",
            )
            .await
            .unwrap();
        let plan = |sql: &str, vals: Vec<(&'static str, Box<dyn ToSql + Sync + Send>)>| {
            let (text, names) = crate::store::sql::numbered(sql);
            let client = &client;
            async move {
                let bound: Vec<&(dyn ToSql + Sync)> = names
                    .iter()
                    .map(|n| {
                        vals.iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| v.as_ref() as &(dyn ToSql + Sync))
                            .unwrap_or_else(|| panic!("no :{n}"))
                    })
                    .collect();
                let rows = client
                    .query(&format!("EXPLAIN {text}"), &bound)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        let claim = plan(
            claim_sql(),
            vec![
                ("now", Box::new(1_000_000i64)),
                ("workers", Box::new(vec!["w".to_string()])),
                ("tokens", Box::new(vec!["t".to_string()])),
                ("counts", Box::new(vec![10i64])),
                ("lease_until", Box::new(2_000_000i64)),
                ("queue", Box::new(1i64)),
                ("take", Box::new(10i64)),
            ],
        )
        .await;
        assert!(claim.contains("items_ready"), "{claim}");
        assert!(claim.contains("LockRows"), "{claim}");
        let sweep = format!(
            "SELECT {ITEM_COLS} FROM items i WHERE i.status = 'processing' AND {}
             ORDER BY i.seq LIMIT 1000 FOR UPDATE SKIP LOCKED",
            cond(&rules::LEASE_RAN_OUT, "i.")
        );
        let swept = plan(&sweep, vec![("now", Box::new(100i64))]).await;
        assert!(swept.contains("items_lease"), "{swept}");
        let pruned = plan(
            prune_pick(),
            vec![("now", Box::new(100i64)), ("most", Box::new(1000i64))],
        )
        .await;
        assert!(pruned.contains("items_finished"), "{pruned}");
        for p in [&claim, &swept, &pruned] {
            assert!(!p.contains("Seq Scan on items"), "{p}");
        }
        admin
            .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
            .await
            .unwrap();
    }
}
