//! The PostgreSQL store (`--db postgres://user@host/dbname`): the same behaviour as the
//! SQLite store behind the same seam, on a pool of connections (deadpool-postgres). Each
//! call is in one transaction: its counters, history and events commit with it or not at
//! all. Concurrent adds, dequeues and reports share one (`group`: one commit, and a few
//! statements, for many bots' one-item calls).
//!
//! What differs from SQLite, and why:
//! - Many writers at once instead of one writer thread: a dequeue claims with
//!   `FOR UPDATE SKIP LOCKED` on the ready items' partial index; whatever a call changes
//!   after reading it (a worker's item, a bulk action's targets) is read `FOR UPDATE`.
//! - Per-queue counters, per-minute stats and open-item tallies are sharded (schema
//!   version 4): a call adds its changes, at its end, to its connection's shard
//!   (`pg_backend_pid() % COUNT_SHARDS`) of `queue_counts`, `stats` and `open_minutes`, in
//!   key order (so two transactions never wait for each other crosswise); readers sum the
//!   shards (a queue's count is `queues.n_*`, the base, plus its shards). One row per queue
//!   that every worker updated serialised all workers on its lock, held until each
//!   commit's WAL flush (BENCHMARKS.md, "PostgreSQL: the full cycle"). The sweep folds
//!   past minutes' open-item shards into one row.
//! - The change feed is this process's own commits and, by LISTEN/NOTIFY, those of the
//!   other processes on the schema; a change none told of (no NOTIFY through a
//!   transaction-pooling proxy, a LISTEN connection down) reads as `Gap::Changed` within
//!   two readings of a sequence (see `live`).
//! - A long poll wakes on this process's commits and on the others' notifications, and
//!   looks again every `poll_every`.
//! - Periodic work (sweeps here, alert checks in `workq serve`: `Backend::leads`) runs on
//!   one process of the schema, the holder of a session-level advisory lock.
//! - Times come from the injected clock, bound as BIGINT milliseconds; SQL never reads
//!   `now()`, so a test's clock controls everything.
//!
//! - An import's rows are spooled to a file as they are parsed, as on SQLite, then go by
//!   one binary COPY into `items`, after their keys were checked (`import`).
//! - `serve --retain` removes processed items past the retention (`write::prune`), a
//!   bounded batch per transaction, oldest finish first, on the leader.
//!
//! Seams left for what comes next: open items share the `items` table with finished ones
//! (partial indexes, aggressive autovacuum and retention keep the hot part small instead
//! of a table of its own).

mod actions;
mod admin;
mod filter;
mod group;
mod import;
mod live;
mod read;
mod rows;
mod schema;
mod vacuum;
mod write;

pub use schema::{redact, schema_version};

use crate::alert::{Alert, AlertState, NewAlert};
use crate::backend::{Backend, Error, Feed, ImportRows, Result, StorageCause, Thing};
use crate::clock::Clock;
use crate::model::*;
use crate::store::spool::{self, Spool};
pub use crate::store::sqlite::Jitter;
use crate::token::{NewToken, Role, TokenInfo};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use group::in_one;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub struct PgStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Pool,
    clock: Arc<dyn Clock>,
    /// The change feed, the long polls' wake-ups, and what is shared with other processes
    /// (see `live`).
    live: Arc<live::Live>,
    /// Dropped with the store: its background tasks end.
    stop: watch::Sender<()>,
    options: Options,
    /// When each worker's row (and its row per queue) was last written by this process
    /// (see `write::written_lately`).
    seen: Mutex<HashMap<(String, Option<i64>), i64>>,
    place: schema::Place,
    /// Concurrent adds, dequeues and reports waiting to share a transaction (see `group`).
    lines: group::Lines,
    /// Opened for reading only (`open_blocking` without `create`): every change is
    /// refused, as on an SQLite store opened read-only, and this process does not sweep.
    read_only: bool,
}

