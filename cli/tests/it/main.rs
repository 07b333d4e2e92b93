//! The `gpulut` binary against the real server: `spawn_app()` starts gpulut-server's router on
//! port 0 over a fresh database in the Postgres that `./scripts/test` started (DATABASE_URL),
//! and every test runs the built binary as a user would.

mod demo_agent;
mod errors;
mod searches;
mod tables;
mod tokens;

use std::process::Stdio;
use std::time::Duration;

use gpulut_server::app::{self, Settings};
use gpulut_server::db::Db;
use gpulut_server::searches::worker::{self, WorkerSettings};
use gpulut_tables::SearchSpace;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The Postgres the test command started.
fn admin_database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with ./scripts/test, which starts a throwaway Postgres",
    )
}

/// Creates an empty database and returns its URL.
async fn fresh_database() -> String {
    let admin = admin_database_url();
    let name = format!("gpulut_cli_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test Postgres");
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let base = admin.split_once('?').map_or(admin.as_str(), |(b, _)| b);
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{server}/{name}")
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    /// Keeps the search worker (if started) running for the test's lifetime.
    _worker: Option<tokio::sync::watch::Sender<bool>>,
}

/// Starts the real server on 127.0.0.1 port 0 against a fresh database.
pub async fn spawn_app() -> TestApp {
    let database_url = fresh_database().await;
    let settings = Settings {
        database_url: database_url.clone(),
        admin_token: Some(ADMIN_TOKEN.to_string()),
        max_body_bytes: MAX_BODY_BYTES,
        db_max_connections: 8,
        cadence: app::DEFAULT_CADENCE,
    };
    let state = app::prepare(&settings).await.expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::serve(
        listener,
        app::router(state, MAX_BODY_BYTES),
        std::future::pending(),
    ));
    TestApp {
        base: format!("http://{addr}"),
        database_url,
        _worker: None,
    }
}

/// The server plus a search worker, as `gpulut-server serve` bundles them.
pub async fn spawn_app_with_worker() -> TestApp {
    let mut app = spawn_app().await;
    let db = Db::connect_lazy(&app.database_url, 4).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = WorkerSettings {
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(2),
        idle_poll: Duration::from_millis(50),
    };
    tokio::spawn(worker::run(db, settings, stopped));
    app._worker = Some(stop);
    app
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "gpulut failed: {self:#?}");
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl TestApp {
    /// Runs `gpulut ARGS` against this server with the admin token (the environment, as a
    /// user's shell would set it).
    pub async fn gpulut(&self, args: &[&str]) -> Run {
        self.gpulut_as(Some(ADMIN_TOKEN), args).await
    }

    pub async fn gpulut_as(&self, token: Option<&str>, args: &[&str]) -> Run {
        run_binary(&[("GPULUT_SERVER", self.base.as_str())], token, args).await
    }
}

/// Runs the binary with a clean gpulut environment plus `env`.
pub async fn run_binary(env: &[(&str, &str)], token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpulut"));
    cmd.args(args)
        .env_remove("GPULUT_SERVER")
        .env_remove("GPULUT_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("GPULUT_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("gpulut finished within 2 minutes")
        .expect("gpulut runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// A deterministic per-block latency for fixtures: grows with the block's MACs, plus a launch
/// cost, scaled per device.
pub fn fixture_ms(macs: u64, scale: f64) -> f64 {
    scale * (0.05 + macs as f64 / 2.0e7)
}

/// Inserts a device and a full moga-mbv3 table for it under `framework`; returns the device id.
pub async fn seed_table(app: &TestApp, device: &str, framework: &str, scale: f64) -> String {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (id,): (uuid::Uuid,) = sqlx::query_as(
        "INSERT INTO devices (name, identity, fingerprint) VALUES ($1, $2, $3::jsonb) RETURNING id",
    )
    .bind(device)
    .bind(format!("test:{device}"))
    .bind(r#"{"os": "android", "model": "Pixel 7", "gpu": {"name": "Mali-G710", "backend": "vulkan"}}"#)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO frameworks (id, kind) VALUES ($1, 'native') ON CONFLICT DO NOTHING")
        .bind(framework)
        .execute(&mut conn)
        .await
        .unwrap();
    for b in SearchSpace::moga_mbv3().distinct_blocks() {
        let ms = fixture_ms(b.block.macs, scale);
        sqlx::query(
            "INSERT INTO table_entries (device_id, framework, block_key, framework_version, count,
                 min_ms, p10_ms, median_ms, p90_ms, mean_ms, iqr_ms, mad_ms, ci_low_ms, ci_high_ms,
                 first_measured_at, last_measured_at)
             VALUES ($1, $2, $3, '1', 30, $4 * 0.9, $4 * 0.95, $4, $4 * 1.1, $4 * 1.02, $4 * 0.1,
                     $4 * 0.05, $4 * 0.98, $4 * 1.02, now(), now())",
        )
        .bind(id)
        .bind(framework)
        .bind(b.block.key.as_str())
        .bind(ms)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    id.to_string()
}

/// Snapshot filters for what changes from run to run: ids, timestamps, the server's port.
pub fn volatile_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[uuid]",
        ),
        (
            r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?",
            "[time]",
        ),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"tcp:\d+", "tcp:[port]"),
    ]
}
