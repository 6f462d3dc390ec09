//! What is known about packages: version ordering per ecosystem, vulnerability feeds
//! (OSV, Debian Security Tracker, Alpine secdb) read into one advisory model, and the
//! matcher that judges installed packages against them. No storage here: the catalog
//! keeps feeds, this crate reads and decides.

pub mod debian;
pub mod distro;
pub mod feed;
pub mod matcher;
pub mod model;
pub mod osv;
pub mod secdb;
pub mod version;

pub use feed::{FeedData, FeedError, Format};
pub use matcher::{AdvisoryRef, Finding, Index, Verdict};
pub use model::{Advisory, Affected, Distro, NameKind, Range, Rejected, Severity, Status};
