//! The queue in this process: runs queued in the catalog, claimed by a bounded pool of
//! worker threads or one at a time by [`Jobs::run_next`] (the deterministic step tests
//! and a pool of zero workers use). A job whose images overlap a running job's waits, so
//! runs on one image never overlap here (the patcher's per-image lock also guards
//! against other processes).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use coldpatch_catalog::queue::JobOutcome;
use coldpatch_catalog::{Catalog, CatalogError, PlanPolicy, RunRecord, RunState};
use serde::Serialize;

use crate::roots::{Refused, Roots};
use crate::spec::{request, JobSpec};
use crate::{reason, JobError};

#[derive(Default)]
struct Inner {
    queue: VecDeque<RunRecord>,
    /// Running jobs: their images and cancel flags.
    running: HashMap<String, (Vec<String>, Arc<AtomicBool>)>,
    stop: bool,
}

pub struct Jobs {
    catalog: Arc<Catalog>,
    inner: Mutex<Inner>,
    wake: Condvar,
    /// libguestfs appliances per patch run.
    appliances: usize,
    /// What its jobs may open, checked again as each job runs.
    roots: Roots,
    /// Called when a job changed what the catalog holds (images, scans, versions).
    changed: Box<dyn Fn() + Send + Sync>,
}

/// What cancelling did.
#[derive(Debug, Serialize)]
pub struct Cancelled {
    pub run: String,
    /// "dequeued": it had not started; "signalled": it stops at its next step.
    pub how: &'static str,
}

/// A job taken from the queue: its images are held until it is run or dropped.
pub struct Claim<'a> {
    jobs: &'a Jobs,
    pub run: RunRecord,
    cancel: Arc<AtomicBool>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.jobs.lock().running.remove(&self.run.id);
        self.jobs.wake.notify_all();
    }
}

fn log(run: &str, image: Option<&str>, kind: &str, message: &str) {
    crate::worker::log(run, image, kind, message);
}

