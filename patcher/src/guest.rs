//! The work inside one libguestfs appliance: every overlay of a run is attached as a
//! writable drive and the appliance is launched once (20–60 s under TCG); then every
//! image is mounted under a directory of its own, file changes are made, package files
//! are uploaded once and installed on several images at once (`batch.rs`), images that
//! share a plan take the change set of the first of them instead (`replay.rs`), and
//! every filesystem written is unmounted and checked.
//!
//! What runs in the guest is the guest's own `/bin/sh` and package tool (`pm/`),
//! chrooted into the guest: the appliance is the sandbox, and nothing the guest prints is
//! trusted. Success is decided afterwards by reading the overlay natively (see
//! `run.rs`). Guest paths we write are checked to resolve, in the appliance, to
//! themselves: a guest symlink never redirects a write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use coldpatch_collector::FileRecord;

use coldpatch_disk::guestfs::{GuestfsError, Session};
use coldpatch_disk::hash::sha256_file;

use crate::appliance::{push_log, timing};
pub use crate::appliance::{GuestError, Notify};
use crate::batch;
use crate::plan::Plan;
use crate::pm::{Install, PackageFile};
use crate::replay::{self, ChangeSet};
use crate::PatchError;

fn host(path: &Path, e: impl std::fmt::Display) -> GuestError {
    GuestError::Host {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Copies a host file to `to` and returns the copy's SHA-256: what is uploaded is the
/// copy, so a source changed after the check is never what the guest gets.
fn hashed_copy(from: &Path, to: &Path) -> Result<String, GuestError> {
    std::fs::copy(from, to).map_err(|e| host(from, e))?;
    sha256_file(to).map_err(|e| host(from, e))
}

fn refused(m: impl Into<String>) -> GuestError {
    GuestError::Refused(m.into())
}

/// A file to place in the guest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Put {
    pub source: PathBuf,
    pub guest: String,
    /// SHA-256 of the source, taken when the run was planned.
    pub sha256: String,
}

/// What a run changes in one image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    Packages { plan: Plan },
    Files { puts: Vec<Put> },
}

pub struct Job<'a> {
    pub image: &'a str,
    pub overlay: &'a Path,
    pub change: &'a Change,
    /// The partition holding the root filesystem, when the collector found it natively
    /// (0: the whole disk). `None` asks libguestfs' inspection, which costs about ten
    /// seconds per drive under TCG.
    pub root_partition: Option<u32>,
    /// Set when the image may be replayed from, or be the reference of, images of the
    /// same group in this appliance.
    pub replay: Option<ReplayJob<'a>>,
}

/// What a replay needs of an image.
pub struct ReplayJob<'a> {
    /// Images with the same group have the same plan.
    pub group: [u8; 32],
    /// Its files before the change, with their SHA-256.
    pub before: &'a [FileRecord],
    /// Directories its overlay's backing files may be in (a reference is read natively).
    pub roots: &'a [PathBuf],
}

/// What came of one job.
pub struct JobOutcome {
    pub result: Result<(), GuestError>,
    pub log: String,
    /// Set when the image took a reference's change set instead of running the tool (or
    /// tried to: a failed replay is done again with the tool).
    pub replayed: Option<Replayed>,
}

impl JobOutcome {
    pub fn failed(msg: String) -> JobOutcome {
        JobOutcome {
            result: Err(GuestError::Appliance(msg)),
            log: String::new(),
            replayed: None,
        }
    }
}

#[derive(Clone)]
pub struct Replayed {
    /// The reference's image.
    pub reference: String,
    pub set: Arc<ChangeSet>,
}

