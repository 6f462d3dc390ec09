//! The work inside one libguestfs appliance: every overlay of a run is attached as a
//! writable drive and the appliance is launched once (20–60 s under TCG); then each
//! image in turn is mounted, changed with its own tools, unmounted and checked.
//!
//! What runs in the guest is the guest's own `/bin/sh` and `dpkg`, chrooted by the
//! libguestfs daemon: the appliance is the sandbox, and nothing the guest prints is
//! trusted. Success is decided afterwards by reading the overlay natively (see
//! `run.rs`). Guest paths we write are checked to resolve, inside the guest, to
//! themselves: a guest symlink never redirects a write.

use std::path::{Path, PathBuf};

use crate::plan::Plan;
use crate::{sha256_file, PatchError};
use coldpatch_disk::guestfs::{GuestfsError, Session};

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

/// Progress reports: (image, kind, message).
pub type Notify<'a> = dyn FnMut(Option<&str>, &str, &str) + 'a;

/// Each job's result (an error says why) and its log.
pub type JobOutcome = (Result<(), String>, String);

/// Output of the guest's package tool kept per image (the end, if it prints more).
const LOG_LIMIT: usize = 1 << 20;
/// How long one dpkg run may take in the guest before it is killed (TCG is slow, and a
/// maintainer script may wait forever).
const DPKG_TIMEOUT_SECS: u32 = 1800;

fn g(e: GuestfsError) -> String {
    e.to_string()
}

fn fault_set(point: &str) -> bool {
    std::env::var("COLDPATCH_FAULT").as_deref() == Ok(point)
}

fn die(point: &str) -> ! {
    eprintln!("coldpatch: fault injection: killed {point}");
    std::process::abort();
}

/// Test hook for fault injection: `COLDPATCH_FAULT=<point>` ends the process abruptly
/// (no destructors, no cleanup: as a kill would) at that point: `upload` after the first
/// file is in the guest, `commit` after verification, before the commit. For `dpkg` see
/// [`fault_during_dpkg`].
pub fn fault(point: &str) {
    if fault_set(point) {
        die(&format!("at {point}"));
    }
}

/// `COLDPATCH_FAULT=dpkg`: ends the process one second into the guest's first dpkg run,
/// from another thread (the caller is blocked in libguestfs); `done` is called when dpkg
/// returned, and ends it then if it was quicker.
fn fault_during_dpkg(done: bool) {
    if !fault_set("dpkg") {
        return;
    }
    if done {
        die("as dpkg returned");
    }
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(1));
        die("during dpkg");
    });
}

