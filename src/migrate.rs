//! `workq migrate --from FILE --to postgres://…`: an embedded database copied whole into
//! an empty PostgreSQL schema (queues, items, history, actions and their undo records,
//! tokens, alerts, stats, workers), table by table in one PostgreSQL transaction, with every
//! table's row count and every queue's counters checked before it commits. The file is
//! write-locked while it is read, so nothing written to it meanwhile can be left behind;
//! nothing is written to it.
//!
//! The copy is by column name: every column of the file must have its place in the
//! PostgreSQL schema (the two stores keep one layout), or nothing is copied.

use crate::clock;
use rusqlite::types::Value;
use std::path::Path;
use tokio_postgres::types::ToSql;

/// One table's rows as copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub table: String,
    pub rows: u64,
}

/// Rows per INSERT (PostgreSQL takes at most 65,535 parameters in one statement).
const BATCH: usize = 1000;

type Param = Box<dyn ToSql + Sync + Send>;

/// PostgreSQL's own words for an error (tokio-postgres shows only "db error").
fn said(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Copies the file at `from` into the PostgreSQL schema at `to`, which must hold no workq
/// data yet. What was copied, table by table.
pub async fn migrate(from: &Path, to: &str) -> Result<Vec<Copied>, String> {
    if !from.is_file() {
        return Err(format!(
            "--from {}: no such database file",
            crate::text::escape(&from.display().to_string(), false)
        ));
    }
    // Opening it as the store does checks that it is a workq file and brings an older one
    // up to date, so its columns are this version's.
    drop(crate::SqliteStore::open_read_only(from, clock::system()).map_err(|e| e.to_string())?);
    let src = rusqlite::Connection::open(from).map_err(|e| format!("--from: {e}"))?;
    src.busy_timeout(std::time::Duration::from_secs(5)).ok();
    // The write lock: writers of the file wait (or are told it is locked) until the copy
    // is done; readers go on.
    src.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
        format!("--from: cannot lock the file for the copy ({e}): stop the `workq serve` and `workq work` using it, then try again")
    })?;

    // Creating (or checking) the schema is the store's: a newer one is refused there.
    drop(
        crate::store::postgres::PgStore::open(to, clock::system())
            .await
            .map_err(|e| e.to_string())?,
    );
    let (mut client, conn) = tokio_postgres::connect(to, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("--to: {}", said(&e)))?;
    let conn = tokio::spawn(conn);
    let done = copy(&src, &mut client).await;
    drop(client);
    let _ = conn.await;
    let _ = src.execute_batch("ROLLBACK");
    done
}

async fn copy(
    src: &rusqlite::Connection,
    client: &mut tokio_postgres::Client,
) -> Result<Vec<Copied>, String> {
    let pg = |e: tokio_postgres::Error| format!("PostgreSQL: {}", said(&e));
    let tx = client.transaction().await.map_err(pg)?;
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM queues) + (SELECT count(*) FROM items)
                  + (SELECT count(*) FROM tokens) + (SELECT count(*) FROM actions)",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if held > 0 {
        return Err(
            "--to: that schema already holds workq data (queues, items, tokens or actions): \
             migrate copies into an empty one only; nothing was copied"
                .into(),
        );
    }
    // The bookmarks an open of the empty schema wrote give way to the file's.
    tx.execute("DELETE FROM marks", &[]).await.map_err(pg)?;
    let tables: Vec<String> = src
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name = 'queues' DESC, name",
        )
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("--from: {e}"))?;
    let mut copied = vec![];
    for table in &tables {
        let rows = copy_table(src, &tx, table).await?;
        copied.push(Copied {
            table: table.clone(),
            rows,
        });
    }
    verify(src, &tx, &copied).await?;
    tx.commit().await.map_err(pg)?;
    Ok(copied)
}

/// A PostgreSQL column: its name, type and whether it is an identity.
struct PgColumn {
    name: String,
    kind: String,
    identity: bool,
}

async fn copy_table(
    src: &rusqlite::Connection,
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<u64, String> {
    let pg = |e: tokio_postgres::Error| format!("PostgreSQL, table {table}: {}", said(&e));
    let columns: Vec<String> = src
        .prepare(&format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("--from, table {table}: {e}"))?;
    let theirs: Vec<PgColumn> = tx
        .query(
            "SELECT column_name::text, data_type::text, is_identity = 'YES'
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| PgColumn {
            name: r.get(0),
            kind: r.get(1),
            identity: r.get(2),
        })
        .collect();
    if theirs.is_empty() {
        return Err(format!(
            "table {table} of the file has no counterpart in the PostgreSQL schema: nothing was copied"
        ));
    }
    let mut kinds = vec![];
    for c in &columns {
        match theirs.iter().find(|t| &t.name == c) {
            Some(t) => kinds.push(t.kind.clone()),
            None => {
                return Err(format!(
                    "column {table}.{c} of the file has no place in the PostgreSQL schema: nothing was copied"
                ))
            }
        }
    }
    let list = columns.join(", ");
    let mut st = src
        .prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))
        .or_else(|_| src.prepare(&format!("SELECT {list} FROM {table}")))
        .map_err(|e| format!("--from, table {table}: {e}"))?;
    let mut rows = st
        .query([])
        .map_err(|e| format!("--from, table {table}: {e}"))?;
    let per = BATCH.min(65_535 / columns.len().max(1));
    let mut batch: Vec<Param> = Vec::with_capacity(per * columns.len());
    let (mut n, mut in_batch) = (0u64, 0usize);
    while let Some(row) = rows
        .next()
        .map_err(|e| format!("--from, table {table}: {e}"))?
    {
        for (i, kind) in kinds.iter().enumerate() {
            let v: Value = row
                .get(i)
                .map_err(|e| format!("--from, table {table}: {e}"))?;
            batch.push(param(v, kind).map_err(|e| {
                format!("table {table}, row {}, column {}: {e}", n + 1, columns[i])
            })?);
        }
        n += 1;
        in_batch += 1;
        if in_batch == per {
            insert(tx, table, &list, columns.len(), &mut batch).await?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        insert(tx, table, &list, columns.len(), &mut batch).await?;
    }
    // Identity columns go on after the largest id copied, so new rows never collide.
    for c in theirs.iter().filter(|c| c.identity) {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{0}'),
                               GREATEST((SELECT max({0}) FROM {table}), 1),
                               (SELECT max({0}) FROM {table}) IS NOT NULL)",
                c.name
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    }
    Ok(n)
}

