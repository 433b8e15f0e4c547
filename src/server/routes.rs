//! The one route table: method, path, the least role that may call it, what it does, its
//! bodies and its handler. The axum router, the auth check, the OpenAPI document and the
//! auth-matrix test are all built from it, so a new route cannot miss any of them.
//!
//! Heartbeat has the two shapes `complete`/`finish` have: one lease (`/v1/heartbeat`, refused
//! as the request) and several (`/v1/heartbeats`, an answer per lease, as the seam gives).

use super::http::{ok, Call};
use super::{events, metrics};
use crate::api::{self, Each};
use crate::backend::Error;
use crate::import;
use crate::model::*;
use crate::token::Role;
use axum::response::Response;
use futures::future::BoxFuture;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }
}

/// How long a request may take: `Quick` within `--timeout`; `LongPoll` also its wait (at
/// most `--max-wait`); `Stream` as long as it streams (events, an upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Quick,
    LongPoll,
    Stream,
}

/// What a body is, for the OpenAPI document: a schema's name in `openapi.rs`.
pub type Schema = Option<&'static str>;

pub type Handler = fn(Call) -> BoxFuture<'static, Result<Response, Error>>;

pub struct Route {
    pub verb: Verb,
    /// axum's form: `/v1/queues/{name}`.
    pub path: &'static str,
    /// `None`: anyone, without a token (health, readiness, the document itself).
    pub role: Option<Role>,
    pub summary: &'static str,
    /// The query parameters' schema (a struct of `api`), the request body's, the answer's.
    pub query: Schema,
    pub body: Schema,
    pub answer: Schema,
    pub kind: Kind,
    pub handler: Handler,
}

macro_rules! h {
    ($f:path) => {
        |c| Box::pin($f(c))
    };
}

use Kind::*;
use Role::*;
use Verb::*;

const fn r(
    verb: Verb,
    path: &'static str,
    role: Option<Role>,
    summary: &'static str,
    (query, body, answer): (Schema, Schema, Schema),
    kind: Kind,
    handler: Handler,
) -> Route {
    Route {
        verb,
        path,
        role,
        summary,
        query,
        body,
        answer,
        kind,
        handler,
    }
}

const N: Schema = None;
const fn s(name: &'static str) -> Schema {
    Some(name)
}

