//! The shared vocabulary of gpulut (see ARCHITECTURE.md). Pure data and arithmetic: no I/O,
//! no HTTP, no SQL, no GPU.

pub mod wire;
