//! The O(n log n) 3-D hypervolume against a grid decomposition.

use gpulut_search::hypervolume_3d;
use proptest::prelude::*;

/// Sum of the grid cells (between consecutive distinct coordinates) some point dominates.
fn brute_force(points: &[[f64; 3]], r: [f64; 3]) -> f64 {
    let pts: Vec<[f64; 3]> = points
        .iter()
        .filter(|p| (0..3).all(|i| p[i] < r[i]))
        .copied()
        .collect();
    let axis = |i: usize| {
        let mut v: Vec<f64> = pts.iter().map(|p| p[i]).chain([r[i]]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys, zs) = (axis(0), axis(1), axis(2));
    let mut total = 0.0;
    for x in xs.windows(2) {
        for y in ys.windows(2) {
            for z in zs.windows(2) {
                if pts
                    .iter()
                    .any(|p| p[0] <= x[0] && p[1] <= y[0] && p[2] <= z[0])
                {
                    total += (x[1] - x[0]) * (y[1] - y[0]) * (z[1] - z[0]);
                }
            }
        }
    }
    total
}

/// Slices at every distinct f3 and sums slab thickness × the 2-D area of the points below:
/// O(n² log n), independent of the staircase code, usable on large sets.
fn slabs(points: &[[f64; 3]], r: [f64; 3]) -> f64 {
    let pts: Vec<[f64; 3]> = points
        .iter()
        .filter(|p| (0..3).all(|i| p[i] < r[i]))
        .copied()
        .collect();
    let mut zs: Vec<f64> = pts.iter().map(|p| p[2]).collect();
    zs.sort_by(f64::total_cmp);
    zs.dedup();
    let mut total = 0.0;
    for (k, &z) in zs.iter().enumerate() {
        let top = zs.get(k + 1).copied().unwrap_or(r[2]);
        let mut slice: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p[2] <= z)
            .map(|p| (p[0], p[1]))
            .collect();
        slice.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut area = 0.0;
        let mut best_y = r[1];
        for (i, &(x, y)) in slice.iter().enumerate() {
            best_y = best_y.min(y);
            let next_x = slice.get(i + 1).map_or(r[0], |p| p.0);
            area += (next_x - x) * (r[1] - best_y);
        }
        total += area * (top - z);
    }
    total
}

fn coord() -> impl Strategy<Value = f64> {
    prop_oneof![(0i32..6).prop_map(|v| f64::from(v) * 0.25), 0.0f64..1.3]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn matches_grid_decomposition(pts in proptest::collection::vec([coord(), coord(), coord()], 0..25)) {
        let r = [1.1, 1.1, 1.1];
        let fast = hypervolume_3d(&pts, r);
        let slow = brute_force(&pts, r);
        prop_assert!((fast - slow).abs() <= 1e-12 * slow.max(1.0), "{} vs {}", fast, slow);
        let sliced = slabs(&pts, r);
        prop_assert!((sliced - slow).abs() <= 1e-12 * slow.max(1.0), "{} vs {}", sliced, slow);
    }

    #[test]
    fn order_does_not_matter(mut pts in proptest::collection::vec([coord(), coord(), coord()], 0..40)) {
        let r = [1.2, 1.3, 1.1];
        let a = hypervolume_3d(&pts, r);
        pts.reverse();
        let b = hypervolume_3d(&pts, r);
        prop_assert!((a - b).abs() <= 1e-12);
    }
}

#[test]
fn large_fronts_match_slabs() {
    // Anti-correlated in (f1, f2), so the staircase grows past its small-vector size.
    let mut s = 7u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / 9_007_199_254_740_992.0
    };
    for n in [600, 2500] {
        let pts: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                let x = next();
                let y = 1.0 - x + 0.01 * next();
                [x, y, next()]
            })
            .collect();
        let r = [1.1, 1.1, 1.1];
        let (fast, slow) = (hypervolume_3d(&pts, r), slabs(&pts, r));
        assert!((fast - slow).abs() <= 1e-11 * slow, "{fast} vs {slow}");
        // The simplex x + y + z = 1: one front.
        let simplex: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                let (a, b) = (next(), next());
                let (x, y) = if a + b > 1.0 {
                    (1.0 - a, 1.0 - b)
                } else {
                    (a, b)
                };
                [x, y, 1.0 - x - y]
            })
            .collect();
        let (fast, slow) = (hypervolume_3d(&simplex, r), slabs(&simplex, r));
        assert!((fast - slow).abs() <= 1e-11 * slow, "{fast} vs {slow}");
    }
}

#[test]
fn known_values() {
    assert_eq!(
        hypervolume_3d(&[[0.0, 0.0, 0.0]], [1.1, 1.1, 1.1]),
        1.1 * 1.1 * 1.1
    );
    let unit = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    assert_eq!(hypervolume_3d(&unit, [2.0, 2.0, 2.0]), 7.0);
    // Points outside the reference or on its boundary add nothing.
    assert_eq!(
        hypervolume_3d(&[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [1.0, 1.0, 1.0]),
        0.0
    );
    // A staircase of three boxes in a plane z = 0: 1 + 0.5 + 0.25 in (x, y), depth 1.
    let stairs = [[0.0, 0.75, 0.0], [0.5, 0.5, 0.0], [0.75, 0.0, 0.0]];
    let v = hypervolume_3d(&stairs, [1.0, 1.0, 1.0]);
    assert!(
        (v - (0.5 * 0.25 + 0.25 * 0.5 + 0.25 * 1.0)).abs() < 1e-15,
        "{v}"
    );
}
