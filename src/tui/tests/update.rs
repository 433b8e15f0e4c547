//! Keys and backend answers in, state and effects out: every command, every view.

use super::fixtures::{self, item, now, settle, state};
use crate::backend::Error;
use crate::model::*;
use crate::tui::state::*;
use crate::tui::update::{update, Effect, Msg};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use std::time::Duration;

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
fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}
fn typed(s: &mut State, text: &str) -> Vec<Effect> {
    let mut out = vec![];
    for c in text.chars() {
        out.extend(settle(s, k(c)));
    }
    out
}
/// The items view of vendor-invoices, loaded, newest first.
fn items_state(w: u16, h: u16) -> State {
    let mut s = state(w, h);
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Items);
    s
}
fn undo_result(id: i64, restored: u64, total: u64) -> UndoResult {
    UndoResult {
        action_id: id,
        verb: "requeue".into(),
        total,
        restored,
        changed: vec![],
        kept: vec![],
        kept_items: vec![],
        dry_run: false,
    }
}
fn click(x: u16, y: u16) -> Msg {
    Msg::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    })
}

#[test]
fn starts_on_queues_and_loads_them() {
    let s = state(80, 24);
    assert_eq!(s.view, View::Queues);
    assert!(s.queues.loaded);
    assert_eq!(s.queues.selected.as_deref(), Some("vendor-invoices"));
    assert!(!s.queues.fetch.inflight);
}

#[test]
fn queue_cursor_moves_and_enter_opens_its_items() {
    let mut s = state(80, 24);
    settle(&mut s, k('j'));
    assert_eq!(s.queues.selected.as_deref(), Some("customer-onboarding"));
    settle(&mut s, k('G'));
    assert_eq!(s.queues.selected.as_deref(), Some("address-changes"));
    settle(&mut s, k('g'));
    assert_eq!(s.queues.selected.as_deref(), Some("vendor-invoices"));
    let fx = update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Items);
    assert!(matches!(&fx[0], Effect::LoadPage { filter, page, .. }
        if filter.queue.as_deref() == Some("vendor-invoices") && page.offset == 0 && page.descending));
    // esc goes back to the queues.
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.view, View::Queues);
}

#[test]
fn number_keys_switch_views_and_fetch_their_data() {
    let mut s = state(80, 24);
    let fx = update(&mut s, k('3'));
    assert_eq!(s.view, View::Exceptions);
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadGroups(_))));
    let fx = update(&mut s, k('4'));
    assert_eq!(s.view, View::Workers);
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadWorkers(_))));
    let fx = update(&mut s, k('2'));
    assert_eq!(s.view, View::Items);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::LoadPage { filter, .. } if filter.queue.is_none())));
    settle(&mut s, k('1'));
    assert_eq!(s.view, View::Queues);
}

#[test]
fn a_list_is_counted_when_it_changes_not_on_every_window_move() {
    let mut s = items_state(80, 24);
    let mut modes = Vec::new();
    for _ in 0..20 {
        for f in update(&mut s, ctrl('d')) {
            if let Effect::LoadPage { page, .. } = &f {
                modes.push(page.count);
            }
            if let Some(m) = fixtures::respond(&f) {
                settle(&mut s, m);
            }
        }
    }
    assert!(!modes.is_empty(), "the window moved");
    assert!(modes.iter().all(|m| *m == Count::Skip), "{modes:?}");
    assert_eq!(
        s.items.total,
        fixtures::ITEMS,
        "the known total survives uncounted pages"
    );
    // A few seconds on, the next change from the engine counts again (bots change what
    // matches).
    let later = s.now + chrono::Duration::seconds(6);
    update(&mut s, Msg::Tick(later));
    let fx = update(&mut s, Msg::Changed);
    let counted = fx
        .iter()
        .any(|f| matches!(f, Effect::LoadPage { page, .. } if page.count == Count::Exact));
    assert!(counted, "{fx:?}");
    // A new filter always counts.
    for f in fx {
        if let Some(m) = fixtures::respond(&f) {
            settle(&mut s, m);
        }
    }
    let fx = update(&mut s, k('/'));
    let fx: Vec<Effect> = fx
        .into_iter()
        .chain(update(&mut s, k('x')))
        .chain(update(
            &mut s,
            Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        ))
        .collect();
    let counts: Vec<Count> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::LoadPage { page, .. } => Some(page.count),
            _ => None,
        })
        .collect();
    assert!(counts.contains(&Count::Exact), "{counts:?}");
}

#[test]
fn a_list_that_shrank_under_an_uncounted_page_is_counted_again_once() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, k('G'));
    let Some(Effect::LoadPage { seq, offset, .. }) = fx.first().cloned() else {
        panic!("G fetches the far end: {fx:?}");
    };
    // Meanwhile a bulk action emptied the list; the page comes back short and uncounted.
    let empty = Page {
        items: vec![],
        total: None,
        exact: false,
    };
    let fx = update(&mut s, Msg::Page(seq, offset, Ok(empty)));
    let counts: Vec<Count> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::LoadPage { page, .. } => Some(page.count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [Count::Exact], "one fetch, counted: {fx:?}");
    // The counted answer settles it: no more fetches.
    let mut fetches = 0;
    let mut queue: Vec<Effect> = fx;
    while let Some(f) = queue.pop() {
        if matches!(f, Effect::LoadPage { .. }) {
            fetches += 1;
            assert!(fetches < 5, "the window keeps refetching");
        }
        if let Some(m) = fixtures::respond(&f) {
            queue.extend(update(&mut s, m));
        }
    }
    assert!(s.items.loaded);
}

#[test]
fn items_window_pages_from_the_engine_as_the_cursor_moves() {
    let mut s = items_state(80, 24);
    assert_eq!(s.items.total, fixtures::ITEMS);
    assert_eq!(s.items.rows.len(), WINDOW as usize);
    assert_eq!(s.items.cursor_id.as_deref(), Some(item(299).id.as_str()));
    // Half pages down until the window must move.
    let mut paged = false;
    for _ in 0..20 {
        let fx = update(&mut s, ctrl('d'));
        if let Some(Effect::LoadPage { offset, .. }) = fx.first() {
            assert!(*offset > 0);
            paged = true;
            for f in fx {
                if let Some(m) = fixtures::respond(&f) {
                    settle(&mut s, m);
                }
            }
        }
    }
    assert!(paged, "moving down past the window fetches the next window");
    let cur = s.items.current().expect("cursor row is loaded").clone();
    assert_eq!(cur.id, item(299 - s.items.cursor).id);
    let fx = update(&mut s, k('G'));
    // The far end is read in the other order, then reversed.
    assert!(
        matches!(&fx[0], Effect::LoadPage { flip: true, page, .. } if !page.descending && page.offset == 0),
        "{fx:?}"
    );
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    assert_eq!(s.items.cursor, fixtures::ITEMS - 1);
    assert_eq!(
        s.items.row(fixtures::ITEMS - 2).map(|i| i.id.clone()),
        Some(item(1).id)
    );
    assert_eq!(s.items.current().map(|i| i.id.clone()), Some(item(0).id));
    settle(&mut s, k('g'));
    assert_eq!(s.items.cursor, 0);
    assert_eq!(s.items.top, 0);
}

#[test]
fn cursor_and_marks_follow_item_ids_across_refreshes() {
    let mut s = items_state(80, 24);
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    let id = s.items.cursor_id.clone().unwrap();
    settle(&mut s, k(' '));
    assert!(s.items.marks.contains(&id));
    // Two new items arrive on top: the same item is now two rows lower.
    let mut rows = vec![item(1000), item(1001)];
    rows.extend(fixtures::all_items().into_iter().rev());
    rows.truncate(WINDOW as usize);
    let seq = {
        let fx = update(&mut s, Msg::Changed);
        fx.iter()
            .find_map(|e| match e {
                Effect::LoadPage { seq, .. } => Some(*seq),
                _ => None,
            })
            .unwrap()
    };
    settle(
        &mut s,
        Msg::Page(
            seq,
            0,
            Ok(Page {
                items: rows,
                total: Some(fixtures::ITEMS + 2),
                exact: true,
            }),
        ),
    );
    // The cursor had moved on after the mark (space moves down), so find the marked item.
    assert!(s.items.marks.contains(&id));
    let pos = s.items.rows.iter().position(|r| r.id == id).unwrap() as u64;
    assert_eq!(pos, 4, "marked item shifted by the two new rows");
    assert_eq!(s.items.cursor, 5, "cursor followed its own item");
}

#[test]
fn stale_answers_are_dropped_and_one_query_runs_at_a_time() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, k('/'));
    assert!(fx.is_empty());
    assert!(matches!(
        s.popup,
        Some(Popup::Prompt {
            ask: Ask::Search,
            ..
        })
    ));
    let first = update(&mut s, k('F'));
    let Some(Effect::LoadPage { seq, filter, .. }) = first.first().cloned() else {
        panic!("typing searches: {first:?}")
    };
    assert_eq!(filter.search.as_deref(), Some("F"));
    // More typing while the query runs: nothing new is sent yet.
    assert!(update(&mut s, k('a')).is_empty());
    assert!(update(&mut s, k('b')).is_empty());
    // The answer for "F" is stale: dropped, and the latest text is asked for.
    let fx = update(
        &mut s,
        Msg::Page(seq, 0, Ok(fixtures::page(&filter, &PageRequest::default()))),
    );
    assert!(
        matches!(&fx[0], Effect::LoadPage { filter, .. } if filter.search.as_deref() == Some("Fab"))
    );
    assert!(!s.items.loaded, "stale rows were not shown");
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    assert!(s.items.loaded);
    assert!(s.items.rows.iter().all(|i| i.value.contains("Fab")));
    // An answer with an old sequence number changes nothing.
    let before = s.items.total;
    update(
        &mut s,
        Msg::Page(
            1,
            0,
            Ok(Page {
                items: vec![],
                total: Some(0),
                exact: true,
            }),
        ),
    );
    assert_eq!(s.items.total, before);
    // Enter keeps the search; esc in a new search clears it.
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.popup.is_none());
    assert_eq!(s.items.filter.search.as_deref(), Some("Fab"));
    settle(&mut s, k('/'));
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.items.filter.search, None);
}

