//! `workq`: parse the command line, build the backend, hand off. The one place that knows
//! every front end: the console, the scripting commands, the demo and the bench each get
//! their backend from `workq::connect` and never call one another.

use clap::Parser;
use std::sync::Arc;
use workq::cli::{output, Cli, Command, ConfigCmd, Failure};
use workq::connect::{self, Open, Target};
use workq::tui;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are "errors" to clap; scripts asking for JSON get JSON errors.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "--json") => {
            let text = e.to_string();
            Failure::usage(text.trim().trim_start_matches("error: ")).print(true);
            std::process::exit(2);
        }
        // Usage errors quote what was typed: shown escaped, like everything else.
        Err(e) if e.use_stderr() => {
            let text = e.render().to_string();
            output::emit_err(&workq::text::escape(&text, true));
            std::process::exit(e.exit_code());
        }
        // Help and version; clap itself stops quietly when the reader went away.
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(f) = rt.block_on(run(cli)) {
        if f.is_closed_pipe() {
            die_of_sigpipe();
        }
        f.print(json);
        std::process::exit(f.code);
    }
}

/// Notes a closed stdout (`workq … >&-`) before Rust's runtime starts: the runtime then
/// opens /dev/null in its place, where writes succeed unread, so a `dequeue` could not
/// tell that nobody will get its lease tokens. Runs from `.init_array`, before `main`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = {
    extern "C" fn note() {
        // SAFETY: F_GETFD only asks whether descriptor 1 is open; it changes nothing.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            workq::cli::output::stdout_was_closed();
        }
    }
    note
};
async fn run(cli: Cli) -> Result<(), Failure> {
    let target = cli.target();
    match cli.command {
        None => console(&target, cli.read_only).await,
        Some(Command::Demo(args)) => demo(&target, args, cli.read_only).await,
        Some(Command::Bench(args)) => {
            let progress = |line: &str| output::emit_err(&format!("{line}\n"));
            let text = workq::bench::run(args, &progress)
                .await
                .map_err(|e| Failure::invalid(format!("bench: {e}")))?;
            output::emit(&text)
        }
        Some(Command::Serve(args)) => {
            if cli.read_only {
                return Err(Failure::usage(
                    "--read-only: `workq serve` serves changes too; nothing was done",
                ));
            }
            // A file of this machine or a PostgreSQL database, never a server to serve again.
            let db = connect::db_name(&target)?;
            let conn = connect::connect(&target, connect::Open::Create)?;
            workq::server::serve(conn.backend, args, db)
                .await
                .map_err(Failure::invalid)
        }
        Some(Command::Work(a)) => {
            let cmd = Command::Work(a);
            let open = cmd.opens(cli.read_only)?;
            let Command::Work(a) = cmd else {
                unreachable!()
            };
            let dur = |flag: &str, s: &str| {
                workq::rules::parse_duration(s)
                    .map_err(|e| Failure::invalid(format!("{flag}: {e}")))
            };
            let opts = workq::worker::Options {
                timeout: a
                    .timeout
                    .as_deref()
                    .map(|t| dur("--timeout", t))
                    .transpose()?,
                grace: dur("--grace", &a.grace)?,
                prefetch: a
                    .prefetch
                    .as_deref()
                    .map(|t| dur("--prefetch", t))
                    .transpose()?,
                queues: a.queues,
                concurrency: a.concurrency,
                run_once: a.run_once,
                name: a.name,
                command: a.command,
                exits: workq::worker::ExitMap {
                    business: a.business_exit,
                    it: a.it_exit,
                },
            };
            let conn = connect::connect(&target, open)?;
            let code = workq::worker::run(conn.backend, opts)
                .await
                .map_err(|e| Failure::invalid(format!("work: {e}")))?;
            std::process::exit(code)
        }
        Some(Command::Config(c)) => config(c, cli.json),
        Some(Command::Migrate { from, to }) => {
            if !workq::store::postgres::is_url(&to) {
                return Err(Failure::invalid(
                    "--to: give a PostgreSQL URL, postgres://user@host/dbname",
                ));
            }
            let copied = workq::migrate::migrate(&from, &to)
                .await
                .map_err(|e| Failure::invalid(format!("migrate: {e}")))?;
            if cli.json {
                return output::emit(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&copied).expect("serializable")
                ));
            }
            let mut s = String::new();
            for c in &copied {
                s.push_str(&format!(
                    "{:<14} {:>12}\n",
                    c.table,
                    workq::text::thousands(c.rows)
                ));
            }
            s.push_str(&format!(
                "copied {} tables into {}; every count checked\n",
                copied.len(),
                workq::text::escape(&workq::store::postgres::redact(&to), false)
            ));
            output::emit(&s)
        }
        Some(Command::Completions { shell }) => {
            output::emit(&workq::cli::completion::script(shell))
        }
        Some(Command::Man) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&workq::cli::completion::man())
                .and_then(|_| out.flush())
                .map_err(Failure::output)
        }
        Some(command) => {
            let open = command.opens(cli.read_only)?;
            let conn = connect::connect(&target, open)?;
            workq::cli::run(command, &*conn.backend, cli.json).await
        }
    }
}

