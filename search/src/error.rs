//! One error type for the crate, so the server can map every failure of a search to one status.

/// Everything that can go wrong in the search crate.
///
/// The crate never panics on caller input; whatever a request, a checkpoint or an evaluator can
/// get wrong comes back as one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A configuration value is out of range; `field` names it as the caller spelled it.
    #[error("invalid search config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field, e.g. `weights.latency`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The problem size (layers, choices per layer) cannot be searched.
    #[error("invalid problem size: {0}")]
    InvalidProblem(String),
    /// `tell` was called while no batch was outstanding.
    #[error("tell() called without an outstanding ask()")]
    NothingAsked,
    /// `tell` got a different number of results than `ask` handed out.
    #[error("tell() got {got} objective sets for {expected} asked genomes")]
    LengthMismatch {
        /// How many genomes the last `ask` returned.
        expected: usize,
        /// How many objective sets were told.
        got: usize,
    },
    /// One evaluated objective set cannot be used (not finite, or a constrained value missing).
    #[error("objectives of genome {index}: {reason}")]
    InvalidObjectives {
        /// Position in the batch handed to `tell`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A genome does not fit the problem (wrong length, choice out of range).
    #[error("invalid genome: {0}")]
    InvalidGenome(String),
    /// Points handed to a sorting, crowding or hypervolume routine cannot be ordered.
    #[error("invalid points: {0}")]
    InvalidPoints(String),
    /// A checkpoint is inconsistent or from an unknown format.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
}
