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
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
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
        matches!(&answer, Msg::QueueSaved(Err(Error::Busy(_)))),
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
