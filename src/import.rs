//! Reading CSV and JSON Lines files into items (SPEC §6), streaming, with every bad row
//! reported by its physical line (header = line 1) and column. The store decides what
//! lands (all-or-nothing, skip-bad, or nothing at all for a dry run).
//!
//! The user's text is kept: header names as written, cells as written, JSON values as the
//! bytes of the file. Nothing is parsed into a `serde_json::Value` and printed back.

use crate::model::*;
use crate::rules;
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
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
/// Good rows kept for a dry run to show (the store may still refuse some: a duplicate key).
pub const SAMPLE: usize = 20;

/// How the parser reads a file, beyond its format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// A business column (JSON Lines: a field of the value) whose text is the item's key; it
    /// stays in the value.
    pub key_column: Option<String>,
    /// The same for the item's name.
    pub name_column: Option<String>,
    /// What separates a CSV's fields (`--delimiter`); `None`: a comma.
    pub delimiter: Option<u8>,
}

impl Options {
    fn delimiter(&self) -> u8 {
        self.delimiter.unwrap_or(b',')
    }
}

/// A `--delimiter`: one ASCII character (`;`, `|`), or a tab as `tab`, `\t` or itself.
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match s.as_bytes() {
            [b] if b.is_ascii()
                && !matches!(b, b'"' | b'\r' | b'\n')
                && !b.is_ascii_alphanumeric() =>
            {
                Ok(*b)
            }
            _ => Err(format!(
                "'{s}' is not a field separator: give one character such as ';' or '|', or tab"
            )),
        },
    }
}

/// What a parse found, beside the rows it sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Parsed {
    /// Rows sent, good and bad.
    pub rows: u64,
    /// How a CSV header maps (none for JSON Lines, which has no header).
    pub columns: Option<Columns>,
    /// The first good rows, as the store gets them.
    pub sample: Vec<ImportRow>,
}

/// How a CSV's columns map onto items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Columns {
    /// Columns that set an item field (their exact lowercase names), in file order.
    pub reserved: Vec<String>,
    /// Columns that become the JSON value's keys, in file order (none with a value column).
    pub value: Vec<String>,
    /// The business column the key comes from (`--key-column`).
    pub key_column: Option<String>,
    /// The business column the name comes from (`--name-column`).
    pub name_column: Option<String>,
}

/// The item fields a column or JSON field can set. Recognised only by this exact spelling:
/// an export's `Status` or `Name` column is business data and goes into the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Value,
    Priority,
    Key,
    ExpiresAt,
    ExpiresIn,
    DelayUntil,
    Notes,
    Status,
}

const RESERVED: &[(&str, Field)] = &[
    ("name", Field::Name),
    ("value", Field::Value),
    ("priority", Field::Priority),
    ("key", Field::Key),
    ("expires_at", Field::ExpiresAt),
    ("expires_in", Field::ExpiresIn),
    ("delay_until", Field::DelayUntil),
    ("notes", Field::Notes),
    ("status", Field::Status),
];

fn reserved(name: &str) -> Option<Field> {
    RESERVED.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn reserved_names() -> String {
    RESERVED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `path` and sends its rows in batches. `progress` gets the bytes read so far.
/// `Err` is a file-level problem (cannot open, bad header, a flag naming no column):
/// nothing was sent.
pub fn parse(
    path: &Path,
    format: Format,
    opts: &Options,
    tx: mpsc::Sender<Vec<Row>>,
    progress: &dyn Fn(u64),
) -> Result<Parsed, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if opts.delimiter.is_some() && format == Format::Jsonl {
        return Err("--delimiter is for CSV files; JSON Lines has none".into());
    }
    for (flag, v) in [
        ("--key-column", &opts.key_column),
        ("--name-column", &opts.name_column),
    ] {
        if v.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(format!("{flag}: give the name of a column"));
        }
    }
    let mut sink = Sink {
        tx,
        batch: Vec::with_capacity(BATCH),
        rows: 0,
        sample: Vec::new(),
    };
    let columns = match format {
        Format::Csv => Some(parse_csv(path, file, opts, &mut sink, progress)?),
        Format::Jsonl => {
            parse_jsonl(file, opts, &mut sink, progress)?;
            None
        }
    };
    sink.flush();
    Ok(Parsed {
        rows: sink.rows,
        columns,
        sample: sink.sample,
    })
}

