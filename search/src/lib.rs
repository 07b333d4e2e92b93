//! Weighted NSGA-II (MoGA) for gpulut: the search engine, non-dominated sorting, weighted
//! crowding and hypervolume. Pure and deterministic, no I/O: the server's worker does the
//! evaluating, storing and scheduling, so the same request and seed always give the same front,
//! also after a resume from a checkpoint (see ARCHITECTURE.md and DESIGN section 7).
//!
//! - [`Engine`]: ask/tell NSGA-II with (μ + λ) survival, constraint-domination and checkpoints.
//! - [`sort`]: non-dominated sorting, O(N log N · log F) for 2 and 3 objectives.
//! - [`crowding`]: MoGA's weighted crowding distance.
//! - [`hypervolume`]: exact 3-D hypervolume in O(n log n).
//! - [`synthetic`]: the shared benchmark problem, bit-identical to `synth.py`.

mod checkpoint;
pub mod crowding;
mod engine;
mod error;
pub mod evaluator;
pub mod hypervolume;
mod objectives;
mod operators;
mod problem;
pub mod rng;
pub mod sort;
mod staircase;
pub mod surrogate;
pub mod synthetic;

pub use checkpoint::Checkpoint;
pub use crowding::crowding_distance;
pub use engine::{
    Config, Engine, GenerationStats, HV_REFERENCE, MAX_GENERATIONS, MAX_POPULATION, MIN_POPULATION,
    Member, Survival, survive,
};
pub use error::SearchError;
pub use hypervolume::hypervolume_3d;
pub use objectives::{Bounds, Constraints, Objectives, Weights};
pub use problem::{Genome, MAX_CHOICES, MAX_LAYERS, ProblemSize};
pub use sort::{dominates, non_dominated_sort, non_dominated_sort_3d};
