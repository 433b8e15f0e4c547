//! The human side: previews, bulk actions, their undo, and the action log. What each action
//! changes and what its undo puts back comes from `rules::ACTION_RULES`; this file applies it.

use super::filter::{self, Where};
use super::read;
use super::rows::*;
use super::write::{append_note, history, insert, key_taken, ms, save, Deltas, Hist, Queues};
use super::writer::Ctx;
use crate::backend::{Conflict, Error, Refused, Result, StorageCause, Thing};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules::{self, rule_of, ActionRule, Kept, Part, Put, To, UndoStep, UndoWhen};
use crate::text::thousands;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The rows a target names, checked to exist. Values (up to a MiB each) are read only
/// `with_value`: a bulk action that keeps them need not hold them all in memory.
pub fn target_rows(
    conn: &Connection,
    target: &Target,
    with_value: bool,
    now: Time,
) -> Result<Vec<ItemRow>> {
    let cols = if with_value {
        ITEM_COLS.to_string()
    } else {
        ITEM_COLS.replace("i.value", "NULL")
    };
    match target {
        Target::Ids(ids) => {
            if ids.is_empty() {
                return Err(Error::invalid("target", "no items named"));
            }
            let mut seen = std::collections::HashSet::new();
            let mut st = conn
                .prepare_cached(&format!("SELECT {cols} FROM items i WHERE i.id = ?1"))
                .map_err(sql)?;
            ids.iter()
                .filter(|id| seen.insert(id.as_str()))
                .map(|id| {
                    st.query_row([id], ItemRow::from_sql)
                        .optional()
                        .map_err(sql)?
                        .ok_or_else(|| Error::not_found(Thing::Item, id.as_str()))
                })
                .collect()
        }
        Target::Filter(f) => rows_where(conn, &cols, &filter::build(conn, f, now)?),
        Target::Any(fs) => rows_where(conn, &cols, &filter::build_any(conn, fs, now)?),
    }
}

/// The rows a WHERE matches, in enqueue order.
fn rows_where(conn: &Connection, cols: &str, w: &Where) -> Result<Vec<ItemRow>> {
    let mut st = conn
        .prepare(&format!(
            "SELECT {cols} FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE {} ORDER BY i.seq",
            w.sql
        ))
        .map_err(sql)?;
    let rows = st
        .query_map(
            rusqlite::params_from_iter(w.params.iter()),
            ItemRow::from_sql,
        )
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql);
    rows
}

// ---------------------------------------------------------------- previews

/// Items matching a filter, by status: refusals depend on the status alone.
fn status_counts(conn: &Connection, w: &Where) -> Result<Vec<(Status, u64)>> {
    let mut st = conn
        .prepare(&format!(
            "SELECT i.status, count(*) FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE {} GROUP BY i.status",
            w.sql
        ))
        .map_err(sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql)?;
    let mut out = Vec::new();
    for r in rows {
        let (s, n) = r.map_err(sql)?;
        if let Ok(s) = s.parse() {
            out.push((s, n.max(0) as u64));
        }
    }
    Ok(out)
}

