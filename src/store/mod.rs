//! Storage engines behind the `Backend` trait.

pub mod sql;
pub mod sqlite;
