//! The catalog: images, every scan of them, and their inventories; feeds, runs and their
//! events, repository indexes, tokens and schedules. It answers fleet questions (which
//! images carry package X older than V, where is the file with hash H) from what was
//! collected, without opening images again.
//!
//! Layout: what is stored and asked is written once, in the modules below, on the
//! storage boundary of `backend/` (the embedded sled store is `backend/sled.rs`, the
//! shared PostgreSQL one `backend/postgres.rs`, and `location.rs` tells them apart); the
//! records are in `model.rs`, the files the catalog owns on disk in `state.rs`.
//!
//! Invariant: a scan becomes visible all at once. Its inventory is written under a fresh
//! id first; one transaction then adds the scan record and points the image at it. A crash
//! in between leaves only unreferenced blobs, never a half-recorded scan.

pub mod access;
mod backend;
pub mod clock;
pub mod copy;
pub mod diff;
pub mod error;
pub mod feeds;
pub mod ingest;
pub mod labels;
pub mod location;
pub mod model;
pub mod progress;
pub mod queue;
pub mod repos;
pub mod runs;
pub mod schedules;
pub mod shared;
pub mod state;
pub mod store;
pub mod text;
pub mod versions;
pub use coldpatch_vuln::version;

pub use access::{Role, TokenRecord};
pub use backend::SCHEMA_VERSION;
pub use error::{CatalogError, Result};
pub use feeds::{FeedRecord, ImageFindings, ImportReport, ScanReport, ScanSummary};
pub use labels::{ImageTags, Relabel, Scope, Selector};
pub use location::Location;
pub use model::{
    FileHit, Fingerprint, ImageRecord, PackageHit, ScanOptions, ScanRecord, VersionRecord, Versions,
};
pub use repos::StoredRepo;
pub use runs::{Event, FindingBrief, Outcome, RunImage, RunRecord, RunState, VersionFile};
pub use schedules::{Action, PlanPolicy, Schedule};
pub use state::{ServerInfo, StateDir};
pub use store::Catalog;
