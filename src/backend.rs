//! The one seam: everything that reads or changes queues goes through `Backend`.
//! The SQLite store implements it now; PostgreSQL and the HTTP client will too.

use crate::alert::{Alert, AlertState, NewAlert};
use crate::model::*;
use crate::token::{NewToken, Role, TokenInfo};
use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use futures::FutureExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc};

pub use crate::error::{Conflict, Error, Refused, Result, StorageCause, Thing};

/// Batches of parsed import rows, streamed so that a million-row file never sits in memory.
/// A row the parser refused travels as its error, so the store alone decides all-or-nothing.
pub type ImportRows = mpsc::Receiver<Vec<std::result::Result<ImportRow, RowError>>>;

#[async_trait]
pub trait Backend: Send + Sync {
    // Queues.
    async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue>;
    async fn update_queue(&self, name: &str, settings: QueueSettings) -> Result<Queue>;
    async fn set_queue_state(&self, name: &str, state: QueueState) -> Result<Queue>;
    /// Deleting a queue that still has items needs `force`.
    async fn delete_queue(&self, name: &str, force: bool) -> Result<u64>;
    async fn queues(&self) -> Result<Vec<QueueSummary>>;
    async fn queue(&self, name: &str) -> Result<QueueSummary>;

    // Getting work in.
    async fn add_items(&self, queue: &str, items: Vec<NewItem>, actor: &str) -> Result<Vec<Item>>;
    /// All-or-nothing unless `skip_bad`; duplicate keys and oversize values are reported per row.
    async fn import(
        &self,
        queue: &str,
        opts: ImportOptions,
        rows: ImportRows,
        actor: &str,
    ) -> Result<ImportReport>;

