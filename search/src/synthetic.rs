//! The shared benchmark's synthetic MoGA-style problem (`../shared/bench/nsga/synth.py`),
//! reproduced bit for bit.
//!
//! It lets this engine and pymoo be compared on identical work in the same run: 20 layers × 12
//! choices shaped like MobileNetV3 blocks (kernel 3/5/7, expansion 3/6, SE off/on), with
//! latency and params tables and an accuracy model with a layer-interaction penalty. Every
//! formula below is evaluated in the same order as in `synth.py` (Rust does not contract or
//! reorder float operations), so objectives agree to the last bit.

use crate::rng::SplitMix64;
use crate::{Bounds, Objectives, ProblemSize, SearchError};

/// Layers of the synthetic problem.
pub const LAYERS: usize = 20;
/// Choices per layer.
pub const CHOICES: usize = 12;
/// splitmix64 seed of the tables.
pub const SEED: u64 = 20190804;

const LB: [f64; 5] = [1.6, 1.2, 0.9, 0.8, 0.7];
const PB: [f64; 5] = [0.02, 0.05, 0.15, 0.30, 0.55];
const GB: [f64; 5] = [0.30, 0.25, 0.22, 0.20, 0.18];

/// (kernel, expansion, SE) indices of a choice: `c % 3`, `(c / 3) % 2`, `c / 6`.
fn decode(c: usize) -> (f64, f64, f64) {
    ((c % 3) as f64, ((c / 3) % 2) as f64, (c / 6) as f64)
}

/// The tables and normalisation constants of the synthetic problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    lat: [[f64; CHOICES]; LAYERS],
    par: [[f64; CHOICES]; LAYERS],
    gain: [[f64; CHOICES]; LAYERS],
    /// Sum over layers of the per-layer minimum latency.
    pub lat_min: f64,
    /// Sum over layers of the per-layer maximum latency.
    pub lat_max: f64,
    /// Sum over layers of the per-layer minimum params.
    pub par_min: f64,
    /// Sum over layers of the per-layer maximum params.
    pub par_max: f64,
    /// Sum over layers of the per-layer minimum gain.
    pub gain_min: f64,
    /// Sum over layers of the per-layer maximum gain.
    pub gain_max: f64,
    /// Accuracy lower bound (worst gain, worst interaction penalty).
    pub acc_lo: f64,
    /// Accuracy upper bound (best gain, no penalty).
    pub acc_hi: f64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self::new()
    }
}

fn seqsum(v: impl Iterator<Item = f64>) -> f64 {
    let mut t = 0.0;
    for x in v {
        t += x;
    }
    t
}

fn row_min(row: &[f64; CHOICES]) -> f64 {
    row.iter().copied().fold(f64::INFINITY, f64::min)
}

