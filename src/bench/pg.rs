//! The bench on PostgreSQL (`--engine postgres`, server from `WORKQ_BENCH_PG_URL`): each
//! run's database is a schema of its own, made afresh; the cycle's baseline is the bare
//! claim and complete statements from `workers` connections, one transaction per call
//! (the naive ceiling the issue measured with pgbench), in the same run.

use super::seconds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub const URL_VAR: &str = "WORKQ_BENCH_PG_URL";

fn server() -> Result<String, String> {
    std::env::var(URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("--engine postgres needs {URL_VAR}=postgres://user@host/dbname"))
}

fn schema(db: &str) -> String {
    let safe: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("workq_bench_{safe}")
}

/// The URL of the run's database `db`: the server's, with the schema as search path.
pub fn url(db: &str) -> Result<String, String> {
    let server = server()?;
    let sep = if server.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{server}{sep}options=-csearch_path%3D{}",
        schema(db)
    ))
}

/// Drops and makes again the schema of the run's database `db` (a failure shows at open).
pub fn reset(db: &str) {
    let Ok(server) = server() else { return };
    let name = schema(db);
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
                ))
                .await
                .ok()
        })
    })
    .join();
}

/// The cycle as bare SQL on the workq schema: `producers` connections inserting batches of
/// `batch` (sharing out the items),
/// `workers` connections each claiming up to `batch` (`FOR UPDATE SKIP LOCKED`, as the
/// store does) in one transaction and completing them with their history rows in another.
pub async fn cycle_baseline(
    db: &str,
    items: u64,
    workers: usize,
    producers: usize,
    batch: u32,
) -> Result<f64, String> {
    reset(db);
    let url = url(db)?;
    // The store makes the schema; the loop below uses only its tables.
    drop(
        crate::store::postgres::PgStore::open(&url, crate::clock::system())
            .await
            .map_err(|e| e.to_string())?,
    );
    let connect = || async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok::<_, String>(client)
    };
    let e = |e: tokio_postgres::Error| e.to_string();
    let setup = connect().await?;
    setup
        .batch_execute(
            "INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority, created_at)
             VALUES ('cycle', 80, 'UTC', 0, 300000, 0, 0)",
        )
        .await
        .map_err(e)?;
    let qid: i64 = setup
        .query_one("SELECT id FROM queues WHERE name = 'cycle'", &[])
        .await
        .map_err(e)?
        .get(0);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut adding = vec![];
    for p in 0..producers as u64 {
        let client = connect().await?;
        // The items shared out: the first producers take one more when they do not divide.
        let share = items / producers as u64 + u64::from(p < items % producers as u64);
        adding.push(tokio::spawn(async move {
            let ins = client
                .prepare(
                    "INSERT INTO items (id, queue_id, value, priority, status, enqueued_at, created_by)
                     SELECT v.id, $1, v.value, 1, 'queued', $2, 'producer'
                     FROM unnest($3::text[], $4::text[]) AS v(id, value)",
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut left = share;
            while left > 0 {
                let n = left.min(batch as u64);
                let ids: Vec<String> = (0..n).map(|_| ulid::Ulid::new().to_string()).collect();
                let values: Vec<String> = (0..n).map(|i| format!("{{\"n\":{i}}}")).collect();
                let now = chrono::Utc::now().timestamp_millis();
                client
                    .execute(&ins, &[&qid, &now, &ids, &values])
                    .await
                    .map_err(|e| e.to_string())?;
                left -= n;
            }
            Ok::<_, String>(())
        }));
    }
    let mut handles = vec![];
    for w in 0..workers {
        let mut client = connect().await?;
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let e = |e: tokio_postgres::Error| e.to_string();
            let worker = format!("w{w}");
            let claim = client
                .prepare(
                    "UPDATE items SET status = 'processing', started_at = $1, worker = $2,
                        lease_token = 'tok.' || seq::text, lease_until = $1 + 300000,
                        version = version + 1
                     WHERE seq IN (SELECT seq FROM items WHERE queue_id = $3
                        AND status = 'queued' AND NOT dormant
                        AND (delay_until IS NULL OR delay_until <= $1)
                        AND (expires_at IS NULL OR expires_at > $1)
                        ORDER BY priority, seq LIMIT $4 FOR UPDATE SKIP LOCKED)
                     RETURNING seq",
                )
                .await
                .map_err(e)?;
            let complete = client
                .prepare(
                    "UPDATE items SET status = 'processed', finished_at = $1, lease_token = NULL,
                        lease_until = NULL, version = version + 1 WHERE seq = ANY($2)",
                )
                .await
                .map_err(e)?;
            let history = client
                .prepare(
                    "INSERT INTO history (item_seq, queue_id, at, by, action, from_status, to_status)
                     SELECT s, $2, $3, $4, 'complete', 'processing', 'processed'
                     FROM unnest($1::bigint[]) AS s",
                )
                .await
                .map_err(e)?;
            while done.load(Ordering::Relaxed) < items {
                let now = chrono::Utc::now().timestamp_millis();
                let tx = client.transaction().await.map_err(e)?;
                let seqs: Vec<i64> = tx
                    .query(&claim, &[&now, &worker, &qid, &(batch as i64)])
                    .await
                    .map_err(e)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tx.commit().await.map_err(e)?;
                if seqs.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let tx = client.transaction().await.map_err(e)?;
                tx.execute(&complete, &[&now, &seqs]).await.map_err(e)?;
                tx.execute(&history, &[&seqs, &qid, &now, &worker])
                    .await
                    .map_err(e)?;
                tx.commit().await.map_err(e)?;
                done.fetch_add(seqs.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        }));
    }
    for h in adding.into_iter().chain(handles) {
        h.await.map_err(|e| e.to_string())??;
    }
    let rate = items as f64 / seconds(started.elapsed());
    reset(db);
    Ok(rate)
}

