//! Integration tests of the server: real HTTP against a real Postgres. `./scripts/test` starts
//! a throwaway Postgres and exports DATABASE_URL; every test gets a fresh database in it.

mod agents;
mod api_keys;
mod authz;
mod bad_input;
mod cli;
mod dashboard;
mod e2e;
mod errors;
mod frameworks;
mod health;
mod openapi;
mod searches;
mod spaces;
mod tables;
mod token_hygiene;
mod validation;

use gpulut_server::app::{self, Settings};
use gpulut_tables::SearchSpace;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Short intervals, so lease expiry and long polls happen within a test.
pub const TEST_CADENCE: gpulut_tables::protocol::Cadence = gpulut_tables::protocol::Cadence {
    heartbeat_s: 1.0,
    poll_wait_s: 2.0,
    lease_s: 3.0,
};
/// Small on purpose, so the oversized-body test stays cheap.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The Postgres the test command started.
pub fn admin_database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with ./scripts/test, which starts a throwaway Postgres",
    )
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_database_url();
    let name = format!("gpulut_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the test Postgres");
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let (base, _) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{server}/{name}")
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub client: reqwest::Client,
}

/// Starts the real server on 127.0.0.1 port 0 against a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(fresh_database().await).await
}

/// Starts the real server against an existing database (to test restarts).
pub async fn spawn_app_on(database_url: String) -> TestApp {
    let settings = Settings {
        database_url: database_url.clone(),
        admin_token: Some(ADMIN_TOKEN.to_string()),
        max_body_bytes: MAX_BODY_BYTES,
        db_max_connections: 8,
        cadence: TEST_CADENCE,
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
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an API key through the API and returns (id, token).
    pub async fn create_key(&self, role: &str) -> (String, String) {
        let r = self
            .post_json(
                "/v1/api-keys",
                Some(ADMIN_TOKEN),
                &serde_json::json!({"label": format!("test {role}"), "role": role}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }
}

/// The fingerprint an Android agent sends at enrollment; `hardware_id` tells devices apart.
pub fn device_fingerprint(hardware_id: &str) -> Value {
    serde_json::json!({
        "model": "Pixel Test", "manufacturer": "Google", "soc": "Tensor G2", "hardware_id": hardware_id,
        "os": "android", "os_version": "14", "android_api_level": 34,
        "gpu": {"name": "Mali-G710", "vendor_id": 5045, "device_id": 1, "device_type": "integrated-gpu",
                "backend": "vulkan", "driver": "Mali", "driver_version": "r38", "api_version": "1.3.0",
                "timestamp_query": true, "timestamp_period_ns": 1.0},
        "agent_version": "0.1.0"
    })
}

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn expect_problem(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json", "content type");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status.as_u16());
    assert_eq!(v["type"], "about:blank");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "a problem has a detail: {v}");
    v
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
        "INSERT INTO devices (name, identity, fingerprint) VALUES ($1, $2, '{}') RETURNING id",
    )
    .bind(device)
    .bind(format!("test:{device}"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    seed_entries(app, id, framework, scale).await;
    id.to_string()
}

/// A full moga-mbv3 table of fixture values for an existing device.
pub async fn seed_entries(app: &TestApp, device: uuid::Uuid, framework: &str, scale: f64) {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
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
        .bind(device)
        .bind(framework)
        .bind(b.block.key.as_str())
        .bind(ms)
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
