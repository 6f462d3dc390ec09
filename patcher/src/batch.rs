//! Work on several images at once in one appliance: package installs, and replays of a
//! reference's change set (`replay.rs`).
//!
//! The libguestfs daemon answers one call at a time: a call that runs a guest's package
//! tool holds the whole appliance until it returns, so images installed one after another
//! on one CPU however many the appliance has. Here each image is mounted under a directory
//! of its own in the appliance (`/drive0`, `/drive1`, …: `Session::mkmountpoint`), and one
//! `Session::appliance_sh` call runs every image's commands, each chrooted into its own
//! guest (or, for a replay, by the appliance's shell, chrooting where it writes), in as
//! many lanes as the appliance has CPUs. Each image's output, exit statuses
//! and times go to files under the appliance's own `/coldpatch` (on no guest's disk),
//! read back when the call returns. The package files are uploaded there once and bound
//! read-only into each guest at the directory its commands name.
//!
//! Trust is unchanged: the appliance is the sandbox. A guest's tool runs as root in a
//! chroot inside it, where every drive of the run is already a block device in `/dev`;
//! side by side or one after another, a hostile guest could reach its siblings' drives.
//! What decides success is the native read-back of each overlay, not anything printed.
//! A guest directory is only bound onto when it resolves, in the appliance, to itself: a
//! guest symlink (`/proc -> /`) never redirects a mount.

use coldpatch_disk::guestfs::{GuestfsError, Session};

use crate::appliance::{shell_quote, LOG_LIMIT};

/// The appliance's own working directory (relative to the daemon's sysroot).
pub const WORK: &str = "/coldpatch";
/// Where package files are uploaded, once per appliance.
pub const PACKAGES: &str = "/coldpatch/packages";

/// How long one chrooted command (a package tool's run) may take before it is killed:
/// TCG is slow, and a maintainer script may wait forever.
pub const TOOL_TIMEOUT_SECS: u32 = 1800;

/// One image's work: the commands (what each does, the command) for the guest mounted at
/// `root`, run one after another until one fails.
pub struct Work {
    pub root: String,
    pub mode: Mode,
    pub commands: Vec<(String, String)>,
}

pub enum Mode {
    /// Each command runs with the guest's `/bin/sh`, chrooted into the guest, with /dev,
    /// /proc, /sys and the uploaded packages bound in, the packages read-only at
    /// `packages` (a guest path, made empty beforehand).
    Chrooted { packages: String },
    /// Each command is run by the appliance's own shell (`$r` is the guest's mount point,
    /// `$root` the daemon's sysroot); it chroots where it writes into a guest (a replay,
    /// `replay.rs`).
    Appliance,
}

/// What came of one image's commands.
#[derive(Debug, Default)]
pub struct Done {
    /// The tool's output (its last [`LOG_LIMIT`] bytes).
    pub log: String,
    /// (index into the commands, exit status, seconds) of each command that ran; the
    /// first failing one is the last.
    pub ran: Vec<(usize, i32, f64)>,
    /// Why the guest could not be prepared for the commands, if it could not.
    pub refused: Option<String>,
}

/// The script one image's lane runs (as a file: the daemon takes only short commands).
fn script(n: usize, w: &Work) -> String {
    let how = match w.mode {
        // The appliance's own timeout (coreutils), not the guest's: busybox's leaves a
        // detached watcher in the guest that keeps its filesystem busy.
        Mode::Chrooted { .. } => &format!(
            "if command -v timeout >/dev/null; then timeout -k 30 {TOOL_TIMEOUT_SECS} chroot \"$r\" /bin/sh -c \"$1\"; \
             else chroot \"$r\" /bin/sh -c \"$1\"; fi"
        ),
        Mode::Appliance => "eval \"$1\"",
    };
    let mut s = format!(
        "r=\"$root\"{root}; w=\"$root\"{work}; n={n}\n\
         bind() {{ [ -d \"$2\" ] && [ ! -L \"$2\" ] && [ \"$(readlink -f \"$2\")\" = \"$2\" ] && mount --bind \"$1\" \"$2\"; }}\n\
         x() {{ {how}; }}\n\
         run() {{ t0=$(date +%s.%N); {{ x \"$2\" 2>&1; echo $? > \"$w/status$n\"; }} | tail -c {LOG_LIMIT} >> \"$w/log$n\"; \
         st=$(cat \"$w/status$n\"); echo \"$1 $st $t0 $(date +%s.%N)\" >> \"$w/ran$n\"; [ \"$st\" = 0 ]; }}\n\
         : > \"$w/log$n\"; : > \"$w/ran$n\"\n",
        root = shell_quote(&w.root),
        work = shell_quote(WORK),
    );
    let runs: Vec<String> = w
        .commands
        .iter()
        .enumerate()
        .map(|(i, (_, c))| format!("run {i} {}", shell_quote(c)))
        .collect();
    let runs = if runs.is_empty() {
        ":".to_string()
    } else {
        runs.join(" && ")
    };
    match &w.mode {
        Mode::Appliance => s.push_str(&format!("{runs}\n")),
        Mode::Chrooted { packages } => s.push_str(&format!(
            "for d in dev dev/pts proc sys; do bind \"/$d\" \"$r/$d\"; done\n\
             if bind \"$w/packages\" \"$r\"{pk} && mount -o remount,bind,ro \"$r\"{pk}; then\n  {runs}\n\
             else\n  echo \"the package directory could not be bound into the guest\" > \"$w/refused$n\"\nfi\n\
             for m in \"$r\"{pk} \"$r/sys\" \"$r/proc\" \"$r/dev/pts\" \"$r/dev\"; do umount -R \"$m\" 2>/dev/null || umount -l \"$m\" 2>/dev/null; done\n\
             rmdir \"$r\"{pk} 2>/dev/null\n",
            pk = shell_quote(packages),
        )),
    }
    s
}

