//! workq: a durable work-queue engine. The library face: the model, the `Backend` seam,
//! the rules, and the stores behind it.

pub mod alert;
pub mod alerting;
pub mod api;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connect;
pub mod demo;
pub mod error;
pub mod import;
pub mod json_text;
pub mod migrate;
pub mod model;
pub mod numbers;
pub mod rules;
pub mod server;
pub mod store;
pub mod text;
pub mod token;
pub mod tui;
pub mod worker;

pub use backend::{Backend, Error, Result};
pub use store::sqlite::SqliteStore;
