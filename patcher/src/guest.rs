//! The work inside one libguestfs appliance: every overlay of a run is attached as a
//! writable drive and the appliance is launched once (20–60 s under TCG); then each
//! image in turn is mounted, changed with its own tools, unmounted and checked.
//!
//! What runs in the guest is the guest's own `/bin/sh` and package tool (`pm/`),
//! chrooted by the libguestfs daemon: the appliance is the sandbox, and nothing the guest prints is
//! trusted. Success is decided afterwards by reading the overlay natively (see
//! `run.rs`). Guest paths we write are checked to resolve, inside the guest, to
//! themselves: a guest symlink never redirects a write.

use std::path::{Path, PathBuf};

use coldpatch_disk::guestfs::{GuestfsError, Session};
use coldpatch_disk::hash::sha256_file;

use crate::appliance::push_log;
pub use crate::appliance::{GuestError, Notify};
use crate::plan::Plan;
use crate::PatchError;

fn host(path: &Path, e: impl std::fmt::Display) -> GuestError {
    GuestError::Host {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
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
}

/// Each job's result and its log.
pub type JobOutcome = (Result<(), GuestError>, String);

/// Launches one appliance for all jobs and runs them in order. The outer error is for
/// the appliance as a whole; each job has its own result and log.
pub fn run_all(
    jobs: &[Job<'_>],
    run: &str,
    repo_root: Option<&Path>,
    smp: usize,
    notify: &mut Notify<'_>,
) -> Result<Vec<JobOutcome>, PatchError> {
    let appliance = |e: GuestfsError| PatchError::Appliance(GuestError::Guestfs(e));
    let t = std::time::Instant::now();
    let mut s = match launch(jobs, smp) {
        Err(e) if e.hung => {
            notify(None, "appliance", &format!("{}; launching again", e.error));
            launch(jobs, smp).map_err(|e| appliance(e.error))?
        }
        r => r.map_err(|e| appliance(e.error))?,
    };
    notify(
        None,
        "appliance",
        &format!(
            "started with {} drive(s) in {:.1} s",
            jobs.len(),
            t.elapsed().as_secs_f64()
        ),
    );
    let devices = s.list_devices().map_err(appliance)?;
    let roots = if jobs.iter().any(|j| j.root_partition.is_none()) {
        s.inspect_os().map_err(appliance)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let mut log = String::new();
        let r = one(
            &mut s, i, &devices, &roots, j, run, repo_root, &mut log, notify,
        );
        // Whatever happened, the next image starts from nothing mounted.
        let _ = s.umount_all();
        if let Err(e) = &r {
            notify(Some(j.image), "failed", &e.to_string());
        }
        out.push((r, log));
    }
    s.shutdown().map_err(appliance)?;
    notify(None, "appliance", "stopped; every drive written out");
    Ok(out)
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
fn launch(jobs: &[Job<'_>], smp: usize) -> Result<Session, LaunchError> {
    let plain = |error| LaunchError { error, hung: false };
    let mut s = Session::new().map_err(plain)?;
    s.set_smp(i32::try_from(smp).unwrap_or(1)).map_err(plain)?;
    for j in jobs {
        s.add_overlay_rw(j.overlay).map_err(plain)?;
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

#[allow(clippy::too_many_arguments)]
fn one(
    s: &mut Session,
    i: usize,
    devices: &[String],
    roots: &[String],
    j: &Job<'_>,
    run: &str,
    repo_root: Option<&Path>,
    log: &mut String,
    notify: &mut Notify<'_>,
) -> Result<(), GuestError> {
    let image = j.image;
    let (root, devs) = match j.root_partition {
        Some(part) => mount_native(s, i, devices, part)?,
        None => mount_inspected(s, i, devices, roots)?,
    };
    notify(
        Some(image),
        "mounted",
        &format!("root {root}, {} filesystem(s)", devs.len()),
    );
    match j.change {
        Change::Packages { plan } => {
            let root = repo_root.ok_or_else(|| refused("no repository for a package change"))?;
            install(s, image, plan, root, run, log, notify)?;
        }
        Change::Files { puts } => put_files(s, image, puts, log, notify)?,
    }
    s.sync()?;
    s.umount_all()?;
    for dev in &devs {
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

/// Mounts an inspected root and the filesystems inspection found in its fstab.
fn mount_inspected(
    s: &mut Session,
    i: usize,
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
        s.mount(&dev, mp)
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
    s.mount(&root, "/")
        .map_err(|e| refused(format!("cannot mount the root {root}: {e}")))?;
    let mut devs = vec![root.clone()];
    let fstab = if s.exists("/etc/fstab")? && !s.is_symlink("/etc/fstab")? {
        String::from_utf8_lossy(&s.pread("/etc/fstab", 1 << 20, 0)?).into_owned()
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
        plain_dir(s, &mp)?;
        s.mount(&dev, &mp)
            .map_err(|e| refused(format!("cannot mount {dev} on {mp}: {e}")))?;
        devs.push(dev);
    }
    Ok((root, devs))
}

/// A guest directory we may write into: it exists and resolves to itself.
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

/// Copies the plan's package files to a private staging directory, checks each against
/// the indexed SHA-256, uploads them into the guest and has the image's package manager
/// install them; the upload directory is removed afterwards.
fn install(
    s: &mut Session,
    image: &str,
    plan: &Plan,
    repo_root: &Path,
    run: &str,
    log: &mut String,
    notify: &mut Notify<'_>,
) -> Result<(), GuestError> {
    let pm = crate::pm::for_kind(plan.kind).ok_or_else(|| {
        refused(format!(
            "no package manager installs {} packages",
            plan.kind.as_str()
        ))
    })?;
    // Copies first, checked against the index: the repository may change under us.
    let staging = tempfile::tempdir().map_err(|e| host(Path::new("staging"), e))?;
    let mut names = Vec::new();
    for step in &plan.steps {
        let src = repo_root.join(&step.file);
        let name = Path::new(&step.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(pm.file_ext()) && !n.contains('/'))
            .ok_or_else(|| refused(format!("{}: not a {} file name", step.file, pm.file_ext())))?;
        let copy = staging.path().join(&name);
        std::fs::copy(&src, &copy).map_err(|e| host(&src, e))?;
        if let Some(want) = &step.sha256 {
            let have = sha256_file(&copy).map_err(|e| host(&src, e))?;
            if &have != want {
                return Err(refused(format!(
                    "{} changed since the repository was indexed (SHA-256 {have}, indexed {want}); run `coldpatch repo index` again",
                    src.display()
                )));
            }
        }
        names.push((step, name, copy));
    }
    plain_dir(s, "/var/cache")?;
    plain_dir(s, "/usr/sbin")?;
    let dir = format!("/var/cache/coldpatch-{run}");
    s.mkdir_p(&dir)?;
    notify(
        Some(image),
        "upload",
        &format!("{} package(s) to {dir}", names.len()),
    );
    let mut files = Vec::new();
    for (n, (step, name, copy)) in names.iter().enumerate() {
        let guest = format!("{dir}/{name}");
        s.upload(copy, &guest)?;
        if n == 0 {
            crate::fault::at("upload");
        }
        files.push((*step, guest));
    }
    notify(
        Some(image),
        "uploaded",
        &format!("{} package(s)", names.len()),
    );
    let result = pm.install(s, image, run, &files, log, notify);
    let _ = s.rm_rf(&dir);
    result
}

fn put_files(
    s: &mut Session,
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
        plain_dir(s, &parent)?;
        let exists = s.exists(&p.guest)?;
        if s.is_symlink(&p.guest)? {
            return Err(refused(format!(
                "{} is a symlink in the guest; refusing to write through it",
                p.guest
            )));
        }
        if exists && s.is_dir(&p.guest)? {
            return Err(refused(format!("{} is a directory in the guest", p.guest)));
        }
        let keep = if exists {
            Some(s.stat(&p.guest)?)
        } else {
            None
        };
        // Upload from a private copy whose hash is the one planned.
        let staging = tempfile::NamedTempFile::new().map_err(|e| host(Path::new("staging"), e))?;
        std::fs::copy(&p.source, staging.path()).map_err(|e| host(&p.source, e))?;
        let have = sha256_file(staging.path()).map_err(|e| host(&p.source, e))?;
        if have != p.sha256 {
            return Err(refused(format!(
                "{} changed since the run was planned",
                p.source.display()
            )));
        }
        s.upload(staging.path(), &p.guest)?;
        let (mode, uid, gid) = keep.map_or((0o644, 0, 0), |st| (st.mode & 0o7777, st.uid, st.gid));
        s.chmod(mode, &p.guest)?;
        s.chown(uid, gid, &p.guest)?;
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
