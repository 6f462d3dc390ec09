//! Runs and image versions: a run's record, each image's part of it (plan, log, findings
//! before and after, outcome) and its event trail. A run's bookkeeping is written here
//! and only here: started ([`Catalog::begin_run`]), finished ([`Catalog::finish_run`]: state,
//! finish time and the `finished` event, one transaction).
//!
//! Invariant: a version becomes visible in one transaction that adds its scan, appends it
//! to the image's versions, makes it current and marks the run's image committed. A run
//! killed at any point before leaves at most an event trail and an unreferenced overlay
//! file, which the next run on the image sweeps away.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::backend::Written;
use crate::clock::{now, now_ms};
use crate::error::{CatalogError, Result};
use crate::model::{Fingerprint, ScanOptions, ScanRecord, VersionRecord};
use crate::store::Catalog;
use coldpatch_collector::Inventory;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Accepted by the server's job queue, not started yet.
    Queued,
    Running,
    /// Every image committed (or rolled back, for a rollback run).
    Succeeded,
    /// At least one image failed; the others may have committed.
    Failed,
    /// The process ended without finishing the run (found by a later run).
    Interrupted,
    /// Cancelled by a user: images not yet committed were left as they were.
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// "apply", "files", "rollback" or "flatten".
    pub kind: String,
    pub images: Vec<String>,
    pub started: u64,
    pub finished: Option<u64>,
    pub state: RunState,
    /// The process that ran it.
    pub pid: u32,
    pub error: Option<String>,
    /// What a queued run is to do, as the server's job queue wrote it: kept so a run queued
    /// before a restart still runs after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
    /// The schedule that queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Queued on the shared queue (`queue.rs`): workers run its images, each part under
    /// a lease, so `pid` says nothing of whether it is alive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "outcome")]
pub enum Outcome {
    Pending,
    Committed {
        version: u32,
    },
    Failed {
        reason: String,
    },
    /// The run was interrupted before this image committed; nothing was kept.
    Discarded,
    /// Nothing to do (already fixed, or nothing asked applies); no version was made.
    Unchanged {
        reason: String,
    },
}

impl Outcome {
    /// Committed, or nothing to do: what a successful run leaves.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Committed { .. } | Outcome::Unchanged { .. })
    }
}

/// A finding, briefly: enough to show what a version fixed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingBrief {
    pub advisory: String,
    pub package: String,
    pub installed: String,
    pub fixed: Option<String>,
}

/// One image's part of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImage {
    pub run: String,
    pub image: String,
    /// The plan or file list, as the patcher wrote it.
    pub change: serde_json::Value,
    /// The overlay being built, until it is committed or discarded.
    pub overlay: Option<String>,
    pub base_version: u32,
    /// Every line the guest's package tool printed, and the patcher's own notes.
    pub log: String,
    pub before: Vec<FindingBrief>,
    pub after: Vec<FindingBrief>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub run: String,
    pub seq: u32,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    pub image: Option<String>,
    /// "planned", "overlay", "appliance", "uploaded", "installed", "fsck", "verify",
    /// "committed", "failed", "discarded", "rolled-back", "finished", …
    pub kind: String,
    pub message: String,
    /// The worker that wrote it (`coldpatch worker --name`), if a worker did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A version file a run made and stamped: where it is, and the number and check value its
/// stamp says.
#[derive(Debug, Clone, Copy)]
pub struct VersionFile<'a> {
    pub file: &'a str,
    pub number: u32,
    pub check: [u8; 32],
}

impl Catalog {
    /// A new run, stored as running, with its `started` event. Its id is the start time
    /// and a random suffix: unique, sortable, short enough to type.
    pub fn start_run(
        &self,
        kind: &str,
        images: &[String],
        message: &str,
    ) -> Result<(RunRecord, Event)> {
        self.begin_run(Self::new_run(kind, images, RunState::Running), message)
    }

    /// A new run, stored as queued with what it is to do, and its "queued" event.
    pub fn queue_run(
        &self,
        kind: &str,
        images: &[String],
        spec: serde_json::Value,
        schedule: Option<&str>,
    ) -> Result<RunRecord> {
        let (run, e) = self.queued_run(kind, images, spec, schedule);
        self.db().put_run(&run, Some(&e))?;
        Ok(run)
    }

    /// A queued run's record (not stored yet) and its "queued" event.
    pub(crate) fn queued_run(
        &self,
        kind: &str,
        images: &[String],
        spec: serde_json::Value,
        schedule: Option<&str>,
    ) -> (RunRecord, Event) {
        let mut run = Self::new_run(kind, images, RunState::Queued);
        run.spec = Some(spec);
        run.schedule = schedule.map(str::to_string);
        let by = schedule.map_or(String::new(), |s| format!(" by schedule {s}"));
        let e = self.new_event(
            &run.id,
            None,
            "queued",
            &format!("{kind} on {} image(s){by}", images.len()),
        );
        (run, e)
    }

    fn new_run(kind: &str, images: &[String], state: RunState) -> RunRecord {
        let t = now();
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(['-', ':'], "")
            .trim_end_matches('Z')
            .to_string();
        let id = format!(
            "{stamp}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        RunRecord {
            id,
            kind: kind.to_string(),
            images: images.to_vec(),
            started: t,
            finished: None,
            state,
            pid: std::process::id(),
            error: None,
            spec: None,
            schedule: None,
            shared: false,
        }
    }

