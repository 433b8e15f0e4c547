//! Vacuuming when the server does not: with `autovacuum = off` (some managed and hand-tuned
//! servers), a queue table's dead row versions are never reclaimed. Every item is updated
//! two or three times, each leaving a dead version in the table and its indexes; the
//! dequeue's index scan then walks past more of them every minute (measured: one item per
//! call fell from 1,634 to 962 items/s over ten minutes). So the leader looks every
//! `EVERY` and vacuums each table of the schema with more dead rows than the migration's
//! autovacuum settings would allow, as autovacuum would. With autovacuum on it does nothing.

use super::Inner;
use std::sync::Weak;
use std::time::Duration;

/// How often the leader looks.
const EVERY: Duration = Duration::from_secs(5);

/// The schema's tables past their dead-row allowance (200 rows, plus 1 % of the live ones),
/// most dead first.
const DUE: &str = "SELECT quote_ident(relname) FROM pg_stat_user_tables
    WHERE schemaname = current_schema() AND n_dead_tup > 200 + n_live_tup / 100
    ORDER BY n_dead_tup DESC";

/// Runs for as long as the store lives (see `live::start`).
pub(super) async fn vacuumer(inner: Weak<Inner>) {
    // Whether the server's autovacuum is off: read once, on first leading.
    let mut off: Option<bool> = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.live.is_leader() || off == Some(false) {
            continue;
        }
        let Ok(client) = inner.client().await else {
            continue;
        };
        if off.is_none() {
            let Ok(row) = client.query_one("SHOW autovacuum", &[]).await else {
                continue;
            };
            let is_off = row.get::<_, String>(0) == "off";
            if is_off {
                tracing::warn!(
                    "autovacuum is off on this PostgreSQL server: the leader vacuums workq's \
                     tables itself"
                );
            }
            off = Some(is_off);
            if !is_off {
                continue;
            }
        }
        let Ok(due) = client.query(DUE, &[]).await else {
            continue;
        };
        for row in due {
            let table: String = row.get(0);
            if let Err(e) = client
                .batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await
            {
                tracing::warn!(table, error = %e, "vacuum failed; trying again later");
                break;
            }
        }
    }
}
