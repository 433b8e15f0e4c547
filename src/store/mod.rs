//! Storage engines behind the `Backend` trait.

pub mod postgres;
pub mod spool;
pub mod sql;
pub mod sqlite;
