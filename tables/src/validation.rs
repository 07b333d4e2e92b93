//! How well summed blocks predict whole networks, and the per-table calibration that corrects
//! them. Blocks measured alone are not additive on every device (launch overhead, caches,
//! fusion), so each table learns `measured = scale * sum(blocks) + overhead * (blocks - 1)` from
//! its validation networks, for whichever entry statistic predicts best, and reports its
//! accuracy out of sample (leave-one-out), as nn-Meter reports ±5% / ±10% accuracy.

use serde::{Deserialize, Serialize};

use crate::latency::Statistic;

/// Fewest validation networks a calibration is fitted from (two parameters, and one left out).
pub const MIN_NETWORKS: usize = 3;

/// One network measured end to end, with what the table predicts for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub arch: String,
    /// Blocks the network expands to.
    pub blocks: usize,
    /// Median of the end-to-end samples.
    pub measured_ms: f64,
    /// Sum of the blocks' entries per statistic, in [`STATISTICS`] order; None when a block is
    /// missing from the table.
    pub predicted_ms: [Option<f64>; 4],
}

/// The statistics a calibration may choose from.
pub const STATISTICS: [Statistic; 4] = [
    Statistic::Median,
    Statistic::Min,
    Statistic::P10,
    Statistic::Mean,
];

/// The fitted correction of one table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub statistic: Statistic,
    pub scale: f64,
    /// Extra milliseconds per boundary between consecutive blocks.
    pub overhead_per_boundary_ms: f64,
}

impl Calibration {
    pub fn apply(&self, sum_ms: f64, blocks: usize) -> f64 {
        self.scale * sum_ms + self.overhead_per_boundary_ms * blocks.saturating_sub(1) as f64
    }
}

/// Accuracy of a set of predictions against measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub networks: usize,
    /// Share of networks predicted within ±5% (nn-Meter's metric).
    pub within_5pct: f64,
    pub within_10pct: f64,
    pub rmse_ms: f64,
    /// Mean of (predicted - measured) / measured.
    pub mean_bias: f64,
}

fn accuracy(pairs: &[(f64, f64)]) -> Accuracy {
    let n = pairs.len().max(1) as f64;
    let rel: Vec<f64> = pairs.iter().map(|(p, m)| (p - m) / m).collect();
    Accuracy {
        networks: pairs.len(),
        within_5pct: rel.iter().filter(|r| r.abs() <= 0.05).count() as f64 / n,
        within_10pct: rel.iter().filter(|r| r.abs() <= 0.10).count() as f64 / n,
        rmse_ms: (pairs.iter().map(|(p, m)| (p - m).powi(2)).sum::<f64>() / n).sqrt(),
        mean_bias: rel.iter().sum::<f64>() / n,
    }
}

/// One network's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkReport {
    pub arch: String,
    pub measured_ms: f64,
    /// Sum of the chosen statistic over the blocks.
    pub predicted_ms: Option<f64>,
    /// The calibrated prediction from a fit that left this network out.
    pub calibrated_ms: Option<f64>,
    /// (measured - predicted) / (blocks - 1): what each block boundary costs beyond the blocks.
    pub overhead_per_boundary_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The entry statistic whose sums predict best after calibration.
    pub statistic: Statistic,
    /// Summed blocks, uncalibrated.
    pub raw: Accuracy,
    /// Calibrated, out of sample (leave-one-out).
    pub calibrated: Accuracy,
    pub networks: Vec<NetworkReport>,
    /// Networks left out because the table lacks some of their blocks.
    pub incomplete: Vec<String>,
}

/// Least squares of `m = a * s + b * k` with k = blocks - 1 (no free intercept: an empty
/// network costs nothing). Falls back to a pure scale when the boundary counts do not vary
/// enough to separate the two.
fn fit_one(obs: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    let (mut ss, mut sk, mut kk, mut sm, mut km) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(s, k, m) in obs {
        ss += s * s;
        sk += s * k;
        kk += k * k;
        sm += s * m;
        km += k * m;
    }
    let det = ss * kk - sk * sk;
    if det.abs() > 1e-9 * ss * kk && kk > 0.0 {
        let a = (sm * kk - km * sk) / det;
        let b = (ss * km - sk * sm) / det;
        if a.is_finite() && b.is_finite() && a > 0.0 {
            return Some((a, b));
        }
    }
    (ss > 0.0)
        .then(|| (sm / ss, 0.0))
        .filter(|(a, _)| a.is_finite() && *a > 0.0)
}

