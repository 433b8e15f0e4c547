//! The demo: back-office queues modelled on real work, an hour of history written in a
//! second, and simulated bots that keep working live (business and IT exceptions, a flaky
//! system, crashes that leave leases to time out). Used by `workq demo`, tests and benchmarks.

use crate::backend::{Backend, Result};
use crate::clock::{from_ms, Clock};
use crate::connect::{self, Open, Target};
use crate::model::*;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A clock that runs behind the wall clock by an adjustable amount, so the seed can write
/// an hour of history "in the past" and then catch up with the present.
pub struct ShiftedClock {
    behind_ms: AtomicI64,
}

impl ShiftedClock {
    pub fn new(behind: Duration) -> Self {
        ShiftedClock {
            behind_ms: AtomicI64::new(behind.as_millis() as i64),
        }
    }
    pub fn set_behind(&self, behind: Duration) {
        self.behind_ms
            .store(behind.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Time {
        from_ms(Utc::now().timestamp_millis() - self.behind_ms.load(Ordering::SeqCst))
    }
}

/// What the demo holds: the store and the tasks that keep it alive.
pub struct Demo {
    pub store: Arc<dyn Backend>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub const INVOICES: &str = "vendor-invoices";
pub const ONBOARDING: &str = "customer-onboarding";
pub const RECONCILIATION: &str = "payment-reconciliation";
pub const ADDRESSES: &str = "address-changes";

/// Minutes of history written before the console opens (the sparkline shows 30).
const HISTORY_MIN: i64 = 40;
/// Items written into the history; the rest of `items` is the present backlog.
const HISTORY_ITEMS: u64 = 3_000;
/// Rows per import call for the backlog, so a million items arrive in visible steps.
const BACKLOG_CHUNK: u64 = 50_000;

/// `workq demo` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Items to seed (an hour of history plus a backlog); 1000000 works.
    #[arg(long, default_value_t = 5_000)]
    pub items: u64,
    /// Seed the data but start no simulated bots.
    #[arg(long)]
    pub no_bots: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Items seeded in total (history plus backlog).
    pub items: u64,
    /// Run the simulated bots and the feeders that keep adding work.
    pub live: bool,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            items: 5_000,
            live: true,
            seed: 7,
        }
    }
}

/// Where the demo writes its fresh database: the `--db` given (which must not exist yet:
/// the demo never writes into someone's data), else a new folder in the temporary directory.
pub fn fresh_path(target: &Target) -> std::result::Result<PathBuf, String> {
    if target.db.is_some() || target.remote.is_some() {
        let path = connect::local_path(target).map_err(|e| e.to_string())?;
        if path.exists() {
            return Err(format!(
                "{} exists: the demo writes a fresh database (give another --db, or unset WORKQ_DB)",
                path.display()
            ));
        }
        return Ok(path);
    }
    let dir = std::env::temp_dir().join(format!(
        "workq-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir.join("demo.db"))
}

/// Creates the demo database at `path` (which should not exist yet), writes its history,
/// and starts the backlog import and the bots in the background.
pub async fn start(path: &Path, opts: DemoOptions) -> Result<Demo> {
    let clock = Arc::new(ShiftedClock::new(Duration::from_secs(
        HISTORY_MIN as u64 * 60,
    )));
    let store = connect::connect_on(&Target::db(path), Open::Create, clock.clone())
        .map_err(connect::Error::into_backend)?
        .backend;
    create_queues(&*store).await?;
    let history = opts.items.min(HISTORY_ITEMS);
    write_history(&store, &clock, history, opts.seed).await?;
    clock.set_behind(Duration::ZERO);
    store.sweep().await?;
    let mut tasks = Vec::new();
    let backlog = opts.items - history;
    if backlog > 0 {
        let s = store.clone();
        let seed = opts.seed;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = import_backlog(&*s, backlog, seed).await {
                tracing::error!("demo backlog import failed: {e}");
            }
        }));
    }
    if opts.live {
        tasks.extend(spawn_bots(store.clone(), opts.seed));
    }
    Ok(Demo { store, tasks })
}

async fn create_queues(store: &dyn Backend) -> Result<()> {
    for q in &data().queue {
        store.create_queue(&q.name, q.settings()).await?;
    }
    Ok(())
}

