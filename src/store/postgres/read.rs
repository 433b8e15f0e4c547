//! Reads, each in one read-only snapshot: queue health, item pages, item detail, groups,
//! workers. The same answers as the SQLite store's `read`.

use super::filter;
use super::rows::*;
use super::write::{cond, ms};
use super::{p, Ctx, P};
use crate::backend::{Conflict, Error, Result};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules;

pub async fn summary(ctx: &Ctx<'_>, q: QueueRow) -> Result<QueueSummary> {
    let now = ctx.now;
    let now_ms = now.timestamp_millis();
    let (out_edge, risk_edge) = match q.queue.sla {
        Some(sla) => {
            let e = rules::sla_edges(sla.as_millis() as i64, q.queue.sla_risk_pct, now_ms);
            (e.out, e.risk)
        }
        None => (i64::MIN, i64::MIN),
    };
    let [out, upto_risk] = match q.queue.sla {
        Some(_) => open_before(ctx, q.id, [out_edge, risk_edge]).await?,
        None => [0, 0],
    };
    // Expired items are out of SLA whatever their age (SPEC §3): how many are expired, how
    // many of those the age tallies already count as out, and how many sit at risk.
    let r = ctx
        .row(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE enqueued_at < :out),
                    count(*) FILTER (WHERE enqueued_at >= :out AND enqueued_at < :risk),
                    min(enqueued_at)
                 FROM items WHERE queue_id = :q AND status = 'queued' AND {}",
                cond(&rules::EXPIRED, "")
            ),
            p!["q" => q.id, "now" => now_ms, "out" => out_edge, "risk" => risk_edge],
        )
        .await?;
    let (expired, expired_old, expired_risky, oldest_expired): (i64, i64, i64, Option<i64>) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let expired = expired.max(0) as u64;
    let out_of_sla = out + expired - (expired_old.max(0) as u64).min(out + expired);
    let at_risk = (upto_risk - out).saturating_sub(expired_risky.max(0) as u64);
    let oldest: Option<i64> = ctx
        .row(
            "SELECT min(e) FROM (
               SELECT (SELECT enqueued_at FROM items WHERE queue_id = :q AND status = 'queued'
                       AND NOT dormant AND priority = v.p ORDER BY seq LIMIT 1) AS e
               FROM (VALUES (0::bigint), (1::bigint), (2::bigint)) AS v(p)
               UNION ALL
               SELECT min(enqueued_at) FROM items
               WHERE queue_id = :q AND status = 'queued' AND dormant AND delay_until IS NOT NULL
             ) t",
            p!["q" => q.id],
        )
        .await?
        .get(0);
    let oldest = match (oldest, oldest_expired) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let this_min = now_ms / 60_000;
    let since = this_min - SPARKLINE_MIN + 1;
    let mut per_min = vec![0u64; SPARKLINE_MIN as usize];
    let (mut processed, mut failed, mut handling) = (0i64, 0i64, 0i64);
    let mut last_minute: Option<i64> = None;
    let mut first_active: Option<i64> = None;
    let rows = ctx
        .rows(
            "SELECT minute, SUM(processed)::bigint, SUM(failed)::bigint,
                    SUM(handling_ms)::bigint
             FROM stats
             WHERE queue_id = :q AND minute >= :since AND minute <= :until
             GROUP BY minute",
            p!["q" => q.id, "since" => since, "until" => this_min],
        )
        .await?;
    for r in rows {
        let (minute, pr, f, h): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        per_min[(minute - since) as usize] = pr.max(0) as u64;
        if pr + f > 0 {
            last_minute = last_minute.max(Some(minute));
        }
        if minute > this_min - THROUGHPUT_WINDOW_MIN {
            processed += pr;
            failed += f;
            handling += h;
            if pr + f > 0 {
                first_active = Some(first_active.map_or(minute, |m: i64| m.min(minute)));
            }
        }
    }
    let throughput = crate::rules::throughput(processed, first_active, now_ms);
    let attempts = processed + failed;
    let projection = match &q.queue.deadline {
        Some(d) => {
            let last_finished = last_minute.map(|m| from_ms((m * 60_000 + 59_999).min(now_ms)));
            let facts = rules::DeadlineFacts {
                deadline: d,
                tz: &q.queue.tz,
                backlog: q.counts.queued + q.counts.processing,
                oldest_queued: oldest.map(from_ms),
                per_min: throughput,
                paused: q.queue.state == QueueState::Paused,
                live_leases: live_leases(ctx, q.id, now_ms).await?,
                last_finished,
            };
            rules::deadline_status(&facts, now).ok()
        }
        None => None,
    };
    Ok(QueueSummary {
        counts: q.counts,
        queue: q.queue,
        expired,
        at_risk,
        out_of_sla,
        oldest_queued_secs: oldest.map(|e| (now_ms - e).max(0) / 1000),
        throughput_per_min: throughput,
        throughput_history: per_min,
        avg_handling_ms: (attempts > 0).then(|| (handling / attempts).max(0) as u64),
        error_rate: (attempts > 0).then(|| failed as f64 / attempts as f64),
        projection,
    })
}

