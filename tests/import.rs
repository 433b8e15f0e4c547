//! Import from real CSV and JSON Lines files into a real store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use workq::backend::Backend;
use workq::import::{self, Format};
use workq::model::*;

struct Fixture {
    dir: tempfile::TempDir,
    store: workq::SqliteStore,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = workq::SqliteStore::open(dir.path().join("w.db"), workq::clock::system()).unwrap();
    store.create_queue("q", Default::default()).await.unwrap();
    Fixture { dir, store }
}

impl Fixture {
    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    async fn import(&self, path: &Path, skip_bad: bool) -> Result<ImportReport, String> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let p = path.to_path_buf();
        let parser = tokio::task::spawn_blocking(move || {
            import::parse(&p, Format::from_path(&p), tx, &|_| {})
        });
        let stored = self
            .store
            .import("q", ImportOptions { skip_bad }, rx, "user:t")
            .await;
        parser.await.unwrap()?;
        stored.map_err(|e| e.to_string())
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
}

#[tokio::test]
async fn csv_with_a_value_column_maps_headers() {
    let f = fixture().await;
    let csv = "\u{feff}Name,Value,Priority,Key,expires_in,Notes,Status\n\
               Invoice 1,\"Fabrikam, Inc.\",high,INV-1,1h,\"first line\nsecond line\",\n\
               \n\
               Rechnung 2,Müller GmbH ✓,low,INV-2,,,on-hold\n";
    let p = f.file("in.csv", csv.as_bytes());
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

#[tokio::test]
async fn csv_without_a_value_column_makes_json_values() {
    let f = fixture().await;
    let csv = "InvoiceId,AccountName,Amount,PostCode,key\nI-1006,Fabrikam,1253.78,00123,I-1006\nI-1007,Contoso,,4711,I-1007\n";
    let p = f.file("invoices.csv", csv.as_bytes());
    f.import(&p, false).await.unwrap();
    let items = f.all().await;
    let v: serde_json::Value = serde_json::from_str(&items[0].value).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"InvoiceId": "I-1006", "AccountName": "Fabrikam", "Amount": 1253.78,
                           "PostCode": "00123", "key": "I-1006"})
        .as_object()
        .map(|o| o
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect::<serde_json::Map<_, _>>())
        .map(serde_json::Value::Object)
        .unwrap()
    );
    assert_eq!(
        items[0].key.as_deref(),
        Some("I-1006"),
        "known columns still apply"
    );
    let v: serde_json::Value = serde_json::from_str(&items[1].value).unwrap();
    assert_eq!(
        v["amount"],
        serde_json::Value::Null,
        "an empty cell is null"
    );
    assert_eq!(v["postcode"], serde_json::json!(4711));
}

#[tokio::test]
async fn bad_rows_are_reported_by_line_and_column_and_nothing_lands() {
    let f = fixture().await;
    let csv = "name,value,priority,expires_at,key\n\
               ok,v1,normal,,K1\n\
               bad-priority,v2,urgent,,K2\n\
               bad-date,v3,low,32/13/2026,K3\n\
               dup,v4,,,K1\n\
               short,v5\n\
               ok2,v6,,,K6\n";
    let p = f.file("bad.csv", csv.as_bytes());
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
        e.contains("line 5, column 'key': duplicate key 'K1'"),
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
        import::write_rejects(&p, Format::Csv, &set, &dest).unwrap(),
        4
    );
    let text = std::fs::read_to_string(&dest).unwrap();
    assert_eq!(
        text,
        "name,value,priority,expires_at,key\nbad-priority,v2,urgent,,K2\nbad-date,v3,low,32/13/2026,K3\ndup,v4,,,K1\nshort,v5\n"
    );
}

#[tokio::test]
async fn oversize_values_and_bad_utf8_are_row_errors() {
    let f = fixture().await;
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

#[tokio::test]
async fn header_problems_stop_the_import_before_it_starts() {
    let f = fixture().await;
    for (content, want) in [
        (
            "value,prority\nx,high\n",
            "line 1, column 'prority': unknown column",
        ),
        (
            "value,name,name\nx,a,b\n",
            "line 1, column 'name': the column appears twice",
        ),
        ("", "no header row"),
    ] {
        let p = f.file("h.csv", content.as_bytes());
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

#[tokio::test]
async fn json_lines() {
    let f = fixture().await;
    let jsonl = concat!(
        "{\"value\": {\"InvoiceId\": \"I-1\", \"Amount\": 10}, \"priority\": \"high\", \"key\": \"I-1\"}\n",
        "\n",
        "{\"InvoiceId\": \"I-2\", \"Amount\": 20.5}\n",
        "{\"value\": \"plain text\", \"status\": \"on-hold\", \"expires_in\": \"2h\"}\n",
        "{\"value\": \"x\", \"priority\": \"asap\"}\n",
        "{\"value\": tru\n",
        "[1, 2]\n",
    );
    let p = f.file("in.jsonl", jsonl.as_bytes());
    let r = f.import(&p, true).await.unwrap();
    assert_eq!(r.imported, 3);
    let errs: Vec<String> = r.rejected.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with("line 5, column 'priority': unknown priority 'asap'"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("line 6, column 'char ") && errs[1].contains("bad JSON"),
        "{errs:?}"
    );
    assert_eq!(errs[2], "line 7: expected a JSON object");
    let items = f.all().await;
    assert_eq!(items[0].value, r#"{"Amount":10,"InvoiceId":"I-1"}"#);
    assert_eq!(items[0].priority, Priority::High);
    let v: serde_json::Value = serde_json::from_str(&items[1].value).unwrap();
    assert_eq!(v["InvoiceId"], "I-2", "a line without value is the value");
    assert_eq!(
        (items[2].value.as_str(), items[2].status),
        ("plain text", Status::OnHold)
    );
}

#[tokio::test]
async fn a_big_file_streams_in_batches() {
    let f = fixture().await;
    let mut csv = String::from("name,value,key\n");
    let n = import::BATCH * 3 + 17;
    for i in 0..n {
        csv.push_str(&format!("n{i},value {i},K{i}\n"));
    }
    let p = f.file("many.csv", csv.as_bytes());
    let r = f.import(&p, false).await.unwrap();
    assert_eq!(r.imported as usize, n);
    assert_eq!(f.store.queue("q").await.unwrap().counts.queued as usize, n);
}
