//! `update(&mut State, Msg) -> Vec<Effect>`: every change to the console state happens here,
//! with no I/O. Keys, mouse, ticks and backend answers come in as messages; what must be
//! fetched or changed goes out as effects, whose answers come back as messages.

use crate::backend::{Error, Gap};
use crate::model::*;
use crate::rules::{exact_duration, parse_duration, parse_statuses, TYPE_THE_COUNT_OVER};
use crate::text::thousands;
use crate::tui::commands::{self, Command, Key};
use crate::tui::state::*;
use crate::tui::value_edit::{EditSession, Outcome};
use crate::tui::views;
use chrono::Duration as ChronoDuration;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// The clock moved; also the fallback refresh.
    Tick(Time),
    /// The backend reported changes (debounced by the loop).
    Changed,
    /// The change feed could not follow the engine: events were missed, or it went away.
    Feed(Gap),
    /// The loop subscribed to the change feed again (as `Effect::Resubscribe` asked).
    Resubscribed,
    Queues(u64, Result<Vec<QueueSummary>, Error>),
    Alerts(Result<Vec<crate::alert::Alert>, Error>),
    Page(u64, u64, Result<Page, Error>),
    Detail(u64, Result<ItemDetail, Error>),
    Groups(u64, Result<Vec<ExceptionGroup>, Error>),
    Workers(u64, Result<Vec<WorkerInfo>, Error>),
    Preview(u64, Result<Preview, Error>),
    Acted(Result<ActionResult, Error>),
    /// What an undo would do (a dry run), for its confirmation.
    UndoPreview(u64, Result<UndoResult, Error>),
    Undone(Result<UndoResult, Error>),
    Actions(u64, Result<Vec<ActionInfo>, Error>),
    QueueSaved(Result<Queue, Error>),
    /// The editor closed: what was saved, or why the editor could not run.
    Edited(EditSession, Result<String, String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    LoadQueues(u64),
    /// Alerts, read with every queue refresh (few, and cheap).
    LoadAlerts,
    LoadPage {
        seq: u64,
        filter: Filter,
        page: PageRequest,
        /// The page is asked for in the opposite order (deep offsets are cheap from the
        /// other end); its rows must be reversed. `offset` is where they go in the list.
        flip: bool,
        offset: u64,
    },
    LoadDetail(u64, String),
    LoadGroups(u64),
    LoadWorkers(u64),
    Preview(u64, Target, ActionKind),
    Act(ActionRequest),
    UndoPreview(u64, i64),
    Undo(UndoRequest),
    LoadActions(u64),
    SetQueueState(String, QueueState),
    UpdateQueue(String, QueueSettings),
    /// Suspend the console and open $EDITOR on an item's value.
    Edit(EditSession),
    SetMouse(bool),
    /// Subscribe to the change feed again after this long (the loop owns the feed).
    Resubscribe(std::time::Duration),
}

const STATUS_SECS: i64 = 6;
pub const TABS: [Option<Status>; 6] = [
    None,
    Some(Status::Queued),
    Some(Status::Processing),
    Some(Status::Exception),
    Some(Status::OnHold),
    Some(Status::Processed),
];

pub fn update(s: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(k) if k.kind == KeyEventKind::Release => vec![],
        Msg::Key(k) => key(s, k),
        Msg::Mouse(m) => mouse(s, m),
        Msg::Resize(w, h) => {
            s.size = (w, h);
            keep_cursor_visible(s);
            page_if_needed(s)
        }
        Msg::Tick(now) => {
            s.now = now;
            if s.status.as_ref().is_some_and(|st| st.until <= now) {
                s.status = None;
            }
            // Nothing changed in the engine (that comes as `Changed`): only time moves SLA
            // states, expiry and throughput, so only the summaries are asked now and then.
            let due = s
                .queues
                .asked_at
                .is_none_or(|t| (now - t).num_seconds() >= TIME_REFRESH_SECS);
            let mut fx = if due && !s.queues.fetch.inflight {
                s.queues.timed = true;
                fetch_queues(s, false)
            } else {
                vec![]
            };
            // An agent's report (draining, its pace) and a quiet worker going stale change
            // no item, so no event says so: the workers view asks by itself.
            let workers_due = s
                .workers
                .asked_at
                .is_none_or(|t| (now - t).num_seconds() >= WORKERS_REFRESH_SECS);
            if s.view == View::Workers && workers_due && !s.workers.fetch.inflight {
                fx.extend(fetch_workers(s, false));
            }
            fx
        }
        Msg::Changed => refresh(s),
        Msg::Feed(gap) => feed_gap(s, gap),
        Msg::Resubscribed => {
            s.feed.down_since = None;
            s.feed.retry_at = None;
            s.feed.up_since = Some(s.now);
            // Whatever changed while the feed was away is fetched now.
            refresh(s)
        }
        // An alert list that fails to load keeps the last one: the queues' own error says why.
        Msg::Alerts(r) => {
            if let Ok(list) = r {
                s.queues.alerts = list;
            }
            vec![]
        }
        Msg::Queues(seq, r) => {
            let (apply, again) = landed(&mut s.queues.fetch, seq);
            let timed = std::mem::take(&mut s.queues.timed) && apply;
            let mut fx = vec![];
            if apply {
                match r {
                    Ok(list) => {
                        // Time moved an item's SLA state or expiry: the rows on screen say so.
                        if timed && time_figures(&list) != time_figures(&s.queues.list) {
                            fx = fetch_view(s);
                        }
                        s.queues.list = list;
                        s.queues.loaded = true;
                        if s.queues.selected.is_none() {
                            s.queues.selected = s.queues.list.first().map(|q| q.queue.name.clone());
                        }
                    }
                    Err(e) => load_failed(s, "queues", &e),
                }
            }
            if again {
                fx.extend(fetch_queues(s, false));
            }
            fx
        }
        Msg::Page(seq, offset, r) => {
            let (apply, again) = landed(&mut s.items.fetch, seq);
            let mut fx = vec![];
            if apply {
                match r {
                    Ok(p) => page_landed(s, offset, p),
                    Err(e) => load_failed(s, "items", &e),
                }
                if s.detail.follow && detail_of_list(s) {
                    if let Some(id) = s.items.current().map(|r| r.id.clone()) {
                        s.detail.follow = false;
                        fx = load_detail(s, id);
                    }
                }
            }
            if again {
                fx.extend(fetch_page(s, false));
            } else {
                fx.extend(page_if_needed(s));
            }
            fx
        }
        Msg::Detail(seq, r) => {
            let (apply, again) = landed(&mut s.detail.fetch, seq);
            if apply {
                match r {
                    Ok(d) if Some(&d.item.id) == s.detail.id.as_ref() => s.detail.data = Some(d),
                    Ok(_) => {}
                    Err(e @ Error::NotFound { .. }) => {
                        s.detail.data = None;
                        set_status(s, Level::Warn, format!("{e} (deleted?)"));
                    }
                    Err(e) => load_failed(s, "item", &e),
                }
            }
            if again {
                fetch_detail(s, false)
            } else {
                vec![]
            }
        }
        Msg::Groups(seq, r) => {
            let (apply, again) = landed(&mut s.inbox.fetch, seq);
            if apply {
                match r {
                    Ok(g) => {
                        s.inbox.groups = g;
                        s.inbox.loaded = true;
                    }
                    Err(e) => load_failed(s, "exceptions", &e),
                }
            }
            if again {
                fetch_groups(s, false)
            } else {
                vec![]
            }
        }
        Msg::Workers(seq, r) => {
            let (apply, again) = landed(&mut s.workers.fetch, seq);
            if apply {
                match r {
                    Ok(mut w) => {
                        // By name: the engine lists the last heard first, which reshuffles
                        // the rows on every heartbeat.
                        w.sort_by(|a, b| a.name.cmp(&b.name));
                        s.workers.list = w;
                        s.workers.loaded = true;
                        // The highlight belongs to a worker, not to a row.
                        if s.workers.selected.is_none() {
                            s.workers.selected = s.workers.list.first().map(|w| w.name.clone());
                        }
                    }
                    Err(e) => load_failed(s, "workers", &e),
                }
            }
            if again {
                fetch_workers(s, false)
            } else {
                vec![]
            }
        }
        Msg::Preview(seq, r) => {
            if let Some(Popup::Confirm(c)) = &mut s.popup {
                if c.seq == seq {
                    match r {
                        Ok(p) => {
                            c.preview = Some(p);
                            // A big action is confirmed by its count: typing goes there.
                            if c.needs_count() {
                                c.focus = Field::Count;
                            }
                        }
                        Err(e) => {
                            s.popup = Some(error_popup("cannot preview", &e.to_string()));
                        }
                    }
                }
            }
            vec![]
        }
        Msg::UndoPreview(seq, r) => {
            if let Some(Popup::Undo(u)) = &mut s.popup {
                if u.seq == seq {
                    match r {
                        Ok(p) => u.preview = Some(p),
                        Err(e) => s.popup = Some(error_popup("cannot undo", &e.to_string())),
                    }
                }
            }
            vec![]
        }
        Msg::Actions(seq, r) => {
            let (apply, again) = landed(&mut s.actions.fetch, seq);
            if apply {
                match r {
                    Ok(list) => {
                        s.actions.list = list;
                        s.actions.loaded = true;
                    }
                    Err(e) => load_failed(s, "actions", &e),
                }
            }
            if again {
                fetch_actions(s, false)
            } else {
                vec![]
            }
        }
        Msg::Acted(r) => {
            match r {
                Ok(a) => {
                    let n = a.touched;
                    let refused: u64 = a.skipped.iter().map(|t| t.count).sum();
                    let skipped = if refused > 0 {
                        format!(" · skipped {} the rules refuse", thousands(refused))
                    } else {
                        String::new()
                    };
                    set_status(
                        s,
                        if refused > 0 { Level::Warn } else { Level::Ok },
                        format!(
                            "{}: {} item{} (action {}){skipped} · {} undoes",
                            a.verb,
                            thousands(n),
                            plural(n),
                            a.action_id,
                            s.keymap.label(Command::Undo)
                        ),
                    );
                    s.last_action = Some(a);
                    s.inbox.marks.clear();
                    s.items.marks.clear();
                    s.items.mark_all = false;
                    s.items.anchor = None;
                }
                Err(e) => {
                    set_status(s, Level::Error, "action refused: nothing changed".into());
                    s.popup = Some(error_popup("action refused", &e.to_string()));
                }
            }
            refresh(s)
        }
        Msg::Undone(r) => {
            match r {
                Ok(u) => {
                    set_status(
                        s,
                        if u.restored < u.total {
                            Level::Warn
                        } else {
                            Level::Ok
                        },
                        format!("undid action {} ({}): {}", u.action_id, u.verb, u.summary()),
                    );
                    if s.last_action.as_ref().map(|a| a.action_id) == Some(u.action_id) {
                        s.last_action = None;
                    }
                }
                Err(e) => {
                    set_status(s, Level::Error, "undo refused: nothing changed".into());
                    s.popup = Some(error_popup("cannot undo", &e.to_string()));
                }
            }
            refresh(s)
        }
        Msg::QueueSaved(r) => {
            match r {
                Ok(q) => set_status(
                    s,
                    Level::Ok,
                    format!("queue '{}' saved ({})", q.name, q.state),
                ),
                Err(e) => {
                    set_status(s, Level::Error, format!("queue not changed: {e}"));
                    s.popup = Some(error_popup("queue not changed", &e.to_string()));
                }
            }
            fetch_queues(s, false)
        }
        Msg::Edited(sess, r) => match r.map(|saved| sess.outcome(&saved)) {
            Ok(Outcome::Changed(value)) => {
                // A warning about an earlier, invalid save no longer holds.
                s.status = None;
                let what = format!("item {}", short_label(s, &sess.id));
                open_confirm_for(
                    s,
                    ActionKind::Requeue {
                        delay: None,
                        value: Some(value),
                    },
                    Target::Ids(vec![sess.id]),
                    what,
                    String::new(),
                )
            }
            Ok(Outcome::Unchanged) => {
                set_status(s, Level::Info, "value unchanged: nothing done".into());
                vec![]
            }
            Ok(Outcome::Abandoned) => {
                set_status(s, Level::Info, "edit abandoned: nothing changed".into());
                vec![]
            }
            // The user's edit is kept: the editor opens again on it, the error on top.
            Ok(Outcome::Invalid(next, error)) => {
                set_status(s, Level::Warn, error);
                vec![Effect::Edit(next)]
            }
            Err(e) => {
                s.popup = Some(error_popup("edit abandoned", &e));
                vec![]
            }
        },
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first wait before subscribing to a lost change feed again; each further attempt
/// waits twice as long, up to `FEED_RETRY_MAX`.
pub const FEED_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
pub const FEED_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);
/// A feed that stayed up this long before it went away starts again from the first wait.
pub const FEED_STABLE_SECS: i64 = 60;

