//! Fault injection against the real processes: a real `gpulut-server` (and `gpulut-server
//! worker`), simulated agents speaking the real protocol in their own process, a real Postgres.
//! Each scenario starts from a fresh database, fills a campaign while something breaks, and
//! then counts what Postgres holds against what the campaign's jobs asked for: every (job,
//! item) must be stored exactly once, from the attempt that held the job, with every sample.
//! The search scenario compares a resumed search's front with an uninterrupted run's.
//!
//! Expected counts are derived from the jobs themselves (their `items`), never from what the
//! agents claim to have sent, so an agent that lies or double-sends cannot make a run pass.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use tokio::process::Command;
use uuid::Uuid;

use crate::procs::{Proc, free_port, loopback, run_shell};
use crate::proxy::Proxy;

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Postgres restarted (the --pg-restart-cmd) while agents upload.
    PostgresRestart,
    /// The server SIGKILLed during uploads and started again on the same port.
    ServerSigkill,
    /// The agents' process SIGKILLed while holding leases, then started again.
    AgentsKilled,
    /// The network between agents and server cut (a proxy of ours) for --cut-s seconds.
    NetworkCut,
    /// A search worker SIGKILLed mid-search; a new worker resumes it from its checkpoint.
    SearchWorkerKilled,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::PostgresRestart,
        Scenario::ServerSigkill,
        Scenario::AgentsKilled,
        Scenario::NetworkCut,
        Scenario::SearchWorkerKilled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PostgresRestart => "postgres-restart",
            Scenario::ServerSigkill => "server-sigkill",
            Scenario::AgentsKilled => "agents-killed",
            Scenario::NetworkCut => "network-cut",
            Scenario::SearchWorkerKilled => "search-worker-killed",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct FaultsArgs {
    /// The `gpulut-server` binary to run (serve and worker).
    #[arg(long)]
    pub server_bin: PathBuf,
    /// Admin URL of a throwaway Postgres; every scenario creates its own database in it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Shell command (run with `sh -c`) that restarts that Postgres; needed by postgres-restart.
    #[arg(long)]
    pub pg_restart_cmd: Option<String>,
    /// Directory for faults.json, faults.md and the processes' logs.
    #[arg(long)]
    pub out: PathBuf,
    /// Run only these scenarios (comma-separated); default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Simulated agents (one process).
    #[arg(long, default_value_t = 4)]
    pub agents: usize,
    /// Devices the agents run on. One agent per device is the real setup: enrolling a device
    /// again revokes its earlier agents, so agents sharing a device knock each other out.
    #[arg(long, default_value_t = 4)]
    pub devices: usize,
    /// Samples per timed series.
    #[arg(long, default_value_t = 30)]
    pub samples: u32,
    /// Simulated work per job, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub work_ms: u64,
    /// Blocks per job.
    #[arg(long, default_value_t = 2)]
    pub batch_size: usize,
    /// Measure only the first N blocks of the space (default: all of them).
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Job lease length given to agents, in seconds (short, so lost leases expire quickly).
    #[arg(long, default_value_t = 3.0)]
    pub lease_s: f64,
    /// The fault is injected once this share of the campaign's series is stored.
    #[arg(long, default_value_t = 0.3)]
    pub trigger: f64,
    /// How long network-cut cuts the network, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub cut_s: f64,
    /// How long the server stays dead in server-sigkill, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub down_s: f64,
    /// Generations of the interrupted search (with a ~100 ms evaluator, ~0.1 s each).
    #[arg(long, default_value_t = 60)]
    pub generations: u32,
    /// Longest a scenario may take, in seconds.
    #[arg(long, default_value_t = 600)]
    pub scenario_timeout_s: u64,
}

/// Measurement counts of one campaign, from Postgres.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub jobs: i64,
    pub jobs_done: i64,
    pub jobs_failed: i64,
    /// Jobs handed out more than once (attempt > 1).
    pub jobs_reissued: i64,
    pub max_attempt: i32,
    /// Series the jobs ask for: the sum of their items.
    pub expected: i64,
    /// Measurement rows of the campaign's jobs.
    pub stored: i64,
    /// Rows beyond the first for a (job, item).
    pub duplicates: i64,
    /// (job, item) pairs without a row.
    pub lost: i64,
    /// Rows for an item its job did not ask for.
    pub extraneous: i64,
    /// Rows stored by an attempt other than the one that finally held the job.
    pub stale_attempt_rows: i64,
    pub samples: i64,
    /// Samples behind the table entries of the campaign's devices (entries are recomputed from
    /// raw samples, so this must equal `samples`).
    pub entry_samples: i64,
}

