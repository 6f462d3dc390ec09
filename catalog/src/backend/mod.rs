//! The storage boundary. Above it, the catalog's modules say what is stored and asked
//! (images, scans, versions, runs, feeds, tokens, schedules) in terms of the records in
//! `model.rs`; below it, a backend decides how they are laid out. The embedded sled store
//! (`sled.rs`) is for one process on one host; PostgreSQL (`postgres.rs`) is the catalog
//! many processes on many hosts share. Both implement [`Backend`]; nothing above this
//! line knows which one it talks to.
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
//!   different views of them (a fleet scan reads only the fields matching needs);
//! - a conditional write ([`Expect`], the `expect` of [`Backend::replace_feed`]) checks
//!   its condition inside the transaction that writes, so two processes racing for one
//!   image or feed cannot both win;
//! - the `*_indexed` questions may answer `None` ("no index here"): the caller then reads
//!   the blobs itself. A backend with indexes answers exactly what reading would.

mod codec;
pub(crate) mod postgres;
pub(crate) mod sled;

use coldpatch_collector::Inventory;

use crate::labels::ImageTags;
use crate::model::{ImageRecord, ScanRecord};
use crate::queue::{
    Beat, ClaimReq, Claimed, JobOutcome, JobRow, PartEnd, Requeued, SharedCancel, Tally,
    WorkerRecord, WorkerSpec,
};
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
    /// The inventory the JSON was made from, for backends that index packages and files.
    pub inv: &'a Inventory,
    pub expect: Expect,
}

/// The condition a scan's write is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// None: write whatever is stored.
    Any,
    /// The catalog holds no image at this path yet.
    NewImage,
    /// The stored image is still at this version (a commit on top of it, or a rescan
    /// that must not undo a commit made meanwhile).
    Version(u32),
}

/// (scan, package JSON) rows of an indexed package query.
pub(crate) type PackageRows = Vec<(u64, Vec<u8>)>;

/// (feed, advisory JSON) rows of an indexed advisory query.
pub(crate) type AdvisoryRows = Vec<(String, Vec<u8>)>;

/// Whether a conditional write went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Yes,
    /// The stored image had moved on to this version (or, for [`Expect::NewImage`], was
    /// there already); nothing was written.
    Moved(u32),
}

/// The layout version this coldpatch writes. A catalog with a higher one was written by
/// a newer coldpatch and is refused.
pub const SCHEMA_VERSION: i64 = 3;

/// The counters a catalog numbers records with.
pub(crate) const COUNTERS: [&str; 3] = ["image", "scan", "schedule"];

