//! What the console shows of text it does not control: user data with terminal controls in
//! it, times (zone named, future told from past), and SLA counts from a real store.

use super::fixtures::{self, state};
use crate::clock::ManualClock;
use crate::model::*;
use crate::text::Zone;
use crate::tui::state::*;
use crate::tui::views;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use std::sync::Arc;
use std::time::Duration;

/// Every kind of terminal control a value can smuggle in: CSI (clear screen), OSC (set the
/// window title, ended by BEL), backspace, carriage return, a C1 CSI, a bidi override.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwned\x07ok\x08\x08\rX\u{9b}31m\u{202e}gnp.exe";
/// How it must read on screen (and in the CLI): every control visible, nothing obeyed.
const SHOWN: &str = "\\x1b[2J\\x1b]0;pwned\\x07ok\\x08\\x08\\rX\\x9b31m\\u{202e}gnp.exe";

fn render(s: &State) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| views::draw(f, s)).unwrap();
    t
}

fn screen(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect()
        })
        .collect()
}

/// No cell holds a control character, C1 control or bidi override; returns the screen.
fn assert_inert(t: &Terminal<TestBackend>, what: &str) -> String {
    let buf = t.backend().buffer();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let sym = buf[(x, y)].symbol();
            assert!(
                !sym.chars().any(|c| c.is_control()
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)),
                "{what}: cell ({x},{y}) holds {sym:?}"
            );
        }
    }
    screen(buf).join("\n")
}

fn hostile_item() -> Item {
    let mut i = fixtures::item(2);
    i.name = Some(format!("N {HOSTILE}"));
    i.key = Some(format!("K {HOSTILE}"));
    i.value = format!("V {HOSTILE}\nline two {HOSTILE}");
    i.worker = Some(format!("W {HOSTILE}"));
    i.notes = vec![Note {
        at: fixtures::now(),
        by: format!("B {HOSTILE}"),
        text: format!("T {HOSTILE}"),
    }];
    i
}