#[test]
fn status_tabs_filter_by_status() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.items.tab, Some(Status::Queued));
    assert!(
        matches!(&fx[0], Effect::LoadPage { filter, .. } if filter.statuses == vec![Status::Queued])
    );
    settle(&mut s, Msg::Changed);
    assert!(s.items.rows.iter().all(|i| i.status == Status::Queued));
    settle(&mut s, code(KeyCode::BackTab));
    settle(&mut s, code(KeyCode::BackTab));
    assert_eq!(s.items.tab, Some(Status::Processed));
    settle(&mut s, k(']'));
    assert_eq!(s.items.tab, None);
}

#[test]
fn sort_cycles_and_reverses() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, k('s'));
    assert!(matches!(&fx[0], Effect::LoadPage { page, .. } if page.sort == SortBy::Priority));
    let fx = update(&mut s, k('S'));
    assert!(s.items.fetch.inflight);
    assert!(fx.is_empty(), "one query at a time");
    settle(&mut s, Msg::Changed);
    assert!(!s.items.descending);
}

#[test]
fn marks_space_range_all_and_clear() {
    let mut s = items_state(80, 24);
    settle(&mut s, k(' '));
    assert_eq!(s.items.marks.len(), 1);
    assert_eq!(s.items.cursor, 1, "space moves on");
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    settle(&mut s, k('v'));
    assert_eq!(s.items.marks.len(), 4, "rows 0..=3 marked");
    settle(&mut s, k('c'));
    assert!(s.items.marks.is_empty());
    settle(&mut s, ctrl('a'));
    assert!(s.items.mark_all);
    let (target, what) = crate::tui::update::target(&s).unwrap();
    assert!(matches!(target, Target::Filter(f) if f.queue.as_deref() == Some("vendor-invoices")));
    assert!(what.contains("300"));
    // esc clears marks before it goes back.
    settle(&mut s, code(KeyCode::Esc));
    assert!(!s.items.mark_all);
    assert_eq!(s.view, View::Items);
}

#[test]
fn requeue_previews_then_applies_with_note_and_actor() {
    let mut s = items_state(80, 24);
    // Find an exception and mark two items.
    settle(&mut s, k(' '));
    settle(&mut s, k(' '));
    let fx = update(&mut s, k('r'));
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!("confirm opens")
    };
    assert_eq!(c.changes(), None, "count comes from the preview");
    assert!(
        matches!(&fx[0], Effect::Preview(_, Target::Ids(ids), ActionKind::Requeue { .. }) if ids.len() == 2)
    );
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!()
    };
    assert_eq!(c.changes(), Some(2));
    typed(&mut s, "vendor fixed");
    let fx = settle(&mut s, code(KeyCode::Enter));
    let Some(Effect::Act(req)) = fx.first() else {
        panic!("{fx:?}")
    };
    assert_eq!(
        req.action,
        ActionKind::Requeue {
            delay: None,
            value: None
        }
    );
    assert_eq!(req.note.as_deref(), Some("vendor fixed"));
    assert_eq!(req.actor, "user:tester");
    assert!(s.popup.is_none());
    settle(
        &mut s,
        Msg::Acted(Ok(ActionResult {
            action_id: 7,
            verb: "requeue".into(),
            touched: 2,
            skipped: vec![],
        })),
    );
    assert!(s.items.marks.is_empty(), "marks clear after an action");
    assert!(s.status.as_ref().unwrap().text.contains("requeue: 2 items"));
    // z asks first, with what the undo restores.
    let fx = settle(&mut s, k('z'));
    assert_eq!(fx, vec![Effect::UndoPreview(s.seq, 7)]);
    let seq = s.seq;
    settle(&mut s, Msg::UndoPreview(seq, Ok(undo_result(7, 2, 2))));
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert_eq!(fx, vec![Effect::Undo(UndoRequest::new(7, "user:tester"))]);
    settle(&mut s, Msg::Undone(Ok(undo_result(7, 2, 2))));
    assert!(
        s.status.as_ref().unwrap().text.contains("restored 2 of 2"),
        "{:?}",
        s.status
    );
    assert!(s.last_action.is_none());
    settle(&mut s, k('z'));
    assert!(s.status.as_ref().unwrap().text.contains("nothing to undo"));
}

#[test]
fn every_action_key_builds_its_action() {
    let cases: Vec<(Msg, Option<&str>, ActionKind)> = vec![
        (k('h'), None, ActionKind::Hold),
        (k('u'), None, ActionKind::Release),
        (k('d'), None, ActionKind::Processed),
        (k('D'), None, ActionKind::Delete),
        (
            k('R'),
            Some("15m"),
            ActionKind::Requeue {
                delay: Some(Duration::from_secs(900)),
                value: None,
            },
        ),
        (
            k('p'),
            Some("high"),
            ActionKind::SetPriority {
                priority: Priority::High,
            },
        ),
        (
            k('x'),
            Some("never"),
            ActionKind::ExtendExpiry { expires_at: None },
        ),
        (
            k('x'),
            Some("2h"),
            ActionKind::ExtendExpiry {
                expires_at: Some(now() + chrono::Duration::hours(2)),
            },
        ),
        (k('n'), Some("called the vendor"), ActionKind::AddNote),
    ];
    for (key, arg, want) in cases {
        let mut s = items_state(80, 24);
        settle(&mut s, key);
        if let Some(a) = arg {
            assert!(
                matches!(s.popup, Some(Popup::Prompt { .. })),
                "{want:?} asks first"
            );
            typed(&mut s, a);
            settle(&mut s, code(KeyCode::Enter));
        }
        let Some(Popup::Confirm(c)) = &s.popup else {
            panic!("{want:?}: {:?}", s.popup)
        };
        assert_eq!(c.action, want);
        assert_eq!(
            c.dangerous,
            matches!(want, ActionKind::Delete | ActionKind::Processed)
        );
        let fx = settle(&mut s, code(KeyCode::Enter));
        assert!(
            matches!(&fx[0], Effect::Act(r) if r.action == want),
            "{want:?}: {fx:?}"
        );
    }
}

#[test]
fn bad_arguments_keep_the_prompt_open_with_the_error() {
    let mut s = items_state(80, 24);
    settle(&mut s, k('R'));
    typed(&mut s, "soon");
    settle(&mut s, code(KeyCode::Enter));
    let Some(Popup::Prompt { error: Some(e), .. }) = &s.popup else {
        panic!("{:?}", s.popup)
    };
    assert!(e.contains("soon"), "{e}");
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.popup.is_none());
    // A note needs its text.
    settle(&mut s, k('h'));
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.status.as_ref().unwrap().text.contains("cancelled"));
}

#[test]
fn refused_actions_show_the_engines_words_and_the_console_goes_on() {
    let mut s = items_state(80, 24);
    settle(&mut s, k('u'));
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert!(matches!(fx[0], Effect::Act(_)));
    settle(&mut s, Msg::Acted(Err(released_refused("X"))));
    let Some(Popup::Error { message, .. }) = &s.popup else {
        panic!()
    };
    assert!(message.contains("cannot release"));
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.popup.is_none(), "esc closes the error");
    settle(&mut s, k('j'));
    assert_eq!(s.items.cursor, 1, "still running");
}

#[test]
fn read_only_hides_and_refuses_writes() {
    let mut s = items_state(80, 24);
    s.read_only = true;
    assert!(settle(&mut s, k('r')).is_empty());
    assert!(s.popup.is_none());
    settle(&mut s, k(':'));
    typed(&mut s, "delete");
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.status.as_ref().unwrap().text.contains("read-only"));
    assert!(settle(&mut s, k('z')).is_empty());
}

#[test]
fn palette_completes_and_runs_commands() {
    let mut s = state(80, 24);
    settle(&mut s, k(':'));
    typed(&mut s, "exc");
    settle(&mut s, code(KeyCode::Tab));
    let Some(Popup::Palette { input, .. }) = &s.popup else {
        panic!()
    };
    assert_eq!(input.text, "exceptions ");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Exceptions);

    settle(&mut s, k(':'));
    typed(&mut s, "items customer-onboarding");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Items);
    assert_eq!(s.items.queue.as_deref(), Some("customer-onboarding"));

    settle(&mut s, k(':'));
    typed(&mut s, "filter status=exception reason=business Trey");
    let fx = update(&mut s, code(KeyCode::Enter));
    assert!(matches!(&fx[0], Effect::LoadPage { filter, .. }
        if filter.statuses == vec![Status::Exception] && filter.reason == Some(Reason::Business)
           && filter.search.as_deref() == Some("Trey")));
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    assert!(s.items.total > 0 && s.items.rows.iter().all(|i| i.status == Status::Exception));

    settle(&mut s, k(':'));
    typed(&mut s, "filter colour=red");
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.status.as_ref().unwrap().text.contains("unknown filter"));

    settle(&mut s, k(':'));
    typed(&mut s, "theme light");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.theme, ThemeName::Light);
    settle(&mut s, k('T'));
    assert_eq!(s.theme, ThemeName::Dark);

    settle(&mut s, k(':'));
    typed(&mut s, "sort name");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.items.sort, SortBy::Name);

    settle(&mut s, k(':'));
    typed(&mut s, "requeue 1h");
    settle(&mut s, code(KeyCode::Enter));
    assert!(
        matches!(&s.popup, Some(Popup::Confirm(c))
        if c.action == ActionKind::Requeue { delay: Some(Duration::from_secs(3600)), value: None }),
        "{:?} {:?} {}",
        s.popup,
        s.status,
        s.items.total
    );
    settle(&mut s, code(KeyCode::Esc));

    settle(&mut s, k(':'));
    typed(&mut s, "frobnicate");
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.status.as_ref().unwrap().text.contains("unknown command"));

    settle(&mut s, k(':'));
    typed(&mut s, "quit");
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.quit);
}

#[test]
fn help_opens_scrolls_and_closes() {
    let mut s = state(80, 24);
    settle(&mut s, k('?'));
    settle(&mut s, k('j'));
    assert_eq!(s.popup, Some(Popup::Help { scroll: 1 }));
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.popup.is_none());
    settle(&mut s, k('q'));
    assert!(s.quit);
}

