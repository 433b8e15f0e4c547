//! The HTTP client: a `Backend` that is a remote `workq serve`. Each call is one route of
//! the server's table with the bodies of `api`; an error comes back as the server's
//! `{"error": …}` body, decoded to the same `Error` (kind, facts and message), so a caller
//! cannot tell a remote refusal from a local one. A server that cannot be reached is a
//! `storage`/`cannot_open` error naming the URL.
//!
//! Who acts is the token: the server records `token:NAME` (workers `token:NAME/WORKER`),
//! whatever actor the caller names.

use crate::alert::{Alert, AlertState, NewAlert};
use crate::api::{self, Each};
use crate::backend::{Backend, Error, Feed, Gap, ImportRows, Result, StorageCause, Thing};
use crate::model::*;
use crate::token::{NewToken, Role, TokenInfo};
use async_trait::async_trait;
use futures::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection may take to open: an address that does not answer is said soon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A dropped event stream is reopened this many times (with a growing wait) before the
/// feed says `Disconnected`, so a server restart or a blip costs the reader nothing.
const FEED_RETRIES: u32 = 3;
const FEED_RETRY_FIRST: Duration = Duration::from_millis(100);

pub struct HttpClient {
    /// `http://host:port`, no trailing slash.
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// The newest event id the server named in an answer (every answer carries it): a new
    /// subscription resumes there, so it misses nothing made after that answer (the server
    /// says `refetch` when it cannot).
    last_event: Arc<Mutex<Option<String>>>,
}

impl HttpClient {
    /// A client of the server at `url` (http:// or https://), sending `token` if any.
    /// Nothing is sent yet: an unreachable server is said by the first call.
    pub fn new(url: &str, token: Option<String>) -> Result<HttpClient> {
        let trimmed = url.trim().trim_end_matches('/');
        let lower = trimmed.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') => {}
            None if !lower.contains("://") && !lower.is_empty() => {
                return Err(Error::invalid(
                    "remote",
                    format!("--remote {url}: the URL needs its scheme: http://{trimmed}"),
                ))
            }
            _ => {
                return Err(Error::invalid(
                    "remote",
                    format!(
                        "--remote {url}: give the URL of a workq server, like \
                         http://127.0.0.1:7878 (no path)"
                    ),
                ))
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::invalid("remote", format!("--remote {url}: {e}")))?;
        Ok(HttpClient {
            base: trimmed.to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
            http,
            last_event: Arc::new(Mutex::new(None)),
        })
    }

    /// The server's URL, as the console's header names it.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends and reads the answer as `T`, or the server's error as the engine's.
    async fn send<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let answer = rb.send().await.map_err(|e| unreachable(&self.base, &e))?;
        if let Some(id) = answer
            .headers()
            .get(api::LAST_EVENT_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            *self.last_event.lock().expect("last event") = Some(id.to_string());
        }
        let status = answer.status();
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        if !status.is_success() {
            return Err(server_error(&self.base, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::storage(
                StorageCause::Io,
                None::<&std::path::Path>,
                format!(
                    "the server at {} gave an answer this workq cannot read ({e}); is it \
                     the same version?",
                    self.base
                ),
            )
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }
}

/// A path segment, percent-encoded: names may hold anything but control characters.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query<Q: Serialize>(q: &Q) -> String {
    match serde_urlencoded::to_string(q) {
        Ok(s) if !s.is_empty() => format!("?{s}"),
        _ => String::new(),
    }
}

/// A request that never got an answer: the URL and why, down to the cause.
fn unreachable(base: &str, e: &reqwest::Error) -> Error {
    let mut why = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        why = s.to_string();
        src = s.source();
    }
    Error::Storage {
        cause: StorageCause::CannotOpen,
        path: Some(base.to_string()),
        message: format!("cannot reach the workq server at {base}: {why}"),
    }
}

/// An answer that is not a success: the server's own error when it sent one.
fn server_error(base: &str, status: StatusCode, bytes: &[u8]) -> Error {
    if let Ok(body) = serde_json::from_slice::<api::ErrorBody>(bytes) {
        return body.error;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_string();
    Error::storage(
        StorageCause::Io,
        None::<&std::path::Path>,
        format!(
            "the server at {base} answered {status}{}",
            if text.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", text.trim())
            }
        ),
    )
}

