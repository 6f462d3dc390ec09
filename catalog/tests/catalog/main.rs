//! Catalog tests: the sled store on disk.

mod store;
