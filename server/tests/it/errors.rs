//! Bad input is refused with 4xx problem+json and a useful detail, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, MAX_BODY_BYTES, expect_problem, spawn_app};

const ANALYZE: &str = "/v1/spaces/moga-mbv3/analyze";

async fn analyze(app: &crate::TestApp, body: Value) -> Value {
    expect_problem(
        app.post_json(ANALYZE, Some(ADMIN_TOKEN), &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let r = app
        .request(Method::POST, ANALYZE, Some(ADMIN_TOKEN))
        .header("content-type", "application/json")
        .body(r#"{"archs": ["MoGA-A",}"#)
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["code"], "malformed_json");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let r = app
        .request(Method::POST, ANALYZE, Some(ADMIN_TOKEN))
        .header("content-type", "text/plain")
        .body(r#"{"archs": ["MoGA-A"]}"#)
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(p["detail"].as_str().unwrap().contains("application/json"));
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let big = "0".repeat(MAX_BODY_BYTES + 1);
    let r = app
        .request(Method::POST, ANALYZE, Some(ADMIN_TOKEN))
        .header("content-type", "application/json")
        .body(format!(r#"{{"archs": ["{big}"]}}"#))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(p["code"], "body_too_large");
}

#[tokio::test]
async fn wrong_architecture_length_is_422() {
    let app = spawn_app().await;
    let p = analyze(&app, json!({"archs": ["4539693585"]})).await;
    assert_eq!(p["code"], "invalid_architecture");
    let d = p["detail"].as_str().unwrap();
    assert!(
        d.contains("archs[0]") && d.contains("10") && d.contains("14"),
        "{d}"
    );
    let p = analyze(&app, json!({"archs": ["MoGA-A", {"choices": [1, 2, 3]}]})).await;
    assert!(p["detail"].as_str().unwrap().starts_with("archs[1]"), "{p}");
}

#[tokio::test]
async fn choice_out_of_range_is_422() {
    let app = spawn_app().await;
    let p = analyze(
        &app,
        json!({"archs": [{"choices": [0,0,0,0,0,0,0,0,0,0,0,0,12,0]}]}),
    )
    .await;
    let d = p["detail"].as_str().unwrap();
    assert!(d.contains("layer 13") && d.contains("12"), "{d}");
    let p = analyze(&app, json!({"archs": ["000000000000f0"]})).await;
    assert!(p["detail"].as_str().unwrap().contains("layer 13"), "{p}");
    let p = analyze(
        &app,
        json!({"archs": [{"choices": [0,0,0,0,0,0,0,0,0,0,0,0,-1,0]}]}),
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("-1"), "{p}");
}

#[tokio::test]
async fn unknown_reference_name_or_wrong_space_is_422() {
    let app = spawn_app().await;
    let p = analyze(&app, json!({"archs": ["MoGA-Z"]})).await;
    let d = p["detail"].as_str().unwrap();
    assert!(d.contains("MoGA-Z") && d.contains("MoGA-A"), "{d}");
    let p = analyze(&app, json!({"archs": [{"space": "fbnet", "choices": [0]}]})).await;
    assert!(p["detail"].as_str().unwrap().contains("fbnet"), "{p}");
    let p = analyze(&app, json!({"archs": [42]})).await;
    assert!(p["detail"].as_str().unwrap().contains("archs[0]"), "{p}");
}

#[tokio::test]
async fn empty_oversized_and_malformed_batches_are_refused() {
    let app = spawn_app().await;
    let p = analyze(&app, json!({"archs": []})).await;
    assert!(p["detail"].as_str().unwrap().contains("empty"));
    let p = analyze(&app, json!({"archs": vec!["MoGA-A"; 1001]})).await;
    assert_eq!(p["code"], "too_many_architectures");
    let p = analyze(&app, json!({"arches": ["MoGA-A"]})).await;
    assert_eq!(p["code"], "invalid_body");
    let p = analyze(&app, json!({"archs": "MoGA-A"})).await;
    assert_eq!(p["code"], "invalid_body");
}

#[tokio::test]
async fn missing_or_invalid_tokens_are_401() {
    let app = spawn_app().await;
    let body = json!({"archs": ["MoGA-A"]});
    let r = app.post_json(ANALYZE, None, &body).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let p = expect_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("Authorization"));
    for token in [
        "wrong",
        "gpulut_key_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let p = expect_problem(
            app.post_json(ANALYZE, Some(token), &body).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(p["code"], "unauthorized");
    }
    let r = app
        .request(Method::GET, "/v1/spaces", None)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("Bearer"));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let p = expect_problem(
        app.get("/v1/nothing-here", Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["code"], "no_such_route");
    let r = app
        .request(Method::DELETE, "/v1/spaces", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
}
