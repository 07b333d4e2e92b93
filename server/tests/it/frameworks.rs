//! Frameworks beyond our kernels (issue 8): what agents report they can run, campaigns refused
//! for what a device cannot run, three frameworks filling three tables through the real agent
//! protocol (driven from here, so no Python runtime is needed), and the cross-framework views
//! (table comparison, MoGA's Figure 2) checked against an independent computation.

use std::collections::BTreeMap;
use std::time::Duration;

use gpulut_server::db::Db;
use gpulut_server::searches::worker::{self, WorkerSettings};
use gpulut_tables::{ArchSpec, SearchSpace};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{
    ADMIN_TOKEN, TestApp, device_fingerprint, expect_problem, fixture_ms, seed_table, spawn_app,
};

const NCNN_MISSING: &str = "the ncnn Python package is not installed (pip install ncnn)";

fn support(name: &str, available: bool) -> Value {
    if available {
        json!({"name": name, "version": "1", "available": true})
    } else {
        json!({"name": name, "version": "", "available": false, "detail": NCNN_MISSING})
    }
}

/// Enrolls a device with a framework report (none: `frameworks` left out, as older agents
/// do); returns (agent token, device id).
async fn enroll(app: &TestApp, hardware_id: &str, frameworks: Option<Value>) -> (String, String) {
    let r = app
        .post_json(
            "/v1/enrollment-tokens",
            Some(ADMIN_TOKEN),
            &json!({"label": "lab", "max_uses": 1}),
        )
        .await;
    let token = r.json::<Value>().await.unwrap()["token"].clone();
    let mut body = json!({"token": token, "name": hardware_id, "fingerprint": device_fingerprint(hardware_id)});
    if let Some(f) = frameworks {
        body["frameworks"] = f;
    }
    let r = app.post_json("/v1/agents/enroll", None, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["device_id"].as_str().unwrap().to_string(),
    )
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.get(path, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

fn device_framework<'a>(device: &'a Value, name: &str) -> &'a Value {
    device["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {device}"))
}

async fn campaign(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/v1/campaigns", Some(ADMIN_TOKEN), &body)
        .await
}

