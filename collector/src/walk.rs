//! The one walk over a guest filesystem: every entry is recorded (unless files are off),
//! offered to the analyzers that declared its path, and its content read at most once.

use std::io::Read;

use coldpatch_disk::{FileKind, GuestFs, Meta};

use crate::analyzer::{Analyzer, Offer};
use crate::hashpool::{HashPool, Hashed};
use crate::model::{FileRecord, FileType, Inventory, Unknown};

/// Limits on what a hostile filesystem can make the walk do.
#[derive(Debug, Clone)]
pub struct WalkLimits {
    pub max_entries: u64,
    pub max_dir_entries: usize,
    pub max_depth: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_entries: 20_000_000,
            max_dir_entries: 1_000_000,
            max_depth: 512,
        }
    }
}

/// What the walk does besides recording every entry (packages-only scans do not walk;
/// see [`targeted`]).
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub hash: bool,
}

pub fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::File,
        FileKind::Dir => FileType::Dir,
        FileKind::Symlink => FileType::Symlink,
        FileKind::CharDev => FileType::Char,
        FileKind::BlockDev => FileType::Block,
        FileKind::Fifo => FileType::Fifo,
        FileKind::Socket => FileType::Socket,
    }
}

fn unknown(inv: &mut Inventory, path: &str, analyzer: &str, reason: impl ToString) {
    inv.unknowns.push(Unknown {
        path: path.to_string(),
        analyzer: analyzer.to_string(),
        reason: reason.to_string(),
    });
}

/// Called every [`PROGRESS_EVERY`] entries with (entries so far, bytes hashed so far).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);
pub const PROGRESS_EVERY: u64 = 2048;

