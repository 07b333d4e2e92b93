//! The 2-D staircase both the 3-D sort and the 3-D hypervolume sweep maintain: a set of points
//! mutually non-dominated in two coordinates, ordered by the first (the key), so the second
//! strictly decreases along it.
//!
//! Small staircases (the common case: fronts of a few hundred members) live in a sorted `Vec`,
//! where binary search and short `memmove`s beat a tree's pointer chasing and per-node
//! allocations, and the buffer is reused between sorts. Past `SPILL` entries a staircase moves
//! to a `BTreeMap`, so a long single front stays O(log n) per operation instead of paying
//! O(n) moves.

use std::collections::BTreeMap;

const SPILL: usize = 512;

#[derive(Debug, Clone)]
pub(crate) enum Staircase<V> {
    Small(Vec<(u64, V)>),
    Large(BTreeMap<u64, V>),
}

impl<V> Default for Staircase<V> {
    fn default() -> Self {
        Staircase::Small(Vec::new())
    }
}

impl<V: Copy> Staircase<V> {
    pub(crate) fn clear(&mut self) {
        match self {
            Staircase::Small(v) => v.clear(),
            Staircase::Large(_) => *self = Staircase::Small(Vec::new()),
        }
    }

    /// The entry with the greatest key `<= key` (`< key` unless `inclusive`).
    #[inline]
    pub(crate) fn predecessor(&self, key: u64, inclusive: bool) -> Option<V> {
        match self {
            Staircase::Small(v) => {
                let i = if inclusive {
                    v.partition_point(|e| e.0 <= key)
                } else {
                    v.partition_point(|e| e.0 < key)
                };
                i.checked_sub(1).map(|i| v[i].1)
            }
            Staircase::Large(m) => {
                let found = if inclusive {
                    m.range(..=key).next_back()
                } else {
                    m.range(..key).next_back()
                };
                found.map(|(_, &v)| v)
            }
        }
    }

    /// Inserts `(key, value)` after removing the run of entries from `key` on for which
    /// `doomed` holds (those the new entry dominates); each removed value is passed to `removed`
    /// in key order. Returns the first entry kept after the run, if any.
    pub(crate) fn insert(
        &mut self,
        key: u64,
        value: V,
        mut doomed: impl FnMut(&V) -> bool,
        mut removed: impl FnMut(&V),
    ) -> Option<V> {
        match self {
            Staircase::Small(v) => {
                let start = v.partition_point(|e| e.0 < key);
                let mut end = start;
                while end < v.len() && doomed(&v[end].1) {
                    removed(&v[end].1);
                    end += 1;
                }
                let next = v.get(end).map(|e| e.1);
                if end > start {
                    v[start] = (key, value);
                    v.drain(start + 1..end);
                } else {
                    v.insert(start, (key, value));
                }
                if v.len() > SPILL {
                    let map = v.drain(..).collect();
                    *self = Staircase::Large(map);
                }
                next
            }
            Staircase::Large(m) => {
                let mut gone = Vec::new();
                let mut next = None;
                for (&k, val) in m.range(key..) {
                    if doomed(val) {
                        removed(val);
                        gone.push(k);
                    } else {
                        next = Some(*val);
                        break;
                    }
                }
                for k in gone {
                    m.remove(&k);
                }
                m.insert(key, value);
                next
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_agree() {
        // A deterministic pseudo-random walk of inserts, mirrored into a naive model.
        let mut s: Staircase<u64> = Staircase::default();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut x = 99u64;
        for _ in 0..5000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            // Anti-correlated, so the staircase grows past the spill size.
            let k = (x >> 40) % 4000;
            let v = 4000 - k + (x >> 20) % 5;
            let covered = s.predecessor(k, true).is_some_and(|pv| pv <= v);
            let model_covered = model.iter().any(|&(mk, mv)| mk <= k && mv <= v);
            assert_eq!(covered, model_covered);
            assert_eq!(
                s.predecessor(k, false),
                model
                    .iter()
                    .filter(|e| e.0 < k)
                    .max_by_key(|e| e.0)
                    .map(|e| e.1)
            );
            if !covered {
                let mut removed = Vec::new();
                s.insert(k, v, |&sv| sv >= v, |&sv| removed.push(sv));
                let mut expect: Vec<u64> = model
                    .iter()
                    .filter(|e| e.0 >= k && e.1 >= v)
                    .map(|e| e.1)
                    .collect();
                expect.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(removed, expect);
                model.retain(|e| !(e.0 >= k && e.1 >= v));
                model.push((k, v));
            }
        }
        assert!(matches!(s, Staircase::Large(_)));
        s.clear();
        assert_eq!(s.predecessor(u64::MAX, true), None);
    }
}