/// Knobs of the store; the defaults are what `open` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// A long poll wakes on commits (this process's, and others' as heard by LISTEN); it
    /// also looks this often.
    pub poll_every: Duration,
    /// Where retry backoffs get their jitter.
    pub jitter: Jitter,
    /// Most connections the pool opens.
    pub pool_size: usize,
    /// How often leases that ran out are timed out, by the leader of the schema.
    pub sweep_every: Duration,
    /// Whether other processes' commits are listened for (LISTEN/NOTIFY). Off, as through
    /// a transaction-pooling proxy, only the fallback's readings tell of them.
    pub listen: bool,
    /// How often the fallback looks for changes no notification told of.
    pub check_every: Duration,
    /// How often a store that is not the leader tries to become it, and the leader checks
    /// its connection.
    pub leader_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_every: Duration::from_secs(1),
            jitter: Jitter::Random,
            pool_size: 16,
            sweep_every: Duration::from_secs(1),
            listen: true,
            check_every: Duration::from_secs(1),
            leader_every: Duration::from_secs(1),
        }
    }
}

/// Whether `text` names a PostgreSQL database rather than a file.
pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the database at `url`, creating or migrating its workq schema.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<PgStore> {
        Self::open_with(url, clock, Options::default()).await
    }

    /// `open` with other knobs.
    pub async fn open_with(url: &str, clock: Arc<dyn Clock>, options: Options) -> Result<PgStore> {
        let config = schema::config(url)?;
        let place = schema::Place::of(url, &config);
        let mut client = schema::connect(&config, &place).await?;
        schema::prepare(&mut client, &place, true).await?;
        drop(client);
        let store = Self::pooled(config, place, clock, options, false, true)?;
        // Leases that ran out while no workq was running are timed out before the store is
        // handed out, as the SQLite store does.
        store.sweep().await.ok();
        Ok(store)
    }

    /// `open` for a caller that is not async (`connect`): the schema is checked on a
    /// thread of its own; the pool's connections are made later, on the caller's runtime.
    /// Without `create` (a command that only reads), an empty schema is refused rather
    /// than created, and the store refuses every change, as an SQLite store opened
    /// read-only does; an older schema is still migrated and run-out leases timed out
    /// first, when this user may, so that what is read is true.
    pub fn open_blocking(url: &str, clock: Arc<dyn Clock>, create: bool) -> Result<PgStore> {
        let config = schema::config(url)?;
        let place = schema::Place::of(url, &config);
        let (c, p, k) = (config.clone(), place.clone(), clock.clone());
        let found = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::storage(StorageCause::Stopped, None, e.to_string()))?;
            rt.block_on(async {
                let mut client = schema::connect(&c, &p).await?;
                let found = schema::prepare(&mut client, &p, create).await?;
                if found == schema::Found::Ready {
                    // Leases that ran out while no workq was running are timed out before
                    // the store is handed out, as `open` does: a command that runs for a
                    // moment must not show them still held. (A pool of this runtime's own,
                    // gone with it.)
                    // One that fails (a user who may only read) leaves them to a process
                    // that may write.
                    let once = Self::pooled(c, p, k, Options::default(), false, false)?;
                    once.sweep().await.ok();
                }
                Ok::<_, Error>(found)
            })
        })
        .join()
        .map_err(|_| Error::storage(StorageCause::Stopped, None, "schema check failed"))??;
        if let schema::Found::Empty(where_) = found {
            return Err(Error::NotFound {
                what: Thing::Database,
                name: place.url.clone(),
                message: format!(
                    "no workq schema in {where_} (a command that only reads does not create \
                     one; `workq queue create NAME` does)"
                ),
            });
        }
        Self::pooled(config, place, clock, Options::default(), !create, true)
    }

    fn pooled(
        config: tokio_postgres::Config,
        place: schema::Place,
        clock: Arc<dyn Clock>,
        options: Options,
        read_only: bool,
        background: bool,
    ) -> Result<PgStore> {
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::storage(StorageCause::CannotOpen, None, e.to_string()))?;
        let inner = Arc::new(Inner {
            pool,
            clock,
            live: Arc::new(live::Live::new()),
            stop: watch::channel(()).0,
            options,
            seen: Mutex::new(HashMap::new()),
            place,
            lines: Default::default(),
            read_only,
        });
        if background {
            live::start(&inner, config);
        }
        Ok(PgStore { inner })
    }

    /// Whether this store holds the schema's leader lock, and so runs the periodic work
    /// (sweeps here; alert checks in `workq serve`).
    pub fn is_leader(&self) -> bool {
        self.inner.live.is_leader()
    }

    /// Whether this store's LISTEN connection is listening for other processes' commits.
    pub fn is_listening(&self) -> bool {
        self.inner.live.is_listening()
    }

    /// How many periodic sweeps this store has run (as the leader).
    pub fn sweeps_run(&self) -> u64 {
        self.inner.live.swept()
    }

    /// Whether every change is refused (opened for reading only).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Where this store is: the URL without its password.
    pub fn label(&self) -> &str {
        &self.inner.place.url
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner.client().await
    }
}