/// Items of a queue under a lease that has not run out (`rules::LEASE_LIVE`).
async fn live_leases(ctx: &Ctx<'_>, queue_id: i64, now_ms: i64) -> Result<u64> {
    let r = ctx
        .row(
            &format!(
                "SELECT count(*) FROM items WHERE queue_id = :q AND status = 'processing' AND {}",
                cond(&rules::LEASE_LIVE, "")
            ),
            p!["q" => queue_id, "now" => now_ms],
        )
        .await?;
    Ok(r.get::<_, i64>(0).max(0) as u64)
}

/// Open (not processed) items of a queue enqueued before each of two instants: whole
/// minutes from the tallies, the minute an instant falls in counted exactly.
async fn open_before(ctx: &Ctx<'_>, queue_id: i64, t: [i64; 2]) -> Result<[u64; 2]> {
    let mut out = [0i64; 2];
    for i in 0..2 {
        let minute = t[i].div_euclid(60_000);
        let whole: i64 = ctx
            .row(
                "SELECT COALESCE(SUM(n), 0)::bigint FROM open_minutes
                 WHERE queue_id = :q AND minute < :m",
                p!["q" => queue_id, "m" => minute],
            )
            .await?
            .get(0);
        let part: i64 = ctx
            .row(
                "SELECT count(*) FROM items WHERE queue_id = :q AND status <> 'processed'
                   AND enqueued_at >= :lo AND enqueued_at < :hi",
                p!["q" => queue_id, "lo" => minute * 60_000, "hi" => t[i]],
            )
            .await?
            .get(0);
        out[i] = whole + part;
    }
    Ok(out.map(|n| n.max(0) as u64))
}

pub async fn queues(ctx: &Ctx<'_>) -> Result<Vec<QueueSummary>> {
    let mut qs: Vec<QueueRow> = all_queues(ctx).await?.into_values().collect();
    qs.sort_by(|a, b| {
        b.queue
            .priority
            .cmp(&a.queue.priority)
            .then_with(|| a.queue.name.cmp(&b.queue.name))
    });
    let mut out = Vec::with_capacity(qs.len());
    for q in qs {
        out.push(summary(ctx, q).await?);
    }
    Ok(out)
}

/// The ORDER BY of a page, as the SQLite store sorts: text byte by byte (`COLLATE "C"`),
/// a missing name before any name ascending.
pub fn order_by(sort: SortBy, descending: bool, prefix: &str) -> String {
    let dir = if descending {
        "DESC NULLS LAST"
    } else {
        "ASC NULLS FIRST"
    };
    let (sdir, srev) = if descending {
        ("DESC", "ASC")
    } else {
        ("ASC", "DESC")
    };
    match sort {
        SortBy::Enqueued => format!("{prefix}seq {sdir}"),
        SortBy::Priority => format!("{prefix}priority {srev}, {prefix}seq {srev}"),
        SortBy::Name => format!("{prefix}name COLLATE \"C\" {dir}, {prefix}seq {sdir}"),
        SortBy::Status => format!("{prefix}status COLLATE \"C\" {sdir}, {prefix}seq {sdir}"),
    }
}

fn filter_params<'a>(w: &'a filter::Where, now: &'a i64) -> Vec<P<'a>> {
    let mut all: Vec<P> = vec![("now", now as &(dyn tokio_postgres::types::ToSql + Sync))];
    for (k, v) in &w.params {
        all.push((
            k.as_str(),
            v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync),
        ));
    }
    all
}

