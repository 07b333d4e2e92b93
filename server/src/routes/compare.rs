//! Cross-framework views (issue 8): two tables compared block by block (rank correlations and
//! the layer x choice ratio matrix), and MoGA's Figure 2 for a device: seeded random
//! architectures predicted from two frameworks' tables, as a scatter with its rank
//! correlations. The correlation math is the tables crate's (`gpulut_tables::rank`).

use axum::Json;
use axum::extract::State;
use gpulut_tables::latency::GridPredictor;
use gpulut_tables::{LatencyTable, SearchSpace, Statistic, TableEntry, rank};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::DeviceRef;
use crate::error::{ApiError, ApiResult, AuthProblems, ParamProblems, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::spaces::load_space;
use crate::routes::tables::resolve_table;

/// Fewest common blocks (or fully covered architectures) a comparison needs: with fewer, rank
/// correlations say nothing.
pub const MIN_COMMON: usize = 3;
/// Most random architectures one scatter may draw.
pub const MAX_SCATTER: usize = 1000;

fn statistic(s: Option<&str>) -> ApiResult<Statistic> {
    match s {
        None => Ok(Statistic::Median),
        Some(s) => serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "`statistic` must be median, min, p10 or mean",
            )
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// The space whose blocks are compared (default `moga-mbv3`).
    pub space: Option<String>,
    /// The first table, `DEVICE/FRAMEWORK` (device by id or unique name).
    pub a: String,
    /// The second table, `DEVICE/FRAMEWORK`.
    pub b: String,
    /// The entry statistic compared: `median` (default), `min`, `p10` or `mean`.
    pub statistic: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComparedTable {
    pub device: Uuid,
    pub device_name: String,
    pub framework: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompareCounts {
    /// Distinct blocks of the space.
    pub space_blocks: usize,
    /// Blocks of the space with an entry in table a, in table b, in both, in one only.
    pub a_entries: usize,
    pub b_entries: usize,
    pub common: usize,
    pub only_a: usize,
    pub only_b: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommonBlock {
    pub key: String,
    /// `stem`, `choice` or `head`.
    pub part: String,
    pub a_ms: f64,
    pub b_ms: f64,
    /// a_ms / b_ms.
    pub ratio: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FixedRatio {
    pub key: String,
    pub a_ms: Option<f64>,
    pub b_ms: Option<f64>,
    /// a_ms / b_ms; null where either is missing.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    pub space: String,
    #[schema(value_type = String)]
    pub statistic: Statistic,
    pub a: ComparedTable,
    pub b: ComparedTable,
    pub counts: CompareCounts,
    /// Spearman's rho of the common blocks' latencies (average ranks for ties); null when one
    /// side is constant.
    pub spearman_rho: Option<f64>,
    /// Kendall's tau-b of the common blocks' latencies (ties handled); null when one side is
    /// constant.
    pub kendall_tau_b: Option<f64>,
    /// The common blocks of the space, in space order.
    pub blocks: Vec<CommonBlock>,
    /// The choices, in index order (`c`, `kernel`, `expansion`, `se`).
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<gpulut_tables::space::Choice>,
    /// `ratio[layer][choice]` = a / b of that layer's block, null where either table lacks it.
    pub ratio: Vec<Vec<Option<f64>>>,
    /// The fixed parts (stem and head), in order.
    pub fixed: Vec<FixedRatio>,
}

/// Splits `DEVICE/FRAMEWORK` at its last `/` (framework names have none).
fn table_ref(param: &str, text: &str) -> ApiResult<(String, String)> {
    match text.rsplit_once('/') {
        Some((d, f)) if !d.is_empty() && !f.is_empty() => Ok((d.to_string(), f.to_string())),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "`{param}` must be DEVICE/FRAMEWORK, e.g. pixel-7/wgpu-fused; got `{}`",
                text.chars().take(120).collect::<String>()
            ),
        )),
    }
}

/// A table that exists (device and framework known, at least one entry) and has entries in the
/// space.
async fn load_table(
    state: &AppState,
    space: &SearchSpace,
    device: &str,
    framework: &str,
) -> ApiResult<(DeviceRef, LatencyTable)> {
    let d = resolve_table(state, device, framework).await?;
    let table = state.db.latency_table(d.id, framework).await?;
    if table.is_empty() {
        return Err(ApiError::not_found(
            "no_such_table",
            format!(
                "device {} has no table for {framework}: nothing was measured or imported with it (GET /v1/tables lists the tables)",
                d.name
            ),
        ));
    }
    if !space
        .distinct_blocks()
        .iter()
        .any(|b| table.get(&b.block.key).is_some())
    {
        return Err(ApiError::unprocessable(
            "not_in_space",
            format!(
                "the table of {} / {framework} has no entry for a block of space {}: it was measured for another space",
                d.name,
                space.name()
            ),
        ));
    }
    Ok((d, table))
}

/// Compares two latency tables over a space's blocks: the blocks both have, the rank
/// correlation of their latencies (Spearman's rho, Kendall's tau-b, ties handled), and the
/// layer x choice matrix of ratios a / b. Frameworks and devices rank blocks differently
/// (MoGA); this says how much.
#[utoipa::path(get, path = "/v1/tables/compare", tag = "tables", security(("bearer" = [])),
    params(CompareQuery),
    responses((status = 200, body = Comparison),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
pub async fn compare(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> ApiResult<Json<Comparison>> {
    let statistic = statistic(q.statistic.as_deref())?;
    let (a_device, a_framework) = table_ref("a", &q.a)?;
    let (b_device, b_framework) = table_ref("b", &q.b)?;
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let (da, ta) = load_table(&state, &space, &a_device, &a_framework).await?;
    let (db, tb) = load_table(&state, &space, &b_device, &b_framework).await?;
    let get = |t: &LatencyTable, b: &gpulut_tables::Block| t.get(&b.key).map(|e| e.get(statistic));

    let distinct = space.distinct_blocks();
    let mut counts = CompareCounts {
        space_blocks: distinct.len(),
        a_entries: 0,
        b_entries: 0,
        common: 0,
        only_a: 0,
        only_b: 0,
    };
    let mut blocks = Vec::new();
    for sb in &distinct {
        match (get(&ta, &sb.block), get(&tb, &sb.block)) {
            (Some(a_ms), Some(b_ms)) => {
                counts.common += 1;
                blocks.push(CommonBlock {
                    key: sb.block.key.to_string(),
                    part: serde_json::to_value(sb.part)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    a_ms,
                    b_ms,
                    ratio: a_ms / b_ms,
                });
            }
            (Some(_), None) => counts.only_a += 1,
            (None, Some(_)) => counts.only_b += 1,
            (None, None) => {}
        }
    }
    counts.a_entries = counts.common + counts.only_a;
    counts.b_entries = counts.common + counts.only_b;
    if counts.common < MIN_COMMON {
        return Err(ApiError::unprocessable(
            "too_few_common_blocks",
            format!(
                "{} / {a_framework} and {} / {b_framework} have {} block(s) of space {} in common; a comparison needs at least {MIN_COMMON}",
                da.name,
                db.name,
                counts.common,
                space.name()
            ),
        ));
    }
    let xs: Vec<f64> = blocks.iter().map(|b| b.a_ms).collect();
    let ys: Vec<f64> = blocks.iter().map(|b| b.b_ms).collect();
    let corr = rank::correlate(&xs, &ys);
    let ratio = (0..space.layers().len())
        .map(|layer| {
            (0..space.choices().len())
                .map(|c| {
                    let block = space.choice_block(layer, c);
                    Some(get(&ta, block)? / get(&tb, block)?)
                })
                .collect()
        })
        .collect();
    let fixed = space
        .stem_blocks()
        .iter()
        .chain(&space.head_blocks())
        .map(|b| {
            let (a_ms, b_ms) = (get(&ta, b), get(&tb, b));
            FixedRatio {
                key: b.key.to_string(),
                a_ms,
                b_ms,
                ratio: a_ms.zip(b_ms).map(|(x, y)| x / y),
            }
        })
        .collect();
    Ok(Json(Comparison {
        space: space.name().to_string(),
        statistic,
        a: ComparedTable {
            device: da.id,
            device_name: da.name,
            framework: a_framework,
        },
        b: ComparedTable {
            device: db.id,
            device_name: db.name,
            framework: b_framework,
        },
        counts,
        spearman_rho: corr.spearman_rho,
        kendall_tau_b: corr.kendall_tau_b,
        blocks,
        choices: space.choices().to_vec(),
        ratio,
        fixed,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScatterQuery {
    /// The space the architectures are drawn from (default `moga-mbv3`).
    pub space: Option<String>,
    /// The framework of the x axis, e.g. `ncnn-cpu`.
    pub a: String,
    /// The framework of the y axis, e.g. `ncnn-vulkan`.
    pub b: String,
    /// How many seeded random architectures (2 to 1000, default 100).
    pub n: Option<usize>,
    /// The draw's seed (default 0): the same seed as a campaign's `validation.seed` gives the
    /// same architectures, so their end-to-end measurements appear beside the predictions.
    pub seed: Option<u64>,
    /// The entry statistic summed: `median` (default), `min`, `p10` or `mean`; also the
    /// statistic of the measured end-to-end samples.
    pub statistic: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScatterPoint {
    /// The architecture (hex choices).
    pub arch: String,
    /// Predicted end-to-end latency from framework a's table (sum over its blocks).
    pub a_ms: f64,
    /// Predicted from framework b's table.
    pub b_ms: f64,
    /// Measured end to end with a (validation runs), when there are such measurements.
    pub a_measured_ms: Option<f64>,
    pub b_measured_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Correlation {
    /// Points the correlation is over.
    pub n: usize,
    pub spearman_rho: Option<f64>,
    pub kendall_tau_b: Option<f64>,
}

impl From<rank::RankCorrelation> for Correlation {
    fn from(c: rank::RankCorrelation) -> Self {
        Self {
            n: c.n,
            spearman_rho: c.spearman_rho,
            kendall_tau_b: c.kendall_tau_b,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FrameworkScatter {
    pub device: Uuid,
    pub device_name: String,
    pub space: String,
    #[schema(value_type = String)]
    pub statistic: Statistic,
    pub a: String,
    pub b: String,
    /// Architectures drawn, and the seed.
    pub n: usize,
    pub seed: u64,
    /// The architectures both tables cover fully, in draw order.
    pub points: Vec<ScatterPoint>,
    /// Drawn architectures a table lacks a block of (not plotted).
    pub incomplete: Vec<String>,
    /// Rank correlation of the predicted latencies of `points`.
    pub predicted: Correlation,
    /// Rank correlation of the measured end-to-end latencies, over the points measured with
    /// both frameworks (null below 3 such points).
    pub measured: Option<Correlation>,
}

/// The statistic of every architecture's end-to-end samples.
fn measured(
    samples: std::collections::BTreeMap<String, Vec<f64>>,
    statistic: Statistic,
) -> std::collections::BTreeMap<String, f64> {
    samples
        .into_iter()
        .filter_map(|(k, s)| {
            let summary = gpulut_tables::Summary::from_samples(&s).ok()?;
            Some((k, TableEntry::from_summary(&summary).get(statistic)))
        })
        .collect()
}

/// MoGA's Figure 2 for one device: `n` seeded random architectures of the space, their
/// end-to-end latency predicted from framework a's and framework b's tables (and measured end
/// to end, where validation runs of both exist), with Kendall's tau-b and Spearman's rho.
/// A CPU and a GPU framework rank the same networks differently; this shows how much.
#[utoipa::path(get, path = "/v1/devices/{device}/framework-scatter", tag = "tables", security(("bearer" = [])),
    params(("device" = String, Path, description = "device id or unique name"), ScatterQuery),
    responses((status = 200, body = FrameworkScatter),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
pub async fn framework_scatter(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(device): ApiPath<String>,
    ApiQuery(q): ApiQuery<ScatterQuery>,
) -> ApiResult<Json<FrameworkScatter>> {
    let statistic = statistic(q.statistic.as_deref())?;
    let n = q.n.unwrap_or(100);
    if !(2..=MAX_SCATTER).contains(&n) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`n` must be 2 to {MAX_SCATTER}, got {n}"),
        ));
    }
    let seed = q.seed.unwrap_or(0);
    let space = load_space(
        &state,
        q.space
            .as_deref()
            .unwrap_or(gpulut_tables::space::MOGA_MBV3),
    )
    .await?;
    let (d, ta) = load_table(&state, &space, &device, &q.a).await?;
    let (_, tb) = load_table(&state, &space, &device, &q.b).await?;
    let (pa, pb) = (
        GridPredictor::new(&space, &ta, statistic),
        GridPredictor::new(&space, &tb, statistic),
    );
    let (ma, mb) = (
        measured(
            state.db.network_samples(d.id, &q.a, space.name()).await?,
            statistic,
        ),
        measured(
            state.db.network_samples(d.id, &q.b, space.name()).await?,
            statistic,
        ),
    );
    let mut points = Vec::with_capacity(n);
    let mut incomplete = Vec::new();
    for choices in
        gpulut_tables::sample::random_choices(space.layers().len(), space.choices().len(), n, seed)
    {
        let arch: String = choices.iter().map(|c| format!("{c:x}")).collect();
        match (
            pa.predict(&choices, None).total_ms,
            pb.predict(&choices, None).total_ms,
        ) {
            (Some(a_ms), Some(b_ms)) => points.push(ScatterPoint {
                a_measured_ms: ma.get(&arch).copied(),
                b_measured_ms: mb.get(&arch).copied(),
                arch,
                a_ms,
                b_ms,
            }),
            _ => incomplete.push(arch),
        }
    }
    if points.len() < MIN_COMMON {
        return Err(ApiError::unprocessable(
            "too_few_common_blocks",
            format!(
                "the tables of {} / {} and / {} cover only {} of the {n} drawn architectures fully; a scatter needs at least {MIN_COMMON} (measure the missing blocks)",
                d.name,
                q.a,
                q.b,
                points.len()
            ),
        ));
    }
    let xs: Vec<f64> = points.iter().map(|p| p.a_ms).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.b_ms).collect();
    let both: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.a_measured_ms.zip(p.b_measured_ms))
        .collect();
    let measured = (both.len() >= MIN_COMMON).then(|| {
        let (x, y): (Vec<f64>, Vec<f64>) = both.into_iter().unzip();
        rank::correlate(&x, &y).into()
    });
    Ok(Json(FrameworkScatter {
        device: d.id,
        device_name: d.name,
        space: space.name().to_string(),
        statistic,
        a: q.a,
        b: q.b,
        n,
        seed,
        predicted: rank::correlate(&xs, &ys).into(),
        points,
        incomplete,
        measured,
    }))
}