#[tokio::test]
async fn agent_reports_are_stored_and_devices_show_them() {
    let app = spawn_app().await;
    let report = json!([
        support("wgpu-direct", true),
        support("wgpu-fused", true),
        support("ncnn-vulkan", false),
        support("ncnn-cpu", true)
    ]);
    let (agent, device) = enroll(&app, "phone-1", Some(report.clone())).await;
    let agents = get(&app, "/v1/agents").await;
    assert_eq!(agents[0]["frameworks"], report);
    assert!(agents[0]["frameworks_reported_at"].is_string());
    let d = get(&app, &format!("/v1/devices/{device}")).await;
    assert_eq!(d["frameworks"].as_array().unwrap().len(), 4);
    let vk = device_framework(&d, "ncnn-vulkan");
    assert_eq!(vk["available"], false);
    assert_eq!(vk["detail"], NCNN_MISSING);
    assert_eq!(vk["assumed"], false);
    assert_eq!(device_framework(&d, "ncnn-cpu")["available"], true);

    // A heartbeat with a report replaces it (the runtime was installed meanwhile) ...
    let now = json!([support("wgpu-fused", true), support("ncnn-vulkan", true)]);
    let r = app
        .post_json(
            "/v1/agents/heartbeat",
            Some(&agent),
            &json!({"frameworks": now}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let d = get(&app, "/v1/devices").await;
    let d = &d[0];
    assert_eq!(d["frameworks"].as_array().unwrap().len(), 2);
    assert_eq!(device_framework(d, "ncnn-vulkan")["available"], true);
    assert!(device_framework(d, "ncnn-vulkan")["detail"].is_null());
    // ... one without keeps it; a malformed one is refused and changes nothing.
    let r = app
        .post_json("/v1/agents/heartbeat", Some(&agent), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_json(
            "/v1/agents/heartbeat",
            Some(&agent),
            &json!({"frameworks": [support("ncnn-cpu", true), support("ncnn-cpu", false)]}),
        )
        .await;
    let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("twice"), "{p}");
    assert_eq!(get(&app, "/v1/agents").await[0]["frameworks"], now);

    // An agent older than the report: stored as never reported, shown as the native pair.
    let (_, old) = enroll(&app, "old-phone", None).await;
    let agents = get(&app, "/v1/agents").await;
    let old_agent = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["device_id"] == old.as_str())
        .unwrap();
    assert!(old_agent["frameworks"].is_null());
    let d = get(&app, &format!("/v1/devices/{old}")).await;
    let names: Vec<&str> = d["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wgpu-direct", "wgpu-fused"]);
    assert!(
        d["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["assumed"] == true && f["available"] == true)
    );
}

#[tokio::test]
async fn campaigns_for_unavailable_frameworks_are_refused_with_the_agents_reason() {
    let app = spawn_app().await;
    let (_, device) = enroll(
        &app,
        "phone-1",
        Some(json!([
            support("wgpu-fused", true),
            support("ncnn-vulkan", false),
            support("ncnn-cpu", true)
        ])),
    )
    .await;
    let (_, old) = enroll(&app, "old-phone", None).await;
    let blocks = ["gap-i7x7x960"];
    for (device, framework, needles) in [
        (
            &device,
            "ncnn-vulkan",
            vec!["phone-1", "ncnn-vulkan", NCNN_MISSING],
        ),
        (
            &device,
            "onnxruntime-cpu",
            vec!["onnxruntime-cpu", "does not offer"],
        ),
        (
            &old,
            "ncnn-cpu",
            vec!["old-phone", "ncnn-cpu", "reports no frameworks"],
        ),
    ] {
        let r = campaign(
            &app,
            json!({"space": "moga-mbv3", "device": device,
                                      "frameworks": ["wgpu-fused", framework], "blocks": blocks}),
        )
        .await;
        let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["code"], "framework_unavailable", "{p}");
        for n in needles {
            assert!(p["detail"].as_str().unwrap().contains(n), "{n}: {p}");
        }
    }
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM campaigns")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing was created");

    for (device, frameworks) in [
        (&device, json!(["ncnn-cpu", "wgpu-fused"])),
        (&old, json!(["wgpu-direct", "wgpu-fused"])),
    ] {
        let r = campaign(
            &app,
            json!({"space": "moga-mbv3", "device": device,
                                      "frameworks": frameworks, "blocks": blocks}),
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
}

/// What the fake runtimes "measure": three frameworks that rank blocks differently (a launch
/// cost on the GPU paths, none on the CPU), with ties.
fn truth(framework: &str, key: &str, macs: u64) -> f64 {
    let wobble = (key.len() % 5) as f64;
    match framework {
        "wgpu-fused" => fixture_ms(macs, 1.0),
        "ncnn-vulkan" => fixture_ms(macs, 1.3) + 0.02 * wobble,
        "ncnn-cpu" => 0.01 + macs as f64 / 5.0e6 + 0.05 * wobble,
        f => panic!("no truth for {f}"),
    }
}

fn block_macs() -> BTreeMap<String, u64> {
    SearchSpace::moga_mbv3()
        .distinct_blocks()
        .into_iter()
        .map(|b| (b.block.key.to_string(), b.block.macs))
        .collect()
}

/// An architecture's true end-to-end latency: its blocks plus a fixed overhead.
fn network_truth(framework: &str, arch: &str) -> f64 {
    let space = SearchSpace::moga_mbv3();
    let a = space.resolve(&ArchSpec::from(arch)).unwrap();
    0.5 + space
        .expand(&a)
        .iter()
        .map(|b| truth(framework, b.key.as_str(), b.macs))
        .sum::<f64>()
}

/// Average ranks (1-based), written here independently of the server's code.
fn ranks(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|v| {
            let below = x.iter().filter(|w| *w < v).count() as f64;
            let equal = x.iter().filter(|w| *w == v).count() as f64;
            below + (equal + 1.0) / 2.0
        })
        .collect()
}

fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// Kendall's tau-b over all pairs, O(n^2).
fn kendall(x: &[f64], y: &[f64]) -> f64 {
    let (mut c, mut d, mut tx, mut ty) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
            if dx == 0.0 && dy == 0.0 {
                continue;
            }
            if dx == 0.0 {
                tx += 1.0;
            } else if dy == 0.0 {
                ty += 1.0;
            } else if (dx > 0.0) == (dy > 0.0) {
                c += 1.0;
            } else {
                d += 1.0;
            }
        }
    }
    (c - d) / ((c + d + tx) * (c + d + ty)).sqrt()
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{a} is not a number"));
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

