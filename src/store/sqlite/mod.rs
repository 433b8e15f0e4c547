//! The embedded store: one SQLite file in WAL mode. Writes go through one writer thread
//! with group commit; reads run on a small pool of reader connections.

mod actions;
mod alerts;
mod filter;
mod key_check;
mod read;
pub(crate) mod rows;
mod schema;
mod tokens;
mod write;
mod writer;

pub use schema::{can_write, schema_version};

use crate::alert::{Alert, AlertState, NewAlert};
use crate::backend::{Backend, Error, Feed, ImportRows, Result, StorageCause};
use crate::clock::Clock;
use crate::model::*;
use crate::store::spool::Spool;
use crate::token::{NewToken, Role, TokenInfo};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use writer::Writer;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    events: broadcast::Sender<Event>,
    /// A pulse when another process committed to the file: the feed says `Gap::Changed`.
    outside: broadcast::Sender<()>,
    /// Dropped with the store, which stops a read-only store's watcher thread.
    _watching: Option<std::sync::mpsc::Sender<()>>,
    /// Woken after every commit that changed items, for long-polling dequeues.
    wake: Arc<Notify>,
    options: Options,
    /// Opened with `open_read_only`: readers open the file read-only too.
    read_only: bool,
}

/// Knobs of the store; the defaults are what `open` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Other processes on the same file do not wake a long poll: it also looks this often.
    /// (Writes of this process wake it at once.)
    pub poll_every: Duration,
    /// Where retry backoffs get their jitter (`rules::retry_delay`).
    pub jitter: Jitter,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_every: Duration::from_millis(200),
            jitter: Jitter::Random,
        }
    }
}

/// The jitter source of retry backoffs: a fresh random draw each time, or one fixed draw
/// in [0, 1] (tests that want exact delays).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Jitter {
    #[default]
    Random,
    Fixed(f64),
}

impl Jitter {
    pub fn draw(self) -> f64 {
        match self {
            Jitter::Random => fastrand::f64(),
            Jitter::Fixed(x) => x,
        }
    }
}

/// Watches a file for other processes' commits on a connection of its own, until the
/// returned sender is dropped (with the store).
fn watch_outside(conn: Connection, tx: broadcast::Sender<()>) -> std::sync::mpsc::Sender<()> {
    let (alive, lives) = std::sync::mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("workq-watch".into())
        .spawn(move || {
            let mut version = writer::data_version(&conn);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                lives.recv_timeout(writer::OUTSIDE_EVERY)
            {
                writer::outside_changed(&conn, &mut version, &tx);
            }
        });
    alive
}

impl SqliteStore {
    /// Opens or creates the database at `path` and migrates its schema.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<SqliteStore> {
        Self::open_with(path, clock, Options::default())
    }

    /// `open` with other knobs.
    pub fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::open(&path, true)?;
        let (events, _) = broadcast::channel(1024);
        let (outside, _) = broadcast::channel(16);
        let wake = Arc::new(Notify::new());
        let writer = Writer::start(
            conn,
            writer::Setup {
                path: path.clone(),
                clock: clock.clone(),
                events: events.clone(),
                wake: wake.clone(),
                jitter: options.jitter,
                outside: outside.clone(),
            },
            writer::Hooks {
                sweep: write::sweep,
                settle: write::settle,
            },
        );
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                clock,
                writer,
                readers: Mutex::new(Vec::new()),
                events,
                outside,
                _watching: None,
                wake,
                options,
                read_only: false,
            }),
        })
    }

    /// Opens the database for reading only: no writer thread, no lock taken, nothing
    /// written, so it works on a file this user can only read and never waits behind
    /// another process's write; every change is refused.
    ///
    /// A file this user can write is first brought up to date as any open would, so that
    /// what is read is true: an older schema is migrated, and leases that ran out while no
    /// workq had the file open are timed out. Only when there is something to do: reading
    /// a current file writes nothing. On a file this user cannot write, an older schema is
    /// refused (upgrading it is a write), and such leases show as they are until a process
    /// that can write times them out.
    pub fn open_read_only(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let due = schema::due(&path, clock.now().timestamp_millis())?;
        if (due.migrate || due.sweep) && schema::can_write(&path) {
            // A writer migrates on open and sweeps before it hands the store out.
            drop(Self::open(&path, clock.clone())?);
        }
        let conn = schema::open(&path, false)?;
        let wake = Arc::new(Notify::new());
        // No writer here to notice other processes' commits: a thread of its own does.
        let (outside, _) = broadcast::channel(16);
        let watching = watch_outside(schema::open(&path, false)?, outside.clone());
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Writer::read_only(path.clone()),
                path,
                clock,
                readers: Mutex::new(vec![conn]),
                // Nothing is written here, so nothing is ever sent.
                events: broadcast::channel(1).0,
                outside,
                _watching: Some(watching),
                wake,
                options: Options::default(),
                read_only: true,
            }),
        })
    }

    /// Whether every change is refused (opened with `open_read_only`).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn now(&self) -> Time {
        self.inner.clock.now()
    }

    /// Runs `f` on a reader connection, in one read transaction, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Time) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let now = self.now();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().expect("reader pool").pop() {
                Some(c) => c,
                None => schema::open_reader(&inner.path, inner.read_only)?,
            };
            let out = conn
                .execute_batch("BEGIN")
                .map_err(|e| schema::storage_on(&conn, &inner.path, e))
                .and_then(|_| f(&conn, now));
            conn.execute_batch("COMMIT").ok();
            let mut pool = inner.readers.lock().expect("reader pool");
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| {
            Error::storage(
                StorageCause::Stopped,
                None,
                format!("read task failed: {e}"),
            )
        })?
    }

    /// Runs `f` on a reader connection off the async threads, without a transaction
    /// around it (`f` makes its own, for work that waits on a producer).
    async fn with_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.blocking(move || {
            let conn = match inner.readers.lock().expect("reader pool").pop() {
                Some(c) => c,
                None => schema::open_reader(&inner.path, inner.read_only)?,
            };
            let out = f(&conn);
            // A failed `f` may have left its transaction open.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").ok();
            }
            let mut pool = inner.readers.lock().expect("reader pool");
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
    }

    /// Runs `f` off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            Error::storage(
                StorageCause::Stopped,
                None,
                format!("import task failed: {e}"),
            )
        })?
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut writer::Ctx) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(writer::Mode::Plain, f).await
    }

    /// A worker's call on the hot path: its tallies are written once per writer turn.
    async fn write_hot<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut writer::Ctx) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(writer::Mode::Hot, f).await
    }
}

