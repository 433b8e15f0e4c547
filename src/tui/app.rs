//! The console loop: one task owns the state; terminal events, backend answers, the change
//! feed and a one-second tick come in as messages; the screen is redrawn after changes.
//! Data is fetched again on change events only; the tick moves clocks on screen. A change
//! feed that lags or goes away is `update`'s to judge; the loop subscribes again when told.

use crate::backend::Backend;
use crate::backend::{Feed, Gap};
use crate::tui::settings;
use crate::tui::state::{Level, State, ThemeName};
use crate::tui::update::{update, Effect, Msg};
use crate::tui::value_edit::{self, EditSession};
use crate::tui::{effects, views};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;
use std::io::{stdout, Stdout};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub struct Options {
    /// What the header says the console is connected to.
    pub source: String,
    pub read_only: bool,
    pub actor: String,
    /// Said in the status line at start (the file was opened read-only, and why).
    pub notice: Option<String>,
}

/// Changes from the engine are gathered for this long before the console refetches.
const DEBOUNCE: Duration = Duration::from_millis(250);
const TICK: Duration = Duration::from_secs(1);
/// How long the config problems stay in the status line at start.
const CONFIG_STATUS_SECS: i64 = 30;

type Term = Terminal<CrosstermBackend<Stdout>>;

fn enter(mouse: bool) -> std::io::Result<()> {
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen)?;
    if mouse {
        execute!(stdout(), EnableMouseCapture)?;
    }
    Ok(())
}

/// Puts the terminal back as it was; safe to call twice.
pub fn leave() {
    let _ = execute!(stdout(), DisableMouseCapture, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), ratatui::crossterm::cursor::Show);
}

/// The state a console starts with: config file, colours, read-only.
pub fn initial_state(opts: &Options) -> State {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    initial_state_from(opts, settings::path(), no_color)
}

/// The starting state from a given config file (tests pass their own).
pub fn initial_state_from(
    opts: &Options,
    path: Option<std::path::PathBuf>,
    no_color: bool,
) -> State {
    let mut s = State::new(chrono::Utc::now(), &opts.source, &opts.actor);
    s.zone = crate::text::Zone::local();
    s.read_only = opts.read_only;
    s.no_color = no_color;
    if let Some(p) = &path {
        s.config_file = p.display().to_string();
    }
    let checked = settings::load(path.as_deref());
    let (cfg, problems) = (&checked.config, checked.problems.clone());
    s.keymap = checked.keymap.clone();
    match cfg.theme.as_deref() {
        Some("light") => s.theme = ThemeName::Light,
        Some(_) if checked.user_theme.is_some() => {
            s.theme = ThemeName::User;
            s.user_theme = checked.user_theme.clone();
        }
        _ => {}
    }
    if let Some(m) = cfg.mouse {
        s.mouse = m;
    }
    s.refresh = cfg.refresh.unwrap_or(settings::DEFAULT_REFRESH);
    if !problems.is_empty() {
        for p in &problems {
            tracing::warn!("config: {p}");
        }
        // Said in the status line, not in a popup: a popup took the first key press
        // (which then did nothing), and the list is in help for as long as it is needed.
        let n = problems.len();
        s.status = Some(crate::tui::state::StatusLine {
            text: format!(
                "config: {n} problem{} (defaults kept for those; ? lists them): {}",
                if n == 1 { "" } else { "s" },
                problems[0]
            ),
            level: Level::Warn,
            until: s.now + chrono::Duration::seconds(CONFIG_STATUS_SECS),
        });
    }
    s.config_problems = problems;
    if let Some(text) = &opts.notice {
        s.status = Some(crate::tui::state::StatusLine {
            text: text.clone(),
            level: Level::Warn,
            until: s.now + chrono::Duration::seconds(CONFIG_STATUS_SECS),
        });
    }
    s
}

pub async fn run(backend: Arc<dyn Backend>, opts: Options) -> std::io::Result<()> {
    let mut state = initial_state(&opts);
    // A panic puts the terminal back before the message prints.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        hook(info);
    }));
    enter(state.mouse)?;
    let result = run_loop(backend, &mut state).await;
    leave();
    result
}

