//! `workq item …`, `workq import`, `workq groups`, `workq undo`: items and the human side.

use super::output::{self, cell, say, status_of, tell, thousands, Col, Failure, Out};
use super::{os_user, ActionsArgs, FilterArgs, GroupsArgs, ImportArgs, ItemCmd, UndoArgs};
use crate::backend::Backend;
use crate::import::{self, Format};
use crate::model::*;
use crate::rules::{parse_duration, parse_statuses, parse_time, TYPE_THE_COUNT_OVER};
use crate::text;
use clap::Args;
use std::collections::HashSet;
use std::io::{IsTerminal, Read};

#[derive(Args, Debug)]
pub struct AddArgs {
    pub queue: String,
    /// The input: text or JSON, up to 1 MiB; `-` reads it from stdin.
    #[arg(long, allow_hyphen_values = true)]
    pub value: String,
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// Reference unique within the queue; a second add with the same key is refused.
    #[arg(long, allow_hyphen_values = true)]
    pub key: Option<String>,
    /// high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: String,
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub expires_in: Option<String>,
    /// Not handed out before this time.
    #[arg(long, value_name = "TIME")]
    pub delay_until: Option<String>,
    /// Create it on hold, for review.
    #[arg(long)]
    pub hold: bool,
    #[arg(long, allow_hyphen_values = true)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    pub queue: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Items per listing, at most 10,000; when more match, stderr says how many and where
    /// the next page starts.
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = super::whole::<u32>)]
    pub limit: u32,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = super::whole::<u64>)]
    pub offset: u64,
    /// Every matching item, however many (read page by page, printed as they come).
    #[arg(long, conflicts_with_all = ["limit", "offset"])]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct ActArgs {
    /// Items by id (all or nothing: one the rules refuse refuses them all); or select them
    /// with --queue and --status or --signature.
    pub ids: Vec<String>,
    /// Bulk: act on every item of this queue matching the filter (needs --status or
    /// --signature). Items the rules refuse are skipped and counted, before you confirm.
    #[arg(long)]
    pub queue: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Recorded in each item's notes and history.
    #[arg(long, allow_hyphen_values = true)]
    pub note: Option<String>,
    /// requeue: not handed out before this long from now.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub delay: Option<String>,
    /// requeue: the item's new value (`-` reads stdin); the history keeps the old one.
    #[arg(long, allow_hyphen_values = true)]
    pub value: Option<String>,
    /// priority: the new priority (high, normal, low).
    #[arg(long, value_name = "PRIORITY")]
    pub to: Option<String>,
    /// extend: the new expiry time.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["expires_in", "never"])]
    pub expires_at: Option<String>,
    /// extend: expire this long from now.
    #[arg(
        long,
        value_name = "DUR",
        conflicts_with = "never",
        allow_hyphen_values = true
    )]
    pub expires_in: Option<String>,
    /// extend: never expire.
    #[arg(long)]
    pub never: bool,
    /// Apply a bulk action without asking (or typing the count, past 1,000 items).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Bulk: all or nothing; refuse when the rules refuse any matching item.
    #[arg(long)]
    pub strict: bool,
}

fn bad(flag: &str) -> impl Fn(String) -> Failure + '_ {
    move |e| Failure::invalid(format!("{flag}: {e}"))
}

fn stdin_or(v: String) -> Result<String, Failure> {
    if v != "-" {
        return Ok(v);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Failure::invalid(format!("--value -: cannot read stdin: {e}")))?;
    Ok(s)
}

/// What `groups` prints for the group of exceptions without a note.
const NO_NOTE: &str = "(no note)";

pub fn filter(queue: Option<String>, f: &FilterArgs) -> Result<Filter, Failure> {
    let out = Filter {
        queue,
        statuses: f
            .status
            .as_deref()
            .map(|s| parse_statuses(s).map_err(bad("--status")))
            .transpose()?
            .unwrap_or_default(),
        reason: f
            .reason
            .as_deref()
            .map(|s| s.parse().map_err(bad("--reason")))
            .transpose()?,
        priority: f
            .priority
            .as_deref()
            .map(|s| s.parse().map_err(bad("--priority")))
            .transpose()?,
        sla: f
            .sla
            .as_deref()
            .map(|s| s.parse().map_err(bad("--sla")))
            .transpose()?,
        expired: f.expired.then_some(true),
        search: f.search.clone(),
        signature: f
            .signature
            .as_deref()
            .map(|s| if s == NO_NOTE { "" } else { s }.to_string()),
        worker: f.worker.clone(),
    };
    // The engine checks this too, but without naming the flag.
    crate::rules::check_filter(&out).map_err(bad("--search"))?;
    Ok(out)
}

