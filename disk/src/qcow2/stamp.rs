//! coldpatch's version stamp: a qcow2 header extension naming which version of which image
//! a file holds (its check value, see the catalog), so a copy elsewhere can prove it.
//!
//! The extension has its own type number; qemu keeps header extensions it does not know
//! (it saves them when it opens an image and writes them back whenever it rewrites the
//! header, e.g. on `qemu-img rebase`), and ignores them otherwise. Data: `cpv1`, the
//! version number (u32, big-endian), the 32-byte check value — 40 bytes, a multiple of 8.
//!
//! Written by hand: no crate edits qcow2 header extensions. The writer is only for files
//! coldpatch made itself (version overlays, exports); an original image is never written.
//! It rewrites the extension area and the backing file name inside the header cluster in
//! one write, keeping every other extension byte for byte.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::header::{Header, HeaderError, HEADER_READ};
use super::header_error;
use crate::bytes::{be_u32, be_u64};
use crate::{DiskError, Result};

/// The extension's type number.
pub const EXT_STAMP: u32 = 0xc01d_9a7c;
const TAG: &[u8; 4] = b"cpv1";
const EXT_END: u32 = 0;
/// The header cluster is read and written whole; qcow2 clusters go up to 2 MiB.
const MAX_HEADER_CLUSTER: u64 = 2 << 20;

/// Which version a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub number: u32,
    pub check: [u8; 32],
}

impl Stamp {
    fn encode(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..4].copy_from_slice(TAG);
        b[4..8].copy_from_slice(&self.number.to_be_bytes());
        b[8..].copy_from_slice(&self.check);
        b
    }

    /// The stamp among a file's uninterpreted header extensions ([`crate::Disk`] keeps
    /// them). A malformed one counts as absent: it proves nothing.
    pub fn from_extensions(exts: &[(u32, Vec<u8>)]) -> Option<Stamp> {
        let (_, data) = exts.iter().find(|(ty, _)| *ty == EXT_STAMP)?;
        if data.len() != 40 || &data[..4] != TAG {
            return None;
        }
        let mut check = [0u8; 32];
        check.copy_from_slice(&data[8..40]);
        Some(Stamp {
            number: be_u32(data, 4).ok()?,
            check,
        })
    }

    pub fn check_hex(&self) -> String {
        self.check.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> DiskError {
    DiskError::Corrupt {
        image: path.to_path_buf(),
        format: "qcow2",
        what: what.into(),
    }
}

fn io(path: &Path, source: std::io::Error) -> DiskError {
    DiskError::Open {
        image: path.to_path_buf(),
        source,
    }
}

/// Reads the header cluster of a qcow2 file (at most 2 MiB) and parses the header.
fn header_cluster(path: &Path, f: &mut std::fs::File) -> Result<(Header, Vec<u8>)> {
    let len = f.metadata().map_err(|e| io(path, e))?.len();
    let mut first = vec![0u8; HEADER_READ.min(usize::try_from(len).unwrap_or(HEADER_READ))];
    f.read_exact(&mut first).map_err(|e| io(path, e))?;
    let hdr = Header::parse(&first, len).map_err(|e| header_error(path, e))?;
    let cluster = hdr.cluster_size().min(MAX_HEADER_CLUSTER).min(len);
    let mut buf = vec![0u8; usize::try_from(cluster).unwrap_or(HEADER_READ)];
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    f.read_exact(&mut buf).map_err(|e| io(path, e))?;
    Ok((hdr, buf))
}

/// The stamp a qcow2 file carries, if any. A file that is not qcow2 carries none.
pub fn read(path: &Path) -> Result<Option<Stamp>> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() || &magic != super::header::MAGIC {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    let (hdr, _) = header_cluster(path, &mut f)?;
    Ok(Stamp::from_extensions(&hdr.other_extensions))
}

/// Puts `stamp` into the header of a qcow2 file coldpatch made (replacing any earlier
/// stamp), and syncs it. Refuses when the header cluster has no room for it.
pub fn write(path: &Path, stamp: &Stamp) -> Result<()> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    let (hdr, old) = header_cluster(path, &mut f)?;
    let new = restamp(&hdr, &old, stamp).map_err(|e| match e {
        HeaderError::Corrupt(what) => corrupt(path, what),
        e => header_error(path, e),
    })?;
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    f.write_all(&new).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))?;
    Ok(())
}

/// The new header cluster: the header, every extension but an old stamp, the new stamp,
/// the end marker, the backing file name (with its offset updated), zeros to the end.
fn restamp(hdr: &Header, old: &[u8], stamp: &Stamp) -> Result<Vec<u8>, HeaderError> {
    let start = hdr.header_length as usize;
    let backing_off = usize::try_from(be_u64(old, 8)?).unwrap_or(usize::MAX);
    let backing_len = be_u32(old, 16)? as usize;
    let backing = if be_u64(old, 8)? != 0 {
        old.get(backing_off..backing_off.saturating_add(backing_len))
            .ok_or_else(|| HeaderError::Corrupt("backing file name outside the header".into()))?
    } else {
        &[][..]
    };
    let limit = if backing.is_empty() {
        old.len()
    } else {
        backing_off
    };
    let mut out = old.get(..start).unwrap_or_default().to_vec();
    let mut at = start;
    let mut count = 0;
    while at + 8 <= limit {
        let ty = be_u32(old, at)?;
        let len = be_u32(old, at + 4)? as usize;
        if ty == EXT_END {
            break;
        }
        count += 1;
        if count > 64 {
            return Err(HeaderError::Limit("header extension count".into(), 64));
        }
        let padded = len.div_ceil(8) * 8;
        let end = (at + 8)
            .checked_add(padded)
            .filter(|&e| e <= limit)
            .ok_or_else(|| {
                HeaderError::Corrupt(format!("header extension 0x{ty:08x} runs past the header"))
            })?;
        if ty != EXT_STAMP {
            out.extend_from_slice(&old[at..end]);
        }
        at = end;
    }
    out.extend_from_slice(&EXT_STAMP.to_be_bytes());
    out.extend_from_slice(&40u32.to_be_bytes());
    out.extend_from_slice(&stamp.encode());
    out.extend_from_slice(&[0u8; 8]); // end marker
    if !backing.is_empty() {
        let off = out.len() as u64;
        out[8..16].copy_from_slice(&off.to_be_bytes());
        out.extend_from_slice(backing);
    }
    if out.len() > old.len() {
        return Err(HeaderError::Limit(
            "header cluster bytes with the version stamp".into(),
            old.len() as u64,
        ));
    }
    out.resize(old.len(), 0);
    Ok(out)
}
