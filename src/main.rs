//! `workq`: parse the command line, build the backend, hand off.

use clap::Parser;

fn main() {
    let cli = workq::cli::Cli::parse();
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
