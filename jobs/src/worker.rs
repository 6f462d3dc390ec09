//! `coldpatch worker`: one process on one host taking jobs from a shared catalog's queue
//! (`coldpatch_catalog::queue`) and running them with the collector and the patcher, as
//! the server's own workers do. It talks to other processes only through the database.
//!
//! Threads: the claimer (this function's caller) claims while a slot is free; each
//! claimed part runs on a thread of its own; the heartbeat renews the worker's row and
//! the leases of what it holds every third of the lease, and passes on what it learns:
//! a cancel flag set on a job, or a job no longer this worker's (its lease ran out while
//! the catalog could not be reached, and the job may be another worker's now). Either
//! stops the part at the patcher's next step; a part that lost its jobs records nothing
//! of their end, and its overlays go as a cancelled part's do.
//!
//! The catalog going away (a restart, a network cut) is waited out: each call is tried
//! again with backoff, the outage is said once when it starts and once when it ends. A
//! part that cannot record its images' ends keeps trying; one whose collect could not be
//! stored hands its jobs back for another try.
//!
//! SIGTERM (the `stop` flag): no more claims; parts under way finish; the worker is
//! marked stopped, and its name is free at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use coldpatch_catalog::queue::{root_prefix, Claimed, JobOutcome, JobRow, WorkerSpec};
use coldpatch_catalog::{Catalog, CatalogError, Outcome};
use coldpatch_collector::CollectOptions;

use crate::roots::Roots;
use crate::spec::{request, JobSpec};
use crate::{reason, JobError};

pub struct WorkerOptions {
    pub name: String,
    /// Directories whose images this host reaches (its claims ask for those only), and
    /// the repositories its patch jobs may read; each job's paths are checked again
    /// against them before it runs.
    pub roots: Roots,
    /// Parts run at once.
    pub slots: usize,
    /// libguestfs appliances per patch part.
    pub appliances: usize,
    /// Images of one patch run claimed together (one appliance batch).
    pub batch: usize,
    pub lease: Duration,
}

/// What the worker did, when it stopped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub parts: usize,
    pub images: usize,
    /// Time spent on the queue (claims, heartbeats, finishing, its own events).
    pub coordination: Duration,
}

/// The catalog not answering, said once when it starts and once when it ends.
struct Outage {
    name: String,
    since: Mutex<Option<Instant>>,
}

impl Outage {
    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            eprintln!(
                "worker {}: the catalog is not answering ({what}: {e}); retrying with backoff",
                self.name
            );
        }
    }

    fn ok(&self) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = since.take() {
            eprintln!(
                "worker {}: the catalog answers again, after {:.1} s; carrying on",
                self.name,
                t.elapsed().as_secs_f64()
            );
        }
    }
}

/// A part under way, as the heartbeat sees it.
struct Flags {
    jobs: Vec<i64>,
    /// Stop at the next step (a user's cancel, or the jobs were lost).
    cancel: Arc<AtomicBool>,
    /// The jobs are no longer this worker's: record nothing of their end.
    lost: Arc<AtomicBool>,
}

struct Shared {
    catalog: Arc<Catalog>,
    spec: WorkerSpec,
    opts: WorkerOptions,
    /// The parts under way; as many as slots are busy. `done` is told when one ends.
    parts: Mutex<HashMap<u64, Flags>>,
    done: Condvar,
    outage: Outage,
    /// What it did, with the time spent talking to the queue: claims that took jobs,
    /// heartbeats, finishing jobs, and the events the worker itself writes.
    report: Mutex<Report>,
}

/// Whether the error is the database failing (worth waiting out), not the request.
fn db_down(e: &CatalogError) -> bool {
    matches!(e, CatalogError::Store { .. } | CatalogError::Connect { .. })
}

/// One log line: `run ID: KIND [IMAGE]: MESSAGE`, control characters escaped (an image
/// names its own strings), so nothing a guest holds can start a line of its own.
pub(crate) fn log(run: &str, image: Option<&str>, kind: &str, message: &str) {
    use coldpatch_catalog::text::clean;
    eprintln!(
        "run {}: {}{}: {}",
        clean(run),
        clean(kind),
        image.map_or(String::new(), |i| format!(" {}", clean(i))),
        clean(message)
    );
}

