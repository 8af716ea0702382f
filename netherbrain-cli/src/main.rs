//! The `netherbrain` binary.

use clap::Parser;

/// Netherbrain: a self-hosted agent service.
#[derive(Debug, Parser)]
#[command(name = "netherbrain", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
