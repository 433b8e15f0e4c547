//! A one-line question: a search, an action's argument, queue settings.

use super::popup_area;
use crate::tui::state::Input;
use crate::tui::theme::Theme;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, t: &Theme, title: &str, input: &Input, error: Option<&str>) {
    let area = f.area();
    let w = 100.min(area.width - 2);
    let h = if error.is_some() { 6 } else { 4 };
    let inner = popup_area(f, t, w, h, title, t.title);
    // Long lines scroll so the cursor stays in view.
    let room = inner.width.saturating_sub(2) as usize;
    let skip = input.cursor.saturating_sub(room);
    let shown: String = input.text.chars().skip(skip).collect();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("> ", t.key),
            Span::raw(shown),
        ])),
        Rect::new(inner.x, inner.y, inner.width, 1),
    );
    if let Some(e) = error {
        f.render_widget(
            Paragraph::new(Span::styled(e.to_string(), t.bad)).wrap(Wrap { trim: true }),
            Rect::new(inner.x, inner.y + 1, inner.width, 2),
        );
    }
    f.render_widget(
        Paragraph::new(Span::styled("enter accepts · esc cancels", t.dim)),
        Rect::new(inner.x, inner.y + inner.height - 1, inner.width, 1),
    );
    let cx = inner.x + 2 + (input.cursor - skip) as u16;
    f.set_cursor_position(Position::new(cx.min(inner.x + inner.width - 1), inner.y));
}
