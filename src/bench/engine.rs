//! What the stages measure: a way to open a backend on one of the run's databases. Each
//! backend is one entry of `ENGINES` (the HTTP client on a local server and PostgreSQL
//! will add one each); every stage opens what it measures through it.

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

pub const ENGINES: &[Engine] = &[Engine {
    name: "sqlite",
    open: |dir, db, clock| {
        connect::connect_on(
            &Target::db(sqlite_file(dir, db)),
            connect::Open::Create,
            clock,
        )
        .map(|c| c.backend)
        .map_err(|e| e.to_string())
    },
    remove: |dir, db| super::fresh(&sqlite_file(dir, db)),
}];

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
