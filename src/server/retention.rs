//! `workq serve --retain DUR`: processed items finished longer ago than DUR are removed
//! with their history, so a queue table that sees millions of items a week stays the size
//! of its open work plus DUR of finished work. The leader does it (on a database several
//! servers share, one of them), a bounded batch per transaction, so no transaction holds
//! many locks or a long snapshot and workers go on between batches.

use super::State;
use std::sync::Arc;
use std::time::Duration;

/// Items removed per transaction.
pub const BATCH: u64 = 1000;

/// How often the leader looks: a tenth of the retention, between a second and a minute.
pub fn every(retain: Duration) -> Duration {
    (retain / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Starts the pruning task; it ends when the server stops.
pub fn start(state: Arc<State>, retain: Duration) {
    let mut stop = state.stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every(retain));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while super::next_lead(&state, &mut tick, &mut stop).await {
            let Ok(keep) = chrono::Duration::from_std(retain) else {
                continue;
            };
            let before = chrono::Utc::now() - keep;
            let mut removed = 0u64;
            loop {
                if *stop.borrow() {
                    break;
                }
                match state.backend.prune(before, BATCH).await {
                    Ok(n) => {
                        removed += n;
                        if n < BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "removing old items failed; trying again next time");
                        break;
                    }
                }
                // Between batches, the workers' calls go first.
                tokio::task::yield_now().await;
            }
            if removed > 0 {
                tracing::info!(removed, before = %before, "removed processed items past retention");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_looks_a_tenth_of_the_retention_apart_within_a_second_and_a_minute() {
        assert_eq!(
            every(Duration::from_secs(30 * 86_400)),
            Duration::from_secs(60)
        );
        assert_eq!(every(Duration::from_secs(100)), Duration::from_secs(10));
        assert_eq!(every(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
