//! The `workq` command line: argument definitions and dispatch. One file per command group.

mod alert;
pub mod completion;
mod item;
pub mod output;
mod queue;
mod token;
mod work;

use crate::backend::Backend;
use crate::connect::{Open, Target};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

// Who a person is, for the commands' history entries.
use crate::connect::os_user;

pub use output::Failure;

#[derive(Parser, Debug)]
#[command(
    name = "workq",
    version,
    about = "A durable work-queue engine with a keyboard-driven console",
    long_about = "A durable work-queue engine. Bots push work items into queues and take them out; \
                  people triage exceptions. Without a command, workq opens the console on the \
                  database; `workq demo` opens it on a demo with bots at work. Durations are written \
                  like 30s, 30m, 5h, 7d; times as RFC 3339 (2026-11-22T23:00:00Z) or local \
                  YYYY-MM-DD HH:MM."
)]
pub struct Cli {
    /// The database: a file (default: workq.db in the user's data directory) or
    /// postgres://user@host/dbname.
    #[arg(long, global = true, env = "WORKQ_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// A remote `workq serve` to work on instead of a file, e.g. http://127.0.0.1:7878.
    #[arg(long, global = true, env = "WORKQ_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
    /// The bearer token for --remote or --connect (`workq token create` makes one).
    #[arg(
        long,
        global = true,
        env = "WORKQ_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A server named in the config file's [connections.NAME] (url and token_file,
    /// token_env or token).
    #[arg(long, global = true, value_name = "NAME")]
    pub connect: Option<String>,
    /// Print JSON instead of text (errors too, on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Refuse every command that changes data; the console hides them.
    #[arg(long, global = true)]
    pub read_only: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, change, list and delete queues.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Add, list, show and act on items.
    #[command(subcommand)]
    Item(ItemCmd),
    /// Import items from a CSV or JSON Lines file.
    Import(ImportArgs),
    /// Take items to work on (prints lease tokens and items).
    Dequeue(DequeueArgs),
    /// Report a leased item processed.
    Complete(CompleteArgs),
    /// Report a leased item failed: an exception (retried automatically when allowed).
    Fail(FailArgs),
    /// Extend a lease.
    Heartbeat(HeartbeatArgs),
    /// The worker agent: takes items and runs COMMAND for each (value on stdin, the item in
    /// WORKQ_* variables); exit 0 processed, 2 business, 3 IT, other generic exception.
    Work(WorkArgs),
    /// Report many leased items at once: JSON Lines of outcomes, applied in one call.
    Finish(FinishArgs),
    /// Exceptions grouped by queue, reason and masked note signature.
    Groups(GroupsArgs),
    /// Workers and agents seen recently: what each holds, processed and failed, last heard.
    Workers,
    /// Undo a human action: restores its items that are unchanged since, keeps the others.
    Undo(UndoArgs),
    /// Past human actions, newest first (undo any of them with `workq undo ID`).
    Actions(ActionsArgs),
    /// Measure the engine against a bare baseline (the same SQL in a plain loop) run beside it.
    Bench(crate::bench::BenchArgs),
    /// Serve the database over HTTP: the whole engine, with bearer tokens, live events,
    /// health, Prometheus metrics and an OpenAPI document.
    Serve(crate::server::ServeArgs),
    /// Make, list and revoke the bearer tokens of `workq serve`.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Alerts on a queue: run a command or POST a webhook once when a rule turns true and
    /// once when it clears.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// The console on a fresh demo database, with simulated bots working live.
    Demo(crate::demo::DemoArgs),
    /// Copy an embedded database whole into an empty PostgreSQL schema, checking every
    /// table's rows and every queue's counts; the file is locked meanwhile, left unchanged.
    Migrate {
        /// The embedded database file to copy.
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        /// Where to: postgres://user@host/dbname (an empty database or schema).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// The config file: where it is, its commented default, checking it, the effective
    /// settings.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a shell completion script (bash, zsh, fish or powershell), e.g.
    /// `workq completions bash > ~/.local/share/bash-completion/completions/workq`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print workq's man page (roff), e.g. `workq man > ~/.local/share/man/man1/workq.1`.
    Man,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print where the config file is ($WORKQ_CONFIG, else config.toml in the config
    /// directory).
    Path,
    /// Write the commented default configuration there.
    Init {
        /// Replace a config file that is already there.
        #[arg(long)]
        force: bool,
    },
    /// Check a config file (default: the config file) and print every problem with its
    /// line, as the console reports them.
    Check { file: Option<PathBuf> },
    /// Print the effective configuration: the defaults, the file and the environment.
    Show,
    /// Print a built-in theme (dark or light): a start for your own themes/NAME.toml.
    Theme { name: String },
}

#[derive(Args, Debug, Default, Clone)]
pub struct QueueFlags {
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub description: Option<String>,
    /// Items added without an expiry expire this long after enqueue.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub ttl: Option<String>,
    /// How long after enqueue an item must be finished.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub sla: Option<String>,
    /// Share of the SLA after which an item is at risk (default 80).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, value_parser = whole::<u8>)]
    pub sla_risk: Option<u8>,
    /// Time of day by which the backlog must be done, e.g. 23:00.
    #[arg(long, value_name = "HH:MM")]
    pub deadline: Option<String>,
    /// Time zone of the deadline (IANA name, default UTC).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Automatic retries of IT exceptions and lease timeouts (0 = off).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub max_retries: Option<u32>,
    /// How long automatic retries wait: DUR before the first, doubling each time up to MAX
    /// (default 1h), with jitter (each waits between half and all of that), e.g. 30s,10m.
    #[arg(long, value_name = "DUR[,MAX]", allow_hyphen_values = true)]
    pub retry_backoff: Option<String>,
    /// How long a worker may hold an item without a heartbeat (default 5m).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub lease: Option<String>,
    /// The longest an item may be processed from its start, heartbeats or not; past it the
    /// item is timed out and retried like a lease timeout (`--clear max-runtime`: no limit).
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub max_runtime: Option<String>,
    /// Most items in processing at once.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub concurrency: Option<u32>,
    /// Queues polled together are drained highest priority first.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Create a queue.
    Create {
        name: String,
        #[command(flatten)]
        flags: QueueFlags,
    },
    /// Change a queue's settings.
    Update {
        name: String,
        #[command(flatten)]
        flags: QueueFlags,
        /// Unset a setting: ttl (never expire), sla, deadline, concurrency (no limit),
        /// retry-backoff (retries are queued at once).
        #[arg(long, value_name = "SETTING")]
        clear: Vec<String>,
    },
    /// List queues with counts and health.
    Ls {
        /// Only the names, one per line (for scripts and the completion scripts).
        #[arg(long)]
        names: bool,
    },
    /// Show one queue's settings and health.
    Inspect { name: String },
    /// Items that become ready in the next hours (delayed ones, by when their delay ends).
    Preview {
        name: String,
        /// How far ahead to look, in whole hours (default 24).
        #[arg(long, value_name = "N", default_value_t = 24, allow_negative_numbers = true, value_parser = whole::<u32>)]
        hours: u32,
        /// At most this many items (default 100).
        #[arg(long, value_name = "N", default_value_t = 100, allow_negative_numbers = true, value_parser = whole::<u32>)]
        limit: u32,
    },
    /// Stop handing out items (enqueue still works).
    Pause { name: String },
    /// Hand out items again.
    Resume { name: String },
    /// Delete a queue; with items left it needs --force.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only items in these statuses (comma-separated: exception,on-hold).
    #[arg(long, value_name = "STATUS[,STATUS…]")]
    pub status: Option<String>,
    /// Only exceptions with this reason.
    #[arg(long, value_name = "REASON")]
    pub reason: Option<String>,
    #[arg(long, value_name = "PRIORITY")]
    pub priority: Option<String>,
    /// Only items with this SLA status: in, at-risk, out (met, missed for finished items).
    #[arg(long, value_name = "SLA")]
    pub sla: Option<String>,
    /// Only expired items.
    #[arg(long)]
    pub expired: bool,
    /// Free text in name, key, value or notes (up to 1,000 characters).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub search: Option<String>,
    /// Only items this worker holds, or last processed.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub worker: Option<String>,
    /// Only exceptions in this group: the masked signature exactly as `workq groups` prints
    /// it ("(no note)" for exceptions without a note).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub signature: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ItemCmd {
    /// Add one item.
    Add(item::AddArgs),
    /// List items.
    Ls(item::LsArgs),
    /// Show an item: all fields, notes and history (a deleted one too, marked as such).
    Show { id: String },
    /// Put items back in the queue (exception, on-hold or processed items).
    Requeue(item::ActArgs),
    /// Park items so that no worker takes them.
    Hold(item::ActArgs),
    /// Take on-hold items back to the queue.
    Release(item::ActArgs),
    /// Mark items processed.
    Processed(item::ActArgs),
    /// Delete items; their history is kept (`item show ID` shows a deleted item, and
    /// `workq undo ACTION` brings it back).
    Delete(item::ActArgs),
    /// Change items' priority.
    Priority(item::ActArgs),
    /// Set or clear items' expiry.
    Extend(item::ActArgs),
    /// Add a note to items.
    Note(item::ActArgs),
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a token: prints it once, alone on stdout (only its hash is kept).
    Create {
        name: String,
        /// viewer (reads), worker (takes and reports work), operator (adds items, takes
        /// human actions) or admin (queues and tokens); each may do what those before it may.
        #[arg(long)]
        role: String,
    },
    /// List tokens, live and revoked (never their secrets).
    Ls,
    /// Revoke a token: the server refuses it from the next request on.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum AlertCmd {
    /// Add an alert on a queue.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["run", "webhook"])))]
    Add {
        name: String,
        #[arg(long)]
        queue: String,
        /// out>N, at-risk>=N, deadline-miss, exceptions>N/10m or no-worker>5m.
        #[arg(long, allow_hyphen_values = true)]
        when: String,
        /// A shell command run with the alert's JSON on stdin (and WORKQ_ALERT_NAME,
        /// WORKQ_ALERT_STATE in its environment).
        #[arg(long)]
        run: Option<String>,
        /// A URL the alert's JSON is POSTed to.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// List alerts and whether each is fired.
    Ls,
    /// Remove an alert.
    Rm { name: String },
    /// Check every alert once and deliver what changed (for cron on a local file).
    Check {
        /// Tries of each delivery before it is logged as given up.
        #[arg(long, default_value_t = 5, value_parser = whole::<u32>)]
        attempts: u32,
        /// The wait after the first failed try; each next wait doubles.
        #[arg(long, default_value = "1s", value_parser = crate::rules::parse_duration)]
        backoff: std::time::Duration,
    },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    pub queue: String,
    pub file: PathBuf,
    /// csv or jsonl (default: from the file name).
    #[arg(long)]
    pub format: Option<String>,
    /// Import the good rows; report the bad (default: nothing is imported when any row is bad).
    #[arg(long)]
    pub skip_bad: bool,
    /// With --skip-bad: write the bad rows here, in the input's format, to fix and import again.
    #[arg(long, value_name = "FILE", requires = "skip_bad")]
    pub rejects: Option<PathBuf>,
    /// Check the whole file as an import would and write nothing: prints how the columns
    /// map, the first rows as they would be stored, and every bad row.
    #[arg(long, conflicts_with = "rejects")]
    pub dry_run: bool,
    /// A business column (e.g. InvoiceId) whose text is each item's key; it stays in the
    /// value. Importing the same file again then reports duplicates instead of doubling.
    #[arg(long, value_name = "COLUMN")]
    pub key_column: Option<String>,
    /// A business column whose text is each item's name; it stays in the value.
    #[arg(long, value_name = "COLUMN")]
    pub name_column: Option<String>,
    /// What separates a CSV's fields (default ','): e.g. ';' for Excel in many European
    /// locales, or tab.
    #[arg(long, value_name = "CHAR", allow_hyphen_values = true)]
    pub delimiter: Option<String>,
}

#[derive(Args, Debug)]
pub struct DequeueArgs {
    #[arg(required = true)]
    pub queues: Vec<String>,
    /// Who takes the items (default: cli:USER).
    #[arg(long, allow_hyphen_values = true)]
    pub worker: Option<String>,
    /// Take up to N items. With --json the answer is then {"leases": [...], "why_empty": ...};
    /// without, one lease object (its "why_empty" says why when nothing was taken).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub count: Option<u32>,
    /// Wait up to this long for an item.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub wait: Option<String>,
}

#[derive(Args, Debug)]
pub struct WorkArgs {
    /// A queue to take from (several: in the order given); created with defaults if missing.
    #[arg(long = "queue", required = true, value_name = "QUEUE")]
    pub queues: Vec<String>,
    /// Run up to N commands at once.
    #[arg(long, default_value_t = 1, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub concurrency: u32,
    /// Kill a command (its whole process group) that runs longer; the item gets `timeout`.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Take what is ready now, finish it, exit (1 when any item failed).
    #[arg(long)]
    pub run_once: bool,
    /// Look this far ahead for delayed items and take each at its time, not up to a poll
    /// later; with --run-once, also wait for the items due within it.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub prefetch: Option<String>,
    /// The agent's name; its worker id is NAME@host:pid.
    #[arg(long, default_value = "agent", allow_hyphen_values = true)]
    pub name: String,
    /// On SIGINT/SIGTERM, how long running commands may finish before they are killed and
    /// their items handed back.
    #[arg(
        long,
        default_value = "30s",
        value_name = "DUR",
        allow_hyphen_values = true
    )]
    pub grace: String,
    /// Exit codes that mean a business exception (comma-separated).
    #[arg(
        long,
        value_name = "CODE[,CODE…]",
        value_delimiter = ',',
        default_value = "2"
    )]
    pub business_exit: Vec<i32>,
    /// Exit codes that mean an IT exception, retried per the queue (comma-separated).
    #[arg(
        long,
        value_name = "CODE[,CODE…]",
        value_delimiter = ',',
        default_value = "3"
    )]
    pub it_exit: Vec<i32>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CompleteArgs {
    pub id: String,
    #[arg(long, value_name = "TOKEN")]
    pub lease: String,
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct FailArgs {
    pub id: String,
    #[arg(long, value_name = "TOKEN")]
    pub lease: String,
    /// generic, it or business.
    #[arg(long)]
    pub reason: String,
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// With --reason it: postpone the item, back to the queue after DUR, without counting a
    /// retry.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub retry_in: Option<String>,
}

#[derive(Args, Debug)]
pub struct HeartbeatArgs {
    /// The item whose lease `--lease` names; or, without `--lease`, several ID:TOKEN pairs
    /// extended in one call.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    #[arg(long, value_name = "TOKEN")]
    pub lease: Option<String>,
}

#[derive(Args, Debug)]
pub struct FinishArgs {
    /// JSON Lines, one outcome a line:
    /// {"id","lease","outcome":"processed"|"exception","reason","note"}; `-` or nothing
    /// reads stdin.
    #[arg(value_name = "FILE")]
    pub file: Option<String>,
}

#[derive(Args, Debug)]
pub struct GroupsArgs {
    pub queue: Option<String>,
}

#[derive(Args, Debug)]
pub struct UndoArgs {
    pub action_id: i64,
    /// All or nothing: refuse (and change nothing) when any item changed since.
    #[arg(long)]
    pub strict: bool,
    /// Say what the undo would restore and keep; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo without typing the count (asked when it restores over 1,000 items).
    #[arg(long, short = 'y', conflicts_with = "dry_run")]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct ActionsArgs {
    /// Only actions that touched this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub limit: u32,
}

/// What a command does with the `--db` database. One table: `--read-only` refuses what
/// writes, what only reads opens the database read-only, and neither creates one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: opens the database read-only; refuses a missing one instead of creating it.
    Reads,
    /// Changes data (the command's name, for `--read-only`'s refusal).
    Writes(&'static str),
    /// Does not open the `--db`: the bench makes its own files, the demo a fresh one (its
    /// console then honours `--read-only`).
    OwnDatabase,
}

impl Command {
    /// Every command is named here, so a new one cannot slip past `--read-only`.
    pub fn access(&self) -> Access {
        use Access::*;
        match self {
            Command::Queue(c) => match c {
                QueueCmd::Create { .. } => Writes("queue create"),
                QueueCmd::Update { .. } => Writes("queue update"),
                QueueCmd::Pause { .. } => Writes("queue pause"),
                QueueCmd::Resume { .. } => Writes("queue resume"),
                QueueCmd::Delete { .. } => Writes("queue delete"),
                QueueCmd::Ls { .. } | QueueCmd::Inspect { .. } | QueueCmd::Preview { .. } => Reads,
            },
            Command::Item(c) => match c {
                ItemCmd::Add(_) => Writes("item add"),
                ItemCmd::Requeue(_) => Writes("item requeue"),
                ItemCmd::Hold(_) => Writes("item hold"),
                ItemCmd::Release(_) => Writes("item release"),
                ItemCmd::Processed(_) => Writes("item processed"),
                ItemCmd::Delete(_) => Writes("item delete"),
                ItemCmd::Priority(_) => Writes("item priority"),
                ItemCmd::Extend(_) => Writes("item extend"),
                ItemCmd::Note(_) => Writes("item note"),
                ItemCmd::Ls(_) | ItemCmd::Show { .. } => Reads,
            },
            // A dry run checks the file against the queue on a reader: it writes nothing and
            // takes no lock, so it works on a file this user can only read.
            Command::Import(a) if a.dry_run => Reads,
            Command::Import(_) => Writes("import"),
            // Taking an item leases it: that is a change.
            Command::Dequeue(_) => Writes("dequeue"),
            Command::Complete(_) => Writes("complete"),
            Command::Fail(_) => Writes("fail"),
            Command::Heartbeat(_) => Writes("heartbeat"),
            Command::Finish(_) => Writes("finish"),
            Command::Work(_) => Writes("work"),
            Command::Undo(a) if a.dry_run => Reads,
            Command::Undo(_) => Writes("undo"),
            Command::Groups(_) | Command::Actions(_) | Command::Workers => Reads,
            Command::Token(TokenCmd::Create { .. }) => Writes("token create"),
            Command::Token(TokenCmd::Revoke { .. }) => Writes("token revoke"),
            Command::Token(TokenCmd::Ls) => Reads,
            Command::Alert(AlertCmd::Ls) => Reads,
            Command::Alert(AlertCmd::Add { .. }) => Writes("alert add"),
            Command::Alert(AlertCmd::Rm { .. }) => Writes("alert rm"),
            // Records each transition it fires.
            Command::Alert(AlertCmd::Check { .. }) => Writes("alert check"),
            // Serves every change its tokens allow.
            Command::Serve(_) => Writes("serve"),
            Command::Bench(_) | Command::Demo(_) | Command::Migrate { .. } => OwnDatabase,
            // No database: main prints them.
            Command::Config(_) | Command::Completions { .. } | Command::Man => OwnDatabase,
        }
    }

    /// The command's name when it changes data (what `--read-only` refuses), else `None`.
    pub fn writes(&self) -> Option<&'static str> {
        match self.access() {
            Access::Writes(name) => Some(name),
            _ => None,
        }
    }

    /// How the command opens the database; `Err` when `--read-only` refuses it (before
    /// anything is opened: opening may create the file).
    pub fn opens(&self, read_only: bool) -> Result<Open, Failure> {
        match (self.access(), read_only) {
            (Access::Writes(name), true) => Err(Failure {
                kind: "read_only",
                message: format!("--read-only: `workq {name}` changes data; nothing was done"),
                code: 1,
                error: None,
            }),
            (Access::Writes(_), false) => Ok(Open::Create),
            (Access::Reads, _) => Ok(Open::ReadOnly),
            (Access::OwnDatabase, _) => Err(own_database()),
        }
    }
}

