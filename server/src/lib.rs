//! The gpulut server (see ARCHITECTURE.md): HTTP API over Postgres. `main.rs` is the CLI;
//! `app` assembles the server; `routes` holds the handlers; `db` holds every SQL statement.

pub mod app;
pub mod auth;
pub mod cache;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod extract;
pub mod routes;
pub mod searches;
