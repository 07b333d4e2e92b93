//! The gpulut device agent as a library, so the binary stays a thin shell and integration
//! tests and later commands (`bench`, `enroll`, `run`) reuse the same pieces.
//!
//! - [`gpu`]: the only module that touches wgpu; it hands out plain structs.
//! - [`host`]: OS, model, SoC and machine-id facts, each optional.
//! - [`info`]: the `info` command's report, table and JSON.
//! - [`cli`]: the command-line definition.

pub mod cli;
pub mod gpu;
pub mod host;
pub mod info;