/// For each job, the job it is replayed from: the first of each group of two or more
/// jobs is their reference (and is replayed from none).
fn references(jobs: &[Job<'_>]) -> Vec<Option<usize>> {
    let mut first: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    jobs.iter()
        .enumerate()
        .map(|(i, j)| {
            let g = j.replay.as_ref()?.group;
            match first.get(&g) {
                Some(&r) => Some(r),
                None => {
                    first.insert(g, i);
                    None
                }
            }
        })
        .collect()
}

/// Reports how long a stage took, as a `timing` event.
fn took(notify: &mut Notify<'_>, image: Option<&str>, stage: &str, since: Instant) {
    let secs = since.elapsed().as_secs_f64();
    notify(image, "timing", &timing(stage, secs));
}

/// Where drive `i`'s guest is mounted in the appliance.
fn drive_root(i: usize) -> String {
    format!("/drive{i}")
}

/// A guest path under the guest mounted at `root`.
fn under(root: &str, path: &str) -> String {
    if path == "/" {
        root.to_string()
    } else {
        format!("{root}{path}")
    }
}

/// Launches one appliance for all jobs: mounts every image under a directory of its own,
/// makes the file changes, uploads the package files once, installs packages on up to
/// `smp` images at a time (`batch.rs`), then writes everything out and checks each
/// filesystem. The outer error is for the appliance as a whole; each job has its own
/// result and log.
pub fn run_all(
    jobs: &[Job<'_>],
    run: &str,
    repo_root: Option<&Path>,
    key: Option<&coldpatch_apk::Key>,
    smp: usize,
    notify: &mut Notify<'_>,
) -> Result<Vec<JobOutcome>, PatchError> {
    let appliance = |e: GuestfsError| PatchError::Appliance(GuestError::Guestfs(e));
    let t = Instant::now();
    let from = references(jobs);
    let is_reference: Vec<bool> = (0..jobs.len()).map(|i| from.contains(&Some(i))).collect();
    let mut s = match launch(jobs, smp, &is_reference) {
        Err(e) if e.hung => {
            notify(None, "appliance", &format!("{}; launching again", e.error));
            launch(jobs, smp, &is_reference).map_err(|e| appliance(e.error))?
        }
        r => r.map_err(|e| appliance(e.error))?,
    };
    notify(
        None,
        "appliance",
        &format!(
            "started with {} drive(s) and {smp} CPU(s) in {:.1} s",
            jobs.len(),
            t.elapsed().as_secs_f64()
        ),
    );
    took(notify, None, "launch", t);
    let devices = s.list_devices().map_err(appliance)?;
    let roots = if jobs.iter().any(|j| j.root_partition.is_none()) {
        s.inspect_os().map_err(appliance)?
    } else {
        Vec::new()
    };
    s.mkmountpoint(batch::WORK).map_err(appliance)?;
    s.mkmountpoint(batch::PACKAGES).map_err(appliance)?;
    let mut results: Vec<Result<(), GuestError>> = jobs.iter().map(|_| Ok(())).collect();
    let mut logs: Vec<String> = jobs.iter().map(|_| String::new()).collect();
    let mut replayed: Vec<Option<Replayed>> = jobs.iter().map(|_| None).collect();
    let mut filesystems: Vec<Vec<String>> = jobs.iter().map(|_| Vec::new()).collect();

    // Mount each image, and make the file changes, which are the daemon's own calls.
    for (i, j) in jobs.iter().enumerate() {
        let t = Instant::now();
        let root = drive_root(i);
        let r = s
            .mkmountpoint(&root)
            .map_err(GuestError::from)
            .and_then(|()| match j.root_partition {
                Some(part) => mount_native(&mut s, i, &root, &devices, part),
                None => mount_inspected(&mut s, i, &root, &devices, &roots),
            });
        match r {
            Ok((dev, devs)) => {
                notify(
                    Some(j.image),
                    "mounted",
                    &format!("root {dev}, {} filesystem(s)", devs.len()),
                );
                took(notify, Some(j.image), "mount", t);
                filesystems[i] = devs;
            }
            Err(e) => {
                results[i] = Err(e);
                continue;
            }
        }
        if let Change::Files { puts } = j.change {
            let t = Instant::now();
            results[i] = put_files(&mut s, &root, j.image, puts, &mut logs[i], notify);
            took(notify, Some(j.image), "files", t);
        }
    }

    // Packages: every file once into the appliance, then all installs side by side; the
    // images replayed from a reference wait for its change set.
    let wanted: Vec<usize> = (0..jobs.len())
        .filter(|&i| results[i].is_ok() && matches!(jobs[i].change, Change::Packages { .. }))
        .collect();
    if !wanted.is_empty() {
        match (repo_root, tempfile::tempdir()) {
            (None, _) => {
                for &i in &wanted {
                    results[i] = Err(refused("no repository for a package change"));
                }
            }
            (_, Err(e)) => {
                let why = host(Path::new("staging"), e).to_string();
                for &i in &wanted {
                    results[i] = Err(refused(why.clone()));
                }
            }
            (Some(repo), Ok(staging)) => {
                let mut up = Staged {
                    repo_root: repo,
                    staging: staging.path(),
                    uploaded: BTreeMap::new(),
                    key,
                };
                let mut out = Out {
                    results: &mut results,
                    logs: &mut logs,
                    replayed: &mut replayed,
                };
                let (first, later): (Vec<usize>, Vec<usize>) =
                    wanted.iter().partition(|&&i| from[i].is_none());
                install_all(&mut s, jobs, &first, &mut up, run, smp, &mut out, notify)
                    .map_err(appliance)?;
                if !later.is_empty() {
                    let by_tool =
                        replay_all(&mut s, jobs, &from, &later, &devices, smp, &mut out, notify)
                            .map_err(appliance)?;
                    install_all(&mut s, jobs, &by_tool, &mut up, run, smp, &mut out, notify)
                        .map_err(appliance)?;
                }
            }
        }
    }

    let t = Instant::now();
    s.sync().map_err(appliance)?;
    s.umount_all().map_err(appliance)?;
    took(notify, None, "sync and unmount", t);
    for (i, j) in jobs.iter().enumerate() {
        if results[i].is_ok() {
            let t = Instant::now();
            results[i] = fsck(&mut s, j.image, &filesystems[i], notify);
            took(notify, Some(j.image), "fsck", t);
        }
        if let Err(e) = &results[i] {
            notify(Some(j.image), "failed", &e.to_string());
        }
    }
    let t = Instant::now();
    s.shutdown().map_err(appliance)?;
    notify(None, "appliance", "stopped; every drive written out");
    took(notify, None, "shutdown", t);
    Ok(results
        .into_iter()
        .zip(logs)
        .zip(replayed)
        .map(|((result, log), replayed)| JobOutcome {
            result,
            log,
            replayed,
        })
        .collect())
}

/// Each job's results, logs and replays, written by the stages.
struct Out<'a> {
    results: &'a mut [Result<(), GuestError>],
    logs: &'a mut [String],
    replayed: &'a mut [Option<Replayed>],
}

/// The images `later` (each replayed from `from[i]`) take their reference's change set
/// where it applies to them; the others are returned, for the package tool. A reference
/// is frozen first (its filesystems remounted read-only and flushed to its overlay) and
/// read natively, which gives its change set.
#[allow(clippy::too_many_arguments)]
fn replay_all(
    s: &mut Session,
    jobs: &[Job<'_>],
    from: &[Option<usize>],
    later: &[usize],
    devices: &[String],
    lanes: usize,
    out: &mut Out<'_>,
    notify: &mut Notify<'_>,
) -> Result<Vec<usize>, GuestfsError> {
    let mut by_tool = Vec::new();
    let mut replays: Vec<(usize, Replayed)> = Vec::new();
    let mut sets: BTreeMap<usize, Result<Arc<ChangeSet>, String>> = BTreeMap::new();
    for &i in later {
        let Some(r) = from[i] else { continue };
        let set = match sets.get(&r) {
            Some(set) => set.clone(),
            None => {
                let t = Instant::now();
                let set = reference_set(s, &jobs[r], r, out.results[r].is_ok(), devices)?;
                if let Ok(set) = &set {
                    notify(
                        Some(jobs[r].image),
                        "replay",
                        &format!(
                            "reference: its change set, read natively, is {} path(s) written and {} removed",
                            set.written(),
                            set.removed()
                        ),
                    );
                    took(notify, Some(jobs[r].image), "replay reference read", t);
                }
                sets.insert(r, set.clone());
                set
            }
        };
        let db = match jobs[i].change {
            Change::Packages { plan } => crate::pm::for_kind(plan.kind).map(|pm| pm.database()),
            Change::Files { .. } => None,
        };
        let applies = set.and_then(|set| {
            let (Some(me), Some(db)) = (&jobs[i].replay, db) else {
                return Err("nothing to compare it with".to_string());
            };
            let theirs = jobs[r].replay.as_ref().map_or(&[][..], |j| j.before);
            set.applies_to(&replay::by_path(theirs), &replay::by_path(me.before), db)
                .map(|()| set)
        });
        match applies {
            Ok(set) => replays.push((
                i,
                Replayed {
                    reference: jobs[r].image.to_string(),
                    set,
                },
            )),
            Err(why) => {
                notify(
                    Some(jobs[i].image),
                    "replay",
                    &format!(
                        "not replayed from {}: {why}; the package tool patches it",
                        jobs[r].image
                    ),
                );
                by_tool.push(i);
            }
        }
    }
    if replays.is_empty() {
        return Ok(by_tool);
    }
    let t = Instant::now();
    let mut works = Vec::new();
    let mut ready = Vec::new();
    for (i, rep) in replays {
        let r = from[i].unwrap_or(i);
        let mine = jobs[i].replay.as_ref().map_or(&[][..], |j| j.before);
        match upload_lists(s, i, &rep.set.lists(&replay::by_path(mine))) {
            Ok(()) => {
                works.push(batch::Work {
                    root: drive_root(i),
                    mode: batch::Mode::Appliance,
                    commands: vec![(
                        format!("replay from {}", jobs[r].image),
                        replay::command(i, batch::WORK, &drive_root(i), &drive_root(r)),
                    )],
                });
                ready.push((i, rep));
            }
            Err(e) => {
                out.results[i] = Err(e);
                out.replayed[i] = Some(rep);
            }
        }
    }
    crate::fault::at("replay");
    let refs: Vec<&batch::Work> = works.iter().collect();
    let done = batch::run(s, &refs, lanes)?;
    for ((i, rep), d) in ready.into_iter().zip(done) {
        let image = jobs[i].image;
        push_log(&mut out.logs[i], &d.log);
        match d.ran.first() {
            Some((_, 0, secs)) => {
                let said = format!(
                    "replayed from {}: {} path(s) written, {} removed",
                    rep.reference,
                    rep.set.written(),
                    rep.set.removed()
                );
                push_log(&mut out.logs[i], &format!("{said}\n"));
                notify(Some(image), "replay", &said);
                notify(Some(image), "timing", &timing("replay", *secs));
            }
            other => {
                let status = other.map_or("none".to_string(), |(_, st, _)| st.to_string());
                let tail: Vec<&str> = d.log.lines().rev().take(8).collect();
                out.results[i] = Err(refused(format!(
                    "replaying {}'s change set failed (status {status}): {}",
                    rep.reference,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
        }
        out.replayed[i] = Some(rep);
    }
    took(notify, None, "replays", t);
    Ok(by_tool)
}

/// The change set of reference `r` (drive `r`): its filesystems are remounted read-only
/// and its drive flushed, so its overlay (added with the writeback cache mode) can be
/// read natively while the appliance runs. The error says why nothing can be replayed
/// from it; the outer one is the appliance's.
fn reference_set(
    s: &mut Session,
    job: &Job<'_>,
    r: usize,
    ok: bool,
    devices: &[String],
) -> Result<Result<Arc<ChangeSet>, String>, GuestfsError> {
    let Some(rj) = job.replay.as_ref().filter(|_| ok) else {
        return Ok(Err(format!("the reference {} was not patched", job.image)));
    };
    let Some(dev) = devices.get(r) else {
        return Ok(Err(format!("drive {r} has no device")));
    };
    if let Err(e) = s.appliance_sh(&replay::freeze(&drive_root(r), dev)) {
        return Ok(Err(format!(
            "the reference {} could not be remounted read-only: {e}",
            job.image
        )));
    }
    Ok(replay::read(job.overlay, rj.roots)
        .map(|after| {
            Arc::new(ChangeSet::between(
                &replay::by_path(rj.before),
                &replay::by_path(&after),
            ))
        })
        .map_err(|e| format!("the reference {} could not be read: {e}", job.image)))
}

/// Uploads job `i`'s replay lists into the appliance (through host files: a list may be
/// larger than one daemon message).
fn upload_lists(s: &mut Session, i: usize, l: &replay::Lists) -> Result<(), GuestError> {
    let names = replay::list_files(batch::WORK, i);
    for (name, bytes) in names
        .iter()
        .zip([&l.remove_files, &l.remove_dirs, &l.write])
    {
        let mut f = tempfile::NamedTempFile::new().map_err(|e| host(Path::new("staging"), e))?;
        std::io::Write::write_all(&mut f, bytes).map_err(|e| host(f.path(), e))?;
        s.upload(f.path(), name)?;
    }
    Ok(())
}

/// e2fsck of each mounted ext filesystem of an image; other filesystems get no checker.
fn fsck(
    s: &mut Session,
    image: &str,
    devs: &[String],
    notify: &mut Notify<'_>,
) -> Result<(), GuestError> {
    for dev in devs {
        let t = s.vfs_type(dev)?;
        if t.starts_with("ext") {
            s.e2fsck(dev)
                .map_err(|e| refused(format!("fsck of {dev} after the change failed: {e}")))?;
            notify(
                Some(image),
                "fsck",
                &format!("{dev} ({t}): e2fsck -f -p clean"),
            );
        } else {
            notify(Some(image), "fsck", &format!("{dev} ({t}): no checker run"));
        }
    }
    Ok(())
}

/// An appliance that has not come up in this time is taken as hung and killed (a normal
/// launch takes 15-60 s under TCG; a stuck one waits forever for its daemon).
const LAUNCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

struct LaunchError {
    error: GuestfsError,
    /// The watchdog killed it.
    hung: bool,
}

/// A session with every overlay attached, launched under a watchdog: if the launch has
/// not returned in [`LAUNCH_TIMEOUT`], the qemu this process started for these overlays
/// (found in /proc by parent and command line) is killed, which makes the launch fail.
fn launch(jobs: &[Job<'_>], smp: usize, flushed: &[bool]) -> Result<Session, LaunchError> {
    let plain = |error| LaunchError { error, hung: false };
    let mut s = Session::new().map_err(plain)?;
    s.set_smp(i32::try_from(smp).unwrap_or(1)).map_err(plain)?;
    for (i, j) in jobs.iter().enumerate() {
        if flushed.get(i) == Some(&true) {
            s.add_overlay_rw_flushed(j.overlay).map_err(plain)?;
        } else {
            s.add_overlay_rw(j.overlay).map_err(plain)?;
        }
    }
    let marker = jobs
        .first()
        .map(|j| j.overlay.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(LAUNCH_TIMEOUT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            kill_hypervisor(&marker)
        } else {
            false
        }
    });
    let r = s.launch();
    drop(done);
    let hung = watchdog.join().unwrap_or(false);
    match r {
        Ok(()) => Ok(s),
        Err(mut error) => {
            if hung {
                error.message = format!(
                    "the appliance did not come up in {} s and was killed ({})",
                    LAUNCH_TIMEOUT.as_secs(),
                    error.message
                );
            }
            Err(LaunchError { error, hung })
        }
    }
}

/// Kills this process's qemu whose command line names `marker` (an overlay path).
fn kill_hypervisor(marker: &str) -> bool {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    let mut killed = false;
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("");
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if ppid == me && cmd.contains("qemu") && cmd.contains(marker) {
            killed |= nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok();
        }
    }
    killed
}

/// The device on drive `i` that stands for `dev`: inspection resolves a guest's fstab
/// by filesystem UUID, and copies of one image share UUIDs, so a mount may point at
/// another drive's partition of the same number.
fn on_drive(
    s: &mut Session,
    i: usize,
    devices: &[String],
    dev: &str,
) -> Result<String, GuestError> {
    let d = s.drive_of(dev)?;
    if d == i {
        return Ok(dev.to_string());
    }
    let n = s.part_to_partnum(dev).map_err(|_| {
        refused(format!("{dev} is on another image's drive and is not a partition (LVM volume groups of the same name?); patch this image in a run of its own"))
    })?;
    let base = devices
        .get(i)
        .ok_or_else(|| refused(format!("drive {i} has no device")))?;
    Ok(format!("{base}{n}"))
}

/// Mounts an inspected root and the filesystems inspection found in its fstab.
fn mount_inspected(
    s: &mut Session,
    i: usize,
    at: &str,
    devices: &[String],
    roots: &[String],
) -> Result<(String, Vec<String>), GuestError> {
    let mut mine = Vec::new();
    for r in roots {
        if s.drive_of(r)? == i {
            mine.push(r.clone());
        }
    }
    let root = match mine.as_slice() {
        [r] => r.clone(),
        [] => {
            return Err(refused(
                "libguestfs finds no operating system on this image",
            ))
        }
        _ => {
            return Err(refused(format!(
                "several operating systems on this image: {mine:?}"
            )))
        }
    };
    let mut mounts = s.inspect_get_mountpoints(&root)?;
    mounts.sort_by_key(|(mp, _)| mp.len());
    let mut devs = Vec::new();
    for (mp, dev) in &mounts {
        let dev = on_drive(s, i, devices, dev)?;
        if mp != "/" {
            plain_dir(s, &under(at, mp))?;
        }
        s.mount(&dev, &under(at, mp))
            .map_err(|e| refused(format!("cannot mount {dev} on {mp}: {e}")))?;
        devs.push(dev);
    }
    Ok((root, devs))
}

/// Filesystems an fstab may name that hold no package files.
const NOT_LOCAL: &[&str] = &[
    "swap",
    "none",
    "tmpfs",
    "proc",
    "sysfs",
    "devpts",
    "devtmpfs",
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "9p",
    "fuse",
    "sshfs",
    "cgroup",
    "cgroup2",
    "efivarfs",
    "securityfs",
];

/// Mounts the root the collector found (partition `part` of drive `i`), then each local
/// filesystem the guest's /etc/fstab names that lives on the same drive, found by UUID,
/// label or partition number. An entry that cannot be placed is an error when it would
/// hold package files (/usr, /var, /boot, /opt, /etc, /lib*), skipped otherwise.
fn mount_native(
    s: &mut Session,
    i: usize,
    at: &str,
    devices: &[String],
    part: u32,
) -> Result<(String, Vec<String>), GuestError> {
    let base = devices
        .get(i)
        .ok_or_else(|| refused(format!("drive {i} has no device")))?;
    let root = if part == 0 {
        base.clone()
    } else {
        format!("{base}{part}")
    };
    s.mount(&root, at)
        .map_err(|e| refused(format!("cannot mount the root {root}: {e}")))?;
    let mut devs = vec![root.clone()];
    let fstab_at = under(at, "/etc/fstab");
    let fstab = if s.exists(&fstab_at)? && !s.is_symlink(&fstab_at)? {
        String::from_utf8_lossy(&s.pread(&fstab_at, 1 << 20, 0)?).into_owned()
    } else {
        String::new()
    };
    let mut wanted = Vec::new();
    for line in fstab.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[0].starts_with('#') {
            continue;
        }
        let (spec, mp, fstype) = (f[0], f[1], f[2]);
        let opts = f.get(3).copied().unwrap_or("");
        if mp == "/"
            || !mp.starts_with('/')
            || NOT_LOCAL.contains(&fstype)
            || opts.split(',').any(|o| o == "bind" || o == "noauto")
        {
            continue;
        }
        wanted.push((spec.to_string(), mp.to_string()));
    }
    if wanted.is_empty() {
        return Ok((root, devs));
    }
    // This drive's partitions with their UUIDs and labels.
    let mut parts = Vec::new();
    for p in s.list_partitions()? {
        if s.drive_of(&p)? == i {
            let uuid = s.vfs_uuid(&p).unwrap_or_default();
            let label = s.vfs_label(&p).unwrap_or_default();
            let num = s.part_to_partnum(&p).unwrap_or(-1);
            parts.push((p, uuid, label, num));
        }
    }
    let mut mounts = Vec::new();
    for (spec, mp) in wanted {
        let found = if let Some(u) = spec
            .strip_prefix("UUID=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-uuid/"))
        {
            parts
                .iter()
                .find(|p| p.1.eq_ignore_ascii_case(u.trim_matches('"')))
        } else if let Some(l) = spec
            .strip_prefix("LABEL=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-label/"))
        {
            parts.iter().find(|p| p.2 == l.trim_matches('"'))
        } else if let Some(dev) = spec.strip_prefix("/dev/") {
            let digits: String = dev.chars().rev().take_while(char::is_ascii_digit).collect();
            let n: i32 = digits
                .chars()
                .rev()
                .collect::<String>()
                .parse()
                .unwrap_or(-1);
            let disk_name = &dev[..dev.len() - digits.len()];
            let plain = ["sd", "vd", "hd", "xvd"]
                .iter()
                .any(|p| disk_name.starts_with(p) && disk_name.len() == p.len() + 1);
            if plain {
                parts.iter().find(|p| p.3 == n)
            } else {
                None
            }
        } else {
            None
        };
        match found {
            Some(p) => mounts.push((mp, p.0.clone())),
            None => {
                let holds_packages = ["/usr", "/var", "/boot", "/opt", "/etc", "/lib"]
                    .iter()
                    .any(|d| mp.starts_with(d));
                if holds_packages {
                    return Err(refused(format!(
                        "the guest's fstab mounts {spec} on {mp}, which is not a partition of this image found by UUID, label or number (LVM?); patch it in a run of its own"
                    )));
                }
            }
        }
    }
    mounts.sort_by_key(|(mp, _)| mp.matches('/').count());
    for (mp, dev) in mounts {
        plain_dir(s, &under(at, &mp))?;
        s.mount(&dev, &under(at, &mp))
            .map_err(|e| refused(format!("cannot mount {dev} on {mp}: {e}")))?;
        devs.push(dev);
    }
    Ok((root, devs))
}

/// A guest directory we may write into: it exists and resolves to itself (`dir` is an
/// appliance path, under the guest's mount point).
fn plain_dir(s: &mut Session, dir: &str) -> Result<(), GuestError> {
    if !s.is_dir(dir)? {
        return Err(refused(format!("{dir} is not a directory in the guest")));
    }
    let real = s.realpath(dir)?;
    if real != dir {
        return Err(refused(format!(
            "{dir} resolves to {real} inside the guest; refusing to write through a symlink"
        )));
    }
    Ok(())
}

/// Copies every plan's package files to a private staging directory, checks each against
/// the indexed SHA-256 and uploads each file once into the appliance (`batch::PACKAGES`);
/// then prepares each image (`wanted`: indexes into `jobs`) for its package manager and
/// runs all installs, `lanes` at a time. Each image's result and log go to `out`; the
/// error is for the appliance as a whole.
#[allow(clippy::too_many_arguments)]
fn install_all(
    s: &mut Session,
    jobs: &[Job<'_>],
    wanted: &[usize],
    up: &mut Staged<'_>,
    run: &str,
    lanes: usize,
    out: &mut Out<'_>,
    notify: &mut Notify<'_>,
) -> Result<(), GuestfsError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let (results, logs) = (&mut *out.results, &mut *out.logs);
    let t = Instant::now();
    let had = up.uploaded.len();
    let mut ready = Vec::new();
    for &i in wanted {
        let Change::Packages { plan } = jobs[i].change else {
            continue;
        };
        match prepare_install(s, jobs[i].image, &drive_root(i), plan, run, up, notify) {
            Ok((pm, w, files)) => ready.push((i, pm, w, files)),
            Err(e) => results[i] = Err(e),
        }
    }
    notify(
        None,
        "upload",
        &format!(
            "{} package file(s), once for {} image(s)",
            up.uploaded.len() - had,
            ready.len()
        ),
    );
    took(notify, None, "upload", t);

    let works: Vec<&batch::Work> = ready.iter().map(|(_, _, w, _)| w).collect();
    crate::fault::during_tool(false);
    let done = batch::run(s, &works, lanes)?;
    crate::fault::during_tool(true);
    for ((i, pm, w, files), d) in ready.into_iter().zip(done) {
        let image = jobs[i].image;
        push_log(&mut logs[i], &d.log);
        for p in pm.installed(&d.log) {
            notify(Some(image), "installed", p);
        }
        let mut r = d.refused.map_or(Ok(()), |why| Err(refused(why)));
        for (n, status, secs) in &d.ran {
            let what = w.commands.get(*n).map_or("?", |(what, _)| what.as_str());
            notify(
                Some(image),
                "timing",
                &timing(&format!("{} {what}", pm.tool()), *secs),
            );
            if *status == 0 {
                notify(Some(image), pm.tool(), &format!("{what}: finished"));
            } else if r.is_ok() {
                let tail: Vec<&str> = d.log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                r = Err(GuestError::Tool {
                    tool: pm.tool(),
                    status: status.to_string(),
                    tail: tail.join(" | "),
                });
            }
        }
        if r.is_ok() && d.ran.len() < w.commands.len() {
            r = Err(refused(format!(
                "{} ran {} of its {} command(s) and left no status for the rest",
                pm.tool(),
                d.ran.len(),
                w.commands.len()
            )));
        }
        let inst = Install {
            root: &w.root,
            run,
            files: &files,
            key: up.key,
        };
        let restored = pm.restore(s, &inst);
        results[i] = r.and(restored);
    }
    Ok(())
}

/// An image ready to install: its package manager, its work, its package files.
type Prepared<'a> = (
    &'static dyn crate::pm::PackageManager,
    batch::Work,
    Vec<PackageFile<'a>>,
);

/// Where a run's package files come from and what of them is in the appliance already:
/// file name -> the repository file uploaded under it (one name is one file for the whole
/// appliance).
struct Staged<'a> {
    repo_root: &'a Path,
    staging: &'a Path,
    uploaded: BTreeMap<String, PathBuf>,
    key: Option<&'a coldpatch_apk::Key>,
}

