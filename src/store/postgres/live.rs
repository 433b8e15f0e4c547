//! What several processes on one schema share, beyond the rows: each other's changes
//! (LISTEN/NOTIFY, with a polling fallback) and one leader for the periodic work (a
//! session-level advisory lock).
//!
//! - The events of committed write transactions are told to the other processes by one
//!   NOTIFY for many of them (the notifier: what committed while one was being sent goes
//!   in the next), on a channel named after the schema, from a connection of its own. Not
//!   one inside each transaction: PostgreSQL holds one lock for every notifying transaction
//!   of the database from its NOTIFY until its commit is flushed, so commits that notify
//!   take turns and share no WAL flush (sampled during a 16-worker run: 60 % of active
//!   connections waited on it). Each NOTIFY takes a number of the schema's `feed_seq`
//!   sequence; its payload is small JSON: the sender store's id (a process ignores its
//!   own), how many long polls it made worth waking, the events (left out when they would
//!   not fit) and the number. What committed just before a process died unnotified is
//!   not told of; the others' long polls and readers look again within `poll_every`.
//! - A dedicated connection per store LISTENs; what it hears becomes feed events (or
//!   `Gap::Changed` when the payload could not name them), a few milliseconds' worth
//!   merged, and wakes this process's long polls. A dropped connection is made again with a
//!   growing delay, and `Gap::Changed` said after, since changes may have been missed.
//! - Every `check_every`, the sequence's last number is read: a number that neither this
//!   store took nor a notification carried (no NOTIFY arrives through a transaction-pooling
//!   proxy, or while the LISTEN connection is down) is a change no one told of:
//!   `Gap::Changed`, and the long polls look again. Numbers are judged one reading late,
//!   so that a commit under way has had a second to be heard of.
//! - The leader holds `pg_try_advisory_lock(LEADER_KEY, hashtext(current_schema()))` on a
//!   connection of its own; the others try again every `leader_every`. A leader whose
//!   connection fails stops leading at once; PostgreSQL releases the lock when the session
//!   ends, so another process takes over within a try or two.

use super::{Inner, Options, WAKE_ALL};
use crate::backend::Gap;
use crate::model::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

/// The advisory lock's first key for the leader ("wkqL"); the second is the schema's name
/// hashed, as for migrations (whose lock is another key).
const LEADER_KEY: i32 = 0x776b_714c;

/// The channel of a schema, computed by the server from the connection's schema.
pub(crate) const CHANNEL_SQL: &str = "'workq_' || md5(current_schema())";

/// The most a payload carries before its events are left out (PostgreSQL takes 8000 bytes).
const MAX_PAYLOAD: usize = 7000;

/// How long notifications are gathered into one batch of events.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The least time between two NOTIFYs of one store: commits in between share the next.
const NOTIFY_GAP: Duration = Duration::from_millis(5);

/// What the store and its background tasks share.
pub(crate) struct Live {
    /// The change feed of this store: its own commits, others' as heard, and gaps.
    pub events: broadcast::Sender<Result<Event, Gap>>,
    /// Woken after every commit (of this process, or heard of) that made work takeable.
    pub wake: Arc<Notify>,
    /// This store's id in payloads.
    pub id: String,
    covered: Mutex<Covered>,
    /// Committed events not yet told to the other processes, and the notifier's bell.
    outbox: Mutex<Outbox>,
    post: Notify,
    /// Whether a notifier runs (a store without background tasks notifies in each
    /// transaction).
    notifier: AtomicBool,
    leader: AtomicBool,
    listening: AtomicBool,
    swept: AtomicU64,
}

