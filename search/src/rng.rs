//! Portable seeded random numbers.
//!
//! The search must give the same front for the same seed on every platform and across crate
//! upgrades, and its state must fit in a checkpoint. `rand`'s generators may change between
//! versions, so the crate carries its own: splitmix64 to expand a seed, xoshiro256** to draw.

use crate::SearchError;

/// Scale from 53 random bits to [0, 1): the draw is exactly representable, so every platform
/// produces the same float.
const F64_UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;

/// splitmix64 (Steele, Lea, Flood 2014).
///
/// Used to expand one `u64` seed into a full xoshiro state, and by the synthetic benchmark
/// problem, whose tables are defined by splitmix64 draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first draw is derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits, as the synthetic benchmark defines it.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * F64_UNIT
    }
}

/// xoshiro256** (Blackman, Vigna 2018): the engine's generator.
///
/// Small state (four words, stored in checkpoints), fast, and good enough statistically for
/// tournament and mutation draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Expands `seed` with splitmix64, so nearby seeds give unrelated streams.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        // splitmix64's output function is a bijection of its counter, so four consecutive
        // outputs are never all zero: the state is always valid.
        let s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        Self { s }
    }

    /// Restores a generator from [`Rng::state`], e.g. out of a checkpoint.
    ///
    /// The all-zero state is a fixed point of xoshiro (it would draw zeros forever), so it is
    /// refused.
    pub fn from_state(state: [u64; 4]) -> Result<Self, SearchError> {
        if state == [0; 4] {
            return Err(SearchError::InvalidCheckpoint(
                "the random generator state is all zero".into(),
            ));
        }
        Ok(Self { s: state })
    }

    /// The full state: together with the code version it determines every later draw.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * F64_UNIT
    }

    /// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's multiply-and-reject); 0 when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Uniform index in `0..n` (0 when `n == 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_vector() {
        // Reference outputs of xoshiro256** for the state {1, 2, 3, 4}.
        let mut r = Rng::from_state([1, 2, 3, 4]).unwrap();
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn splitmix_matches_synthetic_benchmark() {
        let mut sm = SplitMix64::new(20190804);
        assert_eq!(sm.next_f64(), 0.552090425640256);
    }

    #[test]
    fn zero_state_is_refused() {
        assert!(Rng::from_state([0; 4]).is_err());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::seed_from_u64(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = r.below(7) as usize;
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn state_round_trips() {
        let mut a = Rng::seed_from_u64(42);
        a.next_u64();
        let mut b = Rng::from_state(a.state()).unwrap();
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
