//! The one seam: everything that reads or changes queues goes through `Backend`.
//! The SQLite store implements it now; PostgreSQL and the HTTP client will too.

use crate::model::*;
use async_trait::async_trait;
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
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;

    // Taking work.
    async fn dequeue(&self, req: DequeueRequest) -> Result<Dequeued>;
    /// Extends the lease; returns the new deadline.
    async fn heartbeat(&self, id: &str, lease: &str) -> Result<Time>;
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

    /// Times out expired leases now (the engine also does it by itself).
    async fn sweep(&self) -> Result<u64>;

    /// The change feed.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
}
