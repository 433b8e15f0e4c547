//! Alerts in the SQLite file: their rule, target and the state the last check left them in.

use super::rows::{queue_by_name, sql};
use super::writer::Ctx;
use crate::alert::{self, Alert, AlertState, NewAlert, Target};
use crate::backend::{Conflict, Error, Result, Thing};
use crate::clock::from_ms;
use rusqlite::{params, Connection, OptionalExtension, Row};

const COLS: &str = "a.name, q.name AS queue, a.rule, a.run, a.webhook, a.state, a.generation, \
                    a.changed_at, a.created_at";

fn row(r: &Row) -> rusqlite::Result<Alert> {
    let run: Option<String> = r.get("run")?;
    let webhook: Option<String> = r.get("webhook")?;
    let state: String = r.get("state")?;
    Ok(Alert {
        name: r.get("name")?,
        queue: r.get("queue")?,
        rule: r.get("rule")?,
        // The table's CHECK keeps exactly one of the two.
        target: match run {
            Some(c) => Target::Run(c),
            None => Target::Webhook(webhook.unwrap_or_default()),
        },
        state: if state == "fired" {
            AlertState::Fired
        } else {
            AlertState::Cleared
        },
        generation: r.get::<_, i64>("generation")? as u64,
        changed_at: r.get::<_, Option<i64>>("changed_at")?.map(from_ms),
        created_at: from_ms(r.get("created_at")?),
    })
}

fn by_name(conn: &Connection, name: &str) -> Result<Option<Alert>> {
    conn.prepare_cached(&format!(
        "SELECT {COLS} FROM alerts a JOIN queues q ON q.id = a.queue_id WHERE a.name = ?1"
    ))
    .and_then(|mut s| s.query_row([name], row).optional())
    .map_err(sql)
}

pub fn add(ctx: &mut Ctx, a: &NewAlert) -> Result<Alert> {
    let rule = alert::check_new(a).map_err(|(field, m)| Error::invalid(field, m))?;
    let queue = queue_by_name(ctx.conn, &a.queue)?;
    if by_name(ctx.conn, &a.name)?.is_some() {
        return Err(Error::conflict(Conflict::AlertExists {
            name: a.name.clone(),
        }));
    }
    let (run, webhook) = match &a.target {
        Target::Run(c) => (Some(c.as_str()), None),
        Target::Webhook(u) => (None, Some(u.as_str())),
    };
    ctx.conn
        .prepare_cached(
            "INSERT INTO alerts (name, queue_id, rule, run, webhook, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                a.name,
                queue.id,
                rule,
                run,
                webhook,
                ctx.now.timestamp_millis()
            ])
        })
        .map_err(sql)?;
    by_name(ctx.conn, &a.name)?.ok_or_else(|| Error::not_found(Thing::Alert, &a.name))
}

pub fn list(conn: &Connection) -> Result<Vec<Alert>> {
    let mut s = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM alerts a JOIN queues q ON q.id = a.queue_id ORDER BY a.name"
        ))
        .map_err(sql)?;
    let rows = s.query_map([], row).map_err(sql)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql)
}

pub fn remove(ctx: &mut Ctx, name: &str) -> Result<Alert> {
    let found = by_name(ctx.conn, name)?.ok_or_else(|| Error::not_found(Thing::Alert, name))?;
    ctx.conn
        .prepare_cached("DELETE FROM alerts WHERE name = ?1")
        .and_then(|mut s| s.execute([name]))
        .map_err(sql)?;
    Ok(found)
}

/// The compare-and-set: only the checker that saw the current generation moves it.
pub fn set_state(ctx: &mut Ctx, name: &str, seen: u64, to: AlertState) -> Result<Option<Alert>> {
    let moved = ctx
        .conn
        .prepare_cached(
            "UPDATE alerts SET state = ?3, generation = generation + 1, changed_at = ?4
             WHERE name = ?1 AND generation = ?2 AND state <> ?3",
        )
        .and_then(|mut s| {
            s.execute(params![
                name,
                seen as i64,
                to.as_str(),
                ctx.now.timestamp_millis()
            ])
        })
        .map_err(sql)?;
    if moved == 0 {
        // Gone, or another checker got there first.
        return match by_name(ctx.conn, name)? {
            None => Err(Error::not_found(Thing::Alert, name)),
            Some(_) => Ok(None),
        };
    }
    by_name(ctx.conn, name)
}