/// `j` stops at the last line: the end of the help sits at the bottom of its box, never
/// scrolled away into an empty one.
#[test]
fn help_scrolls_no_further_than_its_last_line() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = state(w, h);
        settle(&mut s, k('?'));
        for _ in 0..300 {
            settle(&mut s, k('j'));
        }
        let Some(Popup::Help { scroll }) = s.popup else {
            panic!("{:?}", s.popup)
        };
        assert!(scroll > 0, "{w}x{h}: the help is longer than the box");
        let screen = crate::tui::tests::render::screen(&s);
        let rows: Vec<&str> = screen.lines().collect();
        // The box's bottom border is the screen's second-to-last row; the row above it
        // holds the help's last line.
        let last = rows[h as usize - 3];
        assert!(
            last.contains("keys can be changed in"),
            "{w}x{h}:\n{screen}"
        );
        // PageDown and G stop there too; k goes back up one line.
        settle(&mut s, code(KeyCode::PageDown));
        settle(&mut s, k('G'));
        assert_eq!(s.popup, Some(Popup::Help { scroll }));
        settle(&mut s, k('k'));
        assert_eq!(s.popup, Some(Popup::Help { scroll: scroll - 1 }));
        settle(&mut s, k('g'));
        assert_eq!(s.popup, Some(Popup::Help { scroll: 0 }));
    }
}

#[test]
fn queue_pause_and_settings() {
    let mut s = state(80, 24);
    let fx = settle(&mut s, k('P'));
    assert_eq!(
        fx,
        vec![Effect::SetQueueState(
            "vendor-invoices".into(),
            QueueState::Paused
        )]
    );
    settle(&mut s, k('G'));
    let fx = settle(&mut s, k('P'));
    assert_eq!(
        fx,
        vec![Effect::SetQueueState(
            "address-changes".into(),
            QueueState::Active
        )]
    );
    settle(&mut s, k('g'));
    settle(&mut s, k('e'));
    let Some(Popup::Prompt { input, .. }) = &s.popup else {
        panic!()
    };
    assert!(input.text.contains("deadline=23:00"), "{}", input.text);
    settle(&mut s, ctrl('u'));
    typed(&mut s, "sla=1h deadline=22:30 concurrency=0");
    settle(&mut s, code(KeyCode::Enter));
    assert!(
        matches!(&s.popup, Some(Popup::Prompt { error: Some(e), .. }) if e.contains("concurrency"))
    );
    settle(&mut s, ctrl('u'));
    typed(
        &mut s,
        "sla=1h deadline=22:30 description=Invoices from the AP box",
    );
    let fx = settle(&mut s, code(KeyCode::Enter));
    let Some(Effect::UpdateQueue(q, st)) = fx.first() else {
        panic!("{fx:?}")
    };
    assert_eq!(q, "vendor-invoices");
    assert_eq!(st.sla, Some(Duration::from_secs(3600)));
    assert_eq!(st.deadline.as_deref(), Some("22:30"));
    assert_eq!(st.description.as_deref(), Some("Invoices from the AP box"));
    settle(
        &mut s,
        Msg::QueueSaved(Err(Error::invalid("settings", "bad"))),
    );
    assert!(matches!(s.popup, Some(Popup::Error { .. })));
}

#[test]
fn inbox_groups_open_and_act_as_a_whole() {
    let mut s = state(160, 48);
    settle(&mut s, k('3'));
    let rows = s.inbox_rows();
    assert_eq!(
        rows.len(),
        5,
        "3 groups, 1 out-of-SLA and 1 expired row: {rows:?}"
    );
    assert_eq!(rows[0].count, 1240);
    assert_eq!(rows[2].kind, InboxKind::OutOfSla);
    assert_eq!(rows[4].kind, InboxKind::Expired);
    let fx = settle(&mut s, k('r'));
    assert!(fx.is_empty());
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!()
    };
    assert_eq!(c.changes(), Some(1240));
    let Target::Filter(f) = &c.target else {
        panic!()
    };
    assert_eq!(f.statuses, vec![Status::Exception]);
    assert_eq!(
        f.signature.as_deref(),
        Some("Vendor * not found in SAP vendor master")
    );
    settle(&mut s, code(KeyCode::Esc));
    let fx = update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Items);
    assert_eq!(s.items.tab, Some(Status::Exception));
    assert!(s
        .items
        .group
        .as_deref()
        .unwrap()
        .starts_with("1,240 × business"));
    assert!(matches!(&fx[0], Effect::LoadPage { filter, .. }
        if filter.queue.as_deref() == Some("vendor-invoices") && filter.reason == Some(Reason::Business)
           && filter.signature.is_some()));
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.view, View::Exceptions);
    settle(&mut s, k('G'));
    let Target::Filter(f) = crate::tui::update::target(&s).unwrap().0 else {
        panic!()
    };
    assert_eq!(f.expired, Some(true));
    assert_eq!(f.queue.as_deref(), Some("customer-onboarding"));
}

#[test]
fn the_workers_view_asks_again_by_itself_since_agents_report_without_changing_items() {
    use crate::tui::update::WORKERS_REFRESH_SECS;
    let mut s = state(80, 24);
    settle(&mut s, k('4'));
    let asked = |fx: &[Effect]| fx.iter().any(|e| matches!(e, Effect::LoadWorkers(_)));
    let later = |secs: i64| Msg::Tick(now() + chrono::Duration::seconds(secs));
    assert!(!asked(&update(&mut s, later(WORKERS_REFRESH_SECS - 1))));
    let fx = update(&mut s, later(WORKERS_REFRESH_SECS));
    assert!(asked(&fx), "{fx:?}");
    // Not while that fetch is on its way.
    assert!(!asked(&update(&mut s, later(2 * WORKERS_REFRESH_SECS))));
    // Another view does not ask for workers.
    let mut s = state(80, 24);
    settle(&mut s, k('1'));
    assert!(!asked(&update(&mut s, later(10 * WORKERS_REFRESH_SECS))));
}

#[test]
fn workers_keep_their_order_and_the_selection_stays_on_its_worker() {
    let mut s = state(80, 24);
    settle(&mut s, k('4'));
    assert!(s.workers.loaded);
    let names =
        |s: &State| -> Vec<String> { s.workers.list.iter().map(|w| w.name.clone()).collect() };
    assert_eq!(names(&s), ["crm-bot-02", "crm-bot-04", "sap-bot-01"]);
    assert_eq!(s.workers.selected.as_deref(), Some("crm-bot-02"));
    settle(&mut s, k('j'));
    assert_eq!(s.workers.selected.as_deref(), Some("crm-bot-04"));
    // A refresh where another worker was heard from last (the engine lists those first),
    // and a new worker appeared before the selected one.
    let mut fresh = fixtures::workers();
    fresh.reverse();
    fresh.push(WorkerInfo {
        name: "crm-bot-03".into(),
        last_seen: now(),
        holding: 0,
        holding_ids: vec![],
        processed: 1,
        failed: 0,
        queues: vec![],
        state: WorkerState::Running,
        agent: None,
    });
    update(&mut s, Msg::Changed);
    let seq = s.workers.fetch.seq;
    update(&mut s, Msg::Workers(seq, Ok(fresh)));
    assert_eq!(
        names(&s),
        ["crm-bot-02", "crm-bot-03", "crm-bot-04", "sap-bot-01"]
    );
    assert_eq!(s.workers.selected.as_deref(), Some("crm-bot-04"));
    assert_eq!(s.workers_cursor(), 2, "the highlight moved with its worker");
}

#[test]
fn extend_refuses_a_zero_duration_like_the_ttl_editor() {
    let mut s = items_state(80, 24);
    settle(&mut s, k('x'));
    typed(&mut s, "0s");
    settle(&mut s, code(KeyCode::Enter));
    let Some(Popup::Prompt { error: Some(e), .. }) = &s.popup else {
        panic!("the prompt stays open with the error: {:?}", s.popup)
    };
    assert!(e.contains("longer than 0"), "{e}");
    settle(&mut s, code(KeyCode::Esc));
    // From the palette too: nothing to confirm, the error in the status line.
    settle(&mut s, k(':'));
    typed(&mut s, "extend 0m");
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert!(fx.is_empty(), "{fx:?}");
    assert!(!matches!(s.popup, Some(Popup::Confirm(_))), "{:?}", s.popup);
    assert!(s.status.as_ref().unwrap().text.contains("longer than 0"));
    // The TTL editor says the same of a zero TTL.
    let e = crate::tui::update::parse_settings("ttl=0s").unwrap_err();
    assert!(e.contains("longer than 0"), "{e}");
    // A real duration still extends.
    settle(&mut s, k('x'));
    typed(&mut s, "2h");
    settle(&mut s, code(KeyCode::Enter));
    assert!(matches!(&s.popup, Some(Popup::Confirm(c))
        if matches!(c.action, ActionKind::ExtendExpiry { expires_at: Some(t) } if t == now() + chrono::Duration::hours(2))));
}

#[test]
fn detail_opens_refreshes_and_edits_then_requeues() {
    let mut s = items_state(80, 24);
    // Item 297 is the first exception from the top (newest first: 299, 298, 297).
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    let fx = update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Detail);
    assert!(matches!(&fx[0], Effect::LoadDetail(_, id) if *id == item(297).id));
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    assert_eq!(s.detail.data.as_ref().unwrap().history.len(), 3);
    settle(&mut s, k('j'));
    assert_eq!(s.detail.scroll, 1);
    let fx = settle(&mut s, k('e'));
    let [Effect::Edit(sess)] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert_eq!((sess.id.as_str(), sess.json), (item(297).id.as_str(), true));
    assert_eq!(sess.original, item(297).value);
    // Saved as it was opened: nothing to do.
    settle(&mut s, Msg::Edited(sess.clone(), Ok(sess.text.clone())));
    assert!(s.status.as_ref().unwrap().text.contains("unchanged"));
    assert!(s.popup.is_none());
    // What the user saved is the new value, as written (less the editor's final newline).
    let saved = sess.text.replace(".50,", ".00,");
    assert_ne!(saved, sess.text);
    settle(&mut s, Msg::Edited(sess.clone(), Ok(saved.clone())));
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!()
    };
    assert_eq!(
        c.action,
        ActionKind::Requeue {
            delay: None,
            value: Some(saved.strip_suffix('\n').unwrap().to_string())
        }
    );
    assert_eq!(c.target, Target::Ids(vec![item(297).id]));
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert!(matches!(&fx[0], Effect::Act(_)));
    // A deleted item says so.
    let seq = s.detail.fetch.seq + 1;
    update(&mut s, Msg::Changed);
    update(
        &mut s,
        Msg::Detail(seq, Err(Error::not_found(crate::backend::Thing::Item, "x"))),
    );
    assert!(s.detail.data.is_none());
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.view, View::Items);
}

