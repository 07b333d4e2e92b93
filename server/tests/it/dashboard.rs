//! The dashboard: how its files are served, and the pages in headless Chromium against a server
//! with real data entered through the API (an agent's campaign with validation networks, and a
//! second device's two imported tables). The browser part is `server/tests/browser/dashboard.js`
//! (playwright-core driving the system's Chromium); this test seeds the data, computes what the
//! pages must show, runs the script and requires it to pass. Screenshots land in
//! `target/browser-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use gpulut_server::app;
use gpulut_server::db::Db;
use gpulut_server::searches::worker::WorkerSettings;
use gpulut_tables::SearchSpace;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, TestApp, expect_problem, fixture_ms, spawn_app};

#[tokio::test]
async fn the_dashboard_is_served_with_types_caching_and_security_headers() {
    let app = spawn_app().await;
    let r = app.get("/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let etag = h["etag"].to_str().unwrap().to_string();
    let page = r.text().await.unwrap();
    assert!(page.contains("/ui/app.js") && page.contains("/ui/vendor/echarts.min.js"));
    assert!(
        !page.contains("<script>") && !page.contains(" on"),
        "no inline scripts or handlers"
    );

    // Revalidation is a 304.
    let r = app
        .request(reqwest::Method::GET, "/", None)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    for (path, ct) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/pages/searches.js", "text/javascript; charset=utf-8"),
        (
            "/ui/vendor/echarts.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
        ("/ui/vendor/ECHARTS-LICENSE", "text/plain; charset=utf-8"),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], ct, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{path}"
        );
        assert!(!r.bytes().await.unwrap().is_empty(), "{path}");
    }
    // HEAD works like GET, without a body.
    let r = app
        .request(reqwest::Method::HEAD, "/ui/style.css", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Unknown paths keep the server's problem+json 404, inside /ui/ too.
    for path in [
        "/ui/nope.js",
        "/ui/../Cargo.toml",
        "/ui/index.html",
        "/ui/",
        "/dashboard",
    ] {
        let p = expect_problem(app.get(path, None).await, StatusCode::NOT_FOUND).await;
        assert_eq!(p["code"], "no_such_route", "{path}");
    }
    // Not an API: the OpenAPI document does not list it.
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(doc["paths"].get("/").is_none());
    assert!(
        !doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("/ui"))
    );
}

/// Where the browser script lives and what it needs, or a message that says how to get it.
struct Browser {
    dir: PathBuf,
    chromium: PathBuf,
}

