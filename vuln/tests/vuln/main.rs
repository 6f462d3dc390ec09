//! vuln tests: version ordering against the package managers' vectors and tools, and the
//! feed readers and matcher against the peers' vulnerability cases.

mod feeds;
mod matching;
mod version;
