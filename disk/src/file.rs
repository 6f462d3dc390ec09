//! A host file opened read-only, with positioned reads and a shared byte counter.
//!
//! The counter lets benchmarks and `collect` report how many image bytes a scan read.
//!
//! A file is opened with `O_NONBLOCK` and checked on the open descriptor, so a FIFO, a
//! socket or a character device named as an image or backing file is refused at once
//! instead of blocking the open (a FIFO without a writer) or the first read; a path swapped
//! between a check and the open cannot slip another kind of file in.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{DiskError, Result};

/// Something that can fill a buffer from a byte offset: an image file, a virtual disk,
/// a partition. Reads past the end are errors.
pub trait ReadAt: Send {
    fn size(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// An image held in memory (tests, fuzzing). Reads past the end are errors, as for files.
pub struct MemImage {
    pub data: Vec<u8>,
    pub name: PathBuf,
}

impl ReadAt for MemImage {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.data.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(DiskError::Read {
                image: self.name.clone(),
                offset,
                len: buf.len(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            }),
        }
    }
}

/// Counts bytes read from host files across a whole backing chain.
#[derive(Debug, Clone, Default)]
pub struct ReadCounter(Arc<AtomicU64>);

impl ReadCounter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct ImageFile {
    file: File,
    path: PathBuf,
    size: u64,
    counter: ReadCounter,
}

/// What kind of file [`ImageFile::open`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Regular files only (backing files, and every image a server or worker opens).
    Regular,
    /// Regular files and block devices (an image the CLI's user named).
    RegularOrBlock,
}

impl ImageFile {
    /// Opens `path` if it is a file of a kind `accept` allows, without blocking.
    pub fn open(path: &Path, counter: ReadCounter, accept: Accept) -> Result<Self> {
        let open_err = |source| DiskError::Open {
            image: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(open_err)?;
        let kind = file.metadata().map_err(open_err)?.file_type();
        let size = if kind.is_file() {
            file.metadata().map_err(open_err)?.len()
        } else if kind.is_block_device() && accept == Accept::RegularOrBlock {
            file.seek(SeekFrom::End(0)).map_err(open_err)?
        } else {
            return Err(DiskError::NotAFile {
                image: path.to_path_buf(),
                block: accept == Accept::RegularOrBlock,
            });
        };
        Ok(ImageFile {
            file,
            path: path.to_path_buf(),
            size,
            counter,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a short file is an error.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| DiskError::Read {
                image: self.path.clone(),
                offset,
                len: buf.len(),
                source,
            })?;
        self.counter.add(buf.len() as u64);
        Ok(())
    }
}

impl ReadAt for ImageFile {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_exact_at(offset, buf)
    }
}
