//! Opening a workq SQLite file: pragmas, the schema and its migrations, and turning
//! SQLite's errors into ones that say what is wrong with the file.

use crate::backend::{Error, StorageCause as Cause};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

/// Marks a file as ours (`PRAGMA application_id`), so a foreign SQLite file is refused.
const APPLICATION_ID: i32 = 0x776b_7131; // "wkq1"

/// How long a writer waits for another process's lock before saying the file is locked.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Each entry moves the schema one version up; `user_version` records how far a file is.
const MIGRATIONS: &[&str] = &[
    r#"
-- AUTOINCREMENT: a deleted queue's or item's id is never given to a new one, so undo
-- records, history and lease tokens cannot end up naming someone else.
CREATE TABLE queues (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    description   TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'active',
    ttl_ms        INTEGER,
    sla_ms        INTEGER,
    sla_risk_pct  INTEGER NOT NULL,
    deadline      TEXT,
    tz            TEXT NOT NULL,
    max_retries   INTEGER NOT NULL,
    lease_ms      INTEGER NOT NULL,
    concurrency   INTEGER,
    priority      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Maintained counters: `queue ls` must not count a million rows.
    n_queued      INTEGER NOT NULL DEFAULT 0,
    n_processing  INTEGER NOT NULL DEFAULT 0,
    n_processed   INTEGER NOT NULL DEFAULT 0,
    n_on_hold     INTEGER NOT NULL DEFAULT 0,
    n_exception   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE items (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order: FIFO within a priority
    id            TEXT NOT NULL UNIQUE,     -- ULID, what people and APIs see
    queue_id      INTEGER NOT NULL,
    name          TEXT,
    key           TEXT,
    value         TEXT NOT NULL,
    priority      INTEGER NOT NULL,         -- 0 high, 1 normal, 2 low
    status        TEXT NOT NULL,
    reason        TEXT,
    notes         TEXT,                     -- JSON array of {at, by, text}
    signature     TEXT,                     -- masked latest note of an exception
    retry_count   INTEGER NOT NULL DEFAULT 0,
    requeue_count INTEGER NOT NULL DEFAULT 0,
    enqueued_at   INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    expires_at    INTEGER,
    delay_until   INTEGER,
    worker        TEXT,
    lease_token   TEXT,
    lease_until   INTEGER,
    version       INTEGER NOT NULL DEFAULT 1,
    created_by    TEXT NOT NULL,
    -- 1: queued but not takeable now (delayed, or expired). Dormant items leave
    -- items_ready, so a dequeue never walks past thousands of them.
    dormant       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX items_key ON items(queue_id, key) WHERE key IS NOT NULL;
CREATE INDEX items_queue ON items(queue_id, seq);
CREATE INDEX items_ready ON items(queue_id, priority, seq) WHERE status = 'queued' AND dormant = 0;
-- Delayed items, by when they wake (a dequeue wakes its queue's due ones first).
CREATE INDEX items_dormant ON items(queue_id, delay_until) WHERE status = 'queued' AND dormant = 1;
-- Open items only: a completion leaves it instead of moving inside it, and processed items
-- (usually the most) are listed through items_queue.
-- priority rides along after seq: a status + priority filter is checked in the index,
-- without a row lookup per skipped entry.
CREATE INDEX items_status ON items(queue_id, status, seq, priority) WHERE status <> 'processed';
CREATE INDEX items_lease ON items(lease_until) WHERE status = 'processing';
CREATE INDEX items_open ON items(queue_id, enqueued_at) WHERE status <> 'processed';
CREATE INDEX items_expiring ON items(queue_id, expires_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
CREATE INDEX items_groups ON items(queue_id, reason, signature) WHERE status = 'exception';

-- Every change to an item. Kept when an item is deleted (it is the audit trail),
-- removed with its queue. A row that ends a processing attempt (complete, fail, timeout,
-- hold) records when the attempt started and who held it: the dequeue itself is not a row
-- of its own, so the hot path writes one history row per attempt, not two.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    item_seq    INTEGER NOT NULL,
    queue_id    INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    by          TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    reason      TEXT,
    note        TEXT,
    detail      TEXT,
    action_id   INTEGER,
    attempt_started INTEGER,
    attempt_worker  TEXT
);
CREATE INDEX history_item ON history(item_seq);

-- Human actions, for undo.
CREATE TABLE actions (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    by        TEXT NOT NULL,
    verb      TEXT NOT NULL,
    note      TEXT,
    touched   INTEGER NOT NULL,
    undone_at INTEGER
);
CREATE TABLE action_items (
    action_id     INTEGER NOT NULL,
    item_seq      INTEGER NOT NULL,
    version_after INTEGER,                  -- NULL: the action deleted the item
    before        TEXT NOT NULL,            -- the row as it was, JSON
    PRIMARY KEY (action_id, item_seq)
) WITHOUT ROWID;

-- Per queue and minute of enqueue: how many items are still open (not processed). SLA counts
-- add these up and count exactly only the minute the SLA boundary falls in.
CREATE TABLE open_minutes (
    queue_id INTEGER NOT NULL,
    minute   INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (queue_id, minute)
) WITHOUT ROWID;

-- Per queue and minute: finished attempts, for throughput, handling time and error rate.
CREATE TABLE stats (
    queue_id    INTEGER NOT NULL,
    minute      INTEGER NOT NULL,
    processed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    handling_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, minute)
) WITHOUT ROWID;

-- Bookmarks of periodic work, shared by every process on the file.
CREATE TABLE marks (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE workers (
    name      TEXT PRIMARY KEY,
    last_seen INTEGER NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"#,
    // 2: expired items in queue health.
    r#"
-- Expired items count as out of SLA (SPEC §3): with enqueued_at in the index, queue health
-- tells which of them the age tallies already count from the index alone, no row lookups.
DROP INDEX items_expiring;
CREATE INDEX items_expiring ON items(queue_id, expires_at, enqueued_at)
    WHERE status = 'queued' AND expires_at IS NOT NULL;
"#,
    // 3: the action log. A file at 1 (the last release) goes through 2, 3 and 4 in one open.
    r#"
-- The action log: what each action was (its ActionKind as JSON: an undo checks the parts it
-- set), who undid it, and how many items that restored (an undo on a live queue keeps the
-- items that moved on).
ALTER TABLE actions ADD COLUMN kind TEXT;
ALTER TABLE actions ADD COLUMN undone_by TEXT;
ALTER TABLE actions ADD COLUMN restored INTEGER;
-- The queues each action touched, for `workq actions --queue`.
CREATE TABLE action_queues (
    queue_id  INTEGER NOT NULL,
    action_id INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (queue_id, action_id)
) WITHOUT ROWID;
CREATE INDEX action_queues_action ON action_queues(action_id);
INSERT INTO action_queues (queue_id, action_id, n)
    SELECT json_extract(before, '$.queue_id'), action_id, count(*)
    FROM action_items GROUP BY 1, 2;
"#,
    // 4: sorted pages. The console sorts a million items by name one page at a time:
    // without this every page sorted the whole queue. Names rarely change, so the index
    // costs an insert and no more.
    r#"
CREATE INDEX items_name ON items(queue_id, name, seq);
"#,
    // 5: retry backoff.
    r#"
-- How long automatic retries wait: the first delay and the most any one waits (both NULL:
-- retries are queued again at once). See rules::retry_delay.
ALTER TABLE queues ADD COLUMN retry_backoff_ms INTEGER;
ALTER TABLE queues ADD COLUMN retry_backoff_max_ms INTEGER;
"#,
    // 6: deleted items read by id. Their history is kept and their undo record holds the
    // row as it was: `item show` of one finds that record here instead of saying "unknown".
    r#"
CREATE INDEX action_items_deleted ON action_items(json_extract(before, '$.id'))
    WHERE version_after IS NULL;
"#,
    // 7: bearer tokens for `workq serve`. Only a token's SHA-256 is kept; a revoked one
    // stays listed (who had access, until when) and its name can be given again.
    r#"
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at IS NULL;
"#,
    // 8: alerts. `state` is what the last check
    // found; a checker moves it with a compare-and-set on (state, generation), so two
    // checkers cannot both fire one transition.
    r#"
CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    queue_id   INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    rule       TEXT NOT NULL,
    run        TEXT,
    webhook    TEXT,
    state      TEXT NOT NULL DEFAULT 'cleared',
    generation INTEGER NOT NULL DEFAULT 0,
    changed_at INTEGER,
    created_at INTEGER NOT NULL,
    CHECK ((run IS NULL) <> (webhook IS NULL))
);
"#,
    // 9: a hard deadline per queue: an item processing longer than this from its start is
    // timed out even while heartbeating (NULL: no limit).
    r#"
ALTER TABLE queues ADD COLUMN max_runtime_ms INTEGER;
"#,
    // 10: agents register (host, version, queues, state… as JSON; NULL for a scripted
    // worker), and workers are heard from per queue, for the queue's `no-worker` alert.
    r#"
ALTER TABLE workers ADD COLUMN agent TEXT;
CREATE TABLE worker_queues (
    worker    TEXT NOT NULL,
    queue_id  INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (worker, queue_id)
) WITHOUT ROWID;
"#,
    // 11: `serve --retain` removes processed items oldest finish first, a batch at a time.
    r#"
CREATE INDEX items_finished ON items(finished_at) WHERE status = 'processed';
"#,
];

pub fn schema_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Statements each connection keeps compiled. The store uses about 50 (more with the
/// filters' variants); rusqlite's default of 16 made the hot path recompile its SQL on
/// every call (30 % of a one-item-per-call profile was SQLite's parser).
const STATEMENT_CACHE: usize = 256;

/// What every connection is set up with before it is used: enough compiled statements
/// kept, and plans that do not depend on bound values (QPSG). Without QPSG a statement
/// with `LIMIT ?` (the claim, every page) is compiled again on each run (`sqlite3_step`
/// reprepares it when the value is rebound): 40 % of a one-item-per-call profile.
fn tuned(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// Process-wide SQLite settings, made before its first connection: SQLite's memory
/// statistics take a global mutex on every allocation and free (≈ 5 % of an import's
/// profile), and workq never reads them. Once SQLite is initialised (someone opened a
/// connection first) the call is refused and changes nothing.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a plain int option; SQLite checks itself that it is not yet initialised.
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0i32);
        }
    });
}

