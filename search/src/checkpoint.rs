//! Checkpoints: an engine's whole state, serialisable, so a search whose worker died continues
//! elsewhere with bit-identical results.
//!
//! The serialised form writes every float as the shortest decimal string that round-trips
//! (`"0.1"`, `"inf"`), not as a JSON number: JSON has no infinity (crowding distances are often
//! infinite), and some JSON parsers round long decimals off by one ulp, which would be enough to
//! change a later tournament. Genomes are hex strings (two digits per layer) and the generator
//! state four 16-digit hex words, which keeps checkpoints of large populations compact.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{Config, GenerationStats, Member};
use crate::{Bounds, Constraints, Genome, Objectives, ProblemSize, SearchError, Weights};

/// Version of the serialised layout; bumped when it changes incompatibly.
const FORMAT: u32 = 1;

/// A search's complete state between two engine calls.
///
/// Opaque on purpose: build it with [`crate::Engine::checkpoint`], store it with serde, and
/// continue with [`crate::Engine::resume`]. Deserialising validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "CheckpointRecord", try_from = "CheckpointRecord")]
pub struct Checkpoint {
    pub(crate) problem: ProblemSize,
    pub(crate) config: Config,
    pub(crate) generation: u32,
    pub(crate) population: Vec<Member>,
    pub(crate) pending: Option<Vec<Genome>>,
    pub(crate) rng: [u64; 4],
    pub(crate) history: Vec<GenerationStats>,
}

impl Checkpoint {
    /// Completed generations at the time of the checkpoint.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The search's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The problem's shape.
    pub fn problem(&self) -> &ProblemSize {
        &self.problem
    }

    /// The population at the time of the checkpoint.
    pub fn population(&self) -> &[Member] {
        &self.population
    }

    /// Statistics of every completed generation.
    pub fn history(&self) -> &[GenerationStats] {
        &self.history
    }

    /// Checks that the state is one an engine could have reached, so resuming cannot fail later
    /// (or panic) on a hand-edited or corrupted checkpoint.
    pub(crate) fn validate(&self) -> Result<(), SearchError> {
        let bad = |m: String| Err(SearchError::InvalidCheckpoint(m));
        self.config.validate()?;
        if self.generation > self.config.generations {
            return bad(format!(
                "generation {} is past the configured {}",
                self.generation, self.config.generations
            ));
        }
        if self.history.len() != self.generation as usize {
            return bad(format!(
                "{} history entries for generation {}",
                self.history.len(),
                self.generation
            ));
        }
        if (self.generation == 0) != self.population.is_empty() {
            return bad(format!(
                "generation {} with {} members",
                self.generation,
                self.population.len()
            ));
        }
        if self.population.len() > self.config.population {
            return bad(format!(
                "{} members for a population of {}",
                self.population.len(),
                self.config.population
            ));
        }
        let needs_macs = self.config.constraints.max_macs.is_some();
        for (i, m) in self.population.iter().enumerate() {
            self.problem
                .check(&m.genome)
                .map_err(|e| SearchError::InvalidCheckpoint(format!("member {i}: {e}")))?;
            m.objectives
                .check(needs_macs)
                .map_err(|e| SearchError::InvalidCheckpoint(format!("member {i}: {e}")))?;
            if m.crowding.is_nan() || m.crowding < 0.0 {
                return bad(format!("member {i} has crowding {}", m.crowding));
            }
        }
        if let Some(batch) = &self.pending {
            if self.generation >= self.config.generations {
                return bad("a pending batch after the last generation".into());
            }
            for (i, g) in batch.iter().enumerate() {
                self.problem.check(g).map_err(|e| {
                    SearchError::InvalidCheckpoint(format!("pending genome {i}: {e}"))
                })?;
            }
        }
        if self.rng == [0; 4] {
            return bad("the random generator state is all zero".into());
        }
        Ok(())
    }
}