/// How long to wait before attempt `n` (1, 2, …) to subscribe again.
pub fn feed_retry_delay(n: u32) -> std::time::Duration {
    let doublings = n.saturating_sub(1).min(16);
    (FEED_RETRY_FIRST * 2u32.pow(doublings)).min(FEED_RETRY_MAX)
}

fn feed_gap(s: &mut State, gap: Gap) -> Vec<Effect> {
    match gap {
        // Events were missed: nothing on screen can be trusted until fetched again.
        Gap::Lagged(n) => {
            tracing::info!("change feed lagged by {n} events: refetching");
            refresh(s)
        }
        // Another process wrote: the debounce in the app loop keeps this to one refetch
        // per refresh period however busy it is.
        Gap::Changed => refresh(s),
        Gap::Disconnected(why) => {
            let stable = s
                .feed
                .up_since
                .is_none_or(|t| (s.now - t).num_seconds() >= FEED_STABLE_SECS);
            if s.feed.down_since.is_none() && stable {
                s.feed.attempts = 0;
            }
            s.feed.attempts += 1;
            let delay = feed_retry_delay(s.feed.attempts);
            s.feed.down_since.get_or_insert(s.now);
            s.feed.retry_at = Some(s.now + ChronoDuration::milliseconds(delay.as_millis() as i64));
            tracing::warn!("change feed lost ({why}); subscribing again in {delay:?}");
            set_status(
                s,
                Level::Warn,
                format!("live updates lost ({why}): what is shown may be out of date"),
            );
            s.feed.why = why;
            vec![Effect::Resubscribe(delay)]
        }
    }
}

pub fn set_status(s: &mut State, level: Level, text: String) {
    s.status = Some(StatusLine {
        text,
        level,
        until: s.now + ChronoDuration::seconds(STATUS_SECS),
    });
}

fn error_popup(title: &str, message: &str) -> Popup {
    Popup::Error {
        title: title.to_string(),
        message: message.to_string(),
    }
}

fn load_failed(s: &mut State, what: &str, e: &Error) {
    set_status(s, Level::Error, format!("cannot load {what}: {e}"));
}

// ---------------------------------------------------------------- fetching

/// Asks for a fetch; `changed`: the parameters changed, so an answer in flight is stale.
fn want(f: &mut Fetch, changed: bool) -> Option<u64> {
    if f.inflight {
        f.again = true;
        f.stale |= changed;
        None
    } else {
        f.seq += 1;
        f.inflight = true;
        f.stale = false;
        Some(f.seq)
    }
}

/// An answer landed: (use it?, fetch again?).
fn landed(f: &mut Fetch, seq: u64) -> (bool, bool) {
    if !f.inflight || seq != f.seq {
        return (false, false);
    }
    f.inflight = false;
    let apply = !std::mem::take(&mut f.stale);
    (apply, std::mem::take(&mut f.again))
}

/// With no change from the engine, the queue summaries are looked at again this often
/// (SLA states, expiry and throughput move with time alone), and the view only when
/// they moved.
pub const TIME_REFRESH_SECS: i64 = 15;
/// How often the workers view asks for the list when nothing else made it (agents report
/// every `rules::REGISTER_EVERY`).
pub const WORKERS_REFRESH_SECS: i64 = 2;

/// What time alone changes in the summaries.
fn time_figures(list: &[QueueSummary]) -> Vec<(&str, u64, u64, u64)> {
    list.iter()
        .map(|q| (q.queue.name.as_str(), q.expired, q.at_risk, q.out_of_sla))
        .collect()
}

fn fetch_queues(s: &mut State, changed: bool) -> Vec<Effect> {
    let fx: Vec<Effect> = want(&mut s.queues.fetch, changed)
        .into_iter()
        .flat_map(|seq| [Effect::LoadQueues(seq), Effect::LoadAlerts])
        .collect();
    if !fx.is_empty() {
        s.queues.asked_at = Some(s.now);
    }
    fx
}

fn fetch_groups(s: &mut State, changed: bool) -> Vec<Effect> {
    want(&mut s.inbox.fetch, changed)
        .map(Effect::LoadGroups)
        .into_iter()
        .collect()
}

fn fetch_workers(s: &mut State, changed: bool) -> Vec<Effect> {
    s.workers.asked_at = Some(s.now);
    want(&mut s.workers.fetch, changed)
        .map(Effect::LoadWorkers)
        .into_iter()
        .collect()
}

fn fetch_actions(s: &mut State, changed: bool) -> Vec<Effect> {
    want(&mut s.actions.fetch, changed)
        .map(Effect::LoadActions)
        .into_iter()
        .collect()
}

fn fetch_detail(s: &mut State, changed: bool) -> Vec<Effect> {
    let Some(id) = s.detail.id.clone() else {
        return vec![];
    };
    want(&mut s.detail.fetch, changed)
        .map(|seq| Effect::LoadDetail(seq, id))
        .into_iter()
        .collect()
}

/// Rows of the items table on screen.
pub fn visible_rows(s: &State) -> u64 {
    views::items_rows_area(s.size).height.max(1) as u64
}

/// Where the window should start so that the screen sits in its middle.
fn window_offset(s: &State) -> u64 {
    let slack = (WINDOW as u64).saturating_sub(visible_rows(s)) / 2;
    s.items.top.saturating_sub(slack)
}

/// How often a known total is counted again while the list stays the same.
const RECOUNT_SECS: i64 = 5;

