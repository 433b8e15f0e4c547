//! Everything the console knows, owned by one task. Rows are tracked by id (items) or by
//! name (queues, inbox rows), never by row index, so refreshes keep the cursor and marks.

use crate::model::*;
use crate::tui::commands::{Command, Keymap};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Queues,
    Items,
    Detail,
    Exceptions,
    Workers,
    /// The action log (`:actions`), from which any action can be undone.
    Actions,
}

impl View {
    /// The views in the header's tab bar, with their number keys.
    pub const TABS: [View; 4] = [View::Queues, View::Items, View::Exceptions, View::Workers];
    pub fn title(self) -> &'static str {
        match self {
            View::Queues => "Queues",
            View::Items => "Items",
            View::Detail => "Item",
            View::Exceptions => "Exceptions",
            View::Workers => "Workers",
            View::Actions => "Actions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    Dark,
    Light,
    /// The user's theme file named in the config (`State::user_theme`).
    User,
}

/// A request kind's bookkeeping: the latest sequence number sent, whether one is in flight,
/// and whether another is wanted once it lands. At most one request of a kind runs at a
/// time, so a slow query never piles up behind typing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetch {
    pub seq: u64,
    pub inflight: bool,
    /// Fetch again when the current one lands.
    pub again: bool,
    /// What is in flight was asked with parameters that changed since: drop its answer.
    pub stale: bool,
}

#[derive(Debug, Clone, Default)]
pub struct QueuesState {
    pub list: Vec<QueueSummary>,
    pub loaded: bool,
    /// The selected queue, by name.
    pub selected: Option<String>,
    pub fetch: Fetch,
    /// When the summaries were last asked for (time alone moves SLA and expiry).
    pub asked_at: Option<Time>,
    /// What is in flight was asked because time passed, not because the engine changed.
    pub timed: bool,
    /// Alerts as last read; the fired ones mark their queue.
    pub alerts: Vec<crate::alert::Alert>,
}

impl QueuesState {
    /// The fired alerts on a queue, by name.
    pub fn fired_on(&self, queue: &str) -> Vec<&crate::alert::Alert> {
        self.alerts
            .iter()
            .filter(|a| a.queue == queue && a.state == crate::alert::AlertState::Fired)
            .collect()
    }
}

impl QueuesState {
    pub fn cursor(&self) -> usize {
        self.selected
            .as_ref()
            .and_then(|n| self.list.iter().position(|q| &q.queue.name == n))
            .unwrap_or(0)
    }
    pub fn current(&self) -> Option<&QueueSummary> {
        self.list.get(self.cursor())
    }
}

/// Rows fetched per page: comfortably more than a tall screen shows.
pub const WINDOW: u32 = 120;

#[derive(Debug, Clone, Default)]
pub struct ItemsState {
    /// `None`: every queue.
    pub queue: Option<String>,
    /// The status tab; `None`: all statuses.
    pub tab: Option<Status>,
    /// Criteria besides queue and the tab (reason, priority, SLA, expired, search, signature,
    /// several statuses).
    pub filter: Filter,
    /// Set when the list is an inbox group, to say which.
    pub group: Option<String>,
    pub sort: SortBy,
    pub descending: bool,
    /// The loaded window: rows `offset..offset + rows.len()` of `total`.
    pub rows: Vec<Item>,
    pub offset: u64,
    pub total: u64,
    /// When `total` was last counted: a refined filter over many items is counted once per
    /// change and every few seconds after, not on every window move.
    pub counted_at: Option<Time>,
    pub loaded: bool,
    /// Absolute position of the cursor, and the id it is on (which wins after a refresh).
    pub cursor: u64,
    pub cursor_id: Option<String>,
    /// First row on screen.
    pub top: u64,
    pub marks: BTreeSet<String>,
    /// Every item matching the filter is marked (a bulk action then targets the filter).
    pub mark_all: bool,
    /// Where the last mark was set, for range marks.
    pub anchor: Option<u64>,
    pub fetch: Fetch,
}