/// What one scenario found.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub failures: Vec<String>,
    pub wall_s: f64,
    /// Stored series when the fault was injected (search: generation checkpointed at the kill).
    pub before: Option<i64>,
    /// Stored series right after the fault (search: generation resumed from).
    pub at_fault: Option<i64>,
    /// Stored series at the end (search: final generation).
    pub after: Option<i64>,
    /// Series the jobs ask for (search: members of the uninterrupted front).
    pub expected: Option<i64>,
    /// Distinct (job, item) stored (search: members of the resumed front).
    pub stored: Option<i64>,
    pub duplicates: Option<i64>,
    pub lost: Option<i64>,
    pub counts: Option<Counts>,
    /// Scenario-specific observations (downtime, reissued jobs, proxy and agent statistics).
    pub detail: Value,
}

impl ScenarioReport {
    fn new(s: Scenario) -> Self {
        ScenarioReport {
            scenario: s.name(),
            passed: false,
            failures: Vec::new(),
            wall_s: 0.0,
            before: None,
            at_fault: None,
            after: None,
            expected: None,
            stored: None,
            duplicates: None,
            lost: None,
            counts: None,
            detail: json!({}),
        }
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    fn note(&mut self, key: &str, v: impl Serialize) {
        self.detail[key] = serde_json::to_value(v).unwrap_or(Value::Null);
    }
}

/// Runs the selected scenarios; fails when any of them failed (after writing the reports).
pub fn run(args: FaultsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        tokio::select! {
            r = run_all(args) => r,
            _ = tokio::signal::ctrl_c() => {
                // Dropping run_all's future drops the process guards, which SIGKILL the children.
                bail!("interrupted; child processes killed")
            }
        }
    })
}

async fn run_all(args: FaultsArgs) -> anyhow::Result<()> {
    let mut selected: Vec<Scenario> = if args.only.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.only.clone()
    };
    selected.sort();
    selected.dedup();
    if selected.contains(&Scenario::PostgresRestart) && args.pg_restart_cmd.is_none() {
        bail!(
            "postgres-restart needs --pg-restart-cmd (a shell command that restarts the Postgres behind --database-url); or leave it out with --only"
        );
    }
    if !args.server_bin.is_file() {
        bail!("--server-bin {} is not a file", args.server_bin.display());
    }
    if !(0.0..1.0).contains(&args.trigger) || args.agents == 0 || args.devices == 0 {
        bail!("--trigger must be in [0, 1) and --agents, --devices at least 1");
    }
    std::fs::create_dir_all(args.out.join("logs"))
        .with_context(|| format!("creating {}", args.out.display()))?;
    let args = Arc::new(args);
    let mut reports = Vec::new();
    for s in selected {
        eprintln!("gpulut-proof faults: {} ...", s.name());
        let started = Instant::now();
        let mut report = ScenarioReport::new(s);
        let outcome = tokio::time::timeout(
            Duration::from_secs(args.scenario_timeout_s),
            run_scenario(&args, s, &mut report),
        )
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.failures.push(format!("{e:#}")),
            Err(_) => report.failures.push(format!(
                "did not finish within {} s",
                args.scenario_timeout_s
            )),
        }
        report.wall_s = started.elapsed().as_secs_f64();
        report.passed = report.failures.is_empty();
        eprintln!(
            "gpulut-proof faults: {} {} in {:.1} s{}",
            s.name(),
            if report.passed { "passed" } else { "FAILED" },
            report.wall_s,
            if report.passed {
                String::new()
            } else {
                format!(": {}", report.failures.join("; "))
            }
        );
        reports.push(report);
        write_reports(&args.out, &reports)?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario)
        .collect();
    if !failed.is_empty() {
        bail!(
            "fault scenarios failed: {} (see {})",
            failed.join(", "),
            args.out.join("faults.md").display()
        );
    }
    Ok(())
}

async fn run_scenario(
    args: &Arc<FaultsArgs>,
    s: Scenario,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    match s {
        Scenario::SearchWorkerKilled => search_worker_killed(args, report).await,
        _ => campaign_scenario(args, s, report).await,
    }
}

// ---------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------