/// A page of items, counted as the request asks.
pub async fn items(ctx: &Ctx<'_>, f: &Filter, page: &PageRequest) -> Result<Page> {
    let now = ctx.now;
    let queues = all_queues(ctx).await?;
    let w = filter::build(ctx, f).await?;
    let limit = page.limit.min(MAX_PAGE) as i64;
    let offset = page.offset as i64;
    let mut keyset = String::new();
    let mut after_seq = 0i64;
    if let Some(after) = &page.after {
        if page.sort != SortBy::Enqueued {
            return Err(Error::invalid(
                "after",
                "paging after an item goes with enqueue order only",
            ));
        }
        after_seq = item_by_id(ctx, after, false)
            .await
            .map_err(|_| Error::conflict(Conflict::ListingGone { id: after.clone() }))?
            .seq;
        keyset = format!(
            " AND i.seq {} :after",
            if page.descending { "<" } else { ">" }
        );
    }
    let sql = format!(
        "SELECT {ITEM_COLS} FROM items i JOIN queues q ON q.id = i.queue_id
         WHERE {}{keyset} ORDER BY {} LIMIT :limit OFFSET :offset",
        w.sql,
        order_by(page.sort, page.descending, "i.")
    );
    let mut params = filter_params(&w, &w.now);
    params.push(("after", &after_seq));
    params.push(("limit", &limit));
    params.push(("offset", &offset));
    let rows = ctx.rows(&sql, &params).await?;
    let rows = super::rows::items(&rows);
    let (total, exact) = if w.counter_only {
        (
            Some(filter::counted_total(ctx, &w, &f.statuses).await?),
            true,
        )
    } else if page.count == Count::Skip {
        (None, false)
    } else {
        let exact = page.count == Count::Exact;
        let cap = if exact {
            i64::MAX
        } else {
            COUNT_CAP as i64 + 1
        };
        let mut params = filter_params(&w, &w.now);
        params.push(("cap", &cap));
        let n: i64 = ctx
            .row(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM items i JOIN queues q ON q.id = i.queue_id
                     WHERE {} LIMIT :cap) t",
                    w.sql
                ),
                &params,
            )
            .await?
            .get(0);
        let n = n.max(0) as u64;
        if exact || n <= COUNT_CAP {
            (Some(n), true)
        } else {
            (Some(COUNT_CAP), false)
        }
    };
    let items = rows
        .iter()
        .filter_map(|r| queues.get(&r.queue_id).map(|q| r.to_item(q, now)))
        .collect();
    Ok(Page {
        items,
        total,
        exact,
    })
}

