//! The `gpulut-server` binary's own subcommands.

use std::process::Command;

use reqwest::StatusCode;

use crate::{fresh_database, spawn_app_on};

fn server() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpulut-server"));
    c.env_remove("DATABASE_URL")
        .env_remove("GPULUT_ADMIN_TOKEN")
        .env_remove("GPULUT_LISTEN");
    c
}

#[tokio::test]
async fn admin_create_token_makes_a_working_key() {
    let db = fresh_database().await;
    let out = server()
        .args([
            "admin",
            "create-token",
            "--label",
            "from the cli",
            "--role",
            "user",
        ])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("gpulut_key_"));
    let app = spawn_app_on(db).await;
    let r = app.get("/v1/spaces", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A user key is not an admin key.
    assert_eq!(
        app.get("/v1/api-keys", Some(&token)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn migrate_applies_the_schema() {
    let db = fresh_database().await;
    let out = server()
        .arg("migrate")
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('devices', 'jobs', 'measurements', 'table_entries', 'searches')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 5);
}

// Multi-threaded: the server answers on another worker while this one waits on the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_reflects_readiness() {
    let app = spawn_app_on(fresh_database().await).await;
    let ok = server()
        .args(["healthcheck", "--url", &app.base])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let down = server()
        .args(["healthcheck", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("readyz"));
}

#[test]
fn missing_database_url_is_a_clear_error() {
    let out = server().arg("migrate").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn weak_admin_token_is_refused_at_start() {
    let out = server()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("GPULUT_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

/// SIGTERM lets requests in flight finish and exits 0: what orchestrators rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let db = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpulut-server"))
        .args(["serve", "--listen", &listen])
        .env("DATABASE_URL", &db)
        .env_remove("GPULUT_ADMIN_TOKEN")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{listen}/readyz");
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server became ready");
    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutting down"));
}
