//! Latency tables over HTTP: list, one table (JSON or CSV), and predictions of whole
//! architectures from a table.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use gpulut_tables::Statistic;
use gpulut_tables::export::ofa_key;
use gpulut_tables::space::BlockPart;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::{DeviceRef, EntryDetailRow};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::spaces::{MAX_ARCHS_PER_REQUEST, load_space, space_in_body};

#[derive(Debug, Serialize, ToSchema)]
pub struct TableSummary {
    pub device: Uuid,
    pub device_name: String,
    pub framework: String,
    pub space: String,
    /// Blocks of the space with an entry.
    pub entries: i64,
    /// Distinct blocks of the space.
    pub blocks: i64,
    /// entries / blocks.
    pub coverage: f64,
    /// Entries measured with an older kernel version.
    pub stale: i64,
    pub last_measured_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    pub key: String,
    /// `stem`, `choice` or `head`.
    pub part: String,
    pub framework_version: String,
    pub count: i32,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub iqr_ms: f64,
    pub mad_ms: f64,
    /// 95% confidence interval of the median (order statistics); null under 6 samples.
    pub ci_low_ms: Option<f64>,
    pub ci_high_ms: Option<f64>,
    pub stale: bool,
    pub first_measured_at: DateTime<Utc>,
    pub last_measured_at: DateTime<Utc>,
}

impl From<EntryDetailRow> for Entry {
    fn from(r: EntryDetailRow) -> Self {
        Self {
            key: r.block_key,
            part: r.part,
            framework_version: r.framework_version,
            count: r.count,
            min_ms: r.min_ms,
            p10_ms: r.p10_ms,
            median_ms: r.median_ms,
            p90_ms: r.p90_ms,
            mean_ms: r.mean_ms,
            iqr_ms: r.iqr_ms,
            mad_ms: r.mad_ms,
            ci_low_ms: r.ci_low_ms,
            ci_high_ms: r.ci_high_ms,
            stale: r.stale,
            first_measured_at: r.first_measured_at,
            last_measured_at: r.last_measured_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Table {
    pub device: Uuid,
    pub device_name: String,
    pub framework: String,
    pub space: String,
    pub entries: Vec<Entry>,
    /// Blocks of the space without an entry yet.
    pub missing: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    /// The space (default `moga-mbv3`).
    pub space: Option<String>,
    /// `json` (default), `csv`, or `ofa-yaml` (Once-for-All's lookup-table format:
    /// `{key: {count, mean, std}}` with `std` a robust sigma, 1.4826 x MAD).
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    pub space: String,
    /// Architectures: hex text, JSON choices or reference names; at most 1000.
    #[schema(value_type = Vec<Value>)]
    pub archs: Vec<serde_json::Value>,
    /// The entry statistic summed: `median` (default), `min`, `p10` or `mean`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub statistic: Statistic,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionOut {
    pub arch: String,
    pub name: Option<String>,
    /// Sum over the blocks; null when any block is missing (see `missing`).
    pub total_ms: Option<f64>,
    /// Root-sum-square of the entries' spreads.
    pub uncertainty_ms: Option<f64>,
    #[schema(value_type = String)]
    pub statistic: Statistic,
    /// Per block, in execution order: `key` and `ms` (null when missing).
    #[schema(value_type = Vec<Object>)]
    pub blocks: Vec<gpulut_tables::latency::BlockLatency>,
    pub missing: Vec<String>,
}

pub(crate) async fn resolve_table(
    state: &AppState,
    device: &str,
    framework: &str,
) -> ApiResult<DeviceRef> {
    let d = state.db.find_device(device).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_device",
            format!(
                "there is no device `{}` (GET /v1/devices lists them)",
                device.chars().take(80).collect::<String>()
            ),
        )
    })?;
    if !state.db.framework_exists(framework).await? {
        return Err(ApiError::not_found(
            "no_such_framework",
            format!(
                "there is no framework `{}`",
                framework.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(d)
}

/// Lists latency tables: every (device, framework, space) with entries.
#[utoipa::path(get, path = "/v1/tables", tag = "tables", security(("bearer" = [])),
    responses((status = 200, body = Vec<TableSummary>),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<TableSummary>>> {
    let rows = state.db.table_summaries().await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| TableSummary {
                device: r.device_id,
                device_name: r.device_name,
                framework: r.framework,
                space: r.space,
                entries: r.entries,
                blocks: r.blocks,
                coverage: if r.blocks > 0 {
                    r.entries as f64 / r.blocks as f64
                } else {
                    0.0
                },
                stale: r.stale,
                last_measured_at: r.last_measured_at,
            })
            .collect(),
    ))
}

fn csv(table: &Table) -> String {
    let mut out = String::from(
        "key,part,framework_version,count,min_ms,p10_ms,median_ms,p90_ms,mean_ms,iqr_ms,mad_ms,ci_low_ms,ci_high_ms,stale,last_measured_at\n",
    );
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for e in &table.entries {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            e.key,
            e.part,
            e.framework_version,
            e.count,
            e.min_ms,
            e.p10_ms,
            e.median_ms,
            e.p90_ms,
            e.mean_ms,
            e.iqr_ms,
            e.mad_ms,
            opt(e.ci_low_ms),
            opt(e.ci_high_ms),
            e.stale,
            e.last_measured_at.to_rfc3339()
        ));
    }
    out
}