impl Live {
    pub fn new() -> Live {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let (events, _) = broadcast::channel(1024);
        Live {
            events,
            wake: Arc::new(Notify::new()),
            id: format!("{:016x}", h.finish()),
            covered: Mutex::new(Covered::default()),
            outbox: Mutex::new(Outbox::default()),
            post: Notify::new(),
            notifier: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            swept: AtomicU64::new(0),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    pub fn swept(&self) -> u64 {
        self.swept.load(Ordering::SeqCst)
    }

    /// A number this store took: its change is known here.
    pub fn cover(&self, n: i64) {
        self.covered.lock().unwrap().seen.insert(n);
    }

    /// Sends events and wakes as many long polls as `ready` says.
    pub fn send(&self, events: Vec<Result<Event, Gap>>, ready: u64) {
        for e in events {
            let _ = self.events.send(e);
        }
        if ready == WAKE_ALL {
            self.wake.notify_waiters();
        } else {
            for _ in 0..ready.min(1024) {
                self.wake.notify_one();
            }
        }
    }

    /// Whether committed events go to the notifier (else each transaction notifies).
    pub fn has_notifier(&self) -> bool {
        self.notifier.load(Ordering::SeqCst)
    }

    /// Hands a committed transaction's events to the notifier.
    pub fn post(&self, events: &[Event], ready: u64) {
        if events.is_empty() {
            return;
        }
        self.outbox.lock().unwrap().add(events, ready);
        self.post.notify_one();
    }

    /// Something changed that cannot be named: readers refetch, long polls look again.
    fn changed(&self) {
        self.send(vec![Err(Gap::Changed)], WAKE_ALL);
    }
}

/// The numbers of `feed_seq` known to have been told of, and how far they were judged.
#[derive(Default)]
struct Covered {
    seen: BTreeSet<i64>,
    judged: i64,
    last: Option<i64>,
}

impl Covered {
    /// Takes a reading of the sequence's last number; says whether a number up to the
    /// previous reading was never told of.
    fn reading(&mut self, now: i64) -> bool {
        let Some(prev) = self.last.replace(now) else {
            self.judged = now;
            self.seen = self.seen.split_off(&(now + 1));
            return false;
        };
        if prev <= self.judged {
            return false;
        }
        let told = self.seen.range(self.judged + 1..=prev).count() as i64;
        let missed = prev - self.judged > told;
        self.seen = self.seen.split_off(&(prev + 1));
        self.judged = prev;
        missed
    }
}

/// Events waiting for the next NOTIFY, merged as a listener merges what it hears: counts
/// per queue summed, queue events once each, in the order first seen.
#[derive(Default, Debug, PartialEq)]
struct Outbox {
    events: Vec<Event>,
    ready: u64,
}

impl Outbox {
    fn add(&mut self, events: &[Event], ready: u64) {
        self.ready = self.ready.saturating_add(ready);
        for e in events {
            let same = self.events.iter_mut().find(|had| match (&**had, e) {
                (Event::Items { queue: a, .. }, Event::Items { queue: b, .. }) => a == b,
                (Event::Queue { queue: a }, Event::Queue { queue: b }) => a == b,
                _ => false,
            });
            match (same, e) {
                (Some(Event::Items { count, .. }), Event::Items { count: n, .. }) => *count += n,
                (Some(_), _) => {}
                (None, e) => self.events.push(e.clone()),
            }
        }
    }
}

/// The statement that takes a number and notifies the schema's channel with a payload
/// (`payload_head`, which it completes with the number); it returns the number.
pub(crate) fn notify_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT n FROM (SELECT nextval('feed_seq') AS n) s, \
             LATERAL (SELECT pg_notify({CHANNEL_SQL}, $1 || n::text || '}}')) t"
        )
    })
}

/// Sends the outbox's events, one NOTIFY at a time, at most one every `NOTIFY_GAP`, on a
/// connection of its own, made again (with a growing delay) when it fails; what could not
/// be sent waits for the next.
async fn notifier(live: Arc<Live>, config: tokio_postgres::Config) {
    let mut delay = Duration::from_millis(100);
    loop {
        let client = match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let Ok(st) = client.prepare(notify_sql()).await else {
            tokio::time::sleep(delay).await;
            continue;
        };
        delay = Duration::from_millis(100);
        loop {
            live.post.notified().await;
            let out = std::mem::take(&mut *live.outbox.lock().unwrap());
            if out.events.is_empty() {
                continue;
            }
            let head = payload_head(&live.id, &out.events, out.ready);
            match client.query_one(&st, &[&head]).await {
                Ok(row) => live.cover(row.get(0)),
                Err(_) => {
                    // Kept for the next connection.
                    live.outbox.lock().unwrap().add(&out.events, out.ready);
                    live.post.notify_one();
                    break;
                }
            }
            tokio::time::sleep(NOTIFY_GAP).await;
        }
        tokio::time::sleep(delay).await;
    }
}