/// A deleted item, from the record its delete left for undo and the action that deleted it.
async fn deleted_item(ctx: &Ctx<'_>, id: &str) -> Result<Option<(ItemRow, Deleted)>> {
    let found = ctx
        .opt(
            "SELECT ai.before, a.id, a.at, a.by FROM action_items ai
             JOIN actions a ON a.id = ai.action_id
             WHERE ai.version_after IS NULL AND ((ai.before::jsonb) ->> 'id') = :id
             ORDER BY ai.action_id DESC LIMIT 1",
            p!["id" => id],
        )
        .await?;
    let Some(r) = found else {
        return Ok(None);
    };
    let (before, action_id, at, by): (String, i64, i64, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let row: ItemRow = serde_json::from_str(&before).map_err(|e| {
        Error::storage(
            crate::error::StorageCause::Io,
            None,
            format!("undo record of item {id}: {e}"),
        )
    })?;
    Ok(Some((
        row,
        Deleted {
            at: from_ms(at),
            by,
            action_id,
        },
    )))
}

pub async fn item(ctx: &Ctx<'_>, id: &str) -> Result<ItemDetail> {
    let now = ctx.now;
    let queues = all_queues(ctx).await?;
    let (row, deleted) = match item_by_id(ctx, id, false).await {
        Ok(row) => (row, None),
        Err(Error::NotFound { .. }) => match deleted_item(ctx, id).await? {
            Some((row, d)) if queues.contains_key(&row.queue_id) => (row, Some(d)),
            _ => return Err(Error::not_found(crate::error::Thing::Item, id)),
        },
        Err(e) => return Err(e),
    };
    let q = &queues[&row.queue_id];
    let mut history = vec![HistoryEntry {
        at: from_ms(row.enqueued_at),
        by: row.created_by.clone(),
        action: "enqueue".into(),
        from: None,
        to: Some(Status::Queued),
        reason: None,
        note: None,
        action_id: None,
        changes: vec![],
    }];
    let dequeue = |at: i64, by: String| HistoryEntry {
        at: from_ms(at),
        by,
        action: "dequeue".into(),
        from: Some(Status::Queued),
        to: Some(Status::Processing),
        reason: None,
        note: None,
        action_id: None,
        changes: vec![],
    };
    let rows = ctx
        .rows(
            "SELECT at, by, action, from_status, to_status, reason, note, detail, action_id,
                    attempt_started, attempt_worker
             FROM history WHERE item_seq = :seq ORDER BY id",
            p!["seq" => row.seq],
        )
        .await?;
    let mut last_attempt = None;
    for r in rows {
        let status = |i: usize| -> Option<Status> {
            r.get::<_, Option<String>>(i).and_then(|s| s.parse().ok())
        };
        let note: Option<String> = r.get(6);
        let detail: Option<String> = r.get(7);
        let changes = detail.as_deref().and_then(FieldChange::parse);
        let entry = HistoryEntry {
            at: from_ms(r.get(0)),
            by: r.get(1),
            action: r.get(2),
            from: status(3),
            to: status(4),
            reason: r.get::<_, Option<String>>(5).and_then(|s| s.parse().ok()),
            note: match (note, &changes) {
                (n, Some(_)) => n,
                (Some(n), None) => Some(match &detail {
                    Some(d) => format!("{n} {d}"),
                    None => n,
                }),
                (None, None) => detail,
            },
            action_id: r.get(8),
            changes: changes.unwrap_or_default(),
        };
        let started: Option<i64> = r.get(9);
        let worker: Option<String> = r.get(10);
        if let Some(s) = started.filter(|s| last_attempt != Some(*s)) {
            last_attempt = Some(s);
            history.push(dequeue(s, worker.unwrap_or_default()));
        }
        history.push(entry);
    }
    if row.status == Status::Processing && deleted.is_none() {
        if let Some(s) = row.started_at.filter(|s| last_attempt != Some(*s)) {
            history.push(dequeue(s, row.worker.clone().unwrap_or_default()));
        }
    }
    let mut item = row.to_item(q, now);
    if deleted.is_some() {
        item.sla = None;
        item.expired = false;
    }
    Ok(ItemDetail {
        item,
        history,
        deleted,
    })
}

/// Delayed items whose delay ends in (now, now + within], soonest first.
pub async fn upcoming(
    ctx: &Ctx<'_>,
    queue: &str,
    within: std::time::Duration,
    limit: u32,
) -> Result<Vec<Item>> {
    rules::check_upcoming(within, limit).map_err(|(f, m)| Error::invalid(f, m))?;
    let q = queue_by_name(ctx, queue, false).await?;
    let from = ms(ctx.now);
    let to = rules::lease_until(from, within);
    let rows = ctx
        .rows(
            &format!(
                "SELECT {ITEM_COLS} FROM items i
                 WHERE i.queue_id = :q AND i.status = 'queued' AND i.dormant
                   AND i.delay_until > :from AND i.delay_until <= :to
                   AND (i.expires_at IS NULL OR i.expires_at > i.delay_until)
                 ORDER BY i.delay_until, i.seq LIMIT :limit"
            ),
            p!["q" => q.id, "from" => from, "to" => to, "limit" => limit as i64],
        )
        .await?;
    Ok(super::rows::items(&rows)
        .iter()
        .map(|r| r.to_item(&q, ctx.now))
        .collect())
}

pub async fn groups(ctx: &Ctx<'_>, queue: Option<&str>) -> Result<Vec<ExceptionGroup>> {
    let queues = all_queues(ctx).await?;
    let qid = match queue {
        Some(name) => Some(queue_by_name(ctx, name, false).await?.id),
        None => None,
    };
    let only = if qid.is_some() {
        "AND queue_id = :q"
    } else {
        ""
    };
    let rows = ctx
        .rows(
            &format!(
                "SELECT queue_id, reason, COALESCE(signature, ''), count(*),
                    min(COALESCE(finished_at, enqueued_at)), max(COALESCE(finished_at, enqueued_at)),
                    max(seq)
                 FROM items WHERE status = 'exception' {only}
                 GROUP BY queue_id, reason, signature
                 ORDER BY count(*) DESC, queue_id, reason COLLATE \"C\" NULLS FIRST,
                    signature COLLATE \"C\" NULLS FIRST"
            ),
            p!["q" => qid.unwrap_or(0)],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (qid, reason, signature, count, oldest, newest, last): (
            i64,
            Option<String>,
            String,
            i64,
            i64,
            i64,
            i64,
        ) = (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        );
        let Some(q) = queues.get(&qid) else { continue };
        out.push(ExceptionGroup {
            queue: q.queue.name.clone(),
            reason: reason.and_then(|s| s.parse().ok()),
            example: example(ctx, last, &signature).await?,
            signature,
            count: count as u64,
            oldest: from_ms(oldest),
            newest: from_ms(newest),
        });
    }
    Ok(out)
}

/// The newest note of a group's newest item that masks to its signature.
async fn example(ctx: &Ctx<'_>, seq: i64, signature: &str) -> Result<Option<String>> {
    if signature.is_empty() {
        return Ok(None);
    }
    let notes: Option<String> = ctx
        .row("SELECT notes FROM items WHERE seq = :seq", p!["seq" => seq])
        .await?
        .get(0);
    let notes: Vec<Note> = notes
        .and_then(|n| serde_json::from_str(&n).ok())
        .unwrap_or_default();
    Ok(notes
        .into_iter()
        .rev()
        .find(|n| rules::signature(&n.text) == signature)
        .map(|n| n.text))
}

/// Workers seen in the last hour, newest first, with what each holds now.
pub async fn workers(ctx: &Ctx<'_>) -> Result<Vec<WorkerInfo>> {
    let since = ms(ctx.now) - 3_600_000;
    let rows = ctx
        .rows(
            "SELECT name, last_seen, processed, failed, agent FROM workers
             WHERE last_seen >= :since ORDER BY last_seen DESC, name COLLATE \"C\"",
            p!["since" => since],
        )
        .await?;
    let mut out: Vec<WorkerInfo> = rows
        .iter()
        .map(|r| {
            let agent: Option<AgentInfo> = r
                .get::<_, Option<String>>(4)
                .and_then(|j| serde_json::from_str(&j).ok());
            let last_seen = from_ms(r.get(1));
            WorkerInfo {
                name: r.get(0),
                last_seen,
                holding: 0,
                holding_ids: vec![],
                processed: r.get::<_, i64>(2).max(0) as u64,
                failed: r.get::<_, i64>(3).max(0) as u64,
                queues: vec![],
                state: rules::worker_state(agent.as_ref().map(|a| a.state), last_seen, ctx.now),
                agent,
            }
        })
        .collect();
    let seen = ctx
        .rows(
            "SELECT w.worker, q.name, w.last_seen FROM worker_queues w
             JOIN queues q ON q.id = w.queue_id
             WHERE w.last_seen >= :since ORDER BY w.worker COLLATE \"C\", q.name COLLATE \"C\"",
            p!["since" => since],
        )
        .await?;
    for s in seen {
        let (w, queue, at): (String, String, i64) = (s.get(0), s.get(1), s.get(2));
        if let Some(info) = out.iter_mut().find(|i| i.name == w) {
            info.queues.push(QueueSeen {
                queue,
                last_seen: from_ms(at),
            });
        }
    }
    let held = ctx
        .rows(
            "SELECT worker, id FROM items WHERE status = 'processing'
             ORDER BY worker COLLATE \"C\", seq",
            &[],
        )
        .await?;
    for h in held {
        let (w, id): (Option<String>, String) = (h.get(0), h.get(1));
        if let Some(info) = out.iter_mut().find(|i| Some(&i.name) == w.as_ref()) {
            info.holding += 1;
            if info.holding_ids.len() < 20 {
                info.holding_ids.push(id);
            }
        }
    }
    Ok(out)
}
