//! Search spaces: list, get, the distinct blocks of a space, and analysis of architectures
//! (params, MACs, blocks) in any of the accepted forms.

use axum::Json;
use axum::extract::State;
use gpulut_tables::space::{Analysis, SpaceBlock};
use gpulut_tables::{ArchSpec, SearchSpace};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, AuthProblems, JsonBodyProblems, ParamProblems, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// Most architectures one analyze request may carry.
pub const MAX_ARCHS_PER_REQUEST: usize = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceSummary {
    pub name: String,
    pub summary: Option<String>,
    /// Number of searchable layers.
    pub layers: usize,
    /// Choices per layer.
    pub choices: usize,
    /// Number of architectures, as a decimal string (it may exceed 2^53).
    pub size: String,
    /// Distinct blocks: fixed parts plus every choice at every distinct layer shape.
    pub distinct_blocks: usize,
    /// Names accepted wherever an architecture is expected.
    pub references: Vec<String>,
    pub builtin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceDetail {
    #[serde(flatten)]
    pub summary: SpaceSummary,
    /// The space's spec document, as registered.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Reference architectures in hex form (grid networks) or by name (explicit networks).
    pub reference_archs: Vec<ReferenceArch>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferenceArch {
    pub name: String,
    /// Hex form for networks of the grid, the name for explicit-channel networks.
    pub arch: String,
    pub params: u64,
    pub macs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpaceBlocks {
    pub space: String,
    pub count: usize,
    /// Each block: `key`, `input`/`output` shapes (`h`, `w`, `c`), `op` and its sizes,
    /// `params`, `macs`, `part` (stem, choice, head), and for choice blocks the 1-based
    /// `(layer, choice)` pairs in `uses`.
    #[schema(value_type = Vec<Object>)]
    pub blocks: Vec<SpaceBlock>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    /// Only blocks of this part: `stem`, `choice` or `head`.
    pub part: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// Architectures as hex text (`453969358533aa`), JSON (`{"choices": [4, 5, ...]}`), or
    /// reference names (`MoGA-A`, `MobileNetV3-Large`). At most 1000.
    #[schema(value_type = Vec<Value>, example = json!(["MoGA-A", "453969358533aa", {"choices": [0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]))]
    pub archs: Vec<serde_json::Value>,
}

/// The params, MACs and blocks of one architecture.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ArchAnalysis(pub Analysis);

/// A space named in the URL: unknown is a 404.
pub(crate) async fn load_space(state: &AppState, name: &str) -> ApiResult<SearchSpace> {
    stored_space(&state.db, name)
        .await?
        .ok_or_else(|| unknown_space(name))
}

/// A space named in a request body: unknown is a 422 with `code` (the URL is fine, the body
/// is not).
pub(crate) async fn space_in_body(
    db: &Db,
    name: &str,
    code: &'static str,
) -> ApiResult<SearchSpace> {
    stored_space(db, name).await?.ok_or_else(|| {
        ApiError::unprocessable(
            code,
            format!(
                "there is no search space `{}`; GET /v1/spaces lists them",
                name.chars().take(80).collect::<String>()
            ),
        )
    })
}

async fn stored_space(db: &Db, name: &str) -> ApiResult<Option<SearchSpace>> {
    match db.space(name).await? {
        None => Ok(None),
        Some(stored) => stored.parse().map(Some).map_err(|e| {
            ApiError::Internal(format!("stored space {name} no longer validates: {e}"))
        }),
    }
}

fn unknown_space(name: &str) -> ApiError {
    let shown: String = name.chars().take(80).collect();
    ApiError::not_found(
        "unknown_space",
        format!("there is no search space `{shown}`; GET /v1/spaces lists them"),
    )
}

fn summarize(space: &SearchSpace, builtin: bool) -> SpaceSummary {
    SpaceSummary {
        name: space.name().to_string(),
        summary: space.spec().summary.clone(),
        layers: space.layers().len(),
        choices: space.choices().len(),
        size: space
            .size()
            .map_or_else(|| "more than 2^128".to_string(), |n| n.to_string()),
        distinct_blocks: space.distinct_blocks().len(),
        references: space.references().names(),
        builtin,
    }
}

/// Lists the registered search spaces.
#[utoipa::path(get, path = "/v1/spaces", tag = "spaces", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SpaceSummary>),
        AuthProblems))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<SpaceSummary>>> {
    let mut out = Vec::new();
    for stored in state.db.spaces().await? {
        let space = stored.parse().map_err(|e| {
            ApiError::Internal(format!(
                "stored space {} no longer validates: {e}",
                stored.name
            ))
        })?;
        out.push(summarize(&space, stored.builtin));
    }
    Ok(Json(out))
}

/// One space: its summary, spec and reference networks.
#[utoipa::path(get, path = "/v1/spaces/{space}", tag = "spaces", security(("bearer" = [])),
    params(("space" = String, Path, description = "space name, e.g. moga-mbv3")),
    responses(
        (status = 200, body = SpaceDetail),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SpaceDetail>> {
    let stored = state
        .db
        .space(&name)
        .await?
        .ok_or_else(|| unknown_space(&name))?;
    let space = stored
        .parse()
        .map_err(|e| ApiError::Internal(format!("stored space {name} no longer validates: {e}")))?;
    let reference_archs = space
        .references()
        .names()
        .into_iter()
        .filter_map(|n| space.references().get(&space, &n))
        .map(|a| {
            let x = space.analyze(&a);
            ReferenceArch {
                name: a.name().unwrap_or_default().to_string(),
                arch: x.arch,
                params: x.params,
                macs: x.macs,
            }
        })
        .collect();
    Ok(Json(SpaceDetail {
        summary: summarize(&space, stored.builtin),
        spec: stored.spec,
        reference_archs,
    }))
}

/// The distinct blocks of a space: what a profiling campaign measures.
#[utoipa::path(get, path = "/v1/spaces/{space}/blocks", tag = "spaces", security(("bearer" = [])),
    params(("space" = String, Path, description = "space name, e.g. moga-mbv3"), BlocksQuery),
    responses(
        (status = 200, body = SpaceBlocks),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, ParamProblems))]
