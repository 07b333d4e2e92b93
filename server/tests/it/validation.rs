//! Validation: whole networks measured end to end (through the agent protocol) against the
//! table's summed blocks, the fitted calibration, and calibrated predictions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, expect_problem, fixture_ms, seed_entries, spawn_app};

#[tokio::test]
async fn validation_networks_fit_a_calibration_that_predict_uses() {
    let app = spawn_app().await;
    // An enrolled device (HTTP, like the agent) with a full table of fixture entries.
    let r = app
        .post_json(
            "/v1/enrollment-tokens",
            Some(ADMIN_TOKEN),
            &json!({"label": "v"}),
        )
        .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let fingerprint = json!({"model": "P", "manufacturer": null, "soc": null, "hardware_id": "v-1", "os": "linux",
        "os_version": null, "android_api_level": null, "agent_version": "0.1.0",
        "gpu": {"name": "llvmpipe", "vendor_id": 65541, "device_id": 0, "device_type": "cpu", "backend": "vulkan",
                "driver": "llvmpipe", "driver_version": "Mesa", "api_version": "1.3.230", "timestamp_query": true,
                "timestamp_period_ns": 1.0}});
    let enrolled: Value = app
        .post_json(
            "/v1/agents/enroll",
            None,
            &json!({"token": token, "fingerprint": fingerprint}),
        )
        .await
        .json()
        .await
        .unwrap();
    let agent = enrolled["token"].as_str().unwrap().to_string();
    let device = enrolled["device_id"].as_str().unwrap().to_string();
    seed_entries(
        &app,
        uuid::Uuid::parse_str(&device).unwrap(),
        "wgpu-fused",
        1.0,
    )
    .await;

    // Blocks are fresh, so the campaign holds only the validation networks.
    let r = app
        .post_json(
            "/v1/campaigns",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "device": device, "frameworks": ["wgpu-fused"],
                    "validation": {"references": true, "random": 6}}),
        )
        .await;
    let campaign: Value = r.json().await.unwrap();
    assert_eq!(
        campaign["progress"]["items"], 10,
        "4 references + 6 random networks, no blocks"
    );

    // "Measure" each network: 0.9 x the median sum + 0.4 ms per block boundary, +-1% noise.
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    let truth = |arch: &str| -> Option<f64> {
        let a = space.resolve(&gpulut_tables::ArchSpec::from(arch)).ok()?;
        let blocks = space.expand(&a);
        let sum: f64 = blocks.iter().map(|b| fixture_ms(b.macs, 1.0)).sum();
        Some(0.9 * sum + 0.4 * (blocks.len() - 1) as f64)
    };
    let mut n = 0;
    loop {
        let r = app
            .post_json("/v1/agents/jobs/claim", Some(&agent), &json!({"wait_s": 0}))
            .await;
        if r.status() == StatusCode::NO_CONTENT {
            break;
        }
        let job: Value = r.json().await.unwrap();
        assert_eq!(job["kind"], "networks");
        let results: Vec<Value> = job["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let arch = item.as_str().unwrap();
                let t = truth(arch).unwrap();
                n += 1;
                let wiggle = if n % 2 == 0 { 1.01 } else { 0.99 };
                json!({"key": arch, "kind": "arch", "framework": "wgpu-fused", "framework_version": "1", "verified": true,
                       "tolerance": 1e-4, "median_ms": t, "samples": [t * wiggle, t, t * (2.0 - wiggle)], "timer": "gpu-timestamp",
                       "warmup_runs": 1, "pipeline_ms": 1.0, "dispatches": 40, "flops": 1, "bytes": 1})
            })
            .collect();
        let r = app
            .post_json(
                &format!("/v1/agents/jobs/{}/result", job["id"].as_str().unwrap()),
                Some(&agent),
                &json!({"attempt": job["attempt"], "lease_id": job["lease_id"], "agent_version": "0.1.0", "results": results}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

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
    // MobileNetV3-Large's blocks are not in the table: reported, not used.
    assert_eq!(report["incomplete"], json!(["MobileNetV3-Large"]));
    assert_eq!(report["calibrated"]["networks"], 9);
    assert_eq!(report["calibrated"]["within_5pct"], 1.0, "{report}");
    assert!(
        report["raw"]["within_10pct"].as_f64().unwrap() < 1.0,
        "the raw sums are biased: {report}"
    );
    assert!(report["raw"]["mean_bias"].as_f64().unwrap().abs() > 0.01);
    // The fit recovers the truth for whichever statistic it chose (min and p10 are fixed
    // fractions of the median in the fixture).
    let per_median = match v["calibration"]["statistic"].as_str().unwrap() {
        "median" => 1.0,
        "min" => 0.9,
        "p10" => 0.95,
        "mean" => 1.02,
        other => panic!("statistic {other}"),
    };
    let scale = v["calibration"]["scale"].as_f64().unwrap() * per_median;
    assert!((scale - 0.9).abs() < 0.05, "{v}");
    let network = &report["networks"].as_array().unwrap()[0];
    assert!(network["overhead_per_boundary_ms"].is_number());

    // The table list shows the validation summary.
    let list: Value = app
        .get("/v1/tables", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["validation"]["within_5pct"], 1.0, "{list}");

    // Predict uses it when asked.
    let url = format!("/v1/tables/{device}/wgpu-fused/predict");
    let p: Value = app
        .post_json(
            &url,
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["0123456789ab01"], "calibrated": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let t = truth("0123456789ab01").unwrap();
    let calibrated = p[0]["calibrated_ms"].as_f64().unwrap();
    assert!((calibrated - t).abs() / t < 0.03, "{calibrated} vs {t}");
    assert!(
        (p[0]["total_ms"].as_f64().unwrap() - t).abs() / t > 0.05,
        "uncalibrated is off"
    );
    let plain: Value = app
        .post_json(
            &url,
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(plain[0].get("calibrated_ms").is_none());

    // A table without validation has no calibration to use.
    let other = crate::seed_table(&app, "other", "wgpu-fused", 1.0).await;
    let p = expect_problem(
        app.post_json(
            &format!("/v1/tables/{other}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A"], "calibrated": true}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["code"], "no_calibration");
    expect_problem(
        app.get(
            &format!("/v1/tables/{other}/wgpu-fused/validation"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}
