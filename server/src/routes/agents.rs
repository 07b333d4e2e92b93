//! The agent protocol (DESIGN section 5): enrollment tokens (admin), enrollment, heartbeats, job
//! claims as long polls with leases, lease renewal, release, and result upload; plus the admin's
//! view of agents and devices.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use gpulut_tables::protocol::{
    ClaimRequest, EnrollRequest, EnrollResponse, FrameworkSupport, HeartbeatRequest,
    HeartbeatResponse, Job, JobKind, LeaseRef, LeaseRenewed, ResultAck, ResultUpload,
};
use gpulut_tables::wire::{MeasuredKind, TimingProtocol};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{AGENT_KIND, AgentCaller, Caller, ENROLLMENT_KIND, digest, new_token};
use crate::db::{
    AgentRow, DeviceRow, Enrollment, EnrollmentTokenRow, JobRow, LeaseCheck, NewMeasurement,
    TokenRefusal,
};
use crate::error::{
    AdminProblems, ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, Problem,
};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::api_keys::check_label;

/// Most samples one series may carry.
pub const MAX_SAMPLES: usize = 100_000;
/// A sample above this many milliseconds is not a block's latency but a broken timer.
pub const MAX_SAMPLE_MS: f64 = 60_000.0;

// ---- enrollment tokens (admin) ---------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    pub label: String,
    /// How many enrollments the token allows (default 1).
    #[serde(default)]
    pub max_uses: Option<i32>,
    /// Lifetime in seconds (default one day).
    #[serde(default)]
    pub ttl_s: Option<i64>,
    /// Labels given to devices that enroll with it (campaigns select devices by label).
    #[serde(default)]
    pub device_labels: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: Uuid,
    pub label: String,
    pub prefix: String,
    pub device_labels: Vec<String>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<EnrollmentTokenRow> for EnrollmentToken {
    fn from(r: EnrollmentTokenRow) -> Self {
        Self {
            id: r.id,
            label: r.label,
            prefix: r.prefix,
            device_labels: r.device_labels,
            max_uses: r.max_uses,
            uses: r.uses,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    #[serde(flatten)]
    pub token_info: EnrollmentToken,
    /// The secret, shown once.
    pub token: String,
}

fn check_labels(labels: &[String]) -> ApiResult<()> {
    if labels.len() > 32 {
        return Err(ApiError::unprocessable(
            "invalid_labels",
            "at most 32 device labels",
        ));
    }
    for l in labels {
        let ok = !l.is_empty()
            && l.len() <= 64
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '='));
        if !ok {
            return Err(ApiError::unprocessable(
                "invalid_labels",
                format!(
                    "label `{}` must be 1-64 characters of letters, digits and - _ . : =",
                    l.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// Creates an enrollment token (shown once).
#[utoipa::path(post, path = "/v1/enrollment-tokens", tag = "agents", request_body = CreateEnrollmentToken,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedEnrollmentToken),
        AdminProblems, JsonBodyProblems))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEnrollmentToken>,
) -> ApiResult<(StatusCode, Json<CreatedEnrollmentToken>)> {
    caller.require_admin()?;
    let label = check_label(&req.label)?;
    let max_uses = req.max_uses.unwrap_or(1);
    if !(1..=100_000).contains(&max_uses) {
        return Err(ApiError::unprocessable(
            "invalid_max_uses",
            "`max_uses` must be 1 to 100000",
        ));
    }
    let ttl = req.ttl_s.unwrap_or(86_400);
    if !(1..=365 * 86_400).contains(&ttl) {
        return Err(ApiError::unprocessable(
            "invalid_ttl",
            "`ttl_s` must be 1 second to 1 year",
        ));
    }
    check_labels(&req.device_labels)?;
    let (token, prefix, d) = new_token(ENROLLMENT_KIND);
    let row = state
        .db
        .create_enrollment_token(
            &label,
            &prefix,
            &d,
            &req.device_labels,
            max_uses,
            Utc::now() + chrono::Duration::seconds(ttl),
            caller.key_id,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentToken {
            token_info: row.into(),
            token,
        }),
    ))
}

/// Lists enrollment tokens (never the secrets).
#[utoipa::path(get, path = "/v1/enrollment-tokens", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<EnrollmentToken>),
        AdminProblems))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EnrollmentToken>>> {
    caller.require_admin()?;
    Ok(Json(
        state
            .db
            .enrollment_tokens()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revokes an enrollment token: no further enrollment with it.
#[utoipa::path(delete, path = "/v1/enrollment-tokens/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EnrollmentToken),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AdminProblems, BadRequest))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<EnrollmentToken>> {
    caller.require_admin()?;
    let row = state.db.revoke_enrollment_token(id).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_token",
            format!("there is no enrollment token {id}"),
        )
    })?;
    Ok(Json(row.into()))
}

