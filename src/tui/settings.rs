//! The console's config file, `config.toml`: its settings read with the line of every
//! problem, the commented default shipped as `assets/config.toml` (generated from the
//! command table and the settings below, so it cannot drift), and what `workq config`
//! prints. The console and `workq config check` read a file through the same `check`, so
//! they report the same problems.

use crate::tui::commands::{Key, KeySetting, Keymap, TABLE};
use crate::tui::theme::{line_of, Theme};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The commented default configuration, as `workq config init` writes it.
pub const DEFAULT: &str = include_str!("../../assets/config.toml");

/// How often at most the console reloads while the data changes, unless the file says.
pub const DEFAULT_REFRESH: Duration = Duration::from_millis(700);
const MIN_REFRESH: Duration = Duration::from_millis(100);
const MAX_REFRESH: Duration = Duration::from_secs(3600);

/// The settings above `[keys]`: name, default as TOML, and what it does (one comment
/// line each in the default file).
pub const SETTINGS: &[(&str, &str, &[&str])] = &[
    (
        "theme",
        "\"dark\"",
        &[
            "The colours: \"dark\", \"light\", or NAME for your own theme file themes/NAME.toml",
            "beside this file (`workq config theme dark` prints a built-in one to start from).",
            "NO_COLOR in the environment turns colours off.",
        ],
    ),
    (
        "mouse",
        "true",
        &["Mouse support: click to select, scroll lists, double-click to open."],
    ),
    (
        "refresh",
        "\"700ms\"",
        &[
            "The most often the console reloads what it shows while bots change things",
            "(100ms to 1h; written like 700ms, 2s, 1m).",
        ],
    ),
];

/// The file's settings, as given (`None`: the default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub theme: Option<String>,
    pub mouse: Option<bool>,
    pub refresh: Option<Duration>,
    pub keys: BTreeMap<String, KeySetting>,
    /// The line of each setting the file gives (`theme`, `keys.hold`, …).
    pub lines: BTreeMap<String, usize>,
}

/// A whole file checked: what applies, and every problem as "file:line: what".
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: Config,
    pub keymap: Keymap,
    /// The user's theme the file names, read from `themes/NAME.toml`.
    pub user_theme: Option<(String, Theme)>,
    pub problems: Vec<String>,
}

/// The file as written: `[keys]` entries are checked one by one, so one bad entry (a
/// `mouse = true` written below `[keys]`) is reported on its own and the rest still apply.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    // Values, not types: one setting of the wrong type is reported alone.
    theme: Option<Spanned<toml::Value>>,
    mouse: Option<Spanned<toml::Value>>,
    refresh: Option<Spanned<toml::Value>>,
    #[serde(default)]
    keys: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// `[connections.NAME]`: used by `crate::config` for `--connect`, checked here.
    #[serde(default)]
    connections: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// Where the config file is: `$WORKQ_CONFIG`, else `config.toml` in the config directory.
pub fn path() -> Option<PathBuf> {
    crate::config::path()
}

/// The folder of the user's own themes: `themes/` beside the config file.
pub fn themes_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("themes")
}

