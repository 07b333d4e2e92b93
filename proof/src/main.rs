//! `gpulut-proof`: load and fault runs against a real gpulut server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gpulut_proof::agent::{AgentOptions, AgentStats, Fleet};
use gpulut_proof::load::LoadArgs;

#[derive(Parser)]
#[command(name = "gpulut-proof", about = "Reliability proof tools for gpulut")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Many simulated agents plus query clients against a running server for a bounded time,
    /// then an exact count check against the database; non-zero exit on errors or a mismatch.
    Load(LoadArgs),
    /// Run simulated agents until SIGTERM/SIGINT, idle or out of time; writes stats JSON.
    Agents(AgentsArgs),
    /// Fault injection against real processes (Postgres restart, server and agent kills, a
    /// network cut, a search worker kill), with exact measurement counts; non-zero exit when a
    /// scenario fails.
    Faults(gpulut_proof::faults::FaultsArgs),
}

#[derive(clap::Args)]
struct AgentsArgs {
    #[arg(long)]
    server: String,
    #[arg(long, env = "GPULUT_ENROLLMENT_TOKEN", hide_env_values = true)]
    enrollment_token: String,
    #[arg(long, default_value_t = 1)]
    agents: usize,
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Device i gets hardware id `{prefix}-{i}`.
    #[arg(long, default_value = "proof")]
    fingerprint_prefix: String,
    #[arg(long, default_value_t = 30)]
    samples: usize,
    #[arg(long, default_value_t = 100)]
    work_ms: u64,
    /// Longest claim long poll to ask for (default: the server's cadence).
    #[arg(long)]
    claim_wait_s: Option<f64>,
    /// Stop after this many seconds with no job claimed or in hand.
    #[arg(long, conflicts_with = "seconds")]
    until_idle_s: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn write_stats(path: &PathBuf, stats: &AgentStats) -> anyhow::Result<()> {
    // Temp file and rename: a reader never sees half a document.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(stats)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    let mut opts = AgentOptions::new(
        &args.server,
        &args.enrollment_token,
        args.agents,
        args.devices,
    );
    opts.fingerprint_prefix = args.fingerprint_prefix;
    opts.samples = args.samples;
    opts.work_ms = args.work_ms;
    opts.claim_wait_s = args.claim_wait_s;
    if args.devices < args.agents {
        tracing::warn!(
            "{} agents on {} devices: the server keeps one live agent per device (enrolling revokes \
             the device's earlier agent), so only {} will keep running",
            args.agents,
            args.devices,
            args.devices
        );
    }
    let fleet = Fleet::spawn(opts)?;
    let started = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = tokio::signal::ctrl_c() => break "SIGINT",
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if let Some(s) = args.seconds
            && started.elapsed().as_secs_f64() >= s
        {
            break "time";
        }
        if let Some(s) = args.until_idle_s
            && fleet.idle_for().as_secs_f64() >= s
        {
            break "idle";
        }
        if fleet.finished() {
            break "every agent stopped";
        }
    };
    tracing::info!(reason, "stopping the simulated agents");
    let stats = fleet.shutdown(Duration::from_secs(30)).await;
    if let Some(path) = &args.stats_json {
        write_stats(path, &stats)?;
    }
    eprintln!(
        "agents: {} enrolled, {} jobs claimed, {} uploads acknowledged ({} duplicates), {} series, {} samples, {} retries, {} fenced, {} pending at exit",
        stats.enrolled,
        stats.jobs_claimed,
        stats.uploads_acked,
        stats.uploads_duplicate,
        stats.series_stored,
        stats.samples_acked,
        stats.retries,
        stats.fenced_dropped,
        stats.pending_at_exit
    );
    Ok(())
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Load(args) => {
            let report = runtime()?.block_on(gpulut_proof::load::run(&args))?;
            println!("{}", gpulut_proof::report::markdown(&report));
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Agents(args) => {
            runtime()?.block_on(agents(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Faults(args) => {
            gpulut_proof::faults::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
