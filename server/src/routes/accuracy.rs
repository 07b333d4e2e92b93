//! Accuracy sample sets: the user uploads (architecture, top-1) pairs measured on their own
//! supernet; the server fits a surrogate, reports its cross-validated quality, and searches use
//! it with `{"accuracy": {"kind": "samples", "sample_set": ID}}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gpulut_search::surrogate::{FitReport, Surrogate};
use gpulut_tables::ArchSpec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::NewSampleSet;
use crate::error::{ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::api_keys::check_label;
use crate::routes::spaces::space_in_body;

/// Most samples one set may hold.
pub const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSampleSet {
    pub space: String,
    pub label: String,
    /// 10 to 100000 measured architectures.
    pub samples: Vec<Sample>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Hex text, JSON choices, or a reference name of the grid.
    #[schema(value_type = Object)]
    pub arch: serde_json::Value,
    /// Top-1 accuracy in percent.
    pub top1: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SampleSet {
    pub id: Uuid,
    pub space: String,
    pub label: String,
    pub samples: usize,
    /// Cross-validated quality of the surrogate: `cv_kendall_tau`, `cv_rmse`, `train_rmse`,
    /// `lambda`, `folds`, `samples`.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_samples", detail)
}

/// Uploads samples and fits the surrogate.
#[utoipa::path(post, path = "/v1/accuracy-samples", tag = "searches", request_body = CreateSampleSet,
    security(("bearer" = [])),
    responses(
        (status = 201, body = SampleSet),
        AuthProblems, JsonBodyProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateSampleSet>,
) -> ApiResult<(StatusCode, Json<SampleSet>)> {
    let label = check_label(&req.label)?;
    if req.samples.len() > MAX_SAMPLES {
        return Err(invalid(format!(
            "{} samples; at most {MAX_SAMPLES}",
            req.samples.len()
        )));
    }
    let space = space_in_body(&state.db, &req.space, "invalid_samples").await?;
    let mut pairs = Vec::with_capacity(req.samples.len());
    for (i, s) in req.samples.iter().enumerate() {
        let spec: ArchSpec = serde_json::from_value(s.arch.clone())
            .map_err(|_| invalid(format!("samples[{i}].arch: expected a hex string, a reference name, or {{\"choices\": [...]}}")))?;
        let arch = space
            .resolve(&spec)
            .map_err(|e| invalid(format!("samples[{i}].arch: {e}")))?;
        let choices = arch.choices().ok_or_else(|| {
            invalid(format!(
                "samples[{i}].arch: {arch} is outside the choice grid"
            ))
        })?;
        if !(s.top1.is_finite() && (0.0..=100.0).contains(&s.top1)) {
            return Err(invalid(format!(
                "samples[{i}].top1 must be a percentage in [0, 100], got {}",
                s.top1
            )));
        }
        pairs.push((choices.to_vec(), s.top1));
    }
    let (surrogate, report): (Surrogate, FitReport) =
        Surrogate::fit(space.layers().len(), space.choices().len(), &pairs)
            .map_err(|e| invalid(e.to_string()))?;
    let samples = serde_json::to_value(
        pairs
            .iter()
            .map(|(g, y)| serde_json::json!({"choices": g, "top1": y}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let surrogate =
        serde_json::to_value(&surrogate).map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = state
        .db
        .create_accuracy_sample_set(NewSampleSet {
            space: space.name(),
            label: &label,
            samples: &samples,
            surrogate: &surrogate,
            report: &report,
            created_by: caller.key_id,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SampleSet {
            id: row.id,
            space: row.space,
            label: row.label,
            samples: pairs.len(),
            report: row.report,
            created_at: row.created_at,
        }),
    ))
}

/// A sample set and its surrogate's quality.
#[utoipa::path(get, path = "/v1/accuracy-samples/{id}", tag = "searches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = SampleSet),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SampleSet>> {
    let row = state.db.accuracy_sample_set(id).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_sample_set",
            format!("there is no accuracy sample set {id}"),
        )
    })?;
    Ok(Json(SampleSet {
        id: row.id,
        space: row.space,
        label: row.label,
        samples: row.samples.as_array().map_or(0, Vec::len),
        report: row.report,
        created_at: row.created_at,
    }))
}
