//! A database file that cannot be used gets an error that says why, and nothing changes.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workq::backend::{Backend, Error};
use workq::clock;
use workq::SqliteStore;

fn open(path: &std::path::Path) -> Result<SqliteStore, Error> {
    SqliteStore::open(path, clock::system())
}

#[tokio::test]
async fn a_new_file_is_created_with_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/w.db");
    let s = open(&path).unwrap();
    s.create_queue("q", Default::default()).await.unwrap();
    drop(s);
    let s = open(&path).unwrap();
    assert_eq!(s.queues().await.unwrap().len(), 1, "reopened with its data");
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE customers (id INTEGER); INSERT INTO customers VALUES (1);")
        .unwrap();
    drop(c);
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("not a workq one"), "{e}");
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the foreign file was left alone");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are my notes, not a database, and long enough to matter\n".repeat(50),
    )
    .unwrap();
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("not a workq database"), "{e}");
    assert!(e.to_string().contains("notes.txt"), "names the file: {e}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = open(&path).err().unwrap();
    assert!(e.to_string().contains("schema version 99, newer"), "{e}");
    assert!(e.to_string().contains("upgrade workq"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let s: Arc<dyn Backend> = Arc::new(open(&path).unwrap());
    s.create_queue("q", Default::default()).await.unwrap();
    // Another process holds the write lock past our patience.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let e = s.create_queue("r", Default::default()).await.unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e:?}");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "it waited before giving up"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    let names: Vec<String> = s
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue.name)
        .collect();
    assert_eq!(names, ["q"]);
    // Once the lock is gone, writes work again.
    s.create_queue("r", Default::default()).await.unwrap();
}

#[test]
fn a_read_only_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(open(&path).unwrap());
    // Root ignores permission bits, so make the file immutable instead where we can.
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !immutable {
        let mut p = std::fs::metadata(&path).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&path, p).unwrap();
    }
    let r = open(&path);
    if immutable {
        Command::new("chattr")
            .arg("-i")
            .arg(&path)
            .status()
            .unwrap();
    }
    let e = r.err().expect("a read-only file is refused for writing");
    assert!(e.to_string().contains("read-only"), "{e}");
}

/// A store opened for reading refuses every change with one clear error, and the file
/// stays as it was; what it reads is what the file holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_for_reading_refuses_every_change() {
    use workq::model::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let s = open(&path).unwrap();
    s.create_queue("q", Default::default()).await.unwrap();
    let added = s
        .add_items(
            "q",
            vec![NewItem {
                value: "v".into(),
                ..Default::default()
            }],
            "bot",
        )
        .await
        .unwrap();
    drop(s);
    let r = SqliteStore::open_read_only(&path, clock::system()).unwrap();
    assert!(r.is_read_only());
    assert_eq!(r.queue("q").await.unwrap().counts.queued, 1);
    assert_eq!(r.item(&added[0].id).await.unwrap().item.value, "v");
    let refused = |e: Error| {
        let Error::Storage {
            cause, path: named, ..
        } = &e
        else {
            panic!("not a storage error: {e:?}")
        };
        assert_eq!(*cause, workq::backend::StorageCause::ReadOnly, "{e:?}");
        assert_eq!(named.as_deref(), Some(&*path.display().to_string()));
        let m = e.to_string();
        assert!(
            m.contains(&format!(
                "database {} is open for reading only",
                path.display()
            )) && m.contains("nothing was changed"),
            "{m}"
        );
    };
    refused(r.create_queue("r", Default::default()).await.unwrap_err());
    refused(
        r.set_queue_state("q", QueueState::Paused)
            .await
            .unwrap_err(),
    );
    refused(r.add_items("q", vec![], "bot").await.unwrap_err());
    refused(
        r.dequeue(DequeueRequest {
            queues: vec!["q".into()],
            worker: "w".into(),
            count: 1,
            wait: Duration::ZERO,
        })
        .await
        .unwrap_err(),
    );
    refused(
        r.act(ActionRequest {
            target: Target::Ids(vec![added[0].id.clone()]),
            action: ActionKind::Hold,
            note: None,
            actor: "user:t".into(),
            skip_refused: false,
        })
        .await
        .unwrap_err(),
    );
    refused(r.sweep().await.unwrap_err());
    let s = open(&path).unwrap();
    let q = s.queue("q").await.unwrap();
    assert_eq!((q.queue.state, q.counts.queued), (QueueState::Active, 1));
    assert_eq!(s.queues().await.unwrap().len(), 1);
}