fn samples(v: f64) -> Value {
    json!([v, v * 1.01, v * 0.99, v * 1.02, v])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_frameworks_fill_three_tables_that_behave_like_any_other() {
    let app = spawn_app().await;
    let frameworks = ["wgpu-fused", "ncnn-vulkan", "ncnn-cpu"];
    let report: Vec<Value> = frameworks.iter().map(|f| support(f, true)).collect();
    let (agent, device) = enroll(&app, "phone-3", Some(json!(report))).await;
    let r = campaign(
        &app,
        json!({"space": "moga-mbv3", "device": device, "frameworks": frameworks,
                                  "batch_size": 200, "validation": {"random": 4, "seed": 0},
                                  "protocol": {"min_runs": 5, "max_runs": 10}}),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let c: Value = r.json().await.unwrap();
    assert_eq!(
        c["progress"]["jobs"], 6,
        "a block job and a network job per framework"
    );

    // The agent's side: claim each job, "measure" with the job's framework, upload.
    let macs = block_macs();
    let mut claimed: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let r = app
            .post_json(
                "/v1/agents/jobs/claim",
                Some(&agent),
                &json!({"wait_s": 0.2}),
            )
            .await;
        if r.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        let job: Value = r.json().await.unwrap();
        let framework = job["framework"].as_str().unwrap();
        *claimed.entry(framework.to_string()).or_default() += 1;
        let results: Vec<Value> = job["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let key = item.as_str().unwrap();
                let (kind, v) = if job["kind"] == "blocks" {
                    ("block", truth(framework, key, macs[key]))
                } else {
                    ("arch", network_truth(framework, key))
                };
                json!({"key": key, "kind": kind, "framework": framework, "framework_version": "1",
                       "verified": true, "max_relative_error": 1e-6, "tolerance": 1e-4, "median_ms": v,
                       "samples": samples(v), "timer": "wall", "warmup_runs": 10, "pipeline_ms": 2.0,
                       "dispatches": 3, "flops": 1000, "bytes": 1000})
            })
            .collect();
        let r = app
            .post_json(
                &format!("/v1/agents/jobs/{}/result", job["id"].as_str().unwrap()),
                Some(&agent),
                &json!({"attempt": job["attempt"], "lease_id": job["lease_id"], "agent_version": "0.2.0", "results": results}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    assert_eq!(claimed.values().sum::<usize>(), 6);
    assert!(frameworks.iter().all(|f| claimed[*f] == 2), "{claimed:?}");

    // Three full tables.
    let tables = get(&app, "/v1/tables").await;
    for f in frameworks {
        let t = tables
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["device"] == device.as_str() && t["framework"] == f)
            .unwrap_or_else(|| panic!("a table for {f}: {tables}"));
        assert_eq!(t["entries"], t["blocks"], "{t}");
    }
    // The ncnn-cpu table: query, export, predict (the measured validation networks calibrate it).
    let t = get(&app, &format!("/v1/tables/{device}/ncnn-cpu")).await;
    assert_eq!(t["entries"].as_array().unwrap().len(), macs.len());
    for e in t["entries"].as_array().unwrap() {
        let key = e["key"].as_str().unwrap();
        close(&e["median_ms"], truth("ncnn-cpu", key, macs[key]));
    }
    let csv = app
        .get(
            &format!("/v1/tables/{device}/ncnn-cpu?format=csv"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.text().await.unwrap().contains("gap-i7x7x960"));
    let r = app
        .post_json(
            &format!("/v1/tables/{device}/ncnn-cpu/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let p: Value = r.json().await.unwrap();
    close(&p[0]["total_ms"], network_truth("ncnn-cpu", "MoGA-A") - 0.5);

    // Search over it.
    let r = app
        .post_json("/v1/searches", Some(ADMIN_TOKEN),
                   &json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "ncnn-cpu"}],
                           "accuracy": {"kind": "proxy"}, "population": 8, "generations": 2, "seed": 1}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    let search = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = WorkerSettings {
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(1),
        idle_poll: Duration::from_millis(50),
    };
    let w = tokio::spawn(worker::run(
        Db::connect_lazy(&app.database_url, 4).unwrap(),
        settings,
        stopped,
    ));
    let mut state = Value::Null;
    for _ in 0..300 {
        state = get(&app, &format!("/v1/searches/{search}")).await["state"].clone();
        if state == "done" || state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "done");
    stop.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), w).await;

    // Compare ncnn-cpu with wgpu-fused, against a computation made here.
    let cmp = get(&app, &format!(
        "/v1/tables/compare?space=moga-mbv3&a={device}/ncnn-cpu&b=phone-3/wgpu-fused&statistic=median"
    ))
    .await;
    let blocks = cmp["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), macs.len());
    assert_eq!(cmp["counts"]["common"], macs.len());
    assert_eq!(cmp["counts"]["only_a"], 0);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in blocks {
        let key = b["key"].as_str().unwrap();
        let (x, y) = (
            truth("ncnn-cpu", key, macs[key]),
            truth("wgpu-fused", key, macs[key]),
        );
        close(&b["a_ms"], x);
        close(&b["b_ms"], y);
        close(&b["ratio"], x / y);
        xs.push(x);
        ys.push(y);
    }
    close(&cmp["spearman_rho"], spearman(&xs, &ys));
    close(&cmp["kendall_tau_b"], kendall(&xs, &ys));
    assert!(
        cmp["kendall_tau_b"].as_f64().unwrap() < 0.999,
        "the fixtures rank differently"
    );
    let space = SearchSpace::moga_mbv3();
    for (layer, row) in cmp["ratio"].as_array().unwrap().iter().enumerate() {
        for (choice, cell) in row.as_array().unwrap().iter().enumerate() {
            let b = space.choice_block(layer, choice);
            let k = b.key.as_str();
            close(
                cell,
                truth("ncnn-cpu", k, b.macs) / truth("wgpu-fused", k, b.macs),
            );
        }
    }

    // MoGA's Figure 2: CPU against GPU on this device.
    let s = get(&app, &format!(
        "/v1/devices/{device}/framework-scatter?space=moga-mbv3&a=ncnn-cpu&b=ncnn-vulkan&n=100&seed=0"
    ))
    .await;
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 100);
    assert!(s["incomplete"].as_array().unwrap().is_empty());
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut measured = Vec::new();
    for p in points {
        let arch = p["arch"].as_str().unwrap();
        let (x, y) = (
            network_truth("ncnn-cpu", arch) - 0.5,
            network_truth("ncnn-vulkan", arch) - 0.5,
        );
        close(&p["a_ms"], x);
        close(&p["b_ms"], y);
        xs.push(x);
        ys.push(y);
        if !p["a_measured_ms"].is_null() {
            close(&p["a_measured_ms"], x + 0.5);
            close(&p["b_measured_ms"], y + 0.5);
            measured.push((x + 0.5, y + 0.5));
        }
    }
    close(&s["predicted"]["spearman_rho"], spearman(&xs, &ys));
    close(&s["predicted"]["kendall_tau_b"], kendall(&xs, &ys));
    // The campaign's validation drew the same seed: its 4 networks are the first 4 points.
    assert_eq!(measured.len(), 4);
    for p in &points[..4] {
        assert!(!p["a_measured_ms"].is_null(), "{p}");
    }
    let (mx, my): (Vec<f64>, Vec<f64>) = measured.into_iter().unzip();
    close(&s["measured"]["kendall_tau_b"], kendall(&mx, &my));
    close(&s["measured"]["spearman_rho"], spearman(&mx, &my));
    assert_eq!(s["measured"]["n"], 4);
    // Seeded: the same draw again, another seed another draw.
    let again = get(
        &app,
        "/v1/devices/phone-3/framework-scatter?a=ncnn-cpu&b=ncnn-vulkan&n=100&seed=0",
    )
    .await;
    assert_eq!(again["points"], s["points"]);
    let other = get(
        &app,
        &format!("/v1/devices/{device}/framework-scatter?a=ncnn-cpu&b=ncnn-vulkan&n=100&seed=1"),
    )
    .await;
    assert_ne!(other["points"][0]["arch"], s["points"][0]["arch"]);
}

#[tokio::test]
async fn comparisons_refuse_what_they_cannot_compare() {
    let app = spawn_app().await;
    let a = seed_table(&app, "pixel-a", "wgpu-direct", 1.0).await;
    let b = seed_table(&app, "pixel-b", "wgpu-direct", 2.0).await;
    // Table b lacks the block of layer 1 with choice 0 and the stem: nulls in the matrix.
    let space = SearchSpace::moga_mbv3();
    let gone = [
        space.choice_block(0, 0).key.to_string(),
        space.stem_blocks()[0].key.to_string(),
    ];
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("DELETE FROM table_entries WHERE device_id = $1::uuid AND block_key = ANY($2)")
        .bind(&b)
        .bind(&gone[..])
        .execute(&mut conn)
        .await
        .unwrap();
    let cmp = get(
        &app,
        &format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/wgpu-direct"),
    )
    .await;
    assert_eq!(cmp["counts"]["only_a"], 2);
    assert_eq!(
        cmp["counts"]["common"],
        cmp["counts"]["space_blocks"].as_i64().unwrap() - 2
    );
    for (layer, row) in cmp["ratio"].as_array().unwrap().iter().enumerate() {
        for (choice, cell) in row.as_array().unwrap().iter().enumerate() {
            if gone.contains(&space.choice_block(layer, choice).key.to_string()) {
                assert!(cell.is_null());
            } else {
                close(cell, 0.5);
            }
        }
    }
    assert!(cmp["fixed"][0]["ratio"].is_null());
    // Proportional tables rank identically.
    close(&cmp["kendall_tau_b"], 1.0);
    close(&cmp["spearman_rho"], 1.0);

    // A complete table against itself.
    let s = get(
        &app,
        &format!("/v1/devices/{a}/framework-scatter?a=wgpu-direct&b=wgpu-direct&n=20"),
    )
    .await;
    assert_eq!(s["points"].as_array().unwrap().len(), 20);

    for (path, status, code) in [
        (
            format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/tflite-gpu"),
            StatusCode::NOT_FOUND,
            "no_such_framework",
        ),
        (
            format!("/v1/tables/compare?a={a}/wgpu-direct&b=nowhere/wgpu-direct"),
            StatusCode::NOT_FOUND,
            "no_such_device",
        ),
        (
            format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/ncnn-cpu"),
            StatusCode::NOT_FOUND,
            "no_such_table",
        ),
        (
            format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/wgpu-direct&statistic=max"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            format!("/v1/tables/compare?space=nope&a={a}/wgpu-direct&b={b}/wgpu-direct"),
            StatusCode::NOT_FOUND,
            "unknown_space",
        ),
        (
            format!("/v1/devices/{a}/framework-scatter?a=wgpu-direct&b=wgpu-direct&n=1"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            format!("/v1/devices/{a}/framework-scatter?a=wgpu-direct&b=wgpu-direct&n=1001"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            format!("/v1/devices/{a}/framework-scatter?a=wgpu-direct&b=ncnn-vulkan"),
            StatusCode::NOT_FOUND,
            "no_such_table",
        ),
    ] {
        let p = expect_problem(app.get(&path, Some(ADMIN_TOKEN)).await, status).await;
        assert_eq!(p["code"], code, "{path}: {p}");
    }

    // Too few common blocks: b keeps only two blocks of the space.
    sqlx::query("DELETE FROM table_entries WHERE device_id = $1::uuid AND block_key NOT IN (SELECT block_key FROM table_entries WHERE device_id = $1::uuid ORDER BY block_key LIMIT 2)")
        .bind(&b)
        .execute(&mut conn)
        .await
        .unwrap();
    let p = expect_problem(
        app.get(
            &format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/wgpu-direct"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["code"], "too_few_common_blocks");
    assert!(p["detail"].as_str().unwrap().contains("2 block(s)"), "{p}");
    let p = expect_problem(
        app.get(
            &format!("/v1/devices/{b}/framework-scatter?a=wgpu-direct&b=wgpu-direct"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["code"], "too_few_common_blocks");
    // A table of blocks outside the space: measured for another space.
    sqlx::query(
        "UPDATE table_entries SET block_key = 'x-' || block_key WHERE device_id = $1::uuid",
    )
    .bind(&b)
    .execute(&mut conn)
    .await
    .unwrap();
    let p = expect_problem(
        app.get(
            &format!("/v1/tables/compare?a={a}/wgpu-direct&b={b}/wgpu-direct"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["code"], "not_in_space");
}
