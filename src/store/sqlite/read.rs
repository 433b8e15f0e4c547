//! Reads, on reader connections: queue health, item pages, item detail, groups, workers.

use super::filter;
use super::rows::*;
use crate::backend::{Conflict, Error, Result};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules;
use crate::store::sql as store_sql;
use rusqlite::{params, Connection, OptionalExtension};

/// The expired items of a queue (`rules::EXPIRED` as `cond`, now as ?2): their count, the
/// `split` of them by the SLA edges ?3 and ?4, and the oldest one's enqueue time. One range
/// of the items_expiring index, which covers every column named here, so no row lookups.
fn expired_sql(split: &str, cond: &str) -> String {
    format!("SELECT count(*), {split}, min(enqueued_at) FROM items WHERE queue_id = ?1 AND {cond}")
}

/// `rules::EXPIRED`, with now as ?2: a range of the items_expiring index.
fn expired_cond() -> &'static str {
    static EXPIRED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXPIRED.get_or_init(|| {
        store_sql::cond(
            &rules::EXPIRED,
            &store_sql::Names {
                item: "",
                queue: None,
                param: &|_| "?2".to_string(),
            },
        )
        .0
    })
}

/// The oldest queued item but the expired ones (`expired_sql` has those): the head of each
/// priority's FIFO among the takeable ones (items_ready; without `dormant = 0` a priority
/// with no items walked every queued item of the queue), and the oldest delayed one
/// (items_dormant, a lookup per delayed item). Dormant items without a delay are expired
/// ones (by the clock that marked them): reading them here too cost a row lookup for each,
/// 300,000 lookups (~200 ms) beside a 7 ms count on a queue with that many expired.
const OLDEST_SQL: &str = "SELECT min(e) FROM (
       SELECT (SELECT enqueued_at FROM items WHERE queue_id = ?1 AND status = 'queued'
               AND dormant = 0 AND priority = p ORDER BY seq LIMIT 1) AS e
       FROM (SELECT 0 AS p UNION ALL SELECT 1 UNION ALL SELECT 2)
       UNION ALL
       SELECT min(enqueued_at) FROM items
       WHERE queue_id = ?1 AND status = 'queued' AND dormant = 1 AND delay_until IS NOT NULL)";

