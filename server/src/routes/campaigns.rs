//! Campaigns: "profile space S on devices D with frameworks F under protocol P, plus a
//! validation set of whole networks", turned into jobs at creation.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use gpulut_tables::wire::TimingProtocol;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::{CampaignRow, NewCampaign, NewJob};
use crate::error::{
    AdminProblems, ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, Problem,
};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::spaces::space_in_body;

/// Blocks per job unless the request says otherwise.
pub const DEFAULT_BATCH: usize = 16;
/// Whole networks per validation job.
pub const NETWORKS_PER_JOB: usize = 4;
/// Most jobs one campaign may create.
pub const MAX_JOBS: usize = 10_000;

/// Which devices: one by id (or unique name), or every device carrying all the labels.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
// Unknown fields refused: an untagged enum otherwise drops them silently, so a mistyped
// selector (`{"labels": [..], "all": true}`) would quietly mean something else.
#[serde(untagged, deny_unknown_fields)]
pub enum DeviceSelector {
    One(String),
    Labels { labels: Vec<String> },
}

/// Overrides of the default timing protocol.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSpec {
    pub warmup_runs: Option<u32>,
    pub warmup_min_ms: Option<f64>,
    pub min_runs: Option<u32>,
    pub max_runs: Option<u32>,
    pub max_seconds: Option<f64>,
    pub target_relative_ci: Option<f64>,
    pub seed: Option<u64>,
    pub gpu_timestamps: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationSpec {
    /// Seeded random architectures of the space to measure end to end.
    #[serde(default)]
    pub random: u32,
    /// Also the space's reference networks (MoGA-A/B/C, MobileNetV3-Large).
    #[serde(default)]
    pub references: bool,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    pub space: String,
    #[schema(value_type = Object)]
    pub device: DeviceSelector,
    /// Default: every native framework (`wgpu-direct`, `wgpu-fused`). Agent runtimes
    /// (`ncnn-vulkan`, `ncnn-cpu`, `onnxruntime-cpu`) too; a framework that no live agent of a
    /// selected device reports available is refused (422 `framework_unavailable`, with the
    /// agent's reason) before any job is made.
    #[serde(default)]
    pub frameworks: Option<Vec<String>>,
    /// Block keys to measure; default: every distinct block of the space.
    #[serde(default)]
    pub blocks: Option<Vec<String>>,
    #[serde(default)]
    pub protocol: Option<ProtocolSpec>,
    #[serde(default)]
    pub validation: Option<ValidationSpec>,
    /// Blocks per job (1 to 200, default 16).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Measure blocks even when the table already has a fresh entry.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignProgress {
    pub jobs: i64,
    pub queued: i64,
    pub leased: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Blocks and networks of all jobs, and of the finished ones.
    pub items: i64,
    pub items_done: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub space: String,
    #[schema(value_type = Object)]
    pub device: serde_json::Value,
    pub frameworks: Vec<String>,
    #[schema(value_type = Object)]
    pub protocol: serde_json::Value,
    #[schema(value_type = Option<Object>, required = true)]
    pub validation: Option<serde_json::Value>,
    pub progress: CampaignProgress,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_campaign", detail)
}

fn protocol(spec: Option<&ProtocolSpec>) -> ApiResult<TimingProtocol> {
    let d = TimingProtocol::default();
    let Some(s) = spec else { return Ok(d) };
    let p = TimingProtocol {
        warmup_runs: s.warmup_runs.unwrap_or(d.warmup_runs),
        warmup_min_ms: s.warmup_min_ms.unwrap_or(d.warmup_min_ms),
        min_runs: s.min_runs.unwrap_or(d.min_runs),
        max_runs: s
            .max_runs
            .unwrap_or(d.max_runs.max(s.min_runs.unwrap_or(0))),
        max_seconds: s.max_seconds.unwrap_or(d.max_seconds),
        target_relative_ci: s.target_relative_ci.unwrap_or(d.target_relative_ci),
        seed: s.seed.unwrap_or(d.seed),
        gpu_timestamps: s.gpu_timestamps.unwrap_or(d.gpu_timestamps),
    };
    if p.warmup_runs > 10_000 {
        return Err(invalid("protocol.warmup_runs must be at most 10000"));
    }
    if !(p.warmup_min_ms.is_finite() && (0.0..=600_000.0).contains(&p.warmup_min_ms)) {
        return Err(invalid("protocol.warmup_min_ms must be 0 to 600000"));
    }
    if !(1..=100_000).contains(&p.min_runs) || p.max_runs < p.min_runs || p.max_runs > 100_000 {
        return Err(invalid(
            "protocol.min_runs must be 1 to 100000 and max_runs at least min_runs (at most 100000)",
        ));
    }
    if !(p.max_seconds.is_finite() && p.max_seconds > 0.0 && p.max_seconds <= 3600.0) {
        return Err(invalid("protocol.max_seconds must be in (0, 3600]"));
    }
    if !(p.target_relative_ci.is_finite()
        && p.target_relative_ci > 0.0
        && p.target_relative_ci < 1.0)
    {
        return Err(invalid("protocol.target_relative_ci must be in (0, 1)"));
    }
    Ok(p)
}