/// Items matching a filter whose expiry has passed (`rules::EXPIRY_PASSED`), among
/// `statuses`.
fn expired_among(conn: &Connection, w: &Where, statuses: &[Status], now: Time) -> Result<u64> {
    if statuses.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
    let (passed, nows) = filter::cond(&rules::EXPIRY_PASSED);
    let mut p = w.params.clone();
    p.extend(std::iter::repeat_n(ms(now).into(), nows));
    conn.query_row(
        &format!(
            "SELECT count(*) FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE {} AND i.status IN ({}) AND {passed}",
            w.sql,
            list.join(", ")
        ),
        rusqlite::params_from_iter(p),
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(sql)
}

/// What a person should know about expiries before confirming: a release keeps a passed
/// expiry (the item is expired at once), a requeue clears it.
fn expiry_warning(action: &ActionKind, passed: u64) -> Option<String> {
    if passed == 0 {
        return None;
    }
    match action {
        ActionKind::Release => Some(format!(
            "{passed} will be expired once released: their expiry passed while on hold \
             (extend it to have them processed)"
        )),
        ActionKind::Requeue { .. } => Some(format!(
            "{passed} had an expiry that passed: the requeue clears it so they can be taken"
        )),
        _ => None,
    }
}

/// The statuses among `statuses` whose items an action changes.
fn allowed(statuses: &[Status], action: &ActionKind) -> Vec<Status> {
    statuses
        .iter()
        .copied()
        .filter(|s| rules::refusal_reason(*s, action).is_none())
        .collect()
}

pub fn preview(
    conn: &Connection,
    target: &Target,
    action: Option<&ActionKind>,
    sample: u32,
    now: Time,
) -> Result<Preview> {
    match target {
        Target::Filter(f) => {
            let Some(action) = action else {
                let page = PageRequest {
                    limit: sample,
                    count: Count::Exact,
                    ..Default::default()
                };
                let p = read::items(conn, f, &page, now)?;
                let count = p.total.unwrap_or_default();
                return Ok(Preview {
                    count,
                    changes: count,
                    skipped: vec![],
                    warnings: vec![],
                    sample: p.items,
                });
            };
            preview_where(conn, &filter::build(conn, f, now)?, action, sample, now)
        }
        // Several inbox groups: their union, each item once, counted and judged as one.
        Target::Any(fs) => {
            let w = filter::build_any(conn, fs, now)?;
            match action {
                Some(action) => preview_where(conn, &w, action, sample, now),
                None => {
                    let count = status_counts(conn, &w)?.iter().map(|(_, n)| n).sum();
                    Ok(Preview {
                        count,
                        changes: count,
                        skipped: vec![],
                        warnings: vec![],
                        sample: sample_where(conn, &w, None, sample, now)?,
                    })
                }
            }
        }
        Target::Ids(_) => {
            let rows = target_rows(conn, target, false, now)?;
            let queues = all_queues(conn)?;
            let mut out = Preview {
                count: rows.len() as u64,
                changes: 0,
                skipped: vec![],
                warnings: vec![],
                sample: vec![],
            };
            let mut passed = 0;
            let mut first: Vec<&ItemRow> = Vec::new();
            for r in &rows {
                let refused = action.and_then(|a| rules::refusal_reason(r.status, a));
                match refused {
                    Some(why) => tally(&mut out.skipped, why, 1),
                    None => {
                        out.changes += 1;
                        if first.len() < sample as usize {
                            first.push(r);
                        }
                        if rules::EXPIRY_PASSED.holds(&r.facts(None), ms(now)) {
                            passed += 1;
                        }
                    }
                }
            }
            if first.is_empty() {
                first = rows.iter().take(sample as usize).collect();
            }
            // The sample is small: read its values now.
            for r in first {
                let full = item_by_id(conn, &r.id)?;
                if let Some(q) = queues.get(&full.queue_id) {
                    out.sample.push(full.to_item(q, now));
                }
            }
            if let Some(a) = action {
                out.warnings.extend(expiry_warning(a, passed));
            }
            Ok(out)
        }
    }
}

/// The preview of an action on the items a WHERE matches: refusals depend on the status
/// alone, so they are counted by status; the sample shows items the action changes.
fn preview_where(
    conn: &Connection,
    w: &Where,
    action: &ActionKind,
    sample: u32,
    now: Time,
) -> Result<Preview> {
    let by_status = status_counts(conn, w)?;
    let mut out = Preview {
        count: by_status.iter().map(|(_, n)| n).sum(),
        changes: 0,
        skipped: vec![],
        warnings: vec![],
        sample: vec![],
    };
    for (s, n) in &by_status {
        match rules::refusal_reason(*s, action) {
            Some(why) => tally(&mut out.skipped, why, *n),
            None => out.changes += n,
        }
    }
    let present: Vec<Status> = by_status.iter().map(|(s, _)| *s).collect();
    let ok = allowed(&present, action);
    let only = (out.changes > 0).then_some(ok.as_slice());
    out.sample = sample_where(conn, w, only, sample, now)?;
    let passed = expired_among(conn, w, &ok, now)?;
    out.warnings.extend(expiry_warning(action, passed));
    Ok(out)
}

/// The first `sample` items a WHERE matches in enqueue order, among `only` statuses if given.
fn sample_where(
    conn: &Connection,
    w: &Where,
    only: Option<&[Status]>,
    sample: u32,
    now: Time,
) -> Result<Vec<Item>> {
    let among = match only {
        Some(statuses) => {
            // Literals from the enum, as `filter::build` writes them.
            let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
            format!(" AND i.status IN ({})", list.join(", "))
        }
        None => String::new(),
    };
    let mut p = w.params.clone();
    p.push((sample as i64).into());
    let rows = conn
        .prepare(&format!(
            "SELECT {ITEM_COLS} FROM items i JOIN queues q ON q.id = i.queue_id
             WHERE {}{among} ORDER BY i.seq LIMIT ?",
            w.sql
        ))
        .and_then(|mut st| {
            st.query_map(rusqlite::params_from_iter(p), ItemRow::from_sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql)?;
    let queues = all_queues(conn)?;
    Ok(rows
        .iter()
        .filter_map(|r| queues.get(&r.queue_id).map(|q| r.to_item(q, now)))
        .collect())
}

// ---------------------------------------------------------------- acting

/// What changed from one version of a row to the next, part by part, and the old → new
/// of those that carry one, for the history (`FieldChange::record`, the one form).
fn diff(before: &ItemRow, after: &ItemRow) -> (Vec<Part>, Vec<FieldChange>) {
    let mut parts = Vec::new();
    let mut d = Vec::new();
    let mut changed = |field: &str, old: Value, new: Value| {
        d.push(FieldChange {
            field: field.into(),
            old,
            new,
        })
    };
    // In the one JSON time format (`model::time_ms`), as every other time reads.
    let time = |t: Option<i64>| json!(t.map(|t| from_ms(t).format(time_ms::FORMAT).to_string()));
    if (before.status, before.reason, before.finished_at)
        != (after.status, after.reason, after.finished_at)
    {
        parts.push(Part::Status);
    }
    if before.lease_token.is_some() && after.lease_token.is_none() {
        parts.push(Part::Lease);
        // Whose lease ended: the worker that held the item, then nobody.
        changed("lease", json!(before.worker), Value::Null);
    }
    if let (Some(old), Some(new)) = (&before.value, &after.value) {
        if old != new {
            parts.push(Part::Value);
            changed("value", json!(old), json!(new));
        }
    }
    if before.priority != after.priority {
        parts.push(Part::Priority);
        changed(
            "priority",
            json!(Priority::from_rank(before.priority)),
            json!(Priority::from_rank(after.priority)),
        );
    }
    if before.expires_at != after.expires_at {
        parts.push(Part::Expiry);
        changed(
            "expires_at",
            time(before.expires_at),
            time(after.expires_at),
        );
    }
    if before.delay_until != after.delay_until {
        parts.push(Part::Delay);
        changed(
            "delay_until",
            time(before.delay_until),
            time(after.delay_until),
        );
    }
    if before.requeue_count != after.requeue_count {
        parts.push(Part::RequeueCount);
    }
    if before.notes != after.notes {
        parts.push(Part::Note);
    }
    (parts, d)
}

/// Takes `row` where `action` says, in place (`rules::act`); an edited value goes with it
/// where the action's row writes one.
fn apply(row: &mut ItemRow, action: &ActionKind, now: i64) {
    let mut st = row.state();
    rules::act(&mut st, action, now);
    row.set_state(st);
    if let (Put::Given, ActionKind::Requeue { value: Some(v), .. }) =
        (rules::rule_of(action).writes.value, action)
    {
        row.value = Some(v.clone());
    }
}

pub fn act(ctx: &mut Ctx, req: &ActionRequest) -> Result<ActionResult> {
    if let ActionKind::AddNote = req.action {
        if req.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(Error::invalid(
                "note",
                "a note action needs the note's text",
            ));
        }
    }
    if let ActionKind::Requeue { value: Some(v), .. } = &req.action {
        rules::check_new_item(&NewItem {
            value: v.clone(),
            ..Default::default()
        })
        .map_err(|(_, m)| Error::invalid("value", m))?;
    }
    if let ActionKind::Requeue { delay: Some(d), .. } = &req.action {
        rules::check_duration("requeue delay", *d).map_err(|m| Error::invalid("delay", m))?;
    }
    let rule = rule_of(&req.action);
    let keeps_value = !matches!(
        req.action,
        ActionKind::Delete | ActionKind::Requeue { value: Some(_), .. }
    );
    let rows = target_rows(ctx.conn, &req.target, !keeps_value, ctx.now)?;
    if rows.is_empty() {
        return Err(Error::invalid("target", "no items match; nothing changed"));
    }
    let total = rows.len();
    let mut refused = Vec::new();
    let mut skipped = Vec::new();
    let mut chosen = Vec::with_capacity(rows.len());
    for r in rows {
        match rules::refusal_reason(r.status, &req.action) {
            Some(why) => {
                tally(&mut skipped, why.clone(), 1);
                refused.push(Refused {
                    id: r.id,
                    from: r.status,
                    to: rules::action_target(&req.action),
                    why,
                });
            }
            None => chosen.push(r),
        }
    }
    if !refused.is_empty() && (!req.skip_refused || chosen.is_empty()) {
        return Err(Error::refused_action(
            req.action.verb(),
            req.action.past_tense(),
            total as u64,
            refused,
        ));
    }
    let verb = req.action.verb();
    let now = ms(ctx.now);
    ctx.conn
        .execute(
            "INSERT INTO actions (at, by, verb, note, touched, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now,
                req.actor,
                verb,
                req.note,
                chosen.len() as i64,
                serde_json::to_string(&req.action).expect("actions serialize")
            ],
        )
        .map_err(sql)?;
    let action_id = ctx.conn.last_insert_rowid();
    let mut queues = Queues::default();
    let mut deltas = Deltas::default();
    let mut per_queue: HashMap<i64, u64> = HashMap::new();
    let to = rules::action_target(&req.action);
    let note = req.note.as_deref().filter(|n| !n.trim().is_empty());
    for mut row in chosen {
        let before = row.clone();
        apply(&mut row, &req.action, now);
        if let Some(n) = note {
            append_note(&mut row, ctx.now, &req.actor, n);
        }
        let (parts, changes) = if to == Some(To::Deleted) {
            (vec![Part::Existence], vec![])
        } else {
            diff(&before, &row)
        };
        debug_assert!(
            parts.iter().all(|p| rule.changes.contains(p)),
            "{verb} changed {parts:?}, beyond its rule {:?}",
            rule.changes
        );
        history(
            ctx,
            &row,
            Hist {
                by: &req.actor,
                action: verb,
                from: Some(before.status),
                to: match to {
                    Some(To::Status(s)) => Some(s),
                    Some(To::Deleted) => None,
                    None => Some(before.status),
                },
                reason: None,
                note: req.note.as_deref(),
                detail: FieldChange::record(&changes),
                action_id: Some(action_id),
            },
        )?;
        let version_after = if to == Some(To::Deleted) {
            ctx.conn
                .prepare_cached("DELETE FROM items WHERE seq = ?1")
                .and_then(|mut st| st.execute([row.seq]))
                .map_err(sql)?;
            deltas.moved(row.queue_id, Some(before.status), None, before.enqueued_at);
            None
        } else {
            deltas.moved(
                row.queue_id,
                Some(before.status),
                Some(row.status),
                row.enqueued_at,
            );
            save(ctx, &mut row, !keeps_value)?;
            Some(row.version)
        };
        let mut snapshot = before;
        if keeps_value {
            snapshot.value = None;
        }
        ctx.conn
            .prepare_cached(
                "INSERT INTO action_items (action_id, item_seq, version_after, before)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    action_id,
                    row.seq,
                    version_after,
                    serde_json::to_string(&snapshot).expect("row serializes")
                ])
            })
            .map_err(sql)?;
        *per_queue.entry(row.queue_id).or_default() += 1;
    }
    deltas.flush(ctx)?;
    let touched = per_queue.values().sum();
    for (qid, n) in per_queue {
        ctx.conn
            .prepare_cached(
                "INSERT INTO action_queues (queue_id, action_id, n) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![qid, action_id, n as i64]))
            .map_err(sql)?;
        let name = queues.get(ctx.conn, qid)?.queue.name.clone();
        ctx.events.push(Event::Items {
            queue: name,
            count: n,
        });
    }
    Ok(ActionResult {
        action_id,
        verb: verb.to_string(),
        touched,
        skipped,
    })
}

