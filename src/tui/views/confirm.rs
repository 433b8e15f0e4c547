//! The confirmations: of an action (what it does, how many items it changes and skips and
//! why, from the engine's preview, with a few of them and an optional note; past 1,000 items
//! the count is typed), and of an undo (what it restores and what it keeps).

use super::{popup_area, status_text};
use crate::model::*;
use crate::rules::format_duration;
use crate::text::thousands;
use crate::tui::state::{Confirm, Field, Input, State, UndoConfirm};
use crate::tui::theme::Theme;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

/// "requeue after 15m", "set priority to high": the action in words.
pub fn describe(a: &ActionKind, now: Time, zone: &crate::text::Zone) -> String {
    match a {
        ActionKind::Requeue { delay: Some(d), .. } => {
            format!("requeue after {}", format_duration(*d))
        }
        ActionKind::Requeue { value: Some(_), .. } => "requeue with the edited value".into(),
        ActionKind::Requeue { .. } => "requeue".into(),
        ActionKind::Hold => "hold".into(),
        ActionKind::Release => "release".into(),
        ActionKind::Processed => "mark processed".into(),
        ActionKind::Delete => "delete".into(),
        ActionKind::SetPriority { priority } => format!("set priority to {priority}"),
        ActionKind::ExtendExpiry {
            expires_at: Some(t),
        } => format!(
            "set expiry to {} ({})",
            zone.format(*t, "%Y-%m-%d %H:%M"),
            crate::text::relative(now, *t)
        ),
        ActionKind::ExtendExpiry { expires_at: None } => "clear the expiry".into(),
        ActionKind::AddNote => "add a note".into(),
    }
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, c: &Confirm) {
    let area = f.area();
    let border = if c.dangerous { t.danger } else { t.title };
    let p = c.preview.as_ref();
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let strong = if c.dangerous { t.danger } else { t.header };
    let count = match p {
        Some(p) if p.changes == p.count => Span::styled(
            format!("{} item{}", thousands(p.changes), plural(p.changes)),
            strong,
        ),
        Some(p) => Span::styled(
            format!("{} of {} items", thousands(p.changes), thousands(p.count)),
            strong,
        ),
        None => Span::styled("counting…", t.dim),
    };
    let mut lines = vec![
        Line::raw(super::safe(&c.what)),
        Line::from(vec![Span::raw("changes "), count]),
    ];
    for k in p.iter().flat_map(|p| p.skipped.iter()).take(4) {
        lines.push(Line::styled(
            format!("  skips {}: {}", thousands(k.count), super::safe(&k.why)),
            t.warn,
        ));
    }
    for w in p.iter().flat_map(|p| p.warnings.iter()) {
        lines.push(Line::styled(format!("  {}", super::safe(w)), t.warn));
    }
    if c.dangerous {
        lines.push(Line::styled(
            match c.action {
                ActionKind::Delete => format!(
                    "{} (z undoes while unchanged)",
                    crate::tui::commands::DELETE_DESC
                ),
                _ => "finishes the items without a bot (z undoes while unchanged)".into(),
            },
            t.warn,
        ));
    }
    // Below the text: the note, the count to type, the keys (and the borders around).
    let below = 2 + c.needs_count() as u16;
    let w = 90.min(area.width - 2);
    let text_w = w.saturating_sub(4).max(1) as usize;
    // Wrapped rows of a line; a word-wrapped line may need one more than its width says.
    let rows = |l: &Line| -> u16 {
        let n = l.width();
        if n <= text_w {
            1
        } else {
            ((n + text_w / 4) / text_w + 1) as u16
        }
    };
    let used: u16 = lines.iter().map(rows).sum::<u16>() + 1;
    let room = area.height.saturating_sub(2 + 2 + below + used) as usize;
    let sample = p.map(|p| p.sample.as_slice()).unwrap_or(&[]);
    // After what it skips and the warnings: the things to read before confirming.
    let at = 2 + p.map_or(0, |p| p.skipped.len().min(4) + p.warnings.len());
    for (n, i) in sample.iter().take(5.min(room)).enumerate() {
        lines.insert(
            at + n,
            Line::from(vec![
                Span::styled("  · ", t.dim),
                Span::raw(format!(
                    "{:<24} ",
                    super::safe(i.name.as_deref().unwrap_or(&i.id))
                )),
                Span::styled(status_text(i), t.status(i.status)),
            ]),
        );
    }
    lines.push(Line::raw(""));
    let text_rows: u16 = lines.iter().map(rows).sum();
    let inner = popup_area(
        f,
        t,
        w,
        text_rows + below + 2,
        &format!("{}?", describe(&c.action, s.now, &s.zone)),
        border,
    );
    let h = text_rows.min(inner.height.saturating_sub(below));
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }),
        Rect::new(inner.x + 1, inner.y, inner.width.saturating_sub(2), h),
    );
    let note_y = inner.y + h;
    let label = if matches!(c.action, ActionKind::AddNote) {
        "note: "
    } else {
        "note (optional): "
    };
    let mut cursor = input_line(f, t, inner, note_y, label, &c.note);
    if let Some(n) = c.changes().filter(|_| c.needs_count()) {
        let label = format!("type {n} to apply: ");
        let at = input_line(f, t, inner, note_y + 1, &label, &c.typed);
        if c.focus == Field::Count {
            cursor = at;
        }
    }
    let mut hint = vec![
        Span::styled("enter", t.key),
        Span::styled(" applies · ", t.dim),
        Span::styled("esc", t.key),
        Span::styled(" cancels", t.dim),
    ];
    if c.needs_count() {
        hint.push(Span::styled(" · ", t.dim));
        hint.push(Span::styled("tab", t.key));
        hint.push(Span::styled(" note ↔ count", t.dim));
    }
    f.render_widget(
        Paragraph::new(Line::from(hint)),
        Rect::new(
            inner.x + 1,
            inner.y + inner.height - 1,
            inner.width.saturating_sub(2),
            1,
        ),
    );
    f.set_cursor_position(cursor);
}

