//! Latency tables over HTTP: listing, one table as JSON and CSV, and predictions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, expect_problem, fixture_ms, seed_table, spawn_app};

#[tokio::test]
async fn tables_list_get_and_export_as_csv() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let list: Value = app
        .get("/v1/tables", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["device"], device.as_str());
    assert_eq!(
        (list[0]["framework"].as_str(), list[0]["space"].as_str()),
        (Some("wgpu-fused"), Some("moga-mbv3"))
    );
    assert_eq!(
        (list[0]["entries"].as_i64(), list[0]["blocks"].as_i64()),
        (Some(126), Some(126))
    );
    assert_eq!(list[0]["coverage"], 1.0);

    let t: Value = app
        .get(
            &format!("/v1/tables/{device}/wgpu-fused?space=moga-mbv3"),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries = t["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 126);
    assert_eq!(t["missing"], json!([]));
    assert_eq!(
        entries[0]["key"],
        "conv-i224x224x3-o112x112x16-k3-s2-hswish"
    );
    assert_eq!(entries[0]["part"], "stem");
    // By name too, and as CSV that parses back to the same numbers.
    let csv = app
        .get(
            "/v1/tables/pixel-test/wgpu-fused?format=csv",
            Some(ADMIN_TOKEN),
        )
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let median = header.iter().position(|h| *h == "median_ms").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 126);
    for (row, e) in rows.iter().zip(entries) {
        assert_eq!(row[0], e["key"].as_str().unwrap());
        assert_eq!(
            row[median].parse::<f64>().unwrap(),
            e["median_ms"].as_f64().unwrap()
        );
    }
    let p = expect_problem(
        app.get(
            &format!("/v1/tables/{device}/wgpu-fused?format=xml"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("csv"));
    expect_problem(
        app.get("/v1/tables/nope/wgpu-fused", Some(ADMIN_TOKEN))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/tables/{device}/snpe"), Some(ADMIN_TOKEN))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn predictions_sum_their_breakdown_and_report_missing_blocks() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let r = app
        .post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A", "MobileNetV3-Large", {"choices": [0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    for i in [0, 2] {
        let blocks = v[i]["blocks"].as_array().unwrap();
        let sum: f64 = blocks.iter().map(|b| b["ms"].as_f64().unwrap()).sum();
        assert!((v[i]["total_ms"].as_f64().unwrap() - sum).abs() < 1e-9);
        let arch = space
            .resolve(&gpulut_tables::ArchSpec::from(
                v[i]["arch"].as_str().unwrap(),
            ))
            .unwrap();
        let expected: f64 = space
            .expand(&arch)
            .iter()
            .map(|b| fixture_ms(b.macs, 1.0))
            .sum();
        assert!((sum - expected).abs() < 1e-9);
        assert!(v[i]["uncertainty_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(v[0]["name"], "MoGA-A");
    let totals: Value = app
        .post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-A"], "breakdown": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(totals[0].get("blocks").is_none());
    assert_eq!(totals[0]["total_ms"], v[0]["total_ms"]);
    // MobileNetV3-Large's blocks are outside the grid: missing, and no total.
    assert!(v[1]["total_ms"].is_null());
    let missing = v[1]["missing"].as_array().unwrap();
    assert!(!missing.is_empty());
    assert!(
        missing
            .iter()
            .any(|k| k.as_str().unwrap().contains("-h200-")),
        "{missing:?}"
    );
    let p = expect_problem(
        app.post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["12345"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("archs[0]"));
    let p = expect_problem(
        app.post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": [{"space": "fbnet", "choices": [0]}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("fbnet"),
        "an architecture of another space: {p}"
    );
    expect_problem(
        app.post_json(
            &format!("/v1/tables/{device}/wgpu-fused/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "nope", "archs": ["MoGA-A"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn ofa_yaml_etags_entries_and_the_matrix() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let base = format!("/v1/tables/{device}/wgpu-fused");
    let json: Value = app
        .get(&base, Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();

    // OFA-style YAML parses (as OFA's tools load it) back to the same numbers.
    let r = app
        .get(&format!("{base}?format=ofa-yaml"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(r.headers()["content-type"], "application/yaml");
    let yaml: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> =
        serde_yaml_ng::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(yaml.len(), 126);
    let key = "expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0";
    let ours = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "mbconv-i56x56x24-o28x28x40-e6-k5-s2-se1-relu")
        .unwrap();
    assert_eq!(yaml[key]["mean"], ours["median_ms"].as_f64().unwrap());
    assert_eq!(yaml[key]["count"], 30.0);
    assert!((yaml[key]["std"] - 1.4826 * ours["mad_ms"].as_f64().unwrap()).abs() < 1e-12);
    assert!(yaml.contains_key("Logits-input:1x1x1280-output:1000"));

    // Conditional GET: an unchanged table costs a 304.
    let r = app.get(&base, Some(ADMIN_TOKEN)).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = app
        .request(reqwest::Method::GET, &base, Some(ADMIN_TOKEN))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let other = seed_table(&app, "pixel-other", "wgpu-fused", 2.0).await;
    let r = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/tables/{other}/wgpu-fused"),
            Some(ADMIN_TOKEN),
        )
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a different table has a different tag"
    );

    // One entry by key; an unknown key is a 404.
    let key = "gap-i7x7x960";
    let e: Value = app
        .get(&format!("{base}/entries/{key}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["key"], key);
    assert!((e["median_ms"].as_f64().unwrap() - fixture_ms(0, 1.0)).abs() < 1e-12);
    expect_problem(
        app.get(&format!("{base}/entries/gap-i1x1x1"), Some(ADMIN_TOKEN))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The layer x choice matrix: 14 x 12, every cell the table's value for that block.
    let m: Value = app
        .get(&format!("{base}/matrix?statistic=min"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let ms = m["ms"].as_array().unwrap();
    assert_eq!(ms.len(), 14);
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    for (layer, row) in ms.iter().enumerate() {
        assert_eq!(row.as_array().unwrap().len(), 12);
        for (c, cell) in row.as_array().unwrap().iter().enumerate() {
            let b = gpulut_tables::Block::new(
                space.choice_op(layer, &space.choices()[c]),
                space.layer_input(layer),
            );
            assert!((cell.as_f64().unwrap() - 0.9 * fixture_ms(b.macs, 1.0)).abs() < 1e-12);
        }
    }
    assert_eq!(m["fixed"].as_array().unwrap().len(), 6);
    expect_problem(
        app.get(&format!("{base}/matrix?statistic=max"), Some(ADMIN_TOKEN))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

async fn manual_device(app: &crate::TestApp, name: &str) -> String {
    let r = app
        .post_json(
            "/v1/devices",
            Some(ADMIN_TOKEN),
            &json!({"name": name, "labels": ["snpe"], "fingerprint": {"soc": "SDM845"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn count(app: &crate::TestApp, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn imports_round_trip_in_json_and_csv_and_behave_like_tables() {
    let app = spawn_app().await;
    let device = manual_device(&app, "mi-mix-3").await;
    let space = gpulut_tables::SearchSpace::moga_mbv3();
    let keys: Vec<String> = space
        .distinct_blocks()
        .iter()
        .map(|b| b.block.key.to_string())
        .collect();
    // JSON: raw samples for every block.
    let rows: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"key": k, "samples_ms": [0.5 + i as f64 * 0.01, 0.6 + i as f64 * 0.01, 0.7 + i as f64 * 0.01]}))
        .collect();
    let r = app
        .post_json(
            &format!("/v1/tables/{device}/snpe/import"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "framework_version": "2.20", "tool": "snpe-net-run", "rows": rows}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let t: Value = app
        .get(&format!("/v1/tables/{device}/snpe"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let entries = t["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 126);
    for e in entries {
        let i = keys
            .iter()
            .position(|k| k == e["key"].as_str().unwrap())
            .unwrap() as f64;
        assert!((e["median_ms"].as_f64().unwrap() - (0.6 + i * 0.01)).abs() < 1e-12);
        assert_eq!(e["count"], 3);
    }
    // It predicts like any table.
    let p: Value = app
        .post_json(
            &format!("/v1/tables/{device}/snpe/predict"),
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "archs": ["MoGA-C"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(p[0]["total_ms"].as_f64().unwrap() > 0.0);

    // CSV, one timing per block, under another framework; exported CSV reads back the same.
    let mut csv = String::from("key,ms\n");
    for (i, k) in keys.iter().enumerate() {
        csv.push_str(&format!("{k},{}\n", 1.0 + i as f64 / 8.0));
    }
    let r = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/tables/{device}/mace/import?space=moga-mbv3&framework_version=1.1"),
            Some(ADMIN_TOKEN),
        )
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let exported = app
        .get(
            &format!("/v1/tables/{device}/mace?format=csv"),
            Some(ADMIN_TOKEN),
        )
        .await
        .text()
        .await
        .unwrap();
    for line in exported.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let i = keys.iter().position(|k| k == cells[0]).unwrap() as f64;
        assert_eq!(
            cells[6].parse::<f64>().unwrap(),
            1.0 + i / 8.0,
            "median of {}",
            cells[0]
        );
    }
    let list: Value = app
        .get("/v1/tables", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_imports_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let device = manual_device(&app, "mi-mix-3").await;
    let url = format!("/v1/tables/{device}/ncnn-vulkan/import");
    let key = "gap-i7x7x960";
    let body =
        |rows: Value| json!({"space": "moga-mbv3", "framework_version": "20261020", "rows": rows});
    for (b, needle) in [
        (
            body(json!([{"key": "gap-i1x1x1", "ms": 1.0}])),
            "not a block",
        ),
        (body(json!([{"key": key, "ms": -1.0}])), "-1"),
        (body(json!([{"key": key, "ms": 0.0}])), "0"),
        (
            body(json!([{"key": key, "samples_ms": [1.0, 1e12]}])),
            "1000000000000",
        ),
        (
            body(json!([{"key": key, "ms": 1.0}, {"key": key, "ms": 2.0}])),
            "duplicate",
        ),
        (body(json!([{"key": key}])), "exactly one"),
        (body(json!([])), "1 to"),
        (
            json!({"space": "nope", "framework_version": "1", "rows": [{"key": key, "ms": 1.0}]}),
            "nope",
        ),
    ] {
        let p = expect_problem(
            app.post_json(&url, Some(ADMIN_TOKEN), &b).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{needle}: {p}"
        );
    }
    // The agent's own frameworks take no imports.
    let p = expect_problem(
        app.post_json(
            &format!("/v1/tables/{device}/wgpu-fused/import"),
            Some(ADMIN_TOKEN),
            &body(json!([{"key": key, "ms": 1.0}])),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("agents only"));
    // CSV without a usable header, bad numbers, or a missing version.
    for (csv, q) in [
        ("name,ms\nx,1\n", "space=moga-mbv3&framework_version=1"),
        (
            &*format!("key,ms\n{key},fast\n"),
            "space=moga-mbv3&framework_version=1",
        ),
        (&*format!("key,ms\n{key},1\n"), "space=moga-mbv3"),
    ] {
        let r = app
            .request(
                reqwest::Method::POST,
                &format!("{url}?{q}"),
                Some(ADMIN_TOKEN),
            )
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let r = app
        .request(reqwest::Method::POST, &url, Some(ADMIN_TOKEN))
        .header("content-type", "application/xml")
        .body("<rows/>")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Huge.
    let huge = body(json!([{"key": key, "samples_ms": vec![1.0; 100_000]}]));
    expect_problem(
        app.post_json(&url, Some(ADMIN_TOKEN), &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // User keys cannot import.
    let (_, user) = app.create_key("user").await;
    expect_problem(
        app.post_json(&url, Some(&user), &body(json!([{"key": key, "ms": 1.0}])))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(count(&app, "SELECT count(*) FROM measurements").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM table_entries").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM frameworks WHERE kind = 'imported'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn fleet_predictions_combine_tables() {
    let app = spawn_app().await;
    let slow = seed_table(&app, "old-phone", "wgpu-fused", 2.0).await;
    let fast = seed_table(&app, "new-phone", "wgpu-fused", 1.0).await;
    let r = app
        .post_json(
            "/v1/predict",
            Some(ADMIN_TOKEN),
            &json!({"space": "moga-mbv3", "tables": [{"device": fast, "framework": "wgpu-fused"}, {"device": "old-phone", "framework": "wgpu-fused"}],
                    "archs": ["MoGA-B", "MobileNetV3-Large"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let t0 = v[0]["tables"][0]["total_ms"].as_f64().unwrap();
    let t1 = v[0]["tables"][1]["total_ms"].as_f64().unwrap();
    assert_eq!(v[0]["tables"][1]["device"], slow.as_str());
    assert!(
        (t1 - 2.0 * t0).abs() < 1e-9,
        "the old phone's table is the new one's doubled"
    );
    assert_eq!(v[0]["max_ms"].as_f64().unwrap(), t1);
    assert!((v[0]["mean_ms"].as_f64().unwrap() - 1.5 * t0).abs() < 1e-9);
    assert!(
        v[1]["max_ms"].is_null(),
        "missing blocks give no fleet figure"
    );
    let p = expect_problem(
        app.post_json("/v1/predict", Some(ADMIN_TOKEN),
                      &json!({"space": "moga-mbv3", "tables": [{"device": "nope", "framework": "wgpu-fused"}], "archs": ["MoGA-A"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().starts_with("tables[0]"),
        "{p}"
    );
}

#[tokio::test]
async fn a_cached_table_changes_when_its_entries_do() {
    let app = spawn_app().await;
    let device = manual_device(&app, "phone").await;
    let url = format!("/v1/tables/{device}/tflite-gpu/import");
    let import = |ms: f64| json!({"space": "moga-mbv3", "framework_version": "2.16", "rows": [{"key": "gap-i7x7x960", "ms": ms}]});
    assert_eq!(
        app.post_json(&url, Some(ADMIN_TOKEN), &import(1.0))
            .await
            .status(),
        StatusCode::CREATED
    );
    let path = format!("/v1/tables/{device}/tflite-gpu");
    let get = || app.get(&path, Some(ADMIN_TOKEN));
    let first: Value = get().await.json().await.unwrap();
    assert_eq!(first["entries"][0]["median_ms"], 1.0);
    let again: Value = get().await.json().await.unwrap();
    assert_eq!(again, first, "served from the cache");
    // New samples: the median of [1, 3, 3] is 3, and the next GET shows it.
    assert_eq!(
        app.post_json(&url, Some(ADMIN_TOKEN), &import(3.0))
            .await
            .status(),
        StatusCode::CREATED
    );
    let now: Value = get().await.json().await.unwrap();
    assert_eq!(now["entries"][0]["count"], 2);
    assert_eq!(now["entries"][0]["median_ms"], 2.0);
    // A second replica on the same database learns of the change through Postgres.
    let other = crate::spawn_app_on(app.database_url.clone()).await;
    let before: Value = other
        .get(
            &format!("/v1/tables/{device}/tflite-gpu"),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["entries"][0]["count"], 2);
    assert_eq!(
        app.post_json(&url, Some(ADMIN_TOKEN), &import(3.0))
            .await
            .status(),
        StatusCode::CREATED
    );
    let mut seen = 0;
    for _ in 0..100 {
        let v: Value = other
            .get(
                &format!("/v1/tables/{device}/tflite-gpu"),
                Some(ADMIN_TOKEN),
            )
            .await
            .json()
            .await
            .unwrap();
        seen = v["entries"][0]["count"].as_i64().unwrap();
        if seen == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 3, "the other replica's cache was invalidated");
}