    // Reading.
    async fn items(&self, filter: Filter, page: PageRequest) -> Result<Page>;
    async fn item(&self, id: &str) -> Result<ItemDetail>;
    async fn groups(&self, queue: Option<String>) -> Result<Vec<ExceptionGroup>>;
    /// Queued items of `queue` whose delay ends within `within` from now, soonest first,
    /// at most `limit` (`workq queue preview`; `rules::check_upcoming` says what is
    /// refused).
    async fn upcoming(
        &self,
        queue: &str,
        within: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Item>>;
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;
    /// An agent says who it is, what it serves and how it goes (`workq work`: at start,
    /// every `rules::REGISTER_EVERY` and when its state changes). It counts as heard from
    /// on each of its queues, which must exist.
    async fn register_worker(&self, name: &str, agent: AgentInfo) -> Result<()>;

    // Taking work.
    async fn dequeue(&self, req: DequeueRequest) -> Result<Dequeued>;
    /// Extends each lease; returns its new deadline, or why it was refused (a stale token
    /// refuses that lease only; the others are still extended), in order. One call for all
    /// the leases a worker holds.
    async fn heartbeat(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Time>>>;
    /// Reports outcomes; each is applied or refused on its own, in order.
    async fn finish(&self, outcomes: Vec<Outcome>, worker: &str) -> Result<Vec<Result<Finished>>>;
    /// Gives leases back unworked: each item returns to `queued` at once, its retry count
    /// untouched, the note in its history. For a worker that cannot deliver what it took
    /// (its output is gone) or is shutting down. Each is applied or refused (a stale token)
    /// on its own, in order.
    async fn hand_back(
        &self,
        leases: Vec<HandBack>,
        worker: &str,
        note: &str,
    ) -> Result<Vec<Result<Finished>>>;

    // The human side.
    /// What `action` would do to `target`: how many items it changes and skips, and why.
    /// Without an action, just what the target covers.
    async fn preview(
        &self,
        target: Target,
        action: Option<ActionKind>,
        sample: u32,
    ) -> Result<Preview>;
    async fn act(&self, req: ActionRequest) -> Result<ActionResult>;
    /// Restores the items of an action that are as it left them and keeps the others,
    /// saying which and why (all or nothing with `strict`).
    async fn undo(&self, req: UndoRequest) -> Result<UndoResult>;
    /// Past human actions, newest first.
    async fn actions(&self, query: ActionQuery) -> Result<Vec<ActionInfo>>;

    // Bearer tokens of `workq serve` (SPEC §9).
    /// A new token: its secret is in the answer and nowhere else (only its hash is kept).
    async fn create_token(&self, name: &str, role: Role) -> Result<NewToken>;
    /// Every token, live and revoked, oldest first; never a secret.
    async fn tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revokes the live token of this name: from now on it is refused.
    async fn revoke_token(&self, name: &str) -> Result<TokenInfo>;
    /// The live token whose secret this is, if any (compared in constant time).
    async fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>>;

    // Alerts (issue 9).
    /// Stores an alert on an existing queue; its rule is checked and kept in canonical words.
    async fn add_alert(&self, alert: NewAlert) -> Result<Alert>;
    /// Every alert, by name.
    async fn alerts(&self) -> Result<Vec<Alert>>;
    /// Removes an alert; it is gone from the answer of `alerts` and is never checked again.
    async fn remove_alert(&self, name: &str) -> Result<Alert>;
    /// Moves an alert's state from what the caller saw (`seen_generation`) to `to`: a
    /// compare-and-set, so of two checkers that saw the same transition only one wins
    /// (`Some`, the alert as now stored) and fires it; the other gets `None`.
    async fn set_alert_state(
        &self,
        name: &str,
        seen_generation: u64,
        to: AlertState,
    ) -> Result<Option<Alert>>;

    /// Times out expired leases now (the engine also does it by itself).
    async fn sweep(&self) -> Result<u64>;

    /// Removes up to `most` processed items finished before `before`, with their history,
    /// in one transaction (`workq serve --retain`): how many. Open items are never removed.
    async fn prune(&self, before: Time, most: u64) -> Result<u64>;

    /// The change feed: events as the engine commits them, and where it could not follow.
    fn subscribe(&self) -> Feed;

    /// Whether this process runs the store's periodic work (lease sweeps, alert checks).
    /// On a database several servers share, only the one holding the leader lock does.
    fn leads(&self) -> bool {
        true
    }
}

/// Where a change feed could not follow its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// This many events were missed (the reader fell behind, or a reconnect resumed past
    /// what the source keeps): whatever the reader shows must be fetched again.
    Lagged(u64),
    /// Something changed that the feed cannot name (another process wrote to the same
    /// file, another server to the same database): whatever the reader shows must be
    /// fetched again.
    Changed,
    /// The source went away (the engine closed its feed, a server's stream dropped), and
    /// why; nothing more comes on this feed: subscribe again, with a growing delay.
    Disconnected(String),
}

/// A change feed: a stream of `Ok(event)` and `Err(gap)`, whatever carries it (a broadcast
/// channel in-process; Server-Sent Events or LISTEN/NOTIFY behind other backends). After a
/// `Disconnected` the stream ends, and `recv` keeps saying `Disconnected`.
pub struct Feed {
    items: BoxStream<'static, Result<Event, Gap>>,
    /// Why the source went away, once it has.
    gone: Option<String>,
}

impl Feed {
    /// The feed of an in-process broadcast channel.
    pub fn from_broadcast(rx: broadcast::Receiver<Event>) -> Feed {
        use broadcast::error::RecvError;
        Feed::from_stream(futures::stream::unfold(Some(rx), |rx| async move {
            let mut rx = rx?;
            let item = match rx.recv().await {
                Ok(e) => Ok(e),
                Err(RecvError::Lagged(n)) => Err(Gap::Lagged(n)),
                Err(RecvError::Closed) => {
                    let why = "the engine closed its change feed".to_string();
                    return Some((Err(Gap::Disconnected(why)), None));
                }
            };
            Some((item, Some(rx)))
        }))
    }

    /// A feed of any stream of events and gaps; its end reads as `Disconnected`.
    pub fn from_stream(items: impl Stream<Item = Result<Event, Gap>> + Send + 'static) -> Feed {
        Feed {
            items: items.boxed(),
            gone: None,
        }
    }