/// One image's part before the installs: its plan's package files in the appliance, its
/// guest prepared by its package manager, and the commands that will install them with
/// the packages bound at `/var/cache/coldpatch-<run>`.
fn prepare_install<'a>(
    s: &mut Session,
    image: &str,
    root: &str,
    plan: &'a Plan,
    run: &str,
    up: &mut Staged<'_>,
    notify: &mut Notify<'_>,
) -> Result<Prepared<'a>, GuestError> {
    let pm = crate::pm::for_kind(plan.kind).ok_or_else(|| {
        refused(format!(
            "no package manager installs {} packages",
            plan.kind.as_str()
        ))
    })?;
    let dir = format!("/var/cache/coldpatch-{run}");
    let mut files = Vec::new();
    for step in &plan.steps {
        let name = Path::new(&step.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(pm.file_ext()) && !n.contains('/'))
            .ok_or_else(|| refused(format!("{}: not a {} file name", step.file, pm.file_ext())))?;
        let first = up.uploaded.is_empty();
        upload_once(
            s,
            pm,
            up.repo_root,
            step,
            &name,
            up.staging,
            &mut up.uploaded,
        )?;
        if first {
            crate::fault::at("upload");
        }
        files.push(PackageFile {
            step,
            guest: format!("{dir}/{name}"),
            host: up.staging.join(&name),
        });
    }
    plain_dir(s, &under(root, "/var/cache"))?;
    plain_dir(s, &under(root, "/usr/sbin"))?;
    s.mkdir_p(&under(root, &dir))?;
    let inst = Install {
        root,
        run,
        files: &files,
        key: up.key,
    };
    pm.prepare(s, &inst)?;
    let commands = pm.commands(s, &inst)?;
    notify(
        Some(image),
        "uploaded",
        &format!("{} package(s), at {dir}", files.len()),
    );
    for (what, _) in &commands {
        notify(Some(image), pm.tool(), what);
    }
    Ok((
        pm,
        batch::Work {
            root: root.to_string(),
            mode: batch::Mode::Chrooted { packages: dir },
            commands,
        },
        files,
    ))
}

