//! Patch equivalent images once: the guest's package tool runs on one image of a group
//! that shares a plan (the reference), and its change set, read natively from the
//! reference's overlay, is replayed onto the others without running the tool there.
//!
//! The change set is the difference between the reference's file lists before and after
//! (`ChangeSet::between`): every path created, removed, or changed in type, mode, owner,
//! link target, size, content (SHA-256) or, but for a directory, modification time. It may
//! be replayed onto another image only if that image's pre-patch entry equals the
//! reference's on every path of the set and on every path of the package database, and
//! every directory above a path of the set is a directory there (or one the set makes)
//! (`ChangeSet::applies_to`). Files the set does not touch (hostname, machine-id, ssh host
//! keys, logs the tool did not write) may differ freely.
//!
//! In the appliance (`script`) the set is applied with tar: the paths to remove are
//! removed, then the reference's after-state of every written path is read from the
//! reference (mounted read-only by then) by the appliance's tar and unpacked by the
//! guest's own tar chrooted into the image, with modes, owners, times and extended
//! attributes. The chroot keeps every write inside that guest, as it does for dpkg.
//!
//! Nothing of this is trusted: a replayed image is verified like one the tool patched,
//! and also by `ChangeSet::check` — every path of the set as the reference left it, and
//! every other path as the image had it. Whatever fails is patched again with the tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coldpatch_collector::{CollectOptions, FileRecord, FileType};
use coldpatch_disk::{Disk, OpenOptions};

use crate::appliance::shell_quote;

/// An image's files by path.
pub type Files<'a> = BTreeMap<&'a str, &'a FileRecord>;

pub fn by_path(files: &[FileRecord]) -> Files<'_> {
    files.iter().map(|f| (f.path.as_str(), f)).collect()
}

/// Two entries of one path hold the same thing: type, mode, owner, link target, and for a
/// regular file size and content. With `times`, the modification time of anything but a
/// directory too (dpkg makes every file and symlink it unpacks anew).
fn same(a: &FileRecord, b: &FileRecord, times: bool) -> bool {
    a.kind == b.kind
        && a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.target == b.target
        && (a.kind != FileType::File || (a.size == b.size && a.sha256 == b.sha256))
        && (!times || a.kind == FileType::Dir || a.mtime == b.mtime)
}

/// What the package tool did to the reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Every changed path with the reference's entry after the change; `None`: removed.
    pub paths: BTreeMap<String, Option<FileRecord>>,
}

/// The differences found, of which at most [`Wrongs::SAY`] are named.
#[derive(Default)]
struct Wrongs {
    said: Vec<String>,
    more: usize,
}

impl Wrongs {
    const SAY: usize = 5;

    fn say(&mut self, what: String) {
        if self.said.len() < Self::SAY {
            self.said.push(what);
        } else {
            self.more += 1;
        }
    }

    fn result(mut self) -> Result<(), String> {
        if self.said.is_empty() {
            return Ok(());
        }
        if self.more > 0 {
            self.said.push(format!("and {} more", self.more));
        }
        Err(self.said.join("; "))
    }
}

/// Directories above `path` ("/a/b/c" -> "/a", "/a/b").
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .filter(|a| !a.is_empty())
}

impl ChangeSet {
    pub fn between(before: &Files<'_>, after: &Files<'_>) -> ChangeSet {
        let mut paths = BTreeMap::new();
        for (p, a) in after {
            if before.get(p).is_none_or(|b| !same(b, a, true)) {
                paths.insert((*p).to_string(), Some((*a).clone()));
            }
        }
        for p in before.keys() {
            if !after.contains_key(p) {
                paths.insert((*p).to_string(), None);
            }
        }
        ChangeSet { paths }
    }

    pub fn written(&self) -> usize {
        self.paths.values().filter(|a| a.is_some()).count()
    }

    pub fn removed(&self) -> usize {
        self.paths.values().filter(|a| a.is_none()).count()
    }