// ---- enrollment and heartbeats (agents) -----------------------------------------------------------

/// The identity of a physical device: its hardware id when the OS gives one, else what its
/// fingerprint says about model and GPU; with the GPU ids either way.
fn identity(f: &gpulut_tables::wire::DeviceFingerprint) -> String {
    let mut h = Sha256::new();
    match &f.hardware_id {
        Some(id) => h.update(format!("hw:{id}")),
        None => h.update(format!(
            "fp:{:?}|{:?}|{:?}|{}|{}",
            f.model, f.manufacturer, f.soc, f.os, f.gpu.name
        )),
    }
    h.update(format!(
        "|gpu:{:x}:{:x}:{}",
        f.gpu.vendor_id, f.gpu.device_id, f.gpu.backend
    ));
    hex::encode(h.finalize())
}

fn text_ok(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Most frameworks one agent may report.
pub const MAX_REPORTED_FRAMEWORKS: usize = 64;
/// A reported reason is cut to this many characters (runtimes' errors can be tracebacks).
pub const MAX_FRAMEWORK_DETAIL: usize = 500;

/// Checks an agent's framework report and returns what to store: None when it sent none (an
/// older agent, or a heartbeat that keeps the last report).
fn framework_report(list: &[FrameworkSupport]) -> ApiResult<Option<serde_json::Value>> {
    if list.is_empty() {
        return Ok(None);
    }
    let invalid = |d: String| ApiError::unprocessable("invalid_frameworks", d);
    if list.len() > MAX_REPORTED_FRAMEWORKS {
        return Err(invalid(format!(
            "at most {MAX_REPORTED_FRAMEWORKS} frameworks may be reported, got {}",
            list.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let name_ok = f.name.len() <= 64
            && f.name.chars().enumerate().all(|(j, c)| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || (j > 0 && "._-".contains(c))
            })
            && !f.name.is_empty();
        if !name_ok {
            return Err(invalid(format!(
                "frameworks[{i}].name `{}` must be 1-64 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit",
                f.name.chars().take(80).collect::<String>()
            )));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(invalid(format!(
                "frameworks[{i}]: `{}` is reported twice",
                f.name
            )));
        }
        if !text_ok(&f.version, 64) {
            return Err(invalid(format!(
                "frameworks[{i}].version must be at most 64 characters"
            )));
        }
        let detail = f.detail.as_ref().map(|d| {
            d.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_FRAMEWORK_DETAIL)
                .collect::<String>()
        });
        out.push(FrameworkSupport {
            detail,
            ..f.clone()
        });
    }
    serde_json::to_value(&out)
        .map(Some)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// One framework as an agent reported it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FrameworkReport {
    /// `wgpu-direct`, `wgpu-fused`, `ncnn-vulkan`, `ncnn-cpu`, `onnxruntime-cpu`, ...
    pub name: String,
    /// The runtime's or kernel set's version; empty when unavailable.
    #[serde(default)]
    pub version: String,
    pub available: bool,
    /// Why it is unavailable, as the agent put it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One framework a device can (or cannot) run: the union over its live agents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceFramework {
    pub name: String,
    /// The version of an agent that has it available (else of the first that reported it).
    pub version: String,
    /// Some live agent of the device reports it available.
    pub available: bool,
    /// Why it is unavailable (the first agent's reason); null when available.
    pub detail: Option<String>,
    /// Not reported but assumed: an agent older than framework reports runs only
    /// `wgpu-direct` and `wgpu-fused`.
    pub assumed: bool,
}

/// The frameworks of a device from its live agents' reports (one per agent, None for an agent
/// that never reported: it counts as running only [`crate::app::ASSUMED_FRAMEWORKS`]), in the
/// order first reported.
pub fn device_frameworks(reports: &[Option<serde_json::Value>]) -> Vec<DeviceFramework> {
    let mut out: Vec<DeviceFramework> = Vec::new();
    for report in reports {
        let list: Vec<(FrameworkReport, bool)> = match report {
            None | Some(serde_json::Value::Null) => crate::app::ASSUMED_FRAMEWORKS
                .iter()
                .map(|n| {
                    (
                        FrameworkReport {
                            name: n.to_string(),
                            version: String::new(),
                            available: true,
                            detail: None,
                        },
                        true,
                    )
                })
                .collect(),
            Some(v) => serde_json::from_value::<Vec<FrameworkReport>>(v.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|f| (f, false))
                .collect(),
        };
        for (f, assumed) in list {
            match out.iter_mut().find(|d| d.name == f.name) {
                None => out.push(DeviceFramework {
                    name: f.name,
                    version: f.version,
                    available: f.available,
                    detail: if f.available { None } else { f.detail },
                    assumed,
                }),
                Some(d) if f.available && !d.available => {
                    *d = DeviceFramework {
                        name: f.name,
                        version: f.version,
                        available: true,
                        detail: None,
                        assumed,
                    };
                }
                Some(d) => d.assumed &= assumed,
            }
        }
    }
    out
}

/// Exchanges an enrollment token and the device's fingerprint for agent credentials.
/// Re-enrolling the same device keeps its id and history and revokes its earlier agents.
#[utoipa::path(post, path = "/v1/agents/enroll", tag = "agents",
    request_body(content = Object, description = "`{token, name?, fingerprint, frameworks?}`; the fingerprint as `gpulut-agent info --json` prints it; `frameworks`: `[{name, version, available, detail?}]`, what the agent can measure with (an agent that sends none counts as running only `wgpu-direct` and `wgpu-fused`)"),
    responses((status = 201, description = "`{agent_id, device_id, device_name, token, cadence}`", body = Object),
        AuthProblems, JsonBodyProblems))]
