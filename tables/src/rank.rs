//! Rank correlations of paired values, ties handled: Spearman's rho (the Pearson correlation of
//! average ranks) and Kendall's tau-b (Knight's O(n log n) algorithm). MoGA's point is that
//! frameworks and devices rank the same blocks and networks differently; these measure how much.
//!
//! Both are `None` when they are undefined: fewer than two pairs, slices of different lengths,
//! a value that is not finite, or one side constant (every value tied).

use serde::{Deserialize, Serialize};

/// Both rank correlations of one set of pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankCorrelation {
    /// Pairs compared.
    pub n: usize,
    pub spearman_rho: Option<f64>,
    pub kendall_tau_b: Option<f64>,
}

/// Spearman's rho and Kendall's tau-b of `(x[i], y[i])`.
pub fn correlate(x: &[f64], y: &[f64]) -> RankCorrelation {
    RankCorrelation {
        n: x.len().min(y.len()),
        spearman_rho: spearman(x, y),
        kendall_tau_b: kendall_tau_b(x, y),
    }
}

fn usable(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.len() >= 2 && x.iter().chain(y).all(|v| v.is_finite())
}

/// Average ranks, 1-based: tied values share the mean of the ranks they span.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation: Pearson's correlation of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if !usable(x, y) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y)), where
/// n0 = n(n-1)/2 and a pair tied in both counts in neither. O(n log n) (Knight 1966).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if !usable(x, y) {
        return None;
    }
    let n = x.len() as u64;
    let pairs = |t: u64| t * t.saturating_sub(1) / 2;
    let n0 = pairs(n);
    // Sort by (x, y); count ties in x and joint ties.
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let (mut ties_x, mut ties_xy) = (0u64, 0u64);
    let (mut run_x, mut run_xy) = (1u64, 1u64);
    for w in idx.windows(2) {
        let (p, q) = (w[0], w[1]);
        if x[p] == x[q] {
            run_x += 1;
            if y[p] == y[q] {
                run_xy += 1;
            } else {
                ties_xy += pairs(run_xy);
                run_xy = 1;
            }
        } else {
            ties_x += pairs(run_x);
            ties_xy += pairs(run_xy);
            run_x = 1;
            run_xy = 1;
        }
    }
    ties_x += pairs(run_x);
    ties_xy += pairs(run_xy);
    // Sort the y sequence (in x order) counting exchanges: each is one discordant pair.
    let mut ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let mut buf = ys.clone();
    let discordant = merge_count(&mut ys, &mut buf);
    let mut ties_y = 0u64;
    let mut run_y = 1u64;
    for w in ys.windows(2) {
        if w[0] == w[1] {
            run_y += 1;
        } else {
            ties_y += pairs(run_y);
            run_y = 1;
        }
    }
    ties_y += pairs(run_y);
    if n0 == ties_x || n0 == ties_y {
        return None;
    }
    let numerator =
        n0 as f64 - ties_x as f64 - ties_y as f64 + ties_xy as f64 - 2.0 * discordant as f64;
    let denominator = ((n0 - ties_x) as f64 * (n0 - ties_y) as f64).sqrt();
    Some((numerator / denominator).clamp(-1.0, 1.0))
}

