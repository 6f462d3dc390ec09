//! Catalog tests: the sled store on disk, inventories, feeds, runs, diffs.

mod diff;
mod feeds;
mod runs;
mod store;