/// One latency table, as JSON or CSV.
#[utoipa::path(get, path = "/v1/tables/{device}/{framework}", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path, description = "device id (or unique name)"), ("framework" = String, Path), TableQuery),
    responses((status = 200, body = Table),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TableQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "ofa-yaml") {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`format` must be json, csv or ofa-yaml",
        ));
    }
    let d = resolve_table(&state, &device, &framework).await?;
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let entries: Vec<Entry> = state
        .db
        .table_entries(d.id, &framework, space.name())
        .await?
        .into_iter()
        .map(Entry::from)
        .collect();
    let missing = space
        .distinct_blocks()
        .into_iter()
        .map(|b| b.block.key.to_string())
        .filter(|k| !entries.iter().any(|e| &e.key == k))
        .collect();
    let table = Table {
        device: d.id,
        device_name: d.name,
        framework,
        space: space.name().to_string(),
        entries,
        missing,
    };
    let (content_type, body) = match format {
        "csv" => ("text/csv; charset=utf-8", csv(&table)),
        "ofa-yaml" => ("application/yaml", ofa_yaml(&table, &space)),
        _ => (
            "application/json",
            serde_json::to_string(&table).map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
    };
    // Polling clients send the ETag back and get 304 while the table is unchanged.
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    );
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

/// OFA's YAML lookup table: one quoted key per block with `count`, `mean` and `std`.
fn ofa_yaml(table: &Table, space: &gpulut_tables::SearchSpace) -> String {
    let mut out = format!(
        "# gpulut latency table: device {} ({}), framework {}, space {}; mean = median ms, std = 1.4826 x MAD\n",
        table.device_name, table.device, table.framework, table.space
    );
    let mut per_part: std::collections::HashMap<BlockPart, usize> =
        std::collections::HashMap::new();
    for b in space.distinct_blocks() {
        let index = per_part.entry(b.part).or_insert(0);
        let key = ofa_key(&b.block, b.part, *index);
        *index += 1;
        let (Some(key), Some(e)) = (
            key,
            table.entries.iter().find(|e| e.key == b.block.key.as_str()),
        ) else {
            continue;
        };
        out.push_str(&format!(
            "'{key}':\n  count: {}\n  mean: {:?}\n  std: {:?}\n",
            e.count,
            e.median_ms,
            1.4826 * e.mad_ms
        ));
    }
    out
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpaceQuery {
    /// The space (default `moga-mbv3`).
    pub space: Option<String>,
    /// For the matrix: `median` (default), `min`, `p10` or `mean`.
    pub statistic: Option<String>,
}

/// One entry of a table by block key.
#[utoipa::path(get, path = "/v1/tables/{device}/{framework}/entries/{key}", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path), ("framework" = String, Path), ("key" = String, Path, description = "block key"), SpaceQuery),
    responses((status = 200, body = Entry),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn entry(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework, key)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<SpaceQuery>,
) -> ApiResult<Json<Entry>> {
    let d = resolve_table(&state, &device, &framework).await?;
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let entries = state
        .db
        .table_entries(d.id, &framework, space.name())
        .await?;
    entries
        .into_iter()
        .find(|e| e.block_key == key)
        .map(|e| Json(Entry::from(e)))
        .ok_or_else(|| {
            ApiError::not_found(
                "no_such_entry",
                format!(
                    "the table of {} / {framework} has no entry `{}` in space {}",
                    d.name,
                    key.chars().take(120).collect::<String>(),
                    space.name()
                ),
            )
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Matrix {
    pub space: String,
    #[schema(value_type = String)]
    pub statistic: Statistic,
    /// The choices, in index order (`c`, `kernel`, `expansion`, `se`).
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<gpulut_tables::space::Choice>,
    /// `ms[layer][choice]`, null where the table has no entry: what a heatmap needs.
    pub ms: Vec<Vec<Option<f64>>>,
    /// The fixed parts (stem and head), in order.
    pub fixed: Vec<BlockMs>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockMs {
    pub key: String,
    pub ms: Option<f64>,
}

/// The layer x choice matrix of a space on this table.
#[utoipa::path(get, path = "/v1/tables/{device}/{framework}/matrix", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path), ("framework" = String, Path), SpaceQuery),
    responses((status = 200, body = Matrix),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn matrix(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<SpaceQuery>,
) -> ApiResult<Json<Matrix>> {
    let statistic: Statistic = match q.statistic.as_deref() {
        None => Statistic::Median,
        Some(s) => {
            serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "`statistic` must be median, min, p10 or mean",
                )
            })?
        }
    };
    let d = resolve_table(&state, &device, &framework).await?;
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let table = state
        .db
        .latency_table(d.id, &framework, space.name())
        .await?;
    let ms = (0..space.layers().len())
        .map(|layer| {
            space
                .choices()
                .iter()
                .map(|c| {
                    let block = gpulut_tables::Block::new(
                        space.choice_op(layer, c),
                        space.layer_input(layer),
                    );
                    table.get(&block.key).map(|e| e.get(statistic))
                })
                .collect()
        })
        .collect();
    let fixed = space
        .stem_blocks()
        .into_iter()
        .chain(space.head_blocks())
        .map(|b| BlockMs {
            ms: table.get(&b.key).map(|e| e.get(statistic)),
            key: b.key.to_string(),
        })
        .collect();
    Ok(Json(Matrix {
        space: space.name().to_string(),
        statistic,
        choices: space.choices().to_vec(),
        ms,
        fixed,
    }))
}

/// Predicts whole architectures from the table: the sum over their blocks, the per-block
/// breakdown, missing blocks (never a silent zero) and an uncertainty.
#[utoipa::path(post, path = "/v1/tables/{device}/{framework}/predict", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path), ("framework" = String, Path)),
    request_body = PredictRequest,
    responses((status = 200, body = Vec<PredictionOut>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn predict(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PredictRequest>,
) -> ApiResult<Json<Vec<PredictionOut>>> {
    let d = resolve_table(&state, &device, &framework).await?;
    let space = space_in_body(&state.db, &req.space, "unknown_space").await?;
    if req.archs.is_empty() || req.archs.len() > MAX_ARCHS_PER_REQUEST {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!(
                "`archs` must hold 1 to {MAX_ARCHS_PER_REQUEST} architectures, got {}",
                req.archs.len()
            ),
        ));
    }
    let table = state
        .db
        .latency_table(d.id, &framework, space.name())
        .await?;
    let mut out = Vec::with_capacity(req.archs.len());
    for (i, value) in req.archs.into_iter().enumerate() {
        let spec: gpulut_tables::ArchSpec = serde_json::from_value(value).map_err(|_| {
            ApiError::unprocessable(
                "invalid_architecture",
                format!(
                    "archs[{i}]: expected a hex string, a reference name, or {{\"choices\": [...]}}"
                ),
            )
        })?;
        let arch = space.resolve(&spec).map_err(|e| {
            ApiError::unprocessable("invalid_architecture", format!("archs[{i}]: {e}"))
        })?;
        let p = table.predict(&space.expand(&arch), req.statistic);
        out.push(PredictionOut {
            arch: arch.to_string(),
            name: arch.name().map(str::to_string),
            total_ms: p.total_ms,
            uncertainty_ms: p.uncertainty_ms,
            statistic: p.statistic,
            blocks: p.blocks,
            missing: p.missing.into_iter().map(|k| k.to_string()).collect(),
        });
    }
    Ok(Json(out))
}