fn fetch_page(s: &mut State, changed: bool) -> Vec<Effect> {
    let offset = window_offset(s);
    let Some(seq) = want(&mut s.items.fetch, changed) else {
        return vec![];
    };
    let it = &s.items;
    let stale = it
        .counted_at
        .is_none_or(|t| (s.now - t).num_seconds() >= RECOUNT_SECS);
    let mut page = PageRequest {
        offset,
        limit: WINDOW,
        sort: it.sort,
        descending: it.descending,
        count: if changed || !it.loaded || stale {
            Count::Exact
        } else {
            Count::Skip
        },
        ..Default::default()
    };
    // Past the middle of a long list, read from the far end: OFFSET walks every row it
    // skips, so the bottom of a million rows would otherwise take seconds.
    // Every order ends on the enqueue order in its own direction, so any can be flipped.
    let flip = it.loaded && offset > it.total / 2;
    if flip {
        let end = (offset + WINDOW as u64).min(it.total);
        page.offset = it.total - end;
        page.limit = (end - offset) as u32;
        page.descending = !it.descending;
    }
    vec![Effect::LoadPage {
        seq,
        filter: it.effective_filter(),
        page,
        flip,
        offset,
    }]
}

/// The screen shows rows the window does not hold: fetch the window around them.
fn page_if_needed(s: &mut State) -> Vec<Effect> {
    if !(s.view == View::Items || detail_of_list(s)) || !s.items.loaded {
        return vec![];
    }
    let it = &s.items;
    let end = (it.top + visible_rows(s)).min(it.total);
    let have_end = it.offset + it.rows.len() as u64;
    if it.top >= it.offset && end <= have_end {
        return vec![];
    }
    fetch_page(s, false)
}

/// The list changed shape (filter, sort, tab): start at the top with nothing marked.
fn reset_items(s: &mut State) -> Vec<Effect> {
    let it = &mut s.items;
    it.cursor = 0;
    it.cursor_id = None;
    it.top = 0;
    it.rows.clear();
    it.offset = 0;
    it.counted_at = None;
    it.loaded = false;
    it.mark_all = false;
    it.anchor = None;
    fetch_page(s, true)
}

fn page_landed(s: &mut State, offset: u64, p: Page) {
    let visible = visible_rows(s);
    let it = &mut s.items;
    it.rows = p.items;
    it.offset = offset;
    match p.total {
        Some(total) => {
            it.total = total;
            it.counted_at = Some(s.now);
        }
        // An uncounted page shorter than the known total allows: the list shrank (a bulk
        // action, bots). Count on the next fetch, or the window would refetch forever.
        None if (it.rows.len() as u64) < it.total.saturating_sub(offset).min(WINDOW as u64) => {
            it.counted_at = None;
        }
        None => {}
    }
    it.loaded = true;
    // The cursor follows its item when the item is still in the window.
    if let Some(id) = &it.cursor_id {
        if let Some(i) = it.rows.iter().position(|r| &r.id == id) {
            let new = offset + i as u64;
            let screen = it.cursor.saturating_sub(it.top);
            it.cursor = new;
            it.top = new.saturating_sub(screen);
        }
    }
    if it.total == 0 {
        it.cursor = 0;
        it.top = 0;
    } else if it.cursor >= it.total {
        it.cursor = it.total - 1;
    }
    it.top = it.top.min(it.total.saturating_sub(visible));
    if let Some(id) = it.current().map(|r| r.id.clone()) {
        it.cursor_id = Some(id);
    }
    keep_cursor_visible(s);
}

/// What the current view shows, reloaded; the queue summaries always (header, tabs, inbox).
pub fn refresh(s: &mut State) -> Vec<Effect> {
    let mut fx = fetch_queues(s, false);
    fx.extend(fetch_view(s));
    fx
}

/// What the current view shows besides the summaries, reloaded.
fn fetch_view(s: &mut State) -> Vec<Effect> {
    match s.view {
        View::Queues => fetch_groups(s, false),
        View::Items => fetch_page(s, false),
        View::Detail => fetch_detail(s, false),
        View::Exceptions => fetch_groups(s, false),
        View::Workers => fetch_workers(s, false),
        View::Actions => fetch_actions(s, false),
    }
}

// ---------------------------------------------------------------- keys

fn key(s: &mut State, k: KeyEvent) -> Vec<Effect> {
    if s.popup.is_some() {
        return popup_key(s, k);
    }
    match s.keymap.lookup(Key::from_event(&k), s.view, s.read_only) {
        Some(cmd) => run(s, cmd, None),
        None => vec![],
    }
}

/// Edits a text input; false when the key is not an edit.
fn edit(input: &mut Input, k: &KeyEvent) -> bool {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Char('u') if ctrl => *input = Input::default(),
        KeyCode::Char('w') if ctrl => input.delete_word(),
        KeyCode::Char(_) if ctrl => return false,
        KeyCode::Char(c) => input.insert(c),
        KeyCode::Backspace => input.backspace(),
        KeyCode::Delete => input.delete(),
        KeyCode::Left => input.left(),
        KeyCode::Right => input.right(),
        KeyCode::Home => input.cursor = 0,
        KeyCode::End => input.cursor = input.text.chars().count(),
        _ => return false,
    }
    true
}

fn popup_key(s: &mut State, k: KeyEvent) -> Vec<Effect> {
    let Some(popup) = s.popup.take() else {
        return vec![];
    };
    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
    match popup {
        Popup::Help { scroll } => {
            // From where it shows (a resize may have cut what fits), never past the end.
            let max = views::help::max_scroll(s);
            let scroll = scroll.min(max);
            let scroll = match k.code {
                KeyCode::Char('j') | KeyCode::Down => scroll.saturating_add(1).min(max),
                KeyCode::Char('k') | KeyCode::Up => scroll.saturating_sub(1),
                KeyCode::PageDown => scroll.saturating_add(10).min(max),
                KeyCode::PageUp => scroll.saturating_sub(10),
                KeyCode::Char('g') | KeyCode::Home => 0,
                KeyCode::Char('G') | KeyCode::End => max,
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Enter => {
                    return vec![]
                }
                _ if ctrl_c => return vec![],
                _ => scroll,
            };
            s.popup = Some(Popup::Help { scroll });
            vec![]
        }
        // Only esc and enter close it: keys typed ahead (before the error showed) must not
        // close it and then run on the view below.
        Popup::Error { .. } if matches!(k.code, KeyCode::Esc | KeyCode::Enter) || ctrl_c => {
            vec![]
        }
        p @ Popup::Error { .. } => {
            s.popup = Some(p);
            vec![]
        }
        Popup::Undo(mut u) => match k.code {
            KeyCode::Esc => {
                set_status(s, Level::Info, "undo cancelled: nothing changed".into());
                vec![]
            }
            _ if ctrl_c => vec![],
            KeyCode::Enter => match &u.preview {
                // As every confirmation over that many items: the count is typed first.
                Some(p) if u.needs_count() && !typed_count(&u.typed, p.restored) => {
                    let text = format!(
                        "type {} to undo it for that many items (over {})",
                        thousands(p.restored),
                        thousands(TYPE_THE_COUNT_OVER)
                    );
                    s.popup = Some(Popup::Undo(u));
                    set_status(s, Level::Warn, text);
                    vec![]
                }
                Some(p) if p.restored > 0 => {
                    set_status(s, Level::Info, format!("undoing action {}…", u.action_id));
                    vec![Effect::Undo(UndoRequest::new(u.action_id, &s.actor))]
                }
                Some(p) => {
                    let text = format!("nothing to undo: {}", p.summary());
                    s.popup = Some(Popup::Undo(u));
                    set_status(s, Level::Warn, text);
                    vec![]
                }
                None => {
                    s.popup = Some(Popup::Undo(u));
                    set_status(s, Level::Info, "still counting…".into());
                    vec![]
                }
            },
            _ => {
                if u.needs_count() {
                    edit(&mut u.typed, &k);
                }
                s.popup = Some(Popup::Undo(u));
                vec![]
            }
        },
        Popup::Palette {
            mut input,
            mut selected,
        } => {
            match k.code {
                KeyCode::Esc => return vec![],
                _ if ctrl_c => return vec![],
                KeyCode::Enter => {
                    let text = input.text.clone();
                    let choices = palette_choices(s, &input.text);
                    let first = text.split_whitespace().next().unwrap_or("");
                    // An unknown or partial name runs the highlighted completion.
                    let line = if commands::by_name(first).is_none() && !choices.is_empty() {
                        let rest = text.trim_start()[first.len()..].to_string();
                        let pick = &choices[selected.min(choices.len() - 1)];
                        format!("{}{}", pick.line.trim_end(), rest)
                    } else {
                        text
                    };
                    return palette_exec(s, &line);
                }
                KeyCode::Tab => {
                    let choices = palette_choices(s, &input.text);
                    if let Some(c) = choices.get(selected.min(choices.len().saturating_sub(1))) {
                        input = Input::new(&c.line);
                        selected = 0;
                    }
                }
                KeyCode::Down => selected += 1,
                KeyCode::Up => selected = selected.saturating_sub(1),
                _ => {
                    if edit(&mut input, &k) {
                        selected = 0;
                    }
                }
            }
            let n = palette_choices(s, &input.text).len();
            selected = selected.min(n.saturating_sub(1));
            s.popup = Some(Popup::Palette { input, selected });
            vec![]
        }
        Popup::Prompt {
            ask,
            title,
            mut input,
            error,
        } => match k.code {
            KeyCode::Esc => {
                if ask == Ask::Search {
                    // Esc abandons the search, as in k9s.
                    s.items.filter.search = None;
                    return reset_items(s);
                }
                if ask == Ask::InboxSearch {
                    s.inbox.search = None;
                }
                vec![]
            }
            _ if ctrl_c => vec![],
            KeyCode::Enter => prompt_submit(s, ask, title, input),
            _ => {
                let changed = edit(&mut input, &k);
                let live = changed && ask == Ask::Search;
                let inbox_live = changed && ask == Ask::InboxSearch;
                let text = input.text.clone();
                s.popup = Some(Popup::Prompt {
                    ask,
                    title,
                    input,
                    error: if changed { None } else { error },
                });
                if live {
                    // Search as you type: one query in flight, the latest text wins.
                    s.items.filter.search = Some(text).filter(|t| !t.is_empty());
                    return reset_items(s);
                }
                if inbox_live {
                    s.inbox.search = Some(text).filter(|t| !t.is_empty());
                }
                vec![]
            }
        },
        Popup::Confirm(mut c) => match k.code {
            KeyCode::Esc => {
                set_status(s, Level::Info, "cancelled: nothing changed".into());
                vec![]
            }
            _ if ctrl_c => vec![],
            KeyCode::Enter => confirm_enter(s, c),
            KeyCode::Tab | KeyCode::BackTab if c.needs_count() => {
                c.focus = match c.focus {
                    Field::Note => Field::Count,
                    Field::Count => Field::Note,
                };
                s.popup = Some(Popup::Confirm(c));
                vec![]
            }
            _ => {
                match c.focus {
                    Field::Note => edit(&mut c.note, &k),
                    Field::Count => edit(&mut c.typed, &k),
                };
                s.popup = Some(Popup::Confirm(c));
                vec![]
            }
        },
    }
}

