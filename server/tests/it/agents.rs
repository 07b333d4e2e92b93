//! The agent protocol over HTTP: enrollment, leases, fenced and idempotent uploads, and the
//! table entries they produce. (The real agent binary runs against the server in the agent
//! crate's end-to-end tests.)

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{ADMIN_TOKEN, TestApp, device_fingerprint, expect_problem, spawn_app};

async fn enrollment_token(app: &TestApp, body: Value) -> String {
    let r = app
        .post_json("/v1/enrollment-tokens", Some(ADMIN_TOKEN), &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Enrolls a device; returns (agent token, device id).
pub(crate) async fn enroll(app: &TestApp, hardware_id: &str) -> (String, String) {
    let token = enrollment_token(
        app,
        json!({"label": "lab", "max_uses": 5, "device_labels": ["lab"]}),
    )
    .await;
    let r = app
        .post_json(
            "/v1/agents/enroll",
            None,
            &json!({"token": token, "fingerprint": device_fingerprint(hardware_id)}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert!(v["token"].as_str().unwrap().starts_with("gpulut_agent_"));
    (
        v["token"].as_str().unwrap().to_string(),
        v["device_id"].as_str().unwrap().to_string(),
    )
}

const BLOCKS: [&str; 3] = [
    "conv-i224x224x3-o112x112x16-k3-s2-hswish",
    "dwsep-i112x112x16-o112x112x16-k3-s1-relu",
    "gap-i7x7x960",
];

async fn campaign(app: &TestApp, device: &str, blocks: &[&str], batch: usize) -> String {
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-direct"],
                    "blocks": blocks, "batch_size": batch, "protocol": {"min_runs": 5, "max_runs": 10}}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn claim(app: &TestApp, agent: &str, wait_s: f64) -> Option<Value> {
    let r = app
        .post_json(
            "/v1/agents/jobs/claim",
            Some(agent),
            &json!({"wait_s": wait_s}),
        )
        .await;
    match r.status() {
        StatusCode::OK => Some(r.json().await.unwrap()),
        StatusCode::NO_CONTENT => None,
        s => panic!("claim answered {s}: {}", r.text().await.unwrap()),
    }
}

/// A measurement the way the agent reports it.
fn series(key: &str, samples: &[f64]) -> Value {
    json!({"key": key, "kind": "block", "framework": "wgpu-direct", "framework_version": "1",
           "verified": true, "max_relative_error": 1e-6, "tolerance": 1e-4, "median_ms": samples[0],
           "samples": samples, "timer": "gpu-timestamp", "warmup_runs": 10, "pipeline_ms": 2.0,
           "dispatches": 3, "flops": 1000, "bytes": 1000})
}

fn upload(job: &Value, results: Vec<Value>) -> Value {
    json!({"attempt": job["attempt"], "lease_id": job["lease_id"], "agent_version": "0.1.0", "results": results})
}

async fn post_result(app: &TestApp, agent: &str, job: &Value, body: &Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/agents/jobs/{}/result", job["id"].as_str().unwrap()),
        Some(agent),
        body,
    )
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

/// Median, type-7 quantiles and the rest, computed here independently of the server's code.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[tokio::test]
async fn enrollment_keeps_devices_and_refuses_bad_tokens() {
    let app = spawn_app().await;
    let (first, device) = enroll(&app, "phone-1").await;
    let (second, again) = enroll(&app, "phone-1").await;
    assert_eq!(device, again, "re-enrolling keeps the device id");
    expect_problem(
        app.post_json("/v1/agents/heartbeat", Some(&first), &json!({}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = app
        .post_json(
            "/v1/agents/heartbeat",
            Some(&second),
            &json!({"agent_version": "0.1.0"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["cadence"]["lease_s"], 3.0);

    let devices: Value = app
        .get("/v1/devices", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["id"], device.as_str());
    assert_eq!(devices[0]["status"], "online");
    assert_eq!(devices[0]["name"], "Pixel Test");
    assert_eq!(devices[0]["labels"], json!(["lab"]));

    let once = enrollment_token(&app, json!({"label": "once", "max_uses": 1})).await;
    let short = enrollment_token(&app, json!({"label": "short", "ttl_s": 1})).await;
    let revoked_token = enrollment_token(&app, json!({"label": "revoked"})).await;
    let tokens: Value = app
        .get("/v1/enrollment-tokens", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "revoked")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !tokens.to_string().contains(&revoked_token),
        "listings never show secrets"
    );
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/enrollment-tokens/{id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ok = app
        .post_json(
            "/v1/agents/enroll",
            None,
            &json!({"token": once, "fingerprint": device_fingerprint("phone-2")}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let devices_before = count(&app, "SELECT count(*) FROM devices").await;
    let agents_before = count(&app, "SELECT count(*) FROM agents").await;
    for (token, needle) in [
        (once.as_str(), "no uses left"),
        (short.as_str(), "expired"),
        (revoked_token.as_str(), "revoked"),
        ("gpulut_enroll_nope", "unknown"),
    ] {
        let p = expect_problem(
            app.post_json(
                "/v1/agents/enroll",
                None,
                &json!({"token": token, "fingerprint": device_fingerprint("phone-3")}),
            )
            .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
    }
    // A fingerprint with missing fields.
    let mut partial = device_fingerprint("phone-4");
    partial["gpu"].as_object_mut().unwrap().remove("backend");
    let token = enrollment_token(&app, json!({"label": "x"})).await;
    expect_problem(
        app.post_json(
            "/v1/agents/enroll",
            None,
            &json!({"token": token, "fingerprint": partial}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM devices").await,
        devices_before,
        "nothing written"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM agents").await,
        agents_before
    );
    // Enrollment tokens are only for admins.
    let (_, user) = app.create_key("user").await;
    expect_problem(
        app.post_json("/v1/enrollment-tokens", Some(&user), &json!({"label": "x"}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn results_fill_the_table_once_and_stale_attempts_are_fenced() {
    let app = spawn_app().await;
    let (agent, device) = enroll(&app, "phone-1").await;
    let campaign_id = campaign(&app, &device, &BLOCKS, 2).await;
    let c: Value = app
        .get(&format!("/v1/campaigns/{campaign_id}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (c["state"].as_str(), c["progress"]["jobs"].as_i64()),
        (Some("queued"), Some(2))
    );

    let job = claim(&app, &agent, 0.0).await.expect("a job");
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["kind"], "blocks");
    assert_eq!(job["protocol"]["min_runs"], 5);
    let items: Vec<String> = serde_json::from_value(job["items"].clone()).unwrap();
    assert_eq!(items.len(), 2);
    let samples = [2.0, 1.0, 4.0, 3.0, 5.0, 100.0, 2.5];
    let results: Vec<Value> = items.iter().map(|k| series(k, &samples)).collect();
    let body = upload(&job, results);
    let r = post_result(&app, &agent, &job, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"stored": 2, "failed": 0, "duplicate": false})
    );

    // The same upload again: answered 200, stored once.
    let r = post_result(&app, &agent, &job, &body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(count(&app, "SELECT count(*) FROM measurements").await, 2);

    // Entries equal an independent computation on the samples.
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (n, median, p10, p90, min, mad): (i32, f64, f64, f64, f64, f64) = sqlx::query_as(
        "SELECT count, median_ms, p10_ms, p90_ms, min_ms, mad_ms FROM table_entries WHERE block_key = $1",
    )
    .bind(&items[0])
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(n, 7);
    assert_eq!(median, 3.0);
    assert!(
        (p10 - quantile(&sorted, 0.1)).abs() < 1e-12
            && (p90 - quantile(&sorted, 0.9)).abs() < 1e-12
    );
    assert_eq!(min, 1.0);
    // |x - 3|: 1 2 1 0 2 97 0.5 -> sorted 0 0.5 1 1 2 2 97 -> median 1
    assert_eq!(mad, 1.0);

    // Second job: let its lease run out; the next claim gets attempt 2 and fences attempt 1 out.
    let stale = claim(&app, &agent, 0.0).await.expect("the second job");
    assert_eq!(
        claim(&app, &agent, 0.0).await,
        None,
        "nothing else to hand out while it is leased"
    );
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let fresh = claim(&app, &agent, 0.0)
        .await
        .expect("the expired job again");
    assert_eq!(
        (fresh["id"].clone(), fresh["attempt"].clone()),
        (stale["id"].clone(), json!(2))
    );
    let key = stale["items"][0].as_str().unwrap();
    let p = expect_problem(
        post_result(
            &app,
            &agent,
            &stale,
            &upload(&stale, vec![series(key, &[1.0])]),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["code"], "stale_lease");
    let renew = app
        .post_json(
            &format!("/v1/agents/jobs/{}/lease", stale["id"].as_str().unwrap()),
            Some(&agent),
            &json!({"attempt": 1, "lease_id": stale["lease_id"]}),
        )
        .await;
    expect_problem(renew, StatusCode::CONFLICT).await;
    let renew = app
        .post_json(
            &format!("/v1/agents/jobs/{}/lease", fresh["id"].as_str().unwrap()),
            Some(&agent),
            &json!({"attempt": 2, "lease_id": fresh["lease_id"]}),
        )
        .await;
    assert_eq!(renew.status(), StatusCode::OK);
    let r = post_result(
        &app,
        &agent,
        &fresh,
        &upload(&fresh, vec![series(key, &[1.0, 1.5])]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(count(&app, "SELECT count(*) FROM measurements").await, 3);
    assert_eq!(count(&app, "SELECT count(*) FROM table_entries").await, 3);

    let c: Value = app
        .get(&format!("/v1/campaigns/{campaign_id}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(
        (
            c["progress"]["done"].as_i64(),
            c["progress"]["items_done"].as_i64()
        ),
        (Some(2), Some(3))
    );

    // Measured blocks are skipped by the next campaign unless forced.
    let r = app
        .post_json("/v1/campaigns", Some(ADMIN_TOKEN),
                   &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-direct"], "blocks": BLOCKS}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["progress"]["jobs"], 0);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let (agent, device) = enroll(&app, "phone-1").await;
    let (other, _) = enroll(&app, "phone-2").await;
    campaign(&app, &device, &BLOCKS[..1], 1).await;
    let job = claim(&app, &agent, 0.0).await.unwrap();
    let key = BLOCKS[0];
    let bad: Vec<(Value, &str)> = vec![
        (upload(&job, vec![series(key, &[1.0, -2.0])]), "samples[1]"),
        (upload(&job, vec![series(key, &[0.0])]), "samples[0]"),
        (upload(&job, vec![series(key, &[1.0e9])]), "samples[0]"),
        (
            upload(&job, vec![series("gap-i1x1x1", &[1.0])]),
            "not an item",
        ),
        (
            upload(&job, vec![series(key, &[1.0]), series(key, &[1.0])]),
            "2 results",
        ),
        (upload(&job, vec![]), "0 results"),
        (
            upload(
                &job,
                vec![{
                    let mut s = series(key, &[1.0]);
                    s["framework"] = json!("wgpu-fused");
                    s
                }],
            ),
            "framework",
        ),
        (
            upload(
                &job,
                vec![{
                    let mut s = series(key, &[1.0]);
                    s["verified"] = json!(false);
                    s
                }],
            ),
            "no samples",
        ),
        (
            upload(
                &job,
                vec![{
                    let mut s = series(key, &[1.0]);
                    s["samples"] = json!([]);
                    s
                }],
            ),
            "1 to",
        ),
    ];
    for (body, needle) in bad {
        let p = expect_problem(
            post_result(&app, &agent, &job, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{needle}: {p}"
        );
    }
    // Non-finite samples cannot even be spelled in JSON: null where a number belongs.
    let mut body = upload(&job, vec![series(key, &[1.0])]);
    body["results"][0]["samples"] = json!([1.0, null]);
    expect_problem(
        post_result(&app, &agent, &job, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // An agent uploading for a job it does not hold.
    let p = expect_problem(
        post_result(&app, &other, &job, &upload(&job, vec![series(key, &[1.0])])).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["code"], "stale_lease");
    // Oversized.
    let huge = upload(&job, vec![series(key, &vec![1.0; 100_000])]);
    expect_problem(
        post_result(&app, &agent, &job, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // No token, or a user key, on agent endpoints.
    expect_problem(
        post_result(&app, ADMIN_TOKEN, &job, &upload(&job, vec![])).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(count(&app, "SELECT count(*) FROM measurements").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM table_entries").await, 0);
    // A failed verification is recorded, never stored as a timing.
    let mut failed = series(key, &[1.0]);
    failed["verified"] = json!(false);
    failed["samples"] = json!([]);
    failed["error"] = json!("max relative error 0.3 above 1e-4");
    let r = post_result(&app, &agent, &job, &upload(&job, vec![failed])).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"stored": 0, "failed": 1, "duplicate": false})
    );
    assert_eq!(count(&app, "SELECT count(*) FROM measurements").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE last_error LIKE 'failed: %'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn long_polls_wait_revocation_locks_out_and_cancel_drops_jobs() {
    let app = spawn_app().await;
    let (agent, device) = enroll(&app, "phone-1").await;
    let start = std::time::Instant::now();
    assert_eq!(claim(&app, &agent, 1.0).await, None);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "the claim waited"
    );

    // A job created while an agent waits is handed out during the wait.
    let waiting = {
        let base = app.base.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/agents/jobs/claim"))
                .bearer_auth(agent)
                .json(&json!({"wait_s": 2.0}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let campaign_id = campaign(&app, &device, &BLOCKS[..2], 1).await;
    assert_eq!(waiting.await.unwrap(), StatusCode::OK);

    // Cancel: the held job answers 410, the queued one is never handed out.
    let held: Value = {
        let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
        let (id, attempt, lease): (uuid::Uuid, i32, uuid::Uuid) =
            sqlx::query_as("SELECT id, attempt, lease_id FROM jobs WHERE state = 'leased'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        json!({"id": id.to_string(), "attempt": attempt, "lease_id": lease.to_string()})
    };
    let r = app
        .request(
            Method::POST,
            &format!("/v1/campaigns/{campaign_id}/cancel"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");
    let key = BLOCKS[0];
    expect_problem(
        post_result(
            &app,
            &agent,
            &held,
            &upload(&held, vec![series(key, &[1.0])]),
        )
        .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(claim(&app, &agent, 0.0).await, None);

    // Revoking an agent locks it out at once.
    let agents: Value = app
        .get("/v1/agents", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let id = agents[0]["id"].as_str().unwrap();
    app.request(
        Method::DELETE,
        &format!("/v1/agents/{id}"),
        Some(ADMIN_TOKEN),
    )
    .send()
    .await
    .unwrap();
    let p = expect_problem(
        app.post_json("/v1/agents/heartbeat", Some(&agent), &json!({}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn bad_campaigns_are_refused() {
    let app = spawn_app().await;
    let (_, device) = enroll(&app, "phone-1").await;
    for (body, needle) in [
        (json!({"space": "nope", "device": device}), "nope"),
        (
            json!({"space": "moga-mbv3", "device": "no-such-phone"}),
            "no-such-phone",
        ),
        (
            json!({"space": "moga-mbv3", "device": {"labels": ["missing"]}}),
            "labels",
        ),
        (
            json!({"space": "moga-mbv3", "device": device, "frameworks": ["tflite-gpu"]}),
            "tflite-gpu",
        ),
        (
            json!({"space": "moga-mbv3", "device": device, "blocks": ["conv-nope"]}),
            "conv-nope",
        ),
        (
            json!({"space": "moga-mbv3", "device": device, "protocol": {"min_runs": 0}}),
            "min_runs",
        ),
        (
            json!({"space": "moga-mbv3", "device": device, "protocol": {"max_seconds": -1}}),
            "max_seconds",
        ),
        (
            json!({"space": "moga-mbv3", "device": device, "batch_size": 0}),
            "batch_size",
        ),
    ] {
        let p = expect_problem(
            app.post_json("/v1/campaigns", Some(ADMIN_TOKEN), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{needle}: {p}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) FROM campaigns").await, 0);
    // Labels select devices; validation adds whole networks.
    let r = app
        .post_json("/v1/campaigns", Some(ADMIN_TOKEN),
                   &json!({"space": "moga-mbv3", "device": {"labels": ["lab"]}, "frameworks": ["wgpu-fused"],
                           "validation": {"random": 6, "references": true}}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.unwrap();
    // 126 blocks in jobs of 16 = 8 jobs; 4 references + 6 random networks in jobs of 4 = 3 jobs.
    assert_eq!(c["progress"]["jobs"], 11);
    assert_eq!(c["progress"]["items"], 136);
}