/// Opens (creating if need be) a workq database and brings its schema up to date; or, not
/// `write`, opens it read-only and refuses a schema that is not up to date.
pub fn open(path: &Path, write: bool) -> Result<Connection, Error> {
    configure_sqlite();
    if path.is_dir() {
        return Err(Error::storage(
            Cause::BadPath,
            Some(path),
            format!(
                "{} is a directory; give the path of a database file",
                path.display()
            ),
        ));
    }
    if write {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::storage(
                    Cause::BadPath,
                    Some(path),
                    format!("cannot create directory {}: {e}", dir.display()),
                )
            })?;
        }
    }
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| storage(path, e))?;
    tuned(&conn)
        .and_then(|_| patient(&conn))
        .map_err(|e| storage_on(&conn, path, e))?;
    if write && conn.is_readonly("main").unwrap_or(false) {
        return Err(Error::storage(
            Cause::ReadOnly,
            Some(path),
            format!(
                "database {} is read-only (check the file's permissions)",
                path.display()
            ),
        ));
    }
    let version = known(&conn, path)?;
    if write {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;",
        )
        .map_err(|e| storage_on(&conn, path, e))?;
        migrate(&conn, version).map_err(|e| storage_on(&conn, path, e))?;
    } else {
        conn.execute_batch("PRAGMA cache_size = -32768;")
            .map_err(|e| storage_on(&conn, path, e))?;
        if version < schema_version() {
            return Err(outdated(path, version));
        }
    }
    Ok(conn)
}