/// One completion in the palette: the line it makes, and what to show for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub line: String,
    pub label: String,
    pub keys: String,
    pub desc: String,
}

/// Completions of the palette line: command names, then the arguments a command takes
/// (queue names, themes, sort columns, filter terms).
pub fn palette_choices(s: &State, text: &str) -> Vec<Choice> {
    let first = text.split_whitespace().next().unwrap_or("");
    let Some(spec) = commands::by_name(first).filter(|_| text.contains(' ')) else {
        return commands::complete(first, s.view, s.read_only)
            .into_iter()
            .map(|c| Choice {
                line: format!("{} ", c.name),
                label: c.name.to_string(),
                keys: s.keymap.label(c.cmd),
                desc: c.desc.to_string(),
            })
            .collect();
    };
    // The word being typed, and what comes before it.
    let (head, word) = match text.rfind(' ') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => (text, ""),
    };
    let queues: Vec<String> = s.queues.list.iter().map(|q| q.queue.name.clone()).collect();
    let args: Vec<String> = match spec.cmd {
        Command::Items => std::iter::once("all".to_string()).chain(queues).collect(),
        Command::Theme => vec!["dark".into(), "light".into()],
        Command::Mouse => vec!["on".into(), "off".into()],
        Command::Sort => ["enqueued", "priority", "name", "status"]
            .map(String::from)
            .to_vec(),
        Command::Priority => ["high", "normal", "low"].map(String::from).to_vec(),
        Command::Extend => ["never", "1h", "1d", "7d"].map(String::from).to_vec(),
        Command::Filter if s.view == View::Exceptions => s
            .queues
            .list
            .iter()
            .map(|q| format!("queue={}", q.queue.name))
            .chain(Reason::ALL.iter().map(|x| format!("reason={x}")))
            .chain(RowKind::NAMES.iter().map(|x| format!("kind={x}")))
            .collect(),
        Command::Filter => Status::ALL
            .iter()
            .map(|x| format!("status={x}"))
            .chain(Reason::ALL.iter().map(|x| format!("reason={x}")))
            .chain(Priority::ALL.iter().map(|x| format!("priority={x}")))
            .chain(["sla=at-risk", "sla=out", "expired"].map(String::from))
            .collect(),
        _ => vec![],
    };
    args.into_iter()
        .filter(|a| a.starts_with(word) && a != word)
        .map(|a| Choice {
            line: format!("{head}{a} "),
            label: a,
            keys: String::new(),
            desc: String::new(),
        })
        .collect()
}

fn palette_exec(s: &mut State, line: &str) -> Vec<Effect> {
    let line = line.trim().trim_start_matches(':').trim();
    if line.is_empty() {
        return vec![];
    }
    let (name, args) = match line.split_once(char::is_whitespace) {
        Some((n, a)) => (n, Some(a.trim().to_string()).filter(|a| !a.is_empty())),
        None => (line, None),
    };
    let Some(spec) = commands::by_name(name) else {
        set_status(
            s,
            Level::Error,
            format!("unknown command ':{name}' (? lists them)"),
        );
        return vec![];
    };
    if !spec.available(s.read_only) {
        set_status(
            s,
            Level::Error,
            format!(":{} changes data: not in read-only mode", spec.name),
        );
        return vec![];
    }
    // `:resume` and `:pause` say which they mean.
    if name == "resume" || name == "pause" {
        return pause_resume(s, Some(name == "pause"));
    }
    run(s, spec.cmd, args)
}

fn prompt_submit(s: &mut State, ask: Ask, title: String, input: Input) -> Vec<Effect> {
    let text = input.text.trim().to_string();
    let retry = |s: &mut State, e: String| {
        s.popup = Some(Popup::Prompt {
            ask: ask.clone(),
            title: title.clone(),
            input: input.clone(),
            error: Some(e),
        });
        vec![]
    };
    match &ask {
        Ask::Search | Ask::InboxSearch => vec![],
        Ask::Arg(arg) => {
            let cmd = match arg {
                ArgFor::Delay => Command::RequeueDelay,
                ArgFor::Priority => Command::Priority,
                ArgFor::Extend => Command::Extend,
                ArgFor::Note => Command::Note,
            };
            match action_kind(s, cmd, Some(&text)) {
                Ok(Some((kind, note))) => open_confirm(s, kind, note),
                Ok(None) => vec![],
                Err(e) => retry(s, e),
            }
        }
        Ask::QueueSettings(q) => match parse_settings(&text) {
            Ok(settings) => vec![Effect::UpdateQueue(q.clone(), settings)],
            Err(e) => retry(s, e),
        },
    }
}

// ---------------------------------------------------------------- commands