pub async fn blocks(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<BlocksQuery>,
) -> ApiResult<Json<SpaceBlocks>> {
    let space = load_space(&state, &name).await?;
    let part = match q.part.as_deref() {
        None => None,
        Some(p @ ("stem" | "choice" | "head")) => Some(p.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "`part` must be stem, choice or head, not `{}`",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    let blocks: Vec<SpaceBlock> = space
        .distinct_blocks()
        .into_iter()
        .filter(|b| part.as_deref().is_none_or(|p| b.part.as_str() == p))
        .collect();
    Ok(Json(SpaceBlocks {
        space: space.name().to_string(),
        count: blocks.len(),
        blocks,
    }))
}

/// Turns one element of `archs` into an architecture spec, with an error that says which one.
fn arch_spec(index: usize, value: serde_json::Value) -> ApiResult<ArchSpec> {
    serde_json::from_value(value).map_err(|_| {
        ApiError::unprocessable(
            "invalid_architecture",
            format!(
                "archs[{index}]: expected a hex string, a reference name, or {{\"space\": ..., \"choices\": [...]}}"
            ),
        )
    })
}

/// Params, MACs and blocks of architectures. Answers one object per architecture, in order.
#[utoipa::path(post, path = "/v1/spaces/{space}/analyze", tag = "spaces", security(("bearer" = [])),
    params(("space" = String, Path, description = "space name, e.g. moga-mbv3")),
    request_body = AnalyzeRequest,
    responses(
        (status = 200, description = "one object per architecture with `arch`, `name` (references), `choices` (grid), `params`, `macs` and `blocks`", body = Vec<ArchAnalysis>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        AuthProblems, JsonBodyProblems))]
pub async fn analyze(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<AnalyzeRequest>,
) -> ApiResult<Json<Vec<ArchAnalysis>>> {
    let space = load_space(&state, &name).await?;
    if req.archs.is_empty() {
        return Err(ApiError::unprocessable("invalid_body", "`archs` is empty"));
    }
    if req.archs.len() > MAX_ARCHS_PER_REQUEST {
        return Err(ApiError::unprocessable(
            "too_many_architectures",
            format!(
                "{} architectures given; at most {MAX_ARCHS_PER_REQUEST} per request",
                req.archs.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(req.archs.len());
    for (i, value) in req.archs.into_iter().enumerate() {
        let arch = space.resolve(&arch_spec(i, value)?).map_err(|e| {
            ApiError::unprocessable("invalid_architecture", format!("archs[{i}]: {e}"))
        })?;
        out.push(ArchAnalysis(space.analyze(&arch)));
    }
    Ok(Json(out))
}
