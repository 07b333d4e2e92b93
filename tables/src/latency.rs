//! Latency lookup tables and predictions of whole architectures from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockKey};
use crate::stats::Summary;

/// Which statistic of an entry a prediction sums. Medians are the default; under scheduler
/// noise low quantiles add up better (see DESIGN section 6), and validation decides per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    #[default]
    Median,
    Min,
    P10,
    Mean,
}

/// One block's figures on one (device, framework), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub median_ms: f64,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub iqr_ms: f64,
    pub mad_ms: f64,
    pub ci_low_ms: Option<f64>,
    pub ci_high_ms: Option<f64>,
    pub count: usize,
}

impl TableEntry {
    pub fn from_summary(s: &Summary) -> Self {
        Self {
            median_ms: s.median,
            min_ms: s.min,
            p10_ms: s.p10,
            p90_ms: s.p90,
            mean_ms: s.mean,
            iqr_ms: s.iqr,
            mad_ms: s.mad,
            ci_low_ms: s.median_ci.map(|c| c.low),
            ci_high_ms: s.median_ci.map(|c| c.high),
            count: s.count,
        }
    }

    pub fn get(&self, stat: Statistic) -> f64 {
        match stat {
            Statistic::Median => self.median_ms,
            Statistic::Min => self.min_ms,
            Statistic::P10 => self.p10_ms,
            Statistic::Mean => self.mean_ms,
        }
    }

    /// A standard-error-like spread of the entry: half the median's CI where there is one,
    /// else the IQR scaled to a normal sigma (IQR / 1.349).
    pub fn spread_ms(&self) -> f64 {
        match (self.ci_low_ms, self.ci_high_ms) {
            (Some(lo), Some(hi)) => (hi - lo) / 2.0,
            _ => self.iqr_ms / 1.349,
        }
    }
}

/// A latency lookup table of one (device, framework, space): one entry per block key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    pub entries: BTreeMap<BlockKey, TableEntry>,
}

/// One block's part of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockLatency {
    pub key: BlockKey,
    /// None when the table has no entry for the block.
    pub ms: Option<f64>,
}

/// The predicted latency of one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Sum over the blocks; None whenever a block is missing, never a silent partial sum.
    pub total_ms: Option<f64>,
    /// Root-sum-square of the blocks' spreads (blocks measured independently).
    pub uncertainty_ms: Option<f64>,
    pub statistic: Statistic,
    pub blocks: Vec<BlockLatency>,
    /// Keys without an entry, in block order, without repeats.
    pub missing: Vec<BlockKey>,
}

impl LatencyTable {
    pub fn insert(&mut self, key: BlockKey, entry: TableEntry) {
        self.entries.insert(key, entry);
    }

    pub fn get(&self, key: &BlockKey) -> Option<&TableEntry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks every block up and sums the chosen statistic.
    pub fn predict(&self, blocks: &[Block], stat: Statistic) -> Prediction {
        let mut missing: Vec<BlockKey> = Vec::new();
        let mut total = 0.0;
        let mut variance = 0.0;
        let breakdown = blocks
            .iter()
            .map(|b| {
                let ms = self.entries.get(&b.key).map(|e| {
                    total += e.get(stat);
                    variance += e.spread_ms().powi(2);
                    e.get(stat)
                });
                if ms.is_none() && !missing.contains(&b.key) {
                    missing.push(b.key.clone());
                }
                BlockLatency {
                    key: b.key.clone(),
                    ms,
                }
            })
            .collect();
        let complete = missing.is_empty();
        Prediction {
            total_ms: complete.then_some(total),
            uncertainty_ms: complete.then(|| variance.sqrt()),
            statistic: stat,
            blocks: breakdown,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchSpec;
    use crate::space::SearchSpace;
    use proptest::prelude::*;

    fn entry(ms: f64) -> TableEntry {
        TableEntry::from_summary(&Summary::from_samples(&[ms; 8]).unwrap())
    }

    #[test]
    fn missing_blocks_give_no_total() {
        let space = SearchSpace::moga_mbv3();
        let arch = space.resolve(&ArchSpec::from("MoGA-A")).unwrap();
        let blocks = space.expand(&arch);
        let mut table = LatencyTable::default();
        for b in &blocks[1..] {
            table.insert(b.key.clone(), entry(1.0));
        }
        let p = table.predict(&blocks, Statistic::Median);
        assert_eq!(p.total_ms, None);
        assert_eq!(p.missing, vec![blocks[0].key.clone()]);
        assert_eq!(p.blocks[0].ms, None);
        table.insert(blocks[0].key.clone(), entry(2.0));
        let p = table.predict(&blocks, Statistic::Median);
        assert_eq!(p.total_ms, Some(blocks.len() as f64 + 1.0));
        assert!(p.missing.is_empty());
    }

    proptest! {
        #[test]
        fn the_grid_predictor_agrees_with_the_table(
            choices in prop::collection::vec(0i64..12, 14),
            times in prop::collection::vec(0.001f64..50.0, 126),
            drop in 0usize..140,
        ) {
            let space = SearchSpace::moga_mbv3();
            let mut table = LatencyTable::default();
            for (i, (b, t)) in space.distinct_blocks().iter().zip(&times).enumerate() {
                if i != drop {
                    table.insert(b.block.key.clone(), entry(*t));
                }
            }
            let arch = space.resolve(&ArchSpec::Choices { space: None, choices }).unwrap();
            let slow = table.predict(&space.expand(&arch), Statistic::P10);
            let grid = GridPredictor::new(&space, &table, Statistic::P10);
            let mut blocks = Vec::new();
            let fast = grid.predict(arch.choices().unwrap(), Some(&mut blocks));
            prop_assert_eq!(fast.total_ms.is_some(), slow.total_ms.is_some());
            if let (Some(a), Some(b)) = (fast.total_ms, slow.total_ms) {
                prop_assert!((a - b).abs() < 1e-9);
                prop_assert!((fast.uncertainty_ms.unwrap() - slow.uncertainty_ms.unwrap()).abs() < 1e-9);
            }
            prop_assert_eq!(fast.missing, slow.missing.iter().map(|k| k.as_str()).collect::<Vec<_>>());
            prop_assert_eq!(blocks.len(), slow.blocks.len());
            for (f, s) in blocks.iter().zip(&slow.blocks) {
                prop_assert_eq!(f.key, s.key.as_str());
                prop_assert_eq!(f.ms, s.ms);
            }
        }

        #[test]
        fn total_is_the_sum_of_the_breakdown(
            choices in prop::collection::vec(0i64..12, 14),
            times in prop::collection::vec(0.001f64..50.0, 126),
        ) {
            let space = SearchSpace::moga_mbv3();
            let mut table = LatencyTable::default();
            for (b, t) in space.distinct_blocks().iter().zip(&times) {
                table.insert(b.block.key.clone(), entry(*t));
            }
            let arch = space.resolve(&ArchSpec::Choices { space: None, choices }).unwrap();
            let p = table.predict(&space.expand(&arch), Statistic::Median);
            let sum: f64 = p.blocks.iter().map(|b| b.ms.unwrap()).sum();
            prop_assert!((p.total_ms.unwrap() - sum).abs() < 1e-9);
            prop_assert_eq!(p.blocks.len(), 2 + 14 + 4);
        }
    }
}

/// A table laid over a space's grid for one statistic: the value and spread of every
/// (layer, choice) and fixed block looked up once, so predicting an architecture is one array
/// read per layer. This is what makes batches of thousands of predictions cheap.
#[derive(Debug, Clone)]
pub struct GridPredictor<'s> {
    space: &'s crate::space::SearchSpace,
    stat: Statistic,
    /// (value, spread²) per fixed block: stem blocks then head blocks.
    fixed: Vec<Option<(f64, f64)>>,
    /// (value, spread²) per (layer, choice), row-major.
    cells: Vec<Option<(f64, f64)>>,
}

/// One block of a grid prediction, borrowing its key from the space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockMs<'s> {
    pub key: &'s str,
    pub ms: Option<f64>,
}

