//! A `Filter` as SQL: one `WHERE` for listings, previews and bulk actions alike. Expiry and
//! SLA are the rules' own conditions (`rules::EXPIRED`, `rules::sla_cond`), rendered.

use super::rows::{queue_by_name, sql, QueueRow};
use crate::backend::Result;
use crate::model::*;
use crate::rules;
use crate::store::sql as store_sql;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::collections::HashMap;

pub struct Where {
    /// Conditions over `items i JOIN queues q`, joined with AND.
    pub sql: String,
    pub params: Vec<Value>,
    /// The filter only names a queue and statuses: counters can give the total.
    pub counter_only: bool,
    pub queue_id: Option<i64>,
}

/// A condition of the rules over `items i JOIN queues q`, with a `?` for each time it
/// names now (the count).
pub fn cond(c: &rules::Cond) -> (String, usize) {
    let names = store_sql::Names {
        item: "i.",
        queue: Some("q."),
        param: &store_sql::positional,
    };
    let (sql, params) = store_sql::cond(c, &names);
    (sql, params.len())
}

pub fn build(conn: &Connection, f: &Filter, now: Time) -> Result<Where> {
    build_with(conn, f, now, None)
}

/// As `build`, telling SQLite how many rows the statuses match (from the counters), so a
/// sorted page of a rare status sorts those few instead of walking a sort index past
/// every other row, and a common one walks the index instead of sorting them all.
pub fn build_hinted(
    conn: &Connection,
    f: &Filter,
    now: Time,
    queues: &HashMap<i64, QueueRow>,
) -> Result<Where> {
    if f.statuses.is_empty() {
        return build_with(conn, f, now, None);
    }
    let (mut part, mut all) = (0u64, 0u64);
    for q in queues.values() {
        if f.queue.as_ref().is_none_or(|n| *n == q.queue.name) {
            part += f.statuses.iter().map(|s| q.counts.get(*s)).sum::<u64>();
            all += q.counts.total();
        }
    }
    let share = if all == 0 {
        1.0
    } else {
        (part as f64 / all as f64).clamp(0.000_001, 1.0)
    };
    build_with(conn, f, now, Some(share))
}

fn build_with(conn: &Connection, f: &Filter, now: Time, share: Option<f64>) -> Result<Where> {
    crate::rules::check_filter(f).map_err(|m| crate::backend::Error::invalid("search", m))?;
    let now = now.timestamp_millis();
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut push = |c: String, p: Vec<Value>, conds: &mut Vec<String>| {
        conds.push(c);
        params.extend(p);
    };
    let queue_id = match &f.queue {
        Some(name) => {
            let q = queue_by_name(conn, name)?;
            push("i.queue_id = ?".into(), vec![q.id.into()], &mut conds);
            Some(q.id)
        }
        None => None,
    };
    if !f.statuses.is_empty() {
        // Literals, not parameters (they come from an enum): SQLite picks a partial index
        // only when the query names its condition, e.g. `status = 'queued'` for items_ready.
        let c = match f.statuses.as_slice() {
            [one] => format!("i.status = '{one}'"),
            many => {
                let list: Vec<String> = many.iter().map(|s| format!("'{s}'")).collect();
                format!("i.status IN ({})", list.join(", "))
            }
        };
        let c = match share {
            Some(p) => format!("likelihood({c}, {p:.6})"),
            None => c,
        };
        push(c, vec![], &mut conds);
        if !f.statuses.contains(&Status::Processed) {
            push("i.status <> 'processed'".into(), vec![], &mut conds);
        }
    }
    if let Some(r) = f.reason {
        push(
            "i.reason = ?".into(),
            vec![r.as_str().to_string().into()],
            &mut conds,
        );
    }
    if let Some(p) = f.priority {
        push("i.priority = ?".into(), vec![p.rank().into()], &mut conds);
    }
    let mut rule = |c: &rules::Cond, conds: &mut Vec<String>| {
        let (c, n) = cond(c);
        push(c, vec![now.into(); n], conds);
    };
    if let Some(sla) = f.sla {
        rule(&rules::sla_cond(sla), &mut conds);
    }
    match f.expired {
        Some(true) => rule(&rules::EXPIRED, &mut conds),
        Some(false) => rule(&rules::Cond::Not(&rules::EXPIRED), &mut conds),
        None => {}
    }
    if let Some(text) = f.search.as_deref().filter(|t| !t.is_empty()) {
        let like = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        push(
            "(i.id = ? OR i.name LIKE ? ESCAPE '\\' OR i.key LIKE ? ESCAPE '\\' \
             OR i.value LIKE ? ESCAPE '\\' OR i.notes LIKE ? ESCAPE '\\')"
                .into(),
            vec![
                text.to_string().into(),
                like.clone().into(),
                like.clone().into(),
                like.clone().into(),
                like.into(),
            ],
            &mut conds,
        );
    }
    if let Some(sig) = &f.signature {
        push(
            "i.signature = ?".into(),
            vec![sig.clone().into()],
            &mut conds,
        );
    }
    if let Some(w) = &f.worker {
        push("i.worker = ?".into(), vec![w.clone().into()], &mut conds);
    }
    // Nothing refines the queue and statuses (derived, so a new criterion cannot be forgotten).
    let bare = Filter {
        queue: f.queue.clone(),
        statuses: f.statuses.clone(),
        search: f.search.clone().filter(|t| t.is_empty()),
        ..Default::default()
    };
    let counter_only = *f == bare;
    let sql = if conds.is_empty() {
        "1".to_string()
    } else {
        conds.join(" AND ")
    };
    Ok(Where {
        sql,
        params,
        counter_only,
        queue_id,
    })
}

/// Items matching any of `fs`: the union of each filter's rows, each planned on its own
/// (an OR of their conditions made SQLite's planner fail with partial indexes).
pub fn build_any(conn: &Connection, fs: &[Filter], now: Time) -> Result<Where> {
    if fs.is_empty() {
        return Err(crate::backend::Error::invalid(
            "target",
            "no filters given; nothing matches",
        ));
    }
    let mut sql = Vec::new();
    let mut params = Vec::new();
    for f in fs {
        let w = build(conn, f, now)?;
        sql.push(format!(
            "SELECT i.seq FROM items i JOIN queues q ON q.id = i.queue_id WHERE {}",
            w.sql
        ));
        params.extend(w.params);
    }
    Ok(Where {
        sql: format!("i.seq IN ({})", sql.join(" UNION ")),
        params,
        counter_only: false,
        queue_id: None,
    })
}

/// The total an unrefined filter matches, from the maintained counters.
pub fn counted_total(conn: &Connection, w: &Where, statuses: &[Status]) -> Result<u64> {
    let statuses: Vec<Status> = if statuses.is_empty() {
        Status::ALL.to_vec()
    } else {
        statuses.to_vec()
    };
    let cols: Vec<&str> = statuses
        .iter()
        .map(|s| super::rows::status_column(*s))
        .collect();
    let sum = cols.join(" + ");
    let (cond, p): (&str, Vec<Value>) = match w.queue_id {
        Some(id) => ("WHERE id = ?", vec![id.into()]),
        None => ("", vec![]),
    };
    let total: i64 = conn
        .query_row(
            &format!("SELECT COALESCE(SUM({sum}), 0) FROM queues {cond}"),
            rusqlite::params_from_iter(p),
            |r| r.get(0),
        )
        .map_err(sql)?;
    Ok(total.max(0) as u64)
}
