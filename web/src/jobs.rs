//! The job queue: collect and patch runs, queued as catalog runs (state `queued`, with
//! their spec) and run by a bounded pool of worker threads. A job whose images overlap a
//! running job's waits, so runs on one image never overlap (the patcher's per-image lock
//! also guards against other processes). [`Jobs::run_next`] runs one job in the calling
//! thread: the deterministic "one step" that tests and a pool of zero workers use.
//! Every log line names its run.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use coldpatch_catalog::{Catalog, PlanPolicy, RunRecord, RunState};
use coldpatch_collector::CollectOptions;
use serde::{Deserialize, Serialize};

use crate::error::{chain, ApiError, ApiResult};
use crate::fleet::Fleet;

/// What a queued run does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "job")]
pub enum JobSpec {
    /// Collect the images (again, when changed; always with `rescan`).
    Collect {
        images: Vec<String>,
        #[serde(default)]
        rescan: bool,
    },
    /// Patch the images from a repository directory.
    Patch {
        images: Vec<String>,
        #[serde(flatten)]
        policy: PlanPolicy,
        repo: String,
    },
}

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Collect { .. } => "collect",
            JobSpec::Patch { .. } => "apply",
        }
    }
    pub fn images(&self) -> &[String] {
        match self {
            JobSpec::Collect { images, .. } | JobSpec::Patch { images, .. } => images,
        }
    }
}

