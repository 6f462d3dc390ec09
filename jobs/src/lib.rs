//! Jobs: what the server's queue, the scheduler and (later) worker processes share. A job
//! is a catalog run in state `queued` carrying its [`JobSpec`]; [`Jobs`] takes it
//! through its life — queue ([`Jobs::submit`]), claim ([`Jobs::claim`]: the first queued
//! job none of whose images a running job holds), run (the collector or the patcher),
//! cancel ([`Jobs::cancel`]) and finish (the catalog's `finish_run`, the one place a
//! run's end is written). [`scheduler`] queues jobs from stored schedules.
//!
//! On a shared (PostgreSQL) catalog the queue lives in the database instead
//! ([`shared::SharedJobs`]) and `coldpatch worker` processes on many hosts run its jobs
//! ([`worker`]); a server there runs its own jobs as one more worker. [`Queue`] is what
//! the server and the scheduler see of either.
//!
//! Every log line names its run (`run ID: ...`).

mod queue;
pub mod roots;
pub mod scheduler;
pub mod shared;
mod spec;
pub mod worker;

pub use queue::{Cancelled, Claim, Jobs};
pub use roots::{Refused, Roots};
pub use spec::{request, JobSpec};

use coldpatch_catalog::{CatalogError, RunRecord};

/// Where runs are queued: this process's [`Jobs`], or the catalog's shared queue.
pub trait Queue: Send + Sync {
    /// Queues a job as a new run; returns the run (state `queued`).
    fn submit(&self, spec: &JobSpec, schedule: Option<&str>) -> Result<RunRecord, JobError>;
    /// Dequeues a queued run or signals a running one to stop.
    fn cancel(&self, id: &str) -> Result<Cancelled, JobError>;
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no image to run on")]
    NoImages,
    #[error("run {run} is {state}: only a queued or running run can be cancelled")]
    NotCancellable { run: String, state: &'static str },
    #[error("cron expression {expr:?}: {why}")]
    Cron { expr: String, why: String },
    #[error("cannot start a thread: {0}")]
    Thread(String),
    #[error("cannot record the job")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// An error with its causes, `outer: inner: ...`, as a run records it and a log line
/// shows it (control characters escaped).
pub(crate) fn reason(e: impl std::error::Error + Send + Sync + 'static) -> String {
    coldpatch_catalog::text::cleaned(&format!("{:#}", anyhow::Error::new(e)))
}