/// Item 297 (an exception) opened in the editor from the items view.
fn editing_297() -> (State, crate::tui::value_edit::EditSession) {
    let mut s = items_state(80, 24);
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    let fx = settle(&mut s, k('e'));
    let [Effect::Edit(sess)] = &fx[..] else {
        panic!("{fx:?}")
    };
    (s, sess.clone())
}

#[test]
fn the_editor_opens_a_json_value_with_every_token_as_stored() {
    let (_, sess) = editing_297();
    let v = item(297).value;
    assert!(v.contains(r#""Amount":11089.50,"#), "{v}");
    assert_eq!(
        sess.text,
        "{\n  \"InvoiceId\": \"I-1297\",\n  \"AccountName\": \"Trey Research\",\n  \"Amount\": 11089.50,\n  \"Currency\": \"EUR\"\n}\n",
        "keys in their order, 11089.50 not 11089.5"
    );
    assert_eq!(sess.extension(), "json");
    // Only the whitespace moved: unchanged; a key moved: changed.
    let (mut s, _) = editing_297();
    settle(&mut s, Msg::Edited(sess.clone(), Ok(format!("{v}\n"))));
    assert!(s.status.as_ref().unwrap().text.contains("unchanged"));
    let swapped = r#"{"AccountName":"Trey Research","InvoiceId":"I-1297","Amount":11089.50,"Currency":"EUR"}"#;
    settle(&mut s, Msg::Edited(sess.clone(), Ok(swapped.into())));
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!("{:?}", s.popup)
    };
    assert!(matches!(&c.action, ActionKind::Requeue { value: Some(v), .. } if v == swapped));
}

#[test]
fn invalid_json_from_the_editor_reopens_it_with_the_error_and_the_edit() {
    let (mut s, sess) = editing_297();
    // The user forgot a comma and changed the amount.
    let broken = sess
        .text
        .replace("11089.50,", "11089.00")
        .replace("\n}\n", ",\n  \"Note\": \"  two  spaces \"\n}\n");
    let fx = settle(&mut s, Msg::Edited(sess.clone(), Ok(broken.clone())));
    let [Effect::Edit(again)] = &fx[..] else {
        panic!("the editor opens again: {fx:?}")
    };
    assert!(s.popup.is_none(), "nothing to confirm, nothing thrown away");
    let status = s.status.as_ref().unwrap();
    assert_eq!(status.level, Level::Warn);
    assert!(
        status.text.contains("not valid JSON (line 7, column 3"),
        "{}",
        status.text
    );
    let lines: Vec<&str> = again.text.lines().collect();
    assert_eq!(
        lines[0],
        "// workq: this is not valid JSON: line 7, column 3: expected `,` or `}`"
    );
    assert!(lines[1].starts_with("// workq: fix it and save"));
    assert_eq!(
        lines[5], "  \"Amount\": 11089.00",
        "the comma is missing here…"
    );
    assert!(
        lines[6].starts_with("  \"Currency\""),
        "…and noticed on line 7, as said"
    );
    assert_eq!(
        &again.text[again.text.find("{").unwrap()..],
        broken,
        "the edit is kept as typed"
    );
    assert_eq!(
        (again.id.as_str(), again.original.as_str()),
        (sess.id.as_str(), sess.original.as_str())
    );

    // Fixed, with the notes left in: they are taken out; the rest is stored as written.
    let fixed = again.text.replace("11089.00\n", "11089.00,\n");
    settle(&mut s, Msg::Edited(again.clone(), Ok(fixed)));
    assert!(s.status.is_none(), "the warning about the bad save is gone");
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!("{:?}", s.popup)
    };
    let want = broken.replace("11089.00\n", "11089.00,\n");
    assert!(
        matches!(&c.action, ActionKind::Requeue { value: Some(v), .. } if *v == want.strip_suffix('\n').unwrap()),
        "{:?}",
        c.action
    );
    assert_eq!(c.target, Target::Ids(vec![item(297).id]));
}

#[test]
fn leaving_the_reopened_editor_or_saving_it_empty_gives_up() {
    let (mut s, sess) = editing_297();
    let fx = settle(&mut s, Msg::Edited(sess.clone(), Ok("{oops".into())));
    let [Effect::Edit(again)] = &fx[..] else {
        panic!("{fx:?}")
    };
    // Quit without saving: the file is as it was opened.
    assert!(settle(&mut s, Msg::Edited(again.clone(), Ok(again.text.clone()))).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("abandoned"));
    assert!(s.popup.is_none());
    for empty in ["", "\n", "// workq: x\n\n"] {
        let (mut s, sess) = editing_297();
        assert!(settle(&mut s, Msg::Edited(sess, Ok(empty.into()))).is_empty());
        assert!(
            s.status.as_ref().unwrap().text.contains("abandoned"),
            "{empty:?}"
        );
        assert!(s.popup.is_none());
    }
    // The editor itself failed: said in a popup, nothing changes.
    let (mut s, sess) = editing_297();
    assert!(settle(&mut s, Msg::Edited(sess, Err("vi exited with 1".into()))).is_empty());
    assert!(
        matches!(&s.popup, Some(Popup::Error { message, .. }) if message.contains("vi exited"))
    );
}

#[test]
fn a_text_value_is_edited_as_text() {
    use crate::tui::value_edit::{EditSession, Outcome};
    let sess = EditSession::new("x".into(), "Rechnung 42\n  eingerückt".into());
    assert!(!sess.json);
    assert_eq!(sess.text, "Rechnung 42\n  eingerückt\n");
    assert_eq!(sess.outcome(&sess.text), Outcome::Unchanged);
    assert_eq!(
        sess.outcome("{not json, and fine\r\n"),
        Outcome::Changed("{not json, and fine".into())
    );
    // A number is text, not a structure: it may become any text.
    let n = EditSession::new("y".into(), "4999.00".into());
    assert!(!n.json);
    assert_eq!(
        n.outcome("4999.00 EUR\n"),
        Outcome::Changed("4999.00 EUR".into())
    );
}

#[test]
fn editing_a_queued_item_is_refused_with_a_reason() {
    let mut s = items_state(80, 24);
    assert_eq!(s.items.current().unwrap().status, Status::Queued);
    assert!(settle(&mut s, k('e')).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("only exception"));
}

#[test]
fn ticks_move_the_clock_and_expire_the_status_line_without_refetching() {
    let mut s = items_state(80, 24);
    crate::tui::update::set_status(&mut s, Level::Info, "hello".into());
    // Nothing changed in the engine: a tick asks for nothing, however large the list.
    let fx = update(&mut s, Msg::Tick(now() + chrono::Duration::seconds(2)));
    assert_eq!(fx, vec![]);
    assert!(s.status.is_some());
    assert!(update(&mut s, Msg::Tick(now() + chrono::Duration::seconds(10))).is_empty());
    assert!(s.status.is_none());
    // A change from the engine refetches what is shown.
    let fx = update(&mut s, Msg::Changed);
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadQueues(_))));
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadPage { .. })));
}

#[test]
fn time_alone_rechecks_the_summaries_now_and_then_and_the_rows_only_when_they_moved() {
    use crate::tui::update::TIME_REFRESH_SECS;
    let mut s = items_state(80, 24);
    let later = |secs: i64| Msg::Tick(now() + chrono::Duration::seconds(secs));
    assert!(update(&mut s, later(TIME_REFRESH_SECS - 1)).is_empty());
    let fx = update(&mut s, later(TIME_REFRESH_SECS));
    let [Effect::LoadQueues(seq), Effect::LoadAlerts] = fx[..] else {
        panic!("only the summaries: {fx:?}")
    };
    // (Alerts come with every summary refresh: time alone can fire one.)
    // Same SLA and expiry figures: the page is not asked again.
    assert_eq!(
        update(&mut s, Msg::Queues(seq, Ok(fixtures::queues()))),
        vec![]
    );
    assert!(update(&mut s, later(TIME_REFRESH_SECS + 1)).is_empty());
    // Time moved an item out of SLA: the rows on screen are fetched again.
    let fx = update(&mut s, later(2 * TIME_REFRESH_SECS));
    let [Effect::LoadQueues(seq), Effect::LoadAlerts] = fx[..] else {
        panic!("{fx:?}")
    };
    let mut moved = fixtures::queues();
    moved[0].out_of_sla += 1;
    let fx = update(&mut s, Msg::Queues(seq, Ok(moved)));
    assert!(
        matches!(fx[..], [Effect::LoadPage { .. }]),
        "the page again: {fx:?}"
    );
}