pub fn request(policy: &PlanPolicy) -> coldpatch_patcher::Request {
    match policy {
        PlanPolicy::AllFixable => coldpatch_patcher::Request {
            all_fixable: true,
            ..Default::default()
        },
        PlanPolicy::MinSeverity { severity } => coldpatch_patcher::Request {
            min_severity: Some(*severity),
            ..Default::default()
        },
        PlanPolicy::Cves { ids } => coldpatch_patcher::Request {
            advisories: ids.clone(),
            ..Default::default()
        },
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<RunRecord>,
    running: HashMap<String, (Vec<String>, Arc<AtomicBool>)>,
    stop: bool,
}

pub struct Jobs {
    catalog: Arc<Catalog>,
    fleet: Arc<Fleet>,
    inner: Mutex<Inner>,
    wake: Condvar,
    /// libguestfs appliances per patch run.
    appliances: usize,
}

/// What cancelling did.
#[derive(Debug, Serialize)]
pub struct Cancelled {
    pub run: String,
    /// "dequeued": it had not started; "signalled": it stops at its next step.
    pub how: &'static str,
}

fn log(run: &str, image: Option<&str>, kind: &str, message: &str) {
    eprintln!(
        "run {run}: {kind}{}: {message}",
        image.map_or(String::new(), |i| format!(" {i}"))
    );
}

impl Jobs {
    pub fn new(catalog: Arc<Catalog>, fleet: Arc<Fleet>, appliances: usize) -> Jobs {
        Jobs {
            catalog,
            fleet,
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
            appliances: appliances.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job as a new run; returns the run (state `queued`).
    pub fn submit(&self, spec: &JobSpec, schedule: Option<&str>) -> ApiResult<RunRecord> {
        if spec.images().is_empty() {
            return Err(ApiError::bad("no image to run on"));
        }
        let value = serde_json::to_value(spec).map_err(|e| ApiError::internal(e.to_string()))?;
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

    /// Queues again the runs a previous server process left queued.
    pub fn resume_queued(&self) -> ApiResult<usize> {
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

    pub fn cancel(&self, id: &str) -> ApiResult<Cancelled> {
        let mut g = self.lock();
        if let Some(pos) = g.queue.iter().position(|r| r.id == id) {
            let mut run = g
                .queue
                .remove(pos)
                .ok_or_else(|| ApiError::internal("queue"))?;
            drop(g);
            run.state = RunState::Cancelled;
            run.finished = Some(self.catalog.now());
            self.catalog.put_run(&run)?;
            self.catalog
                .event(id, None, "cancelled", "cancelled before it started")?;
            self.catalog.event(id, None, "finished", "cancelled")?;
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
        Err(ApiError::conflict(format!(
            "run {id} is {}: only a queued or running run can be cancelled",
            run.state.as_str()
        )))
    }

    /// Takes the first queued job none of whose images a running job holds.
    fn take(g: &mut Inner) -> Option<(RunRecord, Arc<AtomicBool>)> {
        let busy: std::collections::HashSet<&String> =
            g.running.values().flat_map(|(imgs, _)| imgs).collect();
        let pos = g
            .queue
            .iter()
            .position(|r| !r.images.iter().any(|i| busy.contains(i)))?;
        let run = g.queue.remove(pos)?;
        let flag = Arc::new(AtomicBool::new(false));
        g.running
            .insert(run.id.clone(), (run.images.clone(), flag.clone()));
        Some((run, flag))
    }

    /// Runs the next runnable job here, to its end. `None` when none can start.
    pub fn run_next(&self) -> Option<String> {
        let (run, flag) = Self::take(&mut self.lock())?;
        Some(self.run_taken(run, &flag))
    }

    /// Runs a job [`Jobs::take`] handed out, then frees its images for the queue.
    fn run_taken(&self, run: RunRecord, flag: &AtomicBool) -> String {
        let id = run.id.clone();
        self.execute(run, flag);
        self.lock().running.remove(&id);
        self.wake.notify_all();
        id
    }

    /// Starts `n` worker threads.
    pub fn spawn_workers(self: &Arc<Self>, n: usize) -> Vec<std::thread::JoinHandle<()>> {
        (0..n)
            .map(|i| {
                let me = self.clone();
                std::thread::Builder::new()
                    .name(format!("coldpatch-worker-{i}"))
                    .spawn(move || me.work())
                    .expect("spawning a worker thread")
            })
            .collect()
    }

    fn work(&self) {
        loop {
            let (run, flag) = {
                let mut g = self.lock();
                loop {
                    if g.stop {
                        return;
                    }
                    if let Some(t) = Self::take(&mut g) {
                        break t;
                    }
                    g = self.wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.run_taken(run, &flag);
        }
    }

    /// Stops the workers once their current jobs end.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    fn execute(&self, run: RunRecord, cancel: &AtomicBool) {
        let id = run.id.clone();
        let spec: Result<JobSpec, String> = run
            .spec
            .clone()
            .ok_or_else(|| "the run has no job spec".to_string())
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()));
        let res = match spec {
            Ok(JobSpec::Collect { images, rescan }) => self.collect(run, &images, rescan, cancel),
            Ok(JobSpec::Patch {
                images,
                policy,
                repo,
            }) => self.patch(run, &images, &policy, &repo, cancel),
            Err(e) => Err(format!("unreadable job: {e}")),
        };
        self.fleet.changed();
        if let Err(e) = res {
            // The run could not even start (a bad repository, a store error): say so on it.
            if let Ok(mut r) = self.catalog.run(&id) {
                r.state = RunState::Failed;
                r.error = Some(e.clone());
                r.finished = Some(self.catalog.now());
                let _ = self.catalog.put_run(&r);
                let _ = self.catalog.event(&id, None, "failed", &e);
                let _ = self.catalog.event(&id, None, "finished", "failed");
            }
            log(&id, None, "failed", &e);
        }
    }

    fn event(&self, run: &str, image: Option<&str>, kind: &str, msg: &str) -> Result<(), String> {
        log(run, image, kind, msg);
        self.catalog
            .event(run, image, kind, msg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn collect(
        &self,
        mut run: RunRecord,
        images: &[String],
        rescan: bool,
        cancel: &AtomicBool,
    ) -> Result<(), String> {
        let c = &self.catalog;
        run.state = RunState::Running;
        run.pid = std::process::id();
        c.put_run(&run).map_err(|e| e.to_string())?;
        self.event(
            &run.id,
            None,
            "started",
            &format!("collect on {} image(s)", images.len()),
        )?;
        let opts = CollectOptions::default();
        let mut failed = 0;
        for img in images {
            if cancel.load(Ordering::SeqCst) {
                self.event(&run.id, Some(img), "cancelled", "not collected")?;
                continue;
            }
            match c.ingest(Path::new(img), &opts, rescan, &mut |_, _| {}) {
                Ok((s, unchanged)) => self.event(
                    &run.id,
                    Some(img),
                    "collected",
                    &format!(
                        "{}: {} packages, {} files{}; scan {}",
                        s.os.as_deref().unwrap_or("unknown OS"),
                        s.packages,
                        s.files,
                        if unchanged { " (unchanged)" } else { "" },
                        s.id
                    ),
                )?,
                Err(e) => {
                    failed += 1;
                    self.event(&run.id, Some(img), "failed", &chain(&e))?;
                }
            }
        }
        run.state = if cancel.load(Ordering::SeqCst) {
            RunState::Cancelled
        } else if failed == 0 {
            RunState::Succeeded
        } else {
            run.error = Some(format!("{failed} of {} image(s) failed", images.len()));
            RunState::Failed
        };
        run.finished = Some(c.now());
        c.put_run(&run).map_err(|e| e.to_string())?;
        self.event(&run.id, None, "finished", run.state.as_str())
    }

    fn patch(
        &self,
        run: RunRecord,
        images: &[String],
        policy: &PlanPolicy,
        repo: &str,
        cancel: &AtomicBool,
    ) -> Result<(), String> {
        let req = request(policy);
        let ask = coldpatch_patcher::Ask::Packages {
            req: &req,
            repo_root: Path::new(repo),
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
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}
