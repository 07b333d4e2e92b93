//! `gpulut`: see the library for the pieces; this file only parses and reports.

use std::process::ExitCode;

use clap::Parser;
use gpulut_cli::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match gpulut_cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
