//! Native qcow2 reader: L1/L2 lookup, zero and compressed clusters, backing files.
//!
//! Read-only by construction: the image file is opened read-only and nothing here writes
//! (except `stamp::write`, for files coldpatch made itself). The backing layer is opened by [`crate::open`] with the same opener (depth-limited), so
//! this module only sees it as another [`ReadAt`].

pub mod header;
pub mod stamp;

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

pub use header::{Compression, Header, HeaderError};
pub use stamp::Stamp;

use crate::error::{DiskError, Result};
use std::path::{Path, PathBuf};

use crate::file::ReadAt;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2_COMPRESSED: u64 = 1 << 62;
const L2_ZERO: u64 = 1;
/// At most this many L2 tables are cached (each one cluster); the cache is dropped when full.
const L2_CACHE_TABLES: usize = 64;

pub struct Qcow2 {
    /// The qcow2 file itself (a host file, or memory in tests and fuzzing).
    file: Box<dyn ReadAt>,
    path: PathBuf,
    file_len: u64,
    hdr: Header,
    l1: Vec<u64>,
    l2_cache: HashMap<u64, Arc<Vec<u64>>>,
    backing: Option<Box<dyn ReadAt>>,
    /// The last decompressed cluster, keyed by its L2 entry: ext4 reads 4 KiB blocks out of
    /// 64 KiB clusters, so without this each cluster would be inflated 16 times.
    inflated: Option<(u64, Vec<u8>)>,
    compressed_buf: Vec<u8>,
}

enum Mapping {
    Unallocated,
    Zero,
    Data(u64),
    Compressed(u64),
}

