//! The one writer: a thread that owns the write connection and drains a channel of jobs,
//! committing many jobs in one transaction (group commit). Each job runs inside its own
//! savepoint, so a job that fails rolls back alone; answers go out only after the commit,
//! so an acknowledged write is on disk.

use super::schema::storage_on;
use super::write::Deltas;
use super::Jitter;
use crate::backend::{Error, Result, StorageCause};
use crate::clock::Clock;
use crate::model::{Event, Time};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot, Notify};

/// What a job sees: the connection inside the open transaction, the time of the batch,
/// and where to put the events it causes.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub now: Time,
    pub events: Vec<Event>,
    /// How many items jobs made takeable (`WAKE_ALL`: a queue's settings changed): after
    /// the commit, as many long-polling dequeues are woken, not all of them.
    pub ready: u64,
    /// Where retry backoffs get their jitter.
    pub jitter: Jitter,
    /// The tallies of the job running (counters, open-item minutes, stats, workers seen),
    /// kept if it succeeds, dropped if it rolls back.
    pub(super) job: Deltas,
    /// The tallies of the turn's jobs so far: written once, before the commit (or before a
    /// job that reads them), not once per job.
    pub(super) turn: Deltas,
}

/// What the writer thread works with besides its connection.
pub struct Setup {
    pub path: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub events: broadcast::Sender<Event>,
    /// Woken after commits that made work takeable.
    pub wake: Arc<Notify>,
    pub jitter: Jitter,
    /// Told when another process committed to the file (see `outside_changed`).
    pub outside: broadcast::Sender<()>,
}

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A job runs against the open transaction, or is told why there is none.
type JobFn = Box<dyn FnOnce(Result<&mut Ctx, Error>) -> (bool, Reply) + Send>;

pub struct Job {
    run: JobFn,
    /// Runs in a transaction of its own (imports: long, and must not hold others' answers).
    exclusive: bool,
    /// A worker's call (dequeue, finish, heartbeat, hand-back, add): its tallies wait for the
    /// end of the turn. Any other job first has the turn's tallies written, so what it reads
    /// of counters is true.
    hot: bool,
}

/// How a job runs in the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Grouped with others; reads counters as they are.
    Plain,
    /// Grouped with others; its tallies are written at the end of the turn.
    Hot,
    /// In a transaction of its own.
    Exclusive,
}

/// Most jobs in one transaction.
const GROUP_MAX: usize = 512;
/// How often an idle writer sweeps expired leases.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Writer {
    /// `None`: the store was opened for reading only, and refuses every write.
    tx: Option<SyncSender<Job>>,
    path: PathBuf,
}

impl Writer {
    /// Starts the writer thread. `hooks.sweep` runs when the writer is idle, once per
    /// `SWEEP_EVERY`.
    pub fn start(conn: Connection, setup: Setup, hooks: Hooks) -> Writer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4096);
        // Leases that ran out while no workq had the file open are swept before the store is
        // handed out, so the first read already shows them timed out. Without waiting for
        // the lock: a lock held elsewhere is a live process that sweeps, and a read must
        // never wait behind another process's write.
        conn.busy_handler(None).ok();
        idle_sweep(&conn, &setup, hooks);
        super::schema::patient(&conn).ok();
        let at = setup.path.clone();
        // The writer leaves checkpoints to a thread of their own, so that copying the WAL
        // back and its fsync are off the path of every call; it does them itself only if
        // that thread falls far behind.
        let (alive, lives) = std::sync::mpsc::channel::<()>();
        let checkpoints = checkpointer(&at, lives);
        if checkpoints {
            conn.pragma_update(None, "wal_autocheckpoint", WAL_FALLBACK)
                .ok();
        }
        std::thread::Builder::new()
            .name("workq-writer".into())
            .spawn(move || {
                let _alive = alive;
                run(conn, setup, rx, hooks)
            })
            .expect("spawn writer thread");
        Writer {
            tx: Some(tx),
            path: at,
        }
    }

    /// No writer: every write is refused, saying why.
    pub fn read_only(path: PathBuf) -> Writer {
        Writer { tx: None, path }
    }

    /// Runs `f` in the writer and answers once its transaction is committed.
    pub async fn write<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx) -> Result<T> + Send + 'static,
    {
        let Some(writer) = &self.tx else {
            return Err(Error::storage(
                StorageCause::ReadOnly,
                Some(&self.path),
                format!(
                    "database {} is open for reading only; nothing was changed",
                    self.path.display()
                ),
            ));
        };
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let run: JobFn = Box::new(move |ctx| {
            let out = ctx.and_then(f);
            let ok = out.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(out));
            });
            (ok, reply)
        });
        let mut job = Job {
            run,
            exclusive: mode == Mode::Exclusive,
            hot: mode == Mode::Hot,
        };
        // A full channel means the writer is far behind: wait without blocking the runtime.
        loop {
            match writer.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    job = j;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Error::storage(
                        StorageCause::Stopped,
                        None,
                        "the database writer has stopped",
                    ))
                }
            }
        }
        rx.await.map_err(|_| {
            Error::storage(
                StorageCause::Stopped,
                None,
                "the database writer stopped mid-write",
            )
        })?
    }
}

