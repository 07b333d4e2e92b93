//! Searches: the request users send, its validation into a runnable plan, and the bundled
//! worker that runs plans with the `gpulut-search` engine.

pub mod http_eval;
pub mod worker;

use gpulut_search::evaluator::{AccuracyEvaluator, EvalError, ProxyAccuracy, SampledAccuracy};
use gpulut_search::surrogate::Surrogate;
use gpulut_search::{Bounds, Config, Constraints, Genome, Objectives, Weights};
use gpulut_tables::{LayerCosts, SearchSpace, Statistic};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::routes::spaces::space_in_body;
use http_eval::HttpEvaluator;

/// Largest population a request may ask for.
pub const MAX_POPULATION: usize = 5_000;
/// Most generations a request may ask for.
pub const MAX_GENERATIONS: u32 = 5_000;
/// Most evaluations (population x generations) one search may cost.
pub const MAX_EVALUATIONS: u64 = 5_000_000;
/// Most latency tables one search may combine.
pub const MAX_TABLES: usize = 32;

/// `POST /v1/searches`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The search space, e.g. `moga-mbv3`.
    pub space: String,
    /// Latency tables the latency objective reads: one device, or a fleet.
    pub tables: Vec<TableRef>,
    pub accuracy: AccuracySpec,
    /// Crowding weights, default 2:2:1 (accuracy : latency : params).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsSpec>,
    /// Members kept each generation (4 to 5000).
    pub population: usize,
    /// Generations, the initial population's included (1 to 5000).
    pub generations: u32,
    /// Seed: the same request and seed give the same front.
    #[serde(default)]
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<ConstraintsSpec>,
    #[serde(default)]
    pub latency: LatencySpec,
}

/// One latency table: a device (its id, or its name when unique) and a framework.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub device: String,
    pub framework: String,
}

/// Where accuracy comes from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AccuracySpec {
    /// A built-in prior from the architecture alone (MACs, params, SE): for demos; every result
    /// is labelled as a proxy.
    Proxy,
    /// The user's own evaluator: batches are POSTed as `{"space", "archs": [{"arch", "choices"}]}`
    /// and it answers `{"accuracy": [...]}` in the same order.
    Http {
        url: String,
        /// Per-request timeout in seconds (default 30).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
        /// Architectures per request (default 256).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<usize>,
        /// Retries after a failed request, with backoff (default 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
    },
    /// A surrogate fitted to uploaded (architecture, top-1) samples.
    Samples { sample_set: Uuid },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsSpec {
    pub accuracy: f64,
    pub latency: f64,
    pub params: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConstraintsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_params: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<f64>,
}

/// How several tables combine into one latency, and which statistic of an entry is summed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    #[serde(default)]
    pub combine: Combine,
    #[serde(default)]
    #[schema(value_type = String, example = "median")]
    pub statistic: Statistic,
}

/// Fleet latency: the worst phone (`max`) or the average (`mean`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    #[default]
    Max,
    Mean,
}

/// The accuracy source of a running search. An enum rather than a trait object: the trait's
/// methods are async.
pub enum Accuracy {
    Proxy(ProxyAccuracy),
    Samples(SampledAccuracy),
    Http(HttpEvaluator),
}

impl Accuracy {
    pub async fn evaluate(&self, batch: &[Genome]) -> Result<Vec<f64>, EvalError> {
        match self {
            Self::Proxy(e) => e.evaluate(batch).await,
            Self::Samples(e) => e.evaluate(batch).await,
            Self::Http(e) => e.evaluate(batch).await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Proxy(e) => e.kind(),
            Self::Samples(e) => e.kind(),
            Self::Http(e) => e.kind(),
        }
    }

    pub fn bounds(&self) -> Option<(f64, f64)> {
        match self {
            Self::Proxy(e) => e.bounds(),
            Self::Samples(e) => e.bounds(),
            Self::Http(e) => e.bounds(),
        }
    }
}

/// One resolved latency table.
pub struct TableCosts {
    pub device: Uuid,
    pub device_name: String,
    pub framework: String,
    pub latency: LayerCosts,
}

/// A validated request with everything loaded: what the worker runs, and what creation checks.
pub struct SearchPlan {
    pub space: SearchSpace,
    pub tables: Vec<TableCosts>,
    pub params: LayerCosts,
    pub macs: LayerCosts,
    pub combine: Combine,
    pub accuracy: Accuracy,
    pub config: Config,
    /// The request as stored: device references replaced by device ids.
    pub normalized: SearchRequest,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_search", detail)
}

