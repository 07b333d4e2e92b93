//! The load run: many simulated agents and a few query clients against one running server for a
//! bounded time, then an exact check that what the server acknowledged is what the database
//! holds. Everything is set up through the public API (an enrollment token, devices by
//! enrollment, campaigns); the database is only read, at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gpulut_tables::space::{MOGA_MBV3, SearchSpace};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::agent::{AgentOptions, FRAMEWORK, Fleet};
use crate::report::{CountCheck, LoadReport, markdown};
use crate::stats::{Outcome, Recorder};

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the running server.
    #[arg(long)]
    pub server: String,
    /// An admin bearer token (the bootstrap token or an admin API key).
    #[arg(long, env = "GPULUT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// The server's database, read at the end to count what was stored.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Distinct simulated devices (default: one per agent). The server keeps one live agent per
    /// device (enrolling revokes the device's earlier agent), so fewer devices than agents
    /// would leave only one agent per device running: refused.
    #[arg(long)]
    pub devices: Option<usize>,
    /// How long the load runs once set up.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Clients reading tables and asking for predictions meanwhile.
    #[arg(long, default_value_t = 8)]
    pub query_clients: usize,
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    #[arg(long, default_value_t = 100)]
    pub work_ms: u64,
    /// Blocks per job.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Where load.json and load.md go.
    #[arg(long)]
    pub out: PathBuf,
    /// Hardware id prefix of the simulated devices; default: unique per run.
    #[arg(long)]
    pub fingerprint_prefix: Option<String>,
}

/// The admin's side: setup requests and campaign top-ups (not part of the figures).
struct Admin {
    client: reqwest::Client,
    server: String,
    token: String,
}

impl Admin {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// A campaign over every device with the load's label: each gets its own jobs.
    async fn campaign(&self, label: &str, batch: usize) -> anyhow::Result<(String, i64)> {
        let c = self
            .post(
                "/v1/campaigns",
                &json!({"space": MOGA_MBV3, "device": {"labels": [label]}, "frameworks": [FRAMEWORK],
                        "batch_size": batch, "force": true}),
            )
            .await?;
        let id = c["id"].as_str().context("campaign without id")?.to_string();
        Ok((id, c["progress"]["jobs"].as_i64().unwrap_or(0)))
    }
}

/// Architectures the query clients predict: the space's reference networks and seeded random
/// ones, as the API takes them (names and choice lists).
fn prediction_archs() -> Vec<Value> {
    let space = SearchSpace::moga_mbv3();
    let mut archs: Vec<Value> = space
        .references()
        .names()
        .into_iter()
        .map(Value::from)
        .collect();
    let choices = space.choices().len();
    for c in gpulut_tables::sample::random_choices(space.layers().len(), choices, 16, 7) {
        archs.push(json!({ "choices": c }));
    }
    archs
}

async fn query_client(
    server: String,
    token: String,
    fleet: Arc<Fleet>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    archs: Arc<Vec<Value>>,
) {
    let client = reqwest::Client::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let devices = fleet.measured_devices();
        if devices.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let device = &devices[rand::rng().random_range(0..devices.len())];
        n += 1;
        let (endpoint, req) = if n % 2 == 0 {
            (
                "table_get",
                client.get(format!("{server}/v1/tables/{device}/{FRAMEWORK}")),
            )
        } else {
            let start = rand::rng().random_range(0..archs.len());
            let pick: Vec<Value> = (0..4)
                .map(|k| archs[(start + k) % archs.len()].clone())
                .collect();
            (
                "predict",
                client
                    .post(format!("{server}/v1/tables/{device}/{FRAMEWORK}/predict"))
                    .json(&json!({"space": MOGA_MBV3, "archs": pick})),
            )
        };
        let t = Instant::now();
        let r = req
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let outcome = match r {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(_) => Outcome::from_status(status, &[]),
                    Err(_) => Outcome::Transport,
                }
            }
            Err(_) => Outcome::Transport,
        };
        recorder.record(endpoint, t.elapsed(), outcome);
    }
}

/// Counts what the database holds for the campaigns (read-only).
async fn db_counts(database_url: &str, campaigns: &[String]) -> anyhow::Result<(u64, u64, u64)> {
    let ids: Vec<uuid::Uuid> = campaigns
        .iter()
        .map(|c| uuid::Uuid::parse_str(c))
        .collect::<Result<_, _>>()?;
    let mut conn = PgConnection::connect(database_url)
        .await
        .context("connecting to the database")?;
    let (series, samples): (i64, i64) = sqlx::query_as(
        "SELECT count(*)::bigint, COALESCE(sum(cardinality(m.samples_ms)), 0)::bigint
         FROM measurements m JOIN jobs j ON j.id = m.job_id
         WHERE j.campaign_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&mut conn)
    .await?;
    let (done,): (i64,) = sqlx::query_as(
        "SELECT count(*)::bigint FROM jobs WHERE campaign_id = ANY($1) AND state = 'done'",
    )
    .bind(&ids)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await.ok();
    Ok((series as u64, samples as u64, done as u64))
}