/// Runs a command with its palette arguments, if any.
pub fn run(s: &mut State, cmd: Command, args: Option<String>) -> Vec<Effect> {
    if s.read_only && commands::spec(cmd).writes {
        return vec![];
    }
    use Command::*;
    match cmd {
        Quit => {
            s.quit = true;
            vec![]
        }
        Help => {
            s.popup = Some(Popup::Help { scroll: 0 });
            vec![]
        }
        Palette => {
            s.popup = Some(Popup::Palette {
                input: Input::default(),
                selected: 0,
            });
            vec![]
        }
        Back => back(s),
        Queues => switch(s, View::Queues),
        Items => items_cmd(s, args),
        Exceptions => switch(s, View::Exceptions),
        Workers => switch(s, View::Workers),
        Actions => switch(s, View::Actions),
        Theme => {
            let user = s.user_theme.as_ref().map(|u| u.0.clone());
            s.theme = match (args.as_deref(), s.theme) {
                (Some("dark"), _) => ThemeName::Dark,
                (Some("light"), _) => ThemeName::Light,
                (Some(name), _) if user.as_deref() == Some(name) => ThemeName::User,
                (Some(other), t) => {
                    let yours = user.map(|u| format!(", {u}")).unwrap_or_default();
                    set_status(
                        s,
                        Level::Error,
                        format!(
                            "unknown theme '{}' (dark, light{})",
                            crate::text::escape(other, false),
                            crate::text::escape(&yours, false)
                        ),
                    );
                    t
                }
                (None, ThemeName::Dark) => ThemeName::Light,
                (None, ThemeName::Light | ThemeName::User) => ThemeName::Dark,
            };
            vec![]
        }
        Mouse => {
            s.mouse = match args.as_deref() {
                Some("on") => true,
                Some("off") => false,
                _ => !s.mouse,
            };
            set_status(
                s,
                Level::Info,
                format!("mouse {}", if s.mouse { "on" } else { "off" }),
            );
            vec![Effect::SetMouse(s.mouse)]
        }
        Refresh => refresh(s),
        Undo => undo_cmd(s),
        Up => move_by(s, -1),
        Down => move_by(s, 1),
        PageUp => move_by(s, -(half_page(s) as i64)),
        PageDown => move_by(s, half_page(s) as i64),
        Top => move_by(s, i64::MIN / 2),
        Bottom => move_by(s, i64::MAX / 2),
        Open => open(s),
        NextItem => detail_step(s, 1),
        PrevItem => detail_step(s, -1),
        Search if s.view == View::Exceptions => {
            match args {
                Some(text) => s.inbox.search = Some(text),
                None => {
                    s.popup = Some(Popup::Prompt {
                        ask: Ask::InboxSearch,
                        title: "search the inbox: queue, reason, note, example".into(),
                        input: Input::new(s.inbox.search.as_deref().unwrap_or("")),
                        error: None,
                    })
                }
            }
            vec![]
        }
        Search => {
            if s.view != View::Items {
                return vec![];
            }
            if let Some(text) = args {
                s.items.filter.search = Some(text);
                return reset_items(s);
            }
            s.popup = Some(Popup::Prompt {
                ask: Ask::Search,
                title: "search name, key, value, notes".into(),
                input: Input::new(s.items.filter.search.as_deref().unwrap_or("")),
                error: None,
            });
            vec![]
        }
        Filter => match args {
            None if s.popup.is_none() && matches!(s.view, View::Items | View::Exceptions) => {
                // The key opens the palette with the command typed, ready for arguments.
                s.popup = Some(Popup::Palette {
                    input: Input::new("filter "),
                    selected: 0,
                });
                vec![]
            }
            args => filter_cmd(s, args.as_deref().unwrap_or("")),
        },
        ClearFilter => filter_cmd(s, ""),
        NextTab => tab_by(s, 1),
        PrevTab => tab_by(s, -1),
        Sort => {
            let order = [
                SortBy::Enqueued,
                SortBy::Priority,
                SortBy::Name,
                SortBy::Status,
            ];
            s.items.sort = match args.as_deref() {
                Some(a) => match order.iter().find(|o| sort_name(**o) == a) {
                    Some(o) => *o,
                    None => {
                        set_status(
                            s,
                            Level::Error,
                            format!("cannot sort by '{a}' (enqueued, priority, name, status)"),
                        );
                        return vec![];
                    }
                },
                None => {
                    let i = order.iter().position(|o| *o == s.items.sort).unwrap_or(0);
                    order[(i + 1) % order.len()]
                }
            };
            set_status(
                s,
                Level::Info,
                format!("sorted by {}", sort_name(s.items.sort)),
            );
            reset_items(s)
        }
        SortReverse => {
            s.items.descending = !s.items.descending;
            reset_items(s)
        }
        Mark if s.view == View::Exceptions => {
            let rows = s.inbox_rows();
            if let Some(r) = rows.get(s.inbox_cursor(&rows)) {
                let k = r.key();
                if !s.inbox.marks.remove(&k) {
                    s.inbox.marks.insert(k);
                }
            }
            move_by(s, 1)
        }
        MarkAll if s.view == View::Exceptions => {
            let rows = s.inbox_rows();
            s.inbox.marks.extend(rows.iter().map(|r| r.key()));
            let n = s.inbox.marks.len() as u64;
            set_status(s, Level::Info, format!("{n} inbox row{} marked", plural(n)));
            vec![]
        }
        ClearMarks if s.view == View::Exceptions => {
            s.inbox.marks.clear();
            vec![]
        }
        Mark => mark(s),
        MarkRange => mark_range(s),
        MarkAll => {
            if s.view == View::Items {
                s.items.mark_all = true;
                s.items.marks.clear();
                let n = s.items.total;
                set_status(
                    s,
                    Level::Info,
                    format!("all {} matching item{} marked", thousands(n), plural(n)),
                );
            }
            vec![]
        }
        ClearMarks => {
            s.items.marks.clear();
            s.items.mark_all = false;
            s.items.anchor = None;
            vec![]
        }
        Requeue | RequeueDelay | Hold | Release | Processed | Delete | Priority | Extend | Note => {
            if !s.offered(cmd) {
                return not_offered(s, cmd);
            }
            match action_kind(s, cmd, args.as_deref()) {
                Ok(Some((kind, note))) => open_confirm(s, kind, note),
                Ok(None) => vec![],
                Err(e) => {
                    set_status(s, Level::Error, e);
                    vec![]
                }
            }
        }
        EditValue => edit_value(s),
        PauseResume => pause_resume(s, None),
        EditQueue => {
            let Some(q) = s.queues.current().map(|q| q.queue.clone()) else {
                return vec![];
            };
            s.popup = Some(Popup::Prompt {
                ask: Ask::QueueSettings(q.name.clone()),
                title: format!(
                    "settings of '{}' · - keeps a setting, none clears it",
                    q.name
                ),
                input: Input::new(&settings_line(&q)),
                error: None,
            });
            vec![]
        }
    }
}

fn sort_name(o: SortBy) -> &'static str {
    match o {
        SortBy::Enqueued => "enqueued",
        SortBy::Priority => "priority",
        SortBy::Name => "name",
        SortBy::Status => "status",
    }
}

fn switch(s: &mut State, v: View) -> Vec<Effect> {
    s.back.clear();
    s.view = v;
    if v == View::Items && !s.items.loaded && !s.items.fetch.inflight {
        return reset_items(s);
    }
    refresh(s)
}

fn back(s: &mut State) -> Vec<Effect> {
    if s.view == View::Exceptions && !s.inbox.marks.is_empty() {
        s.inbox.marks.clear();
        set_status(s, Level::Info, "marks cleared".into());
        return vec![];
    }
    if s.view == View::Items && (s.items.mark_all || !s.items.marks.is_empty()) {
        s.items.marks.clear();
        s.items.mark_all = false;
        s.items.anchor = None;
        set_status(s, Level::Info, "marks cleared".into());
        return vec![];
    }
    match s.back.pop() {
        Some(v) => {
            s.view = v;
            refresh(s)
        }
        None => vec![],
    }
}

fn items_cmd(s: &mut State, args: Option<String>) -> Vec<Effect> {
    let queue = match args.as_deref() {
        Some("all") | Some("*") => None,
        Some(name) => {
            if s.queues.loaded && !s.queues.list.iter().any(|q| q.queue.name == name) {
                set_status(s, Level::Error, format!("unknown queue '{name}'"));
                return vec![];
            }
            Some(name.to_string())
        }
        None if s.view == View::Queues => s.queues.current().map(|q| q.queue.name.clone()),
        None => return switch(s, View::Items),
    };
    show_items(s, queue, None, Filter::default(), None, false)
}

/// Opens the items view on a queue (or all), a status tab and extra criteria.
fn show_items(
    s: &mut State,
    queue: Option<String>,
    tab: Option<Status>,
    filter: Filter,
    group: Option<String>,
    push_back: bool,
) -> Vec<Effect> {
    if push_back {
        s.back.push(s.view);
    } else {
        s.back.clear();
    }
    s.view = View::Items;
    let it = &mut s.items;
    if it.queue != queue || it.filter != filter || it.tab != tab {
        it.marks.clear();
    }
    it.queue = queue;
    it.tab = tab;
    it.filter = filter;
    it.group = group;
    let mut fx = reset_items(s);
    fx.extend(fetch_queues(s, false));
    fx
}

fn open(s: &mut State) -> Vec<Effect> {
    match s.view {
        View::Queues => {
            let q = s.queues.current().map(|q| q.queue.name.clone());
            match q {
                Some(q) => show_items(s, Some(q), None, Filter::default(), None, true),
                None => vec![],
            }
        }
        View::Items => {
            let Some(id) = s.items.current().map(|i| i.id.clone()) else {
                return vec![];
            };
            show_detail(s, id)
        }
        View::Exceptions => {
            let rows = s.inbox_rows();
            let Some(row) = rows.get(s.inbox_cursor(&rows)).cloned() else {
                return vec![];
            };
            let mut f = row.filter();
            let tab = f.statuses.first().copied();
            let queue = f.queue.take();
            f.statuses.clear();
            let label = format!("{} × {}", thousands(row.count), row.what());
            show_items(s, queue, tab, f, Some(label), true)
        }
        View::Workers => {
            // What the worker holds now; the other tabs show what it handled before.
            let Some(name) = s
                .workers
                .list
                .get(s.workers_cursor())
                .map(|w| w.name.clone())
            else {
                return vec![];
            };
            let f = Filter {
                worker: Some(name.clone()),
                ..Default::default()
            };
            let label = format!("worker {name}");
            show_items(s, None, Some(Status::Processing), f, Some(label), true)
        }
        View::Detail | View::Actions => vec![],
    }
}

fn show_detail(s: &mut State, id: String) -> Vec<Effect> {
    s.back.push(s.view);
    s.view = View::Detail;
    load_detail(s, id)
}

fn load_detail(s: &mut State, id: String) -> Vec<Effect> {
    if s.detail.id.as_ref() != Some(&id) {
        s.detail.data = None;
        s.detail.scroll = 0;
    }
    s.detail.id = Some(id);
    fetch_detail(s, true)
}

/// The detail was opened from the items list: it walks that list.
fn detail_of_list(s: &State) -> bool {
    s.view == View::Detail && s.back.last() == Some(&View::Items)
}

/// Next or previous item of the list the detail was opened from, staying in the detail;
/// the list's cursor moves with it, so `esc` goes back to where the walk ended.
fn detail_step(s: &mut State, delta: i64) -> Vec<Effect> {
    if !detail_of_list(s) || !s.items.loaded || s.items.total == 0 {
        return vec![];
    }
    let it = &mut s.items;
    let to = (it.cursor as i64 + delta).clamp(0, it.total as i64 - 1) as u64;
    if to == it.cursor {
        let end = if delta > 0 { "last" } else { "first" };
        set_status(
            s,
            Level::Info,
            format!("this is the {end} item of the list"),
        );
        return vec![];
    }
    it.cursor = to;
    it.cursor_id = it.current().map(|r| r.id.clone());
    keep_cursor_visible(s);
    match s.items.current().map(|r| r.id.clone()) {
        Some(id) => {
            let mut fx = load_detail(s, id);
            fx.extend(page_if_needed(s));
            fx
        }
        // Not in the window yet: show it when its page lands.
        None => {
            s.detail.follow = true;
            fetch_page(s, false)
        }
    }
}