/// An older workq's file that this user cannot write: upgrading its schema is a write.
fn outdated(path: &Path, version: i32) -> Error {
    Error::storage(
        Cause::NeedsUpgrade,
        Some(path),
        format!(
            "database {} was written by an older workq (schema version {version}; this one \
             reads {}) and must be upgraded, which needs write access: run any workq command \
             on it once as a user who can write the file",
            path.display(),
            schema_version()
        ),
    )
}

/// What a read-only open finds to do before it may read: a schema to migrate, or leases
/// that ran out while no workq had the file open (a writer's first sweep times them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub migrate: bool,
    pub sweep: bool,
}

/// Looks at the file without writing: refuses what any open refuses (not a workq file, a
/// newer schema) and says what a writer would do first. `now_ms`: the store's clock.
pub fn due(path: &Path, now_ms: i64) -> Result<Due, Error> {
    configure_sqlite();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| storage(path, e))?;
    patient(&conn).map_err(|e| storage_on(&conn, path, e))?;
    let version = known(&conn, path)?;
    if version < schema_version() {
        return Ok(Due {
            migrate: true,
            sweep: false,
        });
    }
    // What the writer's sweep looks for: `rules::LEASE_RAN_OUT`, as the stores render it.
    let ran_out = crate::store::sql::cond(
        &crate::rules::LEASE_RAN_OUT,
        &crate::store::sql::Names {
            item: "",
            queue: None,
            param: &crate::store::sql::named,
        },
    )
    .0;
    let sweep = conn
        .query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM items WHERE {ran_out})"),
            rusqlite::named_params! {":now": now_ms},
            |r| r.get(0),
        )
        .map_err(|e| storage_on(&conn, path, e))?;
    Ok(Due {
        migrate: false,
        sweep,
    })
}

