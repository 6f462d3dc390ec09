//! A [`GuestFs`] over a read-only libguestfs appliance: the fallback for roots on LVM, XFS
//! or btrfs. One appliance per image: two images may carry volume groups of the same name,
//! which one appliance could not tell apart.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::DiskError;
use crate::fs::{DirEntry, FileKind, FsError, GuestFs, Meta};
use crate::guestfs::{GuestfsError, Session, Stat};

/// Names per lstatnslist call, well under the protocol's message limit.
const STAT_BATCH: usize = 500;

pub struct GuestfsFs {
    s: Session,
    label: String,
}

fn gerr(image: &Path, source: GuestfsError) -> DiskError {
    DiskError::Guestfs {
        image: image.to_path_buf(),
        source,
    }
}

impl GuestfsFs {
    /// Launches an appliance on `image` (read-only, format given), inspects it and mounts
    /// the first operating system's filesystems read-only.
    pub fn open(image: &Path, format: &str) -> Result<GuestfsFs, DiskError> {
        let mut s = Session::new().map_err(|e| gerr(image, e))?;
        s.add_drive_ro(image, format).map_err(|e| gerr(image, e))?;
        s.launch().map_err(|e| gerr(image, e))?;
        let roots = s.inspect_os().map_err(|e| gerr(image, e))?;
        let Some(root) = roots.first().cloned() else {
            return Err(DiskError::NoFilesystem {
                image: image.to_path_buf(),
                found: "libguestfs inspection found no operating system".into(),
            });
        };
        let mut mps = s
            .inspect_get_mountpoints(&root)
            .map_err(|e| gerr(image, e))?;
        // Parents before children: "/" then "/boot" then "/boot/efi".
        mps.sort_by_key(|(mp, _)| mp.len());
        for (mp, dev) in &mps {
            if let Err(e) = s.mount_ro(dev, mp) {
                if mp == "/" {
                    return Err(gerr(image, e));
                }
            }
        }
        Ok(GuestfsFs {
            s,
            label: format!("{root} through libguestfs"),
        })
    }
}

fn path_str(p: &[u8]) -> Result<&str, FsError> {
    std::str::from_utf8(p)
        .map_err(|_| FsError::new(p, "non-UTF-8 path (libguestfs takes C strings)"))
}

fn meta(st: &Stat) -> Meta {
    let kind = FileKind::from_mode(st.mode);
    Meta {
        kind,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        mtime: st.mtime,
        ctime: Some(st.ctime),
    }
}

fn ferr(path: &[u8], e: GuestfsError) -> FsError {
    let not_found = e.message.contains("No such file");
    let mut f = FsError::new(path, e);
    f.not_found = not_found;
    f
}

struct PreadReader<'a> {
    s: &'a mut Session,
    path: String,
    offset: u64,
}

impl Read for PreadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let data = self
            .s
            .pread(&self.path, buf.len(), self.offset)
            .map_err(std::io::Error::other)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

impl GuestFs for GuestfsFs {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn read_dir(&mut self, path: &[u8]) -> Result<Vec<DirEntry>, FsError> {
        let dir = path_str(path)?;
        let names = self.s.ls(dir).map_err(|e| ferr(path, e))?;
        let mut out = Vec::with_capacity(names.len());
        for batch in names.chunks(STAT_BATCH) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            let stats = self.s.lstatnslist(dir, &refs).map_err(|e| ferr(path, e))?;
            for (name, st) in batch.iter().zip(stats.iter()) {
                out.push(DirEntry {
                    name: name.as_bytes().to_vec(),
                    meta: meta(st),
                    ino: 0,
                });
            }
        }
        Ok(out)
    }

    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        let p = path_str(path)?;
        self.s
            .readlink(p)
            .map(String::into_bytes)
            .map_err(|e| ferr(path, e))
    }

    fn open(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        let p = path_str(path)?.to_string();
        Ok(Box::new(PreadReader {
            s: &mut self.s,
            path: p,
            offset: 0,
        }))
    }

    fn stat_resolved(&mut self, path: &[u8]) -> Result<Meta, FsError> {
        let p = path_str(path)?;
        self.s
            .stat(p)
            .map(|st| meta(&st))
            .map_err(|e| ferr(path, e))
    }

    fn open_resolved(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        // The daemon resolves the path inside the guest's root, as the guest would.
        self.open(path)
    }

    fn bulk_sha256(&mut self) -> Option<HashMap<Vec<u8>, String>> {
        let dir = tempfile::tempdir().ok()?;
        let out = dir.path().join("sums");
        self.s.sha256_tree("/", &out).ok()?;
        let text = std::fs::read_to_string(&out).ok()?;
        let mut map = HashMap::new();
        for line in text.lines() {
            // "HASH  ./path"; escaped names (a leading backslash) are left to streaming.
            let Some((hash, name)) = line.split_once("  ") else {
                continue;
            };
            if hash.starts_with('\\') {
                continue;
            }
            let name = name.strip_prefix('.').unwrap_or(name);
            map.insert(name.as_bytes().to_vec(), hash.to_string());
        }
        Some(map)
    }
}
