//! Workers seen in the last hour: agents with their host, queues and pace, scripted
//! workers, what each holds and when it was last heard from.

use super::{cut, list_offset, list_visible, safe, when};
use crate::model::WorkerState;
use crate::text::thousands;
use crate::tui::state::State;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let w = &s.workers;
    let holding: u64 = w.list.iter().map(|x| x.holding).sum();
    let agents = w.list.iter().filter(|x| x.agent.is_some()).count();
    let stale = w
        .list
        .iter()
        .filter(|x| x.state == WorkerState::Stale)
        .count();
    let title = if w.loaded {
        let mut t = format!(
            " Workers · {} seen in the last hour ({} agent{}) · {} items held ",
            w.list.len(),
            agents,
            if agents == 1 { "" } else { "s" },
            thousands(holding)
        );
        if stale > 0 {
            t.push_str(&format!("· {stale} stale "));
        }
        t
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
            let state = Span::styled(
                x.state.as_str(),
                match x.state {
                    WorkerState::Running if x.holding > 0 => t.processing,
                    WorkerState::Running => t.base,
                    WorkerState::Draining | WorkerState::Stale => t.warn,
                    WorkerState::Stopped => t.dim,
                },
            );
            let a = x.agent.as_ref();
            let queues: Vec<&str> = match a {
                Some(a) => a.queues.iter().map(String::as_str).collect(),
                None => x.queues.iter().map(|q| q.queue.as_str()).collect(),
            };
            let dash = || Cell::from(Line::styled("-", t.dim).right_aligned());
            let mut cells = vec![
                Cell::from(safe(&x.name)),
                Cell::from(state),
                Cell::from(safe(&queues.join(","))),
                a.map_or_else(dash, |a| {
                    Cell::from(Line::raw(a.concurrency.to_string()).right_aligned())
                }),
                Cell::from(Line::raw(when(s, x.last_seen)).right_aligned()),
                Cell::from(Line::raw(thousands(x.holding)).right_aligned()),
                Cell::from(Line::styled(thousands(x.processed), t.processed).right_aligned()),
                Cell::from(
                    Line::styled(
                        thousands(x.failed),
                        if x.failed > 0 { t.exception } else { t.dim },
                    )
                    .right_aligned(),
                ),
                a.map_or_else(dash, |a| {
                    Cell::from(Line::raw(thousands(a.per_minute)).right_aligned())
                }),
            ];
            if wide {
                cells.push(match a {
                    Some(a) => Cell::from(safe(&format!("{} {}", a.host, a.version))),
                    None => Cell::from(Span::styled("script", t.dim)),
                });
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
    let mut header = vec![
        "WORKER", "STATE", "QUEUES", "CONC", "HEARD", "HOLDS", "DONE", "FAILED", "/MIN",
    ];
    let mut widths = vec![
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    if wide {
        header.extend(["HOST / VERSION", "HOLDING"]);
        widths.extend([Constraint::Fill(1), Constraint::Fill(2)]);
    }
    super::draw_table(f, body, block, header, rows, widths, t);
}