/// The payload of a NOTIFY, but for its number, which the server appends
/// (the text ends with `"n":`, and the statement adds the number and `}`).
pub(crate) fn payload_head(id: &str, events: &[Event], ready: u64) -> String {
    let events_json = serde_json::to_string(events).unwrap_or_else(|_| "null".into());
    let events_json = if events_json.len() > MAX_PAYLOAD {
        "null".to_string()
    } else {
        events_json
    };
    format!(r#"{{"s":"{id}","r":{ready},"e":{events_json},"n":"#)
}

#[derive(serde::Deserialize)]
struct Payload {
    s: String,
    #[serde(default)]
    r: u64,
    e: Option<Vec<Event>>,
    n: i64,
}

/// Starts the store's background tasks on this runtime: the listener and the fallback
/// always, the leader, the sweeper and the vacuumer unless the store only reads. All end when the store
/// is dropped (`stop`'s sender with it).
pub(crate) fn start(inner: &Arc<Inner>, config: tokio_postgres::Config) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let live = inner.live.clone();
    let options = inner.options;
    let stopped = |mut stop: watch::Receiver<()>| async move {
        // Ends when the sender (the store) is dropped.
        while stop.changed().await.is_ok() {}
    };
    let spawn = |task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        let stop = stopped(inner.stop.subscribe());
        rt.spawn(async move {
            tokio::select! {
                _ = stop => {}
                _ = task => {}
            }
        });
    };
    if options.listen {
        spawn(Box::pin(listener(live.clone(), config.clone())));
    }
    live.notifier.store(true, Ordering::SeqCst);
    spawn(Box::pin(notifier(live.clone(), config.clone())));
    spawn(Box::pin(fallback(
        live.clone(),
        inner.pool.clone(),
        options,
    )));
    if !inner.read_only {
        spawn(Box::pin(leader(live.clone(), config, options)));
        spawn(Box::pin(super::sweeper(Arc::downgrade(inner))));
        spawn(Box::pin(super::vacuum::vacuumer(Arc::downgrade(inner))));
    }
}

/// Listens on the schema's channel for as long as the store lives, connecting again with
/// a growing delay when the connection fails.
async fn listener(live: Arc<Live>, config: tokio_postgres::Config) {
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    loop {
        let heard = listen_once(&live, &config, first).await;
        live.listening.store(false, Ordering::SeqCst);
        if heard {
            delay = Duration::from_millis(100);
            first = false;
        } else {
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        tracing::warn!(
            retry_in_ms = delay.as_millis() as u64,
            "the LISTEN connection to PostgreSQL is gone; connecting again"
        );
        tokio::time::sleep(delay).await;
    }
}

/// One LISTEN connection, until it fails; whether it was listening.
async fn listen_once(live: &Live, config: &tokio_postgres::Config, first: bool) -> bool {
    use futures::StreamExt;
    let Ok((client, mut conn)) = config.connect(tokio_postgres::NoTls).await else {
        return false;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _driver = Abort(driver);
    let channel: String = match client
        .query_one(&format!("SELECT {CHANNEL_SQL}"), &[])
        .await
    {
        Ok(r) => r.get(0),
        Err(_) => return false,
    };
    if client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .is_err()
    {
        return false;
    }
    live.listening.store(true, Ordering::SeqCst);
    if !first {
        // Whatever was committed while no one listened was not heard of.
        live.changed();
    }
    let mut check = tokio::time::interval(Duration::from_secs(10));
    check.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(text) = got else { return true };
                let mut batch = vec![text];
                tokio::time::sleep(DEBOUNCE).await;
                while let Ok(t) = rx.try_recv() {
                    batch.push(t);
                }
                heard(live, batch);
            }
            _ = check.tick() => {
                // A connection that went silently away is found out here.
                let alive = tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1")).await;
                if !matches!(alive, Ok(Ok(_))) {
                    return true;
                }
            }
        }
    }
}

