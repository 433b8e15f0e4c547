//! Colours. Dark and light palettes, and a colourless one for `NO_COLOR` that keeps
//! meaning through bold, reverse and underline alone.

use crate::model::{Sla, Status};
use crate::tui::state::{Level, State, ThemeName};
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub base: Style,
    pub dim: Style,
    pub title: Style,
    pub header: Style,
    pub border: Style,
    pub selected: Style,
    pub marked: Style,
    pub tab: Style,
    pub tab_active: Style,
    pub key: Style,
    pub ok: Style,
    pub warn: Style,
    pub bad: Style,
    pub info: Style,
    pub queued: Style,
    pub processing: Style,
    pub processed: Style,
    pub on_hold: Style,
    pub exception: Style,
    pub json_key: Style,
    pub json_string: Style,
    pub json_number: Style,
    pub json_literal: Style,
    pub popup: Style,
    pub danger: Style,
}

impl Theme {
    pub fn dark() -> Theme {
        let fg = Color::Gray;
        Theme {
            base: Style::new().fg(fg),
            dim: Style::new().fg(Color::DarkGray),
            title: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            border: Style::new().fg(Color::DarkGray),
            selected: Style::new()
                .bg(Color::Indexed(237))
                .add_modifier(Modifier::BOLD),
            marked: Style::new()
                .fg(Color::LightMagenta)
                .add_modifier(Modifier::BOLD),
            tab: Style::new().fg(Color::Gray),
            tab_active: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            key: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ok: Style::new().fg(Color::Green),
            warn: Style::new().fg(Color::Yellow),
            bad: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            info: Style::new().fg(Color::Cyan),
            queued: Style::new().fg(Color::Blue),
            processing: Style::new().fg(Color::Cyan),
            processed: Style::new().fg(Color::Green),
            on_hold: Style::new().fg(Color::Yellow),
            exception: Style::new().fg(Color::Red),
            json_key: Style::new().fg(Color::Cyan),
            json_string: Style::new().fg(Color::Green),
            json_number: Style::new().fg(Color::Magenta),
            json_literal: Style::new().fg(Color::Yellow),
            popup: Style::new().fg(Color::White).bg(Color::Indexed(235)),
            danger: Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        }
    }

    pub fn light() -> Theme {
        Theme {
            // A light theme paints its own background, so it reads on a dark terminal too.
            base: Style::new().fg(Color::Indexed(235)).bg(Color::Indexed(231)),
            dim: Style::new().fg(Color::Indexed(244)),
            title: Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            header: Style::new()
                .fg(Color::Indexed(94))
                .add_modifier(Modifier::BOLD),
            border: Style::new().fg(Color::Indexed(250)),
            selected: Style::new()
                .bg(Color::Indexed(254))
                .add_modifier(Modifier::BOLD),
            marked: Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            tab: Style::new().fg(Color::Indexed(240)),
            tab_active: Style::new()
                .fg(Color::White)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD),
            key: Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            ok: Style::new().fg(Color::Indexed(28)),
            warn: Style::new().fg(Color::Indexed(130)),
            bad: Style::new()
                .fg(Color::Indexed(160))
                .add_modifier(Modifier::BOLD),
            info: Style::new().fg(Color::Blue),
            queued: Style::new().fg(Color::Blue),
            processing: Style::new().fg(Color::Indexed(30)),
            processed: Style::new().fg(Color::Indexed(28)),
            on_hold: Style::new().fg(Color::Indexed(130)),
            exception: Style::new().fg(Color::Indexed(160)),
            json_key: Style::new().fg(Color::Blue),
            json_string: Style::new().fg(Color::Indexed(28)),
            json_number: Style::new().fg(Color::Magenta),
            json_literal: Style::new().fg(Color::Indexed(130)),
            popup: Style::new().fg(Color::Indexed(235)).bg(Color::Indexed(254)),
            danger: Style::new()
                .fg(Color::Indexed(160))
                .add_modifier(Modifier::BOLD),
        }
    }

    /// `NO_COLOR`: no colours at all, only text attributes.
    pub fn mono() -> Theme {
        let n = Style::new();
        let b = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            base: n,
            dim: n,
            title: b,
            header: b.add_modifier(Modifier::UNDERLINED),
            border: n,
            selected: Style::new().add_modifier(Modifier::REVERSED),
            marked: b,
            tab: n,
            tab_active: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            key: b,
            ok: n,
            warn: b,
            bad: b,
            info: n,
            queued: n,
            processing: n,
            processed: n,
            on_hold: n,
            exception: b,
            json_key: b,
            json_string: n,
            json_number: n,
            json_literal: n,
            popup: n,
            danger: b,
        }
    }

    pub fn of(s: &State) -> Theme {
        match (s.no_color, s.theme) {
            (true, _) => Theme::mono(),
            (false, ThemeName::Dark) => Theme::dark(),
            (false, ThemeName::Light) => Theme::light(),
        }
    }

    pub fn status(&self, st: Status) -> Style {
        match st {
            Status::Queued => self.queued,
            Status::Processing => self.processing,
            Status::Processed => self.processed,
            Status::OnHold => self.on_hold,
            Status::Exception => self.exception,
        }
    }

    pub fn sla(&self, s: Sla) -> Style {
        match s {
            Sla::In | Sla::Met => self.ok,
            Sla::AtRisk => self.warn,
            Sla::Out | Sla::Missed => self.bad,
        }
    }

    pub fn level(&self, l: Level) -> Style {
        match l {
            Level::Info => self.info,
            Level::Ok => self.ok,
            Level::Warn => self.warn,
            Level::Error => self.bad,
        }
    }
}