struct Sink {
    tx: mpsc::Sender<Vec<Row>>,
    batch: Vec<Row>,
    rows: u64,
    sample: Vec<ImportRow>,
}

impl Sink {
    fn push(&mut self, r: Row) {
        self.rows += 1;
        if self.sample.len() < SAMPLE {
            if let Ok(r) = &r {
                self.sample.push(r.clone());
            }
        }
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

// ---------------------------------------------------------------- physical lines

/// The file as the CSV parser reads it, noting where its line breaks are. The csv crate
/// counts only `\n` and takes a record's position before the line end it skips, so CRLF
/// rows came out one line low and CR-only files all on line 1; here a record's line is
/// 1 + the line breaks (`\r\n`, `\n` or a lone `\r`) before it, quoted ones included.
struct Lines<R> {
    inner: R,
    /// Bytes handed to the parser so far.
    offset: u64,
    /// Runs of consecutive line-break bytes not yet passed: (first byte, breaks in it).
    runs: VecDeque<(u64, u64)>,
    /// Line breaks before the runs still held.
    passed: u64,
    /// The last line-break byte seen, and whether it was `\r`.
    last: Option<(u64, bool)>,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner,
            offset: 0,
            runs: VecDeque::new(),
            passed: 0,
            last: None,
        }
    }

