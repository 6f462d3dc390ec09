//! The shared job queue: how runs are spread over `coldpatch worker` processes on many
//! hosts, coordinated only through the catalog's database (PostgreSQL; the embedded
//! store has one process and keeps its queue in memory, in the `jobs` crate).
//!
//! A queued run has one job per image. A worker claims jobs of one run whose images lie
//! under its roots, up to its batch size, under a lease it renews with its heartbeat; a
//! job whose lease ran out (its worker was killed, its host or network went away) is
//! queued again by the next claim, and another worker redoes it. Who may change what:
//! - queued → running: a claim, which also moves the run from queued to running;
//! - running → done: only the worker holding the job, fenced by (worker, attempt): a
//!   worker that lost its lease finishes nothing;
//! - running → queued: the holder handing it back, or any claim once the lease ran out;
//! - queued → done (cancelled): a cancel. A running job's cancel flag reaches its
//!   worker with the next heartbeat.
//!
//! The run ends (one transaction with its `finished` event) when its last job is done,
//! written by whoever finished that job. At most one job per image is running at any
//! moment, whatever the run: the database's unique index says so.

use serde::Serialize;

use crate::error::{CatalogError, Result};
use crate::runs::{Event, RunRecord, RunState};
use crate::store::Catalog;

/// A worker as it registers.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSpec {
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// Directories whose images it can reach, each ending in `/`.
    pub roots: Vec<String>,
    pub slots: u32,
    pub version: String,
    /// How long a claim holds without a heartbeat.
    pub lease_ms: u64,
}

/// A registered worker, as `coldpatch workers` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRecord {
    #[serde(flatten)]
    pub spec: WorkerSpec,
    pub started_ms: u64,
    pub heartbeat_ms: u64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub silent_ms: u64,
    /// Jobs it holds now.
    pub held: u32,
    /// "alive", "lost" (no heartbeat within its lease) or "stopped".
    pub status: &'static str,
}

impl WorkerRecord {
    pub fn alive(&self) -> bool {
        self.status == "alive"
    }

    /// Whether the image at `path` lies under one of its roots.
    pub fn covers(&self, path: &str) -> bool {
        self.spec.roots.iter().any(|r| path.starts_with(r.as_str()))
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Ok,
    Unchanged,
    Failed,
    Cancelled,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Ok => "ok",
            JobOutcome::Unchanged => "unchanged",
            JobOutcome::Failed => "failed",
            JobOutcome::Cancelled => "cancelled",
        }
    }
}

/// One image of a queued run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub run: String,
    pub image: String,
    /// "queued", "running" or "done".
    pub state: String,
    pub worker: Option<String>,
    /// Claims so far (more than one: a worker lost it and another took it again).
    pub attempts: u32,
    pub cancel: bool,
    pub outcome: Option<String>,
}

/// What a claim asks of the backend.
pub(crate) struct ClaimReq<'a> {
    pub worker: &'a str,
    pub roots: &'a [String],
    /// How many jobs of this run to take at most.
    pub batch: &'a dyn Fn(&RunRecord) -> usize,
    pub lease_ms: u64,
    /// Turns a queued run into a running one and makes its `started` event.
    pub start: &'a mut dyn FnMut(&mut RunRecord) -> Event,
    /// The `claimed` event of what was taken, written with the claim.
    pub claimed: &'a dyn Fn(&RunRecord, &[JobRow]) -> Event,
}

/// What a claim took: jobs of one run, all held by the claiming worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run: RunRecord,
    pub jobs: Vec<JobRow>,
}

/// What the run's jobs came to, for the one that ends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub total: u64,
    pub failed: u64,
    pub cancel: bool,
}

/// What a heartbeat found: the jobs still the worker's (with their cancel flags), and
/// those the database had it hold that it does not run, now queued again.
#[derive(Debug, Clone)]
pub struct Beat {
    pub held: Vec<(i64, bool)>,
    pub orphans: Vec<JobRow>,
}

