//! End to end with real processes: Postgres, the server, and the real `gpulut-agent` binary on
//! this machine's Vulkan driver (lavapipe in CI). The agent enrolls, runs campaigns, and the
//! table fills in; then the faults of DESIGN section 5: an agent killed mid-job, and the
//! server going away while an agent works. No measurement may be lost or stored twice.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

use crate::{ADMIN_TOKEN, TestApp, fresh_database, spawn_app};

/// The agent binary, built next to the server's (cargo builds every workspace binary before
/// running `cargo test --workspace`; a narrower run builds it here).
fn agent_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_gpulut-server"));
    let agent = server.with_file_name(format!("gpulut-agent{}", std::env::consts::EXE_SUFFIX));
    if !agent.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "gpulut-agent"])
            .status()
            .expect("run cargo to build the agent");
        assert!(status.success(), "building gpulut-agent failed");
    }
    agent
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gpulut-e2e-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn agent(args: &[&str]) -> Command {
    let mut c = Command::new(agent_binary());
    c.args(args)
        .env("LP_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Enrolls the real agent into `state` under `name`; returns the device id.
async fn enroll(app: &TestApp, state: &std::path::Path, name: &str) -> String {
    let r = app
        .post_json(
            "/v1/enrollment-tokens",
            Some(ADMIN_TOKEN),
            &json!({"label": "e2e", "max_uses": 10}),
        )
        .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = agent(&[
        "enroll",
        "--server",
        &app.base,
        "--token",
        &token,
        "--name",
        name,
        "--state-dir",
        state.to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds: Value =
        serde_json::from_slice(&std::fs::read(state.join("agent.json")).unwrap()).unwrap();
    creds["device_id"].as_str().unwrap().to_string()
}

/// `gpulut-agent run --until-idle` on `state`; fails the test with the agent's stderr unless it
/// exits cleanly.
async fn run_until_idle(state: &std::path::Path) {
    let out = agent(&[
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        "--until-idle",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The id of a created resource.
async fn created_id(r: reqwest::Response) -> String {
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .expect("the answer has an id")
        .to_string()
}

/// A protocol that finishes in seconds on lavapipe with one thread.
fn quick() -> Value {
    json!({"warmup_runs": 1, "warmup_min_ms": 0, "min_runs": 3, "max_runs": 5, "max_seconds": 2})
}

async fn campaign(
    app: &TestApp,
    device: &str,
    blocks: &[&str],
    batch: usize,
    protocol: Value,
) -> String {
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-direct"], "blocks": blocks,
                    "batch_size": batch, "protocol": protocol, "force": true}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    created_id(r).await
}

async fn campaign_state(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/campaigns/{id}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_campaign(app: &TestApp, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = campaign_state(app, id).await;
        if ["done", "failed", "cancelled"].contains(&c["state"].as_str().unwrap()) {
            return c;
        }
        assert!(Instant::now() < deadline, "campaign did not finish: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (key, number of measurements) of every measured block.
async fn measurements(app: &TestApp) -> Vec<(String, i64)> {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query_as("SELECT key, count(*) FROM measurements GROUP BY key ORDER BY key")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn leased_jobs(app: &TestApp) -> i64 {
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs WHERE state = 'leased'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

async fn finish(child: Child) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the agent exits")
        .unwrap()
}

fn sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

const SMALL: [&str; 3] = [
    "gap-i7x7x960",
    "fc-i1280-o1000",
    "conv-i1x1x960-o1x1x1280-k1-s1-hswish",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_agent_fills_the_table() {
    let app = spawn_app().await;
    let state = temp_dir("fill");
    let device = enroll(&app, &state, "lavapipe").await;
    let devices: Value = app
        .get("/v1/devices", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(devices[0]["name"], "lavapipe");
    assert_eq!(devices[0]["fingerprint"]["gpu"]["backend"], "vulkan");

    let id = campaign(&app, &device, &SMALL, 2, quick()).await;
    run_until_idle(&state).await;
    let c = wait_campaign(&app, &id, 10).await;
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(c["progress"]["items_done"], 3);

    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let rows: Vec<(String, i32, f64, f64, f64, bool)> = sqlx::query_as(
        "SELECT block_key, count, min_ms, median_ms, p90_ms, stale FROM table_entries ORDER BY block_key",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for (key, count, min, median, p90, stale) in rows {
        assert!(SMALL.contains(&key.as_str()));
        assert!(count >= 3, "{key}: {count} samples");
        assert!(
            0.0 < min && min <= median && median <= p90,
            "{key}: {min} {median} {p90}"
        );
        assert!(!stale);
    }
    // The spool is empty: everything was delivered.
    assert_eq!(std::fs::read_dir(state.join("spool")).unwrap().count(), 0);
    std::fs::remove_dir_all(state).unwrap();
}

/// The real agent measures the same blocks with our kernels and with two other runtimes through
/// its framework adapters (ncnn's Vulkan path, ONNX Runtime on the CPU); one campaign fills
/// three tables, and they compare like any other tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_campaign_with_three_frameworks_fills_three_tables() {
    const FRAMEWORKS: [&str; 3] = ["wgpu-fused", "ncnn-vulkan", "onnxruntime-cpu"];
    let app = spawn_app().await;
    let state = temp_dir("frameworks");
    let device = enroll(&app, &state, "lavapipe").await;

    // The agent reported its adapters at enrollment; all three must be usable here.
    let d: Value = app
        .get(&format!("/v1/devices/{device}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    for fw in FRAMEWORKS {
        let f = d["frameworks"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["name"] == fw))
            .unwrap_or_else(|| panic!("{fw} not reported: {d}"));
        assert_eq!(
            f["available"], true,
            "{fw} is unavailable on this machine ({}); ./scripts/test creates the adapters' venv and sets GPULUT_PYTHON",
            f["detail"]
        );
    }

    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": FRAMEWORKS,
                    "blocks": SMALL, "batch_size": 3, "protocol": quick(), "force": true}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let id = created_id(r).await;

    run_until_idle(&state).await;
    let c = wait_campaign(&app, &id, 10).await;
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(c["progress"]["items_done"], 9, "{c}");

    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT framework, count(*), min(framework_version) FROM table_entries
         WHERE NOT stale GROUP BY framework ORDER BY framework",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let got: Vec<(&str, i64)> = rows.iter().map(|(f, n, _)| (f.as_str(), *n)).collect();
    assert_eq!(
        got,
        [
            ("ncnn-vulkan", 3),
            ("onnxruntime-cpu", 3),
            ("wgpu-fused", 3)
        ],
        "{rows:?}"
    );
    // Runtime tables carry the runtime's own version, not our kernels' "1".
    for (fw, _, version) in &rows {
        if fw != "wgpu-fused" {
            assert!(version.contains('.'), "{fw}: version {version:?}");
        }
    }

    // They are tables like any other: listed, and comparable with ours.
    let tables: Value = app
        .get("/v1/tables", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    for fw in FRAMEWORKS {
        assert!(
            tables
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["framework"] == fw && t["entries"] == 3),
            "{fw}: {tables}"
        );
    }
    let cmp = app
        .get(
            &format!(
                "/v1/tables/compare?space=moga-mbv3&a={device}/ncnn-vulkan&b={device}/wgpu-fused"
            ),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(cmp.status(), StatusCode::OK);
    let cmp: Value = cmp.json().await.unwrap();
    assert_eq!(cmp["blocks"].as_array().map(Vec::len), Some(3), "{cmp}");
    std::fs::remove_dir_all(state).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_s_job_is_finished_by_another_agent() {
    let app = spawn_app().await;
    let first = temp_dir("kill-a");
    let device = enroll(&app, &first, "lavapipe").await;
    // One job long enough to be killed in: many runs of real choice blocks.
    let slow = json!({"warmup_runs": 1, "warmup_min_ms": 0, "min_runs": 2000, "max_runs": 2000, "max_seconds": 20});
    let blocks = [
        "mbconv-i14x14x80-o14x14x80-e6-k7-s1-se1-hswish",
        "mbconv-i28x28x40-o28x28x40-e6-k5-s1-se0-relu",
    ];
    let id = campaign(&app, &device, &blocks, 2, slow).await;
    let mut a = agent(&["run", "--state-dir", first.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while leased_jobs(&app).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the first agent never claimed the job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.start_kill().unwrap(); // SIGKILL
    let _ = a.wait().await;
    assert_eq!(
        measurements(&app).await,
        vec![],
        "nothing was uploaded by the killed agent"
    );

    // A second agent for the same device picks the job up once its lease has run out.
    let second = temp_dir("kill-b");
    assert_eq!(
        enroll(&app, &second, "lavapipe").await,
        device,
        "same device"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    run_until_idle(&second).await;
    let c = wait_campaign(&app, &id, 10).await;
    assert_eq!(c["state"], "done", "{c}");
    let mut expected: Vec<(String, i64)> = blocks.iter().map(|k| (k.to_string(), 1)).collect();
    expected.sort();
    assert_eq!(
        measurements(&app).await,
        expected,
        "each block stored exactly once"
    );
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (attempt,): (i32,) = sqlx::query_as("SELECT attempt FROM jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        attempt, 2,
        "the job was handed out again with the next attempt"
    );
    for d in [first, second] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The real server binary on a fixed port, with a short agent cadence.
async fn server_process(database_url: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_gpulut-server"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "0",
        ])
        .args(["--heartbeat-s", "1", "--poll-wait-s", "2", "--lease-s", "3"])
        .env("DATABASE_URL", database_url)
        .env("GPULUT_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(&url)
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(
            Instant::now() < deadline,
            "the server process did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rides_out_a_server_restart() {
    let database_url = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = server_process(&database_url, port).await;
    let app = TestApp {
        base: format!("http://127.0.0.1:{port}"),
        database_url: database_url.clone(),
        client: reqwest::Client::new(),
    };
    let state = temp_dir("restart");
    let device = enroll(&app, &state, "lavapipe").await;
    let id = campaign(&app, &device, &SMALL, 1, quick()).await;
    let child = agent(&["run", "--state-dir", state.to_str().unwrap()])
        .spawn()
        .unwrap();

    // Let the first job land, then kill the server while the agent works, and restart it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while campaign_state(&app, &id).await["progress"]["done"]
        .as_i64()
        .unwrap()
        < 1
    {
        assert!(Instant::now() < deadline, "no job finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.start_kill().unwrap();
    let _ = server.wait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _server = server_process(&database_url, port).await;
    let c = wait_campaign(&app, &id, 60).await;
    assert_eq!(c["state"], "done", "{c}");
    let m = measurements(&app).await;
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(
        m.iter().all(|(_, n)| *n == 1),
        "each block stored once: {m:?}"
    );

    sigterm(&child);
    let out = finish(child).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(state).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_stops_with_a_message() {
    let app = spawn_app().await;
    let state = temp_dir("revoked");
    enroll(&app, &state, "lavapipe").await;
    let agents: Value = app
        .get("/v1/agents", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let id = agents[0]["id"].as_str().unwrap();
    app.request(
        reqwest::Method::DELETE,
        &format!("/v1/agents/{id}"),
        Some(ADMIN_TOKEN),
    )
    .send()
    .await
    .unwrap();
    let out = agent(&["run", "--state-dir", state.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enroll again"), "{err}");
    std::fs::remove_dir_all(state).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_the_current_job_back() {
    let app = spawn_app().await;
    let state = temp_dir("sigterm");
    let device = enroll(&app, &state, "lavapipe").await;
    let slow = json!({"warmup_runs": 1, "warmup_min_ms": 0, "min_runs": 2000, "max_runs": 2000, "max_seconds": 30});
    campaign(
        &app,
        &device,
        &["mbconv-i14x14x80-o14x14x80-e6-k7-s1-se1-hswish"],
        1,
        slow,
    )
    .await;
    let child = agent(&["run", "--state-dir", state.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while leased_jobs(&app).await == 0 {
        assert!(Instant::now() < deadline, "the agent never claimed the job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signalled = Instant::now();
    sigterm(&child);
    let out = finish(child).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the agent stopped promptly"
    );
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (state_now, lease): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT state, lease_id FROM jobs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (state_now.as_str(), lease),
        ("queued", None),
        "released, not left to expire"
    );
    assert_eq!(measurements(&app).await, vec![]);
    std::fs::remove_dir_all(state).unwrap();
}

/// A validation campaign on this machine's Vulkan driver: blocks and whole networks measured by
/// the real agent, then the accuracy report, a calibration, and calibrated predictions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_campaign_produces_a_report_and_a_calibration() {
    let app = spawn_app().await;
    let state = temp_dir("validation");
    let device = enroll(&app, &state, "lavapipe").await;
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    let mut blocks: Vec<String> = Vec::new();
    for name in ["MoGA-A", "MoGA-B", "MoGA-C"] {
        let arch = space.resolve(&gpulut_tables::ArchSpec::from(name)).unwrap();
        for b in space.expand(&arch) {
            if !blocks.contains(&b.key.to_string()) {
                blocks.push(b.key.to_string());
            }
        }
    }
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-fused"], "blocks": blocks,
                    "batch_size": 20, "protocol": quick(), "validation": {"references": true}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = created_id(r).await;
    run_until_idle(&state).await;
    assert_eq!(wait_campaign(&app, &id, 10).await["state"], "done");

    let v: Value = app
        .get(
            &format!("/v1/tables/{device}/wgpu-fused/validation"),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    let report = &v["report"];
    assert_eq!(report["calibrated"]["networks"], 3, "{v}");
    assert_eq!(report["incomplete"], json!(["MobileNetV3-Large"]));
    for n in report["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["arch"] != "MobileNetV3-Large")
    {
        let (m, p) = (
            n["measured_ms"].as_f64().unwrap(),
            n["predicted_ms"].as_f64().unwrap(),
        );
        assert!(m > 0.0 && p > 0.0, "{n}");
        assert!(n["calibrated_ms"].as_f64().unwrap() > 0.0, "{n}");
    }
    assert!(v["calibration"]["scale"].as_f64().unwrap() > 0.0);
    let p: Value = app
        .post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A"], "calibrated": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(p[0]["calibrated_ms"].as_f64().unwrap() > 0.0, "{p}");
    std::fs::remove_dir_all(state).unwrap();
}
