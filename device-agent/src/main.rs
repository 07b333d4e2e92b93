//! `gpulut-agent`: see the library for the pieces; this file only wires the CLI to them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gpulut_agent::cli::{Cli, Command, InfoArgs};
use gpulut_agent::info;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => run_info(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_info(args: &InfoArgs) -> anyhow::Result<()> {
    let info = info::collect(args.gpu.backend).context("cannot describe the GPU")?;
    for warning in &info.warnings {
        eprintln!("warning: {warning}");
    }
    let text = if args.json {
        serde_json::to_string_pretty(&info.report).context("cannot encode the report as JSON")?
    } else {
        info::render_table(&info)
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").context("cannot write to stdout")?;
    Ok(())
}
