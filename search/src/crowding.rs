//! Weighted crowding distance (MoGA).
//!
//! Positive weights cannot change Pareto ranks, so MoGA puts its objective preferences in the
//! crowding distance: within a front, an objective with a larger weight spreads the members it
//! separates further apart, and they win more tournaments and survive truncation more often.
//!
//! Per front and objective m (sorted by m, stable, so ties keep index order): the first and last
//! members get infinity, every interior member adds `w_m * (f[i+1] - f[i-1]) / (f_max - f_min)`.
//! An objective whose range in the front is 0 is skipped entirely (no infinities from it either),
//! so a single-member front or a front of duplicates has distance 0, as in pymoo.

use crate::sort::order_key;
use crate::{SearchError, Weights};

/// Weighted crowding distance of every point, computed within its front (`ranks[i]`).
///
/// `points` are minimisation vectors in (accuracy, latency, params) order as the weights are;
/// the result is meaningful only between points of the same rank.
pub fn crowding_distance(
    points: &[[f64; 3]],
    ranks: &[u32],
    weights: &Weights,
) -> Result<Vec<f64>, SearchError> {
    if points.len() != ranks.len() {
        return Err(SearchError::InvalidPoints(format!(
            "{} points but {} ranks",
            points.len(),
            ranks.len()
        )));
    }
    if let Some(i) = points.iter().position(|p| p.iter().any(|x| !x.is_finite())) {
        return Err(SearchError::InvalidPoints(format!(
            "point {i} has a non-finite coordinate"
        )));
    }
    let w = weights.normalised()?;
    let mut distance = vec![0.0; points.len()];
    let mut scratch = Vec::new();
    for front in crate::sort::fronts_from_ranks(ranks) {
        front_crowding(points, &front, &w, &mut distance, &mut scratch);
    }
    Ok(distance)
}

/// Adds the weighted crowding of one front's members into `distance` (which must start at 0
/// for them). Ties in an objective are broken by index, so the result is deterministic.
pub(crate) fn front_crowding(
    points: &[[f64; 3]],
    front: &[usize],
    weights: &[f64; 3],
    distance: &mut [f64],
    sorted: &mut Vec<(u64, u32)>,
) {
    let n = front.len();
    if n == 0 {
        return;
    }
    for (m, &w) in weights.iter().enumerate() {
        // Sorting (order key, index) pairs: integer compares on contiguous data, and the index
        // breaks ties deterministically.
        sorted.clear();
        sorted.extend(front.iter().map(|&i| (order_key(points[i][m]), i as u32)));
        sorted.sort_unstable();
        let at = |k: usize| points[sorted[k].1 as usize][m];
        let range = at(n - 1) - at(0);
        if range <= 0.0 {
            continue;
        }
        distance[sorted[0].1 as usize] = f64::INFINITY;
        distance[sorted[n - 1].1 as usize] = f64::INFINITY;
        for k in 1..n.saturating_sub(1) {
            let gap = at(k + 1) - at(k - 1);
            distance[sorted[k].1 as usize] += w * gap / range;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_front() {
        // One front on a line in (f1, f2), f3 constant (skipped).
        let pts = [
            [0.0, 4.0, 1.0],
            [1.0, 3.0, 1.0],
            [3.0, 1.0, 1.0],
            [4.0, 0.0, 1.0],
        ];
        let w = Weights {
            accuracy: 1.0,
            latency: 3.0,
            params: 1.0,
        };
        let d = crowding_distance(&pts, &[0; 4], &w).unwrap();
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[3], f64::INFINITY);
        // f1: (3-0)/4 * 0.2, f2: (4-1)/4 * 0.6
        assert!((d[1] - (0.2 * 0.75 + 0.6 * 0.75)).abs() < 1e-15);
        assert!((d[2] - (0.2 * 0.75 + 0.6 * 0.75)).abs() < 1e-15);
    }

    #[test]
    fn single_member_and_duplicates_get_zero() {
        let pts = [[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [5.0, 5.0, 5.0]];
        let d = crowding_distance(&pts, &[0, 1, 1], &Weights::default()).unwrap();
        assert_eq!(d, [0.0, 0.0, 0.0]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(crowding_distance(&[[0.0; 3]], &[], &Weights::default()).is_err());
        assert!(crowding_distance(&[[f64::NAN; 3]], &[0], &Weights::default()).is_err());
        let w = Weights {
            accuracy: 0.0,
            latency: 1.0,
            params: 1.0,
        };
        assert!(crowding_distance(&[[0.0; 3]], &[0], &w).is_err());
    }
}