/// The lanes: image `n` goes to lane `n % lanes`, and each lane runs its images in turn.
fn driver(count: usize, lanes: usize) -> String {
    let lanes = lanes.clamp(1, count.max(1));
    let mut s =
        String::from("lane() { for n in \"$@\"; do sh \"$root/coldpatch/job$n\"; done; }\n");
    for l in 0..lanes {
        let mine: Vec<String> = (l..count).step_by(lanes).map(|n| n.to_string()).collect();
        s.push_str(&format!("lane {} &\n", mine.join(" ")));
    }
    s.push_str("wait\nexit 0\n");
    s
}

/// Runs every image's commands, `lanes` images at a time; the outer error is for the
/// appliance as a whole.
pub fn run(s: &mut Session, works: &[&Work], lanes: usize) -> Result<Vec<Done>, GuestfsError> {
    if works.is_empty() {
        return Ok(Vec::new());
    }
    for (n, w) in works.iter().enumerate() {
        s.write(&format!("{WORK}/job{n}"), script(n, w).as_bytes())?;
    }
    s.appliance_sh(&driver(works.len(), lanes))?;
    let mut out = Vec::new();
    for n in 0..works.len() {
        let mut d = Done::default();
        let ran = read_tail(s, &format!("{WORK}/ran{n}"), 1 << 16)?;
        for line in String::from_utf8_lossy(&ran).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [i, st, t0, t1] = f.as_slice() {
                let secs = t1.parse::<f64>().unwrap_or(0.0) - t0.parse::<f64>().unwrap_or(0.0);
                d.ran.push((
                    i.parse().unwrap_or(usize::MAX),
                    st.parse().unwrap_or(-1),
                    secs.max(0.0),
                ));
            }
        }
        d.log = String::from_utf8_lossy(&read_tail(s, &format!("{WORK}/log{n}"), LOG_LIMIT)?)
            .into_owned();
        if s.exists(&format!("{WORK}/refused{n}"))? {
            let why = read_tail(s, &format!("{WORK}/refused{n}"), 4096)?;
            d.refused = Some(String::from_utf8_lossy(&why).trim().to_string());
        }
        out.push(d);
    }
    Ok(out)
}

/// The last `limit` bytes of an appliance file (empty if it is not there).
fn read_tail(s: &mut Session, path: &str, limit: usize) -> Result<Vec<u8>, GuestfsError> {
    if !s.exists(path)? {
        return Ok(Vec::new());
    }
    let size = s.stat(path)?.size;
    let from = size.saturating_sub(limit as u64);
    let mut out = Vec::new();
    while (out.len() as u64) < size - from {
        let chunk = s.pread(path, limit - out.len(), from + out.len() as u64)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_split_the_images_round_robin_and_never_outnumber_them() {
        let d = driver(5, 2);
        assert!(d.contains("lane 0 2 4 &\n"), "{d}");
        assert!(d.contains("lane 1 3 &\n"), "{d}");
        let one = driver(1, 4);
        assert_eq!(
            one.lines().filter(|l| l.ends_with(" &")).count(),
            1,
            "{one}"
        );
        assert!(driver(3, 0).contains("lane 0 1 2 &"));
    }

    #[test]
    fn a_guest_path_with_quotes_stays_one_word() {
        let w = Work {
            root: "/drive0".into(),
            mode: Mode::Chrooted {
                packages: "/var/cache/it's".into(),
            },
            commands: vec![("a test".into(), "echo 'a' && exit 3".into())],
        };
        let s = script(0, &w);
        // Bounded by the appliance's timeout, the guest's shell chrooted.
        assert!(
            s.contains(&format!(
                "then timeout -k 30 {TOOL_TIMEOUT_SECS} chroot \"$r\" /bin/sh -c \"$1\";"
            )),
            "{s}"
        );
        assert!(
            s.contains("else chroot \"$r\" /bin/sh -c \"$1\"; fi; }"),
            "{s}"
        );
        assert!(s.contains(r"'/var/cache/it'\''s'"), "{s}");
        assert!(s.contains(r"run 0 'echo '\''a'\'' && exit 3'"), "{s}");
        let a = script(
            1,
            &Work {
                root: "/drive1".into(),
                mode: Mode::Appliance,
                commands: vec![("replay".into(), "tar -c x".into())],
            },
        );
        assert!(a.contains("x() { eval \"$1\"; }"), "{a}");
        assert!(a.contains("run 0 'tar -c x'\n"), "{a}");
        assert!(!a.contains("mount --bind \"$w"), "{a}");
    }
}