fn write_reports(out: &Path, reports: &[ScenarioReport]) -> anyhow::Result<()> {
    let json = json!({
        "passed": reports.iter().all(|r| r.passed),
        "scenarios": reports,
    });
    std::fs::write(
        out.join("faults.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    std::fs::write(out.join("faults.md"), markdown(reports))?;
    Ok(())
}

fn cell(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The `## Faults` section: one row per scenario, then what each row's numbers mean.
pub fn markdown(reports: &[ScenarioReport]) -> String {
    let mut md = String::from("## Faults\n\n");
    md.push_str(
        "| Scenario | Before fault | At fault | After | Expected | Stored | Duplicates | Lost | Wall (s) | Verdict |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in reports {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            r.scenario,
            cell(r.before),
            cell(r.at_fault),
            cell(r.after),
            cell(r.expected),
            cell(r.stored),
            cell(r.duplicates),
            cell(r.lost),
            r.wall_s,
            if r.passed { "pass" } else { "FAIL" },
        );
    }
    md.push_str(
        "\nCampaign scenarios count measurement series in Postgres: before = stored when the fault \
         was injected, at fault = stored right after it, after = stored when the campaign finished; \
         expected = the items of all the campaign's jobs; stored = distinct (job, item) series; \
         duplicates = series stored more than once; lost = items with no series. \
         search-worker-killed counts generations (checkpointed at the kill, resumed from, final) \
         and front members (expected = the uninterrupted run's front, stored = the resumed run's).\n\n",
    );
    for r in reports {
        let _ = writeln!(
            md,
            "- **{}**: {}{}",
            r.scenario,
            summary(&r.detail),
            if r.failures.is_empty() {
                String::new()
            } else {
                format!("; failures: {}", r.failures.join("; "))
            }
        );
    }
    md
}

/// `key value` pairs of a scenario's detail object; objects only when they are short (error
/// tallies, proxy counters), so a line stays readable.
fn summary(detail: &Value) -> String {
    let Some(map) = detail.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| (k, v.to_string()))
        .filter(|(_, v)| v.len() <= 120)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Databases, the server, the API
// ---------------------------------------------------------------------------------------

/// Creates a database for one scenario in the throwaway cluster; returns its URL.
async fn create_database(admin_url: &str, tag: &str) -> anyhow::Result<String> {
    let name = format!(
        "gpulut_faults_{}_{}",
        tag.replace('-', "_"),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connecting to --database-url")?;
    // A generated identifier (ours, [a-z0-9_]): no user input reaches this statement.
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base
        .rsplit_once('/')
        .context("--database-url has no database path")?;
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

const ADMIN_TOKEN: &str = "gpulut-proof-faults-admin-token";

/// How to start the server (and workers) of one scenario; `start` can run again after a kill,
/// on the same port and database.
struct ServerSpec {
    bin: PathBuf,
    database_url: String,
    port: u16,
    lease_s: f64,
    logs: PathBuf,
    starts: usize,
}

impl ServerSpec {
    /// A server of its own for one scenario: a fresh database named after `tag`, a free port.
    async fn fresh(args: &FaultsArgs, tag: &str, logs: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            bin: args.server_bin.clone(),
            database_url: create_database(&args.database_url, tag).await?,
            port: free_port()?,
            lease_s: args.lease_s,
            logs: logs.to_path_buf(),
            starts: 0,
        })
    }

    fn api(&self, http: &reqwest::Client) -> Api {
        Api {
            base: self.base(),
            http: http.clone(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg(sub)
            .env("DATABASE_URL", &self.database_url)
            .env("GPULUT_LOG_FORMAT", "json")
            .env("GPULUT_WORKER_STALE_S", "2")
            .env("RUST_LOG", "info,sqlx=warn,tower_http=warn");
        if sub == "serve" {
            c.env("GPULUT_LISTEN", loopback(self.port).to_string())
                .env("GPULUT_ADMIN_TOKEN", ADMIN_TOKEN)
                // Searches run in a separate `worker` process, which search-worker-killed kills.
                .env("GPULUT_WORKERS", "0")
                .env("GPULUT_HEARTBEAT_S", "1")
                .env("GPULUT_POLL_WAIT_S", "2")
                .env("GPULUT_LEASE_S", self.lease_s.to_string());
        } else {
            c.env("GPULUT_WORKERS", "1");
        }
        c
    }

    /// Starts `serve` and waits until /readyz answers 200.
    async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<Proc> {
        self.starts += 1;
        let log = self.logs.join(format!("server-{}.log", self.starts));
        let mut p = Proc::spawn(
            format!("gpulut-server #{}", self.starts),
            self.command("serve"),
            &log,
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = p.exited() {
                bail!(
                    "{} exited ({s}) before it was ready:\n{}",
                    p.name(),
                    p.log_tail(20)
                );
            }
            if readyz(http, &self.base()).await == Some(200) {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 60 s:\n{}", p.name(), p.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn worker(&self, n: usize) -> anyhow::Result<Proc> {
        Proc::spawn(
            format!("gpulut-server worker #{n}"),
            self.command("worker"),
            &self.logs.join(format!("worker-{n}.log")),
        )
    }
}

/// The status /readyz answers, or None when nothing answers.
async fn readyz(http: &reqwest::Client, base: &str) -> Option<u16> {
    http.get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let r = req
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .with_context(|| what.to_string())?;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what}: {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: answer is not JSON: {body}"))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(
            self.http.get(format!("{}{path}", self.base)),
            &format!("GET {path}"),
        )
        .await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            &format!("POST {path}"),
        )
        .await
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the HTTP client")
}

async fn pool(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("connecting to the scenario's database")
}

// ---------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------

async fn stored(db: &PgPool, campaign: Uuid) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM measurements m JOIN jobs j ON j.id = m.job_id WHERE j.campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    Ok(n)
}

async fn leased(db: &PgPool, campaign: Uuid) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as("SELECT id, attempt FROM jobs WHERE campaign_id = $1 AND state = 'leased'")
        .bind(campaign)
        .fetch_all(db)
        .await
}

/// Everything the verdict needs, straight from the tables.
async fn counts(db: &PgPool, campaign: Uuid, framework: &str) -> anyhow::Result<Counts> {
    let (jobs, expected, jobs_done, jobs_failed, jobs_reissued, max_attempt): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i32,
    ) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(jsonb_array_length(payload->'items')), 0)::bigint,
                count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
                count(*) FILTER (WHERE attempt > 1), coalesce(max(attempt), 0)
         FROM jobs WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    let (stored, distinct, samples, stale_attempt_rows): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (m.job_id, m.kind, m.key)),
                coalesce(sum(cardinality(m.samples_ms)), 0)::bigint,
                count(*) FILTER (WHERE m.attempt IS DISTINCT FROM j.attempt)
         FROM measurements m JOIN jobs j ON j.id = m.job_id WHERE j.campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    let (lost,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM jobs j
             CROSS JOIN LATERAL jsonb_array_elements_text(j.payload->'items') AS it(key)
         WHERE j.campaign_id = $1
           AND NOT EXISTS (SELECT 1 FROM measurements m WHERE m.job_id = j.id AND m.key = it.key)",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    let (extraneous,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM measurements m JOIN jobs j ON j.id = m.job_id
         WHERE j.campaign_id = $1 AND NOT (j.payload->'items' ? m.key)",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    let (entry_samples,): (i64,) = sqlx::query_as(
        "SELECT coalesce(sum(count), 0)::bigint FROM table_entries
         WHERE framework = $2 AND device_id IN (SELECT device_id FROM jobs WHERE campaign_id = $1)",
    )
    .bind(campaign)
    .bind(framework)
    .fetch_one(db)
    .await?;
    Ok(Counts {
        jobs,
        jobs_done,
        jobs_failed,
        jobs_reissued,
        max_attempt,
        expected,
        stored,
        duplicates: stored - distinct,
        lost,
        extraneous,
        stale_attempt_rows,
        samples,
        entry_samples,
    })
}

