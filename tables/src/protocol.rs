//! The agent protocol's messages (DESIGN section 5): enrollment, heartbeats, job claims with
//! leases, lease renewal, result upload and release. Shared by the agent (client) and the server,
//! so both sides spell every field the same way. Ids travel as strings (UUIDs).

use serde::{Deserialize, Serialize};

use crate::wire::{BlockMeasurement, DeviceFingerprint, DeviceState, TimingProtocol};

/// `POST /v1/agents/enroll`: exchanges an enrollment token for agent credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token an admin created.
    pub token: String,
    /// A name for the device; defaults to its model or GPU name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub fingerprint: DeviceFingerprint,
    /// What the agent can measure with (its own kernels and the runtimes it found installed),
    /// so the server refuses a campaign for a framework the device cannot run instead of
    /// failing halfway through it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<FrameworkSupport>,
}

/// One framework as an agent found it at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameworkSupport {
    /// The framework's name in table terms: `wgpu-fused`, `ncnn-vulkan`, `onnxruntime-cpu`, ...
    pub name: String,
    /// The version its table entries are recorded with (a runtime's own version string, or
    /// our kernel set's version); empty when unavailable.
    #[serde(default)]
    pub version: String,
    pub available: bool,
    /// Why it is unavailable, in words a user can act on (what to install).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The rhythm the server asks of an agent; every interval is jittered by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    /// Seconds between heartbeats.
    pub heartbeat_s: f64,
    /// Seconds a job claim may wait on the server for work (long poll).
    pub poll_wait_s: f64,
    /// Seconds a job lease lasts unless renewed.
    pub lease_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub device_id: String,
    pub device_name: String,
    /// The agent's bearer token: shown once, stored by the server only as a digest.
    pub token: String,
    pub cadence: Cadence,
}

/// `POST /v1/agents/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeviceState>,
    /// As in enrollment; sent again so a runtime installed later becomes usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<FrameworkSupport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub cadence: Cadence,
}

/// `POST /v1/agents/jobs/claim`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// How long to wait for a job, in seconds; the server caps it at its cadence's `poll_wait_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_s: Option<f64>,
}

/// What a job asks to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Blocks of the space, by block key.
    Blocks,
    /// Whole networks end to end (validation), by architecture text (hex or reference name).
    Networks,
}

/// A claimed job with its lease. Uploads and renewals must quote `attempt` and `lease_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub campaign_id: String,
    /// 1 for the first claim; each expiry hands the job out again with the next attempt.
    pub attempt: u32,
    pub lease_id: String,
    /// RFC 3339.
    pub lease_expires_at: String,
    pub lease_s: f64,
    pub space: String,
    pub framework: String,
    pub kind: JobKind,
    /// Block keys or architectures, by kind.
    pub items: Vec<String>,
    pub protocol: TimingProtocol,
}

/// `POST /v1/agents/jobs/{id}/lease` (renew) and `.../release` (give back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub attempt: u32,
    pub lease_id: String,
    /// Why a job is given back (release only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRenewed {
    /// RFC 3339.
    pub lease_expires_at: String,
}

/// `POST /v1/agents/jobs/{id}/result`: every item of the job, measured or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultUpload {
    pub attempt: u32,
    pub lease_id: String,
    pub agent_version: String,
    /// Whether GPU timestamps passed their wall-clock check on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps_valid: Option<bool>,
    pub results: Vec<BlockMeasurement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultAck {
    /// Series stored (verified and timed).
    pub stored: usize,
    /// Items that failed verification or could not run: recorded, never stored as timings.
    pub failed: usize,
    /// True when this (job, attempt) had been uploaded before: nothing new was written.
    pub duplicate: bool,
}
