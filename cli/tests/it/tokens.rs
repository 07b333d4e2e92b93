//! Enrollment tokens and devices.

use crate::{seed_table, spawn_app, volatile_filters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_create_list_and_revoke() {
    let app = spawn_app().await;
    let created = app
        .gpulut(&[
            "tokens",
            "create",
            "--label",
            "pixel-7",
            "--max-uses",
            "2",
            "--ttl-s",
            "600",
        ])
        .await
        .ok();
    // The exact lines a person pastes on the phone, with the server this CLI talked to.
    let token = created
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the token is printed")
        .to_string();
    let enroll = format!("gpulut-agent enroll --server {} --token {token}", app.base);
    assert!(created.stdout.contains(&enroll), "{}", created.stdout);
    assert!(created.stdout.contains("gpulut-agent run"));
    assert!(
        created.stdout.contains("adb reverse tcp:"),
        "loopback server: adb hint"
    );
    insta::with_settings!({filters => {
        let mut f = volatile_filters();
        f.push((r"token:   \S+", "token:   [token]"));
        f.push((r"--token \S+", "--token [token]"));
        f
    }}, {
        insta::assert_snapshot!("token_created", created.stdout);
    });

    let list = app.gpulut(&["tokens", "list"]).await.ok();
    assert!(list.stdout.contains("pixel-7"), "{}", list.stdout);
    assert!(list.stdout.contains("0/2"));
    assert!(!list.stdout.contains(&token), "a secret is shown once");

    let listed = app.gpulut(&["tokens", "list", "--json"]).await.ok().json();
    insta::assert_json_snapshot!("tokens_list_json", listed, {
        "[].id" => "[uuid]",
        "[].prefix" => "[prefix]",
        "[].expires_at" => "[time]",
        "[].created_at" => "[time]",
    });
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["label"], "pixel-7");
    assert_eq!(listed[0]["max_uses"], 2);

    let revoked = app.gpulut(&["tokens", "revoke", &id]).await.ok();
    assert!(revoked.stdout.contains("revoked"), "{}", revoked.stdout);
    let list = app.gpulut(&["tokens", "list"]).await.ok();
    assert!(list.stdout.contains("revoked"), "{}", list.stdout);

    // JSON of a create is the server's own document, secret included.
    let v = app
        .gpulut(&["tokens", "create", "--label", "ci", "--json"])
        .await
        .ok()
        .json();
    assert!(v["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(v["label"], "ci");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_and_show() {
    let app = spawn_app().await;
    let empty = app.gpulut(&["devices", "list"]).await.ok();
    assert!(empty.stdout.contains("no devices yet"), "{}", empty.stdout);

    let id = seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;
    let list = app.gpulut(&["devices", "list"]).await.ok();
    insta::with_settings!({filters => volatile_filters()}, {
        insta::assert_snapshot!("devices_list", list.stdout);
    });
    let v = app.gpulut(&["devices", "list", "--json"]).await.ok().json();
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["name"], "pixel-test");

    let show = app.gpulut(&["devices", "show", &id]).await.ok();
    for want in [
        id.as_str(),
        "pixel-test",
        "fingerprint.gpu.name",
        "Mali-G710",
        "offline",
    ] {
        assert!(show.stdout.contains(want), "{want}: {}", show.stdout);
    }
}
