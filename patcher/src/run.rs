//! A patch run, start to end: lock each image, sweep what a killed run left, plan, make
//! overlays, change them in one appliance (`guest.rs`), read each overlay back natively
//! and verify it, then commit it as the image's next version or throw it away.
//!
//! The original file and every earlier version are only ever backing files: opened
//! read-only by qemu-img and the appliance, never written. Until the commit transaction
//! the catalog holds nothing of the new version but events; an overlay of a run that died
//! is deleted by the next run on the image.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use coldpatch_catalog::{
    Catalog, Event, FindingBrief, Fingerprint, ImageRecord, Outcome, RunImage, RunRecord, RunState,
    ScanOptions, VersionFile,
};
use coldpatch_collector::{CollectOptions, FileRecord, Inventory};
use coldpatch_disk::qcow2::{stamp, Stamp};
use coldpatch_disk::{Disk, OpenOptions};
use coldpatch_vuln::{Finding, Index};

use crate::guest::{self, Change, GuestError, Job, Put, ReplayJob, Replayed};
use crate::lock::ImageLock;
use crate::overlay;
use crate::plan::Request;
use crate::pm::plan;
use crate::PatchError;

/// What one image came to in a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageResult {
    pub image: String,
    pub outcome: Outcome,
    /// Findings of the targeted advisories before, and all findings before and after.
    pub fixed: Vec<String>,
    pub findings_before: usize,
    pub findings_after: Option<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run: RunRecord,
    pub images: Vec<ImageResult>,
}

/// Receives every event as it is stored (for progress output).
pub type Watch<'a> = dyn FnMut(&Event) + Send + 'a;

struct Ctx<'a, 'w> {
    catalog: &'a Catalog,
    run: RunRecord,
    watch: &'w mut Watch<'w>,
    /// Plans made in this run, by what they depend on (the release and the exact package
    /// set; the findings follow from those): images that carry the same packages at the
    /// same versions get the plan once. Value: (first image, plan or refusal).
    plans: std::collections::HashMap<[u8; 32], (String, Result<crate::Plan, crate::Refusal>)>,
    /// The overlays' file name: the run id, and for a redone part of a shared run its
    /// attempt too, so an attempt that died is never mistaken for the one that lives.
    overlay_name: String,
}

/// What a plan depends on besides the request and repository, which one run shares.
fn plan_key(inv: &Inventory) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if let Some(o) = &inv.os {
        h.update(format!(
            "{}\0{}\0{}\n",
            o.id, o.version_id, o.version_codename
        ));
    }
    let mut pk: Vec<String> = inv
        .packages
        .iter()
        .map(|p| {
            format!(
                "{:?}\0{}\0{}\0{}\0{}\0{}\0{}\n",
                p.kind,
                p.name,
                p.arch,
                p.full_version(),
                p.source_name,
                p.source_version,
                p.depends.join("|")
            ) + &p.provides.join("|")
        })
        .collect();
    pk.sort();
    pk.iter().for_each(|l| h.update(l.as_bytes()));
    h.finalize().into()
}

impl Ctx<'_, '_> {
    fn event(&mut self, image: Option<&str>, kind: &str, message: &str) -> Result<(), PatchError> {
        let e = self.catalog.event(&self.run.id, image, kind, message)?;
        (self.watch)(&e);
        Ok(())
    }
}

fn took(stage: &str, since: std::time::Instant) -> String {
    crate::appliance::timing(stage, since.elapsed().as_secs_f64())
}

fn briefs(findings: &[Finding]) -> Vec<FindingBrief> {
    let mut v: Vec<FindingBrief> = findings
        .iter()
        .map(|f| FindingBrief {
            advisory: f.of.advisory.clone(),
            package: f.package.to_string(),
            installed: f.installed.to_string(),
            fixed: f.fixed.clone(),
        })
        .collect();
    v.sort();
    v
}

fn findings_of(index: &Index, inv: &Inventory) -> Vec<Finding> {
    index.inventory_findings(inv).1
}

