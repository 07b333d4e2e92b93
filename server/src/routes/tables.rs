//! Latency tables over HTTP: list, one table (JSON or CSV), and predictions of whole
//! architectures from a table.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use gpulut_tables::Statistic;
use gpulut_tables::export::ofa_key;
use gpulut_tables::latency::{BlockMs as BlockMsRef, GridPredictor};
use gpulut_tables::space::BlockPart;
use gpulut_tables::validation::Calibration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::cache::Rendered;
use crate::db::{DeviceRef, EntryDetailRow, ImportRefusal, ImportedSeries};
use crate::error::{
    AdminProblems, ApiError, ApiResult, AuthProblems, BadRequest, JsonBodyProblems, ParamProblems,
    Problem,
};
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
    /// Calibrated, out-of-sample accuracy on whole networks (`within_5pct`, `within_10pct`,
    /// `rmse_ms`, `mean_bias`, `networks`); null before any validation.
    #[schema(value_type = Option<Object>, required = true)]
    pub validation: Option<serde_json::Value>,
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
#[into_params(parameter_in = Query)]
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
    /// Also give the calibrated prediction (the table's fitted correction, with the statistic
    /// validation chose); refused when the table has no calibration yet.
    #[serde(default)]
    pub calibrated: bool,
    /// Include the per-block breakdown (default true); without it the answer is a tenth of
    /// the size, for callers that rank many architectures by total.
    #[serde(default = "yes")]
    pub breakdown: bool,
}

fn yes() -> bool {
    true
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
    /// Per block, in execution order: `key` and `ms` (null when missing); left out with
    /// `"breakdown": false`.
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<gpulut_tables::latency::BlockLatency>,
    pub missing: Vec<String>,
    /// With `calibrated`: the calibrated prediction (null when blocks are missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibrated_ms: Option<Option<f64>>,
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
        AuthProblems))]
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
                validation: r.validation,
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
    responses(
        (status = 200, description = "the table, in the `format` asked for; an `ETag` header names its content. The OFA YAML maps block keys to `{count, mean, std}`, and is empty (null: only its header comment) for a table without entries",
            content((Table = "application/json"), (String = "text/csv"), (serde_json::Value = "application/yaml"))),
        (status = 304, description = "not modified: the `If-None-Match` header names the current ETag"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
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
    let space_name = q
        .space
        .as_deref()
        .unwrap_or(gpulut_tables::space::MOGA_MBV3);
    let key = (
        device.clone(),
        framework.clone(),
        space_name.to_string(),
        format.to_string(),
    );
    let rendered = match state.tables.get(&key) {
        Some(r) => r,
        None => {
            let generation = state.tables.generation();
            let r = render(&state, &device, &framework, space_name, format).await?;
            state.tables.insert(key, r.clone(), generation);
            r
        }
    };
    // Polling clients send the ETag back and get 304 while the table is unchanged.
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == rendered.etag || t.trim() == "*")
        });
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, rendered.etag)]).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, rendered.content_type.to_string()),
            (header::ETAG, rendered.etag),
        ],
        rendered.body,
    )
        .into_response())
}

