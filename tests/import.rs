//! Import from real CSV and JSON Lines files into a real store: the user's text arrives as
//! written, every bad row is reported at its physical line, and nothing is lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use workq::backend::Backend;
use workq::import::{self, Format, Options, Parsed};
use workq::model::*;

#[allow(dead_code, unused_macros, unused_imports)]
mod common;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Backend>,
    /// The PostgreSQL schema the store is in, dropped with the fixture.
    _schema: Option<common::PgSchema>,
}

/// The embedded store on a real file in a fresh folder, with queue `q`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = workq::SqliteStore::open(dir.path().join("w.db"), workq::clock::system()).unwrap();
    store.create_queue("q", Default::default()).await.unwrap();
    Fixture {
        dir,
        store: Arc::new(store),
        _schema: None,
    }
}

/// The PostgreSQL store in a fresh schema (`WORKQ_TEST_PG_URL`), with queue `q`; `None`
/// skips the test, except under CI=true, where that fails.
async fn pg_fixture() -> Option<Fixture> {
    let url = match std::env::var("WORKQ_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but WORKQ_TEST_PG_URL is unset: the import tests must run on PostgreSQL");
            }
            eprintln!("SKIPPED: WORKQ_TEST_PG_URL is not set");
            return None;
        }
    };
    let schema = common::fresh_schema(&url).await;
    let store = workq::store::postgres::PgStore::open(&schema.url(), workq::clock::system())
        .await
        .unwrap();
    store.create_queue("q", Default::default()).await.unwrap();
    Some(Fixture {
        dir: tempfile::tempdir().unwrap(),
        store: Arc::new(store),
        _schema: Some(schema),
    })
}

fn key_column(c: &str) -> Options {
    Options {
        key_column: Some(c.into()),
        ..Default::default()
    }
}

/// `Display` of each row error: "line 3, column 'priority': …".
fn shown(rejected: &[RowError]) -> Vec<String> {
    rejected.iter().map(|e| e.to_string()).collect()
}

impl Fixture {
    fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    async fn import(&self, path: &Path, skip_bad: bool) -> Result<ImportReport, String> {
        self.import_with(path, &Options::default(), skip_bad, false)
            .await
            .map(|(r, _)| r)
    }

    async fn import_with(
        &self,
        path: &Path,
        popts: &Options,
        skip_bad: bool,
        dry_run: bool,
    ) -> Result<(ImportReport, Parsed), String> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let p = path.to_path_buf();
        let po = popts.clone();
        let parser = tokio::task::spawn_blocking(move || {
            import::parse(&p, Format::from_path(&p), &po, tx, &|_| {})
        });
        let opts = ImportOptions {
            skip_bad,
            dry_run,
            key_column: popts.key_column.clone(),
        };
        let stored = self.store.import("q", opts, rx, "user:t").await;
        let parsed = parser.await.unwrap()?;
        Ok((stored.map_err(|e| e.to_string())?, parsed))
    }

    async fn all(&self) -> Vec<Item> {
        self.store
            .items(
                Filter::default(),
                PageRequest {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items
    }

    async fn values(&self) -> Vec<String> {
        self.all().await.into_iter().map(|i| i.value).collect()
    }
}

async fn csv_with_a_value_column_maps_the_reserved_columns(f: Fixture) {
    let csv = "\u{feff}name,value,priority,key,expires_in,notes,status\n\
               Invoice 1,\"Fabrikam, Inc.\",high,INV-1,1h,\"first line\nsecond line\",\n\
               \n\
               Rechnung 2,Müller GmbH ✓,low,INV-2,,,on-hold\n";
    let p = f.file("in.csv", csv);
    let r = f.import(&p, false).await.unwrap();
    assert_eq!((r.imported, r.rejected.len()), (2, 0));
    let items = f.all().await;
    assert_eq!(items[0].name.as_deref(), Some("Invoice 1"));
    assert_eq!(items[0].value, "Fabrikam, Inc.", "quoted comma");
    assert_eq!(items[0].priority, Priority::High);
    assert_eq!(items[0].key.as_deref(), Some("INV-1"));
    assert!(items[0].expires_at.is_some());
    assert_eq!(
        items[0].notes[0].text, "first line\nsecond line",
        "embedded newline"
    );
    assert_eq!(items[1].value, "Müller GmbH ✓", "UTF-8");
    assert_eq!(items[1].status, Status::OnHold);
    let h = f.store.item(&items[1].id).await.unwrap().history;
    assert!(
        h.iter().any(|e| e.to == Some(Status::OnHold)
            && e.note.as_deref() == Some("created on hold for review")),
        "an imported held item says why in its history: {h:?}"
    );
    assert_eq!(items[1].priority, Priority::Low);
}

async fn csv_without_a_value_column_keeps_names_order_and_text(f: Fixture) {
    let csv = "InvoiceId,AccountName,Amount,PostCode,Big,Quote,key\n\
               I-1006,Fabrikam,4999.00,00123,12345678901234567890,\"say \"\"hi\"\"\\n\",I-1006\n\
               I-1007,Contoso,,4711,-0,,I-1007\n";
    let p = f.file("invoices.csv", csv);
    f.import(&p, false).await.unwrap();
    let items = f.all().await;
    // The stored text itself: header names as written, in file order, each cell's text as
    // a JSON string (so a bot reads back "4999.00", "00123" and the 20 digits unchanged).
    assert_eq!(
        items[0].value,
        r#"{"InvoiceId":"I-1006","AccountName":"Fabrikam","Amount":"4999.00","PostCode":"00123","Big":"12345678901234567890","Quote":"say \"hi\"\\n"}"#
    );
    assert_eq!(
        items[1].value,
        r#"{"InvoiceId":"I-1007","AccountName":"Contoso","Amount":"","PostCode":"4711","Big":"-0","Quote":""}"#,
        "an empty cell is the empty text"
    );
    let v: serde_json::Value = serde_json::from_str(&items[0].value).unwrap();
    assert_eq!(
        v["Quote"], "say \"hi\"\\n",
        "escaped as JSON, read back as written"
    );
    assert_eq!(
        items[0].key.as_deref(),
        Some("I-1006"),
        "a reserved column sets the item, and is not business data"
    );
}

async fn columns_named_like_ours_in_another_case_are_business_data(f: Fixture) {
    let csv = "InvoiceId,Name,Status,Priority,KEY,Value\nI-1,Acme,Paid,Urgent,k,v\n";
    let p = f.file("export.csv", csv);
    let (r, parsed) = f
        .import_with(&p, &Options::default(), false, false)
        .await
        .unwrap();
    assert_eq!(r.imported, 1);
    let cols = parsed.columns.unwrap();
    assert!(cols.reserved.is_empty(), "{cols:?}");
    assert_eq!(
        cols.value,
        ["InvoiceId", "Name", "Status", "Priority", "KEY", "Value"]
    );
    let i = &f.all().await[0];
    assert_eq!(
        i.value,
        r#"{"InvoiceId":"I-1","Name":"Acme","Status":"Paid","Priority":"Urgent","KEY":"k","Value":"v"}"#
    );
    assert_eq!(
        (i.name.as_deref(), i.key.as_deref(), i.priority, i.status),
        (None, None, Priority::Normal, Status::Queued),
        "none of them set the item"
    );
}

async fn bad_rows_are_reported_by_line_and_column_and_nothing_lands(f: Fixture) {
    let csv = "name,value,priority,expires_at,key\n\
               ok,v1,normal,,K1\n\
               bad-priority,v2,urgent,,K2\n\
               bad-date,v3,low,32/13/2026,K3\n\
               dup,v4,,,K1\n\
               short,v5\n\
               ok2,v6,,,K6\n";
    let p = f.file("bad.csv", csv);
    let e = f.import(&p, false).await.unwrap_err();
    assert!(e.contains("nothing imported: 4 bad rows"), "{e}");
    assert!(
        e.contains("line 3, column 'priority': unknown priority 'urgent'"),
        "{e}"
    );
    assert!(
        e.contains("line 4, column 'expires_at': bad time '32/13/2026'"),
        "{e}"
    );
    assert!(
        e.contains("line 5, column 'key': 'K1' repeats line 2"),
        "{e}"
    );
    assert!(e.contains("line 6: has 2 fields, the header has 5"), "{e}");
    assert!(f.all().await.is_empty(), "all-or-nothing");

    let r = f.import(&p, true).await.unwrap();
    assert_eq!(r.imported, 2);
    let lines: Vec<u64> = r.rejected.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5, 6]);
    // The reject file holds the bad rows in the input's format, ready to fix.
    let dest = f.dir.path().join("rejects.csv");
    let set: HashSet<u64> = lines.into_iter().collect();
    assert_eq!(
        import::write_rejects(&p, Format::Csv, &Options::default(), &set, &dest).unwrap(),
        4
    );
    let text = std::fs::read_to_string(&dest).unwrap();
    assert_eq!(
        text,
        "name,value,priority,expires_at,key\nbad-priority,v2,urgent,,K2\nbad-date,v3,low,32/13/2026,K3\ndup,v4,,,K1\nshort,v5\n"
    );
}