pub async fn enroll(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let f = &req.fingerprint;
    let texts = [
        f.os.as_str(),
        f.gpu.name.as_str(),
        f.gpu.driver.as_str(),
        f.gpu.driver_version.as_str(),
        f.gpu.backend.as_str(),
        f.gpu.device_type.as_str(),
        f.agent_version.as_str(),
        f.model.as_deref().unwrap_or_default(),
        f.manufacturer.as_deref().unwrap_or_default(),
        f.soc.as_deref().unwrap_or_default(),
        f.hardware_id.as_deref().unwrap_or_default(),
        f.os_version.as_deref().unwrap_or_default(),
        f.gpu.api_version.as_deref().unwrap_or_default(),
    ];
    if texts.iter().any(|t| !text_ok(t, 256))
        || f.os.is_empty()
        || f.gpu.name.is_empty()
        || f.gpu.backend.is_empty()
    {
        return Err(ApiError::unprocessable(
            "invalid_fingerprint",
            "the fingerprint needs `os`, `gpu.name` and `gpu.backend`, and no field may exceed 256 characters",
        ));
    }
    let name = req
        .name
        .clone()
        .or_else(|| f.model.clone())
        .unwrap_or_else(|| f.gpu.name.clone());
    let name = check_label(&name)?;
    let frameworks = framework_report(&req.frameworks)?;
    let fingerprint = serde_json::to_value(f).map_err(|e| ApiError::Internal(e.to_string()))?;
    let (token, prefix, agent_digest) = new_token(AGENT_KIND);
    let token_digest = digest(req.token.trim());
    let identity = identity(f);
    let outcome = state
        .db
        .enroll(Enrollment {
            token_digest: &token_digest,
            identity: &identity,
            name: &name,
            fingerprint: &fingerprint,
            agent_prefix: &prefix,
            agent_digest: &agent_digest,
            agent_version: &f.agent_version,
            frameworks: frameworks.as_ref(),
        })
        .await?;
    let enrolled = outcome.map_err(|refusal| {
        ApiError::unauthorized(match refusal {
            TokenRefusal::Unknown => "unknown enrollment token",
            TokenRefusal::Revoked => "this enrollment token was revoked",
            TokenRefusal::Expired => "this enrollment token has expired",
            TokenRefusal::Exhausted => "this enrollment token has no uses left",
        })
    })?;
    tracing::info!(agent = %enrolled.agent_id, device = %enrolled.device_id, "agent enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            agent_id: enrolled.agent_id.to_string(),
            device_id: enrolled.device_id.to_string(),
            device_name: enrolled.device_name,
            token,
            cadence: state.cadence,
        }),
    ))
}