/// Marks runs on `image` that died as interrupted and deletes their overlays. Only
/// called with the image's lock held, so no live run can be among them. A run of the
/// shared queue is not marked: its job on the image was queued again when its worker
/// lost the lease, and is redone (the overlay of the attempt that died goes here); an
/// earlier attempt of this same run is swept the same way. A run already marked
/// interrupted (by a sweep of another of its images) still has its overlay of this image
/// deleted here.
fn sweep(ctx: &mut Ctx<'_, '_>, image: &str) -> Result<(), PatchError> {
    // A shared run is running while its jobs are: it is among these itself.
    let states = [RunState::Running, RunState::Interrupted];
    for mut dead in ctx.catalog.runs_on(image, &states)? {
        let own = dead.id == ctx.run.id;
        if own && !ctx.run.shared {
            continue;
        }
        let mut swept = false;
        for mut ri in ctx.catalog.run_images(&dead.id)? {
            if ri.image != image || ri.outcome != Outcome::Pending {
                continue;
            }
            if let Some(o) = ri.overlay.take() {
                let _ = std::fs::remove_file(&o);
            }
            ri.outcome = Outcome::Discarded;
            ctx.catalog.put_run_image(&ri)?;
            swept = true;
        }
        if dead.shared {
            if swept {
                let whose = if own {
                    "an earlier attempt of this run"
                } else {
                    "a worker that lost its lease"
                };
                ctx.event(
                    Some(image),
                    "swept",
                    &format!("the overlay of {whose} (run {}) was deleted", dead.id),
                )?;
            }
            continue;
        }
        // Marked interrupted already by the sweep of another of its images: only this
        // image's overlay was left.
        let marked = dead.state == RunState::Interrupted;
        if !marked {
            dead.state = RunState::Interrupted;
            dead.error = Some(format!("interrupted; cleaned up by run {}", ctx.run.id));
            ctx.catalog.put_run(&dead)?;
            ctx.catalog.event(
                &dead.id,
                Some(image),
                "interrupted",
                &format!("found by run {}", ctx.run.id),
            )?;
        }
        if swept || !marked {
            ctx.event(
                Some(image),
                "swept",
                &format!("run {} had died; its overlay was deleted", dead.id),
            )?;
        }
    }
    Ok(())
}

/// What the caller asks of each image.
pub enum Ask<'a> {
    Packages {
        req: &'a Request,
        repo_root: &'a Path,
        /// Images with the same plan are patched once, on the first of them, and the
        /// others take its change set where it applies (`replay.rs`).
        replay: bool,
    },
    Files {
        puts: &'a [Put],
    },
}

struct Prepared {
    image: ImageRecord,
    change: Change,
    ri: RunImage,
    overlay: PathBuf,
    roots: Vec<PathBuf>,
    before: Vec<Finding>,
    /// The root partition, when the collector read the root natively (an ext volume).
    root_partition: Option<u32>,
    /// What its plan depends on (`plan_key`): images with the same key have the same plan.
    plan_key: Option<[u8; 32]>,
    /// The version the overlay is made on, and its format.
    base: (PathBuf, String),
    _lock: ImageLock,
}