/// Fits a calibration and reports accuracy, or None with fewer than [`MIN_NETWORKS`] complete
/// networks.
pub fn validate(observations: &[Observation]) -> Option<(Calibration, ValidationReport)> {
    let mut best: Option<(f64, usize, Calibration, Vec<Option<f64>>)> = None;
    for (si, &statistic) in STATISTICS.iter().enumerate() {
        let usable: Vec<(usize, f64, f64, f64)> = observations
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                o.predicted_ms[si].map(|p| (i, p, o.blocks.saturating_sub(1) as f64, o.measured_ms))
            })
            .filter(|(_, p, _, m)| *p > 0.0 && *m > 0.0)
            .collect();
        if usable.len() < MIN_NETWORKS {
            continue;
        }
        // Leave-one-out predictions.
        let mut loo = vec![None; observations.len()];
        for (j, &(i, s, k, _)) in usable.iter().enumerate() {
            let rest: Vec<(f64, f64, f64)> = usable
                .iter()
                .enumerate()
                .filter(|(jj, _)| *jj != j)
                .map(|(_, &(_, s, k, m))| (s, k, m))
                .collect();
            if let Some((a, b)) = fit_one(&rest) {
                loo[i] = Some(a * s + b * k);
            }
        }
        let pairs: Vec<(f64, f64)> = usable
            .iter()
            .filter_map(|&(i, _, _, m)| loo[i].map(|p| (p, m)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let rmse = accuracy(&pairs).rmse_ms;
        let all: Vec<(f64, f64, f64)> = usable.iter().map(|&(_, s, k, m)| (s, k, m)).collect();
        let Some((scale, overhead)) = fit_one(&all) else {
            continue;
        };
        let cal = Calibration {
            statistic,
            scale,
            overhead_per_boundary_ms: overhead,
        };
        if best.as_ref().is_none_or(|(r, ..)| rmse < *r) {
            best = Some((rmse, si, cal, loo));
        }
    }
    let (_, si, cal, loo) = best?;
    let mut raw = Vec::new();
    let mut calibrated = Vec::new();
    let mut networks = Vec::new();
    let mut incomplete = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        let predicted = o.predicted_ms[si];
        if predicted.is_none() {
            incomplete.push(o.arch.clone());
        }
        if let Some(p) = predicted {
            raw.push((p, o.measured_ms));
        }
        if let Some(c) = loo[i] {
            calibrated.push((c, o.measured_ms));
        }
        networks.push(NetworkReport {
            arch: o.arch.clone(),
            measured_ms: o.measured_ms,
            predicted_ms: predicted,
            calibrated_ms: loo[i],
            overhead_per_boundary_ms: predicted
                .filter(|_| o.blocks > 1)
                .map(|p| (o.measured_ms - p) / (o.blocks - 1) as f64),
        });
    }
    Some((
        cal,
        ValidationReport {
            statistic: cal.statistic,
            raw: accuracy(&raw),
            calibrated: accuracy(&calibrated),
            networks,
            incomplete,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(arch: &str, sum: f64, measured: f64) -> Observation {
        Observation {
            arch: arch.into(),
            blocks: 20,
            measured_ms: measured,
            predicted_ms: [
                Some(sum),
                Some(sum * 0.8),
                Some(sum * 0.85),
                Some(sum * 1.05),
            ],
        }
    }

    #[test]
    fn a_constant_overhead_is_learned_and_predicts_out_of_sample() {
        // Measured = 0.9 x median sum + 0.5 ms per boundary, exactly.
        let o: Vec<Observation> = [50.0, 70.0, 90.0, 110.0, 130.0]
            .iter()
            .enumerate()
            .map(|(i, s)| obs(&format!("n{i}"), *s, 0.9 * s + 0.5 * 19.0))
            .collect();
        let (cal, report) = validate(&o).unwrap();
        let apply = cal.apply(100.0, 20);
        assert!((apply - (0.9 * 100.0 + 9.5)).abs() < 1e-6, "{cal:?}");
        assert!(
            report.calibrated.within_5pct == 1.0 && report.calibrated.rmse_ms < 1e-6,
            "{report:?}"
        );
        assert!(report.raw.within_5pct < 1.0);
        assert!(report.incomplete.is_empty());
    }

    #[test]
    fn too_few_or_incomplete_networks_give_no_calibration() {
        let mut o = vec![obs("a", 10.0, 11.0), obs("b", 20.0, 21.0)];
        assert!(validate(&o).is_none());
        o.push(Observation {
            predicted_ms: [None; 4],
            ..obs("c", 30.0, 31.0)
        });
        assert!(validate(&o).is_none());
        o.push(obs("d", 40.0, 41.0));
        let (_, report) = validate(&o).unwrap();
        assert_eq!(report.incomplete, vec!["c".to_string()]);
        assert_eq!(report.raw.networks, 3);
    }
}