/// `assets/demo/demo.toml`: the demo's queues, names and failure notes.
const DATA: &str = include_str!("../assets/demo/demo.toml");

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    vendors: Vec<String>,
    unknown_vendors: Vec<String>,
    people: Vec<String>,
    countries: Vec<String>,
    notes: Notes,
    queue: Vec<DemoQueue>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Notes {
    unknown_vendor: String,
    over_limit: String,
    sap_timeout: String,
    kyc_old_proof: String,
    email_taken: String,
    crm_timeout: String,
    bank_unavailable: String,
    no_open_item: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoQueue {
    name: String,
    description: String,
    sla: Option<String>,
    sla_risk_pct: Option<u8>,
    deadline: Option<String>,
    tz: Option<String>,
    ttl: Option<String>,
    max_retries: Option<u32>,
    lease: Option<String>,
    concurrency: Option<u32>,
    priority: Option<i32>,
}

impl DemoQueue {
    fn settings(&self) -> QueueSettings {
        let d = |s: &Option<String>| {
            s.as_deref()
                .map(|t| crate::rules::parse_duration(t).expect("the demo's durations parse"))
        };
        QueueSettings {
            description: Some(self.description.clone()),
            sla: d(&self.sla),
            sla_risk_pct: self.sla_risk_pct,
            deadline: self.deadline.clone(),
            tz: self.tz.clone(),
            ttl: d(&self.ttl),
            max_retries: self.max_retries,
            lease: d(&self.lease),
            concurrency: self.concurrency,
            priority: self.priority,
            ..Default::default()
        }
    }
}

fn data() -> &'static Data {
    static DATA_PARSED: std::sync::OnceLock<Data> = std::sync::OnceLock::new();
    DATA_PARSED.get_or_init(|| toml::from_str(DATA).expect("assets/demo/demo.toml parses"))
}

