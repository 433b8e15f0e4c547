//! The action log: every human action, newest first, with whether and how it was undone.
//! Any of them can be undone from here, not just the last one.

use super::{age, cut, list_offset, list_visible, safe};
use crate::model::*;
use crate::text::thousands;
use crate::tui::state::State;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

/// "priority → high", "requeue after 15m": what an action did, in a few words.
pub fn what(a: &ActionInfo, zone: &crate::text::Zone) -> String {
    match &a.kind {
        Some(k) => super::confirm::describe(k, a.at, zone),
        None => a.verb.clone(),
    }
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let a = &s.actions;
    let undo = s.keymap.label(crate::tui::commands::Command::Undo);
    let title = if a.loaded {
        format!(
            " Actions · {} latest · {undo} undoes the selected one ",
            a.list.len()
        )
    } else {
        " Actions · loading… ".into()
    };
    let block = super::panel(title, t);
    if a.loaded && a.list.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::styled("  Nobody has acted on items yet.", t.dim),
            ])
            .block(block),
            body,
        );
        return;
    }
    // The note column only when the undo column keeps room for who undid it.
    let wide = body.width >= 150;
    let cursor = a.cursor();
    let visible = list_visible(s);
    let offset = list_offset(cursor, visible);
    let rows: Vec<Row> = a
        .list
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, x)| {
            let undone = match (x.undone_at, &x.undone_by, x.restored) {
                (Some(at), by, restored) => {
                    let part = match restored {
                        Some(n) if n < x.touched => format!(", {n} of {} restored", x.touched),
                        _ => String::new(),
                    };
                    Span::styled(
                        format!(
                            "{} ago by {}{part}",
                            age(s.now, at),
                            safe(by.as_deref().unwrap_or("?"))
                        ),
                        t.dim,
                    )
                }
                (None, _, _) => Span::raw(""),
            };
            let mut cells = vec![
                Cell::from(Line::raw(x.id.to_string()).right_aligned()),
                Cell::from(Line::raw(format!("{} ago", age(s.now, x.at))).right_aligned()),
                Cell::from(cut(&x.by, 16)),
                Cell::from(cut(&what(x, &s.zone), 28)),
                Cell::from(Line::raw(thousands(x.touched)).right_aligned()),
                Cell::from(cut(&x.queues.join(", "), 20)),
            ];
            if wide {
                cells.push(Cell::from(cut(x.note.as_deref().unwrap_or(""), 40)));
            }
            cells.push(Cell::from(undone));
            let row = Row::new(cells);
            if i == cursor {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let mut header = vec!["ID", "WHEN", "WHO", "ACTION", "ITEMS", "QUEUES"];
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Length(28),
        Constraint::Length(7),
        Constraint::Length(20),
    ];
    if wide {
        header.push("NOTE");
        widths.push(Constraint::Fill(1));
    }
    header.push("UNDONE");
    widths.push(Constraint::Fill(2));
    super::draw_table(f, body, block, header, rows, widths, t);
}