/// One CSV, the line ends swapped: LF, CRLF (Excel), CR-only (old Mac), each also with a
/// UTF-8 byte-order mark. Line 3 holds a quoted value over two lines, line 6 is blank.
fn variants(lf: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, eol) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
        let body = lf.replace('\n', eol);
        out.push((name, body.clone().into_bytes()));
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend(body.as_bytes());
        out.push((
            if name == "lf" {
                "lf+bom"
            } else if name == "crlf" {
                "crlf+bom"
            } else {
                "cr+bom"
            },
            bom,
        ));
    }
    out
}

async fn errors_name_the_physical_line_for_every_line_ending(f: Fixture) {
    let lf = "name,value,priority,key\n\
              A,va,high,k1\n\
              B,\"two\nlines\",low,k2\n\
              C,vc,urgent,k3\n\
              \n\
              D,vd\n\
              E,\"x, y\",,k1\n\
              F,vf,,k6\n";
    for (name, bytes) in variants(lf) {
        let p = f.file(&format!("{name}.csv"), &bytes);
        let e = f.import(&p, false).await.unwrap_err();
        let want = [
            "line 5, column 'priority': unknown priority 'urgent'",
            "line 7: has 2 fields, the header has 4",
            "line 8, column 'key': 'k1' repeats line 2",
        ];
        for w in want {
            assert!(e.contains(w), "{name}: no {w:?} in\n{e}");
        }
        assert!(e.contains("3 bad rows"), "{name}: {e}");
        assert!(f.all().await.is_empty(), "{name}");
        // The rejects are those rows, byte for byte, with the file's own line ends.
        let r = f.import(&p, true).await.unwrap();
        assert_eq!(r.imported, 3, "{name}");
        let set: HashSet<u64> = r.rejected.iter().map(|e| e.line).collect();
        let dest = f.dir.path().join(format!("{name}.rejects.csv"));
        import::write_rejects(&p, Format::Csv, &Options::default(), &set, &dest).unwrap();
        let eol = if name.starts_with("crlf") {
            "\r\n"
        } else if name.starts_with("cr") {
            "\r"
        } else {
            "\n"
        };
        let mut want = if name.ends_with("+bom") {
            b"\xef\xbb\xbf".to_vec()
        } else {
            vec![]
        };
        want.extend(
            "name,value,priority,key\nC,vc,urgent,k3\nD,vd\nE,\"x, y\",,k1\n"
                .replace('\n', eol)
                .as_bytes(),
        );
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&dest).unwrap()),
            String::from_utf8_lossy(&want),
            "{name}"
        );
        // The quoted newline came through as the file has it.
        let items = f.all().await;
        let b = items
            .iter()
            .find(|i| i.name.as_deref() == Some("B"))
            .unwrap();
        assert_eq!(b.value, format!("two{eol}lines"), "{name}");
        f.store
            .act(ActionRequest {
                target: Target::Filter(Filter {
                    queue: Some("q".into()),
                    ..Default::default()
                }),
                action: ActionKind::Delete,
                note: None,
                actor: "user:t".into(),
                skip_refused: false,
            })
            .await
            .unwrap();
    }
}