impl ItemsState {
    /// Newest first: what arrived last is what people ask about.
    pub fn new() -> ItemsState {
        ItemsState {
            descending: true,
            ..Default::default()
        }
    }
    /// The engine filter of what the table shows: the tab's status, or the statuses of a
    /// filter on several (`status=exception,on-hold`) under the "all" tab.
    pub fn effective_filter(&self) -> Filter {
        Filter {
            queue: self.queue.clone(),
            statuses: match self.tab {
                Some(t) => vec![t],
                None => self.filter.statuses.clone(),
            },
            ..self.filter.clone()
        }
    }
    /// Only queue and status narrow the list: the tab counts from the queue summaries hold.
    pub fn plain(&self) -> bool {
        self.filter == Filter::default()
    }
    pub fn row(&self, pos: u64) -> Option<&Item> {
        pos.checked_sub(self.offset)
            .and_then(|i| self.rows.get(i as usize))
    }
    pub fn current(&self) -> Option<&Item> {
        self.row(self.cursor)
    }
    pub fn is_marked(&self, id: &str) -> bool {
        self.mark_all || self.marks.contains(id)
    }
}

#[derive(Debug, Clone, Default)]
pub struct DetailState {
    pub id: Option<String>,
    pub data: Option<ItemDetail>,
    pub scroll: u16,
    pub fetch: Fetch,
    /// Next/previous moved the list's cursor to a row still being fetched: show it
    /// when it lands.
    pub follow: bool,
}

/// One row of the exceptions inbox.
#[derive(Debug, Clone, PartialEq)]
pub enum InboxKind {
    Group {
        reason: Option<Reason>,
        signature: String,
        example: Option<String>,
    },
    Expired,
    OutOfSla,
}

/// What kind of inbox row, for the inbox's own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Exception,
    Expired,
    OutOfSla,
}

impl RowKind {
    pub const NAMES: [&'static str; 3] = ["exception", "expired", "sla"];
    pub fn parse(s: &str) -> Result<RowKind, String> {
        match s {
            "exception" | "exceptions" => Ok(RowKind::Exception),
            "expired" => Ok(RowKind::Expired),
            "sla" | "out-of-sla" => Ok(RowKind::OutOfSla),
            _ => Err(format!(
                "filter kind: '{s}' is not one of {}",
                RowKind::NAMES.join(", ")
            )),
        }
    }
}

/// The inbox's filter: `queue=Q reason=R kind=exception|expired|sla`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub queue: Option<String>,
    pub reason: Option<Reason>,
    pub kind: Option<RowKind>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub queue: String,
    pub kind: InboxKind,
    pub count: u64,
    pub newest: Option<Time>,
}