/// A float written as the shortest decimal that parses back to the same bits.
#[derive(Debug, Clone, Copy)]
struct Exact(f64);

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `{:?}` is Rust's shortest round-trip form, with `inf`/`NaN` and exponents for extremes.
        s.collect_str(&format_args!("{:?}", self.0))
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Exact;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a float as a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Exact, E> {
                v.parse::<f64>()
                    .map(Exact)
                    .map_err(|_| E::custom(format!("not a float: {v:?}")))
            }
            // Plain numbers are accepted too, for hand-written checkpoints.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Exact, E> {
                Ok(Exact(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &str) -> Result<Genome, SearchError> {
    let bad = || SearchError::InvalidCheckpoint(format!("genome {s:?} is not hex bytes"));
    if s.len() % 2 != 0 || !s.is_ascii() {
        return Err(bad());
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct CheckpointRecord {
    format: u32,
    problem: ProblemSize,
    config: ConfigRecord,
    generation: u32,
    rng: [String; 4],
    population: Vec<MemberRecord>,
    #[serde(default)]
    pending: Option<Vec<String>>,
    history: Vec<StatsRecord>,
}

#[derive(Serialize, Deserialize)]
struct ConfigRecord {
    population: usize,
    offspring: Option<usize>,
    generations: u32,
    crossover_prob: Exact,
    mutation_prob: Option<Exact>,
    seed: u64,
    weights: [Exact; 3],
    max_latency: Option<Exact>,
    max_params: Option<Exact>,
    max_macs: Option<Exact>,
    bounds: Option<[[Exact; 3]; 2]>,
}

#[derive(Serialize, Deserialize)]
struct MemberRecord {
    genome: String,
    accuracy: Exact,
    latency: Exact,
    params: Exact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    macs: Option<Exact>,
    rank: u32,
    crowding: Exact,
}

#[derive(Serialize, Deserialize)]
struct StatsRecord {
    generation: u32,
    evaluated: usize,
    front_size: usize,
    feasible: usize,
    hypervolume: Exact,
    best_accuracy: Option<Exact>,
    best_latency: Option<Exact>,
    best_params: Option<Exact>,
}

fn exact3(v: [f64; 3]) -> [Exact; 3] {
    v.map(Exact)
}

fn plain3(v: [Exact; 3]) -> [f64; 3] {
    v.map(|e| e.0)
}

impl From<Checkpoint> for CheckpointRecord {
    fn from(c: Checkpoint) -> Self {
        let cfg = &c.config;
        CheckpointRecord {
            format: FORMAT,
            config: ConfigRecord {
                population: cfg.population,
                offspring: cfg.offspring,
                generations: cfg.generations,
                crossover_prob: Exact(cfg.crossover_prob),
                mutation_prob: cfg.mutation_prob.map(Exact),
                seed: cfg.seed,
                weights: exact3([
                    cfg.weights.accuracy,
                    cfg.weights.latency,
                    cfg.weights.params,
                ]),
                max_latency: cfg.constraints.max_latency.map(Exact),
                max_params: cfg.constraints.max_params.map(Exact),
                max_macs: cfg.constraints.max_macs.map(Exact),
                bounds: cfg.bounds.map(|b| [exact3(b.ideal), exact3(b.nadir)]),
            },
            problem: c.problem,
            generation: c.generation,
            rng: c.rng.map(|w| format!("{w:016x}")),
            population: c
                .population
                .iter()
                .map(|m| MemberRecord {
                    genome: hex(&m.genome),
                    accuracy: Exact(m.objectives.accuracy),
                    latency: Exact(m.objectives.latency),
                    params: Exact(m.objectives.params),
                    macs: m.objectives.macs.map(Exact),
                    rank: m.rank,
                    crowding: Exact(m.crowding),
                })
                .collect(),
            pending: c.pending.map(|b| b.iter().map(|g| hex(g)).collect()),
            history: c
                .history
                .iter()
                .map(|h| StatsRecord {
                    generation: h.generation,
                    evaluated: h.evaluated,
                    front_size: h.front_size,
                    feasible: h.feasible,
                    hypervolume: Exact(h.hypervolume),
                    best_accuracy: h.best_accuracy.map(Exact),
                    best_latency: h.best_latency.map(Exact),
                    best_params: h.best_params.map(Exact),
                })
                .collect(),
        }
    }
}

impl TryFrom<CheckpointRecord> for Checkpoint {
    type Error = SearchError;

    fn try_from(r: CheckpointRecord) -> Result<Self, SearchError> {
        if r.format != FORMAT {
            return Err(SearchError::InvalidCheckpoint(format!(
                "format {} is not the supported {FORMAT}",
                r.format
            )));
        }
        let c = r.config;
        let [wa, wl, wp] = plain3(c.weights);
        let config = Config {
            population: c.population,
            offspring: c.offspring,
            generations: c.generations,
            crossover_prob: c.crossover_prob.0,
            mutation_prob: c.mutation_prob.map(|e| e.0),
            seed: c.seed,
            weights: Weights {
                accuracy: wa,
                latency: wl,
                params: wp,
            },
            constraints: Constraints {
                max_latency: c.max_latency.map(|e| e.0),
                max_params: c.max_params.map(|e| e.0),
                max_macs: c.max_macs.map(|e| e.0),
            },
            bounds: c.bounds.map(|[ideal, nadir]| Bounds {
                ideal: plain3(ideal),
                nadir: plain3(nadir),
            }),
        };
        let mut rng = [0u64; 4];
        for (w, s) in rng.iter_mut().zip(&r.rng) {
            *w = u64::from_str_radix(s, 16).map_err(|_| {
                SearchError::InvalidCheckpoint(format!("generator word {s:?} is not hex"))
            })?;
        }
        let population = r
            .population
            .into_iter()
            .map(|m| {
                Ok(Member {
                    genome: unhex(&m.genome)?,
                    objectives: Objectives {
                        accuracy: m.accuracy.0,
                        latency: m.latency.0,
                        params: m.params.0,
                        macs: m.macs.map(|e| e.0),
                    },
                    rank: m.rank,
                    crowding: m.crowding.0,
                    violation: config.constraints.violation(&Objectives {
                        accuracy: m.accuracy.0,
                        latency: m.latency.0,
                        params: m.params.0,
                        macs: m.macs.map(|e| e.0),
                    }),
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        let pending = r
            .pending
            .map(|b| b.iter().map(|g| unhex(g)).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let history = r
            .history
            .into_iter()
            .map(|h| GenerationStats {
                generation: h.generation,
                evaluated: h.evaluated,
                front_size: h.front_size,
                feasible: h.feasible,
                hypervolume: h.hypervolume.0,
                best_accuracy: h.best_accuracy.map(|e| e.0),
                best_latency: h.best_latency.map(|e| e.0),
                best_params: h.best_params.map(|e| e.0),
            })
            .collect();
        let checkpoint = Checkpoint {
            problem: r.problem,
            config,
            generation: r.generation,
            population,
            pending,
            rng,
            history,
        };
        checkpoint.validate()?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let g = vec![0u8, 11, 255, 16];
        assert_eq!(hex(&g), "000bff10");
        assert_eq!(unhex("000bff10").unwrap(), g);
        assert!(unhex("0").is_err());
        assert!(unhex("zz").is_err());
        assert!(unhex("é0").is_err());
    }
}
