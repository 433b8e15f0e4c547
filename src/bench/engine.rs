//! What the stages measure: a way to open a backend on one of the run's databases. Each
//! backend is one entry of `ENGINES` (SQLite in-process, the HTTP client on a local
//! server; PostgreSQL next); every stage opens what it measures through it.

use crate::backend::Backend;
use crate::clock::Clock;
use crate::connect::{self, Target};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Opens the run's database `db`, kept in `dir`, on a clock.
type Open = fn(dir: &Path, db: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn Backend>, String>;

pub struct Engine {
    pub name: &'static str,
    /// Opens (creating on first use) the run's database called `db`, kept in `dir`, with
    /// `clock` as the store's time.
    open: Open,
    /// Removes the run's database called `db`, so the next open starts afresh.
    remove: fn(dir: &Path, db: &str),
}

impl Engine {
    /// The run's database `db` on the system clock.
    pub fn open(&self, dir: &Path, db: &str) -> Result<Arc<dyn Backend>, String> {
        (self.open)(dir, db, crate::clock::system())
    }

    /// The same database seen on another clock (a store a day ahead).
    pub fn open_on(
        &self,
        dir: &Path,
        db: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn Backend>, String> {
        (self.open)(dir, db, clock)
    }

    /// The run's database `db`, new and empty.
    pub fn fresh(&self, dir: &Path, db: &str) -> Result<Arc<dyn Backend>, String> {
        (self.remove)(dir, db);
        self.open(dir, db)
    }
}

pub const ENGINES: &[Engine] = &[
    Engine {
        name: "sqlite",
        open: open_sqlite,
        remove: |dir, db| super::fresh(&sqlite_file(dir, db)),
    },
    // The remote client, through a `workq serve` on 127.0.0.1 over the same SQLite file:
    // what a stage measures with it is the HTTP path beside the in-process one.
    Engine {
        name: "http",
        open: open_http,
        remove: |dir, db| super::fresh(&sqlite_file(dir, db)),
    },
    // A PostgreSQL server (`WORKQ_BENCH_PG_URL`), each run's database a schema of its own.
    Engine {
        name: "postgres",
        open: open_postgres,
        remove: |_, db| super::pg::reset(db),
    },
];

fn open_postgres(_dir: &Path, db: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn Backend>, String> {
    let url = super::pg::url(db)?;
    crate::store::postgres::PgStore::open_blocking(&url, clock, true)
        .map(|s| Arc::new(s) as Arc<dyn Backend>)
        .map_err(|e| e.to_string())
}

fn open_sqlite(dir: &Path, db: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn Backend>, String> {
    connect::connect_on(
        &Target::db(sqlite_file(dir, db)),
        connect::Open::Create,
        clock,
    )
    .map(|c| c.backend)
    .map_err(|e| e.to_string())
}

/// Serves the run's SQLite database from a thread of its own (its own runtime, so the
/// server does not share the measured workers' threads unless the machine makes it),
/// and opens the HTTP client on it with an admin token. The server lives until the bench
/// process ends (each stage is a process of its own).
fn open_http(dir: &Path, db: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn Backend>, String> {
    let store = open_sqlite(dir, db, clock)?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<(String, String), String>>();
    std::thread::Builder::new()
        .name(format!("bench-server-{db}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return drop(tx.send(Err(e.to_string()))),
            };
            rt.block_on(async move {
                let started = async {
                    let name = format!("bench-{}", ulid::Ulid::new());
                    let token = store
                        .create_token(&name, crate::token::Role::Admin)
                        .await
                        .map_err(|e| e.to_string())?;
                    let args = crate::server::ServeArgs {
                        listen: "127.0.0.1:0".into(),
                        ..Default::default()
                    };
                    let running = crate::server::start(store, &args).await?;
                    Ok::<_, String>((running, token.token))
                };
                match started.await {
                    Ok((running, token)) => {
                        let _ = tx.send(Ok((running.url.clone(), token)));
                        std::future::pending::<()>().await;
                        drop(running);
                    }
                    Err(e) => drop(tx.send(Err(e))),
                }
            })
        })
        .map_err(|e| format!("cannot start the bench's server: {e}"))?;
    let (url, token) = rx
        .recv()
        .map_err(|_| "the bench's server did not start".to_string())??;
    let client = crate::client::HttpClient::new(&url, Some(token)).map_err(|e| e.to_string())?;
    Ok(Arc::new(client))
}

/// Where the SQLite engine keeps the run's database `db`: what its bare-SQL baselines open.
pub fn sqlite_file(dir: &Path, db: &str) -> PathBuf {
    dir.join(format!("{db}.db"))
}

pub fn by_name(name: &str) -> Result<&'static Engine, String> {
    ENGINES.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<&str> = ENGINES.iter().map(|e| e.name).collect();
        format!("unknown engine '{name}' (known: {})", known.join(", "))
    })
}

/// `--engine`, checked when the command line is read.
pub fn parse(name: &str) -> Result<String, String> {
    by_name(name).map(|e| e.name.to_string())
}
