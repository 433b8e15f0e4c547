//! `workq dequeue | complete | fail | heartbeat`: the worker's side, for scripts.

use super::output::{self, say, tell, Failure, Out};
use super::{os_user, CompleteArgs, DequeueArgs, FailArgs, FinishArgs, HeartbeatArgs};
use crate::backend::{Backend, Error};
use crate::model::*;
use crate::rules::{self, parse_duration};
use crate::text;
use std::time::Duration;

/// `dequeue --json` without `--count`: one lease, or the nulls and why nothing was taken.
#[derive(serde::Serialize)]
struct OneLease<'a> {
    lease: Option<&'a str>,
    #[serde(with = "crate::model::opt_time_ms")]
    lease_until: Option<Time>,
    item: Option<&'a Item>,
    why_empty: Option<&'a WhyEmpty>,
}

pub async fn dequeue(store: &dyn Backend, a: DequeueArgs, out: &Out) -> Result<(), Failure> {
    if a.count == Some(0) {
        return Err(Failure::invalid("--count must be at least 1"));
    }
    let wait = a
        .wait
        .as_deref()
        .map(|w| parse_duration(w).map_err(|e| Failure::invalid(format!("--wait: {e}"))))
        .transpose()?
        .unwrap_or(Duration::ZERO);
    // With no stdout the tokens could reach nobody: take nothing rather than hand back.
    output::check_stdout().map_err(|f| Failure {
        message: "stdout is closed, so the lease tokens would reach nobody: nothing was taken"
            .into(),
        ..f
    })?;
    let worker = a.worker.unwrap_or_else(|| format!("cli:{}", os_user()));
    let got = store
        .dequeue(DequeueRequest {
            queues: a.queues,
            worker: worker.clone(),
            count: a.count.unwrap_or(1),
            wait,
        })
        .await?;
    // Written at once, after rendering: when it cannot be written, nobody has the tokens,
    // so the items go straight back instead of sitting in processing until their leases
    // run out.
    if let Err(f) = output::emit(&render(&got, a.count.is_some(), out.json)) {
        hand_back(store, &got.leases, &worker).await;
        return Err(f);
    }
    if let (Some(why), false) = (&got.why_empty, out.json) {
        tell!("nothing to take: {}", text::escape(&why.message, true));
    }
    Ok(())
}

fn render(got: &Dequeued, list: bool, json: bool) -> String {
    if json {
        let mut s = if list {
            serde_json::to_string_pretty(got)
        } else {
            let l = got.leases.first();
            serde_json::to_string_pretty(&OneLease {
                lease: l.map(|l| l.lease.as_str()),
                lease_until: l.map(|l| l.lease_until),
                item: l.map(|l| &l.item),
                why_empty: got.why_empty.as_ref(),
            })
        }
        .expect("serializable");
        s.push('\n');
        return s;
    }
    let mut s = String::new();
    for l in &got.leases {
        s.push_str(&format!("{} {}\n", l.item.id, l.lease));
        s.push_str(&format!(
            "  queue {}  name {}  priority {}  lease until {}\n",
            text::line(&l.item.queue),
            text::line(l.item.name.as_deref().unwrap_or("-")),
            l.item.priority,
            output::time(l.lease_until)
        ));
        s.push_str(&format!("  value {}\n", text::line(&l.item.value)));
    }
    s
}

/// Gives back leases whose tokens never reached anyone; says so when that fails too (the
/// leases then time out as usual).
async fn hand_back(store: &dyn Backend, leases: &[Lease], worker: &str) {
    if leases.is_empty() {
        return;
    }
    let back = leases
        .iter()
        .map(|l| HandBack {
            id: l.item.id.clone(),
            lease: l.lease.clone(),
        })
        .collect();
    let note = "handed back unworked: the dequeue's output could not be written";
    match store.hand_back(back, worker, note).await {
        Ok(results) => {
            for (l, r) in leases.iter().zip(results) {
                if let Err(e) = r {
                    tell!("item {} was not handed back: {e}", l.item.id);
                }
            }
        }
        Err(e) => tell!(
            "the {} leased could not be handed back ({e}); they time out after their lease",
            output::count(leases.len() as u64, "item")
        ),
    }
}