/// Stable merge sort of `v` (ascending), returning the number of inversions (pairs i < j with
/// v[i] > v[j]; equal values are not inversions).
fn merge_count(v: &mut [f64], buf: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = {
        let (l, r) = v.split_at_mut(mid);
        let (bl, br) = buf.split_at_mut(mid);
        merge_count(l, bl) + merge_count(r, br)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            buf[k] = v[j];
            count += (mid - i) as u64;
            j += 1;
        } else {
            buf[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buf[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buf[..n]);
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook O(n^2) tau-b, to check the fast one against.
    fn tau_b_naive(x: &[f64], y: &[f64]) -> Option<f64> {
        let (mut c, mut d, mut tx, mut ty) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let dx = x[i] - x[j];
                let dy = y[i] - y[j];
                if dx == 0.0 && dy == 0.0 {
                    continue;
                } else if dx == 0.0 {
                    tx += 1.0;
                } else if dy == 0.0 {
                    ty += 1.0;
                } else if (dx > 0.0) == (dy > 0.0) {
                    c += 1.0;
                } else {
                    d += 1.0;
                }
            }
        }
        let den: f64 = (c + d + tx) * (c + d + ty);
        (den > 0.0).then(|| (c - d) / den.sqrt())
    }

    /// Spearman by the classic formula 1 - 6 sum d^2 / (n (n^2 - 1)), valid without ties.
    fn spearman_no_ties(x: &[f64], y: &[f64]) -> f64 {
        let rank = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .map(|a| 1.0 + v.iter().filter(|b| *b < a).count() as f64)
                .collect()
        };
        let (rx, ry) = (rank(x), rank(y));
        let n = x.len() as f64;
        let d2: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - b) * (a - b)).sum();
        1.0 - 6.0 * d2 / (n * (n * n - 1.0))
    }

    #[test]
    fn known_values() {
        // scipy.stats.kendalltau's documented example (tau-b).
        let x = [12.0, 2.0, 1.0, 12.0, 2.0];
        let y = [1.0, 4.0, 7.0, 1.0, 0.0];
        let tau = kendall_tau_b(&x, &y).unwrap();
        assert!((tau - -0.471_404_520_791_031_6).abs() < 1e-12, "{tau}");
        let rho = spearman(&x, &y).unwrap();
        // Ranks (4.5, 2.5, 1, 4.5, 2.5) and (2.5, 4, 5, 2.5, 1): -5 / sqrt(9 x 9.5).
        assert!((rho - -5.0 / 85.5f64.sqrt()).abs() < 1e-12, "{rho}");
        let up = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau_b(&up, &up), Some(1.0));
        assert_eq!(spearman(&up, &[8.0, 6.0, 4.0, 2.0]), Some(-1.0));
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[3.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), None);
        assert_eq!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]), None);
        let c = correlate(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]);
        assert_eq!(c.n, 3);
        assert!((c.kendall_tau_b.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.spearman_rho.unwrap() - 0.5).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn tau_b_matches_the_quadratic_definition(
            pairs in prop::collection::vec((0u8..6, 0u8..6), 2..40)
        ) {
            // Small integer ranges: many ties of every kind.
            let x: Vec<f64> = pairs.iter().map(|p| p.0 as f64).collect();
            let y: Vec<f64> = pairs.iter().map(|p| p.1 as f64).collect();
            match (kendall_tau_b(&x, &y), tau_b_naive(&x, &y)) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b),
                (None, None) => {}
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }

        #[test]
        fn spearman_matches_the_classic_formula_without_ties(
            x in prop::collection::hash_set(-1000i32..1000, 3..30),
            perm_seed in any::<u64>()
        ) {
            let x: Vec<f64> = x.into_iter().map(f64::from).collect();
            // y: a seeded shuffle of x, so no ties on either side.
            let mut y = x.clone();
            let mut s = perm_seed;
            for i in (1..y.len()).rev() {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                y.swap(i, (s >> 33) as usize % (i + 1));
            }
            let rho = spearman(&x, &y).unwrap();
            prop_assert!((rho - spearman_no_ties(&x, &y)).abs() < 1e-9);
        }

        #[test]
        fn correlations_are_symmetric_bounded_and_rank_invariant(
            pairs in prop::collection::vec((-50i32..50, -50i32..50), 2..30)
        ) {
            let x: Vec<f64> = pairs.iter().map(|p| f64::from(p.0)).collect();
            let y: Vec<f64> = pairs.iter().map(|p| f64::from(p.1)).collect();
            // A strictly increasing transform changes no rank.
            let xt: Vec<f64> = x.iter().map(|v| (v / 10.0).exp()).collect();
            for f in [spearman, kendall_tau_b] {
                let r = f(&x, &y);
                prop_assert_eq!(r, f(&y, &x));
                if let Some(v) = r {
                    prop_assert!((-1.0..=1.0).contains(&v));
                    prop_assert!((f(&xt, &y).unwrap() - v).abs() < 1e-12);
                }
            }
        }
    }
}
