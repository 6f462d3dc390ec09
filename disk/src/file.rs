//! A host file opened read-only, with positioned reads and a shared byte counter.
//!
//! The counter lets benchmarks and `collect` report how many image bytes a scan read.

use std::fs::File;
use std::os::unix::fs::FileExt;
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

impl ImageFile {
    pub fn open(path: &Path, counter: ReadCounter) -> Result<Self> {
        let open_err = |source| DiskError::Open {
            image: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let size = file.metadata().map_err(open_err)?.len();
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
