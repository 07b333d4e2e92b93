//! The `samples` accuracy source: a ridge regression on per-layer one-hot features, fitted to
//! (architecture, top-1) pairs the user measured on their own supernet. One-hot features make the
//! model additive over layers, which is what one-shot supernets' accuracy mostly is, and keep the
//! fit tiny (layers x choices weights) and exact (a Cholesky solve).
//!
//! The reported quality is out-of-sample: k-fold cross-validated RMSE and Kendall tau, because a
//! search only needs the *ranking* of architectures to be right.

use serde::{Deserialize, Serialize};

use crate::Genome;
use crate::rng::Rng;

/// Ridge penalties tried by cross-validation.
const LAMBDAS: [f64; 6] = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0];
/// Folds of the cross-validation.
const FOLDS: usize = 5;
/// Fewest samples a fit accepts: below this, cross-validation says nothing.
pub const MIN_SAMPLES: usize = 10;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SurrogateError {
    #[error("need at least {MIN_SAMPLES} samples to fit and cross-validate, got {0}")]
    TooFewSamples(usize),
    #[error("sample {index}: {reason}")]
    BadSample { index: usize, reason: String },
    #[error("all samples have the same accuracy: nothing to learn from")]
    Constant,
}

/// A fitted additive model: `intercept + sum_l weight[l][choice_l]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Surrogate {
    pub layers: usize,
    pub choices: usize,
    pub intercept: f64,
    /// Row-major `weights[layer * choices + choice]`.
    pub weights: Vec<f64>,
    pub lambda: f64,
}

/// How well the surrogate predicts architectures it was not fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub samples: usize,
    pub folds: usize,
    pub lambda: f64,
    /// Cross-validated root mean square error, in the samples' unit.
    pub cv_rmse: f64,
    /// Cross-validated Kendall tau-b between predicted and measured accuracy.
    pub cv_kendall_tau: f64,
    /// RMSE on the training samples with the chosen lambda.
    pub train_rmse: f64,
}

impl Surrogate {
    /// Fits to `samples` of a space with `layers` layers and `choices` choices per layer,
    /// choosing the ridge penalty by cross-validation. Deterministic for the same input.
    pub fn fit(
        layers: usize,
        choices: usize,
        samples: &[(Genome, f64)],
    ) -> Result<(Surrogate, FitReport), SurrogateError> {
        if samples.len() < MIN_SAMPLES {
            return Err(SurrogateError::TooFewSamples(samples.len()));
        }
        for (index, (g, y)) in samples.iter().enumerate() {
            let bad = |reason: String| SurrogateError::BadSample { index, reason };
            if g.len() != layers {
                return Err(bad(format!("{} layers, the space has {layers}", g.len())));
            }
            if let Some(c) = g.iter().find(|&&c| usize::from(c) >= choices) {
                return Err(bad(format!("choice {c} out of range 0..{choices}")));
            }
            if !y.is_finite() {
                return Err(bad(format!("accuracy {y} is not finite")));
            }
        }
        let first = samples[0].1;
        if samples.iter().all(|(_, y)| *y == first) {
            return Err(SurrogateError::Constant);
        }
        // Deterministic fold assignment from a fixed seed.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut rng = Rng::seed_from_u64(0x5eed_f01d);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.index(i + 1));
        }
        let mut fold_of = vec![0; samples.len()];
        for (pos, &i) in order.iter().enumerate() {
            fold_of[i] = pos % FOLDS;
        }
        let mut best: Option<(f64, f64, Vec<f64>)> = None; // (rmse, lambda, predictions)
        for &lambda in &LAMBDAS {
            let mut predictions = vec![0.0; samples.len()];
            for fold in 0..FOLDS {
                let train: Vec<&(Genome, f64)> = samples
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| fold_of[*i] != fold)
                    .map(|(_, s)| s)
                    .collect();
                let model = Self::solve(layers, choices, &train, lambda);
                for (i, (g, _)) in samples.iter().enumerate() {
                    if fold_of[i] == fold {
                        predictions[i] = model.predict(g);
                    }
                }
            }
            let rmse = rmse(samples.iter().map(|s| s.1).zip(predictions.iter().copied()));
            if best.as_ref().is_none_or(|(b, _, _)| rmse < *b) {
                best = Some((rmse, lambda, predictions));
            }
        }
        let (cv_rmse, lambda, predictions) = best.expect("LAMBDAS is not empty");
        let all: Vec<&(Genome, f64)> = samples.iter().collect();
        let model = Self::solve(layers, choices, &all, lambda);
        let measured: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let report = FitReport {
            samples: samples.len(),
            folds: FOLDS,
            lambda,
            cv_rmse,
            cv_kendall_tau: kendall_tau_b(&measured, &predictions),
            train_rmse: rmse(samples.iter().map(|(g, y)| (*y, model.predict(g)))),
        };
        Ok((model, report))
    }

    /// Ridge solution on centred targets: (XᵀX + λI) w = Xᵀ(y - ȳ), intercept ȳ.
    fn solve(layers: usize, choices: usize, train: &[&(Genome, f64)], lambda: f64) -> Surrogate {
        let n = layers * choices;
        let mean = train.iter().map(|s| s.1).sum::<f64>() / train.len() as f64;
        let mut a = vec![0.0; n * n];
        let mut b = vec![0.0; n];
        let mut active = Vec::with_capacity(layers);
        for (g, y) in train {
            active.clear();
            active.extend(
                g.iter()
                    .enumerate()
                    .map(|(l, &c)| l * choices + usize::from(c)),
            );
            for &i in &active {
                b[i] += y - mean;
                for &j in &active {
                    a[i * n + j] += 1.0;
                }
            }
        }
        for i in 0..n {
            a[i * n + i] += lambda;
        }
        let weights = cholesky_solve(&mut a, b, n);
        Surrogate {
            layers,
            choices,
            intercept: mean,
            weights,
            lambda,
        }
    }

    /// Predicted accuracy of an architecture of the fitted space.
    pub fn predict(&self, genome: &[u8]) -> f64 {
        let mut total = self.intercept;
        for (l, &c) in genome.iter().enumerate() {
            total += self.weights[l * self.choices + usize::from(c)];
        }
        total
    }

    /// The lowest and highest prediction over the whole space (exact: the model is additive).
    pub fn bounds(&self) -> (f64, f64) {
        let mut lo = self.intercept;
        let mut hi = self.intercept;
        for layer in self.weights.chunks(self.choices) {
            lo += layer.iter().copied().fold(f64::INFINITY, f64::min);
            hi += layer.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
        (lo, hi)
    }
}