fn half_page(s: &State) -> u64 {
    (visible_rows(s) / 2).max(1)
}

fn move_by(s: &mut State, delta: i64) -> Vec<Effect> {
    let step = |cur: usize, len: usize| -> usize {
        if len == 0 {
            return 0;
        }
        (cur as i64).saturating_add(delta).clamp(0, len as i64 - 1) as usize
    };
    match s.view {
        View::Queues => {
            let i = step(s.queues.cursor(), s.queues.list.len());
            s.queues.selected = s.queues.list.get(i).map(|q| q.queue.name.clone());
            vec![]
        }
        View::Exceptions => {
            let rows = s.inbox_rows();
            let i = step(s.inbox_cursor(&rows), rows.len());
            s.inbox.selected = rows.get(i).map(|r| r.key());
            vec![]
        }
        View::Workers => {
            let i = step(s.workers_cursor(), s.workers.list.len());
            s.workers.selected = s.workers.list.get(i).map(|w| w.name.clone());
            vec![]
        }
        View::Actions => {
            let i = step(s.actions.cursor(), s.actions.list.len());
            s.actions.selected = s.actions.list.get(i).map(|a| a.id);
            vec![]
        }
        View::Detail => {
            s.detail.scroll = (s.detail.scroll as i64)
                .saturating_add(delta)
                .clamp(0, u16::MAX as i64) as u16;
            vec![]
        }
        View::Items => {
            let it = &mut s.items;
            // Until the list has landed there is nothing to move over.
            if it.total == 0 || !it.loaded {
                return vec![];
            }
            it.cursor = (it.cursor as i64)
                .saturating_add(delta)
                .clamp(0, it.total as i64 - 1) as u64;
            it.cursor_id = it.current().map(|r| r.id.clone());
            keep_cursor_visible(s);
            page_if_needed(s)
        }
    }
}

fn keep_cursor_visible(s: &mut State) {
    let h = visible_rows(s);
    let it = &mut s.items;
    if it.cursor < it.top {
        it.top = it.cursor;
    } else if it.cursor >= it.top + h {
        it.top = it.cursor + 1 - h;
    }
}

fn tab_by(s: &mut State, d: i64) -> Vec<Effect> {
    let i = TABS.iter().position(|t| *t == s.items.tab).unwrap_or(0) as i64;
    let n = TABS.len() as i64;
    set_tab(s, TABS[((i + d).rem_euclid(n)) as usize])
}

fn set_tab(s: &mut State, tab: Option<Status>) -> Vec<Effect> {
    s.items.tab = tab;
    // A tab is one status: it replaces a filter on several.
    s.items.filter.statuses.clear();
    s.items.group = None;
    reset_items(s)
}

fn mark(s: &mut State) -> Vec<Effect> {
    let it = &mut s.items;
    if it.mark_all {
        it.mark_all = false;
        set_status(s, Level::Info, "marks cleared".into());
        return vec![];
    }
    let Some(id) = it.current().map(|r| r.id.clone()) else {
        return vec![];
    };
    if !it.marks.remove(&id) {
        it.marks.insert(id);
    }
    it.anchor = Some(it.cursor);
    // Space marks and moves on, so repeated presses mark a run.
    move_by(s, 1)
}

fn mark_range(s: &mut State) -> Vec<Effect> {
    let it = &mut s.items;
    let Some(anchor) = it.anchor else {
        set_status(
            s,
            Level::Warn,
            "mark a row first, then move and mark the range".into(),
        );
        return vec![];
    };
    let (a, b) = (anchor.min(it.cursor), anchor.max(it.cursor));
    let mut added = 0;
    let mut missing = 0;
    for pos in a..=b {
        match it.row(pos).map(|r| r.id.clone()) {
            Some(id) => {
                if it.marks.insert(id) {
                    added += 1;
                }
            }
            None => missing += 1,
        }
    }
    it.anchor = Some(it.cursor);
    let mut text = format!(
        "marked {} more ({} marked)",
        added,
        thousands(it.marks.len() as u64)
    );
    if missing > 0 {
        text.push_str(&format!(
            "; {missing} rows not loaded were skipped (ctrl-a marks all)"
        ));
    }
    set_status(s, Level::Info, text);
    vec![]
}

/// `:filter status=exception reason=business priority=high sla=out expired words…`;
/// no arguments clears every filter but the queue.
fn filter_cmd(s: &mut State, args: &str) -> Vec<Effect> {
    if s.view == View::Exceptions {
        return inbox_filter(s, args);
    }
    if s.view != View::Items {
        s.back.clear();
        s.view = View::Items;
    }
    let mut f = Filter::default();
    let mut tab = None;
    let mut several = Vec::new();
    let mut words = Vec::new();
    for tok in args.split_whitespace() {
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) => (k, v),
            None if tok == "expired" => {
                f.expired = Some(true);
                continue;
            }
            None => {
                words.push(tok);
                continue;
            }
        };
        let bad = |e: String| format!("filter {k}: {e}");
        let r = match k {
            // One status is a tab; several (status=exception,on-hold) filter within "all".
            "status" => parse_statuses(v)
                .map(|st| match st.as_slice() {
                    [one] => tab = Some(*one),
                    _ => several = st,
                })
                .map_err(bad),
            "reason" => v.parse::<Reason>().map(|r| f.reason = Some(r)).map_err(bad),
            "priority" => v
                .parse::<Priority>()
                .map(|p| f.priority = Some(p))
                .map_err(bad),
            "sla" => v.parse::<Sla>().map(|x| f.sla = Some(x)).map_err(bad),
            "expired" => match v {
                "yes" | "true" => {
                    f.expired = Some(true);
                    Ok(())
                }
                "no" | "false" => {
                    f.expired = Some(false);
                    Ok(())
                }
                _ => Err(format!("filter expired: '{v}' is not yes or no")),
            },
            "text" | "search" => {
                words.push(v);
                Ok(())
            }
            _ => Err(format!(
                "unknown filter '{k}' (status, reason, priority, sla, expired, text)"
            )),
        };
        if let Err(e) = r {
            set_status(s, Level::Error, e);
            return vec![];
        }
    }
    if !words.is_empty() {
        f.search = Some(words.join(" "));
    }
    let queue = s.items.queue.clone();
    let tab = if several.is_empty() {
        tab.or(if args.trim().is_empty() {
            None
        } else {
            s.items.tab
        })
    } else {
        f.statuses = several;
        None
    };
    show_items(s, queue, tab, f, None, false)
}

/// `:filter queue=Q reason=R kind=exception|expired|sla words…` in the inbox; no
/// arguments clear the filter and the search. Marks stay: they are the person's choice.
fn inbox_filter(s: &mut State, args: &str) -> Vec<Effect> {
    let mut f = InboxFilter::default();
    let mut words = Vec::new();
    for tok in args.split_whitespace() {
        let Some((k, v)) = tok.split_once('=') else {
            words.push(tok);
            continue;
        };
        let r = match k {
            "queue" => {
                if s.queues.loaded && !s.queues.list.iter().any(|q| q.queue.name == v) {
                    Err(format!("filter queue: unknown queue '{v}'"))
                } else {
                    f.queue = Some(v.to_string());
                    Ok(())
                }
            }
            "reason" => v
                .parse::<Reason>()
                .map(|r| f.reason = Some(r))
                .map_err(|e| format!("filter reason: {e}")),
            "kind" => RowKind::parse(v).map(|x| f.kind = Some(x)),
            "text" | "search" => {
                words.push(v);
                Ok(())
            }
            _ => Err(format!(
                "unknown inbox filter '{k}' (queue, reason, kind, text)"
            )),
        };
        if let Err(e) = r {
            set_status(s, Level::Error, e);
            return vec![];
        }
    }
    s.inbox.filter = f;
    s.inbox.search = Some(words.join(" ")).filter(|w| !w.is_empty());
    vec![]
}

/// Says why an action is not offered for the inbox rows it would apply to.
fn not_offered(s: &mut State, cmd: Command) -> Vec<Effect> {
    let name = commands::spec(cmd).name;
    let rows = s.inbox_targets();
    let action = commands::action_of(cmd);
    let misfit = rows.iter().find(|r| {
        action
            .as_ref()
            .is_some_and(|a| !crate::rules::action_fits(r.statuses(), a))
    });
    let fits: Vec<String> = misfit
        .map(|r| {
            commands::TABLE
                .iter()
                .filter(|c| {
                    c.applies(View::Exceptions)
                        && c.available(s.read_only)
                        && commands::action_of(c.cmd)
                            .is_some_and(|a| crate::rules::action_fits(r.statuses(), &a))
                })
                .map(|c| format!("{} {}", s.keymap.label(c.cmd), c.name))
                .collect()
        })
        .unwrap_or_default();
    let text = match misfit {
        Some(r) => format!(
            "{name} does not fit {} ({}); what fits: {}",
            r.what(),
            r.queue,
            fits.join(", ")
        ),
        None => "nothing selected to act on".into(),
    };
    set_status(s, Level::Warn, text);
    vec![]
}

