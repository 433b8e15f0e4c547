//! Rendering snapshots at 80×24 and 160×48 on fixed data, and colour assertions.

use super::fixtures::{self, settle, state};
use crate::model::*;
use crate::tui::state::*;
use crate::tui::update::Msg;
use crate::tui::views;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;

fn k(c: char) -> Msg {
    let m = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), m))
}
fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn render(s: &State) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| views::draw(f, s)).unwrap();
    t
}

/// The screen as text, one line per row, for tests that look for words on it.
pub fn screen(s: &State) -> String {
    let t = render(s);
    let b = t.backend().buffer();
    (0..b.area.height)
        .map(|y| {
            (0..b.area.width)
                .map(|x| b[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Snapshots a state at both sizes; `setup` brings a fresh state to the screen to show.
fn snap(name: &str, setup: impl Fn(&mut State)) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = state(w, h);
        setup(&mut s);
        let t = render(&s);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn keys(s: &mut State, ks: &str) {
    for c in ks.chars() {
        let m = match c {
            '\n' => code(KeyCode::Enter),
            '\t' => code(KeyCode::Tab),
            '\x1b' => code(KeyCode::Esc),
            c => k(c),
        };
        settle(s, m);
    }
}

#[test]
fn queues_loaded() {
    snap("queues", |_| {});
}

#[test]
fn queues_empty() {
    snap("queues_empty", |s| {
        settle(s, Msg::Queues(s.queues.fetch.seq + 1, Ok(vec![])));
        s.queues.fetch.inflight = false;
        s.queues.list.clear();
    });
}

#[test]
fn items_loaded() {
    snap("items", |s| keys(s, "\n"));
}

#[test]
fn items_all_queues_filtered() {
    snap("items_filtered", |s| {
        keys(s, ":");
        keys(s, "items all\n");
        keys(s, ":");
        keys(s, "filter status=exception reason=business Trey\n");
    });
}

#[test]
fn items_with_marks() {
    snap("items_marks", |s| keys(s, "\n  jj "));
}

#[test]
fn items_nothing_matches() {
    snap("items_empty", |s| {
        keys(s, "\n/");
        keys(s, "zzz\n");
    });
}

#[test]
fn items_read_only() {
    snap("items_read_only", |s| {
        s.read_only = true;
        keys(s, "\n");
    });
}

#[test]
fn detail() {
    snap("detail", |s| keys(s, "\njj\n"));
}

#[test]
fn exceptions() {
    snap("exceptions", |s| keys(s, "3"));
}

#[test]
fn workers() {
    snap("workers", |s| keys(s, "4"));
}

#[test]
fn help_popup() {
    snap("help", |s| keys(s, "\n?"));
}

#[test]
fn palette_popup() {
    snap("palette", |s| keys(s, ":re"));
}

#[test]
fn confirm_popup() {
    snap("confirm", |s| keys(s, "\n  r"));
}

#[test]
fn confirm_dangerous_popup() {
    snap("confirm_delete", |s| keys(s, "3D"));
}

#[test]
fn prompt_popup() {
    snap("prompt", |s| keys(s, "\nR"));
}

#[test]
fn error_popup() {
    snap("error", |s| {
        keys(s, "\nu\n");
        settle(
            s,
            Msg::Acted(Err(crate::backend::Error::refused_action(
                "release",
                "released",
                1,
                vec![crate::backend::Refused {
                    id: "01JDTEST000000000000000299".into(),
                    from: Status::Queued,
                    to: Some(To::Status(Status::Queued)),
                    why: "cannot release an item that is queued (only on-hold items are released)"
                        .into(),
                }],
            ))),
        );
    });
}

#[test]
fn actions_view() {
    snap("actions", |s| keys(s, "Aj"));
}

/// Ids of one to three digits and times between one and ten minutes ago: every column
/// is as wide as its content, so no id runs into a time ("4 m 20s ago") and no time loses
/// its first digit; counts have separators.
#[test]
fn actions_view_fits_ids_and_times() {
    snap("actions_fitted", |s| {
        keys(s, "A");
        let mut list = fixtures::actions();
        let ago = |secs: i64| fixtures::now() - chrono::Duration::seconds(secs);
        for (a, (id, secs)) in list.iter_mut().zip([(123, 80), (42, 260), (7, 599)]) {
            a.id = id;
            a.at = ago(secs);
        }
        list[2].touched = 20_000;
        list[2].restored = Some(19_988);
        list[2].undone_at = Some(ago(65));
        s.actions.list = list;
    });
    let mut s = state(160, 48);
    keys(&mut s, "A");
    s.actions.list[0].id = 4;
    s.actions.list[0].at = fixtures::now() - chrono::Duration::seconds(80);
    let screen = super::render::screen(&s);
    assert!(
        screen.contains("│ 4 1m 20s ago user:ana requeue"),
        "{screen}"
    );
}

#[test]
fn undo_popup() {
    snap("undo", |s| {
        keys(s, "Az");
        let seq = s.seq;
        settle(
            s,
            Msg::UndoPreview(
                seq,
                Ok(UndoResult {
                    action_id: 9,
                    verb: "requeue".into(),
                    total: 109,
                    restored: 88,
                    changed: vec![
                        Tally {
                            count: 19,
                            why: "processed".into(),
                        },
                        Tally {
                            count: 2,
                            why: "on hold".into(),
                        },
                    ],
                    kept: vec![],
                    kept_items: vec![],
                    dry_run: true,
                }),
            ),
        );
    });
}

#[test]
fn confirm_with_skips_and_a_count_to_type() {
    snap("confirm_skips", |s| {
        keys(s, "\n");
        s.items.mark_all = true;
        keys(s, "u");
        let seq = s.seq;
        settle(
            s,
            Msg::Preview(
                seq,
                Ok(Preview {
                    count: 1347,
                    changes: 1201,
                    skipped: vec![Tally {
                        count: 146,
                        why: "cannot release an item that is queued (only on-hold items are released)"
                            .into(),
                    }],
                    warnings: vec!["3 will be expired once released: their expiry passed while on hold (extend it to have them processed)".into()],
                    sample: vec![fixtures::item(3), fixtures::item(10)],
                }),
            ),
        );
        keys(s, "120");
    });
}

/// The inbox's exception group and its expired row marked, then requeue: the preview
/// says what it changes and which items it skips, and why, before anything applies.
#[test]
fn confirm_on_a_mixed_inbox_set() {
    snap("confirm_mixed", |s| keys(s, "3 G r"));
}

/// An item deleted while its detail is open (or opened by id) shows as deleted: who did
/// it, when, and where to undo it.
#[test]
fn a_deleted_item_shows_as_deleted_in_its_detail() {
    let mut s = state(160, 48);
    keys(&mut s, "\n\n");
    assert_eq!(s.view, View::Detail);
    let d = s.detail.data.as_mut().unwrap();
    d.deleted = Some(Deleted {
        at: fixtures::now() - chrono::Duration::minutes(5),
        by: "user:ana".into(),
        action_id: 7,
    });
    let was = views::status_text(&d.item);
    let text = screen(&s);
    assert!(text.contains(&format!("deleted (was {was})")), "{text}");
    assert!(
        text.contains("deleted       2026-11-22 13:55:00 UTC (5m ago)"),
        "{text}"
    );
    assert!(
        text.contains("deleted by    user:ana · action 7 (undo it from A)"),
        "{text}"
    );
}

#[test]
fn too_small() {
    let mut s = state(30, 8);
    s.size = (30, 8);
    insta::assert_snapshot!("too_small", render(&s).backend());
}

/// The change feed went away (five times in a row, so the next try is 4 s off) a second
/// ago: the header says the data may be out of date and when the console tries again.
fn feed_lost(s: &mut State) {
    use crate::backend::Gap;
    for _ in 0..4 {
        settle(s, Msg::Feed(Gap::Disconnected("connection refused".into())));
        settle(s, Msg::Resubscribed);
    }
    settle(s, Msg::Feed(Gap::Disconnected("connection refused".into())));
    settle(s, Msg::Tick(fixtures::now() + chrono::Duration::seconds(1)));
}

#[test]
fn stale_data_is_marked_in_the_header() {
    snap("feed_lost", feed_lost);
    snap("feed_lost_read_only", |s| {
        s.read_only = true;
        feed_lost(s);
    });
}

#[test]
fn the_stale_marker_is_red_and_goes_when_the_feed_is_back() {
    let mut s = state(160, 48);
    feed_lost(&mut s);
    let t = render(&s);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "STALE: no live updates for 1s · retry in 3s").expect("marker");
    assert_eq!(y, 0, "in the header");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    settle(&mut s, Msg::Resubscribed);
    assert!(find(render(&s).backend().buffer(), "STALE").is_none());
}

/// Where `text` starts on screen.
fn find(buf: &Buffer, text: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        if let Some(i) = line.find(text) {
            let x = line[..i].chars().count() as u16;
            return Some((x, y));
        }
    }
    None
}

#[test]
fn exception_status_is_red_in_dark_and_light_has_its_own() {
    let mut s = state(160, 48);
    keys(&mut s, "\n");
    let t = render(&s);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "exception/business").expect("an exception row");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    let (x, y) = find(buf, "processed ").expect("a processed row");
    assert_eq!(buf[(x, y)].fg, Color::Green);
    keys(&mut s, "T");
    let t = render(&s);
    let (x, y) = find(t.backend().buffer(), "exception/business").unwrap();
    assert_eq!(t.backend().buffer()[(x, y)].fg, Color::Indexed(160));
}

#[test]
fn no_color_draws_without_colours() {
    let mut s = state(160, 48);
    s.no_color = true;
    keys(&mut s, "\n");
    let t = render(&s);
    let buf = t.backend().buffer();
    for c in buf.content() {
        assert_eq!(c.fg, Color::Reset, "{c:?}");
        assert_eq!(c.bg, Color::Reset, "{c:?}");
    }
    // The cursor row is still visible: reversed.
    let (_, y) = find(buf, "I-1299").unwrap();
    assert!(buf[(2, y)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn out_of_sla_and_missed_deadline_are_red() {
    let mut s = state(160, 48);
    // Nothing drains: the deadline is missed.
    s.queues.list[0].projection = Some(crate::rules::project(
        fixtures::now() + chrono::Duration::hours(1),
        1360,
        1.0,
        fixtures::now(),
    ));
    let t = render(&s);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "misses").expect("projection shown");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    let _ = Status::Queued;
}

#[test]
fn json_values_are_highlighted_in_written_order() {
    let t = crate::tui::theme::Theme::dark();
    let p =
        crate::json_text::pretty(r#"{"b":1,"a":{"x":[true,null,"s\"q"]},"e":[],"o":{}}"#).unwrap();
    assert_eq!(
        p,
        "{\n  \"b\": 1,\n  \"a\": {\n    \"x\": [\n      true,\n      null,\n      \"s\\\"q\"\n    ]\n  },\n  \"e\": [],\n  \"o\": {}\n}"
    );
    let line = views::detail::json_line(r#"  "Amount": 12.5,"#, &t);
    let styled: Vec<(String, Option<Color>)> = line
        .spans
        .iter()
        .map(|s| (s.content.to_string(), s.style.fg))
        .collect();
    assert!(styled.contains(&("\"Amount\"".into(), Some(Color::Cyan))));
    assert!(styled.contains(&("12.5".into(), Some(Color::Magenta))));
    assert!(crate::json_text::pretty("plain text").is_none());
}

#[test]
fn narrow_screens_keep_names_and_counts() {
    let mut s = state(60, 18);
    insta::assert_snapshot!("queues_60x18", render(&s).backend());
    keys(&mut s, "\n");
    let t = render(&s);
    insta::assert_snapshot!("items_60x18", t.backend());
    assert!(find(t.backend().buffer(), "All 2,389").is_some());
}

/// A narrower deadline column gets a tighter projection rather than a cut one, so the
/// drain time keeps its zone; with room, the deadline is said too.
#[test]
fn a_narrow_deadline_column_keeps_the_zone() {
    let row = |s: &State| {
        let text = screen(s);
        text.lines()
            .find(|l| l.contains("│  vendor-invoices"))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };
    let wide = row(&state(160, 48));
    assert!(
        wide.contains(" 15:58 CET, 7h 1m before 23:00 CET "),
        "{wide}"
    );
    let less = row(&state(150, 40));
    assert!(less.contains(" 15:58 CET, 7h 1m early "), "{less}");
    let mut s = state(150, 40);
    for q in &mut s.queues.list {
        q.queue.name = format!("{}-from-the-ap-mailbox", q.queue.name);
    }
    let tight = row(&s);
    assert!(tight.ends_with(" 15:58 CET  │"), "{tight}");
}

#[test]
fn light_theme_paints_its_own_background() {
    let mut s = state(80, 24);
    s.theme = ThemeName::Light;
    let t = render(&s);
    let buf = t.backend().buffer();
    // An empty corner of the screen: the light background, not the terminal's.
    assert_eq!(buf[(79, 22)].bg, Color::Indexed(231));
}

#[test]
fn help_and_the_delete_dialog_agree_that_history_is_kept() {
    let mut s = fixtures::state(160, 48);
    keys(&mut s, "2");
    keys(&mut s, "?");
    let help = render(&s).backend().to_string();
    keys(&mut s, "q");
    keys(&mut s, "D");
    let dialog = render(&s).backend().to_string();
    for (what, text) in [("help", &help), ("delete dialog", &dialog)] {
        assert!(text.contains("history is kept"), "{what}:\n{text}");
        assert!(!text.contains("and their history"), "{what}:\n{text}");
    }
}

/// Item 297's detail with a long value, a note of three lines and an edited value.
fn detail_with_edits(s: &mut State) {
    keys(s, "\njj\n");
    let d = s.detail.data.as_mut().unwrap();
    let long = (0..12)
        .map(|i| format!("\"Line{i}\":\"{}\"", "x".repeat(30)))
        .collect::<Vec<_>>()
        .join(",");
    let old = format!("{{\"InvoiceId\":\"I-1297\",\"Amount\":\"4999.00\",{long}}}");
    let new = old.replace("4999.00", "4990.00");
    d.item.value = format!("{new}TAIL");
    d.item.notes.push(Note {
        at: fixtures::now(),
        by: "user:ana".into(),
        text: "called the vendor\r\nthey fixed the master data\nretry tomorrow".into(),
    });
    d.history.push(HistoryEntry {
        at: fixtures::now(),
        by: "user:ana".into(),
        action: "requeue".into(),
        from: Some(Status::Exception),
        to: Some(Status::Queued),
        reason: None,
        note: Some("amount typo".into()),
        action_id: Some(7),
        changes: vec![
            FieldChange {
                field: "value".into(),
                old: serde_json::Value::String(old),
                new: serde_json::Value::String(new),
            },
            FieldChange {
                field: "priority".into(),
                old: serde_json::json!("normal"),
                new: serde_json::json!("high"),
            },
        ],
    });
}

#[test]
fn detail_wraps_values_keeps_note_lines_and_shows_edits_old_to_new() {
    snap("detail_edits", detail_with_edits);
    let mut s = state(160, 48);
    detail_with_edits(&mut s);
    let text = render(&s).backend().to_string();
    // Each line of the note on its own screen line.
    for l in [
        "called the vendor",
        "they fixed the master data",
        "retry tomorrow",
    ] {
        assert!(text.lines().any(|r| r.contains(l)), "{l}:\n{text}");
    }
    assert!(!text.contains("vendorthey"), "{text}");
    // The edit: the line that changed, old and new; the lines both share are left out.
    let line = |mark: &str, amount: &str| {
        text.lines()
            .any(|l| l.contains(mark) && l.contains(&format!(r#""Amount": "{amount}","#)))
    };
    assert!(line("− ", "4999.00") && line("+ ", "4990.00"), "{text}");
    assert!(
        !text.contains(r#""InvoiceId": "I-1297","#),
        "shared lines left out"
    );
    assert!(text.contains("priority: normal → high"), "{text}");
    // The long value is wrapped, not cut: its end is on screen.
    assert!(text.contains("TAIL"), "{text}");
}

#[test]
fn inbox_marks_search_and_fitting_hints() {
    // Two rows of two queues marked, then a search that leaves one of them shown.
    snap("exceptions_marked", |s| keys(s, "3 jj /vendor\n"));
    let mut s = state(160, 48);
    keys(&mut s, "3");
    let footer = |s: &State| {
        let t = render(s).backend().to_string();
        t.lines().nth(47).unwrap().to_string()
    };
    assert!(footer(&s).contains("r requeue"), "{}", footer(&s));
    keys(&mut s, "G");
    assert!(!footer(&s).contains("requeue"), "{}", footer(&s));
    keys(&mut s, "/nothing like this\n");
    let text = render(&s).backend().to_string();
    assert!(text.contains("No inbox row matches"), "{text}");
}

fn fired(name: &str, queue: &str) -> crate::alert::Alert {
    crate::alert::Alert {
        name: name.into(),
        queue: queue.into(),
        rule: "out>0".into(),
        target: crate::alert::Target::Run("true".into()),
        state: crate::alert::AlertState::Fired,
        generation: 1,
        changed_at: None,
        created_at: fixtures::now(),
    }
}

#[test]
fn a_fired_alert_marks_its_queue_and_is_named_escaped() {
    let mut s = state(160, 48);
    let before = screen(&s);
    assert!(!before.contains('▲'), "no alert, no marker");
    let mut cleared = fired("quiet", "vendor-invoices");
    cleared.state = crate::alert::AlertState::Cleared;
    settle(
        &mut s,
        Msg::Alerts(Ok(vec![
            fired("late\u{1b}[2Jinvoices", "vendor-invoices"),
            cleared,
        ])),
    );
    let shown = screen(&s);
    let row = shown
        .lines()
        .find(|l| l.contains("vendor-invoices") && l.contains('▲'))
        .unwrap_or_else(|| panic!("the queue row is marked:\n{shown}"));
    assert!(row.contains("▲ vendor-invoices"), "{row}");
    let line = shown
        .lines()
        .find(|l| l.contains("fired:"))
        .unwrap_or_else(|| panic!("the selected queue names its alerts:\n{shown}"));
    assert!(
        line.contains("late") && line.contains("invoices (out>0)"),
        "{line}"
    );
    assert!(
        !line.contains("quiet"),
        "a cleared alert is not shown: {line}"
    );
    assert!(!shown.contains('\u{1b}'), "escaped");
    assert!(
        !shown
            .lines()
            .any(|l| l.contains("customer-onboarding") && l.contains('▲')),
        "only the alert's own queue is marked"
    );
    // A failed reload keeps what was shown.
    settle(
        &mut s,
        Msg::Alerts(Err(crate::backend::Error::not_found(
            crate::backend::Thing::Alert,
            "x",
        ))),
    );
    assert!(screen(&s).contains("fired:"));
}
