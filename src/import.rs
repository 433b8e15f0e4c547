//! Reading CSV and JSON Lines files into items (SPEC §6), streaming, with every bad row
//! reported by line and column. The store decides what lands (all-or-nothing or skip-bad).

use crate::model::*;
use crate::rules;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            _ => Err(format!(
                "unknown import format '{s}' (expected csv or jsonl)"
            )),
        }
    }
}

impl Format {
    /// From the file name: `.jsonl`, `.ndjson` and `.json` are JSON Lines, all else CSV.
    pub fn from_path(p: &Path) -> Format {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "jsonl" || e == "ndjson" || e == "json" => Format::Jsonl,
            _ => Format::Csv,
        }
    }
}

pub type Row = Result<ImportRow, RowError>;

/// Rows per batch sent to the store.
pub const BATCH: usize = 4096;

/// The columns with a meaning; with a `value` column any other column is a mistake.
const KNOWN: &[&str] = &[
    "name",
    "value",
    "priority",
    "key",
    "expires_at",
    "expires_in",
    "delay_until",
    "notes",
    "status",
];

/// Parses `path` and sends its rows in batches. `progress` gets the bytes read so far.
/// `Err` is a file-level problem (cannot open, bad header): nothing was sent.
pub fn parse(
    path: &Path,
    format: Format,
    tx: mpsc::Sender<Vec<Row>>,
    progress: &dyn Fn(u64),
) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut sink = Sink {
        tx,
        batch: Vec::with_capacity(BATCH),
        rows: 0,
    };
    match format {
        Format::Csv => parse_csv(file, &mut sink, progress)?,
        Format::Jsonl => parse_jsonl(file, &mut sink, progress)?,
    }
    sink.flush();
    Ok(sink.rows)
}

struct Sink {
    tx: mpsc::Sender<Vec<Row>>,
    batch: Vec<Row>,
    rows: u64,
}

impl Sink {
    fn push(&mut self, r: Row) {
        self.rows += 1;
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The store stopped listening: it has failed and will say why.
            let _ = self.tx.blocking_send(b);
        }
    }
}

fn csv_reader<R: Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(false)
        .has_headers(true)
        .from_reader(r)
}

fn parse_csv(file: File, sink: &mut Sink, progress: &dyn Fn(u64)) -> Result<(), String> {
    let mut rdr = csv_reader(BufReader::with_capacity(1 << 16, file));
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| format!("line 1: cannot read the CSV header: {e}"))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err("line 1: the CSV file has no header row".into());
    }
    let mut seen = HashSet::new();
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(format!("line 1, column {}: empty column name", i + 1));
        }
        if !seen.insert(h.as_str()) {
            return Err(format!("line 1, column '{h}': the column appears twice"));
        }
    }
    let has_value = headers.iter().any(|h| h == "value");
    if has_value {
        if let Some(h) = headers.iter().find(|h| !KNOWN.contains(&h.as_str())) {
            return Err(format!(
                "line 1, column '{h}': unknown column (known: {}; without a value column every column goes into a JSON value)",
                KNOWN.join(", ")
            ));
        }
    }
    let mut rec = csv::ByteRecord::new();
    let mut n = 0u64;
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(line);
                sink.push(csv_row(&headers, has_value, &rec, line));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("has {len} fields, the header has {expected_len}"),
                    _ => e.to_string(),
                };
                sink.push(Err(RowError {
                    line,
                    column: None,
                    message,
                }));
            }
        }
        n += 1;
        if n.is_multiple_of(8192) {
            progress(rdr.position().byte());
        }
    }
    progress(rdr.position().byte());
    Ok(())
}

fn csv_row(headers: &[String], has_value: bool, rec: &csv::ByteRecord, line: u64) -> Row {
    let err = |col: &str, message: String| RowError {
        line,
        column: Some(col.to_string()),
        message,
    };
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(headers.len());
    for (h, raw) in headers.iter().zip(rec.iter()) {
        let v = std::str::from_utf8(raw).map_err(|_| err(h, "not valid UTF-8".into()))?;
        fields.push((h, v));
    }
    let mut item = NewItem::default();
    for (h, v) in &fields {
        set_field(&mut item, h, v).map_err(|m| err(h, m))?;
    }
    if !has_value {
        let mut obj = Map::with_capacity(fields.len());
        for (h, v) in &fields {
            obj.insert((*h).to_string(), cell_json(v));
        }
        item.value = Value::Object(obj).to_string();
    }
    finish(item, line)
}

/// A CSV cell as JSON: numbers that round-trip stay numbers ("1253.78"), anything else
/// (ids like "00123", text) stays a string; an empty cell is null.
fn cell_json(v: &str) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = v.parse::<i64>() {
        if i.to_string() == v {
            return Value::from(i);
        }
    }
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() && f.to_string() == v {
            return Value::from(f);
        }
    }
    Value::String(v.to_string())
}

