//! The confirmation of an action: what it does, how many items it touches (from the
//! engine's preview) with a few of them, and an optional note.

use super::{popup_area, status_text};
use crate::cli::output::thousands;
use crate::model::*;
use crate::rules::format_duration;
use crate::tui::state::{Confirm, State};
use crate::tui::theme::Theme;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

/// "requeue after 15m", "set priority to high": the action in words.
pub fn describe(a: &ActionKind, now: Time) -> String {
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
            "set expiry to {} (in {})",
            t.format("%Y-%m-%d %H:%M UTC"),
            crate::cli::output::age_secs((*t - now).num_seconds())
        ),
        ActionKind::ExtendExpiry { expires_at: None } => "clear the expiry".into(),
        ActionKind::AddNote => "add a note".into(),
    }
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, c: &Confirm) {
    let area = f.area();
    let border = if c.dangerous { t.danger } else { t.title };
    let count = match c.count {
        Some(n) => Span::styled(
            format!("{} item{}", thousands(n), if n == 1 { "" } else { "s" }),
            if c.dangerous { t.danger } else { t.header },
        ),
        None => Span::styled("counting…", t.dim),
    };
    let mut lines = vec![
        Line::raw(c.what.clone()),
        Line::from(vec![Span::raw("touches "), count]),
    ];
    for i in c.sample.iter().take(5) {
        lines.push(Line::from(vec![
            Span::styled("  · ", t.dim),
            Span::raw(format!(
                "{:<24} ",
                i.name.clone().unwrap_or_else(|| i.id.clone())
            )),
            Span::styled(status_text(i), t.status(i.status)),
        ]));
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
    lines.push(Line::raw(""));
    // Rows as wrapped: a long group name must not push the warning under the note line.
    let w = 90.min(area.width - 2);
    let text_w = w.saturating_sub(4).max(1) as usize;
    let h = lines
        .iter()
        .map(|l| l.width().div_ceil(text_w).max(1) as u16)
        .sum::<u16>();
    let inner = popup_area(
        f,
        t,
        w,
        h + 4,
        &format!("{}?", describe(&c.action, s.now)),
        border,
    );
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }),
        Rect::new(
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(2),
            h.min(inner.height),
        ),
    );
    let note_y = inner.y + h.min(inner.height.saturating_sub(2));
    let label = if matches!(c.action, ActionKind::AddNote) {
        "note: "
    } else {
        "note (optional): "
    };
    let room = inner.width.saturating_sub(2 + label.len() as u16) as usize;
    let skip = c.note.cursor.saturating_sub(room);
    let shown: String = c.note.text.chars().skip(skip).collect();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(label, t.key),
            Span::raw(shown),
        ])),
        Rect::new(inner.x + 1, note_y, inner.width.saturating_sub(2), 1),
    );
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("enter", t.key),
            Span::styled(" applies · ", t.dim),
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
    let cx = inner.x + 1 + label.len() as u16 + (c.note.cursor - skip) as u16;
    f.set_cursor_position(Position::new(cx.min(inner.x + inner.width - 1), note_y));
}