/// The agent is alive; the answer carries the cadence to keep.
#[utoipa::path(post, path = "/v1/agents/heartbeat", tag = "agents", security(("bearer" = [])),
    request_body(content = Object, description = "`{agent_version?, state?, frameworks?}`; a `frameworks` list replaces the agent's last report, none keeps it"),
    responses((status = 200, description = "`{cadence}`", body = Object),
        AuthProblems, JsonBodyProblems))]
pub async fn heartbeat(
    State(state): State<AppState>,
    agent: AgentCaller,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let version = req.agent_version.as_deref().filter(|v| text_ok(v, 64));
    let frameworks = framework_report(&req.frameworks)?;
    state
        .db
        .heartbeat_agent(
            agent.agent_id,
            agent.device_id,
            version,
            frameworks.as_ref(),
        )
        .await?;
    Ok(Json(HeartbeatResponse {
        cadence: state.cadence,
    }))
}

// ---- jobs (agents) -------------------------------------------------------------------------

fn job_message(row: &JobRow, lease_s: f64) -> ApiResult<Job> {
    let payload = &row.payload;
    let protocol: TimingProtocol = serde_json::from_value(payload["protocol"].clone())
        .map_err(|e| ApiError::Internal(format!("job {} protocol: {e}", row.id)))?;
    let items: Vec<String> = serde_json::from_value(payload["items"].clone())
        .map_err(|e| ApiError::Internal(format!("job {} items: {e}", row.id)))?;
    Ok(Job {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        attempt: row.attempt as u32,
        lease_id: row.lease_id.map(|l| l.to_string()).unwrap_or_default(),
        lease_expires_at: row
            .lease_expires_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        lease_s,
        space: payload["space"].as_str().unwrap_or_default().to_string(),
        framework: row.framework.clone(),
        kind: if row.kind == "networks" {
            JobKind::Networks
        } else {
            JobKind::Blocks
        },
        items,
        protocol,
    })
}

/// Long poll for the device's next job. 200 with the job and its lease, or 204 when none came
/// within the wait.
#[utoipa::path(post, path = "/v1/agents/jobs/claim", tag = "agents", security(("bearer" = [])),
    request_body(content = Object, description = "`{wait_s?}`"),
    responses((status = 200, description = "a job with its lease", body = Object),
        (status = 204, description = "no job within the wait"),
        AuthProblems, JsonBodyProblems))]
