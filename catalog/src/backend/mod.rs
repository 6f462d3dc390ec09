//! The storage boundary. Above it, the catalog's modules say what is stored and asked
//! (images, scans, versions, runs, feeds, tokens, schedules) in terms of the records in
//! `model.rs`; below it, a backend decides how they are laid out. The embedded sled store
//! (`sled.rs`) is the one backend today; another (PostgreSQL) is a sibling module that
//! implements [`Backend`], and nothing above this line changes.
//!
//! Rules every backend keeps:
//! - each method that writes more than one record ([`Backend::record_scan`],
//!   [`Backend::replace_feed`], [`Backend::put_run`] with an event) is one transaction:
//!   all of it becomes visible, or none of it;
//! - a write has reached stable storage when the method returns (a run's trail must
//!   survive the process being killed);
//! - a record that cannot be decoded is [`CatalogError::Corrupt`] naming what it is, and
//!   the backend's own failures are [`CatalogError::Store`]: no backend type crosses the
//!   boundary;
//! - inventories and file lists are exchanged as JSON bytes, because readers decode
//!   different views of them (a fleet scan reads only the fields matching needs).

pub(crate) mod sled;

use crate::model::{ImageRecord, ScanRecord};
use crate::{Event, FeedRecord, Result, RunImage, RunRecord, Schedule, StoredRepo, TokenRecord};

/// A scan to make visible at once: its record, its inventory (JSON, without files) and
/// file list (JSON), the image record pointing at it, and, for a scan that commits a
/// version, the run's record of that image.
pub(crate) struct NewScan<'a> {
    pub image: &'a ImageRecord,
    pub scan: &'a ScanRecord,
    pub inventory: &'a [u8],
    pub files: &'a [u8],
    pub run_image: Option<&'a RunImage>,
    /// Only if the stored image is still at this version (a commit on top of it); else
    /// nothing is written and the stored image's current version is returned.
    pub expect_version: Option<u32>,
}

/// Whether a conditional write went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Yes,
    /// The stored image had moved on to this version; nothing was written.
    Moved(u32),
}

pub(crate) trait Backend: Send + Sync {
    /// What this catalog is, for messages: `sled catalog at /path`.
    fn describe(&self) -> &str;

    /// The next number of a named counter, starting at 1.
    fn next_id(&self, counter: &str) -> Result<u64>;
    /// A small value of the catalog's own (its appliance id).
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` unless a value is there; returns the stored value.
    fn meta_init(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;

    fn image_id(&self, path: &str) -> Result<Option<u64>>;
    fn image(&self, id: u64) -> Result<Option<ImageRecord>>;
    /// Every image, in no particular order.
    fn images(&self) -> Result<Vec<ImageRecord>>;
    fn put_image(&self, image: &ImageRecord) -> Result<()>;
    fn scan(&self, id: u64) -> Result<Option<ScanRecord>>;
    /// The ids of an image's scans, oldest first.
    fn scan_ids(&self, image: u64) -> Result<Vec<u64>>;
    /// A scan's inventory without its files, as JSON.
    fn inventory_json(&self, scan: u64) -> Result<Option<Vec<u8>>>;
    /// A scan's file list, as JSON.
    fn files_json(&self, scan: u64) -> Result<Option<Vec<u8>>>;
    /// Records a scan and points its image at it, in one transaction (see [`NewScan`]).
    fn record_scan(&self, new: NewScan<'_>) -> Result<Written>;

    /// Stores a run, and with it (same transaction) an event.
    fn put_run(&self, run: &RunRecord, event: Option<&Event>) -> Result<()>;
    fn run(&self, id: &str) -> Result<Option<RunRecord>>;
    /// Every run, newest first.
    fn runs(&self) -> Result<Vec<RunRecord>>;
    fn put_event(&self, event: &Event) -> Result<()>;
    /// A run's events in the order they happened.
    fn events(&self, run: &str) -> Result<Vec<Event>>;
    fn put_run_image(&self, ri: &RunImage) -> Result<()>;
    fn run_images(&self, run: &str) -> Result<Vec<RunImage>>;

    fn feeds(&self) -> Result<Vec<FeedRecord>>;
    /// A feed's stored advisories: (id, JSON).
    fn advisories_json(&self, feed: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Writes a feed's record, its new and changed advisories (id, JSON) and removes
    /// the ones it no longer holds, in one transaction.
    fn replace_feed(
        &self,
        feed: &FeedRecord,
        upsert: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> Result<()>;

    fn put_repo(&self, repo: &StoredRepo) -> Result<()>;
    fn repo(&self, root: &str) -> Result<Option<StoredRepo>>;
    fn repos(&self) -> Result<Vec<StoredRepo>>;
    /// The roots of the stored repositories, without reading their indexes.
    fn repo_roots(&self) -> Result<Vec<String>>;

    fn put_token(&self, token: &TokenRecord) -> Result<()>;
    fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Removes a token; returns it if it was there.
    fn remove_token(&self, id: &str) -> Result<Option<TokenRecord>>;

    fn put_schedule(&self, s: &Schedule) -> Result<()>;
    fn schedule(&self, id: &str) -> Result<Option<Schedule>>;
    fn schedules(&self) -> Result<Vec<Schedule>>;
    /// Removes a schedule; whether it was there.
    fn remove_schedule(&self, id: &str) -> Result<bool>;
}
