//! The command palette (`:`): the line being typed and the commands it may complete to.

use super::popup_area;
use crate::tui::state::{Input, State};
use crate::tui::theme::Theme;
use crate::tui::update::palette_choices;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn draw(f: &mut Frame, s: &State, t: &Theme, input: &Input, selected: usize) {
    let choices = palette_choices(s, &input.text);
    let shown = choices.len().min(10);
    let area = f.area();
    let inner = popup_area(
        f,
        t,
        90.min(area.width - 2),
        shown as u16 + 4,
        "command · tab completes · enter runs",
        t.title,
    );
    let line = Line::from(vec![
        Span::styled(":", t.key),
        Span::raw(input.text.clone()),
    ]);
    f.render_widget(
        Paragraph::new(line),
        Rect::new(inner.x, inner.y, inner.width, 1),
    );
    let mut lines = Vec::new();
    let sel = selected.min(shown.saturating_sub(1));
    let start = sel.saturating_sub(shown.saturating_sub(1));
    for (i, c) in choices.iter().enumerate().skip(start).take(shown) {
        let style = if i == sel { t.selected } else { t.base };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<22}", c.label), style),
            Span::styled(format!("{:<12}", c.keys), t.key),
            Span::styled(c.desc.clone(), t.dim),
        ]));
    }
    let typing_name = !input.text.contains(' ');
    if choices.is_empty() && typing_name && !input.text.is_empty() {
        lines.push(Line::styled(" no such command", t.warn));
    }
    f.render_widget(
        Paragraph::new(lines),
        Rect::new(
            inner.x,
            inner.y + 2,
            inner.width,
            inner.height.saturating_sub(2),
        ),
    );
    let cx = inner.x + 1 + input.text.chars().take(input.cursor).count() as u16;
    f.set_cursor_position(Position::new(cx.min(inner.x + inner.width - 1), inner.y));
}
