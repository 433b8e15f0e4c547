//! Colours. The dark and light palettes are the TOML files of `assets/themes/`, built in;
//! a user's own theme is a file of the same shape in the config directory's `themes/`,
//! picked by name. `NO_COLOR` gets a colourless palette that keeps meaning through bold,
//! reverse and underline alone.

use crate::model::{Sla, Status};
use crate::tui::state::{Level, State, ThemeName};
use ratatui::style::{Color, Modifier, Style};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::OnceLock;

/// The built-in themes, as shipped in `assets/themes/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../assets/themes/dark.toml")),
    ("light", include_str!("../../assets/themes/light.toml")),
];

/// The parts a theme styles, each a field of `Theme` and a key of a theme file.
macro_rules! parts {
    ($($part:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Theme {
            $(pub $part: Style,)*
        }

        impl Theme {
            /// Every part's name, in the theme files' order.
            pub const PARTS: &'static [&'static str] = &[$(stringify!($part)),*];

            fn part_mut(&mut self, name: &str) -> Option<&mut Style> {
                match name {
                    $(stringify!($part) => Some(&mut self.$part),)*
                    _ => None,
                }
            }

            /// A theme with every part unstyled.
            fn plain() -> Theme {
                Theme { $($part: Style::new(),)* }
            }
        }
    };
}

parts!(
    base,
    dim,
    title,
    header,
    border,
    selected,
    marked,
    tab,
    tab_active,
    key,
    ok,
    warn,
    bad,
    info,
    queued,
    processing,
    processed,
    on_hold,
    exception,
    json_key,
    json_string,
    json_number,
    json_literal,
    popup,
    danger,
);

/// One part as a theme file writes it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PartStyle {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

/// A theme file: the parts it styles, and `extends`, the theme the others come from.
type ThemeFile = BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>;

/// The 1-based line of byte `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    1 + text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn colour(text: &str) -> Result<Color, String> {
    // ratatui reads names, "#rrggbb" and indexes ("237").
    Color::from_str(text).map_err(|_| {
        format!("'{text}' is not a colour (a name like cyan, a 256-colour index like \"237\", or #rrggbb)")
    })
}

impl Theme {
    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Option<Theme> {
        static PARSED: OnceLock<Vec<Theme>> = OnceLock::new();
        let all = PARSED.get_or_init(|| {
            BUILTIN
                .iter()
                .map(|(name, text)| {
                    let (t, problems) = Theme::parse(text, name, Theme::plain());
                    debug_assert!(problems.is_empty(), "{problems:?}");
                    t
                })
                .collect()
        });
        BUILTIN.iter().position(|(n, _)| *n == name).map(|i| all[i])
    }

    pub fn dark() -> Theme {
        Theme::builtin("dark").expect("the dark theme is built in")
    }

    pub fn light() -> Theme {
        Theme::builtin("light").expect("the light theme is built in")
    }

    /// A theme file's palette over `base` (the parts it leaves out), with every problem
    /// as "origin:line: what". A bad part keeps `base`'s style.
    pub fn parse(text: &str, origin: &str, base: Theme) -> (Theme, Vec<String>) {
        let file: ThemeFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
                return (base, vec![format!("{origin}:{line}: {}", e.message())]);
            }
        };
        let mut problems = Vec::new();
        let mut theme = base;
        if let Some((key, ext)) = file.iter().find(|(k, _)| k.get_ref() == "extends") {
            let line = line_of(text, key.span().start);
            match ext.get_ref().as_str().map(|n| (n, Theme::builtin(n))) {
                Some((_, Some(t))) => theme = t,
                Some((n, None)) => problems.push(format!(
                    "{origin}:{line}: extends: no built-in theme '{n}' (dark or light)"
                )),
                None => problems.push(format!(
                    "{origin}:{line}: extends: give a theme's name, \"dark\" or \"light\""
                )),
            }
        }
        for (name, value) in file.iter().filter(|(k, _)| k.get_ref() != "extends") {
            let line = line_of(text, name.span().start);
            let Some(slot) = theme.part_mut(name.get_ref()) else {
                problems.push(format!(
                    "{origin}:{line}: '{}' is not a part of a theme (parts: {})",
                    name.get_ref(),
                    Theme::PARTS.join(", ")
                ));
                continue;
            };
            let part: PartStyle = match value.get_ref().clone().try_into() {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!(
                        "{origin}:{line}: {}: {}",
                        name.get_ref(),
                        e.message()
                    ));
                    continue;
                }
            };
            match part.style() {
                Ok(st) => *slot = st,
                Err(e) => problems.push(format!("{origin}:{line}: {}: {e}", name.get_ref())),
            }
        }
        (theme, problems)
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
            (false, ThemeName::User) => s.user_theme.as_ref().map_or_else(Theme::dark, |u| u.1),
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

impl PartStyle {
    fn style(&self) -> Result<Style, String> {
        let mut st = Style::new();
        if let Some(c) = &self.fg {
            st = st.fg(colour(c).map_err(|e| format!("fg: {e}"))?);
        }
        if let Some(c) = &self.bg {
            st = st.bg(colour(c).map_err(|e| format!("bg: {e}"))?);
        }
        for (on, m) in [
            (self.bold, Modifier::BOLD),
            (self.dim, Modifier::DIM),
            (self.italic, Modifier::ITALIC),
            (self.underlined, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
        ] {
            if on {
                st = st.add_modifier(m);
            }
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_themes_style_every_part_without_a_problem() {
        for (name, text) in BUILTIN {
            let (t, problems) = Theme::parse(text, name, Theme::plain());
            assert_eq!(problems, Vec::<String>::new(), "{name}");
            let parsed: toml::Table = toml::from_str(text).unwrap();
            for part in Theme::PARTS {
                assert!(parsed.contains_key(*part), "{name}.toml lacks {part}");
            }
            assert_ne!(t.base, Style::new(), "{name}");
        }
        let dark = Theme::dark();
        assert_eq!(
            dark.selected,
            Style::new()
                .bg(Color::Indexed(237))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            Theme::light().base,
            Style::new().fg(Color::Indexed(235)).bg(Color::Indexed(231))
        );
    }

    #[test]
    fn a_user_theme_overrides_what_it_names_and_keeps_the_rest() {
        let text = "extends = \"light\"\ntitle = { fg = \"#ff8800\", italic = true }\n";
        let (t, problems) = Theme::parse(text, "sunset.toml", Theme::dark());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            t.title,
            Style::new()
                .fg(Color::Rgb(255, 136, 0))
                .add_modifier(Modifier::ITALIC)
        );
        assert_eq!(t.base, Theme::light().base);
    }

    #[test]
    fn a_bad_theme_names_each_problem_with_its_line_and_keeps_the_base() {
        let text = "base = { fg = \"gray\" }\ntitel = { fg = \"red\" }\nkey = { fg = \"mauve\" }\nok = { colour = \"red\" }\nextends = \"solar\"\n";
        let (t, problems) = Theme::parse(text, "t.toml", Theme::dark());
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("t.toml:2: 'titel' is not a part")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("t.toml:3: key: fg: 'mauve' is not a colour")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("t.toml:4: ok:") && p.contains("colour")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("t.toml:5: extends")),
            "{problems:?}"
        );
        assert_eq!(t.key, Theme::dark().key);
        let (_, problems) = Theme::parse("base = {", "t.toml", Theme::dark());
        assert!(problems[0].starts_with("t.toml:1: "), "{problems:?}");
    }
}