    /// The physical line of a record the parser placed at byte `at` (its position may sit
    /// on the line ends before it). Asked in file order.
    fn line_at(&mut self, at: u64) -> u64 {
        while let Some(&(start, n)) = self.runs.front() {
            if start > at {
                break;
            }
            self.passed += n;
            self.runs.pop_front();
        }
        self.passed + 1
    }
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for i in memchr::memchr2_iter(b'\r', b'\n', &buf[..n]) {
            let at = self.offset + i as u64;
            let cr = buf[i] == b'\r';
            let (joined, after_cr) = match self.last {
                Some((l, was_cr)) => (l + 1 == at, was_cr),
                None => (false, false),
            };
            // The `\n` of a `\r\n` is not a break of its own.
            let breaks = u64::from(cr || !(joined && after_cr));
            match self.runs.back_mut() {
                Some(run) if joined => run.1 += breaks,
                _ if joined => self.passed += breaks,
                _ => self.runs.push_back((at, breaks)),
            }
            self.last = Some((at, cr));
        }
        self.offset += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------- CSV

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Opens a CSV for reading past its byte-order mark (Excel's "CSV UTF-8" writes one; the
/// parser would otherwise see it as part of the first column's name, and a quoted first
/// name as a literal quote). Returns the reader and the mark's length.
fn open_csv(
    mut file: File,
    flexible: bool,
    delimiter: u8,
) -> Result<(csv::Reader<Lines<File>>, u64), String> {
    let mut head = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    let bom = if head[..got] == *BOM { 3 } else { 0 };
    file.seek(SeekFrom::Start(bom))
        .map_err(|e| format!("cannot read: {e}"))?;
    let rdr = csv::ReaderBuilder::new()
        .flexible(flexible)
        .delimiter(delimiter)
        .has_headers(false)
        .buffer_capacity(1 << 16)
        .from_reader(Lines::new(file));
    Ok((rdr, bom))
}

/// A header read and checked against the options.
struct Layout {
    names: Vec<String>,
    fields: Vec<Option<Field>>,
    has_value: bool,
    /// Per column that goes into the value: its key as JSON text with the `:` (and the
    /// `,` before it after the first), made once so that a row is only appended.
    keys_json: Vec<Vec<u8>>,
    /// Their total length: with the cells, what one row's value needs.
    keys_len: usize,
    key_col: Option<usize>,
    name_col: Option<usize>,
}

impl Layout {
    fn new(names: Vec<String>, opts: &Options, line: u64) -> Result<Layout, String> {
        if names.iter().all(|h| h.trim().is_empty()) {
            return Err(format!("line {line}: the CSV file has no header row"));
        }
        // One column whose name holds a ';' or a tab is a file split by those (Excel in
        // German and other locales writes ';'): read as commas, every row would be one
        // cell, or refused for its decimal commas. An explicit --delimiter is obeyed.
        if let ([h], None) = (&names[..], opts.delimiter) {
            if let Some(sep) = [(';', "';'"), ('\t', "tab")]
                .iter()
                .find(|(c, _)| h.contains(*c))
                .map(|(_, name)| *name)
            {
                return Err(format!(
                    "line {line}: the header is one column, '{h}': the file looks \
                     {sep}-separated: add --delimiter {sep} (or --delimiter , to read it \
                     as one column)"
                ));
            }
        }
        let mut seen = HashSet::new();
        for (i, h) in names.iter().enumerate() {
            if h.trim().is_empty() {
                return Err(format!("line {line}, column {}: empty column name", i + 1));
            }
            if !seen.insert(h.as_str()) {
                return Err(format!(
                    "line {line}, column '{h}': the column appears twice"
                ));
            }
        }
        let fields: Vec<Option<Field>> = names.iter().map(|h| reserved(h)).collect();
        let has_value = fields.contains(&Some(Field::Value));
        let find = |flag: &str, col: &Option<String>, field: Field| -> Result<_, String> {
            let Some(c) = col else { return Ok(None) };
            let Some(i) = names.iter().position(|h| h == c) else {
                let near = names
                    .iter()
                    .find(|h| h.trim().eq_ignore_ascii_case(c.trim()))
                    .map(|h| format!("; did you mean '{h}'?"))
                    .unwrap_or_default();
                return Err(format!(
                    "{flag} '{c}': the header has no such column{near} (columns: {})",
                    names.join(", ")
                ));
            };
            if fields[i].is_some() {
                return Err(format!(
                    "{flag} '{c}': '{c}' is a reserved column that sets the item's own field; name a business column"
                ));
            }
            if let Some(own) = names.iter().zip(&fields).find(|(_, f)| **f == Some(field)) {
                return Err(format!(
                    "{flag} '{c}': the file also has a '{}' column; use one or the other",
                    own.0
                ));
            }
            Ok(Some(i))
        };
        let key_col = find("--key-column", &opts.key_column, Field::Key)?;
        let name_col = find("--name-column", &opts.name_column, Field::Name)?;
        if has_value {
            if let Some((h, _)) = names
                .iter()
                .zip(&fields)
                .enumerate()
                .find(|(i, (_, f))| f.is_none() && Some(*i) != key_col && Some(*i) != name_col)
                .map(|(_, p)| p)
            {
                return Err(format!(
                    "line {line}, column '{h}': unknown column (known: {}, in exactly this spelling; without a value column every other column goes into a JSON value)",
                    reserved_names()
                ));
            }
        }
        let mut keys_json = vec![Vec::new(); names.len()];
        if !has_value {
            let mut first = true;
            for (i, h) in names.iter().enumerate() {
                if fields[i].is_none() {
                    let k = &mut keys_json[i];
                    if !first {
                        k.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut *k, h).expect("a string prints as JSON");
                    k.push(b':');
                }
            }
        }
        Ok(Layout {
            names,
            fields,
            has_value,
            keys_len: keys_json.iter().map(Vec::len).sum(),
            keys_json,
            key_col,
            name_col,
        })
    }

    fn columns(&self) -> Columns {
        let pick = |reserved: bool| {
            self.names
                .iter()
                .zip(&self.fields)
                .filter(|(_, f)| f.is_some() == reserved)
                .map(|(h, _)| h.clone())
                .collect()
        };
        Columns {
            reserved: pick(true),
            value: if self.has_value { vec![] } else { pick(false) },
            key_column: self.key_col.map(|i| self.names[i].clone()),
            name_column: self.name_col.map(|i| self.names[i].clone()),
        }
    }

    fn row(&self, rec: &csv::ByteRecord, line: u64) -> Row {
        let err = |col: &str, message: String| RowError {
            line,
            column: Some(col.to_string()),
            message,
            ..Default::default()
        };
        let mut item = NewItem::default();
        let mut value = Vec::new();
        if !self.has_value {
            // Cells, keys, two quotes a cell and the braces: one allocation for most rows.
            value.reserve(rec.as_slice().len() + self.keys_len + 2 * rec.len() + 2);
            value.push(b'{');
        }
        for (i, raw) in rec.iter().enumerate() {
            let h = &self.names[i];
            let v = std::str::from_utf8(raw).map_err(|_| err(h, "not valid UTF-8".into()))?;
            match self.fields[i] {
                Some(f) => set_field(&mut item, f, v).map_err(|m| err(h, m))?,
                None if !self.has_value => {
                    value.extend_from_slice(&self.keys_json[i]);
                    serde_json::to_writer(&mut value, v).expect("a string prints as JSON");
                }
                None => {}
            }
            if Some(i) == self.key_col {
                let v = needed(Some(v), "--key-column", "key").map_err(|m| err(h, m))?;
                set_field(&mut item, Field::Key, v).map_err(|m| err(h, m))?;
            }
            if Some(i) == self.name_col {
                let v = needed(Some(v), "--name-column", "name").map_err(|m| err(h, m))?;
                set_field(&mut item, Field::Name, v).map_err(|m| err(h, m))?;
            }
        }
        if !self.has_value {
            value.push(b'}');
            item.value = String::from_utf8(value).expect("JSON text of UTF-8 cells");
        }
        let labels = Labels {
            key: self.key_col.map(|i| self.names[i].as_str()),
            name: self.name_col.map(|i| self.names[i].as_str()),
            value: self.has_value,
        };
        finish(item, line, &labels)
    }
}

fn parse_csv(
    path: &Path,
    file: File,
    opts: &Options,
    sink: &mut Sink,
    progress: &dyn Fn(u64),
) -> Result<Columns, String> {
    let delimiter = opts.delimiter();
    let (mut rdr, bom) = open_csv(file, false, delimiter)?;
    let mut rec = csv::ByteRecord::new();
    let header_line;
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => {
            let at = rec.position().map_or(0, |p| p.byte());
            header_line = rdr.get_mut().line_at(at);
            // A header that swallowed the file is an unclosed quote, not a giant name.
            if let Some(e) = unclosed_quote(path, bom + at, header_line, &[], delimiter)? {
                return Err(format!("{e} (in the header)"));
            }
        }
        Ok(false) => return Err("line 1: the CSV file has no header row".into()),
        Err(e) => return Err(format!("line 1: cannot read the CSV header: {e}")),
    }
    let names: Vec<String> = rec
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h)
                .map(str::to_string)
                .map_err(|_| format!("line {header_line}, column {}: not valid UTF-8", i + 1))
        })
        .collect::<Result<_, _>>()?;
    let layout = Layout::new(names, opts, header_line)?;
    // The last record is held back until the file ends: only then is it known whether a
    // quote in it never closed (the csv crate reads such a quote to the end of the file
    // and hands back everything after it as one value).
    let mut held: Option<(u64, u64, Row)> = None;
    let mut n = 0u64;
    loop {
        let (at, row) = match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let at = rec.position().map_or(0, |p| p.byte());
                let line = rdr.get_mut().line_at(at);
                (at, layout.row(&rec, line))
            }
            Err(e) => {
                let at = e.position().map_or(0, |p| p.byte());
                let line = rdr.get_mut().line_at(at);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("has {len} fields, the header has {expected_len}"),
                    _ => e.to_string(),
                };
                (
                    at,
                    Err(RowError {
                        line,
                        column: None,
                        message,
                        ..Default::default()
                    }),
                )
            }
        };
        let line = match &row {
            Ok(r) => r.line,
            Err(e) => e.line,
        };
        if let Some((_, _, r)) = held.replace((at, line, row)) {
            sink.push(r);
        }
        n += 1;
        if n.is_multiple_of(8192) {
            progress(rdr.position().byte());
        }
    }
    if let Some((at, line, row)) = held {
        let row = match unclosed_quote(path, bom + at, line, &layout.names, delimiter)? {
            Some(e) => Err(e),
            None => row,
        };
        sink.push(row);
    }
    progress(rdr.position().byte() + bom);
    Ok(layout.columns())
}