fn browser_prerequisites() -> Browser {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = PathBuf::from(
        std::env::var("GPULUT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string()),
    );
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (Debian/Ubuntu: `sudo apt-get install chromium`; or set GPULUT_CHROMIUM to a Chromium binary)",
            chromium.display()
        ));
    }
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        missing.push("Node.js (`sudo apt-get install nodejs npm`)".to_string());
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push(format!(
            "playwright-core in {}/node_modules (`cd server/tests/browser && npm ci`; it downloads no browser)",
            dir.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the dashboard's browser test needs:\n  - {}\n./scripts/test installs all of them when run as root.",
        missing.join("\n  - ")
    );
    Browser { dir, chromium }
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> Value {
    let r = app.post_json(path, token, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.get(path, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.json().await.unwrap()
}

/// An enrolled agent (through the agent protocol) measures a campaign over every block of
/// moga-mbv3 with `wgpu-fused`, plus validation networks; returns the device id.
async fn agent_device_with_campaign(app: &TestApp, space: &SearchSpace) -> (String, String) {
    let t = post(
        app,
        "/v1/enrollment-tokens",
        Some(ADMIN_TOKEN),
        &json!({"label": "browser test"}),
    )
    .await;
    let fingerprint = json!({"model": "Pixel Test", "manufacturer": "Google", "soc": "Tensor G2", "hardware_id": "dash-1",
        "os": "android", "os_version": "14", "android_api_level": 34, "agent_version": "0.1.0",
        "gpu": {"name": "Mali-G710", "vendor_id": 5045, "device_id": 1, "device_type": "integrated", "backend": "vulkan",
                "driver": "Mali", "driver_version": "r38", "api_version": "1.3.0", "timestamp_query": true,
                "timestamp_period_ns": 1.0}});
    let enrolled = post(
        app,
        "/v1/agents/enroll",
        None,
        &json!({"token": t["token"], "fingerprint": fingerprint, "name": "pixel-test"}),
    )
    .await;
    let agent = enrolled["token"].as_str().unwrap().to_string();
    let device = enrolled["device_id"].as_str().unwrap().to_string();
    post(
        app,
        "/v1/campaigns",
        Some(ADMIN_TOKEN),
        &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-fused"],
                "validation": {"references": true, "random": 6}}),
    )
    .await;

    let macs: std::collections::HashMap<String, u64> = space
        .distinct_blocks()
        .iter()
        .map(|b| (b.block.key.to_string(), b.block.macs))
        .collect();
    // Whole networks cost 0.9 x their blocks plus 0.4 ms per boundary (a calibration to find).
    let network_ms = |arch: &str| -> f64 {
        let a = space.resolve(&gpulut_tables::ArchSpec::from(arch)).unwrap();
        let blocks = space.expand(&a);
        0.9 * blocks.iter().map(|b| fixture_ms(b.macs, 1.0)).sum::<f64>()
            + 0.4 * (blocks.len() - 1) as f64
    };
    let mut n = 0usize;
    loop {
        let r = app
            .post_json("/v1/agents/jobs/claim", Some(&agent), &json!({"wait_s": 0}))
            .await;
        if r.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        let job: Value = r.json().await.unwrap();
        let networks = job["kind"] == "networks";
        let results: Vec<Value> = job["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let key = item.as_str().unwrap();
                let ms = if networks {
                    network_ms(key)
                } else {
                    fixture_ms(macs[key], 1.0)
                };
                n += 1;
                let w = if n % 2 == 0 { 1.01 } else { 0.99 };
                json!({"key": key, "kind": if networks { "arch" } else { "block" }, "framework": "wgpu-fused",
                       "framework_version": "1", "verified": true, "max_relative_error": 1e-6, "tolerance": 1e-4,
                       "median_ms": ms, "samples": [ms * w, ms, ms * (2.0 - w)], "timer": "gpu-timestamp",
                       "warmup_runs": 1, "pipeline_ms": 1.0, "dispatches": 4, "flops": 1, "bytes": 1})
            })
            .collect();
        post(
            app,
            &format!("/v1/agents/jobs/{}/result", job["id"].as_str().unwrap()),
            Some(&agent),
            &json!({"attempt": job["attempt"], "lease_id": job["lease_id"], "agent_version": "0.1.0", "results": results}),
        )
        .await;
    }
    (device, agent)
}

/// A device registered by hand with two tables imported from another tool: `ncnn-vulkan`,
/// slower overall than the agent's and not in the same order (so the two tables' ranks
/// disagree), rounded so some times tie; and `ncnn-cpu`, scaled per block differently again, so
/// the device page's "Frameworks compared" scatter has two full tables whose predictions of
/// random networks rank them differently.
async fn imported_device(app: &TestApp, space: &SearchSpace) -> String {
    let d = post(
        app,
        "/v1/devices",
        Some(ADMIN_TOKEN),
        &json!({"name": "mi-import", "fingerprint": {"soc": "SDM845"}}),
    )
    .await;
    let device = d["id"].as_str().unwrap().to_string();
    let rows: Vec<Value> = space
        .distinct_blocks()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let ms = fixture_ms(b.block.macs, 1.6) * (1.0 + 0.45 * (i as f64 * 1.7).sin());
            json!({"key": b.block.key.to_string(), "ms": (ms * 100.0).round().max(1.0) / 100.0})
        })
        .collect();
    post(
        app,
        &format!("/v1/tables/{device}/ncnn-vulkan/import"),
        Some(ADMIN_TOKEN),
        &json!({"space": "moga-mbv3", "framework_version": "20240102", "tool": "benchncnn", "rows": rows}),
    )
    .await;
    // The CPU: slower still, and far more in proportion to the MACs, with its own per-block
    // disorder (a different phase and frequency than the Vulkan table's).
    let cpu_rows: Vec<Value> = space
        .distinct_blocks()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let ms = fixture_ms(b.block.macs, 3.0)
                * (b.block.macs as f64 / 2.0e6).sqrt().max(0.2)
                * (1.0 + 0.6 * (i as f64 * 0.9 + 1.3).cos());
            json!({"key": b.block.key.to_string(), "ms": (ms * 100.0).round().max(1.0) / 100.0})
        })
        .collect();
    post(
        app,
        &format!("/v1/tables/{device}/ncnn-cpu/import"),
        Some(ADMIN_TOKEN),
        &json!({"space": "moga-mbv3", "framework_version": "20240102", "tool": "benchncnn", "rows": cpu_rows}),
    )
    .await;
    device
}