#[test]
fn mouse_clicks_tabs_rows_and_scrolls() {
    let mut s = items_state(80, 24);
    // Header: " workq " then " 1 Queues " starts at column 8.
    settle(&mut s, click(9, 0));
    assert_eq!(s.view, View::Queues);
    // The second queue row (rows start at y=3: border, header).
    settle(&mut s, click(5, 4));
    assert_eq!(s.queues.selected.as_deref(), Some("customer-onboarding"));
    settle(&mut s, click(5, 4));
    assert_eq!(s.view, View::Items, "clicking the selected row opens it");
    settle(
        &mut s,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 5,
            row: 8,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(s.items.cursor, 3);
    // The items rows start at y=4.
    settle(&mut s, click(10, 4));
    assert_eq!(s.items.cursor, 0);
    // Tabs: " All … " starts at column 1; clicking further right hits "Queued".
    let labels = crate::tui::views::items::tab_labels(&s);
    let x = 1 + labels[0].1.chars().count() as u16 + 2;
    settle(&mut s, click(x, 1));
    assert_eq!(s.items.tab, Some(Status::Queued));
    // Mouse off: clicks are ignored.
    settle(&mut s, k('M'));
    settle(&mut s, click(9, 0));
    assert_eq!(s.view, View::Items);
}

#[test]
fn resize_keeps_the_cursor_on_screen() {
    let mut s = items_state(80, 48);
    for _ in 0..30 {
        settle(&mut s, k('j'));
    }
    settle(&mut s, Msg::Resize(80, 24));
    let rows = crate::tui::update::visible_rows(&s);
    assert!(s.items.cursor >= s.items.top && s.items.cursor < s.items.top + rows);
}

#[test]
fn settings_line_round_trips() {
    let q = &fixtures::queues()[0].queue;
    let line = crate::tui::update::settings_line(q);
    let st = crate::tui::update::parse_settings(&line).unwrap();
    assert_eq!(st.sla, q.sla);
    assert_eq!(st.deadline, q.deadline);
    assert_eq!(st.tz.as_deref(), Some("Europe/Berlin"));
    assert_eq!(st.concurrency, q.concurrency);
    assert_eq!(st.lease, Some(q.lease));
    assert!(crate::tui::update::parse_settings("sla=forever").is_err());
    assert!(crate::tui::update::parse_settings("colour=red").is_err());
    // `none` unsets what can be unset; `-` leaves it.
    let st = crate::tui::update::parse_settings("sla=none deadline=none ttl=- retries=2").unwrap();
    assert_eq!(st.clear, ["sla", "deadline"]);
    assert_eq!((st.sla, st.ttl, st.max_retries), (None, None, Some(2)));
    assert!(crate::tui::update::parse_settings("retries=none").is_err());
    // The retry backoff: shown as DUR,MAX, saved back as it was, cleared with none.
    let mut q = q.clone();
    assert!(crate::tui::update::settings_line(&q).contains("retry-backoff=- "));
    q.retry_backoff = Some(Backoff {
        delay: Duration::from_secs(30),
        max: Duration::from_secs(600),
    });
    let line = crate::tui::update::settings_line(&q);
    assert!(line.contains("retry-backoff=30s,10m "), "{line}");
    let st = crate::tui::update::parse_settings(&line).unwrap();
    assert_eq!(st.retry_backoff, q.retry_backoff);
    let st = crate::tui::update::parse_settings("retry-backoff=none").unwrap();
    assert_eq!(st.clear, ["retry-backoff"]);
    let e = crate::tui::update::parse_settings("retry-backoff=10m,1m").unwrap_err();
    assert!(
        e.starts_with("retry-backoff: ") && e.contains("shorter"),
        "{e}"
    );
}

#[test]
fn refresh_filter_keys_and_paging_back() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, ctrl('r'));
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadQueues(_))));
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadPage { .. })));
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    // f opens the palette with the command typed.
    settle(&mut s, k('f'));
    assert!(matches!(&s.popup, Some(Popup::Palette { input, .. }) if input.text == "filter "));
    typed(&mut s, "priority=high");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.items.filter.priority, Some(Priority::High));
    // F drops it again.
    let fx = update(&mut s, k('F'));
    assert!(matches!(&fx[0], Effect::LoadPage { filter, .. } if filter.priority.is_none()));
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    settle(&mut s, code(KeyCode::PageDown));
    let down = s.items.cursor;
    assert!(down > 0);
    settle(&mut s, ctrl('u'));
    assert_eq!(s.items.cursor, 0);
    settle(&mut s, code(KeyCode::End));
    assert_eq!(s.items.cursor, s.items.total - 1);
    settle(&mut s, code(KeyCode::Home));
    assert_eq!(s.items.cursor, 0);
}

#[test]
fn config_problems_are_all_reported() {
    let problems = crate::tui::settings::check(
        "theme = \"purple\"\n[keys]\nhold = \"r\"",
        "config.toml",
        None,
    )
    .problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn palette_completes_arguments() {
    let mut s = state(80, 24);
    settle(&mut s, k(':'));
    typed(&mut s, "items cust");
    settle(&mut s, code(KeyCode::Tab));
    let Some(Popup::Palette { input, .. }) = &s.popup else {
        panic!()
    };
    assert_eq!(input.text, "items customer-onboarding ");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.items.queue.as_deref(), Some("customer-onboarding"));
    settle(&mut s, k(':'));
    typed(&mut s, "filter status=exception re");
    let choices = crate::tui::update::palette_choices(&s, "filter status=exception re");
    assert!(choices
        .iter()
        .any(|c| c.line == "filter status=exception reason=business "));
    settle(&mut s, code(KeyCode::Esc));
    assert!(crate::tui::update::palette_choices(&s, "theme l")[0].line == "theme light ");
}

#[test]
fn config_file_sets_theme_mouse_keys_and_reports_problems_in_a_popup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "theme = \"light\"\nmouse = false\n[keys]\nrequeue = \"ctrl-q\"\nhold = \"j\"\n",
    )
    .unwrap();
    let opts = crate::tui::app::Options {
        source: "x".into(),
        read_only: false,
        actor: "user:t".into(),
        notice: None,
    };
    let s = crate::tui::app::initial_state_from(&opts, Some(path.clone()), true);
    assert_eq!(s.theme, ThemeName::Light);
    assert!(!s.mouse);
    assert!(s.no_color);
    assert_eq!(s.config_file, path.display().to_string());
    let q = crate::tui::commands::Key::parse("ctrl-q").unwrap();
    assert_eq!(
        s.keymap.lookup(q, View::Items, false),
        Some(crate::tui::commands::Command::Requeue)
    );
    // hold = "j" clashes with moving down: refused, said at start in the status line (a
    // popup would take the first key press), listed in help.
    assert!(s.popup.is_none(), "{:?}", s.popup);
    let st = s.status.as_ref().unwrap();
    assert_eq!(st.level, Level::Warn);
    assert!(
        st.text.contains("config: 1 problem") && st.text.contains("'j' is already 'down'"),
        "{}",
        st.text
    );
    assert!(s.config_problems[0].contains("keys.hold"));
    // A missing file is no problem.
    let s = crate::tui::app::initial_state_from(&opts, Some(dir.path().join("none.toml")), false);
    assert!(s.popup.is_none() && s.status.is_none());
    assert!(s.config_problems.is_empty());
}

#[test]
fn mouse_written_below_keys_is_reported_alone_and_the_first_key_press_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    // The help's example, then `mouse = true` below it: inside [keys] as TOML reads it.
    let text = format!(
        "[keys]\n{}\nmouse = true\n",
        crate::tui::commands::KEYS_EXAMPLE
    );
    std::fs::write(&path, &text).unwrap();
    let opts = crate::tui::app::Options {
        source: "x".into(),
        read_only: false,
        actor: "user:t".into(),
        notice: None,
    };
    let mut s = crate::tui::app::initial_state_from(&opts, Some(path), false);
    assert_eq!(s.config_problems.len(), 1, "{:?}", s.config_problems);
    assert!(
        s.config_problems[0].contains("keys.mouse")
            && s.config_problems[0].contains("above the [keys] line"),
        "{:?}",
        s.config_problems
    );
    // The rest of the file applies: the example's key requeues.
    let alt_r = crate::tui::commands::Key::parse("alt-r").unwrap();
    assert_eq!(
        s.keymap.lookup(alt_r, View::Items, false),
        Some(crate::tui::commands::Command::Requeue)
    );
    // The first key press does what it says.
    settle(&mut s, Msg::Resize(80, 24));
    assert!(s.popup.is_none());
    update(&mut s, k('3'));
    assert_eq!(s.view, View::Exceptions);
    // Written where it belongs, nothing to report.
    let (cfg, problems) = crate::tui::settings::parse(
        &format!(
            "mouse = true\n[keys]\n{}\n",
            crate::tui::commands::KEYS_EXAMPLE
        ),
        "c.toml",
    );
    assert_eq!(problems, Vec::<String>::new());
    assert_eq!(cfg.mouse, Some(true));
    // Other bad entries of [keys] say what a key setting looks like.
    let (_, problems) =
        crate::tui::settings::parse("[keys]\nhold = 3\nnote = [\"n\", 4]\n", "c.toml");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("give a key or a list of keys")),
        "{problems:?}"
    );
}

#[test]
fn enter_on_a_worker_opens_what_it_holds() {
    let mut s = state(160, 48);
    for f in update(&mut s, k('4')) {
        if let Some(m) = fixtures::respond(&f) {
            settle(&mut s, m);
        }
    }
    assert_eq!(s.view, View::Workers);
    assert!(s.workers.loaded);
    let name = s.workers.list[s.workers_cursor()].name.clone();
    let fx = update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Items);
    let loads: Vec<&Filter> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::LoadPage { filter, .. } => Some(filter),
            _ => None,
        })
        .collect();
    assert_eq!(loads.len(), 1, "{fx:?}");
    assert_eq!(loads[0].worker.as_deref(), Some(name.as_str()));
    assert_eq!(loads[0].statuses, [Status::Processing], "what it holds now");
    // esc goes back to the workers.
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.view, View::Workers);
}

// ------------------------------------------------------------------ issue 6: safe actions

/// The popup an action refusal opens, over the items view.
fn refused(s: &mut State) {
    settle(s, k('u'));
    settle(s, code(KeyCode::Enter));
    settle(s, Msg::Acted(Err(released_refused("X"))));
    assert!(matches!(s.popup, Some(Popup::Error { .. })));
}

#[test]
fn keys_typed_ahead_of_an_error_popup_do_nothing() {
    let mut s = items_state(80, 24);
    refused(&mut s);
    let cursor = s.items.cursor;
    // Typed before the error showed: "h" would open a hold, "x…" would become its note.
    let fx = typed(&mut s, "hxq j");
    assert!(fx.is_empty(), "{fx:?}");
    assert!(
        matches!(s.popup, Some(Popup::Error { .. })),
        "still the error: {:?}",
        s.popup
    );
    assert!(!s.quit);
    assert_eq!(s.items.cursor, cursor, "nothing moved");
    assert!(s.items.marks.is_empty(), "nothing marked");
    // Enter (or esc) closes it, and only then keys act again.
    settle(&mut s, code(KeyCode::Enter));
    assert!(s.popup.is_none());
    settle(&mut s, k('h'));
    assert!(matches!(s.popup, Some(Popup::Confirm(_))));
    // Esc closes an error too.
    settle(&mut s, code(KeyCode::Esc));
    refused(&mut s);
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.popup.is_none());
}

