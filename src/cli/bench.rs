//! `workq bench`: the engine against a bare-SQLite baseline, measured in the same run.

use super::output::Failure;
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Rows in the import benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
}

pub async fn run(_a: BenchArgs) -> Result<(), Failure> {
    Err(Failure::invalid("bench: not yet"))
}