/// Expired and delayed items leave the index a dequeue walks, so a queue full of them
/// costs a dequeue nothing; they come back the moment they may be taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dormant_items_stay_out_of_the_dequeues_way() {
    use chrono::TimeZone;
    use workq::model::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let clock =
        workq::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap());
    let s = SqliteStore::open(&path, Arc::new(clock.clone())).unwrap();
    s.create_queue("q", Default::default()).await.unwrap();
    let short: Vec<NewItem> = (0..500)
        .map(|i| NewItem {
            value: format!("short {i}"),
            expires_in: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .collect();
    s.add_items("q", short, "t").await.unwrap();
    let later = NewItem {
        value: "later".into(),
        delay_until: Some(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 5, 0).unwrap()),
        ..Default::default()
    };
    s.add_items("q", vec![later], "t").await.unwrap();
    clock.advance(Duration::from_secs(61));
    s.sweep().await.unwrap();
    s.add_items(
        "q",
        vec![NewItem {
            value: "fresh".into(),
            ..Default::default()
        }],
        "t",
    )
    .await
    .unwrap();
    let ready = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT count(*) FROM items INDEXED BY items_ready WHERE queue_id = 1 AND status = 'queued' AND dormant = 0",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let raw = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(
        ready(&raw),
        1,
        "only the fresh item is in the way of a dequeue"
    );
    let got = take(&s, 10).await;
    assert_eq!(
        got.iter()
            .map(|l| l.item.value.as_str())
            .collect::<Vec<_>>(),
        ["fresh"]
    );
    // The delayed item wakes when its time comes, not a moment before.
    clock.advance(Duration::from_secs(3 * 60 + 58));
    assert!(take(&s, 10).await.is_empty());
    clock.advance(Duration::from_secs(1));
    let got = take(&s, 10).await;
    assert_eq!(
        got.iter()
            .map(|l| l.item.value.as_str())
            .collect::<Vec<_>>(),
        ["later"]
    );
    // An expired item given a new expiry is takeable again.
    let expired = s
        .items(
            Filter {
                expired: Some(true),
                ..Default::default()
            },
            PageRequest {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .remove(0);
    s.act(ActionRequest {
        target: Target::Ids(vec![expired.id.clone()]),
        action: ActionKind::ExtendExpiry { expires_at: None },
        note: None,
        actor: "user:t".into(),
        skip_refused: false,
    })
    .await
    .unwrap();
    assert_eq!(take(&s, 10).await[0].item.id, expired.id);
    assert_eq!(s.queue("q").await.unwrap().expired, 499);
}

async fn take(s: &SqliteStore, count: u32) -> Vec<workq::model::Lease> {
    let req = workq::model::DequeueRequest {
        queues: vec!["q".into()],
        worker: "w".into(),
        count,
        wait: Duration::ZERO,
    };
    s.dequeue(req).await.unwrap().leases
}

/// The console's pause against a file another process holds locked: the engine's refusal
/// reaches the screen as a popup that typed-ahead keys do not close, and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_pause_on_a_locked_file_is_reported() {
    use workq::tui::effects::perform;
    use workq::tui::state::{Popup, State};
    use workq::tui::update::{update, Effect, Msg};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let s: Arc<dyn Backend> = Arc::new(open(&path).unwrap());
    s.create_queue("q", Default::default()).await.unwrap();
    let mut state = State::new(chrono::Utc::now(), "w.db", "user:t");
    state.queues.list = s.queues().await.unwrap();
    state.queues.loaded = true;
    state.queues.selected = Some("q".into());
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let key = |c: char| {
        Msg::Key(ratatui::crossterm::event::KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Char(c),
            ratatui::crossterm::event::KeyModifiers::SHIFT,
        ))
    };
    let fx = update(&mut state, key('P'));
    let [Effect::SetQueueState(..)] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    let answer = perform(&*s, fx.into_iter().next().unwrap()).await.unwrap();
    assert!(
        matches!(&answer, Msg::QueueSaved(Err(Error::Busy { .. }))),
        "{answer:?}"
    );
    update(&mut state, answer);
    let Some(Popup::Error { message, .. }) = &state.popup else {
        panic!("{:?}", state.popup)
    };
    assert!(message.contains("locked by another process"), "{message}");
    assert!(state
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("queue not changed"));
    update(&mut state, key('P'));
    assert!(
        matches!(state.popup, Some(Popup::Error { .. })),
        "still shown"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        s.queue("q").await.unwrap().queue.state,
        workq::model::QueueState::Active
    );
}

