//! Group commit: concurrent calls of one kind (adds, dequeues, reports) share one
//! transaction, so many bots' one-item calls pay for one commit's WAL flush and a few
//! statements between them instead of each its own (as River's batch completer does).
//!
//! A call joins its kind's line; while no group of that kind is being written (`RUNNERS`),
//! a runner task is started, which takes everything in the line (up to `MOST`),
//! writes it in one transaction and answers each call after the commit, then takes the
//! next. Nothing waits on a timer: a call that comes alone is written at once, and calls
//! group only while the database is busy with earlier ones. What a call is told it did is
//! committed, as when it runs alone.
//!
//! A group whose transaction fails before its commit (one call's bad input, a key already
//! taken, an unknown queue) is rolled back whole and each of its calls run alone, so each
//! is told of its own error and changes nothing, as if it had never shared. A failed commit
//! is told to every call of the group: whether it landed is unknown, so none is repeated.

use super::{Inner, PgStore};
use crate::backend::{Error, Result, StorageCause};
use std::future::Future;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Groups of one kind written at once. One: measured with 16 one-item workers on two cores,
/// one runner per kind gave 2,157 items/s, four 1,432 and eight 1,205 — more runners make
/// smaller groups, and so more commits for the same work.
const RUNNERS: usize = 1;

/// Most calls in one group.
const MOST: usize = 64;

/// The line of one kind of call.
pub(crate) struct Line<C, R> {
    state: Mutex<State<C, R>>,
}

struct State<C, R> {
    waiting: Vec<(C, oneshot::Sender<Result<R>>)>,
    running: usize,
}

impl<C, R> Default for Line<C, R> {
    fn default() -> Self {
        Line {
            state: Mutex::new(State {
                waiting: Vec::new(),
                running: 0,
            }),
        }
    }
}

/// The lines of the calls that share transactions.
#[derive(Default)]
pub(crate) struct Lines {
    pub add: Line<super::write::Adding, Vec<crate::model::Item>>,
    pub dequeue: Line<crate::model::DequeueRequest, crate::model::Dequeued>,
    pub finish: Line<super::write::Report, Vec<Result<crate::model::Finished>>>,
}

/// Runs `call` in a group of its kind (`line` picks the kind's line from the store);
/// `write` writes a group, answering each of its calls in order.
pub(crate) async fn shared<C, R, F, Fut>(
    store: &PgStore,
    line: fn(&Inner) -> &Line<C, R>,
    call: C,
    write: F,
) -> Result<R>
where
    C: Send + 'static,
    R: Send + 'static,
    F: Fn(PgStore, Vec<C>) -> Fut + Send + Copy + 'static,
    Fut: Future<Output = Vec<Result<R>>> + Send,
{
    let (tx, rx) = oneshot::channel();
    let start = {
        let mut s = line(&store.inner).state.lock().unwrap();
        s.waiting.push((call, tx));
        let start = s.running < RUNNERS;
        if start {
            s.running += 1;
        }
        start
    };
    if start {
        // A task of its own, so that a caller who stops waiting (a client gone) does not
        // stop the others' group half-way.
        let store = PgStore {
            inner: store.inner.clone(),
        };
        tokio::spawn(async move {
            let _running = Running(line(&store.inner));
            loop {
                let group: Vec<_> = {
                    let mut s = line(&store.inner).state.lock().unwrap();
                    if s.waiting.is_empty() {
                        return;
                    }
                    let n = s.waiting.len().min(MOST);
                    s.waiting.drain(..n).collect()
                };
                let (calls, answers): (Vec<C>, Vec<_>) = group.into_iter().unzip();
                let store = PgStore {
                    inner: store.inner.clone(),
                };
                let results = write(store, calls).await;
                for (answer, r) in answers.into_iter().zip(results) {
                    let _ = answer.send(r);
                }
            }
        });
    }
    rx.await.map_err(|_| {
        Error::storage(
            StorageCause::Stopped,
            None,
            "the engine stopped before the call was written",
        )
    })?
}

/// Counts a runner out when it ends, even by a panic.
struct Running<'a, C, R>(&'a Line<C, R>);

impl<C, R> Drop for Running<'_, C, R> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.running -= 1;
        }
    }
}

/// A group's calls in one transaction; if its body fails, each call alone (see the module's
/// comment). `$body` writes the calls `$calls` (a slice) and returns an answer for each.
macro_rules! in_one {
    ($store:ident, $all:expr, |$ctx:ident, $calls:ident| $body:expr) => {{
        let all = $all;
        let mut failed_inside = false;
        let out = txn!($store, Kind::Write, |$ctx| {
            let $calls = &all[..];
            let r = $body;
            failed_inside = r.is_err();
            r
        });
        match out {
            Ok(answers) => answers.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(_) if failed_inside && all.len() > 1 => {
                let mut each = Vec::with_capacity(all.len());
                for one in all.chunks(1) {
                    let r = txn!($store, Kind::Write, |$ctx| {
                        let $calls = one;
                        $body
                    });
                    each.push(r.map(|mut v| v.remove(0)));
                }
                each
            }
            Err(e) => all.iter().map(|_| Err(e.clone())).collect(),
        }
    }};
}
pub(crate) use in_one;