#[async_trait]
impl Backend for HttpClient {
    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        let body = api::CreateQueue {
            name: name.to_string(),
            settings,
        };
        self.post("/v1/queues", &body).await
    }

    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue> {
        let path = format!("/v1/queues/{}", seg(name));
        self.send(self.request(Method::PATCH, &path).json(&settings))
            .await
    }

    async fn set_queue_state(&self, name: &str, state: QueueState) -> Result<Queue> {
        let verb = match state {
            QueueState::Paused => "pause",
            QueueState::Active => "resume",
        };
        let path = format!("/v1/queues/{}/{verb}", seg(name));
        self.send(self.request(Method::POST, &path)).await
    }

    async fn delete_queue(&self, name: &str, force: bool) -> Result<u64> {
        let path = format!(
            "/v1/queues/{}{}",
            seg(name),
            query(&api::DeleteQueue { force })
        );
        let done: api::QueueDeleted = self.send(self.request(Method::DELETE, &path)).await?;
        Ok(done.deleted_items)
    }

    async fn queues(&self) -> Result<Vec<QueueSummary>> {
        self.get("/v1/queues").await
    }

    async fn queue(&self, name: &str) -> Result<QueueSummary> {
        self.get(&format!("/v1/queues/{}", seg(name))).await
    }

    async fn add_items(&self, queue: &str, items: Vec<NewItem>, _actor: &str) -> Result<Vec<Item>> {
        if items.is_empty() {
            // The route wants at least one; nothing added is the queue's existence.
            self.queue(queue).await?;
            return Ok(vec![]);
        }
        let path = format!("/v1/queues/{}/items", seg(queue));
        self.post(&path, &api::AddItems { items }).await
    }

    /// The rows go up as a JSON Lines upload, each on its own line number (blank lines
    /// keep the numbering), so the server's report names the lines of the caller's file.
    /// Rows the caller's parser refused stay here and are merged into what the server says.
    async fn import(
        &self,
        queue: &str,
        opts: ImportOptions,
        mut rows: ImportRows,
        _actor: &str,
    ) -> Result<ImportReport> {
        self.queue(queue).await?;
        let local: Arc<Mutex<Vec<RowError>>> = Arc::default();
        let bad = local.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        // What the rows are read into while the upload streams; a refused row is kept back.
        let writer = tokio::spawn(async move {
            let mut line = 0u64;
            while let Some(batch) = rows.recv().await {
                let mut chunk = Vec::new();
                for row in batch {
                    match row {
                        Ok(r) => {
                            while line + 1 < r.line {
                                chunk.push(b'\n');
                                line += 1;
                            }
                            chunk.extend_from_slice(&jsonl_row(&r.item));
                            chunk.push(b'\n');
                            line = r.line.max(line + 1);
                        }
                        Err(e) => bad.lock().expect("rows").push(e),
                    }
                }
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        let local_bad = || std::mem::take(&mut *local.lock().expect("rows"));
        let q = api::ImportQuery {
            format: Some("jsonl".into()),
            skip_bad: opts.skip_bad,
            dry_run: opts.dry_run,
            ..Default::default()
        };
        let upload = |q: &api::ImportQuery, body: reqwest::Body| {
            let path = format!("/v1/queues/{}/import{}", seg(queue), query(q));
            self.send::<api::ImportDone>(self.request(Method::POST, &path).body(body))
        };
        let stream = tokio_stream_of(rx);
        if !opts.skip_bad {
            // All or nothing: the whole file is read before anything is sent, so that a row
            // refused here makes the server only rehearse (and say its own refusals).
            let mut body = Vec::new();
            let mut rx = stream;
            while let Some(chunk) = rx.next().await {
                body.extend_from_slice(&chunk.map_err(|e| Error::invalid("body", e.to_string()))?);
            }
            let _ = writer.await;
            let mine = local_bad();
            let mut q = q;
            q.dry_run = opts.dry_run || !mine.is_empty();
            let mut report = upload(&q, reqwest::Body::from(body)).await?.report;
            if mine.is_empty() {
                return Ok(report);
            }
            report.imported = 0;
            report.rejected.extend(mine);
            report.rejected.sort_by_key(|r| r.line);
            if opts.dry_run {
                return Ok(report);
            }
            return Err(Error::Invalid {
                field: "rows".into(),
                index: None,
                message: crate::text::import_failure(
                    "import refused, nothing imported",
                    &report.rejected,
                ),
                rows: report.rejected,
            });
        }
        let done = upload(&q, reqwest::Body::wrap_stream(stream)).await;
        let _ = writer.await;
        let mut report = done?.report;
        report.rejected.extend(local_bad());
        report.rejected.sort_by_key(|r| r.line);
        Ok(report)
    }

    async fn items(&self, filter: Filter, page: PageRequest) -> Result<Page> {
        let q = api::ItemsQuery::from_request(&filter, &page);
        self.get(&format!("/v1/items{}", query(&q))).await
    }

    async fn item(&self, id: &str) -> Result<ItemDetail> {
        self.get(&format!("/v1/items/{}", seg(id))).await
    }

    async fn upcoming(
        &self,
        queue: &str,
        within: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Item>> {
        let q = api::UpcomingQuery {
            within_ms: within.as_millis().min(u64::MAX as u128) as u64,
            limit,
        };
        self.get(&format!("/v1/queues/{}/upcoming{}", seg(queue), query(&q)))
            .await
    }

    async fn groups(&self, queue: Option<String>) -> Result<Vec<ExceptionGroup>> {
        let q = api::GroupsQuery { queue };
        self.get(&format!("/v1/groups{}", query(&q))).await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.get("/v1/workers").await
    }

    async fn register_worker(&self, name: &str, agent: AgentInfo) -> Result<()> {
        let body = api::Register {
            worker: name.to_string(),
            agent,
        };
        let _: api::Registered = self.post("/v1/workers", &body).await?;
        Ok(())
    }

    async fn dequeue(&self, req: DequeueRequest) -> Result<Dequeued> {
        let body = api::Dequeue {
            queues: req.queues,
            worker: Some(req.worker),
            count: req.count,
            wait: req.wait.as_millis() as u64,
        };
        self.post("/v1/dequeue", &body).await
    }

    async fn heartbeat(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Time>>> {
        let body = api::Heartbeats { leases };
        let each: Vec<Each<api::LeaseUntil>> = self.post("/v1/heartbeats", &body).await?;
        Ok(each
            .into_iter()
            .map(|e| Result::from(e).map(|u: api::LeaseUntil| u.lease_until))
            .collect())
    }

    async fn finish(&self, outcomes: Vec<Outcome>, worker: &str) -> Result<Vec<Result<Finished>>> {
        let body = api::Finish {
            outcomes,
            worker: Some(worker.to_string()),
        };
        let each: Vec<Each<Finished>> = self.post("/v1/finish", &body).await?;
        Ok(each.into_iter().map(Into::into).collect())
    }

    async fn hand_back(
        &self,
        leases: Vec<HandBack>,
        worker: &str,
        note: &str,
    ) -> Result<Vec<Result<Finished>>> {
        let body = api::HandBackLeases {
            leases,
            note: note.to_string(),
            worker: Some(worker.to_string()),
        };
        let each: Vec<Each<Finished>> = self.post("/v1/hand-back", &body).await?;
        Ok(each.into_iter().map(Into::into).collect())
    }

    async fn preview(
        &self,
        target: Target,
        action: Option<ActionKind>,
        sample: u32,
    ) -> Result<Preview> {
        let body = api::PreviewRequest {
            target,
            action,
            sample,
        };
        self.post("/v1/preview", &body).await
    }

    async fn act(&self, req: ActionRequest) -> Result<ActionResult> {
        let body = api::Act {
            target: req.target,
            action: req.action,
            note: req.note,
            skip_refused: req.skip_refused,
        };
        self.post("/v1/actions", &body).await
    }

    async fn undo(&self, req: UndoRequest) -> Result<UndoResult> {
        let body = api::Undo {
            strict: req.strict,
            dry_run: req.dry_run,
        };
        self.post(&format!("/v1/actions/{}/undo", req.action_id), &body)
            .await
    }

    async fn actions(&self, q: ActionQuery) -> Result<Vec<ActionInfo>> {
        let q = api::ActionsQuery {
            queue: q.queue,
            limit: Some(q.limit),
        };
        self.get(&format!("/v1/actions{}", query(&q))).await
    }

    async fn add_alert(&self, alert: NewAlert) -> Result<Alert> {
        self.post("/v1/alerts", &alert).await
    }

    async fn alerts(&self) -> Result<Vec<Alert>> {
        self.get("/v1/alerts").await
    }

    async fn remove_alert(&self, name: &str) -> Result<Alert> {
        let path = format!("/v1/alerts/{}", seg(name));
        self.send(self.request(Method::DELETE, &path)).await
    }

    async fn set_alert_state(
        &self,
        name: &str,
        seen_generation: u64,
        to: AlertState,
    ) -> Result<Option<Alert>> {
        let body = api::SetAlertState {
            seen_generation,
            to,
        };
        let path = format!("/v1/alerts/{}/state", seg(name));
        let moved: api::AlertMoved = self.post(&path, &body).await?;
        Ok(moved.alert)
    }

    async fn create_token(&self, name: &str, role: Role) -> Result<NewToken> {
        let body = api::CreateToken {
            name: name.to_string(),
            role,
        };
        self.post("/v1/tokens", &body).await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.get("/v1/tokens").await
    }

    async fn revoke_token(&self, name: &str) -> Result<TokenInfo> {
        let path = format!("/v1/tokens/{}", seg(name));
        self.send(self.request(Method::DELETE, &path)).await
    }

    async fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let body = api::VerifyToken {
            token: secret.to_string(),
        };
        match self.post("/v1/tokens/verify", &body).await {
            Ok(t) => Ok(Some(t)),
            Err(Error::NotFound {
                what: Thing::Token, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Retention is the server's own periodic work (`workq serve --retain`), not a request.
    async fn prune(&self, _before: Time, _most: u64) -> Result<u64> {
        Err(Error::invalid(
            "retain",
            "removing old items runs on the server: start it with `workq serve --retain DUR`",
        ))
    }

    async fn sweep(&self) -> Result<u64> {
        let swept: api::Swept = self.send(self.request(Method::POST, "/v1/sweep")).await?;
        Ok(swept.timed_out)
    }

    /// `GET /v1/events`, resumed from the last event this client read. A stream that drops
    /// is reopened a few times with `Last-Event-ID`; a `refetch` (the server restarted, or
    /// the reader was too far behind) reads as `Lagged`; when the server stays away the
    /// feed says `Disconnected` and ends (the caller subscribes again later).
    fn subscribe(&self) -> Feed {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Event, Gap>>(256);
        let events = EventSource {
            url: format!("{}/v1/events", self.base),
            base: self.base.clone(),
            token: self.token.clone(),
            http: self.http.clone(),
            // This feed's own place: from the newest id known now, then what it reads.
            last: Arc::new(Mutex::new(
                self.last_event.lock().expect("last event").clone(),
            )),
        };
        tokio::spawn(events.run(tx));
        Feed::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}

/// The task behind one feed.
struct EventSource {
    url: String,
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    last: Arc<Mutex<Option<String>>>,
}

type Tx = tokio::sync::mpsc::Sender<std::result::Result<Event, Gap>>;

impl EventSource {
    async fn run(self, tx: Tx) {
        let mut failures = 0u32;
        loop {
            let why = match self.stream(&tx, &mut failures).await {
                Ok(()) => return, // the reader went away
                Err(why) => why,
            };
            failures += 1;
            if failures > FEED_RETRIES {
                let _ = tx.send(Err(Gap::Disconnected(why))).await;
                return;
            }
            tokio::time::sleep(FEED_RETRY_FIRST * 2u32.pow(failures - 1)).await;
            if tx.is_closed() {
                return;
            }
        }
    }

    /// One connection: `Ok` when the reader is gone, `Err(why)` when the stream is.
    async fn stream(&self, tx: &Tx, failures: &mut u32) -> std::result::Result<(), String> {
        let mut rb = self
            .http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let last = self.last.lock().expect("last event").clone();
        if let Some(id) = &last {
            rb = rb.header("Last-Event-ID", id);
        }
        let answer = rb
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e).to_string())?;
        let status = answer.status();
        if !status.is_success() {
            let bytes = answer.bytes().await.unwrap_or_default();
            return Err(server_error(&self.base, status, &bytes).to_string());
        }
        // Connected again: whatever was missed meanwhile comes as events or a refetch.
        *failures = 0;
        let mut body = answer.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut frame = Frame::default();
        loop {
            let chunk = tokio::select! {
                c = body.next() => c,
                _ = tx.closed() => return Ok(()),
            };
            let chunk = match chunk {
                Some(Ok(c)) => c,
                Some(Err(e)) => return Err(unreachable(&self.base, &e).to_string()),
                None => {
                    return Err(format!(
                        "the server at {} closed the event stream",
                        self.base
                    ))
                }
            };
            buf.extend_from_slice(&chunk);
            while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.is_empty() {
                    frame.field(line);
                    continue;
                }
                let f = std::mem::take(&mut frame);
                if let Some(id) = &f.id {
                    *self.last.lock().expect("last event") = Some(id.clone());
                }
                let item = match f.event.as_deref() {
                    None => continue, // a keep-alive comment
                    Some(api::EVENT_SHUTDOWN) => {
                        return Err(format!("the server at {} is shutting down", self.base))
                    }
                    Some(api::EVENT_REFETCH) => Err(Gap::Lagged(1)),
                    Some(_) => match serde_json::from_str::<Event>(&f.data) {
                        Ok(e) => Ok(e),
                        Err(_) => continue, // an event this workq does not know
                    },
                };
                if tx.send(item).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// One Server-Sent Event as its lines arrive.
#[derive(Default)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl Frame {
    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "id" => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
) -> futures::stream::BoxStream<'static, std::io::Result<Vec<u8>>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

/// An item as one line of JSON Lines that the server's import reads back as the same item.
fn jsonl_row(item: &NewItem) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("value".into(), item.value.clone().into());
    if let Some(k) = &item.key {
        m.insert("key".into(), k.clone().into());
    }
    if let Some(n) = &item.name {
        m.insert("name".into(), n.clone().into());
    }
    if item.priority != Priority::default() {
        m.insert(
            "priority".into(),
            serde_json::to_value(item.priority).unwrap_or_default(),
        );
    }
    if let Some(t) = item.expires_at {
        m.insert("expires_at".into(), t.to_rfc3339().into());
    }
    if let Some(d) = item.expires_in {
        // Whole seconds, rounded up: an import's durations are written so.
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        m.insert("expires_in".into(), format!("{secs}s").into());
    }
    if let Some(t) = item.delay_until {
        m.insert("delay_until".into(), t.to_rfc3339().into());
    }
    if item.hold {
        m.insert("status".into(), "on-hold".into());
    }
    if let Some(n) = &item.note {
        m.insert("notes".into(), n.clone().into());
    }
    serde_json::to_vec(&m).expect("a JSON object serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("a b/c%d"), "a%20b%2Fc%25d");
        assert_eq!(seg("émail"), "%C3%A9mail");
        assert_eq!(seg("ok-1._~"), "ok-1._~");
    }

    #[test]
    fn a_url_with_a_path_or_another_scheme_is_refused_by_name() {
        for bad in ["127.0.0.1:7878", "ftp://x", "http://", "http://h/v1"] {
            match HttpClient::new(bad, None) {
                Err(Error::Invalid { field, message, .. }) => {
                    assert_eq!(field, "remote");
                    assert!(message.contains(bad), "{message}");
                }
                other => panic!("{bad}: {:?}", other.map(|c| c.base)),
            }
        }
        let c = HttpClient::new("http://127.0.0.1:7878/", None).unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:7878");
    }

    #[test]
    fn an_sse_frame_reads_its_fields() {
        let mut f = Frame::default();
        for l in [
            "id: 7-3",
            "event: items",
            "data: {\"a\":",
            "data: 1}",
            ": keep",
        ] {
            f.field(l);
        }
        assert_eq!(f.id.as_deref(), Some("7-3"));
        assert_eq!(f.event.as_deref(), Some("items"));
        assert_eq!(f.data, "{\"a\":\n1}");
    }
}