pub async fn claim(
    State(state): State<AppState>,
    agent: AgentCaller,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> ApiResult<Response> {
    let max_wait = state.cadence.poll_wait_s;
    let wait = req
        .wait_s
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(max_wait)
        .min(max_wait);
    let deadline = Instant::now() + Duration::from_secs_f64(wait);
    // A claim is also a sign of life.
    state
        .db
        .heartbeat_agent(agent.agent_id, agent.device_id, None, None)
        .await?;
    let revoked = || {
        ApiError::unauthorized(
            "this agent was revoked while it waited for a job; enroll again with a new enrollment token",
        )
    };
    let mut pause = Duration::from_millis(250);
    let mut first = true;
    loop {
        // After the first round a read-only look decides whether a claim (a write transaction
        // of several statements) is worth making: with 1,000 agents waiting, polling by claim
        // exhausted the database pool.
        let ready = first || {
            let (live, ready) = state
                .db
                .claim_outlook(agent.device_id, agent.agent_id)
                .await?;
            if !live {
                return Err(revoked());
            }
            ready
        };
        first = false;
        if ready {
            let claimed = state
                .db
                .claim_job(agent.device_id, agent.agent_id, state.cadence.lease_s)
                .await?
                .map_err(|_| revoked())?;
            if let Some(row) = claimed {
                tracing::info!(job = %row.id, attempt = row.attempt, agent = %agent.agent_id, "job leased");
                return Ok(Json(job_message(&row, state.cadence.lease_s)?).into_response());
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // Rounds grow from 250 ms to 2 s, jittered, so waiting agents neither poll in lockstep
        // nor each four times a second; a new job still goes out within about 2 s.
        let round = pause.mul_f64(rand::random_range(0.75..1.25));
        tokio::time::sleep((deadline - now).min(round)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn parse_lease(job: Uuid, r: &LeaseRef) -> ApiResult<(i32, Uuid)> {
    let lease = Uuid::parse_str(&r.lease_id).map_err(|_| {
        ApiError::unprocessable(
            "invalid_lease",
            format!("`lease_id` of job {job} is not a UUID"),
        )
    })?;
    let attempt = i32::try_from(r.attempt)
        .map_err(|_| ApiError::unprocessable("invalid_lease", "`attempt` is out of range"))?;
    Ok((attempt, lease))
}

fn lease_refusal(job: Uuid, check: &LeaseCheck) -> Option<ApiError> {
    match check {
        LeaseCheck::NoSuchJob => Some(ApiError::not_found(
            "no_such_job",
            format!("there is no job {job}"),
        )),
        LeaseCheck::Gone => Some(ApiError::new(
            StatusCode::GONE,
            "job_cancelled",
            format!("job {job} was cancelled; drop it"),
        )),
        LeaseCheck::Stale => Some(ApiError::new(
            StatusCode::CONFLICT,
            "stale_lease",
            format!("this lease of job {job} is no longer valid: the job was handed out again"),
        )),
        LeaseCheck::AlreadyDone | LeaseCheck::Held(_) => None,
    }
}

/// Extends the lease while the agent works.
#[utoipa::path(post, path = "/v1/agents/jobs/{id}/lease", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Object, description = "`{attempt, lease_id}`"),
    responses((status = 200, description = "`{lease_expires_at}`", body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        AuthProblems, JsonBodyProblems))]
pub async fn renew(
    State(state): State<AppState>,
    agent: AgentCaller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<LeaseRef>,
) -> ApiResult<Json<LeaseRenewed>> {
    let (attempt, lease) = parse_lease(id, &req)?;
    let (check, until) = state
        .db
        .renew_lease(id, agent.agent_id, attempt, lease, state.cadence.lease_s)
        .await?;
    if let Some(e) = lease_refusal(id, &check) {
        return Err(e);
    }
    match until {
        Some(t) => Ok(Json(LeaseRenewed {
            lease_expires_at: t.to_rfc3339(),
        })),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_done",
            format!("job {id} is already done"),
        )),
    }
}

/// Gives a job back (the agent is stopping); it is handed out again with the next attempt.
#[utoipa::path(post, path = "/v1/agents/jobs/{id}/release", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Object, description = "`{attempt, lease_id, reason?}`"),
    responses((status = 204, description = "released"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        AuthProblems, JsonBodyProblems))]
pub async fn release(
    State(state): State<AppState>,
    agent: AgentCaller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<LeaseRef>,
) -> ApiResult<StatusCode> {
    let (attempt, lease) = parse_lease(id, &req)?;
    let reason = req
        .reason
        .as_deref()
        .map(|r| r.chars().take(500).collect::<String>());
    let check = state
        .db
        .release_job(id, agent.agent_id, attempt, lease, reason.as_deref())
        .await?;
    if let Some(e) = lease_refusal(id, &check) {
        return Err(e);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn invalid_result(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_result", detail)
}

/// Checks an upload against its job: every item reported exactly once and nothing else, the
/// job's framework and kind, and plausible, finite, positive samples for every verified series.
/// A series that failed verification carries no samples and is never stored as a timing.
fn check_upload(
    row: &JobRow,
    upload: &ResultUpload,
) -> Result<(Vec<NewMeasurement>, Vec<String>), ApiError> {
    let items: Vec<String> =
        serde_json::from_value(row.payload["items"].clone()).unwrap_or_default();
    let want_kind = if row.kind == "networks" {
        MeasuredKind::Arch
    } else {
        MeasuredKind::Block
    };
    if upload.results.len() != items.len() {
        return Err(invalid_result(format!(
            "{} results for a job of {} items",
            upload.results.len(),
            items.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in upload.results.iter().enumerate() {
        let at = |d: String| {
            invalid_result(format!(
                "results[{i}] ({}): {d}",
                r.key.chars().take(120).collect::<String>()
            ))
        };
        if !items.contains(&r.key) {
            return Err(at("not an item of this job".into()));
        }
        if !seen.insert(r.key.clone()) {
            return Err(at("reported twice".into()));
        }
        if r.framework != row.framework {
            return Err(at(format!(
                "framework `{}`, the job is for `{}`",
                r.framework, row.framework
            )));
        }
        if r.kind != want_kind {
            return Err(at(format!(
                "kind {:?} does not match the job's {}",
                r.kind, row.kind
            )));
        }
        if r.framework_version.is_empty() || !text_ok(&r.framework_version, 64) {
            return Err(at("`framework_version` must be 1-64 characters".into()));
        }
        if !r.verified {
            if !r.samples.is_empty() {
                return Err(at(
                    "a series that failed verification must carry no samples".into(),
                ));
            }
            failed.push(r.key.clone());
            continue;
        }
        if r.samples.is_empty() || r.samples.len() > MAX_SAMPLES {
            return Err(at(format!(
                "a verified series needs 1 to {MAX_SAMPLES} samples, got {}",
                r.samples.len()
            )));
        }
        if let Some((j, s)) = r
            .samples
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0 && **s <= MAX_SAMPLE_MS))
        {
            return Err(at(format!(
                "samples[{j}] = {s}: every sample must be a finite time in (0, {MAX_SAMPLE_MS}] ms"
            )));
        }
        let Some(timer) = r.timer else {
            return Err(at("a verified series needs its `timer`".into()));
        };
        let environment = serde_json::json!({
            "state_start": r.state_start,
            "state_end": r.state_end,
            "timestamps_valid": upload.timestamps_valid,
            "stopped_by": r.stopped_by,
            "tolerance": r.tolerance,
            "dispatches": r.dispatches,
            "name": r.name,
        });
        stored.push(NewMeasurement {
            kind: if want_kind == MeasuredKind::Arch {
                "network"
            } else {
                "block"
            },
            key: r.key.clone(),
            framework_version: r.framework_version.clone(),
            samples_ms: r.samples.clone(),
            warmup_runs: r.warmup_runs.min(i32::MAX as u32) as i32,
            timer: timer.as_str().to_string(),
            max_error: r.max_relative_error.filter(|e| e.is_finite()),
            pipeline_ms: Some(r.pipeline_ms).filter(|p| p.is_finite() && *p >= 0.0),
            environment,
        });
    }
    Ok((stored, failed))
}

/// Uploads a job's results. Idempotent per (job, attempt): a repeat is answered 200 with
/// `duplicate: true` and writes nothing; an upload from a stale attempt is refused (409).
#[utoipa::path(post, path = "/v1/agents/jobs/{id}/result", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = Object, description = "`{attempt, lease_id, agent_version, timestamps_valid?, results: [measurement]}`"),
    responses((status = 200, description = "`{stored, failed, duplicate}`", body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        AuthProblems, JsonBodyProblems))]
pub async fn result(
    State(state): State<AppState>,
    agent: AgentCaller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(upload): ApiJson<ResultUpload>,
) -> ApiResult<Json<ResultAck>> {
    let (attempt, lease) = parse_lease(
        id,
        &LeaseRef {
            attempt: upload.attempt,
            lease_id: upload.lease_id.clone(),
            reason: None,
        },
    )?;
    if !text_ok(&upload.agent_version, 64) {
        return Err(invalid_result(
            "`agent_version` must be at most 64 characters",
        ));
    }
    let outcome = state
        .db
        .ingest_results(
            id,
            agent.agent_id,
            attempt,
            lease,
            &upload.agent_version,
            |row| check_upload(row, &upload),
        )
        .await?;
    let (check, stored, failed) = outcome?;
    if let Some(e) = lease_refusal(id, &check) {
        return Err(e);
    }
    if let LeaseCheck::Held(job) = &check
        && stored > 0
    {
        // This replica forgets at once; the others through the commit's notification.
        state.tables.invalidate_device(job.device_id);
    }
    if let LeaseCheck::Held(job) = &check
        && job.kind == "networks"
        && stored > 0
    {
        // New end-to-end measurements: refit the table's calibration. A failure here loses
        // nothing (the measurements are stored); the next validation upload refits again.
        let space = job.payload["space"].as_str().unwrap_or_default();
        match crate::routes::spaces::space_in_body(&state.db, space, "unknown_space").await {
            Ok(space) => {
                if let Err(e) = state
                    .db
                    .refit_calibration(job.device_id, &job.framework, &space)
                    .await
                {
                    tracing::warn!(job = %id, error = %e, "refitting the calibration failed");
                }
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "no space to refit the calibration in"),
        }
    }
    if let LeaseCheck::AlreadyDone = check {
        let stored = state.db.stored_for_attempt(id, attempt).await?;
        return Ok(Json(ResultAck {
            stored: stored as usize,
            failed: 0,
            duplicate: true,
        }));
    }
    metrics::counter!("gpulut_samples_ingested_total")
        .increment(upload.results.iter().map(|r| r.samples.len() as u64).sum());
    tracing::info!(job = %id, stored, failed, "results stored");
    Ok(Json(ResultAck {
        stored,
        failed,
        duplicate: false,
    }))
}

// ---- agents and devices (people) -------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub device_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub agent_version: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What the agent last reported it can measure with; null when it never reported (an
    /// older agent: it runs only `wgpu-direct` and `wgpu-fused`).
    pub frameworks: Option<Vec<FrameworkReport>>,
    pub frameworks_reported_at: Option<DateTime<Utc>>,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Self {
            frameworks: r.frameworks.and_then(|v| serde_json::from_value(v).ok()),
            frameworks_reported_at: r.frameworks_reported_at,
            id: r.id,
            device_id: r.device_id,
            name: r.name,
            prefix: r.prefix,
            agent_version: r.agent_version,
            last_heartbeat_at: r.last_heartbeat_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        }
    }
}

/// Lists enrolled agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<Agent>),
        AdminProblems))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Agent>>> {
    caller.require_admin()?;
    Ok(Json(
        state
            .db
            .agents()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revokes an agent: its next request is refused.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Agent),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AdminProblems, BadRequest))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Agent>> {
    caller.require_admin()?;
    let row =
        state.db.revoke_agent(id).await?.ok_or_else(|| {
            ApiError::not_found("no_such_agent", format!("there is no agent {id}"))
        })?;
    Ok(Json(row.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    /// `online` when it was heard from within three heartbeat intervals, else `offline`.
    pub status: String,
    pub labels: Vec<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Agents enrolled and not revoked.
    pub agents: i64,
    #[schema(value_type = Object)]
    pub fingerprint: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// What the device can be measured with: the union over its live agents' reports (an
    /// agent that never reported counts as running `wgpu-direct` and `wgpu-fused`, marked
    /// `assumed`). Empty when no agent runs on it.
    pub frameworks: Vec<DeviceFramework>,
}

/// `online` when the device was heard from within three heartbeat intervals. After a server
/// restart, devices that were online when it went down get one timeout of grace: their
/// heartbeats failed while the server was away, not because the device was.
pub fn device_status(
    now: DateTime<Utc>,
    last_seen: Option<DateTime<Utc>>,
    server_started: DateTime<Utc>,
    heartbeat_s: f64,
) -> &'static str {
    let timeout = chrono::Duration::milliseconds((heartbeat_s * 3000.0) as i64);
    let online = last_seen.is_some_and(|seen| {
        now - seen < timeout || (now - server_started < timeout && server_started - seen < timeout)
    });
    if online { "online" } else { "offline" }
}

fn device(state: &AppState, r: DeviceRow) -> Device {
    Device {
        id: r.id,
        name: r.name,
        status: device_status(
            Utc::now(),
            r.last_seen_at,
            state.started_at,
            state.cadence.heartbeat_s,
        )
        .into(),
        labels: r.labels,
        last_seen_at: r.last_seen_at,
        agents: r.agents,
        fingerprint: r.fingerprint,
        created_at: r.created_at,
        frameworks: match r.agent_frameworks {
            serde_json::Value::Array(reports) => device_frameworks(
                &reports
                    .into_iter()
                    .map(|v| (!v.is_null()).then_some(v))
                    .collect::<Vec<_>>(),
            ),
            _ => Vec::new(),
        },
    }
}

/// Lists devices.
#[utoipa::path(get, path = "/v1/devices", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<Device>),
        AuthProblems))]
