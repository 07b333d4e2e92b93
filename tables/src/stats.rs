//! Robust statistics of timing samples. GPU timings are skewed and heavy-tailed (thermal
//! throttling, scheduler preemption), so tables keep order statistics rather than means.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("no samples")]
    Empty,
    #[error("sample {index} is not a finite number")]
    NotFinite { index: usize },
}

/// Summary of one series of samples (milliseconds, or any unit: the summary keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    pub mean: f64,
    /// Interquartile range, p75 - p25.
    pub iqr: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    /// Confidence interval of the median, when there are enough samples for one.
    pub median_ci: Option<MedianCi>,
}

/// A distribution-free confidence interval of the median from order statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianCi {
    pub low: f64,
    pub high: f64,
    /// The exact coverage of `[low, high]` (at least the requested level).
    pub coverage: f64,
}

impl Summary {
    /// Summarises `samples`; refuses an empty series or a non-finite value.
    pub fn from_samples(samples: &[f64]) -> Result<Self, StatsError> {
        if samples.is_empty() {
            return Err(StatsError::Empty);
        }
        if let Some(index) = samples.iter().position(|x| !x.is_finite()) {
            return Err(StatsError::NotFinite { index });
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = quantile_sorted(&sorted, 0.5);
        let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        Ok(Self {
            count: sorted.len(),
            min: sorted[0],
            p10: quantile_sorted(&sorted, 0.1),
            median,
            p90: quantile_sorted(&sorted, 0.9),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            iqr: quantile_sorted(&sorted, 0.75) - quantile_sorted(&sorted, 0.25),
            mad: quantile_sorted(&deviations, 0.5),
            median_ci: median_ci_sorted(&sorted, 0.95),
        })
    }

    /// Half-width of the median's confidence interval relative to the median: the adaptive
    /// timing protocol stops when this falls under its target (e.g. 0.02).
    pub fn relative_ci_half_width(&self) -> Option<f64> {
        let ci = self.median_ci?;
        (self.median > 0.0).then(|| (ci.high - ci.low) / 2.0 / self.median)
    }
}

/// The `q`-quantile of sorted, finite data by linear interpolation between order statistics
/// (Hyndman and Fan type 7, the default of R and NumPy). `q` is clamped to [0, 1].
///
/// # Panics
/// On empty input; callers check first.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no samples");
    let q = q.clamp(0.0, 1.0);
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The narrowest symmetric order-statistic interval `[x(j), x(n+1-j)]` (1-based) whose exact
/// binomial coverage of the true median is at least `level`. None when even `[min, max]`
/// covers less (fewer than 6 samples at 95%).
pub fn median_ci_sorted(sorted: &[f64], level: f64) -> Option<MedianCi> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // P(X <= k) for X ~ Binomial(n, 1/2), accumulated in log space so large n cannot underflow.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_pmf = ln_half_n; // k = 0
    let mut cdf = ln_pmf.exp();
    // Coverage of [x(j), x(n+1-j)] is 1 - 2 P(X <= j-1). Find the largest j that keeps it >= level.
    let mut best: Option<(usize, f64)> = None;
    for j in 1..=n.div_ceil(2) {
        let coverage = 1.0 - 2.0 * cdf;
        if coverage >= level {
            best = Some((j, coverage));
        } else {
            break;
        }
        // advance the cdf to P(X <= j)
        ln_pmf += ((n - (j - 1)) as f64).ln() - (j as f64).ln();
        cdf += ln_pmf.exp();
    }
    best.map(|(j, coverage)| MedianCi {
        low: sorted[j - 1],
        high: sorted[n - j],
        coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4, 10], [0.1, 0.5, 0.9]) == [1.4, 3.0, 7.6]
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!((quantile_sorted(&s, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(quantile_sorted(&s, 0.5), 3.0);
        assert!((quantile_sorted(&s, 0.9) - 7.6).abs() < 1e-12);
    }

    #[test]
    fn summary_of_a_known_series() {
        let s = Summary::from_samples(&[5.0, 1.0, 4.0, 2.0, 3.0, 100.0]).unwrap();
        assert_eq!(s.count, 6);
        assert_eq!(s.median, 3.5);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
        // deviations from 3.5: 2.5 1.5 0.5 0.5 1.5 96.5 -> median 1.5
        assert_eq!(s.mad, 1.5);
        // numpy: q75 = 4.75, q25 = 2.25
        assert!((s.iqr - 2.5).abs() < 1e-12);
        // n = 6: [x(1), x(6)] covers 1 - 2/64 = 0.96875
        let ci = s.median_ci.unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 100.0));
        assert!((ci.coverage - 0.968_75).abs() < 1e-12);
    }

    #[test]
    fn median_ci_uses_the_binomial_order_statistics() {
        // n = 30: the classic table gives ranks 10 and 21 (coverage 0.9572).
        let sorted: Vec<f64> = (1..=30).map(f64::from).collect();
        let ci = median_ci_sorted(&sorted, 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (10.0, 21.0));
        assert!((ci.coverage - 0.9572).abs() < 1e-4, "{}", ci.coverage);
        assert!(median_ci_sorted(&sorted[..5], 0.95).is_none());
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(Summary::from_samples(&[]), Err(StatsError::Empty));
        assert_eq!(
            Summary::from_samples(&[1.0, f64::NAN]),
            Err(StatsError::NotFinite { index: 1 })
        );
    }

    proptest! {
        #[test]
        fn order_statistics_are_ordered(xs in prop::collection::vec(-1e6f64..1e6, 1..300)) {
            let s = Summary::from_samples(&xs).unwrap();
            prop_assert!(s.min <= s.p10 && s.p10 <= s.median && s.median <= s.p90 && s.p90 <= s.max);
            prop_assert!(s.iqr >= 0.0 && s.mad >= 0.0);
            prop_assert!(s.min <= s.mean && s.mean <= s.max + 1e-6);
            if let Some(ci) = s.median_ci {
                prop_assert!(ci.low <= s.median && s.median <= ci.high);
                prop_assert!(ci.coverage >= 0.95 && ci.coverage <= 1.0);
            } else {
                prop_assert!(xs.len() < 6);
            }
        }

        #[test]
        fn shifting_samples_shifts_location_not_spread(
            xs in prop::collection::vec(0f64..1e3, 1..100),
            shift in -1e3f64..1e3,
        ) {
            let a = Summary::from_samples(&xs).unwrap();
            let shifted: Vec<f64> = xs.iter().map(|x| x + shift).collect();
            let b = Summary::from_samples(&shifted).unwrap();
            prop_assert!((b.median - a.median - shift).abs() < 1e-6);
            prop_assert!((b.mad - a.mad).abs() < 1e-6);
            prop_assert!((b.iqr - a.iqr).abs() < 1e-6);
        }
    }
}
