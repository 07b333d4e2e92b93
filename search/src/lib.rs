//! Weighted NSGA-II (see ARCHITECTURE.md).
