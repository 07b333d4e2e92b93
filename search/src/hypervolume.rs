//! Exact 3-D hypervolume in O(n log n) (minimisation).
//!
//! The server shows the hypervolume of every generation's front, and fronts of large
//! populations hold thousands of points, so the inclusion–exclusion or slicing methods
//! (exponential or O(n²)) are out. This is the classic sweep (Beume, Fonseca et al. 2009):
//! visit points by ascending f3; keep the 2-D staircase of the (f1, f2) projections seen so far
//! together with the area it dominates up to the reference; each slab between consecutive f3
//! values adds `area × thickness`. Inserting a point updates the area by walking only the
//! staircase steps it removes, so the whole sweep is O(n log n).

use crate::sort::order_key;
use crate::staircase::Staircase;

/// Volume dominated by `points` and bounded by `reference` (minimisation).
///
/// Only points strictly better than the reference in every coordinate contribute; others,
/// and points with a NaN coordinate, are ignored. The reference must be finite for a finite
/// result, and a point at `-inf` makes the volume infinite.
pub fn hypervolume_3d(points: &[[f64; 3]], reference: [f64; 3]) -> f64 {
    Hypervolume3d::default().compute(points, reference)
}

/// Reusable buffers for repeated hypervolume computations (the engine computes one per
/// generation).
#[derive(Debug, Clone, Default)]
pub struct Hypervolume3d {
    points: Vec<[f64; 3]>,
    /// f1 order key -> (f1, f2); f2 strictly decreases along it.
    stairs: Staircase<(f64, f64)>,
}

impl Hypervolume3d {
    /// Same as [`hypervolume_3d`], reusing this value's buffers.
    pub fn compute(&mut self, points: &[[f64; 3]], reference: [f64; 3]) -> f64 {
        let [rx, ry, rz] = reference;
        let pts = &mut self.points;
        pts.clear();
        pts.extend(
            points
                .iter()
                .filter(|p| p[0] < rx && p[1] < ry && p[2] < rz),
        );
        if pts.is_empty() {
            return 0.0;
        }
        pts.sort_unstable_by(|a, b| {
            a[2].total_cmp(&b[2])
                .then(a[0].total_cmp(&b[0]))
                .then(a[1].total_cmp(&b[1]))
        });
        let stairs = &mut self.stairs;
        stairs.clear();
        let mut area = 0.0;
        let mut volume = 0.0;
        for (i, &[x, y, z]) in pts.iter().enumerate() {
            let kx = order_key(x);
            let covered = stairs.predecessor(kx, true).is_some_and(|(_, sy)| sy <= y);
            if !covered {
                // Height of the staircase just left of x: the area p adds starts there, and
                // each step p removes (all at or right of x) lowers it.
                let mut height = stairs.predecessor(kx, false).map_or(ry, |(_, sy)| sy);
                let mut from = x;
                let mut added = 0.0;
                let next = stairs.insert(
                    kx,
                    (x, y),
                    |&(_, sy)| sy >= y,
                    |&(sx, sy)| {
                        added += (sx - from) * (height - y);
                        from = sx;
                        height = sy;
                    },
                );
                let next_x = next.map_or(rx, |(sx, _)| sx);
                added += (next_x - from) * (height - y);
                area += added;
            }
            let next_z = pts.get(i + 1).map_or(rz, |p| p[2]);
            volume += area * (next_z - z);
        }
        volume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(hypervolume_3d(&[[0.0, 0.0, 0.0]], [1.0, 1.0, 1.0]), 1.0);
        let unit = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert_eq!(hypervolume_3d(&unit, [2.0, 2.0, 2.0]), 7.0);
        assert_eq!(hypervolume_3d(&[], [1.0, 1.0, 1.0]), 0.0);
        // On or beyond the reference: ignored.
        assert_eq!(
            hypervolume_3d(&[[1.0, 0.0, 0.0], [0.5, f64::NAN, 0.0]], [1.0, 1.0, 1.0]),
            0.0
        );
        // A dominated point and a duplicate change nothing.
        let v = hypervolume_3d(
            &[[0.5, 0.5, 0.5], [0.7, 0.7, 0.7], [0.5, 0.5, 0.5]],
            [1.0; 3],
        );
        assert_eq!(v, 0.125);
    }
}