pub fn summary(conn: &Connection, q: QueueRow, now: Time) -> Result<QueueSummary> {
    let now_ms = now.timestamp_millis();
    // Expired items are out of SLA whatever their age (SPEC §3). One range of the covering
    // items_expiring index tells how many are expired and, where the age tallies hold
    // anything to correct, how many of those they already count as out and how many sit
    // in the at-risk window (they move from there to out). The split costs a comparison
    // per expired item, so it is only asked for when the tallies say it can matter.
    // The rules' SLA edges (`rules::sla_edges`): out when enqueued before `out`, at risk
    // when before `risk`.
    let (out_edge, risk_edge) = match q.queue.sla {
        Some(sla) => {
            let e = rules::sla_edges(sla.as_millis() as i64, q.queue.sla_risk_pct, now_ms);
            (e.out, e.risk)
        }
        None => (i64::MIN, i64::MIN),
    };
    let [out, upto_risk] = match q.queue.sla {
        Some(_) => open_before(conn, q.id, [out_edge, risk_edge])?,
        None => [0, 0],
    };
    let (split, edges) = match (out > 0, upto_risk > out) {
        (false, false) => ("0, 0", 0),
        (true, false) => ("COALESCE(sum(enqueued_at < ?3), 0), 0", 1),
        _ => (
            "COALESCE(sum(enqueued_at < ?3), 0),
             COALESCE(sum(enqueued_at >= ?3 AND enqueued_at < ?4), 0)",
            2,
        ),
    };
    let p: [i64; 4] = [q.id, now_ms, out_edge, risk_edge];
    // The same walk gives the oldest expired item's enqueue time for the oldest-queued age.
    let (expired, expired_old, expired_risky, oldest_expired): (i64, i64, i64, Option<i64>) = conn
        .prepare_cached(&expired_sql(split, expired_cond()))
        .and_then(|mut st| {
            st.query_row(rusqlite::params_from_iter(&p[..2 + edges]), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        })
        .map_err(sql)?;
    let expired = expired.max(0) as u64;
    let out_of_sla = out + expired - expired_old.max(0) as u64;
    let at_risk = (upto_risk - out).saturating_sub(expired_risky.max(0) as u64);
    let oldest: Option<i64> = conn
        .prepare_cached(OLDEST_SQL)
        .and_then(|mut st| st.query_row([q.id], |r| r.get(0)))
        .map_err(sql)?;
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
    {
        let mut st = conn
            .prepare_cached(
                "SELECT minute, processed, failed, handling_ms FROM stats
                 WHERE queue_id = ?1 AND minute >= ?2 AND minute <= ?3",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![q.id, since, this_min], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql)?;
        for r in rows {
            let (minute, p, f, h) = r.map_err(sql)?;
            per_min[(minute - since) as usize] = p.max(0) as u64;
            if p + f > 0 {
                last_minute = last_minute.max(Some(minute));
            }
            if minute > this_min - THROUGHPUT_WINDOW_MIN {
                processed += p;
                failed += f;
                handling += h;
                if p + f > 0 {
                    first_active = Some(first_active.map_or(minute, |m: i64| m.min(minute)));
                }
            }
        }
    }
    let throughput = rules::throughput(processed, first_active, now_ms);
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
                live_leases: live_leases(conn, q.id, now_ms)?,
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

/// Items of a queue under a lease that has not run out (`rules::LEASE_LIVE`): someone is
/// working on it.
fn live_leases(conn: &Connection, queue_id: i64, now_ms: i64) -> Result<u64> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        let live = store_sql::cond(
            &rules::LEASE_LIVE,
            &store_sql::Names {
                item: "",
                queue: None,
                param: &|_| "?2".to_string(),
            },
        )
        .0;
        format!("SELECT count(*) FROM items WHERE queue_id = ?1 AND {live}")
    });
    conn.prepare_cached(text)
        .and_then(|mut st| st.query_row(params![queue_id, now_ms], |r| r.get::<_, i64>(0)))
        .map(|n| n.max(0) as u64)
        .map_err(sql)
}

