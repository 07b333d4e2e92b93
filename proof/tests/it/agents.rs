//! The simulated agents against the in-process server: what they upload is stored, they stop
//! when idle, and a restarted fleet with the same fingerprints enrolls into the same devices.
//! One agent per device: the server revokes a device's earlier agent when another enrolls.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gpulut_proof::agent::{AgentOptions, Fleet};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::{ADMIN_TOKEN, App, spawn_app};

async fn post(app: &App, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(60), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_measure_a_campaign_and_reenroll_into_the_same_devices() {
    let app = spawn_app().await;
    let token = post(
        &app,
        "/v1/enrollment-tokens",
        json!({"label": "sim", "max_uses": 10}),
    )
    .await;
    let token = token["token"].as_str().unwrap();
    let mut opts = AgentOptions::new(&app.base, token, 3, 3);
    opts.fingerprint_prefix = "sim".into();
    opts.samples = 12;
    opts.work_ms = 20;
    let fleet = Fleet::spawn(opts.clone()).unwrap();
    wait_until("3 agents enroll", || {
        fleet.counters().enrolled.load(Ordering::SeqCst) == 3
    })
    .await;
    let devices = fleet.device_ids();
    assert_eq!(devices.len(), 3);
    let blocks = [
        "conv-i224x224x3-o112x112x16-k3-s2-hswish",
        "dwsep-i112x112x16-o112x112x16-k3-s1-relu",
        "gap-i7x7x960",
    ];
    let campaign = post(
        &app,
        "/v1/campaigns",
        json!({"space": "moga-mbv3", "device": devices[0], "frameworks": ["wgpu-fused"],
               "blocks": blocks, "batch_size": 1}),
    )
    .await;
    assert_eq!(campaign["progress"]["jobs"], 3);
    wait_until("3 uploads acknowledged", || {
        fleet.counters().uploads_acked.load(Ordering::SeqCst) == 3
    })
    .await;
    let stats = fleet.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        (
            stats.series_stored,
            stats.samples_acked,
            stats.pending_at_exit
        ),
        (3, 36, 0)
    );
    assert_eq!(
        stats.fenced_dropped + stats.rejected + stats.uploads_duplicate,
        0
    );

    let mut db = PgConnection::connect(&app.database_url).await.unwrap();
    let (series, samples): (i64, i64) = sqlx::query_as(
        "SELECT count(*)::bigint, sum(cardinality(samples_ms))::bigint FROM measurements
         WHERE framework = 'wgpu-fused' AND device_id = $1::uuid",
    )
    .bind(&devices[0])
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((series, samples), (3, 36));

    // A restart with the same fingerprints: the same device, no new one.
    let again = Fleet::spawn(opts).unwrap();
    wait_until("the fleet re-enrolls", || {
        again.counters().enrolled.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(again.device_ids(), devices);
    wait_until("idle for a second", || {
        again.idle_for() >= Duration::from_secs(1)
    })
    .await;
    let stats = again.shutdown(Duration::from_secs(10)).await;
    assert_eq!((stats.jobs_claimed, stats.pending_at_exit), (0, 0));
    let (n,): (i64,) = sqlx::query_as("SELECT count(*)::bigint FROM devices")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 3);
}