/// Times out leases that ran out, every `sweep_every`, for as long as the store lives, while
/// it leads the schema.
async fn sweeper(inner: Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => i.options.sweep_every,
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.live.is_leader() {
            continue;
        }
        let store = PgStore { inner };
        // One that fails (the server went away) is tried again next time.
        let _ = store.sweep().await;
        live::swept(&store.inner.live);
    }
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        use deadpool_postgres::PoolError;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => schema::connect_error(&self.place, &e),
            other => Error::storage(
                StorageCause::CannotOpen,
                None,
                format!("PostgreSQL at {}: {other}", self.place.server),
            ),
        })
    }

    /// Tells other processes of a transaction's events in the transaction (one NOTIFY,
    /// delivered only if it commits), when this store has no notifier to hand them to
    /// after the commit (see `live`).
    async fn notify(&self, ctx: &Ctx<'_>, events: &[Event], ready: u64) -> Result<()> {
        if events.is_empty() || self.live.has_notifier() {
            return Ok(());
        }
        let head = live::payload_head(&self.live.id, events, ready);
        let st = ctx
            .client()
            .prepare_cached(live::notify_sql())
            .await
            .map_err(schema::pg_error)?;
        let rows = ctx.query(&st, &[&head]).await?;
        if let Some(row) = rows.first() {
            self.live.cover(row.get(0));
        }
        Ok(())
    }

    /// Sends a committed transaction's events and wakes as many long polls as it made
    /// items takeable; other processes hear of them from the notifier (or the
    /// transaction's own NOTIFY).
    fn publish(&self, events: Vec<Event>, ready: u64) {
        if self.live.has_notifier() {
            self.live.post(&events, ready);
        }
        self.live.send(events.into_iter().map(Ok).collect(), ready);
    }
}

/// `Ctx::ready` for a change that may make anything takeable (a queue resumed, a limit
/// raised): every poller looks.
pub(crate) const WAKE_ALL: u64 = u64::MAX;

/// A named parameter's value.
pub(crate) type P<'a> = (&'a str, &'a (dyn ToSql + Sync));

/// An owned parameter value (filters build their parameters).
pub(crate) type Val = Box<dyn ToSql + Sync + Send>;

/// Named parameters: `p!["now" => ms(now), "queue" => q.id]`.
macro_rules! p {
    ($($k:literal => $v:expr),* $(,)?) => {
        &[$(($k, &$v as &(dyn tokio_postgres::types::ToSql + Sync))),*]
    };
}
pub(crate) use p;

