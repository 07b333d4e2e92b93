//! `gpulut-agent`: see the library for the pieces; this file only wires the CLI to them.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gpulut_agent::bench::{self, Options, Progress};
use gpulut_agent::cli::{BenchArgs, Cli, Command, EnrollArgs, InfoArgs, RunArgs};
use gpulut_agent::client::Client;
use gpulut_agent::gpu::Gpu;
use gpulut_agent::runner::{RunError, RunOptions};
use gpulut_agent::state::{self as agent_state, Credentials, StateDir};
use gpulut_agent::{host, info, report};
use gpulut_tables::protocol::EnrollRequest;
use gpulut_tables::wire::{BenchReport, TimingProtocol};
use indicatif::{ProgressBar, ProgressStyle};

/// Exit status when some block failed verification or could not run: the results are still
/// printed, but a script must not take them as a clean run.
const EXIT_SOME_FAILED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => run_info(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => run_bench(&args),
        Command::Enroll(args) => enroll(&args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run_worker(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").context("cannot write to stdout")
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
    print(&text)
}

fn protocol(args: &BenchArgs) -> anyhow::Result<TimingProtocol> {
    let positive = |v: f64, flag: &str| {
        anyhow::ensure!(
            v.is_finite() && v >= 0.0,
            "--{flag} must be a non-negative number"
        );
        Ok(v)
    };
    anyhow::ensure!(args.max_runs >= 1, "--max_runs must be at least 1");
    anyhow::ensure!(
        args.target_ci.is_finite() && args.target_ci > 0.0,
        "--target_ci must be a positive fraction, e.g. 0.02"
    );
    Ok(TimingProtocol {
        warmup_runs: args.warmup_runs,
        warmup_min_ms: positive(args.warmup_min_secs, "warmup_min_secs")? * 1e3,
        min_runs: args.num_runs,
        max_runs: args.max_runs,
        max_seconds: positive(args.max_secs, "max_secs")?,
        target_relative_ci: args.target_ci,
        seed: args.seed,
        gpu_timestamps: !args.no_timestamps,
    })
}

fn run_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let protocol = protocol(args)?;
    let space = bench::space(&args.space)?;
    let mut items = Vec::new();
    for key in &args.blocks {
        items.push(bench::block_item(&space, key)?);
    }
    for arch in &args.blocks_of {
        for item in bench::arch_block_items(&space, arch)? {
            if items.iter().all(|i: &bench::Item| i.key != item.key) {
                items.push(item);
            }
        }
    }
    for arch in &args.archs {
        items.push(bench::arch_item(&space, arch)?);
    }
    if items.is_empty() {
        items = bench::space_items(&space);
    }

    let registry = gpulut_agent::adapter::Registry::global();
    let mut adapters = Vec::new();
    for name in args.framework_names() {
        adapters.push(registry.usable(&name).map_err(anyhow::Error::msg)?);
    }

    let gpu = Gpu::open(args.gpu.backend).context("cannot open the GPU")?;
    for warning in &gpu.report().warnings {
        eprintln!("warning: {warning}");
    }
    let fingerprint = info::assemble(host::collect(), gpu.report().clone())
        .report
        .fingerprint;
    let options = Options {
        protocol: protocol.clone(),
        fault: args.inject_fault,
    };
    let mut progress = Bar::new();
    let outcome = bench::run_adapters(&gpu, &items, &adapters, &options, &mut progress);
    let doc = BenchReport {
        agent_version: info::AGENT_VERSION.to_owned(),
        fingerprint,
        space: space.name().to_owned(),
        protocol,
        timestamps_valid: outcome.timestamps_valid,
        results: outcome.results,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&doc).context("cannot encode the results as JSON")?
    } else if args.csv {
        report::render_csv(&doc).trim_end().to_owned()
    } else {
        report::render_table(&doc)
    };
    print(&text)?;
    let failed = doc
        .results
        .iter()
        .filter(|r| !r.verified || r.error.is_some())
        .count();
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} results failed verification or could not run",
            doc.results.len()
        );
        return Ok(ExitCode::from(EXIT_SOME_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit status when the server refuses the agent's credentials: re-enroll.
const EXIT_UNAUTHORIZED: u8 = 3;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn enroll(args: &EnrollArgs) -> anyhow::Result<()> {
    let dir = args
        .state_dir
        .clone()
        .unwrap_or_else(agent_state::default_dir);
    let state = StateDir::open(&dir).context("cannot open the state directory")?;
    let info = info::collect(args.gpu.backend).context("cannot describe the GPU")?;
    let client = Client::new(&args.server, None)?;
    let request = EnrollRequest {
        token: args.token.trim().to_owned(),
        name: args.name.clone(),
        fingerprint: info.report.fingerprint,
        frameworks: gpulut_agent::framework::supported(),
    };
    let answer = runtime()?
        .block_on(client.enroll(&request))
        .context("enrollment failed")?;
    state.save_credentials(&Credentials {
        server: args.server.trim_end_matches('/').to_owned(),
        agent_id: answer.agent_id.clone(),
        device_id: answer.device_id.clone(),
        device_name: answer.device_name.clone(),
        token: answer.token,
        cadence: answer.cadence,
    })?;
    eprintln!(
        "enrolled as device {} ({}), agent {}; credentials in {}",
        answer.device_name,
        answer.device_id,
        answer.agent_id,
        dir.display()
    );
    eprintln!("next: gpulut-agent run --state-dir {}", dir.display());
    Ok(())
}

fn run_worker(args: &RunArgs) -> anyhow::Result<ExitCode> {
    init_logs();
    let dir = args
        .state_dir
        .clone()
        .unwrap_or_else(agent_state::default_dir);
    let state = StateDir::open(&dir).context("cannot open the state directory")?;
    let creds = state.credentials()?;
    let gpu = Gpu::open(args.gpu.backend).context("cannot open the GPU")?;
    for warning in &gpu.report().warnings {
        tracing::warn!("{warning}");
    }
    // Probe the adapters now (subprocesses), not inside the heartbeat's async task.
    for f in gpulut_agent::framework::supported() {
        match &f.detail {
            Some(why) if !f.available => tracing::warn!(framework = %f.name, "unavailable: {why}"),
            _ => tracing::info!(framework = %f.name, version = %f.version, "framework available"),
        }
    }
    let rt = runtime()?;
    let outcome = rt.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: the current job is given back");
            let _ = stop.send(true);
        });
        let options = RunOptions {
            until_idle: args.until_idle,
        };
        gpulut_agent::runner::run(state, creds, std::sync::Arc::new(gpu), options, stopped).await
    });
    // The GPU work of a job given back may still be running on a blocking thread: don't wait.
    rt.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(summary) => {
            tracing::info!(
                jobs = summary.jobs,
                uploads = summary.uploads,
                "agent stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ RunError::Unauthorized(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_UNAUTHORIZED))
        }
        Err(e) => Err(e.into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal so logs and pipes stay clean.
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new() -> Self {
        Self { bar: None }
    }
}

impl Progress for Bar {
    fn stage(&mut self, name: &str, total: u64) {
        if let Some(old) = self.bar.take() {
            old.finish_and_clear();
        }
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn step(&mut self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(what.to_owned());
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