impl InboxRow {
    pub fn filter(&self) -> Filter {
        let mut f = Filter {
            queue: Some(self.queue.clone()),
            ..Default::default()
        };
        match &self.kind {
            InboxKind::Group {
                reason, signature, ..
            } => {
                f.statuses = vec![Status::Exception];
                f.reason = *reason;
                f.signature = Some(signature.clone());
            }
            InboxKind::Expired => f.expired = Some(true),
            InboxKind::OutOfSla => f.sla = Some(Sla::Out),
        }
        f
    }
    pub fn kind(&self) -> RowKind {
        match self.kind {
            InboxKind::Group { .. } => RowKind::Exception,
            InboxKind::Expired => RowKind::Expired,
            InboxKind::OutOfSla => RowKind::OutOfSla,
        }
    }
    /// The statuses the row's items can be in: what decides which actions fit it.
    pub fn statuses(&self) -> &'static [Status] {
        match self.kind {
            InboxKind::Group { .. } => &[Status::Exception],
            InboxKind::Expired => &[Status::Queued],
            InboxKind::OutOfSla => &[
                Status::Queued,
                Status::Processing,
                Status::OnHold,
                Status::Exception,
            ],
        }
    }
    /// Whether the row passes the inbox's search (any case) and filter.
    pub fn shown(&self, search: Option<&str>, f: &InboxFilter) -> bool {
        let reason = match &self.kind {
            InboxKind::Group { reason, .. } => *reason,
            _ => None,
        };
        let text = search.map(str::to_lowercase).unwrap_or_default();
        let example = match &self.kind {
            InboxKind::Group { example, .. } => example.as_deref().unwrap_or(""),
            _ => "",
        };
        let hay = format!("{}\n{}\n{}", self.queue, self.what(), example).to_lowercase();
        f.queue.as_ref().is_none_or(|q| *q == self.queue)
            && f.reason.is_none_or(|r| reason == Some(r))
            && f.kind.is_none_or(|k| k == self.kind())
            && text.split_whitespace().all(|w| hay.contains(w))
    }
    /// Stable identity across refreshes.
    pub fn key(&self) -> String {
        match &self.kind {
            InboxKind::Group {
                reason, signature, ..
            } => format!(
                "{}\u{1}{}\u{1}{signature}",
                self.queue,
                reason.map(|r| r.as_str()).unwrap_or("-")
            ),
            InboxKind::Expired => format!("{}\u{1}expired", self.queue),
            InboxKind::OutOfSla => format!("{}\u{1}out-of-sla", self.queue),
        }
    }
    /// "business: Vendor * not found", "expired", "out of SLA".
    pub fn what(&self) -> String {
        match &self.kind {
            InboxKind::Group {
                reason, signature, ..
            } => {
                let sig = if signature.is_empty() {
                    "(no note)"
                } else {
                    signature
                };
                format!(
                    "{}: {sig}",
                    reason.map(|r| r.as_str()).unwrap_or("exception")
                )
            }
            InboxKind::Expired => "expired: queued past their expiry".into(),
            InboxKind::OutOfSla => "out of SLA: unfinished past the target".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct InboxState {
    pub groups: Vec<ExceptionGroup>,
    pub loaded: bool,
    pub selected: Option<String>,
    pub fetch: Fetch,
    /// Marked rows, by key, across groups and queues: an action applies to all of them.
    pub marks: BTreeSet<String>,
    /// Free text over queue, reason, signature and example.
    pub search: Option<String>,
    pub filter: InboxFilter,
}

#[derive(Debug, Clone, Default)]
pub struct ActionsState {
    pub list: Vec<ActionInfo>,
    pub loaded: bool,
    /// The selected action, by id.
    pub selected: Option<i64>,
    pub fetch: Fetch,
}

impl ActionsState {
    pub fn cursor(&self) -> usize {
        self.selected
            .and_then(|id| self.list.iter().position(|a| a.id == id))
            .unwrap_or(0)
    }
    pub fn current(&self) -> Option<&ActionInfo> {
        self.list.get(self.cursor())
    }
}

#[derive(Debug, Clone, Default)]
pub struct WorkersState {
    pub list: Vec<WorkerInfo>,
    pub loaded: bool,
    pub selected: Option<String>,
    pub fetch: Fetch,
    /// When the list was last asked for: agents report themselves without changing any
    /// item, so the view also asks now and then (`WORKERS_REFRESH_SECS`).
    pub asked_at: Option<Time>,
}

/// A one-line text input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    pub text: String,
    /// Cursor position in characters.
    pub cursor: usize,
}

impl Input {
    pub fn new(text: &str) -> Input {
        Input {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }
    fn byte(&self, char_pos: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_pos)
            .map(|(b, _)| b)
            .unwrap_or(self.text.len())
    }
    pub fn insert(&mut self, c: char) {
        let b = self.byte(self.cursor);
        self.text.insert(b, c);
        self.cursor += 1;
    }
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let b = self.byte(self.cursor);
            self.text.remove(b);
        }
    }
    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let b = self.byte(self.cursor);
            self.text.remove(b);
        }
    }
    pub fn delete_word(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut start = self.cursor;
        while start > 0 && chars[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && chars[start - 1] != ' ' {
            start -= 1;
        }
        let (a, b) = (self.byte(start), self.byte(self.cursor));
        self.text.replace_range(a..b, "");
        self.cursor = start;
    }
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.text.chars().count());
    }
}

/// What a prompt's answer is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Search,
    /// The inbox's own search.
    InboxSearch,
    /// The argument an action needs before it can be confirmed.
    Arg(ArgFor),
    QueueSettings(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgFor {
    Delay,
    Priority,
    Extend,
    Note,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub action: ActionKind,
    pub target: Target,
    /// What the target is, in words ("3 marked items", "item I-1006 Fabrikam").
    pub what: String,
    /// The engine's preview of what the action will do; nothing applies before it lands.
    pub preview: Option<Preview>,
    /// Marked inbox rows the action does not fit, left out of the target: their items,
    /// by kind of row, and why ("expired rows: requeue does not fit; use extend").
    pub misfit: Vec<Tally>,
    pub note: Input,
    /// Past `rules::TYPE_THE_COUNT_OVER` changes, the count the person types to confirm.
    pub typed: Input,
    /// Where typing goes: the note, or the count.
    pub focus: Field,
    pub seq: u64,
    pub dangerous: bool,
}

impl Confirm {
    /// Items the action will change, once the preview says.
    pub fn changes(&self) -> Option<u64> {
        self.preview.as_ref().map(|p| p.changes)
    }
    /// Items of the marked rows it leaves alone because it does not fit them.
    pub fn misfits(&self) -> u64 {
        self.misfit.iter().map(|t| t.count).sum()
    }
    /// The count must be typed to confirm.
    pub fn needs_count(&self) -> bool {
        self.changes().is_some_and(needs_count)
    }
}

/// Whether a confirmation that changes `n` items asks for the count to be typed
/// (k9s-style): the same for every action and for an undo.
pub fn needs_count(n: u64) -> bool {
    n > crate::rules::TYPE_THE_COUNT_OVER
}

/// Whether `typed` is the count `n`: "1,201", "1201" and "1 201" all are.
pub fn typed_count(typed: &Input, n: u64) -> bool {
    typed.text.trim().replace([',', '_', ' '], "") == n.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Note,
    Count,
}

/// The confirmation of an undo: what it will restore and keep, from a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoConfirm {
    pub action_id: i64,
    /// "requeue of 109 items by user:ana".
    pub what: String,
    pub preview: Option<UndoResult>,
    /// Past `rules::TYPE_THE_COUNT_OVER` restores, the count the person types to confirm.
    pub typed: Input,
    pub seq: u64,
}