/// Reads and renders one table.
async fn render(
    state: &AppState,
    device: &str,
    framework: &str,
    space: &str,
    format: &str,
) -> ApiResult<Rendered> {
    let d = resolve_table(state, device, framework).await?;
    let space = load_space(state, space).await?;
    let entries: Vec<Entry> = state
        .db
        .table_entries(d.id, framework, &space)
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
        framework: framework.to_string(),
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
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    );
    Ok(Rendered {
        device: d.id,
        content_type,
        etag,
        body: axum::body::Bytes::from(body),
    })
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
#[into_params(parameter_in = Query)]
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
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
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
    let entries = state.db.table_entries(d.id, &framework, &space).await?;
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
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
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
    let table = state.db.latency_table(d.id, &framework).await?;
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
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, JsonBodyProblems))]
pub async fn predict(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PredictRequest>,
) -> ApiResult<Response> {
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
    let table = state.db.latency_table(d.id, &framework).await?;
    let calibration = if req.calibrated {
        Some(table_calibration(&state, &d, &framework, &space).await?)
    } else {
        None
    };
    let archs = parse_archs(&space, req.archs)?;
    // Networks outside the grid (explicit channels) are expanded block by block; grid ones go
    // through the predictor, which looked every (layer, choice) up once.
    let explicit: Vec<Option<Vec<gpulut_tables::Block>>> = archs
        .iter()
        .map(|a| a.choices().is_none().then(|| space.expand(a)))
        .collect();
    let grid = GridPredictor::new(&space, &table, req.statistic);
    let calibrated_grid = calibration.map(|c| (c, GridPredictor::new(&space, &table, c.statistic)));
    let grid_blocks =
        space.stem_block_refs().len() + space.layers().len() + space.head_block_refs().len();
    let mut out = Vec::with_capacity(archs.len());
    for (arch, expanded) in archs.iter().zip(&explicit) {
        let mut blocks: Vec<BlockMsRef<'_>> = Vec::new();
        let (total_ms, uncertainty_ms, missing, calibrated_ms) = match (arch.choices(), expanded) {
            (Some(choices), _) => {
                let p = grid.predict(choices, req.breakdown.then_some(&mut blocks));
                let calibrated = calibrated_grid.as_ref().map(|(c, g)| {
                    g.predict(choices, None)
                        .total_ms
                        .map(|sum| c.apply(sum, grid_blocks))
                });
                (
                    p.total_ms,
                    p.uncertainty_ms,
                    p.missing.iter().map(|k| k.to_string()).collect(),
                    calibrated,
                )
            }
            (None, expanded) => {
                let expanded: &[gpulut_tables::Block] = expanded.as_deref().unwrap_or(&[]);
                let p = table.predict(expanded, req.statistic);
                if req.breakdown {
                    blocks = expanded
                        .iter()
                        .map(|b| BlockMsRef {
                            key: b.key.as_str(),
                            ms: table.get(&b.key).map(|e| e.get(req.statistic)),
                        })
                        .collect();
                }
                let calibrated = calibration.map(|c| {
                    table
                        .predict(expanded, c.statistic)
                        .total_ms
                        .map(|sum| c.apply(sum, expanded.len()))
                });
                (
                    p.total_ms,
                    p.uncertainty_ms,
                    p.missing.iter().map(|k| k.to_string()).collect(),
                    calibrated,
                )
            }
        };
        out.push(PredictionRef {
            arch: arch.to_string(),
            name: arch.name(),
            total_ms,
            uncertainty_ms,
            statistic: req.statistic,
            blocks,
            missing,
            calibrated_ms,
        });
    }
    let body = serde_json::to_vec(&out).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// [`PredictionOut`] borrowing block keys from the space, so a batch allocates no keys.
#[derive(Serialize)]
struct PredictionRef<'a> {
    arch: String,
    name: Option<&'a str>,
    total_ms: Option<f64>,
    uncertainty_ms: Option<f64>,
    statistic: Statistic,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocks: Vec<BlockMsRef<'a>>,
    missing: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibrated_ms: Option<Option<f64>>,
}

/// Most rows one import may carry.
pub const MAX_IMPORT_ROWS: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub space: String,
    /// The other tool's version, e.g. `ncnn 20261020`; a new version marks older entries stale.
    pub framework_version: String,
    /// What produced the numbers (free text, kept with every measurement).
    #[serde(default)]
    pub tool: Option<String>,
    pub rows: Vec<ImportRow>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRow {
    /// A block key of the space.
    pub key: String,
    /// Raw timings in milliseconds, or...
    #[serde(default)]
    pub samples_ms: Option<Vec<f64>>,
    /// ...one timing (e.g. the tool's reported average).
    #[serde(default)]
    pub ms: Option<f64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// For CSV bodies: the space.
    pub space: Option<String>,
    /// For CSV bodies: the tool's version.
    pub framework_version: Option<String>,
    /// For CSV bodies: what produced the numbers.
    pub tool: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportAck {
    pub framework: String,
    pub framework_version: String,
    /// Series stored (one per row).
    pub stored: usize,
}

fn invalid_import(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_import", detail)
}

/// Parses a CSV import: a header naming `key` and either `ms` or `samples_ms` (samples
/// separated by `;`), then one row per block.
fn parse_import_csv(text: &str) -> ApiResult<Vec<ImportRow>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| invalid_import("the CSV is empty"))?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let key = col("key").ok_or_else(|| invalid_import("the CSV header needs a `key` column"))?;
    let (ms, samples) = (col("ms"), col("samples_ms"));
    if ms.is_none() && samples.is_none() {
        return Err(invalid_import(
            "the CSV header needs an `ms` or a `samples_ms` column",
        ));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let at = |d: String| invalid_import(format!("CSV row {}: {d}", n + 1));
        let number = |s: &str| {
            s.parse::<f64>().map_err(|_| {
                at(format!(
                    "`{}` is not a number",
                    s.chars().take(40).collect::<String>()
                ))
            })
        };
        let k = cells.get(key).ok_or_else(|| at("missing `key`".into()))?;
        let samples_ms = match samples.and_then(|i| cells.get(i)).filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.split(';')
                    .map(|v| number(v.trim()))
                    .collect::<ApiResult<Vec<f64>>>()?,
            ),
            None => None,
        };
        let ms = match ms.and_then(|i| cells.get(i)).filter(|s| !s.is_empty()) {
            Some(s) => Some(number(s)?),
            None => None,
        };
        rows.push(ImportRow {
            key: k.to_string(),
            samples_ms,
            ms,
        });
    }
    Ok(rows)
}