pub static TABLE: &[Route] = &[
    r(
        Get,
        "/healthz",
        None,
        "The process is up",
        (N, N, s("Health")),
        Quick,
        h!(healthz),
    ),
    r(
        Get,
        "/readyz",
        None,
        "The database answers",
        (N, N, s("Health")),
        Quick,
        h!(readyz),
    ),
    r(
        Get,
        "/openapi.json",
        None,
        "This document",
        (N, N, N),
        Quick,
        h!(super::openapi::serve),
    ),
    r(
        Get,
        "/metrics",
        Some(Viewer),
        "Prometheus metrics (text format)",
        (N, N, N),
        Quick,
        h!(metrics::serve),
    ),
    // Queues.
    r(
        Get,
        "/v1/queues",
        Some(Viewer),
        "List queues with counts and health",
        (N, N, s("QueueSummaryList")),
        Quick,
        h!(queues),
    ),
    r(
        Post,
        "/v1/queues",
        Some(Admin),
        "Create a queue",
        (N, s("CreateQueue"), s("Queue")),
        Quick,
        h!(queue_create),
    ),
    r(
        Get,
        "/v1/queues/{name}",
        Some(Viewer),
        "One queue's settings and health",
        (N, N, s("QueueSummary")),
        Quick,
        h!(queue),
    ),
    r(
        Get,
        "/v1/queues/{name}/upcoming",
        Some(Viewer),
        "Queued items whose delay ends within a window, soonest first",
        (s("UpcomingQuery"), N, s("ItemList")),
        Quick,
        h!(upcoming),
    ),
    r(
        Patch,
        "/v1/queues/{name}",
        Some(Admin),
        "Change a queue's settings",
        (N, s("QueueSettings"), s("Queue")),
        Quick,
        h!(queue_update),
    ),
    r(
        Delete,
        "/v1/queues/{name}",
        Some(Admin),
        "Delete a queue (with items left, needs force)",
        (s("DeleteQueue"), N, s("QueueDeleted")),
        Quick,
        h!(queue_delete),
    ),
    r(
        Post,
        "/v1/queues/{name}/pause",
        Some(Admin),
        "Stop handing out items",
        (N, N, s("Queue")),
        Quick,
        h!(queue_pause),
    ),
    r(
        Post,
        "/v1/queues/{name}/resume",
        Some(Admin),
        "Hand out items again",
        (N, N, s("Queue")),
        Quick,
        h!(queue_resume),
    ),
    // Getting work in.
    r(
        Post,
        "/v1/queues/{name}/items",
        Some(Operator),
        "Add one item or a batch, all or nothing",
        (N, s("AddItems"), s("ItemList")),
        Quick,
        h!(items_add),
    ),
    r(
        Post,
        "/v1/queues/{name}/import",
        Some(Operator),
        "Import a CSV or JSON Lines file (the body)",
        (s("ImportQuery"), s("ImportFile"), s("ImportDone")),
        Stream,
        h!(import_upload),
    ),
    // Reading.
    r(
        Get,
        "/v1/items",
        Some(Viewer),
        "List items by filter, a page at a time",
        (s("ItemsQuery"), N, s("Page")),
        Quick,
        h!(items),
    ),
    r(
        Get,
        "/v1/items/{id}",
        Some(Viewer),
        "One item with its history",
        (N, N, s("ItemDetail")),
        Quick,
        h!(item),
    ),
    r(
        Get,
        "/v1/groups",
        Some(Viewer),
        "Exceptions grouped by queue, reason and signature",
        (s("GroupsQuery"), N, s("GroupList")),
        Quick,
        h!(groups),
    ),
    r(
        Get,
        "/v1/workers",
        Some(Viewer),
        "Workers seen, with what they hold",
        (N, N, s("WorkerList")),
        Quick,
        h!(workers),
    ),
    r(
        Post,
        "/v1/workers",
        Some(Worker),
        "An agent registers: host, version, queues, concurrency, state",
        (N, s("Register"), s("Registered")),
        Quick,
        h!(register_worker),
    ),
    r(
        Get,
        "/v1/events",
        Some(Viewer),
        "Server-Sent Events of changes (Last-Event-ID resumes)",
        (s("EventsQuery"), N, N),
        Stream,
        h!(events::serve),
    ),
    // Taking work.
    r(
        Post,
        "/v1/dequeue",
        Some(Worker),
        "Take items, waiting up to `wait` ms for one",
        (N, s("Dequeue"), s("Dequeued")),
        LongPoll,
        h!(dequeue),
    ),
    r(
        Post,
        "/v1/heartbeat",
        Some(Worker),
        "Extend a lease",
        (N, s("Heartbeat"), s("LeaseUntil")),
        Quick,
        h!(heartbeat),
    ),
    r(
        Post,
        "/v1/heartbeats",
        Some(Worker),
        "Extend several leases, each extended or refused alone",
        (N, s("Heartbeats"), s("LeaseUntilList")),
        Quick,
        h!(heartbeats),
    ),
    r(
        Post,
        "/v1/complete",
        Some(Worker),
        "Report a leased item processed",
        (N, s("Complete"), s("Finished")),
        Quick,
        h!(complete),
    ),
    r(
        Post,
        "/v1/fail",
        Some(Worker),
        "Report a leased item failed (an exception)",
        (N, s("Fail"), s("Finished")),
        Quick,
        h!(fail),
    ),
    r(
        Post,
        "/v1/finish",
        Some(Worker),
        "Report many outcomes, each applied or refused alone",
        (N, s("Finish"), s("FinishedList")),
        Quick,
        h!(finish),
    ),
    r(
        Post,
        "/v1/hand-back",
        Some(Worker),
        "Give leases back unworked",
        (N, s("HandBackLeases"), s("FinishedList")),
        Quick,
        h!(hand_back),
    ),
    // The human side.
    r(
        Post,
        "/v1/preview",
        Some(Viewer),
        "What an action would change, before it is taken",
        (N, s("PreviewRequest"), s("Preview")),
        Quick,
        h!(preview),
    ),
    r(
        Post,
        "/v1/actions",
        Some(Operator),
        "Take a human action on items (by ids or filter)",
        (N, s("Act"), s("ActionResult")),
        Quick,
        h!(act),
    ),
    r(
        Get,
        "/v1/actions",
        Some(Viewer),
        "Past human actions, newest first",
        (s("ActionsQuery"), N, s("ActionList")),
        Quick,
        h!(actions),
    ),
    r(
        Post,
        "/v1/actions/{id}/undo",
        Some(Operator),
        "Undo a human action",
        (N, s("Undo"), s("UndoResult")),
        Quick,
        h!(undo),
    ),
    r(
        Post,
        "/v1/sweep",
        Some(Admin),
        "Time out expired leases now",
        (N, N, s("Swept")),
        Quick,
        h!(sweep),
    ),
    // Tokens.
    r(
        Get,
        "/v1/token",
        Some(Viewer),
        "The token this request carries",
        (N, N, s("TokenInfo")),
        Quick,
        h!(whoami),
    ),
    r(
        Get,
        "/v1/tokens",
        Some(Admin),
        "Every token, live and revoked (never a secret)",
        (N, N, s("TokenList")),
        Quick,
        h!(tokens),
    ),
    r(
        Post,
        "/v1/tokens",
        Some(Admin),
        "Make a token: its secret is in this answer only",
        (N, s("CreateToken"), s("NewToken")),
        Quick,
        h!(token_create),
    ),
    r(
        Post,
        "/v1/tokens/verify",
        Some(Admin),
        "Whose live token a secret is",
        (N, s("VerifyToken"), s("TokenInfo")),
        Quick,
        h!(token_verify),
    ),
    r(
        Delete,
        "/v1/tokens/{name}",
        Some(Admin),
        "Revoke a token",
        (N, N, s("TokenInfo")),
        Quick,
        h!(token_revoke),
    ),
    // Alerts (issue 9).
    r(
        Get,
        "/v1/alerts",
        Some(Viewer),
        "Every alert and what its last check found",
        (N, N, s("AlertList")),
        Quick,
        h!(alerts),
    ),
    r(
        Post,
        "/v1/alerts",
        Some(Operator),
        "Add an alert on a queue",
        (N, s("NewAlert"), s("Alert")),
        Quick,
        h!(alert_add),
    ),
    r(
        Delete,
        "/v1/alerts/{name}",
        Some(Operator),
        "Remove an alert",
        (N, N, s("Alert")),
        Quick,
        h!(alert_remove),
    ),
    r(
        Post,
        "/v1/alerts/{name}/state",
        Some(Operator),
        "Move an alert's state if no other checker moved it first",
        (N, s("SetAlertState"), s("AlertMoved")),
        Quick,
        h!(alert_state),
    ),
];