/// Reads the record that starts at byte `from` (on `line`) as the csv crate does, and says
/// whether a quoted value in it is still open at the end of the file.
fn unclosed_quote(
    path: &Path,
    from: u64,
    line: u64,
    names: &[String],
    delimiter: u8,
) -> Result<Option<RowError>, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[derive(PartialEq)]
    enum S {
        Start,
        Field,
        Quoted,
        QuoteInQuoted,
    }
    let (mut s, mut field, mut lines, mut prev_cr) = (S::Start, 0usize, 0u64, false);
    let mut leading = true;
    let mut opened: Option<(u64, usize)> = None;
    // The last line with something on it.
    let mut last = line;
    for b in BufReader::with_capacity(1 << 16, f).bytes() {
        let b = b.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let brk = b == b'\r' || (b == b'\n' && !prev_cr);
        prev_cr = b == b'\r';
        if leading {
            // The line ends before the record are already counted in `line`.
            if b == b'\r' || b == b'\n' {
                continue;
            }
            leading = false;
        }
        match s {
            S::Quoted if b == b'"' => s = S::QuoteInQuoted,
            S::Quoted => {}
            S::QuoteInQuoted if b == b'"' => s = S::Quoted,
            _ if b == b'\r' || b == b'\n' => return Ok(None),
            _ if b == delimiter => {
                s = S::Start;
                field += 1;
            }
            S::Start if b == b'"' => {
                s = S::Quoted;
                opened = Some((line + lines, field));
            }
            _ => s = S::Field,
        }
        if brk {
            lines += 1;
        } else if !is_break(&b) {
            last = line + lines;
        }
    }
    if s != S::Quoted {
        return Ok(None);
    }
    let (at, col) = opened.expect("a quoted value was opened");
    let here = if at == line {
        "the quote that opens this value".to_string()
    } else {
        format!("the quote that opens this value on line {at}")
    };
    Ok(Some(RowError {
        line,
        column: Some(
            names
                .get(col)
                .cloned()
                .unwrap_or_else(|| format!("#{}", col + 1)),
        ),
        message: format!(
            "{here} is never closed, so lines {at}–{last} would all read as this one value; close the quote"
        ),
        ..Default::default()
    }))
}

