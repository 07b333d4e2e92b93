//! The authorization matrix: every operation of the router (read from its OpenAPI document, so
//! a new endpoint cannot be left out) called by every kind of caller, against real state (seeded
//! tables, two devices with enrolled agents, a job that agent A holds). The policy table below is
//! the specification; the router and the table must list the same operations.
//!
//! Tokens live in separate realms: API keys and the bootstrap token are not agent credentials and
//! agent tokens are not API credentials, so a token of the other realm is refused as unknown
//! (401), like any unknown token. Within the API-key realm a user key on an admin endpoint is a
//! known caller without the role (403). An agent holding another device's job with its lease id
//! in hand is fenced (409, `stale_lease`) and leaves the holder's lease untouched.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{ADMIN_TOKEN, TestApp, device_fingerprint, seed_entries, spawn_app};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No token needed.
    Public,
    /// Any valid credential: bootstrap, API key of either role, or agent.
    AnyToken,
    /// A user or admin API key, or the bootstrap token.
    User,
    /// An admin API key or the bootstrap token.
    Admin,
    /// Any enrolled, live agent.
    Agent,
    /// Only the agent that holds the job's lease.
    AgentOwnJob,
}

use Access::*;

/// The policy: (method, path template, who may call it).
const POLICY: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    ("GET", "/metrics", Public),
    ("POST", "/v1/api-keys", Admin),
    ("GET", "/v1/api-keys", Admin),
    ("DELETE", "/v1/api-keys/{id}", Admin),
    ("GET", "/v1/whoami", AnyToken),
    ("GET", "/v1/spaces", User),
    ("GET", "/v1/spaces/{space}", User),
    ("GET", "/v1/spaces/{space}/blocks", User),
    ("POST", "/v1/spaces/{space}/analyze", User),
    ("POST", "/v1/searches", User),
    ("GET", "/v1/searches", User),
    ("GET", "/v1/searches/{id}", User),
    ("POST", "/v1/searches/{id}/cancel", User),
    ("GET", "/v1/searches/{id}/front", User),
    ("POST", "/v1/accuracy-samples", User),
    ("GET", "/v1/accuracy-samples/{id}", User),
    ("POST", "/v1/enrollment-tokens", Admin),
    ("GET", "/v1/enrollment-tokens", Admin),
    ("DELETE", "/v1/enrollment-tokens/{id}", Admin),
    // The enrollment token travels in the body; a bearer header is neither needed nor looked at.
    ("POST", "/v1/agents/enroll", Public),
    ("POST", "/v1/agents/heartbeat", Agent),
    ("POST", "/v1/agents/jobs/claim", Agent),
    ("POST", "/v1/agents/jobs/{id}/lease", AgentOwnJob),
    ("POST", "/v1/agents/jobs/{id}/release", AgentOwnJob),
    ("POST", "/v1/agents/jobs/{id}/result", AgentOwnJob),
    ("GET", "/v1/agents", Admin),
    ("DELETE", "/v1/agents/{id}", Admin),
    ("GET", "/v1/devices", User),
    ("POST", "/v1/devices", Admin),
    ("GET", "/v1/devices/{id}", User),
    ("POST", "/v1/campaigns", Admin),
    ("GET", "/v1/campaigns", User),
    ("GET", "/v1/campaigns/{id}", User),
    ("POST", "/v1/campaigns/{id}/cancel", Admin),
    ("GET", "/v1/tables", User),
    ("GET", "/v1/tables/{device}/{framework}", User),
    ("POST", "/v1/tables/{device}/{framework}/predict", User),
    ("GET", "/v1/tables/{device}/{framework}/entries/{key}", User),
    ("GET", "/v1/tables/{device}/{framework}/matrix", User),
    ("POST", "/v1/tables/{device}/{framework}/import", Admin),
    ("GET", "/v1/tables/{device}/{framework}/validation", User),
    ("POST", "/v1/predict", User),
    ("GET", "/v1/tables/compare", User),
    ("GET", "/v1/devices/{device}/framework-scatter", User),
];