// ---------------------------------------------------------------- health

async fn healthz(c: Call) -> Result<Response, Error> {
    ok(&api::Health {
        status: "ok".into(),
        leader: Some(c.state.backend.leads()),
    })
}

async fn readyz(c: Call) -> Result<Response, Error> {
    // Any read that reaches the database: the token list is small.
    c.state.backend.tokens().await?;
    ok(&api::Health {
        status: "ready".into(),
        leader: Some(c.state.backend.leads()),
    })
}

// ---------------------------------------------------------------- queues

async fn queues(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.queues().await?)
}

async fn queue_create(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::CreateQueue = c.json().await?;
    ok(&state.backend.create_queue(&b.name, b.settings).await?)
}

async fn queue(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.queue(&c.param("name")).await?)
}

async fn upcoming(c: Call) -> Result<Response, Error> {
    let q: api::UpcomingQuery = c.query()?;
    let within = std::time::Duration::from_millis(q.within_ms);
    ok(&c
        .state
        .backend
        .upcoming(&c.param("name"), within, q.limit)
        .await?)
}

async fn queue_update(c: Call) -> Result<Response, Error> {
    let (state, name) = (c.state.clone(), c.param("name"));
    let settings: QueueSettings = c.json().await?;
    ok(&state.backend.update_queue(&name, settings).await?)
}