async fn an_unclosed_quote_is_refused_where_it_opens_and_nothing_is_swallowed(f: Fixture) {
    let lf = "InvoiceId,Notes,Amount\n\
              I-1,\"fine\nover two lines\",10.00\n\
              I-2,ok,20.00\n\
              I-3,\"never closed,30.00\n\
              I-4,x,40.00\n\
              I-5,y,50.00\n";
    for (name, bytes) in variants(lf) {
        let p = f.file(&format!("{name}.csv"), &bytes);
        let e = f.import(&p, false).await.unwrap_err();
        assert!(e.contains("nothing imported: 1 bad row"), "{name}: {e}");
        assert!(
            e.contains("line 5, column 'Notes': the quote that opens this value is never closed, so lines 5–7 would all read as this one value"),
            "{name}: {e}"
        );
        assert!(
            f.all().await.is_empty(),
            "{name}: the data-loss case lands nothing"
        );
        // With --skip-bad the rows before it land; the rest is the reject, as written.
        let r = f.import(&p, true).await.unwrap();
        assert_eq!((r.imported, r.rejected.len()), (2, 1), "{name}");
        let dest = f.dir.path().join("rej.csv");
        import::write_rejects(
            &p,
            Format::Csv,
            &Options::default(),
            &HashSet::from([5]),
            &dest,
        )
        .unwrap();
        let got = std::fs::read(&dest).unwrap();
        let tail = &bytes[bytes.len() - 48..];
        assert!(
            got.windows(tail.len() - 1)
                .any(|w| w == &tail[..tail.len() - 1]),
            "{name}: the swallowed lines are in the reject file: {:?}",
            String::from_utf8_lossy(&got)
        );
        f.store
            .act(ActionRequest {
                target: Target::Filter(Filter {
                    queue: Some("q".into()),
                    ..Default::default()
                }),
                action: ActionKind::Delete,
                note: None,
                actor: "user:t".into(),
                skip_refused: false,
            })
            .await
            .unwrap();
    }
    // In a multi-line row, the line named is where the quote opened.
    let p = f.file("multi.csv", "a,b,c\n1,\"x\ny\",\"open\n2,3,4\n");
    let e = f.import(&p, false).await.unwrap_err();
    assert!(
        e.contains("line 2, column 'c': the quote that opens this value on line 3 is never closed, so lines 3–4"),
        "{e}"
    );
    // A quote in the header that never closes: the header would be the whole file.
    let p = f.file("h.csv", "a,\"b\n1,2\n3,4\n");
    let e = f.import(&p, false).await.unwrap_err();
    assert!(
        e.contains("line 1") && e.contains("never closed") && e.contains("header"),
        "{e}"
    );
    // Quotes that do close, and quotes inside unquoted text, are fine.
    let p = f.file("ok.csv", "a,b\n5\" screen,\"say \"\"hi\"\"\"\n");
    f.import(&p, false).await.unwrap();
    assert_eq!(f.values().await, [r#"{"a":"5\" screen","b":"say \"hi\""}"#]);
}

async fn a_key_repeated_in_the_file_names_its_first_line(f: Fixture) {
    f.store
        .add_items(
            "q",
            vec![NewItem {
                value: "old".into(),
                key: Some("old-1".into()),
                ..Default::default()
            }],
            "user:t",
        )
        .await
        .unwrap();
    let csv = "value,key\nv,b-1\nv,b-2\nv,old-1\nv,b-3\nv,b-1\nv,b-2\nv,b-1\n";
    let p = f.file("dups.csv", csv);
    let e = f.import(&p, false).await.unwrap_err();
    for w in [
        "line 4, column 'key': duplicate key 'old-1': queue 'q' already has an item with this key",
        "line 6, column 'key': 'b-1' repeats line 2",
        "line 7, column 'key': 'b-2' repeats line 3",
        "line 8, column 'key': 'b-1' repeats line 2",
    ] {
        assert!(e.contains(w), "no {w:?} in\n{e}");
    }
    // With --key-column the business column is named.
    let csv = "InvoiceId,Amount\nI-1,1\nI-2,2\nI-1,3\n";
    let p = f.file("inv.csv", csv);
    let e = f
        .import_with(&p, &key_column("InvoiceId"), false, false)
        .await
        .unwrap_err();
    assert!(
        e.contains("line 4, column 'InvoiceId': 'I-1' repeats line 2"),
        "{e}"
    );
    assert_eq!(f.all().await.len(), 1, "only the item that was there");
}

async fn key_and_name_columns_make_a_daily_file_importable_twice(f: Fixture) {
    let csv = "InvoiceId,AccountName,Amount\nI-1,Fabrikam,4999.00\nI-2,Contoso,12.50\n";
    let p = f.file("daily.csv", csv);
    let opts = Options {
        key_column: Some("InvoiceId".into()),
        name_column: Some("AccountName".into()),
        ..Default::default()
    };
    let (r, parsed) = f.import_with(&p, &opts, false, false).await.unwrap();
    assert_eq!(r.imported, 2);
    let cols = parsed.columns.unwrap();
    assert_eq!(cols.key_column.as_deref(), Some("InvoiceId"));
    assert_eq!(cols.name_column.as_deref(), Some("AccountName"));
    assert_eq!(cols.value, ["InvoiceId", "AccountName", "Amount"]);
    let items = f.all().await;
    assert_eq!(items[0].key.as_deref(), Some("I-1"));
    assert_eq!(items[0].name.as_deref(), Some("Fabrikam"));
    assert_eq!(
        items[0].value, r#"{"InvoiceId":"I-1","AccountName":"Fabrikam","Amount":"4999.00"}"#,
        "the columns stay in the value"
    );
    // The same file tomorrow: duplicates, not doubles.
    let e = f.import_with(&p, &opts, false, false).await.unwrap_err();
    assert!(
        e.contains("line 2, column 'InvoiceId': duplicate key 'I-1'"),
        "{e}"
    );
    let (r, _) = f.import_with(&p, &opts, true, false).await.unwrap();
    assert_eq!((r.imported, r.rejected.len()), (0, 2));
    assert_eq!(f.all().await.len(), 2);
    // A value column with a key column: the key column is no longer unknown.
    let p = f.file("v.csv", "value,Ref\nhello,R-1\n");
    f.import_with(&p, &key_column("Ref"), false, false)
        .await
        .unwrap();
    let i = f
        .all()
        .await
        .into_iter()
        .find(|i| i.value == "hello")
        .unwrap();
    assert_eq!(i.key.as_deref(), Some("R-1"));
}

async fn key_and_name_columns_that_do_not_fit_are_refused_before_anything(f: Fixture) {
    let p = f.file("d.csv", "InvoiceId,key,priority,Amount\nI-1,k,high,1\n");
    for (opts, want) in [
        (
            key_column("invoiceid"),
            "--key-column 'invoiceid': the header has no such column; did you mean 'InvoiceId'? (columns: InvoiceId, key, priority, Amount)",
        ),
        (key_column("Nope"), "--key-column 'Nope': the header has no such column (columns:"),
        (
            key_column("priority"),
            "--key-column 'priority': 'priority' is a reserved column",
        ),
        (
            key_column("InvoiceId"),
            "--key-column 'InvoiceId': the file also has a 'key' column; use one or the other",
        ),
        (key_column(" "), "--key-column: give the name of a column"),
        (
            Options {
                name_column: Some("amount".into()),
                ..Default::default()
            },
            "--name-column 'amount': the header has no such column; did you mean 'Amount'?",
        ),
    ] {
        let e = f.import_with(&p, &opts, true, false).await.unwrap_err();
        assert!(e.contains(want), "{opts:?}: {e}");
    }
    assert!(f.all().await.is_empty());
}

async fn a_dry_run_checks_everything_and_writes_nothing(f: Fixture) {
    f.store
        .add_items(
            "q",
            vec![NewItem {
                value: "old".into(),
                key: Some("I-3".into()),
                ..Default::default()
            }],
            "user:t",
        )
        .await
        .unwrap();
    let csv = "\u{feff}InvoiceId,Amount,priority\r\nI-1,4999.00,high\r\nI-2,1.00,asap\r\nI-3,3.00,\r\nI-1,5.00,low\r\nI-5,5.00,\r\n";
    let p = f.file("dry.csv", csv);
    let before = (f.values().await, f.store.queue("q").await.unwrap().counts);
    let opts = key_column("InvoiceId");
    for skip_bad in [false, true] {
        let (dry, parsed) = f.import_with(&p, &opts, skip_bad, true).await.unwrap();
        assert_eq!(
            (f.values().await, f.store.queue("q").await.unwrap().counts),
            before,
            "a dry run (skip_bad {skip_bad}) wrote something"
        );
        assert_eq!(
            shown(&dry.rejected),
            [
                "line 3, column 'priority': unknown priority 'asap' (expected one of: high, normal, low)",
                "line 4, column 'InvoiceId': duplicate key 'I-3': queue 'q' already has an item with this key",
                "line 5, column 'InvoiceId': 'I-1' repeats line 2",
            ]
        );
        assert_eq!(dry.imported, if skip_bad { 2 } else { 0 });
        let cols = parsed.columns.unwrap();
        assert_eq!(
            (cols.reserved, cols.value),
            (
                vec!["priority".to_string()],
                vec!["InvoiceId".to_string(), "Amount".to_string()]
            )
        );
        assert_eq!(
            parsed.sample.iter().map(|r| r.line).collect::<Vec<_>>(),
            [2, 4, 5, 6],
            "the rows the parser took (the store refuses 4 and 5)"
        );
        assert_eq!(parsed.sample[0].line, 2);
        assert_eq!(
            parsed.sample[0].item.value,
            r#"{"InvoiceId":"I-1","Amount":"4999.00"}"#
        );
        assert_eq!(parsed.sample[0].item.priority, Priority::High);
    }
    // The real import says the same, and then lands.
    let e = f.import_with(&p, &opts, false, false).await.unwrap_err();
    for line in [
        "line 3, column 'priority': unknown priority 'asap'",
        "line 4, column 'InvoiceId': duplicate key 'I-3'",
        "line 5, column 'InvoiceId': 'I-1' repeats line 2",
    ] {
        assert!(e.contains(line), "{e}");
    }
    let (real, _) = f.import_with(&p, &opts, true, false).await.unwrap();
    assert_eq!(real.imported, 2);
    assert_eq!(f.store.queue("q").await.unwrap().counts.queued, 3);
}

async fn oversize_values_and_bad_utf8_are_row_errors(f: Fixture) {
    let mut csv = b"name,value\nbig,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', MAX_VALUE_BYTES + 1));
    csv.extend(b"\nlatin1,caf\xe9\nfine,ok\n");
    let p = f.file("big.csv", &csv);
    let r = f.import(&p, true).await.unwrap();
    assert_eq!(r.imported, 1);
    assert_eq!(r.rejected.len(), 2);
    assert_eq!(
        (r.rejected[0].line, r.rejected[0].column.as_deref()),
        (2, Some("value"))
    );
    assert!(r.rejected[0].message.contains("1 MiB"));
    assert_eq!(
        (r.rejected[1].line, r.rejected[1].message.as_str()),
        (3, "not valid UTF-8")
    );
}

async fn header_problems_stop_the_import_before_it_starts(f: Fixture) {
    for (content, want) in [
        (
            "value,prority\nx,high\n",
            "line 1, column 'prority': unknown column",
        ),
        (
            "value,Priority\nx,high\n",
            "line 1, column 'Priority': unknown column (known: name, value, priority",
        ),
        (
            "value,name,name\nx,a,b\n",
            "line 1, column 'name': the column appears twice",
        ),
        (
            "InvoiceId,,Amount\n1,2,3\n",
            "line 1, column 2: empty column name",
        ),
        ("", "no header row"),
    ] {
        let p = f.file("h.csv", content);
        let e = f.import(&p, false).await.unwrap_err();
        assert!(e.contains(want), "{content:?}: {e}");
    }
    let e = f
        .import(&f.dir.path().join("missing.csv"), false)
        .await
        .unwrap_err();
    assert!(
        e.contains("cannot read") && e.contains("missing.csv"),
        "{e}"
    );
    assert!(f.all().await.is_empty());
}

async fn json_lines(f: Fixture) {
    let jsonl = concat!(
        "{\"value\": {\"InvoiceId\": \"I-1\", \"Amount\": 10.00}, \"priority\": \"high\", \"key\": \"I-1\"}\n",
        "\n",
        "{\"InvoiceId\": \"I-2\",  \"Amount\": 20.50, \"Lines\": [{\"b\": 1, \"a\": 2}]}\r\n",
        "{\"value\": \"plain text\", \"status\": \"on-hold\", \"expires_in\": \"2h\"}\n",
        "{\"value\": \"x\", \"priority\": \"asap\"}\n",
        "{\"value\": tru\n",
        "[1, 2]\n",
    );
    let p = f.file("in.jsonl", jsonl);
    let r = f.import(&p, true).await.unwrap();
    assert_eq!(r.imported, 3);
    assert_eq!(
        shown(&r.rejected),
        [
            "line 5, column 'priority': unknown priority 'asap' (expected one of: high, normal, low)",
            "line 6: bad JSON at column 13: the line ends while parsing a value",
            "line 7: expected a JSON object",
        ],
        "one line number each"
    );
    let items = f.all().await;
    assert_eq!(
        items[0].value, r#"{"InvoiceId": "I-1", "Amount": 10.00}"#,
        "the value field's text, as written"
    );
    assert_eq!(items[0].priority, Priority::High);
    assert_eq!(
        items[1].value, r#"{"InvoiceId": "I-2",  "Amount": 20.50, "Lines": [{"b": 1, "a": 2}]}"#,
        "a line without a value field is the value, as written"
    );
    assert_eq!(
        (items[2].value.as_str(), items[2].status),
        ("plain text", Status::OnHold)
    );
}

async fn json_lines_refuse_settings_they_would_drop(f: Fixture) {
    let jsonl = concat!(
        "\u{feff}{\"value\": \"a\", \"priorty\": \"high\"}\n",
        "{\"value\": \"b\", \"expire_at\": \"2030-01-01T00:00:00Z\"}\n",
        "{\"value\": \"c\", \"Priority\": \"high\"}\n",
        "{\"value\": \"d\", \"status\": \"done\"}\n",
        "{\"value\": \"e\", \"status\": \"processed\"}\n",
        "{\"value\": \"f\", \"value\": \"g\"}\n",
        "{\"value\": \"h\", \"name\": {\"x\": 1}}\n",
        "{\"value\": \"ok\", \"name\": null, \"key\": 42}\n",
    );
    let p = f.file("s.jsonl", jsonl);
    let e = f.import(&p, false).await.unwrap_err();
    for w in [
        "line 1, column 'priorty': unknown field (known: name, value, priority, key, expires_at",
        "line 2, column 'expire_at': unknown field",
        "line 3, column 'Priority': unknown field",
        "line 4, column 'status': unknown status 'done' (import accepts queued or on-hold)",
        "line 5, column 'status': status 'processed' cannot be imported (import accepts queued or on-hold)",
        "line 6, column 'value': the field appears twice",
        "line 7, column 'name': expected text, found a JSON object",
    ] {
        assert!(e.contains(w), "no {w:?} in\n{e}");
    }
    assert!(e.contains("7 bad rows"), "{e}");
    assert!(f.all().await.is_empty());
    // Without a value field, fields spelt like ours set the item and leave the value; the
    // other members keep their text.
    let p = f.file(
        "r.jsonl",
        "{\"InvoiceId\":\"I-9\", \"priority\":\"high\", \"Amount\":1.50, \"Name\":\"Acme\"}\n",
    );
    f.import(&p, false).await.unwrap();
    let i = &f.all().await[0];
    assert_eq!(
        i.value,
        r#"{"InvoiceId":"I-9","Amount":1.50,"Name":"Acme"}"#
    );
    assert_eq!((i.priority, i.name.as_deref()), (Priority::High, None));
}

async fn json_lines_with_a_key_column(f: Fixture) {
    let jsonl = concat!(
        "{\"InvoiceId\": \"I-1\", \"Amount\": 1}\n",
        "{\"value\": {\"InvoiceId\": 2, \"Amount\": 2}, \"priority\": \"low\"}\n",
        "{\"InvoiceId\": \"I-1\", \"Amount\": 3}\n",
        "{\"Amount\": 4}\n",
        "{\"value\": \"text\"}\n",
    );
    let p = f.file("k.jsonl", jsonl);
    let e = f
        .import_with(&p, &key_column("InvoiceId"), false, false)
        .await
        .unwrap_err();
    for w in [
        "line 3, column 'InvoiceId': 'I-1' repeats line 1",
        "line 4, column 'InvoiceId': no such field (named by --key-column)",
        "line 5, column 'InvoiceId': --key-column 'InvoiceId': the value is not a JSON object",
    ] {
        assert!(e.contains(w), "no {w:?} in\n{e}");
    }
    let (r, _) = f
        .import_with(&p, &key_column("InvoiceId"), true, false)
        .await
        .unwrap();
    assert_eq!(r.imported, 2);
    let keys: Vec<Option<String>> = f.all().await.into_iter().map(|i| i.key).collect();
    assert_eq!(keys, [Some("I-1".into()), Some("2".into())]);
}

async fn a_big_file_streams_in_batches(f: Fixture) {
    let mut csv = String::from("name,value,key\r\n");
    let n = import::BATCH * 3 + 17;
    for i in 0..n {
        csv.push_str(&format!("n{i},value {i},K{i}\r\n"));
    }
    // The last row repeats a key: its line is counted right across every batch.
    csv.push_str("last,v,K7\r\n");
    let p = f.file("many.csv", csv);
    let r = f.import(&p, true).await.unwrap();
    assert_eq!(r.imported as usize, n);
    assert_eq!(
        shown(&r.rejected),
        [format!("line {}, column 'key': 'K7' repeats line 9", n + 2)]
    );
    assert_eq!(f.store.queue("q").await.unwrap().counts.queued as usize, n);
}

/// A key (or name) taken from a business column is needed on every row: a row with that
/// cell empty would land without a key, and the next import of the same file would add
/// it again. It is a bad row like any other: refused, or a reject with `--skip-bad`.
async fn a_key_or_name_column_needs_text_on_every_row(f: Fixture) {
    let csv = "InvoiceId,AccountName,Amount\n\
               I-1,Fabrikam,1.00\n\
               ,Contoso,2.00\n\
               I-3,,3.00\n\
               \"  \",Tailspin,4.00\n\
               I-5,Litware,5.00\n";
    let p = f.file("daily.csv", csv);
    let e = f
        .import_with(&p, &key_column("InvoiceId"), false, false)
        .await
        .unwrap_err();
    assert!(e.contains("nothing imported: 2 bad rows"), "{e}");
    for w in [
        "line 3, column 'InvoiceId': empty, and --key-column needs a key for every row",
        "line 5, column 'InvoiceId': empty, and --key-column needs a key for every row",
    ] {
        assert!(e.contains(w), "no {w:?} in\n{e}");
    }
    assert!(f.all().await.is_empty());
    let names = Options {
        name_column: Some("AccountName".into()),
        ..Default::default()
    };
    let e = f.import_with(&p, &names, false, false).await.unwrap_err();
    assert!(
        e.contains(
            "line 4, column 'AccountName': empty, and --name-column needs a name for every row"
        ),
        "{e}"
    );
    // With --skip-bad the others land, keyed, and the two go to the rejects as written.
    let (r, _) = f
        .import_with(&p, &key_column("InvoiceId"), true, false)
        .await
        .unwrap();
    assert_eq!(r.imported, 3);
    let keys: Vec<Option<String>> = f.all().await.into_iter().map(|i| i.key).collect();
    assert_eq!(
        keys,
        [Some("I-1".into()), Some("I-3".into()), Some("I-5".into())]
    );
    let dest = f.dir.path().join("rej.csv");
    let lines: HashSet<u64> = r.rejected.iter().map(|e| e.line).collect();
    import::write_rejects(&p, Format::Csv, &Options::default(), &lines, &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "InvoiceId,AccountName,Amount\n,Contoso,2.00\n\"  \",Tailspin,4.00\n"
    );
    // JSON Lines: an empty, blank or null field is no key either.
    let jsonl = concat!(
        "{\"InvoiceId\": \"J-1\"}\n",
        "{\"InvoiceId\": \"\"}\n",
        "{\"InvoiceId\": \" \"}\n",
        "{\"InvoiceId\": null}\n",
        "{\"value\": {\"InvoiceId\": \"\"}}\n",
    );
    let p = f.file("k.jsonl", jsonl);
    let e = f
        .import_with(&p, &key_column("InvoiceId"), false, false)
        .await
        .unwrap_err();
    for w in [
        "line 2, column 'InvoiceId': empty, and --key-column needs a key for every row",
        "line 3, column 'InvoiceId': empty, and --key-column needs a key for every row",
        "line 4, column 'InvoiceId': null, and --key-column needs a key for every row",
        "line 5, column 'InvoiceId': empty, and --key-column needs a key for every row",
    ] {
        assert!(e.contains(w), "no {w:?} in\n{e}");
    }
    assert!(!e.contains("line 1"), "{e}");
}

/// The reject file holds each bad row's bytes as the file has them, its own line end
/// included when it had one: none added to a last row without one, none swapped for
/// the header's.
async fn rejects_keep_each_rows_bytes_and_its_own_line_end(f: Fixture) {
    let cases: [(&str, &[u8], &[u8]); 6] = [
        ("last.csv", b"name,priority\na,high\nb,bogus\n", b"name,priority\nb,bogus\n"),
        ("no-eol.csv", b"name,priority\na,high\nb,bogus", b"name,priority\nb,bogus"),
        (
            "mixed.csv",
            b"name,priority\nb,bogus\nc,wrong\r\nd,high",
            b"name,priority\nb,bogus\nc,wrong\r\n",
        ),
        (
            "cr.csv",
            b"name,priority\rb,bogus\rc,wrong\rd,high\r",
            b"name,priority\rb,bogus\rc,wrong\r",
        ),
        (
            "quoted.csv",
            b"name,notes,priority\r\nb,\"x\r\n\",bogus\r\n\r\nc,y,wrong\r\n",
            b"name,notes,priority\r\nb,\"x\r\n\",bogus\r\nc,y,wrong\r\n",
        ),
        (
            "k.jsonl",
            b"{\"value\":\"a\",\"priority\":\"x\"}\r\n{\"value\":\"b\"}\n{\"value\":\"c\",\"priority\":\"y\"}",
            b"{\"value\":\"a\",\"priority\":\"x\"}\r\n{\"value\":\"c\",\"priority\":\"y\"}",
        ),
    ];
    for (name, input, want) in cases {
        let p = f.file(name, input);
        let r = f.import(&p, true).await.unwrap();
        let lines: HashSet<u64> = r.rejected.iter().map(|e| e.line).collect();
        let dest = f.dir.path().join(format!("{name}.rej"));
        let n = import::write_rejects(
            &p,
            Format::from_path(&p),
            &Options::default(),
            &lines,
            &dest,
        )
        .unwrap();
        assert_eq!(n, lines.len() as u64, "{name}");
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&dest).unwrap()),
            String::from_utf8_lossy(want),
            "{name}"
        );
    }
}