/// Why a claimed job could not run to its end.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("unreadable job: {0}")]
    Spec(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Patch(#[from] coldpatch_patcher::PatchError),
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl crate::Queue for Jobs {
    fn submit(&self, spec: &JobSpec, schedule: Option<&str>) -> Result<RunRecord, JobError> {
        self.submit_here(spec, schedule)
    }

    fn cancel(&self, id: &str) -> Result<Cancelled, JobError> {
        self.cancel_here(id)
    }
}

impl Jobs {
    pub fn new(catalog: Arc<Catalog>, appliances: usize, roots: Roots) -> Jobs {
        Jobs {
            catalog,
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
            appliances: appliances.max(1),
            roots,
            changed: Box::new(|| {}),
        }
    }

    /// Calls `f` after every job (a cached view of the fleet goes stale).
    pub fn on_change(mut self, f: impl Fn() + Send + Sync + 'static) -> Jobs {
        self.changed = Box::new(f);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job as a new run; returns the run (state `queued`).
    fn submit_here(&self, spec: &JobSpec, schedule: Option<&str>) -> Result<RunRecord, JobError> {
        let value = spec.stored()?;
        let run = self
            .catalog
            .queue_run(spec.kind(), spec.images(), value, schedule)?;
        log(
            &run.id,
            None,
            "queued",
            &format!("{} on {} image(s)", spec.kind(), spec.images().len()),
        );
        self.lock().queue.push_back(run.clone());
        self.wake.notify_all();
        Ok(run)
    }

    /// Queues again the runs a previous process left queued.
    pub fn resume_queued(&self) -> Result<usize, JobError> {
        let mut left: Vec<RunRecord> = self
            .catalog
            .runs()?
            .into_iter()
            .filter(|r| r.state == RunState::Queued)
            .collect();
        left.sort_by(|a, b| a.id.cmp(&b.id));
        let n = left.len();
        for r in &left {
            self.catalog.event(
                &r.id,
                None,
                "requeued",
                "queued again after a server restart",
            )?;
        }
        self.lock().queue.extend(left);
        self.wake.notify_all();
        Ok(n)
    }

    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    fn cancel_here(&self, id: &str) -> Result<Cancelled, JobError> {
        let mut g = self.lock();
        if let Some(pos) = g.queue.iter().position(|r| r.id == id) {
            let dequeued = g.queue.remove(pos);
            drop(g);
            if let Some(mut run) = dequeued {
                self.catalog
                    .event(id, None, "cancelled", "cancelled before it started")?;
                self.catalog
                    .finish_run(&mut run, RunState::Cancelled, None)?;
            }
            log(id, None, "cancelled", "before it started");
            return Ok(Cancelled {
                run: id.to_string(),
                how: "dequeued",
            });
        }
        if let Some((_, flag)) = g.running.get(id) {
            flag.store(true, Ordering::SeqCst);
            drop(g);
            self.catalog.event(
                id,
                None,
                "cancel-requested",
                "stops at its next step; images not yet committed stay as they were",
            )?;
            log(id, None, "cancel-requested", "stops at its next step");
            return Ok(Cancelled {
                run: id.to_string(),
                how: "signalled",
            });
        }
        drop(g);
        let run = self.catalog.run(id)?;
        Err(JobError::NotCancellable {
            run: id.to_string(),
            state: run.state.as_str(),
        })
    }

    /// Takes the first queued job none of whose images a running job holds.
    fn take(&self, g: &mut Inner) -> Option<Claim<'_>> {
        let busy: HashSet<&String> = g.running.values().flat_map(|(imgs, _)| imgs).collect();
        let pos = g
            .queue
            .iter()
            .position(|r| !r.images.iter().any(|i| busy.contains(i)))?;
        let run = g.queue.remove(pos)?;
        let cancel = Arc::new(AtomicBool::new(false));
        g.running
            .insert(run.id.clone(), (run.images.clone(), cancel.clone()));
        Some(Claim {
            jobs: self,
            run,
            cancel,
        })
    }

    /// Claims the next runnable job without running it; `None` when none can start.
    pub fn claim(&self) -> Option<Claim<'_>> {
        self.take(&mut self.lock())
    }

    /// Runs a claimed job here, to its end, then frees its images; returns its run id.
    pub fn run_claimed(&self, claim: Claim<'_>) -> String {
        let id = claim.run.id.clone();
        self.execute(claim.run.clone(), &claim.cancel);
        drop(claim);
        id
    }

    /// Runs the next runnable job here, to its end. `None` when none can start.
    pub fn run_next(&self) -> Option<String> {
        let claim = self.claim()?;
        Some(self.run_claimed(claim))
    }

    /// Starts `n` worker threads.
    pub fn spawn_workers(
        self: &Arc<Self>,
        n: usize,
    ) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        (0..n)
            .map(|i| {
                let me = self.clone();
                std::thread::Builder::new()
                    .name(format!("coldpatch-worker-{i}"))
                    .spawn(move || me.work())
            })
            .collect()
    }

    fn work(&self) {
        loop {
            let claim = {
                let mut g = self.lock();
                loop {
                    if g.stop {
                        return;
                    }
                    if let Some(c) = self.take(&mut g) {
                        break c;
                    }
                    g = self.wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.run_claimed(claim);
        }
    }

    /// Stops the workers once their current jobs end.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    fn execute(&self, run: RunRecord, cancel: &AtomicBool) {
        let id = run.id.clone();
        let res = match run.spec.clone().map(serde_json::from_value::<JobSpec>) {
            Some(Ok(JobSpec::Collect { images, rescan })) => {
                self.collect(run, &images, rescan, cancel)
            }
            Some(Ok(JobSpec::Patch {
                images,
                policy,
                repo,
                no_replay,
            })) => self.patch(run, &images, &policy, &repo, !no_replay, cancel),
            Some(Err(e)) => Err(RunError::Spec(e.to_string())),
            None => Err(RunError::Spec("the run has no job spec".into())),
        };
        (self.changed)();
        if let Err(e) = res {
            // The run could not even start (a bad repository, a store error): say so on it.
            let why = reason(e);
            if let Ok(mut r) = self.catalog.run(&id) {
                let _ = self.catalog.event(&id, None, "failed", &why);
                let _ = self
                    .catalog
                    .finish_run(&mut r, RunState::Failed, Some(why.clone()));
            }
            log(&id, None, "failed", &why);
        }
    }

    fn event(
        &self,
        run: &str,
        image: Option<&str>,
        kind: &str,
        msg: &str,
    ) -> Result<(), CatalogError> {
        log(run, image, kind, msg);
        self.catalog.event(run, image, kind, msg).map(|_| ())
    }

    fn collect(
        &self,
        run: RunRecord,
        images: &[String],
        rescan: bool,
        cancel: &AtomicBool,
    ) -> Result<(), RunError> {
        let c = &self.catalog;
        let started = format!("collect on {} image(s)", images.len());
        let (mut run, _) = c.begin_run(run, &started)?;
        log(&run.id, None, "started", &started);
        let mut failed = 0;
        for img in images {
            if cancel.load(Ordering::SeqCst) {
                self.event(&run.id, Some(img), "cancelled", "not collected")?;
                continue;
            }
            let (outcome, kind, msg) =
                crate::worker::collect_image(c, &run.id, img, rescan, &self.roots)?;
            c.event(&run.id, Some(img), kind, &msg)?;
            if outcome == JobOutcome::Failed {
                failed += 1;
            }
        }
        let (state, error) = if cancel.load(Ordering::SeqCst) {
            (RunState::Cancelled, None)
        } else if failed == 0 {
            (RunState::Succeeded, None)
        } else {
            (
                RunState::Failed,
                Some(format!("{failed} of {} image(s) failed", images.len())),
            )
        };
        let e = c.finish_run(&mut run, state, error)?;
        log(&run.id, None, &e.kind, &e.message);
        Ok(())
    }

    fn patch(
        &self,
        run: RunRecord,
        images: &[String],
        policy: &PlanPolicy,
        repo: &str,
        replay: bool,
        cancel: &AtomicBool,
    ) -> Result<(), RunError> {
        let repo = crate::roots::check_patch(&self.roots, images, repo)?;
        let req = request(policy);
        let ask = coldpatch_patcher::Ask::Packages {
            req: &req,
            repo_root: Path::new(&repo),
            replay,
        };
        let id = run.id.clone();
        coldpatch_patcher::execute(
            &self.catalog,
            images,
            &ask,
            self.appliances,
            coldpatch_patcher::Control {
                run: Some(run),
                cancel: Some(cancel),
            },
            &mut |e| log(&id, e.image.as_deref(), &e.kind, &e.message),
        )?;
        Ok(())
    }
}