#[test]
fn user_text_cannot_drive_the_terminal() {
    // Wide enough that no escaped text wraps (wrapping is not what is tested here).
    let mut s = state(400, 48);
    let item = hostile_item();

    // Queues: the description, and a group signature beside it.
    s.queues.list[0].queue.description = format!("D {HOSTILE}");
    s.inbox.groups = vec![ExceptionGroup {
        queue: s.queues.list[0].queue.name.clone(),
        reason: Some(Reason::Business),
        signature: format!("S {HOSTILE}"),
        count: 3,
        example: Some(format!("E {HOSTILE}")),
        oldest: fixtures::now(),
        newest: fixtures::now(),
    }];
    s.inbox.loaded = true;
    s.view = View::Queues;
    let shown = assert_inert(&render(&s), "queues");
    for tag in ["D ", "S "] {
        assert!(
            shown.contains(&format!("{tag}{SHOWN}")),
            "queues: {tag}\n{shown}"
        );
    }

    // Items: the name and the latest note.
    s.items.rows = vec![item.clone()];
    s.items.offset = 0;
    s.items.total = 1;
    s.items.loaded = true;
    s.view = View::Items;
    let shown = assert_inert(&render(&s), "items");
    // The name column is narrow: cut, but visibly escaped as far as it goes.
    assert!(
        shown.contains(&format!("N {}", &SHOWN[..16])),
        "items: name\n{shown}"
    );
    assert!(
        shown.contains(&format!("T {SHOWN}")),
        "items: note\n{shown}"
    );

    // Detail: every field, the value's lines, notes, history.
    s.detail.data = Some(ItemDetail {
        item: item.clone(),
        history: vec![HistoryEntry {
            at: fixtures::now(),
            by: format!("H {HOSTILE}"),
            action: "note".into(),
            from: None,
            to: None,
            reason: None,
            note: Some(format!("HN {HOSTILE}\nHL {HOSTILE}")),
            action_id: None,
            // A recorded change: one short (one line) and a value (its lines that differ).
            changes: vec![
                FieldChange {
                    field: "name".into(),
                    old: serde_json::json!(format!("CO {HOSTILE}")),
                    new: serde_json::json!("x"),
                },
                FieldChange {
                    field: "value".into(),
                    old: serde_json::json!(format!("same\nVO {HOSTILE}")),
                    new: serde_json::json!(format!("same\nVN {HOSTILE}")),
                },
            ],
        }],
        deleted: None,
    });
    s.view = View::Detail;
    let shown = assert_inert(&render(&s), "detail");
    for tag in [
        "N ",
        "K ",
        "V ",
        "line two ",
        "W ",
        "B ",
        "T ",
        "H ",
        "HN ",
        "HL ",
        "CO ",
        "− VO ",
        "+ VN ",
    ] {
        assert!(
            shown.contains(&format!("{tag}{SHOWN}")),
            "detail: {tag}\n{shown}"
        );
    }

    // Exceptions inbox and workers.
    s.view = View::Exceptions;
    let shown = assert_inert(&render(&s), "exceptions");
    assert!(shown.contains(&format!("S {SHOWN}")), "inbox:\n{shown}");
    s.workers.list = vec![WorkerInfo {
        name: format!("W {HOSTILE}"),
        last_seen: fixtures::now(),
        holding: 1,
        holding_ids: vec![item.id.clone()],
        processed: 0,
        failed: 0,
        queues: vec![QueueSeen {
            queue: format!("Q {HOSTILE}"),
            last_seen: fixtures::now(),
        }],
        state: WorkerState::Draining,
        agent: Some(AgentInfo {
            host: format!("H {HOSTILE}"),
            pid: 1,
            version: format!("V {HOSTILE}"),
            queues: vec![format!("Q {HOSTILE}")],
            concurrency: 2,
            state: WorkerState::Draining,
            per_minute: 3,
            started_at: fixtures::now(),
        }),
    }];
    s.workers.loaded = true;
    s.view = View::Workers;
    let shown = assert_inert(&render(&s), "workers");
    assert!(shown.contains(&format!("W {SHOWN}")), "workers:\n{shown}");
    // The host column is narrower than the name: its escaped start is shown.
    assert!(
        shown.contains(&format!("H {}", &SHOWN[..20])),
        "workers:\n{shown}"
    );

    // The action log: who acted, the note, who undid it.
    s.actions.list = vec![ActionInfo {
        id: 7,
        at: fixtures::now(),
        by: format!("U {HOSTILE}"),
        verb: "hold".into(),
        kind: Some(ActionKind::Hold),
        note: Some(format!("A {HOSTILE}")),
        touched: 2,
        queues: vec![s.queues.list[0].queue.name.clone()],
        undone_at: Some(fixtures::now()),
        undone_by: Some(format!("Z {HOSTILE}")),
        restored: Some(1),
    }];
    s.actions.loaded = true;
    s.view = View::Actions;
    let shown = assert_inert(&render(&s), "actions");
    // WHO and NOTE are narrow columns: cut, but visibly escaped as far as they go.
    assert!(
        shown.contains(&format!("U {}", &SHOWN[..12])),
        "actions:\n{shown}"
    );
    assert!(
        shown.contains(&format!("A {}", &SHOWN[..30])),
        "actions:\n{shown}"
    );
    assert!(
        shown.contains(&format!("by Z {SHOWN}")),
        "actions:\n{shown}"
    );

    // Confirmations: what the target is, a sample item's name, why items are kept.
    s.popup = Some(Popup::Confirm(Box::new(Confirm {
        action: ActionKind::Hold,
        target: Target::Ids(vec![item.id.clone()]),
        what: format!("C {HOSTILE}"),
        preview: Some(Preview {
            count: 1,
            changes: 1,
            skipped: vec![],
            warnings: vec![],
            sample: vec![item.clone()],
        }),
        misfit: vec![],
        note: Input::default(),
        typed: Input::default(),
        focus: Field::Note,
        seq: 1,
        dangerous: false,
    })));
    let shown = assert_inert(&render(&s), "confirm");
    for tag in ["C ", "N "] {
        assert!(
            shown.contains(&format!("{tag}{}", &SHOWN[..12])),
            "confirm: {tag}\n{shown}"
        );
    }
    s.popup = Some(Popup::Undo(Box::new(UndoConfirm {
        action_id: 7,
        what: format!("W {HOSTILE}"),
        preview: Some(UndoResult {
            action_id: 7,
            verb: "delete".into(),
            total: 2,
            restored: 1,
            changed: vec![],
            kept: vec![Tally {
                count: 1,
                why: format!("its key 'K {HOSTILE}' is taken"),
            }],
            kept_items: vec![],
            dry_run: true,
        }),
        typed: Input::default(),
        seq: 1,
    })));
    let shown = assert_inert(&render(&s), "undo");
    for tag in ["W ", "K "] {
        assert!(
            shown.contains(&format!("{tag}{SHOWN}")),
            "undo: {tag}\n{shown}"
        );
    }

    // An error that quotes what was typed.
    s.popup = Some(Popup::Error {
        title: "error".into(),
        message: format!("unknown queue '{HOSTILE}'"),
    });
    let shown = assert_inert(&render(&s), "error popup");
    assert!(shown.contains(SHOWN), "error popup:\n{shown}");
}