/// Launches one appliance for all jobs and runs them in order. The outer error is for
/// the appliance as a whole; each job has its own result and log.
pub fn run_all(
    jobs: &[Job<'_>],
    run: &str,
    repo_root: Option<&Path>,
    smp: usize,
    notify: &mut Notify<'_>,
) -> Result<Vec<JobOutcome>, PatchError> {
    let appliance = |e: GuestfsError| PatchError::Appliance(e.to_string());
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
            notify(Some(j.image), "failed", e);
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
fn on_drive(s: &mut Session, i: usize, devices: &[String], dev: &str) -> Result<String, String> {
    let d = s.drive_of(dev).map_err(g)?;
    if d == i {
        return Ok(dev.to_string());
    }
    let n = s.part_to_partnum(dev).map_err(|_| {
        format!("{dev} is on another image's drive and is not a partition (LVM volume groups of the same name?); patch this image in a run of its own")
    })?;
    let base = devices
        .get(i)
        .ok_or_else(|| format!("drive {i} has no device"))?;
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
) -> Result<(), String> {
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
            let root = repo_root.ok_or("no repository for a package change")?;
            install(s, image, plan, root, run, log, notify)?;
        }
        Change::Files { puts } => put_files(s, image, puts, log, notify)?,
    }
    s.sync().map_err(g)?;
    s.umount_all().map_err(g)?;
    for dev in &devs {
        let t = s.vfs_type(dev).map_err(g)?;
        if t.starts_with("ext") {
            s.e2fsck(dev)
                .map_err(|e| format!("fsck of {dev} after the change failed: {e}"))?;
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
) -> Result<(String, Vec<String>), String> {
    let mut mine = Vec::new();
    for r in roots {
        if s.drive_of(r).map_err(g)? == i {
            mine.push(r.clone());
        }
    }
    let root = match mine.as_slice() {
        [r] => r.clone(),
        [] => return Err("libguestfs finds no operating system on this image".into()),
        _ => return Err(format!("several operating systems on this image: {mine:?}")),
    };
    let mut mounts = s.inspect_get_mountpoints(&root).map_err(g)?;
    mounts.sort_by_key(|(mp, _)| mp.len());
    let mut devs = Vec::new();
    for (mp, dev) in &mounts {
        let dev = on_drive(s, i, devices, dev)?;
        s.mount(&dev, mp)
            .map_err(|e| format!("cannot mount {dev} on {mp}: {e}"))?;
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
) -> Result<(String, Vec<String>), String> {
    let base = devices
        .get(i)
        .ok_or_else(|| format!("drive {i} has no device"))?;
    let root = if part == 0 {
        base.clone()
    } else {
        format!("{base}{part}")
    };
    s.mount(&root, "/")
        .map_err(|e| format!("cannot mount the root {root}: {e}"))?;
    let mut devs = vec![root.clone()];
    let fstab = if s.exists("/etc/fstab").map_err(g)? && !s.is_symlink("/etc/fstab").map_err(g)? {
        String::from_utf8_lossy(&s.pread("/etc/fstab", 1 << 20, 0).map_err(g)?).into_owned()
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
    for p in s.list_partitions().map_err(g)? {
        if s.drive_of(&p).map_err(g)? == i {
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
                    return Err(format!(
                        "the guest's fstab mounts {spec} on {mp}, which is not a partition of this image found by UUID, label or number (LVM?); patch it in a run of its own"
                    ));
                }
            }
        }
    }
    mounts.sort_by_key(|(mp, _)| mp.matches('/').count());
    for (mp, dev) in mounts {
        plain_dir(s, &mp)?;
        s.mount(&dev, &mp)
            .map_err(|e| format!("cannot mount {dev} on {mp}: {e}"))?;
        devs.push(dev);
    }
    Ok((root, devs))
}

/// A guest directory we may write into: it exists and resolves to itself.
fn plain_dir(s: &mut Session, dir: &str) -> Result<(), String> {
    if !s.is_dir(dir).map_err(|e| e.to_string())? {
        return Err(format!("{dir} is not a directory in the guest"));
    }
    let real = s.realpath(dir).map_err(|e| e.to_string())?;
    if real != dir {
        return Err(format!(
            "{dir} resolves to {real} inside the guest; refusing to write through a symlink"
        ));
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn push_log(log: &mut String, text: &str) {
    log.push_str(text);
    if log.len() > LOG_LIMIT {
        let cut = log.len() - LOG_LIMIT;
        let cut = (cut..log.len())
            .find(|&c| log.is_char_boundary(c))
            .unwrap_or(log.len());
        log.drain(..cut);
    }
}

fn install(
    s: &mut Session,
    image: &str,
    plan: &Plan,
    repo_root: &Path,
    run: &str,
    log: &mut String,
    notify: &mut Notify<'_>,
) -> Result<(), String> {
    // Copies first, checked against the index: the repository may change under us.
    let staging = tempfile::tempdir().map_err(|e| format!("cannot make a staging dir: {e}"))?;
    let mut names = Vec::new();
    for step in &plan.steps {
        let src = repo_root.join(&step.file);
        let name = Path::new(&step.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".deb") && !n.contains('/'))
            .ok_or_else(|| format!("{}: not a .deb file name", step.file))?;
        let copy = staging.path().join(&name);
        std::fs::copy(&src, &copy).map_err(|e| format!("{}: {e}", src.display()))?;
        if let Some(want) = &step.sha256 {
            let have = sha256_file(&copy).map_err(|e| format!("{}: {e}", src.display()))?;
            if &have != want {
                return Err(format!(
                    "{} changed since the repository was indexed (SHA-256 {have}, indexed {want}); run `coldpatch repo index` again",
                    src.display()
                ));
            }
        }
        names.push((step, name, copy));
    }
    plain_dir(s, "/var/cache")?;
    plain_dir(s, "/usr/sbin")?;
    let dir = format!("/var/cache/coldpatch-{run}");
    s.mkdir_p(&dir).map_err(g)?;
    notify(
        Some(image),
        "upload",
        &format!("{} package(s) to {dir}", names.len()),
    );
    for (n, (_, name, copy)) in names.iter().enumerate() {
        s.upload(copy, &format!("{dir}/{name}")).map_err(g)?;
        if n == 0 {
            fault("upload");
        }
    }
    notify(
        Some(image),
        "uploaded",
        &format!("{} package(s)", names.len()),
    );

    // No service may start in an image that is not running.
    let policy = "/usr/sbin/policy-rc.d";
    let saved = format!("/usr/sbin/policy-rc.d.coldpatch-{run}");
    let had_policy = s.exists(policy).map_err(g)? || s.is_symlink(policy).unwrap_or(false);
    if had_policy {
        s.mv(policy, &saved).map_err(g)?;
    }
    s.write(
        policy,
        b"#!/bin/sh\n# coldpatch: no service starts in an offline image\nexit 101\n",
    )
    .map_err(g)?;
    s.chmod(0o755, policy).map_err(g)?;

    let has_timeout = s.exists("/usr/bin/timeout").unwrap_or(false);
    let mut stages: Vec<u32> = plan.steps.iter().map(|st| st.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    let mut result = Ok(());
    for stage in stages {
        let files: Vec<String> = names
            .iter()
            .filter(|(st, _, _)| st.stage == stage)
            .map(|(_, n, _)| shell_quote(&format!("{dir}/{n}")))
            .collect();
        let limit = if has_timeout {
            format!("timeout -k 30 {DPKG_TIMEOUT_SECS} ")
        } else {
            String::new()
        };
        let cmd = format!(
            "(cd / && DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C \
             PATH=/usr/sbin:/usr/bin:/sbin:/bin {limit}dpkg --force-confdef --force-confold -i {}; \
             echo \"coldpatch-exit=$?\") 2>&1 | tail -c {LOG_LIMIT}",
            files.join(" ")
        );
        notify(
            Some(image),
            "dpkg",
            &format!("stage {stage}: dpkg -i {} package(s)", files.len()),
        );
        fault_during_dpkg(false);
        let out = s.sh(&cmd).map_err(g)?;
        fault_during_dpkg(true);
        push_log(log, &out);
        let status = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("coldpatch-exit="))
            .and_then(|v| v.trim().parse::<i32>().ok());
        // One event per package dpkg configured (its own words: "Setting up name (v)").
        for l in out.lines() {
            if let Some(p) = l.strip_prefix("Setting up ") {
                notify(Some(image), "installed", p.trim_end_matches(" ...").trim());
            }
        }
        match status {
            Some(0) => notify(
                Some(image),
                "dpkg",
                &format!("stage {stage}: dpkg finished"),
            ),
            other => {
                let tail: Vec<&str> = out.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                result = Err(format!(
                    "dpkg in the guest failed (exit {}): {}",
                    other.map_or("unknown".to_string(), |c| c.to_string()),
                    tail.join(" | ")
                ));
                break;
            }
        }
    }
    // Leave the guest as it was, apart from the packages.
    let _ = s.rm_rf(&dir);
    let _ = s.rm_rf(policy);
    if had_policy {
        s.mv(&saved, policy).map_err(g)?;
    }
    result
}

fn put_files(
    s: &mut Session,
    image: &str,
    puts: &[Put],
    log: &mut String,
    notify: &mut Notify<'_>,
) -> Result<(), String> {
    for p in puts {
        let parent = Path::new(&p.guest)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: no parent directory", p.guest))?;
        plain_dir(s, &parent)?;
        let exists = s.exists(&p.guest).map_err(g)?;
        if s.is_symlink(&p.guest).map_err(g)? {
            return Err(format!(
                "{} is a symlink in the guest; refusing to write through it",
                p.guest
            ));
        }
        if exists && s.is_dir(&p.guest).map_err(g)? {
            return Err(format!("{} is a directory in the guest", p.guest));
        }
        let keep = if exists {
            Some(s.stat(&p.guest).map_err(g)?)
        } else {
            None
        };
        // Upload from a private copy whose hash is the one planned.
        let staging = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        std::fs::copy(&p.source, staging.path())
            .map_err(|e| format!("{}: {e}", p.source.display()))?;
        let have = sha256_file(staging.path()).map_err(|e| e.to_string())?;
        if have != p.sha256 {
            return Err(format!(
                "{} changed since the run was planned",
                p.source.display()
            ));
        }
        s.upload(staging.path(), &p.guest).map_err(g)?;
        let (mode, uid, gid) = keep.map_or((0o644, 0, 0), |st| (st.mode & 0o7777, st.uid, st.gid));
        s.chmod(mode, &p.guest).map_err(g)?;
        s.chown(uid, gid, &p.guest).map_err(g)?;
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
        fault("upload");
    }
    Ok(())
}