async fn queue_delete(c: Call) -> Result<Response, Error> {
    let q: api::DeleteQueue = c.query()?;
    let name = c.param("name");
    let n = c.state.backend.delete_queue(&name, q.force).await?;
    ok(&api::QueueDeleted {
        queue: name,
        deleted_items: n,
    })
}

async fn queue_pause(c: Call) -> Result<Response, Error> {
    let name = c.param("name");
    ok(&c
        .state
        .backend
        .set_queue_state(&name, QueueState::Paused)
        .await?)
}

async fn queue_resume(c: Call) -> Result<Response, Error> {
    let name = c.param("name");
    ok(&c
        .state
        .backend
        .set_queue_state(&name, QueueState::Active)
        .await?)
}

// ---------------------------------------------------------------- getting work in

async fn items_add(c: Call) -> Result<Response, Error> {
    let (state, name, actor) = (c.state.clone(), c.param("name"), c.actor());
    let b: api::AddItems = c.json().await?;
    if b.items.is_empty() {
        return Err(Error::invalid("items", "give at least one item"));
    }
    ok(&state.backend.add_items(&name, b.items, &actor).await?)
}

/// The upload is spooled to a temporary file (at most `--max-import` bytes), then read by
/// the same parser as `workq import`: the same checks, errors by line, all or nothing.
async fn import_upload(c: Call) -> Result<Response, Error> {
    use futures::StreamExt;
    use std::io::Write;
    let q: api::ImportQuery = c.query()?;
    let format: import::Format = match &q.format {
        Some(f) => f.parse().map_err(|m: String| Error::invalid("format", m))?,
        None => import::Format::Csv,
    };
    let popts = import::Options {
        key_column: q.key_column.clone(),
        name_column: q.name_column.clone(),
        delimiter: q
            .delimiter
            .as_deref()
            .map(|d| import::parse_delimiter(d).map_err(|m| Error::invalid("delimiter", m)))
            .transpose()?,
    };
    let (state, queue, actor) = (c.state.clone(), c.param("name"), c.actor());
    // Said before the upload is read: an unknown queue costs no spooling.
    state.backend.queue(&queue).await?;
    let limit = state.opts.max_import;
    let spool = tempfile::NamedTempFile::new()
        .map_err(|e| Error::invalid("body", format!("cannot spool the upload: {e}")))?;
    let mut file = spool
        .reopen()
        .map_err(|e| Error::invalid("body", e.to_string()))?;
    let mut body = c.body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid("body", format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Error::too_large(limit));
        }
        // Small writes to a local file: not worth a blocking task per chunk.
        file.write_all(&chunk)
            .map_err(|e| Error::invalid("body", format!("cannot spool the upload: {e}")))?;
    }
    file.flush().ok();
    drop(file);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let path = spool.path().to_path_buf();
    let parser = tokio::task::spawn_blocking({
        let popts = popts.clone();
        move || import::parse(&path, format, &popts, tx, &|_| {})
    });
    let opts = ImportOptions {
        skip_bad: q.skip_bad,
        dry_run: q.dry_run,
        key_column: q.key_column.clone(),
    };
    let stored = state.backend.import(&queue, opts, rx, &actor).await;
    let parsed = parser
        .await
        .map_err(|e| Error::invalid("body", format!("the import reader failed: {e}")))?;
    drop(spool);
    // A file-level problem (bad header, a column flag naming no column) says more than the
    // empty import it caused.
    let parsed = parsed.map_err(|m| Error::invalid("body", m))?;
    let report = stored?;
    ok(&api::ImportDone {
        report,
        rows: parsed.rows,
        columns: parsed.columns,
        sample: parsed.sample,
    })
}