    pub fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.db().put_run(run, None)
    }

    /// A queued run as running in this process, with its `started` event.
    pub fn begin_run(&self, mut run: RunRecord, message: &str) -> Result<(RunRecord, Event)> {
        run.state = RunState::Running;
        run.started = now();
        run.pid = std::process::id();
        let e = self.new_event(&run.id, None, "started", message);
        self.db().put_run(&run, Some(&e))?;
        Ok((run, e))
    }

    /// Ends a run: its state, finish time and error, with the `finished` event, in one
    /// transaction. Returns the event (for progress output).
    pub fn finish_run(
        &self,
        run: &mut RunRecord,
        state: RunState,
        error: Option<String>,
    ) -> Result<Event> {
        run.state = state;
        run.finished = Some(now());
        if error.is_some() {
            run.error = error;
        }
        let e = self.new_event(&run.id, None, "finished", state.as_str());
        self.db().put_run(run, Some(&e))?;
        Ok(e)
    }

    pub fn run(&self, id: &str) -> Result<RunRecord> {
        self.db()
            .run(id)?
            .ok_or_else(|| CatalogError::NoRun(id.to_string()))
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.db().runs()
    }

    pub(crate) fn new_event(
        &self,
        run: &str,
        image: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Event {
        Event {
            worker: self.actor().map(str::to_string),
            run: run.to_string(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
            time_ms: now_ms(),
            // An event is shown as it is, in terminals and logs: cleaned once, here.
            image: image.map(crate::text::cleaned),
            kind: crate::text::cleaned(kind),
            message: crate::text::cleaned(message),
        }
    }

    /// Appends an event to a run and writes it to disk at once: the trail must survive
    /// the process being killed.
    pub fn event(
        &self,
        run: &str,
        image: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<Event> {
        let e = self.new_event(run, image, kind, message);
        self.db().put_event(&e)?;
        Ok(e)
    }

    pub fn events(&self, run: &str) -> Result<Vec<Event>> {
        self.db().events(run)
    }

    pub fn put_run_image(&self, ri: &RunImage) -> Result<()> {
        self.db().put_run_image(ri)
    }

    pub fn run_images(&self, run: &str) -> Result<Vec<RunImage>> {
        self.db().run_images(run)
    }

    /// Runs still marked running that touched an image: after the caller took the
    /// image's run lock, these can only be runs whose process died.
    pub fn running_on(&self, image: &str) -> Result<Vec<RunRecord>> {
        self.runs_on(image, &[RunState::Running])
    }

    /// Runs on an image in one of these states.
    pub fn runs_on(&self, image: &str, states: &[RunState]) -> Result<Vec<RunRecord>> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| states.contains(&r.state) && r.images.iter().any(|i| i == image))
            .collect())
    }

    /// Makes a verified overlay the image's next version, atomically: its scan, the
    /// version (parent: the version it was built on), the image's current pointer and the
    /// run's record of the image. `made` names the file and the (number, check value) the
    /// caller wrote into it, from [`Catalog::next_version`]; if another version came first
    /// they no longer match and nothing is written.
    pub fn commit_version(
        &self,
        image_key: &str,
        made: VersionFile<'_>,
        inv: &Inventory,
        fp: Fingerprint,
        options: ScanOptions,
        mut ri: RunImage,
    ) -> Result<(VersionRecord, ScanRecord)> {
        let mut image = self.image(image_key)?;
        let (versions, (number, check)) = self.versions_and_next(&image, ri.base_version)?;
        if image.current_version != ri.base_version || (number, check) != (made.number, made.check)
        {
            return Err(CatalogError::Moved {
                image: image_key.to_string(),
                base: ri.base_version,
                current: image.current_version,
            });
        }
        let scan_id = self.next_id("scan")?;
        let scan = ScanRecord::of(scan_id, image.id, inv, fp, options);
        image.versions = versions;
        let version = VersionRecord {
            number,
            file: made.file.to_string(),
            parent: Some(ri.base_version),
            scan: Some(scan_id),
            run: Some(ri.run.clone()),
            created: now(),
            rolled_back: false,
            check: Some(hex::encode(check)),
        };
        image.versions.push(version.clone());
        image.current_version = number;
        image.current_scan = Some(scan_id);
        ri.outcome = Outcome::Committed { version: number };
        ri.overlay = None;
        // The transaction checks again that nobody committed on top of the base meanwhile.
        match self.write_scan(
            &image,
            &scan,
            inv,
            Some(&ri),
            crate::backend::Expect::Version(ri.base_version),
        )? {
            Written::Yes => Ok((version, scan)),
            Written::Moved(current) => Err(CatalogError::Moved {
                image: image_key.to_string(),
                base: ri.base_version,
                current,
            }),
        }
    }

    /// Makes the current version's parent current again; the left version is kept, marked
    /// rolled back. Returns (left, now current).
    pub fn rollback(&self, image_key: &str) -> Result<(VersionRecord, VersionRecord)> {
        let mut image = self.image(image_key)?;
        let cur = image.current_version;
        let Some(left) = image.versions.iter().find(|v| v.number == cur).cloned() else {
            return Err(CatalogError::NoParent(image_key.to_string()));
        };
        let Some(parent) = left
            .parent
            .and_then(|p| image.versions.iter().find(|v| v.number == p).cloned())
        else {
            return Err(CatalogError::NoParent(image_key.to_string()));
        };
        for v in &mut image.versions {
            if v.number == cur {
                v.rolled_back = true;
            }
        }
        image.current_version = parent.number;
        image.current_scan = parent.scan;
        match self
            .db()
            .put_image(&image, crate::backend::Expect::Version(cur))?
        {
            Written::Yes => Ok((left, parent)),
            Written::Moved(current) => Err(CatalogError::Moved {
                image: image_key.to_string(),
                base: cur,
                current,
            }),
        }
    }
}
