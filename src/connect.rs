//! Where the console, the CLI, the demo and the bench get their backend: the one place where
//! what the user named (a `--db` path, a `--remote` server with its `--token`, a
//! `--connect` name from the config file, a `postgres://` URL as `--db`) becomes an
//! `Arc<dyn Backend>`. Nothing above this module knows which store it has.

use crate::backend::{self, Backend, StorageCause, Thing};
use crate::clock::{self, Clock};
use crate::store::postgres::{self, PgStore};
use crate::store::sqlite::{self, SqliteStore};
use std::path::PathBuf;
use std::sync::Arc;

/// What the user named: `--db`, `--remote` and `--token`, `--connect`, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub db: Option<PathBuf>,
    pub remote: Option<String>,
    pub token: Option<String>,
    /// A `[connections.NAME]` of the config file.
    pub connection: Option<String>,
}

impl Target {
    pub fn db(path: impl Into<PathBuf>) -> Target {
        Target {
            db: Some(path.into()),
            ..Default::default()
        }
    }

    /// A remote server at `url` with `token`.
    pub fn remote(url: impl Into<String>, token: Option<String>) -> Target {
        Target {
            remote: Some(url.into()),
            token,
            ..Default::default()
        }
    }

    /// Whether this names a server rather than a file.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some() || self.connection.is_some()
    }
}

/// The server `target` names, with its token: `--remote`/`--token`, else `--connect`
/// from the config file. `None`: a local file.
pub fn remote(target: &Target) -> Result<Option<crate::config::Remote>, Error> {
    let flag = |message: String| Error::Unsupported {
        flag: "remote",
        message,
    };
    if target.db.is_some() && target.is_remote() {
        return Err(flag(format!(
            "--db and {} both name where to work: give one (is WORKQ_DB or WORKQ_REMOTE set?)",
            if target.remote.is_some() {
                "--remote"
            } else {
                "--connect"
            }
        )));
    }
    if let Some(url) = &target.remote {
        return Ok(Some(crate::config::Remote {
            url: url.clone(),
            token: target.token.clone(),
        }));
    }
    match &target.connection {
        None => Ok(None),
        Some(name) => crate::config::connection(name, crate::config::path().as_deref())
            .map(|mut r| {
                // --token (or WORKQ_TOKEN) overrides what the file says.
                if target.token.is_some() {
                    r.token = target.token.clone();
                }
                Some(r)
            })
            .map_err(|m| Error::Unsupported {
                flag: "connect",
                message: m,
            }),
    }
}

/// How a caller means to use the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Only reads: the database must exist, and is opened read-only (see
    /// `SqliteStore::open_read_only`: a file this user can write is first brought up to date).
    ReadOnly,
    /// Changes data: opened for writing, created (folders and all) on first use.
    Create,
}