fn preview(count: u64, changes: u64, skipped: Vec<Tally>) -> Preview {
    Preview {
        count,
        changes,
        skipped,
        warnings: vec!["3 will be expired once released".into()],
        sample: vec![item(2)],
    }
}

fn confirm_of(s: &State) -> &Confirm {
    match &s.popup {
        Some(Popup::Confirm(c)) => c,
        other => panic!("no confirmation: {other:?}"),
    }
}

#[test]
fn a_confirmation_says_what_changes_and_what_is_skipped_and_applies_only_after_the_preview() {
    let mut s = items_state(160, 48);
    s.items.mark_all = true;
    let fx = update(&mut s, k('r'));
    let Some(Effect::Preview(seq, Target::Filter(_), ActionKind::Requeue { .. })) = fx.first()
    else {
        panic!("{fx:?}")
    };
    let seq = *seq;
    // Enter before the preview landed applies nothing.
    assert!(settle(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("still counting"));
    let skip = Tally {
        count: 28,
        why: "cannot go from queued to queued".into(),
    };
    settle(&mut s, Msg::Preview(seq, Ok(preview(47, 19, vec![skip]))));
    assert_eq!(confirm_of(&s).changes(), Some(19));
    let screen = crate::tui::tests::render::screen(&s);
    assert!(screen.contains("changes 19 of 47 items"), "{screen}");
    assert!(
        screen.contains("skips 28: cannot go from queued to queued"),
        "{screen}"
    );
    assert!(
        screen.contains("3 will be expired once released"),
        "{screen}"
    );
    let fx = settle(&mut s, code(KeyCode::Enter));
    let Some(Effect::Act(req)) = fx.first() else {
        panic!("{fx:?}")
    };
    assert!(req.skip_refused, "applies to the 19 the preview named");
    // What the engine skipped is said after, too.
    settle(
        &mut s,
        Msg::Acted(Ok(ActionResult {
            action_id: 4,
            verb: "requeue".into(),
            touched: 19,
            skipped: vec![Tally {
                count: 28,
                why: "x".into(),
            }],
        })),
    );
    let st = s.status.clone().unwrap();
    assert!(
        st.text
            .contains("requeue: 19 items (action 4) · skipped 28"),
        "{}",
        st.text
    );
    assert_eq!(st.level, Level::Warn);
}

#[test]
fn a_confirmation_of_nothing_applies_nothing() {
    let mut s = items_state(80, 24);
    let fx = update(&mut s, k('u'));
    let Some(Effect::Preview(seq, ..)) = fx.first() else {
        panic!("{fx:?}")
    };
    let why = Tally {
        count: 1,
        why: "cannot release an item that is queued".into(),
    };
    settle(&mut s, Msg::Preview(*seq, Ok(preview(1, 0, vec![why]))));
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert!(fx.is_empty(), "{fx:?}");
    assert!(matches!(s.popup, Some(Popup::Confirm(_))), "stays open");
    let st = &s.status.as_ref().unwrap().text;
    assert!(
        st.contains("nothing to release") && st.contains("queued"),
        "{st}"
    );
}

#[test]
fn over_a_thousand_items_the_count_is_typed_to_confirm() {
    let mut s = state(160, 48);
    settle(&mut s, k('3'));
    // The inbox's biggest group: 1,240 items (the fixture's preview).
    settle(&mut s, k('h'));
    let c = confirm_of(&s);
    assert_eq!(c.changes(), Some(1240));
    assert!(c.needs_count());
    assert_eq!(c.focus, Field::Count, "typing goes to the count");
    let screen = crate::tui::tests::render::screen(&s);
    assert!(screen.contains("type 1,240 to apply:"), "{screen}");
    // Enter alone, or a wrong count, applies nothing.
    assert!(settle(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("type 1,240"));
    typed(&mut s, "124");
    assert!(settle(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(matches!(s.popup, Some(Popup::Confirm(_))));
    // Tab goes to the note; the note does not count as the count, and a failed enter
    // takes typing back to the count.
    settle(&mut s, code(KeyCode::Tab));
    assert_eq!(confirm_of(&s).focus, Field::Note);
    typed(&mut s, "0 vendor fixed");
    assert_eq!(confirm_of(&s).typed.text, "124");
    assert!(settle(&mut s, code(KeyCode::Enter)).is_empty());
    assert_eq!(confirm_of(&s).focus, Field::Count);
    typed(&mut s, "0");
    let fx = settle(&mut s, code(KeyCode::Enter));
    let Some(Effect::Act(req)) = fx.first() else {
        panic!("{fx:?} {:?}", s.status)
    };
    assert_eq!(req.action, ActionKind::Hold);
    assert_eq!(req.note.as_deref(), Some("0 vendor fixed"));
    // "1,240" is the same count.
    let mut s = state(160, 48);
    settle(&mut s, k('3'));
    settle(&mut s, k('h'));
    typed(&mut s, "1,240");
    assert!(matches!(
        settle(&mut s, code(KeyCode::Enter)).first(),
        Some(Effect::Act(_))
    ));
}

/// An undo that restores over a thousand items asks for the count like any action that
/// big: from `z` after an action of this console, and from the action log.
#[test]
fn an_undo_of_over_a_thousand_items_asks_for_the_count() {
    let big = |id: i64| {
        let mut dry = undo_result(id, 19_988, 20_000);
        dry.dry_run = true;
        dry.changed = vec![Tally {
            count: 12,
            why: "processed".into(),
        }];
        dry
    };
    let mut from_z = items_state(160, 48);
    from_z.last_action = Some(ActionResult {
        action_id: 9,
        verb: "requeue".into(),
        touched: 20_000,
        skipped: vec![],
    });
    let mut from_log = state(160, 48);
    settle(&mut from_log, k('A'));
    assert_eq!(from_log.view, View::Actions);
    for s in [&mut from_z, &mut from_log] {
        assert_eq!(settle(s, k('z')), vec![Effect::UndoPreview(s.seq, 9)]);
        // Before the dry run lands nothing is typed and nothing undoes.
        typed(s, "19");
        let Some(Popup::Undo(u)) = &s.popup else {
            panic!("{:?}", s.popup)
        };
        assert_eq!(u.typed.text, "");
        let seq = s.seq;
        settle(s, Msg::UndoPreview(seq, Ok(big(9))));
        let screen = crate::tui::tests::render::screen(s);
        assert!(
            screen.contains("restores 19,988 of 20,000 items"),
            "{screen}"
        );
        assert!(screen.contains("type 19,988 to undo:"), "{screen}");
        // Enter alone, or a wrong count, undoes nothing and says what to type.
        assert!(settle(s, code(KeyCode::Enter)).is_empty());
        assert!(matches!(s.popup, Some(Popup::Undo(_))));
        assert_eq!(
            s.status.as_ref().unwrap().text,
            "type 19,988 to undo it for that many items (over 1,000)"
        );
        typed(s, "1998");
        assert!(settle(s, code(KeyCode::Enter)).is_empty());
        // Keys that are commands elsewhere are text here.
        typed(s, "z");
        assert!(settle(s, code(KeyCode::Enter)).is_empty());
        settle(s, code(KeyCode::Backspace));
        typed(s, "8");
        assert_eq!(
            settle(s, code(KeyCode::Enter)),
            vec![Effect::Undo(UndoRequest::new(9, "user:tester"))]
        );
    }
    // "19,988" is the same count; a small undo needs none.
    let mut s = state(160, 48);
    settle(&mut s, k('A'));
    settle(&mut s, k('z'));
    let seq = s.seq;
    settle(&mut s, Msg::UndoPreview(seq, Ok(big(9))));
    typed(&mut s, "19,988");
    assert!(matches!(
        settle(&mut s, code(KeyCode::Enter)).first(),
        Some(Effect::Undo(_))
    ));
    settle(&mut s, k('z'));
    let seq = s.seq;
    let mut small = undo_result(9, 1000, 1000);
    small.dry_run = true;
    settle(&mut s, Msg::UndoPreview(seq, Ok(small)));
    assert!(!crate::tui::tests::render::screen(&s).contains("to undo:"));
    assert!(matches!(
        settle(&mut s, code(KeyCode::Enter)).first(),
        Some(Effect::Undo(_))
    ));
}

#[test]
fn a_small_action_needs_no_count() {
    let mut s = items_state(80, 24);
    settle(&mut s, k('h'));
    assert!(!confirm_of(&s).needs_count());
    assert!(matches!(
        settle(&mut s, code(KeyCode::Enter)).first(),
        Some(Effect::Act(_))
    ));
}

#[test]
fn the_action_log_lists_actions_and_undoes_the_selected_one() {
    let mut s = state(160, 48);
    let fx = update(&mut s, k('A'));
    assert_eq!(s.view, View::Actions);
    assert!(fx.iter().any(|f| matches!(f, Effect::LoadActions(_))));
    for f in fx {
        if let Some(m) = fixtures::respond(&f) {
            settle(&mut s, m);
        }
    }
    assert!(s.actions.loaded);
    let screen = crate::tui::tests::render::screen(&s);
    assert!(screen.contains("Actions · 3 latest · z undoes"), "{screen}");
    assert!(screen.contains("vendor master fixed"), "{screen}");
    assert!(
        screen.contains("25m ago by user:bo, 9 of 12 restored"),
        "{screen}"
    );
    // Not the last action from this console: the selected one (the note, second).
    settle(&mut s, k('j'));
    let fx = settle(&mut s, k('z'));
    assert_eq!(fx, vec![Effect::UndoPreview(s.seq, 5)]);
    let Some(Popup::Undo(u)) = &s.popup else {
        panic!("{:?}", s.popup)
    };
    assert!(
        u.what.contains("add a note · 1 item · by user:ana"),
        "{}",
        u.what
    );
    let seq = s.seq;
    let mut dry = undo_result(5, 0, 1);
    dry.dry_run = true;
    dry.changed = vec![Tally {
        count: 1,
        why: "deleted".into(),
    }];
    settle(&mut s, Msg::UndoPreview(seq, Ok(dry)));
    let screen = crate::tui::tests::render::screen(&s);
    assert!(screen.contains("restores 0 of 1 items"), "{screen}");
    assert!(
        screen.contains("keeps 1 that changed since: 1 deleted"),
        "{screen}"
    );
    assert!(screen.contains(" z undo "), "the footer says how: {screen}");
    // Nothing to restore: enter does not undo.
    assert!(settle(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("nothing to undo"));
    settle(&mut s, code(KeyCode::Esc));
    // The first one restores some: enter undoes it, and the partial result is said.
    settle(&mut s, k('k'));
    settle(&mut s, k('z'));
    let seq = s.seq;
    let mut dry = undo_result(9, 88, 109);
    dry.dry_run = true;
    settle(&mut s, Msg::UndoPreview(seq, Ok(dry)));
    let fx = settle(&mut s, code(KeyCode::Enter));
    assert_eq!(fx, vec![Effect::Undo(UndoRequest::new(9, "user:tester"))]);
    let mut done = undo_result(9, 88, 109);
    done.changed = vec![
        Tally {
            count: 19,
            why: "processed".into(),
        },
        Tally {
            count: 2,
            why: "on hold".into(),
        },
    ];
    let fx = settle(&mut s, Msg::Undone(Ok(done)));
    let st = s.status.clone().unwrap();
    assert_eq!(
        st.text,
        "undid action 9 (requeue): restored 88 of 109; 21 changed since: 19 processed, 2 on hold"
    );
    assert_eq!(st.level, Level::Warn, "partial");
    let _ = fx;
    // An undone action is not undone again.
    settle(&mut s, k('G'));
    assert!(settle(&mut s, k('z')).is_empty());
    assert!(s.status.as_ref().unwrap().text.contains("already undone"));
    // Read-only: the list shows, undo does not.
    s.read_only = true;
    settle(&mut s, k('g'));
    assert!(settle(&mut s, k('z')).is_empty());
    assert!(s.popup.is_none());
}

#[test]
fn pausing_says_so_at_once_and_a_locked_database_is_reported() {
    let mut s = state(80, 24);
    let fx = settle(&mut s, k('P'));
    assert_eq!(
        fx,
        vec![Effect::SetQueueState(
            "vendor-invoices".into(),
            QueueState::Paused
        )]
    );
    assert!(s
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("pausing 'vendor-invoices'…"));
    let busy = Error::busy(Some(std::path::Path::new("demo.db")), None);
    settle(&mut s, Msg::QueueSaved(Err(busy)));
    let Some(Popup::Error { message, .. }) = &s.popup else {
        panic!("{:?}", s.popup)
    };
    assert!(message.contains("locked"));
    assert!(s
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("queue not changed"));
    // The keys pressed while waiting do not dismiss it unseen.
    typed(&mut s, "PjP");
    assert!(matches!(s.popup, Some(Popup::Error { .. })));
}

#[test]
fn a_filter_takes_several_statuses() {
    let mut s = items_state(80, 24);
    let fx = settle(&mut s, k('f'));
    assert!(fx.is_empty());
    settle(&mut s, ctrl('u'));
    typed(&mut s, "filter status=exception,on-hold");
    let fx = update(&mut s, code(KeyCode::Enter));
    let loads: Vec<&Filter> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::LoadPage { filter, .. } => Some(filter),
            _ => None,
        })
        .collect();
    assert_eq!(loads[0].statuses, [Status::Exception, Status::OnHold]);
    assert_eq!(s.items.tab, None);
    assert!(
        crate::tui::views::items::describe(&s.items).contains("exception or on-hold"),
        "the title says which"
    );
    // A tab is one status again.
    for f in fx {
        if let Some(m) = fixtures::respond(&f) {
            settle(&mut s, m);
        }
    }
    settle(&mut s, code(KeyCode::Tab));
    assert_eq!(s.items.effective_filter().statuses, [Status::Queued]);
    // A bad status says which.
    settle(&mut s, k(':'));
    typed(&mut s, "filter status=exception,bogus");
    settle(&mut s, code(KeyCode::Enter));
    let st = &s.status.as_ref().unwrap().text;
    assert!(st.contains("'bogus'"), "{st}");
}

#[test]
fn the_detail_walks_the_list_it_was_opened_from() {
    let mut s = items_state(80, 24);
    // Newest first: the top row is item 299.
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.detail.id, Some(item(299).id));
    let fx = update(&mut s, k(']'));
    assert_eq!(s.view, View::Detail, "still in the detail");
    assert!(
        matches!(&fx[..], [Effect::LoadDetail(_, id)] if *id == item(298).id),
        "{fx:?}"
    );
    for f in fx {
        settle(&mut s, fixtures::respond(&f).unwrap());
    }
    assert_eq!(s.detail.data.as_ref().unwrap().item.id, item(298).id);
    assert_eq!(s.detail.scroll, 0);
    settle(&mut s, k('['));
    settle(&mut s, k('['));
    assert_eq!(s.detail.id, Some(item(299).id));
    assert!(s.status.as_ref().unwrap().text.contains("first item"));
    // Far past the rows first loaded: pages come from the engine as the walk goes on.
    let mut pages = 0;
    for _ in 0..130 {
        let fx = update(&mut s, k(']'));
        pages += fx
            .iter()
            .filter(|e| matches!(e, Effect::LoadPage { .. }))
            .count();
        for f in fx {
            settle(&mut s, fixtures::respond(&f).unwrap());
        }
    }
    assert!(pages > 0, "the walk left the first window");
    assert_eq!(s.detail.id, Some(item(299 - 130).id));
    assert_eq!(s.detail.data.as_ref().unwrap().item.id, item(299 - 130).id);
    assert!(!s.detail.follow);
    // Back in the list, the cursor is where the walk ended.
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.view, View::Items);
    assert_eq!(s.items.current().unwrap().id, item(299 - 130).id);
    // The keys belong to the detail: in the list they are the status tabs.
    settle(&mut s, k(']'));
    assert_eq!(s.view, View::Items);
    assert_eq!(s.items.tab, Some(Status::Queued));
}

/// The inbox: [vendor 1,240 group, vendor 96 group, vendor out of SLA, onboarding CRM
/// group, onboarding expired].
fn inbox_state() -> State {
    let mut s = state(160, 48);
    settle(&mut s, k('3'));
    assert_eq!(s.inbox_rows().len(), 5);
    s
}

#[test]
fn inbox_marks_across_groups_and_queues_and_one_action_applies_to_all() {
    let mut s = inbox_state();
    settle(&mut s, k(' '));
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    settle(&mut s, k(' '));
    assert_eq!(s.inbox.marks.len(), 2);
    let fx = settle(&mut s, k('r'));
    assert!(fx.is_empty(), "{fx:?}");
    let Some(Popup::Confirm(c)) = &s.popup else {
        panic!("{:?} {:?}", s.popup, s.status)
    };
    let Target::Any(fs) = &c.target else {
        panic!("{:?}", c.target)
    };
    let sigs: Vec<(&str, &str)> = fs
        .iter()
        .map(|f| (f.queue.as_deref().unwrap(), f.signature.as_deref().unwrap()))
        .collect();
    assert_eq!(
        sigs,
        [
            ("vendor-invoices", "Vendor * not found in SAP vendor master"),
            ("customer-onboarding", "CRM API timed out after *"),
        ]
    );
    assert!(
        c.what.contains("2 marked inbox rows (1,248 items)"),
        "{}",
        c.what
    );
    // The preview of the union counts what changes; over a thousand, the count is typed.
    assert_eq!(c.changes(), Some(1248));
    assert!(c.needs_count());
    typed(&mut s, "1248");
    let fx = settle(&mut s, code(KeyCode::Enter));
    let [Effect::Act(req)] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert!(matches!(req.target, Target::Any(ref f) if f.len() == 2));
    settle(
        &mut s,
        Msg::Acted(Ok(ActionResult {
            action_id: 9,
            verb: "requeue".into(),
            touched: 1248,
            skipped: vec![],
        })),
    );
    assert!(
        s.inbox.marks.is_empty(),
        "marks go once the action is applied"
    );
    // Esc clears marks before anything else.
    settle(&mut s, k(' '));
    settle(&mut s, code(KeyCode::Esc));
    assert!(s.inbox.marks.is_empty());
    assert_eq!(s.view, View::Exceptions);
}

#[test]
fn inbox_rows_offer_only_the_actions_that_fit_them() {
    let mut s = inbox_state();
    // The expired row: requeue does not fit queued items, extend does.
    settle(&mut s, k('G'));
    assert!(!s.offered(crate::tui::commands::Command::Requeue));
    assert!(s.offered(crate::tui::commands::Command::Extend));
    let fx = settle(&mut s, k('r'));
    assert!(fx.is_empty() && s.popup.is_none(), "{:?}", s.popup);
    let text = &s.status.as_ref().unwrap().text;
    assert!(
        text.contains("requeue does not fit expired") && text.contains("x extend"),
        "{text}"
    );
    settle(&mut s, k('x'));
    assert!(matches!(
        &s.popup,
        Some(Popup::Prompt {
            ask: Ask::Arg(ArgFor::Extend),
            ..
        })
    ));
    settle(&mut s, code(KeyCode::Esc));
    // An exception group: requeue fits, extend does not.
    settle(&mut s, k('g'));
    assert!(s.offered(crate::tui::commands::Command::Requeue));
    settle(&mut s, k('x'));
    assert!(s.popup.is_none());
    assert!(s
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("extend does not fit"));
    // Out of SLA (any unfinished status): priority fits, hold does not.
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    assert_eq!(s.inbox_targets()[0].kind, InboxKind::OutOfSla);
    assert!(s.offered(crate::tui::commands::Command::Priority));
    assert!(!s.offered(crate::tui::commands::Command::Hold));
    // Marked rows: an action is offered when it fits any of them (see below).
    settle(&mut s, k('g'));
    settle(&mut s, k(' '));
    settle(&mut s, k('G'));
    settle(&mut s, k(' '));
    assert_eq!(s.inbox.marks.len(), 2);
    assert!(s.offered(crate::tui::commands::Command::Requeue));
    assert!(s.offered(crate::tui::commands::Command::Extend));
    assert!(s.offered(crate::tui::commands::Command::Hold));
    let fx = settle(&mut s, k('h'));
    assert!(fx.is_empty());
    assert!(
        matches!(&s.popup, Some(Popup::Confirm(c)) if matches!(c.target, Target::Any(_)) && c.misfit.is_empty()),
        "hold fits both: {:?}",
        s.popup
    );
}

/// An exception group and the expired row marked together: requeue is offered on the
/// set, applies to the group, and the preview says before confirming that it skips the
/// expired items and why; extend the other way round. When nothing fits, it is refused.
#[test]
fn a_mixed_inbox_set_applies_what_fits_and_says_what_it_skips() {
    let mut s = inbox_state();
    settle(&mut s, k(' '));
    settle(&mut s, k('G'));
    settle(&mut s, k(' '));
    assert_eq!(s.inbox.marks.len(), 2);
    let group = s.inbox_rows()[0].clone();
    let expired = s.inbox_rows()[4].clone();
    assert_eq!(expired.kind, InboxKind::Expired);
    let fx = settle(&mut s, k('r'));
    assert!(fx.is_empty(), "{fx:?}");
    let c = confirm_of(&s);
    assert_eq!(c.target, Target::Filter(group.filter()), "only the group");
    assert_eq!(
        c.misfit,
        [Tally {
            count: expired.count,
            why: "expired rows: requeue does not fit; use extend".into(),
        }]
    );
    assert!(c.what.contains("2 marked inbox rows"), "{}", c.what);
    let screen = crate::tui::tests::render::screen(&s);
    let total = group.count + expired.count;
    assert!(
        screen.contains(&format!(
            "changes 1,240 of {} items",
            crate::text::thousands(total)
        )),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "skips {}: expired rows: requeue does not fit; use extend",
            expired.count
        )),
        "{screen}"
    );
    // Applied, it is the group's requeue: the expired items are not in it.
    typed(&mut s, "1240");
    let fx = settle(&mut s, code(KeyCode::Enter));
    let [Effect::Act(req)] = &fx[..] else {
        panic!("{fx:?} {:?}", s.status)
    };
    assert_eq!(req.target, Target::Filter(group.filter()));
    assert!(matches!(req.action, ActionKind::Requeue { .. }));
    // Extend the other way round: the expired row, the group skipped.
    let mut s = inbox_state();
    settle(&mut s, k(' '));
    settle(&mut s, k('G'));
    settle(&mut s, k(' '));
    settle(&mut s, k('x'));
    typed(&mut s, "2h");
    settle(&mut s, code(KeyCode::Enter));
    let c = confirm_of(&s);
    assert_eq!(c.target, Target::Filter(expired.filter()));
    assert_eq!(
        c.misfit,
        [Tally {
            count: group.count,
            why: "exception rows: extend does not fit; use requeue".into(),
        }]
    );
    // Nothing fits: refused as before, nothing opened.
    let mut s = inbox_state();
    settle(&mut s, k('j'));
    settle(&mut s, k('j'));
    settle(&mut s, k(' '));
    settle(&mut s, k('G'));
    settle(&mut s, k(' '));
    let rows: Vec<InboxKind> = s.inbox_targets().into_iter().map(|r| r.kind).collect();
    assert_eq!(rows, [InboxKind::OutOfSla, InboxKind::Expired]);
    assert!(!s.offered(crate::tui::commands::Command::Requeue));
    let fx = settle(&mut s, k('r'));
    assert!(fx.is_empty() && s.popup.is_none(), "{:?}", s.popup);
    assert!(s
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("requeue does not fit"));
}