// ---------------------------------------------------------------- reading

async fn items(c: Call) -> Result<Response, Error> {
    let q: api::ItemsQuery = c.query()?;
    let (filter, page) = q.to_request()?;
    ok(&c.state.backend.items(filter, page).await?)
}

async fn item(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.item(&c.param("id")).await?)
}

async fn groups(c: Call) -> Result<Response, Error> {
    let q: api::GroupsQuery = c.query()?;
    ok(&c.state.backend.groups(q.queue).await?)
}

async fn workers(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.workers().await?)
}

// ---------------------------------------------------------------- taking work

async fn register_worker(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::Register = c.json().await?;
    let worker = Call::bare(state.clone(), who).worker(Some(&b.worker))?;
    state.backend.register_worker(&worker, b.agent).await?;
    ok(&api::Registered { worker })
}

async fn dequeue(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::Dequeue = c.json().await?;
    let worker = Call::bare(state.clone(), who).worker(b.worker.as_deref())?;
    let wait = Duration::from_millis(b.wait).min(state.opts.max_wait);
    let started = std::time::Instant::now();
    let got = state
        .backend
        .dequeue(DequeueRequest {
            queues: b.queues,
            worker,
            count: b.count,
            wait,
        })
        .await?;
    if !got.leases.is_empty() {
        state
            .metrics
            .dequeued(started.elapsed(), got.leases.len() as u64);
    }
    ok(&got)
}

async fn heartbeat(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::Heartbeat = c.json().await?;
    let one = crate::model::LeaseRef {
        id: b.id.clone(),
        lease: b.lease.clone(),
    };
    let until = state
        .backend
        .heartbeat(vec![one])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(Error::invalid(
                "id",
                "the engine gave no answer for the lease",
            ))
        })?;
    ok(&api::LeaseUntil {
        id: b.id,
        lease_until: until,
    })
}

async fn heartbeats(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::Heartbeats = c.json().await?;
    let ids: Vec<String> = b.leases.iter().map(|l| l.id.clone()).collect();
    let done = state.backend.heartbeat(b.leases).await?;
    let each: Vec<Each<api::LeaseUntil>> = ids
        .into_iter()
        .zip(done)
        .map(|(id, r)| Each::from(r.map(|lease_until| api::LeaseUntil { id, lease_until })))
        .collect();
    ok(&each)
}

/// One outcome, refused as the request when it is refused.
async fn finish_one(c: Call, o: Outcome, worker: Option<String>) -> Result<Response, Error> {
    let worker = c.worker(worker.as_deref())?;
    let mut done = c.state.backend.finish(vec![o], &worker).await?;
    let one = done.pop().unwrap_or_else(|| {
        Err(Error::invalid(
            "id",
            "the engine gave no answer for the outcome",
        ))
    })?;
    c.state.metrics.finished(1);
    ok(&one)
}

async fn complete(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::Complete = c.json().await?;
    let o = Outcome {
        id: b.id,
        lease: b.lease,
        reason: None,
        note: b.note,
        retry_in: None,
    };
    finish_one(Call::bare(state, who), o, b.worker).await
}

async fn fail(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::Fail = c.json().await?;
    if b.reason == Reason::Timeout {
        return Err(Error::invalid(
            "reason",
            "timeout is for leases that ran out; use generic, it or business",
        ));
    }
    let o = Outcome {
        id: b.id,
        lease: b.lease,
        reason: Some(b.reason),
        note: b.note,
        retry_in: b.retry_in,
    };
    finish_one(Call::bare(state, who), o, b.worker).await
}

