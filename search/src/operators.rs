//! Variation operators on genomes: sampling, uniform crossover, mutation.

use crate::rng::Rng;

/// A uniformly random genome.
#[cfg(test)]
pub(crate) fn random_genome(rng: &mut Rng, choices: &[u16]) -> crate::Genome {
    let mut g = Vec::new();
    fill_random(rng, choices, &mut g);
    g
}

/// Overwrites `genome` with a uniformly random one.
pub(crate) fn fill_random(rng: &mut Rng, choices: &[u16], genome: &mut Vec<u8>) {
    genome.clear();
    genome.extend(choices.iter().map(|&c| rng.below(u64::from(c)) as u8));
}

/// Uniform crossover in place: each layer is swapped between the two children with
/// probability 1/2, so every layer's choice is inherited from either parent independently.
pub(crate) fn uniform_crossover(rng: &mut Rng, a: &mut [u8], b: &mut [u8]) {
    let mut bits = 0u64;
    for (l, (x, y)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
        if l % 64 == 0 {
            bits = rng.next_u64();
        }
        if bits & 1 == 1 {
            std::mem::swap(x, y);
        }
        bits >>= 1;
    }
}

/// Mutates each layer with probability `prob` to a *different* choice (uniform among the
/// others), returning how many layers changed.
///
/// Redrawing the same choice would waste the mutation, so the new choice is drawn from the
/// other `c - 1`. A layer with a single choice cannot change; the chance is still drawn so the
/// random stream does not depend on which layers those are.
pub(crate) fn mutate(rng: &mut Rng, genome: &mut [u8], choices: &[u16], prob: f64) -> usize {
    // One integer comparison per layer: P(draw < threshold) = prob, up to 2^-64.
    let always = prob >= 1.0;
    let threshold = (prob * 18_446_744_073_709_551_616.0) as u64;
    let mut changed = 0;
    for (g, &c) in genome.iter_mut().zip(choices) {
        let hit = rng.next_u64() < threshold || always;
        if hit && c >= 2 {
            let c = u64::from(c);
            let step = 1 + rng.below(c - 1);
            *g = ((u64::from(*g) + step) % c) as u8;
            changed += 1;
        }
    }
    changed
}

/// An exact set of equal-length genomes kept in one byte arena with an open-addressing index,
/// so the duplicate checks of every generation allocate nothing per genome.
///
/// Only ever queried, never iterated, so its layout cannot influence results.
#[derive(Debug, Clone, Default)]
pub(crate) struct GenomeSet {
    len: usize,
    bytes: Vec<u8>,
    hashes: Vec<u64>,
    slots: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

fn genome_hash(g: &[u8]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3 ^ g.len() as u64;
    let mut chunks = g.chunks_exact(8);
    let mut mix = |w: u64| h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        mix(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        mix(u64::from_le_bytes(w));
    }
    // splitmix64's finaliser: every input bit reaches the low bits the index uses.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

impl GenomeSet {
    /// Empties the set for genomes of `len` layers, sized for about `expected` of them.
    pub(crate) fn reset(&mut self, len: usize, expected: usize) {
        self.len = len;
        self.bytes.clear();
        self.hashes.clear();
        let want = (expected.max(8) * 2).next_power_of_two();
        if self.slots.len() == want {
            self.slots.fill(EMPTY);
        } else {
            self.slots = vec![EMPTY; want];
        }
    }

    /// Adds `g` (of the length given to `reset`); false when it was already there.
    pub(crate) fn insert(&mut self, g: &[u8]) -> bool {
        if (self.hashes.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let h = genome_hash(g);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY {
                self.slots[i] = self.hashes.len() as u32;
                self.hashes.push(h);
                self.bytes.extend_from_slice(g);
                return true;
            }
            let id = id as usize;
            if self.hashes[id] == h && &self.bytes[id * self.len..(id + 1) * self.len] == g {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        self.slots = vec![EMPTY; size];
        let mask = size - 1;
        for (id, &h) in self.hashes.iter().enumerate() {
            let mut i = h as usize & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = id as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    #[test]
    fn genome_set_is_exact() {
        let mut set = GenomeSet::default();
        let mut rng = Rng::seed_from_u64(3);
        for round in 0..3 {
            set.reset(5, 10 * round);
            let mut model = std::collections::HashSet::new();
            for _ in 0..3000 {
                let g = random_genome(&mut rng, &[4, 4, 3, 2, 5]);
                assert_eq!(set.insert(&g), model.insert(g));
            }
        }
    }

    proptest! {
        #[test]
        fn mutation_changes_exactly_the_chosen_layers(
            seed: u64,
            choices in proptest::collection::vec(1u16..=256, 1..40),
            prob in 0.0f64..=1.0,
        ) {
            let mut rng = Rng::seed_from_u64(seed);
            let before = random_genome(&mut rng, &choices);
            let mut after = before.clone();
            let changed = mutate(&mut rng, &mut after, &choices, prob);
            let differ = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            // Every chosen layer moved to another choice, none left the layer's range.
            prop_assert_eq!(differ, changed);
            for (g, &c) in after.iter().zip(&choices) {
                prop_assert!(u16::from(*g) < c);
            }
        }

        #[test]
        fn certain_mutation_changes_every_multi_choice_layer(
            seed: u64,
            choices in proptest::collection::vec(1u16..=12, 1..40),
        ) {
            let mut rng = Rng::seed_from_u64(seed);
            let before = random_genome(&mut rng, &choices);
            let mut after = before.clone();
            mutate(&mut rng, &mut after, &choices, 1.0);
            for ((a, b), &c) in before.iter().zip(&after).zip(&choices) {
                prop_assert_eq!(a != b, c >= 2);
            }
        }

        #[test]
        fn crossover_takes_each_layer_from_a_parent(seed: u64, layers in 1usize..200) {
            let mut rng = Rng::seed_from_u64(seed);
            let choices = vec![200u16; layers];
            let a = random_genome(&mut rng, &choices);
            let b = random_genome(&mut rng, &choices);
            let (mut x, mut y) = (a.clone(), b.clone());
            uniform_crossover(&mut rng, &mut x, &mut y);
            for l in 0..layers {
                prop_assert!((x[l] == a[l] && y[l] == b[l]) || (x[l] == b[l] && y[l] == a[l]));
            }
        }
    }
}
