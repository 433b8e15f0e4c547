//! The one command table: every user-facing command with its name, description, default
//! keys, whether it changes data, and the views it applies to. The key map, the palette,
//! the help overlay and the footer hints are all generated from it.

use crate::tui::state::View;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    // Anywhere.
    Quit,
    Help,
    Palette,
    Back,
    Queues,
    Items,
    Exceptions,
    Workers,
    Actions,
    Theme,
    Mouse,
    Refresh,
    Undo,
    // Moving in lists.
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    // Item detail.
    NextItem,
    PrevItem,
    // Items.
    Search,
    Filter,
    ClearFilter,
    NextTab,
    PrevTab,
    Sort,
    SortReverse,
    Mark,
    MarkRange,
    MarkAll,
    ClearMarks,
    // Actions on items.
    Requeue,
    RequeueDelay,
    Hold,
    Release,
    Processed,
    Delete,
    Priority,
    Extend,
    Note,
    EditValue,
    // Queues.
    PauseResume,
    EditQueue,
}

/// One row of the command table.
pub struct Spec {
    pub cmd: Command,
    /// What `:` takes, and the name in the config file.
    pub name: &'static str,
    /// Arguments the palette accepts, for help.
    pub args: &'static str,
    pub desc: &'static str,
    pub keys: &'static [&'static str],
    /// Changes data: hidden with `--read-only`.
    pub writes: bool,
    /// Destroys or finalises work: the confirmation is drawn as a warning.
    pub dangerous: bool,
    /// Empty: every view.
    pub views: &'static [View],
    /// Shown in the footer of the views it applies to.
    pub hint: bool,
}

/// What delete does, said the same in help and in its confirmation: the item goes, the
/// history rows stay in the audit trail (an undo brings the item back with them).
pub const DELETE_DESC: &str = "delete items (their history is kept)";

use View::*;
const LISTS: &[View] = &[Queues, Items, Exceptions, Workers];
const ACTS: &[View] = &[Items, Detail, Exceptions];

macro_rules! spec {
    ($cmd:ident, $name:literal, $args:literal, $desc:expr, [$($k:literal),*], $writes:literal, $danger:literal, $views:expr, $hint:literal) => {
        Spec { cmd: Command::$cmd, name: $name, args: $args, desc: $desc, keys: &[$($k),*],
               writes: $writes, dangerous: $danger, views: $views, hint: $hint }
    };
}

