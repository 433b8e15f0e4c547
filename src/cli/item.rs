//! `workq item …`, `workq import`, `workq groups`, `workq undo`: items and the human side.

use super::output::{self, cell, opt_time, status_of, thousands, Failure, Out};
use super::{os_user, ActionsArgs, FilterArgs, GroupsArgs, ImportArgs, ItemCmd, UndoArgs};
use crate::backend::Backend;
use crate::import::{self, Format};
use crate::model::*;
use crate::rules::{parse_duration, parse_statuses, parse_time, TYPE_THE_COUNT_OVER};
use clap::Args;
use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};

#[derive(Args, Debug)]
pub struct AddArgs {
    pub queue: String,
    /// The input: text or JSON, up to 1 MiB; `-` reads it from stdin.
    #[arg(long)]
    pub value: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Reference unique within the queue; a second add with the same key is refused.
    #[arg(long)]
    pub key: Option<String>,
    /// high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: String,
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    #[arg(long, value_name = "DUR")]
    pub expires_in: Option<String>,
    /// Not handed out before this time.
    #[arg(long, value_name = "TIME")]
    pub delay_until: Option<String>,
    /// Create it on hold, for review.
    #[arg(long)]
    pub hold: bool,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    pub queue: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
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
    #[arg(long)]
    pub note: Option<String>,
    /// requeue: not handed out before this long from now.
    #[arg(long, value_name = "DUR")]
    pub delay: Option<String>,
    /// requeue: the item's new value (`-` reads stdin); the history keeps the old one.
    #[arg(long)]
    pub value: Option<String>,
    /// priority: the new priority (high, normal, low).
    #[arg(long, value_name = "PRIORITY")]
    pub to: Option<String>,
    /// extend: the new expiry time.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["expires_in", "never"])]
    pub expires_at: Option<String>,
    /// extend: expire this long from now.
    #[arg(long, value_name = "DUR", conflicts_with = "never")]
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
    Ok(Filter {
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
    })
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
                    Some(chrono::Utc::now() + parse_duration(d).map_err(bad("--expires-in"))?)
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
        out.json(&item);
    } else {
        println!("{}", item.id);
    }
    Ok(())
}

async fn ls(store: &dyn Backend, a: LsArgs, out: &Out) -> Result<(), Failure> {
    let f = filter(a.queue.clone(), &a.filter)?;
    let page = store
        .items(
            f,
            PageRequest {
                offset: a.offset,
                limit: a.limit,
                ..Default::default()
            },
        )
        .await?;
    if out.json {
        out.json(&page.items);
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|i| {
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
        })
        .collect();
    output::table(
        &[
            "ID",
            "QUEUE",
            "NAME",
            "STATUS",
            "PRIORITY",
            "AGE",
            "SLA",
            "LATEST NOTE",
        ],
        &rows,
    );
    let shown = page.items.len() as u64;
    let total = page.total.unwrap_or_default();
    if a.offset > 0 || shown < total || !page.exact {
        println!(
            "{}–{} of {}{}",
            thousands(a.offset + shown.min(1)),
            thousands(a.offset + shown),
            thousands(total),
            if page.exact { "" } else { "+" }
        );
    }
    Ok(())
}

async fn show(store: &dyn Backend, id: &str, out: &Out) -> Result<(), Failure> {
    let d = store.item(id).await?;
    if out.json {
        out.json(&d);
        return Ok(());
    }
    let i = &d.item;
    let fields: Vec<(&str, String)> = vec![
        ("id", i.id.clone()),
        ("queue", i.queue.clone()),
        ("name", i.name.clone().unwrap_or_else(|| "-".into())),
        ("key", i.key.clone().unwrap_or_else(|| "-".into())),
        ("status", status_of(i)),
        ("priority", i.priority.to_string()),
        (
            "sla",
            i.sla.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        ),
        ("retries", i.retry_count.to_string()),
        ("requeues", i.requeue_count.to_string()),
        ("enqueued", output::time(i.enqueued_at)),
        ("started", opt_time(i.started_at)),
        ("finished", opt_time(i.finished_at)),
        ("expires", opt_time(i.expires_at)),
        ("delayed until", opt_time(i.delay_until)),
        ("worker", i.worker.clone().unwrap_or_else(|| "-".into())),
    ];
    for (k, v) in fields {
        println!("{k:<14} {v}");
    }
    println!("\nvalue:");
    match serde_json::from_str::<serde_json::Value>(&i.value) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            println!("{}", serde_json::to_string_pretty(&v).expect("json"))
        }
        _ => println!("{}", i.value),
    }
    if !i.notes.is_empty() {
        println!("\nnotes:");
        for n in &i.notes {
            println!("  {}  {}  {}", output::time(n.at), n.by, n.text);
        }
    }
    println!("\nhistory:");
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
    output::table(&["WHEN", "WHO", "ACTION", "CHANGE", "NOTE"], &rows);
    Ok(())
}

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
    let by_filter = matches!(target, Target::Filter(_));
    let skip_refused = by_filter && !a.strict;
    let many = match &target {
        Target::Ids(ids) => ids.len() as u64 > TYPE_THE_COUNT_OVER,
        Target::Filter(_) => true,
    };
    if many {
        let p = store
            .preview(target.clone(), Some(action.clone()), 5)
            .await?;
        if p.count == 0 {
            return Err(Failure::invalid("no items match; nothing changed"));
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
            return Err(Failure {
                kind: "transition",
                message: m,
                code: 1,
            });
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
        out.json(&r);
    } else {
        println!(
            "{}: {} item{} (action {}; undo with `workq undo {}`)",
            r.verb,
            thousands(r.touched),
            if r.touched == 1 { "" } else { "s" },
            r.action_id,
            r.action_id
        );
        let n: u64 = r.skipped.iter().map(|t| t.count).sum();
        if n > 0 {
            println!("skipped {} the rules refuse:", thousands(n));
            for t in &r.skipped {
                println!("  {} × {}", thousands(t.count), t.why);
            }
        }
    }
    Ok(())
}

