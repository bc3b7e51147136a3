//! `warren-sim`: the simulator's command line on its own (the same as
//! `warren sim`, without the runtimes the main binary links).

use std::process::ExitCode;

use clap::Parser;
use warren_sim::cli::{execute, SimCommand};

/// The deterministic simulator of warren.
#[derive(Parser)]
#[command(
    name = "warren-sim",
    about = "warren's deterministic simulator (the same commands as `warren sim`)"
)]
struct Cli {
    #[command(subcommand)]
    command: SimCommand,
}

fn main() -> ExitCode {
    execute(&Cli::parse().command)
}
