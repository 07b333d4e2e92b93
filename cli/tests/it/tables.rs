//! Tables: list, get, export in every format, and predictions.

use crate::{fixture_ms, seed_table, spawn_app, volatile_filters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_list_get_and_export() {
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;

    let list = app.gpulut(&["tables", "list"]).await.ok();
    insta::with_settings!({filters => volatile_filters()}, {
        insta::assert_snapshot!("tables_list", list.stdout);
    });
    // --json is the server's document, pretty-printed.
    let listed = app.gpulut(&["tables", "list", "--json"]).await.ok();
    assert!(
        listed.stdout.starts_with("[\n  {\n"),
        "pretty: {}",
        listed.stdout
    );
    insta::assert_json_snapshot!("tables_list_json", listed.json(), {
        "[].device" => "[uuid]",
        "[].last_measured_at" => "[time]",
    });
    let other_space = app
        .gpulut(&["tables", "list", "--space", "nope", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(other_space, serde_json::json!([]));

    // By device name as well as by id.
    let get = app
        .gpulut(&["tables", "get", "pixel-test", "wgpu-fused"])
        .await
        .ok();
    let blocks = gpulut_tables::SearchSpace::moga_mbv3().distinct_blocks();
    assert!(
        get.stdout
            .contains(&format!("{} entries, 0 missing", blocks.len()))
    );
    let gap = blocks
        .iter()
        .find(|b| b.block.key.as_str().starts_with("gap-"))
        .unwrap();
    let row = get
        .stdout
        .lines()
        .find(|l| l.contains(gap.block.key.as_str()))
        .expect("a row per block");
    assert!(
        row.contains(&format!("{:.3}", fixture_ms(gap.block.macs, 1.0))),
        "median in the row: {row}"
    );

    // JSON export round-trips to the same document as `tables get --json`.
    let got = app
        .gpulut(&["tables", "get", &device, "wgpu-fused", "--json"])
        .await
        .ok()
        .json();
    let dir = std::env::temp_dir().join(format!("gpulut-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_file = dir.join("table.json");
    app.gpulut(&[
        "tables",
        "export",
        &device,
        "wgpu-fused",
        "--format",
        "json",
        "-o",
        json_file.to_str().unwrap(),
    ])
    .await
    .ok();
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    assert_eq!(exported, got);
    assert_eq!(exported["entries"].as_array().unwrap().len(), blocks.len());

    // CSV to stdout parses: a header and one row per block, medians as seeded.
    let csv = app
        .gpulut(&["tables", "export", &device, "wgpu-fused", "--format", "csv"])
        .await
        .ok();
    let mut lines = csv.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let key_at = header.iter().position(|h| *h == "key").unwrap();
    let median_at = header.iter().position(|h| *h == "median_ms").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), blocks.len());
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
        let b = blocks
            .iter()
            .find(|b| b.block.key.as_str() == r[key_at])
            .expect("a known block");
        let median: f64 = r[median_at].parse().unwrap();
        assert_eq!(median, fixture_ms(b.block.macs, 1.0));
    }

    // OFA-style YAML is YAML with one entry per block.
    let yaml = app
        .gpulut(&[
            "tables",
            "export",
            &device,
            "wgpu-fused",
            "--format",
            "ofa-yaml",
        ])
        .await
        .ok();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert!(
        doc.as_mapping().is_some_and(|m| !m.is_empty()),
        "{}",
        yaml.stdout
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_references_and_hex() {
    let app = spawn_app().await;
    seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let out = app
        .gpulut(&[
            "predict",
            "pixel-test",
            "wgpu-fused",
            "MoGA-A",
            "[0,1,2,3,4,5,6,7,8,9,10,11,0,1]",
        ])
        .await
        .ok();
    insta::with_settings!({filters => volatile_filters()}, {
        insta::assert_snapshot!("predict", out.stdout);
    });

    let v = app
        .gpulut(&["predict", "pixel-test", "wgpu-fused", "MoGA-A", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v[0]["name"], "MoGA-A");
    assert!(v[0]["total_ms"].as_f64().unwrap() > 0.0);
    assert!(
        !v[0]["blocks"].as_array().unwrap().is_empty(),
        "--json keeps the breakdown"
    );
}
