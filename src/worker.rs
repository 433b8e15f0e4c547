//! `workq work`: the worker agent. Takes items from queues, runs a command for each (the
//! value on stdin, the item in its environment, in a process group of its own), heartbeats
//! every held lease in one call, and reports what the command's exit code says. Only the
//! `Backend` trait: a local file and a remote server work alike.

use crate::backend::{Backend, Error};
use crate::model::*;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How much of a command's stdout (processed) or stderr (exception) becomes the note.
pub const TAIL: usize = 64 * 1024;
/// How long a dequeue waits for work when nothing is ready (long poll).
const POLL: Duration = Duration::from_secs(1);

pub struct Options {
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub timeout: Option<Duration>,
    pub run_once: bool,
    /// How far ahead to look for delayed items (`--prefetch`).
    pub prefetch: Option<Duration>,
    pub name: String,
    pub grace: Duration,
    pub command: Vec<String>,
    pub exits: ExitMap,
}

/// Which exit codes mean which exception (0 is always processed; any other code generic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitMap {
    pub business: Vec<i32>,
    pub it: Vec<i32>,
}

impl Default for ExitMap {
    fn default() -> Self {
        ExitMap {
            business: vec![2],
            it: vec![3],
        }
    }
}

impl ExitMap {
    /// Refuses a mapping that could not be meant: 0 as an exception, one code for both.
    pub fn check(&self) -> Result<(), String> {
        if let Some(c) = self
            .business
            .iter()
            .chain(&self.it)
            .find(|c| !(1..=255).contains(*c))
        {
            return Err(format!(
                "exit code {c}: give codes 1 to 255 (0 always means processed)"
            ));
        }
        if let Some(c) = self.business.iter().find(|c| self.it.contains(c)) {
            return Err(format!(
                "exit code {c} is given to both --business-exit and --it-exit"
            ));
        }
        Ok(())
    }
}