pub async fn run(store: &dyn Backend, cmd: ItemCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        ItemCmd::Add(a) => add(store, a, out).await,
        ItemCmd::Ls(a) => ls(store, a, out).await,
        ItemCmd::Show { id } => show(store, &id, out).await,
        ItemCmd::Requeue(a) => {
            let delay = a
                .delay
                .as_deref()
                .map(|d| parse_duration(d).map_err(bad("--delay")))
                .transpose()?;
            let value = a.value.clone().map(stdin_or).transpose()?;
            act(store, a, ActionKind::Requeue { delay, value }, out).await
        }
        ItemCmd::Hold(a) => act(store, a, ActionKind::Hold, out).await,
        ItemCmd::Release(a) => act(store, a, ActionKind::Release, out).await,
        ItemCmd::Processed(a) => act(store, a, ActionKind::Processed, out).await,
        ItemCmd::Delete(a) => act(store, a, ActionKind::Delete, out).await,
        ItemCmd::Priority(a) => {
            let p =
                a.to.as_deref()
                    .ok_or_else(|| {
                        Failure::invalid("priority: give the new one with --to high|normal|low")
                    })?
                    .parse()
                    .map_err(bad("--to"))?;
            act(store, a, ActionKind::SetPriority { priority: p }, out).await
        }
        ItemCmd::Extend(a) => {
            let at = match (&a.expires_at, &a.expires_in, a.never) {
                (Some(t), _, _) => Some(parse_time(t).map_err(bad("--expires-at"))?),
                (_, Some(d), _) => {
                    let d = crate::rules::parse_extension(d).map_err(bad("--expires-in"))?;
                    Some(chrono::Utc::now() + d)
                }
                (_, _, true) => None,
                _ => {
                    return Err(Failure::invalid(
                        "extend: give --expires-at TIME, --expires-in DUR or --never",
                    ))
                }
            };
            act(store, a, ActionKind::ExtendExpiry { expires_at: at }, out).await
        }
        ItemCmd::Note(a) => act(store, a, ActionKind::AddNote, out).await,
    }
}

async fn add(store: &dyn Backend, a: AddArgs, out: &Out) -> Result<(), Failure> {
    let item = NewItem {
        value: stdin_or(a.value)?,
        name: a.name,
        key: a.key,
        priority: a.priority.parse().map_err(bad("--priority"))?,
        expires_at: a
            .expires_at
            .as_deref()
            .map(|t| parse_time(t).map_err(bad("--expires-at")))
            .transpose()?,
        expires_in: a
            .expires_in
            .as_deref()
            .map(|d| parse_duration(d).map_err(bad("--expires-in")))
            .transpose()?,
        delay_until: a
            .delay_until
            .as_deref()
            .map(|t| parse_time(t).map_err(bad("--delay-until")))
            .transpose()?,
        hold: a.hold,
        note: a.note,
    };
    let mut added = store
        .add_items(&a.queue, vec![item], &format!("user:{}", os_user()))
        .await?;
    let item = added.remove(0);
    if out.json {
        out.json(&item)?;
    } else {
        say!("{}", item.id);
    }
    Ok(())
}

/// The columns of `item ls`, widest each cell may be (the table is streamed with `--all`,
/// so the widths cannot wait for the last row).
const LS_COLUMNS: [(&str, usize); 8] = [
    ("ID", 26),
    ("QUEUE", 20),
    ("NAME", 24),
    ("STATUS", 18),
    ("PRIORITY", 8),
    ("AGE", 8),
    ("SLA", 7),
    ("LATEST NOTE", 48),
];

fn ls_row(i: &Item, now: Time) -> Vec<String> {
    vec![
        i.id.clone(),
        cell(&i.queue, 20),
        cell(i.name.as_deref().unwrap_or("-"), 24),
        status_of(i),
        i.priority.to_string(),
        output::age_secs((now - i.enqueued_at).num_seconds()),
        i.sla.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        cell(i.notes.last().map(|n| n.text.as_str()).unwrap_or(""), 48),
    ]
}

fn fixed_row(cells: &[String]) -> String {
    let mut line: Vec<String> = cells
        .iter()
        .zip(LS_COLUMNS)
        .map(|(c, (_, w))| format!("{:<w$}", output::cell(c, w)))
        .collect();
    if let Some(last) = line.last_mut() {
        *last = last.trim_end().to_string();
    }
    format!("{}\n", line.join("  ").trim_end())
}