// ---------------------------------------------------------------------------------------
// Campaign scenarios
// ---------------------------------------------------------------------------------------

const FRAMEWORK: &str = "wgpu-fused";

struct Fleet {
    exe: PathBuf,
    server: String,
    token: String,
    prefix: String,
    logs: PathBuf,
    starts: usize,
}

impl Fleet {
    fn start(&mut self, args: &FaultsArgs) -> anyhow::Result<(Proc, PathBuf)> {
        self.starts += 1;
        let stats = self.logs.join(format!("agents-{}.stats.json", self.starts));
        let mut c = Command::new(&self.exe);
        c.arg("agents")
            .args(["--server", &self.server])
            .args(["--enrollment-token", &self.token])
            .args(["--agents", &args.agents.to_string()])
            .args(["--devices", &args.devices.to_string()])
            .args(["--fingerprint-prefix", &self.prefix])
            .args(["--samples", &args.samples.to_string()])
            .args(["--work-ms", &args.work_ms.to_string()])
            .args(["--seconds", &(args.scenario_timeout_s + 60).to_string()])
            .arg("--stats-json")
            .arg(&stats)
            .env("RUST_LOG", "info");
        let p = Proc::spawn(
            format!("agents #{}", self.starts),
            c,
            &self.logs.join(format!("agents-{}.log", self.starts)),
        )?;
        Ok((p, stats))
    }
}

