//! Integration tests of the search crate through its public API: one binary, a module per area.

mod engine;
mod hypervolume;
mod sort;
mod synthetic;
