//! An error the console survived: what failed, and the engine's own words.

use super::popup_area;
use crate::tui::theme::Theme;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, t: &Theme, title: &str, message: &str) {
    let area = f.area();
    let w = 90.min(area.width - 2);
    // Errors quote what was typed or stored (a name, a value): escaped like the rest.
    let lines: Vec<Line> = message.lines().map(|l| Line::raw(super::safe(l))).collect();
    // Wrapped lines need more rows than the message has lines.
    let rows: u16 = message
        .lines()
        .map(|l| (l.chars().count() as u16 / w.saturating_sub(4).max(1)) + 1)
        .sum();
    let inner = popup_area(f, t, w, rows + 4, title, t.bad);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        Rect::new(
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(2),
            inner.height.saturating_sub(1),
        ),
    );
    f.render_widget(
        // Only these two: keys typed ahead must not close it and then act on the view.
        Paragraph::new(Line::styled(
            "esc or enter closes · nothing was changed",
            t.dim,
        )),
        Rect::new(
            inner.x + 1,
            inner.y + inner.height - 1,
            inner.width.saturating_sub(2),
            1,
        ),
    );
}
