//! Where accuracy comes from. One trait for every source: the built-in proxy and the fitted
//! surrogate answer at once; the server's HTTP evaluator calls the user's own service. The
//! trait is async so a remote source fits, but nothing in this crate does I/O.

use std::future::Future;

use gpulut_tables::{LayerCosts, SearchSpace};

use crate::Genome;
use crate::surrogate::Surrogate;

/// Why a batch could not be evaluated. Shown to users as the search's failure reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("the accuracy evaluator is unreachable: {0}")]
    Unreachable(String),
    #[error("the accuracy evaluator answered nonsense: {0}")]
    InvalidAnswer(String),
}

/// A source of accuracy (top-1, in percent) for architectures of one space.
pub trait AccuracyEvaluator: Send + Sync {
    /// The accuracy of every architecture of `batch`, in order.
    fn evaluate(
        &self,
        batch: &[Genome],
    ) -> impl Future<Output = Result<Vec<f64>, EvalError>> + Send;

    /// `proxy`, `samples` or `http`: how results must be labelled.
    fn kind(&self) -> &'static str;

    /// The lowest and highest accuracy the source can give, when known: it fixes the
    /// normalisation of the search's hypervolume so progress is comparable across generations.
    fn bounds(&self) -> Option<(f64, f64)>;
}

/// A built-in prior computed from the architecture alone, for demos and smoke tests: more MACs,
/// more parameters and more squeeze-excitation predict higher accuracy, anchored so that
/// MobileNetV3-Large-sized networks land near its published 75.2%. It is **not** a measurement
/// and is labelled `proxy` wherever it appears.
#[derive(Debug, Clone)]
pub struct ProxyAccuracy {
    params: LayerCosts,
    macs: LayerCosts,
    /// Whether each choice index has squeeze-excitation.
    se: Vec<bool>,
    layers: usize,
}

impl ProxyAccuracy {
    pub fn new(space: &SearchSpace) -> Self {
        Self {
            params: LayerCosts::params(space),
            macs: LayerCosts::macs(space),
            se: space.choices().iter().map(|c| c.se).collect(),
            layers: space.layers().len(),
        }
    }

    fn formula(macs: f64, params: f64, se_layers: f64) -> f64 {
        75.2 + 4.0 * (macs / 219e6).ln() + 1.0 * (params / 5.4e6).ln() + 0.1 * se_layers
    }

    /// The proxy accuracy of one architecture.
    pub fn accuracy(&self, genome: &[u8]) -> f64 {
        let se = genome.iter().filter(|&&c| self.se[usize::from(c)]).count();
        Self::formula(self.macs.eval(genome), self.params.eval(genome), se as f64)
    }
}

impl AccuracyEvaluator for ProxyAccuracy {
    fn evaluate(
        &self,
        batch: &[Genome],
    ) -> impl Future<Output = Result<Vec<f64>, EvalError>> + Send {
        let out = batch.iter().map(|g| self.accuracy(g)).collect();
        std::future::ready(Ok(out))
    }

    fn kind(&self) -> &'static str {
        "proxy"
    }

    fn bounds(&self) -> Option<(f64, f64)> {
        let any_se = self.se.iter().any(|&s| s);
        let all_se = self.se.iter().all(|&s| s);
        let lo = Self::formula(
            self.macs.min(),
            self.params.min(),
            if all_se { self.layers as f64 } else { 0.0 },
        );
        let hi = Self::formula(
            self.macs.max(),
            self.params.max(),
            if any_se { self.layers as f64 } else { 0.0 },
        );
        Some((lo, hi))
    }
}

/// Accuracy from a surrogate fitted to the user's measured (architecture, top-1) samples.
#[derive(Debug, Clone)]
pub struct SampledAccuracy {
    pub surrogate: Surrogate,
}

impl AccuracyEvaluator for SampledAccuracy {
    fn evaluate(
        &self,
        batch: &[Genome],
    ) -> impl Future<Output = Result<Vec<f64>, EvalError>> + Send {
        std::future::ready(Ok(batch
            .iter()
            .map(|g| self.surrogate.predict(g))
            .collect()))
    }

    fn kind(&self) -> &'static str {
        "samples"
    }

    fn bounds(&self) -> Option<(f64, f64)> {
        Some(self.surrogate.bounds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpulut_tables::ArchSpec;

    fn block_on<F: Future>(f: F) -> F::Output {
        // The evaluators of this crate are ready at once: poll once with a no-op waker.
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a pure evaluator must be ready at once"),
        }
    }

    #[test]
    fn proxy_orders_the_references_sensibly_and_stays_in_bounds() {
        let space = SearchSpace::moga_mbv3();
        let proxy = ProxyAccuracy::new(&space);
        let genome = |name: &str| {
            space
                .resolve(&ArchSpec::from(name))
                .unwrap()
                .choices()
                .unwrap()
                .to_vec()
        };
        let small = vec![0u8; 14];
        let big = vec![11u8; 14];
        let acc = block_on(proxy.evaluate(&[small, genome("MoGA-A"), big])).unwrap();
        assert!(acc[0] < acc[1] && acc[1] < acc[2], "{acc:?}");
        assert!((70.0..80.0).contains(&acc[1]), "{acc:?}");
        let (lo, hi) = proxy.bounds().unwrap();
        assert!(
            acc.iter().all(|a| (lo..=hi).contains(a)),
            "{lo} {hi} {acc:?}"
        );
        assert_eq!(proxy.kind(), "proxy");
    }
}
