//! `gpulut`, the user's command line. It speaks only the server's public HTTP API (never the
//! database, never the server's code), so anything it does a script can do with curl, and it
//! works against any server a user can reach.
//!
//! Start reading at `cli.rs` (the commands) and `commands.rs` (what each does); `render.rs`
//! turns answers into tables and `plot.rs` into images.

pub mod api;
pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod plot;
pub mod render;
pub mod request;
pub mod watch;

pub use commands::run;
pub use error::{Error, Result};