/// What an action command does, from its argument; `Ok(None)` when a prompt was opened to
/// ask for the argument.
fn action_kind(
    s: &mut State,
    cmd: Command,
    arg: Option<&str>,
) -> Result<Option<(ActionKind, String)>, String> {
    let prompt = |s: &mut State, arg: ArgFor, title: &str, init: &str| {
        s.popup = Some(Popup::Prompt {
            ask: Ask::Arg(arg),
            title: title.into(),
            input: Input::new(init),
            error: None,
        });
        Ok(None)
    };
    let kind = match (cmd, arg) {
        (Command::Requeue, None) => ActionKind::Requeue {
            delay: None,
            value: None,
        },
        (Command::Requeue | Command::RequeueDelay, Some(d)) => ActionKind::Requeue {
            delay: Some(parse_duration(d)?),
            value: None,
        },
        (Command::RequeueDelay, None) => {
            return prompt(s, ArgFor::Delay, "requeue after (e.g. 15m, 2h)", "")
        }
        (Command::Hold, _) => ActionKind::Hold,
        (Command::Release, _) => ActionKind::Release,
        (Command::Processed, _) => ActionKind::Processed,
        (Command::Delete, _) => ActionKind::Delete,
        (Command::Priority, None) => {
            return prompt(s, ArgFor::Priority, "new priority: high, normal or low", "")
        }
        (Command::Priority, Some(p)) => ActionKind::SetPriority {
            priority: p.parse()?,
        },
        (Command::Extend, None) => {
            return prompt(s, ArgFor::Extend, "expire in (e.g. 2h, 7d) or 'never'", "")
        }
        (Command::Extend, Some("never")) => ActionKind::ExtendExpiry { expires_at: None },
        (Command::Extend, Some(d)) => ActionKind::ExtendExpiry {
            expires_at: Some(
                s.now
                    + ChronoDuration::from_std(crate::rules::parse_extension(d)?)
                        .map_err(|e| format!("duration too long: {e}"))?,
            ),
        },
        (Command::Note, None) => return prompt(s, ArgFor::Note, "note to add", ""),
        (Command::Note, Some(text)) => return Ok(Some((ActionKind::AddNote, text.to_string()))),
        _ => return Ok(None),
    };
    Ok(Some((kind, String::new())))
}

/// What an action applies to, and the words for it: the marks, every match, the group,
/// or the item under the cursor.
pub fn target(s: &State) -> Option<(Target, String)> {
    match s.view {
        View::Detail => {
            let id = s.detail.id.clone()?;
            Some((
                Target::Ids(vec![id.clone()]),
                format!("item {}", short_label(s, &id)),
            ))
        }
        View::Items => {
            let it = &s.items;
            if it.mark_all {
                Some((
                    Target::Filter(it.effective_filter()),
                    format!("all {} matching items", thousands(it.total)),
                ))
            } else if !it.marks.is_empty() {
                let n = it.marks.len() as u64;
                Some((
                    Target::Ids(it.marks.iter().cloned().collect()),
                    format!("{} marked item{}", thousands(n), plural(n)),
                ))
            } else {
                let cur = it.current()?;
                Some((
                    Target::Ids(vec![cur.id.clone()]),
                    format!("item {}", short_label(s, &cur.id)),
                ))
            }
        }
        View::Exceptions => inbox_target(&s.inbox_targets()),
        View::Queues | View::Workers | View::Actions => None,
    }
}

/// What an inbox action on `rows` applies to, and the words for it.
fn inbox_target(rows: &[InboxRow]) -> Option<(Target, String)> {
    match rows {
        [] => None,
        [row] => Some((
            Target::Filter(row.filter()),
            format!("{} × {} in {}", thousands(row.count), row.what(), row.queue),
        )),
        many => {
            let n: u64 = many.iter().map(|r| r.count).sum();
            let mut q: Vec<&str> = many.iter().map(|r| r.queue.as_str()).collect();
            q.dedup();
            Some((
                Target::Any(many.iter().map(|r| r.filter()).collect()),
                format!(
                    "{} marked inbox rows ({} items) in {}",
                    many.len(),
                    thousands(n),
                    q.join(", ")
                ),
            ))
        }
    }
}

/// "I-1006 Fabrikam" when the name is known, else the id.
fn short_label(s: &State, id: &str) -> String {
    let name = s
        .items
        .rows
        .iter()
        .find(|i| i.id == id)
        .or(s
            .detail
            .data
            .as_ref()
            .map(|d| &d.item)
            .filter(|i| i.id == id))
        .and_then(|i| i.name.clone());
    match name {
        Some(n) => n,
        None => id.to_string(),
    }
}

fn open_confirm(s: &mut State, kind: ActionKind, note: String) -> Vec<Effect> {
    let Some((target, what)) = target(s) else {
        set_status(s, Level::Warn, "nothing selected to act on".into());
        return vec![];
    };
    if s.view != View::Exceptions {
        return open_confirm_for(s, kind, target, what, note);
    }
    // Marked inbox rows the action does not fit are left out, and said: the preview
    // counts what it changes and what it skips before anything is confirmed.
    let (fits, misfits) = s.inbox_fit(&kind);
    let Some((target, _)) = inbox_target(&fits) else {
        set_status(s, Level::Warn, "nothing selected that this fits".into());
        return vec![];
    };
    let misfit = misfit_tallies(s, &kind, &misfits);
    let fx = open_confirm_for(s, kind, target, what, note);
    if let Some(Popup::Confirm(c)) = &mut s.popup {
        c.misfit = misfit;
    }
    fx
}

/// The inbox rows an action does not fit, as one tally per kind of row: how many items,
/// and why with what to use instead ("expired rows: requeue does not fit; use extend").
fn misfit_tallies(s: &State, action: &ActionKind, rows: &[InboxRow]) -> Vec<Tally> {
    let same = |a: &ActionKind| std::mem::discriminant(a) == std::mem::discriminant(action);
    let name = commands::TABLE
        .iter()
        .find(|c| commands::action_of(c.cmd).is_some_and(|a| same(&a)))
        .map_or(action.verb(), |c| c.name);
    // The one that does for these rows what this does for the others, when there is one.
    let twin = match action {
        ActionKind::Requeue { .. } => Some(Command::Extend),
        ActionKind::ExtendExpiry { .. } => Some(Command::Requeue),
        _ => None,
    };
    let mut out: Vec<Tally> = Vec::new();
    for kind in [RowKind::Exception, RowKind::Expired, RowKind::OutOfSla] {
        let of_kind: Vec<&InboxRow> = rows.iter().filter(|r| r.kind() == kind).collect();
        let Some(first) = of_kind.first() else {
            continue;
        };
        let fits: Vec<&commands::Spec> = commands::TABLE
            .iter()
            .filter(|c| {
                c.applies(View::Exceptions)
                    && c.available(s.read_only)
                    && commands::action_of(c.cmd)
                        .is_some_and(|a| crate::rules::action_fits(first.statuses(), &a))
            })
            .collect();
        let instead = match fits.iter().find(|c| Some(c.cmd) == twin) {
            Some(t) => format!("; use {}", t.name),
            None if fits.is_empty() => String::new(),
            None => format!(
                "; what fits: {}",
                fits.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            ),
        };
        let rows_of = match kind {
            RowKind::Exception => "exception",
            RowKind::Expired => "expired",
            RowKind::OutOfSla => "out-of-SLA",
        };
        out.push(Tally {
            count: of_kind.iter().map(|r| r.count).sum(),
            why: format!("{rows_of} rows: {name} does not fit{instead}"),
        });
    }
    out
}

fn open_confirm_for(
    s: &mut State,
    kind: ActionKind,
    target: Target,
    what: String,
    note: String,
) -> Vec<Effect> {
    s.seq += 1;
    let dangerous = matches!(kind, ActionKind::Delete | ActionKind::Processed);
    s.popup = Some(Popup::Confirm(Box::new(Confirm {
        action: kind.clone(),
        target: target.clone(),
        what,
        preview: None,
        misfit: Vec::new(),
        note: Input::new(&note),
        typed: Input::default(),
        focus: Field::Note,
        seq: s.seq,
        dangerous,
    })));
    vec![Effect::Preview(s.seq, target, kind)]
}

/// Enter in an action's confirmation: applies it once the preview has said what it changes
/// (and, past `TYPE_THE_COUNT_OVER` items, once the count is typed).
fn confirm_enter(s: &mut State, mut c: Box<Confirm>) -> Vec<Effect> {
    let keep = |s: &mut State, c: Box<Confirm>, level: Level, text: String| {
        s.popup = Some(Popup::Confirm(c));
        set_status(s, level, text);
        vec![]
    };
    let note = Some(c.note.text.trim().to_string()).filter(|n| !n.is_empty());
    if matches!(c.action, ActionKind::AddNote) && note.is_none() {
        c.focus = Field::Note;
        return keep(s, c, Level::Warn, "a note needs its text".into());
    }
    let Some(p) = &c.preview else {
        return keep(
            s,
            c,
            Level::Info,
            "still counting what it changes: enter again once the count shows".into(),
        );
    };
    let (changes, count) = (p.changes, p.count);
    if changes == 0 {
        let why = p.skipped.first().map(|t| t.why.clone()).unwrap_or_default();
        let text = format!(
            "nothing to {}: the rules refuse all {} ({why})",
            c.action.verb(),
            thousands(count)
        );
        return keep(s, c, Level::Warn, text);
    }
    if c.needs_count() && !typed_count(&c.typed, changes) {
        c.focus = Field::Count;
        let text = format!(
            "type {} to apply it to that many items (over {})",
            thousands(changes),
            thousands(TYPE_THE_COUNT_OVER)
        );
        return keep(s, c, Level::Warn, text);
    }
    set_status(
        s,
        Level::Info,
        format!(
            "{}: applying to {} item{}…",
            c.action.verb(),
            thousands(changes),
            plural(changes)
        ),
    );
    // The preview said what is skipped; what changed meanwhile is skipped too, and said.
    vec![Effect::Act(ActionRequest {
        target: c.target,
        action: c.action,
        note,
        actor: s.actor.clone(),
        skip_refused: true,
    })]
}