#[test]
fn the_inbox_searches_and_filters_its_rows() {
    let mut s = inbox_state();
    settle(&mut s, k('/'));
    typed(&mut s, "CRM");
    let rows = s.inbox_rows();
    assert_eq!(rows.len(), 1, "live, any case: {rows:?}");
    assert_eq!(rows[0].queue, "customer-onboarding");
    // Search by a word of the example, not of the signature.
    settle(&mut s, code(KeyCode::Esc));
    assert_eq!(s.inbox_rows().len(), 5, "esc drops the search");
    settle(&mut s, k('/'));
    typed(&mut s, "trey research");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.inbox.search.as_deref(), Some("trey research"));
    assert_eq!(s.inbox_rows().len(), 1);
    // What is acted on is what is shown.
    let Some((Target::Filter(f), _)) = crate::tui::update::target(&s) else {
        panic!()
    };
    assert_eq!(
        f.signature.as_deref(),
        Some("Vendor * not found in SAP vendor master")
    );
    // The filter: kind, queue and reason; bad ones say what and change nothing.
    settle(&mut s, k(':'));
    typed(&mut s, "filter kind=expired");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.view, View::Exceptions);
    let rows = s.inbox_rows();
    assert_eq!((rows.len(), &rows[0].kind), (1, &InboxKind::Expired));
    for (bad, says) in [
        ("filter kind=nope", "not one of exception, expired, sla"),
        ("filter queue=nope", "unknown queue 'nope'"),
        ("filter reason=bad", "filter reason"),
        ("filter colour=red", "unknown inbox filter 'colour'"),
    ] {
        settle(&mut s, k(':'));
        typed(&mut s, bad);
        settle(&mut s, code(KeyCode::Enter));
        assert!(
            s.status.as_ref().unwrap().text.contains(says),
            "{bad}: {:?}",
            s.status
        );
        assert_eq!(
            s.inbox.filter.kind,
            Some(RowKind::Expired),
            "{bad} changed nothing"
        );
    }
    settle(&mut s, k(':'));
    typed(&mut s, "filter queue=vendor-invoices reason=business");
    settle(&mut s, code(KeyCode::Enter));
    assert_eq!(s.inbox_rows().len(), 2);
    settle(&mut s, k('F'));
    assert_eq!(s.inbox_rows().len(), 5);
    // Marks survive a search that hides their rows, and still apply.
    settle(&mut s, k(' '));
    settle(&mut s, k('/'));
    typed(&mut s, "crm");
    settle(&mut s, code(KeyCode::Enter));
    settle(&mut s, k(' '));
    assert_eq!(s.inbox_targets().len(), 2);
}

