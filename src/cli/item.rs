//! `workq item …`, `workq import`, `workq groups`, `workq undo`: items and the human side.

use super::output::{self, cell, opt_time, status_of, thousands, Failure, Out};
use super::{os_user, FilterArgs, GroupsArgs, ImportArgs, ItemCmd, UndoArgs};
use crate::backend::Backend;
use crate::import::{self, Format};
use crate::model::{self, *};
use crate::rules::{parse_duration, parse_time};
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
    /// Items by id; or select them with --queue and --status.
    pub ids: Vec<String>,
    /// Bulk: act on every item of this queue matching the filter (needs --status).
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
    /// Apply a bulk action without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
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

pub fn filter(queue: Option<String>, f: &FilterArgs) -> Result<Filter, Failure> {
    Ok(Filter {
        queue,
        statuses: f
            .status
            .as_deref()
            .map(|s| s.parse().map_err(bad("--status")))
            .transpose()?
            .into_iter()
            .collect(),
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
        signature: None,
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
    // Re-indented token by token: keys, their order and number text as stored.
    match crate::json_text::pretty(&i.value) {
        Some(p) => println!("{p}"),
        None => println!("{}", i.value),
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
            for c in &h.changes {
                note = format!("{note} {}", c.summary());
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
    let bulk = a.queue.is_some() || a.filter.status.is_some();
    let target = match (a.ids.is_empty(), bulk) {
        (false, true) => {
            return Err(Failure::invalid(
                "give item ids or --queue/--status, not both",
            ))
        }
        (true, false) => {
            return Err(Failure::invalid(format!(
            "name the items: `workq item {cmd} ID...` or `workq item {cmd} --queue Q --status S`"
        )))
        }
        (false, false) => Target::Ids(a.ids.clone()),
        (true, true) => {
            if a.queue.is_none() || a.filter.status.is_none() {
                return Err(Failure::invalid(
                    "a bulk action needs both --queue and --status",
                ));
            }
            Target::Filter(filter(a.queue.clone(), &a.filter)?)
        }
    };
    if matches!(target, Target::Filter(_)) {
        let p = store.preview(target.clone(), 5).await?;
        if p.count == 0 {
            return Err(Failure::invalid("no items match; nothing changed"));
        }
        if !a.yes {
            if out.json || !std::io::stdin().is_terminal() {
                return Err(Failure::invalid(format!(
                    "this would {verb} {} items; add --yes to apply",
                    thousands(p.count)
                )));
            }
            eprintln!("this will {verb} {} items, such as:", thousands(p.count));
            for i in &p.sample {
                eprintln!(
                    "  {}  {}  {}  {}",
                    i.id,
                    status_of(i),
                    cell(i.name.as_deref().unwrap_or("-"), 24),
                    cell(i.notes.last().map(|n| n.text.as_str()).unwrap_or(""), 50)
                );
            }
            eprint!("apply? [y/N] ");
            std::io::stderr().flush().ok();
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).ok();
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                return Err(Failure::invalid("cancelled; nothing changed"));
            }
        }
    }
    let r = store
        .act(ActionRequest {
            target,
            action,
            note: a.note,
            actor: format!("user:{}", os_user()),
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
                    cell(
                        if g.signature.is_empty() {
                            "(no note)"
                        } else {
                            &g.signature
                        },
                        60,
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
        .undo(a.action_id, &format!("user:{}", os_user()))
        .await?;
    if out.json {
        out.json(&r);
    } else {
        println!(
            "undid action {}: {} item{} restored",
            r.action_id,
            thousands(r.restored),
            if r.restored == 1 { "" } else { "s" }
        );
    }
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
    };
    let parser = tokio::task::spawn_blocking(move || {
        import::parse(&path, format, &popts, tx, &|b| pbar.set_position(b))
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
        Failure::invalid(model::import_failure(
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
        }));
        return if refused { Err(failure()) } else { Ok(()) };
    }
    println!(
        "dry run of {} into '{}': nothing was written",
        a.file.display(),
        a.queue
    );
    println!("\ncolumns:");
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(|c| shown(c)).collect::<Vec<_>>().join(", ")
        }
    };
    match &parsed.columns {
        Some(c) if c.value.is_empty() => {
            println!("  item fields      {}", list(&c.reserved));
            println!("  the value        the 'value' column, as written");
        }
        Some(c) => {
            println!(
                "  item fields      {}   (reserved names, exact lowercase)",
                list(&c.reserved)
            );
            println!(
                "  into the value   {}   (a JSON object: these keys, this order, each cell's text)",
                list(&c.value)
            );
        }
        None => {
            println!("  JSON Lines: fields spelt exactly name, value, priority, key, expires_at, expires_in, delay_until, notes, status set the item;");
            println!("  a line without a value field is itself the value, as written");
        }
    }
    for (what, col) in [("key ", &a.key_column), ("name", &a.name_column)] {
        if let Some(c) = col {
            println!(
                "  {what}             from '{}' (it stays in the value)",
                shown(c)
            );
        }
    }
    if !sample.is_empty() {
        println!("\nfirst rows as they would be stored:");
        for r in &sample {
            let i = &r.item;
            let opt = |v: &Option<String>| v.as_deref().map(shown).unwrap_or_else(|| "-".into());
            println!(
                "  line {}: key {}, name {}, priority {}, {}",
                r.line,
                opt(&i.key),
                opt(&i.name),
                i.priority,
                if i.hold { "on-hold" } else { "queued" },
            );
            println!("    value {}", shown(&i.value));
        }
    }
    println!();
    if refused {
        return Err(failure());
    }
    println!(
        "would import {} into '{}'",
        output::count(report.imported, "item"),
        a.queue
    );
    if !report.rejected.is_empty() {
        eprintln!("{}", model::import_failure("would skip", &report.rejected));
    }
    Ok(())
}

/// Text from a file, safe to print: control characters (escape sequences, line ends)
/// are shown escaped, not sent to the terminal.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
