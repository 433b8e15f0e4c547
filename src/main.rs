//! `workq`: parse the command line, build the backend, hand off.

use clap::Parser;

fn main() {
    let cli = match workq::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are "errors" to clap; scripts asking for JSON get JSON errors.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "--json") => {
            let text = e.to_string();
            workq::cli::Failure::usage(text.trim().trim_start_matches("error: ")).print(true);
            std::process::exit(2);
        }
        // Usage errors quote what was typed: shown escaped, like everything else.
        Err(e) if e.use_stderr() => {
            let text = e.render().to_string();
            workq::cli::output::emit_err(&workq::text::escape(&text, true));
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
    if let Err(f) = rt.block_on(workq::cli::run(cli)) {
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
