//! Non-dominated sorting against the O(MN²) definition on random inputs, with many ties and
//! duplicates, and on single fronts.

use gpulut_search::sort::fronts_from_ranks;
use gpulut_search::{dominates, non_dominated_sort, non_dominated_sort_3d};
use proptest::prelude::*;

/// Rank by definition: peel off the points no remaining point dominates.
fn brute_force(points: &[Vec<f64>]) -> Vec<u32> {
    let n = points.len();
    let mut rank = vec![u32::MAX; n];
    let mut r = 0;
    while rank.contains(&u32::MAX) {
        let current: Vec<usize> = (0..n)
            .filter(|&i| rank[i] == u32::MAX)
            .filter(|&i| !(0..n).any(|j| rank[j] == u32::MAX && dominates(&points[j], &points[i])))
            .collect();
        for i in current {
            rank[i] = r;
        }
        r += 1;
    }
    rank
}

/// Coordinates from a small grid, so ties and exact duplicates are frequent; `-0.0` included.
fn coarse() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0i32..5).prop_map(f64::from),
        Just(-0.0),
        (-3i32..3).prop_map(|v| f64::from(v) * 0.5)
    ]
}

fn points(dims: usize, max: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    let coord = prop_oneof![coarse(), -1e3f64..1e3];
    proptest::collection::vec(proptest::collection::vec(coord, dims), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sweep_3d_matches_definition(pts in points(3, 60)) {
        let arr: Vec<[f64; 3]> = pts.iter().map(|p| [p[0], p[1], p[2]]).collect();
        prop_assert_eq!(non_dominated_sort_3d(&arr).unwrap(), brute_force(&pts));
    }

    #[test]
    fn general_sort_matches_definition(dims in 1usize..6, seed in any::<u64>()) {
        // Derive points from the seed so every dims gets its own random set.
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) % 4 };
        let n = (next() * 13) as usize;
        let pts: Vec<Vec<f64>> = (0..n).map(|_| (0..dims).map(|_| next() as f64).collect()).collect();
        let flat: Vec<f64> = pts.iter().flatten().copied().collect();
        prop_assert_eq!(non_dominated_sort(&flat, dims).unwrap(), brute_force(&pts));
    }

    #[test]
    fn general_sort_matches_definition_continuous(pts in points(4, 50)) {
        let flat: Vec<f64> = pts.iter().flatten().copied().collect();
        prop_assert_eq!(non_dominated_sort(&flat, 4).unwrap(), brute_force(&pts));
    }

    #[test]
    fn two_objectives_match_definition(pts in points(2, 60)) {
        let flat: Vec<f64> = pts.iter().flatten().copied().collect();
        prop_assert_eq!(non_dominated_sort(&flat, 2).unwrap(), brute_force(&pts));
    }

    #[test]
    fn single_front_is_rank_zero(raw in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..200)) {
        // Points on the plane x + y + z = 1 never dominate each other.
        let arr: Vec<[f64; 3]> = raw.iter().map(|&(a, b)| {
            let (x, y) = (a * 0.5, b * 0.5);
            [x, y, 1.0 - x - y]
        }).collect();
        let ranks = non_dominated_sort_3d(&arr).unwrap();
        let pts: Vec<Vec<f64>> = arr.iter().map(|p| p.to_vec()).collect();
        prop_assert_eq!(&ranks, &brute_force(&pts));
        let flat: Vec<f64> = arr.iter().flatten().copied().collect();
        prop_assert_eq!(non_dominated_sort(&flat, 3).unwrap(), ranks);
    }
}

#[test]
fn chain_gives_one_front_per_point() {
    let arr: Vec<[f64; 3]> = (0..100).map(|i| [f64::from(i); 3]).rev().collect();
    let ranks = non_dominated_sort_3d(&arr).unwrap();
    assert_eq!(ranks, (0..100).rev().collect::<Vec<u32>>());
    assert_eq!(fronts_from_ranks(&ranks).len(), 100);
}

#[test]
fn large_random_3d_matches_general() {
    let mut s = 12345u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) as f64
    };
    let arr: Vec<[f64; 3]> = (0..3000).map(|_| [next(), next(), next()]).collect();
    let flat: Vec<f64> = arr.iter().flatten().copied().collect();
    let a = non_dominated_sort_3d(&arr).unwrap();
    let b = non_dominated_sort(&flat, 5 - 2).unwrap();
    assert_eq!(a, b);
    let pts: Vec<Vec<f64>> = arr[..400].iter().map(|p| p.to_vec()).collect();
    assert_eq!(
        non_dominated_sort_3d(&arr[..400]).unwrap(),
        brute_force(&pts)
    );
}

#[test]
fn long_staircases_match_definition() {
    // (f2, f3) anti-correlated: staircases grow past their small-vector size.
    let mut s = 99u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / 9_007_199_254_740_992.0
    };
    for (n, noise) in [(1500, 0.0), (1500, 0.001), (1500, 0.05)] {
        let arr: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                let y = (next() * 4000.0).round() / 4000.0;
                [next(), y, 1.0 - y + noise * next()]
            })
            .collect();
        let pts: Vec<Vec<f64>> = arr.iter().map(|p| p.to_vec()).collect();
        let flat: Vec<f64> = arr.iter().flatten().copied().collect();
        let expect = brute_force(&pts);
        assert_eq!(non_dominated_sort_3d(&arr).unwrap(), expect);
        assert_eq!(non_dominated_sort(&flat, 3).unwrap(), expect);
    }
}