/// What collecting one image of a run came to: its outcome and the event that says so
/// (kind, message). `Err` only when the catalog failed under it; the image's own failure
/// is a `failed` event.
pub(crate) fn collect_image(
    c: &Catalog,
    run: &str,
    img: &str,
    rescan: bool,
    roots: &Roots,
) -> Result<(JobOutcome, &'static str, String), CatalogError> {
    let real = match roots.image(img) {
        Ok(real) => real,
        Err(refused) => {
            let why = refused.to_string();
            log(run, Some(img), "failed", &why);
            return Ok((JobOutcome::Failed, "failed", why));
        }
    };
    let mut opts = CollectOptions::default();
    // Backing files, too, must lie under the roots.
    opts.open.image_roots = roots.images().to_vec();
    let done = match c.ingest(Path::new(&real), &opts, rescan, &mut |_, _| {}) {
        Ok((s, unchanged)) => (
            JobOutcome::Ok,
            "collected",
            format!(
                "{}: {} packages, {} files{}; scan {}",
                s.os.as_deref().unwrap_or("unknown OS"),
                s.packages,
                s.files,
                if unchanged { " (unchanged)" } else { "" },
                s.id
            ),
        ),
        Err(coldpatch_catalog::ingest::IngestError::Catalog(e)) if db_down(&e) => return Err(e),
        Err(e) => (JobOutcome::Failed, "failed", reason(e)),
    };
    log(run, Some(img), done.1, &done.2);
    Ok(done)
}

/// Registers, then claims and runs jobs until `stop` is set; returns what it did.
pub fn run(
    catalog: Arc<Catalog>,
    opts: WorkerOptions,
    stop: Arc<AtomicBool>,
) -> Result<Report, JobError> {
    let roots = opts
        .roots
        .images()
        .iter()
        // Roots are canonical already (Roots::new).
        .map(|r| root_prefix(&r.display().to_string()))
        .collect();
    let spec = WorkerSpec {
        name: opts.name.clone(),
        host: hostname(),
        pid: std::process::id(),
        roots,
        slots: u32::try_from(opts.slots.max(1)).unwrap_or(u32::MAX),
        version: env!("CARGO_PKG_VERSION").to_string(),
        lease_ms: u64::try_from(opts.lease.as_millis()).unwrap_or(u64::MAX),
    };
    let freed = catalog.register_worker(&spec)?;
    eprintln!(
        "worker {}: registered on {} (host {}, roots {}, {} slot(s), lease {} s){}",
        spec.name,
        catalog.describe(),
        spec.host,
        spec.roots.join(" "),
        spec.slots,
        opts.lease.as_secs_f64(),
        if freed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} job(s) its last process held are queued again",
                freed.len()
            )
        }
    );
    let me = Arc::new(Shared {
        outage: Outage {
            name: spec.name.clone(),
            since: Mutex::new(None),
        },
        catalog,
        spec,
        opts,
        parts: Mutex::new(HashMap::new()),
        done: Condvar::new(),
        report: Mutex::new(Report::default()),
    });
    let beat = {
        let (me, stop) = (me.clone(), stop.clone());
        std::thread::Builder::new()
            .name("coldpatch-heartbeat".into())
            .spawn(move || me.heartbeat(&stop))
            .map_err(|e| JobError::Thread(e.to_string()))?
    };
    me.claim_loop(&stop);
    eprintln!(
        "worker {}: stopping; waiting for the parts under way",
        me.spec.name
    );
    me.wait_idle();
    // The heartbeat ends with the parts; the worker is marked stopped once the catalog
    // takes it.
    let _ = beat.join();
    // Tried a few times only: a worker told to stop does not wait for a catalog that
    // is gone (its row then shows it lost, which is as true).
    for _ in 0..5 {
        match me.catalog.stop_worker(&me.spec.name) {
            Ok(()) => break,
            Err(e) => {
                me.outage.failed("mark the worker stopped", &e);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let report = *me.report.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "worker {}: stopped after {} part(s), {} image(s); coordination {:.1} ms per image",
        me.spec.name,
        report.parts,
        report.images,
        report.coordination.as_secs_f64() * 1000.0 / report.images.max(1) as f64
    );
    Ok(report)
}

/// This host's name, as workers register it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// A stop flag never set: for what must be retried until the catalog takes it.
static NEVER: AtomicBool = AtomicBool::new(false);

/// Sleeps up to `d`, waking early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
}