/// Whether this user may write the file at `path`: opened for writing as SQLite opens it
/// (permissions, an immutable file, a read-only mount all refuse), nothing written; a
/// plain open, cheaper than a connection.
pub fn can_write(path: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(path).is_ok()
}

/// The schema version of a workq file; refuses a foreign SQLite file and a newer schema.
fn known(conn: &Connection, path: &Path) -> Result<i32, Error> {
    let (app_id, version, tables) = identify(conn).map_err(|e| storage_on(conn, path, e))?;
    if app_id != APPLICATION_ID && tables > 0 {
        return Err(Error::storage(
            Cause::NotWorkq,
            Some(path),
            format!(
                "{} is an SQLite database but not a workq one",
                path.display()
            ),
        ));
    }
    if version > schema_version() {
        return Err(Error::storage(
            Cause::NewerSchema,
            Some(path),
            format!(
                "database {} has schema version {version}, newer than this workq knows ({}): upgrade workq",
                path.display(),
                schema_version()
            ),
        ));
    }
    Ok(version)
}

/// A connection for reads only, on a file the writer has already opened and migrated (or
/// that a read-only store found current). `read_only`: opened so, for a store that never
/// writes (the file may be one this user cannot write).
pub fn open_reader(path: &Path, read_only: bool) -> Result<Connection, Error> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| storage(path, e))?;
    tuned(&conn)
        .and_then(|_| patient(&conn))
        .and_then(|_| conn.execute_batch("PRAGMA cache_size = -32768; PRAGMA query_only = ON;"))
        .map_err(|e| storage_on(&conn, path, e))?;
    Ok(conn)
}

