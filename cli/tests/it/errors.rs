//! What a user sees when something is wrong: the server's problem, or a clear connection
//! message, on stderr, with a non-zero exit and no panic.

use crate::{run_binary, seed_table, spawn_app};

fn assert_clean_failure(r: &crate::Run) {
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.starts_with("error: "), "{r:#?}");
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_shows_the_servers_problem() {
    let app = spawn_app().await;
    let r = app
        .gpulut_as(Some("not-a-token"), &["devices", "list"])
        .await;
    assert_clean_failure(&r);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("error: Unauthorized: "),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());

    let r = app.gpulut_as(None, &["tables", "list"]).await;
    assert_clean_failure(&r);
    assert!(
        r.stderr.contains("GPULUT_TOKEN"),
        "no token: say how to give one: {}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_and_bad_input() {
    let app = spawn_app().await;
    seed_table(&app, "pixel-test", "wgpu-fused", 1.0).await;

    let r = app
        .gpulut(&["tables", "get", "no-such-phone", "wgpu-fused"])
        .await;
    assert_clean_failure(&r);
    assert!(r.stderr.starts_with("error: Not Found: "), "{}", r.stderr);
    assert!(r.stderr.contains("no-such-phone"), "{}", r.stderr);

    let r = app
        .gpulut(&["predict", "pixel-test", "wgpu-fused", "not-an-arch"])
        .await;
    assert_clean_failure(&r);
    assert!(r.stderr.contains("not-an-arch"), "{}", r.stderr);

    let r = app
        .gpulut(&["search", "status", "00000000-0000-4000-8000-000000000000"])
        .await;
    assert_clean_failure(&r);
    assert!(r.stderr.starts_with("error: Not Found: "), "{}", r.stderr);

    // Caught before any request.
    let r = app
        .gpulut(&[
            "search",
            "start",
            "--table",
            "just-a-device",
            "--population",
            "8",
        ])
        .await;
    assert_clean_failure(&r);
    assert!(r.stderr.contains("DEVICE/FRAMEWORK"), "{}", r.stderr);
    let r = app
        .gpulut(&["search", "plot", "x", "-o", "front.gif"])
        .await;
    assert_clean_failure(&r);
    assert!(r.stderr.contains(".svg or .png"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let r = run_binary(&[], Some("t"), &["--server", &server, "devices", "list"]).await;
    assert_clean_failure(&r);
    assert!(
        r.stderr
            .contains(&format!("cannot reach the gpulut server at {server}")),
        "{}",
        r.stderr
    );

    let r = run_binary(
        &[("GPULUT_SERVER", "127.0.0.1:8080")],
        None,
        &["devices", "list"],
    )
    .await;
    assert_clean_failure(&r);
    assert!(r.stderr.contains("http://HOST:PORT"), "{}", r.stderr);
}