/// Imports measurements another tool made (TFLite benchmark_model, SNPE, MACE, ncnn) for this
/// device, under that tool's framework name. JSON (`ImportRequest`) or CSV (`key,ms` or
/// `key,samples_ms` with `;`-separated samples; space and version in the query). Validated like
/// agent uploads, all or nothing; afterwards the table behaves like any other.
#[utoipa::path(post, path = "/v1/tables/{device}/{framework}/import", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path), ("framework" = String, Path, description = "the tool's framework name, e.g. ncnn-vulkan"), ImportQuery),
    request_body(content = ImportRequest, description = "JSON, or text/csv"),
    responses((status = 201, body = ImportAck),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        AdminProblems, BadRequest))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<ImportAck>)> {
    caller.require_admin()?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the import is larger than this server accepts",
            )
        } else {
            ApiError::bad_request("invalid_body", r.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // The media type exactly (parameters such as charset aside): `application/jsonx` is not JSON.
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let req = if media_type == "application/json" {
        let de = &mut serde_json::Deserializer::from_slice(&body);
        parse_import_json(de)?
    } else if media_type == "text/csv" {
        let text =
            std::str::from_utf8(&body).map_err(|_| invalid_import("the CSV is not UTF-8"))?;
        ImportRequest {
            space: q
                .space
                .clone()
                .ok_or_else(|| invalid_import("a CSV import needs `?space=`"))?,
            framework_version: q
                .framework_version
                .clone()
                .ok_or_else(|| invalid_import("a CSV import needs `?framework_version=`"))?,
            tool: q.tool.clone(),
            rows: parse_import_csv(text)?,
        }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the import as application/json or text/csv",
        ));
    };
    let ok_name = !framework.is_empty()
        && framework.len() <= 64
        && framework
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok_name {
        return Err(invalid_import(
            "the framework name must be 1-64 characters of a-z, 0-9, '.', '_' and '-'",
        ));
    }
    if req.framework_version.trim().is_empty() || req.framework_version.len() > 64 {
        return Err(invalid_import(
            "`framework_version` must be 1-64 characters",
        ));
    }
    // `tool` is kept with every imported measurement, so its size is multiplied by the rows.
    if req
        .tool
        .as_deref()
        .is_some_and(|t| t.chars().count() > 200 || t.chars().any(char::is_control))
    {
        return Err(invalid_import(
            "`tool` must be at most 200 characters with no control characters",
        ));
    }
    let d = state.db.find_device(&device).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_device",
            format!(
                "there is no device `{}`",
                device.chars().take(80).collect::<String>()
            ),
        )
    })?;
    let space = space_in_body(&state.db, &req.space, "invalid_import").await?;
    if req.rows.is_empty() || req.rows.len() > MAX_IMPORT_ROWS {
        return Err(invalid_import(format!(
            "an import holds 1 to {MAX_IMPORT_ROWS} rows, got {}",
            req.rows.len()
        )));
    }
    let known: std::collections::HashSet<String> = space
        .distinct_blocks()
        .into_iter()
        .map(|b| b.block.key.to_string())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut series = Vec::with_capacity(req.rows.len());
    for (i, row) in req.rows.into_iter().enumerate() {
        let at = |d: String| {
            invalid_import(format!(
                "rows[{i}] ({}): {d}",
                row.key.chars().take(120).collect::<String>()
            ))
        };
        if !known.contains(&row.key) {
            return Err(at(format!("not a block of space {}", space.name())));
        }
        if !seen.insert(row.key.clone()) {
            return Err(at("duplicate key".into()));
        }
        let samples = match (row.samples_ms.clone(), row.ms) {
            (Some(s), None) => s,
            (None, Some(ms)) => vec![ms],
            _ => return Err(at("give exactly one of `samples_ms` and `ms`".into())),
        };
        if samples.is_empty() || samples.len() > crate::routes::agents::MAX_SAMPLES {
            return Err(at(format!(
                "1 to {} samples",
                crate::routes::agents::MAX_SAMPLES
            )));
        }
        let max = crate::routes::agents::MAX_SAMPLE_MS;
        if let Some(s) = samples
            .iter()
            .find(|s| !(s.is_finite() && **s > 0.0 && **s <= max))
        {
            return Err(at(format!("{s} is not a time in (0, {max}] ms")));
        }
        series.push(ImportedSeries {
            key: row.key,
            samples_ms: samples,
        });
    }
    let tool = serde_json::json!({"tool": req.tool, "imported_by": caller.key_id});
    let stored = state
        .db
        .import_series(d.id, &framework, req.framework_version.trim(), space.name(), &tool, &series)
        .await?
        .map_err(|ImportRefusal::NativeFramework| {
            invalid_import(format!("`{framework}` is one of the agent's own frameworks; its numbers come from agents only"))
        })?;
    // This replica forgets at once; the others through the commit's notification.
    state.tables.invalidate_device(d.id);
    tracing::info!(device = %d.id, framework, stored, "measurements imported");
    Ok((
        StatusCode::CREATED,
        Json(ImportAck {
            framework,
            framework_version: req.framework_version.trim().to_string(),
            stored,
        }),
    ))
}