async fn report(store: &dyn Backend, o: Outcome, out: &Out) -> Result<(), Failure> {
    let postponed = o.retry_in.is_some();
    let mut r = store.finish(vec![o], &format!("cli:{}", os_user())).await?;
    let item = r.remove(0)?;
    if out.json {
        out.json(&item)?;
    } else {
        say!("{}", finished_text(&item, postponed));
    }
    Ok(())
}

/// Where an outcome left the item, for people.
fn finished_text(item: &Finished, postponed: bool) -> String {
    match (item.status, item.reason) {
        (Status::Queued, _) if postponed => format!("{}: postponed, queued again", item.id),
        (Status::Queued, _) => format!(
            "{}: failed, queued again for automatic retry {}",
            item.id, item.retry_count
        ),
        (Status::Exception, Some(r)) => format!("{}: exception ({r})", item.id),
        (s, _) => format!("{}: {s}", item.id),
    }
}

/// One line of `workq finish`'s input, as a bot writes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeLine {
    id: String,
    lease: String,
    outcome: OutcomeKind,
    reason: Option<String>,
    note: Option<String>,
    /// A duration as the CLI writes it (`10m`): postpone an IT exception.
    retry_in: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum OutcomeKind {
    Processed,
    Exception,
}

/// Reads one line of outcomes; what is wrong with it otherwise.
fn outcome_line(line: &str) -> Result<Outcome, String> {
    let l: OutcomeLine = serde_json::from_str(line).map_err(|e| {
        // serde counts within the line: the line number is ours, the column is its.
        let m = e.to_string();
        match m.rsplit_once(" at line ") {
            Some((what, _)) => format!("{what} (column {})", e.column()),
            None => m,
        }
    })?;
    if l.id.is_empty() {
        return Err("\"id\" is empty".into());
    }
    if l.lease.is_empty() {
        return Err("\"lease\" is empty".into());
    }
    let reason = match (l.outcome, l.reason) {
        (OutcomeKind::Processed, None) => None,
        (OutcomeKind::Processed, Some(_)) => {
            return Err("\"reason\" is for an exception, not a processed outcome".into())
        }
        (OutcomeKind::Exception, None) => {
            return Err("an exception needs a \"reason\": generic, it or business".into())
        }
        (OutcomeKind::Exception, Some(r)) => match r.parse::<Reason>() {
            Ok(Reason::Timeout) => {
                return Err(
                    "reason timeout is for leases that ran out; use generic, it or business".into(),
                )
            }
            Ok(r) => Some(r),
            Err(_) => {
                return Err(format!(
                    "unknown reason '{r}' (expected generic, it or business)"
                ))
            }
        },
    };
    let retry_in = l
        .retry_in
        .map(|d| {
            let d = parse_duration(&d).map_err(|e| format!("\"retry_in\": {e}"))?;
            rules::check_retry_in(reason, d)?;
            Ok::<_, String>(d)
        })
        .transpose()?;
    Ok(Outcome {
        id: l.id,
        lease: l.lease,
        reason,
        note: l.note,
        retry_in,
    })
}

/// Every outcome in the input, or every malformed line with its number (blank lines are
/// skipped, so a trailing newline or a spacer is no error).
fn outcome_lines(input: &str) -> Result<Vec<Outcome>, Vec<(usize, String)>> {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match outcome_line(line) {
            Ok(o) => good.push(o),
            Err(e) => bad.push((n + 1, e)),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(bad)
    }
}