impl Qcow2 {
    /// Reads and validates the header and L1 table. The caller opens the backing file, if
    /// any, and hands it over with [`Qcow2::set_backing`].
    /// `path` names the file in errors.
    pub fn open(mut file: Box<dyn ReadAt>, path: &Path) -> Result<Qcow2> {
        let file_len = file.size();
        let want = usize::try_from(file_len.min(header::HEADER_READ as u64)).unwrap_or(0);
        let mut head = vec![0u8; want];
        file.read_at(0, &mut head)?;
        let hdr = Header::parse(&head, file_len).map_err(|e| header_error(path, e))?;
        let mut raw = vec![0u8; hdr.l1_size as usize * 8];
        file.read_at(hdr.l1_table_offset, &mut raw)?;
        let l1 = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(Qcow2 {
            file,
            path: path.to_path_buf(),
            file_len,
            hdr,
            l1,
            l2_cache: HashMap::new(),
            backing: None,
            inflated: None,
            compressed_buf: Vec::new(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.hdr
    }

    pub fn set_backing(&mut self, backing: Box<dyn ReadAt>) {
        self.backing = Some(backing);
    }

    fn corrupt(&self, what: String) -> DiskError {
        DiskError::Corrupt {
            image: self.path.clone(),
            format: "qcow2",
            what,
        }
    }

    fn l2_table(&mut self, l2_off: u64) -> Result<Arc<Vec<u64>>> {
        if let Some(t) = self.l2_cache.get(&l2_off) {
            return Ok(Arc::clone(t));
        }
        let cs = self.hdr.cluster_size();
        if l2_off % cs != 0 || l2_off.checked_add(cs).is_none_or(|end| end > self.file_len) {
            return Err(self.corrupt(format!(
                "L2 table offset {l2_off} misaligned or past end of file"
            )));
        }
        // cluster_size is at most 2 MiB (checked in the header), so this fits in usize.
        let mut raw = vec![0u8; cs as usize];
        self.file.read_at(l2_off, &mut raw)?;
        let table: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if self.l2_cache.len() >= L2_CACHE_TABLES {
            self.l2_cache.clear();
        }
        let table = Arc::new(table);
        self.l2_cache.insert(l2_off, Arc::clone(&table));
        Ok(table)
    }

    fn map(&mut self, guest: u64) -> Result<Mapping> {
        let cs = self.hdr.cluster_size();
        let cluster = guest / cs;
        let l2_index = cluster % self.hdr.l2_entries();
        let l1_index = cluster / self.hdr.l2_entries();
        let Some(&l1e) = self.l1.get(usize::try_from(l1_index).unwrap_or(usize::MAX)) else {
            return Err(self.corrupt(format!(
                "guest offset {guest} is not covered by the L1 table"
            )));
        };
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            return Ok(Mapping::Unallocated);
        }
        let table = self.l2_table(l2_off)?;
        // l2_index < l2_entries == table.len() by construction.
        let entry = table[l2_index as usize];
        if entry & L2_COMPRESSED != 0 {
            return Ok(Mapping::Compressed(entry & !(L2_COMPRESSED | (1 << 63))));
        }
        let host = entry & OFFSET_MASK;
        if self.hdr.version >= 3 && entry & L2_ZERO != 0 {
            return Ok(Mapping::Zero);
        }
        if host == 0 {
            return Ok(Mapping::Unallocated);
        }
        if host % cs != 0 {
            return Err(self.corrupt(format!("data cluster offset {host} is not cluster-aligned")));
        }
        Ok(Mapping::Data(host))
    }

    fn inflate(&mut self, entry: u64) -> Result<&[u8]> {
        if self.inflated.as_ref().is_some_and(|(e, _)| *e == entry) {
            // Just checked that it is Some.
            return Ok(&self
                .inflated
                .as_ref()
                .map(|(_, d)| d)
                .expect("checked above")[..]);
        }
        let cb = self.hdr.cluster_bits;
        let x = 62 - (cb - 8);
        let host = entry & ((1u64 << x) - 1);
        let extra_sectors = (entry >> x) & ((1u64 << (cb - 8)) - 1);
        let csize = (extra_sectors + 1) * 512 - (host & 511);
        if host >= self.file_len {
            return Err(self.corrupt(format!("compressed cluster at {host} is past end of file")));
        }
        // The last compressed cluster may end exactly at the end of the file.
        let csize = csize.min(self.file_len - host);
        let mut buf = std::mem::take(&mut self.compressed_buf);
        buf.resize(csize as usize, 0);
        self.file.read_at(host, &mut buf)?;
        let cs = self.hdr.cluster_size() as usize;
        let mut out = self.inflated.take().map(|(_, v)| v).unwrap_or_default();
        out.clear();
        out.resize(cs, 0);
        let ok = match self.hdr.compression {
            Compression::Zlib => {
                let mut d = flate2::Decompress::new(false);
                d.decompress(&buf, &mut out, flate2::FlushDecompress::Finish)
                    .is_ok()
                    && d.total_out() as usize == cs
            }
            Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(&buf[..]) {
                Ok(dec) => dec.single_frame().read_exact(&mut out).is_ok(),
                Err(_) => false,
            },
        };
        self.compressed_buf = buf;
        if !ok {
            return Err(self.corrupt(format!(
                "compressed cluster at {host} does not inflate to {cs} bytes"
            )));
        }
        self.inflated = Some((entry, out));
        Ok(&self.inflated.as_ref().map(|(_, d)| d).expect("just set")[..])
    }

    fn read_backing(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let Some(b) = self.backing.as_mut() else {
            buf.fill(0);
            return Ok(());
        };
        // A backing file may be smaller than its overlay; beyond its end reads as zeros.
        let bsize = b.size();
        if offset >= bsize {
            buf.fill(0);
            return Ok(());
        }
        let n = usize::try_from(bsize - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        b.read_at(offset, &mut buf[..n])?;
        buf[n..].fill(0);
        Ok(())
    }
}

impl ReadAt for Qcow2 {
    fn size(&self) -> u64 {
        self.hdr.size
    }

    fn read_at(&mut self, mut offset: u64, mut buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.hdr.size)
        {
            return Err(self.corrupt(format!(
                "read of {} bytes at {offset} past the virtual size {}",
                buf.len(),
                self.hdr.size
            )));
        }
        let cs = self.hdr.cluster_size();
        while !buf.is_empty() {
            let within = offset % cs;
            let n = usize::try_from(cs - within)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let (chunk, rest) = buf.split_at_mut(n);
            match self.map(offset)? {
                Mapping::Unallocated => self.read_backing(offset, chunk)?,
                Mapping::Zero => chunk.fill(0),
                Mapping::Data(host) => self.file.read_at(host + within, chunk)?,
                Mapping::Compressed(entry) => {
                    let data = self.inflate(entry)?;
                    chunk.copy_from_slice(&data[within as usize..within as usize + n]);
                }
            }
            offset += n as u64;
            buf = rest;
        }
        Ok(())
    }
}

pub(crate) fn header_error(image: &Path, e: HeaderError) -> DiskError {
    let image = image.to_path_buf();
    match e {
        HeaderError::Corrupt(what) => DiskError::Corrupt {
            image,
            format: "qcow2",
            what,
        },
        HeaderError::Unsupported(what) => DiskError::Unsupported {
            image,
            what: format!("qcow2 with {what}"),
            hint: "convert it to a plain qcow2 first: qemu-img convert -O qcow2 IMAGE OUT",
        },
        HeaderError::Encrypted => DiskError::Unsupported {
            image,
            what: "an encrypted qcow2".into(),
            hint: "decrypt it first: qemu-img convert --object secret,... -O qcow2 IMAGE OUT",
        },
        HeaderError::Limit(what, limit) => DiskError::Limit { image, what, limit },
    }
}