/// Excel in German (and many other locales) saves "CSV" split by ';', with decimal
/// commas. Read with commas it would be one column: refused with the way out, and read
/// with `--delimiter ';'` (or tab) as the file means it.
async fn a_semicolon_file_is_read_with_its_delimiter_and_hinted_without(f: Fixture) {
    let de =
        "\u{feff}InvoiceId;Betrag;Status\r\nI-1;4999,00;Bezahlt\r\nI-2;12;\"Offen; gemahnt\"\r\n";
    let p = f.file("de.csv", de);
    let e = f.import(&p, false).await.unwrap_err();
    assert_eq!(
        e,
        "line 1: the header is one column, 'InvoiceId;Betrag;Status': the file looks \
         ';'-separated: add --delimiter ';' (or --delimiter , to read it as one column)"
    );
    assert!(f.all().await.is_empty());
    let semi = Options {
        delimiter: Some(import::parse_delimiter(";").unwrap()),
        ..Default::default()
    };
    let (r, _) = f.import_with(&p, &semi, false, false).await.unwrap();
    assert_eq!(r.imported, 2);
    assert_eq!(
        f.values().await,
        [
            r#"{"InvoiceId":"I-1","Betrag":"4999,00","Status":"Bezahlt"}"#,
            r#"{"InvoiceId":"I-2","Betrag":"12","Status":"Offen; gemahnt"}"#,
        ]
    );
    // Bad rows and unclosed quotes are found with that delimiter too, and rejected as written.
    let bad = "name;priority;notes\na;high;x\nb;bogus;y\nc;low;\"never closed\nd;low;z\n";
    let p = f.file("bad.csv", bad);
    let e = f.import_with(&p, &semi, false, false).await.unwrap_err();
    assert!(
        e.contains("line 3, column 'priority': unknown priority 'bogus'"),
        "{e}"
    );
    assert!(
        e.contains("line 4, column 'notes': the quote that opens this value is never closed"),
        "{e}"
    );
    let (r, _) = f.import_with(&p, &semi, true, false).await.unwrap();
    let lines: HashSet<u64> = r.rejected.iter().map(|e| e.line).collect();
    let dest = f.dir.path().join("bad.rej");
    import::write_rejects(&p, Format::Csv, &semi, &lines, &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "name;priority;notes\nb;bogus;y\nc;low;\"never closed\nd;low;z\n"
    );
    // Tab-separated, said as "tab".
    let p = f.file("t.csv", "InvoiceId\tAmount\nI-9\t1,5\n");
    let e = f.import(&p, false).await.unwrap_err();
    assert!(
        e.contains("looks tab-separated: add --delimiter tab"),
        "{e}"
    );
    let tab = Options {
        delimiter: Some(import::parse_delimiter("tab").unwrap()),
        ..Default::default()
    };
    f.import_with(&p, &tab, false, false).await.unwrap();
    assert!(f
        .values()
        .await
        .contains(&r#"{"InvoiceId":"I-9","Amount":"1,5"}"#.to_string()));
    // An explicit comma is obeyed: one column whose name holds ';'.
    let comma = Options {
        delimiter: Some(b','),
        ..Default::default()
    };
    let p = f.file("one.csv", "a;b\n1;2\n");
    f.import_with(&p, &comma, false, false).await.unwrap();
    assert!(f.values().await.contains(&r#"{"a;b":"1;2"}"#.to_string()));
    // What is no separator is refused by name.
    assert_eq!(import::parse_delimiter("\\t"), Ok(b'\t'));
    assert_eq!(import::parse_delimiter("|"), Ok(b'|'));
    for bad in ["", ";;", "a", "7", "\"", "é"] {
        let e = import::parse_delimiter(bad).unwrap_err();
        assert!(e.contains("is not a field separator"), "{bad:?}: {e}");
    }
}

fn row(line: u64, key: &str) -> Result<ImportRow, RowError> {
    Ok(ImportRow {
        line,
        item: NewItem {
            value: format!("value of {key}"),
            key: Some(key.into()),
            ..Default::default()
        },
    })
}

/// Guards against a hang only (a writer held by the import would never answer): it turns
/// that into a failure. Nothing here is a measure of speed.
async fn answered<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} got no answer while an import was waiting for rows"))
}

async fn workers_go_on_while_a_slow_import_waits_for_its_rows(f: Fixture) {
    let s = &f.store;
    s.create_queue("work", Default::default()).await.unwrap();
    let work: Vec<NewItem> = (0..4)
        .map(|i| NewItem {
            value: format!("w{i}"),
            ..Default::default()
        })
        .collect();
    s.add_items("work", work, "user:t").await.unwrap();
    let take = |worker: &str, count| DequeueRequest {
        queues: vec!["work".into()],
        worker: worker.into(),
        count,
        wait: Default::default(),
    };
    let held = s.dequeue(take("w1", 2)).await.unwrap().leases;
    assert_eq!(held.len(), 2);

    // Two imports at once, each fed slowly by its producer; the second repeats one of its
    // own keys in its last batch (found by the store at the commit), so it must land
    // nothing at all.
    let (tx1, rx1) = tokio::sync::mpsc::channel(1);
    let (tx2, rx2) = tokio::sync::mpsc::channel(1);
    let good = s.import("q", ImportOptions::default(), rx1, "user:t");
    let doomed = s.import("q", ImportOptions::default(), rx2, "user:t");
    let others = async {
        tx1.send(vec![row(2, "A"), row(3, "B")]).await.unwrap();
        tx2.send(vec![row(2, "X")]).await.unwrap();
        // Both imports are open (their producers have not finished): the other workers'
        // heartbeats, completions, failures and dequeues are answered all the same.
        let extended = answered("a heartbeat", s.heartbeat(vec![held[0].held()])).await;
        let until = extended.unwrap().pop().expect("one answer per lease");
        assert!(until.unwrap() >= held[0].lease_until);
        let outcomes = vec![
            Outcome {
                id: held[0].item.id.clone(),
                lease: held[0].lease.clone(),
                reason: None,
                note: None,
                retry_in: None,
            },
            Outcome {
                id: held[1].item.id.clone(),
                lease: held[1].lease.clone(),
                reason: Some(Reason::Business),
                note: Some("bad invoice".into()),
                retry_in: None,
            },
        ];
        let done = answered("a completion", s.finish(outcomes, "w1"))
            .await
            .unwrap();
        assert!(done.iter().all(|d| d.is_ok()), "{done:?}");
        let next = answered("a dequeue", s.dequeue(take("w2", 1)))
            .await
            .unwrap();
        assert_eq!(next.leases.len(), 1);
        let counts = answered("a read", s.queue("work")).await.unwrap().counts;
        assert_eq!(
            (
                counts.processed,
                counts.exception,
                counts.processing,
                counts.queued
            ),
            (1, 1, 1, 1)
        );
        // Nothing of either import shows before its commit.
        assert_eq!(s.queue("q").await.unwrap().counts.queued, 0);
        // Only now do the producers send their last rows.
        tx1.send(vec![row(4, "C")]).await.unwrap();
        drop(tx1);
        tx2.send(vec![row(3, "Y"), row(4, "X")]).await.unwrap();
        drop(tx2);
    };
    let (good, doomed, ()) = tokio::join!(good, doomed, others);
    assert_eq!(good.unwrap().imported, 3);
    let keys: HashSet<String> = f
        .all()
        .await
        .into_iter()
        .filter(|i| i.queue == "q")
        .filter_map(|i| i.key)
        .collect();
    assert_eq!(keys, HashSet::from(["A", "B", "C"].map(String::from)));
    let e = doomed.unwrap_err().to_string();
    assert!(
        e.contains("line 4, column 'key': 'X' repeats line 2"),
        "{e}"
    );
    assert_eq!(s.queue("q").await.unwrap().counts.queued, 3);
}

#[tokio::test]
async fn a_dry_run_takes_no_lock_and_reads_a_file_it_cannot_write() {
    let f = fixture().await;
    f.store
        .add_items(
            "q",
            vec![NewItem {
                value: "old".into(),
                key: Some("K".into()),
                ..Default::default()
            }],
            "user:t",
        )
        .await
        .unwrap();
    let dry = ImportOptions {
        skip_bad: true,
        dry_run: true,
        key_column: None,
    };
    let rows = || {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.try_send(vec![row(2, "K"), row(3, "L"), row(4, "L")])
            .unwrap();
        rx
    };
    let expected = [
        "line 2, column 'key': duplicate key 'K': queue 'q' already has an item with this key",
        "line 4, column 'key': 'L' repeats line 3",
    ];
    // Another process holds the write lock for the whole dry run.
    let lock = rusqlite::Connection::open(f.dir.path().join("w.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let report = f
        .store
        .import("q", dry.clone(), rows(), "user:t")
        .await
        .unwrap();
    assert_eq!(
        (report.imported, shown(&report.rejected)),
        (1, expected.map(String::from).to_vec())
    );
    lock.execute_batch("COMMIT").unwrap();
    // A store opened read-only (no writer at all) says the same.
    let ro = workq::SqliteStore::open_read_only(f.dir.path().join("w.db"), workq::clock::system())
        .unwrap();
    let report = ro.import("q", dry.clone(), rows(), "user:t").await.unwrap();
    assert_eq!(
        (report.imported, shown(&report.rejected)),
        (1, expected.map(String::from).to_vec())
    );
    // A real import on it is refused as every write there is, before any row is read.
    let real = ImportOptions {
        dry_run: false,
        ..dry.clone()
    };
    let e = ro.import("q", real, rows(), "user:t").await.unwrap_err();
    assert!(
        matches!(
            e,
            workq::backend::Error::Storage {
                cause: workq::backend::StorageCause::ReadOnly,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(f.store.queue("q").await.unwrap().counts.queued, 1);
}

async fn rows_go_in_by_the_chunk_and_each_refused_one_is_named(f: Fixture) {
    f.store
        .add_items(
            "q",
            vec![NewItem {
                value: "old".into(),
                key: Some("k100".into()),
                ..Default::default()
            }],
            "user:t",
        )
        .await
        .unwrap();
    // 300 rows: several full INSERT chunks (64 rows) and a short last one. Line 102 takes
    // a key the queue has, line 151 repeats line 142 of the same chunk, line 290 a line of
    // the chunk before; every other row lands, in the file's order, and held rows say why.
    let mut csv = String::from("value,key,status\n");
    for i in 0..300u32 {
        let key = match i {
            149 => "k140".to_string(),
            288 => "k200".to_string(),
            _ => format!("k{i}"),
        };
        let hold = if i % 97 == 0 { "on-hold" } else { "" };
        csv.push_str(&format!("v{i},{key},{hold}\n"));
    }
    let p = f.file("chunks.csv", &csv);
    let e = f.import(&p, false).await.unwrap_err();
    assert!(e.contains("3 bad rows"), "{e}");
    assert_eq!(
        f.all().await.len(),
        1,
        "an all-or-nothing import refused lands nothing"
    );
    let report = f.import(&p, true).await.unwrap();
    assert_eq!(
        shown(&report.rejected),
        [
            "line 102, column 'key': duplicate key 'k100': queue 'q' already has an item with this key",
            "line 151, column 'key': 'k140' repeats line 142",
            "line 290, column 'key': 'k200' repeats line 202",
        ]
    );
    assert_eq!(report.imported, 297);
    let values: Vec<String> = f.values().await;
    let expected: Vec<String> = std::iter::once("old".to_string())
        .chain(
            (0..300u32)
                .filter(|i| ![100, 149, 288].contains(i))
                .map(|i| format!("v{i}")),
        )
        .collect();
    assert_eq!(values, expected);
    let counts = f.store.queue("q").await.unwrap().counts;
    assert_eq!((counts.queued, counts.on_hold), (1 + 297 - 4, 4));
    let held = f
        .all()
        .await
        .into_iter()
        .find(|i| i.value == "v97")
        .unwrap();
    let detail = f.store.item(&held.id).await.unwrap();
    assert!(
        detail.history.iter().any(|h| h.action == "hold"),
        "{:?}",
        detail.history
    );
}

/// Keys another caller adds while a big import runs are stored once: whichever call comes
/// first keeps a key and the other is told, and every other row lands once. The file spans
/// several key-check chunks (10,000 rows), one key repeating a line of an earlier chunk. On
/// PostgreSQL a key added after the import checked it fails its COPY, and the import is
/// run again from its spool.
async fn keys_added_while_a_big_import_runs_are_stored_once(f: Fixture) {
    const N: u32 = 25_000;
    let mut csv = String::from("key,value\n");
    for i in 0..N {
        let key = if i == 15_000 { 3 } else { i };
        csv.push_str(&format!("K-{key},{{\"n\":{i}}}\n"));
    }
    let p = f.file("big.csv", &csv);
    let store = f.store.clone();
    // 40 keys of the file's end, one every 5 ms, while the import is under way.
    let adder = tokio::spawn(async move {
        let mut added = HashSet::new();
        for i in (N - 40..N).rev() {
            let key = format!("K-{i}");
            let one = NewItem {
                value: "added".into(),
                key: Some(key.clone()),
                ..Default::default()
            };
            if store.add_items("q", vec![one], "user:other").await.is_ok() {
                added.insert(key);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        added
    });
    let report = f.import(&p, true).await.unwrap();
    let added = adder.await.unwrap();
    let repeat: Vec<&RowError> = report
        .rejected
        .iter()
        .filter(|e| e.repeats.is_some())
        .collect();
    assert_eq!(
        shown(&repeat.into_iter().cloned().collect::<Vec<_>>()),
        ["line 15002, column 'key': 'K-3' repeats line 5"]
    );
    let taken: HashSet<String> = report
        .rejected
        .iter()
        .filter(|e| e.repeats.is_none())
        .map(|e| e.message.split('\'').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        taken, added,
        "the import refused exactly the keys the other call stored"
    );
    assert_eq!(
        report.imported as usize + added.len(),
        N as usize - 1,
        "every other row landed: {} imported, {} added",
        report.imported,
        added.len()
    );
    let counts = f.store.queue("q").await.unwrap().counts;
    assert_eq!(counts.queued, N as u64 - 1, "one item per key, none twice");
}

/// Every test above, on the embedded store and on PostgreSQL: `sqlite::NAME`, `postgres::NAME`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::fixture().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = super::pg_fixture().await else { return };
                    super::$name(f).await
                }
            )*
        }
    };
}

on_both!(
    keys_added_while_a_big_import_runs_are_stored_once,
    csv_with_a_value_column_maps_the_reserved_columns,
    csv_without_a_value_column_keeps_names_order_and_text,
    columns_named_like_ours_in_another_case_are_business_data,
    bad_rows_are_reported_by_line_and_column_and_nothing_lands,
    errors_name_the_physical_line_for_every_line_ending,
    an_unclosed_quote_is_refused_where_it_opens_and_nothing_is_swallowed,
    a_key_repeated_in_the_file_names_its_first_line,
    key_and_name_columns_make_a_daily_file_importable_twice,
    key_and_name_columns_that_do_not_fit_are_refused_before_anything,
    a_dry_run_checks_everything_and_writes_nothing,
    oversize_values_and_bad_utf8_are_row_errors,
    header_problems_stop_the_import_before_it_starts,
    json_lines,
    json_lines_refuse_settings_they_would_drop,
    json_lines_with_a_key_column,
    a_big_file_streams_in_batches,
    a_key_or_name_column_needs_text_on_every_row,
    rejects_keep_each_rows_bytes_and_its_own_line_end,
    a_semicolon_file_is_read_with_its_delimiter_and_hinted_without,
    workers_go_on_while_a_slow_import_waits_for_its_rows,
    rows_go_in_by_the_chunk_and_each_refused_one_is_named,
);