/// Deserialises a JSON import with an error that names the field.
fn parse_import_json<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
) -> ApiResult<ImportRequest> {
    // Trailing data after the document (a second document, garbage) is refused like axum's
    // `Json` refuses it, not silently dropped.
    <ImportRequest as Deserialize>::deserialize(&mut *de)
        .and_then(|req| de.end().map(|()| req))
        .map_err(|e| {
            let status = if e.is_syntax() || e.is_eof() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            ApiError::new(
                status,
                if e.is_syntax() || e.is_eof() {
                    "malformed_json"
                } else {
                    "invalid_body"
                },
                e.to_string(),
            )
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub device: Uuid,
    pub framework: String,
    pub space: String,
    /// `statistic`, `scale`, `overhead_per_boundary_ms`: calibrated = scale x sum(statistic) +
    /// overhead x (blocks - 1).
    #[schema(value_type = Object)]
    pub calibration: serde_json::Value,
    /// Accuracy of summed blocks (`raw`) and of the calibration out of sample (`calibrated`):
    /// share within ±5% and ±10%, RMSE, mean bias; per network measured vs predicted, and
    /// what each block boundary costs beyond the blocks (additivity).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    pub fitted_at: DateTime<Utc>,
}

/// How well the table predicts whole networks, and its calibration.
#[utoipa::path(get, path = "/v1/tables/{device}/{framework}/validation", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path), ("framework" = String, Path), SpaceQuery),
    responses((status = 200, body = Validation),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
pub async fn validation(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((device, framework)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<SpaceQuery>,
) -> ApiResult<Json<Validation>> {
    let d = resolve_table(&state, &device, &framework).await?;
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let (calibration, report, fitted_at) = state.db.calibration(d.id, &framework, space.name()).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_validation",
            format!(
                "no networks validated on {} / {framework} yet: run a campaign with `validation` (3 or more networks)",
                d.name
            ),
        )
    })?;
    Ok(Json(Validation {
        device: d.id,
        framework,
        space: space.name().to_string(),
        calibration,
        report,
        fitted_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetPredictRequest {
    pub space: String,
    /// The fleet: 1 to 32 (device, framework) tables.
    #[schema(value_type = Vec<Object>)]
    pub tables: Vec<crate::searches::TableRef>,
    #[schema(value_type = Vec<Value>)]
    pub archs: Vec<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = String)]
    pub statistic: Statistic,
    /// Use each table's calibration (all tables must have one).
    #[serde(default)]
    pub calibrated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FleetPrediction {
    pub arch: String,
    pub name: Option<String>,
    /// Per table: `device`, `framework`, `total_ms` (calibrated when asked), `missing`.
    #[schema(value_type = Vec<Object>)]
    pub tables: Vec<serde_json::Value>,
    /// The slowest phone of the fleet; null when any table misses blocks.
    pub max_ms: Option<f64>,
    /// The fleet's mean; null when any table misses blocks.
    pub mean_ms: Option<f64>,
}

/// Predicts architectures on several tables at once (a fleet of phones).
#[utoipa::path(post, path = "/v1/predict", tag = "tables", security(("bearer" = [])),
    request_body = FleetPredictRequest,
    responses((status = 200, body = Vec<FleetPrediction>),
        AuthProblems, JsonBodyProblems))]
pub async fn predict_fleet(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(req): ApiJson<FleetPredictRequest>,
) -> ApiResult<Json<Vec<FleetPrediction>>> {
    let space = space_in_body(&state.db, &req.space, "unknown_space").await?;
    if req.tables.is_empty() || req.tables.len() > 32 {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "`tables` must name 1 to 32 tables",
        ));
    }
    if req.archs.is_empty() || req.archs.len() > MAX_ARCHS_PER_REQUEST {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("`archs` must hold 1 to {MAX_ARCHS_PER_REQUEST} architectures"),
        ));
    }
    let mut fleet = Vec::new();
    for (i, t) in req.tables.iter().enumerate() {
        let d = resolve_table(&state, &t.device, &t.framework)
            .await
            .map_err(|e| {
                ApiError::unprocessable(
                    "unknown_table",
                    format!("tables[{i}]: {}", e.problem().detail),
                )
            })?;
        let table = state.db.latency_table(d.id, &t.framework).await?;
        let calibration = if req.calibrated {
            let c = table_calibration(&state, &d, &t.framework, &space)
                .await
                .map_err(|e| {
                    ApiError::unprocessable(
                        "no_calibration",
                        format!("tables[{i}]: {}", e.problem().detail),
                    )
                })?;
            Some(c)
        } else {
            None
        };
        fleet.push((d, t.framework.clone(), table, calibration));
    }
    let mut out = Vec::with_capacity(req.archs.len());
    for arch in parse_archs(&space, req.archs)? {
        let blocks = space.expand(&arch);
        let mut totals = Vec::new();
        let mut tables = Vec::new();
        for (d, framework, table, calibration) in &fleet {
            let (stat, apply) = match calibration {
                Some(c) => (c.statistic, Some(*c)),
                None => (req.statistic, None),
            };
            let p = table.predict(&blocks, stat);
            let total = p
                .total_ms
                .map(|s| apply.map_or(s, |c| c.apply(s, blocks.len())));
            totals.push(total);
            tables.push(serde_json::json!({
                "device": d.id, "device_name": d.name, "framework": framework,
                "total_ms": total, "calibrated": apply.is_some(),
                "missing": p.missing.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            }));
        }
        let all: Option<Vec<f64>> = totals.into_iter().collect();
        out.push(FleetPrediction {
            arch: arch.to_string(),
            name: arch.name().map(str::to_string),
            tables,
            max_ms: all
                .as_ref()
                .map(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            mean_ms: all.as_ref().map(|v| v.iter().sum::<f64>() / v.len() as f64),
        });
    }
    Ok(Json(out))
}