/// The worker id: `NAME@host:pid`, unique per running agent.
pub fn worker_id(name: &str) -> String {
    format!("{name}@{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is ours and its length is given; gethostname NUL-terminates or
    // truncates within it.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

/// What the agent tells the engine about itself, and the finishes of the last minute.
struct Report {
    info: AgentInfo,
    finished: std::collections::VecDeque<Instant>,
}

impl Report {
    fn finished_one(&mut self) {
        self.finished.push_back(Instant::now());
    }

    /// The report as of now: the finishes older than a minute dropped.
    fn now(&mut self, state: WorkerState) -> AgentInfo {
        let minute_ago = Instant::now() - Duration::from_secs(60);
        while self.finished.front().is_some_and(|t| *t < minute_ago) {
            self.finished.pop_front();
        }
        self.info.state = state;
        self.info.per_minute = self.finished.len() as u64;
        self.info.clone()
    }
}

/// Registers in the background: the loop never waits on it, and a failure is only said
/// (the next registration, seconds later, tries again).
fn register(backend: &Arc<dyn Backend>, worker: &str, info: AgentInfo) {
    let (b, w) = (Arc::clone(backend), worker.to_string());
    tokio::spawn(async move {
        if let Err(e) = b.register_worker(&w, info).await {
            eprintln!(
                "workq work: registering failed: {}",
                one_line(&e.to_string())
            );
        }
    });
}

/// How a command's run ended.
enum End {
    Exit(i32),
    /// Killed by a signal it was not sent by us.
    Signal(i32),
    TimedOut,
    /// We killed it (its lease was refused, or the agent shuts down).
    Killed,
    SpawnFailed(String),
}

struct Ran {
    id: String,
    /// From spawn to exit.
    took: Duration,
    end: End,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// How long commands run, to decide whether to take items ahead. With commands that end
/// within `FAST`, the round trip to take the next item is a large share of each item's
/// time: a slot's worth of items (at least 4) is taken ahead, so a freed slot starts its
/// next command at once. An item taken ahead waits a few such commands at most, well under
/// a second. With slower commands (or before any has ended), only what can start now is
/// taken, so no item waits in an agent's hand while another agent sits idle.
#[derive(Default)]
struct Pace {
    /// Moving average of run times.
    average: Option<Duration>,
}

const FAST: Duration = Duration::from_millis(100);

impl Pace {
    fn ran(&mut self, took: Duration) {
        self.average = Some(match self.average {
            None => took,
            Some(a) => (a * 7 + took) / 8,
        });
    }

    fn ahead(&self, concurrency: u32) -> usize {
        match self.average {
            Some(a) if a < FAST => (concurrency as usize).max(4),
            _ => 0,
        }
    }
}

/// What becomes of a held item whose command we killed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The lease was refused on heartbeat: someone else owns the item now; report nothing.
    Refused,
    /// Shutting down: give the lease back.
    HandBack,
}

struct Held {
    lease: LeaseRef,
    kill: Option<oneshot::Sender<()>>,
    fate: Option<Fate>,
}

/// Runs the agent until it is told to stop (or, with `run_once`, until what was ready is
/// done). The exit code: 1 when `run_once` saw an item fail, else 0.
pub async fn run(backend: Arc<dyn Backend>, opts: Options) -> Result<i32, String> {
    if opts.command.is_empty() {
        return Err("give the command to run after `--`".into());
    }
    opts.exits.check()?;
    if opts.concurrency == 0 {
        return Err("--concurrency: give 1 or more".into());
    }
    if let Some(p) = opts.prefetch {
        crate::rules::check_upcoming(p.max(Duration::from_millis(1)), 1)
            .map_err(|(_, e)| format!("--prefetch: {e}"))?;
        if p.is_zero() {
            return Err("--prefetch: give more than 0 (or leave it out)".into());
        }
    }
    // Checked before anything is taken: a typo would otherwise turn every item into an
    // exception, one after the other.
    runnable(&opts.command[0])?;
    let worker = worker_id(&opts.name);
    ensure_queues(&*backend, &opts.queues).await?;
    let mut report = Report {
        info: AgentInfo {
            host: hostname(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            queues: opts.queues.clone(),
            concurrency: opts.concurrency,
            state: WorkerState::Running,
            per_minute: 0,
            started_at: chrono::Utc::now(),
        },
        finished: Default::default(),
    };
    eprintln!(
        "workq work: {} taking from {} ({} at a time)",
        one_line(&worker),
        one_line(&opts.queues.join(", ")),
        opts.concurrency
    );
    // The first registration is waited for: an engine that refuses it refuses the agent.
    backend
        .register_worker(&worker, report.now(WorkerState::Running))
        .await
        .map_err(|e| format!("cannot register with the engine: {e}"))?;
    let mut next_register = Instant::now() + crate::rules::REGISTER_EVERY;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;

    let command = Arc::new(opts.command.clone());
    let mut held: HashMap<String, Held> = HashMap::new();
    // Leases taken ahead, to start the moment a slot frees (see `Pace`).
    let mut ready: VecDeque<Lease> = VecDeque::new();
    let mut pace = Pace::default();
    let mut running: JoinSet<Ran> = JoinSet::new();
    // One report on its way at a time; what ends meanwhile waits for it and goes together.
    let mut reporting: JoinSet<Reported> = JoinSet::new();
    let mut unreported: Vec<Outcome> = vec![];
    let mut pending: Option<tokio::task::JoinHandle<crate::backend::Result<Dequeued>>> = None;
    let mut beat = Duration::from_secs(10);
    let mut next_beat = Instant::now() + beat;
    let mut retry_at: Option<Instant> = None;
    let mut exhausted = false;
    let mut draining = false;
    let mut drain_until: Option<Instant> = None;
    let mut failed = false;
    // With --prefetch: when the soonest delayed item of the queues becomes takeable.
    let mut due: Option<chrono::DateTime<chrono::Utc>> = None;

    loop {
        while held.len() < opts.concurrency as usize && !draining {
            let Some(l) = ready.pop_front() else { break };
            let (tx, rx) = oneshot::channel();
            held.insert(
                l.item.id.clone(),
                Held {
                    lease: l.held(),
                    kill: Some(tx),
                    fate: None,
                },
            );
            running.spawn(run_one(Arc::clone(&command), l, opts.timeout, rx));
        }
        let ahead = pace.ahead(opts.concurrency);
        let room = opts.concurrency as usize + ahead;
        let free = room.saturating_sub(held.len() + ready.len());
        // Taking ahead, the buffer is refilled half at a time (one call for several
        // items); a slot with nothing to start is always filled at once.
        let wanted = if ahead > 0 && held.len() + ready.len() >= opts.concurrency as usize {
            (ahead / 2).max(1)
        } else {
            1
        };
        let taking = !draining && !exhausted && free >= wanted && pending.is_none();
        if taking && retry_at.is_none_or(|t| Instant::now() >= t) {
            retry_at = None;
            let b = Arc::clone(&backend);
            let mut wait = if opts.run_once && due.is_none() {
                Duration::ZERO
            } else {
                POLL
            };
            // A poll never sleeps past the next item's time; one just due waits a moment
            // (a server's clock may run a little behind ours).
            if let Some(d) = due {
                let left = (d - chrono::Utc::now()).to_std().unwrap_or_default();
                wait = wait.min(left.max(Duration::from_millis(20)));
            }
            let req = DequeueRequest {
                queues: opts.queues.clone(),
                worker: worker.clone(),
                count: free as u32,
                wait,
            };
            // Spawned, never dropped midway: a dequeue cancelled after it committed would
            // strand its leases until they time out.
            pending = Some(tokio::spawn(async move { b.dequeue(req).await }));
        }
        if held.is_empty() && ready.is_empty() && pending.is_none() && (draining || exhausted) {
            break;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            got = async { pending.as_mut().unwrap().await }, if pending.is_some() => {
                pending = None;
                match got {
                    Ok(Ok(d)) => {
                        if let Some(ahead) = opts.prefetch {
                            if d.leases.len() < free {
                                due = soonest(&*backend, &opts.queues, ahead).await;
                            }
                        }
                        if d.leases.is_empty() && opts.run_once && due.is_none() {
                            exhausted = true;
                        }
                        let now = chrono::Utc::now();
                        for l in d.leases {
                            let left = (l.lease_until - now).to_std().unwrap_or_default();
                            beat = beat.min((left / 3).max(Duration::from_millis(200)));
                            next_beat = next_beat.min(Instant::now() + beat);
                            if draining {
                                hand_back(&*backend, vec![l.held()], &worker).await;
                                continue;
                            }
                            ready.push_back(l);
                        }
                    }
                    Ok(Err(e)) => {
                        eprintln!("workq work: dequeue failed: {}", one_line(&e.to_string()));
                        retry_at = Some(Instant::now() + Duration::from_secs(1));
                    }
                    Err(e) => return Err(format!("dequeue task: {e}")),
                }
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                // The commands that ended together are reported in one call, in the
                // background: the loop goes on taking work while the report lands.
                let mut outcomes = vec![];
                let mut next = Some(done);
                while let Some(done) = next {
                    let ran = done.map_err(|e| format!("command task: {e}"))?;
                    pace.ran(ran.took);
                    if let Some(h) = held.remove(&ran.id) {
                        match (h.fate, &ran.end) {
                            (Some(Fate::Refused), _) => {
                                eprintln!("workq work: item {}: lease refused on heartbeat; its command was killed, nothing reported", ran.id);
                            }
                            (Some(Fate::HandBack), End::Killed) => {
                                hand_back(&*backend, vec![h.lease], &worker).await;
                            }
                            _ => {
                                let (reason, note) = outcome(&ran, &opts.exits);
                                failed |= reason.is_some();
                                report.finished_one();
                                outcomes.push(Outcome { id: h.lease.id, lease: h.lease.lease, reason, note, retry_in: None });
                            }
                        }
                    }
                    next = running.try_join_next();
                }
                unreported.extend(outcomes);
                if reporting.is_empty() {
                    send_report(&mut reporting, &backend, &worker, &mut unreported);
                }
            }
            Some(done) = reporting.join_next(), if !reporting.is_empty() => {
                failed |= !reported(done.map_err(|e| format!("report task: {e}"))?);
                // What ended while that report was on its way goes in one call now.
                send_report(&mut reporting, &backend, &worker, &mut unreported);
            }
            _ = tokio::time::sleep_until(next_beat), if !held.is_empty() || !ready.is_empty() => {
                next_beat = Instant::now() + beat;
                let ids: Vec<String> = held.iter().filter(|(_, h)| h.fate.is_none()).map(|(k, _)| k.clone()).collect();
                let mut refs: Vec<LeaseRef> = ids.iter().map(|k| held[k].lease.clone()).collect();
                refs.extend(ready.iter().map(|l| l.held()));
                if refs.is_empty() { continue; }
                match backend.heartbeat(refs.clone()).await {
                    Ok(rs) => for (l, r) in refs.iter().zip(rs) {
                        if r.is_err() {
                            if let Some(h) = held.get_mut(&l.id) {
                                h.fate = Some(Fate::Refused);
                                if let Some(tx) = h.kill.take() { let _ = tx.send(()); }
                            } else {
                                // Taken ahead and not started: someone else owns it now.
                                ready.retain(|r| r.item.id != l.id);
                            }
                        }
                    },
                    Err(e) => eprintln!("workq work: heartbeat failed: {}", one_line(&e.to_string())),
                }
            }
            _ = tokio::time::sleep_until(next_register) => {
                next_register = Instant::now() + crate::rules::REGISTER_EVERY;
                let state = if draining { WorkerState::Draining } else { WorkerState::Running };
                register(&backend, &worker, report.now(state));
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or(far)), if retry_at.is_some() && pending.is_none() => {}
            _ = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                drain_until = None;
                eprintln!("workq work: grace is over: killing {} command(s), handing their items back", held.len());
                stop_all(&mut held);
            }
            _ = async { tokio::select! { _ = sigint.recv() => {}, _ = sigterm.recv() => {} } } => {
                if draining {
                    eprintln!("workq work: second signal: handing back {} item(s) now", held.len());
                    drain_until = None;
                    stop_all(&mut held);
                } else {
                    draining = true;
                    register(&backend, &worker, report.now(WorkerState::Draining));
                    // What was taken ahead never started: it goes back at once.
                    let ahead: Vec<LeaseRef> = ready.drain(..).map(|l| l.held()).collect();
                    if !ahead.is_empty() {
                        hand_back(&*backend, ahead, &worker).await;
                    }
                    drain_until = Some(Instant::now() + opts.grace);
                    eprintln!("workq work: stopping: no new items; waiting up to {:?} for {} running", opts.grace, held.len());
                }
            }
        }
    }
    // Every report has landed before the agent says it stopped.
    loop {
        while let Some(done) = reporting.join_next().await {
            failed |= !reported(done.map_err(|e| format!("report task: {e}"))?);
        }
        if unreported.is_empty() {
            break;
        }
        send_report(&mut reporting, &backend, &worker, &mut unreported);
    }
    // Said goodbye: shown as stopped, not as stale, in `workq workers`.
    if let Err(e) = backend
        .register_worker(&worker, report.now(WorkerState::Stopped))
        .await
    {
        eprintln!(
            "workq work: could not say it stopped: {}",
            one_line(&e.to_string())
        );
    }
    Ok(if opts.run_once && failed { 1 } else { 0 })
}

/// When the soonest delayed item of `queues` due within `ahead` becomes takeable, if any
/// (a failed look is said and treated as nothing due).
async fn soonest(
    backend: &dyn Backend,
    queues: &[String],
    ahead: Duration,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut due: Option<chrono::DateTime<chrono::Utc>> = None;
    for q in queues {
        match backend.upcoming(q, ahead, 1).await {
            Ok(items) => {
                let at = items.first().and_then(|i| i.delay_until);
                due = match (due, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(e) => eprintln!(
                "workq work: looking ahead in '{}' failed: {}",
                one_line(q),
                one_line(&e.to_string())
            ),
        }
    }
    due
}

/// Reports `outcomes` (taken) in one call, in the background.
fn send_report(
    reporting: &mut JoinSet<Reported>,
    backend: &Arc<dyn Backend>,
    worker: &str,
    outcomes: &mut Vec<Outcome>,
) {
    if outcomes.is_empty() {
        return;
    }
    let outcomes = std::mem::take(outcomes);
    let (b, w) = (Arc::clone(backend), worker.to_string());
    reporting.spawn(async move {
        let ids: Vec<String> = outcomes.iter().map(|o| o.id.clone()).collect();
        (ids, b.finish(outcomes, &w).await)
    });
}

/// The items of one report, and what the engine answered.
type Reported = (
    Vec<String>,
    crate::backend::Result<Vec<crate::backend::Result<Finished>>>,
);

/// Says what of a report was refused or failed; true when all of it was applied. An item
/// whose report failed stays leased until its lease times out, and is then retried.
fn reported((ids, answer): Reported) -> bool {
    match answer {
        Ok(rs) => {
            let mut all = true;
            for (id, r) in ids.iter().zip(rs) {
                if let Err(e) = r {
                    all = false;
                    eprintln!(
                        "workq work: item {id}: report refused: {}",
                        one_line(&e.to_string())
                    );
                }
            }
            all
        }
        Err(e) => {
            eprintln!(
                "workq work: report of {} item(s) failed: {}",
                ids.len(),
                one_line(&e.to_string())
            );
            false
        }
    }
}

/// Kills every running command whose fate is not yet decided; their leases go back.
fn stop_all(held: &mut HashMap<String, Held>) {
    for h in held.values_mut() {
        if h.fate.is_none() {
            h.fate = Some(Fate::HandBack);
        }
        if let Some(tx) = h.kill.take() {
            let _ = tx.send(());
        }
    }
}

async fn hand_back(backend: &dyn Backend, leases: Vec<LeaseRef>, worker: &str) {
    let note = "handed back by workq work: the agent is shutting down";
    match backend.hand_back(leases, worker, note).await {
        Ok(rs) => {
            for r in rs {
                if let Err(e) = r {
                    eprintln!(
                        "workq work: hand-back refused: {}",
                        one_line(&e.to_string())
                    );
                }
            }
        }
        Err(e) => eprintln!("workq work: hand-back failed: {}", one_line(&e.to_string())),
    }
}

/// Creates each named queue that does not exist, with defaults, saying so once.
async fn ensure_queues(backend: &dyn Backend, queues: &[String]) -> Result<(), String> {
    for q in queues {
        match backend.queue(q).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => {
                match backend.create_queue(q, QueueSettings::default()).await {
                    Ok(_) => eprintln!(
                        "workq work: queue '{}' did not exist: created it with default settings",
                        crate::text::escape(q, false)
                    ),
                    // Another agent created it first.
                    Err(Error::Conflict { .. }) => {}
                    Err(Error::Forbidden { role, needs, .. }) => {
                        return Err(format!(
                            "queue '{}' does not exist, and this token (role {role}) may not create queues: check the name, or create it with a token of role {needs} (`workq queue create {}`)",
                            crate::text::escape(q, false),
                            crate::text::escape(q, false)
                        ))
                    }
                    Err(e) => return Err(format!("cannot create queue '{q}': {e}")),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// What the exit code says: 0 processed (stdout tail as note), the business codes (2) and
/// IT codes (3) those exceptions, a timeout, anything else generic with the stderr tail.
fn outcome(ran: &Ran, exits: &ExitMap) -> (Option<Reason>, Option<String>) {
    // The output's last line ending goes, as a shell's `$(…)` drops it: the note is what
    // the command said, not how its last line ended. Everything before stays as written.
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let s = s.strip_suffix('\n').unwrap_or(&s);
        let s = s.strip_suffix('\r').unwrap_or(s);
        (!s.is_empty()).then(|| s.to_string())
    };
    match &ran.end {
        End::Exit(0) => (None, text(&ran.stdout)),
        End::Exit(c) if exits.business.contains(c) => (Some(Reason::Business), text(&ran.stderr)),
        End::Exit(c) if exits.it.contains(c) => (Some(Reason::It), text(&ran.stderr)),
        End::Exit(_) | End::Killed => (Some(Reason::Generic), text(&ran.stderr)),
        End::Signal(s) => {
            let mut note = format!("killed by signal {s}\n");
            note.push_str(&String::from_utf8_lossy(&ran.stderr));
            (Some(Reason::Generic), Some(note))
        }
        End::TimedOut => (
            Some(Reason::Timeout),
            Some("killed: ran past --timeout".into()),
        ),
        End::SpawnFailed(e) => (Some(Reason::Generic), Some(e.clone())),
    }
}

/// Whether `program` can be started: a path to an executable file, or a name found as one
/// on `$PATH`, as the spawn would look it up.
fn runnable(program: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let shown = crate::text::escape(program, false);
    if program.contains('/') {
        let p = std::path::Path::new(program);
        return match std::fs::metadata(p) {
            Err(e) => Err(format!("cannot run '{shown}': {e}")),
            Ok(_) if !executable(p) => Err(format!(
                "cannot run '{shown}': it is not an executable file (chmod +x?)"
            )),
            Ok(_) => Ok(()),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| executable(&d.join(program))) {
        Ok(())
    } else {
        Err(format!("cannot run '{shown}': no such command on $PATH"))
    }
}

fn one_line(s: &str) -> String {
    crate::text::escape(s, false).into_owned()
}

fn killpg(pgid: i32) {
    // SAFETY: signals a process group we created (the child's own, by process_group(0)).
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

/// Runs the command for one item.
async fn run_one(
    command: Arc<Vec<String>>,
    l: Lease,
    timeout: Option<Duration>,
    mut kill: oneshot::Receiver<()>,
) -> Ran {
    let id = l.item.id.clone();
    let began = Instant::now();
    let ran = |end, stdout, stderr| Ran {
        id: id.clone(),
        took: began.elapsed(),
        end,
        stdout,
        stderr,
    };
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("WORKQ_ITEM_ID", &l.item.id)
        .env("WORKQ_ITEM_NAME", l.item.name.as_deref().unwrap_or(""))
        .env("WORKQ_ITEM_KEY", l.item.key.as_deref().unwrap_or(""))
        .env("WORKQ_QUEUE", &l.item.queue)
        .env("WORKQ_ATTEMPT", (l.item.retry_count + 1).to_string())
        .env(
            "WORKQ_LEASE_DEADLINE",
            l.lease_until
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ran(
                End::SpawnFailed(format!("cannot run {}: {e}", command[0])),
                vec![],
                vec![],
            )
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut stdin = child.stdin.take().unwrap();
    let value = l.item.value.clone().into_bytes();
    // A command that does not read its stdin closes it: that is no error.
    tokio::spawn(async move {
        let _ = stdin.write_all(&value).await;
        let _ = stdin.shutdown().await;
    });
    let out = tokio::spawn(tail(child.stdout.take().unwrap()));
    let err = tokio::spawn(tail(child.stderr.take().unwrap()));
    let deadline = timeout.map(|t| Instant::now() + t);
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let end = tokio::select! {
        s = child.wait() => match s {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => End::Exit(c),
                    (None, Some(sig)) => End::Signal(sig),
                    _ => End::Exit(-1),
                }
            }
            Err(e) => End::SpawnFailed(format!("waiting for the command: {e}")),
        },
        _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
            killpg(pgid);
            let _ = child.wait().await;
            End::TimedOut
        }
        _ = &mut kill => {
            killpg(pgid);
            let _ = child.wait().await;
            End::Killed
        }
    };
    // Something the command left behind in its group may hold the pipes open: a moment to
    // finish writing, then the group goes.
    let grace = Instant::now() + Duration::from_secs(1);
    let mut out = out;
    let mut err = err;
    let both = async { ((&mut out).await, (&mut err).await) };
    let (o, e) = match tokio::time::timeout_at(grace, both).await {
        Ok((o, e)) => (o.unwrap_or_default(), e.unwrap_or_default()),
        Err(_) => {
            killpg(pgid);
            (out.await.unwrap_or_default(), err.await.unwrap_or_default())
        }
    };
    ran(end, o, e)
}

/// The last `TAIL` bytes of a stream, read with a bounded buffer.
async fn tail(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * TAIL {
                    kept.drain(..kept.len() - TAIL);
                }
            }
        }
    }
    if kept.len() > TAIL {
        kept.drain(..kept.len() - TAIL);
    }
    kept
}
