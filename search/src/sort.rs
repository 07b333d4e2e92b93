//! Non-dominated sorting (minimisation) that scales to large populations.
//!
//! The textbook fast non-dominated sort compares every pair of points (O(MN²)), which dominates
//! a generation's cost at a few thousand members. Here:
//!
//! - **3 objectives** (and 2): a sweep in lexicographic order. A point can only be dominated by
//!   points before it, and among those, by one whose (f2, f3) is no larger. Each front keeps the
//!   2-D staircase of its members' (f2, f3) (a sorted `Vec`, a `BTreeMap` once large), so "does
//!   front k dominate p" is one predecessor lookup; fronts are tested by binary search (if front k dominates p, so does
//!   front k-1). O(N log N · log F) plus amortised staircase upkeep.
//! - **any number of objectives**: the same sweep with a linear scan of each tested front
//!   (ENS-BS, Zhang et al. 2015), fast in practice, O(MN²) only in the worst case.
//!
//! Exact duplicates never dominate each other and share a rank. Coordinates are mapped to
//! order-preserving integers first, so comparisons are exact and `-0.0` equals `0.0`.

use crate::SearchError;
use crate::staircase::Staircase;

/// Maps a finite f64 to a u64 with the same order, so keys compare as integers.
///
/// Adding `0.0` first turns `-0.0` into `0.0`, which dominance must treat as equal.
#[inline]
pub(crate) fn order_key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Whether `a` Pareto-dominates `b` (minimisation): no worse anywhere, better somewhere.
///
/// Slices of different lengths never dominate each other.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            better = true;
        }
    }
    better
}

/// Front index (0 = non-dominated) of every point of a 3-objective minimisation problem.
///
/// Fails on a non-finite coordinate, whose dominance relation is undefined.
pub fn non_dominated_sort_3d(points: &[[f64; 3]]) -> Result<Vec<u32>, SearchError> {
    let mut ranks = Vec::new();
    NonDominatedSorter::default().sort_3d(points, &mut ranks)?;
    Ok(ranks)
}

/// Front index of every point; `points` holds `dims` coordinates per point, row after row.
///
/// Two and three objectives take the staircase sweep, other counts the general one.
pub fn non_dominated_sort(points: &[f64], dims: usize) -> Result<Vec<u32>, SearchError> {
    let mut ranks = Vec::new();
    NonDominatedSorter::default().sort(points, dims, &mut ranks)?;
    Ok(ranks)
}

/// Groups point indices by front, fronts in rank order, indices ascending within a front.
pub fn fronts_from_ranks(ranks: &[u32]) -> Vec<Vec<usize>> {
    let count = ranks.iter().max().map_or(0, |&r| r as usize + 1);
    let mut fronts = vec![Vec::new(); count];
    for (i, &r) in ranks.iter().enumerate() {
        fronts[r as usize].push(i);
    }
    fronts
}

/// Reusable buffers for repeated sorts: the engine sorts every generation and should not
/// allocate its staircases anew each time.
#[derive(Debug, Clone, Default)]
pub struct NonDominatedSorter {
    rows: Vec<([u64; 3], u32)>,
    staircases: Vec<Staircase<u64>>,
    keys: Vec<u64>,
    order: Vec<u32>,
    members: Vec<Vec<u32>>,
}

impl NonDominatedSorter {
    /// Sorts 3-objective points into `ranks` (resized to `points.len()`).
    pub fn sort_3d(
        &mut self,
        points: &[[f64; 3]],
        ranks: &mut Vec<u32>,
    ) -> Result<(), SearchError> {
        check_points(points.iter().flatten(), 3)?;
        check_len(points.len())?;
        self.rows.clear();
        self.rows.extend(points.iter().enumerate().map(|(i, p)| {
            (
                [order_key(p[0]), order_key(p[1]), order_key(p[2])],
                i as u32,
            )
        }));
        self.sweep_3d(ranks, points.len());
        Ok(())
    }

    /// Sorts points of `dims` objectives (row-major in `points`) into `ranks`.
    pub fn sort(
        &mut self,
        points: &[f64],
        dims: usize,
        ranks: &mut Vec<u32>,
    ) -> Result<(), SearchError> {
        if dims == 0 || points.len() % dims != 0 {
            return Err(SearchError::InvalidPoints(format!(
                "{} coordinates do not make rows of {dims}",
                points.len()
            )));
        }
        check_points(points.iter(), dims)?;
        let n = points.len() / dims;
        check_len(n)?;
        match dims {
            2 | 3 => {
                self.rows.clear();
                self.rows
                    .extend(points.chunks_exact(dims).enumerate().map(|(i, p)| {
                        // A constant third objective changes no dominance relation.
                        let third = p.get(2).map_or(0, |&z| order_key(z));
                        ([order_key(p[0]), order_key(p[1]), third], i as u32)
                    }));
                self.sweep_3d(ranks, n);
            }
            _ => self.sweep_general(points, dims, ranks, n),
        }
        Ok(())
    }