/// Waits for another process's lock by retrying often: SQLite's own handler sleeps 1, 2, 5,
/// 10… ms between tries, and a busy writer in another process begins its next transaction
/// microseconds after the last, so the waiter would only get in when the other is done.
/// Gives up when `BUSY_TIMEOUT` has really passed (counted on the clock, not in tries:
/// sleeps overrun on a loaded machine), and records how long it waited for the message.
pub fn patient(conn: &Connection) -> rusqlite::Result<()> {
    fn retry(tries: i32) -> bool {
        let start = match (tries, WAIT_START.get()) {
            (0, _) | (_, None) => {
                let now = Instant::now();
                WAIT_START.set(Some(now));
                now
            }
            (_, Some(t)) => t,
        };
        let waited = start.elapsed();
        if waited >= BUSY_TIMEOUT {
            WAITED.set(Some(waited));
            return false;
        }
        // 100 µs for the first 20 ms, then 1 ms.
        std::thread::sleep(if waited < Duration::from_millis(20) {
            Duration::from_micros(100)
        } else {
            Duration::from_millis(1)
        });
        true
    }
    conn.busy_handler(Some(retry))
}

thread_local! {
    /// When this thread's current wait for a lock began.
    static WAIT_START: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How long this thread's last wait lasted before it gave up; taken by the message.
    static WAITED: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// "database X is locked by another process (waited 5.2s); try again": the time this
/// thread really waited, when it waited at all.
pub fn locked(path: Option<&Path>) -> Error {
    Error::busy(path, WAITED.take())
}

/// Whether SQLite failed for want of space: SQLITE_FULL, or an I/O error growing the
/// shared-memory index (`-shm`), which on a full disk is where the first open fails.
pub fn is_disk_full(e: &rusqlite::Error) -> bool {
    match e.sqlite_error() {
        Some(f) => {
            f.code == rusqlite::ErrorCode::DiskFull
                || f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
        }
        None => false,
    }
}

/// The same, also asking SQLite for the OS error behind an I/O error on `conn`.
pub fn is_disk_full_on(conn: &Connection, e: &rusqlite::Error) -> bool {
    if is_disk_full(e) {
        return true;
    }
    if e.sqlite_error_code() != Some(rusqlite::ErrorCode::SystemIoFailure) {
        return false;
    }
    // SAFETY: the handle is only read, by SQLite, on the thread that owns `conn`.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    errno == libc::ENOSPC || errno == libc::EDQUOT
}

/// `storage`, knowing the connection the error came from (to ask for its OS error).
pub fn storage_on(conn: &Connection, path: &Path, e: rusqlite::Error) -> Error {
    if is_disk_full_on(conn, &e) {
        return disk_full(path);
    }
    storage(path, e)
}

fn disk_full(path: &Path) -> Error {
    Error::storage(
        Cause::DiskFull,
        Some(path),
        format!(
            "disk full: database {} cannot grow (free some space and try again)",
            path.display()
        ),
    )
}

fn identify(conn: &Connection) -> rusqlite::Result<(i32, i32, i64)> {
    let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok((app_id, version, tables))
}

fn migrate(conn: &Connection, from: i32) -> rusqlite::Result<()> {
    if from >= schema_version() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // Another process may have migrated while we waited for the lock.
    let (_, now_at, _) = identify(conn)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(now_at as usize) {
        if let Err(e) = conn.execute_batch(sql) {
            conn.execute_batch("ROLLBACK").ok();
            return Err(e);
        }
        conn.pragma_update(None, "user_version", i as i32 + 1)?;
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.execute_batch("COMMIT")
}

/// Turns an SQLite error into one that says what is wrong and with which file.
pub fn storage(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::*;
    let p = path.display();
    if is_disk_full(&e) {
        return disk_full(path);
    }
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => locked(Some(path)),
        Some(ReadOnly) => Error::storage(
            Cause::ReadOnly,
            Some(path),
            format!("database {p} is read-only (check the file's and its directory's permissions)"),
        ),
        Some(NotADatabase) => Error::storage(
            Cause::NotWorkq,
            Some(path),
            format!("{p} is not a workq database"),
        ),
        Some(CannotOpen) => Error::storage(
            Cause::CannotOpen,
            Some(path),
            format!("cannot open database {p}: {e}"),
        ),
        _ => Error::storage(Cause::Io, Some(path), format!("database {p}: {e}")),
    }
}
