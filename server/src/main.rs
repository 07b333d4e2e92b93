//! `gpulut-server`: the command line. Everything it runs lives in the library; this file turns
//! flags and environment into settings and errors into exit codes.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gpulut_server::app::{self, Settings};
use gpulut_server::auth::{Role, new_token};
use gpulut_server::db::{Db, NewApiKey};
use gpulut_server::routes::api_keys::KEY_KIND;
use gpulut_server::searches::worker::WorkerSettings;
use gpulut_tables::protocol::Cadence;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "gpulut-server",
    version,
    about = "gpulut server: latency tables, profiling jobs and architecture search over HTTP"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Run search workers only (no HTTP), against the same database as the servers.
    Worker(WorkerArgs),
    /// Apply the database migrations and exit.
    Migrate(DbArgs),
    /// Administrative tasks against the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Exit 0 when the server at --url answers /readyz with 200, 1 otherwise (for container
    /// health checks: no curl needed).
    Healthcheck(HealthcheckArgs),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an API key and print its token (shown once).
    CreateToken(CreateTokenArgs),
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl DbArgs {
    fn url(&self) -> anyhow::Result<&str> {
        match self.database_url.as_deref() {
            Some(u) if !u.is_empty() => Ok(u),
            _ => bail!(
                "no database: set DATABASE_URL or pass --database-url postgres://USER@HOST:PORT/DB"
            ),
        }
    }
}

#[derive(Copy, Clone, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "GPULUT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bootstrap admin bearer token (at least 16 characters).
    #[arg(long, env = "GPULUT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GPULUT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Most database connections this process opens.
    #[arg(long, env = "GPULUT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// Log line format (the level comes from RUST_LOG).
    #[arg(long, env = "GPULUT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    workers: WorkerFlags,
    #[command(flatten)]
    cadence: CadenceFlags,
}

/// The rhythm agents are asked to keep (sent to them at enrollment and with every heartbeat).
#[derive(Args, Clone)]
struct CadenceFlags {
    /// Seconds between agent heartbeats; a device is offline after three missed.
    #[arg(long, env = "GPULUT_HEARTBEAT_S", default_value_t = app::DEFAULT_CADENCE.heartbeat_s)]
    heartbeat_s: f64,
    /// Longest wait of a job claim (long poll), in seconds.
    #[arg(long, env = "GPULUT_POLL_WAIT_S", default_value_t = app::DEFAULT_CADENCE.poll_wait_s)]
    poll_wait_s: f64,
    /// Seconds a job lease lasts unless renewed; an expired lease hands the job out again.
    #[arg(long, env = "GPULUT_LEASE_S", default_value_t = app::DEFAULT_CADENCE.lease_s)]
    lease_s: f64,
}

impl CadenceFlags {
    fn cadence(&self) -> anyhow::Result<Cadence> {
        for (name, v, lo, hi) in [
            ("--heartbeat-s", self.heartbeat_s, 0.2, 3600.0),
            ("--poll-wait-s", self.poll_wait_s, 0.0, 300.0),
            ("--lease-s", self.lease_s, 1.0, 86_400.0),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                bail!("{name} must be {lo} to {hi} seconds");
            }
        }
        Ok(Cadence {
            heartbeat_s: self.heartbeat_s,
            poll_wait_s: self.poll_wait_s,
            lease_s: self.lease_s,
        })
    }
}

#[derive(Args, Clone)]
struct WorkerFlags {
    /// Search workers to run in this process (0: none; then run `gpulut-server worker`).
    #[arg(long, env = "GPULUT_WORKERS", default_value_t = 1)]
    workers: usize,
    /// Seconds without a heartbeat after which another worker takes a running search over.
    #[arg(long, env = "GPULUT_WORKER_STALE_S", default_value_t = 30.0)]
    worker_stale_s: f64,
}

impl WorkerFlags {
    fn settings(&self) -> anyhow::Result<WorkerSettings> {
        if !(self.worker_stale_s.is_finite() && (0.5..=3600.0).contains(&self.worker_stale_s)) {
            bail!("--worker-stale-s must be 0.5 to 3600 seconds");
        }
        let stale = std::time::Duration::from_secs_f64(self.worker_stale_s);
        Ok(WorkerSettings {
            heartbeat: stale / 6,
            stale_after: stale,
            ..WorkerSettings::default()
        })
    }
}

