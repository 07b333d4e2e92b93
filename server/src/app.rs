//! Assembling the server: state, middleware, routes, and serving with graceful shutdown.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::MakeRequestUuid;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use gpulut_tables::protocol::Cadence;

use crate::auth::{TokenDigest, digest};
use crate::db::Db;
use crate::error::ApiError;

/// What every handler can reach. Holds no facts of its own: everything lives in Postgres, so
/// replicas are interchangeable.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// SHA-256 of the bootstrap admin token, when one is configured.
    pub admin_token_digest: Option<TokenDigest>,
    pub metrics: PrometheusHandle,
    /// The rhythm agents are asked to keep.
    pub cadence: Cadence,
    /// When this process started: devices get one heartbeat timeout of grace after a restart.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Rendered tables, invalidated through Postgres notifications.
    pub tables: std::sync::Arc<crate::cache::TableCache>,
}

/// Settings of a serving process (from flags and environment in `main`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub admin_token: Option<String>,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub cadence: Cadence,
}

/// The agent cadence of a production server: heartbeat every 15 s, long polls of 30 s, leases of
/// 2 minutes (renewed by the agent while it works).
pub const DEFAULT_CADENCE: Cadence = Cadence {
    heartbeat_s: 15.0,
    poll_wait_s: 30.0,
    lease_s: 120.0,
};

/// The frameworks of this project's own kernels, registered at start.
pub const NATIVE_FRAMEWORKS: &[(&str, &str)] = &[
    ("wgpu-direct", "gpulut's WGSL kernels, one dispatch per op"),
    (
        "wgpu-fused",
        "gpulut's optimised WGSL kernels: fused activations, tiled pointwise convs",
    ),
];

/// Other runtimes the agent drives on the very same blocks (issue 8), registered at start with
/// kind `runtime`: campaigns may target them on devices whose agent reports them available, and
/// other tools' numbers may still be imported under their names.
pub const RUNTIME_FRAMEWORKS: &[(&str, &str)] = &[
    (
        "ncnn-vulkan",
        "Tencent ncnn's Vulkan compute path, driven by the agent on models built from the blocks",
    ),
    (
        "ncnn-cpu",
        "Tencent ncnn on the CPU, driven by the agent on models built from the blocks",
    ),
    (
        "onnxruntime-cpu",
        "ONNX Runtime's CPU execution provider, driven by the agent on models built from the blocks",
    ),
];

/// What an agent that reported no frameworks (one older than the report) can run.
pub const ASSUMED_FRAMEWORKS: &[&str] = &["wgpu-direct", "wgpu-fused"];

/// Every framework a campaign may ask agents to measure with: ours, then the other runtimes.
pub fn agent_frameworks() -> impl Iterator<Item = &'static str> {
    NATIVE_FRAMEWORKS
        .iter()
        .chain(RUNTIME_FRAMEWORKS)
        .map(|(name, _)| *name)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid DATABASE_URL: {0}")]
    DatabaseUrl(sqlx::Error),
    #[error("the database at DATABASE_URL did not answer: {0}")]
    Unreachable(sqlx::Error),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("registering the built-in search spaces failed: {0}")]
    Seed(sqlx::Error),
    #[error("GPULUT_ADMIN_TOKEN must be at least 16 characters")]
    WeakAdminToken,
}

/// Shortest bootstrap admin token accepted: anything shorter is guessable.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0,
                ])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests that embed the server):
            // then this handle renders only what this recorder sees, which is still valid.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Connects, waits for the database (with backoff, up to about a minute), migrates, and
/// registers the built-in spaces.
pub async fn prepare(settings: &Settings) -> Result<AppState, StartError> {
    use backon::{ExponentialBuilder, Retryable};

    let admin_token_digest = match &settings.admin_token {
        Some(t) if t.trim().len() < MIN_ADMIN_TOKEN_LEN => return Err(StartError::WeakAdminToken),
        Some(t) => Some(digest(t.trim())),
        None => None,
    };
    let db = Db::connect_lazy(&settings.database_url, settings.db_max_connections)
        .map_err(StartError::DatabaseUrl)?;
    (|| db.ping())
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(15)
                .with_jitter(),
        )
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "database not reachable yet"))
        .await
        .map_err(StartError::Unreachable)?;
    db.migrate().await?;
    db.register_builtin_spaces()
        .await
        .map_err(StartError::Seed)?;
    db.register_native_frameworks(NATIVE_FRAMEWORKS)
        .await
        .map_err(StartError::Seed)?;
    db.register_runtime_frameworks(RUNTIME_FRAMEWORKS)
        .await
        .map_err(StartError::Seed)?;
    let tables = std::sync::Arc::new(crate::cache::TableCache::default());
    {
        let (db, tables) = (db.clone(), tables.clone());
        tokio::spawn(async move {
            db.follow_table_changes(|device| match device {
                Some(d) => tables.invalidate_device(d),
                None => tables.clear(),
            })
            .await;
        });
    }
    Ok(AppState {
        db,
        admin_token_digest,
        metrics: metrics_handle(),
        cadence: settings.cadence,
        started_at: chrono::Utc::now(),
        tables,
    })
}

/// Records request counts and latencies per route for `/metrics`.
async fn track_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("gpulut_http_requests_total", &labels).increment(1);
    metrics::histogram!("gpulut_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no_such_route",
        "no such endpoint; GET /openapi.json lists them",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; GET /openapi.json lists them",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("a handler panicked".into()).into_response()
}

/// The whole HTTP surface: API routes, OpenAPI document and docs page, fallbacks and
/// middleware (request ids, tracing, metrics, body limit, panic safety net).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let (api, openapi) = crate::routes::api().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(track_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(
            tower::ServiceBuilder::new()
                .set_request_id(request_id.clone(), MakeRequestUuid)
                .layer(TraceLayer::new_for_http().make_span_with(
                    |req: &Request| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                    },
                ))
                .propagate_request_id(request_id)
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
}

/// Starts `n` search workers that stop when `stop` turns true.
pub fn spawn_workers(
    db: &Db,
    n: usize,
    settings: &crate::searches::worker::WorkerSettings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            tokio::spawn(crate::searches::worker::run(
                db.clone(),
                settings.clone(),
                stop.clone(),
            ))
        })
        .collect()
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