/// Shows what a bulk action will do and asks: y/N, or past `TYPE_THE_COUNT_OVER` items the
/// count itself. Without a terminal there is nobody to ask: `--yes` is the answer.
fn confirm(p: &Preview, verb: &str, out: &Out) -> Result<(), Failure> {
    let refused: u64 = p.skipped.iter().map(|t| t.count).sum();
    let skips = if refused > 0 {
        format!(", skipping {} the rules refuse", thousands(refused))
    } else {
        String::new()
    };
    if out.json || !std::io::stdin().is_terminal() {
        return Err(Failure::invalid(format!(
            "this would {verb} {} items{skips}; no terminal to confirm at: add --yes to apply",
            thousands(p.changes)
        )));
    }
    eprintln!(
        "this will {verb} {} of {} matching items, such as:",
        thousands(p.changes),
        thousands(p.count)
    );
    for i in &p.sample {
        eprintln!(
            "  {}  {}  {}  {}",
            i.id,
            status_of(i),
            cell(i.name.as_deref().unwrap_or("-"), 24),
            cell(i.notes.last().map(|n| n.text.as_str()).unwrap_or(""), 50)
        );
    }
    if refused > 0 {
        eprintln!("it skips {} the rules refuse:", thousands(refused));
        for t in &p.skipped {
            eprintln!("  {} × {}", thousands(t.count), t.why);
        }
    }
    for w in &p.warnings {
        eprintln!("note: {w}");
    }
    let big = p.changes > TYPE_THE_COUNT_OVER;
    if big {
        eprint!(
            "that is over {}: type the count ({}) to apply: ",
            thousands(TYPE_THE_COUNT_OVER),
            p.changes
        );
    } else {
        eprint!("apply? [y/N] ");
    }
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok();
    let answer = answer.trim();
    let yes = if big {
        answer.replace([',', '_'], "") == p.changes.to_string()
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
        out.json(&gs);
    } else if gs.is_empty() {
        println!("no exceptions");
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
        output::table(&["COUNT", "QUEUE", "REASON", "SIGNATURE", "EXAMPLE"], &rows);
    }
    Ok(())
}

pub async fn undo(store: &dyn Backend, a: UndoArgs, out: &Out) -> Result<(), Failure> {
    let r = store
        .undo(UndoRequest {
            action_id: a.action_id,
            actor: format!("user:{}", os_user()),
            strict: a.strict,
            dry_run: a.dry_run,
        })
        .await?;
    if out.json {
        out.json(&r);
        return Ok(());
    }
    let what = if r.dry_run { "undo of" } else { "undid" };
    println!(
        "{what} action {} ({}): {}",
        r.action_id,
        r.verb,
        r.summary()
    );
    const SHOWN: usize = 20;
    for k in r.kept_items.iter().take(SHOWN) {
        println!("  kept {}: {}", k.id, k.why);
    }
    let kept = r.total - r.restored;
    if kept as usize > SHOWN {
        println!(
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
        out.json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("no actions yet");
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
            "ID", "WHEN", "WHO", "ACTION", "ITEMS", "QUEUES", "NOTE", "UNDONE",
        ],
        &rows,
    );
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
    let parser = tokio::task::spawn_blocking(move || {
        import::parse(&path, format, tx, &|b| pbar.set_position(b))
    });
    let opts = ImportOptions {
        skip_bad: a.skip_bad,
    };
    let stored = store
        .import(&a.queue, opts, rx, &format!("user:{}", os_user()))
        .await;
    let parsed = parser
        .await
        .map_err(|e| Failure::invalid(format!("import reader failed: {e}")))?;
    bar.finish_and_clear();
    // A file-level problem (unreadable, bad header) says more than the empty import it caused.
    parsed.map_err(|e| Failure::invalid(format!("{}: {e}", a.file.display())))?;
    let report = stored?;
    let mut written = None;
    if let Some(dest) = &a.rejects {
        let lines: HashSet<u64> = report.rejected.iter().map(|r| r.line).collect();
        written =
            Some(import::write_rejects(&a.file, format, &lines, dest).map_err(Failure::invalid)?);
    }
    if out.json {
        out.json(&report);
        return Ok(());
    }
    println!(
        "imported {} into '{}'",
        output::count(report.imported, "item"),
        a.queue
    );
    if !report.rejected.is_empty() {
        eprintln!(
            "skipped {}:",
            output::count(report.rejected.len() as u64, "bad row")
        );
        for r in report.rejected.iter().take(20) {
            eprintln!("  {r}");
        }
        if report.rejected.len() > 20 {
            eprintln!("  … and {} more", report.rejected.len() - 20);
        }
        if let (Some(dest), Some(n)) = (&a.rejects, written) {
            eprintln!(
                "wrote {} to {}",
                output::count(n, "bad row"),
                dest.display()
            );
        }
    }
    Ok(())
}
