//! The action log: every human action, newest first, with whether and how it was undone.
//! Any of them can be undone from here, not just the last one.

use super::{age, cut, fit, list_offset, list_visible, safe};
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
    // The cells, then the columns sized to them (over the whole list, so they hold still
    // while the cursor moves): an id of any length and "9m 59s ago" both fit whole.
    let cells: Vec<[String; 6]> = a
        .list
        .iter()
        .map(|x| {
            [
                x.id.to_string(),
                format!("{} ago", age(s.now, x.at)),
                cut(&x.by, 16),
                cut(&what(x, &s.zone), 28),
                thousands(x.touched),
                cut(&x.queues.join(", "), 20),
            ]
        })
        .collect();
    let col = |i: usize| cells.iter().map(move |c| c[i].as_str());
    let rows: Vec<Row> = a
        .list
        .iter()
        .zip(&cells)
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, (x, c))| {
            let undone = match (x.undone_at, &x.undone_by, x.restored) {
                (Some(at), by, restored) => {
                    let part = match restored {
                        Some(n) if n < x.touched => {
                            format!(", {} of {} restored", thousands(n), thousands(x.touched))
                        }
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
            let [id, when, by, action, items, queues] = c.clone();
            let mut cells = vec![
                Cell::from(Line::raw(id).right_aligned()),
                Cell::from(Line::raw(when).right_aligned()),
                Cell::from(by),
                Cell::from(action),
                Cell::from(Line::raw(items).right_aligned()),
                Cell::from(queues),
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
    let right = |h: &'static str| Line::raw(h).right_aligned();
    let mut header = vec![
        right("ID"),
        right("WHEN"),
        Line::raw("WHO"),
        Line::raw("ACTION"),
        right("ITEMS"),
        Line::raw("QUEUES"),
    ];
    let mut widths = vec![
        fit("ID", col(0), 20),
        fit("WHEN", col(1), 20),
        fit("WHO", col(2), 16),
        fit("ACTION", col(3), 28),
        fit("ITEMS", col(4), 14),
        fit("QUEUES", col(5), 20),
    ];
    if wide {
        header.push(Line::raw("NOTE"));
        widths.push(Constraint::Fill(1));
    }
    header.push(Line::raw("UNDONE"));
    widths.push(Constraint::Fill(2));
    super::draw_table(f, body, block, header, rows, widths, t);
}
