//! The shared vocabulary of gpulut (see ARCHITECTURE.md): search spaces, architectures, blocks
//! and their canonical keys, params/MACs accounting, latency tables and predictions, robust
//! statistics, and the wire types the agent and the server exchange.
//!
//! Pure data and arithmetic: no I/O, no HTTP, no SQL, no GPU. Everything here is deterministic,
//! so the server, the agent and the search engine agree on what a block is by construction.

pub mod arch;
pub mod block;
pub mod export;
pub mod grid;
pub mod latency;
pub mod protocol;
pub mod rank;
pub mod sample;
pub mod space;
pub mod stats;
pub mod validation;
pub mod wire;

pub use arch::{ArchError, ArchSpec, Architecture};
pub use block::{Activation, Block, BlockKey, BlockOp, Shape};
pub use grid::LayerCosts;
pub use latency::{LatencyTable, Prediction, Statistic, TableEntry};
pub use rank::RankCorrelation;
pub use space::{Analysis, SearchSpace, SpaceError};
pub use stats::Summary;