pub const TABLE: &[Spec] = &[
    spec!(
        Quit,
        "quit",
        "",
        "quit the console",
        ["q", "ctrl-c"],
        false,
        false,
        &[],
        true
    ),
    spec!(
        Help,
        "help",
        "",
        "show every command and its keys",
        ["?"],
        false,
        false,
        &[],
        true
    ),
    spec!(
        Palette,
        "palette",
        "",
        "type a command",
        [":"],
        false,
        false,
        &[],
        true
    ),
    spec!(
        Back,
        "back",
        "",
        "close, clear marks, or go back",
        ["esc"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Queues,
        "queues",
        "",
        "queues: counts, SLA, throughput, deadline",
        ["1"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Items,
        "items",
        "[QUEUE|all]",
        "items of the selected queue (or all)",
        ["2"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Exceptions,
        "exceptions",
        "",
        "exceptions inbox: grouped failures, expired, out of SLA",
        ["3"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Workers,
        "workers",
        "",
        "workers seen recently and what they hold",
        ["4"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Actions,
        "actions",
        "",
        "past actions: who did what; undo any of them",
        ["A"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Theme,
        "theme",
        "[dark|light|NAME]",
        "switch between dark and light",
        ["T"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Mouse,
        "mouse",
        "[on|off]",
        "turn mouse support on or off",
        ["M"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Refresh,
        "refresh",
        "",
        "reload now",
        ["ctrl-r"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Undo,
        "undo",
        "",
        "undo the last action (in actions: the selected one); keeps what moved on",
        ["z"],
        true,
        false,
        &[],
        false
    ),
    spec!(
        Up,
        "up",
        "",
        "move up",
        ["k", "up"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Down,
        "down",
        "",
        "move down",
        ["j", "down"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        PageUp,
        "page-up",
        "",
        "half a page up",
        ["ctrl-u", "pageup"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        PageDown,
        "page-down",
        "",
        "half a page down",
        ["ctrl-d", "pagedown"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Top,
        "top",
        "",
        "go to the first row",
        ["g", "home"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Bottom,
        "bottom",
        "",
        "go to the last row",
        ["G", "end"],
        false,
        false,
        &[],
        false
    ),
    spec!(
        Open,
        "open",
        "",
        "open the row: items of a queue, a group, a worker, an item",
        ["enter"],
        false,
        false,
        LISTS,
        true
    ),
    spec!(
        NextItem,
        "next",
        "",
        "the next item of the list, without leaving the detail",
        ["]"],
        false,
        false,
        &[Detail],
        true
    ),
    spec!(
        PrevItem,
        "previous",
        "",
        "the previous item of the list",
        ["["],
        false,
        false,
        &[Detail],
        true
    ),
    spec!(
        Search,
        "search",
        "[TEXT]",
        "free text: items' name, key, value, notes; inbox rows' queue, note, example",
        ["/"],
        false,
        false,
        &[Items, Exceptions],
        true
    ),
    spec!(
        Filter,
        "filter",
        "[status=S reason=R priority=P sla=S expired text]",
        "filter items, or inbox rows by queue=Q reason=R kind=exception|expired|sla",
        ["f"],
        false,
        false,
        &[Items, Exceptions],
        false
    ),
    spec!(
        ClearFilter,
        "clear-filter",
        "",
        "drop every filter but the queue",
        ["F"],
        false,
        false,
        &[Items, Exceptions],
        false
    ),
    spec!(
        NextTab,
        "next-tab",
        "",
        "next status tab",
        ["tab", "]"],
        false,
        false,
        &[Items],
        false
    ),
    spec!(
        PrevTab,
        "prev-tab",
        "",
        "previous status tab",
        ["backtab", "["],
        false,
        false,
        &[Items],
        false
    ),
    spec!(
        Sort,
        "sort",
        "[enqueued|priority|name|status]",
        "sort by the next column",
        ["s"],
        false,
        false,
        &[Items],
        false
    ),
    spec!(
        SortReverse,
        "reverse",
        "",
        "reverse the sort order",
        ["S"],
        false,
        false,
        &[Items],
        false
    ),
    spec!(
        Mark,
        "mark",
        "",
        "mark or unmark the row",
        ["space"],
        false,
        false,
        &[Items, Exceptions],
        true
    ),
    spec!(
        MarkRange,
        "mark-range",
        "",
        "mark from the last mark to the cursor",
        ["v"],
        false,
        false,
        &[Items],
        false
    ),
    spec!(
        MarkAll,
        "mark-all",
        "",
        "mark every item matching the filter (every inbox row shown)",
        ["ctrl-a"],
        false,
        false,
        &[Items, Exceptions],
        false
    ),
    spec!(
        ClearMarks,
        "clear-marks",
        "",
        "clear the marks",
        ["c"],
        false,
        false,
        &[Items, Exceptions],
        false
    ),
    spec!(
        Requeue,
        "requeue",
        "[DELAY]",
        "put back in the queue (optionally after a delay)",
        ["r"],
        true,
        false,
        ACTS,
        true
    ),
    spec!(
        RequeueDelay,
        "requeue-delay",
        "",
        "requeue after a delay you type",
        ["R"],
        true,
        false,
        ACTS,
        false
    ),
    spec!(
        Hold,
        "hold",
        "",
        "park: no worker takes it",
        ["h"],
        true,
        false,
        ACTS,
        true
    ),
    spec!(
        Release,
        "release",
        "",
        "take on-hold items back to the queue",
        ["u"],
        true,
        false,
        ACTS,
        false
    ),
    spec!(
        Processed,
        "processed",
        "",
        "mark processed",
        ["d"],
        true,
        true,
        ACTS,
        true
    ),
    spec!(
        Delete,
        "delete",
        "",
        DELETE_DESC,
        ["D"],
        true,
        true,
        ACTS,
        false
    ),
    spec!(
        Priority,
        "priority",
        "[high|normal|low]",
        "change priority",
        ["p"],
        true,
        false,
        ACTS,
        false
    ),
    spec!(
        Extend,
        "extend",
        "[DUR|never]",
        "extend the expiry (e.g. 2h) or clear it",
        ["x"],
        true,
        false,
        ACTS,
        false
    ),
    spec!(
        Note,
        "note",
        "[TEXT]",
        "add a note",
        ["n"],
        true,
        false,
        ACTS,
        false
    ),
    spec!(
        EditValue,
        "edit",
        "",
        "edit the value in $EDITOR and requeue",
        ["e"],
        true,
        false,
        &[Items, Detail],
        false
    ),
    spec!(
        PauseResume,
        "pause",
        "",
        "pause or resume the selected queue",
        ["P"],
        true,
        false,
        &[Queues],
        true
    ),
    spec!(
        EditQueue,
        "settings",
        "",
        "edit the selected queue's settings",
        ["e"],
        true,
        false,
        &[Queues],
        true
    ),
];

/// The action a command applies, in a form the rules can judge (arguments filled with
/// stand-ins: which statuses it fits does not depend on them); `None`: not an action.
pub fn action_of(cmd: Command) -> Option<crate::model::ActionKind> {
    use crate::model::{ActionKind, Priority};
    Some(match cmd {
        Command::Requeue | Command::RequeueDelay | Command::EditValue => ActionKind::Requeue {
            delay: None,
            value: None,
        },
        Command::Hold => ActionKind::Hold,
        Command::Release => ActionKind::Release,
        Command::Processed => ActionKind::Processed,
        Command::Delete => ActionKind::Delete,
        Command::Priority => ActionKind::SetPriority {
            priority: Priority::Normal,
        },
        Command::Extend => ActionKind::ExtendExpiry { expires_at: None },
        Command::Note => ActionKind::AddNote,
        _ => return None,
    })
}

pub fn spec(cmd: Command) -> &'static Spec {
    TABLE
        .iter()
        .find(|s| s.cmd == cmd)
        .expect("every command is in the table")
}

pub fn by_name(name: &str) -> Option<&'static Spec> {
    TABLE.iter().find(|s| s.name == name).or(match name {
        // Short forms people type out of habit.
        "q" | "q!" | "exit" => Some(spec(Command::Quit)),
        "resume" => Some(spec(Command::PauseResume)),
        "ex" | "exc" => Some(spec(Command::Exceptions)),
        _ => None,
    })
}

impl Spec {
    pub fn applies(&self, view: View) -> bool {
        self.views.is_empty() || self.views.contains(&view)
    }
    pub fn available(&self, read_only: bool) -> bool {
        !(read_only && self.writes)
    }
}

/// A key as the config file writes it: `ctrl-d`, `G`, `space`, `shift-tab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub fn from_event(e: &KeyEvent) -> Key {
        let code = match e.code {
            // Upper-case letters arrive with SHIFT; the letter says it already.
            KeyCode::Char(c) => KeyCode::Char(c),
            KeyCode::Tab if e.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        Key {
            code,
            ctrl: e.modifiers.contains(KeyModifiers::CONTROL),
            alt: e.modifiers.contains(KeyModifiers::ALT),
        }
    }

    pub fn parse(s: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-").or(lower.strip_prefix("c-")) {
                ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-").or(lower.strip_prefix("m-")) {
                alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "space" => KeyCode::Char(' '),
            "tab" => KeyCode::Tab,
            "backtab" | "shift-tab" => KeyCode::BackTab,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            f if f.len() >= 2 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                let n: u8 = f[1..].parse().expect("checked");
                if !(1..=12).contains(&n) {
                    return Err(format!("unknown key '{s}'"));
                }
                KeyCode::F(n)
            }
            _ => {
                let mut cs = rest.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) if !c.is_control() => {
                        KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c })
                    }
                    _ => {
                        return Err(format!(
                            "unknown key '{s}' (use e.g. r, G, ctrl-d, enter, space, f5)"
                        ))
                    }
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Keys → commands, after the user's overrides.
#[derive(Debug, Clone)]
pub struct Keymap {
    keys: BTreeMap<Command, Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let keys = TABLE
            .iter()
            .map(|s| {
                let ks = s
                    .keys
                    .iter()
                    .map(|k| Key::parse(k).expect("default keys parse"))
                    .collect();
                (s.cmd, ks)
            })
            .collect();
        Keymap { keys }
    }
}

impl Keymap {
    pub fn keys(&self, cmd: Command) -> &[Key] {
        self.keys.get(&cmd).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The command a key runs in a view.
    pub fn lookup(&self, key: Key, view: View, read_only: bool) -> Option<Command> {
        TABLE
            .iter()
            .filter(|s| s.applies(view) && s.available(read_only))
            .find(|s| self.keys(s.cmd).contains(&key))
            .map(|s| s.cmd)
    }

    /// Commands that share a key in a view they both apply to.
    pub fn conflicts(&self) -> Vec<(Key, Command, Command)> {
        let mut out = Vec::new();
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                if !overlap(a, b) {
                    continue;
                }
                for k in self.keys(a.cmd) {
                    if self.keys(b.cmd).contains(k) {
                        out.push((*k, a.cmd, b.cmd));
                    }
                }
            }
        }
        out
    }

    /// Applies `[keys]` overrides; each bad or conflicting one is refused and reported,
    /// and that command keeps its default keys.
    pub fn with_overrides(overrides: &BTreeMap<String, KeySetting>) -> (Keymap, Vec<KeyProblem>) {
        let mut map = Keymap::default();
        let mut problems = Vec::new();
        for (name, setting) in overrides {
            let Some(spec) = TABLE.iter().find(|s| s.name == name) else {
                problems.push(KeyProblem::new(name, "no such command".into()));
                continue;
            };
            let texts = match setting {
                KeySetting::One(k) => vec![k.clone()],
                KeySetting::Many(ks) => ks.clone(),
            };
            let mut keys = Vec::new();
            let mut bad = false;
            for t in &texts {
                match Key::parse(t) {
                    Ok(k) => keys.push(k),
                    Err(e) => {
                        problems.push(KeyProblem::new(name, e));
                        bad = true;
                    }
                }
            }
            if bad {
                continue;
            }
            let before = map.keys.insert(spec.cmd, keys);
            let clashes: Vec<String> = map
                .conflicts()
                .into_iter()
                .filter(|(_, a, b)| *a == spec.cmd || *b == spec.cmd)
                .map(|(k, a, b)| {
                    let other = if a == spec.cmd { b } else { a };
                    format!("'{k}' is already '{}'", self::spec(other).name)
                })
                .collect();
            if !clashes.is_empty() {
                problems.push(KeyProblem::new(
                    name,
                    format!("{}; kept the default keys", clashes.join(", ")),
                ));
                map.keys.insert(spec.cmd, before.unwrap_or_default());
            }
        }
        (map, problems)
    }

    /// "r" / "k/↑": the keys of a command for hints and help.
    pub fn label(&self, cmd: Command) -> String {
        self.keys(cmd)
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn overlap(a: &Spec, b: &Spec) -> bool {
    a.views.is_empty() || b.views.is_empty() || a.views.iter().any(|v| b.views.contains(v))
}

/// A `[keys]` entry that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// The command's name as the file wrote it.
    pub name: String,
    pub text: String,
}

impl KeyProblem {
    fn new(name: &str, text: String) -> KeyProblem {
        KeyProblem {
            name: name.to_string(),
            text,
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys.{}: {}", self.name, self.text)
    }
}

/// A key override: one key or several.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeySetting {
    One(String),
    Many(Vec<String>),
}

/// The key example the help shows; a test runs it through `Keymap::with_overrides`, so
/// the documented example is always valid.
pub const KEYS_EXAMPLE: &str = "requeue = \"alt-r\"";

/// Completions of a partial command name in the palette.
pub fn complete(prefix: &str, view: View, read_only: bool) -> Vec<&'static Spec> {
    let mut out: Vec<&'static Spec> = TABLE
        .iter()
        .filter(|s| s.available(read_only) && s.name.starts_with(prefix))
        .filter(|s| !matches!(s.cmd, Command::Palette))
        .collect();
    // Commands of the current view first.
    out.sort_by_key(|s| (!s.applies(view) || s.views.is_empty(), s.name.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_do_not_conflict_and_names_are_unique() {
        assert_eq!(Keymap::default().conflicts(), vec![]);
        let mut names: Vec<&str> = TABLE.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
    }

    #[test]
    fn palette_has_the_required_commands() {
        for n in [
            "queues",
            "items",
            "exceptions",
            "workers",
            "requeue",
            "hold",
            "release",
            "processed",
            "delete",
            "undo",
            "filter",
            "theme",
            "quit",
        ] {
            assert!(by_name(n).is_some(), "{n}");
        }
    }

    #[test]
    fn keys_parse_and_print() {
        assert_eq!(Key::parse("ctrl-d").unwrap().to_string(), "ctrl-d");
        assert_eq!(Key::parse("G").unwrap().code, KeyCode::Char('G'));
        assert_eq!(Key::parse("space").unwrap().code, KeyCode::Char(' '));
        assert_eq!(Key::parse("shift-tab").unwrap().code, KeyCode::BackTab);
        assert!(Key::parse("ctrl-").is_err());
        assert!(Key::parse("banana").is_err());
        let e = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&e), Key::parse("G").unwrap());
    }

    #[test]
    fn read_only_hides_writes() {
        let m = Keymap::default();
        let r = Key::parse("r").unwrap();
        assert_eq!(m.lookup(r, View::Items, false), Some(Command::Requeue));
        assert_eq!(m.lookup(r, View::Items, true), None);
        assert!(complete("re", View::Items, true).iter().all(|s| !s.writes));
    }
}
