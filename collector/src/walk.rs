//! The one walk over a guest filesystem: every entry is recorded (unless files are off),
//! offered to the analyzers that declared its path, and its content read at most once.

use std::io::Read;

use coldpatch_disk::{FileKind, GuestFs, Meta};
use sha2::{Digest, Sha256};

use crate::analyzer::{Analyzer, Offer};
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

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub files: bool,
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

pub fn walk(
    fs: &mut dyn GuestFs,
    analyzers: &mut [Box<dyn Analyzer>],
    opts: WalkOptions,
    limits: &WalkLimits,
    inv: &mut Inventory,
    progress: Progress<'_>,
) {
    let mut stack: Vec<(Vec<u8>, usize)> = vec![(b"/".to_vec(), 0)];
    let mut wanted_links: Vec<(String, Vec<usize>)> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut content: Vec<u8> = Vec::new();
    let mut entries: u64 = 0;
    let bulk = if opts.hash { fs.bulk_sha256() } else { None };
    while let Some((dir, depth)) = stack.pop() {
        if fs.failed() {
            return;
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
                return;
            }
            let mut raw = dir.clone();
            if raw.last() != Some(&b'/') {
                raw.push(b'/');
            }
            raw.extend_from_slice(&e.name);
            let path = String::from_utf8_lossy(&raw).into_owned();
            let meta = e.meta;
            let wanting: Vec<usize> = analyzers
                .iter()
                .enumerate()
                .filter(|(_, a)| a.wants(&path))
                .map(|(i, _)| i)
                .collect();

            let mut target = None;
            let mut sha = None;
            match meta.kind {
                FileKind::Dir => {
                    if depth + 1 > limits.max_depth {
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
                                    sha = Some(hex::encode(Sha256::digest(&content)));
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
                        } else if opts.hash {
                            match hash_stream(fs, &raw, &mut buf) {
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
            if opts.files {
                inv.files.push(FileRecord {
                    path,
                    kind: file_type(meta.kind),
                    mode: meta.mode,
                    uid: meta.uid,
                    gid: meta.gid,
                    size: meta.size,
                    mtime: meta.mtime,
                    target,
                    sha256: sha,
                });
            }
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
        let max = wanting
            .iter()
            .map(|&i| analyzers[i].max_bytes())
            .max()
            .unwrap_or(0);
        let meta = match fs.stat_resolved(path.as_bytes()) {
            Ok(m) => m,
            Err(e) if e.not_found => continue,
            Err(e) => {
                unknown(inv, &path, "walk", e.reason);
                continue;
            }
        };
        if meta.kind != FileKind::File {
            offer(analyzers, &wanting, &path, &meta, None, inv);
            continue;
        }
        match fs.read_resolved(path.as_bytes(), max) {
            Ok(data) => offer(analyzers, &wanting, &path, &meta, Some(&data), inv),
            Err(e) => unknown(inv, &path, "walk", e.reason),
        }
    }
    inv.files.sort_by(|a, b| a.path.cmp(&b.path));
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

fn hash_stream(fs: &mut dyn GuestFs, path: &[u8], buf: &mut [u8]) -> Result<(String, u64), String> {
    let mut r = fs.open(path).map_err(|e| e.reason)?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    loop {
        let k = r.read(buf).map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
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
