//! An import's rows on their way in, for both stores. They are checked by the rules and
//! spooled to a file while the producer sends them (parsing, validation, a slow upload), so
//! memory stays flat however long the file, and the commit reads them back in one
//! transaction (again, from the first, if that transaction has to be run again).

use crate::backend::{Conflict, Error, ImportRows, Result, StorageCause};
use crate::model::*;
use crate::rules;
use chrono::DateTime;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The good rows of an import, in file order, and the rows refused before any store check.
pub struct Spool {
    file: BufWriter<File>,
    path: PathBuf,
    pub rows: u64,
    pub rejected: Vec<RowError>,
}

impl Spool {
    /// Takes every batch the producer sends, for as long as it takes: each row is checked
    /// by the rules and spooled, or kept as refused. The file is made beside `beside` (the
    /// database file, or a name in the temporary directory) and unlinked at once, so
    /// nothing is left behind whatever happens to the process.
    pub fn fill(beside: &Path, mut rows: ImportRows) -> Result<Spool> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}.import-{}-{}",
            beside
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("workq"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = beside.with_file_name(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        std::fs::remove_file(&path).ok();
        let mut spool = Spool {
            file: BufWriter::with_capacity(1 << 20, file),
            path,
            rows: 0,
            rejected: Vec::new(),
        };
        let mut buf = Vec::with_capacity(1024);
        while let Some(batch) = rows.blocking_recv() {
            for r in batch {
                let Some(r) = checked(r, &mut spool.rejected) else {
                    continue;
                };
                buf.clear();
                encode(&r, &mut buf);
                spool
                    .file
                    .write_all(&buf)
                    .map_err(|e| io_error(&spool.path, e))?;
                spool.rows += 1;
            }
        }
        spool.file.flush().map_err(|e| io_error(&spool.path, e))?;
        Ok(spool)
    }

    /// The spooled rows, from the first.
    pub fn read_back(&mut self) -> Result<impl Iterator<Item = Result<ImportRow>> + '_> {
        let path = self.path.clone();
        let f = self.file.get_mut();
        f.seek(SeekFrom::Start(0)).map_err(|e| io_error(&path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut left = self.rows;
        Ok(std::iter::from_fn(move || {
            (left > 0).then(|| {
                left -= 1;
                decode(&mut r).map_err(|e| io_error(&path, e))
            })
        }))
    }
}

/// The row if the parser and the rules took it; else its error goes to `rejected`.
pub(crate) fn checked(
    r: std::result::Result<ImportRow, RowError>,
    rejected: &mut Vec<RowError>,
) -> Option<ImportRow> {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            rejected.push(e);
            return None;
        }
    };
    if let Err((col, m)) = rules::check_new_item(&r.item) {
        rejected.push(RowError {
            line: r.line,
            column: Some(col.to_string()),
            message: m,
            ..Default::default()
        });
        return None;
    }
    Some(r)
}

/// The error of an all-or-nothing import with bad rows, listed in file order.
pub fn refused(mut rejected: Vec<RowError>) -> Error {
    rejected.sort_by_key(|e| e.line);
    Error::Invalid {
        field: "rows".into(),
        index: None,
        message: crate::text::import_failure("import refused, nothing imported", &rejected),
        rows: rejected,
    }
}

/// A taken key, as one row of an import reports it.
pub fn duplicate_key(queue: &str, key: &str) -> String {
    Error::conflict(Conflict::DuplicateKey {
        queue: queue.to_string(),
        key: key.to_string(),
        index: None,
    })
    .to_string()
}

fn io_error(path: &Path, e: io::Error) -> Error {
    let cause = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageCause::DiskFull,
        _ => StorageCause::Io,
    };
    Error::storage(
        cause,
        Some(path),
        format!("import spool {}: {e}; nothing imported", path.display()),
    )
}

// A row on disk: its line, then the item's fields in declaration order. Text as
// length-prefixed bytes, absent values as a 0 tag: the user's text comes back as it came.

fn encode(r: &ImportRow, out: &mut Vec<u8>) {
    let it = &r.item;
    out.extend_from_slice(&r.line.to_le_bytes());
    put_str(out, &it.value);
    put_opt_str(out, it.name.as_deref());
    put_opt_str(out, it.key.as_deref());
    out.push(it.priority.rank() as u8);
    put_opt_time(out, it.expires_at);
    match it.expires_in {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(&d.as_secs().to_le_bytes());
            out.extend_from_slice(&d.subsec_nanos().to_le_bytes());
        }
    }
    put_opt_time(out, it.delay_until);
    out.push(it.hold as u8);
    put_opt_str(out, it.note.as_deref());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_opt_time(out: &mut Vec<u8>, t: Option<Time>) {
    match t {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.timestamp().to_le_bytes());
            out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
        }
    }
}

fn decode(r: &mut impl Read) -> io::Result<ImportRow> {
    let line = u64::from_le_bytes(bytes(r)?);
    let value = get_str(r)?;
    let name = get_opt(r, get_str)?;
    let key = get_opt(r, get_str)?;
    let priority = Priority::from_rank(byte(r)? as i64);
    let expires_at = get_opt(r, get_time)?;
    let expires_in = get_opt(r, |r| {
        let secs = u64::from_le_bytes(bytes(r)?);
        Ok(Duration::new(secs, u32::from_le_bytes(bytes(r)?)))
    })?;
    let delay_until = get_opt(r, get_time)?;
    let hold = byte(r)? == 1;
    let note = get_opt(r, get_str)?;
    Ok(ImportRow {
        line,
        item: NewItem {
            value,
            name,
            key,
            priority,
            expires_at,
            expires_in,
            delay_until,
            hold,
            note,
        },
    })
}

fn bytes<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn byte(r: &mut impl Read) -> io::Result<u8> {
    Ok(bytes::<1>(r)?[0])
}

fn get_str(r: &mut impl Read) -> io::Result<String> {
    let n = u64::from_le_bytes(bytes(r)?) as usize;
    let mut b = vec![0; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn get_time(r: &mut impl Read) -> io::Result<Time> {
    let secs = i64::from_le_bytes(bytes(r)?);
    DateTime::from_timestamp(secs, u32::from_le_bytes(bytes(r)?))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "time out of range"))
}

fn get_opt<T, R: Read>(
    r: &mut R,
    get: impl FnOnce(&mut R) -> io::Result<T>,
) -> io::Result<Option<T>> {
    match byte(r)? {
        0 => Ok(None),
        _ => get(r).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_comes_back_from_the_spool_as_it_went_in() {
        let rows = [
            ImportRow {
                line: 7,
                item: NewItem {
                    value: "{\"a\": \"é\\n\"}\r".into(),
                    name: Some(String::new()),
                    key: Some("K-1".into()),
                    priority: Priority::Low,
                    expires_at: DateTime::from_timestamp(1_700_000_000, 123_456_789),
                    expires_in: Some(Duration::new(90, 5)),
                    delay_until: DateTime::from_timestamp(-5, 0),
                    hold: true,
                    note: Some("why".into()),
                },
            },
            ImportRow {
                line: 8,
                item: NewItem {
                    value: String::new(),
                    ..Default::default()
                },
            },
        ];
        let mut buf = Vec::new();
        for r in &rows {
            encode(r, &mut buf);
        }
        let mut at = &buf[..];
        for r in &rows {
            assert_eq!(&decode(&mut at).unwrap(), r);
        }
        assert!(at.is_empty());
    }
}