#[async_trait]
impl Backend for SqliteStore {
    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        let name = name.to_string();
        self.write(move |ctx| write::create_queue(ctx, &name, settings))
            .await
    }

    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        let name = name.to_string();
        self.write(move |ctx| write::update_queue(ctx, &name, settings))
            .await
    }

    async fn set_queue_state(&self, name: &str, state: QueueState) -> Result<Queue> {
        let name = name.to_string();
        self.write(move |ctx| write::set_queue_state(ctx, &name, state))
            .await
    }

    async fn delete_queue(&self, name: &str, force: bool) -> Result<u64> {
        let name = name.to_string();
        self.write(move |ctx| write::delete_queue(ctx, &name, force))
            .await
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        self.read(read::queues).await
    }

    async fn queue(&self, name: &str) -> Result<QueueSummary> {
        let name = name.to_string();
        self.read(move |c, now| read::summary(c, rows::queue_by_name(c, &name)?, now))
            .await
    }

    async fn add_items(&self, queue: &str, items: Vec<NewItem>, actor: &str) -> Result<Vec<Item>> {
        let (queue, actor) = (queue.to_string(), actor.to_string());
        self.write_hot(move |ctx| write::add_items(ctx, &queue, items, &actor))
            .await
    }

    /// Rows are taken, checked and spooled off the writer, for as long as the producer
    /// takes; the writer is held only for the commit, which reads the spool back in one
    /// transaction. A dry run never takes the writer (nor the file's write lock).
    async fn import(
        &self,
        queue: &str,
        opts: ImportOptions,
        rows: ImportRows,
        actor: &str,
    ) -> Result<ImportReport> {
        let (queue, actor) = (queue.to_string(), actor.to_string());
        if opts.dry_run {
            return self
                .with_reader(move |c| key_check::rehearse(c, &queue, &opts, rows))
                .await;
        }
        if self.inner.read_only {
            // Refused by the writer there is not, before any row is waited for or spooled.
            return self
                .inner
                .writer
                .write(writer::Mode::Exclusive, |_| Ok(ImportReport::default()))
                .await;
        }
        // An unknown queue is refused before any row is waited for.
        let q = queue.clone();
        self.read(move |c, _| rows::queue_by_name(c, &q).map(|_| ()))
            .await?;
        let db = self.inner.path.clone();
        let mut sp = self.blocking(move || Spool::fill(&db, rows)).await?;
        if !opts.skip_bad && !sp.rejected.is_empty() {
            // Refused whatever the keys say: the keys are checked on a reader, so that
            // the refusal names every bad row.
            let e = self
                .with_reader(move |c| key_check::refusal(c, &queue, &opts, &mut sp))
                .await?;
            return Err(e);
        }
        self.inner
            .writer
            .write(writer::Mode::Exclusive, move |ctx| {
                write::import(ctx, &queue, &opts, &mut sp, &actor)
            })
            .await
    }

    async fn items(&self, filter: Filter, page: PageRequest) -> Result<Page> {
        self.read(move |c, now| read::items(c, &filter, &page, now))
            .await
    }

    async fn item(&self, id: &str) -> Result<ItemDetail> {
        let id = id.to_string();
        self.read(move |c, now| read::item(c, &id, now)).await
    }

    async fn upcoming(
        &self,
        queue: &str,
        within: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Item>> {
        let queue = queue.to_string();
        self.read(move |c, now| read::upcoming(c, &queue, within, limit, now))
            .await
    }

    async fn groups(&self, queue: Option<String>) -> Result<Vec<ExceptionGroup>> {
        self.read(move |c, _| read::groups(c, queue.as_deref()))
            .await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.read(read::workers).await
    }

    async fn register_worker(&self, name: &str, agent: AgentInfo) -> Result<()> {
        let name = name.to_string();
        self.write(move |ctx| write::register_worker(ctx, &name, &agent))
            .await
    }

    async fn dequeue(&self, req: DequeueRequest) -> Result<Dequeued> {
        let deadline = tokio::time::Instant::now() + req.wait;
        loop {
            // In the line for a wake-up before looking, so a commit in between is not missed.
            // One is woken per item made takeable; one woken while it took something anyway
            // passes its wake-up on when it is dropped (tokio's `Notified`).
            let woken = self.inner.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            let r = req.clone();
            let got = self.write_hot(move |ctx| write::dequeue(ctx, &r)).await?;
            let now = tokio::time::Instant::now();
            if !got.leases.is_empty() || now >= deadline {
                return Ok(got);
            }
            let every = self.inner.options.poll_every;
            let _ = tokio::time::timeout(every.min(deadline - now), woken).await;
        }
    }

    async fn heartbeat(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Time>>> {
        self.write_hot(move |ctx| write::heartbeat(ctx, &leases))
            .await
    }

    async fn finish(&self, outcomes: Vec<Outcome>, worker: &str) -> Result<Vec<Result<Finished>>> {
        let worker = worker.to_string();
        self.write_hot(move |ctx| write::finish(ctx, &outcomes, &worker))
            .await
    }

    async fn hand_back(
        &self,
        leases: Vec<HandBack>,
        worker: &str,
        note: &str,
    ) -> Result<Vec<Result<Finished>>> {
        let (worker, note) = (worker.to_string(), note.to_string());
        self.write_hot(move |ctx| write::hand_back(ctx, &leases, &worker, &note))
            .await
    }

    async fn preview(
        &self,
        target: Target,
        action: Option<ActionKind>,
        sample: u32,
    ) -> Result<Preview> {
        self.read(move |c, now| actions::preview(c, &target, action.as_ref(), sample, now))
            .await
    }

    async fn act(&self, req: ActionRequest) -> Result<ActionResult> {
        self.write(move |ctx| actions::act(ctx, &req)).await
    }

    async fn undo(&self, req: UndoRequest) -> Result<UndoResult> {
        if req.dry_run {
            return self
                .read(move |c, _| actions::undo_preview(c, req.action_id))
                .await;
        }
        self.write(move |ctx| actions::undo(ctx, &req)).await
    }

    async fn actions(&self, query: ActionQuery) -> Result<Vec<ActionInfo>> {
        self.read(move |c, _| actions::list(c, &query)).await
    }

    async fn sweep(&self) -> Result<u64> {
        self.write(write::sweep).await
    }

    async fn prune(&self, before: Time, most: u64) -> Result<u64> {
        let before = before.timestamp_millis();
        self.write(move |ctx| write::prune(ctx, before, most)).await
    }

    async fn create_token(&self, name: &str, role: Role) -> Result<NewToken> {
        let name = name.to_string();
        self.write(move |ctx| tokens::create(ctx, &name, role))
            .await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|c, _| tokens::list(c)).await
    }

    async fn revoke_token(&self, name: &str) -> Result<TokenInfo> {
        let name = name.to_string();
        self.write(move |ctx| tokens::revoke(ctx, &name)).await
    }

    async fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let secret = secret.to_string();
        self.read(move |c, _| tokens::verify(c, &secret)).await
    }

    async fn add_alert(&self, alert: NewAlert) -> Result<Alert> {
        self.write(move |ctx| alerts::add(ctx, &alert)).await
    }

    async fn alerts(&self) -> Result<Vec<Alert>> {
        self.read(|c, _| alerts::list(c)).await
    }

    async fn remove_alert(&self, name: &str) -> Result<Alert> {
        let name = name.to_string();
        self.write(move |ctx| alerts::remove(ctx, &name)).await
    }

    async fn set_alert_state(
        &self,
        name: &str,
        seen_generation: u64,
        to: AlertState,
    ) -> Result<Option<Alert>> {
        let name = name.to_string();
        self.write(move |ctx| alerts::set_state(ctx, &name, seen_generation, to))
            .await
    }

    fn subscribe(&self) -> Feed {
        // This process's events, and a gap whenever another process wrote to the file.
        let own = Feed::from_broadcast(self.inner.events.subscribe());
        let outside = futures::stream::unfold(self.inner.outside.subscribe(), |mut rx| async {
            match rx.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((Err(crate::backend::Gap::Changed), rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        // After `own` says Disconnected the feed reads nothing more (see `Feed`).
        Feed::from_stream(futures::stream::select(own, outside))
    }
}
