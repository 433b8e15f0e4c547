//! Storage engines behind the `Backend` trait.

pub mod sqlite;
