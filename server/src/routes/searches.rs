//! Searches over REST: create (validated, queued for a worker), list, status with progress,
//! the current front with per-block latency breakdowns and the reference networks, cancel.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use gpulut_tables::{ArchSpec, BlockKey, LatencyTable, Statistic};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::SearchRow;
use crate::error::{ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::searches::{SearchPlan, SearchRequest};

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
    pub state: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HypervolumePoint {
    pub generation: u32,
    pub hypervolume: f64,
    pub front_size: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchStatus {
    pub id: Uuid,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub space: String,
    /// Generations completed.
    pub generation: u32,
    pub generations: u32,
    pub population: usize,
    pub evaluations: i64,
    /// `proxy`, `samples` or `http`. Results of a `proxy` search are not measured accuracy.
    pub accuracy_kind: String,
    /// Hypervolume of the front after each generation, normalised by the tables' and the
    /// accuracy source's bounds (reference point 1.1 per objective).
    pub hypervolume: Vec<HypervolumePoint>,
    /// Seconds since a worker first started it.
    pub elapsed_s: Option<f64>,
    /// Seconds to finish at the pace so far.
    pub estimate_s: Option<f64>,
    pub failure_reason: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The request as accepted (device references resolved to ids).
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only searches in this state.
    pub state: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FrontQuery {
    /// Include each member's per-table, per-block latency breakdown (default true).
    pub breakdown: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockMs {
    #[schema(value_type = String)]
    pub key: BlockKey,
    pub ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableLatency {
    pub device: String,
    pub framework: String,
    pub total_ms: Option<f64>,
    pub blocks: Vec<BlockMs>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Front {
    pub id: Uuid,
    pub state: String,
    pub generation: u32,
    pub accuracy_kind: String,
    /// Members: `arch`, `choices`, `accuracy`, `latency_ms` (combined over the tables),
    /// `params`, `macs`, and `latency_breakdown` per table.
    #[schema(value_type = Vec<Object>)]
    pub front: Vec<serde_json::Value>,
    /// The space's reference networks on the same tables and accuracy source.
    #[schema(value_type = Vec<Object>)]
    pub references: Vec<serde_json::Value>,
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found("no_such_search", format!("there is no search {id}"))
}

fn status(row: SearchRow, history: Option<&serde_json::Value>) -> SearchStatus {
    let req = &row.request;
    let generations = req["generations"].as_u64().unwrap_or(0) as u32;
    let hypervolume: Vec<HypervolumePoint> = history
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    let end = row.finished_at.unwrap_or_else(Utc::now);
    let elapsed_s = row
        .started_at
        .map(|s| (end - s).num_milliseconds().max(0) as f64 / 1000.0);
    let generation = row.generation.max(0) as u32;
    let estimate_s = match (row.state.as_str(), elapsed_s) {
        ("running", Some(e)) if generation > 0 => {
            Some(e / f64::from(generation) * f64::from(generations.saturating_sub(generation)))
        }
        ("done" | "failed" | "cancelled", _) => Some(0.0),
        _ => None,
    };
    SearchStatus {
        id: row.id,
        state: row.state,
        space: row.space,
        generation,
        generations,
        population: req["population"].as_u64().unwrap_or(0) as usize,
        evaluations: row.evaluations,
        accuracy_kind: req["accuracy"]["kind"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        hypervolume,
        elapsed_s,
        estimate_s,
        failure_reason: row.failure_reason,
        cancel_requested: row.cancel_requested,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        request: row.request,
    }
}

/// Queues a search. Everything is checked now (space, tables and their coverage of the space's
/// blocks, accuracy source, weights, sizes, constraints), so a queued search can run.
#[utoipa::path(post, path = "/v1/searches", tag = "searches", request_body = SearchRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "queued", body = Created),
        AuthProblems, JsonBodyProblems))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SearchRequest>,
) -> ApiResult<impl IntoResponse> {
    let plan = SearchPlan::load(&state.db, &req).await?;
    let request = serde_json::to_value(&plan.normalized)
        .map_err(|e| ApiError::Internal(format!("serialising a search request: {e}")))?;
    let row = state
        .db
        .create_search(plan.space.name(), &request, caller.key_id)
        .await?;
    tracing::info!(search = %row.id, "search queued");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/searches/{}", row.id))],
        Json(Created {
            id: row.id,
            state: row.state,
        }),
    ))
}

/// Lists searches, newest first.
#[utoipa::path(get, path = "/v1/searches", tag = "searches", params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SearchStatus>),
        AuthProblems, BadRequest))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<SearchStatus>>> {
    if let Some(s) = q.state.as_deref()
        && !["queued", "running", "done", "failed", "cancelled"].contains(&s)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`state` must be queued, running, done, failed or cancelled",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`limit` must be 1 to 500",
        ));
    }
    let rows = state.db.searches(q.state.as_deref(), limit).await?;
    Ok(Json(rows.into_iter().map(|r| status(r, None)).collect()))
}