/// Walks the whole filesystem. With a [`HashPool`], regular files that no analyzer reads
/// are hashed by its workers; the pool is drained before this returns.
pub fn walk(
    fs: &mut dyn GuestFs,
    analyzers: &mut [Box<dyn Analyzer>],
    opts: WalkOptions,
    limits: &WalkLimits,
    inv: &mut Inventory,
    progress: Progress<'_>,
    pool: Option<HashPool>,
) {
    let mut stack: Vec<(Vec<u8>, usize)> = vec![(b"/".to_vec(), 0)];
    let mut wanted_links: Vec<(String, Vec<usize>)> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut content: Vec<u8> = Vec::new();
    let mut entries: u64 = 0;
    let bulk = if opts.hash { fs.bulk_sha256() } else { None };
    let mut subdirs_cut = false;
    // Directory inodes entered so far (where the backend knows them).
    let mut entered: std::collections::HashSet<u64> = std::collections::HashSet::new();
    // Record indexes of the files handed to the hash pool.
    let mut submitted: Vec<usize> = Vec::new();
    while let Some((dir, depth)) = stack.pop() {
        if fs.failed() {
            break;
        }
        let dir_str = String::from_utf8_lossy(&dir).into_owned();
        let mut list = match fs.read_dir(&dir) {
            Ok(l) => l,
            Err(e) => {
                unknown(inv, &dir_str, "walk", e.reason);
                continue;
            }
        };
        if list.len() > limits.max_dir_entries {
            unknown(
                inv,
                &dir_str,
                "walk",
                format!(
                    "{} entries; only the first {} read",
                    list.len(),
                    limits.max_dir_entries
                ),
            );
            list.truncate(limits.max_dir_entries);
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut subdirs = Vec::new();
        for e in list {
            entries += 1;
            if entries % PROGRESS_EVERY == 0 {
                progress(entries, inv.stats.bytes_hashed);
            }
            if entries > limits.max_entries {
                unknown(
                    inv,
                    &dir_str,
                    "walk",
                    format!("more than {} entries; walk stopped", limits.max_entries),
                );
                stack.clear();
                subdirs_cut = true;
                break;
            }
            let mut raw = dir.clone();
            if raw.last() != Some(&b'/') {
                raw.push(b'/');
            }
            raw.extend_from_slice(&e.name);
            let path = String::from_utf8_lossy(&raw).into_owned();
            let meta = e.meta;
            let wanting = wanting(analyzers, &path);

            let mut target = None;
            let mut sha = None;
            match meta.kind {
                FileKind::Dir => {
                    if e.ino != 0 && !entered.insert(e.ino) {
                        // A directory's inode met twice is a hard-linked directory: a
                        // loop, or the same tree again. Walked once.
                        unknown(
                            inv,
                            &path,
                            "walk",
                            "a directory already walked under another name (a directory \
                             hard link or loop); not entered again",
                        );
                    } else if depth + 1 > limits.max_depth {
                        unknown(
                            inv,
                            &path,
                            "walk",
                            format!("deeper than {} levels; not entered", limits.max_depth),
                        );
                    } else {
                        subdirs.push(raw.clone());
                    }
                    offer(analyzers, &wanting, &path, &meta, None, inv);
                }
                FileKind::Symlink => {
                    match fs.read_link(&raw) {
                        Ok(t) => target = Some(String::from_utf8_lossy(&t).into_owned()),
                        Err(err) => unknown(inv, &path, "walk", err.reason),
                    }
                    if !wanting.is_empty() {
                        wanted_links.push((path.clone(), wanting));
                    }
                }
                FileKind::File => {
                    let need_content: Vec<usize> = wanting
                        .iter()
                        .copied()
                        .filter(|&i| analyzers[i].wants_content())
                        .collect();
                    let max = need_content
                        .iter()
                        .map(|&i| analyzers[i].max_bytes())
                        .max()
                        .unwrap_or(0);
                    if !need_content.is_empty() && meta.size <= max {
                        match read_all(fs, &raw, max, &mut content) {
                            Ok(()) => {
                                if opts.hash {
                                    sha = Some(coldpatch_disk::hash::sha256_bytes(&content));
                                    inv.stats.bytes_hashed += content.len() as u64;
                                }
                                offer(analyzers, &wanting, &path, &meta, Some(&content), inv);
                            }
                            Err(reason) => unknown(inv, &path, "walk", reason),
                        }
                    } else {
                        for &i in &need_content {
                            unknown(
                                inv,
                                &path,
                                analyzers[i].name(),
                                format!(
                                    "{} bytes exceeds the analyzer's limit of {}",
                                    meta.size,
                                    analyzers[i].max_bytes()
                                ),
                            );
                        }
                        let rest: Vec<usize> = wanting
                            .iter()
                            .copied()
                            .filter(|i| !need_content.contains(i))
                            .collect();
                        offer(analyzers, &rest, &path, &meta, None, inv);
                        if let Some(h) = bulk.as_ref().and_then(|b| b.get(&raw)) {
                            sha = Some(h.clone());
                            inv.stats.bytes_hashed += meta.size;
                        } else if let (true, Some(p)) = (opts.hash && e.ino != 0, pool.as_ref()) {
                            p.submit(inv.files.len(), e.ino);
                            submitted.push(inv.files.len());
                        } else if opts.hash {
                            match hash_stream(fs, &raw, e.ino, &mut buf) {
                                Ok((h, n)) => {
                                    sha = Some(h);
                                    inv.stats.bytes_hashed += n;
                                }
                                Err(reason) => unknown(inv, &path, "walk", reason),
                            }
                        }
                    }
                }
                _ => offer(analyzers, &wanting, &path, &meta, None, inv),
            }
            security_facts(inv, &path, &meta);
            inv.files.push(FileRecord {
                path,
                kind: file_type(meta.kind),
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                size: meta.size,
                mtime: meta.mtime,
                ctime: meta.ctime,
                target,
                sha256: sha,
            });
        }
        if subdirs_cut {
            break;
        }
        // Reverse so that the smallest name is walked first.
        for d in subdirs.into_iter().rev() {
            stack.push((d, depth + 1));
        }
    }
    inv.stats.entries = entries;

    // Symlinked paths an analyzer asked for (e.g. /etc/os-release -> ../usr/lib/os-release)
    // are resolved inside the guest, never on the host.
    for (path, wanting) in wanted_links {
        offer_resolved(fs, analyzers, &wanting, &path, inv);
    }
    if let Some(pool) = pool {
        let mut hashed = vec![false; inv.files.len()];
        for o in pool.drain() {
            let Some(rec) = inv.files.get_mut(o.index) else {
                continue;
            };
            hashed[o.index] = true;
            let path = rec.path.clone();
            match o.result {
                Hashed::Done(h, n) => {
                    rec.sha256 = Some(h);
                    inv.stats.bytes_hashed += n;
                }
                Hashed::Failed(reason) => unknown(inv, &path, "walk", reason),
                Hashed::ByPath => match hash_stream(fs, path.as_bytes(), 0, &mut buf) {
                    Ok((h, n)) => {
                        inv.files[o.index].sha256 = Some(h);
                        inv.stats.bytes_hashed += n;
                    }
                    Err(reason) => unknown(inv, &path, "walk", reason),
                },
            }
        }
        let missing: Vec<String> = submitted
            .into_iter()
            .filter(|&i| !hashed[i])
            .map(|i| inv.files[i].path.clone())
            .collect();
        for path in missing {
            unknown(
                inv,
                &path,
                "walk",
                "not hashed: the hashing workers stopped",
            );
        }
    }
    inv.files.sort_by(|a, b| a.path.cmp(&b.path));
}

/// Packages-only mode: no walk at all. Each analyzer's declared paths are looked up
/// directly (resolving guest symlinks inside the guest), which is what makes declaring
/// paths as data worth it: a handful of reads instead of every inode.
pub fn targeted(fs: &mut dyn GuestFs, analyzers: &mut [Box<dyn Analyzer>], inv: &mut Inventory) {
    use crate::analyzer::PathPattern;
    let mut seen = std::collections::BTreeSet::new();
    let mut paths: Vec<String> = Vec::new();
    for a in analyzers.iter() {
        for p in a.patterns() {
            match *p {
                PathPattern::Exact(path) => paths.push(path.to_string()),
                PathPattern::Child(dir, prefix) => match fs.read_dir(dir.as_bytes()) {
                    Ok(entries) => {
                        for e in entries {
                            if e.name.starts_with(prefix.as_bytes()) {
                                paths.push(format!("{dir}/{}", String::from_utf8_lossy(&e.name)));
                            }
                        }
                    }
                    Err(e) if e.not_found => {}
                    Err(e) => unknown(inv, dir, a.name(), e.reason),
                },
            }
        }
    }
    for path in paths {
        if !seen.insert(path.clone()) || fs.failed() {
            continue;
        }
        let wanting = wanting(analyzers, &path);
        offer_resolved(fs, analyzers, &wanting, &path, inv);
    }
}

/// Offers a path looked up by name, resolving guest symlinks inside the guest; a missing
/// path is not a problem (most declared paths exist only on some systems).
fn offer_resolved(
    fs: &mut dyn GuestFs,
    analyzers: &mut [Box<dyn Analyzer>],
    wanting: &[usize],
    path: &str,
    inv: &mut Inventory,
) {
    let meta = match fs.stat_resolved(path.as_bytes()) {
        Ok(m) => m,
        Err(e) if e.not_found => return,
        Err(e) => return unknown(inv, path, "walk", e.reason),
    };
    if meta.kind != FileKind::File {
        return offer(analyzers, wanting, path, &meta, None, inv);
    }
    let max = wanting
        .iter()
        .map(|&i| analyzers[i].max_bytes())
        .max()
        .unwrap_or(0);
    match fs.read_resolved(path.as_bytes(), max) {
        Ok(data) => offer(analyzers, wanting, path, &meta, Some(&data), inv),
        Err(e) => unknown(inv, path, "walk", e.reason),
    }
}

/// Indexes of the analyzers that declared `path`.
fn wanting(analyzers: &[Box<dyn Analyzer>], path: &str) -> Vec<usize> {
    analyzers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.wants(path))
        .map(|(i, _)| i)
        .collect()
}

