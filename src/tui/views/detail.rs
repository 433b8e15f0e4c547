//! Item detail: every field, the value pretty-printed with JSON highlighting, the notes and
//! the full history. Side by side when wide, one scrolling column when narrow.

use super::{safe, status_text, when};
use crate::model::*;
use crate::text::thousands;
use crate::tui::commands::Command;
use crate::tui::state::{State, View};
use crate::tui::theme::Theme;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, s: &State, t: &Theme, body: Rect) {
    let mut title = match &s.detail.data {
        Some(d) => format!(" {} ", safe(d.item.name.as_deref().unwrap_or(&d.item.id))),
        None => format!(" {} ", safe(s.detail.id.as_deref().unwrap_or_default())),
    };
    // Opened from a list: where in it, and how to walk it.
    if s.back.last() == Some(&View::Items) && s.items.total > 0 {
        title.push_str(&format!(
            "· {} of {} · {} {} previous/next ",
            thousands(s.items.cursor + 1),
            thousands(s.items.total),
            s.keymap.label(Command::PrevItem),
            s.keymap.label(Command::NextItem)
        ));
    }
    let block = super::panel(title, t);
    let Some(d) = &s.detail.data else {
        let msg = if s.detail.fetch.inflight {
            "loading…"
        } else {
            "not found"
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.dim)).block(block), body);
        return;
    };
    let inner = block.inner(body);
    f.render_widget(block, body);
    let mut left = fields(s, t, &d.item);
    left.push(Line::raw(""));
    left.push(Line::styled("value", t.header));
    left.extend(value_lines(&d.item.value, t));
    let mut right = notes(s, t, &d.item);
    right.push(Line::raw(""));
    right.extend(history(s, t, &d.history));
    let scroll = (s.detail.scroll, 0);
    if inner.width >= 100 {
        let lw = inner.width / 2;
        // Wrapped, indentation kept: a long value is read whole, not cut at the middle.
        f.render_widget(
            Paragraph::new(left)
                .wrap(Wrap { trim: false })
                .scroll(scroll),
            Rect::new(inner.x + 1, inner.y, lw - 2, inner.height),
        );
        f.render_widget(
            Paragraph::new(right)
                .wrap(Wrap { trim: false })
                .scroll(scroll),
            Rect::new(
                inner.x + lw + 1,
                inner.y,
                inner.width - lw - 2,
                inner.height,
            ),
        );
    } else {
        left.push(Line::raw(""));
        left.extend(right);
        f.render_widget(
            Paragraph::new(left)
                .wrap(Wrap { trim: false })
                .scroll(scroll),
            Rect::new(
                inner.x + 1,
                inner.y,
                inner.width.saturating_sub(2),
                inner.height,
            ),
        );
    }
}

/// "2026-11-22 23:00:00 CET (in 2h)": the zone named, the future told from the past.
fn time(t: Option<Time>, s: &State) -> String {
    match t {
        Some(t) => format!("{} ({})", s.zone.datetime(t), when(s, t)),
        None => "-".into(),
    }
}

fn fields<'a>(s: &State, t: &Theme, i: &Item) -> Vec<Line<'a>> {
    let kv = |k: &str, v: String, style: Style| {
        Line::from(vec![
            Span::styled(format!("{k:<14}"), t.dim),
            Span::styled(v, style),
        ])
    };
    let st_style = if i.expired { t.bad } else { t.status(i.status) };
    let mut out = vec![
        kv("id", safe(&i.id), t.base),
        kv("queue", safe(&i.queue), t.base),
        kv("name", safe(i.name.as_deref().unwrap_or("-")), t.base),
        kv("key", safe(i.key.as_deref().unwrap_or("-")), t.base),
        kv("status", status_text(i), st_style),
        kv("priority", i.priority.to_string(), t.base),
        match i.sla {
            Some(x) => kv("sla", x.to_string(), t.sla(x)),
            None => kv("sla", "-".into(), t.dim),
        },
        kv(
            "tries",
            format!(
                "{} automatic retries, {} requeues",
                i.retry_count, i.requeue_count
            ),
            t.base,
        ),
        kv("enqueued", time(Some(i.enqueued_at), s), t.base),
        kv("started", time(i.started_at, s), t.base),
        kv("finished", time(i.finished_at, s), t.base),
        kv(
            "expires",
            time(i.expires_at, s),
            if i.expired { t.bad } else { t.base },
        ),
    ];
    if i.delay_until.is_some() {
        out.push(kv("delayed until", time(i.delay_until, s), t.base));
    }
    out.push(kv(
        "worker",
        safe(i.worker.as_deref().unwrap_or("-")),
        t.base,
    ));
    out
}

fn notes<'a>(s: &State, t: &Theme, i: &Item) -> Vec<Line<'a>> {
    let mut out = vec![Line::styled(format!("notes ({})", i.notes.len()), t.header)];
    if i.notes.is_empty() {
        out.push(Line::styled("none", t.dim));
    }
    for n in &i.notes {
        // A note keeps its line breaks: the first line beside who wrote it, the rest below.
        let mut text = text_lines(&n.text);
        out.push(Line::from(vec![
            Span::styled(format!("{} ", when(s, n.at)), t.dim),
            Span::styled(format!("{}: ", safe(&n.by)), t.info),
            Span::raw(text.remove(0)),
        ]));
        out.extend(text.into_iter().map(|l| Line::raw(format!("  {l}"))));
    }
    out
}

/// The lines of a text (LF or CRLF line ends), each safe for the terminal; at least one.
/// A lone CR is no line end but a control, shown escaped as the CLI shows it.
fn text_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| safe(l.strip_suffix('\r').unwrap_or(l)))
        .collect()
}

