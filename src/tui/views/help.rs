//! The help overlay: every command of the table with its keys, the current view's first.

use super::popup_area;
use crate::tui::commands::{KEYS_EXAMPLE, TABLE};
use crate::tui::state::State;
use crate::tui::theme::Theme;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn lines<'a>(s: &State, t: &Theme) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    if !s.config_problems.is_empty() {
        out.push(Line::styled("config problems", t.bad));
        for p in &s.config_problems {
            out.push(Line::styled(format!("  {p}"), t.warn));
        }
        out.push(Line::raw(""));
    }
    for (title, here) in [
        (format!("{} view", s.view.title()), true),
        ("other views".to_string(), false),
    ] {
        out.push(Line::styled(title, t.header));
        for spec in TABLE.iter().filter(|c| c.available(s.read_only)) {
            let applies_here = !spec.views.is_empty() && spec.applies(s.view);
            let global = spec.views.is_empty();
            if here != (applies_here || global) {
                continue;
            }
            let keys = s.keymap.label(spec.cmd);
            let mut spans = vec![
                Span::styled(format!("  {keys:<16}"), t.key),
                Span::styled(format!(":{:<14}", spec.name), t.base),
                Span::styled(spec.desc, t.dim),
            ];
            if !spec.args.is_empty() {
                spans.push(Span::styled(
                    format!("  :{} {}", spec.name, spec.args),
                    t.dim,
                ));
            }
            if !here {
                let views: Vec<&str> = spec.views.iter().map(|v| v.title()).collect();
                spans.push(Span::styled(format!("  [{}]", views.join(", ")), t.dim));
            }
            if spec.dangerous {
                spans.push(Span::styled("  (dangerous)", t.warn));
            }
            out.push(Line::from(spans));
        }
        out.push(Line::raw(""));
    }
    if s.read_only {
        out.push(Line::styled(
            "read-only: commands that change data are hidden",
            t.warn,
        ));
    }
    let path = &s.config_file;
    out.push(Line::styled(
        format!("keys can be changed in {path}, e.g. [keys] {KEYS_EXAMPLE}"),
        t.dim,
    ));
    out
}

/// Rows of help text the overlay shows at once: the screen less the popup's margin and
/// borders (the popup is as tall as the screen allows).
fn rows_shown(s: &State) -> u16 {
    s.size.1.saturating_sub(2).max(3).saturating_sub(2)
}

/// The furthest the help scrolls: its last line at the bottom of the box, never past it
/// into an empty box.
pub fn max_scroll(s: &State) -> u16 {
    let n = lines(s, &Theme::of(s)).len();
    (n as u16).saturating_sub(rows_shown(s))
}

pub fn draw(f: &mut Frame, s: &State, t: &Theme, scroll: u16) {
    let area = f.area();
    let inner = popup_area(
        f,
        t,
        110.min(area.width - 2),
        area.height - 2,
        "help · esc closes · j/k scroll",
        t.title,
    );
    // A scroll from before a resize may be past what now fits.
    let scroll = scroll.min(max_scroll(s));
    f.render_widget(Paragraph::new(lines(s, t)).scroll((scroll, 0)), inner);
}