#[test]
fn future_times_read_as_future_and_every_time_names_its_zone() {
    let mut s = state(160, 48);
    let mut item = fixtures::item(4);
    item.expires_at = Some(fixtures::now() + chrono::Duration::hours(2));
    item.delay_until = Some(fixtures::now() + chrono::Duration::minutes(30));
    s.detail.data = Some(ItemDetail {
        item,
        history: vec![],
        deleted: None,
    });
    s.view = View::Detail;
    let shown = screen(render(&s).backend().buffer()).join("\n");
    assert!(shown.contains("2026-11-22 16:00:00 UTC (in 2h)"), "{shown}");
    assert!(
        shown.contains("2026-11-22 14:30:00 UTC (in 30m)"),
        "{shown}"
    );
    assert!(!shown.contains("0s ago"), "{shown}");
    assert!(
        shown.contains("2026-11-22 12:24:00 UTC (1h 36m ago)"),
        "enqueued: {shown}"
    );
    // The machine's zone is what the console shows, by name.
    s.zone = Zone::named("Europe/Berlin");
    let shown = screen(render(&s).backend().buffer()).join("\n");
    assert!(shown.contains("2026-11-22 17:00:00 CET (in 2h)"), "{shown}");
}

/// A real store on a manual clock: what the queues and items views show of expired items.
#[test]
fn expired_items_count_as_out_of_sla_in_the_console() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(fixtures::now());
    use crate::connect::{connect_on, Open, Target};
    let target = Target::db(dir.path().join("c.db"));
    let store = connect_on(&target, Open::Create, Arc::new(clock.clone()))
        .unwrap()
        .backend;
    let (queues, page) = rt.block_on(async {
        let settings = QueueSettings {
            sla: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        store.create_queue("q", settings).await.unwrap();
        let item = |value: &str, expires_at| NewItem {
            value: value.into(),
            name: Some(value.into()),
            expires_at,
            ..Default::default()
        };
        let soon = fixtures::now() + chrono::Duration::minutes(1);
        store
            .add_items(
                "q",
                vec![item("lapses", Some(soon)), item("fresh", None)],
                "bot",
            )
            .await
            .unwrap();
        // Two minutes on: one is expired, neither is anywhere near the 1h target by age.
        clock.advance(Duration::from_secs(120));
        let queues = store.queues().await.unwrap();
        let page = store
            .items(Filter::default(), PageRequest::default())
            .await
            .unwrap();
        (queues, page)
    });
    assert_eq!(queues[0].expired, 1);
    assert_eq!(queues[0].out_of_sla, 1, "the expired item is out of SLA");
    let mut s = state(160, 48);
    s.now = fixtures::now() + chrono::Duration::minutes(2);
    s.queues.list = queues;
    s.queues.selected = Some("q".into());
    s.view = View::Queues;
    let shown = screen(render(&s).backend().buffer());
    let row = shown
        .iter()
        .find(|l| l.contains("│  q "))
        .expect("queue row");
    // QUEUE QUEUED FLIGHT EXCEPT HOLD DONE EXPIRED RISK OUT …
    let cells: Vec<&str> = row.trim_matches('│').split_whitespace().collect();
    assert_eq!(
        &cells[..9],
        ["q", "2", "0", "0", "0", "0", "1", "0", "1"],
        "{row}"
    );
    assert!(
        shown.iter().any(|l| l.contains("1 out of SLA · 1 expired")),
        "{shown:?}"
    );
    s.items.rows = page.items;
    s.items.total = 2;
    s.items.loaded = true;
    s.view = View::Items;
    let shown = screen(render(&s).backend().buffer());
    let lapsed = shown.iter().find(|l| l.contains("lapses")).unwrap();
    assert!(lapsed.contains(" out "), "{lapsed}");
    let fresh = shown.iter().find(|l| l.contains("fresh")).unwrap();
    assert!(fresh.contains(" in "), "{fresh}");
}

