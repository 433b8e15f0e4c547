//! An import's key checks on a reader: a dry run, and the refusal of an import with bad
//! rows, name every row the commit would refuse, without the writer and without its lock.

use super::rows::{queue_by_name, sql};
use crate::backend::{Error, ImportRows, Result};
use crate::model::*;
use crate::store::spool::{checked, duplicate_key, refused, Spool};
use rusqlite::{params, Connection};
use std::collections::HashMap;

/// What an import would refuse for keys, found on a reader: a key the queue already has,
/// or one an earlier line of the file takes. The same verdicts as the commit's.
pub struct KeyCheck<'a> {
    conn: &'a Connection,
    queue: String,
    queue_id: i64,
    column: String,
    /// Keys the import would store, with their lines.
    taken: HashMap<String, u64>,
}

impl<'a> KeyCheck<'a> {
    pub fn new(conn: &'a Connection, queue: &str, opts: &ImportOptions) -> Result<KeyCheck<'a>> {
        Ok(KeyCheck {
            conn,
            queue: queue.to_string(),
            queue_id: queue_by_name(conn, queue)?.id,
            column: opts.key_column.clone().unwrap_or_else(|| "key".into()),
            taken: HashMap::new(),
        })
    }

    /// `None`: the row would land.
    pub fn check(&mut self, r: &ImportRow) -> Result<Option<RowError>> {
        let Some(key) = &r.item.key else {
            return Ok(None);
        };
        let (message, repeats) = if let Some(&earlier) = self.taken.get(key) {
            (format!("'{key}' repeats line {earlier}"), Some(earlier))
        } else if self.in_queue(key)? {
            (duplicate_key(&self.queue, key), None)
        } else {
            self.taken.insert(key.clone(), r.line);
            return Ok(None);
        };
        Ok(Some(RowError {
            line: r.line,
            column: Some(self.column.clone()),
            message,
            repeats,
        }))
    }

    fn in_queue(&self, key: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM items WHERE queue_id = ?1 AND key = ?2")
            .and_then(|mut st| st.exists(params![self.queue_id, key]))
            .map_err(sql)
    }
}

/// A dry run: every check an import makes, on a reader, nothing written and no lock taken.
/// Each batch is read in a read transaction of its own, so a slow producer does not pin
/// an old snapshot of the file.
pub fn rehearse(
    conn: &Connection,
    queue: &str,
    opts: &ImportOptions,
    mut rows: ImportRows,
) -> Result<ImportReport> {
    let mut keys = KeyCheck::new(conn, queue, opts)?;
    let mut report = ImportReport::default();
    while let Some(batch) = rows.blocking_recv() {
        conn.execute_batch("BEGIN").map_err(sql)?;
        let checked = batch.into_iter().try_for_each(|r| {
            let Some(r) = checked(r, &mut report.rejected) else {
                return Ok(());
            };
            match keys.check(&r)? {
                Some(e) => report.rejected.push(e),
                None => report.imported += 1,
            }
            Ok(())
        });
        conn.execute_batch("COMMIT").ok();
        checked?;
    }
    if !opts.skip_bad && !report.rejected.is_empty() {
        report.imported = 0;
    }
    Ok(report)
}

/// Every row an import refused by a bad row would also refuse for its key, so that the
/// refusal names them all: the spooled rows checked on a reader.
pub fn refusal(
    conn: &Connection,
    queue: &str,
    opts: &ImportOptions,
    spool: &mut Spool,
) -> Result<Error> {
    let mut keys = KeyCheck::new(conn, queue, opts)?;
    let mut rejected = std::mem::take(&mut spool.rejected);
    conn.execute_batch("BEGIN").map_err(sql)?;
    let found = spool.read_back().and_then(|mut rows| {
        rows.try_for_each(|r| {
            if let Some(e) = keys.check(&r?)? {
                rejected.push(e);
            }
            Ok(())
        })
    });
    conn.execute_batch("COMMIT").ok();
    found?;
    Ok(refused(rejected))
}