/// Served outside the OpenAPI document (the document itself, its docs page, the dashboard's
/// static files, which hold no data: the dashboard calls the API with the user's token).
const UNDOCUMENTED_PUBLIC: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/docs/"),
    ("GET", "/"),
    ("GET", "/ui/style.css"),
    ("GET", "/ui/app.js"),
];

const IDENTITIES: &[&str] = &[
    "none",
    "basic_scheme",
    "empty_bearer",
    "garbage",
    "revoked_key",
    "revoked_agent",
    "agent_b",
    "user",
    "admin_key",
    "bootstrap",
    // Last: its allowed calls consume jobs and leases the others are checked against.
    "agent_a",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Allowed,
    /// 401 problem.
    Unauthorized,
    /// 403 problem.
    Forbidden,
    /// Another agent's job: 409 `stale_lease`, the holder's lease unchanged.
    Fenced,
}

fn expect(access: Access, identity: &str) -> Expect {
    use Expect::*;
    let invalid = matches!(
        identity,
        "none" | "basic_scheme" | "empty_bearer" | "garbage" | "revoked_key" | "revoked_agent"
    );
    let api = matches!(identity, "user" | "admin_key" | "bootstrap");
    match access {
        Public => Allowed,
        _ if invalid => Unauthorized,
        AnyToken => Allowed,
        User if api => Allowed,
        Admin if identity == "user" => Forbidden,
        Admin if api => Allowed,
        // Agent tokens are not API credentials.
        User | Admin => Unauthorized,
        // API credentials are not agent tokens.
        Agent | AgentOwnJob if api => Unauthorized,
        Agent => Allowed,
        AgentOwnJob if identity == "agent_a" => Allowed,
        AgentOwnJob => Fenced,
    }
}

/// A job leased to agent A: what a lease-bearing request sends.
#[derive(Clone)]
struct Lease {
    id: String,
    attempt: Value,
    lease_id: Value,
    items: Vec<String>,
    framework: String,
}

struct World {
    tokens: BTreeMap<&'static str, String>,
    space: &'static str,
    device_a: String,
    device_b: String,
    agent_a: String,
    campaign: String,
    search: String,
    sample_set: String,
    block_keys: Vec<String>,
    /// The job A holds while everybody else tries it.
    held: Lease,
    /// Spent by re-enrolling one throwaway device.
    enroll_token: String,
    throwaways: usize,
}

async fn json_of(r: reqwest::Response, want: StatusCode, what: &str) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, want, "{what}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn admin_post(app: &TestApp, path: &str, body: &Value, want: StatusCode) -> Value {
    json_of(
        app.post_json(path, Some(ADMIN_TOKEN), body).await,
        want,
        path,
    )
    .await
}