/// Copies a planned package file from the repository to the staging directory, checks
/// it against the indexed SHA-256, and uploads it into the appliance (in the form the
/// package manager asks for, `for_appliance`) unless a file of that name already went
/// there (then it must be the same file).
fn upload_once(
    s: &mut Session,
    pm: &dyn crate::pm::PackageManager,
    repo_root: &Path,
    step: &crate::plan::Step,
    name: &str,
    staging: &Path,
    uploaded: &mut BTreeMap<String, PathBuf>,
) -> Result<(), GuestError> {
    let src = repo_root.join(&step.file);
    if let Some(have) = uploaded.get(name) {
        return if have == &src {
            Ok(())
        } else {
            Err(refused(format!(
                "{name}: two different package files of one name in one run; patch these images in runs of their own"
            )))
        };
    }
    // A copy first, checked against the index: the repository may change under us.
    let copy = staging.join(name);
    let have = hashed_copy(&src, &copy)?;
    if let Some(want) = &step.sha256 {
        if &have != want {
            return Err(refused(format!(
                "{} changed since the repository was indexed (SHA-256 {have}, indexed {want}); run `coldpatch repo index` again",
                src.display()
            )));
        }
    }
    let plain = staging.join(format!("{name}.appliance"));
    let file = if pm.for_appliance(&copy, &plain) {
        &plain
    } else {
        &copy
    };
    s.upload(file, &format!("{}/{name}", batch::PACKAGES))?;
    uploaded.insert(name.to_string(), src);
    Ok(())
}