/// The text of a business column named by `--key-column`/`--name-column`: every row must
/// have one, or the row would land without a key (and be imported again next time).
fn needed<'v>(v: Option<&'v str>, flag: &str, what: &str) -> Result<&'v str, String> {
    match v {
        Some(t) if !t.trim().is_empty() => Ok(t),
        Some(_) => Err(format!("empty, and {flag} needs a {what} for every row")),
        None => Err(format!("null, and {flag} needs a {what} for every row")),
    }
}

/// Sets one item field from text.
fn set_field(item: &mut NewItem, f: Field, v: &str) -> Result<(), String> {
    let t = v.trim();
    let opt = || (!v.is_empty()).then(|| v.to_string());
    match f {
        Field::Value => item.value = v.to_string(),
        Field::Name => item.name = opt(),
        Field::Key => item.key = (!t.is_empty()).then(|| t.to_string()),
        Field::Notes => item.note = opt(),
        _ if t.is_empty() => {}
        Field::Priority => item.priority = t.parse()?,
        Field::ExpiresAt => item.expires_at = Some(rules::parse_time(t)?),
        Field::ExpiresIn => item.expires_in = Some(rules::parse_duration(t)?),
        Field::DelayUntil => item.delay_until = Some(rules::parse_time(t)?),
        Field::Status => item.hold = import_status(t)?,
    }
    Ok(())
}

/// `queued` or `on-hold`: whether the item is created on hold. Other statuses are a
/// worker's or a person's doing, so the error lists only what import takes.
fn import_status(t: &str) -> Result<bool, String> {
    match t.parse::<Status>() {
        Ok(Status::Queued) => Ok(false),
        Ok(Status::OnHold) => Ok(true),
        Ok(s) => Err(format!(
            "status '{s}' cannot be imported (import accepts queued or on-hold)"
        )),
        Err(_) => Err(format!(
            "unknown status '{t}' (import accepts queued or on-hold)"
        )),
    }
}

