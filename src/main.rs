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
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(f) = rt.block_on(workq::cli::run(cli)) {
        f.print(json);
        std::process::exit(f.code);
    }
}