/// Polls `f` every 100 ms until it returns Some, failing after `timeout` or when a watched
/// process exits.
async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    watched: &mut [&mut Proc],
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        for p in watched.iter_mut() {
            if let Some(s) = p.exited() {
                bail!(
                    "{} exited ({s}) while waiting for {what}:\n{}",
                    p.name(),
                    p.log_tail(20)
                );
            }
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {:.0} s", timeout.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn campaign_scenario(
    args: &Arc<FaultsArgs>,
    s: Scenario,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let logs = args.out.join("logs").join(s.name());
    std::fs::create_dir_all(&logs)?;
    let http = http_client()?;
    let mut spec = ServerSpec::fresh(args, s.name(), &logs).await?;
    let mut server = spec.start(&http).await?;
    let api = spec.api(&http);
    let db = pool(&spec.database_url).await?;

    let label = format!("faults-{}", s.name());
    let token = api
        .post(
            "/v1/enrollment-tokens",
            &json!({"label": label, "max_uses": 10_000, "device_labels": [label]}),
        )
        .await?["token"]
        .as_str()
        .context("the enrollment token answer has no token")?
        .to_string();

    // Agents talk to the server directly, or through the proxy that network-cut cuts.
    let proxy = if s == Scenario::NetworkCut {
        Some(Proxy::start(loopback(spec.port)).await?)
    } else {
        None
    };
    let mut fleet = Fleet {
        exe: std::env::current_exe().context("locating gpulut-proof")?,
        server: proxy.as_ref().map_or_else(|| spec.base(), Proxy::url),
        token,
        prefix: format!(
            "faults-{}-{}",
            s.name(),
            &Uuid::new_v4().simple().to_string()[..6]
        ),
        logs: logs.clone(),
        starts: 0,
    };
    let (mut agents, mut stats_path) = fleet.start(args)?;

    // The campaign can only be made once the devices exist and report the framework.
    let want = args.devices;
    let devices = wait_for(
        "the agents' devices to enroll",
        Duration::from_secs(60),
        &mut [&mut agents, &mut server],
        || async {
            let d = api.get("/v1/devices").await.ok()?;
            let n = d.as_array()?.len();
            (n >= want).then_some(n)
        },
    )
    .await?;
    report.note("devices", devices);
    let blocks = match args.blocks {
        None => Value::Null,
        Some(n) => {
            let all = api.get("/v1/spaces/moga-mbv3/blocks").await?;
            let keys: Vec<Value> = all["blocks"]
                .as_array()
                .context("the blocks answer has no blocks")?
                .iter()
                .take(n)
                .map(|b| b["key"].clone())
                .collect();
            Value::Array(keys)
        }
    };
    let mut body = json!({"space": "moga-mbv3", "device": {"labels": [label]},
        "frameworks": [FRAMEWORK], "batch_size": args.batch_size, "force": true});
    if !blocks.is_null() {
        body["blocks"] = blocks;
    }
    let campaign: Uuid = api.post("/v1/campaigns", &body).await?["id"]
        .as_str()
        .context("the campaign answer has no id")?
        .parse()?;
    report.note("campaign", campaign);
    let expected = counts(&db, campaign, FRAMEWORK).await?.expected;
    report.expected = Some(expected);
    let trigger = ((expected as f64) * args.trigger).ceil().max(1.0) as i64;

    // Wait for the moment of the fault: enough stored, and (for the agents' kill) leases held.
    let need_leases = s == Scenario::AgentsKilled;
    let before = wait_for(
        "the fault's trigger point",
        Duration::from_secs(args.scenario_timeout_s),
        &mut [&mut agents, &mut server],
        || async {
            let n = stored(&db, campaign).await.ok()?;
            if need_leases && leased(&db, campaign).await.ok()?.is_empty() && n < expected {
                return None;
            }
            (n >= trigger).then_some(n)
        },
    )
    .await?;
    report.before = Some(before);
    report.check(before < expected, || {
        format!(
            "the campaign finished ({before} of {expected} series) before the fault: make it longer (--work-ms, --batch-size)"
        )
    });
    let fault_started = Instant::now();

    match s {
        Scenario::PostgresRestart => {
            let cmd = args.pg_restart_cmd.clone().unwrap_or_default();
            // Watch readiness while Postgres goes away and comes back.
            let watch_http = http.clone();
            let base = spec.base();
            let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
            let watcher = tokio::spawn(async move {
                let mut statuses: Vec<(Option<u16>, f64)> = Vec::new();
                loop {
                    let t = Instant::now();
                    let status = readyz(&watch_http, &base).await;
                    statuses.push((status, t.elapsed().as_secs_f64()));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop_rx.changed() => break,
                    }
                }
                statuses
            });
            run_shell(&cmd, Duration::from_secs(120)).await?;
            let restarted_after = fault_started.elapsed().as_secs_f64();
            report.at_fault = stored(&db, campaign).await.ok();
            let ready = wait_for(
                "/readyz to answer 200 after the Postgres restart",
                Duration::from_secs(60),
                &mut [&mut server],
                || async { (readyz(&http, &spec.base()).await == Some(200)).then_some(()) },
            )
            .await;
            let _ = stop_tx.send(true);
            let statuses = watcher.await.unwrap_or_default();
            ready?;
            report.note("pg_restart_s", round2(restarted_after));
            report.note(
                "readyz_200_after_s",
                round2(fault_started.elapsed().as_secs_f64()),
            );
            report.note(
                "readyz_not_200_seen",
                statuses.iter().filter(|s| s.0 != Some(200)).count(),
            );
            report.note(
                "readyz_slowest_s",
                round2(statuses.iter().map(|s| s.1).fold(0.0, f64::max)),
            );
            report.check(server.exited().is_none(), || {
                "the server exited after the Postgres restart".into()
            });
        }
        Scenario::ServerSigkill => {
            let status = server.sigkill().await?;
            report.at_fault = stored(&db, campaign).await.ok();
            report.note("server_exit", status.to_string());
            tokio::time::sleep(Duration::from_secs_f64(args.down_s)).await;
            server = spec.start(&http).await?;
            report.note(
                "server_back_after_s",
                round2(fault_started.elapsed().as_secs_f64()),
            );
        }
        Scenario::AgentsKilled => {
            let held = leased(&db, campaign).await?;
            agents.sigkill().await?;
            report.at_fault = stored(&db, campaign).await.ok();
            report.note("leases_held_at_kill", held.len());
            // Start again at once: the new agents must not get the dead ones' jobs before
            // those leases run out, and then get them with the next attempt.
            let (a, p) = fleet.start(args)?;
            agents = a;
            stats_path = p;
            let held_ids: Vec<Uuid> = held.iter().map(|h| h.0).collect();
            let reissued = wait_for(
                "the killed agents' jobs to be handed out again",
                Duration::from_secs_f64(args.lease_s * 4.0 + 60.0),
                &mut [&mut agents, &mut server],
                || async {
                    let rows: Vec<(Uuid, i32, String)> =
                        sqlx::query_as("SELECT id, attempt, state FROM jobs WHERE id = ANY($1)")
                            .bind(&held_ids)
                            .fetch_all(&db)
                            .await
                            .ok()?;
                    let again = rows
                        .iter()
                        .filter(|(id, attempt, _)| held.iter().any(|(h, a)| h == id && attempt > a))
                        .count();
                    (again == held.len()).then_some(again)
                },
            )
            .await?;
            report.note("held_jobs_reissued", reissued);
            report.note(
                "reissued_within_s",
                round2(fault_started.elapsed().as_secs_f64()),
            );
        }
        Scenario::NetworkCut => {
            let proxy = proxy
                .as_ref()
                .context("network-cut runs behind the proxy")?;
            proxy.cut(Duration::from_secs_f64(args.cut_s)).await;
            report.at_fault = stored(&db, campaign).await.ok();
            report.note("cut_s", args.cut_s);
            report.note("proxy", proxy.stats());
        }
        Scenario::SearchWorkerKilled => unreachable!("not a campaign scenario"),
    }

    // Fewer rows right after the fault than before it: commits the crash took back (a
    // throwaway cluster runs without fsync and synchronous commit). The jobs' states are
    // rolled back in the same transactions, so those items must be measured again.
    if let Some(at) = report.at_fault.filter(|&at| at < before) {
        report.note("rows_rolled_back_by_fault", before - at);
    }

    // The campaign must now finish by itself.
    let finished = wait_for(
        "the campaign to finish",
        Duration::from_secs(args.scenario_timeout_s),
        &mut [&mut agents, &mut server],
        || async {
            let c = api.get(&format!("/v1/campaigns/{campaign}")).await.ok()?;
            ["done", "failed", "cancelled"]
                .contains(&c["state"].as_str()?)
                .then_some(c)
        },
    )
    .await?;
    report.note(
        "recovered_in_s",
        round2(fault_started.elapsed().as_secs_f64()),
    );
    let stop = agents.stop(Duration::from_secs(45)).await?;
    let agent_stats: Value = std::fs::read_to_string(&stats_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    report.note("agents_exit", stop.to_string());
    if let Some(proxy) = &proxy {
        report.note("proxy", proxy.stats());
    }
    for k in [
        "uploads_acked",
        "uploads_duplicate",
        "fenced_dropped",
        "retries",
        "pending_at_exit",
    ] {
        if !agent_stats[k].is_null() {
            report.note(&format!("agents_{k}"), agent_stats[k].clone());
        }
    }
    report.note("agent_errors", agent_stats["errors"].clone());

    let c = counts(&db, campaign, FRAMEWORK).await?;
    report.after = Some(c.stored);
    report.stored = Some(c.stored - c.duplicates);
    report.duplicates = Some(c.duplicates);
    report.lost = Some(c.lost);
    report.note("jobs_reissued", c.jobs_reissued);
    report.note("max_attempt", c.max_attempt);

    let progress = &finished["progress"];
    report.check(finished["state"] == "done", || {
        format!(
            "campaign ended {} ({})",
            finished["state"], finished["failure_reason"]
        )
    });
    report.check(
        progress["items"].as_i64() == Some(expected)
            && progress["items_done"].as_i64() == Some(expected)
            && progress["failed"].as_i64() == Some(0),
        || format!("API progress {progress} does not show {expected} items done"),
    );
    report.check(c.expected == expected, || {
        format!(
            "the jobs' items changed: {} now, {expected} at creation",
            c.expected
        )
    });
    report.check(c.stored == expected, || {
        format!("{} series stored, {expected} expected", c.stored)
    });
    report.check(c.duplicates == 0, || {
        format!("{} series stored twice", c.duplicates)
    });
    report.check(c.lost == 0, || format!("{} items lost", c.lost));
    report.check(c.extraneous == 0, || {
        format!(
            "{} series for items their job did not ask for",
            c.extraneous
        )
    });
    report.check(c.stale_attempt_rows == 0, || {
        format!(
            "{} series stored by a stale attempt (fencing failed)",
            c.stale_attempt_rows
        )
    });
    report.check(c.jobs_done == c.jobs && c.jobs_failed == 0, || {
        format!(
            "{} of {} jobs done, {} failed",
            c.jobs_done, c.jobs, c.jobs_failed
        )
    });
    let want_samples = c.stored * i64::from(args.samples);
    report.check(c.samples == want_samples, || {
        format!(
            "{} samples stored, {} series x {} = {want_samples} expected",
            c.samples, c.stored, args.samples
        )
    });
    report.check(c.entry_samples == c.samples, || {
        format!(
            "the table entries count {} samples, the measurements hold {}",
            c.entry_samples, c.samples
        )
    });
    if s == Scenario::AgentsKilled {
        report.check(c.jobs_reissued > 0, || {
            "no job was handed out a second time after the kill".into()
        });
    }
    if !agent_stats.is_null() {
        report.check(agent_stats["pending_at_exit"].as_i64() == Some(0), || {
            format!(
                "the agents exited with {} results unacknowledged",
                agent_stats["pending_at_exit"]
            )
        });
    } else {
        report.failures.push(format!(
            "the agents wrote no statistics to {}",
            stats_path.display()
        ));
    }
    report.counts = Some(c);
    let _ = server.stop(Duration::from_secs(15)).await;
    db.close().await;
    check_server_errors(report, &logs);
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Server error answers (status -> count) in the server logs of a scenario, from the request
/// tracing's failure lines. 503 is the honest answer while Postgres is away; 500 means an
/// internal error escaped, which a fault must never cause.
fn server_errors(logs: &Path) -> std::collections::BTreeMap<u16, usize> {
    let mut found = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(logs) else {
        return found;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("server-") || name.starts_with("worker-")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(c) = v["fields"]["classification"].as_str() else {
                continue;
            };
            if let Some(code) = c
                .strip_prefix("Status code: ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u16>().ok())
            {
                *found.entry(code).or_insert(0) += 1;
            }
        }
    }
    found
}

/// Notes the server's 5xx answers and fails the scenario on any 500.
fn check_server_errors(report: &mut ScenarioReport, logs: &Path) {
    let errors = server_errors(logs);
    let internal = errors.get(&500).copied().unwrap_or(0);
    report.note("server_5xx", &errors);
    report.check(internal == 0, || {
        format!(
            "the server answered 500 (internal error) {internal} times; see {}",
            logs.display()
        )
    });
}

// ---------------------------------------------------------------------------------------
// The search worker
// ---------------------------------------------------------------------------------------

/// A stand-in for a user's accuracy service: deterministic in the choices and slow enough
/// (`delay` per batch) that a search lasts long enough to be interrupted. Returns its URL.
async fn evaluator(delay: Duration) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::Json;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/",
        post(move |Json(body): Json<Value>| async move {
            tokio::time::sleep(delay).await;
            let acc: Vec<f64> = body["archs"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    a["choices"]
                        .as_array()
                        .map(|c| c.as_slice())
                        .unwrap_or_default()
                        .iter()
                        .enumerate()
                        .map(|(l, x)| {
                            ((x.as_u64().unwrap_or(0) * 7 + l as u64 * 3) % 12) as f64 * 0.04
                        })
                        .sum::<f64>()
                        + 70.0
                })
                .collect();
            Json(json!({ "accuracy": acc }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/"), task))
}

/// The generation the worker's log says it resumed from ("resuming from checkpoint").
fn resumed_generation(log: &Path, search: &str) -> Option<i64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["fields"]["message"] == "resuming from checkpoint"
                && v["fields"]["search"].as_str() == Some(search)
        })
        .and_then(|v| v["fields"]["generation"].as_i64())
}

