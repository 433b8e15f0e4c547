//! `workq serve`: the whole `Backend` over HTTP+JSON under `/v1/`, with bearer tokens,
//! Server-Sent Events, health, Prometheus metrics and an OpenAPI document. Every route is
//! one row of `routes::TABLE`; this module turns the table into a server and runs it.

mod auth;
mod events;
pub mod http;
mod metrics;
pub mod openapi;
mod retention;
pub mod routes;

pub use events::EventsQuery;

use crate::backend::{Backend, Error, Thing};
use crate::rules::parse_duration;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State as Ax};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use routes::{Kind, Route, Verb, TABLE};
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to listen (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR:PORT")]
    pub listen: String,
    /// TLS certificate chain (PEM); with --tls-key the server speaks HTTPS only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen on an address other machines reach without TLS (tokens then cross the
    /// network readable).
    #[arg(long)]
    pub insecure: bool,
    /// Largest request body, e.g. 16M (an import upload has --max-import).
    #[arg(long, default_value = "16M", value_name = "SIZE", value_parser = size)]
    pub max_body: u64,
    /// Largest import upload, e.g. 2G.
    #[arg(long, default_value = "2G", value_name = "SIZE", value_parser = size)]
    pub max_import: u64,
    /// Requests per second per token (0: no limit); over it, 429 with Retry-After.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub rate_limit: f64,
    /// Requests a token may make at once before the rate applies.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub rate_burst: u32,
    /// Longest a request may take (a long poll: this plus its wait).
    #[arg(long, default_value = "30s", value_name = "DUR", value_parser = dur)]
    pub timeout: Duration,
    /// Longest a dequeue may wait for work.
    #[arg(long, default_value = "60s", value_name = "DUR", value_parser = dur)]
    pub max_wait: Duration,
    /// How often alerts are checked (0s: never; `workq alert check` then does it).
    #[arg(long, default_value = "30s", value_name = "DUR", value_parser = dur)]
    pub alert_every: Duration,
    /// On SIGINT/SIGTERM, how long requests under way get to finish.
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = dur)]
    pub grace: Duration,
    /// Events kept for clients that reconnect (Last-Event-ID).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub events_window: usize,
    /// Remove processed items, with their history, finished longer ago than this (e.g.
    /// 30d); open items are always kept. Unset: nothing is removed.
    #[arg(long, value_name = "DUR", value_parser = retain)]
    pub retain: Option<Duration>,
}

fn dur(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// A retention: a duration above zero (zero would remove each item as it is processed).
fn retain(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "'{s}': a retention must be longer than 0 (leave --retain out to keep everything)"
        )),
        d => Ok(d),
    }
}

/// A size: bytes, or with K, M or G (1024s).
fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mul = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("'{s}': a size is bytes, or with K, M or G")),
            };
            (&t[..i], mul)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{s}': a size is bytes, or with K, M or G (e.g. 16M)"))
}

/// The server's limits, as configured.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_body: u64,
    pub max_import: u64,
    pub timeout: Duration,
    pub max_wait: Duration,
}

/// What every request shares.
pub struct State {
    pub backend: Arc<dyn Backend>,
    pub opts: Options,
    events: events::Hub,
    metrics: metrics::Metrics,
    limiter: auth::Limiter,
    /// Turns true when the server starts to stop: event streams say `shutdown` and end.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// The router of `TABLE` on `state`.
pub fn router(state: Arc<State>) -> Router {
    let mut paths: BTreeMap<&'static str, MethodRouter<Arc<State>>> = BTreeMap::new();
    for route in TABLE {
        let filter = match route.verb {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        };
        let handler = move |Ax(state): Ax<Arc<State>>,
                            params: Result<Path<HashMap<String, String>>, PathRejection>,
                            req: Request| dispatch(route, state, params, req);
        let mr = paths.remove(route.path).unwrap_or_default();
        paths.insert(route.path, mr.on(filter, handler));
    }
    let mut router = Router::new();
    for (path, mr) in paths {
        router = router.route(path, mr.fallback(method_not_allowed));
    }
    router.fallback(no_route).with_state(state)
}

async fn dispatch(
    route: &'static Route,
    state: Arc<State>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        let who = auth::check(&state, route, &parts.headers).await?;
        let params = match params {
            Ok(Path(p)) => p,
            Err(e) if route.path.contains('{') => {
                return Err(Error::invalid("path", e.body_text()));
            }
            Err(_) => HashMap::new(),
        };
        let call = http::Call {
            state: state.clone(),
            who,
            params,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body,
        };
        let run = (route.handler)(call);
        let limit = match route.kind {
            Kind::Quick => Some(state.opts.timeout),
            Kind::LongPoll => Some(state.opts.timeout + state.opts.max_wait),
            Kind::Stream => None,
        };
        match limit {
            Some(t) => tokio::time::timeout(t, run)
                .await
                .map_err(|_| Error::timeout(t))?,
            None => run.await,
        }
    }
    .await;
    let mut response = result.unwrap_or_else(http::error_response);
    if let Ok(v) = axum::http::HeaderValue::from_str(&state.events.latest()) {
        response
            .headers_mut()
            .insert(crate::api::LAST_EVENT_HEADER, v);
    }
    state
        .metrics
        .request(route.path, route.verb.as_str(), response.status().as_u16());
    response
}