/// Seeded random architectures (the tables crate's draw), so a validation set can be
/// reproduced, and is the same set a framework scatter with that seed draws.
fn random_archs(layers: usize, choices: usize, n: u32, seed: u64) -> Vec<String> {
    gpulut_tables::sample::random_choices(layers, choices, n as usize, seed)
        .into_iter()
        .map(|a| a.iter().map(|c| format!("{c:x}")).collect())
        .collect()
}

/// Refuses, before any job exists, a framework that no live agent of the device reports
/// available, with the reason the agent gave. A device no agent runs on (yet) counts like an
/// agent that reported nothing: `wgpu-direct` and `wgpu-fused` only (jobs wait for an agent).
async fn check_device_runs(state: &AppState, device: Uuid, frameworks: &[String]) -> ApiResult<()> {
    let Some(row) = state.db.device(device).await? else {
        return Ok(());
    };
    let mut reports = state.db.device_framework_reports(device).await?;
    if reports.is_empty() {
        reports.push(None);
    }
    let offered = crate::routes::agents::device_frameworks(&reports);
    for f in frameworks {
        let refusal = match offered.iter().find(|d| &d.name == f) {
            Some(d) if d.available => continue,
            Some(d) => format!(
                "its agent reports `{f}` unavailable: {}",
                d.detail.as_deref().unwrap_or("no reason given")
            ),
            None if offered.iter().all(|d| d.assumed) => format!(
                "its agent reports no frameworks (an agent older than framework reports runs only {}); update the agent to one that offers `{f}`",
                crate::app::ASSUMED_FRAMEWORKS.join(" and ")
            ),
            None => format!(
                "its agent does not offer `{f}` (it reports: {})",
                offered
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(ApiError::unprocessable(
            "framework_unavailable",
            format!(
                "device `{}` cannot be measured with framework `{f}`: {refusal} (GET /v1/devices/{} shows what it runs)",
                row.name, row.id
            ),
        ));
    }
    Ok(())
}

async fn view(state: &AppState, row: CampaignRow) -> ApiResult<Campaign> {
    let p = state.db.campaign_progress(row.id).await?;
    Ok(Campaign {
        id: row.id,
        state: row.state,
        space: row.space,
        device: row.device_selector,
        frameworks: row.frameworks,
        protocol: row.protocol,
        validation: row.validation,
        progress: CampaignProgress {
            jobs: p.jobs,
            queued: p.queued,
            leased: p.leased,
            done: p.done,
            failed: p.failed,
            cancelled: p.cancelled,
            items: p.items,
            items_done: p.items_done,
        },
        failure_reason: row.failure_reason,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

/// Creates a campaign and its jobs. Blocks already measured fresh on a device and framework are
/// skipped unless `force` is set.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CreateCampaign,
    security(("bearer" = [])),
    responses((status = 201, body = Campaign),
        AdminProblems, JsonBodyProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateCampaign>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let space = space_in_body(&state.db, &req.space, "invalid_campaign").await?;
    let devices: Vec<Uuid> = match &req.device {
        DeviceSelector::One(d) => vec![
            state
                .db
                .find_device(d)
                .await?
                .ok_or_else(|| {
                    invalid(format!(
                        "there is no device `{}` (GET /v1/devices lists them)",
                        d.chars().take(80).collect::<String>()
                    ))
                })?
                .id,
        ],
        DeviceSelector::Labels { labels } => {
            if labels.is_empty() {
                return Err(invalid("`device.labels` must name at least one label"));
            }
            let found = state.db.devices_with_labels(labels).await?;
            if found.is_empty() {
                return Err(invalid(format!(
                    "no device carries all of the labels {labels:?}"
                )));
            }
            found
        }
    };
    let frameworks = req.frameworks.clone().unwrap_or_else(|| {
        crate::app::NATIVE_FRAMEWORKS
            .iter()
            .map(|(f, _)| f.to_string())
            .collect()
    });
    if frameworks.is_empty() {
        return Err(invalid("`frameworks` must name at least one framework"));
    }
    for f in &frameworks {
        if !crate::app::agent_frameworks().any(|n| n == f) {
            return Err(invalid(format!(
                "framework `{}` cannot be profiled by agents (agent frameworks: {}; other tools' numbers are imported with POST /v1/tables/{{device}}/{{framework}}/import)",
                f.chars().take(80).collect::<String>(),
                crate::app::agent_frameworks()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    {
        let mut unique = frameworks.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != frameworks.len() {
            return Err(invalid("`frameworks` names a framework twice"));
        }
    }
    for &device in &devices {
        check_device_runs(&state, device, &frameworks).await?;
    }
    let all: Vec<String> = space
        .distinct_blocks()
        .into_iter()
        .map(|b| b.block.key.to_string())
        .collect();
    let blocks = match &req.blocks {
        None => all,
        Some(keys) => {
            for k in keys {
                if !all.contains(k) {
                    return Err(invalid(format!(
                        "`{}` is not a block of space {} (GET /v1/spaces/{}/blocks lists them)",
                        k.chars().take(120).collect::<String>(),
                        space.name(),
                        space.name()
                    )));
                }
            }
            let mut keys = keys.clone();
            keys.sort();
            keys.dedup();
            keys
        }
    };
    let batch = req.batch_size.unwrap_or(DEFAULT_BATCH);
    if !(1..=200).contains(&batch) {
        return Err(invalid("`batch_size` must be 1 to 200"));
    }
    let protocol = protocol(req.protocol.as_ref())?;
    let protocol_json =
        serde_json::to_value(&protocol).map_err(|e| ApiError::Internal(e.to_string()))?;
    let networks: Vec<String> = match &req.validation {
        None => Vec::new(),
        Some(v) => {
            if v.random > 1000 {
                return Err(invalid("`validation.random` must be at most 1000"));
            }
            let mut n = if v.references {
                space.references().names()
            } else {
                Vec::new()
            };
            n.extend(random_archs(
                space.layers().len(),
                space.choices().len(),
                v.random,
                v.seed,
            ));
            n
        }
    };

    if blocks.is_empty() && networks.is_empty() {
        return Err(invalid(
            "nothing to measure: `blocks` is empty and there is no `validation` (leave `blocks` out to measure every block)",
        ));
    }
    let mut jobs = Vec::new();
    for &device in &devices {
        for f in &frameworks {
            let todo: Vec<&String> = if req.force {
                blocks.iter().collect()
            } else {
                let fresh = state.db.fresh_keys(device, f, &blocks).await?;
                blocks.iter().filter(|k| !fresh.contains(k)).collect()
            };
            for chunk in todo.chunks(batch) {
                jobs.push(NewJob {
                    device_id: device,
                    framework: f.clone(),
                    kind: "blocks",
                    payload: serde_json::json!({"space": space.name(), "items": chunk, "protocol": protocol_json}),
                });
            }
            for chunk in networks.chunks(NETWORKS_PER_JOB) {
                jobs.push(NewJob {
                    device_id: device,
                    framework: f.clone(),
                    kind: "networks",
                    payload: serde_json::json!({"space": space.name(), "items": chunk, "protocol": protocol_json}),
                });
            }
        }
    }
    if jobs.len() > MAX_JOBS {
        return Err(invalid(format!(
            "the campaign would create {} jobs; at most {MAX_JOBS} (raise batch_size)",
            jobs.len()
        )));
    }
    let selector =
        serde_json::to_value(&req.device).map_err(|e| ApiError::Internal(e.to_string()))?;
    let validation = req
        .validation
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap_or_default());
    let row = state
        .db
        .create_campaign(
            NewCampaign {
                space: space.name(),
                device_selector: &selector,
                frameworks: &frameworks,
                protocol: &protocol_json,
                validation: validation.as_ref(),
                options: &serde_json::json!({"batch_size": batch, "force": req.force, "blocks": req.blocks}),
                created_by: caller.key_id,
            },
            &jobs,
        )
        .await?;
    tracing::info!(campaign = %row.id, jobs = jobs.len(), "campaign created");
    let location = format!("/v1/campaigns/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&state, row).await?),
    ))
}

/// Lists campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, body = Vec<Campaign>),
        AuthProblems))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<Campaign>>> {
    let mut out = Vec::new();
    for row in state.db.campaigns(200).await? {
        out.push(view(&state, row).await?);
    }
    Ok(Json(out))
}

/// A campaign's state and progress.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Campaign>> {
    let row = state.db.campaign(id).await?.ok_or_else(|| {
        ApiError::not_found("no_such_campaign", format!("there is no campaign {id}"))
    })?;
    Ok(Json(view(&state, row).await?))
}

/// Cancels a campaign and its unfinished jobs; agents holding one are told to drop it (410).
#[utoipa::path(post, path = "/v1/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Campaign),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AdminProblems, BadRequest))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Campaign>> {
    caller.require_admin()?;
    let row = state.db.cancel_campaign(id).await?.ok_or_else(|| {
        ApiError::not_found("no_such_campaign", format!("there is no campaign {id}"))
    })?;
    Ok(Json(view(&state, row).await?))
}
