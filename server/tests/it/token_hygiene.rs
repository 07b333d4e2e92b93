//! Token hygiene: secrets are stored only as digests, enrollment tokens keep their use limits
//! under concurrent enrollment and their expiry and revocation, and revoked agents and API keys
//! are refused from the very next request, long polls in flight included.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{ADMIN_TOKEN, TestApp, device_fingerprint, expect_problem, spawn_app};

/// Creates an enrollment token; returns (id, secret).
async fn enrollment_token(app: &TestApp, body: Value) -> (String, String) {
    let r = app
        .post_json("/v1/enrollment-tokens", Some(ADMIN_TOKEN), &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

async fn enroll_request(app: &TestApp, token: &str, hardware_id: &str) -> reqwest::Response {
    app.post_json(
        "/v1/agents/enroll",
        None,
        &json!({"token": token, "fingerprint": device_fingerprint(hardware_id)}),
    )
    .await
}

/// Enrolls a device; returns (agent token, agent id, device id).
async fn enroll(app: &TestApp, token: &str, hardware_id: &str) -> (String, String, String) {
    let r = enroll_request(app, token, hardware_id).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    (s("token"), s("agent_id"), s("device_id"))
}

async fn delete(app: &TestApp, path: &str) {
    let r = app
        .request(Method::DELETE, path, Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "DELETE {path}");
}

async fn scalar(app: &TestApp, sql: &str, bind: &str) -> i64 {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(sql.to_string()))
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[tokio::test]
async fn secrets_are_stored_only_as_their_sha256() {
    let app = spawn_app().await;
    let (key_id, key) = app.create_key("user").await;
    let (admin_key_id, admin_key) = app.create_key("admin").await;
    let (token_id, enrollment) =
        enrollment_token(&app, json!({"label": "hygiene", "max_uses": 2})).await;
    let (agent, agent_id, _) = enroll(&app, &enrollment, "hygiene-1").await;
    // Use every credential once, so anything that records uses has had its chance to leak.
    for t in [&key, &admin_key, &agent] {
        assert_eq!(
            app.get("/v1/whoami", Some(t)).await.status(),
            StatusCode::OK
        );
    }
    let r = app
        .post_json(
            "/v1/agents/heartbeat",
            Some(&agent),
            &json!({"agent_version": "0.1.0"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A failed enrollment with a wrong token must not store what it was sent either.
    let near_miss = format!("{}0", &enrollment[..enrollment.len() - 1]);
    enroll_request(&app, &near_miss, "hygiene-2").await;

    let secrets = [
        ("user key", key.as_str()),
        ("admin key", admin_key.as_str()),
        ("enrollment token", enrollment.as_str()),
        ("agent token", agent.as_str()),
        ("bootstrap token", ADMIN_TOKEN),
        ("mistyped enrollment token", near_miss.as_str()),
    ];
    let mut needles: Vec<(String, String)> = Vec::new();
    for (what, s) in secrets {
        needles.push((what.to_string(), s.to_string()));
        // The random part alone (64 hex digits), in case something stores it without its kind.
        if let Some((_, body)) = s.rsplit_once('_')
            && body.len() == 64
        {
            needles.push((format!("{what} (hex body)"), body.to_string()));
        }
    }

    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public'
           AND (data_type IN ('text', 'character varying', 'character', 'bytea', 'json', 'jsonb')
                OR (data_type = 'ARRAY' AND udt_name IN ('_text', '_varchar')))
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let tables: std::collections::BTreeSet<&str> =
        columns.iter().map(|(t, _, _)| t.as_str()).collect();
    for table in ["api_keys", "enrollment_tokens", "agents", "devices"] {
        assert!(
            tables.contains(table),
            "{table} has text or bytea columns to scan"
        );
    }
    let mut scanned = 0;
    for (table, column, ty) in &columns {
        let (t, c) = (quote_ident(table), quote_ident(column));
        // bytea: the secret's bytes anywhere in it, or its hex body as raw bytes; text and JSON:
        // the secret as a substring.
        let sql = if ty == "bytea" {
            format!(
                "SELECT count(*) FROM {t} WHERE position(convert_to($1, 'UTF8') IN {c}) > 0
                     OR strpos(encode({c}, 'hex'), lower($1)) > 0"
            )
        } else {
            format!("SELECT count(*) FROM {t} WHERE strpos({c}::text, $1) > 0")
        };
        for (what, needle) in &needles {
            let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(sql.clone()))
                .bind(needle)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(n, 0, "the {what} is stored in {table}.{column}");
        }
        scanned += 1;
    }
    assert!(scanned >= 20, "scanned {scanned} columns");

    // What is stored is the SHA-256 of the token.
    for (table, id, secret) in [
        ("api_keys", &key_id, &key),
        ("api_keys", &admin_key_id, &admin_key),
        ("enrollment_tokens", &token_id, &enrollment),
        ("agents", &agent_id, &agent),
    ] {
        let (stored,): (Vec<u8>,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT token_sha256 FROM {table} WHERE id = $1::uuid"
        )))
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            stored,
            Sha256::digest(secret.as_bytes()).to_vec(),
            "{table} {id} stores sha256(token)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrollment_tokens_keep_their_use_limit_under_concurrent_enrollment() {
    let app = spawn_app().await;
    let (token_id, token) = enrollment_token(&app, json!({"label": "three", "max_uses": 3})).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
        set.spawn(async move {
            let r = client
                .post(format!("{base}/v1/agents/enroll"))
                .json(&json!({"token": token, "fingerprint": device_fingerprint(&format!("race-{i}"))}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, ct, r.json::<Value>().await.unwrap())
        });
    }
    let mut enrolled = 0;
    let mut refused = 0;
    for (status, ct, body) in set.join_all().await {
        match status {
            StatusCode::CREATED => enrolled += 1,
            StatusCode::UNAUTHORIZED => {
                assert_eq!(ct, "application/problem+json");
                assert!(
                    body["detail"].as_str().unwrap().contains("no uses left"),
                    "{body}"
                );
                refused += 1;
            }
            s => panic!("an enrollment answered {s}: {body}"),
        }
    }
    assert_eq!((enrolled, refused), (3, 17));
    let agents = scalar(
        &app,
        "SELECT count(*) FROM agents WHERE enrollment_token_id = $1::uuid",
        &token_id,
    )
    .await;
    assert_eq!(agents, 3, "exactly max_uses agents enrolled with the token");
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM devices WHERE name = $1",
            "Pixel Test"
        )
        .await,
        3,
        "refused enrollments created no devices"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT uses::bigint FROM enrollment_tokens WHERE id = $1::uuid",
            &token_id
        )
        .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_and_revoked_enrollment_tokens_are_refused() {
    let app = spawn_app().await;
    let (expired_id, expired) =
        enrollment_token(&app, json!({"label": "old", "max_uses": 10})).await;
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&expired_id)
    .execute(&mut conn)
    .await
    .unwrap();
    // And one that expires by its own short lifetime.
    let (_, short) =
        enrollment_token(&app, json!({"label": "short", "ttl_s": 1, "max_uses": 10})).await;
    let (revoked_id, revoked) =
        enrollment_token(&app, json!({"label": "gone", "max_uses": 10})).await;
    delete(&app, &format!("/v1/enrollment-tokens/{revoked_id}")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for (token, needle) in [
        (expired.as_str(), "expired"),
        (short.as_str(), "expired"),
        (revoked.as_str(), "revoked"),
    ] {
        // Concurrently too: no race lets one through.
        let mut set = tokio::task::JoinSet::new();
        for i in 0..5 {
            let (client, base, token) = (app.client.clone(), app.base.clone(), token.to_string());
            set.spawn(async move {
                client
                    .post(format!("{base}/v1/agents/enroll"))
                    .json(
                        &json!({"token": token, "fingerprint": device_fingerprint(&format!("late-{i}"))}),
                    )
                    .send()
                    .await
                    .unwrap()
            });
        }
        for r in set.join_all().await {
            let p = expect_problem(r, StatusCode::UNAUTHORIZED).await;
            assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
        }
    }
    let (agents,): (i64,) = sqlx::query_as("SELECT count(*) FROM agents")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(agents, 0);
    let (uses,): (i64,) =
        sqlx::query_as("SELECT coalesce(sum(uses), 0)::bigint FROM enrollment_tokens")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(uses, 0, "refusals spend no uses");
}

#[tokio::test]
async fn revoked_agents_and_api_keys_are_refused_at_once() {
    let app = spawn_app().await;
    let (_, enrollment) = enrollment_token(&app, json!({"label": "x", "max_uses": 5})).await;
    let (agent, agent_id, _) = enroll(&app, &enrollment, "revoke-me").await;
    let empty = json!({});
    let heartbeat = || app.post_json("/v1/agents/heartbeat", Some(&agent), &empty);
    assert_eq!(heartbeat().await.status(), StatusCode::OK);
    delete(&app, &format!("/v1/agents/{agent_id}")).await;
    let p = expect_problem(heartbeat().await, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    expect_problem(
        app.post_json("/v1/agents/jobs/claim", Some(&agent), &json!({"wait_s": 0}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_problem(
        app.get("/v1/whoami", Some(&agent)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    for role in ["user", "admin"] {
        let (id, key) = app.create_key(role).await;
        let path = if role == "admin" {
            "/v1/api-keys"
        } else {
            "/v1/spaces"
        };
        assert_eq!(app.get(path, Some(&key)).await.status(), StatusCode::OK);
        delete(&app, &format!("/v1/api-keys/{id}")).await;
        let p = expect_problem(app.get(path, Some(&key)).await, StatusCode::UNAUTHORIZED).await;
        assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
        // Revoking a key does not touch the others.
        assert_eq!(
            app.get(path, Some(ADMIN_TOKEN)).await.status(),
            StatusCode::OK
        );
    }
}

/// An agent revoked while its claim is waiting must not be handed a job when one turns up
/// later in the same long poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_in_flight_hands_no_job_to_an_agent_revoked_meanwhile() {
    let app = spawn_app().await;
    let (_, enrollment) = enrollment_token(&app, json!({"label": "x", "max_uses": 5})).await;
    let (agent, agent_id, device) = enroll(&app, &enrollment, "poller").await;
    let block = gpulut_tables::SearchSpace::moga_mbv3().distinct_blocks()[0]
        .block
        .key
        .to_string();
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-direct"],
                    "blocks": [block], "batch_size": 1}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // The job is held by an earlier holder whose lease runs out 1 s from now, in the middle of
    // the poll (the test cadence's longest wait is 2 s).
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "UPDATE jobs SET state = 'leased', attempt = 1, lease_id = gen_random_uuid(),
             lease_expires_at = now() + interval '1 second'
         WHERE device_id = $1::uuid",
    )
    .bind(&device)
    .execute(&mut conn)
    .await
    .unwrap();
    let poll = {
        let (client, base, agent) = (app.client.clone(), app.base.clone(), agent.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/agents/jobs/claim"))
                .bearer_auth(agent)
                .json(&json!({"wait_s": 2.0}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    delete(&app, &format!("/v1/agents/{agent_id}")).await;
    let r = poll.await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_ne!(
        status,
        StatusCode::OK,
        "the revoked agent was handed a job: {body}"
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("revoked"), "{body}");
    let (held,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs WHERE leased_by = $1::uuid")
        .bind(&agent_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, 0, "no job leased to the revoked agent");
}
