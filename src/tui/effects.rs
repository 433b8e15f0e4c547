//! Runs effects against the backend in spawned tasks; every answer comes back as a message,
//! tagged with the sequence number it was asked with so stale answers can be dropped.

use crate::backend::Backend;
use crate::model::{ActionQuery, UndoRequest};
use crate::tui::update::{Effect, Msg};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// How many past actions the console lists.
pub const ACTIONS_LISTED: u32 = 200;

/// Starts `fx`; effects that need the terminal (editor, mouse) or the change feed are the
/// loop's own.
pub fn spawn(backend: &Arc<dyn Backend>, fx: Effect, tx: &UnboundedSender<Msg>) {
    let b = backend.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let label = format!("{fx:?}").chars().take(80).collect::<String>();
        let Some(msg) = perform(&*b, fx).await else {
            tracing::error!("effect {label} belongs to the loop");
            return;
        };
        tracing::debug!("{label} took {:?}", started.elapsed());
        // The console has quit: nobody listens any more.
        let _ = tx.send(msg);
    });
}

/// Runs one effect against the backend and says how it went, as the message `update`
/// takes; `None` for the loop's own effects (the terminal, the change feed).
pub async fn perform(b: &dyn Backend, fx: Effect) -> Option<Msg> {
    Some(match fx {
        Effect::LoadQueues(seq) => Msg::Queues(seq, b.queues().await),
        Effect::LoadAlerts => Msg::Alerts(b.alerts().await),
        Effect::LoadPage {
            seq,
            filter,
            page,
            flip,
            offset,
        } => {
            let mut r = b.items(filter, page).await;
            if let (true, Ok(p)) = (flip, r.as_mut()) {
                p.items.reverse();
            }
            Msg::Page(seq, offset, r)
        }
        Effect::LoadDetail(seq, id) => Msg::Detail(seq, b.item(&id).await),
        Effect::LoadGroups(seq) => Msg::Groups(seq, b.groups(None).await),
        Effect::LoadWorkers(seq) => Msg::Workers(seq, b.workers().await),
        Effect::Preview(seq, target, action) => {
            Msg::Preview(seq, b.preview(target, Some(action), 5).await)
        }
        Effect::Act(req) => Msg::Acted(b.act(req).await),
        Effect::UndoPreview(seq, id) => Msg::UndoPreview(
            seq,
            b.undo(UndoRequest {
                dry_run: true,
                ..UndoRequest::new(id, "")
            })
            .await,
        ),
        Effect::Undo(req) => Msg::Undone(b.undo(req).await),
        Effect::LoadActions(seq) => Msg::Actions(
            seq,
            b.actions(ActionQuery {
                queue: None,
                limit: ACTIONS_LISTED,
            })
            .await,
        ),
        Effect::SetQueueState(q, st) => Msg::QueueSaved(b.set_queue_state(&q, st).await),
        Effect::UpdateQueue(q, settings) => Msg::QueueSaved(b.update_queue(&q, settings).await),
        Effect::Edit(..) | Effect::SetMouse(_) | Effect::Resubscribe(_) => return None,
    })
}
