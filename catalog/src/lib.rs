//! The catalog: images, every scan of them, and their inventories, in an embedded sled
//! store on disk. It answers fleet questions (which images carry package X older than V,
//! where is the file with hash H) from what was collected, without opening images again.
//!
//! Invariant: a scan becomes visible all at once. Its inventory is written under a fresh
//! id first; one transaction then adds the scan record and points the image at it. A crash
//! in between leaves only unreferenced blobs, never a half-recorded scan.

pub mod access;
pub mod diff;
pub mod feeds;
pub mod ingest;
pub mod repos;
pub mod runs;
pub mod schedules;
pub mod shared;
pub mod store;
pub mod versions;
pub use coldpatch_vuln::version;

pub use access::{Role, TokenRecord};
pub use feeds::{FeedRecord, ImageFindings, ImportReport, ScanReport, ScanSummary};
pub use repos::StoredRepo;
pub use runs::{Event, FindingBrief, Outcome, RunImage, RunRecord, RunState, VersionFile};
pub use schedules::{Action, PlanPolicy, Schedule};
pub use store::{
    Catalog, CatalogError, FileHit, Fingerprint, ImageRecord, PackageHit, ScanOptions, ScanRecord,
    VersionRecord, Versions,
};