/// A job whose worker lost its lease, queued again.
#[derive(Debug, Clone)]
pub struct Requeued {
    pub job: JobRow,
    /// The worker that held it.
    pub lost_by: String,
}

/// What finishing a worker's jobs did.
#[derive(Debug, Clone)]
pub struct PartEnd {
    /// Jobs that were still the worker's and are now done.
    pub done: usize,
    /// The run's `finished` event, if these were its last jobs.
    pub finished: Option<Event>,
}

/// What a cancel did to a shared run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedCancel {
    /// Nothing had started: the run is cancelled.
    Dequeued,
    /// Workers hold some of its jobs: they stop at their next step.
    Signalled,
    /// The run had ended already, in this state.
    Ended(RunState),
}

/// A job of a run, with whether any live worker's roots cover its image.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    #[serde(flatten)]
    pub job: JobRow,
    /// Queued, and no live worker has a root over its image.
    pub waiting_for_root: bool,
}

impl Catalog {
    fn shared_queue(&self) -> Result<&dyn crate::backend::Queue> {
        self.db().queue().ok_or_else(|| CatalogError::NotShared {
            catalog: self.describe().to_string(),
        })
    }

    /// Whether this catalog has the shared queue (PostgreSQL).
    pub fn has_queue(&self) -> bool {
        self.db().queue().is_some()
    }

    /// Registers a worker; refuses a name a live worker has. Jobs a dead worker of that
    /// name still held are queued again and returned.
    pub fn register_worker(&self, w: &WorkerSpec) -> Result<Vec<JobRow>> {
        let freed = self.shared_queue()?.register_worker(w)?;
        for j in &freed {
            self.event(
                &j.run,
                Some(&j.image),
                "requeued",
                &format!(
                    "worker {} started again; what its last process held is queued again",
                    w.name
                ),
            )?;
        }
        Ok(freed)
    }

    /// Renews the worker's heartbeat and the leases of the jobs it runs (`running`);
    /// returns those it still holds, with their cancel flags. A job the database says the
    /// worker holds but it does not run (its end was recorded and then lost, as a
    /// database crash can lose the last commits) is queued again, with an event.
    pub fn heartbeat(&self, worker: &str, running: &[i64]) -> Result<Vec<(i64, bool)>> {
        let Beat { held, orphans } = self.shared_queue()?.heartbeat(worker, running)?;
        for j in &orphans {
            self.event(
                &j.run,
                Some(&j.image),
                "requeued",
                &format!(
                    "worker {worker} no longer runs it (its end was not recorded); queued again"
                ),
            )?;
        }
        Ok(held)
    }

    /// Marks a worker stopped (it exited on purpose).
    pub fn stop_worker(&self, worker: &str) -> Result<()> {
        self.shared_queue()?.stop_worker(worker)
    }