/// `z`: in the action log the selected action, elsewhere this console's last one; first a
/// confirmation that says how many items the undo restores and keeps.
fn undo_cmd(s: &mut State) -> Vec<Effect> {
    let (id, what) = if s.view == View::Actions {
        let Some(a) = s.actions.current() else {
            set_status(s, Level::Warn, "no action selected".into());
            return vec![];
        };
        if a.undone_at.is_some() {
            let text = format!("action {} was already undone", a.id);
            set_status(s, Level::Warn, text);
            return vec![];
        }
        let what = format!(
            "{} · {} item{} · by {} {} ago",
            views::actions::what(a, &s.zone),
            thousands(a.touched),
            plural(a.touched),
            a.by,
            views::age(s.now, a.at)
        );
        (a.id, what)
    } else {
        let Some(a) = &s.last_action else {
            let key = s.keymap.label(Command::Actions);
            set_status(
                s,
                Level::Warn,
                format!("nothing to undo from this console ({key} lists every action)"),
            );
            return vec![];
        };
        let what = format!(
            "{} · {} item{} · the last action from this console",
            a.verb,
            thousands(a.touched),
            plural(a.touched)
        );
        (a.action_id, what)
    };
    s.seq += 1;
    s.popup = Some(Popup::Undo(Box::new(UndoConfirm {
        action_id: id,
        what,
        preview: None,
        typed: Input::default(),
        seq: s.seq,
    })));
    vec![Effect::UndoPreview(s.seq, id)]
}

fn edit_value(s: &mut State) -> Vec<Effect> {
    let item = match s.view {
        View::Detail => s.detail.data.as_ref().map(|d| d.item.clone()),
        View::Items => s.items.current().cloned(),
        _ => None,
    };
    match item {
        Some(i)
            if matches!(
                i.status,
                Status::Exception | Status::OnHold | Status::Processed
            ) =>
        {
            vec![Effect::Edit(EditSession::new(i.id, i.value))]
        }
        Some(i) => {
            set_status(
                s,
                Level::Warn,
                format!("item is {}: only exception, on-hold or processed items are edited and requeued", i.status),
            );
            vec![]
        }
        None => vec![],
    }
}

fn pause_resume(s: &mut State, pause: Option<bool>) -> Vec<Effect> {
    let Some(q) = s.queues.current() else {
        return vec![];
    };
    let pause = pause.unwrap_or(q.queue.state == QueueState::Active);
    let state = if pause {
        QueueState::Paused
    } else {
        QueueState::Active
    };
    let name = q.queue.name.clone();
    // Said at once: a locked database takes seconds to refuse, and says so in a popup.
    let doing = if pause { "pausing" } else { "resuming" };
    set_status(s, Level::Info, format!("{doing} '{name}'…"));
    vec![Effect::SetQueueState(name, state)]
}

/// A queue's settings as one editable line. Durations in their exact form: a rounded one
/// ("2d 4h" for 2d 4h 30m) would change the setting when the line is saved untouched.
pub fn settings_line(q: &Queue) -> String {
    let d = |d: Option<std::time::Duration>| d.map(exact_duration).unwrap_or_else(|| "-".into());
    let parts = [
        format!("sla={}", d(q.sla)),
        format!("risk={}", q.sla_risk_pct),
        format!("deadline={}", q.deadline.as_deref().unwrap_or("-")),
        format!("tz={}", q.tz),
        format!("retries={}", q.max_retries),
        format!(
            "retry-backoff={}",
            q.retry_backoff
                .as_ref()
                .map(crate::rules::exact_backoff)
                .unwrap_or_else(|| "-".into())
        ),
        format!("lease={}", exact_duration(q.lease)),
        format!(
            "max-runtime={}",
            q.max_runtime
                .map(exact_duration)
                .unwrap_or_else(|| "-".into())
        ),
        format!(
            "concurrency={}",
            q.concurrency
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        ),
        format!("ttl={}", d(q.ttl)),
        format!("priority={}", q.priority),
    ];
    parts.join(" ")
}

/// Parses `key=value` settings; `-` leaves a setting as it is, `none` clears one that can be
/// unset (sla, deadline, ttl, concurrency, retry-backoff, max-runtime).
pub fn parse_settings(line: &str) -> Result<QueueSettings, String> {
    let mut st = QueueSettings::default();
    let dur = |k: &str, v: &str| parse_duration(v).map_err(|e| format!("{k}: {e}"));
    let num = |k: &str, v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("{k}: '{v}' is not a whole number"))
    };
    // A description may hold spaces: everything after `description=` is the text.
    let (line, description) = match line.split_once("description=") {
        Some((a, b)) => (a, Some(b.trim().trim_matches('"').to_string())),
        None => (line, None),
    };
    st.description = description;
    for tok in line.split_whitespace() {
        let Some((k, v)) = tok.split_once('=') else {
            return Err(format!("'{tok}': write settings as key=value"));
        };
        if v == "-" {
            continue;
        }
        if v == "none" && crate::rules::CLEARABLE.contains(&k) {
            st.clear.push(k.to_string());
            continue;
        }
        match k {
            "sla" => st.sla = Some(dur(k, v)?),
            "risk" => {
                st.sla_risk_pct = Some(
                    u8::try_from(num(k, v)?).map_err(|_| format!("risk: {v} is not 1–100"))?,
                )
            }
            "deadline" => st.deadline = Some(v.to_string()),
            "tz" => st.tz = Some(v.to_string()),
            "retries" => {
                st.max_retries =
                    Some(u32::try_from(num(k, v)?).map_err(|_| format!("retries: {v}"))?)
            }
            "lease" => st.lease = Some(dur(k, v)?),
            "max-runtime" => st.max_runtime = Some(dur(k, v)?),
            "retry-backoff" => {
                st.retry_backoff = Some(
                    crate::rules::parse_backoff(v).map_err(|e| format!("retry-backoff: {e}"))?,
                )
            }
            "concurrency" => {
                st.concurrency =
                    Some(u32::try_from(num(k, v)?).map_err(|_| format!("concurrency: {v}"))?)
            }
            "ttl" => st.ttl = Some(dur(k, v)?),
            "priority" => {
                st.priority = Some(i32::try_from(num(k, v)?).map_err(|_| format!("priority: {v}"))?)
            }
            _ => {
                return Err(format!(
                    "unknown setting '{k}' (sla, risk, deadline, tz, retries, retry-backoff, lease, concurrency, ttl, priority, description)"
                ))
            }
        }
    }
    crate::rules::check_settings(&st)?;
    Ok(st)
}

// ---------------------------------------------------------------- mouse

fn mouse(s: &mut State, m: MouseEvent) -> Vec<Effect> {
    if !s.mouse {
        return vec![];
    }
    match m.kind {
        MouseEventKind::ScrollDown if s.popup.is_none() => move_by(s, 3),
        MouseEventKind::ScrollUp if s.popup.is_none() => move_by(s, -3),
        MouseEventKind::Down(MouseButton::Left) => click(s, m.column, m.row),
        _ => vec![],
    }
}

fn click(s: &mut State, x: u16, y: u16) -> Vec<Effect> {
    if s.popup.is_some() {
        // A click outside a popup closes the harmless ones.
        if matches!(
            s.popup,
            Some(Popup::Help { .. }) | Some(Popup::Error { .. })
        ) {
            s.popup = None;
        }
        return vec![];
    }
    if y == 0 {
        if let Some(v) = views::header_tab_at(s, x) {
            return switch(s, v);
        }
        return vec![];
    }
    match s.view {
        View::Items => {
            if let Some(tab) = views::items::tab_at(s, x, y) {
                return set_tab(s, tab);
            }
            let area = views::items_rows_area(s.size);
            if y >= area.y && y < area.y + area.height {
                let pos = s.items.top + (y - area.y) as u64;
                if pos < s.items.total {
                    if pos == s.items.cursor {
                        return open(s);
                    }
                    let delta = pos as i64 - s.items.cursor as i64;
                    return move_by(s, delta);
                }
            }
            vec![]
        }
        View::Queues | View::Exceptions | View::Workers | View::Actions => {
            let Some(row) = views::list_row_at(s, y) else {
                return vec![];
            };
            let cur = match s.view {
                View::Queues => s.queues.cursor(),
                View::Exceptions => s.inbox_cursor(&s.inbox_rows()),
                View::Actions => s.actions.cursor(),
                _ => s.workers_cursor(),
            };
            if row == cur {
                return open(s);
            }
            move_by(s, row as i64 - cur as i64)
        }
        View::Detail => vec![],
    }
}