/// A database at schema 1, the last release, as workq then wrote it through its CLI
/// (`fixtures/schema1.sql`): the first open takes it through migration 2 (expired items in
/// queue health), 3 (the action log), 4 (the name index of sorted pages), 5 (retry
/// backoff) and 6 (deleted items by id) to the schema a new file gets, and everything in it
/// reads, counts and undoes as it did.
#[tokio::test]
async fn a_schema_1_database_migrates_through_2_to_6_and_keeps_everything() {
    use workq::model::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let version = |p: &std::path::Path| -> i32 {
        let c = rusqlite::Connection::open(p).unwrap();
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(include_str!("fixtures/schema1.sql"))
        .unwrap();
    drop(c);
    assert_eq!(version(&path), 1);
    // Half an hour after the file was written: past the expiry of 'Fabrikam', inside the
    // queue's 1h SLA (and its 48m at-risk mark) for the rest.
    let written = clock::from_ms(1_796_142_176_904);
    let at = clock::ManualClock::new(written + chrono::Duration::minutes(30));
    let s = SqliteStore::open(&path, Arc::new(at.clone())).unwrap();
    assert_eq!(version(&path), workq::store::sqlite::schema_version());
    // The schema is the one a new file gets, index for index.
    let fresh = dir.path().join("new.db");
    drop(open(&fresh).unwrap());
    let schema = |p: &std::path::Path| -> Vec<(String, String, Option<String>)> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut st = c
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(schema(&path), schema(&fresh));
    assert_eq!(version(&fresh), workq::store::sqlite::schema_version());

    // The items, byte for byte, and the queue's health from the new index.
    let q = s.queue("invoices").await.unwrap();
    assert_eq!(
        (q.counts.queued, q.counts.processed, q.counts.on_hold),
        (3, 1, 1)
    );
    assert_eq!((q.expired, q.out_of_sla, q.at_risk), (1, 1, 0), "{q:?}");
    assert_eq!(
        q.queue.retry_backoff, None,
        "retries of an old queue wait as before"
    );
    let all = s
        .items(Filter::default(), PageRequest::default())
        .await
        .unwrap()
        .items;
    let by_key = |k: &str| all.iter().find(|i| i.key.as_deref() == Some(k)).unwrap();
    let fabrikam = by_key("I-1");
    assert_eq!(fabrikam.value, r#"{"InvoiceId":"I-1","Amount":"4999.00"}"#);
    assert_eq!(fabrikam.name.as_deref(), Some("Fabrikam"));
    assert!(fabrikam.expired);
    assert_eq!(
        by_key("I-3").value,
        r#"{"InvoiceId":"I-3","Amount":"-0.50"}"#
    );
    assert!(
        all.iter().all(|i| i.key.as_deref() != Some("I-4")),
        "deleted"
    );
    // A delete from before the upgrade shows as one: migration 6 indexed its record.
    let gone: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT json_extract(before, '$.id') FROM action_items WHERE version_after IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let d = s.item(&gone).await.unwrap();
    assert_eq!(d.item.key.as_deref(), Some("I-4"));
    assert_eq!(d.deleted.map(|d| d.action_id), Some(3));
    // A change recorded before the upgrade reads as one written now: old → new.
    let h = s.item(&by_key("I-3").id).await.unwrap().history;
    let priority = h.iter().find(|e| e.action == "priority").unwrap();
    let said: Vec<String> = priority.changes.iter().map(|c| c.summary()).collect();
    assert_eq!(said, ["priority: normal → high"]);
    assert_eq!(priority.note, None, "{priority:?}");
    // Sorted by name: a page walks the index migration 4 made instead of sorting the queue.
    let plan: Vec<String> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare(
            "EXPLAIN QUERY PLAN SELECT i.id FROM items i WHERE i.queue_id = 1
             ORDER BY i.name DESC, i.seq DESC LIMIT 10",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().any(|p| p.contains("items_name"))
            && !plan.iter().any(|p| p.contains("TEMP B-TREE")),
        "{plan:?}"
    );
    let names: Vec<Option<String>> = s
        .items(
            Filter {
                queue: Some("invoices".into()),
                ..Default::default()
            },
            PageRequest {
                sort: SortBy::Name,
                descending: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names.first(),
        Some(&Some("Fabrikam".to_string())),
        "{names:?}"
    );

    // The action log: the old actions, with the queues each touched filled in.
    let log = s
        .actions(ActionQuery {
            queue: None,
            limit: 10,
        })
        .await
        .unwrap();
    let ids: Vec<i64> = log.iter().map(|a| a.id).collect();
    assert_eq!(ids, [5, 4, 3, 2, 1]);
    let verbs: Vec<&str> = log.iter().map(|a| a.verb.as_str()).collect();
    assert_eq!(verbs, ["note", "requeue", "delete", "priority", "hold"]);
    assert!(log.iter().all(|a| a.by == "user:ana" && a.kind.is_none()));
    assert_eq!(log[0].queues, ["other"]);
    assert!(log[1..].iter().all(|a| a.queues == ["invoices"]));
    assert_eq!(log[4].note.as_deref(), Some("check vendor"));
    assert!(log[3].undone_at.is_some(), "undone before the upgrade");
    assert!(log[..3]
        .iter()
        .chain(&log[4..])
        .all(|a| a.undone_at.is_none()));
    let other = s
        .actions(ActionQuery {
            queue: Some("other".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(other.iter().map(|a| a.id).collect::<Vec<_>>(), [5]);

    // Old actions undo: the hold, the delete, the bulk requeue of the exception.
    for id in [1, 3, 4] {
        let r = s.undo(UndoRequest::new(id, "user:t")).await.unwrap();
        assert_eq!((r.restored, r.total), (1, 1), "action {id}: {r:?}");
    }
    assert!(s.undo(UndoRequest::new(2, "user:t")).await.is_err());
    let all = s
        .items(Filter::default(), PageRequest::default())
        .await
        .unwrap()
        .items;
    let status = |k: &str| {
        all.iter()
            .find(|i| i.key.as_deref() == Some(k))
            .map(|i| i.status)
    };
    assert_eq!(status("I-2"), Some(Status::Queued), "released from hold");
    assert_eq!(status("I-4"), Some(Status::Queued), "back from deletion");
    assert_eq!(status("I-9"), Some(Status::Exception), "the requeue undone");
    let log = s
        .actions(ActionQuery {
            queue: Some("invoices".into()),
            limit: 10,
        })
        .await
        .unwrap();
    let hold = log.iter().find(|a| a.id == 1).unwrap();
    assert_eq!(
        (hold.undone_by.as_deref(), hold.restored),
        (Some("user:t"), Some(1))
    );
    // A new action is logged with what it was.
    let c = by_key("I-3").id.clone();
    s.act(ActionRequest {
        target: Target::Ids(vec![c]),
        action: ActionKind::AddNote,
        note: Some("after the upgrade".into()),
        actor: "user:t".into(),
        skip_refused: false,
    })
    .await
    .unwrap();
    let newest = s
        .actions(ActionQuery {
            queue: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(newest[0].kind, Some(ActionKind::AddNote));
    assert_eq!(newest[0].queues, ["invoices"]);
    drop(s);
    // Opened again, nothing is left to migrate.
    let s = SqliteStore::open(&path, Arc::new(at)).unwrap();
    assert_eq!(s.queue("invoices").await.unwrap().counts.queued, 4);
    assert_eq!(version(&path), workq::store::sqlite::schema_version());
}
