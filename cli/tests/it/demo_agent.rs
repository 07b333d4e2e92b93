//! The Docker Compose demo agent's start-up script (`docker/demo-agent`), run here as the
//! container runs it, against the real server and the real agent on this machine's Vulkan
//! (lavapipe where there is no GPU): the first start enrolls and queues a campaign, and a
//! restart resumes the same device without enrolling or queueing again.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::{ADMIN_TOKEN, TestApp, spawn_app};

/// A sibling binary of `gpulut` in the target directory (`cargo test --workspace` builds every
/// workspace binary first; a narrower run builds the missing one here).
fn sibling_binary(name: &str, package: &str) -> PathBuf {
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_gpulut"));
    let bin = cli.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", package])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building {package} failed");
    }
    bin
}

/// A directory holding the three binaries under the names the image gives them, so the
/// script finds them on PATH as it does in the container.
fn bin_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gpulut-demo-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, package) in [
        ("gpulut", "gpulut-cli"),
        ("gpulut-agent", "gpulut-agent"),
        ("gpulut-server", "gpulut-server"),
    ] {
        let target = if name == "gpulut" {
            PathBuf::from(env!("CARGO_BIN_EXE_gpulut"))
        } else {
            sibling_binary(name, package)
        };
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    }
    dir
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/demo-agent")
}

fn start(app: &TestApp, bins: &Path, state: &Path) -> Child {
    assert!(
        std::process::Command::new("jq")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "jq is missing (the demo agent's script needs it): apt-get install jq, or run ./scripts/test, which installs it"
    );
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg(script())
        .env("PATH", path)
        .env("GPULUT_SERVER", &app.base)
        .env("GPULUT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GPULUT_AGENT_STATE", state)
        .env("GPULUT_DEMO_DEVICE", "demo-test")
        .env("LP_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .env_remove("GPULUT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sh runs the demo agent script")
}

/// SIGTERM (the agent gives its job back), then the output.
async fn stop(child: Child) -> String {
    let pid = child.id().expect("still running").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the demo agent stops within a minute of SIGTERM")
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn list(app: &TestApp, what: &str) -> Vec<Value> {
    let v = app.gpulut(&[what, "list", "--json"]).await.ok().json();
    v.as_array().cloned().unwrap_or_default()
}

/// Waits until the campaign has finished at least `jobs` jobs; returns it.
async fn wait_jobs_done(app: &TestApp, child: &mut Child, jobs: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.stderr.take();
            let mut text = String::new();
            if let Some(mut e) = out {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut text).await;
            }
            panic!("the demo agent exited ({status}) before any job was done:\n{text}");
        }
        let campaigns = list(app, "campaigns").await;
        if let Some(c) = campaigns.first()
            && c["progress"]["done"].as_i64().unwrap_or(0) >= jobs
        {
            return c.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job of the demo campaign was done within 5 minutes: {campaigns:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_agent_enrolls_queues_a_campaign_and_resumes_after_a_restart() {
    let app = spawn_app().await;
    let bins = bin_dir();
    let state = bins.join("state");

    // First start: a token, enrollment, one campaign over the space, then the agent works.
    let mut first = start(&app, &bins, &state);
    let campaign = wait_jobs_done(&app, &mut first, 1).await;
    let log = stop(first).await;
    assert!(log.contains("enrolling as \"demo-test\""), "{log}");
    assert!(log.contains("queueing a moga-mbv3 campaign"), "{log}");

    let devices = list(&app, "devices").await;
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["name"], "demo-test");
    let frameworks: Vec<&str> = campaign["frameworks"]
        .as_array()
        .expect("the campaign lists its frameworks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(frameworks, ["wgpu-direct", "wgpu-fused"], "{campaign}");
    assert_eq!(campaign["device"], devices[0]["id"], "{campaign}");
    let done_before = campaign["progress"]["done"].as_i64().unwrap();

    // Restart: same credentials, no new enrollment, no second campaign; work goes on.
    let mut second = start(&app, &bins, &state);
    wait_jobs_done(&app, &mut second, done_before + 1).await;
    let log = stop(second).await;
    assert!(!log.contains("enrolling"), "{log}");
    assert!(!log.contains("queueing"), "{log}");
    assert_eq!(list(&app, "devices").await.len(), 1);
    assert_eq!(list(&app, "campaigns").await.len(), 1);

    let _ = std::fs::remove_dir_all(&bins);
}
