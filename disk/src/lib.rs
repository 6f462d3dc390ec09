//! Opens VM disk images read-only and exposes their filesystems.
//!
//! Flow: [`open::open_image`] detects the format and builds a reader over the whole
//! backing chain; [`partition::read_partitions`] finds the partitions; [`probe::probe`]
//! says what each one holds; [`Disk::open_ext4`] gives a [`fs::GuestFs`] over an ext
//! filesystem. Image bytes are untrusted: every size from a header is checked against a
//! limit before it is used, and nothing here writes to an image.

pub mod bytes;
pub mod cache;
pub mod error;
pub mod ext4;
pub mod ext4raw;
pub mod file;
pub mod fs;
pub mod guestfs;
pub mod guestfs_fs;
pub mod hash;
pub mod lock;
pub mod open;
pub mod partition;
pub mod probe;
pub mod qcow2;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use error::{DiskError, ErrorKind, Result};
pub use file::{ReadAt, ReadCounter};
pub use fs::{DirEntry, FileKind, FsError, GuestFs, Meta};
pub use open::{ChainLink, Format, OpenOptions};
pub use partition::{Partition, TableKind};
pub use probe::FsKind;

use ext4::{DevError, Ext4Fs, PartReader, SharedDev};

/// One partition (or the whole disk) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub partition: Partition,
    pub kind: FsKind,
}

impl Volume {
    pub fn label(&self) -> String {
        if self.partition.number == 0 {
            format!("{} on the whole disk", self.kind.as_str())
        } else {
            format!(
                "{} on partition {}",
                self.kind.as_str(),
                self.partition.number
            )
        }
    }
}

/// An opened image with its partitions probed.
pub struct Disk {
    pub path: PathBuf,
    pub format: Format,
    pub virtual_size: u64,
    pub chain: Vec<ChainLink>,
    pub extensions: Vec<(u32, Vec<u8>)>,
    pub table: TableKind,
    pub volumes: Vec<Volume>,
    counter: ReadCounter,
    dev: SharedDev,
    error: DevError,
}

impl Disk {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Disk> {
        let mut image = open::open_image(path, opts)?;
        let (table, parts) = partition::read_partitions(image.reader.as_mut(), path)?;
        let mut volumes = Vec::with_capacity(parts.len());
        for p in parts {
            let kind = probe::probe(image.reader.as_mut(), p.start, p.size)?;
            volumes.push(Volume { partition: p, kind });
        }
        Ok(Disk {
            path: image.path,
            format: image.format,
            virtual_size: image.virtual_size,
            chain: image.chain,
            extensions: image.extensions,
            table,
            volumes,
            counter: image.counter,
            dev: Arc::new(Mutex::new(Box::new(cache::ChunkCache::new(
                image.reader,
                opts.cache_bytes,
            )))),
            error: DevError::default(),
        })
    }

    /// Bytes read from host files so far, across the whole chain.
    pub fn bytes_read(&self) -> u64 {
        self.counter.get()
    }

    /// A reader over one volume of the shared device, reporting into the shared error slot.
    fn part_reader(&self, vol: &Volume) -> PartReader {
        PartReader {
            dev: Arc::clone(&self.dev),
            start: vol.partition.start,
            size: vol.partition.size,
            error: Arc::clone(&self.error),
        }
    }

    pub fn open_ext4(&self, vol: &Volume) -> Result<Ext4Fs> {
        Ext4Fs::load(self.part_reader(vol), vol.label()).map_err(|source| DiskError::Ext4 {
            image: self.path.clone(),
            partition: vol.partition.number.to_string(),
            source,
        })
    }

    /// The inode-level reader of an ext volume over this image's shared device, if the
    /// filesystem's features allow it. It is `Send`: hashing threads each take one.
    pub fn raw_ext4(&self, vol: &Volume) -> Option<ext4raw::RawExt4> {
        ext4raw::RawExt4::new(self.part_reader(vol))
    }

    /// The ext volume for a whole walk, given its already loaded ext4-view: the fast
    /// inode-level path where the filesystem's features allow it, otherwise ext4-view.
    pub fn ext4_walk(&self, vol: &Volume, slow: Ext4Fs) -> Box<dyn GuestFs> {
        match self.raw_ext4(vol) {
            Some(raw) => Box::new(ext4raw::FastExt4Fs::new(raw, slow)),
            None => Box::new(slow),
        }
    }

    /// The first read error a filesystem met on this image, if any.
    pub fn take_error(&self) -> Option<DiskError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Reads guest-disk bytes (for tests and tools that compare with qemu-img).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut dev = self
            .dev
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dev.read_at(offset, buf)
    }
}