fn run(conn: Connection, setup: Setup, rx: Receiver<Job>, hooks: Hooks) {
    let mut last_sweep = Instant::now();
    let mut pending: Option<Job> = None;
    let mut version = data_version(&conn);
    loop {
        outside_changed(&conn, &mut version, &setup.outside);
        let first = match pending.take() {
            Some(j) => j,
            None => match rx.recv_timeout(OUTSIDE_EVERY) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => {
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = Instant::now();
                        idle_sweep(&conn, &setup, hooks);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let mut batch = vec![first];
        if !batch[0].exclusive {
            while batch.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(j) if j.exclusive => {
                        pending = Some(j);
                        break;
                    }
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        commit_batch(&conn, &setup, hooks, batch);
        // Heartbeats that queued up behind a long job (an import, a big bulk action) are
        // let in before the next sweep, or their leases would time out for nothing.
        if started.elapsed() >= SWEEP_EVERY / 2 {
            last_sweep = Instant::now();
        }
        // A busy writer still sweeps.
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            idle_sweep(&conn, &setup, hooks);
        }
    }
}

/// How often an idle writer looks whether another process wrote to the file.
pub const OUTSIDE_EVERY: Duration = Duration::from_millis(250);

/// `PRAGMA data_version` of a connection: it moves when *another* connection commits, never
/// for this one's own commits. On the writer's connection, then, only other processes (and
/// this process's checkpoints, which change no data) move it.
pub fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

/// Tells the change feed when another process committed since `version` was read.
pub fn outside_changed(conn: &Connection, version: &mut Option<i64>, tx: &broadcast::Sender<()>) {
    let now = data_version(conn);
    if now.is_some() && now != *version {
        *version = now;
        let _ = tx.send(());
    }
}

/// How often the checkpoint thread looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// WAL pages at which the writer checkpoints by itself (SQLite's default is 1,000).
const WAL_FALLBACK: i64 = 20_000;

/// Starts the thread that copies the WAL back into the database (passive checkpoints: it
/// never waits for, nor blocks, the writer or a reader) until `lives` is dropped with the
/// writer. Whether it started.
fn checkpointer(path: &std::path::Path, lives: Receiver<()>) -> bool {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return false;
    };
    conn.busy_handler(None).ok();
    std::thread::Builder::new()
        .name("workq-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = lives.recv_timeout(CHECKPOINT_EVERY) {
                // Busy or locked now: the next look tries again.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .is_ok()
}

/// What the store gives the writer to run: the sweep of expired leases, and the writing of
/// a turn's tallies.
#[derive(Clone, Copy)]
pub struct Hooks {
    pub sweep: fn(&mut Ctx) -> Result<u64>,
    pub settle: fn(&mut Ctx) -> Result<()>,
}

fn idle_sweep(conn: &Connection, setup: &Setup, hooks: Hooks) {
    let sweep = hooks.sweep;
    let job = Job {
        // Nobody waits for a sweep; one that fails (a locked file) is tried again next time.
        run: Box::new(move |ctx| (ctx.and_then(sweep).is_ok(), Box::new(|_| {}))),
        exclusive: false,
        hot: false,
    };
    commit_batch(conn, setup, hooks, vec![job]);
}

fn commit_batch(conn: &Connection, setup: &Setup, hooks: Hooks, batch: Vec<Job>) {
    let path = setup.path.as_path();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let err = storage_on(conn, path, e);
        for job in batch {
            let (_, reply) = (job.run)(Err(err.clone()));
            reply(Ok(()));
        }
        return;
    }
    let mut ctx = Ctx {
        conn,
        now: setup.clock.now(),
        events: Vec::new(),
        ready: 0,
        jitter: setup.jitter,
        job: Deltas::default(),
        turn: Deltas::default(),
    };
    let mut replies = Vec::with_capacity(batch.len());
    let mut lost: Option<Error> = None;
    for job in batch {
        // SQLite may roll the whole transaction back by itself (disk full, I/O error): the
        // jobs left would each commit alone while being told they failed. Refuse them.
        if let Some(e) = &lost {
            let (_, reply) = (job.run)(Err(e.clone()));
            replies.push(reply);
            continue;
        }
        // A job that reads counters sees the turn's tallies written first (outside its own
        // savepoint: they belong to the jobs before it).
        if !job.hot && !ctx.turn.is_empty() {
            if let Err(e) = (hooks.settle)(&mut ctx) {
                lost = Some(e.clone());
                let (_, reply) = (job.run)(Err(e));
                replies.push(reply);
                continue;
            }
        }
        let mark = ctx.events.len();
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            let (_, reply) = (job.run)(Err(storage_on(conn, path, e)));
            replies.push(reply);
            continue;
        }
        // A job that panics (a bug) is refused like one that failed; the writer lives on.
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(Ok(&mut ctx))));
        let (ok, reply) = match ran {
            Ok(r) => r,
            Err(_) => {
                ctx.events.truncate(mark);
                ctx.job = Deltas::default();
                exec(conn, "ROLLBACK TO job").ok();
                exec(conn, "RELEASE job").ok();
                // The job's reply went down with it: its caller sees "stopped mid-write".
                if conn.is_autocommit() {
                    lost = Some(Error::storage(
                        StorageCause::Io,
                        None,
                        "the transaction was lost",
                    ));
                }
                continue;
            }
        };
        if ok {
            let d = std::mem::take(&mut ctx.job);
            ctx.turn.merge(d);
        } else {
            ctx.events.truncate(mark);
            ctx.job = Deltas::default();
            exec(conn, "ROLLBACK TO job").ok();
        }
        exec(conn, "RELEASE job").ok();
        replies.push(reply);
        if conn.is_autocommit() {
            lost = Some(Error::storage(
                StorageCause::Io,
                Some(path),
                format!(
                    "database {}: the transaction was rolled back by SQLite (disk full or I/O error?)",
                    path.display()
                ),
            ));
        }
    }
    // The turn's tallies, then the commit: both or neither.
    // A lost transaction (or tallies that could not be written) commits nothing.
    let settled = match (&lost, ctx.turn.is_empty()) {
        (Some(e), _) => Err(e.clone()),
        (None, false) => (hooks.settle)(&mut ctx),
        (None, true) => Ok(()),
    };
    let commit = settled.and_then(|_| exec(conn, "COMMIT").map_err(|e| storage_on(conn, path, e)));
    if commit.is_err() {
        conn.execute_batch("ROLLBACK").ok();
    }
    let committed = commit.is_ok();
    for reply in replies {
        reply(commit.clone());
    }
    if committed {
        ctx.events.dedup();
        for e in ctx.events.drain(..) {
            let _ = setup.events.send(e);
        }
        wake(&setup.wake, ctx.ready);
    }
}

/// Wakes one waiting dequeue per item made takeable, so that one enqueue wakes one poller
/// and not all of them (each would send a dequeue, and all but one come back empty).
/// A poller woken for an item another took waits again; `notify_one` with nobody waiting
/// keeps one permit, for the next poller to look at once.
fn wake(notify: &Notify, ready: u64) {
    if ready == WAKE_ALL {
        notify.notify_waiters();
        return;
    }
    for _ in 0..ready.min(WAKE_MAX) {
        notify.notify_one();
    }
}

/// `Ctx::ready` for a change that may make anything takeable (a queue resumed, a limit
/// raised): every poller looks.
pub const WAKE_ALL: u64 = u64::MAX;
/// More wake-ups than this in one turn would only wake pollers that find nothing.
const WAKE_MAX: u64 = 1024;

/// Transaction control through the statement cache: parsed once, not once per job.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
