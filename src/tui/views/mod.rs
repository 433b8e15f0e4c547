//! Drawing: a pure function of the state. One file per screen and per popup; the layout
//! helpers here are shared with `update` so mouse clicks land where things are drawn.

pub mod actions;
pub mod confirm;
pub mod detail;
pub mod error;
pub mod exceptions;
pub mod help;
pub mod items;
pub mod palette;
pub mod prompt;
pub mod queues;
pub mod workers;

use crate::model::*;
use crate::text::age_secs;
use crate::tui::commands::{self, TABLE};
use crate::tui::state::{Popup, State, View};
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

/// Smallest size the full layout needs; below it a notice asks for more room.
pub const MIN_W: u16 = 40;
pub const MIN_H: u16 = 10;

pub fn full(size: (u16, u16)) -> Rect {
    Rect::new(0, 0, size.0, size.1)
}

/// The area between the header line and the status and footer lines.
pub fn body(size: (u16, u16)) -> Rect {
    Rect::new(0, 1, size.0, size.1.saturating_sub(3))
}

/// Where the rows of the items table are drawn (below the tabs, border and header).
pub fn items_rows_area(size: (u16, u16)) -> Rect {
    let b = body(size);
    Rect::new(
        1,
        b.y + 3,
        size.0.saturating_sub(2),
        b.height.saturating_sub(4),
    )
}

/// The table block of a list view (queues, exceptions, workers).
pub fn list_area(s: &State) -> Rect {
    let b = body(s.size);
    match s.view {
        View::Queues => queues::table_area(s, b),
        _ => b,
    }
}

/// Rows of a list view that fit on screen.
pub fn list_visible(s: &State) -> usize {
    list_area(s).height.saturating_sub(3).max(1) as usize
}

/// First row drawn so that the cursor is on screen.
pub fn list_offset(cursor: usize, visible: usize) -> usize {
    cursor.saturating_sub(visible.saturating_sub(1))
}

/// The list row under screen line `y`, if any.
pub fn list_row_at(s: &State, y: u16) -> Option<usize> {
    let a = list_area(s);
    let first = a.y + 2;
    if y < first || y >= a.y + a.height.saturating_sub(1) {
        return None;
    }
    let (cursor, len) = match s.view {
        View::Queues => (s.queues.cursor(), s.queues.list.len()),
        View::Exceptions => {
            let rows = s.inbox_rows();
            (s.inbox_cursor(&rows), rows.len())
        }
        View::Workers => (s.workers_cursor(), s.workers.list.len()),
        View::Actions => (s.actions.cursor(), s.actions.list.len()),
        _ => return None,
    };
    let row = list_offset(cursor, list_visible(s)) + (y - first) as usize;
    (row < len).then_some(row)
}

fn header_tabs(s: &State) -> Vec<(View, String)> {
    View::TABS
        .iter()
        .map(|v| {
            let key = s
                .keymap
                .keys(match v {
                    View::Queues => commands::Command::Queues,
                    View::Items => commands::Command::Items,
                    View::Exceptions => commands::Command::Exceptions,
                    _ => commands::Command::Workers,
                })
                .first()
                .map(|k| k.to_string())
                .unwrap_or_default();
            let mut label = format!(" {key} {} ", v.title());
            if *v == View::Exceptions {
                let n: u64 = s.queues.list.iter().map(|q| q.counts.exception).sum();
                if n > 0 {
                    label = format!(" {key} {} {} ", v.title(), compact(n));
                }
            }
            (*v, label)
        })
        .collect()
}

const BRAND: &str = " workq ";

/// The view tab under column `x` of the header line.
pub fn header_tab_at(s: &State, x: u16) -> Option<View> {
    let mut at = BRAND.chars().count() as u16 + 1;
    for (v, label) in header_tabs(s) {
        let w = label.chars().count() as u16;
        if x >= at && x < at + w {
            return Some(v);
        }
        at += w + 1;
    }
    None
}

/// The bordered, titled block every view draws its content in.
pub fn panel<'a>(title: impl Into<Span<'a>>, t: &Theme) -> ratatui::widgets::Block<'a> {
    let title: Span<'a> = title.into();
    ratatui::widgets::Block::new()
        .borders(ratatui::widgets::Borders::ALL)
        .border_style(t.border)
        .title(title.style(t.title))
}