async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    list: &str,
    width: usize,
    batch: &mut Vec<Param>,
) -> Result<(), String> {
    let rows = batch.len() / width;
    let mut values = String::new();
    for r in 0..rows {
        values.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                values.push_str(", ");
            }
            values.push_str(&format!("${}", r * width + c + 1));
        }
        values.push(')');
    }
    let sql = format!("INSERT INTO {table} ({list}) OVERRIDING SYSTEM VALUE VALUES {values}");
    let refs: Vec<&(dyn ToSql + Sync)> = batch.iter().map(|p| p.as_ref() as _).collect();
    tx.execute(&sql, &refs)
        .await
        .map_err(|e| format!("PostgreSQL, table {table}: {}", said(&e)))?;
    batch.clear();
    Ok(())
}

/// A value of the file as the PostgreSQL column's type takes it.
fn param(v: Value, kind: &str) -> Result<Param, String> {
    let wrong = |v: &Value| format!("a {} value where PostgreSQL keeps {kind}", type_of(v));
    Ok(match (kind, v) {
        ("bigint", Value::Integer(i)) => Box::new(Some(i)),
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("integer", Value::Integer(i)) => Box::new(Some(
            i32::try_from(i).map_err(|_| format!("{i} is too large for integer"))?,
        )),
        ("integer", Value::Null) => Box::new(None::<i32>),
        ("boolean", Value::Integer(i)) => Box::new(Some(i != 0)),
        ("boolean", Value::Null) => Box::new(None::<bool>),
        ("text", Value::Text(s)) => Box::new(Some(s)),
        ("text", Value::Null) => Box::new(None::<String>),
        ("bytea", Value::Blob(b)) => Box::new(Some(b)),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        ("double precision", Value::Real(f)) => Box::new(Some(f)),
        ("double precision", Value::Integer(i)) => Box::new(Some(i as f64)),
        ("double precision", Value::Null) => Box::new(None::<f64>),
        ("bigint" | "integer" | "boolean" | "text" | "bytea" | "double precision", v) => {
            return Err(wrong(&v))
        }
        (other, _) => {
            return Err(format!(
                "PostgreSQL keeps it as {other}, which migrate does not copy"
            ))
        }
    })
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Integer(_) => "integer",
        Value::Real(_) => "real",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
    }
}

/// Every table holds as many rows as the file's, and every queue's counters say what its
/// items say; otherwise the transaction is not committed.
async fn verify(
    src: &rusqlite::Connection,
    tx: &tokio_postgres::Transaction<'_>,
    copied: &[Copied],
) -> Result<(), String> {
    for c in copied {
        let theirs: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {}", c.table), &[])
            .await
            .map_err(|e| format!("PostgreSQL, table {}: {}", c.table, said(&e)))?
            .get(0);
        let ours: i64 = src
            .query_row(&format!("SELECT count(*) FROM {}", c.table), [], |r| {
                r.get(0)
            })
            .map_err(|e| format!("--from, table {}: {e}", c.table))?;
        if theirs != ours || ours as u64 != c.rows {
            return Err(format!(
                "table {}: the file holds {ours} rows, {} were read and PostgreSQL holds {theirs}: nothing was copied",
                c.table, c.rows
            ));
        }
    }
    // Each status's counter column beside the count of its items.
    let (mut counted, mut counters, mut found) = (vec![], vec![], vec![]);
    for s in crate::model::Status::ALL {
        let col = s.as_str().replace('-', "_");
        counted.push(format!(
            "count(*) FILTER (WHERE status = '{}') AS {col}",
            s.as_str()
        ));
        counters.push(format!("q.n_{col}"));
        found.push(format!("coalesce(i.{col}, 0)"));
    }
    let off: Vec<String> = tx
        .query(
            &format!(
                "SELECT q.name FROM queues q LEFT JOIN (
                    SELECT queue_id, {} FROM items GROUP BY queue_id) i ON i.queue_id = q.id
                 WHERE ({}) IS DISTINCT FROM ({})",
                counted.join(", "),
                counters.join(", "),
                found.join(", ")
            ),
            &[],
        )
        .await
        .map_err(|e| format!("PostgreSQL, checking the counters: {}", said(&e)))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !off.is_empty() {
        return Err(format!(
            "the counters of queue(s) {} do not match their items in the file: nothing was copied",
            off.join(", ")
        ));
    }
    Ok(())
}
