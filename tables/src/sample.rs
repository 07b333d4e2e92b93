//! Seeded random architectures of a grid space: the same (seed, n) gives the same list on every
//! platform and in every release, so a campaign's validation set and a framework scatter drawn
//! with the same seed are the very same networks (and the first n of a longer draw).

/// splitmix64, stepped once per layer of each architecture.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` architectures of `layers` layers, each layer's choice uniform in `0..choices`
/// (`choices` at least 1 and at most 256).
pub fn random_choices(layers: usize, choices: usize, n: usize, seed: u64) -> Vec<Vec<u8>> {
    assert!(
        (1..=256).contains(&choices),
        "a layer has 1 to 256 choices, got {choices}"
    );
    let mut rng = SplitMix64(seed ^ 0x6a09_e667_f3bc_c909);
    (0..n)
        .map(|_| {
            (0..layers)
                .map(|_| (rng.next() % choices as u64) as u8)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_seeded_in_range_and_prefix_stable() {
        let a = random_choices(14, 12, 50, 7);
        assert_eq!(a, random_choices(14, 12, 50, 7));
        assert_ne!(a, random_choices(14, 12, 50, 8));
        assert_eq!(&random_choices(14, 12, 100, 7)[..50], &a[..]);
        assert!(a.iter().all(|c| c.len() == 14 && c.iter().all(|&x| x < 12)));
        // Pinned: campaigns created before this module existed drew exactly these.
        assert_eq!(
            random_choices(3, 12, 2, 0),
            vec![vec![6, 8, 2], vec![8, 7, 0]]
        );
    }
}
