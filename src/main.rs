//! `workq`: parse the command line, build the backend, hand off. The one place that knows
//! every front end: the console, the scripting commands, the demo and the bench each get
//! their backend from `workq::connect` and never call one another.

use clap::Parser;
use std::sync::Arc;
use workq::cli::{output, Cli, Command, Failure};
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
            // A file of this machine, never a server to serve again.
            let db = connect::local_path(&target)?.display().to_string();
            let conn = connect::connect(&target, connect::Open::Create)?;
            workq::server::serve(conn.backend, args, db)
                .await
                .map_err(Failure::invalid)
        }
        Some(command) => {
            let open = command.opens(cli.read_only)?;
            let conn = connect::connect(&target, open)?;
            workq::cli::run(command, &*conn.backend, cli.json).await
        }
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