async fn ls(store: &dyn Backend, a: LsArgs, out: &Out) -> Result<(), Failure> {
    let f = filter(a.queue.clone(), &a.filter)?;
    if a.all {
        return ls_all(store, f, out).await;
    }
    if a.limit > MAX_PAGE {
        return Err(Failure::invalid(format!(
            "--limit {} is over the most one listing holds ({}); use --all for every match",
            a.limit,
            thousands(MAX_PAGE as u64)
        )));
    }
    let page = store
        .items(
            f,
            PageRequest {
                offset: a.offset,
                limit: a.limit,
                // A script is told the real total when it gets part of the list.
                count: if out.json {
                    Count::Exact
                } else {
                    Count::Capped
                },
                ..Default::default()
            },
        )
        .await?;
    let shown = page.items.len() as u64;
    let total = page.total.unwrap_or_default();
    let next = a.offset + shown;
    let cut = next < total || !page.exact;
    if out.json {
        out.json(&page.items)?;
        if cut {
            tell!(
                "{}",
                serde_json::json!({"notice": {
                    "message": format!(
                        "showing {} of {} matching items; the next page starts at --offset {next} (or use --all)",
                        thousands(shown),
                        thousands(total)
                    ),
                    "shown": shown,
                    "offset": a.offset,
                    "total": total,
                    "next_offset": next,
                }})
            );
        }
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = page.items.iter().map(|i| ls_row(i, now)).collect();
    // Left, as `--all` streams them: the two listings line up the same.
    let cols: Vec<Col> = LS_COLUMNS.iter().map(|(h, _)| Col::left(h)).collect();
    output::table(&cols, &rows)?;
    if a.offset > 0 || cut {
        say!(
            "{}–{} of {}{}",
            thousands(a.offset + shown.min(1)),
            thousands(next),
            thousands(total),
            if page.exact { "" } else { "+" }
        );
    }
    if cut {
        tell!("more match: the next page starts at --offset {next} (or use --all)");
    }
    Ok(())
}

/// Every match, streamed a page at a time in enqueue order: memory stays one page however
/// many items match, and each page continues after the last item of the one before, so
/// items added or removed meanwhile neither repeat nor shift the rest out of the list.
async fn ls_all(store: &dyn Backend, f: Filter, out: &Out) -> Result<(), Failure> {
    const PAGE: u32 = 1000;
    let now = chrono::Utc::now();
    let mut after: Option<String> = None;
    let mut n = 0u64;
    if out.json {
        output::emit("[")?;
    } else {
        let headers: Vec<String> = LS_COLUMNS.iter().map(|(h, _)| h.to_string()).collect();
        output::emit(&fixed_row(&headers))?;
    }
    loop {
        let page = store
            .items(
                f.clone(),
                PageRequest {
                    limit: PAGE,
                    count: Count::Skip,
                    after: after.clone(),
                    ..Default::default()
                },
            )
            .await?;
        let mut chunk = String::new();
        for i in &page.items {
            if out.json {
                // The same text `--json` prints for a page: an indented, pretty array.
                let pretty = serde_json::to_string_pretty(i).expect("serializable");
                chunk.push_str(if n == 0 { "\n  " } else { ",\n  " });
                chunk.push_str(&pretty.replace('\n', "\n  "));
            } else {
                chunk.push_str(&fixed_row(&ls_row(i, now)));
            }
            n += 1;
        }
        output::emit(&chunk)?;
        match page.items.last() {
            Some(last) if page.items.len() as u32 == PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    if out.json {
        output::emit(if n == 0 { "]\n" } else { "\n]\n" })?;
    }
    Ok(())
}

async fn show(store: &dyn Backend, id: &str, out: &Out) -> Result<(), Failure> {
    let d = store.item(id).await?;
    if out.json {
        out.json(&d)?;
        return Ok(());
    }
    let i = &d.item;
    let now = chrono::Utc::now();
    // A deleted item is shown as it was, saying so first: who, when, and the undo.
    let status = match &d.deleted {
        Some(_) => format!("deleted (was {})", status_of(i)),
        None => status_of(i),
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("id", i.id.clone()),
        ("queue", i.queue.clone()),
        ("name", i.name.clone().unwrap_or_else(|| "-".into())),
        ("key", i.key.clone().unwrap_or_else(|| "-".into())),
        ("status", status),
        ("priority", i.priority.to_string()),
        (
            "sla",
            i.sla.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        ),
        ("retries", i.retry_count.to_string()),
        ("requeues", i.requeue_count.to_string()),
        ("enqueued", output::time_from_now(Some(i.enqueued_at), now)),
        ("started", output::time_from_now(i.started_at, now)),
        ("finished", output::time_from_now(i.finished_at, now)),
        ("expires", output::time_from_now(i.expires_at, now)),
        ("delayed until", output::time_from_now(i.delay_until, now)),
        ("worker", i.worker.clone().unwrap_or_else(|| "-".into())),
    ];
    if let Some(del) = &d.deleted {
        fields.insert(
            5,
            (
                "deleted",
                format!(
                    "{} by {} (action {}; `workq undo {}` brings it back)",
                    output::time_from_now(Some(del.at), now),
                    del.by,
                    del.action_id,
                    del.action_id
                ),
            ),
        );
    }
    output::fields(&fields)?;
    say!("\nvalue:");
    // Re-indented token by token (keys, their order and number text as stored), then
    // escaped: JSON escapes C0 controls but not C1 ones or bidi marks.
    let value = crate::json_text::pretty(&i.value).unwrap_or_else(|| i.value.clone());
    say!("{}", text::escape(&value, true));
    if !i.notes.is_empty() {
        say!("\nnotes:");
        for n in &i.notes {
            // A note's own lines stay lines, under the first.
            let body = text::escape(&n.text, true).replace('\n', "\n      ");
            say!("  {}  {}  {}", output::time(n.at), text::line(&n.by), body);
        }
    }
    say!("\nhistory:");
    // A recorded change reads old → new in its row when it is short; a long one (an edited
    // value) is named there and shown whole below the table, each side as written.
    let fits = |c: &FieldChange| {
        let t = c.summary();
        !t.contains(['\n', '\r']) && t.chars().count() <= CHANGE_IN_ROW
    };
    let rows: Vec<Vec<String>> = d
        .history
        .iter()
        .map(|h| {
            let change = match (h.from, h.to) {
                (Some(f), Some(t)) if f != t => format!("{f} → {t}"),
                (None, Some(t)) => format!("→ {t}"),
                (Some(f), None) => format!("{f} → deleted"),
                _ => String::new(),
            };
            let mut note = h.note.clone().unwrap_or_default();
            for c in &h.changes {
                note = if fits(c) {
                    format!("{note} {}", c.summary())
                } else {
                    format!("{note} {}: changed (old → new below)", c.field)
                };
            }
            if let Some(r) = h.reason {
                note = format!("[{r}] {note}");
            }
            if let Some(a) = h.action_id {
                note = format!("{note} (action {a})");
            }
            vec![
                output::time(h.at),
                h.by.clone(),
                h.action.clone(),
                change,
                cell(note.trim(), 80),
            ]
        })
        .collect();
    output::table(
        &["WHEN", "WHO", "ACTION", "CHANGE", "NOTE"].map(Col::left),
        &rows,
    )?;
    let long: Vec<(&HistoryEntry, &FieldChange)> = d
        .history
        .iter()
        .flat_map(|h| h.changes.iter().filter(|c| !fits(c)).map(move |c| (h, c)))
        .collect();
    if !long.is_empty() {
        say!("\nchanges:");
    }
    for (h, c) in long {
        let action = match h.action_id {
            Some(a) => format!("{} (action {a})", h.action),
            None => h.action.clone(),
        };
        say!(
            "  {}  {}  {}:",
            output::time(h.at),
            text::line(&action),
            text::line(&c.field)
        );
        for (side, v) in [("old", &c.old), ("new", &c.new)] {
            let v = FieldChange::side(v);
            let v = crate::json_text::pretty(&v).unwrap_or(v);
            say!(
                "    {side}: {}",
                text::escape(&v, true).replace('\n', "\n         ")
            );
        }
    }
    Ok(())
}

/// The longest "field: old → new" that `item show` writes inside its history row.
const CHANGE_IN_ROW: usize = 60;

async fn act(
    store: &dyn Backend,
    a: ActArgs,
    action: ActionKind,
    out: &Out,
) -> Result<(), Failure> {
    let verb = action.verb();
    let cmd = if verb == "extend-expiry" {
        "extend"
    } else {
        verb
    };
    let only = |flag: &str, set: bool, for_cmd: &str| -> Result<(), Failure> {
        if set && cmd != for_cmd {
            return Err(Failure::invalid(format!(
                "{flag} only goes with `item {for_cmd}`"
            )));
        }
        Ok(())
    };
    only("--delay", a.delay.is_some(), "requeue")?;
    only("--value", a.value.is_some(), "requeue")?;
    only("--to", a.to.is_some(), "priority")?;
    only(
        "--expires-at/--expires-in/--never",
        a.expires_at.is_some() || a.expires_in.is_some() || a.never,
        "extend",
    )?;
    let narrows = a.filter.status.is_some() || a.filter.signature.is_some();
    let bulk = a.queue.is_some() || narrows;
    let target = match (a.ids.is_empty(), bulk) {
        (false, true) => {
            return Err(Failure::invalid(
                "give item ids or --queue/--status/--signature, not both",
            ))
        }
        (true, false) => {
            return Err(Failure::invalid(format!(
            "name the items: `workq item {cmd} ID...` or `workq item {cmd} --queue Q --status S`"
        )))
        }
        (false, false) => Target::Ids(a.ids.clone()),
        (true, true) => {
            if a.queue.is_none() || !narrows {
                return Err(Failure::invalid(
                    "a bulk action needs --queue and --status or --signature",
                ));
            }
            Target::Filter(filter(a.queue.clone(), &a.filter)?)
        }
    };
    // Named items are all or nothing; a filter skips what the rules refuse, unless --strict.
    let by_filter = matches!(target, Target::Filter(_) | Target::Any(_));
    let skip_refused = by_filter && !a.strict;
    let many = match &target {
        Target::Ids(ids) => ids.len() as u64 > TYPE_THE_COUNT_OVER,
        Target::Filter(_) | Target::Any(_) => true,
    };
    if many {
        let p = store
            .preview(target.clone(), Some(action.clone()), 5)
            .await?;
        if p.count == 0 {
            return Err(crate::backend::Error::invalid(
                "target",
                "no items match; nothing changed",
            )
            .into());
        }
        let refused: u64 = p.skipped.iter().map(|t| t.count).sum();
        if p.changes == 0 || (refused > 0 && !skip_refused) {
            let mut m = format!(
                "{} of {} items cannot be {}; nothing changed:",
                thousands(refused),
                thousands(p.count),
                action.past_tense()
            );
            for t in &p.skipped {
                m.push_str(&format!("\n  {} × {}", thousands(t.count), t.why));
            }
            // The preview counts refusals by why, not by item: no items to list.
            return Err(crate::backend::Error::Transition {
                action: action.verb().to_string(),
                total: p.count,
                refused,
                items: vec![],
                message: m,
            }
            .into());
        }
        if !a.yes {
            confirm(&p, verb, out)?;
        }
    }
    let r = store
        .act(ActionRequest {
            target,
            action,
            note: a.note,
            actor: format!("user:{}", os_user()),
            skip_refused,
        })
        .await?;
    if out.json {
        out.json(&r)?;
    } else {
        say!(
            "{}: {} item{} (action {}; undo with `workq undo {}`)",
            r.verb,
            thousands(r.touched),
            if r.touched == 1 { "" } else { "s" },
            r.action_id,
            r.action_id
        );
        let n: u64 = r.skipped.iter().map(|t| t.count).sum();
        if n > 0 {
            say!("skipped {} the rules refuse:", thousands(n));
            for t in &r.skipped {
                say!("  {} × {}", thousands(t.count), text::line(&t.why));
            }
        }
    }
    Ok(())
}

/// Shows what a bulk action will do and asks (see `ask`).
fn confirm(p: &Preview, verb: &str, out: &Out) -> Result<(), Failure> {
    let refused: u64 = p.skipped.iter().map(|t| t.count).sum();
    let skips = if refused > 0 {
        format!(", skipping {} the rules refuse", thousands(refused))
    } else {
        String::new()
    };
    let would = format!("this would {verb} {} items{skips}", thousands(p.changes));
    ask(p.changes, &would, out, || {
        tell!(
            "this will {verb} {} of {} matching items, such as:",
            thousands(p.changes),
            thousands(p.count)
        );
        for i in &p.sample {
            tell!(
                "  {}  {}  {}  {}",
                i.id,
                status_of(i),
                cell(i.name.as_deref().unwrap_or("-"), 24),
                cell(i.notes.last().map(|n| n.text.as_str()).unwrap_or(""), 50)
            );
        }
        if refused > 0 {
            tell!("it skips {} the rules refuse:", thousands(refused));
            for t in &p.skipped {
                tell!("  {} × {}", thousands(t.count), text::line(&t.why));
            }
        }
        for w in &p.warnings {
            tell!("note: {}", text::line(w));
        }
    })
}

/// The one way the CLI asks before a change to `changes` items: `show` says what will
/// happen, then y/N, or past `TYPE_THE_COUNT_OVER` items the count itself. Without a
/// terminal (or with `--json`) there is nobody to ask: it refuses, saying what it `would`
/// do, and `--yes` is the answer.
fn ask(changes: u64, would: &str, out: &Out, show: impl FnOnce()) -> Result<(), Failure> {
    if out.json || !std::io::stdin().is_terminal() {
        return Err(Failure::invalid(format!(
            "{would}; no terminal to confirm at: add --yes to apply"
        )));
    }
    show();
    let big = changes > TYPE_THE_COUNT_OVER;
    if big {
        output::emit_err(&format!(
            "that is over {}: type the count ({}) to apply: ",
            thousands(TYPE_THE_COUNT_OVER),
            thousands(changes)
        ));
    } else {
        output::emit_err("apply? [y/N] ");
    }
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok();
    let answer = answer.trim();
    let yes = if big {
        answer.replace([',', '_'], "") == changes.to_string()
    } else {
        matches!(answer, "y" | "Y" | "yes")
    };
    if !yes {
        return Err(Failure::invalid(if big && !answer.is_empty() {
            format!("'{answer}' is not the count; cancelled, nothing changed")
        } else {
            "cancelled; nothing changed".into()
        }));
    }
    Ok(())
}

pub async fn groups(store: &dyn Backend, a: GroupsArgs, out: &Out) -> Result<(), Failure> {
    let gs = store.groups(a.queue).await?;
    if out.json {
        out.json(&gs)?;
    } else if gs.is_empty() {
        say!("no exceptions");
    } else {
        let rows: Vec<Vec<String>> = gs
            .iter()
            .map(|g| {
                vec![
                    thousands(g.count),
                    cell(&g.queue, 24),
                    g.reason
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    // Whole, so that `--signature` takes it as printed.
                    cell(
                        if g.signature.is_empty() {
                            NO_NOTE
                        } else {
                            &g.signature
                        },
                        usize::MAX,
                    ),
                    cell(g.example.as_deref().unwrap_or(""), 50),
                ]
            })
            .collect();
        output::table(
            &[
                Col::right("COUNT"),
                Col::left("QUEUE"),
                Col::left("REASON"),
                Col::left("SIGNATURE"),
                Col::left("EXAMPLE"),
            ],
            &rows,
        )?;
    }
    Ok(())
}

pub async fn undo(store: &dyn Backend, a: UndoArgs, out: &Out) -> Result<(), Failure> {
    let req = |dry_run: bool| UndoRequest {
        action_id: a.action_id,
        actor: format!("user:{}", os_user()),
        strict: a.strict,
        dry_run,
    };
    // Restoring more than `TYPE_THE_COUNT_OVER` items is asked like any action that big:
    // a dry run says how many, then the count is typed (or `--yes` given).
    if !a.dry_run && !a.yes {
        let dry = store.undo(req(true)).await?;
        if dry.restored > TYPE_THE_COUNT_OVER {
            let would = format!(
                "undo of action {} ({}) would restore {} items",
                dry.action_id,
                dry.verb,
                thousands(dry.restored)
            );
            ask(dry.restored, &would, out, || {
                tell!(
                    "undo of action {} ({}): {}",
                    dry.action_id,
                    dry.verb,
                    text::line(&dry.summary())
                );
            })?;
        }
    }
    let r = store.undo(req(a.dry_run)).await?;
    if out.json {
        out.json(&r)?;
        return Ok(());
    }
    let what = if r.dry_run { "undo of" } else { "undid" };
    say!(
        "{what} action {} ({}): {}",
        r.action_id,
        r.verb,
        text::line(&r.summary())
    );
    const SHOWN: usize = 20;
    for k in r.kept_items.iter().take(SHOWN) {
        say!("  kept {}: {}", text::line(&k.id), text::line(&k.why));
    }
    let kept = r.total - r.restored;
    if kept as usize > SHOWN {
        say!(
            "  … and {} more (`workq --json undo` lists up to {})",
            thousands(kept - SHOWN as u64),
            thousands(KEPT_LISTED as u64)
        );
    }
    Ok(())
}

/// "priority → high", "requeue after 15m": what an action did, in a few words.
fn what_action(a: &ActionInfo) -> String {
    match &a.kind {
        Some(ActionKind::Requeue { delay: Some(d), .. }) => {
            format!("requeue after {}", crate::rules::format_duration(*d))
        }
        Some(ActionKind::Requeue { value: Some(_), .. }) => "requeue, value edited".into(),
        Some(ActionKind::SetPriority { priority }) => format!("priority → {priority}"),
        Some(ActionKind::ExtendExpiry {
            expires_at: Some(t),
        }) => format!("expiry → {}", output::time(*t)),
        Some(ActionKind::ExtendExpiry { expires_at: None }) => "expiry → never".into(),
        _ => a.verb.clone(),
    }
}

pub async fn actions(store: &dyn Backend, a: ActionsArgs, out: &Out) -> Result<(), Failure> {
    let list = store
        .actions(ActionQuery {
            queue: a.queue,
            limit: a.limit,
        })
        .await?;
    if out.json {
        out.json(&list)?;
        return Ok(());
    }
    if list.is_empty() {
        say!("no actions yet");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|x| {
            let undone = match (x.undone_at, &x.undone_by) {
                (Some(at), by) => {
                    let mut u = format!(
                        "{} by {}",
                        output::time(at),
                        cell(by.as_deref().unwrap_or("?"), 24)
                    );
                    if let Some(n) = x.restored.filter(|n| *n < x.touched) {
                        u.push_str(&format!(
                            " ({} of {} restored)",
                            thousands(n),
                            thousands(x.touched)
                        ));
                    }
                    u
                }
                (None, _) => "-".into(),
            };
            vec![
                x.id.to_string(),
                output::time(x.at),
                cell(&x.by, 24),
                cell(&what_action(x), 28),
                thousands(x.touched),
                cell(&x.queues.join(","), 30),
                cell(x.note.as_deref().unwrap_or(""), 40),
                undone,
            ]
        })
        .collect();
    output::table(
        &[
            Col::right("ID"),
            Col::left("WHEN"),
            Col::left("WHO"),
            Col::left("ACTION"),
            Col::right("ITEMS"),
            Col::left("QUEUES"),
            Col::left("NOTE"),
            Col::left("UNDONE"),
        ],
        &rows,
    )?;
    Ok(())
}

/// The reject file is checked before anything is imported: one that cannot be written
/// would fail the command after the good rows landed, and one that is the input file
/// would be emptied before it is read.
fn check_rejects(input: &std::path::Path, dest: &std::path::Path) -> Result<(), Failure> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(dest)) {
        (Ok(i), Ok(d)) => i == d,
        _ => false,
    };
    if same {
        return Err(Failure::invalid(format!(
            "--rejects: {} is the file being imported; name another file",
            dest.display()
        )));
    }
    let existed = dest.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dest)
        .map_err(|e| {
            Failure::invalid(format!("--rejects: cannot write {}: {e}", dest.display()))
        })?;
    if !existed {
        let _ = std::fs::remove_file(dest);
    }
    Ok(())
}