/// Average ranks (ties share the mean of their positions), 1-based.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
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

/// Kendall's tau-b: (concordant - discordant) / sqrt((pairs not tied in x) (pairs not tied in y)).
fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    let sign = |a: f64, b: f64| a.partial_cmp(&b).map_or(0, |o| o as i64);
    let (mut s, mut untied_x, mut untied_y) = (0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let (dx, dy) = (sign(x[i], x[j]), sign(y[i], y[j]));
            s += dx * dy;
            untied_x += dx.abs();
            untied_y += dy.abs();
        }
    }
    s as f64 / ((untied_x * untied_y) as f64).sqrt()
}

#[test]
fn the_reference_rank_correlations_are_right_on_known_cases() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert!((spearman(&x, &[5.0, 6.0, 7.0, 8.0, 7.0]) - 0.820_782_681_668_123_3).abs() < 1e-12);
    assert!(
        (kendall_tau_b(&x, &[5.0, 6.0, 7.0, 8.0, 7.0]) - 0.737_864_787_372_621_8).abs() < 1e-12
    );
    assert!((spearman(&x, &[9.0, 7.0, 5.0, 3.0, 1.0]) + 1.0).abs() < 1e-12);
    assert!((kendall_tau_b(&x, &[9.0, 7.0, 5.0, 3.0, 1.0]) + 1.0).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_pages_show_real_data_in_chromium() {
    let browser = browser_prerequisites();
    let started = Instant::now();
    let app = spawn_app().await;
    // A search worker, as `serve` bundles one.
    let db = Db::connect_lazy(&app.database_url, 4).unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let _workers = app::spawn_workers(
        &db,
        1,
        &WorkerSettings {
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(2),
            idle_poll: Duration::from_millis(100),
        },
        &stopped,
    );

    let space = SearchSpace::moga_mbv3();
    let (agent_device, agent) = agent_device_with_campaign(&app, &space).await;
    // The agent keeps heartbeating, so its device stays online while the browser looks.
    let heartbeat = {
        let (client, url) = (
            app.client.clone(),
            format!("{}/v1/agents/heartbeat", app.base),
        );
        tokio::spawn(async move {
            loop {
                let _ = client
                    .post(&url)
                    .bearer_auth(&agent)
                    .json(&json!({"agent_version": "0.1.0"}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let import_device = imported_device(&app, &space).await;

    // What the pages must show, from the API's data and computed here independently.
    let tables = get(&app, "/v1/tables").await;
    let tables = tables.as_array().unwrap();
    assert_eq!(tables.len(), 3, "{tables:?}");
    for t in tables {
        assert_eq!(t["entries"], t["blocks"], "complete tables: {t}");
    }
    let cells = space.layers().len() * space.choices().len();
    let a: Value = get(&app, &format!("/v1/tables/{agent_device}/wgpu-fused")).await;
    let b: Value = get(&app, &format!("/v1/tables/{import_device}/ncnn-vulkan")).await;
    let b_ms: std::collections::HashMap<&str, f64> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["median_ms"].as_f64().unwrap()))
        .collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let y = b_ms.get(e["key"].as_str().unwrap())?;
            Some((e["median_ms"].as_f64().unwrap(), *y))
        })
        .unzip();
    let (rho, tau) = (spearman(&xs, &ys), kendall_tau_b(&xs, &ys));
    assert_eq!(xs.len(), space.distinct_blocks().len());
    assert!(
        rho < 0.99 && tau < 0.95 && rho > 0.0,
        "the fixture's tables disagree somewhat: rho {rho}, tau {tau}"
    );
    // The import device's page plots the first two of its tables in one space, in the order
    // `/v1/tables` lists them, over the page's default draw (100 architectures, seed 0). Both
    // tables are full, so every drawn architecture is a point; tau and rho are the server's
    // (it/frameworks.rs checks them against a reference computed there).
    let import_fws: Vec<&str> = tables
        .iter()
        .filter(|t| t["device"] == import_device.as_str() && t["space"] == "moga-mbv3")
        .map(|t| t["framework"].as_str().unwrap())
        .collect();
    assert_eq!(import_fws.len(), 2, "{import_fws:?}");
    let scatter = get(
        &app,
        &format!(
            "/v1/devices/{import_device}/framework-scatter?space=moga-mbv3&a={}&b={}&n=100&seed=0",
            import_fws[0], import_fws[1]
        ),
    )
    .await;
    let scatter_points = scatter["points"].as_array().unwrap();
    assert_eq!(
        scatter_points.len(),
        100,
        "full tables cover every drawn network"
    );
    assert_eq!(scatter["incomplete"].as_array().unwrap().len(), 0);
    let scatter_measured = scatter_points
        .iter()
        .filter(|p| p["a_measured_ms"].is_number() && p["b_measured_ms"].is_number())
        .count();
    let (scatter_tau, scatter_rho) = (
        scatter["predicted"]["kendall_tau_b"].as_f64().unwrap(),
        scatter["predicted"]["spearman_rho"].as_f64().unwrap(),
    );
    assert!(
        scatter_tau < 0.99 && scatter_rho < 0.999 && scatter_tau > 0.0,
        "the two imported tables rank random networks somewhat differently: tau {scatter_tau}, rho {scatter_rho}"
    );
    let validation = get(
        &app,
        &format!("/v1/tables/{agent_device}/wgpu-fused/validation"),
    )
    .await;
    let networks = validation["report"]["networks"].as_array().unwrap();
    let points = |field: &str| networks.iter().filter(|n| n[field].is_number()).count();
    assert!(points("predicted_ms") >= 9, "{validation}");

    let (_, user_token) = app.create_key("user").await;
    let artifacts = artifacts_dir();
    let config = json!({
        "url": app.base,
        "admin_token": ADMIN_TOKEN,
        "user_token": user_token,
        "chromium": browser.chromium,
        "artifacts": artifacts,
        "expect": {
            "devices": [
                {"id": agent_device, "name": "pixel-test", "status": "online", "gpu": "Mali-G710"},
                {"id": import_device, "name": "mi-import", "status": "offline"},
            ],
            "tables": 3,
            "table": {"device": agent_device, "framework": "wgpu-fused", "space": "moga-mbv3", "cells": cells},
            "compare": {"a_label": "pixel-test · wgpu-fused", "b_label": "mi-import · ncnn-vulkan",
                        "rho": rho, "tau": tau, "common": xs.len(), "ratio_cells": cells},
            "scatter": {"device": import_device, "a": import_fws[0], "b": import_fws[1],
                        "points": scatter_points.len(), "measured_points": scatter_measured,
                        "tau": scatter_tau, "rho": scatter_rho},
            "validation": {"tables": 1, "raw_points": points("predicted_ms"),
                           "calibrated_points": points("calibrated_ms"),
                           "calibrated_within_10pct": validation["report"]["calibrated"]["within_10pct"]},
            "search": {"population": 16, "generations": 6, "seed": 7, "timeout_s": 120},
        },
    });
    let config_path = artifacts.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

    let seeded = started.elapsed();
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg(browser.dir.join("dashboard.js"))
            .arg(&config_path)
            .current_dir(&browser.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finishes within 5 minutes")
    .expect("run node");
    heartbeat.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the dashboard's browser checks failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        out.status,
        artifacts.display()
    );
    println!(
        "dashboard: data seeded in {:.1} s, browser checks in {:.1} s; screenshots in {}",
        seeded.as_secs_f64(),
        (started.elapsed() - seeded).as_secs_f64(),
        artifacts.display()
    );
}
