//! `gpulut-proof`: load and fault runs against a real gpulut server.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gpulut-proof", about = "Reliability proof tools for gpulut")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load: many simulated agents plus query clients against a running server, then an exact count check.
    Load,
    /// Run simulated agents until stopped, idle or out of time.
    Agents,
    /// Fault injection (not built yet).
    Faults,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Load | Command::Agents => anyhow::bail!("not built yet"),
        Command::Faults => anyhow::bail!("faults: not built yet"),
    }
}
