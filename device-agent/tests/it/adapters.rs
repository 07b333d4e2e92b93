//! External framework adapters (ncnn-vulkan, ncnn-cpu, onnxruntime-cpu) through the agent
//! binary: their outputs match the CPU reference, a broken adapter is caught before it is
//! timed, and a missing runtime is reported with its reason. `./scripts/test` provides the
//! runtimes in a venv and points GPULUT_PYTHON at it.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::stdout_of_success;

const ADAPTERS: [&str; 3] = ["ncnn-vulkan", "ncnn-cpu", "onnxruntime-cpu"];

/// Few runs: these tests check numbers and plumbing, not speed.
const QUICK: [&str; 10] = [
    "--num_runs",
    "2",
    "--max_runs",
    "2",
    "--warmup_runs",
    "1",
    "--warmup_min_secs",
    "0",
    "--max_secs",
    "5",
];

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("adapters")
}

fn double_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/adapters")
}

/// The interpreter with the adapters' requirements, which `./scripts/test` exports.
fn python() -> String {
    std::env::var("GPULUT_PYTHON").expect(
        "GPULUT_PYTHON is not set: run the tests with ./scripts/test, which creates the adapters' venv",
    )
}

fn agent_with(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpulut-agent"));
    cmd.args(args)
        .env_remove("GPULUT_BACKEND")
        .env("GPULUT_ADAPTERS_DIR", shipped_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the agent binary starts")
}

fn results(out: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    doc["results"].as_array().expect("results").clone()
}

#[test]
fn every_adapter_matches_the_reference_on_blocks_and_moga_c() {
    let frameworks = ADAPTERS.join(",");
    let mut args = vec![
        "bench",
        "--json",
        "--framework",
        &frameworks,
        // stem; a stride-2 choice block; SE with a residual; a separable conv; the head
        "--block",
        "conv-i224x224x3-o112x112x16-k3-s2-hswish",
        "--block",
        "mbconv-i112x112x16-o56x56x24-e3-k5-s2-se0-relu",
        "--block",
        "mbconv-i14x14x80-o14x14x80-e6-k5-s1-se1-hswish",
        "--block",
        "dwsep-i112x112x16-o112x112x16-k3-s1-relu",
        "--block",
        "conv-i7x7x160-o7x7x960-k1-s1-hswish",
        "--block",
        "gap-i7x7x960",
        "--block",
        "conv-i1x1x960-o1x1x1280-k1-s1-hswish",
        "--block",
        "fc-i1280-o1000",
        "--arch",
        "MoGA-C",
    ];
    args.extend(QUICK);
    let out = agent_with(&args, &[("GPULUT_PYTHON", python())]);
    let text = stdout_of_success(&out);
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 9 * ADAPTERS.len());
    for r in results {
        let framework = r["framework"].as_str().expect("framework");
        assert!(ADAPTERS.contains(&framework), "{framework}");
        assert_eq!(r["verified"], true, "{r}");
        assert!(
            r["max_relative_error"].as_f64().is_some_and(|e| e <= 1e-4),
            "{r}"
        );
        let version = r["framework_version"].as_str().expect("version");
        assert!(version.contains("+gpulut."), "{version}");
        assert_eq!(r["samples"].as_array().map(Vec::len), Some(2), "{r}");
        assert_eq!(r["timer"], "wall");
        assert!(r["median_ms"].as_f64().is_some_and(|m| m > 0.0));
        assert_eq!(r["warmup_runs"], 1);
        assert!(r["stopped_by"].is_string(), "{r}");
    }
    assert!(
        results
            .iter()
            .any(|r| r["name"] == "MoGA-C" && r["kind"] == "arch")
    );
}

#[test]
fn a_broken_adapter_is_caught_and_never_timed() {
    let log = std::env::temp_dir().join(format!("gpulut-double-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let dirs = std::env::join_paths([double_dir(), shipped_dir()]).expect("path list");
    let mut args = vec![
        "bench",
        "--json",
        "--framework",
        "broken-double,onnxruntime-cpu",
        "--block",
        "mbconv-i7x7x160-o7x7x160-e6-k5-s1-se1-hswish",
    ];
    args.extend(QUICK);
    let out = agent_with(
        &args,
        &[
            ("GPULUT_PYTHON", python()),
            ("GPULUT_ADAPTERS_DIR", dirs.to_string_lossy().into_owned()),
            ("GPULUT_DOUBLE_LOG", log.to_string_lossy().into_owned()),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "some results failed");
    let results = results(&out);
    let broken = results
        .iter()
        .find(|r| r["framework"] == "broken-double")
        .expect("the double's result");
    assert_eq!(broken["verified"], false);
    assert!(broken["median_ms"].is_null());
    assert_eq!(broken["samples"].as_array().map(Vec::len), Some(0));
    let error = broken["error"].as_str().expect("error");
    assert!(
        error.contains("CPU reference") && error.contains("not timed"),
        "{error}"
    );
    assert!(
        broken["max_relative_error"]
            .as_f64()
            .is_some_and(|e| e > 1e-4)
    );
    // The honest runtime beside it is unaffected.
    let ort = results
        .iter()
        .find(|r| r["framework"] == "onnxruntime-cpu")
        .expect("onnxruntime result");
    assert_eq!(ort["verified"], true, "{ort}");

    // The double was asked for its output only: never for warm-up or timed runs.
    let log_text = std::fs::read_to_string(&log).expect("the double logged its requests");
    let _ = std::fs::remove_file(&log);
    let runs: Vec<Value> = log_text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("log line"))
        .filter(|l| l["request"] == "run")
        .collect();
    assert_eq!(runs.len(), 1, "{log_text}");
    assert_eq!(runs[0]["protocol"]["max_runs"], 0);
    assert_eq!(runs[0]["protocol"]["warmup_runs"], 0);
}

#[test]
fn a_missing_runtime_is_reported_with_its_reason() {
    let missing = [("GPULUT_PYTHON", "gpulut-no-such-python".to_owned())];
    let text = stdout_of_success(&agent_with(&["info", "--json"], &missing));
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let frameworks = doc["frameworks"].as_array().expect("frameworks");
    let find = |name: &str| {
        frameworks
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {frameworks:?}"))
            .clone()
    };
    for name in ["wgpu-direct", "wgpu-fused"] {
        assert_eq!(find(name)["available"], true);
    }
    for name in ADAPTERS {
        let f = find(name);
        assert_eq!(f["available"], false, "{f}");
        let detail = f["detail"].as_str().expect("a reason");
        assert!(
            detail.contains("gpulut-no-such-python") && detail.contains("requirements.txt"),
            "{detail}"
        );
    }
    // The table says the same, and bench refuses the framework up front.
    let table = stdout_of_success(&agent_with(&["info"], &missing));
    assert!(
        table.contains("Frameworks") && table.contains("no: cannot start"),
        "{table}"
    );
    let out = agent_with(
        &[
            "bench",
            "--framework",
            "ncnn-cpu",
            "--block",
            "gap-i7x7x960",
        ],
        &missing,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`ncnn-cpu` is not available") && stderr.contains("cannot start"),
        "{stderr}"
    );

    // With the runtimes installed, all three are available with versions.
    let text = stdout_of_success(&agent_with(
        &["info", "--json"],
        &[("GPULUT_PYTHON", python())],
    ));
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    for name in ADAPTERS {
        let f = doc["frameworks"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["name"] == name).cloned())
            .expect("listed");
        assert_eq!(f["available"], true, "{f}");
        assert!(f["version"].as_str().is_some_and(|v| !v.is_empty()));
    }
}