/// `workq config …`: the console's config file, read and checked by the console's own
/// rules (`tui::settings`).
fn config(cmd: ConfigCmd, json: bool) -> Result<(), Failure> {
    use tui::settings;
    let no_dir =
        || Failure::invalid("there is no config directory here: set WORKQ_CONFIG to a file");
    let shown =
        |p: &std::path::Path| workq::text::escape(&p.display().to_string(), false).into_owned();
    match cmd {
        ConfigCmd::Path => {
            let p = settings::path().ok_or_else(no_dir)?;
            if json {
                return output::Out { json }.json(&serde_json::json!({
                    "path": p.display().to_string(),
                    "exists": p.exists(),
                }));
            }
            if !p.exists() {
                output::emit_err(
                    "(there is no file there yet: `workq config init` writes the default)\n",
                );
            }
            output::emit(&format!("{}\n", shown(&p)))
        }
        ConfigCmd::Init { force } => {
            let p = settings::path().ok_or_else(no_dir)?;
            if p.exists() && !force {
                return Err(Failure::invalid(format!(
                    "{} is already there: nothing was written (--force replaces it; \
                     `workq config check` reads it)",
                    shown(&p)
                )));
            }
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failure::invalid(format!("cannot create {}: {e}", shown(dir))))?;
            }
            std::fs::write(&p, settings::DEFAULT)
                .map_err(|e| Failure::invalid(format!("cannot write {}: {e}", shown(&p))))?;
            output::emit(&format!(
                "wrote {}: every setting with its default, commented out\n",
                shown(&p)
            ))
        }
        ConfigCmd::Check { file } => {
            let p = match file {
                Some(f) => f,
                None => settings::path().ok_or_else(no_dir)?,
            };
            let text = std::fs::read_to_string(&p).map_err(|e| {
                Failure::invalid(if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "no config file at {} (`workq config init` writes one)",
                        shown(&p)
                    )
                } else {
                    format!("cannot read {}: {e}", shown(&p))
                })
            })?;
            let checked = settings::check(
                &text,
                &p.display().to_string(),
                Some(&settings::themes_dir(&p)),
            );
            if json {
                output::Out { json }.json(&serde_json::json!({
                    "file": p.display().to_string(),
                    "problems": checked.problems,
                }))?;
            } else if checked.problems.is_empty() {
                output::emit(&format!("{}: no problems\n", shown(&p)))?;
            } else {
                let mut text = String::new();
                for problem in &checked.problems {
                    text.push_str(&workq::text::escape(problem, false));
                    text.push('\n');
                }
                output::emit(&text)?;
            }
            match checked.problems.len() {
                0 => Ok(()),
                n => Err(Failure::invalid(format!(
                    "{n} problem{} in {} (the console keeps the defaults for those)",
                    if n == 1 { "" } else { "s" },
                    shown(&p)
                ))),
            }
        }
        ConfigCmd::Show => {
            let p = settings::path();
            let (text, problems) = settings::show(p.as_deref());
            for problem in problems {
                output::emit_err(&format!(
                    "warning: {} (its default is shown)\n",
                    workq::text::escape(&problem, false)
                ));
            }
            output::emit(&text)
        }
        ConfigCmd::Theme { name } => match tui::theme::BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => output::emit(text),
            None => Err(Failure::invalid(format!(
                "no built-in theme '{}' (dark or light)",
                workq::text::escape(&name, false)
            ))),
        },
    }
}

/// `workq`: the console on the user's database, created on first use. With `--read-only`
/// it is opened read-only; a file this user cannot write is opened so too, and said.
async fn console(target: &Target, read_only: bool) -> Result<(), Failure> {
    tui::need_terminal().map_err(Failure::usage)?;
    let _guard = tui::init_logging();
    let (conn, notice) = match connect::connect(
        target,
        if read_only {
            Open::ReadOnly
        } else {
            Open::Create
        },
    ) {
        Err(connect::Error::ReadOnlyFile(path)) => (
            connect::connect(target, Open::ReadOnly)?,
            Some(format!(
                "{} is read-only for you: opened for reading, actions hidden",
                path.display()
            )),
        ),
        other => (other?, None),
    };
    tracing::info!("console on {}", conn.label);
    let opts = tui::app::Options {
        source: conn.label,
        read_only: read_only || conn.read_only,
        actor: format!("user:{}", connect::os_user()),
        notice,
    };
    tui::run(conn.backend, opts).await.map_err(Failure::invalid)
}

/// `workq demo`: a fresh demo database with bots working live, and the console on it.
async fn demo(
    target: &Target,
    args: workq::demo::DemoArgs,
    read_only: bool,
) -> Result<(), Failure> {
    tui::need_terminal().map_err(Failure::usage)?;
    let _guard = tui::init_logging();
    let path = workq::demo::fresh_path(target).map_err(Failure::invalid)?;
    let opts = workq::demo::DemoOptions {
        items: args.items,
        live: !args.no_bots,
        ..Default::default()
    };
    let d = workq::demo::start(&path, opts).await?;
    let opts = tui::app::Options {
        source: format!("demo · {}", path.display()),
        read_only,
        actor: format!("user:{}", connect::os_user()),
        notice: None,
    };
    let r = tui::run(Arc::clone(&d.store), opts)
        .await
        .map_err(Failure::invalid);
    drop(d);
    output::emit_err(&format!(
        "the demo database stays at {} (workq --db {} …)\n",
        path.display(),
        path.display()
    ));
    r
}

/// Ends the process the way a Unix tool ends when its reader goes away: by SIGPIPE, which
/// Rust ignores so that writes fail instead (letting `dequeue` hand its leases back first).
fn die_of_sigpipe() -> ! {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action and raising it; nothing else runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}