/// Import as bare SQL: the csv crate's records into `COPY items … FROM STDIN` on the workq
/// schema, one transaction, then the queue's counter: what an import via COPY can reach.
pub async fn import_baseline(csv: &std::path::Path, db: &str) -> Result<(f64, u64), String> {
    use futures::SinkExt;
    reset(db);
    let url = url(db)?;
    drop(
        crate::store::postgres::PgStore::open(&url, crate::clock::system())
            .await
            .map_err(|e| e.to_string())?,
    );
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let e = |e: tokio_postgres::Error| e.to_string();
    client
        .batch_execute(
            "INSERT INTO queues (name, sla_risk_pct, tz, max_retries, lease_ms, priority, created_at)
             VALUES ('invoices', 80, 'UTC', 0, 300000, 0, 0)",
        )
        .await
        .map_err(e)?;
    let started = Instant::now();
    let tx = client.transaction().await.map_err(e)?;
    let qid: i64 = tx
        .query_one("SELECT id FROM queues WHERE name = 'invoices'", &[])
        .await
        .map_err(e)?
        .get(0);
    let sink = tx
        .copy_in(
            "COPY items (id, queue_id, name, key, value, priority, status, enqueued_at, created_by)
             FROM STDIN",
        )
        .await
        .map_err(e)?;
    let mut sink = std::pin::pin!(sink);
    let mut rdr = csv::Reader::from_path(csv).map_err(|e| e.to_string())?;
    let mut rec = csv::StringRecord::new();
    let now = chrono::Utc::now().timestamp_millis();
    let mut n = 0u64;
    let mut buf = String::with_capacity(1 << 20);
    while rdr.read_record(&mut rec).map_err(|e| e.to_string())? {
        let prio = match &rec[3] {
            "high" => 0,
            "low" => 2,
            _ => 1,
        };
        buf.push_str(&format!(
            "{}\t{qid}\t{}\t{}\t{}\t{prio}\tqueued\t{now}\tbench\n",
            ulid::Ulid::new(),
            copy_text(&rec[0]),
            copy_text(&rec[2]),
            copy_text(&rec[1]),
        ));
        n += 1;
        if buf.len() >= 1 << 20 {
            let chunk = bytes::Bytes::from(std::mem::take(&mut buf));
            sink.send(chunk).await.map_err(e)?;
        }
    }
    if !buf.is_empty() {
        sink.send(bytes::Bytes::from(buf)).await.map_err(e)?;
    }
    sink.as_mut().finish().await.map_err(e)?;
    tx.execute(
        "UPDATE queues SET n_queued = $1 WHERE id = $2",
        &[&(n as i64), &qid],
    )
    .await
    .map_err(e)?;
    tx.commit().await.map_err(e)?;
    let secs = seconds(started.elapsed());
    reset(db);
    Ok((secs, n))
}

/// A field in COPY's text format: backslash, tab and line ends escaped.
fn copy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}
