//! `workq serve` end to end: the real binary on a real SQLite file, real HTTP on 127.0.0.1.
//! Routes with good and bad input, the auth matrix built from the route table, limits
//! (413, 429), events with resume, metrics, TLS and a graceful stop.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workq::server::routes::{Verb, TABLE};
use workq::token::Role;

// ------------------------------------------------------------------ harness

fn workq(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workq"));
    c.arg("--db")
        .arg(db)
        .env_remove("WORKQ_DB")
        .env("USER", "tester")
        .env("TZ", "UTC");
    c
}

/// `workq token create NAME --role ROLE` on the file: the secret, alone on stdout.
fn token(db: &Path, name: &str, role: &str) -> String {
    let out = workq(db)
        .args(["token", "create", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {stdout:?}");
    assert!(
        lines[0].starts_with("wq_") && lines[0].len() == 67,
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shown only now"),
        "usage on stderr"
    );
    lines[0].to_string()
}

struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
    db: PathBuf,
}

impl Server {
    /// A server on a fresh file with an admin token (`tokens["admin"]`) and one of each role.
    fn start(args: &[&str]) -> (Server, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        workq(&db).args(["queue", "ls"]).output().unwrap();
        let tokens = Tokens::make(&db);
        let mut s = Server::on(&db, args);
        s._dir = Some(dir);
        (s, tokens)
    }

    fn on(db: &Path, args: &[&str]) -> Server {
        let mut child = workq(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(at) = line.find("listening on ") {
                    let url = line[at + 13..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no address printed: {}", stderr.lock().unwrap()));
        Server {
            child,
            url,
            stderr,
            _dir: None,
            db: db.to_path_buf(),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Tokens {
    by_role: Vec<(Role, String)>,
    revoked: String,
}

impl Tokens {
    fn make(db: &Path) -> Tokens {
        let by_role = Role::ALL
            .iter()
            .map(|r| (*r, token(db, &format!("t-{r}"), r.as_str())))
            .collect();
        let revoked = token(db, "gone", "admin");
        let out = workq(db)
            .args(["token", "revoke", "gone"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Tokens { by_role, revoked }
    }
    fn of(&self, r: Role) -> &str {
        &self.by_role.iter().find(|(x, _)| *x == r).unwrap().1
    }
    fn admin(&self) -> &str {
        self.of(Role::Admin)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A request and its answer: status and body as JSON (Null when not JSON).
async fn call(
    s: &Server,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = client().request(method, format!("{}{path}", s.url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(s: &Server, t: &str, path: &str) -> Value {
    let (st, v) = call(s, Some(t), Method::GET, path, None).await;
    assert_eq!(st, StatusCode::OK, "GET {path}: {v}");
    v
}

async fn post(s: &Server, t: &str, path: &str, body: Value) -> Value {
    let (st, v) = call(s, Some(t), Method::POST, path, Some(body)).await;
    assert_eq!(st, StatusCode::OK, "POST {path}: {v}");
    v
}

/// Everything a refused request could have changed.
async fn snapshot(s: &Server, t: &str) -> Value {
    // The oldest item's age grows on its own with the wall clock: no change of state.
    let mut queues = get(s, t, "/v1/queues").await;
    for q in queues.as_array_mut().into_iter().flatten() {
        q["oldest_queued_secs"] = Value::Null;
    }
    json!({
        "queues": queues,
        "items": get(s, t, "/v1/items?limit=1000").await,
        "actions": get(s, t, "/v1/actions").await,
        "tokens": get(s, t, "/v1/tokens").await,
        "workers": get(s, t, "/v1/workers").await,
    })
}

fn method(v: Verb) -> Method {
    match v {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
        Verb::Patch => Method::PATCH,
        Verb::Delete => Method::DELETE,
    }
}

/// A route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{name}", "q").replace("{id}", "1")
}

fn kind(v: &Value) -> &str {
    v["error"]["kind"].as_str().unwrap_or("")
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn every_route_refuses_missing_wrong_revoked_and_too_small_tokens_and_changes_nothing() {
    let (s, tokens) = Server::start(&[]);
    let admin = tokens.admin();
    post(&s, admin, "/v1/queues", json!({"name": "q"})).await;
    post(
        &s,
        admin,
        "/v1/queues/q/items",
        json!({"items": [{"value": "a"}]}),
    )
    .await;
    let before = snapshot(&s, admin).await;
    let mut checked = 0;
    for route in TABLE {
        let path = concrete(route.path);
        let m = method(route.verb);
        let body = (route.verb != Verb::Get && route.verb != Verb::Delete).then(|| json!({}));
        let Some(needed) = route.role else {
            let (st, v) = call(&s, None, m.clone(), &path, body.clone()).await;
            assert_eq!(st, StatusCode::OK, "{path} is public: {v}");
            continue;
        };
        for (t, what) in [
            (None, "no token"),
            (Some("wq_0000"), "a wrong token"),
            (Some(tokens.revoked.as_str()), "a revoked token"),
        ] {
            let (st, v) = call(&s, t, m.clone(), &path, body.clone()).await;
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{} {path} with {what}: {v}",
                m
            );
            assert_eq!(kind(&v), "unauthorized", "{v}");
            checked += 1;
        }
        for role in Role::ALL.iter().filter(|r| !r.allows(needed)) {
            let (st, v) = call(&s, Some(tokens.of(*role)), m.clone(), &path, body.clone()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{m} {path} as {role}: {v}");
            assert_eq!(kind(&v), "forbidden");
            assert_eq!(v["error"]["needs"], needed.as_str());
            checked += 1;
        }
    }
    assert!(checked > TABLE.len() * 3, "the matrix ran");
    assert_eq!(
        snapshot(&s, admin).await,
        before,
        "refused requests changed nothing"
    );
    // And every role that may call a route gets past the check (to whatever the input says).
    for route in TABLE.iter().filter(|r| r.role.is_some()) {
        let path = concrete(route.path);
        let body = (route.verb != Verb::Get && route.verb != Verb::Delete).then(|| json!({}));
        for role in Role::ALL.iter().filter(|r| r.allows(route.role.unwrap())) {
            let req = client()
                .request(method(route.verb), format!("{}{path}", s.url))
                .bearer_auth(tokens.of(*role));
            let req = match &body {
                Some(b) => req.json(b),
                None => req,
            };
            // Headers only: an event stream does not end.
            let st = req.send().await.unwrap().status();
            assert!(
                st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                "{} {path} as {role}: {st}",
                route.verb.as_str()
            );
            assert!(
                !st.is_server_error(),
                "{} {path} as {role}: {st}",
                route.verb.as_str()
            );
        }
    }
}

#[tokio::test]
async fn history_names_the_token_and_the_worker_under_it() {
    let (s, tokens) = Server::start(&[]);
    let admin = tokens.admin();
    post(&s, admin, "/v1/queues", json!({"name": "q"})).await;
    let op = tokens.of(Role::Operator);
    let added = post(
        &s,
        op,
        "/v1/queues/q/items",
        json!({"items": [{"value": "v"}]}),
    )
    .await;
    let id = added[0]["id"].as_str().unwrap().to_string();
    let w = tokens.of(Role::Worker);
    let got = post(
        &s,
        w,
        "/v1/dequeue",
        json!({"queues": ["q"], "worker": "bot-7"}),
    )
    .await;
    let lease = got["leases"][0]["lease"].as_str().unwrap();
    post(
        &s,
        w,
        "/v1/complete",
        json!({"id": id, "lease": lease, "worker": "bot-7"}),
    )
    .await;
    let detail = get(&s, admin, &format!("/v1/items/{id}")).await;
    let by: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["by"].as_str().unwrap())
        .collect();
    assert_eq!(
        by,
        [
            "token:t-operator",
            "token:t-worker/bot-7",
            "token:t-worker/bot-7"
        ]
    );
    let me = get(&s, w, "/v1/token").await;
    assert_eq!(me["name"], "t-worker");
    assert_eq!(me["role"], "worker");
}

#[tokio::test]
async fn the_first_start_says_how_to_make_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let s = Server::on(&db, &[]);
    let (st, _) = call(&s, None, Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        s.stderr().contains("token create NAME --role admin"),
        "{}",
        s.stderr()
    );
    let (st, v) = call(&s, None, Method::GET, "/readyz", None).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    // Made while it runs: taken at once, as a revoke is.
    let t = token(&db, "late", "viewer");
    get(&s, &t, "/v1/queues").await;
    workq(&db)
        .args(["token", "revoke", "late"])
        .output()
        .unwrap();
    let (st, _) = call(&s, Some(&t), Method::GET, "/v1/queues", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------------------ bad input

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field_unknown_ids_404_stale_leases_409() {
    let (s, tokens) = Server::start(&["--max-body", "4K"]);
    let t = tokens.admin();
    post(&s, t, "/v1/queues", json!({"name": "q"})).await;
    let before = snapshot(&s, t).await;
    let raw = |path: &str, body: &str| {
        let req = client()
            .post(format!("{}{path}", s.url))
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap())
        }
    };
    for (path, body, field) in [
        ("/v1/queues/q/items", r#"{"items": [{"value": "a"}"#, "body"),
        (
            "/v1/queues/q/items",
            r#"{"items": [{"value": 7}]}"#,
            "items[0].value",
        ),
        (
            "/v1/queues/q/items",
            r#"{"items": [{"value": "a", "prio": 1}]}"#,
            "items[0].prio",
        ),
        (
            "/v1/queues/q/items",
            r#"{"items": [{"value": "a", "priority": "urgent"}]}"#,
            "items[0].priority",
        ),
        ("/v1/queues/q/items", r#"{"items": []}"#, "items"),
        (
            "/v1/queues",
            r#"{"name": "x", "settings": {"lease": "5m"}}"#,
            "settings.lease",
        ),
        ("/v1/queues", r#"{"name": "x", "colour": "red"}"#, "colour"),
        ("/v1/queues", r#"{"name": " padded"}"#, "name"),
        ("/v1/dequeue", r#"{"queues": "q"}"#, "queues"),
        (
            "/v1/actions",
            r#"{"target": {"ids": []}, "action": {"kind": "explode"}}"#,
            "action.kind",
        ),
        ("/v1/tokens", r#"{"name": "x", "role": "root"}"#, "role"),
        ("/v1/queues", r#"{"name": "x"} trailing"#, "body"),
        ("/v1/queues", "", "body"),
    ] {
        let (st, v) = raw(path, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path} {body}: {v}");
        assert_eq!(kind(&v), "invalid", "{v}");
        assert_eq!(v["error"]["field"], field, "{path} {body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    for q in [
        "/v1/items?stauts=queued",
        "/v1/items?status=lost",
        "/v1/items?limit=many",
    ] {
        let (st, v) = call(&s, Some(t), Method::GET, q, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    // Oversize: 413, as JSON.
    let big = json!({"items": [{"value": "x".repeat(5000)}]});
    let (st, v) = call(&s, Some(t), Method::POST, "/v1/queues/q/items", Some(big)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(kind(&v), "too_large");
    assert_eq!(v["error"]["limit"], 4096);
    // Injection strings as names and filters: refused or not found, never a server error.
    for evil in [
        "'; DROP TABLE items; --",
        "../../etc/passwd",
        "%00",
        "q\" OR 1=1",
        "\u{202e}x",
    ] {
        let enc: String = url_escape(evil);
        for path in [
            format!("/v1/queues/{enc}"),
            format!("/v1/items/{enc}"),
            format!("/v1/items?queue={enc}&search={enc}&signature={enc}&worker={enc}"),
            format!("/v1/groups?queue={enc}"),
        ] {
            let (st, v) = call(&s, Some(t), Method::GET, &path, None).await;
            assert!(
                st == StatusCode::OK
                    || st == StatusCode::NOT_FOUND
                    || st == StatusCode::BAD_REQUEST,
                "{path}: {st} {v}"
            );
        }
        let (st, _) = call(
            &s,
            Some(t),
            Method::POST,
            "/v1/queues",
            Some(json!({"name": evil})),
        )
        .await;
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::OK,
            "{evil}: {st}"
        );
    }
    let after = snapshot(&s, t).await;
    assert_eq!(after["items"], before["items"], "no item landed");
    // Unknown ids.
    for path in ["/v1/items/nope", "/v1/queues/nope", "/v1/nothing"] {
        let (st, v) = call(&s, Some(t), Method::GET, path, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(kind(&v), "not_found");
    }
    let (st, v) = call(&s, Some(t), Method::DELETE, "/v1/tokens/nobody", None).await;
    assert_eq!((st, kind(&v)), (StatusCode::NOT_FOUND, "not_found"));
    // A stale lease: 409, and the item stays leased.
    post(
        &s,
        t,
        "/v1/queues/q/items",
        json!({"items": [{"value": "a"}]}),
    )
    .await;
    let got = post(&s, t, "/v1/dequeue", json!({"queues": ["q"]})).await;
    let id = got["leases"][0]["item"]["id"].as_str().unwrap();
    let (st, v) = call(
        &s,
        Some(t),
        Method::POST,
        "/v1/complete",
        Some(json!({"id": id, "lease": "not-the-lease"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["conflict"], "stale_lease");
    let item = get(&s, t, &format!("/v1/items/{id}")).await;
    assert_eq!(item["status"], "processing");
    // A batch answers each outcome on its own.
    let lease = got["leases"][0]["lease"].as_str().unwrap();
    let each = post(
        &s,
        t,
        "/v1/finish",
        json!({"outcomes": [
            {"id": id, "lease": "wrong", "reason": null, "note": null},
            {"id": id, "lease": lease, "reason": "business", "note": "no PO"},
        ]}),
    )
    .await;
    assert_eq!(each[0]["error"]["conflict"], "stale_lease", "{each}");
    assert_eq!(each[1]["ok"]["status"], "exception", "{each}");
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    // One request per 100 s after a burst of 2: the third is refused, however slow the machine.
    let (s, tokens) = Server::start(&["--rate-limit", "0.01", "--rate-burst", "2"]);
    let t = tokens.of(Role::Viewer);
    get(&s, t, "/v1/queues").await;
    get(&s, t, "/v1/queues").await;
    let r = client()
        .get(format!("{}/v1/queues", s.url))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&after), "{after}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(kind(&v), "rate_limited");
    // Another token has its own bucket.
    get(&s, tokens.admin(), "/v1/queues").await;
}

// ------------------------------------------------------------------ work through the server

#[tokio::test]
async fn a_long_poll_wakes_when_work_arrives_and_actions_undo() {
    let (s, tokens) = Server::start(&[]);
    let t = tokens.admin().to_string();
    post(&s, &t, "/v1/queues", json!({"name": "q"})).await;
    let url = s.url.clone();
    let t2 = t.clone();
    let waiting = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/dequeue"))
            .bearer_auth(t2)
            .json(&json!({"queues": ["q"], "wait": 30000}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    post(
        &s,
        &t,
        "/v1/queues/q/items",
        json!({"items": [{"value": "late"}]}),
    )
    .await;
    let got = waiting.await.unwrap();
    assert_eq!(got["leases"][0]["item"]["value"], "late", "{got}");
    let id = got["leases"][0]["item"]["id"].as_str().unwrap();
    let lease = got["leases"][0]["lease"].as_str().unwrap();
    let hb = post(&s, &t, "/v1/heartbeat", json!({"id": id, "lease": lease})).await;
    assert_eq!(hb["id"], id);
    // retry_in postpones only an IT exception: on a business one it is refused, 400.
    let (st, v) = call(
        &s,
        Some(&t),
        Method::POST,
        "/v1/fail",
        Some(json!({"id": id, "lease": lease, "reason": "business", "retry_in": 600000})),
    )
    .await;
    assert_eq!((st, kind(&v)), (StatusCode::BAD_REQUEST, "invalid"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not business"),
        "{v}"
    );
    let f = post(
        &s,
        &t,
        "/v1/fail",
        json!({"id": id, "lease": lease, "reason": "business"}),
    )
    .await;
    assert_eq!(f["status"], "exception");
    // Preview, act by filter, undo.
    let filter = json!({"filter": {"queue": "q", "statuses": ["exception"]}});
    let p = post(
        &s,
        &t,
        "/v1/preview",
        json!({"target": filter, "action": {"kind": "hold"}}),
    )
    .await;
    assert_eq!(p["changes"], 1, "{p}");
    let a = post(
        &s,
        &t,
        "/v1/actions",
        json!({"target": filter, "action": {"kind": "hold"}}),
    )
    .await;
    assert_eq!(a["touched"], 1);
    let log = get(&s, &t, "/v1/actions?queue=q").await;
    assert_eq!(log[0]["by"], "token:t-admin");
    let u = post(
        &s,
        &t,
        &format!("/v1/actions/{}/undo", a["action_id"]),
        json!({}),
    )
    .await;
    assert_eq!(u["restored"], 1, "{u}");
    let groups = get(&s, &t, "/v1/groups?queue=q").await;
    assert_eq!(groups[0]["count"], 1, "{groups}");
    // Queue management.
    let paused = post(&s, &t, "/v1/queues/q/pause", json!({})).await;
    assert_eq!(paused["state"], "paused");
    let (st, v) = call(
        &s,
        Some(&t),
        Method::PATCH,
        "/v1/queues/q",
        Some(json!({"description": "d"})),
    )
    .await;
    assert_eq!((st, v["description"].as_str()), (StatusCode::OK, Some("d")));
    let (st, v) = call(&s, Some(&t), Method::DELETE, "/v1/queues/q", None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["conflict"], "queue_not_empty");
    let (st, v) = call(
        &s,
        Some(&t),
        Method::DELETE,
        "/v1/queues/q?force=true",
        None,
    )
    .await;
    assert_eq!(
        (st, v["deleted_items"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
}

#[tokio::test]
async fn an_upload_imports_all_or_nothing_with_errors_by_line() {
    let (s, tokens) = Server::start(&[]);
    let t = tokens.admin();
    post(&s, t, "/v1/queues", json!({"name": "q"})).await;
    let upload = |query: &str, body: &'static str| {
        let req = client()
            .post(format!("{}/v1/queues/q/import?{query}", s.url))
            .bearer_auth(t)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let csv = "key,value,priority\nA,1,high\nB,2,low\nC,3,urgent\nD,4,normal\n";
    let (st, v) = upload("", csv).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "rows", "{v}");
    assert_eq!(v["error"]["rows"][0]["line"], 4, "{v}");
    assert_eq!(
        get(&s, t, "/v1/items?queue=q").await["total"],
        0,
        "nothing landed"
    );
    let (st, v) = upload("skip_bad=true", csv).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 3);
    assert_eq!(v["rejected"][0]["line"], 4);
    // The same again: every key is a duplicate now.
    let (st, v) = upload("skip_bad=true", csv).await;
    assert_eq!(
        (st, v["imported"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    let (st, v) = upload("format=jsonl", "{\"value\": {\"a\": 1}}\n{\"value\": 2}\n").await;
    assert_eq!(
        (st, v["imported"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
    let (st, v) = upload("dry_run=true", "value\nx\n").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sample"][0]["item"]["value"], "x", "{v}");
    assert_eq!(get(&s, t, "/v1/items?queue=q").await["total"], 5);
    let (st, v) = upload("format=xml", "x").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("format"))
    );
}

// ------------------------------------------------------------------ events

/// Reads SSE frames from a response until `n` events (not comments) arrived.
async fn frames(
    r: &mut reqwest::Response,
    n: usize,
    buf: &mut String,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut ev, mut data) = (String::new(), String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().into();
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev = v.trim().into();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = v.trim().into();
                }
            }
            if !ev.is_empty() {
                out.push((id, ev, data));
                if out.len() == n {
                    return out;
                }
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended after {out:?}"));
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn events(s: &Server, t: &str, query: &str, last: Option<&str>) -> reqwest::Response {
    let mut r = client()
        .get(format!("{}/v1/events{query}", s.url))
        .bearer_auth(t);
    if let Some(l) = last {
        r = r.header("last-event-id", l);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r
}

#[tokio::test]
async fn events_resume_from_last_event_id_and_say_refetch_beyond_the_window() {
    let (s, tokens) = Server::start(&["--events-window", "3"]);
    let t = tokens.admin();
    let mut live = events(&s, t, "", None).await;
    let mut buf = String::new();
    post(&s, t, "/v1/queues", json!({"name": "a"})).await;
    let first = frames(&mut live, 1, &mut buf).await;
    assert_eq!(first[0].1, "queue");
    assert_eq!(
        serde_json::from_str::<Value>(&first[0].2).unwrap()["queue"],
        "a"
    );
    let id = first[0].0.clone();
    assert!(id.contains('-'), "EPOCH-SEQ: {id}");
    drop(live);
    // Missed while away: two events, inside the window of 3.
    post(&s, t, "/v1/queues", json!({"name": "b"})).await;
    post(
        &s,
        t,
        "/v1/queues/b/items",
        json!({"items": [{"value": "x"}]}),
    )
    .await;
    let mut back = events(&s, t, "", Some(&id)).await;
    let mut buf = String::new();
    let missed = frames(&mut back, 2, &mut buf).await;
    assert_eq!(
        missed.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(),
        ["queue", "items"],
        "{missed:?}"
    );
    drop(back);
    // Filtered by queue.
    let mut only_b = events(&s, t, "?queue=b", Some(&id)).await;
    let mut buf = String::new();
    let got = frames(&mut only_b, 2, &mut buf).await;
    assert!(got.iter().all(|f| f.2.contains("\"b\"")), "{got:?}");
    drop(only_b);
    // Beyond the window, or from another epoch: refetch.
    for q in ["c", "d", "e"] {
        post(&s, t, "/v1/queues", json!({"name": q})).await;
    }
    for old in [id.as_str(), "1-1"] {
        let mut r = events(&s, t, "", Some(old)).await;
        let mut buf = String::new();
        let f = frames(&mut r, 1, &mut buf).await;
        assert_eq!(f[0].1, "refetch", "{old}: {f:?}");
        assert!(!f[0].0.is_empty(), "a refetch carries where to resume from");
    }
    let metrics = client()
        .get(format!("{}/metrics", s.url))
        .bearer_auth(t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("workq_sse_clients "), "{metrics}");
}

// ------------------------------------------------------------------ metrics

#[tokio::test]
async fn metrics_are_prometheus_text_with_queue_counts_and_requests() {
    let (s, tokens) = Server::start(&[]);
    let t = tokens.admin();
    post(&s, t, "/v1/queues", json!({"name": "q\"1"})).await;
    post(
        &s,
        t,
        "/v1/queues/q%221/items",
        json!({"items": [{"value": "a"}, {"value": "b"}]}),
    )
    .await;
    post(&s, t, "/v1/dequeue", json!({"queues": ["q\"1"]})).await;
    let text = client()
        .get(format!("{}/metrics", s.url))
        .bearer_auth(t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let bare = name.split('{').next().unwrap();
        assert!(
            bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        samples.insert(name.to_string(), v);
    }
    assert_eq!(
        samples[r#"workq_items{queue="q\"1",status="queued"}"#], 1.0,
        "{text}"
    );
    assert_eq!(
        samples[r#"workq_items{queue="q\"1",status="processing"}"#],
        1.0
    );
    assert_eq!(samples["workq_dequeue_seconds_count"], 1.0);
    assert_eq!(samples["workq_dequeued_total"], 1.0);
    assert!(
        samples[r#"workq_http_requests_total{route="/v1/queues/{name}/items",method="POST",code="200"}"#]
            >= 1.0
    );
}

// ------------------------------------------------------------------ TLS and listening

#[tokio::test]
async fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.signing_key.serialize_pem()).unwrap();
    let (s, tokens) = Server::start(&[
        "--tls-cert",
        cp.to_str().unwrap(),
        "--tls-key",
        kp.to_str().unwrap(),
    ]);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/v1/queues", s.url))
        .bearer_auth(tokens.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Plain HTTP to the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    assert!(client()
        .get(format!("{plain}/healthz"))
        .send()
        .await
        .is_err());
    // A certificate that is not one is refused at start, by name.
    let out = workq(&s.db)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&kp)
        .arg("--tls-key")
        .arg(&kp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-cert"),
        "{out:?}"
    );
}

#[test]
fn a_non_loopback_address_without_tls_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = workq(&db)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without TLS") && err.contains("--insecure"),
        "{err}"
    );
}

// ------------------------------------------------------------------ stopping

#[tokio::test]
async fn sigterm_finishes_requests_under_way_and_ends_event_streams_with_shutdown() {
    let (mut s, tokens) = Server::start(&["--grace", "20s"]);
    let t = tokens.admin().to_string();
    post(&s, &t, "/v1/queues", json!({"name": "q"})).await;
    // Filtered to a queue nothing happens on: only the shutdown comes.
    let mut stream = events(&s, &t, "?queue=quiet", None).await;
    let url = s.url.clone();
    let waiting = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/dequeue"))
            .bearer_auth(t)
            .json(&json!({"queues": ["q"], "wait": 1500}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || {
        let st = s.stop();
        (st, s.stderr())
    });
    let mut buf = String::new();
    let bye = frames(&mut stream, 1, &mut buf).await;
    assert_eq!(bye[0].1, "shutdown", "{bye:?}");
    let r = waiting
        .await
        .unwrap()
        .expect("the long poll under way was answered");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["leases"], json!([]), "{v}");
    let (st, err) = status.await.unwrap();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("stopped"), "{err}");
}

#[tokio::test]
async fn an_upload_over_max_import_is_413_and_a_wait_is_capped_by_max_wait() {
    let (s, tokens) = Server::start(&["--max-import", "1K", "--max-wait", "100ms"]);
    let t = tokens.admin();
    post(&s, t, "/v1/queues", json!({"name": "q"})).await;
    let mut csv = String::from("value\n");
    while csv.len() <= 2048 {
        csv.push_str("some value\n");
    }
    let r = client()
        .post(format!("{}/v1/queues/q/import", s.url))
        .bearer_auth(t)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (kind(&v), v["error"]["limit"].as_u64()),
        ("too_large", Some(1024))
    );
    assert_eq!(get(&s, t, "/v1/items?queue=q").await["total"], 0);
    // An hour's wait asked, a tenth of a second served: the answer comes, empty, well
    // inside the client's own minute.
    let got = post(
        &s,
        t,
        "/v1/dequeue",
        json!({"queues": ["q"], "wait": 3_600_000}),
    )
    .await;
    assert_eq!(got["leases"], json!([]));
    assert_eq!(got["why_empty"]["reason"], "nothing_ready", "{got}");
}

#[test]
fn token_commands_keep_only_hashes_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let secret = token(&db, "ci", "worker");
    let run = |args: &[&str]| workq(&db).args(args).output().unwrap();
    let dup = run(&["token", "create", "ci", "--role", "admin"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already exists"),
        "{dup:?}"
    );
    let bad = run(&["token", "create", "x", "--role", "root"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--role: unknown role 'root'"),
        "{bad:?}"
    );
    let bad = run(&["token", "create", "a b", "--role", "viewer"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let gone = run(&["token", "revoke", "nobody"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("unknown token 'nobody'"),
        "{gone:?}"
    );
    assert!(run(&["token", "revoke", "ci"]).status.success());
    // The name can be given again once revoked; the list keeps both, secrets in neither.
    let again = token(&db, "ci", "viewer");
    assert_ne!(again, secret);
    let ls = run(&["--json", "token", "ls"]);
    let list: Value = serde_json::from_slice(&ls.stdout).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows[0]["revoked_at"].is_string() && rows[1]["revoked_at"].is_null(),
        "{list}"
    );
    assert_eq!(rows[1]["role"], "viewer");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(!text.contains(&secret) && !text.contains(&again));
    // The file holds the hash, never the token.
    let raw = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.path().join("t.db-wal")).unwrap_or_default();
    for s in [&secret, &again] {
        let needle = s.as_bytes();
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
        assert!(!wal.windows(needle.len()).any(|w| w == needle));
    }
}

/// Sends a request whose body stops half way, on a raw connection, and reads the answer
/// the server gives while the rest never comes: status line and JSON body.
fn stalled_request(url: &str, token: &str, path: &str, body: &str) -> (String, Value) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    // Far longer than the server's --timeout: the answer is the server's, not ours.
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..body.len() / 2]).unwrap();
    conn.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the answer's JSON is whole (the server may keep the socket open).
    loop {
        let n = conn.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if n == 0
            || text
                .split_once("\r\n\r\n")
                .is_some_and(|(_, b)| serde_json::from_str::<Value>(b).is_ok())
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_request_past_timeout_is_503_timeout_and_changes_nothing() {
    // A long poll gets --timeout plus its wait (capped by --max-wait), so the request
    // that runs long is one whose body never finishes arriving: the handler waits on it
    // inside --timeout.
    let (s, tokens) = Server::start(&["--timeout", "300ms", "--max-wait", "200ms"]);
    let t = tokens.admin();
    post(&s, t, "/v1/queues", json!({"name": "q"})).await;
    post(
        &s,
        t,
        "/v1/queues/q/items",
        json!({"items": [{"value": "{\"n\":1}"}]}),
    )
    .await;
    let before = snapshot(&s, t).await;
    let (url, token) = (s.url.clone(), t.to_string());
    let cases = [
        (
            "/v1/queues/q/items",
            json!({"items": [{"value": "{\"n\":2}"}, {"value": "{\"n\":3}"}]}),
        ),
        (
            "/v1/dequeue",
            json!({"queues": ["q"], "worker": "w", "count": 1, "wait": 0}),
        ),
        ("/v1/queues", json!({"name": "other"})),
    ];
    for (path, body) in cases {
        let (url, token, body) = (url.clone(), token.clone(), body.to_string());
        let (status, v) =
            tokio::task::spawn_blocking(move || stalled_request(&url, &token, path, &body))
                .await
                .unwrap();
        assert!(status.contains(" 503 "), "{path}: {status} {v}");
        assert_eq!(kind(&v), "timeout", "{path}: {v}");
        let after_ms = v["error"]["after_ms"].as_u64();
        // A long poll's limit is --timeout plus --max-wait; a quick route's is --timeout.
        let limit = if path == "/v1/dequeue" {
            300 + 200
        } else {
            300
        };
        assert_eq!(after_ms, Some(limit), "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("gave up"),
            "{v}"
        );
    }
    // The age of the oldest item grows on its own while the requests wait out --timeout.
    let ageless = |mut v: Value| {
        for q in v["queues"].as_array_mut().unwrap() {
            q["oldest_queued_secs"] = Value::Null;
        }
        v
    };
    assert_eq!(
        ageless(snapshot(&s, t).await),
        ageless(before),
        "a timed-out request changed something"
    );
    // The server still answers, and the item is still there to take.
    let got = post(
        &s,
        t,
        "/v1/dequeue",
        json!({"queues": ["q"], "worker": "w", "count": 5, "wait": 0}),
    )
    .await;
    assert_eq!(got["leases"].as_array().map(Vec::len), Some(1), "{got}");
}