/// A list table as every view draws it: the styled header (a header given as a
/// right-aligned `Line` stands over its numbers), the block around it, one space between
/// columns.
pub fn draw_table<'a, H: Into<Line<'a>>>(
    f: &mut Frame,
    area: Rect,
    block: ratatui::widgets::Block<'a>,
    header: Vec<H>,
    rows: Vec<ratatui::widgets::Row<'a>>,
    widths: Vec<ratatui::layout::Constraint>,
    t: &Theme,
) {
    use ratatui::widgets::{Cell, Row, Table};
    let header = Row::new(header.into_iter().map(|h| {
        let line: Line<'a> = h.into();
        Cell::from(line.patch_style(t.header))
    }));
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block)
            .column_spacing(1),
        area,
    );
}

pub fn draw(f: &mut Frame, s: &State) {
    let t = Theme::of(s);
    let area = f.area();
    f.render_widget(Block::new().style(t.base), area);
    if area.width < MIN_W || area.height < MIN_H {
        let msg = format!(
            "workq needs {MIN_W}×{MIN_H} or more (now {}×{}); q quits",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(msg).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    header(f, s, &t, Rect::new(0, 0, area.width, 1));
    let b = body((area.width, area.height));
    match s.view {
        View::Queues => queues::draw(f, s, &t, b),
        View::Items => items::draw(f, s, &t, b),
        View::Detail => detail::draw(f, s, &t, b),
        View::Exceptions => exceptions::draw(f, s, &t, b),
        View::Workers => workers::draw(f, s, &t, b),
        View::Actions => actions::draw(f, s, &t, b),
    }
    status_line(f, s, &t, Rect::new(0, area.height - 2, area.width, 1));
    footer(f, s, &t, Rect::new(0, area.height - 1, area.width, 1));
    match &s.popup {
        None => {}
        Some(Popup::Help { scroll }) => help::draw(f, s, &t, *scroll),
        Some(Popup::Palette { input, selected }) => palette::draw(f, s, &t, input, *selected),
        Some(Popup::Prompt {
            title,
            input,
            error,
            ..
        }) => prompt::draw(f, &t, title, input, error.as_deref()),
        Some(Popup::Confirm(c)) => confirm::draw(f, s, &t, c),
        Some(Popup::Undo(u)) => confirm::draw_undo(f, &t, u),
        Some(Popup::Error { title, message }) => error::draw(f, &t, title, message),
    }
}

fn header(f: &mut Frame, s: &State, t: &Theme, area: Rect) {
    let mut spans = vec![Span::styled(BRAND, t.title), Span::raw(" ")];
    let active = if s.view == View::Detail {
        s.back.last().copied().unwrap_or(View::Items)
    } else {
        s.view
    };
    for (v, label) in header_tabs(s) {
        let style = if v == active { t.tab_active } else { t.tab };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    // The markers matter more than the source's name: where room is short, the name goes
    // first, then the stale marker's detail.
    let room = (area.width as usize).saturating_sub(used);
    let fits = |r: &[Span]| r.iter().map(|s| s.width()).sum::<usize>() < room;
    let mut right = header_marks(s, t, true);
    right.push(Span::styled(format!("{} ", safe(&s.source)), t.dim));
    if !fits(&right) {
        right = header_marks(s, t, true);
    }
    if !fits(&right) {
        right = header_marks(s, t, false);
    }
    if fits(&right) {
        let rw: usize = right.iter().map(|s| s.width()).sum();
        spans.push(Span::raw(" ".repeat(room - rw)));
        spans.extend(right);
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// What the header's right side warns of: data that may be out of date (with how long
/// and when the console tries again, when `detail`), and a console that cannot change data.
fn header_marks<'a>(s: &State, t: &Theme, detail: bool) -> Vec<Span<'a>> {
    let mut marks = vec![];
    if let Some(since) = s.feed.down_since {
        let text = if detail {
            let retry = match s.feed.retry_at {
                Some(at) if at > s.now => format!("retry {}", when(s, at)),
                _ => "retrying".to_string(),
            };
            format!(
                " STALE: no live updates for {} · {retry} ",
                age(s.now, since)
            )
        } else {
            " STALE ".to_string()
        };
        marks.push(Span::styled(text, t.bad));
    }
    if s.read_only {
        marks.push(Span::styled(" READ-ONLY ", t.warn));
    }
    marks
}

fn status_line(f: &mut Frame, s: &State, t: &Theme, area: Rect) {
    let line = match &s.status {
        Some(st) => Line::from(Span::styled(
            format!(" {}", safe(&st.text)),
            t.level(st.level),
        )),
        None => Line::from(Span::styled(format!(" {}", safe(&context(s))), t.dim)),
    };
    f.render_widget(Paragraph::new(line), area);
}

/// What the status line says when nothing happened: where you are and what is selected.
fn context(s: &State) -> String {
    match s.view {
        View::Items => {
            let it = &s.items;
            let marks = if it.mark_all {
                format!("all {} marked · ", crate::text::thousands(it.total))
            } else if !it.marks.is_empty() {
                format!(
                    "{} marked · ",
                    crate::text::thousands(it.marks.len() as u64)
                )
            } else {
                String::new()
            };
            format!(
                "{marks}sorted by {}{}",
                match it.sort {
                    SortBy::Enqueued => "enqueue time",
                    SortBy::Priority => "priority",
                    SortBy::Name => "name",
                    SortBy::Status => "status",
                },
                if it.descending { " ↓" } else { " ↑" }
            )
        }
        View::Queues => match s.queues.current() {
            Some(q) => format!("{} · enter shows its items", q.queue.name),
            None => String::new(),
        },
        _ => match &s.last_action {
            Some(a) => format!("last action {} ({}): z undoes", a.action_id, a.verb),
            None => String::new(),
        },
    }
}

fn footer(f: &mut Frame, s: &State, t: &Theme, area: Rect) {
    let mut spans = Vec::new();
    let mut width = 0usize;
    // In the action log, undo is what the view is for.
    let here = |c: &commands::Spec| {
        c.hint || (s.view == View::Actions && c.cmd == commands::Command::Undo)
    };
    for spec in TABLE
        .iter()
        .filter(|c| here(c) && c.applies(s.view) && c.available(s.read_only) && s.offered(c.cmd))
    {
        let key = s
            .keymap
            .keys(spec.cmd)
            .first()
            .map(|k| k.to_string())
            .unwrap_or_default();
        let w = key.chars().count() + spec.name.chars().count() + 3;
        if width + w > area.width as usize {
            break;
        }
        width += w;
        spans.push(Span::styled(format!(" {key}"), t.key));
        spans.push(Span::styled(format!(" {} ", spec.name), t.dim));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A box in the middle of the screen for a popup, cleared of what is below.
pub fn popup_area(f: &mut Frame, t: &Theme, w: u16, h: u16, title: &str, style: Style) -> Rect {
    let area = f.area();
    let w = w.min(area.width.saturating_sub(2)).max(10);
    let h = h.min(area.height.saturating_sub(2)).max(3);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        // Below the header line when there is room, so the view tabs stay visible.
        area.y + ((area.height.saturating_sub(h)) / 3).max(u16::from(area.height > h)),
        w,
        h,
    );
    f.render_widget(Clear, r);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), style))
        .border_style(style)
        .style(t.popup);
    let inner = block.inner(r);
    f.render_widget(block, r);
    inner
}

/// 1,234 → "1.2k", for tight spots.
pub fn compact(n: u64) -> String {
    match n {
        0..=9_999 => crate::text::thousands(n),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A sparkline as text, for table cells.
pub fn spark(data: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &data[data.len().saturating_sub(width)..];
    let max = tail.iter().copied().max().unwrap_or(0);
    tail.iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                BARS[((v * 7 + max / 2) / max).min(7) as usize]
            }
        })
        .collect()
}

/// A column as wide as its widest cell or its header, and no wider than `max`: what fits
/// the content, so a long cell never loses its first characters to the column before.
pub fn fit<'c>(header: &str, cells: impl IntoIterator<Item = &'c str>, max: u16) -> Constraint {
    let widest = cells
        .into_iter()
        .map(|c| Line::raw(c).width())
        .chain([Line::raw(header).width()])
        .max()
        .unwrap_or(0);
    Constraint::Length((widest as u16).min(max))
}

/// The age of `t` at `now`: "3m 5s", "2h 10m".
pub fn age(now: Time, t: Time) -> String {
    age_secs((now - t).num_seconds())
}

/// "exception/business", "queued (expired)": the CLI's words, shared.
pub fn status_text(i: &Item) -> String {
    crate::text::status_of(i)
}

/// Cuts `s` to `max` characters with an ellipsis, escaped for the terminal.
pub fn cut(s: &str, max: usize) -> String {
    crate::text::cell(s, max)
}

/// User text for one line of the screen: control characters, escape sequences and bidi
/// overrides shown as visible escapes (`crate::text::escape`, as the CLI shows them).
pub fn safe(s: &str) -> String {
    crate::text::line(s).into_owned()
}

/// How far `t` is from now, past or future: "5m ago", "in 2h".
pub fn when(s: &State, t: Time) -> String {
    crate::text::relative(s.now, t)
}
