//! Types that cross the wire between the agent and the server. They live here, in the
//! crate both sides depend on, so the two can never disagree on a field name.

use serde::{Deserialize, Serialize};

/// What identifies one physical device (a phone or a desktop GPU) and the software stack a
/// measurement ran on. Latency depends on every one of these, so a table is only valid for
/// the fingerprint it was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFingerprint {
    /// Marketing model, e.g. `Pixel 7` (Android `ro.product.model`), or the host's product name.
    pub model: Option<String>,
    /// Manufacturer, e.g. `Google` (Android `ro.product.manufacturer`), or the host's vendor.
    pub manufacturer: Option<String>,
    /// System on chip, e.g. `Tensor G2` (Android `ro.soc.model`, else `ro.board.platform`), or the CPU model.
    pub soc: Option<String>,
    /// A stable, non-secret identifier of this physical machine where the OS exposes one
    /// (a SHA-256 of `/etc/machine-id` on Linux); lets a re-enrolled device keep its history.
    pub hardware_id: Option<String>,
    /// `android`, `linux`, `macos`, `windows`, ...
    pub os: String,
    /// Kernel release or OS version string.
    pub os_version: Option<String>,
    /// Android API level (`ro.build.version.sdk`), only on Android.
    pub android_api_level: Option<u32>,
    pub gpu: GpuFingerprint,
    /// Version of the agent that produced this fingerprint.
    pub agent_version: String,
}

/// The GPU as the graphics API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuFingerprint {
    /// Adapter name, e.g. `Mali-G710` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// PCI vendor id (0x13B5 for Arm, 0x5143 for Qualcomm, 0x10005 for Mesa).
    pub vendor_id: u32,
    pub device_id: u32,
    /// `integrated-gpu`, `discrete-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    /// `vulkan`, `metal`, `dx12` or `gl`.
    pub backend: String,
    /// Driver name, e.g. `llvmpipe` or `Qualcomm Technologies Inc. Adreno Vulkan Driver`.
    pub driver: String,
    /// Driver version string as the driver reports it.
    pub driver_version: String,
    /// Vulkan API version the device supports, e.g. `1.3.230`, when the backend is Vulkan.
    pub api_version: Option<String>,
    /// Whether GPU timestamp queries can time compute passes on this adapter.
    pub timestamp_query: bool,
    /// Nanoseconds per timestamp tick, when timestamps are supported.
    pub timestamp_period_ns: Option<f32>,
}

/// Which clock a measurement's samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerKind {
    /// GPU timestamp queries written at the beginning and end of the compute pass: the time
    /// the GPU spent on the dispatches, free of submission and wake-up latency.
    GpuTimestamp,
    /// Host wall clock from queue submission until the GPU reported completion, used where
    /// timestamps are missing or failed their check against the wall clock.
    Wall,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GpuTimestamp => "gpu-timestamp",
            Self::Wall => "wall",
        }
    }
}

/// Whether a measurement is of one block or of a whole architecture run end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasuredKind {
    Block,
    Arch,
}

/// Why the adaptive protocol stopped taking samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// At least `min_runs` samples and the median's confidence interval within the target.
    Converged,
    MaxRuns,
    MaxSeconds,
}

/// One thermal zone's temperature, as the OS lets an unprivileged process read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalReading {
    /// The zone's `type` (e.g. `gpu-thermal`, `x86_pkg_temp`), or its directory name.
    pub zone: String,
    pub celsius: f64,
}

/// The device's thermal and clock state at one moment; heat and DVFS change latency, so each
/// measurement carries the state at its start and end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thermal: Vec<ThermalReading>,
    /// Current GPU clock where a devfreq or kgsl node is readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_freq_mhz: Option<f64>,
}

/// The timing protocol a measurement followed (DESIGN.md section 4), so the server can tell
/// series taken under different rules apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingProtocol {
    pub warmup_runs: u32,
    /// Warm-up also lasts at least this long.
    pub warmup_min_ms: f64,
    pub min_runs: u32,
    pub max_runs: u32,
    /// Per block or architecture, over its timed runs.
    pub max_seconds: f64,
    /// Stop once the 95% CI of the median is within +-this fraction of it.
    pub target_relative_ci: f64,
    /// Seed of the shuffled interleaving order and of the random weights and inputs.
    pub seed: u64,
    /// Whether GPU timestamps were allowed (they are still checked against the wall clock).
    pub gpu_timestamps: bool,
}

