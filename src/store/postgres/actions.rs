//! The human side: previews, bulk actions, their undo, and the action log, each in one
//! transaction. What each action changes and what its undo puts back comes from
//! `rules::ACTION_RULES`, as in the SQLite store; this file applies it.

use super::filter::{self, Where};
use super::read;
use super::rows::*;
use super::write::{append_note, history, insert, key_taken, ms, save, Hist};
use super::{p, Ctx, P};
use crate::backend::{Conflict, Error, Refused, Result, StorageCause, Thing};
use crate::clock::from_ms;
use crate::model::*;
use crate::rules::{self, rule_of, ActionRule, Kept, Part, Put, To, UndoStep, UndoWhen};
use crate::text::thousands;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

fn with_now<'a>(w: &'a Where) -> Vec<P<'a>> {
    let mut all: Vec<P> = vec![("now", &w.now as &(dyn ToSql + Sync))];
    for (k, v) in &w.params {
        all.push((k.as_str(), v.as_ref() as &(dyn ToSql + Sync)));
    }
    all
}

/// The rows a target names, checked to exist, in enqueue order for a filter. Values are
/// read only `with_value`. `lock`: held until the call commits (an action changes them).
pub async fn target_rows(
    ctx: &Ctx<'_>,
    target: &Target,
    with_value: bool,
    lock: bool,
) -> Result<Vec<ItemRow>> {
    let cols = if with_value {
        ITEM_COLS.to_string()
    } else {
        ITEM_COLS.replace("i.value", "NULL::text")
    };
    let locking = if lock { " FOR UPDATE OF i" } else { "" };
    match target {
        Target::Ids(ids) => {
            if ids.is_empty() {
                return Err(Error::invalid("target", "no items named"));
            }
            let mut seen = std::collections::HashSet::new();
            let sql = format!("SELECT {cols} FROM items i WHERE i.id = :id{locking}");
            let mut out = Vec::new();
            for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
                let r = ctx
                    .opt(&sql, p!["id" => id])
                    .await?
                    .ok_or_else(|| Error::not_found(Thing::Item, id.as_str()))?;
                out.push(item(&r));
            }
            Ok(out)
        }
        Target::Filter(f) => {
            let w = filter::build(ctx, f).await?;
            rows_where(ctx, &cols, &w, locking).await
        }
        Target::Any(fs) => {
            let w = filter::build_any(ctx, fs).await?;
            rows_where(ctx, &cols, &w, locking).await
        }
    }
}

async fn rows_where(ctx: &Ctx<'_>, cols: &str, w: &Where, locking: &str) -> Result<Vec<ItemRow>> {
    let rows = ctx
        .rows(
            &format!(
                "SELECT {cols} FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE {} ORDER BY i.seq{locking}",
                w.sql
            ),
            &with_now(w),
        )
        .await?;
    Ok(items(&rows))
}

// ---------------------------------------------------------------- previews

async fn status_counts(ctx: &Ctx<'_>, w: &Where) -> Result<Vec<(Status, u64)>> {
    let rows = ctx
        .rows(
            &format!(
                "SELECT i.status, count(*) FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE {} GROUP BY i.status ORDER BY i.status COLLATE \"C\"",
                w.sql
            ),
            &with_now(w),
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (s, n): (String, i64) = (r.get(0), r.get(1));
        if let Ok(s) = s.parse() {
            out.push((s, n.max(0) as u64));
        }
    }
    Ok(out)
}

async fn expired_among(ctx: &Ctx<'_>, w: &Where, statuses: &[Status]) -> Result<u64> {
    if statuses.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
    let passed = super::write::cond_q(&rules::EXPIRY_PASSED);
    let n: i64 = ctx
        .row(
            &format!(
                "SELECT count(*) FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE {} AND i.status IN ({}) AND {passed}",
                w.sql,
                list.join(", ")
            ),
            &with_now(w),
        )
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}

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

fn allowed(statuses: &[Status], action: &ActionKind) -> Vec<Status> {
    statuses
        .iter()
        .copied()
        .filter(|s| rules::refusal_reason(*s, action).is_none())
        .collect()
}