/// Where a row's own fields came from, for the errors `check_new_item` finds.
struct Labels<'a> {
    key: Option<&'a str>,
    name: Option<&'a str>,
    /// The value came from a `value` column or field (not from the whole row).
    value: bool,
}

fn finish(item: NewItem, line: u64, labels: &Labels) -> Row {
    rules::check_new_item(&item).map_err(|(col, message)| RowError {
        line,
        column: match col {
            "key" => Some(labels.key.unwrap_or(col).to_string()),
            "name" => Some(labels.name.unwrap_or(col).to_string()),
            "value" if !labels.value => None,
            _ => Some(col.to_string()),
        },
        message,
        ..Default::default()
    })?;
    Ok(ImportRow { line, item })
}

// ---------------------------------------------------------------- JSON Lines

fn parse_jsonl(
    file: File,
    opts: &Options,
    sink: &mut Sink,
    progress: &dyn Fn(u64),
) -> Result<(), String> {
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
        let mut raw = &buf[..];
        if line == 1 {
            raw = raw.strip_prefix(BOM).unwrap_or(raw);
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t.trim_end_matches(json_space),
            Err(_) => {
                sink.push(Err(RowError {
                    line,
                    column: None,
                    message: "not valid UTF-8".into(),
                    ..Default::default()
                }));
                continue;
            }
        };
        if text.trim_start_matches(json_space).is_empty() {
            continue;
        }
        sink.push(json_row(text, line, opts));
        if line.is_multiple_of(8192) {
            progress(bytes);
        }
    }
    progress(bytes);
    Ok(())
}

fn json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A JSON object's members as the file spells them: key and value texts, in order,
/// repeats kept (so that they can be refused rather than one silently winning).
struct Members<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(kv) = m.next_entry()? {
                    out.push(kv);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Members<'a> {
    fn parse(text: &'a str) -> Result<Members<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The members' names, decoded (`"Inv\u00e9"` is `Invé`).
    fn names(&self) -> Vec<Cow<'a, str>> {
        self.0.iter().map(|(k, _)| decode_str(k)).collect()
    }
}

/// The text of a JSON string (without allocating when it has no escapes).
fn decode_str(raw: &RawValue) -> Cow<'_, str> {
    let s = raw.get();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
        _ => Cow::Owned(serde_json::from_str(s).expect("a JSON string decodes")),
    }
}

/// A member's value as text for an item field: a string's content, a number's or
/// boolean's own text; `None` for null.
fn scalar(raw: &RawValue) -> Result<Option<Cow<'_, str>>, String> {
    let s = raw.get();
    match s.as_bytes().first() {
        Some(b'"') => Ok(Some(decode_str(raw))),
        Some(b'{') => Err("expected text, found a JSON object".into()),
        Some(b'[') => Err("expected text, found a JSON array".into()),
        _ if s == "null" => Ok(None),
        _ => Ok(Some(Cow::Borrowed(s))),
    }
}

/// "bad JSON at column 9: expected value": one position, counted in characters (serde's
/// own message ends with a second "at line 1 column 9").
fn json_error(e: &serde_json::Error, text: &str) -> String {
    let full = e.to_string();
    let msg = full
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&full)
        .replace("EOF while parsing", "the line ends while parsing");
    let col = text
        .get(..e.column().saturating_sub(1))
        .map_or(e.column(), |s| s.chars().count() + 1);
    format!("bad JSON at column {col}: {msg}")
}