fn rmse(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (a, b) in pairs {
        sum += (a - b) * (a - b);
        n += 1;
    }
    (sum / n.max(1) as f64).sqrt()
}

/// Solves A x = b for symmetric positive definite A (n x n, row-major), in place.
fn cholesky_solve(a: &mut [f64], mut b: Vec<f64>, n: usize) -> Vec<f64> {
    // A = L Lᵀ, L stored in the lower triangle of `a`.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        // λ > 0 keeps A positive definite; the floor guards against rounding only.
        let d = d.max(1e-12).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    b
}

/// Kendall's tau-b (ties in either variable accounted for), O(n²): sample sets are small.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (mut concordant, mut discordant, mut tie_x, mut tie_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i] - x[j];
            let dy = y[i] - y[j];
            match (dx == 0.0, dy == 0.0) {
                (true, true) => {}
                (true, false) => tie_x += 1,
                (false, true) => tie_y += 1,
                (false, false) if (dx > 0.0) == (dy > 0.0) => concordant += 1,
                (false, false) => discordant += 1,
            }
        }
    }
    let denom =
        (((concordant + discordant + tie_x) * (concordant + discordant + tie_y)) as f64).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        (concordant - discordant) as f64 / denom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_genomes(n: usize, seed: u64) -> Vec<Genome> {
        let mut rng = Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..14).map(|_| rng.index(12) as u8).collect())
            .collect()
    }

    #[test]
    fn recovers_an_additive_truth_and_ranks_well_out_of_sample() {
        // A known additive truth with small noise.
        let truth = |g: &[u8]| -> f64 {
            70.0 + g
                .iter()
                .enumerate()
                .map(|(l, &c)| 0.05 * f64::from(c) * (1.0 + l as f64 / 14.0))
                .sum::<f64>()
        };
        let mut noise = Rng::seed_from_u64(7);
        let samples: Vec<(Genome, f64)> = random_genomes(300, 1)
            .into_iter()
            .map(|g| {
                let y = truth(&g) + (noise.next_f64() - 0.5) * 0.02;
                (g, y)
            })
            .collect();
        let (model, report) = Surrogate::fit(14, 12, &samples).unwrap();
        assert!(report.cv_kendall_tau > 0.9, "{report:?}");
        assert!(report.cv_rmse < 0.05, "{report:?}");
        for g in random_genomes(20, 99) {
            assert!((model.predict(&g) - truth(&g)).abs() < 0.05);
        }
        let (lo, hi) = model.bounds();
        assert!(lo < truth(&[0; 14]) + 0.05 && hi > truth(&[11; 14]) - 0.05);
    }

    #[test]
    fn bad_sample_sets_are_refused() {
        let g: Genome = vec![0; 14];
        assert_eq!(
            Surrogate::fit(14, 12, &vec![(g.clone(), 70.0); 5]),
            Err(SurrogateError::TooFewSamples(5))
        );
        assert_eq!(
            Surrogate::fit(14, 12, &vec![(g.clone(), 70.0); 12]),
            Err(SurrogateError::Constant)
        );
        let mut s: Vec<(Genome, f64)> = random_genomes(12, 3)
            .into_iter()
            .map(|g| (g, 70.0))
            .collect();
        s[4].1 = f64::NAN;
        assert!(matches!(
            Surrogate::fit(14, 12, &s),
            Err(SurrogateError::BadSample { index: 4, .. })
        ));
        s[4] = (vec![12; 14], 71.0);
        assert!(matches!(
            Surrogate::fit(14, 12, &s),
            Err(SurrogateError::BadSample { index: 4, .. })
        ));
    }

    #[test]
    fn kendall_tau_of_known_rankings() {
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0);
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // scipy.stats.kendalltau([1,2,3,4], [1,3,2,4]) == 0.6666...
        assert!(
            (kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 2.0 / 3.0).abs() < 1e-12
        );
    }
}