    /// Whether this set, made on a reference whose files were `reference` before the
    /// change, may be replayed onto an image whose files are `candidate`; the error says
    /// why not. `database` is the package tool's database directory (`/var/lib/dpkg`).
    pub fn applies_to(
        &self,
        reference: &Files<'_>,
        candidate: &Files<'_>,
        database: &str,
    ) -> Result<(), String> {
        let mut wrong = Wrongs::default();
        for (p, after) in &self.paths {
            // A name the walk could not keep exactly cannot be named to tar.
            let garbled = |s: &str| s.contains('\u{fffd}') || s.contains('\0');
            if garbled(p)
                || after
                    .as_ref()
                    .and_then(|a| a.target.as_deref())
                    .is_some_and(garbled)
            {
                wrong.say(format!("{p}: a name that is not valid UTF-8"));
                continue;
            }
            match (reference.get(p.as_str()), candidate.get(p.as_str())) {
                (None, None) => {}
                (Some(r), Some(c)) if same(r, c, false) => {}
                (Some(_), Some(_)) => wrong.say(format!("{p} differs")),
                (Some(_), None) => wrong.say(format!("{p} is missing")),
                (None, Some(_)) => wrong.say(format!("{p} exists")),
            }
            for a in ancestors(p) {
                let made = matches!(self.paths.get(a), Some(Some(d)) if d.kind == FileType::Dir);
                match candidate.get(a) {
                    Some(d) if d.kind == FileType::Dir => {}
                    None if made => {}
                    _ => {
                        wrong.say(format!("{a} is not a directory"));
                        break;
                    }
                }
            }
        }
        let db = format!("{database}/");
        let under = |m: &Files<'_>| -> Vec<String> {
            m.range(database..)
                .take_while(|(p, _)| **p == database || p.starts_with(&db))
                .map(|(p, _)| (*p).to_string())
                .collect()
        };
        let mut names = under(reference);
        names.extend(under(candidate));
        names.sort();
        names.dedup();
        for p in names {
            if self.paths.contains_key(&p) {
                continue;
            }
            match (reference.get(p.as_str()), candidate.get(p.as_str())) {
                (Some(r), Some(c)) if same(r, c, false) => {}
                _ => wrong.say(format!("the package database differs at {p}")),
            }
        }
        wrong.result()
    }

    /// What is wrong with an image this set was replayed onto: every path of the set must
    /// be as the reference left it, every other path as the image had it before.
    pub fn check(&self, before: &Files<'_>, after: &Files<'_>) -> Result<(), String> {
        let mut wrong = Wrongs::default();
        for (p, want) in &self.paths {
            match (want, after.get(p.as_str())) {
                (None, None) => {}
                (Some(w), Some(h)) if same(w, h, true) => {}
                (None, Some(_)) => wrong.say(format!("{p} was not removed")),
                (Some(_), None) => wrong.say(format!("{p} is missing")),
                (Some(_), Some(_)) => wrong.say(format!("{p} differs from the reference's")),
            }
        }
        for (p, b) in before {
            if self.paths.contains_key(*p) {
                continue;
            }
            match after.get(p) {
                Some(a) if same(b, a, true) => {}
                Some(_) => wrong.say(format!("{p} changed outside the set")),
                None => wrong.say(format!("{p} disappeared")),
            }
        }
        for p in after.keys() {
            if !before.contains_key(p) && !self.paths.contains_key(*p) {
                wrong.say(format!("{p} appeared outside the set"));
            }
        }
        wrong.result()
    }

    /// The lists the replay script reads, NUL-separated paths relative to the guest's
    /// root: non-directories to remove and directories to remove (deepest first: what the
    /// set removes, and what changes type), and every path to write from the reference
    /// (parents first).
    pub fn lists(&self, candidate: &Files<'_>) -> Lists {
        let mut l = Lists::default();
        for (p, after) in self.paths.iter().rev() {
            let Some(have) = candidate.get(p.as_str()) else {
                continue;
            };
            if after.as_ref().is_none_or(|a| a.kind != have.kind) {
                let to = if have.kind == FileType::Dir {
                    &mut l.remove_dirs
                } else {
                    &mut l.remove_files
                };
                to.extend_from_slice(p.trim_start_matches('/').as_bytes());
                to.push(0);
            }
        }
        for (p, after) in &self.paths {
            if after.is_some() && p != "/" {
                l.write
                    .extend_from_slice(p.trim_start_matches('/').as_bytes());
                l.write.push(0);
            }
        }
        l
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lists {
    pub remove_files: Vec<u8>,
    pub remove_dirs: Vec<u8>,
    pub write: Vec<u8>,
}

/// The appliance script that freezes the guest mounted at `root` on drive `dev`: every
/// filesystem mounted under it is remounted read-only, deepest first (which writes its
/// journal out and marks it clean), then the drive is flushed, which the writeback cache
/// mode passes on to the overlay file.
pub fn freeze(root: &str, dev: &str) -> String {
    format!(
        "r=\"$root\"{root}\n\
         awk -v r=\"$r\" '$2 == r || index($2, r \"/\") == 1 {{ print $2 }}' /proc/self/mounts | sort -r | \
         {{ while IFS= read -r m; do mount -o remount,ro \"$m\" || exit 1; done; }} || exit 1\n\
         sync && sync {dev}\n",
        root = shell_quote(root),
        dev = shell_quote(dev),
    )
}

/// The files of a frozen reference, read natively from its overlay while the appliance
/// holds it (qemu's write lock is ours: `force`). Only a root the collector reads natively
/// (ext) is replayed, so this never starts an appliance of its own.
pub fn read(overlay: &Path, roots: &[PathBuf]) -> Result<Vec<FileRecord>, String> {
    let opts = CollectOptions {
        open: OpenOptions {
            image_roots: roots.to_vec(),
            force: true,
            ..OpenOptions::default()
        },
        guestfs: false,
        ..CollectOptions::default()
    };
    let disk = Disk::open(overlay, &opts.open).map_err(|e| e.to_string())?;
    coldpatch_collector::collect_disk(&disk, &opts, &mut |_, _| {})
        .map(|inv| inv.files)
        .map_err(|e| e.to_string())
}

/// The appliance file names of job `n`'s lists (`dir`: the appliance's work directory).
pub fn list_files(dir: &str, n: usize) -> [String; 3] {
    [
        format!("{dir}/rmfiles{n}"),
        format!("{dir}/rmdirs{n}"),
        format!("{dir}/write{n}"),
    ]
}

/// The replay command for the image mounted at `root` from the reference mounted
/// (read-only) at `reference`, both appliance paths, run by the appliance's shell with
/// `$root` the daemon's sysroot. It reads job `n`'s lists from `dir`.
pub fn command(n: usize, dir: &str, root: &str, reference: &str) -> String {
    let [rf, rd, w] = list_files(dir, n);
    let (r, src) = (shell_quote(root), shell_quote(reference));
    let tar = "--null --no-recursion --numeric-owner --xattrs --xattrs-include='*'";
    format!(
        "chroot \"$root\"{r} xargs -0 -r rm -f -- < \"$root\"{rf} && \
         chroot \"$root\"{r} xargs -0 -r rmdir -- < \"$root\"{rd} && \
         tar -C \"$root\"{src} {tar} -T \"$root\"{w} -cf - | \
         chroot \"$root\"{r} tar {tar} -xpf - -C /",
        rf = shell_quote(&rf),
        rd = shell_quote(&rd),
        w = shell_quote(&w),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, kind: FileType, sha: &str) -> FileRecord {
        FileRecord {
            path: path.into(),
            kind,
            mode: if kind == FileType::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: sha.len() as u64,
            mtime: 1,
            ctime: None,
            target: None,
            sha256: (kind == FileType::File).then(|| sha.to_string()),
        }
    }

    fn d(path: &str) -> FileRecord {
        f(path, FileType::Dir, "")
    }

    /// Why `set`, made on `b`, does not apply to `c`.
    fn refusal(set: &ChangeSet, b: &[FileRecord], c: &[FileRecord]) -> String {
        set.applies_to(&by_path(b), &by_path(c), "/var/lib/dpkg")
            .expect_err("refused")
    }

    fn base() -> Vec<FileRecord> {
        vec![
            d("/"),
            d("/etc"),
            f("/etc/hostname", FileType::File, "a"),
            d("/usr"),
            d("/usr/lib"),
            f("/usr/lib/libc.so", FileType::File, "old"),
            f("/usr/lib/gone", FileType::File, "x"),
            d("/var"),
            d("/var/lib"),
            d("/var/lib/dpkg"),
            f("/var/lib/dpkg/status", FileType::File, "s1"),
            f("/var/lib/dpkg/diversions", FileType::File, ""),
        ]
    }

    fn patched(v: &[FileRecord]) -> Vec<FileRecord> {
        let mut v: Vec<FileRecord> = v
            .iter()
            .filter(|x| x.path != "/usr/lib/gone")
            .cloned()
            .collect();
        for x in &mut v {
            if x.path == "/usr/lib/libc.so" {
                x.sha256 = Some("new".into());
            }
            if x.path == "/var/lib/dpkg/status" {
                x.sha256 = Some("s2".into());
            }
        }
        v.push(d("/usr/lib/new"));
        v.push(f("/usr/lib/new/mod.so", FileType::File, "m"));
        v
    }

    #[test]
    fn the_set_is_what_was_created_changed_and_removed() {
        let (b, a) = (base(), patched(&base()));
        let set = ChangeSet::between(&by_path(&b), &by_path(&a));
        let names: Vec<&str> = set.paths.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "/usr/lib/gone",
                "/usr/lib/libc.so",
                "/usr/lib/new",
                "/usr/lib/new/mod.so",
                "/var/lib/dpkg/status"
            ]
        );
        assert_eq!((set.written(), set.removed()), (4, 1));
        // Only a file's time: still a change (the reference's time is the after-state).
        let mut t = b.clone();
        t[2].mtime = 9;
        assert_eq!(
            ChangeSet::between(&by_path(&b), &by_path(&t))
                .paths
                .keys()
                .collect::<Vec<_>>(),
            ["/etc/hostname"]
        );
    }

    #[test]
    fn host_specific_files_outside_the_set_may_differ_but_not_the_set_or_the_database() {
        let (b, a) = (base(), patched(&base()));
        let set = ChangeSet::between(&by_path(&b), &by_path(&a));
        let mut other = b.clone();
        other[2].sha256 = Some("another host".into());
        assert_eq!(
            set.applies_to(&by_path(&b), &by_path(&other), "/var/lib/dpkg"),
            Ok(())
        );

        let mut changed = b.clone();
        changed[5].sha256 = Some("locally modified".into());
        let why = refusal(&set, &b, &changed);
        assert!(why.contains("/usr/lib/libc.so differs"), "{why}");

        let mut db = b.clone();
        db[11].sha256 = Some("a diversion".into());
        let why = refusal(&set, &b, &db);
        assert!(
            why.contains("package database differs at /var/lib/dpkg/diversions"),
            "{why}"
        );

        let missing: Vec<FileRecord> = b
            .iter()
            .filter(|x| x.path != "/usr/lib/gone")
            .cloned()
            .collect();
        let why = refusal(&set, &b, &missing);
        assert!(why.contains("/usr/lib/gone is missing"), "{why}");
    }

    #[test]
    fn a_symlinked_directory_above_a_written_path_refuses() {
        let (b, a) = (base(), patched(&base()));
        let set = ChangeSet::between(&by_path(&b), &by_path(&a));
        let mut linked = b.clone();
        linked[4] = FileRecord {
            target: Some("/".into()),
            ..f("/usr/lib", FileType::Symlink, "")
        };
        let why = refusal(&set, &b, &linked);
        assert!(why.contains("/usr/lib is not a directory"), "{why}");
    }

    #[test]
    fn the_check_wants_the_set_as_the_reference_left_it_and_nothing_else_changed() {
        let (b, a) = (base(), patched(&base()));
        let set = ChangeSet::between(&by_path(&b), &by_path(&a));
        let mut host = b.clone();
        host[2].sha256 = Some("host b".into());
        let mut good = patched(&host);
        assert_eq!(set.check(&by_path(&host), &by_path(&good)), Ok(()));

        good[2].sha256 = Some("touched".into());
        let why = set
            .check(&by_path(&host), &by_path(&good))
            .expect_err("refused");
        assert!(
            why.contains("/etc/hostname changed outside the set"),
            "{why}"
        );

        let mut stale = patched(&host);
        for x in &mut stale {
            if x.path == "/usr/lib/libc.so" {
                x.sha256 = Some("old".into());
            }
        }
        stale.push(f("/usr/lib/gone", FileType::File, "x"));
        let why = set
            .check(&by_path(&host), &by_path(&stale))
            .expect_err("refused");
        assert!(
            why.contains("/usr/lib/libc.so differs from the reference's"),
            "{why}"
        );
        assert!(why.contains("/usr/lib/gone was not removed"), "{why}");
    }

    #[test]
    fn lists_remove_deepest_first_and_write_parents_first() {
        let b = base();
        let mut a = patched(&b);
        // A file that becomes a directory is removed first, then written.
        a.retain(|x| x.path != "/etc/hostname");
        a.push(d("/etc/hostname"));
        let set = ChangeSet::between(&by_path(&b), &by_path(&a));
        let l = set.lists(&by_path(&b));
        let split = |v: &[u8]| -> Vec<String> {
            v.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        assert_eq!(split(&l.remove_files), ["usr/lib/gone", "etc/hostname"]);
        assert!(l.remove_dirs.is_empty());
        assert_eq!(
            split(&l.write),
            [
                "etc/hostname",
                "usr/lib/libc.so",
                "usr/lib/new",
                "usr/lib/new/mod.so",
                "var/lib/dpkg/status"
            ]
        );
    }

    #[test]
    fn the_command_reads_its_lists_and_unpacks_chrooted() {
        let c = command(3, "/coldpatch", "/drive3", "/drive0");
        assert!(
            c.contains(
                "chroot \"$root\"'/drive3' xargs -0 -r rm -f -- < \"$root\"'/coldpatch/rmfiles3'"
            ),
            "{c}"
        );
        assert!(c.contains("tar -C \"$root\"'/drive0' "), "{c}");
        assert!(c.ends_with("chroot \"$root\"'/drive3' tar --null --no-recursion --numeric-owner --xattrs --xattrs-include='*' -xpf - -C /"), "{c}");
    }
}