fn put_files(
    s: &mut Session,
    at: &str,
    image: &str,
    puts: &[Put],
    log: &mut String,
    notify: &mut Notify<'_>,
) -> Result<(), GuestError> {
    for p in puts {
        let parent = Path::new(&p.guest)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .ok_or_else(|| refused(format!("{}: no parent directory", p.guest)))?;
        plain_dir(s, &under(at, &parent))?;
        let g = under(at, &p.guest);
        let exists = s.exists(&g)?;
        if s.is_symlink(&g)? {
            return Err(refused(format!(
                "{} is a symlink in the guest; refusing to write through it",
                p.guest
            )));
        }
        if exists && s.is_dir(&g)? {
            return Err(refused(format!("{} is a directory in the guest", p.guest)));
        }
        let keep = if exists { Some(s.stat(&g)?) } else { None };
        // Upload from a private copy whose hash is the one planned.
        let staging = tempfile::NamedTempFile::new().map_err(|e| host(Path::new("staging"), e))?;
        let have = hashed_copy(&p.source, staging.path())?;
        if have != p.sha256 {
            return Err(refused(format!(
                "{} changed since the run was planned",
                p.source.display()
            )));
        }
        s.upload(staging.path(), &g)?;
        let (mode, uid, gid) = keep.map_or((0o644, 0, 0), |st| (st.mode & 0o7777, st.uid, st.gid));
        s.chmod(mode, &g)?;
        s.chown(uid, gid, &g)?;
        let what = if exists { "replaced" } else { "added" };
        push_log(
            log,
            &format!(
                "{what} {} from {} (sha256 {have}, mode {mode:o}, owner {uid}:{gid})\n",
                p.guest,
                p.source.display()
            ),
        );
        notify(Some(image), "file", &format!("{what} {}", p.guest));
        crate::fault::at("upload");
    }
    Ok(())
}