/// The shared job queue (see `queue.rs` for who may change what). Only a backend many
/// processes share has one.
pub(crate) trait Queue {
    /// Registers (or re-registers) a worker; returns the jobs a dead process of that
    /// name held, now queued again.
    fn register_worker(&self, w: &WorkerSpec) -> Result<Vec<JobRow>>;
    /// Renews the worker's row and the leases of the jobs it runs (`held`); jobs the
    /// database says it holds but it does not run are queued again and returned.
    fn heartbeat(&self, worker: &str, held: &[i64]) -> Result<Beat>;
    fn stop_worker(&self, worker: &str) -> Result<()>;
    fn workers(&self) -> Result<Vec<WorkerRecord>>;
    /// Stores a queued run, its event and a job per image, in one transaction.
    fn enqueue(&self, run: &RunRecord, event: &Event) -> Result<()>;
    fn requeue_lost(&self) -> Result<Vec<Requeued>>;
    /// Takes jobs as `req` says, with the events it makes, in one transaction.
    fn claim(&self, req: &mut ClaimReq<'_>) -> Result<Option<Claimed>>;
    /// `finish` ends the run when these were its last jobs, and makes its event.
    fn finish_jobs(
        &self,
        worker: &str,
        run: &str,
        done: &[(i64, u32, JobOutcome)],
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<PartEnd>;
    fn release(&self, worker: &str, jobs: &[(i64, u32)]) -> Result<usize>;
    fn cancel(
        &self,
        run: &str,
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<SharedCancel>;
    fn jobs(&self, run: &str) -> Result<Vec<JobRow>>;
}

pub(crate) trait Backend: Send + Sync {
    /// The shared job queue, on a backend that has one.
    fn queue(&self) -> Option<&dyn Queue> {
        None
    }

    /// What this catalog is, for messages: `sled catalog at /path`.
    fn describe(&self) -> &str;
    /// `sled` or `postgresql`.
    fn kind(&self) -> &'static str;
    /// The version of the stored layout (see [`SCHEMA_VERSION`]).
    fn schema_version(&self) -> Result<i64>;

    /// A number that moves whenever images or feeds were written, by any process (a
    /// server's cached view of the fleet is stale when it moved). The embedded store
    /// has one process, whose own writes its caches know of: 0.
    fn changes(&self) -> Result<u64> {
        Ok(0)
    }

    /// A counter's last number (0 before the first).
    fn counter(&self, counter: &str) -> Result<u64>;
    /// Moves a counter up to at least `n` (a copy keeps the ids it copies).
    fn raise_counter(&self, counter: &str, n: u64) -> Result<()>;

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
    /// Writes an image record if `expect` holds.
    fn put_image(&self, image: &ImageRecord, expect: Expect) -> Result<Written>;
    fn scan(&self, id: u64) -> Result<Option<ScanRecord>>;
    /// The ids of an image's scans, oldest first.
    fn scan_ids(&self, image: u64) -> Result<Vec<u64>>;
    /// A scan's inventory without its files, as JSON.
    fn inventory_json(&self, scan: u64) -> Result<Option<Vec<u8>>>;
    /// A scan's file list, as JSON.
    fn files_json(&self, scan: u64) -> Result<Option<Vec<u8>>>;
    /// Several scans' records, in the order asked (`None` where there is none). A
    /// backend on a server answers a batch in one round trip.
    fn scans_many(&self, ids: &[u64]) -> Result<Vec<Option<ScanRecord>>> {
        ids.iter().map(|&id| self.scan(id)).collect()
    }
    /// Several scans' inventories (JSON, without files), in the order asked.
    fn inventories_json(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        scans.iter().map(|&s| self.inventory_json(s)).collect()
    }
    /// Several scans' file lists (JSON), in the order asked.
    fn files_json_many(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        scans.iter().map(|&s| self.files_json(s)).collect()
    }
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
    /// the ones it no longer holds, in one transaction; only if the stored record of the
    /// feed is still `expect` (what the caller computed the change from), else
    /// [`crate::CatalogError::FeedMoved`].
    fn replace_feed(
        &self,
        feed: &FeedRecord,
        expect: Option<&FeedRecord>,
        upsert: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> Result<()>;

    /// Of `scans`, each package named `name`: (scan, package JSON).
    fn packages_indexed(&self, _name: &str, _scans: &[u64]) -> Result<Option<PackageRows>> {
        Ok(None)
    }
    /// Of `scans`, those holding a file with this content.
    fn files_indexed(&self, _sha256: &[u8; 32], _scans: &[u64]) -> Result<Option<Vec<u64>>> {
        Ok(None)
    }
    /// The advisories (feed, JSON) with this id or alias, ignoring ASCII case.
    fn advisories_indexed(&self, _id: &str) -> Result<Option<AdvisoryRows>> {
        Ok(None)
    }
    /// Of `scans`, those holding a package whose name or source name is in `names`.
    fn scans_with_packages(&self, _names: &[String], _scans: &[u64]) -> Result<Option<Vec<u64>>> {
        Ok(None)
    }

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
    /// Writes a schedule only if the stored one is still `was`; whether it did.
    fn replace_schedule(&self, s: &Schedule, was: &Schedule) -> Result<bool>;
    fn schedule(&self, id: &str) -> Result<Option<Schedule>>;
    fn schedules(&self) -> Result<Vec<Schedule>>;
    /// Removes a schedule; whether it was there.
    fn remove_schedule(&self, id: &str) -> Result<bool>;

    /// Every image's name-and-labels record (`labels.rs`).
    fn tags(&self) -> Result<Vec<ImageTags>>;
    /// One image's record, if it has one.
    fn tag(&self, image: u64) -> Result<Option<ImageTags>>;
    /// Writes an image's record only if the stored one is still `was` (`None`: there is
    /// none yet); whether it did. A write counts as a change of the catalog.
    fn replace_tags(&self, new: &ImageTags, was: Option<&ImageTags>) -> Result<bool>;
}