fn json_row(text: &str, line: u64, opts: &Options) -> Row {
    let err = |column: Option<&str>, message: String| RowError {
        line,
        column: column.map(str::to_string),
        message,
        ..Default::default()
    };
    let members = match Members::parse(text) {
        Ok(m) => m,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(err(None, "expected a JSON object".into()))
        }
        Err(e) => return Err(err(None, json_error(&e, text))),
    };
    let names = members.names();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(err(Some(n), "the field appears twice".into()));
        }
    }
    let value_at = names.iter().position(|n| n == "value");
    let mut item = NewItem::default();
    let mut has_reserved = false;
    for (i, n) in names.iter().enumerate() {
        match reserved(n) {
            Some(Field::Value) => {}
            Some(f) => {
                has_reserved = true;
                if let Some(t) = scalar(members.0[i].1).map_err(|m| err(Some(n), m))? {
                    set_field(&mut item, f, &t).map_err(|m| err(Some(n), m))?;
                }
            }
            // With a value field, every other field is a setting: a misspelt one must
            // not be dropped without a word.
            None if value_at.is_some() => {
                return Err(err(
                    Some(n),
                    format!(
                        "unknown field (known: {}, in exactly this spelling; a line without a value field is itself the value)",
                        reserved_names()
                    ),
                ))
            }
            None => {}
        }
    }
    // The value field's text: a string's content, anything else as the file has it.
    // Without one the line is the value: as written, or, when it also sets item fields,
    // its other members as written.
    let business: Option<Members>;
    match value_at {
        Some(i) => {
            let raw = members.0[i].1;
            item.value = match raw.get().as_bytes().first() {
                Some(b'"') => decode_str(raw).into_owned(),
                _ => raw.get().to_string(),
            };
            business = if opts.key_column.is_some() || opts.name_column.is_some() {
                Members::parse(raw.get()).ok()
            } else {
                None
            };
        }
        None => {
            item.value = if has_reserved {
                let mut v = String::with_capacity(text.len());
                v.push('{');
                for ((k, val), n) in members.0.iter().zip(&names) {
                    if reserved(n).is_none() {
                        if v.len() > 1 {
                            v.push(',');
                        }
                        v.push_str(k.get());
                        v.push(':');
                        v.push_str(val.get());
                    }
                }
                v.push('}');
                v
            } else {
                text.trim_start_matches(json_space).to_string()
            };
            business = None;
        }
    }
    let fields = match (&business, value_at) {
        (Some(b), _) => Some(b),
        (None, None) => Some(&members),
        (None, Some(_)) => None,
    };
    for (flag, col, f) in [
        ("--key-column", &opts.key_column, Field::Key),
        ("--name-column", &opts.name_column, Field::Name),
    ] {
        let Some(c) = col else { continue };
        if names.iter().any(|n| reserved(n) == Some(f)) {
            return Err(err(
                Some(c),
                format!(
                    "{flag} '{c}': the line also has a '{}' field; use one or the other",
                    if f == Field::Key { "key" } else { "name" }
                ),
            ));
        }
        let Some(fields) = fields else {
            return Err(err(
                Some(c),
                format!("{flag} '{c}': the value is not a JSON object"),
            ));
        };
        let found = fields
            .0
            .iter()
            .find(|(k, _)| decode_str(k) == c.as_str())
            .map(|(_, v)| *v);
        let Some(raw) = found else {
            return Err(err(Some(c), format!("no such field (named by {flag})")));
        };
        let t = scalar(raw).map_err(|m| err(Some(c), m))?;
        let what = if f == Field::Key { "key" } else { "name" };
        let t = needed(t.as_deref(), flag, what).map_err(|m| err(Some(c), m))?;
        set_field(&mut item, f, t).map_err(|m| err(Some(c), m))?;
    }
    let labels = Labels {
        key: opts.key_column.as_deref(),
        name: opts.name_column.as_deref(),
        value: value_at.is_some(),
    };
    finish(item, line, &labels)
}

// ---------------------------------------------------------------- rejects

