//! Additive per-layer costs of a grid space. Latency sums of table lookups, params and MACs are
//! all separable over layers, so a search can precompute one value per (layer, choice) plus the
//! fixed parts and evaluate an architecture with one addition per layer: the hot path of a
//! search that evaluates millions of architectures.

use crate::block::Block;
use crate::block::BlockKey;
use crate::latency::{LatencyTable, Statistic};
use crate::space::SearchSpace;

/// A cost of every (layer, choice) of a space plus the cost of its fixed parts.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCosts {
    fixed: f64,
    choices: usize,
    /// Row-major: `per_choice[layer * choices + choice]`.
    per_choice: Vec<f64>,
}

impl LayerCosts {
    fn build(space: &SearchSpace, mut cost: impl FnMut(&Block) -> f64) -> Self {
        let mut fixed = 0.0;
        for b in space.stem_blocks().iter().chain(&space.head_blocks()) {
            fixed += cost(b);
        }
        let choices = space.choices().len();
        let mut per_choice = Vec::with_capacity(space.layers().len() * choices);
        for layer in 0..space.layers().len() {
            for c in space.choices() {
                per_choice.push(cost(&Block::new(
                    space.choice_op(layer, c),
                    space.layer_input(layer),
                )));
            }
        }
        Self {
            fixed,
            choices,
            per_choice,
        }
    }

    /// Parameters of every choice (and the fixed parts).
    pub fn params(space: &SearchSpace) -> Self {
        Self::build(space, |b| b.params as f64)
    }

    /// MACs of every choice (and the fixed parts).
    pub fn macs(space: &SearchSpace) -> Self {
        Self::build(space, |b| b.macs as f64)
    }

    /// Latency of every choice from a table, or the keys the table lacks (sorted, distinct):
    /// a search must never see a silent zero.
    pub fn latency(
        space: &SearchSpace,
        table: &LatencyTable,
        stat: Statistic,
    ) -> Result<Self, Vec<BlockKey>> {
        let mut missing = Vec::new();
        let costs = Self::build(space, |b| match table.get(&b.key) {
            Some(e) => e.get(stat),
            None => {
                missing.push(b.key.clone());
                0.0
            }
        });
        if missing.is_empty() {
            Ok(costs)
        } else {
            missing.sort();
            missing.dedup();
            Err(missing)
        }
    }

    /// The cost of an architecture given by its choices (checked against the space before).
    ///
    /// # Panics
    /// When `choices` has more layers than the space or a choice out of range.
    #[inline]
    pub fn eval(&self, choices: &[u8]) -> f64 {
        let mut total = self.fixed;
        for (layer, &c) in choices.iter().enumerate() {
            total += self.per_choice[layer * self.choices + usize::from(c)];
        }
        total
    }

    fn layers(&self) -> impl Iterator<Item = &[f64]> {
        self.per_choice.chunks(self.choices)
    }

    /// The lowest cost any architecture of the space has.
    pub fn min(&self) -> f64 {
        self.fixed
            + self
                .layers()
                .map(|l| l.iter().copied().fold(f64::INFINITY, f64::min))
                .sum::<f64>()
    }

    /// The highest cost any architecture of the space has.
    pub fn max(&self) -> f64 {
        self.fixed
            + self
                .layers()
                .map(|l| l.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchSpec;
    use crate::latency::TableEntry;
    use crate::stats::Summary;
    use proptest::prelude::*;

    fn full_table(space: &SearchSpace) -> LatencyTable {
        let mut t = LatencyTable::default();
        for (i, b) in space.distinct_blocks().iter().enumerate() {
            let ms = 0.5 + (i % 17) as f64 * 0.37;
            t.insert(
                b.block.key.clone(),
                TableEntry::from_summary(&Summary::from_samples(&[ms; 6]).unwrap()),
            );
        }
        t
    }

    proptest! {
        #[test]
        fn layer_costs_agree_with_expansion(choices in prop::collection::vec(0i64..12, 14)) {
            let space = SearchSpace::moga_mbv3();
            let arch = space.resolve(&ArchSpec::Choices { space: None, choices }).unwrap();
            let analysis = space.analyze(&arch);
            let c = arch.choices().unwrap();
            prop_assert_eq!(LayerCosts::params(&space).eval(c), analysis.params as f64);
            prop_assert_eq!(LayerCosts::macs(&space).eval(c), analysis.macs as f64);
            let table = full_table(&space);
            let lat = LayerCosts::latency(&space, &table, Statistic::Median).unwrap();
            let predicted = table.predict(&analysis.blocks, Statistic::Median).total_ms.unwrap();
            prop_assert!((lat.eval(c) - predicted).abs() < 1e-9);
            prop_assert!(lat.min() <= lat.eval(c) && lat.eval(c) <= lat.max());
        }
    }

    #[test]
    fn missing_blocks_are_listed() {
        let space = SearchSpace::moga_mbv3();
        let mut table = full_table(&space);
        let gone = space.distinct_blocks()[40].block.key.clone();
        table.entries.remove(&gone);
        assert_eq!(
            LayerCosts::latency(&space, &table, Statistic::Min),
            Err(vec![gone])
        );
    }
}
