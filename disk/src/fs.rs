//! The read-only view of a guest filesystem that the collector walks.
//!
//! Paths are guest paths as bytes (names need not be UTF-8). Nothing here touches the
//! host filesystem: symlinks are returned as their target text, and the one call that
//! follows them, [`GuestFs::read_resolved`], resolves them inside the guest.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileKind {
    /// The kind encoded in the type bits (`S_IFMT`) of a Unix mode.
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & 0o170_000 {
            0o040_000 => FileKind::Dir,
            0o120_000 => FileKind::Symlink,
            0o020_000 => FileKind::CharDev,
            0o060_000 => FileKind::BlockDev,
            0o010_000 => FileKind::Fifo,
            0o140_000 => FileKind::Socket,
            _ => FileKind::File,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Inode change time, seconds since the epoch, where the reader knows it (`ext4-view`
    /// does not say).
    pub ctime: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub meta: Meta,
    /// The inode number where the backend knows it cheaply, else 0.
    pub ino: u64,
}

/// A failure on one guest path; the walk records it and goes on.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FsError {
    pub path: String,
    pub reason: String,
    pub not_found: bool,
}

impl FsError {
    pub fn new(path: &[u8], reason: impl std::fmt::Display) -> Self {
        FsError {
            path: String::from_utf8_lossy(path).into_owned(),
            reason: reason.to_string(),
            not_found: false,
        }
    }
}

pub trait GuestFs {
    /// What this is, for messages: "ext4 on partition 3".
    fn describe(&self) -> String;
    /// True once the image underneath failed a read: the walk stops, and the scan fails
    /// with the image's error (see [`crate::Disk::take_error`]).
    fn failed(&self) -> bool {
        false
    }
    /// Entries of a directory, without "." and "..", in on-disk order.
    fn read_dir(&mut self, path: &[u8]) -> Result<Vec<DirEntry>, FsError>;
    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, FsError>;
    /// A reader over a regular file found by the walk (no symlink in the path).
    fn open(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError>;
    /// Metadata of `path` after resolving symlinks inside the guest.
    fn stat_resolved(&mut self, path: &[u8]) -> Result<Meta, FsError>;
    /// The content of `path` after resolving symlinks inside the guest, at most `max` bytes.
    fn read_resolved(&mut self, path: &[u8], max: u64) -> Result<Vec<u8>, FsError> {
        let meta = self.stat_resolved(path)?;
        if meta.kind != FileKind::File {
            return Err(FsError::new(path, "not a regular file"));
        }
        if meta.size > max {
            return Err(FsError::new(
                path,
                format!("{} bytes exceeds the limit of {max}", meta.size),
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        self.open_resolved(path)?
            .take(max)
            .read_to_end(&mut out)
            .map_err(|e| FsError::new(path, e))?;
        Ok(out)
    }
    /// SHA-256 of every regular file at once, where the backend can compute it faster than
    /// streaming each file (libguestfs hashes inside the appliance). Missing paths are
    /// streamed as usual.
    fn bulk_sha256(&mut self) -> Option<std::collections::HashMap<Vec<u8>, String>> {
        None
    }
    /// Opens a regular file by the inode number from a [`DirEntry`], where the backend can
    /// (`None`: this inode needs opening by path).
    fn open_ino(&mut self, _ino: u64) -> Option<Result<Box<dyn Read + '_>, FsError>> {
        None
    }
    /// Opens `path` following guest symlinks.
    fn open_resolved(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError>;
}