impl<'s> GridPredictor<'s> {
    pub fn new(
        space: &'s crate::space::SearchSpace,
        table: &LatencyTable,
        stat: Statistic,
    ) -> Self {
        let look = |b: &Block| {
            table
                .get(&b.key)
                .map(|e| (e.get(stat), e.spread_ms().powi(2)))
        };
        let fixed = space
            .stem_blocks()
            .iter()
            .chain(&space.head_blocks())
            .map(look)
            .collect();
        let choices = space.choices().len();
        let cells = (0..space.layers().len() * choices)
            .map(|i| look(space.choice_block(i / choices, i % choices)))
            .collect();
        Self {
            space,
            stat,
            fixed,
            cells,
        }
    }

    /// Predicts a grid architecture (choices checked against the space before). With
    /// `breakdown`, `blocks` receives every block in execution order.
    pub fn predict(
        &self,
        choices: &[u8],
        breakdown: Option<&mut Vec<BlockMs<'s>>>,
    ) -> GridPrediction<'s> {
        let space = self.space;
        let n_choices = space.choices().len();
        let (stem, head) = (space.stem_blocks().len(), space.head_blocks().len());
        let mut total = 0.0;
        let mut variance = 0.0;
        let mut missing: Vec<&'s str> = Vec::new();
        let mut out = breakdown;
        let mut visit = |key: &'s str, cell: Option<(f64, f64)>| {
            match cell {
                Some((v, s2)) => {
                    total += v;
                    variance += s2;
                }
                None if !missing.contains(&key) => missing.push(key),
                None => {}
            }
            if let Some(out) = out.as_deref_mut() {
                out.push(BlockMs {
                    key,
                    ms: cell.map(|c| c.0),
                });
            }
        };
        let stem_blocks = space.stem_block_refs();
        for (i, b) in stem_blocks.iter().enumerate() {
            visit(b.key.as_str(), self.fixed[i]);
        }
        for (layer, &c) in choices.iter().enumerate() {
            let i = layer * n_choices + usize::from(c);
            visit(
                space.choice_block(layer, usize::from(c)).key.as_str(),
                self.cells[i],
            );
        }
        for (i, b) in space.head_block_refs().iter().enumerate() {
            visit(b.key.as_str(), self.fixed[stem + i]);
        }
        debug_assert_eq!(self.fixed.len(), stem + head);
        let complete = missing.is_empty();
        GridPrediction {
            total_ms: complete.then_some(total),
            uncertainty_ms: complete.then(|| variance.sqrt()),
            statistic: self.stat,
            missing,
        }
    }
}

/// The totals of a grid prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPrediction<'s> {
    pub total_ms: Option<f64>,
    pub uncertainty_ms: Option<f64>,
    pub statistic: Statistic,
    pub missing: Vec<&'s str>,
}