// ---------------------------------------------------------------- undo

/// A past action as undo needs it.
struct ActionRow {
    id: i64,
    verb: String,
    kind: Option<ActionKind>,
    at: i64,
    by: String,
    note: Option<String>,
    undone_at: Option<i64>,
}

impl ActionRow {
    /// The note this action appended to each item, if any.
    fn added_note(&self) -> Option<&str> {
        self.note.as_deref().filter(|n| !n.trim().is_empty())
    }
    /// Where this action's note sits in `notes` (the last match: an action adds one).
    fn note_at(&self, notes: &[Note]) -> Option<usize> {
        let text = self.added_note()?;
        let at = from_ms(self.at);
        notes
            .iter()
            .rposition(|n| n.at == at && n.by == self.by && n.text == text)
    }
}

struct Entry {
    before: ItemRow,
    current: Option<ItemRow>,
    step: UndoStep,
}

struct Plan {
    action: ActionRow,
    rule: &'static ActionRule,
    entries: Vec<Entry>,
}

/// Whether an item passes its rule's `undo_when`, or why not.
fn as_left(
    conn: &Connection,
    plan_action: &ActionRow,
    rule: &ActionRule,
    version_after: Option<i64>,
    before: &ItemRow,
    current: Option<&ItemRow>,
) -> Result<std::result::Result<(), Kept>> {
    let left_in = match plan_action.kind.as_ref().and_then(rules::action_target) {
        Some(To::Status(s)) => Some(s),
        _ => None,
    };
    let untouched = |c: &ItemRow| {
        if Some(c.version) == version_after && c.id == before.id {
            Ok(())
        } else if Some(c.status) == left_in {
            Err(Kept::Edited(c.status))
        } else {
            Err(Kept::ChangedSince(Some(c.status)))
        }
    };
    Ok(match (rule.undo_when, current) {
        (UndoWhen::StillDeleted, Some(c)) => Err(Kept::ChangedSince(Some(c.status))),
        (UndoWhen::StillDeleted, None) => {
            let queue_alive = conn
                .prepare_cached("SELECT 1 FROM queues WHERE id = ?1")
                .and_then(|mut st| st.exists([before.queue_id]))
                .map_err(sql)?;
            let taken = match before.key.as_deref() {
                Some(k) if queue_alive => key_taken(conn, before.queue_id, k)?,
                _ => false,
            };
            if !queue_alive {
                Err(Kept::QueueDeleted)
            } else if taken {
                Err(Kept::KeyTaken(before.key.clone().unwrap_or_default()))
            } else {
                Ok(())
            }
        }
        (_, None) => Err(Kept::ChangedSince(None)),
        (UndoWhen::Untouched, Some(c)) => untouched(c),
        (UndoWhen::PartsAsLeft, Some(c)) => match &plan_action.kind {
            // Recorded before actions kept their kind: only an untouched item is safe.
            None => untouched(c),
            Some(kind) => {
                let mut r = Ok(());
                for part in rule.changes {
                    let same = match (part, kind) {
                        (Part::Priority, ActionKind::SetPriority { priority }) => {
                            c.priority == priority.rank()
                        }
                        (Part::Expiry, ActionKind::ExtendExpiry { expires_at }) => {
                            c.expires_at == expires_at.map(ms)
                        }
                        (Part::Note, _) if plan_action.added_note().is_some() => {
                            plan_action.note_at(&c.notes()).is_some()
                        }
                        _ => true,
                    };
                    if !same {
                        r = Err(Kept::PartChanged(*part));
                        break;
                    }
                }
                r
            }
        },
    })
}