impl SearchPlan {
    /// Checks a request against the database and builds the plan; every refusal is a 4xx with
    /// the reason (a search whose tables miss blocks lists the missing keys).
    pub async fn load(db: &Db, req: &SearchRequest) -> ApiResult<SearchPlan> {
        if req.population < 4 || req.population > MAX_POPULATION {
            return Err(invalid(format!(
                "population must be 4 to {MAX_POPULATION}, got {}",
                req.population
            )));
        }
        if req.generations < 1 || req.generations > MAX_GENERATIONS {
            return Err(invalid(format!(
                "generations must be 1 to {MAX_GENERATIONS}, got {}",
                req.generations
            )));
        }
        let evaluations = req.population as u64 * u64::from(req.generations);
        if evaluations > MAX_EVALUATIONS {
            return Err(invalid(format!(
                "population x generations = {evaluations} evaluations; at most {MAX_EVALUATIONS}"
            )));
        }
        if req.tables.is_empty() || req.tables.len() > MAX_TABLES {
            return Err(invalid(format!(
                "`tables` must name 1 to {MAX_TABLES} latency tables, got {}",
                req.tables.len()
            )));
        }
        let space = space_in_body(db, &req.space, "invalid_search").await?;

        let mut tables = Vec::with_capacity(req.tables.len());
        let mut normalized_tables = Vec::with_capacity(req.tables.len());
        for (i, t) in req.tables.iter().enumerate() {
            let device = db.find_device(&t.device).await?.ok_or_else(|| {
                invalid(format!(
                    "tables[{i}]: there is no device `{}` (use an id from GET /v1/devices)",
                    t.device.chars().take(80).collect::<String>()
                ))
            })?;
            if !db.framework_exists(&t.framework).await? {
                return Err(invalid(format!(
                    "tables[{i}]: there is no framework `{}`",
                    t.framework.chars().take(80).collect::<String>()
                )));
            }
            let table = db.latency_table(device.id, &t.framework).await?;
            let latency = LayerCosts::latency(&space, &table, req.latency.statistic).map_err(|missing| {
                let shown: Vec<&str> = missing.iter().take(10).map(|k| k.as_str()).collect();
                invalid(format!(
                    "tables[{i}] (device {}, framework {}) lacks {} of the {} blocks of space {}: {}{}",
                    device.name,
                    t.framework,
                    missing.len(),
                    space.distinct_blocks().len(),
                    space.name(),
                    shown.join(", "),
                    if missing.len() > shown.len() { ", ..." } else { "" }
                ))
            })?;
            normalized_tables.push(TableRef {
                device: device.id.to_string(),
                framework: t.framework.clone(),
            });
            tables.push(TableCosts {
                device: device.id,
                device_name: device.name,
                framework: t.framework.clone(),
                latency,
            });
        }

        let accuracy = match &req.accuracy {
            AccuracySpec::Proxy => Accuracy::Proxy(ProxyAccuracy::new(&space)),
            AccuracySpec::Http {
                url,
                timeout_s,
                batch_size,
                retries,
            } => Accuracy::Http(
                HttpEvaluator::new(space.name(), url, *timeout_s, *batch_size, *retries)
                    .map_err(invalid)?,
            ),
            AccuracySpec::Samples { sample_set } => {
                let set = db.accuracy_sample_set(*sample_set).await?.ok_or_else(|| {
                    invalid(format!("there is no accuracy sample set {sample_set}"))
                })?;
                if set.space != space.name() {
                    return Err(invalid(format!(
                        "accuracy sample set {sample_set} is of space {}, not {}",
                        set.space,
                        space.name()
                    )));
                }
                let surrogate: Surrogate = serde_json::from_value(set.surrogate).map_err(|e| {
                    ApiError::Internal(format!("stored surrogate {sample_set} does not parse: {e}"))
                })?;
                Accuracy::Samples(SampledAccuracy { surrogate })
            }
        };

        let params = LayerCosts::params(&space);
        let macs = LayerCosts::macs(&space);
        let weights = req.weights.map_or_else(Weights::default, |w| Weights {
            accuracy: w.accuracy,
            latency: w.latency,
            params: w.params,
        });
        let c = req.constraints.unwrap_or_default();
        let mut config = Config::new(req.population, req.generations, req.seed);
        config.weights = weights;
        config.constraints = Constraints {
            max_latency: c.max_latency_ms,
            max_params: c.max_params,
            max_macs: c.max_macs,
        };
        // Fixed normalisation, so the hypervolume history is a progress curve.
        let lat_lo = tables
            .iter()
            .map(|t| t.latency.min())
            .fold(f64::INFINITY, f64::min);
        let lat_hi = tables
            .iter()
            .map(|t| t.latency.max())
            .fold(f64::NEG_INFINITY, f64::max);
        let (acc_lo, acc_hi) = accuracy.bounds().unwrap_or((0.0, 100.0));
        let bounds = Bounds {
            ideal: [acc_hi, lat_lo, params.max()],
            nadir: [acc_lo, lat_hi, params.min()],
        };
        config.bounds = bounds.validate().is_ok().then_some(bounds);
        config.validate().map_err(|e| invalid(e.to_string()))?;

        let mut normalized = req.clone();
        normalized.tables = normalized_tables;
        Ok(SearchPlan {
            space,
            tables,
            params,
            macs,
            combine: req.latency.combine,
            accuracy,
            config,
            normalized,
        })
    }

    /// Fleet latency of one architecture: the combination of its per-table latencies.
    pub fn latency(&self, genome: &[u8]) -> f64 {
        let per_table = self.tables.iter().map(|t| t.latency.eval(genome));
        match self.combine {
            Combine::Max => per_table.fold(f64::NEG_INFINITY, f64::max),
            Combine::Mean => per_table.sum::<f64>() / self.tables.len() as f64,
        }
    }

    /// All objectives of a batch, accuracy from the plan's source.
    pub async fn evaluate(&self, batch: &[Genome]) -> Result<Vec<Objectives>, EvalError> {
        let accuracy = self.accuracy.evaluate(batch).await?;
        if accuracy.len() != batch.len() {
            return Err(EvalError::InvalidAnswer(format!(
                "{} accuracies for {} architectures",
                accuracy.len(),
                batch.len()
            )));
        }
        Ok(batch
            .iter()
            .zip(accuracy)
            .map(|(g, acc)| {
                Objectives::new(acc, self.latency(g), self.params.eval(g))
                    .with_macs(self.macs.eval(g))
            })
            .collect())
    }
}