async fn finish(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::Finish = c.json().await?;
    let worker = Call::bare(state.clone(), who).worker(b.worker.as_deref())?;
    let done = state.backend.finish(b.outcomes, &worker).await?;
    state
        .metrics
        .finished(done.iter().filter(|r| r.is_ok()).count() as u64);
    let each: Vec<Each<Finished>> = done.into_iter().map(Each::from).collect();
    ok(&each)
}

async fn hand_back(c: Call) -> Result<Response, Error> {
    let (state, who) = (c.state.clone(), c.who.clone());
    let b: api::HandBackLeases = c.json().await?;
    let worker = Call::bare(state.clone(), who).worker(b.worker.as_deref())?;
    let done = state.backend.hand_back(b.leases, &worker, &b.note).await?;
    let each: Vec<Each<Finished>> = done.into_iter().map(Each::from).collect();
    ok(&each)
}

// ---------------------------------------------------------------- the human side

async fn preview(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::PreviewRequest = c.json().await?;
    ok(&state.backend.preview(b.target, b.action, b.sample).await?)
}

async fn act(c: Call) -> Result<Response, Error> {
    let (state, actor) = (c.state.clone(), c.actor());
    let b: api::Act = c.json().await?;
    let req = ActionRequest {
        target: b.target,
        action: b.action,
        note: b.note,
        actor,
        skip_refused: b.skip_refused,
    };
    ok(&state.backend.act(req).await?)
}

async fn actions(c: Call) -> Result<Response, Error> {
    let q: api::ActionsQuery = c.query()?;
    let query = ActionQuery {
        queue: q.queue,
        limit: q.limit.unwrap_or(20),
    };
    ok(&c.state.backend.actions(query).await?)
}

async fn undo(c: Call) -> Result<Response, Error> {
    let id = c.param("id");
    let action_id: i64 = id.parse().map_err(|_| {
        Error::invalid("id", format!("'{id}' is not an action id (a whole number)"))
    })?;
    let (state, actor) = (c.state.clone(), c.actor());
    // An empty body is an undo with the defaults.
    let bytes = c.bytes().await?;
    let b: api::Undo = if bytes.is_empty() {
        api::Undo::default()
    } else {
        super::http::parse_json(&bytes)?
    };
    let req = UndoRequest {
        action_id,
        actor,
        strict: b.strict,
        dry_run: b.dry_run,
    };
    ok(&state.backend.undo(req).await?)
}

async fn sweep(c: Call) -> Result<Response, Error> {
    ok(&api::Swept {
        timed_out: c.state.backend.sweep().await?,
    })
}

// ---------------------------------------------------------------- alerts

async fn alerts(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.alerts().await?)
}

async fn alert_add(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: crate::alert::NewAlert = c.json().await?;
    ok(&state.backend.add_alert(b).await?)
}

async fn alert_remove(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.remove_alert(&c.param("name")).await?)
}

async fn alert_state(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let name = c.param("name");
    let b: api::SetAlertState = c.json().await?;
    let alert = state
        .backend
        .set_alert_state(&name, b.seen_generation, b.to)
        .await?;
    ok(&api::AlertMoved { alert })
}

// ---------------------------------------------------------------- tokens

async fn whoami(c: Call) -> Result<Response, Error> {
    match &c.who {
        Some(t) => ok(t),
        None => Err(Error::unauthorized("no token")),
    }
}

async fn tokens(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.tokens().await?)
}

async fn token_create(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::CreateToken = c.json().await?;
    ok(&state.backend.create_token(&b.name, b.role).await?)
}

async fn token_verify(c: Call) -> Result<Response, Error> {
    let state = c.state.clone();
    let b: api::VerifyToken = c.json().await?;
    match state.backend.verify_token(&b.token).await? {
        Some(t) => ok(&t),
        None => Err(Error::not_found(
            crate::backend::Thing::Token,
            "(the token given)",
        )),
    }
}

async fn token_revoke(c: Call) -> Result<Response, Error> {
    ok(&c.state.backend.revoke_token(&c.param("name")).await?)
}
