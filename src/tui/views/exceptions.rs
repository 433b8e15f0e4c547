//! The exceptions inbox: exception groups (queue, reason, masked note), expired and
//! out-of-SLA items, queue by queue. Enter opens a group's items; actions apply to it whole.

use super::{age, compact, cut, list_offset, list_visible, safe};
use crate::text::thousands;
use crate::tui::state::{InboxKind, State};
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let rows = s.inbox_rows();
    let exceptions: u64 = s.inbox.groups.iter().map(|g| g.count).sum();
    let expired: u64 = s.queues.list.iter().map(|q| q.expired).sum();
    let out: u64 = s.queues.list.iter().map(|q| q.out_of_sla).sum();
    // What the person did first (marks, search), then the inbox's figures: a narrow
    // screen cuts the end of a title.
    let all = s.inbox_all_rows();
    let narrowed = rows.len() < all.len();
    let mut title = " Exceptions inbox ".to_string();
    let marked = all.iter().filter(|r| s.inbox.marks.contains(&r.key()));
    let (n_marked, n_items) = marked.fold((0u64, 0u64), |(n, c), r| (n + 1, c + r.count));
    if n_marked > 0 {
        title.push_str(&format!(
            "· {n_marked} marked ({} items) ",
            thousands(n_items)
        ));
    }
    if let Some(q) = &s.inbox.search {
        title.push_str(&format!("· search '{}' ", safe(q)));
    }
    if narrowed {
        title.push_str(&format!("· {} of {} rows ", rows.len(), all.len()));
    }
    if s.inbox.loaded {
        title.push_str(&format!(
            "· {} exceptions in {} groups · {} expired · {} out of SLA ",
            thousands(exceptions),
            s.inbox.groups.len(),
            thousands(expired),
            thousands(out)
        ));
    } else {
        title.push_str("· loading… ");
    }
    let block = super::panel(title, t);
    if s.inbox.loaded && rows.is_empty() && narrowed {
        let clear = s.keymap.label(crate::tui::commands::Command::ClearFilter);
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::styled(
                    format!("  No inbox row matches the search or filter ({clear} clears them)."),
                    t.dim,
                ),
            ])
            .block(block),
            body,
        );
        return;
    }
    if s.inbox.loaded && rows.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::styled(
                    "  Inbox zero: no exceptions, nothing expired, nothing out of SLA.",
                    t.ok,
                ),
            ])
            .block(block),
            body,
        );
        return;
    }
    let wide = body.width >= 120;
    let queue_w: u16 = if wide { 24 } else { 22 };
    // WHAT and EXAMPLE share what the other columns leave (borders, one space between
    // columns); each text is cut to it with an ellipsis, so that WHAT never runs on into
    // EXAMPLE looking like one sentence.
    let free = body
        .width
        .saturating_sub(2 + 1 + queue_w + 6 + if wide { 8 + 5 } else { 3 }) as usize;
    let text_w = if wide { free / 2 } else { free };
    let cursor = s.inbox_cursor(&rows);
    let visible = list_visible(s);
    let offset = list_offset(cursor, visible);
    let mut prev_queue: Option<&str> = if offset > 0 {
        Some(&rows[offset - 1].queue)
    } else {
        None
    };
    let table_rows: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, r)| {
            // The queue name heads its group of rows.
            let q = if prev_queue == Some(r.queue.as_str()) {
                String::new()
            } else {
                safe(&r.queue)
            };
            prev_queue = Some(&r.queue);
            let style = match &r.kind {
                InboxKind::Group { .. } => t.exception,
                InboxKind::Expired | InboxKind::OutOfSla => t.bad,
            };
            let marked = s.inbox.marks.contains(&r.key());
            let mut cells = vec![
                Cell::from(Span::styled(if marked { "●" } else { " " }, t.marked)),
                Cell::from(Span::styled(q, t.title)),
                Cell::from(Line::styled(compact(r.count), style).right_aligned()),
                Cell::from(Span::raw(cut(&r.what(), text_w))),
            ];
            if wide {
                let example = match &r.kind {
                    InboxKind::Group { example, .. } => example.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                cells.push(Cell::from(Span::styled(cut(&example, text_w), t.dim)));
                cells.push(Cell::from(
                    Line::styled(r.newest.map(|n| age(s.now, n)).unwrap_or_default(), t.dim)
                        .right_aligned(),
                ));
            }
            let row = Row::new(cells);
            if i == cursor {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let mut header = vec!["", "QUEUE", "COUNT", "WHAT"];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(queue_w),
        Constraint::Length(6),
        Constraint::Fill(1),
    ];
    if wide {
        header.extend(["EXAMPLE", "LATEST"]);
        widths.extend([Constraint::Fill(1), Constraint::Length(8)]);
    }
    super::draw_table(f, body, block, header, table_rows, widths, t);
}