fn row_max(row: &[f64; CHOICES]) -> f64 {
    row.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

impl Synthetic {
    /// Builds the tables from the fixed seed.
    pub fn new() -> Self {
        let mut rng = SplitMix64::new(SEED);
        let mut draw = || {
            let mut t = [[0.0; CHOICES]; LAYERS];
            for row in &mut t {
                for u in row.iter_mut() {
                    *u = rng.next_f64();
                }
            }
            t
        };
        let (ul, up, ua) = (draw(), draw(), draw());
        let mut lat = [[0.0; CHOICES]; LAYERS];
        let mut par = [[0.0; CHOICES]; LAYERS];
        let mut gain = [[0.0; CHOICES]; LAYERS];
        for l in 0..LAYERS {
            let st = l / 4;
            for c in 0..CHOICES {
                let (k, e, s) = decode(c);
                lat[l][c] = LB[st]
                    * (1.0 + 0.35 * k)
                    * (1.0 + 0.9 * e)
                    * (1.0 + 0.12 * s)
                    * (0.85 + 0.30 * ul[l][c]);
                par[l][c] = PB[st]
                    * (1.0 + 0.08 * k)
                    * (1.0 + 1.0 * e)
                    * (1.0 + 0.25 * s)
                    * (0.90 + 0.20 * up[l][c]);
                gain[l][c] =
                    GB[st] * (1.0 + 0.45 * k + 0.70 * e + 0.30 * s) * (0.70 + 0.60 * ua[l][c]);
            }
        }
        let lat_min = seqsum(lat.iter().map(row_min));
        let lat_max = seqsum(lat.iter().map(row_max));
        let par_min = seqsum(par.iter().map(row_min));
        let par_max = seqsum(par.iter().map(row_max));
        let gain_min = seqsum(gain.iter().map(row_min));
        let gain_max = seqsum(gain.iter().map(row_max));
        let acc_hi = 62.0 + 25.0 * gain_max / (gain_max + 12.0);
        let acc_lo = 62.0 + 25.0 * gain_min / (gain_min + 12.0) - 19.0 * (0.03 * 4.0 + 0.05);
        Self {
            lat,
            par,
            gain,
            lat_min,
            lat_max,
            par_min,
            par_max,
            gain_min,
            gain_max,
            acc_lo,
            acc_hi,
        }
    }

    /// The problem's shape (20 layers × 12 choices).
    pub fn problem_size() -> ProblemSize {
        ProblemSize {
            choices: vec![CHOICES as u16; LAYERS],
        }
    }

    /// Latency table, `[layer][choice]`.
    pub fn latency_table(&self) -> &[[f64; CHOICES]; LAYERS] {
        &self.lat
    }

    /// Params table, `[layer][choice]`.
    pub fn params_table(&self) -> &[[f64; CHOICES]; LAYERS] {
        &self.par
    }

    /// Accuracy gain table, `[layer][choice]`.
    pub fn gain_table(&self) -> &[[f64; CHOICES]; LAYERS] {
        &self.gain
    }

    /// Latency of a genome alone: the sum of 20 table lookups, as a latency table predicts.
    pub fn latency(&self, genome: &[u8]) -> Result<f64, SearchError> {
        let genome = check(genome)?;
        let mut lat = 0.0;
        for (row, &c) in self.lat.iter().zip(genome) {
            lat += row[usize::from(c)];
        }
        Ok(lat)
    }

    /// Raw objectives (accuracy, latency, params) of a genome, as `synth.evaluate_raw`.
    pub fn evaluate(&self, genome: &[u8]) -> Result<Objectives, SearchError> {
        let genome = check(genome)?;
        let (mut lat, mut par, mut g) = (0.0, 0.0, 0.0);
        for (l, &c) in genome.iter().enumerate() {
            let c = usize::from(c);
            lat += self.lat[l][c];
            par += self.par[l][c];
            g += self.gain[l][c];
        }
        let mut penalty = 0.0;
        for w in genome.windows(2) {
            let (k0, e0, _) = decode(usize::from(w[0]));
            let (k1, e1, _) = decode(usize::from(w[1]));
            let dk = k0 - k1;
            let de = e0 - e1;
            penalty += 0.03 * dk * dk + 0.05 * de * de;
        }
        let accuracy = 62.0 + 25.0 * g / (g + 12.0) - penalty;
        Ok(Objectives::new(accuracy, lat, par))
    }

    /// Ideal and nadir for [`Bounds::normalise`], which then computes exactly `synth.normalise`.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            ideal: [self.acc_hi, self.lat_min, self.par_max],
            nadir: [self.acc_lo, self.lat_max, self.par_min],
        }
    }

    /// Normalised minimisation objectives (f1, f2, f3) as `synth.normalise`.
    pub fn normalise(&self, o: &Objectives) -> [f64; 3] {
        self.bounds().normalise(o)
    }
}

fn check(genome: &[u8]) -> Result<&[u8; LAYERS], SearchError> {
    let g: &[u8; LAYERS] = genome.try_into().map_err(|_| {
        SearchError::InvalidGenome(format!(
            "{} layers, the synthetic problem has {LAYERS}",
            genome.len()
        ))
    })?;
    if let Some(l) = g.iter().position(|&c| usize::from(c) >= CHOICES) {
        return Err(SearchError::InvalidGenome(format!(
            "layer {l} has choice {}, the synthetic problem has {CHOICES}",
            g[l]
        )));
    }
    Ok(g)
}