/// A search's state and progress: generation, evaluations, hypervolume history, time.
#[utoipa::path(get, path = "/v1/searches/{id}", tag = "searches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = SearchStatus),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SearchStatus>> {
    let row = state.db.search(id).await?.ok_or_else(|| not_found(id))?;
    let front = state.db.search_front(id).await?;
    Ok(Json(status(row, front.as_ref().map(|f| &f.history))))
}

/// Asks a search to stop: a queued one is cancelled at once, a running one within a generation.
#[utoipa::path(post, path = "/v1/searches/{id}/cancel", tag = "searches",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 202, body = SearchStatus),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn cancel(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<SearchStatus>)> {
    let row = state
        .db
        .cancel_search(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((StatusCode::ACCEPTED, Json(status(row, None))))
}

/// The current Pareto front (the final one once done), with latency per block from each table.
#[utoipa::path(get, path = "/v1/searches/{id}/front", tag = "searches",
    params(("id" = Uuid, Path), FrontQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Front),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, BadRequest))]
pub async fn front(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<FrontQuery>,
) -> ApiResult<Json<Front>> {
    let row = state.db.search(id).await?.ok_or_else(|| not_found(id))?;
    let stored = state.db.search_front(id).await?;
    let Some(stored) = stored else {
        return Ok(Json(Front {
            id,
            state: row.state,
            generation: 0,
            accuracy_kind: row.request["accuracy"]["kind"]
                .as_str()
                .unwrap_or("unknown")
                .into(),
            front: Vec::new(),
            references: Vec::new(),
        }));
    };
    let mut front: Vec<serde_json::Value> = stored.front["front"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let references = stored.front["references"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if q.breakdown.unwrap_or(true) {
        let req: SearchRequest = serde_json::from_value(row.request.clone())
            .map_err(|e| ApiError::Internal(format!("stored search request: {e}")))?;
        let space = crate::routes::spaces::load_space(&state, &row.space).await?;
        let mut tables: Vec<(String, String, LatencyTable)> = Vec::new();
        for t in &req.tables {
            let device = Uuid::parse_str(&t.device)
                .map_err(|e| ApiError::Internal(format!("stored device id: {e}")))?;
            let table = state.db.latency_table(device, &t.framework).await?;
            tables.push((t.device.clone(), t.framework.clone(), table));
        }
        let stat: Statistic = req.latency.statistic;
        for member in &mut front {
            let Some(arch) = member["arch"].as_str() else {
                continue;
            };
            let Ok(arch) = space.resolve(&ArchSpec::from(arch)) else {
                continue;
            };
            let blocks = space.expand(&arch);
            let breakdown: Vec<TableLatency> = tables
                .iter()
                .map(|(device, framework, table)| {
                    let p = table.predict(&blocks, stat);
                    TableLatency {
                        device: device.clone(),
                        framework: framework.clone(),
                        total_ms: p.total_ms,
                        blocks: p
                            .blocks
                            .into_iter()
                            .map(|b| BlockMs {
                                key: b.key,
                                ms: b.ms,
                            })
                            .collect(),
                    }
                })
                .collect();
            member["latency_breakdown"] = serde_json::to_value(breakdown).unwrap_or_default();
        }
    }
    Ok(Json(Front {
        id,
        state: row.state,
        generation: stored.generation.max(0) as u32,
        accuracy_kind: stored.front["accuracy_kind"]
            .as_str()
            .unwrap_or("unknown")
            .into(),
        front,
        references,
    }))
}