/// Copies the rows at `lines` (their first lines, as reported) from `src` to `dest` byte
/// for byte, each with its own line end when it had one (a last row without one gets
/// none), CSV with its header (and byte-order mark), so that they can be fixed and
/// imported again.
pub fn write_rejects(
    src: &Path,
    format: Format,
    opts: &Options,
    lines: &HashSet<u64>,
    dest: &Path,
) -> Result<u64, String> {
    let input = File::open(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let out = File::create(dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let werr = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
    let rerr = |e: std::io::Error| format!("cannot read {}: {e}", src.display());
    let mut n = 0;
    match format {
        Format::Csv => {
            let (mut rdr, bom) = open_csv(input, true, opts.delimiter())?;
            let mut raw = File::open(src).map_err(rerr)?;
            let mut range = |from: u64, to: u64| -> Result<Vec<u8>, String> {
                raw.seek(SeekFrom::Start(bom + from)).map_err(rerr)?;
                let mut bytes = Vec::new();
                (&mut raw)
                    .take(to.saturating_sub(from))
                    .read_to_end(&mut bytes)
                    .map_err(rerr)?;
                Ok(bytes)
            };
            let mut rec = csv::ByteRecord::new();
            // Where the record before this one started, and on which line.
            let mut prev: Option<(u64, u64)> = None;
            loop {
                let more = rdr.read_byte_record(&mut rec);
                let at = match &more {
                    Ok(true) => rec.position().map_or(0, |p| p.byte()),
                    Ok(false) => rdr.position().byte(),
                    Err(e) => e.position().map_or(0, |p| p.byte()),
                };
                match prev {
                    // The header: written with the line end it had.
                    Some((from, 0)) => {
                        let bytes = range(from, at + 2)?;
                        let body = trim_breaks(&bytes[..bytes.len().min((at - from) as usize)]);
                        let after = &bytes[body.len() + leading_breaks(&bytes)..];
                        // Even a header that ends the file: the rows go below it.
                        let eol: &[u8] = if after.starts_with(b"\r\n") {
                            b"\r\n"
                        } else if after.starts_with(b"\r") {
                            b"\r"
                        } else {
                            b"\n"
                        };
                        out.write_all(&BOM[..bom as usize]).map_err(werr)?;
                        out.write_all(body)
                            .and_then(|_| out.write_all(eol))
                            .map_err(werr)?;
                    }
                    Some((from, line)) if lines.contains(&line) => {
                        // Two bytes on: the next record's position may sit inside the
                        // `\r\n` that ends this one.
                        let bytes = range(from, at + 2)?;
                        let row = with_own_break(&bytes, (at - from) as usize);
                        out.write_all(row).map_err(werr)?;
                        n += 1;
                    }
                    _ => {}
                }
                if let Ok(false) = more {
                    break;
                }
                let line = if prev.is_none() {
                    0
                } else {
                    rdr.get_mut().line_at(at)
                };
                prev = Some((at, line));
            }
        }
        Format::Jsonl => {
            let mut rdr = BufReader::new(input);
            let mut l = Vec::new();
            for i in 1.. {
                l.clear();
                if rdr.read_until(b'\n', &mut l).map_err(rerr)? == 0 {
                    break;
                }
                // The line as the file has it: its `\n` (or `\r\n`) when it had one.
                if lines.contains(&i) {
                    out.write_all(&l).map_err(werr)?;
                    n += 1;
                }
            }
        }
    }
    out.flush().map_err(werr)?;
    Ok(n)
}

fn is_break(b: &u8) -> bool {
    matches!(b, b'\r' | b'\n')
}

fn leading_breaks(t: &[u8]) -> usize {
    t.iter().take_while(|b| is_break(b)).count()
}

/// A record's bytes and its own line end (`\r\n`, `\n` or `\r`) when it has one, without
/// the line ends before it or the blank lines after it. The record lies in `t[..len]`;
/// its line end may run past that.
fn with_own_break(t: &[u8], len: usize) -> &[u8] {
    let lead = leading_breaks(&t[..len.min(t.len())]);
    let body = trim_breaks(&t[lead..len.min(t.len())]).len();
    let own = match &t[lead + body..] {
        [b'\r', b'\n', ..] => 2,
        [b'\r' | b'\n', ..] => 1,
        _ => 0,
    };
    &t[lead..lead + body + own]
}

/// A record's bytes without the line ends before and after it.
fn trim_breaks(t: &[u8]) -> &[u8] {
    let t = &t[leading_breaks(t)..];
    let end = t.iter().rposition(|b| !is_break(b)).map_or(0, |e| e + 1);
    &t[..end]
}
