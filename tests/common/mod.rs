//! What the contract suite runs against. Each test takes an `Env`: a fresh backend and the
//! clock it runs on. `contract!` instantiates every test once per backend, a module each
//! (`sqlite::queue_lifecycle`, …); a new backend is its factory below and one line in
//! `contract!`.

#[allow(dead_code)]
pub mod pg;

use chrono::TimeZone;
use std::sync::Arc;
use std::time::Duration;
use workq::backend::Backend;
use workq::clock::ManualClock;
use workq::model::Time;

pub struct Env {
    pub store: Arc<dyn Backend>,
    pub clock: ManualClock,
    /// Whose token the backend acts under, if any: a server records `token:NAME` for
    /// people and `token:NAME/WORKER` for workers, whatever name the caller gives.
    pub token: Option<&'static str>,
    /// What the backend needs kept alive until the test ends (a folder, a server, a schema).
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Env {
    /// How history names the person `who` on this backend.
    pub fn person(&self, who: &str) -> String {
        match self.token {
            Some(t) => format!("token:{t}"),
            None => who.to_string(),
        }
    }

    /// How history and the worker list name the worker `who` on this backend.
    pub fn worker(&self, who: &str) -> String {
        match self.token {
            Some(t) => format!("token:{t}/{who}"),
            None => who.to_string(),
        }
    }
}

/// Where every test's clock starts.
pub fn start() -> Time {
    chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
}

/// The embedded store on a real file. `None` would skip the test (a backend that cannot
/// run here, like PostgreSQL without `WORKQ_TEST_PG_URL`).
pub async fn sqlite() -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    // A long poll re-polls the file only once an hour here: in one process, every wake-up
    // must come from the write itself (see `a_long_poll_wakes_when_work_arrives`).
    let options = workq::store::sqlite::Options {
        poll_every: Duration::from_secs(3600),
        // Retry backoffs jitter at random, as in production: the tests hold for any draw.
        ..Default::default()
    };
    let store =
        workq::SqliteStore::open_with(dir.path().join("t.db"), Arc::new(clock.clone()), options)
            .unwrap();
    Some(Env {
        store: Arc::new(store),
        clock,
        token: None,
        _keep: Box::new(dir),
    })
}

/// The HTTP client talking to a server on 127.0.0.1 that serves the embedded store on a
/// real file. The server runs in this process so that it shares the test's clock; the
/// client holds an admin token, so every route is open to it.
pub async fn http() -> Option<Env> {
    let Env {
        store,
        clock,
        _keep,
        ..
    } = sqlite().await?;
    let token = store
        .create_token("contract", workq::token::Role::Admin)
        .await
        .unwrap();
    let args = workq::server::ServeArgs {
        listen: "127.0.0.1:0".into(),
        // The tests check alerts on the test's clock themselves.
        alert_every: std::time::Duration::ZERO,
        ..Default::default()
    };
    let server = workq::server::start(store, &args).await.unwrap();
    let url = server.url.clone();
    let client = workq::client::HttpClient::new(&url, Some(token.token)).unwrap();
    // One answer tells the client where the server's events stand, so a feed it opens
    // next gets every event made after that, as the in-process feed does.
    client.queues().await.unwrap();
    Some(Env {
        store: Arc::new(client),
        clock,
        token: Some("contract"),
        _keep: Box::new((_keep, server)),
    })
}

/// The PostgreSQL store on the server `WORKQ_TEST_PG_URL` names, in a fresh schema of its
/// own (dropped with the `Env`). Unset: `None`, the test is skipped; but never in CI
/// (`CI=true`), where a skipped backend would pass for a tested one.
pub async fn postgres() -> Option<Env> {
    let url = match std::env::var("WORKQ_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but WORKQ_TEST_PG_URL is unset: the PostgreSQL contract tests \
                     must run in CI, not be skipped"
                );
            }
            return None;
        }
    };
    let schema = fresh_schema(&url).await;
    let clock = ManualClock::new(start());
    // As for SQLite: a long poll re-polls only once an hour here, so every wake-up in one
    // process must come from the write itself.
    let options = workq::store::postgres::Options {
        poll_every: Duration::from_secs(3600),
        ..Default::default()
    };
    let store =
        workq::store::postgres::PgStore::open_with(&schema.url(), Arc::new(clock.clone()), options)
            .await
            .unwrap();
    Some(Env {
        store: Arc::new(store),
        clock,
        token: None,
        _keep: Box::new(schema),
    })
}

/// A schema made for one test on a PostgreSQL server, dropped (with all it holds) when
/// this is dropped.
pub struct PgSchema {
    pub server: String,
    pub name: String,
}

impl PgSchema {
    /// The server's URL with this schema as the search path of every connection.
    pub fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.server, self.name)
    }
}

/// A new empty schema `wq_<random>` on the server at `url`.
pub async fn fresh_schema(url: &str) -> PgSchema {
    let name = format!("wq_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("WORKQ_TEST_PG_URL={url}: cannot connect: {e}"));
    let conn = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    PgSchema {
        server: url.to_string(),
        name,
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.server.clone(), self.name.clone());
        // On a thread of its own: the test's runtime may be the one being dropped.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await;
            })
        })
        .join();
    }
}

/// `contract!(test, …)`: every test, once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $crate::common::contract_on!(sqlite: $($name),*);
        $crate::common::contract_on!(http: $($name),*);
        $crate::common::contract_on!(postgres: $($name),*);
    };
}

/// The tests of `contract!` on one backend: a module named after its factory.
macro_rules! contract_on {
    ($backend:ident: $($name:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = $crate::common::$backend().await else {
                        eprintln!("SKIPPED: {} is not available here", stringify!($backend));
                        return;
                    };
                    super::$name(env).await
                }
            )*
        }
    };
}

pub(crate) use {contract, contract_on};