pub async fn finish(store: &dyn Backend, a: FinishArgs, out: &Out) -> Result<(), Failure> {
    let (input, from) = match a.file.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| Failure::invalid(format!("cannot read stdin: {e}")))?;
            (s, "stdin".to_string())
        }
        Some(path) => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| Failure::invalid(format!("cannot read {path}: {e}")))?;
            (s, path.to_string())
        }
    };
    let outcomes = match outcome_lines(&input) {
        Ok(o) => o,
        Err(bad) => {
            // Every bad line is said, so one run fixes them all; the first ends the command.
            for (n, e) in &bad[1..] {
                tell!(
                    "error: {}",
                    text::escape(&format!("{from} line {n}: {e}"), true)
                );
            }
            let (n, e) = &bad[0];
            return Err(Failure::invalid(format!(
                "{from} line {n}: {e}; nothing was applied ({} malformed)",
                output::count(bad.len() as u64, "line")
            )));
        }
    };
    if outcomes.is_empty() {
        return Err(Failure::invalid(format!(
            "{from} has no outcomes: nothing was applied"
        )));
    }
    let ids: Vec<(String, bool)> = outcomes
        .iter()
        .map(|o| (o.id.clone(), o.retry_in.is_some()))
        .collect();
    let results = store
        .finish(outcomes, &format!("cli:{}", os_user()))
        .await?;
    // One line an outcome, in input order; each refused one fails the command at the end.
    let mut refused = 0u64;
    for ((id, postponed), r) in ids.iter().zip(results) {
        match r {
            Ok(item) if out.json => {
                say!("{}", serde_json::to_string(&item).expect("serializable"))
            }
            Ok(item) => say!("{}", finished_text(&item, *postponed)),
            Err(e) => {
                refused += 1;
                if out.json {
                    say!("{}", serde_json::json!({ "id": id, "error": e }))
                } else {
                    say!("{}: error: {}", text::line(id), text::line(&e.to_string()))
                }
            }
        }
    }
    if refused > 0 {
        return Err(Failure::invalid(format!(
            "{} of {} refused (the others were applied)",
            output::count(refused, "outcome"),
            ids.len()
        )));
    }
    Ok(())
}

pub async fn complete(store: &dyn Backend, a: CompleteArgs, out: &Out) -> Result<(), Failure> {
    let o = Outcome {
        id: a.id,
        lease: a.lease,
        reason: None,
        note: a.note,
        retry_in: None,
    };
    report(store, o, out).await
}

pub async fn fail(store: &dyn Backend, a: FailArgs, out: &Out) -> Result<(), Failure> {
    // Timeout is a reason but not one a worker may give: do not offer it.
    let reason: Reason = a.reason.parse().map_err(|_| {
        Failure::invalid(format!(
            "--reason: unknown reason '{}' (expected generic, it or business)",
            a.reason
        ))
    })?;
    if reason == Reason::Timeout {
        return Err(Failure::invalid(
            "--reason: timeout is for leases that ran out; use generic, it or business",
        ));
    }
    let retry_in = a
        .retry_in
        .as_deref()
        .map(|d| {
            let d = parse_duration(d).map_err(|e| Failure::invalid(format!("--retry-in: {e}")))?;
            rules::check_retry_in(Some(reason), d)
                .map_err(|e| Failure::invalid(format!("--retry-in: {e}")))?;
            Ok::<_, Failure>(d)
        })
        .transpose()?;
    let o = Outcome {
        id: a.id,
        lease: a.lease,
        reason: Some(reason),
        note: a.note,
        retry_in,
    };
    report(store, o, out).await
}

