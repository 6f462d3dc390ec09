//! Catalog tests: the sled store on disk, inventories and feeds.

mod feeds;
mod runs;
mod store;