/// Reads and checks the config file; a missing file is no problem.
pub fn load(path: Option<&Path>) -> Checked {
    let Some(path) = path else {
        return check("", "", None);
    };
    match std::fs::read_to_string(path) {
        Ok(text) => check(&text, &path.display().to_string(), Some(&themes_dir(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check("", "", None),
        Err(e) => {
            let mut c = check("", "", None);
            c.problems
                .push(format!("{}: cannot read: {e}", path.display()));
            c
        }
    }
}

/// Checks a config file's text: its settings, its key bindings against the command table,
/// its theme (a user theme is read from `themes`), its connections.
pub fn check(text: &str, origin: &str, themes: Option<&Path>) -> Checked {
    let (config, mut problems) = parse(text, origin);
    let (keymap, key_problems) = Keymap::with_overrides(&config.keys);
    for p in key_problems {
        let at = config.lines.get(&format!("keys.{}", p.name));
        problems.push(located(origin, at.copied(), &p.to_string()));
    }
    let mut user_theme = None;
    if let Some(name) = &config.theme {
        if Theme::builtin(name).is_none() {
            let at = config.lines.get("theme").copied();
            match themes.map(|d| d.join(format!("{name}.toml"))) {
                Some(file) if file.is_file() => match std::fs::read_to_string(&file) {
                    Ok(t) => {
                        let (theme, bad) =
                            Theme::parse(&t, &file.display().to_string(), Theme::dark());
                        problems.extend(bad);
                        user_theme = Some((name.clone(), theme));
                    }
                    Err(e) => problems.push(located(
                        origin,
                        at,
                        &format!("theme: cannot read {}: {e}", file.display()),
                    )),
                },
                file => problems.push(located(
                    origin,
                    at,
                    &format!(
                        "theme '{name}' is not dark or light{}",
                        file.map(|f| format!(", and there is no {}", f.display()))
                            .unwrap_or_default()
                    ),
                )),
            }
        }
    }
    // Top to bottom: the file's own problems by line, then its theme file's.
    let line = |p: &String| {
        p.strip_prefix(origin)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    problems.sort_by_key(line);
    Checked {
        config,
        keymap,
        user_theme,
        problems,
    }
}

fn located(origin: &str, line: Option<usize>, what: &str) -> String {
    match line {
        Some(l) => format!("{origin}:{l}: {what}"),
        None => format!("{origin}: {what}"),
    }
}

/// The file's settings and the problems of its shape (each key's binding is checked
/// against the command table by `check`).
pub fn parse(text: &str, origin: &str) -> (Config, Vec<String>) {
    let raw = match toml::from_str::<RawConfig>(text) {
        Ok(c) => c,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            return (
                Config::default(),
                vec![located(origin, line, e.message().trim())],
            );
        }
    };
    let at = |s: std::ops::Range<usize>| Some(line_of(text, s.start));
    let mut problems = vec![];
    let mut c = Config::default();
    let wrong = |name: &str, v: &toml::Value, want: &str| {
        // toml's Display is a feature we do not build; JSON writes a scalar the same way.
        let shown = serde_json::to_string(v).unwrap_or_default();
        format!("{name}: give {want}, not {} {shown}", v.type_str())
    };
    if let Some(t) = raw.theme {
        match t.get_ref().as_str() {
            Some(name) => {
                c.lines
                    .insert("theme".into(), line_of(text, t.span().start));
                c.theme = Some(name.to_string());
            }
            None => problems.push(located(
                origin,
                at(t.span()),
                &wrong("theme", t.get_ref(), "a theme's name in quotes"),
            )),
        }
    }
    if let Some(m) = raw.mouse {
        match m.get_ref().as_bool() {
            Some(on) => {
                c.lines
                    .insert("mouse".into(), line_of(text, m.span().start));
                c.mouse = Some(on);
            }
            None => problems.push(located(
                origin,
                at(m.span()),
                &wrong("mouse", m.get_ref(), "true or false"),
            )),
        }
    }
    if let Some(r) = raw.refresh {
        let line = at(r.span());
        match r
            .get_ref()
            .as_str()
            .map(|t| (t, crate::rules::parse_duration(t)))
        {
            Some((_, Ok(d))) if (MIN_REFRESH..=MAX_REFRESH).contains(&d) => {
                c.lines
                    .insert("refresh".into(), line_of(text, r.span().start));
                c.refresh = Some(d);
            }
            Some((t, Ok(_))) => problems.push(located(
                origin,
                line,
                &format!("refresh '{t}': give 100ms to 1h"),
            )),
            Some((_, Err(e))) => problems.push(located(origin, line, &format!("refresh: {e}"))),
            None => problems.push(located(
                origin,
                line,
                &wrong(
                    "refresh",
                    r.get_ref(),
                    "a duration in quotes, like \"700ms\"",
                ),
            )),
        }
    }
    // In the file's order, so problems read top to bottom.
    let mut keys: Vec<_> = raw.keys.into_iter().collect();
    keys.sort_by_key(|(k, _)| k.span().start);
    for (name, v) in keys {
        let line = at(name.span());
        let name = name.into_inner();
        let strings = |a: &Vec<toml::Value>| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
        };
        let setting = match v.get_ref() {
            toml::Value::String(k) => Some(KeySetting::One(k.clone())),
            toml::Value::Array(a) => strings(a).map(KeySetting::Many),
            _ => None,
        };
        match setting {
            Some(k) => {
                c.lines.insert(format!("keys.{name}"), line.unwrap_or(0));
                c.keys.insert(name, k);
            }
            None if SETTINGS.iter().any(|s| s.0 == name) => {
                let value = match v.get_ref() {
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => "…".into(),
                };
                problems.push(located(
                    origin,
                    line,
                    &format!(
                        "keys.{name}: `{name}` is a setting, not a key: write `{name} = {value}` above the [keys] line"
                    ),
                ))
            }
            None => problems.push(located(
                origin,
                line,
                &format!("keys.{name}: give a key or a list of keys, e.g. {name} = \"ctrl-x\""),
            )),
        }
    }
    for (name, v) in raw.connections {
        let line = at(name.span());
        let name = name.into_inner();
        match v.into_inner().try_into::<crate::config::ConnectionTable>() {
            Ok(t) => {
                if let Err(e) = crate::config::check_connection(&name, &t) {
                    problems.push(located(origin, line, &e));
                }
            }
            Err(e) => problems.push(located(
                origin,
                line,
                &format!("[connections.{name}]: {}", e.message().trim()),
            )),
        }
    }
    (c, problems)
}

/// A key setting as TOML: `"r"` or `["k", "up"]`. JSON's string quoting is TOML's too.
fn keys_toml(keys: &[String]) -> String {
    let quoted: Vec<String> = keys
        .iter()
        .map(|k| serde_json::to_string(k).expect("a string"))
        .collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The commented default configuration, from the settings and the command table;
/// `assets/config.toml` is this text (a test compares them).
pub fn default_text() -> String {
    let mut out = String::from(
        "# workq's console configuration, config.toml in workq's config directory: `workq config\n\
         # path` prints where it is, `workq config init` writes this file there.\n\
         #\n\
         # Every setting is shown with its default, commented out: remove the `# ` before a line\n\
         # to change it. `workq config check` reads the file and names every problem with its\n\
         # line; the console shows the same problems in its status line and in help (?).\n",
    );
    for (name, default, about) in SETTINGS {
        out.push('\n');
        for line in *about {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("# {name} = {default}\n"));
    }
    out.push_str(
        "\n[keys]\n\
         # The keys of each command: one key (\"r\") or a list ([\"k\", \"up\"]). A key is a\n\
         # character (r, G, /), a name (enter, esc, space, tab, backtab, up, down, left, right,\n\
         # pgup, pgdn, home, end, backspace, del, f1 to f12), either after ctrl- or alt- (ctrl-d).\n\
         # A key that another command of the same view has is refused, and that command keeps\n\
         # its default keys. Each command's views are in brackets; no brackets: everywhere.\n",
    );
    for spec in TABLE {
        let keys: Vec<String> = spec.keys.iter().map(|k| k.to_string()).collect();
        let views: Vec<&str> = spec.views.iter().map(|v| v.title()).collect();
        let mut about = spec.desc.to_string();
        if !views.is_empty() {
            about.push_str(&format!(" [{}]", views.join(", ")));
        }
        if spec.writes {
            about.push_str(" (changes data: hidden with --read-only)");
        }
        out.push_str(&format!(
            "\n# {}: {about}\n# {} = {}\n",
            spec.name,
            spec.name,
            keys_toml(&keys)
        ));
    }
    out.push_str(
        "\n# Named servers, for `workq --connect NAME`. The token comes from a file only you can\n\
         # read (token_file), an environment variable (token_env), or this file (token, when\n\
         # this file is private).\n\
         #\n\
         # [connections.prod]\n\
         # url = \"https://workq.example:7878\"\n\
         # token_file = \"~/.config/workq/prod.token\"\n",
    );
    out
}

/// What `workq config show` prints: the effective configuration, each value with where
/// it comes from (the default, the file's line, the environment).
pub fn show(path: Option<&Path>) -> (String, Vec<String>) {
    let checked = load(path);
    let c = &checked.config;
    let file = path.map(|p| p.display().to_string()).unwrap_or_default();
    let from = |key: &str| match c.lines.get(key) {
        Some(l) => format!("{file}:{l}"),
        None => "default".to_string(),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut out = format!(
        "# The effective configuration: the defaults, then {}, then the environment.\n\n",
        if file.is_empty() {
            "no config file".to_string()
        } else if path.is_some_and(|p| p.exists()) {
            file.clone()
        } else {
            format!("{file} (absent)")
        }
    );
    let theme = c.theme.clone().unwrap_or_else(|| "dark".into());
    let theme_from = if no_color {
        format!("{}; NO_COLOR is set, so no colours", from("theme"))
    } else {
        from("theme")
    };
    let refresh = c.refresh.unwrap_or(DEFAULT_REFRESH);
    let rows = [
        (
            "theme",
            serde_json::to_string(&theme).expect("a string"),
            theme_from,
        ),
        ("mouse", c.mouse.unwrap_or(true).to_string(), from("mouse")),
        (
            "refresh",
            format!("\"{}\"", crate::rules::exact_duration(refresh)),
            from("refresh"),
        ),
    ];
    for (name, value, whence) in rows {
        out.push_str(&format!("{:<40} # {whence}\n", format!("{name} = {value}")));
    }
    out.push_str("\n[keys]\n");
    for spec in TABLE {
        let keys: Vec<String> = checked
            .keymap
            .keys(spec.cmd)
            .iter()
            .map(|k| k.to_string())
            .collect();
        // The file's binding applies when the keymap holds exactly its keys (a refused
        // one left the default in place).
        let applied = c.keys.get(spec.name).is_some_and(|set| {
            let texts = match set {
                KeySetting::One(k) => std::slice::from_ref(k),
                KeySetting::Many(ks) => ks.as_slice(),
            };
            texts
                .iter()
                .map(|t| Key::parse(t))
                .collect::<Result<Vec<_>, _>>()
                .is_ok_and(|ks| ks == checked.keymap.keys(spec.cmd))
        });
        let whence = if applied {
            from(&format!("keys.{}", spec.name))
        } else {
            "default".to_string()
        };
        out.push_str(&format!(
            "{:<40} # {whence}\n",
            format!("{} = {}", spec.name, keys_toml(&keys))
        ));
    }
    let env: Vec<String> = ["WORKQ_CONFIG", "WORKQ_DB", "WORKQ_REMOTE", "NO_COLOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|x| format!("# {v}={x}")))
        .chain(
            std::env::var_os("WORKQ_TOKEN").map(|_| "# WORKQ_TOKEN is set (not shown)".to_string()),
        )
        .collect();
    if !env.is_empty() {
        out.push_str("\n# From the environment:\n");
        for e in env {
            out.push_str(&crate::text::escape(&e, false));
            out.push('\n');
        }
    }
    (out, checked.problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::commands::{by_name, Command, KEYS_EXAMPLE};
    use crate::tui::state::View;

    #[test]
    fn the_shipped_default_is_generated_from_the_command_table_and_settings() {
        let want = default_text();
        if std::env::var_os("WORKQ_BLESS").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/assets/config.toml"),
                &want,
            )
            .unwrap();
            return;
        }
        assert!(
            DEFAULT == want,
            "assets/config.toml is not what the command table and settings make: \
             run `WORKQ_BLESS=1 cargo test --lib the_shipped_default` and commit it"
        );
        // Every command, with its description and default keys, and every setting.
        for spec in TABLE {
            let keys: Vec<String> = spec.keys.iter().map(|k| k.to_string()).collect();
            let line = format!("# {} = {}\n", spec.name, keys_toml(&keys));
            assert!(DEFAULT.contains(&line), "{line}");
            assert!(
                DEFAULT.contains(&format!("# {}: {}", spec.name, spec.desc)),
                "{}",
                spec.name
            );
        }
        for (name, default, _) in SETTINGS {
            assert!(
                DEFAULT.contains(&format!("# {name} = {default}\n")),
                "{name}"
            );
        }
    }

    #[test]
    fn the_default_uncommented_is_valid_and_is_the_default() {
        // Remove "# " before every `name = value` line: the file then sets every default.
        let uncommented: String = DEFAULT
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.contains(" = ")
                        && !rest.contains("token_file")
                        && !rest.contains("url =") =>
                {
                    rest.to_string()
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = check(&uncommented, "config.toml", None);
        assert_eq!(c.problems, Vec::<String>::new());
        assert_eq!(c.config.keys.len(), TABLE.len());
        assert_eq!(c.config.theme.as_deref(), Some("dark"));
        assert_eq!(c.config.mouse, Some(true));
        assert_eq!(c.config.refresh, Some(DEFAULT_REFRESH));
        for spec in TABLE {
            assert_eq!(
                c.keymap.keys(spec.cmd),
                Keymap::default().keys(spec.cmd),
                "{}",
                spec.name
            );
        }
        // Commented, it sets nothing.
        let c = check(DEFAULT, "config.toml", None);
        assert_eq!(c.problems, Vec::<String>::new());
        assert_eq!(c.config, Config::default());
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_reported_with_their_lines() {
        let text = "theme = \"light\"\n[keys]\nrequeue = [\"ctrl-q\", \"r\"]\nhold = \"r\"\nfrobnicate = \"x\"\nnote = \"ctrl-\"\n";
        let c = check(text, "config.toml", None);
        let q = Key::parse("ctrl-q").unwrap();
        assert_eq!(
            c.keymap.lookup(q, View::Items, false),
            Some(Command::Requeue)
        );
        // hold = "r" clashes with requeue in the items view: refused, hold keeps 'h'.
        assert_eq!(
            c.keymap
                .lookup(Key::parse("h").unwrap(), View::Items, false),
            Some(Command::Hold)
        );
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        let has = |start: &str| c.problems.iter().any(|p| p.starts_with(start));
        assert!(
            has("config.toml:4: keys.hold: 'r' is already 'requeue'"),
            "{:?}",
            c.problems
        );
        assert!(
            has("config.toml:5: keys.frobnicate: no such command"),
            "{:?}",
            c.problems
        );
        assert!(has("config.toml:6: keys.note:"), "{:?}", c.problems);
        assert_eq!(c.keymap.conflicts(), vec![]);
    }

    #[test]
    fn the_helps_key_example_is_valid_and_takes_effect() {
        let c = check(&format!("[keys]\n{KEYS_EXAMPLE}\n"), "example", None);
        assert_eq!(c.problems, Vec::<String>::new(), "{KEYS_EXAMPLE}");
        let (name, key) = KEYS_EXAMPLE.split_once(" = ").unwrap();
        let key = Key::parse(key.trim_matches('"')).unwrap();
        let cmd = by_name(name).unwrap().cmd;
        for v in [View::Items, View::Detail, View::Exceptions] {
            assert_eq!(c.keymap.lookup(key, v, false), Some(cmd), "{v:?}");
        }
    }

    #[test]
    fn bad_files_name_each_problem_and_its_line() {
        let p = check("theme = ", "c.toml", None).problems;
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("c.toml:1: "), "{p:?}");
        let p = check("mouse = true\n\ncolour = 1", "c.toml", None).problems;
        assert!(
            p[0].starts_with("c.toml:3: ") && p[0].contains("colour"),
            "{p:?}"
        );
        // A wrong type names the setting's line.
        // A wrong type names the setting's line, and the others are still read.
        let c = check(
            "theme = 3\nmouse = \"yes\"\nrefresh = 5\n[keys]\nhold = \"H\"\n",
            "c.toml",
            None,
        );
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        assert!(
            c.problems[0].starts_with("c.toml:1: theme: give a theme's name"),
            "{:?}",
            c.problems
        );
        assert!(
            c.problems[1].starts_with("c.toml:2: mouse: give true or false, not string \"yes\""),
            "{:?}",
            c.problems
        );
        assert!(
            c.problems[2].starts_with("c.toml:3: refresh: give a duration"),
            "{:?}",
            c.problems
        );
        assert!(c.config.keys.contains_key("hold"));
        let p = check("refresh = \"10ms\"\n", "c.toml", None).problems;
        assert!(p[0].starts_with("c.toml:1: refresh '10ms'"), "{p:?}");
        let p = check("refresh = \"soon\"\n", "c.toml", None).problems;
        assert!(p[0].starts_with("c.toml:1: refresh: bad duration"), "{p:?}");
        let p = check(
            "\ntheme = \"purple\"\n",
            "c.toml",
            Some(Path::new("/nonexistent/themes")),
        )
        .problems;
        assert!(
            p[0].starts_with("c.toml:2: theme 'purple' is not dark or light, and there is no "),
            "{p:?}"
        );
        let p = check(
            "[connections.prod]\nurl = \"http://h:1\"\ntokn = \"x\"\n",
            "c.toml",
            None,
        )
        .problems;
        assert!(
            p[0].starts_with("c.toml:1: [connections.prod]") && p[0].contains("tokn"),
            "{p:?}"
        );
        let p = check(
            "[keys]\nhold = 3\nnote = [\"n\", 4]\nmouse = true\n",
            "c.toml",
            None,
        )
        .problems;
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("c.toml:2: keys.hold: give a key"), "{p:?}");
        assert!(
            p[2].starts_with("c.toml:4: keys.mouse: `mouse` is a setting"),
            "{p:?}"
        );
    }

    #[test]
    fn a_theme_file_beside_the_config_is_picked_up_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let themes = dir.path().join("themes");
        std::fs::create_dir(&themes).unwrap();
        std::fs::write(
            themes.join("sunset.toml"),
            "title = { fg = \"#ff8800\" }\nbase = { fg = \"puce\" }\n",
        )
        .unwrap();
        let c = check("theme = \"sunset\"\n", "c.toml", Some(&themes));
        let (name, theme) = c.user_theme.expect("the user's theme");
        assert_eq!(name, "sunset");
        assert_eq!(
            theme.title.fg,
            Some(ratatui::style::Color::Rgb(255, 136, 0))
        );
        // Its own problems name its file and line; the bad part keeps the dark theme's.
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(
            c.problems[0].contains("sunset.toml:2: base: fg: 'puce'"),
            "{:?}",
            c.problems
        );
        assert_eq!(theme.base, Theme::dark().base);
    }
}