/// The architectures of a request body, checked against the space; errors name the index.
fn parse_archs(
    space: &gpulut_tables::SearchSpace,
    values: Vec<serde_json::Value>,
) -> ApiResult<Vec<gpulut_tables::Architecture>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let spec: gpulut_tables::ArchSpec = serde_json::from_value(value).map_err(|_| {
                ApiError::unprocessable(
                    "invalid_architecture",
                    format!("archs[{i}]: expected a hex string, a reference name, or {{\"choices\": [...]}}"),
                )
            })?;
            space
                .resolve(&spec)
                .map_err(|e| ApiError::unprocessable("invalid_architecture", format!("archs[{i}]: {e}")))
        })
        .collect()
}

/// A table's stored calibration, or a 422 saying how to get one.
async fn table_calibration(
    state: &AppState,
    d: &DeviceRef,
    framework: &str,
    space: &gpulut_tables::SearchSpace,
) -> ApiResult<Calibration> {
    let (model, _, _) = state.db.calibration(d.id, framework, space.name()).await?.ok_or_else(|| {
        ApiError::unprocessable(
            "no_calibration",
            format!(
                "the table of {} / {framework} has no calibration yet: run a campaign with `validation` (3 or more networks)",
                d.name
            ),
        )
    })?;
    serde_json::from_value(model)
        .map_err(|e| ApiError::Internal(format!("stored calibration: {e}")))
}
