//! The gpulut device agent as a library, so the binary stays a thin shell and integration
//! tests and later commands (`bench`, `enroll`, `run`) reuse the same pieces.
//!
//! - [`gpu`]: the only module that touches wgpu; it hands out plain structs.
//! - [`host`]: OS, model, SoC and machine-id facts, each optional.
//! - [`info`]: the `info` command's report, table and JSON.
//! - [`cli`]: the command-line definition.
//! - [`model`]: networks as ops with seeded weights (layout HWC, f32), shared by
//!   [`reference`], the plain-Rust CPU reference, and the GPU kernels.
//! - [`adapter`]: the framework adapter interface: our kernel sets in process, external
//!   runtimes (ncnn, ONNX Runtime, ...) through the subprocess protocol of `ADAPTERS.md`.
//! - [`framework`]: the agent's kernel sets (`wgpu-direct`, `wgpu-fused`) and their versions.
//! - [`bench`]: the timing protocol (verify, warm up, interleaved adaptive timing);
//!   [`report`] renders its results; [`thermal`] reads temperatures and GPU clocks.
//! - [`client`], [`state`], [`runner`]: `enroll` and `run`, the agent protocol's client side:
//!   credentials and the result spool on disk, and the worker loop.

pub mod adapter;
pub mod bench;
pub mod cli;
pub mod client;
pub mod framework;
pub mod gpu;
pub mod host;
pub mod info;
pub mod model;
pub mod reference;
pub mod report;
pub mod runner;
pub mod state;
pub mod thermal;
