//! The shape of the search space: how many layers, how many choices each.

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// One architecture: the choice index of every layer.
pub type Genome = Vec<u8>;

/// Most choices one layer can have: genomes store a choice in a `u8`.
pub const MAX_CHOICES: usize = 256;

/// Most layers a problem can have; far above any real supernet, and it bounds the work of one
/// genome operation.
pub const MAX_LAYERS: usize = 4096;

/// Layers and choices per layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProblemRecord", into = "ProblemRecord")]
pub struct ProblemSize {
    pub(crate) choices: Vec<u16>,
}

#[derive(Serialize, Deserialize)]
struct ProblemRecord {
    choices: Vec<usize>,
}

impl TryFrom<ProblemRecord> for ProblemSize {
    type Error = SearchError;
    fn try_from(r: ProblemRecord) -> Result<Self, SearchError> {
        ProblemSize::per_layer(r.choices)
    }
}

impl From<ProblemSize> for ProblemRecord {
    fn from(p: ProblemSize) -> Self {
        ProblemRecord {
            choices: p.choices.iter().map(|&c| usize::from(c)).collect(),
        }
    }
}

impl ProblemSize {
    /// `layers` layers with the same number of `choices` each (MoGA's space: 20 × 12).
    pub fn uniform(layers: usize, choices: usize) -> Result<Self, SearchError> {
        if layers > MAX_LAYERS {
            return Err(SearchError::InvalidProblem(format!(
                "{layers} layers, at most {MAX_LAYERS} are supported"
            )));
        }
        Self::per_layer(vec![choices; layers])
    }

    /// A possibly different number of choices per layer.
    pub fn per_layer(choices: Vec<usize>) -> Result<Self, SearchError> {
        if choices.is_empty() || choices.len() > MAX_LAYERS {
            return Err(SearchError::InvalidProblem(format!(
                "{} layers, need 1..={MAX_LAYERS}",
                choices.len()
            )));
        }
        if let Some((l, c)) = choices
            .iter()
            .enumerate()
            .find(|&(_, &c)| c == 0 || c > MAX_CHOICES)
        {
            return Err(SearchError::InvalidProblem(format!(
                "layer {l} has {c} choices, need 1..={MAX_CHOICES}"
            )));
        }
        Ok(Self {
            choices: choices.iter().map(|&c| c as u16).collect(),
        })
    }

    /// Number of layers (the genome length).
    pub fn layers(&self) -> usize {
        self.choices.len()
    }

    /// Number of choices of every layer.
    pub fn choices(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.choices.iter().map(|&c| usize::from(c))
    }

    pub(crate) fn choice_counts(&self) -> &[u16] {
        &self.choices
    }

    /// Number of distinct genomes, `None` when it exceeds `u128`.
    pub fn space_size(&self) -> Option<u128> {
        self.choices
            .iter()
            .try_fold(1u128, |acc, &c| acc.checked_mul(u128::from(c)))
    }

    /// Checks that a genome has one valid choice per layer.
    pub fn check(&self, genome: &[u8]) -> Result<(), SearchError> {
        if genome.len() != self.choices.len() {
            return Err(SearchError::InvalidGenome(format!(
                "{} layers, the problem has {}",
                genome.len(),
                self.choices.len()
            )));
        }
        match genome
            .iter()
            .zip(&self.choices)
            .position(|(&g, &c)| u16::from(g) >= c)
        {
            Some(l) => Err(SearchError::InvalidGenome(format!(
                "layer {l} has choice {}, the layer has {}",
                genome[l], self.choices[l]
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let p = ProblemSize::uniform(20, 12).unwrap();
        assert_eq!(p.layers(), 20);
        assert_eq!(p.space_size(), Some(12u128.pow(20)));
        assert!(ProblemSize::uniform(0, 12).is_err());
        assert!(ProblemSize::uniform(3, 0).is_err());
        assert!(ProblemSize::uniform(3, 257).is_err());
        assert!(ProblemSize::uniform(MAX_LAYERS + 1, 2).is_err());
        assert_eq!(ProblemSize::uniform(200, 256).unwrap().space_size(), None);
        assert!(p.check(&[0; 20]).is_ok());
        assert!(p.check(&[0; 19]).is_err());
        let mut g = vec![0u8; 20];
        g[5] = 12;
        assert!(p.check(&g).is_err());
    }
}