pub async fn list_devices(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<Device>>> {
    let rows = state.db.devices().await?;
    Ok(Json(rows.into_iter().map(|r| device(&state, r)).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// What is known of the device (free-form; agents report the full fingerprint).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fingerprint: Option<serde_json::Value>,
}

/// Registers a device no agent runs on, so other tools' measurements of it can be imported
/// (`POST /v1/tables/{device}/{framework}/import`).
#[utoipa::path(post, path = "/v1/devices", tag = "agents", request_body = CreateDevice, security(("bearer" = [])),
    responses((status = 201, body = Device),
        AdminProblems, JsonBodyProblems))]
pub async fn create_device(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateDevice>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    caller.require_admin()?;
    let name = check_label(&req.name)?;
    check_labels(&req.labels)?;
    let fingerprint = req.fingerprint.unwrap_or_else(|| serde_json::json!({}));
    if !fingerprint.is_object() || fingerprint.to_string().len() > 16 * 1024 {
        return Err(ApiError::unprocessable(
            "invalid_fingerprint",
            "`fingerprint` must be a JSON object under 16 KiB",
        ));
    }
    let id = state
        .db
        .create_manual_device(&name, &req.labels, &fingerprint)
        .await?;
    let row = state
        .db
        .device(id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("device {id} vanished after creation")))?;
    Ok((StatusCode::CREATED, Json(device(&state, row))))
}

