//! The items view: status tabs with counts, the filter in words, and a table drawn from the
//! loaded window of rows (rows not loaded yet show as placeholders, never as a stall).

use super::{age, body, compact, cut, items_rows_area, safe, status_text};
use crate::model::*;
use crate::text::thousands;
use crate::tui::state::{ItemsState, State};
use crate::tui::theme::Theme;
use crate::tui::update::TABS;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

fn tab_name(t: Option<Status>, short: bool) -> &'static str {
    if short {
        return match t {
            None => "All",
            Some(Status::Queued) => "Queued",
            Some(Status::Processing) => "Proc",
            Some(Status::Exception) => "Exc",
            Some(Status::OnHold) => "Hold",
            Some(Status::Processed) => "Done",
        };
    }
    match t {
        None => "All",
        Some(Status::Queued) => "Queued",
        Some(Status::Processing) => "Processing",
        Some(Status::Exception) => "Exception",
        Some(Status::OnHold) => "On hold",
        Some(Status::Processed) => "Processed",
    }
}

/// Tab labels with their counts: from the maintained counters when only queue and status
/// narrow the list, else the active tab shows the filtered total.
pub fn tab_labels(s: &State) -> Vec<(Option<Status>, String)> {
    let it = &s.items;
    let counts = s.counts_for(it.queue.as_deref());
    let labels = |short: bool| -> Vec<(Option<Status>, String)> {
        TABS.iter()
            .map(|tab| {
                let n = if !it.plain() {
                    (*tab == it.tab && it.loaded).then_some(it.total)
                } else if !s.queues.loaded {
                    None
                } else {
                    Some(match tab {
                        None => counts.total(),
                        Some(st) => counts.get(*st),
                    })
                };
                let label = match n {
                    Some(n) => format!(" {} {} ", tab_name(*tab, short), compact(n)),
                    None => format!(" {} ", tab_name(*tab, short)),
                };
                (*tab, label)
            })
            .collect()
    };
    let fits = |ls: &[(Option<Status>, String)]| {
        ls.iter().map(|(_, l)| l.chars().count() + 1).sum::<usize>() < s.size.0 as usize
    };
    let long = labels(false);
    if fits(&long) {
        return long;
    }
    let short = labels(true);
    if fits(&short) {
        return short;
    }
    // Very narrow: only the active tab keeps its count.
    short
        .into_iter()
        .map(|(tab, l)| {
            if tab == it.tab {
                (tab, l)
            } else {
                (tab, format!(" {} ", tab_name(tab, true)))
            }
        })
        .collect()
}

/// The tab under a click.
pub fn tab_at(s: &State, x: u16, y: u16) -> Option<Option<Status>> {
    if y != body(s.size).y {
        return None;
    }
    let mut at = 1u16;
    for (tab, label) in tab_labels(s) {
        let w = label.chars().count() as u16;
        if x >= at && x < at + w {
            return Some(tab);
        }
        at += w + 1;
    }
    None
}