impl Shared {
    fn count(&self, coordination: Duration) {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .coordination += coordination;
    }

    /// Runs `f`, counting its time as coordination.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let v = f();
        self.count(t.elapsed());
        v
    }

    /// Calls `f` until it works or `stop` is set, with backoff while the catalog is down.
    fn retry<T>(
        &self,
        what: &str,
        stop: &AtomicBool,
        mut f: impl FnMut() -> Result<T, CatalogError>,
    ) -> Option<T> {
        let mut wait = Duration::from_millis(200);
        loop {
            match f() {
                Ok(v) => {
                    self.outage.ok();
                    return Some(v);
                }
                Err(e) if db_down(&e) => {
                    self.outage.failed(what, &e);
                    if stop.load(Ordering::SeqCst) {
                        return None;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    eprintln!("worker {}: cannot {what}: {}", self.spec.name, reason(e));
                    return None;
                }
            }
        }
    }

    fn claim_loop(self: &Arc<Self>, stop: &AtomicBool) {
        let mut wait = Duration::from_millis(200);
        let mut part_no = 0u64;
        let mut last_sweep: Option<Instant> = None;
        while !stop.load(Ordering::SeqCst) {
            {
                let parts = self.lock_parts();
                if parts.len() >= self.spec.slots as usize {
                    let _ = self.done.wait_timeout(parts, Duration::from_millis(250));
                    continue;
                }
            }
            let batch = self.opts.batch.max(1);
            let t = Instant::now();
            let parts = self.lock_parts();
            // Leases are looked at every third of a lease, not at every claim.
            let sweep = last_sweep.is_none_or(|t: Instant| t.elapsed() >= self.opts.lease / 3);
            let lost = if sweep {
                last_sweep = Some(Instant::now());
                self.catalog.requeue_lost().map(|_| ())
            } else {
                Ok(())
            };
            let claimed = lost.and_then(|()| {
                self.catalog.claim_jobs(&self.spec, &|run| {
                    if run.kind == "collect" {
                        1
                    } else {
                        batch
                    }
                })
            });
            if matches!(claimed, Ok(Some(_))) {
                self.count(t.elapsed());
            }
            let claimed = match claimed {
                Ok(Some(c)) => {
                    self.outage.ok();
                    wait = Duration::from_millis(200);
                    part_no += 1;
                    self.start_part(parts, part_no, c);
                    continue;
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            drop(parts);
            match claimed {
                Ok(()) => {
                    self.outage.ok();
                    wait = Duration::from_millis(200);
                    nap(Duration::from_millis(500), stop);
                }
                Err(e) if db_down(&e) => {
                    self.outage.failed("claim jobs", &e);
                    nap(wait, stop);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    eprintln!("worker {}: cannot claim: {}", self.spec.name, reason(e));
                    nap(Duration::from_secs(2), stop);
                }
            }
        }
    }

    fn wait_idle(&self) {
        let mut g = self.lock_parts();
        while !g.is_empty() {
            g = self
                .done
                .wait_timeout(g, Duration::from_millis(250))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn heartbeat(&self, stop: &AtomicBool) {
        let every = (self.opts.lease / 3).max(Duration::from_millis(200));
        let mut last_ok = Instant::now();
        loop {
            let idle = self.lock_parts().is_empty();
            if stop.load(Ordering::SeqCst) && idle {
                return;
            }
            // Under the parts' lock: a claim and its entry in the map happen together, so
            // the database never hears of a job this worker runs but did not list.
            let parts = self.lock_parts();
            let running: Vec<i64> = parts
                .values()
                .flat_map(|f| f.jobs.iter().copied())
                .collect();
            let beat = self.timed(|| self.catalog.heartbeat(&self.spec.name, &running));
            drop(parts);
            match beat {
                Ok(held) => {
                    self.outage.ok();
                    last_ok = Instant::now();
                    let held: HashMap<i64, bool> = held.into_iter().collect();
                    for f in self.lock_parts().values() {
                        if f.jobs.iter().any(|j| !held.contains_key(j)) {
                            f.lost.store(true, Ordering::SeqCst);
                            f.cancel.store(true, Ordering::SeqCst);
                        } else if f.jobs.iter().any(|j| held[j]) {
                            f.cancel.store(true, Ordering::SeqCst);
                        }
                    }
                }
                Err(e) => {
                    self.outage.failed("heartbeat", &e);
                    if last_ok.elapsed() > self.opts.lease {
                        // The leases may have run out: what we hold may be another's.
                        for f in self.lock_parts().values() {
                            f.lost.store(true, Ordering::SeqCst);
                            f.cancel.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
            let end = Instant::now() + every;
            while Instant::now() < end {
                if stop.load(Ordering::SeqCst) && self.lock_parts().is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn lock_parts(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Flags>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a claimed part on a thread of its own; `parts` is the map's lock, held since
    /// the claim.
    fn start_part(
        self: &Arc<Self>,
        mut parts: std::sync::MutexGuard<'_, HashMap<u64, Flags>>,
        no: u64,
        c: Claimed,
    ) {
        let cancel = Arc::new(AtomicBool::new(c.jobs.iter().any(|j| j.cancel)));
        let lost = Arc::new(AtomicBool::new(false));
        parts.insert(
            no,
            Flags {
                jobs: c.jobs.iter().map(|j| j.id).collect(),
                cancel: cancel.clone(),
                lost: lost.clone(),
            },
        );
        drop(parts);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("coldpatch-part-{no}"))
            .spawn({
                let me = me.clone();
                move || {
                    me.run_part(c, &cancel, &lost);
                    me.lock_parts().remove(&no);
                    me.done.notify_all();
                }
            });
        if let Err(e) = spawned {
            eprintln!("worker {}: cannot start a part: {e}", me.spec.name);
            me.lock_parts().remove(&no);
        }
    }

    fn run_part(&self, c: Claimed, cancel: &AtomicBool, lost: &AtomicBool) {
        let run = &c.run;
        let images: Vec<String> = c.jobs.iter().map(|j| j.image.clone()).collect();
        let attempt = c.jobs.iter().map(|j| j.attempts).max().unwrap_or(1);
        // The claim wrote its event; this says it here too.
        log(
            &run.id,
            None,
            "claimed",
            &format!("{} image(s), attempt {attempt}", images.len()),
        );
        let spec = run
            .spec
            .clone()
            .map(serde_json::from_value::<JobSpec>)
            .transpose();
        let outcomes: Option<Vec<JobOutcome>> = match spec {
            Ok(Some(JobSpec::Collect { rescan, .. })) => self.collect(run, &c.jobs, rescan, cancel),
            Ok(Some(JobSpec::Patch {
                policy,
                repo,
                no_replay,
                ..
            })) => match crate::roots::check_patch(&self.opts.roots, &images, &repo) {
                Ok(repo) => {
                    let req = request(&policy);
                    let ask = coldpatch_patcher::Ask::Packages {
                        req: &req,
                        repo_root: Path::new(&repo),
                        replay: !no_replay,
                    };
                    self.patch(run, attempt, &images, &ask, cancel)
                }
                Err(refused) => self.part_failed(&run.id, &refused.to_string(), c.jobs.len()),
            },
            Ok(None) | Err(_) => self.part_failed(
                &run.id,
                "unreadable job: the run has no job spec this worker knows",
                c.jobs.len(),
            ),
        };
        // The part stays in the map (its leases renewed) until its end is recorded.
        let rows: Vec<(i64, u32)> = c.jobs.iter().map(|j| (j.id, j.attempts)).collect();
        let Some(outcomes) = outcomes.filter(|_| !lost.load(Ordering::SeqCst)) else {
            let why = if lost.load(Ordering::SeqCst) {
                "its lease ran out; another worker redoes it"
            } else {
                "the catalog failed under it; handed back to be done again"
            };
            log(&run.id, None, "handed-back", why);
            if let Some(n) = self.retry("hand jobs back", &NEVER, || {
                self.catalog.release_jobs(&self.spec.name, &rows)
            }) {
                if n > 0 {
                    let _ = self.catalog.event(&run.id, None, "handed-back", why);
                }
            }
            return;
        };
        let done: Vec<(i64, u32, JobOutcome)> = c
            .jobs
            .iter()
            .zip(outcomes)
            .map(|(j, o)| (j.id, j.attempts, o))
            .collect();
        let end = self.timed(|| {
            self.retry("record the part's end", &NEVER, || {
                self.catalog.finish_jobs(&self.spec.name, &run.id, &done)
            })
        });
        if let Some(end) = end {
            if let Some(e) = end.finished {
                log(&run.id, None, &e.kind, &e.message);
            }
            let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
            r.parts += 1;
            r.images += end.done;
        }
    }

    /// A part that fails as a whole: says why on the run, and every job of it failed.
    fn part_failed(&self, run: &str, why: &str, jobs: usize) -> Option<Vec<JobOutcome>> {
        log(run, None, "failed", why);
        self.retry("record the failure", &NEVER, || {
            self.catalog.event(run, None, "failed", why)
        });
        Some(vec![JobOutcome::Failed; jobs])
    }

    /// `None`: the catalog failed under the part; its jobs go back to the queue.
    fn collect(
        &self,
        run: &coldpatch_catalog::RunRecord,
        jobs: &[JobRow],
        rescan: bool,
        cancel: &AtomicBool,
    ) -> Option<Vec<JobOutcome>> {
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            if cancel.load(Ordering::SeqCst) {
                let _ = self
                    .catalog
                    .event(&run.id, Some(&j.image), "cancelled", "not collected");
                out.push(JobOutcome::Cancelled);
                continue;
            }
            let written = collect_image(&self.catalog, &run.id, &j.image, rescan, &self.opts.roots)
                .and_then(|(o, kind, msg)| {
                    self.timed(|| self.catalog.event(&run.id, Some(&j.image), kind, &msg))?;
                    Ok(o)
                });
            match written {
                Ok(o) => out.push(o),
                Err(e) => {
                    self.outage.failed("collect", &e);
                    return None;
                }
            }
        }
        Some(out)
    }

    fn patch(
        &self,
        run: &coldpatch_catalog::RunRecord,
        attempt: u32,
        images: &[String],
        ask: &coldpatch_patcher::Ask<'_>,
        cancel: &AtomicBool,
    ) -> Option<Vec<JobOutcome>> {
        let id = run.id.clone();
        let res = coldpatch_patcher::execute_part(
            &self.catalog,
            run,
            attempt,
            images,
            ask,
            self.opts.appliances,
            cancel,
            &mut |e| log(&id, e.image.as_deref(), &e.kind, &e.message),
        );
        match res {
            Ok(results) => {
                let by: HashMap<&str, &Outcome> = results
                    .iter()
                    .map(|r| (r.image.as_str(), &r.outcome))
                    .collect();
                Some(
                    images
                        .iter()
                        .map(|i| match by.get(i.as_str()) {
                            Some(Outcome::Committed { .. }) => JobOutcome::Ok,
                            Some(Outcome::Unchanged { .. }) => JobOutcome::Unchanged,
                            Some(Outcome::Discarded) if cancel.load(Ordering::SeqCst) => {
                                JobOutcome::Cancelled
                            }
                            _ => JobOutcome::Failed,
                        })
                        .collect(),
                )
            }
            Err(coldpatch_patcher::PatchError::Catalog(e)) if db_down(&e) => {
                self.outage.failed("patch", &e);
                None
            }
            Err(e) => self.part_failed(&id, &reason(e), images.len()),
        }
    }
}