async fn enrollment_token(app: &TestApp, max_uses: i32) -> String {
    admin_post(
        app,
        "/v1/enrollment-tokens",
        &json!({"label": "matrix", "max_uses": max_uses}),
        StatusCode::CREATED,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Enrolls a device; returns (agent token, agent id, device id).
async fn enroll(app: &TestApp, token: &str, hardware_id: &str) -> (String, String, String) {
    let v = json_of(
        app.post_json(
            "/v1/agents/enroll",
            None,
            &json!({"token": token, "fingerprint": device_fingerprint(hardware_id)}),
        )
        .await,
        StatusCode::CREATED,
        "enroll",
    )
    .await;
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    (s("token"), s("agent_id"), s("device_id"))
}

async fn claim(app: &TestApp, agent: &str) -> Lease {
    let job = json_of(
        app.post_json("/v1/agents/jobs/claim", Some(agent), &json!({"wait_s": 0}))
            .await,
        StatusCode::OK,
        "claim",
    )
    .await;
    Lease {
        id: job["id"].as_str().unwrap().to_string(),
        attempt: job["attempt"].clone(),
        lease_id: job["lease_id"].clone(),
        items: job["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
        framework: job["framework"].as_str().unwrap().to_string(),
    }
}

fn upload(lease: &Lease) -> Value {
    let results: Vec<Value> = lease
        .items
        .iter()
        .map(|key| {
            json!({"key": key, "kind": "block", "framework": lease.framework, "framework_version": "1",
                   "verified": true, "max_relative_error": 1e-6, "tolerance": 1e-4, "median_ms": 1.0,
                   "samples": [1.0, 1.1, 0.9, 1.0, 1.05], "timer": "gpu-timestamp", "warmup_runs": 3,
                   "pipeline_ms": 2.0, "dispatches": 1, "flops": 1000, "bytes": 1000})
        })
        .collect();
    json!({"attempt": lease.attempt, "lease_id": lease.lease_id, "agent_version": "0.1.0",
           "results": results})
}

async fn campaign(app: &TestApp, device: &str, blocks: &[String]) -> String {
    admin_post(
        app,
        "/v1/campaigns",
        &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-direct"],
                "blocks": blocks, "batch_size": 1, "protocol": {"min_runs": 5, "max_runs": 10}}),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn search_body(device: &str) -> Value {
    json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-fused"}],
           "accuracy": {"kind": "proxy"}, "population": 8, "generations": 2, "seed": 1})
}

async fn search(app: &TestApp, device: &str) -> String {
    admin_post(
        app,
        "/v1/searches",
        &search_body(device),
        StatusCode::ACCEPTED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What any call could change that matters here: rows created, keys, tokens and agents
/// revoked, campaigns and searches cancelled, jobs handed out, measurements stored, and the
/// held job's lease to the last field. Cheap enough to take around every refused call (a
/// digest of every row would make the matrix slow).
async fn effects(conn: &mut PgConnection, held: &str) -> String {
    let (row,): (String,) = sqlx::query_as(
        "SELECT concat_ws(' ',
             'keys', (SELECT count(*) FROM api_keys), (SELECT count(*) FROM api_keys WHERE revoked_at IS NULL),
             'enrollment', (SELECT count(*) FROM enrollment_tokens),
                 (SELECT count(*) FROM enrollment_tokens WHERE revoked_at IS NULL),
                 (SELECT coalesce(sum(uses), 0) FROM enrollment_tokens),
             'agents', (SELECT count(*) FROM agents), (SELECT count(*) FROM agents WHERE revoked_at IS NULL),
             'devices', (SELECT count(*) FROM devices),
             'campaigns', (SELECT count(*) FROM campaigns), (SELECT count(*) FROM campaigns WHERE state = 'cancelled'),
             'jobs', (SELECT count(*) FROM jobs), (SELECT coalesce(sum(attempt), 0) FROM jobs),
                 (SELECT count(*) FROM jobs WHERE state = 'leased'),
             'searches', (SELECT count(*) FROM searches), (SELECT count(*) FROM searches WHERE state = 'cancelled'),
             'samples', (SELECT count(*) FROM accuracy_sample_sets),
             'measurements', (SELECT count(*) FROM measurements), (SELECT count(*) FROM table_entries),
             'held', (SELECT concat_ws('/', state, attempt, lease_id, leased_by, lease_expires_at)
                      FROM jobs WHERE id = $1::uuid))",
    )
    .bind(held)
    .fetch_one(conn)
    .await
    .unwrap();
    row
}

async fn extend_held_lease(app: &TestApp, job: &str) {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE jobs SET lease_expires_at = now() + interval '1 hour' WHERE id = $1::uuid")
        .bind(job)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// End-to-end timings of the reference networks on A's fused table and the calibration
/// fitted from them, so the validation endpoint has something to show.
async fn seed_validation(app: &TestApp, device: &str) {
    let device = uuid::Uuid::parse_str(device).unwrap();
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    for (i, net) in ["MoGA-A", "MoGA-B", "MoGA-C", "MobileNetV3-Large"]
        .iter()
        .enumerate()
    {
        let ms = 6.0 + i as f64 * 0.7;
        sqlx::query(
            "INSERT INTO measurements (device_id, framework, framework_version, kind, key, space, source,
                 samples_ms, timer, verified, measured_at)
             VALUES ($1, 'wgpu-fused', '1', 'network', $2, 'moga-mbv3', 'agent', $3, 'wall', true, now())",
        )
        .bind(device)
        .bind(net)
        .bind(vec![ms, ms * 1.01, ms * 0.99])
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let db = gpulut_server::db::Db::connect_lazy(&app.database_url, 2).unwrap();
    let fitted = db
        .refit_calibration(
            device,
            "wgpu-fused",
            &gpulut_tables::SearchSpace::moga_mbv3(),
        )
        .await
        .unwrap();
    assert!(fitted.is_some(), "four networks fit a calibration");
}

async fn setup(app: &TestApp) -> World {
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    let block_keys: Vec<String> = space
        .distinct_blocks()
        .iter()
        .map(|b| b.block.key.to_string())
        .collect();
    let enroll_token = enrollment_token(app, 1000).await;
    let (agent_a_token, agent_a, device_a) = enroll(app, &enroll_token, "matrix-a").await;
    let (agent_b_token, _, device_b) = enroll(app, &enroll_token, "matrix-b").await;
    let (revoked_agent, revoked_agent_id, _) = enroll(app, &enroll_token, "matrix-revoked").await;
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/agents/{revoked_agent_id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Tables for reads, predictions and searches; the campaign measures another framework.
    for d in [&device_a, &device_b] {
        let id = uuid::Uuid::parse_str(d).unwrap();
        seed_entries(app, id, "wgpu-fused", 1.0).await;
        seed_entries(app, id, "tflite-gpu", 1.5).await;
    }
    seed_validation(app, &device_a).await;
    let (_, user) = app.create_key("user").await;
    let (_, admin_key) = app.create_key("admin").await;
    let (revoked_id, revoked_key) = app.create_key("user").await;
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{revoked_id}"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Six one-block jobs for A: one held throughout, the rest for A's own consuming calls.
    let campaign = campaign(app, &device_a, &block_keys[..6]).await;
    let held = claim(app, &agent_a_token).await;
    extend_held_lease(app, &held.id).await;
    let search = search(app, &device_a).await;
    let samples: Vec<Value> = (0..12u64)
        .map(|i| {
            let choices: Vec<u64> = (0..14u64).map(|l| (i * 5 + l * 7) % 12).collect();
            json!({"arch": {"choices": choices}, "top1": 70.0 + i as f64 * 0.1})
        })
        .collect();
    let sample_set = admin_post(
        app,
        "/v1/accuracy-samples",
        &json!({"space": "moga-mbv3", "label": "matrix", "samples": samples}),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let tokens = BTreeMap::from([
        ("garbage", "not-a-token".to_string()),
        ("revoked_key", revoked_key),
        ("revoked_agent", revoked_agent),
        ("agent_a", agent_a_token),
        ("agent_b", agent_b_token),
        ("user", user),
        ("admin_key", admin_key),
        ("bootstrap", ADMIN_TOKEN.to_string()),
    ]);
    World {
        tokens,
        space: "moga-mbv3",
        device_a,
        device_b,
        agent_a,
        campaign,
        search,
        sample_set,
        block_keys,
        held,
        enroll_token,
        throwaways: 0,
    }
}

/// The concrete request for one cell: real ids in the path, a minimal valid body. Calls that
/// consume what they touch (revocations, cancellations, uploads) get a throwaway resource of
/// their own when the caller is allowed to, so every allowed cell can succeed.
async fn prepare(
    app: &TestApp,
    w: &mut World,
    method: &str,
    template: &str,
    identity: &str,
    allowed: bool,
) -> (String, Option<Value>) {
    let lease_body = |l: &Lease| json!({"attempt": l.attempt, "lease_id": l.lease_id});
    let own_job = identity == "agent_a" && allowed;
    let consumes = matches!(
        template,
        "/v1/agents/jobs/claim" | "/v1/agents/jobs/{id}/release" | "/v1/agents/jobs/{id}/result"
    );
    if own_job && consumes {
        // A's claims must not take back the held job should its short test lease run out.
        extend_held_lease(app, &w.held.id).await;
    }
    let fresh_job = if own_job && template != "/v1/agents/jobs/claim" && consumes {
        Some(claim(app, &w.tokens["agent_a"]).await)
    } else {
        None
    };
    let job = fresh_job.clone().unwrap_or_else(|| w.held.clone());
    let id: String = match (method, template) {
        ("DELETE", "/v1/api-keys/{id}") => app.create_key("user").await.0,
        ("DELETE", "/v1/enrollment-tokens/{id}") => admin_post(
            app,
            "/v1/enrollment-tokens",
            &json!({"label": "throwaway"}),
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string(),
        ("DELETE", "/v1/agents/{id}") => {
            w.throwaways += 1;
            let hw = format!("matrix-throwaway-{}", w.throwaways);
            enroll(app, &w.enroll_token, &hw).await.1
        }
        ("POST", "/v1/searches/{id}/cancel") => search(app, &w.device_a).await,
        ("POST", "/v1/campaigns/{id}/cancel") => {
            campaign(app, &w.device_b, &w.block_keys[6..7]).await
        }
        (_, t) if t.starts_with("/v1/searches/") => w.search.clone(),
        (_, t) if t.starts_with("/v1/accuracy-samples/") => w.sample_set.clone(),
        (_, t) if t.starts_with("/v1/campaigns/") => w.campaign.clone(),
        (_, t) if t.starts_with("/v1/devices/") => w.device_a.clone(),
        (_, t) if t.starts_with("/v1/agents/jobs/") => job.id.clone(),
        _ => String::new(),
    };
    let framework = if template.ends_with("/import") {
        "snpe"
    } else {
        "wgpu-fused"
    };
    let path = template
        .replace("{id}", &id)
        .replace("{space}", w.space)
        .replace("{device}", &w.device_a)
        .replace("{framework}", framework)
        .replace("{key}", &w.block_keys[0]);
    let path = match template {
        "/v1/tables/compare" => format!(
            "{path}?space=moga-mbv3&a={}/wgpu-fused&b={}/wgpu-fused",
            w.device_a, w.device_b
        ),
        "/v1/devices/{device}/framework-scatter" => {
            format!("{path}?space=moga-mbv3&a=wgpu-fused&b=tflite-gpu&n=20&seed=0")
        }
        _ => path,
    };
    let body = match (method, template) {
        ("GET" | "DELETE", _) => None,
        ("POST", "/v1/api-keys") => Some(json!({"label": "matrix", "role": "user"})),
        ("POST", "/v1/spaces/{space}/analyze") => Some(json!({"archs": ["MoGA-A"]})),
        ("POST", "/v1/searches") => Some(search_body(&w.device_a)),
        ("POST", "/v1/accuracy-samples") => {
            let samples: Vec<Value> = (0..10u64)
                .map(|i| json!({"arch": {"choices": vec![i % 12; 14]}, "top1": 70.0 + i as f64}))
                .collect();
            Some(json!({"space": "moga-mbv3", "label": "matrix", "samples": samples}))
        }
        ("POST", "/v1/enrollment-tokens") => Some(json!({"label": "matrix"})),
        ("POST", "/v1/agents/enroll") => Some(
            json!({"token": w.enroll_token, "fingerprint": device_fingerprint("matrix-reenrolled")}),
        ),
        ("POST", "/v1/agents/heartbeat") => Some(json!({})),
        ("POST", "/v1/agents/jobs/claim") => Some(json!({"wait_s": 0})),
        ("POST", "/v1/agents/jobs/{id}/lease" | "/v1/agents/jobs/{id}/release") => {
            Some(lease_body(&job))
        }
        ("POST", "/v1/agents/jobs/{id}/result") => Some(upload(&job)),
        ("POST", "/v1/devices") => Some(json!({"name": "matrix-manual"})),
        ("POST", "/v1/campaigns") => Some(
            json!({"space": "moga-mbv3", "device": w.device_b, "frameworks": ["wgpu-direct"],
                   "blocks": [w.block_keys[7]], "batch_size": 1}),
        ),
        ("POST", "/v1/searches/{id}/cancel" | "/v1/campaigns/{id}/cancel") => Some(json!({})),
        ("POST", "/v1/tables/{device}/{framework}/predict") => {
            Some(json!({"space": "moga-mbv3", "archs": ["MoGA-A"]}))
        }
        ("POST", "/v1/tables/{device}/{framework}/import") => {
            let rows: Vec<Value> = w.block_keys[..3]
                .iter()
                .map(|k| json!({"key": k, "samples_ms": [0.5, 0.6, 0.7]}))
                .collect();
            Some(
                json!({"space": "moga-mbv3", "framework_version": "2.20", "tool": "matrix", "rows": rows}),
            )
        }
        ("POST", "/v1/predict") => Some(json!({"space": "moga-mbv3",
            "tables": [{"device": w.device_a, "framework": "wgpu-fused"}], "archs": ["MoGA-A"]})),
        _ => Some(json!({})),
    };
    (path, body)
}

async fn send(
    app: &TestApp,
    w: &World,
    method: &str,
    path: &str,
    identity: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut r = app.request(Method::from_bytes(method.as_bytes()).unwrap(), path, None);
    match identity {
        "none" => {}
        "basic_scheme" => r = r.header("authorization", "Basic dXNlcjpwdw=="),
        "empty_bearer" => r = r.header("authorization", "Bearer "),
        other => r = r.bearer_auth(&w.tokens[other]),
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

/// Every documented operation: (METHOD, path template).
fn documented_operations() -> Vec<(String, String)> {
    let (_, doc) = gpulut_server::routes::api().split_for_parts();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_policy_lists_exactly_the_routers_operations() {
    let documented = documented_operations();
    let missing: Vec<String> = documented
        .iter()
        .filter(|(m, p)| !POLICY.iter().any(|(pm, pp, _)| pm == m && pp == p))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations in the router but not in the authorization policy of tests/it/authz.rs; add each with who may call it: {missing:?}"
    );
    let gone: Vec<String> = POLICY
        .iter()
        .filter(|(pm, pp, _)| !documented.iter().any(|(m, p)| m == pm && p == pp))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert!(
        gone.is_empty(),
        "policy entries for operations the router no longer has; remove them: {gone:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (m, p, _) in POLICY {
        assert!(seen.insert((m, p)), "{m} {p} is in the policy twice");
    }
}

#[tokio::test]
async fn every_operation_refuses_every_caller_it_should() {
    let started = Instant::now();
    let app = spawn_app().await;
    let mut w = setup(&app).await;
    let mut ops: Vec<(String, String, Access)> = documented_operations()
        .into_iter()
        .map(|(m, p)| {
            let access = POLICY
                .iter()
                .find(|(pm, pp, _)| *pm == m && *pp == p)
                .unwrap_or_else(|| {
                    panic!("{m} {p} is not in the authorization policy; add it to POLICY")
                })
                .2;
            (m, p, access)
        })
        .collect();
    ops.extend(
        UNDOCUMENTED_PUBLIC
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string(), Public)),
    );

    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let mut failures: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (method, template, access) in &ops {
        let mut statuses = serde_json::Map::new();
        for &identity in IDENTITIES {
            let want = expect(*access, identity);
            let (path, body) = prepare(
                &app,
                &mut w,
                method,
                template,
                identity,
                want == Expect::Allowed,
            )
            .await;
            let before = if want != Expect::Allowed {
                Some(effects(&mut conn, &w.held.id).await)
            } else {
                None
            };
            let r = send(&app, &w, method, &path, identity, body.as_ref()).await;
            let status = r.status();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let text = r.text().await.unwrap_or_default();
            statuses.insert(identity.to_string(), json!(status.as_u16()));
            let mut fail = |why: String| {
                failures.push(format!(
                    "{method} {template} as {identity}: {why} (got {status}: {})",
                    text.chars().take(300).collect::<String>()
                ))
            };
            if status.is_server_error() {
                fail("a server error".into());
                continue;
            }
            let problem = ct == "application/problem+json";
            match want {
                Expect::Allowed if !status.is_success() => fail("should be allowed (2xx)".into()),
                Expect::Unauthorized if status != StatusCode::UNAUTHORIZED || !problem => {
                    fail("should be a 401 problem".into())
                }
                Expect::Forbidden if status != StatusCode::FORBIDDEN || !problem => {
                    fail("should be a 403 problem".into())
                }
                Expect::Fenced
                    if status != StatusCode::CONFLICT || !text.contains("stale_lease") =>
                {
                    fail("another agent's job should be fenced (409 stale_lease)".into())
                }
                _ => {}
            }
            if let Some(before) = before {
                let after = effects(&mut conn, &w.held.id).await;
                if before != after {
                    fail(format!(
                        "a refused call changed the database (or agent A's lease): {before} -> {after}"
                    ));
                }
            }
        }
        rows.push(
            json!({"method": method, "path": template, "access": format!("{access:?}"),
                         "statuses": statuses}),
        );
    }

    // A was never revoked and still holds its job.
    let (live_agent_a,): (bool,) =
        sqlx::query_as("SELECT revoked_at IS NULL FROM agents WHERE id = $1::uuid")
            .bind(&w.agent_a)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(live_agent_a, "agent A was never revoked");
    let (held_by,): (Option<uuid::Uuid>,) =
        sqlx::query_as("SELECT leased_by FROM jobs WHERE id = $1::uuid")
            .bind(&w.held.id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        held_by.map(|u| u.to_string()),
        Some(w.agent_a.clone()),
        "A still holds its job"
    );

    print_matrix(&rows);
    let checks = ops.len() * IDENTITIES.len();
    if let Ok(dir) = std::env::var("GPULUT_PROOF_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        let doc = json!({"operations": ops.len(), "identities": IDENTITIES.len(), "checks": checks,
                         "failures": failures.len(), "rows": rows});
        std::fs::write(
            std::path::Path::new(&dir).join("authz.json"),
            serde_json::to_string_pretty(&doc).unwrap(),
        )
        .unwrap();
    }
    println!(
        "authorization matrix: {} operations x {} identities = {checks} checks, {} failures, {:.1} s",
        ops.len(),
        IDENTITIES.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn print_matrix(rows: &[Value]) {
    let short: Vec<String> = IDENTITIES
        .iter()
        .map(|i| i.chars().take(7).collect())
        .collect();
    println!(
        "{:<58} {:<11} {}",
        "operation",
        "access",
        short.iter().map(|s| format!("{s:>8}")).collect::<String>()
    );
    for row in rows {
        let op = format!(
            "{} {}",
            row["method"].as_str().unwrap(),
            row["path"].as_str().unwrap()
        );
        let cells: String = IDENTITIES
            .iter()
            .map(|i| format!("{:>8}", row["statuses"][*i].as_u64().unwrap_or(0)))
            .collect();
        println!("{op:<58} {:<11} {cells}", row["access"].as_str().unwrap());
    }
}