/// DESIGN section 4's protocol: 10 warm-up runs lasting at least 200 ms, then at least 30
/// timed runs until the median's 95% CI is within ±2%, bounded by 300 runs or 10 s per
/// series; GPU timestamps where the adapter has them. Shared so the agent's `bench` and the
/// server's campaigns default to the same rules.
impl Default for TimingProtocol {
    fn default() -> Self {
        Self {
            warmup_runs: 10,
            warmup_min_ms: 200.0,
            min_runs: 30,
            max_runs: 300,
            max_seconds: 10.0,
            target_relative_ci: 0.02,
            seed: 0,
            gpu_timestamps: true,
        }
    }
}

/// One timed series of one block or architecture on one device with one framework: what
/// `gpulut-agent bench --json` prints per result and what the server ingests.
///
/// A series whose output did not match the CPU reference has `verified: false` and no
/// samples: a wrong kernel's time means nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeasurement {
    /// The block key, or the architecture's canonical text (hex form, or the reference name of
    /// a network outside the grid).
    pub key: String,
    pub kind: MeasuredKind,
    /// Reference name of the architecture (`MoGA-A`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Framework name, e.g. `wgpu-direct`.
    pub framework: String,
    pub framework_version: String,
    /// The GPU output on seeded random weights and input matched the CPU reference.
    pub verified: bool,
    /// max |gpu - reference| / max |reference|, when the block ran at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_relative_error: Option<f64>,
    /// The bound `max_relative_error` was checked against.
    pub tolerance: f64,
    /// Why the block failed (preparation, execution or verification); none on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Median of `samples`; null when nothing was timed.
    pub median_ms: Option<f64>,
    /// Raw sample times in milliseconds, in the order taken, from `timer`.
    pub samples: Vec<f64>,
    /// Which clock `samples` come from; null when nothing was timed.
    pub timer: Option<TimerKind>,
    /// Submit-to-completion wall times of the same runs, kept when `timer` is the GPU clock
    /// so the gap (submission and wake-up overhead) stays visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wall_samples: Vec<f64>,
    pub warmup_runs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<StopReason>,
    /// Time spent building the pipelines (shader compilation) this series was the first to
    /// need; pipelines are shared between series, as layers share them in a runtime. Never
    /// part of a sample.
    pub pipeline_ms: f64,
    /// Compute dispatches per run.
    pub dispatches: u32,
    /// Floating-point operations per run (2 per multiply-accumulate of the space's counting
    /// conventions).
    pub flops: u64,
    /// Bytes the unfused op graph must move per run: every op's inputs, weights and outputs
    /// once, in f32. The same figure for every framework, so GB/s compares frameworks.
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_start: Option<DeviceState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_end: Option<DeviceState>,
}

/// The document `gpulut-agent bench --json` prints: where and how, then one measurement per
/// block or architecture and framework.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub agent_version: String,
    pub fingerprint: DeviceFingerprint,
    /// The search space the blocks and architectures belong to.
    pub space: String,
    pub protocol: TimingProtocol,
    /// Whether GPU timestamps passed their check against the wall clock on this device (null
    /// when the adapter has none or they were turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps_valid: Option<bool>,
    pub results: Vec<BlockMeasurement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_spellings_are_stable() {
        let m = BlockMeasurement {
            key: "gap-i7x7x960".into(),
            kind: MeasuredKind::Block,
            name: None,
            framework: "wgpu-fused".into(),
            framework_version: "1".into(),
            verified: true,
            max_relative_error: Some(1e-7),
            tolerance: 1e-4,
            error: None,
            median_ms: Some(0.5),
            samples: vec![0.5, 0.6, 0.4],
            timer: Some(TimerKind::GpuTimestamp),
            wall_samples: vec![0.7, 0.8, 0.6],
            warmup_runs: 10,
            stopped_by: Some(StopReason::MaxRuns),
            pipeline_ms: 3.0,
            dispatches: 1,
            flops: 0,
            bytes: 192_000,
            state_start: Some(DeviceState::default()),
            state_end: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["timer"], "gpu-timestamp");
        assert_eq!(v["kind"], "block");
        assert_eq!(v["stopped_by"], "max_runs");
        assert!(v.get("name").is_none() && v.get("error").is_none());
        let back: BlockMeasurement = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        // A failed, untimed series still carries its nulls.
        let failed = BlockMeasurement {
            verified: false,
            median_ms: None,
            samples: vec![],
            timer: None,
            ..m
        };
        let v = serde_json::to_value(&failed).unwrap();
        assert!(v["median_ms"].is_null() && v["timer"].is_null());
        assert_eq!(v["samples"], serde_json::json!([]));
        assert_eq!(TimerKind::Wall.as_str(), "wall");
    }
}
