//! The parts of the server's answers that the CLI renders. Fields the CLI does not show are
//! left out, and optional ones default, so a newer server that adds fields still works; `--json`
//! prints the server's own document rather than these.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct EnrollmentToken {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub device_labels: Vec<String>,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: String,
    pub created_at: String,
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// Only in the answer to a create: the secret, shown once.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub agents: i64,
    #[serde(default)]
    pub fingerprint: Value,
    #[serde(default)]
    pub last_seen_at: Option<String>,
    #[serde(default)]
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    pub id: String,
    pub device_id: String,
    pub name: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub last_heartbeat_at: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableSummary {
    pub device: String,
    pub device_name: String,
    pub framework: String,
    pub space: String,
    pub entries: i64,
    pub blocks: i64,
    #[serde(default)]
    pub coverage: f64,
    #[serde(default)]
    pub stale: i64,
    #[serde(default)]
    pub last_measured_at: Option<String>,
    #[serde(default)]
    pub validation: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Table {
    pub device: String,
    pub device_name: String,
    pub framework: String,
    pub space: String,
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub key: String,
    pub part: String,
    #[serde(default)]
    pub framework_version: String,
    pub count: i64,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    #[serde(default)]
    pub mad_ms: f64,
    #[serde(default)]
    pub ci_low_ms: Option<f64>,
    #[serde(default)]
    pub ci_high_ms: Option<f64>,
    #[serde(default)]
    pub stale: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Prediction {
    pub arch: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub total_ms: Option<f64>,
    #[serde(default)]
    pub uncertainty_ms: Option<f64>,
    #[serde(default)]
    pub calibrated_ms: Option<f64>,
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Analysis {
    pub arch: String,
    pub params: u64,
    pub macs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub state: String,
    pub space: String,
    #[serde(default)]
    pub device: Value,
    #[serde(default)]
    pub frameworks: Vec<String>,
    pub progress: CampaignProgress,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CampaignProgress {
    pub jobs: i64,
    #[serde(default)]
    pub queued: i64,
    #[serde(default)]
    pub leased: i64,
    pub done: i64,
    #[serde(default)]
    pub failed: i64,
    #[serde(default)]
    pub cancelled: i64,
    #[serde(default)]
    pub items: i64,
    #[serde(default)]
    pub items_done: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchStatus {
    pub id: String,
    pub state: String,
    pub space: String,
    pub generation: u32,
    pub generations: u32,
    pub population: u64,
    #[serde(default)]
    pub evaluations: i64,
    #[serde(default)]
    pub accuracy_kind: String,
    #[serde(default)]
    pub hypervolume: Vec<HypervolumePoint>,
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default)]
    pub elapsed_s: Option<f64>,
    #[serde(default)]
    pub estimate_s: Option<f64>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub request: Value,
}

impl SearchStatus {
    /// The tables the search reads, as `DEVICE/FRAMEWORK` (devices as the server resolved them).
    pub fn tables(&self) -> Vec<String> {
        self.request["tables"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        format!(
                            "{}/{}",
                            t["device"].as_str().unwrap_or("?"),
                            t["framework"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn latest_hypervolume(&self) -> Option<&HypervolumePoint> {
        self.hypervolume.iter().max_by_key(|h| h.generation)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HypervolumePoint {
    pub generation: u32,
    pub hypervolume: f64,
    #[serde(default)]
    pub front_size: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Front {
    pub id: String,
    pub state: String,
    pub generation: u32,
    #[serde(default)]
    pub accuracy_kind: String,
    pub front: Vec<FrontMember>,
    #[serde(default)]
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrontMember {
    pub arch: String,
    pub accuracy: f64,
    pub latency_ms: f64,
    pub params: u64,
    #[serde(default)]
    pub macs: u64,
}

/// A reference network evaluated on the search's tables and accuracy source; either number is
/// absent when the tables do not cover it or the accuracy source cannot score it.
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub name: String,
    pub arch: String,
    #[serde(default)]
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    pub params: u64,
    #[serde(default)]
    pub macs: u64,
}

/// A finished state: nothing more will happen to the campaign or search.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled")
}
