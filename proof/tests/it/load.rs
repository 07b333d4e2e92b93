//! A small load against the in-process server: the exact count check must pass and every
//! endpoint must have been exercised.

use gpulut_proof::load::{LoadArgs, run};

use crate::{ADMIN_TOKEN, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_load_stores_exactly_what_was_acknowledged() {
    let app = spawn_app().await;
    let out = std::env::temp_dir().join(format!("gpulut-proof-load-{}", uuid::Uuid::new_v4()));
    let args = LoadArgs {
        server: app.base.clone(),
        admin_token: ADMIN_TOKEN.into(),
        database_url: app.database_url.clone(),
        agents: 20,
        devices: None,
        seconds: 5.0,
        query_clients: 2,
        samples: 30,
        work_ms: 50,
        batch_size: 8,
        out: out.clone(),
        fingerprint_prefix: None,
    };
    let report = run(&args).await.expect("the load runs");
    let c = &report.counts;
    assert!(report.passed, "{}", gpulut_proof::report::markdown(&report));
    assert!(c.matches(), "{c:?}");
    let a = &report.agent_stats;
    assert_eq!((a.enrolled, a.device_ids.len()), (20, 20));
    assert!(a.uploads_acked > 0 && c.db_series > 0, "{c:?}");
    // 8 blocks per job (the last job of a campaign may hold fewer), 30 samples per series.
    assert_eq!(c.db_samples, c.db_series * 30);
    assert!(c.db_series <= c.db_done_jobs * 8 && c.db_series > c.db_done_jobs * 4);
    assert_eq!((a.pending_at_exit, a.rejected), (0, 0));
    for e in [
        "enroll",
        "heartbeat",
        "claim",
        "renew",
        "result",
        "table_get",
        "predict",
    ] {
        let f = report
            .endpoints
            .iter()
            .find(|f| f.endpoint == e)
            .unwrap_or_else(|| panic!("no figures for {e}: {:?}", report.endpoints));
        assert!(f.requests > 0 && f.ok > 0, "{f:?}");
        assert_eq!(f.error_count(), 0, "{f:?}");
        assert!(f.p50_ms <= f.p99_ms && f.p99_ms <= f.max_ms, "{f:?}");
    }
    let md = std::fs::read_to_string(out.join("load.md")).unwrap();
    assert!(md.starts_with("## Load: 20 simulated agents\n"), "{md}");
    assert!(md.contains("Verdict: **PASS**"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("load.json")).unwrap()).unwrap();
    assert_eq!(json["counts"]["db_series"], c.db_series);
    std::fs::remove_dir_all(&out).ok();
}