#[derive(Args, Clone)]
struct WorkerArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    workers: WorkerFlags,
    /// Log line format (the level comes from RUST_LOG).
    #[arg(long, env = "GPULUT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args)]
struct CreateTokenArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Who or what the key is for.
    #[arg(long, default_value = "created with gpulut-server admin create-token")]
    label: String,
    /// Role of the key.
    #[arg(long, value_enum, default_value = "admin")]
    role: RoleArg,
    /// Lifetime in seconds (no expiry when absent).
    #[arg(long)]
    ttl_s: Option<u32>,
    /// Print JSON instead of the bare token.
    #[arg(long)]
    json: bool,
}

#[derive(Copy, Clone, ValueEnum)]
enum RoleArg {
    Admin,
    User,
}

#[derive(Args)]
struct HealthcheckArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
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
    tracing::info!("shutting down: finishing requests in flight");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let settings = Settings {
        database_url: args.db.url()?.to_string(),
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body_bytes,
        db_max_connections: args.db_max_connections,
        cadence: args.cadence.cadence()?,
    };
    if settings.admin_token.is_none() {
        tracing::warn!(
            "GPULUT_ADMIN_TOKEN is not set: only API keys made with `gpulut-server admin create-token` can administer this server"
        );
    }
    let worker_settings = args.workers.settings()?;
    let state = app::prepare(&settings).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "gpulut-server listening; API docs at /docs");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = app::spawn_workers(&state.db, args.workers.workers, &worker_settings, &stopped);
    app::serve(
        listener,
        app::router(state, settings.max_body_bytes),
        shutdown_signal(),
    )
    .await?;
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let settings = args.workers.settings()?;
    if args.workers.workers == 0 {
        bail!("--workers must be at least 1 for `gpulut-server worker`");
    }
    let state = app::prepare(&Settings {
        database_url: args.db.url()?.to_string(),
        admin_token: None,
        max_body_bytes: 0,
        db_max_connections: (args.workers.workers as u32 + 2).min(64),
        cadence: app::DEFAULT_CADENCE,
    })
    .await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = app::spawn_workers(&state.db, args.workers.workers, &settings, &stopped);
    shutdown_signal().await;
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

async fn migrate(args: DbArgs) -> anyhow::Result<()> {
    init_tracing(LogFormat::Text);
    let db = Db::connect_lazy(args.url()?, 2)?;
    db.migrate().await.context("applying migrations")?;
    eprintln!("gpulut-server: migrations applied");
    Ok(())
}

async fn create_token(args: CreateTokenArgs) -> anyhow::Result<()> {
    let label = gpulut_server::routes::api_keys::check_label(&args.label)
        .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    let db = Db::connect_lazy(args.db.url()?, 2)?;
    db.migrate().await.context("applying migrations")?;
    let role = match args.role {
        RoleArg::Admin => Role::Admin,
        RoleArg::User => Role::User,
    };
    let (token, prefix, digest) = new_token(KEY_KIND);
    let expires_at = args
        .ttl_s
        .map(|s| chrono::Utc::now() + chrono::Duration::seconds(i64::from(s)));
    let row = db
        .create_api_key(NewApiKey {
            label: &label,
            role: role.as_str(),
            prefix: &prefix,
            digest: &digest,
            created_by: None,
            expires_at,
        })
        .await
        .context("storing the key")?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"id": row.id, "role": row.role, "label": row.label, "prefix": row.prefix, "expires_at": row.expires_at, "token": token})
        );
    } else {
        println!("{token}");
        eprintln!(
            "gpulut-server: {} key {} ({}) created; the token above is shown once",
            row.role, row.id, row.prefix
        );
    }
    Ok(())
}

async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = format!("{}/readyz", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("GET {url} answered {status}: {body}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Worker(args)) => worker(args).await,
        Some(Command::Migrate(args)) => migrate(args).await,
        Some(Command::Admin(AdminCommand::CreateToken(args))) => create_token(args).await,
        Some(Command::Healthcheck(args)) => healthcheck(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpulut-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
