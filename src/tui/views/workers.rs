//! Workers seen in the last hour: what each holds and when it was last heard from.

use super::{cut, list_offset, list_visible, safe, when};
use crate::text::thousands;
use crate::tui::state::State;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

/// A worker not heard from for this long is shown as silent.
const SILENT_SECS: i64 = 60;

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let w = &s.workers;
    let holding: u64 = w.list.iter().map(|x| x.holding).sum();
    let title = if w.loaded {
        format!(
            " Workers · {} seen in the last hour · {} items held ",
            w.list.len(),
            thousands(holding)
        )
    } else {
        " Workers · loading… ".into()
    };
    let block = super::panel(title, t);
    if w.loaded && w.list.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::styled("  No worker has taken an item in the last hour.", t.dim),
            ])
            .block(block),
            body,
        );
        return;
    }
    let wide = body.width >= 120;
    let cursor = s.workers_cursor();
    let visible = list_visible(s);
    let offset = list_offset(cursor, visible);
    let rows: Vec<Row> = w
        .list
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, x)| {
            let silent = (s.now - x.last_seen).num_seconds() > SILENT_SECS;
            let state = if silent {
                Span::styled("silent", t.warn)
            } else if x.holding > 0 {
                Span::styled("working", t.processing)
            } else {
                Span::styled("idle", t.dim)
            };
            let mut cells = vec![
                Cell::from(safe(&x.name)),
                Cell::from(state),
                Cell::from(Line::raw(when(s, x.last_seen)).right_aligned()),
                Cell::from(Line::raw(x.holding.to_string()).right_aligned()),
                Cell::from(Line::styled(thousands(x.processed), t.processed).right_aligned()),
                Cell::from(
                    Line::styled(
                        thousands(x.failed),
                        if x.failed > 0 { t.exception } else { t.dim },
                    )
                    .right_aligned(),
                ),
            ];
            if wide {
                cells.push(Cell::from(Span::styled(
                    cut(&x.holding_ids.join(" "), 80),
                    t.dim,
                )));
            }
            let row = Row::new(cells);
            if i == cursor {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let mut header = vec!["WORKER", "STATE", "HEARD", "HOLDS", "DONE", "FAILED"];
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
    ];
    if wide {
        header.push("HOLDING");
        widths.push(Constraint::Fill(2));
    }
    super::draw_table(f, body, block, header, rows, widths, t);
}