/// One device with its fingerprint.
#[utoipa::path(get, path = "/v1/devices/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Device),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn get_device(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Device>> {
    let row =
        state.db.device(id).await?.ok_or_else(|| {
            ApiError::not_found("no_such_device", format!("there is no device {id}"))
        })?;
    Ok(Json(device(&state, row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_go_offline_after_three_missed_heartbeats_with_grace_after_a_restart() {
        let t0 = Utc::now();
        let s = |secs: i64| chrono::Duration::seconds(secs);
        // Server up for an hour: 3 x 15 s timeout.
        let started = t0 - s(3600);
        assert_eq!(device_status(t0, Some(t0 - s(40)), started, 15.0), "online");
        assert_eq!(
            device_status(t0, Some(t0 - s(50)), started, 15.0),
            "offline"
        );
        assert_eq!(device_status(t0, None, started, 15.0), "offline");
        // Server restarted 10 s ago after 60 s down: a device last seen just before it went down
        // is still online during the grace period, and offline after it.
        let started = t0 - s(10);
        let before_outage = started - s(30);
        assert_eq!(
            device_status(t0, Some(before_outage), started, 15.0),
            "online"
        );
        assert_eq!(
            device_status(t0 + s(40), Some(before_outage), started, 15.0),
            "offline"
        );
        // A device gone long before the restart gets no grace.
        assert_eq!(
            device_status(t0, Some(started - s(600)), started, 15.0),
            "offline"
        );
    }
}