fn own_database() -> Failure {
    Failure::usage("this command opens a database of its own: main runs it, not cli::run")
}

/// A whole number for a flag, refusing a negative one by name (clap's own error would
/// suggest `-- -5`, which does not work for a flag's value).
pub fn whole<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    if s.trim().starts_with('-') {
        return Err(format!("'{s}' is negative: give a whole number, 0 or more"));
    }
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number (or is too large)"))
}

impl From<crate::connect::Error> for Failure {
    fn from(e: crate::connect::Error) -> Failure {
        e.into_backend().into()
    }
}

impl Cli {
    /// What `--db` and `--remote` name.
    pub fn target(&self) -> Target {
        Target {
            db: self.db.clone(),
            remote: self.remote.clone(),
            token: self.token.clone(),
            connection: self.connect.clone(),
        }
    }
}

/// Runs a scripting command on the backend opened for it (as `Command::opens` says);
/// `Err` carries what to print and the exit code.
pub async fn run(command: Command, store: &dyn Backend, json: bool) -> Result<(), Failure> {
    let out = output::Out { json };
    match command {
        Command::Queue(c) => queue::run(store, c, &out).await,
        Command::Item(c) => item::run(store, c, &out).await,
        Command::Import(a) => item::import(store, a, &out).await,
        Command::Dequeue(a) => work::dequeue(store, a, &out).await,
        Command::Complete(a) => work::complete(store, a, &out).await,
        Command::Fail(a) => work::fail(store, a, &out).await,
        Command::Heartbeat(a) => work::heartbeat(store, a, &out).await,
        Command::Finish(a) => work::finish(store, a, &out).await,
        Command::Groups(a) => item::groups(store, a, &out).await,
        Command::Workers => work::workers(store, &out).await,
        Command::Undo(a) => item::undo(store, a, &out).await,
        Command::Actions(a) => item::actions(store, a, &out).await,
        Command::Token(c) => token::run(store, c, &out).await,
        Command::Alert(c) => alert::run(store, c, &out).await,
        Command::Bench(_)
        | Command::Work(_)
        | Command::Demo(_)
        | Command::Migrate { .. }
        | Command::Serve(_)
        | Command::Config(_)
        | Command::Completions { .. }
        | Command::Man => Err(own_database()),
    }
}