/// Sets one known field from text; unknown names are ignored (they belong to the value).
fn set_field(item: &mut NewItem, name: &str, v: &str) -> Result<(), String> {
    let t = v.trim();
    let opt = || (!v.is_empty()).then(|| v.to_string());
    match name {
        "value" => item.value = v.to_string(),
        "name" => item.name = opt(),
        "key" => item.key = (!t.is_empty()).then(|| t.to_string()),
        "notes" | "note" => item.note = opt(),
        "priority" if !t.is_empty() => item.priority = t.parse()?,
        "expires_at" if !t.is_empty() => item.expires_at = Some(rules::parse_time(t)?),
        "expires_in" if !t.is_empty() => item.expires_in = Some(rules::parse_duration(t)?),
        "delay_until" if !t.is_empty() => item.delay_until = Some(rules::parse_time(t)?),
        "status" if !t.is_empty() => {
            item.hold = match t.parse::<Status>()? {
                Status::Queued => false,
                Status::OnHold => true,
                s => {
                    return Err(format!(
                        "status '{s}' cannot be imported (use queued or on-hold)"
                    ))
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish(item: NewItem, line: u64) -> Row {
    rules::check_new_item(&item).map_err(|(col, message)| RowError {
        line,
        column: Some(col.to_string()),
        message,
    })?;
    Ok(ImportRow { line, item })
}

fn parse_jsonl(file: File, sink: &mut Sink, progress: &dyn Fn(u64)) -> Result<(), String> {
    let mut rdr = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("line {}: cannot read: {e}", line + 1))?;
        if n == 0 {
            break;
        }
        line += 1;
        bytes += n as u64;
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_start_matches('\u{feff}').trim(),
            Err(_) => {
                sink.push(Err(RowError {
                    line,
                    column: None,
                    message: "not valid UTF-8".into(),
                }));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        sink.push(json_row(text, line));
        if line.is_multiple_of(8192) {
            progress(bytes);
        }
    }
    progress(bytes);
    Ok(())
}

fn json_row(text: &str, line: u64) -> Row {
    let obj = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Err(RowError {
                line,
                column: None,
                message: "expected a JSON object".into(),
            })
        }
        Err(e) => {
            return Err(RowError {
                line,
                column: Some(format!("char {}", e.column())),
                message: format!("bad JSON: {e}"),
            })
        }
    };
    let mut item = NewItem::default();
    for (k, v) in &obj {
        let key = k.to_ascii_lowercase();
        if key == "value" {
            continue;
        }
        if !KNOWN.contains(&key.as_str()) {
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        set_field(&mut item, &key, &text).map_err(|message| RowError {
            line,
            column: Some(k.clone()),
            message,
        })?;
    }
    let value_key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case("value"))
        .cloned();
    item.value = match value_key.and_then(|k| obj.get(&k)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        // No value field: the whole line is the value, as a CSV without a value column.
        None => Value::Object(obj).to_string(),
    };
    finish(item, line)
}

/// Copies the rows at `lines` (their first lines, as reported) from `src` to `dest` in the
/// same format, CSV with its header, so that they can be fixed and imported again.
pub fn write_rejects(
    src: &Path,
    format: Format,
    lines: &HashSet<u64>,
    dest: &Path,
) -> Result<u64, String> {
    let input = File::open(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let out = File::create(dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let werr = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
    let mut n = 0;
    match format {
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(BufReader::new(input));
            let mut w = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(&mut out);
            let header = rdr.byte_headers().map_err(|e| e.to_string())?.clone();
            w.write_byte_record(&header).map_err(|e| e.to_string())?;
            let mut rec = csv::ByteRecord::new();
            loop {
                let line = rdr.position().line();
                match rdr.read_byte_record(&mut rec) {
                    Ok(false) => break,
                    Ok(true) => {
                        let l = rec.position().map(|p| p.line()).unwrap_or(line);
                        if lines.contains(&l) {
                            w.write_byte_record(&rec).map_err(|e| e.to_string())?;
                            n += 1;
                        }
                    }
                    Err(_) => continue,
                }
            }
            w.flush().map_err(werr)?;
        }
        Format::Jsonl => {
            let rdr = BufReader::new(input);
            for (i, l) in rdr.split(b'\n').enumerate() {
                let l = l.map_err(|e| e.to_string())?;
                if lines.contains(&(i as u64 + 1)) {
                    out.write_all(&l)
                        .and_then(|_| out.write_all(b"\n"))
                        .map_err(werr)?;
                    n += 1;
                }
            }
        }
    }
    out.flush().map_err(werr)?;
    Ok(n)
}