async fn search_worker_killed(
    args: &Arc<FaultsArgs>,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let logs = args
        .out
        .join("logs")
        .join(Scenario::SearchWorkerKilled.name());
    std::fs::create_dir_all(&logs)?;
    let http = http_client()?;
    let mut spec = ServerSpec::fresh(args, "search", &logs).await?;
    let mut server = spec.start(&http).await?;
    let api = spec.api(&http);

    // A latency table through the import endpoint: a value per block, derived from its MACs.
    let device = api
        .post("/v1/devices", &json!({"name": "faults-search-phone"}))
        .await?["id"]
        .as_str()
        .context("the device answer has no id")?
        .to_string();
    let blocks = api.get("/v1/spaces/moga-mbv3/blocks").await?;
    let rows: Vec<Value> = blocks["blocks"]
        .as_array()
        .context("the blocks answer has no blocks")?
        .iter()
        .map(|b| {
            let macs = b["macs"].as_f64().unwrap_or(0.0);
            json!({"key": b["key"], "ms": 0.02 + macs / 2.0e8})
        })
        .collect();
    let framework = "faults-import";
    api.post(
        &format!("/v1/tables/{device}/{framework}/import"),
        &json!({"space": "moga-mbv3", "framework_version": "1", "tool": "gpulut-proof faults", "rows": rows}),
    )
    .await?;
    report.note("table_rows", rows.len());

    let (url, _eval) = evaluator(Duration::from_millis(60)).await?;
    let request = json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": framework}],
        "accuracy": {"kind": "http", "url": url}, "population": 16,
        "generations": args.generations, "seed": 20261203});
    let interrupted = api.post("/v1/searches", &request).await?["id"]
        .as_str()
        .context("the search answer has no id")?
        .to_string();
    let kill_at = (i64::from(args.generations) / 4).max(2);
    let mut w1 = spec.worker(1)?;
    let at_kill = wait_for(
        "the search to checkpoint a few generations",
        Duration::from_secs(120),
        &mut [&mut w1, &mut server],
        || async {
            let s = api.get(&format!("/v1/searches/{interrupted}")).await.ok()?;
            let g = s["generation"].as_i64()?;
            (g >= kill_at || s["state"] != "running" && s["state"] != "queued").then_some(s)
        },
    )
    .await?;
    w1.sigkill().await?;
    let killed_status = api.get(&format!("/v1/searches/{interrupted}")).await?;
    let g_kill = killed_status["generation"].as_i64().unwrap_or(-1);
    report.before = Some(g_kill);
    report.check(killed_status["state"] == "running", || {
        format!(
            "the search was {} at the kill (generation {g_kill}, seen {}): make it longer (--generations)",
            killed_status["state"], at_kill["generation"]
        )
    });
    let fault = Instant::now();

    let mut w2 = spec.worker(2)?;
    let done = |id: String| {
        let api = &api;
        async move {
            let s = api.get(&format!("/v1/searches/{id}")).await.ok()?;
            ["done", "failed", "cancelled"]
                .contains(&s["state"].as_str()?)
                .then_some(s)
        }
    };
    let a = wait_for(
        "the interrupted search to finish on the new worker",
        Duration::from_secs(args.scenario_timeout_s),
        &mut [&mut w2, &mut server],
        || done(interrupted.clone()),
    )
    .await?;
    report.note(
        "resumed_and_done_in_s",
        round2(fault.elapsed().as_secs_f64()),
    );
    let resumed = resumed_generation(w2.log(), &interrupted);
    report.at_fault = resumed;
    report.after = a["generation"].as_i64();

    let uninterrupted = api.post("/v1/searches", &request).await?["id"]
        .as_str()
        .context("the search answer has no id")?
        .to_string();
    let b = wait_for(
        "the uninterrupted search to finish",
        Duration::from_secs(args.scenario_timeout_s),
        &mut [&mut w2, &mut server],
        || done(uninterrupted.clone()),
    )
    .await?;
    let fa = api
        .get(&format!("/v1/searches/{interrupted}/front"))
        .await?;
    let fb = api
        .get(&format!("/v1/searches/{uninterrupted}/front"))
        .await?;
    let members = |f: &Value| -> Vec<String> {
        f["front"]
            .as_array()
            .map(|a| a.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default()
    };
    let (ma, mb) = (members(&fa), members(&fb));
    let set_a: BTreeSet<&String> = ma.iter().collect();
    let set_b: BTreeSet<&String> = mb.iter().collect();
    report.expected = Some(mb.len() as i64);
    report.stored = Some(set_a.len() as i64);
    report.duplicates = Some((ma.len() - set_a.len()) as i64);
    report.lost = Some(set_b.difference(&set_a).count() as i64);
    report.note("generations", args.generations);
    report.note("checkpointed_at_kill", g_kill);
    report.note("resumed_from_generation", resumed);
    report.note("front_members", ma.len());

    report.check(a["state"] == "done" && b["state"] == "done", || {
        format!(
            "searches ended {} ({}) and {} ({})",
            a["state"], a["failure_reason"], b["state"], b["failure_reason"]
        )
    });
    report.check(!ma.is_empty(), || "the resumed front is empty".into());
    // serde_json's maps are ordered by key, so equal text is equal canonical JSON.
    let canonical_a = serde_json::to_string(&fa["front"])?;
    let canonical_b = serde_json::to_string(&fb["front"])?;
    report.note("front_json_bytes", canonical_a.len());
    report.check(canonical_a == canonical_b, || {
        format!(
            "the resumed front differs from the uninterrupted one ({} vs {} members, {} missing)",
            ma.len(),
            mb.len(),
            set_b.difference(&set_a).count()
        )
    });
    report.check(a["hypervolume"] == b["hypervolume"], || {
        "the hypervolume histories differ".into()
    });
    match resumed {
        Some(g) => report.check(
            g >= g_kill && g >= 1 && g < i64::from(args.generations),
            || format!("resumed from generation {g}, but {g_kill} was checkpointed at the kill"),
        ),
        None => report.failures.push(format!(
            "the new worker's log ({}) has no \"resuming from checkpoint\" line for the search",
            w2.log().display()
        )),
    }
    let _ = w2.stop(Duration::from_secs(10)).await;
    let _ = server.stop(Duration::from_secs(15)).await;
    check_server_errors(report, &logs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_one_row_per_scenario() {
        let mut a = ScenarioReport::new(Scenario::ServerSigkill);
        a.passed = true;
        a.before = Some(10);
        a.expected = Some(40);
        let mut b = ScenarioReport::new(Scenario::NetworkCut);
        b.failures.push("2 items lost".into());
        let md = markdown(&[a, b]);
        assert!(md.starts_with("## Faults\n"));
        assert!(md.contains("| server-sigkill | 10 | - | - | 40 |"));
        assert!(md.contains("| network-cut |"));
        assert!(md.contains("FAIL"));
        assert!(md.contains("2 items lost"));
    }
}