/// Notifications heard, as feed events: counts per queue summed, queue events once each,
/// `Gap::Changed` once for any that could not say more.
fn heard(live: &Live, batch: Vec<String>) {
    let mut items: BTreeMap<String, u64> = BTreeMap::new();
    let mut queues: BTreeSet<String> = BTreeSet::new();
    let mut unnamed = false;
    let mut ready = 0u64;
    {
        let mut covered = live.covered.lock().unwrap();
        for text in batch {
            let Ok(p) = serde_json::from_str::<Payload>(&text) else {
                unnamed = true;
                continue;
            };
            covered.seen.insert(p.n);
            if p.s == live.id {
                continue;
            }
            ready = ready.saturating_add(p.r);
            match p.e {
                None => unnamed = true,
                Some(events) => {
                    for e in events {
                        match e {
                            Event::Items { queue, count } => {
                                *items.entry(queue).or_default() += count;
                            }
                            Event::Queue { queue } => {
                                queues.insert(queue);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out: Vec<Result<Event, Gap>> = Vec::new();
    out.extend(queues.into_iter().map(|queue| Ok(Event::Queue { queue })));
    out.extend(
        items
            .into_iter()
            .map(|(queue, count)| Ok(Event::Items { queue, count })),
    );
    if unnamed {
        out.push(Err(Gap::Changed));
        ready = WAKE_ALL;
    }
    live.send(out, ready);
}

/// Reads the sequence every `check_every`; says `Gap::Changed` for a change no one told of.
async fn fallback(live: Arc<Live>, pool: deadpool_postgres::Pool, options: Options) {
    let mut tick = tokio::time::interval(options.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        let Ok(row) = client
            .query_one(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM feed_seq",
                &[],
            )
            .await
        else {
            continue;
        };
        drop(client);
        let last: i64 = row.get(0);
        let missed = live.covered.lock().unwrap().reading(last);
        if missed {
            live.changed();
        }
    }
}

/// Tries for the leader's lock every `leader_every`; holds it on its connection while that
/// answers.
async fn leader(live: Arc<Live>, config: tokio_postgres::Config, options: Options) {
    let every = options.leader_every;
    loop {
        if let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await {
            let driver = tokio::spawn(conn);
            lead_once(&live, &client, every).await;
            if live.leader.swap(false, Ordering::SeqCst) {
                tracing::warn!("no longer the leader of this schema (its connection failed)");
            }
            drop(client);
            driver.abort();
        }
        tokio::time::sleep(every).await;
    }
}

/// Tries for the lock, and holds it, until the connection fails.
async fn lead_once(live: &Live, client: &tokio_postgres::Client, every: Duration) {
    let answer = |sql: &'static str| async move {
        match tokio::time::timeout(Duration::from_secs(5), client.query_one(sql, &[])).await {
            Ok(Ok(r)) => Some(r),
            _ => None,
        }
    };
    loop {
        let Some(r) = answer(lock_sql()).await else {
            return;
        };
        if r.get::<_, bool>(0) {
            break;
        }
        tokio::time::sleep(every).await;
    }
    live.leader.store(true, Ordering::SeqCst);
    tracing::info!("leading this schema's periodic work (sweeps, alert checks)");
    loop {
        tokio::time::sleep(every).await;
        if answer("SELECT 1").await.is_none() {
            return;
        }
    }
}

fn lock_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!("SELECT pg_try_advisory_lock({LEADER_KEY}, hashtext(current_schema()))")
    })
}

/// Counts a periodic sweep this store ran (as the leader).
pub(crate) fn swept(live: &Live) {
    live.swept.fetch_add(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_no_one_told_of_is_found_one_reading_late() {
        let mut c = Covered::default();
        c.seen.insert(3);
        assert!(
            !c.reading(5),
            "the first reading only sets where judging starts"
        );
        c.seen.insert(6);
        c.seen.insert(7);
        assert!(
            !c.reading(8),
            "6 and 7 are not judged before the next reading"
        );
        c.seen.insert(8);
        assert!(!c.reading(9), "6, 7 and 8 were all told of");
        assert!(c.reading(9), "9 was not");
        assert!(!c.reading(9), "nothing new");
        c.seen.insert(11);
        c.reading(12);
        assert!(c.reading(12), "10 and 12 were not told of");
    }

    #[test]
    fn the_outbox_merges_what_many_commits_did() {
        let items = |q: &str, count| Event::Items {
            queue: q.into(),
            count,
        };
        let queue = |q: &str| Event::Queue { queue: q.into() };
        let mut o = Outbox::default();
        o.add(&[items("a", 1)], 1);
        o.add(&[queue("b"), items("a", 2)], 0);
        o.add(&[items("b", 4), queue("b")], WAKE_ALL);
        assert_eq!(
            o,
            Outbox {
                events: vec![items("a", 3), queue("b"), items("b", 4)],
                ready: WAKE_ALL,
            }
        );
    }

    #[test]
    fn a_payload_reads_back_with_its_number() {
        let e = vec![Event::Items {
            queue: "q,\"x".into(),
            count: 3,
        }];
        let text = format!("{}{}}}", payload_head("ab", &e, 2), 42);
        let p: Payload = serde_json::from_str(&text).unwrap();
        assert_eq!((p.s.as_str(), p.r, p.n), ("ab", 2, 42));
        assert_eq!(p.e, Some(e));
        let many: Vec<Event> = (0..2000)
            .map(|i| Event::Queue {
                queue: format!("queue-{i}"),
            })
            .collect();
        let text = format!("{}7}}", payload_head("ab", &many, 0));
        assert!(text.len() < 8000);
        let p: Payload = serde_json::from_str(&text).unwrap();
        assert_eq!(p.e, None, "too many to tell: the reader refetches");
    }
}