/// One labelled input line; returns where its cursor is.
fn input_line(
    f: &mut Frame,
    t: &Theme,
    inner: Rect,
    y: u16,
    label: &str,
    input: &Input,
) -> Position {
    let room = inner.width.saturating_sub(2 + label.len() as u16) as usize;
    let skip = input.cursor.saturating_sub(room);
    let shown: String = input.text.chars().skip(skip).collect();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(label.to_string(), t.key),
            Span::raw(shown),
        ])),
        Rect::new(inner.x + 1, y, inner.width.saturating_sub(2), 1),
    );
    let cx = inner.x + 1 + label.len() as u16 + (input.cursor - skip) as u16;
    Position::new(cx.min(inner.x + inner.width - 1), y)
}

/// The confirmation of an undo: how many items it restores, and which it keeps and why.
pub fn draw_undo(f: &mut Frame, t: &Theme, u: &UndoConfirm) {
    let area = f.area();
    let mut lines = vec![Line::raw(super::safe(&u.what))];
    match &u.preview {
        None => lines.push(Line::styled("counting…", t.dim)),
        Some(p) => {
            lines.push(Line::from(vec![
                Span::raw("restores "),
                Span::styled(
                    format!("{} of {} items", thousands(p.restored), thousands(p.total)),
                    t.header,
                ),
            ]));
            let list = |ts: &[Tally]| {
                ts.iter()
                    .map(|k| format!("{} {}", thousands(k.count), super::safe(&k.why)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let n = |ts: &[Tally]| thousands(ts.iter().map(|k| k.count).sum());
            if !p.changed.is_empty() {
                lines.push(Line::styled(
                    format!(
                        "  keeps {} that changed since: {}",
                        n(&p.changed),
                        list(&p.changed)
                    ),
                    t.warn,
                ));
            }
            if !p.kept.is_empty() {
                lines.push(Line::styled(
                    format!("  keeps {}: {}", n(&p.kept), list(&p.kept)),
                    t.warn,
                ));
            }
        }
    }
    lines.push(Line::raw(""));
    let w = 90.min(area.width - 2);
    let text_w = w.saturating_sub(4).max(1) as usize;
    let rows: u16 = lines
        .iter()
        .map(|l| (l.width().saturating_sub(1) / text_w + 1) as u16 + (l.width() > text_w) as u16)
        .sum();
    let inner = popup_area(
        f,
        t,
        w,
        rows + 3,
        &format!("undo action {}?", u.action_id),
        t.title,
    );
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }),
        Rect::new(
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(2),
            inner.height.saturating_sub(1),
        ),
    );
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("enter", t.key),
            Span::styled(" undoes · ", t.dim),
            Span::styled("esc", t.key),
            Span::styled(" cancels", t.dim),
        ])),
        Rect::new(
            inner.x + 1,
            inner.y + inner.height - 1,
            inner.width.saturating_sub(2),
            1,
        ),
    );
}
