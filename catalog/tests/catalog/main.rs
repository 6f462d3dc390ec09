//! Catalog tests: inventories, feeds, runs and diffs on both backends (`both!` runs a
//! test once on a sled directory, once on a PostgreSQL database), and what only the
//! shared PostgreSQL catalog has (`postgres.rs`).

mod diff;
mod feeds;
mod labels;
mod postgres;
mod queue;
mod runs;
mod store;