/// Open (not processed) items of a queue enqueued before each of two instants: whole minutes
/// from the tallies, the minute an instant falls in counted exactly (one pass when both fall
/// in the same minute). Only that minute costs a scan, so only a minute holding a bulk
/// import is slow, and only while a boundary crosses it.
fn open_before(conn: &Connection, queue_id: i64, t: [i64; 2]) -> Result<[u64; 2]> {
    let minutes = t.map(|t| t.div_euclid(60_000));
    let mut out = [0i64; 2];
    for i in 0..2 {
        out[i] = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(n), 0) FROM open_minutes WHERE queue_id = ?1 AND minute < ?2",
            )
            .and_then(|mut st| st.query_row(params![queue_id, minutes[i]], |r| r.get(0)))
            .map_err(sql)?;
    }
    let part = |lo: i64, hi: i64, a: i64, b: i64| -> Result<(i64, i64)> {
        conn.prepare_cached(
            "SELECT COALESCE(sum(enqueued_at < ?4), 0), COALESCE(sum(enqueued_at < ?5), 0)
             FROM items WHERE queue_id = ?1 AND status <> 'processed'
               AND enqueued_at >= ?2 AND enqueued_at < ?3",
        )
        .and_then(|mut st| {
            st.query_row(params![queue_id, lo, hi, a, b], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(sql)
    };
    if minutes[0] == minutes[1] {
        let (a, b) = part(minutes[0] * 60_000, t[0].max(t[1]), t[0], t[1])?;
        out[0] += a;
        out[1] += b;
    } else {
        for i in 0..2 {
            out[i] += conn
                .prepare_cached(
                    "SELECT count(*) FROM items WHERE queue_id = ?1 AND status <> 'processed'
                       AND enqueued_at >= ?2 AND enqueued_at < ?3",
                )
                .and_then(|mut st| {
                    st.query_row(params![queue_id, minutes[i] * 60_000, t[i]], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .map_err(sql)?;
        }
    }
    Ok(out.map(|n| n.max(0) as u64))
}

pub fn queues(conn: &Connection, now: Time) -> Result<Vec<QueueSummary>> {
    let mut qs: Vec<QueueRow> = all_queues(conn)?.into_values().collect();
    qs.sort_by(|a, b| {
        b.queue
            .priority
            .cmp(&a.queue.priority)
            .then_with(|| a.queue.name.cmp(&b.queue.name))
    });
    qs.into_iter().map(|q| summary(conn, q, now)).collect()
}

/// The ORDER BY of a page: each sort ends on `seq` in the same direction, so the reverse
/// of an order is exactly that order backwards (the console reads deep pages from the far
/// end). Priority "descending" is high first in enqueue order: what workers take next.
pub fn order_by(sort: SortBy, descending: bool, prefix: &str) -> String {
    let (dir, rev) = if descending {
        ("DESC", "ASC")
    } else {
        ("ASC", "DESC")
    };
    match sort {
        SortBy::Enqueued => format!("{prefix}seq {dir}"),
        // Rank 0 is high: high first is the rank ascending.
        SortBy::Priority => format!("{prefix}priority {rev}, {prefix}seq {rev}"),
        SortBy::Name => format!("{prefix}name {dir}, {prefix}seq {dir}"),
        SortBy::Status => format!("{prefix}status {dir}, {prefix}seq {dir}"),
    }
}

/// A page of items, counted as the request asks.
pub fn items(conn: &Connection, f: &Filter, page: &PageRequest, now: Time) -> Result<Page> {
    let queues = all_queues(conn)?;
    let w = filter::build_hinted(conn, f, now, &queues)?;
    let limit = page.limit.min(MAX_PAGE) as i64;
    let offset = page.offset as i64;
    let select = |extra: &str| {
        format!(
            "SELECT {ITEM_COLS} FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE {}{extra} ORDER BY {}",
            w.sql,
            order_by(page.sort, page.descending, "i.")
        )
    };
    let mut params = w.params.clone();
    let mut keyset = String::new();
    if let Some(after) = &page.after {
        if page.sort != SortBy::Enqueued {
            return Err(Error::invalid(
                "after",
                "paging after an item goes with enqueue order only",
            ));
        }
        let seq = item_by_id(conn, after)
            .map_err(|_| Error::conflict(Conflict::ListingGone { id: after.clone() }))?
            .seq;
        keyset = format!(" AND i.seq {} ?", if page.descending { "<" } else { ">" });
        params.push(seq.into());
    }
    let sql_text = if page.sort == SortBy::Name && f.queue.is_none() && queues.len() > 1 {
        // By name across queues: the name index is per queue, so each queue gives its first
        // `offset + limit` rows from the index and only those are merged. Without this,
        // every page sorted every item of the file. (Keyset paging goes with enqueue order.)
        let mut ids: Vec<i64> = queues.keys().copied().collect();
        ids.sort_unstable();
        let arms: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    "SELECT * FROM ({} LIMIT {})",
                    select(&format!(" AND i.queue_id = {id}")),
                    offset + limit
                )
            })
            .collect();
        params = ids.iter().flat_map(|_| w.params.clone()).collect();
        format!(
            "SELECT * FROM ({}) ORDER BY {} LIMIT ? OFFSET ?",
            arms.join(" UNION ALL "),
            order_by(page.sort, page.descending, "")
        )
    } else {
        format!("{} LIMIT ? OFFSET ?", select(&keyset))
    };
    params.push(limit.into());
    params.push(offset.into());
    let rows = conn
        .prepare_cached(&sql_text)
        .and_then(|mut st| {
            st.query_map(rusqlite::params_from_iter(params), ItemRow::from_sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql)?;
    let (total, exact) = if w.counter_only {
        (Some(filter::counted_total(conn, &w, &f.statuses)?), true)
    } else if page.count == Count::Skip {
        (None, false)
    } else {
        let exact = page.count == Count::Exact;
        let cap = if exact {
            i64::MAX
        } else {
            COUNT_CAP as i64 + 1
        };
        let mut p = w.params;
        p.push(cap.into());
        let n = conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM (SELECT 1 FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE {} LIMIT ?)",
                w.sql
            ))
            .and_then(|mut st| st.query_row(rusqlite::params_from_iter(p), |r| r.get::<_, i64>(0)))
            .map_err(sql)?
            .max(0) as u64;
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

/// A deleted item, from the record its delete left for undo (the row as it was) and the
/// action that deleted it; `None` when no delete of this id is on record, or its queue was
/// deleted since (which took its history along).
fn deleted_item(conn: &Connection, id: &str) -> Result<Option<(ItemRow, Deleted)>> {
    let found = conn
        .prepare_cached(
            "SELECT ai.before, a.id, a.at, a.by FROM action_items ai
             JOIN actions a ON a.id = ai.action_id
             WHERE ai.version_after IS NULL AND json_extract(ai.before, '$.id') = ?1
             ORDER BY ai.action_id DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()
        })
        .map_err(sql)?;
    let Some((before, action_id, at, by)) = found else {
        return Ok(None);
    };
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

pub fn item(conn: &Connection, id: &str, now: Time) -> Result<ItemDetail> {
    let queues = all_queues(conn)?;
    let (row, deleted) = match item_by_id(conn, id) {
        Ok(row) => (row, None),
        Err(Error::NotFound { .. }) => match deleted_item(conn, id)? {
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
    let mut st = conn
        .prepare_cached(
            "SELECT at, by, action, from_status, to_status, reason, note, detail, action_id,
                    attempt_started, attempt_worker
             FROM history WHERE item_seq = ?1 ORDER BY id",
        )
        .map_err(sql)?;
    // A row that ends an attempt also tells when it began: that was the dequeue.
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
    let mut last_attempt = None;
    let rows = st
        .query_map([row.seq], |r| {
            let status = |i: usize| -> rusqlite::Result<Option<Status>> {
                Ok(r.get::<_, Option<String>>(i)?.and_then(|s| s.parse().ok()))
            };
            let note: Option<String> = r.get(6)?;
            let detail: Option<String> = r.get(7)?;
            // An old → new record is shown as such, not as JSON appended to the note.
            let changes = detail.as_deref().and_then(FieldChange::parse);
            Ok((
                HistoryEntry {
                    at: from_ms(r.get(0)?),
                    by: r.get(1)?,
                    action: r.get(2)?,
                    from: status(3)?,
                    to: status(4)?,
                    reason: r.get::<_, Option<String>>(5)?.and_then(|s| s.parse().ok()),
                    note: match (note, &changes) {
                        (n, Some(_)) => n,
                        (Some(n), None) => Some(match &detail {
                            Some(d) => format!("{n} {d}"),
                            None => n,
                        }),
                        (None, None) => detail,
                    },
                    action_id: r.get(8)?,
                    changes: changes.unwrap_or_default(),
                },
                r.get::<_, Option<i64>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .map_err(sql)?;
    for r in rows {
        let (entry, started, worker) = r.map_err(sql)?;
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
        // Time no longer runs for it: no SLA state, no expiry.
        item.sla = None;
        item.expired = false;
    }
    Ok(ItemDetail {
        item,
        history,
        deleted,
    })
}

/// Delayed items whose delay ends in (now, now + within], from `items_dormant` in the
/// order of its range. An item that expires before its delay ends never becomes ready
/// (`rules::is_expired` at its delay_until), so it is not listed.
pub const UPCOMING_SQL: &str = "SELECT {cols} FROM items i
     WHERE i.queue_id = ?1 AND i.status = 'queued' AND i.dormant = 1
       AND i.delay_until > ?2 AND i.delay_until <= ?3
       AND (i.expires_at IS NULL OR i.expires_at > i.delay_until)
     ORDER BY i.delay_until, i.seq LIMIT ?4";

pub fn upcoming(
    conn: &Connection,
    queue: &str,
    within: std::time::Duration,
    limit: u32,
    now: Time,
) -> Result<Vec<Item>> {
    rules::check_upcoming(within, limit).map_err(|(f, m)| Error::invalid(f, m))?;
    let q = queue_by_name(conn, queue)?;
    let from = now.timestamp_millis();
    let to = rules::lease_until(from, within);
    let rows = conn
        .prepare_cached(&UPCOMING_SQL.replace("{cols}", ITEM_COLS))
        .and_then(|mut st| {
            st.query_map(
                rusqlite::params![q.id, from, to, limit as i64],
                ItemRow::from_sql,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql)?;
    Ok(rows.iter().map(|r| r.to_item(&q, now)).collect())
}

pub fn groups(conn: &Connection, queue: Option<&str>) -> Result<Vec<ExceptionGroup>> {
    let queues = all_queues(conn)?;
    let qid = match queue {
        Some(name) => Some(queue_by_name(conn, name)?.id),
        None => None,
    };
    let mut st = conn
        .prepare_cached(
            "SELECT queue_id, reason, COALESCE(signature, ''), count(*),
                    min(COALESCE(finished_at, enqueued_at)), max(COALESCE(finished_at, enqueued_at)),
                    max(seq)
             FROM items WHERE status = 'exception' AND (?1 IS NULL OR queue_id = ?1)
             GROUP BY queue_id, reason, signature
             ORDER BY count(*) DESC, queue_id, reason, signature",
        )
        .map_err(sql)?;
    let rows = st
        .query_map([qid], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .map_err(sql)?;
    let mut out = Vec::new();
    for r in rows {
        let (qid, reason, signature, count, oldest, newest, last) = r.map_err(sql)?;
        let Some(q) = queues.get(&qid) else { continue };
        out.push(ExceptionGroup {
            queue: q.queue.name.clone(),
            reason: reason.and_then(|s| s.parse().ok()),
            example: example(conn, last, &signature)?,
            signature,
            count: count as u64,
            oldest: from_ms(oldest),
            newest: from_ms(newest),
        });
    }
    Ok(out)
}

/// A real note of a group: the newest note of its newest item that masks to its signature,
/// so a person's later note ("called the vendor") never stands for a bot's failure.
fn example(conn: &Connection, seq: i64, signature: &str) -> Result<Option<String>> {
    if signature.is_empty() {
        return Ok(None);
    }
    let notes: Option<String> = conn
        .prepare_cached("SELECT notes FROM items WHERE seq = ?1")
        .and_then(|mut st| st.query_row([seq], |r| r.get(0)))
        .map_err(sql)?;
    let notes: Vec<Note> = notes
        .and_then(|n| serde_json::from_str(&n).ok())
        .unwrap_or_default();
    Ok(notes
        .into_iter()
        .rev()
        .find(|n| rules::signature(&n.text) == signature)
        .map(|n| n.text))
}

/// Workers seen in the last hour, newest first, with what each holds now, the queues each
/// was heard from on, and an agent's own report.
pub fn workers(conn: &Connection, now: Time) -> Result<Vec<WorkerInfo>> {
    let since = now.timestamp_millis() - 3_600_000;
    let mut st = conn
        .prepare_cached(
            "SELECT name, last_seen, processed, failed, agent FROM workers
             WHERE last_seen >= ?1 ORDER BY last_seen DESC, name",
        )
        .map_err(sql)?;
    let mut out: Vec<WorkerInfo> = st
        .query_map([since], |r| {
            let agent: Option<AgentInfo> = r
                .get::<_, Option<String>>(4)?
                .and_then(|j| serde_json::from_str(&j).ok());
            let last_seen = from_ms(r.get(1)?);
            Ok(WorkerInfo {
                name: r.get(0)?,
                last_seen,
                holding: 0,
                holding_ids: vec![],
                processed: r.get::<_, i64>(2)?.max(0) as u64,
                failed: r.get::<_, i64>(3)?.max(0) as u64,
                queues: vec![],
                state: rules::worker_state(agent.as_ref().map(|a| a.state), last_seen, now),
                agent,
            })
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql)?;
    let mut st = conn
        .prepare_cached(
            "SELECT w.worker, q.name, w.last_seen FROM worker_queues w
             JOIN queues q ON q.id = w.queue_id
             WHERE w.last_seen >= ?1 ORDER BY w.worker, q.name",
        )
        .map_err(sql)?;
    let seen = st
        .query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql)?;
    for s in seen {
        let (w, queue, at) = s.map_err(sql)?;
        if let Some(info) = out.iter_mut().find(|i| i.name == w) {
            info.queues.push(QueueSeen {
                queue,
                last_seen: from_ms(at),
            });
        }
    }
    let mut st = conn
        .prepare_cached(
            "SELECT worker, id FROM items WHERE status = 'processing' ORDER BY worker, seq",
        )
        .map_err(sql)?;
    let held = st
        .query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql)?;
    for h in held {
        let (w, id) = h.map_err(sql)?;
        if let Some(info) = out.iter_mut().find(|i| Some(&i.name) == w.as_ref()) {
            info.holding += 1;
            if info.holding_ids.len() < 20 {
                info.holding_ids.push(id);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queue health reads expired items from the items_expiring index alone: a row lookup
    /// per expired item made `queue ls` 30 times slower with 300,000 of them.
    #[test]
    fn queue_health_reads_expired_items_from_the_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open(&dir.path().join("t.db"), true).unwrap();
        // With plans fixed at prepare time (QPSG, as the statement cache may keep them) and
        // without; before and after ANALYZE has stats to weigh the indexes by (made once).
        for (qpsg, analyze) in [(false, false), (true, false), (false, true), (true, true)] {
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                qpsg,
            )
            .unwrap();
            if analyze && !qpsg {
                conn.execute_batch(
                    "INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority, created_at)
                       VALUES ('q', 80, 'UTC', 0, 60000, 0, 0);
                     WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 2000)
                     INSERT INTO items (id, queue_id, value, priority, status, enqueued_at,
                         expires_at, created_by, dormant)
                       SELECT 'i' || k, 1, 'v', k % 3, 'queued', k, CASE WHEN k % 10 < 3 THEN k + 1 END,
                         'bot', k % 10 < 3 FROM n;
                     ANALYZE;",
                )
                .unwrap();
            }
            plans_use_the_indexes(&conn, &format!("qpsg {qpsg}, analyze {analyze}"));
        }
    }

    fn plans_use_the_indexes(conn: &Connection, when: &str) {
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let mut rows = st.raw_query();
            let mut steps = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                steps.push(r.get::<_, String>(3).unwrap());
            }
            steps.join(" | ")
        };
        // Each split `summary` asks for, none bound: the plan does not depend on values.
        for split in [
            "0, 0",
            "COALESCE(sum(enqueued_at < ?3), 0), 0",
            "COALESCE(sum(enqueued_at < ?3), 0),
             COALESCE(sum(enqueued_at >= ?3 AND enqueued_at < ?4), 0)",
        ] {
            let sql = expired_sql(split, expired_cond());
            let p = plan(&sql);
            assert!(
                p.contains("USING COVERING INDEX items_expiring (queue_id=? AND expires_at"),
                "{when}: {p}\n{sql}"
            );
        }
        // The rest of the oldest-queued age: the ready heads and the delayed items, each a
        // range of its index; no expired item is read here, and nothing is scanned.
        let p = plan(OLDEST_SQL);
        assert!(
            p.contains("items_ready (queue_id=? AND priority=?)"),
            "{when}: {p}"
        );
        assert!(
            p.contains("items_dormant (queue_id=? AND delay_until>?)"),
            "{when}: {p}"
        );
        assert!(!p.contains("SCAN items"), "{when}: {p}");
        // `queue preview`: one range of the delayed items' index, already in its order.
        let p = plan(&UPCOMING_SQL.replace("{cols}", ITEM_COLS));
        assert!(
            p.contains("items_dormant (queue_id=? AND delay_until>? AND delay_until<?)"),
            "{when}: {p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "{when}: {p}");
    }
}