/// An open backend and what a person should know about it.
pub struct Connection {
    pub backend: Arc<dyn Backend>,
    /// What the console's header names: the database file's name.
    pub label: String,
    /// Every change is refused (opened with `Open::ReadOnly`).
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command that only reads does not create a database.
    #[error(
        "no workq database at {} (a command that only reads does not create one; \
         `workq queue create NAME` does)",
        .0.display()
    )]
    Missing(PathBuf),
    /// The file exists but this user cannot write it.
    #[error(
        "database {} is read-only for you (check the file's and its folder's permissions); \
         commands that only read still work, and `workq --read-only` opens the console on it",
        .0.display()
    )]
    ReadOnlyFile(PathBuf),
    /// Something named that this workq cannot reach yet, or that is not a database; `flag`
    /// names what the user gave (`db`, `remote`).
    #[error("{message}")]
    Unsupported { flag: &'static str, message: String },
    #[error(transparent)]
    Backend(#[from] backend::Error),
}

impl Error {
    /// The error as it crosses the seam (`backend::Error`): a stable kind and the facts,
    /// for `--json` errors and, later, HTTP bodies.
    pub fn into_backend(self) -> backend::Error {
        let message = self.to_string();
        match self {
            Error::Missing(path) => backend::Error::NotFound {
                what: Thing::Database,
                name: path.display().to_string(),
                message,
            },
            Error::ReadOnlyFile(path) => {
                backend::Error::storage(StorageCause::ReadOnly, Some(&path), message)
            }
            Error::Unsupported { flag, .. } => backend::Error::invalid(flag, message),
            Error::Backend(e) => e,
        }
    }
}

/// Opens what `target` names on the system clock.
pub fn connect(target: &Target, open: Open) -> Result<Connection, Error> {
    connect_on(target, open, clock::system())
}

/// `connect` on a clock of the caller's (the demo writes its history in the past, the
/// bench puts a store a day ahead).
pub fn connect_on(target: &Target, open: Open, clock: Arc<dyn Clock>) -> Result<Connection, Error> {
    if let Some(r) = remote(target)? {
        // The server keeps its own time; the token's role says what may be changed.
        let client = crate::client::HttpClient::new(&r.url, r.token)?;
        return Ok(Connection {
            label: client.url().to_string(),
            backend: Arc::new(client),
            read_only: open == Open::ReadOnly,
        });
    }
    if let Some(url) = postgres_url(target) {
        // A PostgreSQL schema: created and migrated on first use by a command that changes
        // data; one that only reads refuses an empty one, as it refuses a missing file.
        let store = PgStore::open_blocking(&url, clock, open == Open::Create)?;
        return Ok(Connection {
            label: store.label().to_string(),
            backend: Arc::new(store),
            read_only: open == Open::ReadOnly,
        });
    }
    let path = local_path(target)?;
    let exists = path.exists();
    if open != Open::Create && !exists {
        return Err(Error::Missing(path));
    }
    // Said by what it is, before the store's own (lower-level) words.
    if open != Open::ReadOnly && exists && !path.is_dir() && !sqlite::can_write(&path) {
        return Err(Error::ReadOnlyFile(path));
    }
    let backend: Arc<dyn Backend> = match open {
        Open::ReadOnly => Arc::new(SqliteStore::open_read_only(&path, clock)?),
        Open::Create => Arc::new(SqliteStore::open(&path, clock)?),
    };
    Ok(Connection {
        backend,
        label: path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        read_only: open == Open::ReadOnly,
    })
}

/// The `postgres://` URL `--db` gives, if it gives one.
pub fn postgres_url(target: &Target) -> Option<String> {
    if target.is_remote() {
        return None;
    }
    let text = target.db.as_ref()?.to_string_lossy().to_string();
    postgres::is_url(&text).then_some(text)
}

/// The database `target` names, as a person would give it again to `--db`: a file's path,
/// or a PostgreSQL URL without its password.
pub fn db_name(target: &Target) -> Result<String, Error> {
    match postgres_url(target) {
        Some(url) => Ok(postgres::redact(&url)),
        None => Ok(local_path(target)?.display().to_string()),
    }
}

/// The local database file `target` names (the default one when it names none), refusing
/// what this workq cannot open yet before anything makes a file or folder of it.
pub fn local_path(target: &Target) -> Result<PathBuf, Error> {
    if target.is_remote() {
        let named = match (&target.remote, &target.connection) {
            (Some(url), _) => format!("--remote {url}"),
            (None, Some(name)) => format!("--connect {name}"),
            _ => unreachable!("is_remote"),
        };
        return Err(Error::Unsupported {
            flag: "remote",
            message: format!(
                "{named}: this command works on a local database file; give --db the path \
                 of an SQLite file"
            ),
        });
    }
    let path = target.db.clone().unwrap_or_else(default_db);
    let text = path.to_string_lossy();
    if let Some((scheme, _)) = text.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        return Err(Error::Unsupported {
            flag: "db",
            message: if scheme == "postgres" || scheme == "postgresql" {
                format!(
                    "--db {}: this command works on a local database file; \
                     give the path of an SQLite file",
                    postgres::redact(&text)
                )
            } else {
                format!(
                    "--db {text}: a {scheme}:// URL is not a database path; \
                     give the path of an SQLite file"
                )
            },
        });
    }
    Ok(path)
}

/// The default database: `workq.db` in the user's data directory.
pub fn default_db() -> PathBuf {
    directories::ProjectDirs::from("", "", "workq")
        .map(|d| d.data_dir().join("workq.db"))
        .unwrap_or_else(|| PathBuf::from("workq.db"))
}

/// Who a person is in item history: the OS user (from the environment, else from the
/// passwd entry of our uid, so a bare `sudo` or a service still names someone).
pub fn os_user() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(passwd_user)
        .unwrap_or_else(|| "unknown".into())
}

fn passwd_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}