pub async fn preview(
    ctx: &Ctx<'_>,
    target: &Target,
    action: Option<&ActionKind>,
    sample: u32,
) -> Result<Preview> {
    let now = ctx.now;
    match target {
        Target::Filter(f) => {
            let Some(action) = action else {
                let page = PageRequest {
                    limit: sample,
                    count: Count::Exact,
                    ..Default::default()
                };
                let p = read::items(ctx, f, &page).await?;
                let count = p.total.unwrap_or_default();
                return Ok(Preview {
                    count,
                    changes: count,
                    skipped: vec![],
                    warnings: vec![],
                    sample: p.items,
                });
            };
            let w = filter::build(ctx, f).await?;
            preview_where(ctx, &w, action, sample).await
        }
        Target::Any(fs) => {
            let w = filter::build_any(ctx, fs).await?;
            match action {
                Some(action) => preview_where(ctx, &w, action, sample).await,
                None => {
                    let count = status_counts(ctx, &w).await?.iter().map(|(_, n)| n).sum();
                    Ok(Preview {
                        count,
                        changes: count,
                        skipped: vec![],
                        warnings: vec![],
                        sample: sample_where(ctx, &w, None, sample).await?,
                    })
                }
            }
        }
        Target::Ids(_) => {
            let rows = target_rows(ctx, target, false, false).await?;
            let queues = all_queues(ctx).await?;
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
            for r in first {
                let full = item_by_id(ctx, &r.id, false).await?;
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

async fn preview_where(
    ctx: &Ctx<'_>,
    w: &Where,
    action: &ActionKind,
    sample: u32,
) -> Result<Preview> {
    let by_status = status_counts(ctx, w).await?;
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
    out.sample = sample_where(ctx, w, only, sample).await?;
    let passed = expired_among(ctx, w, &ok).await?;
    out.warnings.extend(expiry_warning(action, passed));
    Ok(out)
}

async fn sample_where(
    ctx: &Ctx<'_>,
    w: &Where,
    only: Option<&[Status]>,
    sample: u32,
) -> Result<Vec<Item>> {
    let among = match only {
        Some(statuses) => {
            let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
            format!(" AND i.status IN ({})", list.join(", "))
        }
        None => String::new(),
    };
    let limit = sample as i64;
    let mut params = with_now(w);
    params.push(("limit", &limit));
    let rows = ctx
        .rows(
            &format!(
                "SELECT {ITEM_COLS} FROM items i JOIN queues q ON q.id = i.queue_id
                 WHERE {}{among} ORDER BY i.seq LIMIT :limit",
                w.sql
            ),
            &params,
        )
        .await?;
    let queues = all_queues(ctx).await?;
    Ok(items(&rows)
        .iter()
        .filter_map(|r| queues.get(&r.queue_id).map(|q| r.to_item(q, ctx.now)))
        .collect())
}

// ---------------------------------------------------------------- acting

/// What changed from one version of a row to the next, part by part, and the old → new
/// of those that carry one.
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
    let time = |t: Option<i64>| json!(t.map(|t| from_ms(t).format(time_ms::FORMAT).to_string()));
    if (before.status, before.reason, before.finished_at)
        != (after.status, after.reason, after.finished_at)
    {
        parts.push(Part::Status);
    }
    if before.lease_token.is_some() && after.lease_token.is_none() {
        parts.push(Part::Lease);
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

pub async fn act(ctx: &mut Ctx<'_>, req: &ActionRequest) -> Result<ActionResult> {
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
    let rows = target_rows(ctx, &req.target, !keeps_value, true).await?;
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
    let action_id: i64 = ctx
        .row(
            "INSERT INTO actions (at, by, verb, note, touched, kind)
             VALUES (:at, :by, :verb, :note, :touched, :kind) RETURNING id",
            p![
                "at" => now,
                "by" => req.actor,
                "verb" => verb,
                "note" => req.note,
                "touched" => chosen.len() as i64,
                "kind" => serde_json::to_string(&req.action).expect("actions serialize"),
            ],
        )
        .await?
        .get(0);
    let mut queues = Queues::default();
    let mut per_queue: BTreeMap<i64, u64> = BTreeMap::new();
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
        )
        .await?;
        let version_after = if to == Some(To::Deleted) {
            ctx.exec("DELETE FROM items WHERE seq = :seq", p!["seq" => row.seq])
                .await?;
            ctx.deltas
                .moved(row.queue_id, Some(before.status), None, before.enqueued_at);
            None
        } else {
            ctx.deltas.moved(
                row.queue_id,
                Some(before.status),
                Some(row.status),
                row.enqueued_at,
            );
            save(ctx, &mut row, !keeps_value).await?;
            Some(row.version)
        };
        let mut snapshot = before;
        if keeps_value {
            snapshot.value = None;
        }
        ctx.exec(
            "INSERT INTO action_items (action_id, item_seq, version_after, before)
             VALUES (:a, :seq, :v, :before)",
            p![
                "a" => action_id,
                "seq" => row.seq,
                "v" => version_after,
                "before" => serde_json::to_string(&snapshot).expect("row serializes"),
            ],
        )
        .await?;
        *per_queue.entry(row.queue_id).or_default() += 1;
    }
    let touched = per_queue.values().sum();
    for (qid, n) in per_queue {
        ctx.exec(
            "INSERT INTO action_queues (queue_id, action_id, n) VALUES (:q, :a, :n)",
            p!["q" => qid, "a" => action_id, "n" => n as i64],
        )
        .await?;
        let name = queues.get(ctx, qid).await?.queue.name.clone();
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
    fn added_note(&self) -> Option<&str> {
        self.note.as_deref().filter(|n| !n.trim().is_empty())
    }
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

async fn as_left(
    ctx: &Ctx<'_>,
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
            let queue_alive = ctx
                .opt(
                    "SELECT 1 FROM queues WHERE id = :id",
                    p!["id" => before.queue_id],
                )
                .await?
                .is_some();
            let taken = match before.key.as_deref() {
                Some(k) if queue_alive => key_taken(ctx, before.queue_id, k).await?,
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

/// `lock`: the action's row and its items are held until the call commits (an undo).
async fn plan_undo(ctx: &Ctx<'_>, action_id: i64, lock: bool) -> Result<Plan> {
    let locking = if lock { " FOR UPDATE" } else { "" };
    let r = ctx
        .opt(
            &format!(
                "SELECT verb, kind, at, by, note, undone_at FROM actions WHERE id = :id{locking}"
            ),
            p!["id" => action_id],
        )
        .await?
        .ok_or_else(|| Error::not_found(Thing::Action, action_id.to_string()))?;
    let action = ActionRow {
        id: action_id,
        verb: r.get(0),
        kind: r
            .get::<_, Option<String>>(1)
            .and_then(|k| serde_json::from_str(&k).ok()),
        at: r.get(2),
        by: r.get(3),
        note: r.get(4),
        undone_at: r.get(5),
    };
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
    let records = ctx
        .rows(
            "SELECT item_seq, version_after, before FROM action_items WHERE action_id = :id
             ORDER BY item_seq",
            p!["id" => action_id],
        )
        .await?;
    let no_value = ITEM_COLS.replace("i.value", "NULL::text");
    let current_sql = format!("SELECT {no_value} FROM items i WHERE i.seq = :seq{locking}");
    let mut entries = Vec::with_capacity(records.len());
    for rec in records {
        let (seq, version_after, before): (i64, Option<i64>, String) =
            (rec.get(0), rec.get(1), rec.get(2));
        let before: ItemRow = serde_json::from_str(&before).map_err(|e| {
            Error::storage(
                StorageCause::Io,
                None,
                format!("undo record of action {action_id}: {e}"),
            )
        })?;
        let current = ctx
            .opt(&current_sql, p!["seq" => seq])
            .await?
            .map(|r| item(&r));
        let found = as_left(ctx, &action, rule, version_after, &before, current.as_ref()).await?;
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

pub async fn undo_preview(ctx: &Ctx<'_>, action_id: i64) -> Result<UndoResult> {
    Ok(plan_undo(ctx, action_id, false).await?.result(true))
}

pub async fn undo(ctx: &mut Ctx<'_>, req: &UndoRequest) -> Result<UndoResult> {
    let plan = plan_undo(ctx, req.action_id, true).await?;
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
    let mut per_queue: BTreeMap<i64, u64> = BTreeMap::new();
    for e in entries {
        let UndoStep::Restore(parts) = e.step else {
            continue;
        };
        let qid = e.before.queue_id;
        match e.current {
            None => {
                debug_assert!(parts.contains(&Part::Existence));
                let mut before = e.before;
                let mut row = before.clone();
                if !insert(ctx, &mut row).await? {
                    return Err(Error::conflict(Conflict::KeyTaken {
                        action_id,
                        id: before.id,
                    }));
                }
                save(ctx, &mut before, false).await?;
                ctx.deltas
                    .moved(qid, None, Some(before.status), before.enqueued_at);
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
                )
                .await?;
            }
            Some(mut current) => {
                let restores_value = parts.contains(&Part::Value) && e.before.value.is_some();
                if restores_value {
                    current.value = item_by_id(ctx, &current.id, false).await?.value;
                }
                let mut row = current.clone();
                for part in parts {
                    restore(&mut row, &e.before, *part, &action);
                }
                let (_, changes) = diff(&current, &row);
                save(ctx, &mut row, restores_value).await?;
                ctx.deltas
                    .moved(qid, Some(current.status), Some(row.status), row.enqueued_at);
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
                )
                .await?;
            }
        }
        *per_queue.entry(qid).or_default() += 1;
    }
    debug_assert!(rule.undo_restores.iter().all(|p| *p != Part::Lease));
    ctx.exec(
        "UPDATE actions SET undone_at = :at, undone_by = :by, restored = :n WHERE id = :id",
        p![
            "at" => ms(ctx.now),
            "by" => req.actor,
            "n" => result.restored as i64,
            "id" => action_id,
        ],
    )
    .await?;
    for (qid, n) in per_queue {
        let name = queues.get(ctx, qid).await?.queue.name.clone();
        ctx.events.push(Event::Items {
            queue: name,
            count: n,
        });
    }
    Ok(result)
}

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
        Part::Lease | Part::Existence => {}
    }
}

// ---------------------------------------------------------------- the action log

pub async fn list(ctx: &Ctx<'_>, q: &ActionQuery) -> Result<Vec<ActionInfo>> {
    if q.limit == 0 {
        return Err(Error::invalid("limit", "limit must be at least 1"));
    }
    let qid = match &q.queue {
        Some(name) => Some(queue_by_name(ctx, name, false).await?.id),
        None => None,
    };
    let only = if qid.is_some() {
        "WHERE EXISTS (SELECT 1 FROM action_queues aq
                       WHERE aq.queue_id = :q AND aq.action_id = a.id)"
    } else {
        ""
    };
    let limit = q.limit.min(10_000) as i64;
    let rows = ctx
        .rows(
            &format!(
                "SELECT a.id, a.at, a.by, a.verb, a.kind, a.note, a.touched, a.undone_at,
                        a.undone_by, a.restored
                 FROM actions a {only}
                 ORDER BY a.id DESC LIMIT :limit"
            ),
            p!["q" => qid.unwrap_or(0), "limit" => limit],
        )
        .await?;
    let mut out: Vec<ActionInfo> = rows
        .iter()
        .map(|r| ActionInfo {
            id: r.get(0),
            at: from_ms(r.get(1)),
            by: r.get(2),
            verb: r.get(3),
            kind: r
                .get::<_, Option<String>>(4)
                .and_then(|k| serde_json::from_str(&k).ok()),
            note: r.get(5),
            touched: r.get::<_, i64>(6).max(0) as u64,
            queues: vec![],
            undone_at: r.get::<_, Option<i64>>(7).map(from_ms),
            undone_by: r.get(8),
            restored: r.get::<_, Option<i64>>(9).map(|n| n.max(0) as u64),
        })
        .collect();
    for a in &mut out {
        a.queues = ctx
            .rows(
                "SELECT q.name FROM action_queues aq JOIN queues q ON q.id = aq.queue_id
                 WHERE aq.action_id = :a ORDER BY q.name COLLATE \"C\"",
                p!["a" => a.id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    Ok(out)
}
