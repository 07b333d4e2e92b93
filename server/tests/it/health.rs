use gpulut_server::app::{self, AppState};
use gpulut_server::db::Db;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{expect_problem, spawn_app, spawn_app_on};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_down() {
    // Port 1 on loopback: nothing listens there, so every connection is refused.
    let db = Db::connect_lazy("postgres://postgres@127.0.0.1:1/none", 1).unwrap();
    let state = AppState {
        db,
        admin_token_digest: None,
        metrics: app::metrics_handle(),
        cadence: app::DEFAULT_CADENCE,
        started_at: chrono::Utc::now(),
        tables: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::serve(
        listener,
        app::router(state, 1024),
        std::future::pending(),
    ));
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    let p = expect_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(p["code"], "not_ready");
    // Liveness does not depend on the database.
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.get("/healthz", None).await;
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("gpulut_http_requests_total")
                && l.contains(r#"route="/healthz""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no request counter for /healthz in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("gpulut_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn request_ids_are_made_or_propagated() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    let made = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let r = app
        .request(reqwest::Method::GET, "/healthz", None)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn a_restart_on_the_same_database_keeps_its_data() {
    let app = spawn_app().await;
    let (_, token) = app.create_key("user").await;
    // A second server process on the same database: migrations and seeding are idempotent.
    let again = spawn_app_on(app.database_url.clone()).await;
    let r = again.get("/v1/spaces", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let spaces: Value = r.json().await.unwrap();
    assert_eq!(spaces.as_array().unwrap().len(), 1);
}