fn prepare(
    ctx: &mut Ctx<'_, '_>,
    key: &str,
    ask: &Ask<'_>,
    index: &Index,
    repo: Option<&coldpatch_repo::RepoIndex>,
) -> Result<Prepared, PatchError> {
    let lock = ImageLock::acquire(ctx.catalog.state(), key, &ctx.run.id)?;
    sweep(ctx, key)?;
    let (img, inv) = ctx.catalog.current_inventory(key)?;
    ctx.catalog
        .state()
        .ensure(ctx.catalog.state().versions(img.id))?;
    let roots = ctx.catalog.backing_roots(&img, &inv);
    let current = PathBuf::from(img.current_file());
    // Opening checks the format, the backing chain and qemu's locks: an image a running
    // VM writes is refused here.
    let disk = Disk::open(
        &current,
        &OpenOptions {
            image_roots: roots.clone(),
            ..OpenOptions::default()
        },
    )?;
    let before = findings_of(index, &inv);
    let pk = plan_key(&inv);
    let change = match ask {
        Ask::Packages { req, .. } => {
            let repo = repo.ok_or_else(|| PatchError::Plan {
                image: key.into(),
                refusal: Box::new(crate::Refusal::Nothing("no repository".into())),
            })?;
            let made = match ctx.plans.get(&pk) {
                Some((first, made)) => {
                    let msg = format!(
                        "same packages at the same versions as {first}: its plan is used, not made again"
                    );
                    let made = made.clone();
                    ctx.event(Some(key), "plan-shared", &msg)?;
                    made.map(|mut p| {
                        key.clone_into(&mut p.image);
                        p
                    })
                }
                None => {
                    let made = plan(key, &inv.packages, &before, repo, req);
                    ctx.plans.insert(pk, (key.to_string(), made.clone()));
                    made
                }
            };
            let p = made.map_err(|e| match e {
                crate::Refusal::Nothing(why) => PatchError::Nothing {
                    image: key.into(),
                    why,
                },
                refusal => PatchError::Plan {
                    image: key.into(),
                    refusal: Box::new(refusal),
                },
            })?;
            Change::Packages { plan: p }
        }
        Ask::Files { puts } => Change::Files {
            puts: puts.to_vec(),
        },
    };
    let summary = match &change {
        Change::Packages { plan } => format!(
            "{} package(s) in {} stage(s); fixes {}",
            plan.steps.len(),
            plan.steps
                .iter()
                .map(|s| s.stage)
                .max()
                .map_or(0, |m| m + 1),
            if plan.fixes.is_empty() {
                "no advisory".to_string()
            } else {
                plan.fixes.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ),
        Change::Files { puts } => format!("{} file(s)", puts.len()),
    };
    let overlay = ctx.catalog.state().overlay(img.id, &ctx.overlay_name);
    let mut ri = RunImage {
        run: ctx.run.id.clone(),
        image: key.to_string(),
        change: serde_json::to_value(&change).map_err(|e| PatchError::Plan {
            image: key.into(),
            refusal: Box::new(crate::Refusal::Nothing(format!(
                "the change cannot be recorded: {e}"
            ))),
        })?,
        overlay: Some(overlay.display().to_string()),
        base_version: img.current_version,
        log: String::new(),
        before: briefs(&before),
        after: Vec::new(),
        outcome: Outcome::Pending,
    };
    // Recorded before the file exists, so a sweep always knows what to delete.
    ctx.catalog.put_run_image(&ri)?;
    ctx.event(Some(key), "planned", &summary)?;
    if let Err(e) = overlay::create(&overlay, &current, disk.format.as_str()) {
        ri.overlay = None;
        let _ = std::fs::remove_file(&overlay);
        ctx.catalog.put_run_image(&ri)?;
        return Err(e);
    }
    ctx.event(
        Some(key),
        "overlay",
        &format!(
            "{} on version {} ({})",
            overlay.display(),
            img.current_version,
            current.display()
        ),
    )?;
    let root_partition = inv
        .image
        .volumes
        .iter()
        .find(|v| v.number == inv.image.root_volume && v.fs.starts_with("ext"))
        .map(|v| v.number);
    let plan_key = matches!(change, Change::Packages { .. }).then_some(pk);
    Ok(Prepared {
        image: img,
        change,
        ri,
        overlay,
        roots,
        before,
        root_partition,
        plan_key,
        base: (current, disk.format.as_str().to_string()),
        _lock: lock,
    })
}

/// Why a patched version was not accepted.
#[derive(Debug, thiserror::Error)]
enum Unverified {
    #[error("the patched version cannot be opened: {0}")]
    Open(coldpatch_disk::DiskError),
    #[error("the patched version's backing chain cannot be read: {0}")]
    Chain(std::io::Error),
    #[error("the patched version cannot be read: {0}")]
    Read(coldpatch_collector::CollectError),
    /// What is not as planned, each part said.
    #[error("{}", .0.join("; "))]
    Wrong(Vec<String>),
}

/// A native read of an image's files with hashes, its backing files only from its roots.
fn collect_options(p: &Prepared, guestfs: bool) -> CollectOptions {
    CollectOptions {
        open: OpenOptions {
            image_roots: p.roots.clone(),
            ..OpenOptions::default()
        },
        guestfs,
        ..CollectOptions::default()
    }
}

/// Reads the overlay natively and checks the change took: planned packages at their
/// planned versions, targeted advisories gone, files with their content.
fn verify(
    p: &Prepared,
    index: &Index,
    change: &Change,
    replayed: Option<(&Replayed, &[FileRecord])>,
) -> Result<(Inventory, Fingerprint, Vec<Finding>), Unverified> {
    let opts = collect_options(p, true);
    let disk = Disk::open(&p.overlay, &opts.open).map_err(Unverified::Open)?;
    let chain: Vec<PathBuf> = disk.chain.iter().map(|l| l.path.clone()).collect();
    let fp = Fingerprint::of(&chain).map_err(Unverified::Chain)?;
    let mut inv = coldpatch_collector::collect_disk(&disk, &opts, &mut |_, _| {})
        .map_err(Unverified::Read)?;
    inv.image.path.clone_from(&p.image.path);
    let after = findings_of(index, &inv);
    let mut wrong = Vec::new();
    match change {
        Change::Packages { plan } => {
            for s in &plan.steps {
                let have = inv
                    .packages
                    .iter()
                    .find(|q| q.name == s.package && (q.arch == s.arch || s.arch == "all"))
                    .map(|q| q.version.clone());
                if have.as_deref() != Some(s.to.as_str()) {
                    wrong.push(format!(
                        "{} is at {} instead of {}",
                        s.package,
                        have.as_deref().unwrap_or("(not installed)"),
                        s.to
                    ));
                }
            }
            if let Some(pm) = crate::pm::for_kind(plan.kind) {
                wrong.extend(pm.leftovers(&inv));
            }
            for f in &after {
                if plan.fixes.contains_key(&f.of.advisory) {
                    wrong.push(format!(
                        "{} still matches {} {}",
                        f.of.advisory, f.package, f.installed
                    ));
                }
            }
        }
        Change::Files { puts } => {
            for put in puts {
                let have = inv
                    .files
                    .iter()
                    .find(|f| f.path == put.guest)
                    .and_then(|f| f.sha256.clone());
                if have.as_deref() != Some(put.sha256.as_str()) {
                    wrong.push(format!(
                        "{} has SHA-256 {} instead of {}",
                        put.guest,
                        have.as_deref().unwrap_or("(missing)"),
                        put.sha256
                    ));
                }
            }
        }
    }
    if let Some((rep, before)) = replayed {
        let (before, now) = (
            crate::replay::by_path(before),
            crate::replay::by_path(&inv.files),
        );
        if let Err(why) = rep.set.check(&before, &now) {
            wrong.push(format!("replayed from {}: {why}", rep.reference));
        }
    }
    if wrong.is_empty() {
        Ok((inv, fp, after))
    } else {
        Err(Unverified::Wrong(wrong))
    }
}

/// Runs the jobs in `appliances` libguestfs appliances side by side (one by default: the
/// launch is paid once); outcomes come back in job order. Every appliance reports its events into the run as they happen.
fn in_appliances(
    catalog: &Catalog,
    run_id: &str,
    jobs: &[Job<'_>],
    appliances: usize,
    repo_root: Option<&Path>,
    watch: &mut Watch<'_>,
) -> Result<Vec<guest::JobOutcome>, PatchError> {
    let n = appliances.clamp(1, jobs.len().max(1));
    let per = jobs.len().div_ceil(n).max(1);
    // apk checks signatures: its runs install from an index signed with the catalog's key.
    let apk = jobs.iter().any(|j| {
        matches!(j.change, Change::Packages { plan } if plan.kind == coldpatch_collector::PackageKind::Apk)
    });
    let key = if apk {
        Some(catalog.signing_key()?)
    } else {
        None
    };
    let key = key.as_ref();
    // The host's CPUs shared among the appliances: each installs on as many images at
    // once as it has CPUs (`batch.rs`). A TCG appliance with two CPUs was once seen
    // hanging at boot on a busy host (cause not established); the launch watchdog in
    // guest.rs kills and relaunches such a hang.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let smp = (cpus / n).max(1).min(per);
    let watch = std::sync::Mutex::new(watch);
    let store_err = std::sync::Mutex::new(None);
    let failed = |part: &[Job<'_>], msg: String| -> Vec<guest::JobOutcome> {
        part.iter()
            .map(|_| guest::JobOutcome::failed(msg.clone()))
            .collect()
    };
    let outcomes = std::thread::scope(|sc| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|part| {
                let (watch, store_err) = (&watch, &store_err);
                let h = sc.spawn(move || {
                    let mut notify = |image: Option<&str>, kind: &str, msg: &str| match catalog
                        .event(run_id, image, kind, msg)
                    {
                        Ok(e) => {
                            if let Ok(mut w) = watch.lock() {
                                (*w)(&e);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut s) = store_err.lock() {
                                *s = Some(e);
                            }
                        }
                    };
                    guest::run_all(part, run_id, repo_root, key, smp, &mut notify)
                        .unwrap_or_else(|e| failed(part, with_causes(&e)))
                });
                (part, h)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, h)| {
                h.join()
                    .unwrap_or_else(|_| failed(part, "the appliance thread panicked".into()))
            })
            .collect::<Vec<_>>()
    });
    if let Some(e) = store_err.into_inner().ok().flatten() {
        return Err(e.into());
    }
    Ok(outcomes)
}

