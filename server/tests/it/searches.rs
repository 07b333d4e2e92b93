//! Searches end to end: real Postgres, real workers, latency tables seeded in the database, and
//! a local HTTP accuracy evaluator standing in for the user's own service.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use gpulut_server::db::Db;
use gpulut_server::searches::worker::{self, WorkerSettings};
use gpulut_tables::SearchSpace;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{ADMIN_TOKEN, TestApp, expect_problem, fixture_ms, seed_table, spawn_app};

fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(1),
        idle_poll: Duration::from_millis(50),
    }
}

struct Worker {
    handle: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn start_worker(app: &TestApp) -> Worker {
    let db = Db::connect_lazy(&app.database_url, 4).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    Worker {
        handle: tokio::spawn(worker::run(db, fast_settings(), stopped)),
        _stop: stop,
    }
}

/// A stand-in for a user's accuracy service: deterministic in the choices, optionally slow,
/// counting its calls. Returns its URL.
async fn evaluator(delay: Duration, calls: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/",
        post(move |Json(body): Json<Value>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let acc: Vec<f64> = body["archs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        let c: Vec<u64> = a["choices"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_u64().unwrap())
                            .collect();
                        70.0 + c
                            .iter()
                            .enumerate()
                            .map(|(l, &x)| ((x * 7 + l as u64 * 3) % 12) as f64 * 0.04)
                            .sum::<f64>()
                    })
                    .collect();
                Json(json!({ "accuracy": acc }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

async fn create(app: &TestApp, body: &Value) -> String {
    let r = app.post_json("/v1/searches", Some(ADMIN_TOKEN), body).await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "queued");
    v["id"].as_str().unwrap().to_string()
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/searches/{id}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_state(app: &TestApp, id: &str, states: &[&str], secs: u64) -> Value {
    for _ in 0..secs * 20 {
        let s = status(app, id).await;
        if states.contains(&s["state"].as_str().unwrap()) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "search {id} did not reach {states:?}: {}",
        status(app, id).await
    );
}

async fn front(app: &TestApp, id: &str, breakdown: bool) -> Value {
    app.get(
        &format!("/v1/searches/{id}/front?breakdown={breakdown}"),
        Some(ADMIN_TOKEN),
    )
    .await
    .json()
    .await
    .unwrap()
}

fn dominates(a: &Value, b: &Value) -> bool {
    let (aa, al, ap) = (
        a["accuracy"].as_f64().unwrap(),
        a["latency_ms"].as_f64().unwrap(),
        a["params"].as_f64().unwrap(),
    );
    let (ba, bl, bp) = (
        b["accuracy"].as_f64().unwrap(),
        b["latency_ms"].as_f64().unwrap(),
        b["params"].as_f64().unwrap(),
    );
    aa >= ba && al <= bl && ap >= bp && (aa > ba || al < bl || ap > bp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_search_runs_to_a_front_with_breakdowns_and_references() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let id = create(
        &app,
        &json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
                "accuracy": {"kind": "proxy"}, "population": 16, "generations": 8, "seed": 3}),
    )
    .await;
    let _w = start_worker(&app);
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "done", "{s}");
    assert_eq!(s["generation"], 8);
    assert_eq!(s["accuracy_kind"], "proxy");
    assert_eq!(s["hypervolume"].as_array().unwrap().len(), 8);
    assert!(s["evaluations"].as_i64().unwrap() >= 16 * 8);

    let f = front(&app, &id, true).await;
    let members = f["front"].as_array().unwrap();
    assert!(!members.is_empty());
    let space = SearchSpace::moga_mbv3();
    for m in members {
        for other in members {
            assert!(!dominates(other, m), "front members are non-dominated");
        }
        // The latency is the table sum over the architecture's blocks, computed here from the
        // fixture formula and the architecture's blocks.
        let arch = space
            .resolve(&gpulut_tables::ArchSpec::from(m["arch"].as_str().unwrap()))
            .unwrap();
        let expected: f64 = space
            .expand(&arch)
            .iter()
            .map(|b| fixture_ms(b.macs, 1.0))
            .sum();
        assert!((m["latency_ms"].as_f64().unwrap() - expected).abs() < 1e-9);
        let bd = &m["latency_breakdown"][0];
        assert_eq!(bd["device"], device.as_str());
        assert_eq!(bd["blocks"].as_array().unwrap().len(), 20);
        assert!((bd["total_ms"].as_f64().unwrap() - expected).abs() < 1e-9);
        assert_eq!(m["params"], space.analyze(&arch).params);
    }
    let refs = f["references"].as_array().unwrap();
    let a = refs.iter().find(|r| r["name"] == "MoGA-A").unwrap();
    assert_eq!(a["arch"], "453969358533aa");
    assert!(a["accuracy"].is_number() && a["latency_ms"].is_number());
    let mbv3 = refs
        .iter()
        .find(|r| r["name"] == "MobileNetV3-Large")
        .unwrap();
    assert!(
        mbv3["latency_ms"].is_null(),
        "the fixture table has no MobileNetV3 blocks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_resumed_to_the_identical_front() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let url = evaluator(Duration::from_millis(40), Arc::default()).await;
    let request = json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
        "accuracy": {"kind": "http", "url": url}, "population": 12, "generations": 14, "seed": 42});
    let interrupted = create(&app, &request).await;

    let w1 = start_worker(&app);
    loop {
        let s = status(&app, &interrupted).await;
        if s["generation"].as_u64().unwrap() >= 4 {
            break;
        }
        assert_ne!(s["state"], "done", "the worker must be killed mid-search");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w1.handle.abort();
    let _ = w1.handle.await;
    let at_kill = status(&app, &interrupted).await;
    assert_eq!(at_kill["state"], "running");
    assert!(at_kill["generation"].as_u64().unwrap() < 14);

    let uninterrupted = create(&app, &request).await;
    let _w2 = start_worker(&app);
    let a = wait_state(&app, &interrupted, &["done", "failed"], 120).await;
    let b = wait_state(&app, &uninterrupted, &["done", "failed"], 120).await;
    assert_eq!(
        (a["state"].as_str(), b["state"].as_str()),
        (Some("done"), Some("done")),
        "{a} {b}"
    );
    let fa = front(&app, &interrupted, false).await;
    let fb = front(&app, &uninterrupted, false).await;
    assert!(!fa["front"].as_array().unwrap().is_empty());
    assert_eq!(
        fa["front"], fb["front"],
        "resumed front equals the uninterrupted one"
    );
    assert_eq!(a["hypervolume"], b["hypervolume"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_evaluator_fails_the_search_with_a_reason() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let id = create(
        &app,
        &json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
                "accuracy": {"kind": "http", "url": "http://127.0.0.1:1/", "retries": 1, "timeout_s": 2},
                "population": 8, "generations": 3}),
    )
    .await;
    let _w = start_worker(&app);
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "failed");
    let reason = s["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("unreachable") && reason.contains("127.0.0.1:1"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_from_the_evaluator_fails_the_search() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let bad = axum::Router::new().route("/", post(|| async { Json(json!({"accuracy": [1.0]})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, bad).await.unwrap() });
    let id = create(
        &app,
        &json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
                "accuracy": {"kind": "http", "url": format!("http://{addr}/")}, "population": 8, "generations": 3}),
    )
    .await;
    let _w = start_worker(&app);
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "failed");
    assert!(
        s["failure_reason"]
            .as_str()
            .unwrap()
            .contains("1 accuracies for 8"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_hold_for_every_front_member_and_fleets_take_the_worst_phone() {
    let app = spawn_app().await;
    let slow = seed_table(&app, "old-phone", "wgpu-direct", 2.0).await;
    let fast = seed_table(&app, "new-phone", "wgpu-direct", 1.0).await;
    let space = SearchSpace::moga_mbv3();
    let lat = |a: &str| -> f64 {
        let arch = space.resolve(&gpulut_tables::ArchSpec::from(a)).unwrap();
        space
            .expand(&arch)
            .iter()
            .map(|b| fixture_ms(b.macs, 2.0))
            .sum()
    };
    // Between the smallest and largest architecture on the slow phone.
    let limit = (lat("00000000000000") + lat("bbbbbbbbbbbbbb")) / 2.0;
    let id = create(
        &app,
        &json!({"space": "moga-mbv3",
                "tables": [{"device": fast, "framework": "wgpu-direct"}, {"device": slow, "framework": "wgpu-direct"}],
                "latency": {"combine": "max"},
                "accuracy": {"kind": "proxy"}, "population": 24, "generations": 10, "seed": 9,
                "constraints": {"max_latency_ms": limit, "max_params": 6.0e6}}),
    )
    .await;
    let _w = start_worker(&app);
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "done", "{s}");
    let f = front(&app, &id, true).await;
    let members = f["front"].as_array().unwrap();
    assert!(!members.is_empty());
    for m in members {
        let l = m["latency_ms"].as_f64().unwrap();
        assert!(l <= limit, "{l} > {limit}");
        assert!(m["params"].as_f64().unwrap() <= 6.0e6);
        // max over the fleet = the slow phone's latency
        assert!((l - lat(m["arch"].as_str().unwrap())).abs() < 1e-9);
        assert_eq!(m["latency_breakdown"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_queued_and_running_searches() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let url = evaluator(Duration::from_millis(100), Arc::default()).await;
    let body = json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
        "accuracy": {"kind": "http", "url": url}, "population": 8, "generations": 200});
    let queued = create(&app, &body).await;
    let r = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/searches/{queued}/cancel"),
            Some(ADMIN_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status(&app, &queued).await["state"], "cancelled");

    let running = create(&app, &body).await;
    let _w = start_worker(&app);
    wait_state(&app, &running, &["running"], 30).await;
    app.request(
        reqwest::Method::POST,
        &format!("/v1/searches/{running}/cancel"),
        Some(ADMIN_TOKEN),
    )
    .send()
    .await
    .unwrap();
    let s = wait_state(&app, &running, &["cancelled", "done", "failed"], 30).await;
    assert_eq!(s["state"], "cancelled");
    assert!(s["generation"].as_u64().unwrap() < 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_samples_surrogate_is_fitted_reported_and_searchable() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    // Samples from an additive truth: choice c at layer l adds 0.03 * c.
    let mut seed = 12345u64;
    // More samples than the model's 14 x 12 weights, as a real supernet sample set has.
    let samples: Vec<Value> = (0..400)
        .map(|_| {
            let choices: Vec<u64> = (0..14)
                .map(|_| {
                    // splitmix64
                    seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = seed;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    (z ^ (z >> 31)) % 12
                })
                .collect();
            let top1 = 70.0 + choices.iter().map(|&c| 0.03 * c as f64).sum::<f64>();
            json!({"arch": {"choices": choices}, "top1": top1})
        })
        .collect();
    let r = app
        .post_json(
            "/v1/accuracy-samples",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "label": "supernet v1", "samples": samples}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let set: Value = r.json().await.unwrap();
    assert_eq!(set["samples"], 400);
    assert!(
        set["report"]["cv_kendall_tau"].as_f64().unwrap() > 0.9,
        "{set}"
    );
    assert!(set["report"]["cv_rmse"].as_f64().unwrap() < 0.05, "{set}");
    let got: Value = app
        .get(
            &format!("/v1/accuracy-samples/{}", set["id"].as_str().unwrap()),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["report"], set["report"]);

    let id = create(
        &app,
        &json!({"space": "moga-mbv3", "tables": [{"device": "pixel-test", "framework": "wgpu-direct"}],
                "accuracy": {"kind": "samples", "sample_set": set["id"]}, "population": 12, "generations": 5}),
    )
    .await;
    let _w = start_worker(&app);
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "done", "{s}");
    assert_eq!(s["accuracy_kind"], "samples");
    assert_eq!(
        s["request"]["tables"][0]["device"],
        device.as_str(),
        "device names resolve to ids"
    );
    // Surrogate accuracy of the front is close to the truth it was fitted to.
    for m in front(&app, &id, false).await["front"].as_array().unwrap() {
        let truth = 70.0
            + m["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| 0.03 * c.as_f64().unwrap())
                .sum::<f64>();
        assert!((m["accuracy"].as_f64().unwrap() - truth).abs() < 0.05);
    }
}

#[tokio::test]
async fn bad_search_requests_are_refused_with_reasons() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let base = json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
        "accuracy": {"kind": "proxy"}, "population": 16, "generations": 10});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (with(json!({"space": "nope"})), "nope"),
        (
            with(json!({"tables": [{"device": "no-such-phone", "framework": "wgpu-direct"}]})),
            "no-such-phone",
        ),
        (
            with(json!({"tables": [{"device": device, "framework": "tflite-gpu"}]})),
            "tflite-gpu",
        ),
        (with(json!({"tables": []})), "tables"),
        (
            with(json!({"weights": {"accuracy": 2, "latency": 0, "params": 1}})),
            "weights.latency",
        ),
        (
            with(json!({"weights": {"accuracy": 2, "latency": -1, "params": 1}})),
            "weights.latency",
        ),
        (with(json!({"population": 3})), "population"),
        (with(json!({"population": 1000000})), "population"),
        (with(json!({"generations": 0})), "generations"),
        (with(json!({"generations": 100000})), "generations"),
        (
            with(json!({"population": 5000, "generations": 5000})),
            "evaluations",
        ),
        (
            with(json!({"constraints": {"max_latency_ms": -5}})),
            "max_latency",
        ),
        (
            with(json!({"constraints": {"max_params": 0}})),
            "max_params",
        ),
        (
            with(json!({"accuracy": {"kind": "http", "url": "ftp://example.org/"}})),
            "http or https",
        ),
        (
            with(json!({"accuracy": {"kind": "samples", "sample_set": uuid::Uuid::new_v4()}})),
            "sample set",
        ),
    ];
    for (body, needle) in cases {
        let p = expect_problem(
            app.post_json("/v1/searches", Some(ADMIN_TOKEN), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{needle}: {p}"
        );
    }
    // Malformed shapes: wrong types, unknown fields, unknown accuracy kind.
    for body in [
        with(json!({"constraints": {"max_latency_ms": "fast"}})),
        with(json!({"constraints": {"max_latncy_ms": 5}})),
        with(json!({"accuracy": {"kind": "oracle"}})),
        with(json!({"population": "many"})),
    ] {
        expect_problem(
            app.post_json("/v1/searches", Some(ADMIN_TOKEN), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }

    // A table that lacks a block is refused with the missing key.
    let mut conn = PgConnection::connect(&app.database_url).await.unwrap();
    let key = "mbconv-i7x7x160-o7x7x160-e6-k7-s1-se1-hswish";
    sqlx::query("DELETE FROM table_entries WHERE block_key = $1")
        .bind(key)
        .execute(&mut conn)
        .await
        .unwrap();
    let p = expect_problem(
        app.post_json("/v1/searches", Some(ADMIN_TOKEN), &base)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let d = p["detail"].as_str().unwrap();
    assert!(d.contains(key) && d.contains("lacks 1 of the 126"), "{d}");

    // Nothing was queued by any of it.
    let list: Value = app
        .get("/v1/searches", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);
    expect_problem(
        app.get(
            &format!("/v1/searches/{}", uuid::Uuid::new_v4()),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// `gpulut-server worker` runs searches against the same database as the API servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_subcommand_runs_searches() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-direct", 1.0).await;
    let id = create(
        &app,
        &json!({"space": "moga-mbv3", "tables": [{"device": device, "framework": "wgpu-direct"}],
                "accuracy": {"kind": "proxy"}, "population": 8, "generations": 4}),
    )
    .await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpulut-server"))
        .args(["worker", "--workers", "2", "--worker-stale-s", "5"])
        .env("DATABASE_URL", &app.database_url)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let s = wait_state(&app, &id, &["done", "failed"], 60).await;
    assert_eq!(s["state"], "done", "{s}");
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the worker exits after SIGTERM")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
