use gpulut_tables::wire::DeviceFingerprint;
use serde_json::Value;

use crate::{agent, stdout_of_success};

fn info_json() -> Value {
    let text = stdout_of_success(&agent(&["info", "--json"]));
    serde_json::from_str(&text).expect("info --json prints one JSON document")
}

#[test]
fn json_describes_the_vulkan_adapter() {
    let doc = info_json();
    let fingerprint: DeviceFingerprint =
        serde_json::from_value(doc["fingerprint"].clone()).expect("a wire DeviceFingerprint");
    let gpu = &fingerprint.gpu;

    assert_eq!(gpu.backend, "vulkan", "the default must prefer Vulkan");
    assert!(!gpu.name.trim().is_empty());
    assert_ne!(gpu.vendor_id, 0);
    assert!(!gpu.driver.trim().is_empty() && gpu.driver != "unknown");
    assert!(!gpu.driver_version.trim().is_empty());
    let api = gpu
        .api_version
        .as_deref()
        .expect("Vulkan API version is read");
    assert!(api.starts_with("1."), "api_version {api:?}");
    if gpu.timestamp_query {
        let period = gpu
            .timestamp_period_ns
            .expect("period when timestamps work");
        assert!(period > 0.0);
    }
    assert_eq!(fingerprint.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(fingerprint.os, std::env::consts::OS);

    let invocations = doc["limits"]["max_compute_invocations_per_workgroup"]
        .as_u64()
        .expect("limit is a number");
    assert!(invocations >= 64, "max invocations {invocations}");
    assert!(doc["limits"]["max_storage_buffer_binding_size"].as_u64() > Some(0));

    let features: Vec<&str> = doc["features"]
        .as_array()
        .expect("features is an array")
        .iter()
        .map(|f| f.as_str().expect("feature names are strings"))
        .collect();
    assert_eq!(
        gpu.timestamp_query,
        features.contains(&"timestamp-query"),
        "timestamp_query agrees with the feature list {features:?}"
    );
}

#[test]
fn explicit_vulkan_backend_matches_default() {
    let default = info_json();
    let text = stdout_of_success(&agent(&["info", "--json", "--backend", "vulkan"]));
    let vulkan: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(default["fingerprint"], vulkan["fingerprint"]);
}

#[test]
fn table_names_the_adapter() {
    let doc = info_json();
    let name = doc["fingerprint"]["gpu"]["name"].as_str().expect("name");
    let table = stdout_of_success(&agent(&["info"]));
    assert!(table.contains(name), "adapter {name:?} not in\n{table}");
    for section in ["Device", "GPU", "Compute limits", "Features"] {
        assert!(
            table.contains(section),
            "section {section:?} not in\n{table}"
        );
    }
    assert!(table.contains("max_compute_invocations_per_workgroup"));
}

#[test]
fn unknown_flag_fails_with_a_message() {
    let out = agent(&["info", "--no-such-flag"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--no-such-flag"), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn backend_missing_on_this_os_fails_cleanly() {
    // Metal exists only on Apple systems, DX12 only on Windows: one of them is always absent.
    let backend = if cfg!(target_vendor = "apple") {
        "dx12"
    } else {
        "metal"
    };
    let out = agent(&["info", "--backend", backend]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(backend), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn missing_vulkan_driver_says_what_to_install() {
    // Point the Vulkan loader at no driver at all, as on a machine without one.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpulut-agent"))
        .args(["info", "--backend", "vulkan"])
        .env("VK_DRIVER_FILES", "/nonexistent/gpulut-icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/gpulut-icd.json")
        .env_remove("GPULUT_BACKEND")
        .output()
        .expect("the agent binary starts");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Vulkan driver found"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("mesa-vulkan-drivers"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}