/// An error and each of its causes, for a message that stands alone.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// A repository's stored index, indexing the directory first if it is not yet.
pub fn repository(
    catalog: &Catalog,
    dir: &Path,
) -> Result<(PathBuf, coldpatch_repo::RepoIndex), PatchError> {
    let root = dir.canonicalize().map_err(|e| PatchError::io(dir, e))?;
    let repo = match catalog.repo(&root.display().to_string()) {
        Ok(r) => r.index,
        Err(coldpatch_catalog::CatalogError::NoRepo(_)) => {
            let index = coldpatch_repo::index(&root)?;
            catalog.store_repo(&index)?;
            index
        }
        Err(e) => return Err(e.into()),
    };
    Ok((root, repo))
}

/// How a caller other than the CLI steers a run.
#[derive(Default)]
pub struct Control<'a> {
    /// A run already queued (by the server's job queue): it is started instead of a new one.
    pub run: Option<RunRecord>,
    /// Set to cancel. It is looked at between steps: before each image is prepared, before
    /// the appliance starts and before each image is committed. An appliance already at
    /// work finishes its guest work on the overlays first; then every overlay not yet
    /// committed is deleted, so each image stays at the version it was.
    pub cancel: Option<&'a AtomicBool>,
}

impl Control<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Runs a patch or files change on images. Images that cannot be prepared fail alone;
/// the others share one appliance.
pub fn execute(
    catalog: &Catalog,
    images: &[String],
    ask: &Ask<'_>,
    appliances: usize,
    control: Control<'_>,
    watch: &mut Watch<'_>,
) -> Result<RunReport, PatchError> {
    let kind = match ask {
        Ask::Packages { .. } => "apply",
        Ask::Files { .. } => "files",
    };
    // What the whole run needs is loaded before it starts: a bad repository is a bad
    // request, not a run that stays "running".
    let needs = Needs::load(catalog, ask)?;
    let started = format!("{kind} on {} image(s)", images.len());
    let (run, e) = match control.run.clone() {
        Some(r) => catalog.begin_run(r, &started)?,
        None => catalog.start_run(kind, images, &started)?,
    };
    watch(&e);
    let mut ctx = Ctx {
        catalog,
        overlay_name: run.id.clone(),
        run,
        watch,
        plans: std::collections::HashMap::new(),
    };
    let mut results = patch_images(&mut ctx, images, ask, &needs, appliances, &control)?;
    let ok = results.iter().all(|r| r.outcome.is_ok());
    let state = if control.cancelled() {
        RunState::Cancelled
    } else if ok {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    let error = (!ok).then(|| {
        format!(
            "{} of {} image(s) failed",
            results.iter().filter(|r| !r.outcome.is_ok()).count(),
            results.len()
        )
    });
    let e = catalog.finish_run(&mut ctx.run, state, error)?;
    (ctx.watch)(&e);
    results.sort_by(|a, b| a.image.cmp(&b.image));
    Ok(RunReport {
        run: ctx.run,
        images: results,
    })
}

/// One worker's part of a shared run (`coldpatch worker`): the images it claimed, in one
/// appliance batch, on a run the queue started and will end. `attempt` is the part's
/// claim count: a redone part makes overlays of its own name and sweeps those of the
/// attempt that died.
#[allow(clippy::too_many_arguments)]
pub fn execute_part(
    catalog: &Catalog,
    run: &RunRecord,
    attempt: u32,
    images: &[String],
    ask: &Ask<'_>,
    appliances: usize,
    cancel: &AtomicBool,
    watch: &mut Watch<'_>,
) -> Result<Vec<ImageResult>, PatchError> {
    let needs = Needs::load(catalog, ask)?;
    let mut ctx = Ctx {
        catalog,
        overlay_name: format!("{}.{attempt}", run.id),
        run: run.clone(),
        watch,
        plans: std::collections::HashMap::new(),
    };
    let control = Control {
        run: None,
        cancel: Some(cancel),
    };
    patch_images(&mut ctx, images, ask, &needs, appliances, &control)
}

/// What every image of a run needs, loaded once: the advisory index, and for packages
/// the repository.
struct Needs {
    index: Index,
    repo: Option<coldpatch_repo::RepoIndex>,
    repo_root: Option<PathBuf>,
}

impl Needs {
    fn load(catalog: &Catalog, ask: &Ask<'_>) -> Result<Needs, PatchError> {
        let index = catalog.advisory_index()?;
        let (repo, repo_root) = match ask {
            Ask::Packages { repo_root, .. } => {
                let (root, repo) = repository(catalog, repo_root)?;
                (Some(repo), Some(root))
            }
            Ask::Files { .. } => (None, None),
        };
        Ok(Needs {
            index,
            repo,
            repo_root,
        })
    }
}

/// Prepares, changes in the appliance, verifies and commits each image of a started run.
fn patch_images(
    ctx: &mut Ctx<'_, '_>,
    images: &[String],
    ask: &Ask<'_>,
    needs: &Needs,
    appliances: usize,
    control: &Control<'_>,
) -> Result<Vec<ImageResult>, PatchError> {
    let index = &needs.index;
    let mut results: Vec<ImageResult> = Vec::new();
    let mut ready: Vec<Prepared> = Vec::new();
    for key in images {
        if control.cancelled() {
            ctx.event(
                Some(key),
                "cancelled",
                "not started; the image was not touched",
            )?;
            results.push(ImageResult {
                image: key.clone(),
                outcome: Outcome::Discarded,
                fixed: Vec::new(),
                findings_before: 0,
                findings_after: None,
            });
            continue;
        }
        match prepare(ctx, key, ask, index, needs.repo.as_ref()) {
            Ok(p) => ready.push(p),
            Err(e) => {
                let reason = e.to_string();
                let outcome = if matches!(e, PatchError::Nothing { .. }) {
                    ctx.event(Some(key), "unchanged", &reason)?;
                    Outcome::Unchanged { reason }
                } else {
                    ctx.event(Some(key), "failed", &reason)?;
                    Outcome::Failed { reason }
                };
                results.push(ImageResult {
                    image: key.clone(),
                    outcome,
                    fixed: Vec::new(),
                    findings_before: 0,
                    findings_after: None,
                });
            }
        }
    }
    if control.cancelled() {
        for p in std::mem::take(&mut ready) {
            results.push(cancel(ctx, &p, None)?);
        }
    }
    let mut replay = matches!(ask, Ask::Packages { replay: true, .. });
    // A second pass patches with the package tool what a replay did not.
    while !ready.is_empty() {
        let befores = if replay {
            replay_befores(ctx, &ready)?
        } else {
            ready.iter().map(|_| None).collect()
        };
        let jobs: Vec<Job<'_>> = ready
            .iter()
            .zip(&befores)
            .map(|(p, before)| Job {
                image: &p.image.path,
                overlay: &p.overlay,
                change: &p.change,
                root_partition: p.root_partition,
                replay: p
                    .plan_key
                    .zip(before.as_deref())
                    .map(|(group, before)| ReplayJob {
                        group,
                        before,
                        roots: &p.roots,
                    }),
            })
            .collect();
        let outcomes = in_appliances(
            ctx.catalog,
            &ctx.run.id,
            &jobs,
            appliances,
            needs.repo_root.as_deref(),
            &mut *ctx.watch,
        )?;
        drop(jobs);
        let mut again = Vec::new();
        for ((p, o), before) in std::mem::take(&mut ready)
            .into_iter()
            .zip(outcomes)
            .zip(befores)
        {
            if control.cancelled() {
                results.push(cancel(ctx, &p, Some(o.log))?);
                continue;
            }
            let replayed = o.replayed.zip(before);
            match finish_image(ctx, p, o.result, o.log, replayed, index)? {
                Finished::Done(r) => results.push(r),
                Finished::Again(p) => again.push(*p),
            }
        }
        ready = again;
        replay = false;
    }
    Ok(results)
}

/// The files before the change of each image that may be replayed or be a reference:
/// those of a group of two or more with one plan, whose root the collector reads natively
/// (ext). From the catalog when its scan of the current version has every file hashed and
/// the files are the ones it scanned; else read natively now. An image whose files cannot
/// be had is patched with the package tool.
fn replay_befores(
    ctx: &mut Ctx<'_, '_>,
    ready: &[Prepared],
) -> Result<Vec<Option<Vec<FileRecord>>>, PatchError> {
    let mut count: std::collections::HashMap<[u8; 32], usize> = Default::default();
    for p in ready.iter().filter(|p| p.root_partition.is_some()) {
        if let Some(k) = p.plan_key {
            *count.entry(k).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for p in ready {
        let grouped = p.root_partition.is_some()
            && p.plan_key
                .is_some_and(|k| count.get(&k).copied().unwrap_or(0) > 1);
        if !grouped {
            out.push(None);
            continue;
        }
        match files_before(ctx.catalog, p) {
            Ok(f) => out.push(Some(f)),
            Err(why) => {
                ctx.event(
                    Some(&p.image.path),
                    "replay",
                    &format!("not replayed: its files before the change cannot be read ({why}); the package tool patches it"),
                )?;
                out.push(None);
            }
        }
    }
    Ok(out)
}

fn files_before(catalog: &Catalog, p: &Prepared) -> Result<Vec<FileRecord>, String> {
    let opts = collect_options(p, false);
    let disk = Disk::open(&p.base.0, &opts.open).map_err(|e| e.to_string())?;
    let chain: Vec<PathBuf> = disk.chain.iter().map(|l| l.path.clone()).collect();
    let fp = Fingerprint::of(&chain).map_err(|e| e.to_string())?;
    if let Some(id) = p.image.current_scan {
        let scan = catalog.scan(id).map_err(|e| e.to_string())?;
        if scan.options.files && scan.options.hash && scan.fingerprint == fp {
            return catalog
                .inventory(id, true)
                .map(|inv| inv.files)
                .map_err(|e| e.to_string());
        }
    }
    coldpatch_collector::collect_disk(&disk, &opts, &mut |_, _| {})
        .map(|inv| inv.files)
        .map_err(|e| e.to_string())
}

/// How an image's turn in the appliance ended.
enum Finished {
    Done(ImageResult),
    /// A replay that did not take: patched again, with the package tool, on a new overlay.
    Again(Box<Prepared>),
}

/// Throws away the overlay a replay made and makes a new one on the same version.
fn again(ctx: &mut Ctx<'_, '_>, p: Prepared, why: &str) -> Result<Finished, PatchError> {
    let _ = std::fs::remove_file(&p.overlay);
    let key = p.image.path.clone();
    match overlay::create(&p.overlay, &p.base.0, &p.base.1) {
        Ok(()) => {
            ctx.event(
                Some(&key),
                "replay",
                &format!("{why}; the overlay was made again and the package tool patches it"),
            )?;
            Ok(Finished::Again(Box::new(p)))
        }
        Err(e) => {
            let ri = p.ri.clone();
            discard(ctx, &p, ri, format!("{why}; and a new overlay failed: {e}"))
                .map(Finished::Done)
        }
    }
}

fn finish_image(
    ctx: &mut Ctx<'_, '_>,
    p: Prepared,
    res: Result<(), GuestError>,
    log: String,
    replayed: Option<(Replayed, Vec<FileRecord>)>,
    index: &Index,
) -> Result<Finished, PatchError> {
    if let (Some((rep, _)), Err(e)) = (&replayed, &res) {
        let why = format!("the replay from {} failed: {e}", rep.reference);
        return again(ctx, p, &why);
    }
    let change = &p.change;
    let key = p.image.path.clone();
    let mut ri = p.ri.clone();
    ri.log = log;
    // The file says which version it holds (and is read back with it) before the catalog
    // says so.
    let mut stamped = (0, [0u8; 32]);
    let t = std::time::Instant::now();
    let checked = match res {
        Ok(()) => {
            let v = overlay::sync(&p.overlay)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    stamped = ctx
                        .catalog
                        .next_version(&p.image, ri.base_version)
                        .map_err(|e| e.to_string())?;
                    let (number, check) = stamped;
                    stamp::write(&p.overlay, &Stamp { number, check }).map_err(|e| e.to_string())
                })
                .and_then(|()| {
                    let rep = replayed.as_ref().map(|(r, b)| (r, b.as_slice()));
                    verify(&p, index, change, rep).map_err(|e| e.to_string())
                });
            ctx.event(Some(&key), "timing", &took("verify", t))?;
            match (&replayed, &v) {
                (Some((rep, _)), Err(why)) => {
                    let why = format!(
                        "the image replayed from {} did not verify: {why}",
                        rep.reference
                    );
                    return again(ctx, p, &why);
                }
                (None, Err(why)) => ctx.event(Some(&key), "verify-failed", why)?,
                _ => {}
            }
            v
        }
        Err(e) => Err(e.to_string()),
    };
    let targeted: Vec<String> = match change {
        Change::Packages { plan } => plan.fixes.keys().cloned().collect(),
        Change::Files { .. } => Vec::new(),
    };
    match checked {
        Ok((inv, fp, after)) => {
            ctx.event(
                Some(&key),
                "verified",
                &format!(
                    "read back natively: {}{}; findings {} -> {}",
                    match change {
                        Change::Packages { plan } => format!(
                            "{} package(s) at their planned versions, targeted advisories gone",
                            plan.steps.len()
                        ),
                        Change::Files { puts } =>
                            format!("{} file(s) with the planned content", puts.len()),
                    },
                    replayed.as_ref().map_or(String::new(), |(r, _)| format!(
                        ", and the {} path(s) replayed from {} as the reference has them, nothing else changed",
                        r.set.paths.len(),
                        r.reference
                    )),
                    p.before.len(),
                    after.len()
                ),
            )?;
            crate::fault::at("commit");
            let t = std::time::Instant::now();
            ri.after = briefs(&after);
            let file = p.overlay.display().to_string();
            let options = ScanOptions {
                files: true,
                hash: true,
            };
            match ctx.catalog.commit_version(
                &key,
                VersionFile {
                    file: &file,
                    number: stamped.0,
                    check: stamped.1,
                },
                &inv,
                fp,
                options,
                ri.clone(),
            ) {
                Ok((v, _)) => {
                    ctx.event(Some(&key), "timing", &took("commit", t))?;
                    ctx.event(
                        Some(&key),
                        "committed",
                        &format!("version {} (parent {})", v.number, ri.base_version),
                    )?;
                    Ok(Finished::Done(ImageResult {
                        image: key,
                        outcome: Outcome::Committed { version: v.number },
                        fixed: targeted,
                        findings_before: p.before.len(),
                        findings_after: Some(after.len()),
                    }))
                }
                Err(e) => discard(ctx, &p, ri, e.to_string()).map(Finished::Done),
            }
        }
        Err(reason) => discard(ctx, &p, ri, reason).map(Finished::Done),
    }
}

fn discard(
    ctx: &mut Ctx<'_, '_>,
    p: &Prepared,
    ri: RunImage,
    reason: String,
) -> Result<ImageResult, PatchError> {
    let outcome = Outcome::Failed {
        reason: reason.clone(),
    };
    drop_overlay(ctx, p, ri, outcome, "discarded", &reason)
}

/// An image of a cancelled run, before its commit: the overlay goes, with the guest log
/// when the appliance got to it.
fn cancel(
    ctx: &mut Ctx<'_, '_>,
    p: &Prepared,
    log: Option<String>,
) -> Result<ImageResult, PatchError> {
    let mut ri = p.ri.clone();
    if let Some(l) = log {
        ri.log = l;
    }
    drop_overlay(ctx, p, ri, Outcome::Discarded, "cancelled", "cancelled")
}

/// Deletes an image's overlay before it was committed and records why: the image stays
/// at the version the run started from.
fn drop_overlay(
    ctx: &mut Ctx<'_, '_>,
    p: &Prepared,
    mut ri: RunImage,
    outcome: Outcome,
    kind: &str,
    reason: &str,
) -> Result<ImageResult, PatchError> {
    let key = p.image.path.clone();
    let _ = std::fs::remove_file(&p.overlay);
    ri.overlay = None;
    ri.outcome = outcome;
    ctx.catalog.put_run_image(&ri)?;
    ctx.event(
        Some(&key),
        kind,
        &format!(
            "{reason}; the overlay was deleted, version {} stays current",
            ri.base_version
        ),
    )?;
    Ok(ImageResult {
        image: key,
        outcome: ri.outcome,
        fixed: Vec::new(),
        findings_before: p.before.len(),
        findings_after: None,
    })
}

/// A run of one quick step on one image (rollback, flatten), under the image's lock:
/// `step` returns the event's kind and message.
fn one_step(
    catalog: &Catalog,
    kind: &str,
    image: &str,
    watch: &mut Watch<'_>,
    step: impl FnOnce() -> Result<(&'static str, String), PatchError>,
) -> Result<RunRecord, PatchError> {
    let (mut run, e) = catalog.start_run(kind, &[image.to_string()], kind)?;
    watch(&e);
    let r = ImageLock::acquire(catalog.state(), image, &run.id).and_then(|_lock| step());
    let e = match &r {
        Ok((what, msg)) => catalog.event(&run.id, Some(image), what, msg)?,
        Err(err) => catalog.event(&run.id, Some(image), "failed", &err.to_string())?,
    };
    watch(&e);
    let (state, error) = match &r {
        Ok(_) => (RunState::Succeeded, None),
        Err(e) => (RunState::Failed, Some(e.to_string())),
    };
    let e = catalog.finish_run(&mut run, state, error)?;
    watch(&e);
    r?;
    Ok(run)
}

/// Returns an image to the version its current one was made from.
pub fn rollback(
    catalog: &Catalog,
    image: &str,
    watch: &mut Watch<'_>,
) -> Result<RunRecord, PatchError> {
    one_step(catalog, "rollback", image, watch, || {
        let (left, now) = catalog.rollback(image)?;
        Ok((
            "rolled-back",
            format!(
                "version {} left; version {} is current",
                left.number, now.number
            ),
        ))
    })
}

/// Writes a standalone qcow2 image of the current version.
pub fn flatten(
    catalog: &Catalog,
    image: &str,
    out: &Path,
    watch: &mut Watch<'_>,
) -> Result<RunRecord, PatchError> {
    one_step(catalog, "flatten", image, watch, || {
        let img = catalog.image(image)?;
        let fmt = if img.current_version == 0 {
            img.format.clone()
        } else {
            "qcow2".to_string()
        };
        overlay::flatten(Path::new(img.current_file()), &fmt, out)?;
        Ok((
            "flattened",
            format!(
                "version {} written to {}",
                img.current_version,
                out.display()
            ),
        ))
    })
}
