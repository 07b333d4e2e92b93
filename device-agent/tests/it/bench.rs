//! `gpulut-agent bench` as a script runs it, and the verification gate in front of timing.

use gpulut_agent::bench::{self, Fault, Options, Silent};
use gpulut_agent::framework::Framework;
use gpulut_tables::wire::{BenchReport, MeasuredKind, TimerKind, TimingProtocol};
use serde_json::Value;

use crate::kernels::open_gpu;
use crate::{agent, stdout_of_success};

/// Tiny run counts: lavapipe is slow and these tests check the plumbing, not the numbers.
const QUICK: [&str; 10] = [
    "--num_runs",
    "3",
    "--max_runs",
    "3",
    "--warmup_runs",
    "1",
    "--warmup_min_secs",
    "0",
    "--max_secs",
    "5",
];

fn quick_protocol() -> TimingProtocol {
    TimingProtocol {
        warmup_runs: 1,
        warmup_min_ms: 0.0,
        min_runs: 3,
        max_runs: 3,
        max_seconds: 5.0,
        ..bench::default_protocol()
    }
}

#[test]
fn json_for_moga_a_on_both_frameworks() {
    let mut args = vec!["bench", "--arch", "MoGA-A", "--framework", "all", "--json"];
    args.extend(QUICK);
    let text = stdout_of_success(&agent(&args));
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    let results = doc["results"].as_array().expect("results array");
    assert_eq!(results.len(), 2);
    let mut frameworks = Vec::new();
    for r in results {
        assert_eq!(r["key"], "453969358533aa");
        assert_eq!(r["name"], "MoGA-A");
        assert_eq!(r["verified"], true, "{r}");
        let samples = r["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|s| s.as_f64().is_some_and(|v| v > 0.0)));
        assert!(r["median_ms"].as_f64().is_some_and(|m| m > 0.0));
        let timer = r["timer"].as_str().expect("timer");
        assert!(timer == "gpu-timestamp" || timer == "wall", "{timer}");
        frameworks.push(r["framework"].as_str().expect("framework").to_owned());
    }
    frameworks.sort();
    assert_eq!(frameworks, ["wgpu-direct", "wgpu-fused"]);
    // The whole document is the wire type the server ingests.
    let report: BenchReport = serde_json::from_value(doc).expect("a wire BenchReport");
    assert_eq!(report.fingerprint.gpu.backend, "vulkan");
    assert_eq!(report.protocol.min_runs, 3);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.kind == MeasuredKind::Arch && r.flops > 0)
    );
}

#[test]
fn blocks_by_key_as_table_and_csv() {
    let key = "mbconv-i7x7x160-o7x7x160-e6-k5-s1-se1-hswish";
    let mut args = vec![
        "bench",
        "--block",
        key,
        "--block",
        "gap-i7x7x960",
        "--framework",
        "wgpu-fused",
    ];
    args.extend(QUICK);
    let table = stdout_of_success(&agent(&args));
    for needle in [
        key,
        "gap-i7x7x960",
        "wgpu-fused@1",
        "median ms",
        "GFLOP/s",
        "GB/s",
        "CV %",
    ] {
        assert!(table.contains(needle), "{needle} missing in\n{table}");
    }
    args.push("--csv");
    let csv = stdout_of_success(&agent(&args));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("key,name,kind,framework,"));
    assert!(lines[1].starts_with(&format!("{key},,block,wgpu-fused,1,true,")));
}

#[test]
fn unknown_block_and_arch_fail_with_a_message() {
    let out = agent(&["bench", "--block", "conv-nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conv-nonsense") && stderr.contains("not a block"),
        "{stderr}"
    );
    let out = agent(&["bench", "--arch", "MoGA-Z"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MoGA-Z") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_broken_kernel_is_caught_and_never_timed() {
    let key = "mbconv-i28x28x40-o28x28x40-e3-k3-s1-se1-relu";
    let mut args = vec![
        "bench",
        "--block",
        key,
        "--json",
        "--inject_fault",
        "perturb-weights",
    ];
    args.extend(QUICK);
    let out = agent(&args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed verification is not a clean run"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("results are still printed");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["verified"], false, "{r}");
        assert!(r["samples"].as_array().is_some_and(Vec::is_empty), "{r}");
        assert!(r["median_ms"].is_null());
        assert!(r["timer"].is_null());
        assert!(r["max_relative_error"].as_f64().is_some_and(|e| e > 1e-4));
        assert!(
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("CPU reference"))
        );
    }
}

#[test]
fn wrong_activation_is_caught_in_the_library_too() {
    let gpu = open_gpu();
    let space = bench::space("moga-mbv3").expect("space");
    let items =
        vec![bench::block_item(&space, "conv-i224x224x3-o112x112x16-k3-s2-hswish").expect("stem")];
    let options = Options {
        protocol: quick_protocol(),
        fault: Some(Fault::WrongActivation),
    };
    let out = bench::run(&gpu, &items, &Framework::ALL, &options, &mut Silent);
    assert_eq!(out.results.len(), 2);
    assert!(
        out.results
            .iter()
            .all(|r| !r.verified && r.samples.is_empty())
    );

    // The same block without the fault verifies and is timed.
    let options = Options {
        protocol: quick_protocol(),
        fault: None,
    };
    let out = bench::run(&gpu, &items, &Framework::ALL, &options, &mut Silent);
    for r in &out.results {
        assert!(r.verified, "{r:?}");
        assert_eq!(r.samples.len(), 3);
        assert_eq!(r.warmup_runs, 1);
        assert!(r.state_start.is_some() && r.state_end.is_some());
        if r.timer == Some(TimerKind::GpuTimestamp) {
            assert_eq!(r.wall_samples.len(), 3);
            for (g, w) in r.samples.iter().zip(&r.wall_samples) {
                assert!(g <= w, "gpu {g} ms above wall {w} ms");
            }
        }
    }
}