pub async fn heartbeat(store: &dyn Backend, a: HeartbeatArgs, out: &Out) -> Result<(), Failure> {
    let leases = held(a)?;
    let one = leases.len() == 1;
    let ids: Vec<String> = leases.iter().map(|l| l.id.clone()).collect();
    let mut results = store.heartbeat(leases).await?;
    if one {
        let until = results.remove(0)?;
        if out.json {
            out.json(&serde_json::json!({
                "id": ids[0],
                "lease_until": until.format(time_ms::FORMAT).to_string()
            }))?;
        } else {
            say!("{}: lease extended until {}", ids[0], output::time(until));
        }
        return Ok(());
    }
    // Several: each extended one is said; each refused one too, and the command fails.
    let mut shown = Vec::with_capacity(ids.len());
    let mut refused: Option<Error> = None;
    for (id, r) in ids.iter().zip(results) {
        match r {
            Ok(until) => {
                if out.json {
                    let at = until.format(time_ms::FORMAT).to_string();
                    shown.push(serde_json::json!({ "id": id, "lease_until": at }));
                } else {
                    say!("{}: lease extended until {}", id, output::time(until));
                }
            }
            Err(e) => {
                if out.json {
                    shown.push(serde_json::json!({ "id": id, "error": e }));
                } else if refused.is_some() {
                    // The first refusal is the command's failure, printed as it ends.
                    tell!("error: {}", text::escape(&e.to_string(), true));
                }
                refused.get_or_insert(e);
            }
        }
    }
    if out.json {
        out.json(&shown)?;
    }
    match refused {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// The leases named on the command line: `ID --lease TOKEN`, or `ID:TOKEN` pairs.
fn held(a: HeartbeatArgs) -> Result<Vec<LeaseRef>, Failure> {
    if let Some(lease) = a.lease {
        return match <[String; 1]>::try_from(a.ids) {
            Ok([id]) => Ok(vec![LeaseRef { id, lease }]),
            Err(_) => Err(Failure::usage(
                "--lease names the lease of one item; for several, give ID:TOKEN pairs without --lease",
            )),
        };
    }
    a.ids
        .into_iter()
        .map(|pair| match pair.rsplit_once(':') {
            Some((id, lease)) if !id.is_empty() && !lease.is_empty() => Ok(LeaseRef {
                id: id.to_string(),
                lease: lease.to_string(),
            }),
            _ => Err(Failure::usage(format!(
                "'{pair}': expected ID:TOKEN (or one ID with --lease TOKEN)"
            ))),
        })
        .collect()
}

/// `workq workers`: who took items lately (agents are `NAME@host:pid`), newest first.
pub async fn workers(store: &dyn Backend, out: &Out) -> Result<(), Failure> {
    let ws = store.workers().await?;
    if out.json {
        return out.json(&ws);
    }
    if ws.is_empty() {
        say!("no workers seen yet (`workq work --queue Q -- COMMAND` starts an agent)");
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = ws
        .iter()
        .map(|w| {
            let a = w.agent.as_ref();
            let queues: Vec<&str> = match a {
                Some(a) => a.queues.iter().map(String::as_str).collect(),
                None => w.queues.iter().map(|q| q.queue.as_str()).collect(),
            };
            vec![
                text::cell(&w.name, 60),
                w.state.as_str().into(),
                a.map_or("-".into(), |a| text::cell(&a.host, 30)),
                text::cell(&queues.join(","), 40),
                a.map_or("-".into(), |a| a.concurrency.to_string()),
                text::thousands(w.holding),
                text::thousands(w.processed),
                text::thousands(w.failed),
                a.map_or("-".into(), |a| text::thousands(a.per_minute)),
                a.map_or("-".into(), |a| text::cell(&a.version, 20)),
                text::relative(now, w.last_seen),
            ]
        })
        .collect();
    output::table(
        &[
            text::Col::left("WORKER"),
            text::Col::left("STATE"),
            text::Col::left("HOST"),
            text::Col::left("QUEUES"),
            text::Col::right("CONC"),
            text::Col::right("HOLDING"),
            text::Col::right("PROCESSED"),
            text::Col::right("FAILED"),
            text::Col::right("PER MIN"),
            text::Col::left("VERSION"),
            text::Col::left("LAST SEEN"),
        ],
        &rows,
    )
}