    /// Every registered worker, by name.
    pub fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.shared_queue()?.workers()
    }

    /// Queues a run on the shared queue, a job per image, with its "queued" event.
    pub fn enqueue_run(
        &self,
        kind: &str,
        images: &[String],
        spec: serde_json::Value,
        schedule: Option<&str>,
    ) -> Result<RunRecord> {
        let q = self.shared_queue()?;
        let mut images = images.to_vec();
        let mut seen = std::collections::HashSet::new();
        images.retain(|i| seen.insert(i.clone()));
        let (mut run, e) = self.queued_run(kind, &images, spec, schedule);
        run.shared = true;
        q.enqueue(&run, &e)?;
        Ok(run)
    }

    /// Queues again every job whose lease ran out, each with a "requeued" event.
    pub fn requeue_lost(&self) -> Result<Vec<Requeued>> {
        let lost = self.shared_queue()?.requeue_lost()?;
        for r in &lost {
            self.event(
                &r.job.run,
                Some(&r.job.image),
                "requeued",
                &format!(
                    "worker {} lost its lease (no heartbeat in time); queued again for another worker",
                    r.lost_by
                ),
            )?;
        }
        Ok(lost)
    }

    /// Claims up to `batch(run)` queued jobs of the oldest run that has jobs under the
    /// worker's roots on images no job is running on; starts the run if it was queued.
    /// The `claimed` event (which worker, how many images, which attempt) is written
    /// with the claim.
    pub fn claim_jobs(
        &self,
        worker: &WorkerSpec,
        batch: &dyn Fn(&RunRecord) -> usize,
    ) -> Result<Option<Claimed>> {
        let start = &mut |run: &mut RunRecord| {
            run.state = RunState::Running;
            run.started = crate::clock::now();
            run.pid = std::process::id();
            let msg = format!("{} on {} image(s)", run.kind, run.images.len());
            self.new_event(&run.id, None, "started", &msg)
        };
        let claimed = &|run: &RunRecord, jobs: &[JobRow]| {
            let attempt = jobs.iter().map(|j| j.attempts).max().unwrap_or(1);
            let again = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let msg = format!("worker {} took {} image(s){again}", worker.name, jobs.len());
            self.new_event(&run.id, None, "claimed", &msg)
        };
        self.shared_queue()?.claim(&mut ClaimReq {
            worker: &worker.name,
            roots: &worker.roots,
            batch,
            lease_ms: worker.lease_ms,
            start,
            claimed,
        })
    }

    /// Marks the worker's jobs done (only those it still holds at that attempt); the last
    /// job of a run ends the run: failed if any image failed, cancelled if it was
    /// cancelled, else succeeded.
    pub fn finish_jobs(
        &self,
        worker: &str,
        run: &str,
        done: &[(i64, u32, JobOutcome)],
    ) -> Result<PartEnd> {
        let finish = &mut |r: &mut RunRecord, t: Tally| {
            let state = if t.cancel {
                RunState::Cancelled
            } else if t.failed > 0 {
                RunState::Failed
            } else {
                RunState::Succeeded
            };
            r.state = state;
            r.finished = Some(crate::clock::now());
            if t.failed > 0 {
                r.error = Some(format!("{} of {} image(s) failed", t.failed, t.total));
            }
            self.new_event(&r.id, None, "finished", state.as_str())
        };
        self.shared_queue()?.finish_jobs(worker, run, done, finish)
    }

    /// Hands jobs back to the queue (a worker stopping, or one that could not record
    /// them); returns how many were still its own.
    pub fn release_jobs(&self, worker: &str, jobs: &[(i64, u32)]) -> Result<usize> {
        self.shared_queue()?.release(worker, jobs)
    }

    /// Cancels a shared run: jobs not started are done as cancelled, running ones are
    /// flagged for their workers.
    pub fn cancel_shared(&self, run: &str) -> Result<SharedCancel> {
        let finish = &mut |r: &mut RunRecord, _: Tally| {
            r.state = RunState::Cancelled;
            r.finished = Some(crate::clock::now());
            self.new_event(&r.id, None, "finished", "cancelled")
        };
        self.shared_queue()?.cancel(run, finish)
    }

    /// A shared run's jobs, each with whether it waits for a worker with a root over it.
    pub fn run_jobs(&self, run: &str) -> Result<Vec<JobStatus>> {
        let q = self.shared_queue()?;
        let jobs = q.jobs(run)?;
        let workers = if jobs.iter().any(|j| j.state == "queued") {
            q.workers()?
        } else {
            Vec::new()
        };
        Ok(jobs
            .into_iter()
            .map(|job| JobStatus {
                waiting_for_root: job.state == "queued"
                    && !workers.iter().any(|w| w.alive() && w.covers(&job.image)),
                job,
            })
            .collect())
    }
}

/// A directory as a root: absolute, ending in `/`, so `/a/b/` never covers `/a/bc`.
pub fn root_prefix(dir: &str) -> String {
    let t = dir.trim_end_matches('/');
    format!("{t}/")
}