/// Runs the load and writes its report; the report says whether it passed.
pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let server = args.server.trim_end_matches('/').to_string();
    let admin = Admin {
        client: reqwest::Client::new(),
        server: server.clone(),
        token: args.admin_token.clone(),
    };
    let devices = args.devices.unwrap_or(args.agents).max(1);
    if devices < args.agents {
        bail!(
            "{} agents need {} devices: the server keeps one live agent per device (enrolling \
             revokes the device's earlier agent)",
            args.agents,
            args.agents
        );
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let label = format!("proof-load-{run_id}");
    let token = admin
        .post(
            "/v1/enrollment-tokens",
            &json!({"label": label, "max_uses": args.agents + 1, "device_labels": [label]}),
        )
        .await
        .context("creating the enrollment token")?;
    let token = token["token"].as_str().context("no token")?.to_string();
    let prefix = args
        .fingerprint_prefix
        .clone()
        .unwrap_or_else(|| format!("load-{run_id}"));
    let mut opts = AgentOptions::new(&server, &token, args.agents, devices);
    opts.fingerprint_prefix = prefix;
    opts.samples = args.samples;
    opts.work_ms = args.work_ms;
    tracing::info!(
        agents = args.agents,
        devices,
        "starting the simulated agents"
    );
    let fleet = Arc::new(Fleet::spawn(opts)?);

    // Every agent enrolled: the devices exist and report the framework.
    let t = Instant::now();
    while fleet.counters().enrolled.load(Ordering::SeqCst) < args.agents as u64 {
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {} agents enrolled within 120 s",
                fleet.counters().enrolled.load(Ordering::SeqCst),
                args.agents
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let device_ids = fleet.device_ids();
    if device_ids.len() != devices {
        bail!(
            "{} agents enrolled into {} devices, not {devices}",
            args.agents,
            device_ids.len()
        );
    }
    tracing::info!(after_s = t.elapsed().as_secs_f64(), "all agents enrolled");

    // Campaigns: one over all the load's devices to start, another whenever the newest has
    // fewer queued jobs left than there are devices.
    let mut campaigns: Vec<String> = Vec::new();
    let (first, jobs) = admin.campaign(&label, args.batch_size).await?;
    if jobs < devices as i64 {
        bail!("campaign {first} has {jobs} jobs for {devices} devices");
    }
    campaigns.push(first);
    tracing::info!(
        jobs,
        after_s = t.elapsed().as_secs_f64(),
        "first campaign created"
    );

    let recorder = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    let archs = Arc::new(prediction_archs());
    let mut queries = Vec::new();
    for _ in 0..args.query_clients {
        queries.push(tokio::spawn(query_client(
            server.clone(),
            args.admin_token.clone(),
            fleet.clone(),
            recorder.clone(),
            stop.clone(),
            archs.clone(),
        )));
    }
    // The feeder tops up in the background, so a slow campaign creation (thousands of jobs
    // inserted under load) neither stretches the timed part nor is cut off half-way: it is
    // awaited after the agents stopped and its campaign counted.
    let feeder_stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = feeder_stop.clone();
        let label = label.clone();
        let batch = args.batch_size;
        tokio::spawn(async move {
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        return (campaigns, errors);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let newest = campaigns.last().cloned().unwrap_or_default();
                let queued = match admin.get(&format!("/v1/campaigns/{newest}")).await {
                    Ok(v) => v["progress"]["queued"].as_i64().unwrap_or(0),
                    Err(e) => {
                        tracing::warn!("reading campaign {newest}: {e:#}");
                        errors += 1;
                        continue;
                    }
                };
                if queued < devices as i64 {
                    match admin.campaign(&label, batch).await {
                        Ok((id, _)) => campaigns.push(id),
                        Err(e) => {
                            tracing::warn!("topping up: {e:#}");
                            errors += 1;
                        }
                    }
                }
            }
            (campaigns, errors)
        })
    };
    let load_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let load_elapsed = load_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    feeder_stop.store(true, Ordering::Relaxed);
    for q in queries {
        q.await.ok();
    }
    tracing::info!("stopping the agents");
    let fleet = Arc::try_unwrap(fleet).map_err(|_| anyhow::anyhow!("the fleet is still shared"))?;
    let agent_stats = fleet.shutdown(Duration::from_secs(60)).await;
    let (campaigns, feeder_errors) = feeder.await?;

    let campaign_ids = campaigns;
    let (db_series, db_samples, db_done) = db_counts(&args.database_url, &campaign_ids).await?;
    let counts = CountCheck {
        acked_series: agent_stats.series_stored + agent_stats.series_stored_duplicate,
        acked_samples: agent_stats.samples_acked + agent_stats.samples_duplicate,
        acked_jobs: agent_stats.uploads_acked + agent_stats.uploads_duplicate,
        db_series,
        db_samples,
        db_done_jobs: db_done,
    };
    // Agent endpoints over the whole run (enrollment came before the timed part), query
    // endpoints over the timed part.
    let mut endpoints = agent_stats.endpoints.clone();
    endpoints.extend(recorder.summary(load_elapsed));
    let errors = LoadReport::errors_of(&endpoints, &agent_stats) + feeder_errors;
    let passed = errors == 0 && counts.matches();
    let report = LoadReport {
        agents: args.agents,
        devices,
        query_clients: args.query_clients,
        seconds: load_elapsed.as_secs_f64(),
        campaigns: campaign_ids.len(),
        endpoints,
        agent_stats,
        counts,
        errors,
        passed,
        setting: format!(
            "client and server on the same machine ({} cores), agent figures over the whole run including enrollment",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(
        args.out.join("load.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(args.out.join("load.md"), markdown(&report))?;
    Ok(report)
}