    /// The next event, or the gap where the feed could not follow. Cancel-safe (for
    /// `select!`): nothing is lost when the wait is dropped.
    pub async fn recv(&mut self) -> Result<Event, Gap> {
        if let Some(why) = &self.gone {
            return Err(Gap::Disconnected(why.clone()));
        }
        let next = self.items.next().await;
        self.note(next)
    }

    /// What is waiting now, without waiting: `Err(None)` when nothing is.
    pub fn try_recv(&mut self) -> Result<Event, Option<Gap>> {
        if let Some(why) = &self.gone {
            return Err(Some(Gap::Disconnected(why.clone())));
        }
        match self.items.next().now_or_never() {
            None => Err(None),
            Some(next) => self.note(next).map_err(Some),
        }
    }

    /// Remembers that the source went away; an ended stream says so once.
    fn note(&mut self, next: Option<Result<Event, Gap>>) -> Result<Event, Gap> {
        match next {
            Some(Err(Gap::Disconnected(why))) => {
                self.gone = Some(why.clone());
                Err(Gap::Disconnected(why))
            }
            Some(other) => other,
            None => {
                let why = "the change feed ended".to_string();
                self.gone = Some(why.clone());
                Err(Gap::Disconnected(why))
            }
        }
    }
}

impl Stream for Feed {
    type Item = Result<Event, Gap>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.gone.is_some() {
            return Poll::Ready(None);
        }
        match self.items.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(next) => Poll::Ready(Some(self.note(next))),
        }
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("gone", &self.gone).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(q: &str, n: u64) -> Event {
        Event::Items {
            queue: q.into(),
            count: n,
        }
    }

    #[tokio::test]
    async fn a_broadcast_feed_says_when_it_lagged_and_when_its_source_went_away() {
        let (tx, rx) = broadcast::channel(2);
        let mut feed = Feed::from_broadcast(rx);
        assert_eq!(feed.try_recv(), Err(None), "nothing yet");
        for n in 1..=5 {
            tx.send(items("q", n)).unwrap();
        }
        // Two kept, three missed: the reader is told how many, then goes on.
        assert_eq!(feed.recv().await, Err(Gap::Lagged(3)));
        assert_eq!(feed.recv().await, Ok(items("q", 4)));
        assert_eq!(feed.try_recv(), Ok(items("q", 5)));
        assert_eq!(feed.try_recv(), Err(None));
        drop(tx);
        let gone = Gap::Disconnected("the engine closed its change feed".into());
        assert_eq!(feed.recv().await, Err(gone.clone()));
        assert_eq!(feed.recv().await, Err(gone.clone()), "and keeps saying so");
        assert_eq!(feed.try_recv(), Err(Some(gone)));
        assert_eq!(feed.next().await, None, "the stream has ended");
    }

    #[tokio::test]
    async fn a_stream_feed_passes_its_gaps_and_its_end_reads_as_disconnected() {
        let mut feed = Feed::from_stream(futures::stream::iter(vec![
            Ok(items("a", 1)),
            Err(Gap::Lagged(7)),
            Ok(items("b", 2)),
        ]));
        assert_eq!(feed.next().await, Some(Ok(items("a", 1))));
        assert_eq!(feed.next().await, Some(Err(Gap::Lagged(7))));
        assert_eq!(feed.recv().await, Ok(items("b", 2)));
        let ended = Gap::Disconnected("the change feed ended".into());
        assert_eq!(feed.next().await, Some(Err(ended.clone())));
        assert_eq!(feed.next().await, None);
        assert_eq!(feed.recv().await, Err(ended));
    }

    #[tokio::test]
    async fn a_wait_dropped_midway_loses_no_event() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = Feed::from_broadcast(rx);
        // A select! that picks another branch drops the wait; the event sent after it is
        // still the next one read.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(10), feed.recv()).await;
        assert!(waited.is_err(), "nothing was sent yet");
        tx.send(items("q", 1)).unwrap();
        assert_eq!(feed.recv().await, Ok(items("q", 1)));
    }
}
