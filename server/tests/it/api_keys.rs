use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::agents::enroll;
use crate::{ADMIN_TOKEN, TestApp, expect_problem, spawn_app};

#[tokio::test]
async fn admin_creates_lists_and_revokes_user_keys() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/api-keys",
            Some(ADMIN_TOKEN),
            &json!({"label": "ci bot"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(
        token.starts_with("gpulut_key_") && token.len() == 75,
        "{token}"
    );
    assert_eq!(created["role"], "user");
    assert!(token.starts_with(created["prefix"].as_str().unwrap()));

    // The key works.
    assert_eq!(
        app.get("/v1/spaces", Some(&token)).await.status(),
        StatusCode::OK
    );

    // Listing never shows tokens.
    let r = app.get("/v1/api-keys", Some(ADMIN_TOKEN)).await;
    let text = r.text().await.unwrap();
    assert!(!text.contains(&token));
    let keys: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(
        keys[0]["last_used_at"].is_string(),
        "use is recorded: {keys}"
    );

    // Revoke: the next request is refused at once.
    let id = created["id"].as_str().unwrap();
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap()["revoked_at"].is_string());
    let p = expect_problem(
        app.get("/v1/spaces", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
}

#[tokio::test]
async fn tokens_are_stored_only_as_digests() {
    let app = spawn_app().await;
    let (_, token) = app.create_key("user").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT token_sha256, prefix FROM api_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    use sha2::Digest;
    assert_eq!(rows[0].0, sha2::Sha256::digest(token.as_bytes()).to_vec());
    assert!(rows[0].1.len() < 24);
}

#[tokio::test]
async fn user_keys_cannot_administer() {
    let app = spawn_app().await;
    let (_, user) = app.create_key("user").await;
    let p = expect_problem(
        app.post_json("/v1/api-keys", Some(&user), &json!({"label": "x"}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(p["code"], "forbidden");
    expect_problem(
        app.get("/v1/api-keys", Some(&user)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn admin_keys_can_administer_and_expired_keys_cannot() {
    let app = spawn_app().await;
    let (_, admin) = app.create_key("admin").await;
    let r = app
        .post_json(
            "/v1/api-keys",
            Some(&admin),
            &json!({"label": "short", "ttl_s": 1}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let short = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let p = expect_problem(
        app.get("/v1/spaces", Some(&short)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
}

#[tokio::test]
async fn bad_key_requests_are_refused() {
    let app = spawn_app().await;
    for (body, code) in [
        (json!({"label": ""}), "invalid_label"),
        (json!({"label": "x", "ttl_s": 0}), "invalid_ttl"),
        (json!({"label": "x", "ttl_s": -5}), "invalid_ttl"),
    ] {
        let p = expect_problem(
            app.post_json("/v1/api-keys", Some(ADMIN_TOKEN), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["code"], code, "{body}");
    }
    for body in [
        json!({"label": "x", "role": "root"}),
        json!({"label": "x", "colour": "red"}),
    ] {
        let p = expect_problem(
            app.post_json("/v1/api-keys", Some(ADMIN_TOKEN), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["code"], "invalid_body", "{body}");
    }
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{}", uuid::Uuid::new_v4()),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
    let r = app
        .request(Method::DELETE, "/v1/api-keys/not-a-uuid", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["code"], "invalid_path");
}

async fn whoami(app: &TestApp, token: &str) -> Value {
    let r = app.get("/v1/whoami", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    // Never the token, nor its digest.
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    assert!(!text.contains(token) && !text.contains(&digest), "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn whoami_names_every_kind_of_caller() {
    let app = spawn_app().await;

    let me = whoami(&app, ADMIN_TOKEN).await;
    assert_eq!(me, json!({"role": "admin", "credential": "bootstrap"}));

    let (user_id, user) = app.create_key("user").await;
    let me = whoami(&app, &user).await;
    assert_eq!(me["role"], "user", "{me}");
    assert_eq!(me["credential"], "api_key", "{me}");
    assert_eq!(me["api_key"]["id"], user_id.as_str(), "{me}");
    assert_eq!(me["api_key"]["label"], "test user", "{me}");
    assert!(me["api_key"]["created_at"].is_string(), "{me}");
    assert!(me["api_key"]["expires_at"].is_null(), "{me}");
    assert!(me.get("agent").is_none(), "{me}");
    assert_eq!(
        me["api_key"].as_object().unwrap().len(),
        4,
        "id, label, created_at, expires_at only: {me}"
    );

    let (admin_id, admin) = app.create_key("admin").await;
    let me = whoami(&app, &admin).await;
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["credential"], "api_key", "{me}");
    assert_eq!(me["api_key"]["id"], admin_id.as_str(), "{me}");

    let (agent, device) = enroll(&app, "whoami-phone").await;
    let me = whoami(&app, &agent).await;
    assert_eq!(me["role"], "agent", "{me}");
    assert_eq!(me["credential"], "agent", "{me}");
    assert_eq!(me["agent"]["device_id"], device.as_str(), "{me}");
    assert!(me.get("api_key").is_none(), "{me}");
    let agents: Value = app
        .get("/v1/agents", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let listed = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["device_id"] == device.as_str())
        .unwrap();
    assert_eq!(me["agent"]["id"], listed["id"], "{me}");
    assert_eq!(me["agent"]["name"], listed["name"], "{me}");
}

#[tokio::test]
async fn whoami_refuses_missing_malformed_unknown_and_revoked_tokens() {
    let app = spawn_app().await;
    let p = expect_problem(app.get("/v1/whoami", None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(p["code"], "unauthorized");
    for header in ["Basic dXNlcjpwdw==", "Bearer", "Bearer    ", "token"] {
        let r = app
            .request(Method::GET, "/v1/whoami", None)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::UNAUTHORIZED).await;
    }
    let enrollment = app
        .post_json(
            "/v1/enrollment-tokens",
            Some(ADMIN_TOKEN),
            &json!({"label": "not a login"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    for token in [
        "gpulut_key_nope",
        "x".repeat(300).as_str(),
        enrollment.as_str(),
    ] {
        let p = expect_problem(
            app.get("/v1/whoami", Some(token)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(!p.to_string().contains(token), "{p}");
    }

    // Revoked API keys and revoked agents are refused at once.
    let (id, user) = app.create_key("user").await;
    whoami(&app, &user).await;
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p = expect_problem(
        app.get("/v1/whoami", Some(&user)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");

    let (agent, _) = enroll(&app, "revoked-phone").await;
    let agent_id = whoami(&app, &agent).await["agent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/agents/{agent_id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p = expect_problem(
        app.get("/v1/whoami", Some(&agent)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
}