// ------------------------------------------------------------------ the change feed

fn loads(fx: &[Effect]) -> (bool, bool) {
    (
        fx.iter().any(|e| matches!(e, Effect::LoadQueues(_))),
        fx.iter().any(|e| matches!(e, Effect::LoadPage { .. })),
    )
}

fn lost(why: &str) -> Msg {
    Msg::Feed(crate::backend::Gap::Disconnected(why.into()))
}

#[test]
fn a_feed_that_lagged_refetches_what_is_shown() {
    let mut s = items_state(160, 48);
    let fx = update(&mut s, Msg::Feed(crate::backend::Gap::Lagged(40)));
    assert_eq!(loads(&fx), (true, true), "summaries and the page: {fx:?}");
    assert!(
        !s.feed.stale(),
        "missed events are fetched, not a lost feed"
    );
}

#[test]
fn a_lost_feed_marks_the_data_stale_and_resubscribes_later_each_time() {
    let mut s = items_state(160, 48);
    let fx = update(&mut s, lost("the engine closed its change feed"));
    assert_eq!(fx, [Effect::Resubscribe(Duration::from_millis(250))]);
    assert!(s.feed.stale());
    assert_eq!(s.feed.down_since, Some(now()));
    assert_eq!(
        s.feed.retry_at,
        Some(now() + chrono::Duration::milliseconds(250))
    );
    let st = s.status.clone().unwrap();
    assert_eq!(st.level, Level::Warn);
    assert!(
        st.text
            .contains("live updates lost (the engine closed its change feed)"),
        "{st:?}"
    );
    // Time passing does not clear it: only the feed coming back does.
    settle(&mut s, Msg::Tick(now() + chrono::Duration::seconds(20)));
    assert!(s.feed.stale() && s.status.is_none());
    // Back: the marker goes and everything shown is fetched again.
    let fx = update(&mut s, Msg::Resubscribed);
    assert!(!s.feed.stale());
    assert_eq!(s.feed.retry_at, None);
    assert_eq!(loads(&fx), (true, true), "{fx:?}");
    settle(&mut s, Msg::Changed);
    // A feed that keeps going away right after coming back is tried less and less often,
    // never in a tight loop, and at most every 30 s.
    let mut waits = vec![];
    for _ in 0..10 {
        match update(&mut s, lost("connection refused")).as_slice() {
            [Effect::Resubscribe(d)] => waits.push(d.as_millis()),
            other => panic!("{other:?}"),
        }
        settle(&mut s, Msg::Resubscribed);
    }
    assert_eq!(
        waits,
        [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    );
    // A feed that then stayed up a while starts again from the first, short wait.
    let later = s.now + chrono::Duration::seconds(61);
    settle(&mut s, Msg::Tick(later));
    assert_eq!(
        update(&mut s, lost("server restarted")),
        [Effect::Resubscribe(Duration::from_millis(250))]
    );
    assert_eq!(s.feed.down_since, Some(later));
    assert_eq!(s.feed.why, "server restarted");
}

#[test]
fn the_feed_retry_wait_doubles_up_to_its_cap_without_overflow() {
    use crate::tui::update::feed_retry_delay;
    let ms = |n| feed_retry_delay(n).as_millis();
    assert_eq!((ms(0), ms(1), ms(2), ms(3)), (250, 250, 500, 1000));
    assert_eq!(
        (ms(8), ms(9), ms(40), ms(u32::MAX)),
        (30000, 30000, 30000, 30000)
    );
}

/// What the engine answers a release of a queued item.
fn released_refused(id: &str) -> Error {
    Error::refused_action(
        "release",
        "released",
        1,
        vec![crate::backend::Refused {
            id: id.into(),
            from: Status::Queued,
            to: Some(To::Status(Status::Queued)),
            why: "cannot release an item that is queued".into(),
        }],
    )
}