async fn no_route(req: Request) -> Response {
    http::error_response(Error::not_found(Thing::Route, req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    let e = Error::invalid(
        "method",
        format!("{} is not a method of {}", req.method(), req.uri().path()),
    );
    let mut r = http::error_response(e);
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// A server running on this process's runtime (the bench, tests): where it listens, and
/// how to stop it.
pub struct Running {
    pub url: String,
    pub addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops gracefully: no new connections, event streams end with `shutdown`, requests
    /// under way get `grace` to finish.
    pub async fn stop(self, grace: Duration) -> Result<(), String> {
        let _ = self.stop.send(true);
        self.handle.graceful_shutdown(Some(grace));
        self.task
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the server stopped: {e}"))
    }
}

impl Default for ServeArgs {
    /// The defaults of `workq serve`.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ServeArgs,
        }
        <Wrap as clap::Parser>::parse_from(["serve"]).args
    }
}

/// Waits for the next tick on which this server leads (on a database several servers
/// share, the leader does the periodic work); false once the server starts to stop.
async fn next_lead(
    state: &State,
    tick: &mut tokio::time::Interval,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return false,
        }
        if state.backend.leads() {
            return true;
        }
    }
}

/// Checks alerts every `every` until the server stops; deliveries run on their own task,
/// so a slow receiver never delays a check or a request. Another server checking the same
/// store cannot fire a transition twice: the store's compare-and-set decides.
fn check_alerts(state: Arc<State>, every: Duration) {
    let mut stop = state.stop.clone();
    tokio::spawn(async move {
        let deliveries = crate::alerting::Deliveries::start(crate::alerting::Retry::default());
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while next_lead(&state, &mut tick, &mut stop).await {
            let now = chrono::Utc::now();
            if let Err(e) =
                crate::alerting::check_and_deliver(&*state.backend, now, &deliveries).await
            {
                tracing::warn!(error = %e, "alert check failed; trying again next time");
            }
        }
        deliveries.finish().await;
    });
}

/// Starts serving `backend` as `args` say, on this runtime; answers once it listens.
pub async fn start(backend: Arc<dyn Backend>, args: &ServeArgs) -> Result<Running, String> {
    let addr: SocketAddr = args
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen {}: {e}", args.listen))?
        .next()
        .ok_or_else(|| format!("--listen {}: no address", args.listen))?;
    let tls = args.tls_cert.is_some();
    if !addr.ip().is_loopback() && !tls && !args.insecure {
        return Err(format!(
            "refusing to listen on {addr} without TLS: tokens would cross the network \
             readable; give --tls-cert and --tls-key, or --insecure to do it anyway"
        ));
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let epoch = chrono::Utc::now().timestamp_millis() as u64;
    let state = Arc::new(State {
        backend,
        opts: Options {
            max_body: args.max_body,
            max_import: args.max_import,
            timeout: args.timeout,
            max_wait: args.max_wait,
        },
        events: events::Hub::new(epoch, args.events_window),
        metrics: metrics::Metrics::default(),
        limiter: auth::Limiter::new(args.rate_limit, args.rate_burst),
        stop,
    });
    let tls_config = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    format!(
                        "cannot use --tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?,
        ),
        _ => None,
    };
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    events::follow(state.clone());
    if !args.alert_every.is_zero() {
        check_alerts(state.clone(), args.alert_every);
    }
    if let Some(retain) = args.retain {
        retention::start(state.clone(), retain);
    }
    let service = router(state).into_make_service();
    let handle = axum_server::Handle::new();
    let task = match tls_config {
        Some(config) => {
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
                .map_err(|e| e.to_string())?
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(|e| e.to_string())?
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
    };
    let scheme = if tls { "https" } else { "http" };
    Ok(Running {
        url: format!("{scheme}://{bound}"),
        addr: bound,
        handle,
        stop: stop_tx,
        task,
    })
}

/// `workq serve`: runs the server until SIGINT or SIGTERM, then stops gracefully.
pub async fn serve(backend: Arc<dyn Backend>, args: ServeArgs, db: String) -> Result<(), String> {
    let tokens = backend.tokens().await.map_err(|e| e.to_string())?;
    let mut running = start(backend, &args).await?;
    if !tokens.iter().any(|t| t.revoked_at.is_none()) {
        eprintln!(
            "no tokens yet: every request but /healthz, /readyz and /openapi.json needs one;\n  \
             make one with: workq --db {db} token create NAME --role admin"
        );
    }
    eprintln!("workq serve: listening on {} (database {db})", running.url);
    tokio::select! {
        _ = stopped() => {}
        ended = &mut running.task => {
            return Err(match ended {
                Ok(Ok(())) => "the server stopped by itself".to_string(),
                Ok(Err(e)) => format!("the server stopped: {e}"),
                Err(e) => e.to_string(),
            });
        }
    }
    eprintln!(
        "workq serve: stopping; requests under way get up to {:.0}s",
        args.grace.as_secs_f64()
    );
    running.stop(args.grace).await?;
    eprintln!("workq serve: stopped");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_with_their_unit() {
        assert_eq!(size("512"), Ok(512));
        assert_eq!(size("16M"), Ok(16 << 20));
        assert_eq!(size("2g"), Ok(2 << 30));
        assert!(size("0").is_err());
        assert!(size("12X").is_err());
        assert!(size("-1K").is_err());
    }
}