fn offer(
    analyzers: &mut [Box<dyn Analyzer>],
    wanting: &[usize],
    path: &str,
    meta: &Meta,
    data: Option<&[u8]>,
    inv: &mut Inventory,
) {
    for &i in wanting {
        let a = &mut analyzers[i];
        let data = if a.wants_content() { data } else { None };
        if a.wants_content() && data.is_none() && meta.kind == FileKind::File {
            continue;
        }
        if let Err(reason) = a.analyze(&Offer { path, meta, data }, inv) {
            unknown(inv, path, a.name(), reason);
        }
    }
}

fn read_all(fs: &mut dyn GuestFs, path: &[u8], max: u64, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let mut r = fs.open(path).map_err(|e| e.reason)?;
    r.by_ref()
        .take(max)
        .read_to_end(out)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// SHA-256 of a regular file, opened by inode number where the walk knows it and the
/// backend accepts it, else by path.
pub(crate) fn hash_stream(
    fs: &mut dyn GuestFs,
    path: &[u8],
    ino: u64,
    buf: &mut [u8],
) -> Result<(String, u64), String> {
    if ino != 0 {
        if let Some(r) = fs.open_ino(ino) {
            return digest(r.map_err(|e| e.reason)?, buf);
        }
    }
    digest(fs.open(path).map_err(|e| e.reason)?, buf)
}

/// SHA-256 and length of everything a reader yields.
pub(crate) fn digest(r: impl Read, buf: &mut [u8]) -> Result<(String, u64), String> {
    coldpatch_disk::hash::sha256_reader(r, buf, None).map_err(|e| e.to_string())
}

fn security_facts(inv: &mut Inventory, path: &str, meta: &Meta) {
    let s = &mut inv.security;
    if meta.kind == FileKind::File {
        if meta.mode & 0o4000 != 0 {
            s.setuid.push(path.to_string());
        }
        if meta.mode & 0o2000 != 0 {
            s.setgid.push(path.to_string());
        }
    }
    let sticky_dir = meta.kind == FileKind::Dir && meta.mode & 0o1000 != 0;
    if matches!(meta.kind, FileKind::File | FileKind::Dir) && meta.mode & 0o002 != 0 && !sticky_dir
    {
        s.world_writable.push(path.to_string());
    }
    if path.starts_with("/root/.ssh/") {
        s.root_ssh.push(path.to_string());
    }
    if meta.kind == FileKind::File
        && (path.ends_with("/.ssh/authorized_keys") || path.ends_with("/.ssh/authorized_keys2"))
    {
        s.authorized_keys.push(path.to_string());
    }
}