#[test]
fn a_missed_deadline_says_so_in_the_queues_view() {
    let mut s = state(160, 48);
    // 14:40 in Berlin is 13:40 UTC; the fixtures' clock says 14:00 UTC = 15:00 Berlin.
    let facts = crate::rules::DeadlineFacts {
        deadline: "14:20",
        tz: "Europe/Berlin",
        backlog: 1240,
        oldest_queued: Some(fixtures::now() - chrono::Duration::hours(3)),
        per_min: 20.0,
        paused: false,
        live_leases: 4,
        last_finished: None,
    };
    s.queues.list[0].projection =
        Some(crate::rules::deadline_status(&facts, fixtures::now()).unwrap());
    s.queues.list[0].queue.deadline = Some("14:20".into());
    let shown = screen(render(&s).backend().buffer()).join("\n");
    assert!(
        shown.contains("missed 14:20 CET by 40m, 1,240 left"),
        "{shown}"
    );
    assert!(
        !shown.contains("drains"),
        "no drain time for tomorrow: {shown}"
    );
}

/// The console reads durations with the CLI's parser: the same words, the same refusals.
#[test]
fn the_console_reads_durations_as_the_cli_does() {
    use crate::tui::update::{parse_settings, Msg};
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let st = parse_settings("ttl=1h30m sla=2d4h30m").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.ttl, Some(Duration::from_secs(5400)));
    assert_eq!(
        st.sla,
        Some(Duration::from_secs(2 * 86_400 + 4 * 3600 + 1800))
    );
    // The settings line shows them exactly, so saving it untouched changes nothing.
    let mut q = fixtures::queue("q");
    q.ttl = Some(Duration::from_millis(
        2 * 86_400_000 + 4 * 3_600_000 + 1_800_000 + 1500,
    ));
    q.lease = Duration::from_secs(90);
    let line = crate::tui::update::settings_line(&q);
    assert!(
        line.contains("ttl=2d4h30m1s500ms") && line.contains("lease=1m30s"),
        "{line}"
    );
    let back = parse_settings(&line).unwrap();
    assert_eq!(
        (back.ttl, back.lease, back.sla),
        (q.ttl, Some(q.lease), q.sla)
    );
    let e = parse_settings("ttl=5M").unwrap_err();
    assert!(e.contains("ttl") && e.contains("did you mean 5m?"), "{e}");
    // Requeue after a delay, typed in its prompt: 5M is refused there too, and the prompt
    // stays open with the error instead of requeueing the items for five months.
    let mut s = state(160, 48);
    let key = |c: KeyCode| {
        let m = if matches!(c, KeyCode::Char(ch) if ch.is_ascii_uppercase()) {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        Msg::Key(KeyEvent::new(c, m))
    };
    for c in [
        KeyCode::Enter,
        KeyCode::Char('R'),
        KeyCode::Char('5'),
        KeyCode::Char('M'),
    ] {
        fixtures::settle(&mut s, key(c));
    }
    let fx = fixtures::settle(&mut s, key(KeyCode::Enter));
    assert!(fx.is_empty(), "nothing is done: {fx:?}");
    match &s.popup {
        Some(Popup::Prompt { error: Some(e), .. }) => {
            assert!(e.contains("did you mean 5m?"), "{e}")
        }
        other => panic!("the prompt stays with its error: {other:?}"),
    }
}