/// A note of the demo's with its `{name}`s filled in.
fn note(template: &str, fills: &[(&str, &str)]) -> String {
    fills.iter().fold(template.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

// ---------------------------------------------------------------- generated work

/// A small seeded generator: the demo is the same every run, and no dependency is needed
/// for a handful of dice rolls.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// A JSON object with its keys in the order given (serde_json's `json!` sorts them), as a
/// bot or a CSV import would write it.
fn object(fields: &[(&str, serde_json::Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// One generated item of `queue`; `n` makes its business ids unique.
pub fn generate(queue: &str, n: u64, rng: &mut Rng) -> NewItem {
    match queue {
        INVOICES => {
            let vendor = if rng.chance(0.06) {
                rng.pick(&data().unknown_vendors)
            } else {
                rng.pick(&data().vendors)
            };
            // Most invoices are small; a few need approval (over 5,000).
            let cents = if rng.chance(0.08) {
                500_000 + rng.below(2_000_000)
            } else {
                5_000 + rng.below(300_000)
            };
            let id = format!("I-{}", 1000 + n);
            let value = object(&[
                ("InvoiceId", id.clone().into()),
                ("AccountName", vendor.to_string().into()),
                ("Amount", (cents as f64 / 100.0).into()),
                ("Currency", "EUR".into()),
                (
                    "PoNumber",
                    format!("PO-{}", 40_000 + rng.below(9_999)).into(),
                ),
                (
                    "DueDate",
                    format!("2026-12-{:02}", 1 + rng.below(28)).into(),
                ),
            ]);
            NewItem {
                name: Some(format!("{id} {vendor}")),
                key: Some(id),
                value: value.to_string(),
                priority: if rng.chance(0.1) {
                    Priority::High
                } else {
                    Priority::Normal
                },
                ..Default::default()
            }
        }
        ONBOARDING => {
            let person = rng.pick(&data().people);
            let id = format!("C-{}", 20_000 + n);
            let email = format!(
                "{}.{}@example.com",
                person.split(' ').next().unwrap_or("x").to_lowercase(),
                n
            );
            let value = object(&[
                ("CustomerId", id.clone().into()),
                ("Name", person.to_string().into()),
                ("Email", email.into()),
                ("Country", rng.pick(&data().countries).to_string().into()),
                (
                    "Plan",
                    rng.pick(&["Starter", "Business", "Enterprise"])
                        .to_string()
                        .into(),
                ),
                (
                    "Documents",
                    serde_json::json!(["passport", "proof-of-address"]),
                ),
            ]);
            NewItem {
                name: Some(format!("{id} {person}")),
                key: Some(id),
                value: value.to_string(),
                hold: rng.chance(0.03),
                note: None,
                ..Default::default()
            }
        }
        RECONCILIATION => {
            let line = format!("SL-{:06}", n);
            let cents = 1_000 + rng.below(900_000);
            let value = object(&[
                ("StatementLine", line.clone().into()),
                (
                    "Iban",
                    format!(
                        "DE89 3704 0044 0532 {:04} {:02}",
                        rng.below(9999),
                        rng.below(99)
                    )
                    .into(),
                ),
                ("Amount", (-(cents as f64) / 100.0).into()),
                (
                    "Reference",
                    format!("INV I-{}", 1000 + rng.below(5_000)).into(),
                ),
                ("BookingDate", "2026-11-21".into()),
            ]);
            // Low-priority lines with a short expiry: some expire before a bot gets to them.
            let low = rng.chance(0.1);
            NewItem {
                name: Some(line.clone()),
                key: Some(line),
                value: value.to_string(),
                priority: if low { Priority::Low } else { Priority::Normal },
                expires_in: low.then(|| Duration::from_secs(60 * (5 + rng.below(20)))),
                ..Default::default()
            }
        }
        _ => {
            let person = rng.pick(&data().people);
            NewItem {
                name: Some(format!("{person} moves")),
                value: object(&[
                    ("Customer", person.to_string().into()),
                    (
                        "Street",
                        format!("{} Market Street", 1 + rng.below(200)).into(),
                    ),
                    (
                        "City",
                        rng.pick(&["Berlin", "Lyon", "Osaka", "Lagos", "Malmö"])
                            .to_string()
                            .into(),
                    ),
                ]),
                ..Default::default()
            }
        }
    }
}

/// Share of the seeded items each queue gets.
const SHARES: &[(&str, u64)] = &[
    (INVOICES, 50),
    (RECONCILIATION, 30),
    (ONBOARDING, 15),
    (ADDRESSES, 5),
];

/// Imports `count` generated items of `queue` through `Backend::import`, streamed in
/// batches: a million rows never sit in memory at once.
pub async fn import_generated(
    store: &dyn Backend,
    queue: &str,
    first: u64,
    count: u64,
    seed: u64,
) -> Result<ImportReport> {
    let (tx, rx) = mpsc::channel(4);
    let q = queue.to_string();
    let producer = tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(seed ^ first);
        let mut batch = Vec::with_capacity(4096);
        for n in first..first + count {
            batch.push(Ok(ImportRow {
                line: n - first + 1,
                item: generate(&q, n, &mut rng),
            }));
            if batch.len() == 4096 && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    let report = store
        .import(
            queue,
            ImportOptions {
                skip_bad: true,
                ..Default::default()
            },
            rx,
            "demo:import",
        )
        .await;
    let _ = producer.await;
    report
}

async fn import_backlog(store: &dyn Backend, total: u64, seed: u64) -> Result<()> {
    // Business ids continue after the history's.
    let mut next: Vec<u64> = SHARES.iter().map(|_| HISTORY_ITEMS * 2).collect();
    let mut left = total;
    while left > 0 {
        let chunk = left.min(BACKLOG_CHUNK);
        for (i, (q, share)) in SHARES.iter().enumerate() {
            let n = if i == 0 {
                chunk
                    - SHARES[1..]
                        .iter()
                        .map(|(_, s)| chunk * s / 100)
                        .sum::<u64>()
            } else {
                chunk * share / 100
            };
            if n > 0 {
                import_generated(store, q, next[i], n, seed).await?;
                next[i] += n;
            }
        }
        left -= chunk;
    }
    Ok(())
}

// ---------------------------------------------------------------- what bots decide

/// The result of working one item, as a simulated bot decides it from the item's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Done,
    Fail(Reason, String),
    /// The bot dies holding the lease; the engine times it out.
    Crash,
}

pub fn decide(item: &Item, rng: &mut Rng) -> Verdict {
    let v: serde_json::Value = serde_json::from_str(&item.value).unwrap_or_default();
    if rng.chance(0.003) {
        return Verdict::Crash;
    }
    let n = &data().notes;
    let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match item.queue.as_str() {
        INVOICES => {
            let vendor = v["AccountName"].as_str().unwrap_or("");
            let amount = v["Amount"].as_f64().unwrap_or(0.0);
            // Some purchase orders hang the SAP GUI every time: the bot dies holding the
            // lease, the engine times it out, retries, and finally parks it as a timeout.
            if v["PoNumber"].as_str().is_some_and(|p| p.ends_with("66")) {
                Verdict::Crash
            } else if data().unknown_vendors.iter().any(|u| u == vendor) {
                Verdict::Fail(
                    Reason::Business,
                    note(&n.unknown_vendor, &[("vendor", vendor)]),
                )
            } else if amount > 5000.0 {
                Verdict::Fail(
                    Reason::Business,
                    note(&n.over_limit, &[("amount", &format!("{amount:.2}"))]),
                )
            } else if rng.chance(0.04) {
                let session = (rng.below(90) + 10).to_string();
                Verdict::Fail(Reason::It, note(&n.sap_timeout, &[("session", &session)]))
            } else {
                Verdict::Done
            }
        }
        ONBOARDING => {
            if rng.chance(0.05) {
                let date = format!("2026-0{}-1{}", 1 + rng.below(7), rng.below(9));
                Verdict::Fail(Reason::Business, note(&n.kyc_old_proof, &[("date", &date)]))
            } else if rng.chance(0.03) {
                let customer = format!("C-{}", 10_000 + rng.below(9_000));
                Verdict::Fail(
                    Reason::Business,
                    note(
                        &n.email_taken,
                        &[("email", &field("Email")), ("customer", &customer)],
                    ),
                )
            } else if rng.chance(0.04) {
                Verdict::Fail(Reason::It, n.crm_timeout.clone())
            } else {
                Verdict::Done
            }
        }
        RECONCILIATION => {
            // The core banking system is flaky: a burst of 503s now and then.
            if rng.chance(0.06) {
                let request = format!("{:x}", rng.next_u64() & 0xff_ffff);
                Verdict::Fail(
                    Reason::It,
                    note(&n.bank_unavailable, &[("request", &request)]),
                )
            } else if rng.chance(0.05) {
                Verdict::Fail(
                    Reason::Business,
                    note(&n.no_open_item, &[("reference", &field("Reference"))]),
                )
            } else {
                Verdict::Done
            }
        }
        _ => Verdict::Done,
    }
}

// ---------------------------------------------------------------- history

/// Per queue: items processed per simulated minute in the history, and bot names.
const HISTORY_RATE: &[(&str, u64)] = &[(INVOICES, 30), (RECONCILIATION, 40), (ONBOARDING, 8)];

async fn write_history(
    store: &Arc<dyn Backend>,
    clock: &ShiftedClock,
    items: u64,
    seed: u64,
) -> Result<()> {
    let mut rng = Rng::new(seed);
    let mut next: Vec<u64> = vec![0; SHARES.len()];
    for minute in 0..HISTORY_MIN {
        clock.set_behind(Duration::from_secs(((HISTORY_MIN - minute) * 60) as u64));
        // Work arrives in the first half of the hour, so the backlog has a past.
        let arriving = if minute < HISTORY_MIN / 2 {
            items / (HISTORY_MIN as u64 / 2)
                + u64::from(minute == 0) * (items % (HISTORY_MIN as u64 / 2))
        } else {
            0
        };
        let mut jobs = Vec::new();
        for (i, (q, share)) in SHARES.iter().enumerate() {
            let n = if i == 0 {
                arriving
                    - SHARES[1..]
                        .iter()
                        .map(|(_, s)| arriving * s / 100)
                        .sum::<u64>()
            } else {
                arriving * share / 100
            };
            if n > 0 {
                let (s, q, first) = (store.clone(), q.to_string(), next[i]);
                jobs.push(tokio::spawn(async move {
                    import_generated(&*s, &q, first, n, seed).await.map(|_| ())
                }));
                next[i] += n;
            }
        }
        for j in jobs {
            j.await.expect("import task")?;
        }
        // The queues work concurrently, so their writes share commits.
        let mut jobs = Vec::new();
        for (q, rate) in HISTORY_RATE {
            let s = store.clone();
            let mut r = Rng::new(rng.next_u64());
            let q = q.to_string();
            let rate = *rate;
            jobs.push(tokio::spawn(async move {
                work_history_minute(&*s, &q, rate, &mut r).await
            }));
        }
        for j in jobs {
            j.await.expect("history task")?;
        }
        store.sweep().await?;
    }
    // The paused queue is paused after its items arrived.
    store.set_queue_state(ADDRESSES, QueueState::Paused).await?;
    Ok(())
}

async fn work_history_minute(
    store: &dyn Backend,
    queue: &str,
    rate: u64,
    rng: &mut Rng,
) -> Result<()> {
    let mut done = 0;
    while done < rate {
        let worker = format!("{}-bot-{:02}", short(queue), 1 + rng.below(4));
        let got = store
            .dequeue(DequeueRequest {
                queues: vec![queue.to_string()],
                worker: worker.clone(),
                count: (rate - done).min(6) as u32,
                wait: Duration::ZERO,
            })
            .await?;
        if got.leases.is_empty() {
            break;
        }
        done += got.leases.len() as u64;
        let outcomes: Vec<Outcome> = got
            .leases
            .iter()
            .filter_map(|l| match decide(&l.item, rng) {
                Verdict::Crash => None,
                Verdict::Done => Some(l.outcome(None, None)),
                Verdict::Fail(r, note) => Some(l.outcome(Some(r), Some(note))),
            })
            .collect();
        store.finish(outcomes, &worker).await?;
    }
    Ok(())
}

fn short(queue: &str) -> &'static str {
    match queue {
        INVOICES => "sap",
        ONBOARDING => "crm",
        RECONCILIATION => "bank",
        _ => "portal",
    }
}

// ---------------------------------------------------------------- live bots

struct BotSpec {
    queue: &'static str,
    count: u32,
    /// Milliseconds per item: min and spread.
    work_ms: (u64, u64),
}

const BOTS: &[BotSpec] = &[
    BotSpec {
        queue: INVOICES,
        count: 8,
        work_ms: (1_500, 3_000),
    },
    BotSpec {
        queue: RECONCILIATION,
        count: 4,
        work_ms: (400, 1_200),
    },
    BotSpec {
        queue: ONBOARDING,
        count: 3,
        work_ms: (3_000, 9_000),
    },
    BotSpec {
        queue: ADDRESSES,
        count: 1,
        work_ms: (2_000, 2_000),
    },
];

/// Starts the bots and the feeders that keep work arriving.
pub fn spawn_bots(store: Arc<dyn Backend>, seed: u64) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut rng = Rng::new(seed ^ 0xB07);
    for spec in BOTS {
        for n in 1..=spec.count {
            let name = format!("{}-bot-{n:02}", short(spec.queue));
            let s = store.clone();
            let r = Rng::new(rng.next_u64());
            tasks.push(tokio::spawn(bot(s, spec.queue, name, spec.work_ms, r)));
        }
    }
    for (queue, every_ms, max) in [
        (INVOICES, 3_000, 3),
        (RECONCILIATION, 2_000, 5),
        (ONBOARDING, 5_000, 1),
    ] {
        let s = store.clone();
        let r = Rng::new(rng.next_u64());
        tasks.push(tokio::spawn(feeder(s, queue, every_ms, max, r)));
    }
    tasks
}

async fn bot(
    store: Arc<dyn Backend>,
    queue: &'static str,
    name: String,
    work_ms: (u64, u64),
    mut rng: Rng,
) {
    loop {
        let got = store
            .dequeue(DequeueRequest {
                queues: vec![queue.to_string()],
                worker: name.clone(),
                count: 1,
                wait: Duration::from_secs(2),
            })
            .await;
        let lease = match got {
            Ok(d) if !d.leases.is_empty() => d.leases.into_iter().next().expect("one lease"),
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("{name}: dequeue failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let took = work_ms.0 + rng.below(work_ms.1.max(1));
        // Long items keep their lease alive with heartbeats.
        let mut left = took;
        while left > 0 {
            let step = left.min(8_000);
            tokio::time::sleep(Duration::from_millis(step)).await;
            left -= step;
            if left > 0 {
                let _ = store.heartbeat(vec![lease.held()]).await;
            }
        }
        let (reason, note) = match decide(&lease.item, &mut rng) {
            Verdict::Crash => {
                tracing::info!("{name}: simulated crash holding {}", lease.item.id);
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Verdict::Done => (None, None),
            Verdict::Fail(r, n) => (Some(r), Some(n)),
        };
        let outcome = lease.outcome(reason, note);
        if let Err(e) = store.finish(vec![outcome], &name).await {
            tracing::warn!("{name}: finish failed: {e}");
        }
    }
}

async fn feeder(
    store: Arc<dyn Backend>,
    queue: &'static str,
    every_ms: u64,
    max: u64,
    mut rng: Rng,
) {
    // Past any seeded id, so keys stay unique and ids read like the others.
    let mut n = 5_000_000;
    loop {
        tokio::time::sleep(Duration::from_millis(every_ms)).await;
        let k = 1 + rng.below(max);
        let items: Vec<NewItem> = (0..k)
            .map(|_| {
                n += 1;
                generate(queue, n, &mut rng)
            })
            .collect();
        if let Err(e) = store.add_items(queue, items, "demo:feeder").await {
            tracing::warn!("feeder {queue}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeds_queues_history_and_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let demo = start(
            &dir.path().join("demo.db"),
            DemoOptions {
                items: 1_200,
                live: false,
                seed: 1,
            },
        )
        .await
        .unwrap();
        let qs = demo.store.queues().await.unwrap();
        let names: Vec<&str> = qs.iter().map(|q| q.queue.name.as_str()).collect();
        // Highest priority first, then by name.
        assert_eq!(names, [INVOICES, ONBOARDING, ADDRESSES, RECONCILIATION]);
        let total: u64 = qs.iter().map(|q| q.counts.total()).sum();
        assert_eq!(total, 1_200);
        let inv = &qs[0];
        assert!(
            inv.counts.processed > 100,
            "history processed invoices: {:?}",
            inv.counts
        );
        assert!(inv.throughput_history.iter().filter(|&&n| n > 0).count() > 10);
        assert!(inv.projection.is_some(), "deadline set on invoices");
        assert_eq!(qs[2].queue.state, QueueState::Paused);
        let groups = demo.store.groups(None).await.unwrap();
        assert!(
            groups
                .iter()
                .any(|g| g.signature == "Vendor * not found in SAP vendor master"),
            "{groups:?}"
        );
    }

    #[test]
    fn the_data_file_holds_the_demos_queues_and_every_note_fills_in() {
        let names: Vec<&str> = data().queue.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, vec![INVOICES, ONBOARDING, RECONCILIATION, ADDRESSES]);
        for q in &data().queue {
            crate::rules::check_tz(q.tz.as_deref().unwrap_or("UTC")).unwrap();
            let _ = q.settings();
        }
        assert!(!data().vendors.is_empty() && !data().people.is_empty());
        let n = &data().notes;
        assert_eq!(
            note(&n.unknown_vendor, &[("vendor", "Trey Research")]),
            "Vendor 'Trey Research' not found in SAP vendor master"
        );
    }

    #[test]
    fn decisions_follow_the_value() {
        let mut rng = Rng::new(3);
        let mut item = Item {
            id: "x".into(),
            queue: INVOICES.into(),
            name: None,
            key: None,
            value: r#"{"AccountName":"Trey Research","Amount":10.0}"#.into(),
            priority: Priority::Normal,
            status: Status::Processing,
            reason: None,
            notes: vec![],
            retry_count: 0,
            requeue_count: 0,
            enqueued_at: Utc::now(),
            started_at: None,
            finished_at: None,
            expires_at: None,
            delay_until: None,
            worker: None,
            sla: None,
            expired: false,
            version: 1,
        };
        let vendor_fails = (0..50)
            .filter(|_| matches!(decide(&item, &mut rng), Verdict::Fail(Reason::Business, _)))
            .count();
        assert!(vendor_fails >= 45);
        item.value = r#"{"AccountName":"Contoso","Amount":7412.5}"#.into();
        assert!(
            matches!(
                decide(&item, &mut Rng::new(9)),
                Verdict::Fail(Reason::Business, n) if n.contains("approval")
            ) || matches!(decide(&item, &mut Rng::new(9)), Verdict::Crash)
        );
    }
}