pub async fn import(store: &dyn Backend, a: ImportArgs, out: &Out) -> Result<(), Failure> {
    let format = match &a.format {
        Some(f) => f.parse().map_err(bad("--format"))?,
        None => Format::from_path(&a.file),
    };
    let size = std::fs::metadata(&a.file)
        .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", a.file.display())))?
        .len();
    if let Some(dest) = &a.rejects {
        check_rejects(&a.file, dest)?;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    if size < 1 << 20 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let path = a.file.clone();
    let pbar = bar.clone();
    let popts = import::Options {
        key_column: a.key_column.clone(),
        name_column: a.name_column.clone(),
        delimiter: a
            .delimiter
            .as_deref()
            .map(|d| import::parse_delimiter(d).map_err(bad("--delimiter")))
            .transpose()?,
    };
    let parser = tokio::task::spawn_blocking({
        let popts = popts.clone();
        move || import::parse(&path, format, &popts, tx, &|b| pbar.set_position(b))
    });
    let opts = ImportOptions {
        skip_bad: a.skip_bad,
        dry_run: a.dry_run,
        key_column: a.key_column.clone(),
    };
    let stored = store
        .import(&a.queue, opts, rx, &format!("user:{}", os_user()))
        .await;
    let parsed = parser
        .await
        .map_err(|e| Failure::invalid(format!("import reader failed: {e}")))?;
    bar.finish_and_clear();
    // A file-level problem (unreadable, bad header) says more than the empty import it caused.
    let parsed = parsed.map_err(|e| Failure::invalid(format!("{}: {e}", a.file.display())))?;
    let report = stored?;
    if a.dry_run {
        return dry_run(&a, &parsed, &report, out);
    }
    let mut written = None;
    if let Some(dest) = &a.rejects {
        let lines: HashSet<u64> = report.rejected.iter().map(|r| r.line).collect();
        written = Some(
            import::write_rejects(&a.file, format, &popts, &lines, dest)
                .map_err(Failure::invalid)?,
        );
    }
    if out.json {
        out.json(&report)?;
        return Ok(());
    }
    say!(
        "imported {} into '{}'",
        output::count(report.imported, "item"),
        a.queue
    );
    if !report.rejected.is_empty() {
        tell!(
            "skipped {}:",
            output::count(report.rejected.len() as u64, "bad row")
        );
        for r in report.rejected.iter().take(20) {
            tell!("  {}", text::line(&r.to_string()));
        }
        if report.rejected.len() > 20 {
            tell!(
                "  … and {} more",
                thousands(report.rejected.len() as u64 - 20)
            );
        }
        if let (Some(dest), Some(n)) = (&a.rejects, written) {
            tell!(
                "wrote {} to {}",
                output::count(n, "bad row"),
                dest.display()
            );
        }
    }
    Ok(())
}

/// What `import --dry-run` found: the mapping, the first rows, every bad row, and the same
/// verdict (and exit code) as the import itself.
fn dry_run(
    a: &ImportArgs,
    parsed: &import::Parsed,
    report: &ImportReport,
    out: &Out,
) -> Result<(), Failure> {
    let refused = !a.skip_bad && !report.rejected.is_empty();
    // The first rows the store took: the parser's sample, less the rows it refused.
    let bad: HashSet<u64> = report.rejected.iter().map(|r| r.line).collect();
    let sample: Vec<&ImportRow> = parsed
        .sample
        .iter()
        .filter(|r| !bad.contains(&r.line))
        .take(3)
        .collect();
    let failure = || {
        Failure::invalid(text::import_failure(
            "dry run: import refused, nothing would be imported",
            &report.rejected,
        ))
    };
    if out.json {
        let sample: Vec<serde_json::Value> = sample
            .iter()
            .map(|r| {
                let i = &r.item;
                serde_json::json!({
                    "line": r.line,
                    "name": i.name,
                    "key": i.key,
                    "priority": i.priority,
                    "status": if i.hold { Status::OnHold } else { Status::Queued },
                    "expires_at": i.expires_at,
                    "expires_in_secs": i.expires_in.map(|d| d.as_secs()),
                    "delay_until": i.delay_until,
                    "note": i.note,
                    "value": i.value,
                })
            })
            .collect();
        out.json(&serde_json::json!({
            "dry_run": true,
            "refused": refused,
            "imported": report.imported,
            "rejected": report.rejected,
            "columns": parsed.columns,
            "sample": sample,
        }))?;
        return if refused { Err(failure()) } else { Ok(()) };
    }
    say!(
        "dry run of {} into '{}': nothing was written",
        a.file.display(),
        a.queue
    );
    say!("\ncolumns:");
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter()
                .map(|c| text::line(c).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match &parsed.columns {
        Some(c) if c.value.is_empty() => {
            say!("  item fields      {}", list(&c.reserved));
            say!("  the value        the 'value' column, as written");
        }
        Some(c) => {
            say!(
                "  item fields      {}   (reserved names, exact lowercase)",
                list(&c.reserved)
            );
            say!(
                "  into the value   {}   (a JSON object: these keys, this order, each cell's text)",
                list(&c.value)
            );
        }
        None => {
            say!("  JSON Lines: fields spelt exactly name, value, priority, key, expires_at, expires_in, delay_until, notes, status set the item;");
            say!("  a line without a value field is itself the value, as written");
        }
    }
    for (what, col) in [("key ", &a.key_column), ("name", &a.name_column)] {
        if let Some(c) = col {
            say!(
                "  {what}             from '{}' (it stays in the value)",
                text::line(c).into_owned()
            );
        }
    }
    if !sample.is_empty() {
        say!("\nfirst rows as they would be stored:");
        for r in &sample {
            let i = &r.item;
            let opt = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| text::line(s).into_owned())
                    .unwrap_or_else(|| "-".into())
            };
            say!(
                "  line {}: key {}, name {}, priority {}, {}",
                r.line,
                opt(&i.key),
                opt(&i.name),
                i.priority,
                if i.hold { "on-hold" } else { "queued" },
            );
            say!("    value {}", text::line(&i.value));
        }
    }
    say!();
    if refused {
        return Err(failure());
    }
    say!(
        "would import {} into '{}'",
        output::count(report.imported, "item"),
        a.queue
    );
    if !report.rejected.is_empty() {
        tell!("{}", text::import_failure("would skip", &report.rejected));
    }
    Ok(())
}