/// The filter in words for the table title.
pub fn describe(it: &ItemsState) -> String {
    let mut parts = vec![it.queue.clone().unwrap_or_else(|| "all queues".into())];
    if let Some(g) = &it.group {
        parts.push(g.clone());
    } else {
        let f = &it.filter;
        // Several statuses (`status=exception,on-hold`): no one tab says so.
        if !f.statuses.is_empty() {
            let names: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
            parts.push(names.join(" or "));
        }
        if let Some(r) = f.reason {
            parts.push(format!("reason {r}"));
        }
        if let Some(p) = f.priority {
            parts.push(format!("priority {p}"));
        }
        if let Some(x) = f.sla {
            parts.push(format!("SLA {x}"));
        }
        match f.expired {
            Some(true) => parts.push("expired".into()),
            Some(false) => parts.push("not expired".into()),
            None => {}
        }
        if let Some(sig) = &f.signature {
            parts.push(format!("'{sig}'"));
        }
    }
    if let Some(q) = &it.filter.search {
        parts.push(format!("/{q}"));
    }
    parts.join(" · ")
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let it = &s.items;
    // Tabs.
    let mut spans = vec![Span::raw(" ")];
    for (tab, label) in tab_labels(s) {
        let style = if tab == it.tab {
            t.tab_active
        } else {
            match tab {
                Some(st) => t.status(st),
                None => t.tab,
            }
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    f.render_widget(
        Paragraph::new(Line::from(spans)),
        Rect::new(body.x, body.y, body.width, 1),
    );

    let table_area = Rect::new(
        body.x,
        body.y + 1,
        body.width,
        body.height.saturating_sub(1),
    );
    let pos = if it.total == 0 {
        "0".to_string()
    } else {
        format!("{} of {}", thousands(it.cursor + 1), thousands(it.total))
    };
    let marks = if it.mark_all {
        format!(" · all {} marked", thousands(it.total))
    } else if !it.marks.is_empty() {
        format!(" · {} marked", thousands(it.marks.len() as u64))
    } else {
        String::new()
    };
    // The filter holds what was typed (a search, a group's signature).
    let block = super::panel(format!(" {} ", safe(&describe(it))), t).title(
        Line::from(vec![
            Span::styled(format!(" {pos}"), t.base),
            Span::styled(format!("{marks} "), t.marked),
        ])
        .right_aligned(),
    );
    let rows_area = items_rows_area(s.size);
    if it.loaded && it.total == 0 {
        let msg = if it.plain() && it.tab.is_none() {
            "  This queue is empty."
        } else {
            "  Nothing matches. F clears the filter, tab switches status."
        };
        f.render_widget(
            Paragraph::new(vec![Line::raw(""), Line::styled(msg, t.dim)]).block(block),
            table_area,
        );
        return;
    }
    let w = body.width;
    let wide = w >= 140;
    let all = it.queue.is_none();
    let mut header = vec!["", "NAME"];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(if wide { 24 } else { 21 }),
    ];
    if wide {
        header.insert(1, "ID");
        widths.insert(1, Constraint::Length(26));
    }
    if all && w >= 100 {
        header.push("QUEUE");
        widths.push(Constraint::Length(22));
    }
    header.extend(["STATUS", if w >= 100 { "PRI" } else { "P" }, "AGE", "SLA"]);
    widths.extend([
        Constraint::Length(if w >= 100 { 19 } else { 13 }),
        Constraint::Length(if w >= 100 { 6 } else { 1 }),
        Constraint::Length(if w >= 100 { 7 } else { 6 }),
        Constraint::Length(7),
    ]);
    if w >= 100 {
        header.push("TRIES");
        widths.push(Constraint::Length(5));
    }
    header.push("LATEST NOTE");
    widths.push(Constraint::Fill(1));
    let visible = rows_area.height as u64;
    let end = (it.top + visible).min(it.total);
    let rows: Vec<Row> = (it.top..end)
        .map(|pos| {
            let Some(i) = it.row(pos) else {
                return Row::new(vec![Cell::from(""), Cell::from(Span::styled("…", t.dim))]);
            };
            let marked = it.is_marked(&i.id);
            let mut cells = vec![Cell::from(Span::styled(
                if marked { "●" } else { " " },
                t.marked,
            ))];
            if wide {
                cells.push(Cell::from(Span::styled(i.id.clone(), t.dim)));
            }
            let name = safe(i.name.as_deref().unwrap_or(&i.id));
            cells.push(Cell::from(Span::styled(
                name,
                if marked { t.marked } else { t.base },
            )));
            if all && w >= 100 {
                cells.push(Cell::from(safe(&i.queue)));
            }
            let st_style = if i.expired { t.bad } else { t.status(i.status) };
            let mut st_text = status_text(i);
            if w < 100 {
                st_text = st_text
                    .replace("exception/", "exc/")
                    .replace(" (expired)", " expired")
                    .replace(" (delayed)", " later");
            }
            cells.push(Cell::from(Span::styled(st_text, st_style)));
            let pri_style = match i.priority {
                Priority::High => t.warn,
                Priority::Normal => t.base,
                Priority::Low => t.dim,
            };
            // Narrow screens keep one column for priority: ↑ high, ↓ low.
            let pri = match (w >= 100, i.priority) {
                (true, p) => p.as_str(),
                (false, Priority::High) => "↑",
                (false, Priority::Low) => "↓",
                (false, Priority::Normal) => "",
            };
            cells.push(Cell::from(Span::styled(pri, pri_style)));
            cells.push(Cell::from(
                Line::raw(age(s.now, i.enqueued_at)).right_aligned(),
            ));
            cells.push(match i.sla {
                Some(x) => Cell::from(Span::styled(x.as_str(), t.sla(x))),
                None => Cell::from(Span::styled("-", t.dim)),
            });
            if w >= 100 {
                let tries = i.retry_count + i.requeue_count;
                cells.push(Cell::from(
                    Line::raw(if tries > 0 {
                        tries.to_string()
                    } else {
                        String::new()
                    })
                    .right_aligned(),
                ));
            }
            cells.push(Cell::from(Span::styled(
                cut(i.notes.last().map(|n| n.text.as_str()).unwrap_or(""), 200),
                t.dim,
            )));
            let row = Row::new(cells);
            if pos == it.cursor {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let header = Row::new(header.into_iter().map(|h| {
        let arrow = match (h, it.sort) {
            ("NAME", SortBy::Name)
            | ("STATUS", SortBy::Status)
            | ("PRI", SortBy::Priority)
            | ("AGE", SortBy::Enqueued) => {
                if it.descending {
                    "↓"
                } else {
                    "↑"
                }
            }
            _ => "",
        };
        Cell::from(Span::styled(format!("{h}{arrow}"), t.header))
    }));
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1);
    f.render_widget(table, table_area);
    if !it.loaded {
        let msg = Rect::new(
            rows_area.x + 2,
            rows_area.y,
            rows_area.width.saturating_sub(4),
            1,
        );
        f.render_widget(Paragraph::new(Span::styled("loading…", t.dim)), msg);
    }
}