fn plan_undo(conn: &Connection, action_id: i64) -> Result<Plan> {
    let action = conn
        .query_row(
            "SELECT verb, kind, at, by, note, undone_at FROM actions WHERE id = ?1",
            [action_id],
            |r| {
                Ok(ActionRow {
                    id: action_id,
                    verb: r.get(0)?,
                    kind: r
                        .get::<_, Option<String>>(1)?
                        .and_then(|k| serde_json::from_str(&k).ok()),
                    at: r.get(2)?,
                    by: r.get(3)?,
                    note: r.get(4)?,
                    undone_at: r.get(5)?,
                })
            },
        )
        .optional()
        .map_err(sql)?
        .ok_or_else(|| Error::not_found(Thing::Action, action_id.to_string()))?;
    if let Some(at) = action.undone_at {
        return Err(Error::conflict(Conflict::AlreadyUndone {
            action_id,
            verb: action.verb.clone(),
            at: from_ms(at),
        }));
    }
    let rule = rules::action_rule(&action.verb).ok_or_else(|| {
        Error::storage(
            StorageCause::Io,
            None,
            format!("action {action_id} has an unknown verb '{}'", action.verb),
        )
    })?;
    let records: Vec<(i64, Option<i64>, String)> = conn
        .prepare("SELECT item_seq, version_after, before FROM action_items WHERE action_id = ?1")
        .and_then(|mut st| {
            st.query_map([action_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(sql)?;
    let no_value = ITEM_COLS.replace("i.value", "NULL");
    let mut current_of = conn
        .prepare_cached(&format!("SELECT {no_value} FROM items i WHERE i.seq = ?1"))
        .map_err(sql)?;
    let mut entries = Vec::with_capacity(records.len());
    for (seq, version_after, before) in records {
        let before: ItemRow = serde_json::from_str(&before).map_err(|e| {
            Error::storage(
                StorageCause::Io,
                None,
                format!("undo record of action {action_id}: {e}"),
            )
        })?;
        let current = current_of
            .query_row([seq], ItemRow::from_sql)
            .optional()
            .map_err(sql)?;
        let found = as_left(
            conn,
            &action,
            rule,
            version_after,
            &before,
            current.as_ref(),
        )?;
        let step = rules::undo_step(
            rule,
            Some(before.status),
            current.as_ref().map(|c| c.status),
            found,
        );
        entries.push(Entry {
            before,
            current,
            step,
        });
    }
    Ok(Plan {
        action,
        rule,
        entries,
    })
}

impl Plan {
    fn result(&self, dry_run: bool) -> UndoResult {
        let mut r = UndoResult {
            action_id: self.action.id,
            verb: self.action.verb.clone(),
            total: self.entries.len() as u64,
            restored: 0,
            changed: vec![],
            kept: vec![],
            kept_items: vec![],
            dry_run,
        };
        for e in &self.entries {
            match &e.step {
                UndoStep::Restore(_) => r.restored += 1,
                UndoStep::Keep(k) => {
                    let why = k.why();
                    if k.changed_since() {
                        tally(&mut r.changed, why, 1);
                    } else {
                        tally(&mut r.kept, why, 1);
                    }
                    let item_why = k.item_why();
                    if r.kept_items.len() < KEPT_LISTED {
                        r.kept_items.push(KeptItem {
                            id: e.before.id.clone(),
                            why: item_why,
                        });
                    }
                }
            }
        }
        r
    }

    /// Why an undo changes nothing, with the first few items it would keep.
    fn refusal(&self, r: &UndoResult, strict: bool) -> Error {
        let not = r.total - r.restored;
        let mut m = if strict {
            format!(
                "cannot undo action {} ({}) all or nothing: {} of its {} items cannot be \
                 restored ({}); nothing undone:",
                self.action.id,
                self.action.verb,
                thousands(not),
                thousands(r.total),
                r.kept_summary()
            )
        } else {
            format!(
                "cannot undo action {} ({}): none of its {} items can be restored ({}); \
                 nothing undone:",
                self.action.id,
                self.action.verb,
                thousands(r.total),
                r.kept_summary()
            )
        };
        for k in r.kept_items.iter().take(5) {
            m.push_str(&format!("\n  item {}: {}", k.id, k.why));
        }
        if not > 5 {
            m.push_str(&format!("\n  … and {} more", thousands(not - 5)));
        }
        Error::Conflict {
            conflict: Conflict::UndoRefused {
                action_id: self.action.id,
                total: r.total,
                restorable: r.restored,
                strict,
                kept: r.kept_items.clone(),
            },
            message: m,
        }
    }
}

/// What an undo would do, changing nothing (a reader runs it).
pub fn undo_preview(conn: &Connection, action_id: i64) -> Result<UndoResult> {
    Ok(plan_undo(conn, action_id)?.result(true))
}

pub fn undo(ctx: &mut Ctx, req: &UndoRequest) -> Result<UndoResult> {
    let plan = plan_undo(ctx.conn, req.action_id)?;
    let result = plan.result(false);
    if result.restored == 0 || (req.strict && result.restored < result.total) {
        return Err(plan.refusal(&result, req.strict));
    }
    let Plan {
        action,
        rule,
        entries,
    } = plan;
    let action_id = action.id;
    let label = format!("undo of action {action_id} ({})", action.verb);
    let mut queues = Queues::default();
    let mut deltas = Deltas::default();
    let mut per_queue: HashMap<i64, u64> = HashMap::new();
    for e in entries {
        let UndoStep::Restore(parts) = e.step else {
            continue;
        };
        let qid = e.before.queue_id;
        match e.current {
            None => {
                debug_assert!(parts.contains(&Part::Existence));
                // Back under its own seq (history and undo records name it) through the one
                // insert path; `save` then writes what an insert leaves out (lease, counts…).
                let mut before = e.before;
                let mut row = before.clone();
                if !insert(ctx, &mut row)? {
                    return Err(Error::conflict(Conflict::KeyTaken {
                        action_id,
                        id: before.id,
                    }));
                }
                save(ctx, &mut before, false)?;
                deltas.moved(qid, None, Some(before.status), before.enqueued_at);
                history(
                    ctx,
                    &before,
                    Hist {
                        by: &req.actor,
                        action: "undo",
                        from: None,
                        to: Some(before.status),
                        reason: None,
                        note: Some(&format!("{label}: restored")),
                        detail: None,
                        action_id: Some(action_id),
                    },
                )?;
            }
            Some(mut current) => {
                let restores_value = parts.contains(&Part::Value) && e.before.value.is_some();
                if restores_value {
                    current.value = item_by_id(ctx.conn, &current.id)?.value;
                }
                let mut row = current.clone();
                for part in parts {
                    restore(&mut row, &e.before, *part, &action);
                }
                let (_, changes) = diff(&current, &row);
                save(ctx, &mut row, restores_value)?;
                deltas.moved(qid, Some(current.status), Some(row.status), row.enqueued_at);
                history(
                    ctx,
                    &row,
                    Hist {
                        by: &req.actor,
                        action: "undo",
                        from: Some(current.status),
                        to: Some(row.status),
                        reason: None,
                        note: Some(&label),
                        detail: FieldChange::record(&changes),
                        action_id: Some(action_id),
                    },
                )?;
            }
        }
        *per_queue.entry(qid).or_default() += 1;
    }
    debug_assert!(rule.undo_restores.iter().all(|p| *p != Part::Lease));
    deltas.flush(ctx)?;
    ctx.conn
        .execute(
            "UPDATE actions SET undone_at = ?1, undone_by = ?2, restored = ?3 WHERE id = ?4",
            params![ms(ctx.now), req.actor, result.restored as i64, action_id],
        )
        .map_err(sql)?;
    for (qid, n) in per_queue {
        let name = queues.get(ctx.conn, qid)?.queue.name.clone();
        ctx.events.push(Event::Items {
            queue: name,
            count: n,
        });
    }
    Ok(result)
}

/// Puts one part of `row` back as it was in `before`. Only the parts the rule names, so
/// what happened to the item since (a worker's heartbeat, other notes) stays.
fn restore(row: &mut ItemRow, before: &ItemRow, part: Part, action: &ActionRow) {
    match part {
        Part::Status => {
            row.status = before.status;
            row.reason = before.reason;
            row.signature = before.signature.clone();
            row.finished_at = before.finished_at;
        }
        Part::Value => {
            if before.value.is_some() {
                row.value = before.value.clone();
            }
        }
        Part::Priority => row.priority = before.priority,
        Part::Expiry => row.expires_at = before.expires_at,
        Part::Delay => row.delay_until = before.delay_until,
        Part::RequeueCount => row.requeue_count = before.requeue_count,
        Part::Note => {
            let mut notes = row.notes();
            if let Some(i) = action.note_at(&notes) {
                notes.remove(i);
                row.notes = (!notes.is_empty())
                    .then(|| serde_json::to_string(&notes).expect("notes serialize"));
            }
        }
        // Never given back: see `rules::undo_step`. Existence is the re-insert above.
        Part::Lease | Part::Existence => {}
    }
}

// ---------------------------------------------------------------- the action log

pub fn list(conn: &Connection, q: &ActionQuery) -> Result<Vec<ActionInfo>> {
    if q.limit == 0 {
        return Err(Error::invalid("limit", "limit must be at least 1"));
    }
    let qid = match &q.queue {
        Some(name) => Some(queue_by_name(conn, name)?.id),
        None => None,
    };
    let mut st = conn
        .prepare_cached(
            "SELECT a.id, a.at, a.by, a.verb, a.kind, a.note, a.touched, a.undone_at,
                    a.undone_by, a.restored
             FROM actions a
             WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM action_queues aq
                                         WHERE aq.queue_id = ?1 AND aq.action_id = a.id)
             ORDER BY a.id DESC LIMIT ?2",
        )
        .map_err(sql)?;
    let rows = st
        .query_map(params![qid, q.limit.min(10_000)], |r| {
            Ok(ActionInfo {
                id: r.get(0)?,
                at: from_ms(r.get(1)?),
                by: r.get(2)?,
                verb: r.get(3)?,
                kind: r
                    .get::<_, Option<String>>(4)?
                    .and_then(|k| serde_json::from_str(&k).ok()),
                note: r.get(5)?,
                touched: r.get::<_, i64>(6)?.max(0) as u64,
                queues: vec![],
                undone_at: r.get::<_, Option<i64>>(7)?.map(from_ms),
                undone_by: r.get(8)?,
                restored: r.get::<_, Option<i64>>(9)?.map(|n| n.max(0) as u64),
            })
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    let mut names = conn
        .prepare_cached(
            "SELECT q.name FROM action_queues aq JOIN queues q ON q.id = aq.queue_id
             WHERE aq.action_id = ?1 ORDER BY q.name",
        )
        .map_err(sql)?;
    let mut out = rows;
    for a in &mut out {
        a.queues = names
            .query_map([a.id], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sql)?;
    }
    Ok(out)
}
