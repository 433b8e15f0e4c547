//! `workq work`: the worker agent. Takes items through the `Backend` seam (so it behaves the
//! same on a local file and a remote server), runs a command per item, heartbeats all held
//! leases in one call, and reports outcomes in batches.

use crate::backend::{Backend, Error};
use crate::model::*;
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// How much of stdout/stderr is kept for the note (the tail).
pub const TAIL_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub queues: Vec<String>,
    pub worker: String,
    pub concurrency: u32,
    pub timeout: Option<Duration>,
    pub run_once: bool,
    pub grace: Duration,
    pub command: Vec<String>,
    pub exits: ExitMap,
}

/// Which exit codes mean which exception; 0 is always processed, the rest generic.
#[derive(Debug, Clone)]
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

/// What the agent did, for its exit code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub processed: u64,
    pub failed: u64,
    pub handed_back: u64,
}

/// Why the agent stopped early.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Backend(#[from] Error),
    #[error("{0}")]
    Other(String),
}

/// How one command ended.
#[derive(Debug)]
enum Ended {
    Exited {
        code: Option<i32>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    TimedOut,
    /// Killed by the agent (lease refused, shutdown): not reported as an outcome.
    Killed,
    SpawnFailed(String),
}

struct Held {
    lease: LeaseRef,
    kill: Option<oneshot::Sender<()>>,
}

/// Creates the named queues that do not exist (default settings), saying so once each.
pub async fn ensure_queues(store: &dyn Backend, queues: &[String]) -> Result<(), Error> {
    for q in queues {
        match store.queue(q).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => {
                store.create_queue(q, QueueSettings::default()).await?;
                eprintln!(
                    "workq work: queue {} did not exist; created it with default settings",
                    crate::text::escape(q, true)
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub async fn run(store: &dyn Backend, cfg: AgentConfig) -> Result<Summary, AgentError> {
    ensure_queues(store, &cfg.queues).await?;
    let mut summary = Summary::default();
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut tasks: JoinSet<(String, Ended)> = JoinSet::new();
    let mut draining = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut exhausted = false;
    // Heartbeat at a third of the shortest lease seen; 1s until a lease is seen.
    let mut beat_every = Duration::from_secs(1);
    let mut next_beat = tokio::time::Instant::now() + beat_every;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AgentError::Other(format!("cannot watch SIGTERM: {e}")))?;

    loop {
        // Take work while there is room.
        if !draining && !exhausted && (held.len() as u32) < cfg.concurrency {
            let want = cfg.concurrency - held.len() as u32;
            let got = store
                .dequeue(DequeueRequest {
                    queues: cfg.queues.clone(),
                    worker: cfg.worker.clone(),
                    count: want,
                    wait: Duration::ZERO,
                })
                .await?;
            let now = chrono::Utc::now();
            for l in got.leases {
                let ttl = (l.lease_until - now).to_std().unwrap_or(Duration::ZERO);
                let third = (ttl / 3).max(Duration::from_millis(50));
                if third < beat_every {
                    beat_every = third;
                    next_beat = next_beat.min(tokio::time::Instant::now() + beat_every);
                }
                let (tx, rx) = oneshot::channel();
                let id = l.item.id.clone();
                held.insert(
                    id.clone(),
                    Held {
                        lease: LeaseRef {
                            id: id.clone(),
                            lease: l.lease.clone(),
                        },
                        kill: Some(tx),
                    },
                );
                let command = cfg.command.clone();
                let timeout = cfg.timeout;
                tasks.spawn(async move { (id, run_one(command, l, timeout, rx).await) });
            }
            if held.is_empty() && cfg.run_once {
                exhausted = true;
            }
        }
        if held.is_empty() && (draining || exhausted) {
            return Ok(summary);
        }

        // Idle: poll again soon; busy: wait for a command, a heartbeat or a signal.
        let idle = held.len() as u32 >= cfg.concurrency || draining || exhausted;
        let poll = if idle {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(200)
        };
        let drain_at = drain_deadline.unwrap_or_else(|| tokio::time::Instant::now() + poll * 10);
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let mut ready = vec![done];
                while let Some(more) = tasks.try_join_next() {
                    ready.push(more);
                }
                report(store, &cfg, &mut held, &mut summary, ready).await?;
            }
            _ = tokio::time::sleep_until(next_beat) => {
                next_beat = tokio::time::Instant::now() + beat_every;
                beat(store, &mut held).await?;
            }
            _ = tokio::time::sleep(poll), if !idle => {}
            _ = tokio::signal::ctrl_c() => {
                signalled(&mut draining, &mut drain_deadline, cfg.grace, &mut held);
            }
            _ = sigterm.recv() => {
                signalled(&mut draining, &mut drain_deadline, cfg.grace, &mut held);
            }
            _ = tokio::time::sleep_until(drain_at), if drain_deadline.is_some() => {
                drain_deadline = None;
                for h in held.values_mut() {
                    if let Some(k) = h.kill.take() { let _ = k.send(()); }
                }
            }
        }
        // Shutting down: what is killed is handed back, not reported.
        if draining {
            hand_back_killed(store, &cfg, &mut held, &mut tasks, &mut summary).await?;
        }
    }
}

/// First signal: drain within the grace; second: hand back at once.
fn signalled(
    draining: &mut bool,
    deadline: &mut Option<tokio::time::Instant>,
    grace: Duration,
    held: &mut HashMap<String, Held>,
) {
    if *draining {
        for h in held.values_mut() {
            if let Some(k) = h.kill.take() {
                let _ = k.send(());
            }
        }
        *deadline = None;
    } else {
        *draining = true;
        eprintln!("workq work: draining (a second signal hands back at once)");
        *deadline = Some(tokio::time::Instant::now() + grace);
    }
}

async fn hand_back_killed(
    store: &dyn Backend,
    cfg: &AgentConfig,
    held: &mut HashMap<String, Held>,
    tasks: &mut JoinSet<(String, Ended)>,
    summary: &mut Summary,
) -> Result<(), AgentError> {
    // Killed commands end promptly; collect them once every kill has been sent.
    if held.values().any(|h| h.kill.is_some()) {
        return Ok(());
    }
    let mut ready = Vec::new();
    while let Some(done) = tasks.join_next().await {
        ready.push(done);
    }
    report(store, cfg, held, summary, ready).await
}

async fn beat(store: &dyn Backend, held: &mut HashMap<String, Held>) -> Result<(), Error> {
    let leases: Vec<LeaseRef> = held
        .values()
        .filter(|h| h.kill.is_some())
        .map(|h| h.lease.clone())
        .collect();
    if leases.is_empty() {
        return Ok(());
    }
    let answers = store.heartbeat(leases.clone()).await?;
    for (l, a) in leases.iter().zip(answers) {
        if a.is_err() {
            // Held by a human or stale: the item is no longer ours; stop working on it.
            if let Some(h) = held.get_mut(&l.id) {
                if let Some(k) = h.kill.take() {
                    let _ = k.send(());
                }
                h.lease.lease.clear();
            }
        }
    }
    Ok(())
}

async fn report(
    store: &dyn Backend,
    cfg: &AgentConfig,
    held: &mut HashMap<String, Held>,
    summary: &mut Summary,
    ready: Vec<Result<(String, Ended), tokio::task::JoinError>>,
) -> Result<(), AgentError> {
    let mut outcomes = Vec::new();
    let mut backs = Vec::new();
    for r in ready {
        let (id, ended) = r.map_err(|e| AgentError::Other(format!("agent task failed: {e}")))?;
        let Some(h) = held.remove(&id) else { continue };
        if h.lease.lease.is_empty() {
            continue; // refused on heartbeat: not ours to report
        }
        let (reason, note) = match ended {
            Ended::Killed => {
                backs.push(h.lease);
                continue;
            }
            Ended::TimedOut => (
                Some(Reason::Timeout),
                Some(format!(
                    "killed after --timeout {:?}",
                    cfg.timeout.unwrap_or_default()
                )),
            ),
            Ended::SpawnFailed(e) => (Some(Reason::Generic), Some(e)),
            Ended::Exited {
                code: Some(0),
                stdout,
                ..
            } => (None, tail_note(stdout)),
            Ended::Exited {
                code,
                stdout,
                stderr,
            } => {
                let reason = match code {
                    Some(c) if cfg.exits.business.contains(&c) => Reason::Business,
                    Some(c) if cfg.exits.it.contains(&c) => Reason::It,
                    _ => Reason::Generic,
                };
                let note = if reason == Reason::Generic {
                    tail_note(stderr).or_else(|| Some(format!("exit {code:?}")))
                } else {
                    tail_note(stdout).or_else(|| tail_note(stderr))
                };
                (Some(reason), note)
            }
        };
        if reason.is_none() {
            summary.processed += 1;
        } else {
            summary.failed += 1;
        }
        outcomes.push(Outcome {
            id: h.lease.id,
            lease: h.lease.lease,
            reason,
            note,
            retry_in: None,
        });
    }
    if !outcomes.is_empty() {
        for (o, r) in outcomes
            .iter()
            .zip(store.finish(outcomes.clone(), &cfg.worker).await?)
        {
            if let Err(e) = r {
                eprintln!("workq work: item {} refused its outcome: {e}", o.id);
            }
        }
    }
    if !backs.is_empty() {
        summary.handed_back += backs.len() as u64;
        store
            .hand_back(
                backs,
                &cfg.worker,
                "agent shut down before the command finished",
            )
            .await?;
    }
    Ok(())
}

fn tail_note(bytes: Vec<u8>) -> Option<String> {
    if bytes.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Reads a stream to its end keeping only the last `TAIL_BYTES` (bounded memory).
async fn tail(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * TAIL_BYTES {
            kept.drain(..kept.len() - TAIL_BYTES);
        }
    }
    if kept.len() > TAIL_BYTES {
        kept.drain(..kept.len() - TAIL_BYTES);
    }
    kept
}

async fn run_one(
    command: Vec<String>,
    l: Lease,
    timeout: Option<Duration>,
    kill: oneshot::Receiver<()>,
) -> Ended {
    let item = &l.item;
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("WORKQ_ITEM_ID", &item.id)
        .env("WORKQ_ITEM_NAME", item.name.as_deref().unwrap_or(""))
        .env("WORKQ_ITEM_KEY", item.key.as_deref().unwrap_or(""))
        .env("WORKQ_QUEUE", &item.queue)
        .env("WORKQ_ATTEMPT", (item.retry_count + 1).to_string())
        .env("WORKQ_LEASE_DEADLINE", l.lease_until.to_rfc3339())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a kill reaches the command's children too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ended::SpawnFailed(format!("cannot run {}: {e}", command[0])),
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let value = item.value.clone().into_bytes();
    let feed = tokio::spawn(async move {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&value).await;
        }
        drop(stdin);
    });
    let out = tokio::spawn(tail(child.stdout.take().expect("piped")));
    let err = tokio::spawn(tail(child.stderr.take().expect("piped")));
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let killpg = |pid: Option<u32>| {
        if let Some(p) = pid {
            // SAFETY: killpg only sends a signal to the group we created.
            unsafe { libc::killpg(p as libc::pid_t, libc::SIGKILL) };
        }
    };
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => {
                // The group may outlive its leader; the item is done, its helpers go too.
                killpg(pid);
                Ended::Exited { code: s.code(), stdout: Vec::new(), stderr: Vec::new() }
            }
            Err(e) => Ended::SpawnFailed(format!("waiting for the command: {e}")),
        },
        _ = limit => { killpg(pid); let _ = child.wait().await; Ended::TimedOut }
        _ = kill => { killpg(pid); let _ = child.wait().await; Ended::Killed }
    };
    feed.abort();
    let stdout = out.await.unwrap_or_default();
    let stderr = err.await.unwrap_or_default();
    match ended {
        Ended::Exited { code, .. } => Ended::Exited {
            code,
            stdout,
            stderr,
        },
        other => other,
    }
}