async fn run_loop(backend: Arc<dyn Backend>, s: &mut State) -> std::io::Result<()> {
    execute!(stdout(), Clear(ClearType::All))?;
    let mut term: Term = Terminal::new(CrosstermBackend::new(stdout()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    // `None` while the feed is away, until `Effect::Resubscribe`'s time comes.
    let mut changes: Option<Feed> = Some(backend.subscribe());
    let mut resubscribe_at: Option<tokio::time::Instant> = None;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut debounce: Option<tokio::time::Instant> = None;
    let mut last_changed = tokio::time::Instant::now();
    let size = term.size()?;
    // Popped from the end: the size first, then the first fetch.
    let mut pending = vec![Msg::Changed, Msg::Resize(size.width, size.height)];
    loop {
        // Apply everything that is waiting, then draw once.
        // Only messages change the state, so only they call for a frame; change-feed
        // wake-ups (many per second under load) just arm the debounce.
        let dirty = !pending.is_empty();
        while let Some(msg) = pending.pop() {
            let fx = update(s, msg);
            for e in fx {
                match e {
                    Effect::Edit(sess) => {
                        drop(events);
                        let r = edit_value(&mut term, s.mouse, &sess);
                        events = EventStream::new();
                        pending.insert(0, Msg::Edited(sess, r));
                    }
                    Effect::Resubscribe(after) => {
                        resubscribe_at = Some(tokio::time::Instant::now() + after);
                    }
                    Effect::SetMouse(on) => {
                        let _ = if on {
                            execute!(stdout(), EnableMouseCapture)
                        } else {
                            execute!(stdout(), DisableMouseCapture)
                        };
                    }
                    other => effects::spawn(&backend, other, &tx),
                }
            }
            if pending.is_empty() {
                while let Ok(m) = rx.try_recv() {
                    pending.insert(0, m);
                }
            }
        }
        if s.quit {
            return Ok(());
        }
        if dirty {
            term.draw(|f| views::draw(f, s))?;
        }
        let sleep_until =
            debounce.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => pending.push(Msg::Key(k)),
                Some(Ok(TermEvent::Mouse(m))) => pending.push(Msg::Mouse(m)),
                Some(Ok(TermEvent::Resize(w, h))) => pending.push(Msg::Resize(w, h)),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::error!("terminal input failed: {e}");
                    return Err(e);
                }
                None => return Ok(()),
            },
            Some(m) = rx.recv() => pending.push(m),
            _ = tick.tick() => pending.push(Msg::Tick(chrono::Utc::now())),
            r = next_change(&mut changes), if changes.is_some() => match r {
                Ok(_) => {
                    debounce.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
                }
                Err(gap) => {
                    if matches!(gap, Gap::Disconnected(_)) {
                        changes = None;
                    }
                    pending.push(Msg::Feed(gap));
                }
            },
            _ = sleep_until_some(resubscribe_at), if resubscribe_at.is_some() => {
                resubscribe_at = None;
                changes = Some(backend.subscribe());
                pending.push(Msg::Resubscribed);
            }
            _ = tokio::time::sleep_until(sleep_until), if debounce.is_some() => {
                // Busy bots change something every few milliseconds: refetch at most
                // once per `refresh` so slow filtered queries do not run back to back.
                let ready = last_changed + s.refresh;
                if tokio::time::Instant::now() < ready {
                    debounce = Some(ready);
                } else {
                    debounce = None;
                    last_changed = tokio::time::Instant::now();
                    pending.push(Msg::Changed);
                }
            }
        }
    }
}

/// The next event or gap of the feed (only polled while there is one).
async fn next_change(feed: &mut Option<Feed>) -> Result<crate::model::Event, Gap> {
    match feed {
        Some(f) => f.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Suspends the console, runs `$VISUAL`/`$EDITOR` on the session's text and comes back
/// with what was saved (what it means is `value_edit`'s business, tested without a terminal).
fn edit_value(term: &mut Term, mouse: bool, sess: &EditSession) -> Result<String, String> {
    let path = std::env::temp_dir().join(format!(
        "workq-{}-{}.{}",
        std::process::id(),
        sess.id,
        sess.extension()
    ));
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    leave();
    let saved = value_edit::run_editor(&editor, &path, &sess.text);
    let _ = enter(mouse);
    // A fresh terminal has empty buffers, so the next frame is drawn whole. (Terminal::clear
    // asks the terminal for the cursor position, which needs the input reader we dropped.)
    let _ = execute!(stdout(), Clear(ClearType::All));
    if let Ok(t) = Terminal::new(CrosstermBackend::new(stdout())) {
        *term = t;
    }
    saved
}
