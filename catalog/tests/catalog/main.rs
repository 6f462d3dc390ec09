//! Catalog tests: version ordering against the package managers' own vectors and the real
//! tools, and the sled store on disk.

mod store;
mod version;