/// Where the lines under a history row start: under its action, past the time column.
const UNDER: &str = "             ";

/// How many lines of a changed value are shown on each side before "… N more".
const CHANGE_LINES: usize = 12;

/// A recorded change (`FieldChange`, as `item show` reads it too) under its history row:
/// short ones on one line, old → new; a value as the lines that differ, − old and + new
/// (the lines both share are left out). User text, so every piece is escaped.
fn change_lines<'a>(c: &FieldChange, t: &Theme) -> Vec<Line<'a>> {
    let (old, new) = (FieldChange::side(&c.old), FieldChange::side(&c.new));
    let pretty = |v: &str| crate::json_text::pretty(v).unwrap_or_else(|| v.to_string());
    let (old_p, new_p) = (pretty(&old), pretty(&new));
    if !old_p.contains('\n')
        && !new_p.contains('\n')
        && old.chars().count() + new.chars().count() <= 80
    {
        return vec![Line::from(vec![
            Span::raw(UNDER),
            Span::styled(format!("{}: ", safe(&c.field)), t.dim),
            Span::styled(safe(&old), t.bad),
            Span::raw(" → "),
            Span::styled(safe(&new), t.ok),
        ])];
    }
    let a: Vec<&str> = old_p.lines().collect();
    let b: Vec<&str> = new_p.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = vec![Line::from(vec![
        Span::raw(UNDER),
        Span::styled(format!("{}: old → new", safe(&c.field)), t.dim),
        if head + tail > 0 {
            Span::styled(
                format!(" ({} unchanged lines not shown)", head + tail),
                t.dim,
            )
        } else {
            Span::raw("")
        },
    ])];
    for (mark, lines, style) in [
        ("− ", &a[head..a.len() - tail], t.bad),
        ("+ ", &b[head..b.len() - tail], t.ok),
    ] {
        for l in lines.iter().take(CHANGE_LINES) {
            out.push(Line::from(vec![
                Span::raw(UNDER),
                Span::styled(mark, style),
                Span::styled(safe(l), style),
            ]));
        }
        if lines.len() > CHANGE_LINES {
            out.push(Line::styled(
                format!("{UNDER}  … {} more lines", lines.len() - CHANGE_LINES),
                t.dim,
            ));
        }
    }
    out
}

fn history<'a>(s: &State, t: &Theme, h: &[HistoryEntry]) -> Vec<Line<'a>> {
    let mut out = vec![Line::styled(format!("history ({})", h.len()), t.header)];
    for e in h.iter().rev() {
        let change = match (e.from, e.to) {
            (Some(a), Some(b)) if a != b => vec![
                Span::styled(a.to_string(), t.status(a)),
                Span::raw(" → "),
                Span::styled(b.to_string(), t.status(b)),
            ],
            (None, Some(b)) => vec![Span::raw("→ "), Span::styled(b.to_string(), t.status(b))],
            (Some(a), None) => vec![
                Span::styled(a.to_string(), t.status(a)),
                Span::raw(" → deleted"),
            ],
            _ => vec![],
        };
        let mut spans = vec![
            Span::styled(format!("{:>12} ", when(s, e.at)), t.dim),
            Span::styled(format!("{} ", e.action), t.base),
        ];
        spans.extend(change);
        spans.push(Span::styled(format!("  by {}", safe(&e.by)), t.dim));
        if let Some(r) = e.reason {
            spans.push(Span::styled(format!(" [{r}]"), t.exception));
        }
        if let Some(a) = e.action_id {
            spans.push(Span::styled(format!(" (action {a})"), t.dim));
        }
        out.push(Line::from(spans));
        if let Some(n) = &e.note {
            for l in text_lines(n) {
                out.push(Line::from(vec![Span::raw(UNDER), Span::raw(l)]));
            }
        }
        for c in &e.changes {
            out.extend(change_lines(c, t));
        }
    }
    out
}

/// The value: JSON objects and arrays pretty-printed and highlighted, text as it is.
pub fn value_lines<'a>(value: &str, t: &Theme) -> Vec<Line<'a>> {
    match crate::json_text::pretty(value) {
        // JSON strings may hold raw C1 controls and bidi marks: escaped line by line.
        Some(pretty) => pretty.lines().map(|l| json_line(&safe(l), t)).collect(),
        None => value.lines().map(|l| Line::raw(safe(l))).collect(),
    }
}

/// Highlights one line of pretty-printed JSON: keys, strings, numbers, literals.
pub fn json_line<'a>(line: &str, t: &Theme) -> Line<'a> {
    let chars: Vec<char> = line.chars().collect();
    let mut spans = Vec::new();
    let mut i = 0;
    let mut plain = String::new();
    let flush = |plain: &mut String, spans: &mut Vec<Span<'a>>| {
        if !plain.is_empty() {
            spans.push(Span::styled(std::mem::take(plain), t.dim));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            flush(&mut plain, &mut spans);
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let text: String = chars[start..i].iter().collect();
            let is_key = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&':');
            spans.push(Span::styled(
                text,
                if is_key { t.json_key } else { t.json_string },
            ));
        } else if c == '-' || c.is_ascii_digit() {
            flush(&mut plain, &mut spans);
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || "-+.eE".contains(chars[i])) {
                i += 1;
            }
            spans.push(Span::styled(
                chars[start..i].iter().collect::<String>(),
                t.json_number,
            ));
        } else if c.is_ascii_alphabetic() {
            flush(&mut plain, &mut spans);
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            spans.push(Span::styled(
                chars[start..i].iter().collect::<String>(),
                t.json_literal,
            ));
        } else {
            plain.push(c);
            i += 1;
        }
    }
    flush(&mut plain, &mut spans);
    Line::from(spans)
}
