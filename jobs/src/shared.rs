//! The queue of a shared catalog: runs are queued in the database (a job per image, see
//! `coldpatch_catalog::queue`), where workers on any host claim them. Submitting and
//! cancelling need no worker to be alive; a job no worker's roots cover waits for one.

use std::sync::Arc;

use coldpatch_catalog::queue::SharedCancel;
use coldpatch_catalog::{Catalog, RunRecord};

use crate::{Cancelled, JobError, JobSpec, Queue};

pub struct SharedJobs {
    catalog: Arc<Catalog>,
}

impl SharedJobs {
    /// The shared queue of `catalog`; refuses a catalog without one.
    pub fn new(catalog: Arc<Catalog>) -> Result<SharedJobs, JobError> {
        if !catalog.has_queue() {
            return Err(JobError::Catalog(
                coldpatch_catalog::CatalogError::NotShared {
                    catalog: catalog.describe().to_string(),
                },
            ));
        }
        Ok(SharedJobs { catalog })
    }
}

impl Queue for SharedJobs {
    fn submit(&self, spec: &JobSpec, schedule: Option<&str>) -> Result<RunRecord, JobError> {
        let value = spec.stored()?;
        let run = self
            .catalog
            .enqueue_run(spec.kind(), spec.images(), value, schedule)?;
        eprintln!(
            "run {}: queued: {} on {} image(s) for the workers",
            run.id,
            spec.kind(),
            run.images.len()
        );
        Ok(run)
    }

    fn cancel(&self, id: &str) -> Result<Cancelled, JobError> {
        let how = match self.catalog.cancel_shared(id)? {
            SharedCancel::Dequeued => {
                self.catalog
                    .event(id, None, "cancelled", "cancelled before it started")?;
                "dequeued"
            }
            SharedCancel::Signalled => {
                self.catalog.event(
                    id,
                    None,
                    "cancel-requested",
                    "the workers holding it stop at their next step; images not yet committed stay as they were",
                )?;
                "signalled"
            }
            SharedCancel::Ended(state) => {
                return Err(JobError::NotCancellable {
                    run: id.to_string(),
                    state: state.as_str(),
                })
            }
        };
        Ok(Cancelled {
            run: id.to_string(),
            how,
        })
    }
}
