//! Reliability proof tools for gpulut: simulated agents that speak the real agent protocol, a load
//! generator that checks stored measurements against acknowledged uploads, and fault injection.

pub mod agent;
pub mod load;
pub mod report;
pub mod stats;

pub mod faults;
pub mod procs;
pub mod proxy;
