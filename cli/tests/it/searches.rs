//! Campaigns and searches: start, watch, front, plot.

use crate::{seed_table, spawn_app, spawn_app_with_worker, volatile_filters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_search_watched_to_its_front_and_plots() {
    let app = spawn_app_with_worker().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let table = format!("{device}/wgpu-fused");
    let started = app
        .gpulut(&[
            "search",
            "start",
            "--table",
            &table,
            "--accuracy",
            "proxy",
            "--population",
            "8",
            "--generations",
            "3",
            "--seed",
            "7",
            "--weights",
            "2,2,1",
            "--json",
        ])
        .await
        .ok()
        .json();
    let id = started["id"].as_str().unwrap().to_string();

    let watched = app
        .gpulut(&["search", "watch", &id, "--interval", "0.1"])
        .await
        .ok();
    assert!(watched.stdout.contains("done"), "{watched:#?}");
    assert!(watched.stdout.contains("3 of 3"), "{}", watched.stdout);
    assert!(watched.stdout.contains("hypervolume"), "{}", watched.stdout);
    // In a pipe the bar is hidden; the progress comes as lines on stderr instead.
    assert!(
        watched
            .stderr
            .contains(&format!("search {id}: done, generation 3/3")),
        "{}",
        watched.stderr
    );

    let status = app
        .gpulut(&["search", "status", &id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(status["state"], "done");
    assert_eq!(status["generation"], 3);
    let listed = app.gpulut(&["search", "list"]).await.ok();
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);

    // The front: a table snapshot, the same rows as CSV, and the server's JSON.
    let front = app.gpulut(&["search", "front", &id]).await.ok();
    insta::with_settings!({filters => volatile_filters()}, {
        insta::assert_snapshot!("front", front.stdout);
    });
    let doc = app
        .gpulut(&["search", "front", &id, "--json"])
        .await
        .ok()
        .json();
    let members = doc["front"].as_array().unwrap();
    let references = doc["references"].as_array().unwrap();
    assert!(!members.is_empty());
    assert!(!references.is_empty());
    assert!(front.stdout.contains("▲ MoGA-A"), "{}", front.stdout);
    let csv = app.gpulut(&["search", "front", &id, "--csv"]).await.ok();
    let rows: Vec<&str> = csv.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), members.len() + references.len());
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("front,")).count(),
        members.len()
    );
    let latencies: Vec<f64> = rows
        .iter()
        .filter(|r| r.starts_with("front,"))
        .map(|r| r.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    assert!(latencies.windows(2).all(|w| w[0] <= w[1]), "fastest first");

    // Plots: one circle per member, one triangle per reference that has both coordinates.
    let dir = std::env::temp_dir().join(format!("gpulut-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg_path = dir.join("front.svg");
    let plotted = app
        .gpulut(&["search", "plot", &id, "-o", svg_path.to_str().unwrap()])
        .await
        .ok();
    assert!(plotted.stdout.contains("wrote"), "{}", plotted.stdout);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<circle").count(), members.len());
    let plottable = references
        .iter()
        .filter(|r| r["accuracy"].is_number() && r["latency_ms"].is_number())
        .count();
    assert!(plottable >= 1, "MoGA-A is on the grid: {references:?}");
    assert_eq!(svg.matches("<polygon").count(), plottable);
    assert!(svg.contains("\nMoGA-A\n</text>"));
    assert!(
        svg.contains(&format!("search {id}")),
        "the title names the search"
    );
    assert!(
        svg.contains("pixel-test/wgpu-fused"),
        "the subtitle names the table"
    );
    assert!(svg.contains("latency (ms"), "axes have units");
    assert!(svg.contains("accuracy (%"));

    let png_path = dir.join("front.png");
    app.gpulut(&["search", "plot", &id, "-o", png_path.to_str().unwrap()])
        .await
        .ok();
    let png = std::fs::read(&png_path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "a drawn picture, not a blank: {} bytes",
        png.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_search_or_campaign_makes_watch_fail() {
    // No worker: the search stays queued until cancelled.
    let app = spawn_app().await;
    let device = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let started = app
        .gpulut(&[
            "search",
            "start",
            "--table",
            &format!("{device}/wgpu-fused"),
            "--population",
            "8",
            "--generations",
            "3",
        ])
        .await
        .ok();
    let id = started
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("search ID ...")
        .to_string();
    assert!(
        started
            .stdout
            .contains(&format!("gpulut search watch {id}"))
    );
    let cancelled = app.gpulut(&["search", "cancel", &id]).await.ok();
    assert!(cancelled.stdout.contains("cancel"), "{}", cancelled.stdout);
    let watched = app
        .gpulut(&["search", "watch", &id, "--interval", "0.1"])
        .await;
    assert_eq!(watched.code, 3, "{watched:#?}");
    assert!(watched.stderr.contains("cancelled"), "{}", watched.stderr);

    // A campaign for the device, no agent to run it: cancel it, and watch reports that.
    let created = app
        .gpulut(&[
            "campaigns",
            "create",
            "--device",
            "pixel-test",
            "--framework",
            "wgpu-fused",
            "--force",
            "--references",
            "--min-runs",
            "5",
            "--max-runs",
            "15",
            "--json",
        ])
        .await
        .ok()
        .json();
    let cid = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "queued");
    let list = app.gpulut(&["campaigns", "list"]).await.ok();
    insta::with_settings!({filters => volatile_filters()}, {
        insta::assert_snapshot!("campaigns_list", list.stdout);
    });
    let show = app.gpulut(&["campaigns", "show", &cid]).await.ok();
    assert!(show.stdout.contains("queued"), "{}", show.stdout);
    app.gpulut(&["campaigns", "cancel", &cid]).await.ok();
    let watched = app
        .gpulut(&["campaigns", "watch", &cid, "--interval", "0.1"])
        .await;
    assert_eq!(watched.code, 3, "{watched:#?}");
    assert!(watched.stdout.contains("cancelled"), "{}", watched.stdout);
}