impl UndoConfirm {
    /// Items the undo will restore, once the dry run says.
    pub fn restores(&self) -> Option<u64> {
        self.preview.as_ref().map(|p| p.restored)
    }
    /// The count must be typed to confirm.
    pub fn needs_count(&self) -> bool {
        self.restores().is_some_and(needs_count)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help {
        scroll: u16,
    },
    Palette {
        input: Input,
        selected: usize,
    },
    Prompt {
        ask: Ask,
        title: String,
        input: Input,
        error: Option<String>,
    },
    Confirm(Box<Confirm>),
    Undo(Box<UndoConfirm>),
    Error {
        title: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusLine {
    pub text: String,
    pub level: Level,
    /// Cleared by the tick after this time.
    pub until: Time,
}

/// The change feed as the console last heard it. While it is down, what is on screen may
/// be out of date: the header says so, and the loop subscribes again after `retry_at`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedState {
    /// When the feed went away; `None` while it is live.
    pub down_since: Option<Time>,
    /// Why, as the backend said.
    pub why: String,
    /// When the next subscription is due.
    pub retry_at: Option<Time>,
    /// Subscriptions since the feed last stayed up long enough to count as back: each one
    /// waits longer than the last.
    pub attempts: u32,
    /// When the feed was last subscribed again.
    pub up_since: Option<Time>,
}

impl FeedState {
    pub fn stale(&self) -> bool {
        self.down_since.is_some()
    }
}

/// The whole console state.
pub struct State {
    pub now: Time,
    /// Where times are shown (the machine's zone; tests fix UTC). Every time names it.
    pub zone: crate::text::Zone,
    pub size: (u16, u16),
    pub view: View,
    /// Where `esc` goes back to.
    pub back: Vec<View>,
    /// What the console is connected to, for the header ("demo.db").
    pub source: String,
    pub read_only: bool,
    pub theme: ThemeName,
    /// The user's own theme, by name, when the config names one.
    pub user_theme: Option<(String, crate::tui::theme::Theme)>,
    pub no_color: bool,
    pub mouse: bool,
    /// The most often the console refetches while the data changes (config `refresh`).
    pub refresh: std::time::Duration,
    pub keymap: Keymap,
    pub actor: String,
    pub queues: QueuesState,
    pub items: ItemsState,
    pub detail: DetailState,
    pub inbox: InboxState,
    pub workers: WorkersState,
    pub actions: ActionsState,
    pub popup: Option<Popup>,
    pub status: Option<StatusLine>,
    pub feed: FeedState,
    /// The last action applied from this console, for `:undo`.
    pub last_action: Option<ActionResult>,
    /// Problems found in the config file, shown at start and in help.
    pub config_problems: Vec<String>,
    /// Where the config file is (or would be), for help.
    pub config_file: String,
    /// Sequence numbers for previews.
    pub seq: u64,
    pub quit: bool,
}

impl State {
    pub fn new(now: Time, source: &str, actor: &str) -> State {
        State {
            now,
            zone: crate::text::Zone::UTC,
            size: (80, 24),
            view: View::Queues,
            back: Vec::new(),
            source: source.to_string(),
            read_only: false,
            theme: ThemeName::Dark,
            user_theme: None,
            no_color: false,
            mouse: true,
            refresh: crate::tui::settings::DEFAULT_REFRESH,
            keymap: Keymap::default(),
            actor: actor.to_string(),
            queues: QueuesState::default(),
            items: ItemsState::new(),
            detail: DetailState::default(),
            inbox: InboxState::default(),
            workers: WorkersState::default(),
            actions: ActionsState::default(),
            popup: None,
            status: None,
            feed: FeedState::default(),
            last_action: None,
            config_problems: Vec::new(),
            config_file: "config.toml in the workq config directory".into(),
            seq: 0,
            quit: false,
        }
    }

    /// The inbox rows the search and filter let through: what the inbox shows.
    pub fn inbox_rows(&self) -> Vec<InboxRow> {
        let search = self.inbox.search.as_deref();
        self.inbox_all_rows()
            .into_iter()
            .filter(|r| r.shown(search, &self.inbox.filter))
            .collect()
    }

    /// What an inbox action applies to: the marked rows that still exist (shown or not),
    /// else the row under the cursor.
    pub fn inbox_targets(&self) -> Vec<InboxRow> {
        let marked: Vec<InboxRow> = self
            .inbox_all_rows()
            .into_iter()
            .filter(|r| self.inbox.marks.contains(&r.key()))
            .collect();
        if !marked.is_empty() {
            return marked;
        }
        let rows = self.inbox_rows();
        rows.get(self.inbox_cursor(&rows))
            .cloned()
            .into_iter()
            .collect()
    }

    /// Whether a command is offered here: in the inbox an action is offered when it fits
    /// at least one row it would apply to (it then applies to those and skips the rest,
    /// saying so before it is confirmed); one that fits none is not (requeue for expired
    /// items only, extend for exceptions only).
    pub fn offered(&self, cmd: Command) -> bool {
        if self.view != View::Exceptions {
            return true;
        }
        let Some(action) = crate::tui::commands::action_of(cmd) else {
            return true;
        };
        !self.inbox_fit(&action).0.is_empty()
    }

    /// The inbox rows an action applies to, split into those it fits and those it does
    /// not (whose items it skips).
    pub fn inbox_fit(&self, action: &ActionKind) -> (Vec<InboxRow>, Vec<InboxRow>) {
        self.inbox_targets()
            .into_iter()
            .partition(|r| crate::rules::action_fits(r.statuses(), action))
    }

    /// The exceptions inbox: groups, then expired and out-of-SLA items, queue by queue in
    /// the order of the queues view.
    pub fn inbox_all_rows(&self) -> Vec<InboxRow> {
        let mut rows = Vec::new();
        let mut order: Vec<&str> = self
            .queues
            .list
            .iter()
            .map(|q| q.queue.name.as_str())
            .collect();
        for g in &self.inbox.groups {
            if !order.contains(&g.queue.as_str()) {
                order.push(&g.queue);
            }
        }
        for q in order {
            let mut groups: Vec<&ExceptionGroup> =
                self.inbox.groups.iter().filter(|g| g.queue == q).collect();
            groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
            for g in groups {
                rows.push(InboxRow {
                    queue: q.to_string(),
                    kind: InboxKind::Group {
                        reason: g.reason,
                        signature: g.signature.clone(),
                        example: g.example.clone(),
                    },
                    count: g.count,
                    newest: Some(g.newest),
                });
            }
            if let Some(s) = self.queues.list.iter().find(|s| s.queue.name == q) {
                if s.expired > 0 {
                    rows.push(InboxRow {
                        queue: q.to_string(),
                        kind: InboxKind::Expired,
                        count: s.expired,
                        newest: None,
                    });
                }
                if s.out_of_sla > 0 {
                    rows.push(InboxRow {
                        queue: q.to_string(),
                        kind: InboxKind::OutOfSla,
                        count: s.out_of_sla,
                        newest: None,
                    });
                }
            }
        }
        rows
    }

    pub fn inbox_cursor(&self, rows: &[InboxRow]) -> usize {
        self.inbox
            .selected
            .as_ref()
            .and_then(|k| rows.iter().position(|r| &r.key() == k))
            .unwrap_or(0)
    }

    pub fn workers_cursor(&self) -> usize {
        self.workers
            .selected
            .as_ref()
            .and_then(|n| self.workers.list.iter().position(|w| &w.name == n))
            .unwrap_or(0)
    }

    /// Counts by status of what the items view covers (one queue or all).
    pub fn counts_for(&self, queue: Option<&str>) -> StatusCounts {
        let mut c = StatusCounts::default();
        for s in &self.queues.list {
            if queue.is_none_or(|q| q == s.queue.name) {
                for st in Status::ALL {
                    *c.get_mut(*st) += s.counts.get(*st);
                }
            }
        }
        c
    }
}