/// What a call sees: its transaction, the time of the call, and the events, wake-ups and
/// counter changes it causes, published or written at its commit.
///
/// The transaction is driven by hand rather than by `tokio_postgres::Transaction`, to save
/// round trips: its BEGIN is sent with its first statement, and its COMMIT with its last
/// (the counters, `commit_with`), each pair pipelined on the connection. A call dropped
/// while its transaction is open (its caller went away) closes its connection, so nothing
/// half-done goes back to the pool; PostgreSQL rolls it back.
pub(crate) struct Ctx<'a> {
    client: Option<deadpool_postgres::Object>,
    begin: &'static str,
    /// BEGIN sent (with the first statement).
    begun: std::sync::atomic::AtomicBool,
    /// COMMIT or ROLLBACK done.
    ended: bool,
    pub now: Time,
    pub events: Vec<Event>,
    pub ready: u64,
    pub jitter: Jitter,
    pub deltas: write::Deltas,
    /// Workers seen in this call: (processed, failed).
    pub workers: HashMap<String, (i64, i64)>,
    /// (worker, queue) heard from in this call.
    pub worker_queues: std::collections::BTreeSet<(String, i64)>,
    pub inner: &'a Inner,
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        if self.is_open() {
            if let Some(client) = self.client.take() {
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
}

impl<'a> Ctx<'a> {
    fn new(client: deadpool_postgres::Object, kind: Kind, inner: &'a Inner) -> Ctx<'a> {
        Ctx {
            client: Some(client),
            begin: match kind {
                // One snapshot for everything a read looks at.
                Kind::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                Kind::Write => "BEGIN",
            },
            begun: Default::default(),
            ended: false,
            now: inner.clock.now(),
            events: Vec::new(),
            ready: 0,
            jitter: inner.options.jitter,
            deltas: write::Deltas::default(),
            workers: HashMap::new(),
            worker_queues: Default::default(),
            inner,
        }
    }

    fn client(&self) -> &deadpool_postgres::Object {
        self.client.as_ref().expect("a call's connection")
    }

    fn is_open(&self) -> bool {
        self.begun.load(std::sync::atomic::Ordering::SeqCst) && !self.ended
    }

    /// The BEGIN to send before this statement, if none was sent yet.
    fn begin_first(&self) -> Option<&'static str> {
        let sent = self.begun.swap(true, std::sync::atomic::Ordering::SeqCst);
        (!sent).then_some(self.begin)
    }

    /// Sends `op` (a statement not yet polled), after the BEGIN if it is the first: both
    /// in one round trip. (`biased`: the futures are first polled in order, and each sends
    /// its message at its first poll.)
    async fn first<T>(
        &self,
        op: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        let out = match self.begin_first() {
            Some(begin) => {
                let (b, out) = tokio::join!(biased; self.client().batch_execute(begin), op);
                b.map_err(schema::pg_error)?;
                out
            }
            None => op.await,
        };
        out.map_err(schema::pg_error)
    }

    async fn query(
        &self,
        st: &tokio_postgres::Statement,
        vals: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.first(self.client().query(st, vals)).await
    }

    /// Rows of a statement written with named parameters (`sql::numbered`).
    pub async fn rows(&self, sql: &str, p: &[P<'_>]) -> Result<Vec<Row>> {
        let (text, vals) = bind(sql, p);
        let st = self
            .client()
            .prepare_cached(&text)
            .await
            .map_err(schema::pg_error)?;
        self.query(&st, &vals).await
    }

    pub async fn row(&self, sql: &str, p: &[P<'_>]) -> Result<Row> {
        let mut rows = self.rows(sql, p).await?;
        match rows.len() {
            0 => Err(Error::storage(
                StorageCause::Io,
                None,
                format!("database error: no row from {sql}"),
            )),
            _ => Ok(rows.swap_remove(0)),
        }
    }

    pub async fn opt(&self, sql: &str, p: &[P<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, p).await?.into_iter().next())
    }

    /// How many rows a statement changed.
    pub async fn exec(&self, sql: &str, p: &[P<'_>]) -> Result<u64> {
        let (text, vals) = bind(sql, p);
        let client = self.client();
        let st = client
            .prepare_cached(&text)
            .await
            .map_err(schema::pg_error)?;
        self.first(client.execute(&st, &vals)).await
    }

    /// The transaction's last statement and its COMMIT, sent together: its one row, once
    /// both succeeded. (A statement that fails makes PostgreSQL take the COMMIT as a
    /// ROLLBACK.)
    pub async fn commit_with(&mut self, sql: &str, p: &[P<'_>]) -> Result<Row> {
        let (text, vals) = bind(sql, p);
        let client = self.client();
        let st = client
            .prepare_cached(&text)
            .await
            .map_err(schema::pg_error)?;
        let begin = self.begin_first();
        let (b, rows, c) = tokio::join!(
            biased;
            async {
                match begin {
                    Some(begin) => client.batch_execute(begin).await,
                    None => Ok(()),
                }
            },
            client.query(&st, &vals),
            client.batch_execute("COMMIT")
        );
        let done = b.and(rows).map_err(schema::pg_error);
        let committed = c.map_err(schema::pg_error);
        self.ended = true;
        let mut rows = done?;
        committed?;
        match rows.len() {
            0 => Err(Error::storage(
                StorageCause::Io,
                None,
                format!("database error: no row from {sql}"),
            )),
            _ => Ok(rows.swap_remove(0)),
        }
    }

    /// A `COPY … FROM STDIN` in this transaction, which an earlier statement began.
    pub async fn copy_in(&self, sql: &str) -> Result<tokio_postgres::CopyInSink<bytes::Bytes>> {
        assert!(
            self.is_open(),
            "a COPY comes after the statement that began its transaction"
        );
        let client = self.client();
        let st = client.prepare_cached(sql).await.map_err(schema::pg_error)?;
        client.copy_in(&st).await.map_err(schema::pg_error)
    }

    /// Commits, unless `commit_with` did (or nothing was ever sent).
    async fn commit(&mut self) -> Result<()> {
        if self.is_open() {
            let r = self.client().batch_execute("COMMIT").await;
            self.ended = true;
            r.map_err(schema::pg_error)?;
        }
        Ok(())
    }

    async fn rollback(&mut self) {
        if self.is_open() {
            let r = self.client().batch_execute("ROLLBACK").await;
            self.ended = r.is_ok();
        }
    }
}

/// The statement with numbered parameters and their values in order.
fn bind<'p>(sql: &str, p: &'p [P<'p>]) -> (String, Vec<&'p (dyn ToSql + Sync)>) {
    let (text, names) = crate::store::sql::numbered(sql);
    let vals = names
        .iter()
        .map(|n| {
            p.iter()
                .find(|(k, _)| k == n)
                .unwrap_or_else(|| panic!("no value for :{n} in {sql}"))
                .1
        })
        .collect();
    (text, vals)
}

/// How a call's transaction runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl PgStore {
    /// Why a change to a store opened for reading only is refused.
    fn refused_read_only(&self) -> Error {
        Error::storage(
            StorageCause::ReadOnly,
            None,
            format!(
                "database {} is open for reading only; nothing was changed",
                self.inner.place.url
            ),
        )
    }

    fn begin(&self, client: deadpool_postgres::Object, kind: Kind) -> Result<Ctx<'_>> {
        if kind == Kind::Write && self.inner.read_only {
            return Err(self.refused_read_only());
        }
        Ok(Ctx::new(client, kind, &self.inner))
    }

    /// Commits a call that succeeded (its counters with the COMMIT), then publishes what it
    /// did; rolls back one that failed.
    async fn end<T>(&self, mut ctx: Ctx<'_>, out: Result<T>) -> Result<T> {
        match out {
            Err(e) => {
                ctx.rollback().await;
                Err(e)
            }
            Ok(v) => {
                ctx.events.dedup();
                if !self.inner.live.has_notifier() {
                    // The events' NOTIFY in the transaction, before the counters' statement
                    // commits it.
                    let (events, ready) = (std::mem::take(&mut ctx.events), ctx.ready);
                    self.inner.notify(&ctx, &events, ready).await?;
                    ctx.events = events;
                }
                write::settle(&mut ctx).await?;
                ctx.commit().await?;
                let events = std::mem::take(&mut ctx.events);
                self.inner.publish(events, ctx.ready);
                Ok(v)
            }
        }
    }
}

/// One call in one transaction: `txn!(self, Kind::Write, |ctx| body)`; `body` may use
/// `ctx` (a `&mut Ctx`) and `?`. A transaction PostgreSQL aborted for a deadlock or a
/// serialization failure (two calls that locked the same rows crosswise) is run again from
/// the start, a few times, before the caller is told the database is busy.
macro_rules! txn {
    ($self:ident, $kind:expr, |$ctx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let out = async {
                let client = $self.client().await?;
                let mut c = $self.begin(client, $kind)?;
                let out = async {
                    let $ctx = &mut c;
                    $body
                }
                .await;
                $self.end(c, out).await
            }
            .await;
            match out {
                Err(Error::Busy { .. }) if attempt < RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                out => break out,
            }
        }
    }};
}