    fn sweep_3d(&mut self, ranks: &mut Vec<u32>, n: usize) {
        ranks.clear();
        ranks.resize(n, 0);
        // Index as the last key makes the order total, hence deterministic.
        self.rows.sort_unstable();
        for s in &mut self.staircases {
            s.clear();
        }
        let mut used = 0usize;
        let mut previous: Option<([u64; 3], u32)> = None;
        for &(key, index) in &self.rows {
            if let Some((_, prank)) = previous.filter(|&(pkey, _)| pkey == key) {
                ranks[index as usize] = prank;
                continue;
            }
            let [_, y, z] = key;
            // First front whose staircase holds no point weakly below (y, z).
            let stairs = &self.staircases;
            let lo = first_free(used, |k| {
                stairs[k].predecessor(y, true).is_some_and(|sz| sz <= z)
            });
            if lo == used {
                if used == self.staircases.len() {
                    self.staircases.push(Staircase::default());
                }
                used += 1;
            }
            // Members no better than p in (y, z) can no longer decide anything: p answers for them.
            self.staircases[lo].insert(y, z, |&sz| sz >= z, |_| {});
            ranks[index as usize] = lo as u32;
            previous = Some((key, lo as u32));
        }
    }

    fn sweep_general(&mut self, points: &[f64], dims: usize, ranks: &mut Vec<u32>, n: usize) {
        ranks.clear();
        ranks.resize(n, 0);
        self.keys.clear();
        self.keys.extend(points.iter().map(|&x| order_key(x)));
        let keys = &self.keys;
        self.order.clear();
        self.order.extend(0..n as u32);
        self.order.sort_unstable_by(|&a, &b| {
            let ka = &keys[a as usize * dims..(a as usize + 1) * dims];
            let kb = &keys[b as usize * dims..(b as usize + 1) * dims];
            ka.cmp(kb).then(a.cmp(&b))
        });
        for m in &mut self.members {
            m.clear();
        }
        let mut used = 0usize;
        let mut previous: Option<u32> = None;
        for &index in &self.order {
            let p = &keys[index as usize * dims..(index as usize + 1) * dims];
            if let Some(prev) = previous {
                let q = &keys[prev as usize * dims..(prev as usize + 1) * dims];
                if p == q {
                    ranks[index as usize] = ranks[prev as usize];
                    continue;
                }
            }
            // Every member came earlier in lexicographic order and differs from p, so "no
            // larger anywhere" already means "dominates". Recent members are the likeliest
            // dominators, hence the reverse scan.
            let members = &self.members;
            let lo = first_free(used, |k| {
                members[k].iter().rev().any(|&q| {
                    let q = &keys[q as usize * dims..(q as usize + 1) * dims];
                    q.iter().zip(p).all(|(a, b)| a <= b)
                })
            });
            if lo == used {
                if used == self.members.len() {
                    self.members.push(Vec::new());
                }
                used += 1;
            }
            self.members[lo].push(index);
            ranks[index as usize] = lo as u32;
            previous = Some(index);
        }
    }
}

/// The first of `used` fronts that does not dominate the point, given that domination is
/// monotone (if front k dominates p, so does every front before it).
///
/// Galloping from front 0 rather than bisecting all fronts: in a converged population most
/// points belong to the first few fronts, which this finds in one or two probes.
#[inline]
fn first_free(used: usize, dominated: impl Fn(usize) -> bool) -> usize {
    if used == 0 || !dominated(0) {
        return 0;
    }
    // Fronts up to `known` dominate the point; `hi` is the first known not to (or `used`).
    let mut known = 0;
    let mut step = 1;
    let mut hi = used;
    while known + step < used {
        let probe = known + step;
        if dominated(probe) {
            known = probe;
            step *= 2;
        } else {
            hi = probe;
            break;
        }
    }
    let mut lo = known + 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if dominated(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod search_tests {
    use super::first_free;

    #[test]
    fn first_free_finds_the_boundary() {
        for used in 0..40 {
            for boundary in 0..=used {
                assert_eq!(
                    first_free(used, |k| k < boundary),
                    boundary,
                    "{used} {boundary}"
                );
            }
        }
    }
}

fn check_points<'a>(coords: impl Iterator<Item = &'a f64>, dims: usize) -> Result<(), SearchError> {
    for (i, x) in coords.enumerate() {
        if !x.is_finite() {
            return Err(SearchError::InvalidPoints(format!(
                "point {} has a non-finite coordinate ({x})",
                i / dims
            )));
        }
    }
    Ok(())
}

fn check_len(n: usize) -> Result<(), SearchError> {
    if n > u32::MAX as usize {
        return Err(SearchError::InvalidPoints(format!(
            "{n} points are more than a sort can index"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_preserves_order_and_merges_zeros() {
        let xs = [-1e300, -2.5, -1e-300, 0.0, 1e-300, 3.0, 1e300];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{w:?}");
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }

    #[test]
    fn dominance_basics() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 4.0], &[2.0, 3.0]));
        assert!(!dominates(&[1.0], &[2.0, 3.0]));
    }

    #[test]
    fn small_known_case() {
        let pts = [
            [1.0, 1.0, 1.0],
            [2.0, 2.0, 2.0],
            [0.0, 3.0, 1.0],
            [1.0, 1.0, 1.0],
            [3.0, 3.0, 3.0],
            [2.0, 0.5, 5.0],
        ];
        assert_eq!(non_dominated_sort_3d(&pts).unwrap(), [0, 1, 0, 0, 2, 0]);
        let flat: Vec<f64> = pts.iter().flatten().copied().collect();
        assert_eq!(non_dominated_sort(&flat, 3).unwrap(), [0, 1, 0, 0, 2, 0]);
    }

    #[test]
    fn rejects_nan_and_ragged_rows() {
        assert!(non_dominated_sort_3d(&[[0.0, f64::NAN, 1.0]]).is_err());
        assert!(non_dominated_sort(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(non_dominated_sort(&[], 0).is_err());
        assert_eq!(non_dominated_sort(&[], 4).unwrap(), Vec::<u32>::new());
    }
}
