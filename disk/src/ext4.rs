//! ext2/3/4 through `ext4-view`, read straight from the partition's bytes.

use std::io::Read;
use std::sync::{Arc, Mutex};

use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType, Metadata};

use crate::file::ReadAt;
use crate::fs::{DirEntry, FileKind, FsError, GuestFs, Meta};

pub type SharedDev = Arc<Mutex<Box<dyn ReadAt>>>;
/// The first read error of the device, kept so that a scan can fail with the image's own
/// error instead of reporting each unreadable file as a per-file problem.
pub type DevError = Arc<Mutex<Option<crate::DiskError>>>;

/// A window onto one partition of a shared device.
pub struct PartReader {
    pub dev: SharedDev,
    pub start: u64,
    pub size: u64,
    pub error: DevError,
}

impl Ext4Read for PartReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let end = start_byte
            .checked_add(dst.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or("read past the end of the partition")?;
        let _ = end;
        let mut dev = self.dev.lock().map_err(|_| "device lock poisoned")?;
        if let Err(e) = dev.read_at(self.start + start_byte, dst) {
            let msg = e.to_string();
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
            return Err(msg.into());
        }
        Ok(())
    }
}

pub struct Ext4Fs {
    fs: Ext4,
    label: String,
    error: DevError,
}

impl Ext4Fs {
    pub fn load(reader: PartReader, label: String) -> Result<Ext4Fs, Ext4Error> {
        let error = Arc::clone(&reader.error);
        Ok(Ext4Fs {
            fs: Ext4::load(Box::new(reader))?,
            label,
            error,
        })
    }
}

fn kind(t: FileType) -> FileKind {
    match t {
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        FileType::CharacterDevice => FileKind::CharDev,
        FileType::BlockDevice => FileKind::BlockDev,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        _ => FileKind::File,
    }
}

fn meta(m: &Metadata) -> Meta {
    Meta {
        kind: kind(m.file_type()),
        mode: u32::from(m.mode()) & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        mtime: m.modified().seconds(),
        ctime: None,
    }
}

fn err(path: &[u8], e: Ext4Error) -> FsError {
    let not_found = matches!(e, Ext4Error::NotFound);
    let mut fe = FsError::new(path, e);
    fe.not_found = not_found;
    fe
}

fn ext4_path(path: &[u8]) -> Result<ext4_view::Path<'_>, FsError> {
    ext4_view::Path::try_from(path).map_err(|e| FsError::new(path, e))
}

struct FileReader(ext4_view::File);

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_bytes(buf).map_err(std::io::Error::other)
    }
}

impl GuestFs for Ext4Fs {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn failed(&self) -> bool {
        self.error.lock().map_or(true, |e| e.is_some())
    }

    fn read_dir(&mut self, path: &[u8]) -> Result<Vec<DirEntry>, FsError> {
        let mut out = Vec::new();
        for entry in self
            .fs
            .read_dir(ext4_path(path)?)
            .map_err(|e| err(path, e))?
        {
            let entry = entry.map_err(|e| err(path, e))?;
            let name = entry.file_name();
            let name = name.as_ref();
            if name == b"." || name == b".." {
                continue;
            }
            let m = entry.metadata().map_err(|e| err(path, e))?;
            out.push(DirEntry {
                name: name.to_vec(),
                meta: meta(&m),
                ino: 0,
            });
        }
        Ok(out)
    }

    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        let target = self
            .fs
            .read_link(ext4_path(path)?)
            .map_err(|e| err(path, e))?;
        Ok(target.as_ref().to_vec())
    }

    fn open(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        let f = self.fs.open(ext4_path(path)?).map_err(|e| err(path, e))?;
        Ok(Box::new(FileReader(f)))
    }

    fn stat_resolved(&mut self, path: &[u8]) -> Result<Meta, FsError> {
        let m = self
            .fs
            .metadata(ext4_path(path)?)
            .map_err(|e| err(path, e))?;
        Ok(meta(&m))
    }

    fn open_resolved(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        // ext4-view resolves symlinks within the filesystem (absolute targets from its root).
        self.open(path)
    }
}