/// How often a transaction aborted by a deadlock is tried again.
const RETRIES: u32 = 4;

#[async_trait]
impl Backend for PgStore {
    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        txn!(self, Kind::Write, |ctx| write::create_queue(
            ctx,
            name,
            settings.clone()
        )
        .await)
    }

    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        txn!(self, Kind::Write, |ctx| write::update_queue(
            ctx,
            name,
            settings.clone()
        )
        .await)
    }

    async fn set_queue_state(&self, name: &str, state: QueueState) -> Result<Queue> {
        txn!(self, Kind::Write, |ctx| write::set_queue_state(
            ctx, name, state
        )
        .await)
    }

    async fn delete_queue(&self, name: &str, force: bool) -> Result<u64> {
        txn!(self, Kind::Write, |ctx| write::delete_queue(
            ctx, name, force
        )
        .await)
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        txn!(self, Kind::Read, |ctx| read::queues(ctx).await)
    }

    async fn queue(&self, name: &str) -> Result<QueueSummary> {
        txn!(self, Kind::Read, |ctx| {
            let q = rows::queue_by_name(ctx, name, false).await?;
            read::summary(ctx, q).await
        })
    }

    async fn add_items(&self, queue: &str, items: Vec<NewItem>, actor: &str) -> Result<Vec<Item>> {
        let call = (queue.to_string(), items, actor.to_string());
        group::shared(
            self,
            |i| &i.lines.add,
            call,
            |store, calls| async move {
                in_one!(store, calls, |ctx, calls| write::add_items(ctx, calls)
                    .await)
            },
        )
        .await
    }

    /// The rows are spooled to a file as the producer sends them (refusing what the rules
    /// refuse), then stored in one transaction (see `import`); a dry run checks each batch
    /// as it comes, in a read transaction of its own, and keeps no rows.
    async fn import(
        &self,
        queue: &str,
        opts: ImportOptions,
        mut rows: ImportRows,
        actor: &str,
    ) -> Result<ImportReport> {
        if self.inner.read_only && !opts.dry_run {
            // Refused before any row is waited for.
            return Err(self.refused_read_only());
        }
        // An unknown queue is refused before any row is waited for.
        let q = txn!(self, Kind::Read, |ctx| rows::queue_by_name(
            ctx, queue, false
        )
        .await)?;
        if opts.dry_run {
            let mut keys = import::Keys::new(&q, &opts);
            let mut report = ImportReport::default();
            while let Some(batch) = rows.recv().await {
                let good: Vec<import::Keyed> = batch
                    .into_iter()
                    .filter_map(|r| spool::checked(r, &mut report.rejected))
                    .map(|r| (r.line, r.item.key))
                    .collect();
                let held = txn!(self, Kind::Read, |ctx| keys.held(ctx, &good).await)?;
                for v in keys.verdicts(&good, &held) {
                    match v {
                        Some(e) => report.rejected.push(e),
                        None => report.imported += 1,
                    }
                }
            }
            report.rejected.sort_by_key(|e| e.line);
            if !opts.skip_bad && !report.rejected.is_empty() {
                report.imported = 0;
            }
            return Ok(report);
        }
        let beside = std::env::temp_dir().join("workq-postgres");
        let mut sp = tokio::task::spawn_blocking(move || Spool::fill(&beside, rows))
            .await
            .map_err(|e| {
                Error::storage(
                    StorageCause::Stopped,
                    None,
                    format!("import task failed: {e}; nothing imported"),
                )
            })??;
        if !opts.skip_bad && !sp.rejected.is_empty() {
            // Refused whatever the keys say; they are checked so that the refusal names
            // every bad row.
            let rejected = txn!(self, Kind::Read, |ctx| import::refusal(
                ctx, queue, &opts, &mut sp
            )
            .await)?;
            return Err(spool::refused(rejected));
        }
        txn!(self, Kind::Write, |ctx| import::import(
            ctx, queue, &opts, &mut sp, actor
        )
        .await)
    }

    async fn items(&self, filter: Filter, page: PageRequest) -> Result<Page> {
        txn!(self, Kind::Read, |ctx| read::items(ctx, &filter, &page)
            .await)
    }

    async fn item(&self, id: &str) -> Result<ItemDetail> {
        txn!(self, Kind::Read, |ctx| read::item(ctx, id).await)
    }

    async fn groups(&self, queue: Option<String>) -> Result<Vec<ExceptionGroup>> {
        txn!(self, Kind::Read, |ctx| read::groups(ctx, queue.as_deref())
            .await)
    }

    async fn upcoming(
        &self,
        queue: &str,
        within: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Item>> {
        txn!(self, Kind::Read, |ctx| read::upcoming(
            ctx, queue, within, limit
        )
        .await)
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        txn!(self, Kind::Read, |ctx| read::workers(ctx).await)
    }

    async fn register_worker(&self, name: &str, agent: AgentInfo) -> Result<()> {
        txn!(self, Kind::Write, |ctx| write::register_worker(
            ctx, name, &agent
        )
        .await)
    }

    async fn dequeue(&self, req: DequeueRequest) -> Result<Dequeued> {
        write::check_dequeue(&req)?;
        let deadline = tokio::time::Instant::now() + req.wait;
        loop {
            // In the line for a wake-up before looking, so a commit in between is not missed.
            let woken = self.inner.live.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            let got = group::shared(
                self,
                |i| &i.lines.dequeue,
                req.clone(),
                |store, reqs| async move {
                    in_one!(store, reqs, |ctx, reqs| write::dequeue(ctx, reqs).await)
                },
            )
            .await?;
            let now = tokio::time::Instant::now();
            if !got.leases.is_empty() || now >= deadline {
                return Ok(got);
            }
            let every = self.inner.options.poll_every;
            let _ = tokio::time::timeout(every.min(deadline - now), woken).await;
        }
    }

    async fn heartbeat(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Time>>> {
        txn!(self, Kind::Write, |ctx| write::heartbeat(ctx, &leases)
            .await)
    }

    async fn finish(&self, outcomes: Vec<Outcome>, worker: &str) -> Result<Vec<Result<Finished>>> {
        let call = (outcomes, worker.to_string());
        group::shared(
            self,
            |i| &i.lines.finish,
            call,
            |store, calls| async move {
                in_one!(store, calls, |ctx, calls| write::finish(ctx, calls).await)
            },
        )
        .await
    }

    async fn hand_back(
        &self,
        leases: Vec<HandBack>,
        worker: &str,
        note: &str,
    ) -> Result<Vec<Result<Finished>>> {
        txn!(self, Kind::Write, |ctx| write::hand_back(
            ctx, &leases, worker, note
        )
        .await)
    }

    async fn preview(
        &self,
        target: Target,
        action: Option<ActionKind>,
        sample: u32,
    ) -> Result<Preview> {
        txn!(self, Kind::Read, |ctx| actions::preview(
            ctx,
            &target,
            action.as_ref(),
            sample
        )
        .await)
    }

    async fn act(&self, req: ActionRequest) -> Result<ActionResult> {
        txn!(self, Kind::Write, |ctx| actions::act(ctx, &req).await)
    }

    async fn undo(&self, req: UndoRequest) -> Result<UndoResult> {
        if req.dry_run {
            return txn!(self, Kind::Read, |ctx| actions::undo_preview(
                ctx,
                req.action_id
            )
            .await);
        }
        txn!(self, Kind::Write, |ctx| actions::undo(ctx, &req).await)
    }

    async fn actions(&self, query: ActionQuery) -> Result<Vec<ActionInfo>> {
        txn!(self, Kind::Read, |ctx| actions::list(ctx, &query).await)
    }

    async fn create_token(&self, name: &str, role: Role) -> Result<NewToken> {
        txn!(self, Kind::Write, |ctx| admin::create_token(
            ctx, name, role
        )
        .await)
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        txn!(self, Kind::Read, |ctx| admin::tokens(ctx).await)
    }

    async fn revoke_token(&self, name: &str) -> Result<TokenInfo> {
        txn!(self, Kind::Write, |ctx| admin::revoke_token(ctx, name)
            .await)
    }

    async fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        txn!(self, Kind::Read, |ctx| admin::verify_token(ctx, secret)
            .await)
    }

    async fn add_alert(&self, alert: NewAlert) -> Result<Alert> {
        txn!(self, Kind::Write, |ctx| admin::add_alert(ctx, &alert).await)
    }

    async fn alerts(&self) -> Result<Vec<Alert>> {
        txn!(self, Kind::Read, |ctx| admin::alerts(ctx).await)
    }

    async fn remove_alert(&self, name: &str) -> Result<Alert> {
        txn!(self, Kind::Write, |ctx| admin::remove_alert(ctx, name)
            .await)
    }

    async fn set_alert_state(
        &self,
        name: &str,
        seen_generation: u64,
        to: AlertState,
    ) -> Result<Option<Alert>> {
        txn!(self, Kind::Write, |ctx| admin::set_alert_state(
            ctx,
            name,
            seen_generation,
            to
        )
        .await)
    }

    async fn sweep(&self) -> Result<u64> {
        txn!(self, Kind::Write, |ctx| write::sweep(ctx).await)
    }

    async fn prune(&self, before: Time, most: u64) -> Result<u64> {
        let before = before.timestamp_millis();
        txn!(self, Kind::Write, |ctx| write::prune(ctx, before, most)
            .await)
    }

    fn leads(&self) -> bool {
        self.is_leader()
    }

    fn subscribe(&self) -> Feed {
        use tokio::sync::broadcast::error::RecvError;
        let rx = self.inner.live.events.subscribe();
        Feed::from_stream(futures::stream::unfold(Some(rx), |rx| async move {
            let mut rx = rx?;
            let next = match rx.recv().await {
                Ok(next) => next,
                Err(RecvError::Lagged(n)) => Err(crate::backend::Gap::Lagged(n)),
                Err(RecvError::Closed) => {
                    let why = "the engine closed its change feed".to_string();
                    return Some((Err(crate::backend::Gap::Disconnected(why)), None));
                }
            };
            Some((next, Some(rx)))
        }))
    }
}
