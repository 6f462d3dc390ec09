//! A fast read-only data path for walking a whole ext2/3/4 filesystem: directories listed
//! and files read by inode number, straight from the inode tables and extent trees.
//!
//! Written here because `ext4-view` (used for everything else) opens files only by path:
//! every open re-resolves the path from the root through a 64-block cache that file data
//! also passes through, which made hashing a whole image CPU-bound at a third of the disk's
//! speed. This module covers the common layout only and says so: [`RawExt4::new`] refuses
//! any filesystem with an incompatible feature it does not handle (journal needing
//! recovery, meta_bg, compression, encryption, casefold, dirdata), and inodes with inline
//! data or encryption are left to `ext4-view`, so callers fall back instead of guessing.
//! Every count and offset read from the image is bounded before it is used.

use std::io::Read;

use crate::bytes::{le_u16, le_u32, Short};
use crate::ext4::PartReader;
use crate::fs::FileKind;

/// Why the fast path could not read something; the caller falls back to `ext4-view` or
/// records it. The message is whole (it carries no separate cause).
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// A structure on disk is inconsistent or points outside the filesystem.
    #[error("{0}")]
    Corrupt(String),
    /// A structure is larger than the fast path takes.
    #[error("{0}")]
    Limit(&'static str),
    #[error("read at byte {at}: {message}")]
    Read { at: u64, message: String },
}

impl From<Short> for RawError {
    fn from(e: Short) -> RawError {
        RawError::Corrupt(e.to_string())
    }
}

fn corrupt(m: impl Into<String>) -> RawError {
    RawError::Corrupt(m.into())
}

const MAGIC: u16 = 0xef53;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_EA_INODE: u32 = 0x400;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
/// Everything else (recover, journal_dev, meta_bg, compression, dirdata, encrypt, casefold)
/// sends the caller back to ext4-view.
const INCOMPAT_HANDLED: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA;

const FL_ENCRYPT: u32 = 0x800;
const FL_EXTENTS: u32 = 0x8_0000;
const FL_INLINE_DATA: u32 = 0x1000_0000;
const EXTENT_MAGIC: u16 = 0xf30a;
const MAX_EXTENT_DEPTH: u16 = 5;
/// Most extents (or indirect-mapped runs) followed for one file.
const MAX_EXTENTS: usize = 1 << 20;
/// Largest directory listed natively; bigger ones go to ext4-view.
const MAX_DIR_BYTES: u64 = 256 << 20;
/// Largest group descriptor table (a 16 TiB filesystem with 4 KiB blocks needs 8 MiB).
const MAX_GDT_BYTES: u64 = 64 << 20;
/// Most extent-tree or indirect blocks read to map one file.
const MAX_MAP_BLOCKS: usize = 1 << 16;

/// One inode's fields that the walk needs.
#[derive(Debug, Clone)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
    pub flags: u32,
    pub block: [u8; 60],
}

impl Inode {
    pub fn kind(&self) -> FileKind {
        FileKind::from_mode(u32::from(self.mode))
    }
    /// True if this inode's content must be read through ext4-view instead.
    pub fn needs_fallback(&self) -> bool {
        self.flags & (FL_INLINE_DATA | FL_ENCRYPT) != 0
    }
}

/// A run of file blocks: logical start, physical start, length, and whether it reads as
/// zeros (an uninitialised extent).
#[derive(Debug, Clone, Copy)]
struct Run {
    logical: u64,
    physical: u64,
    len: u64,
    zero: bool,
}

pub struct RawExt4 {
    dev: PartReader,
    block: u64,
    inodes_per_group: u64,
    inode_size: u64,
    inodes_count: u64,
    blocks_count: u64,
    /// Inode table block of each group.
    tables: Vec<u64>,
}

impl RawExt4 {
    /// Reads the superblock and group descriptors; `None` when this filesystem uses
    /// anything this module does not handle (the caller then keeps ext4-view).
    pub fn new(mut dev: PartReader) -> Option<RawExt4> {
        let mut sb = [0u8; 1024];
        read(&mut dev, 1024, &mut sb).ok()?;
        if le_u16(&sb, 0x38).ok()? != MAGIC {
            return None;
        }
        let log = le_u32(&sb, 0x18).ok()?;
        if log > 6 {
            return None;
        }
        let block = 1024u64 << log;
        let incompat = if le_u32(&sb, 0x4c).ok()? == 0 {
            0
        } else {
            le_u32(&sb, 0x60).ok()?
        };
        if incompat & !INCOMPAT_HANDLED != 0 {
            return None;
        }
        let inodes_count = u64::from(le_u32(&sb, 0x00).ok()?);
        let blocks_count = u64::from(le_u32(&sb, 0x04).ok()?)
            | if incompat & INCOMPAT_64BIT != 0 {
                u64::from(le_u32(&sb, 0x150).ok()?) << 32
            } else {
                0
            };
        let first_data_block = u64::from(le_u32(&sb, 0x14).ok()?);
        let blocks_per_group = u64::from(le_u32(&sb, 0x20).ok()?);
        let inodes_per_group = u64::from(le_u32(&sb, 0x28).ok()?);
        let inode_size = if le_u32(&sb, 0x4c).ok()? == 0 {
            128
        } else {
            u64::from(le_u16(&sb, 0x58).ok()?)
        };
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            u64::from(le_u16(&sb, 0xfe).ok()?)
        } else {
            32
        };
        if blocks_per_group == 0
            || inodes_per_group == 0
            || !(128..=block).contains(&inode_size)
            || !inode_size.is_power_of_two()
            || !(32..=1024).contains(&desc_size)
            || blocks_count.checked_mul(block).is_none_or(|b| b > dev.size)
        {
            return None;
        }
        let groups = blocks_count
            .saturating_sub(first_data_block)
            .div_ceil(blocks_per_group);
        if groups == 0
            || groups
                .checked_mul(inodes_per_group)
                .is_none_or(|n| n < inodes_count)
            || groups > (1 << 24)
        {
            return None;
        }
        if groups * desc_size > MAX_GDT_BYTES {
            return None;
        }
        let table_bytes = usize::try_from(groups * desc_size).ok()?;
        let mut gdt = vec![0u8; table_bytes];
        read(&mut dev, (first_data_block + 1) * block, &mut gdt).ok()?;
        let tables = gdt
            .chunks_exact(desc_size as usize)
            .map(|d| {
                let lo = u64::from(le_u32(d, 0x08).ok()?);
                let hi = if desc_size >= 64 {
                    u64::from(le_u32(d, 0x28).ok()?) << 32
                } else {
                    0
                };
                Some(lo | hi)
            })
            .collect::<Option<Vec<_>>>()?;
        if tables.iter().any(|&t| t >= blocks_count) {
            return None;
        }
        Some(RawExt4 {
            dev,
            block,
            inodes_per_group,
            inode_size,
            inodes_count,
            blocks_count,
            tables,
        })
    }

    pub fn inode(&mut self, ino: u64) -> Result<Inode, RawError> {
        if ino == 0 || ino > self.inodes_count {
            return Err(corrupt(format!("inode {ino} out of range")));
        }
        let group = (ino - 1) / self.inodes_per_group;
        let index = (ino - 1) % self.inodes_per_group;
        let table = *self
            .tables
            .get(group as usize)
            .ok_or_else(|| corrupt("inode group out of range"))?;
        let at = table * self.block + index * self.inode_size;
        let mut raw = vec![0u8; self.inode_size as usize];
        read(&mut self.dev, at, &mut raw)?;
        let uid = u32::from(le_u16(&raw, 0x02)?) | (u32::from(le_u16(&raw, 0x78)?) << 16);
        let gid = u32::from(le_u16(&raw, 0x18)?) | (u32::from(le_u16(&raw, 0x7a)?) << 16);
        let size = u64::from(le_u32(&raw, 0x04)?) | (u64::from(le_u32(&raw, 0x6c)?) << 32);
        let mut mtime = i64::from(le_u32(&raw, 0x10)? as i32);
        let mut ctime = i64::from(le_u32(&raw, 0x0c)? as i32);
        let extra_isize = u64::from(le_u16(&raw, 0x80)?);
        // The extra fields' low two bits extend the seconds beyond 2038.
        if self.inode_size > 128 && 128 + extra_isize >= 0x88 {
            ctime += i64::from(le_u32(&raw, 0x84)? & 3) << 32;
        }
        if self.inode_size > 128 && 128 + extra_isize >= 0x8c {
            mtime += i64::from(le_u32(&raw, 0x88)? & 3) << 32;
        }
        let mut block = [0u8; 60];
        block.copy_from_slice(&raw[0x28..0x28 + 60]);
        Ok(Inode {
            mode: le_u16(&raw, 0x00)?,
            uid,
            gid,
            size,
            mtime,
            ctime,
            flags: le_u32(&raw, 0x20)?,
            block,
        })
    }

    /// The runs of blocks holding an inode's data, in logical order.
    fn runs(&mut self, inode: &Inode) -> Result<Vec<Run>, RawError> {
        let blocks = inode.size.div_ceil(self.block);
        let mut out = Vec::new();
        let mut budget = MAX_MAP_BLOCKS;
        if inode.flags & FL_EXTENTS != 0 {
            self.extent_node(&inode.block, MAX_EXTENT_DEPTH + 1, &mut out, &mut budget)?;
        } else {
            self.indirect(inode, blocks, &mut out, &mut budget)?;
        }
        for r in &out {
            if r.physical
                .checked_add(r.len)
                .is_none_or(|e| e > self.blocks_count)
            {
                return Err(corrupt(format!(
                    "extent at block {} runs past the filesystem",
                    r.physical
                )));
            }
        }
        out.sort_by_key(|r| r.logical);
        Ok(out)
    }

    fn extent_node(
        &mut self,
        node: &[u8],
        budget: u16,
        out: &mut Vec<Run>,
        reads: &mut usize,
    ) -> Result<(), RawError> {
        if le_u16(node, 0)? != EXTENT_MAGIC {
            return Err(corrupt("bad extent header magic"));
        }
        let entries = usize::from(le_u16(node, 2)?);
        let depth = le_u16(node, 6)?;
        if depth >= budget || 12 + entries * 12 > node.len() {
            return Err(corrupt("extent tree too deep or node overfull"));
        }
        for i in 0..entries {
            let e = &node[12 + i * 12..24 + i * 12];
            if depth == 0 {
                let raw_len = u64::from(le_u16(e, 4)?);
                let (len, zero) = if raw_len > 32768 {
                    (raw_len - 32768, true)
                } else {
                    (raw_len, false)
                };
                let physical = (u64::from(le_u16(e, 6)?) << 32) | u64::from(le_u32(e, 8)?);
                out.push(Run {
                    logical: u64::from(le_u32(e, 0)?),
                    physical,
                    len,
                    zero,
                });
                if out.len() > MAX_EXTENTS {
                    return Err(RawError::Limit("too many extents"));
                }
            } else {
                let child = (u64::from(le_u16(e, 8)?) << 32) | u64::from(le_u32(e, 4)?);
                if child >= self.blocks_count {
                    return Err(corrupt(format!(
                        "extent index points past the filesystem ({child})"
                    )));
                }
                *reads = reads
                    .checked_sub(1)
                    .ok_or(RawError::Limit("extent tree has too many nodes"))?;
                let mut buf = vec![0u8; self.block as usize];
                read(&mut self.dev, child * self.block, &mut buf)?;
                self.extent_node(&buf, depth, out, reads)?;
            }
        }
        Ok(())
    }

    /// ext2/3 block maps: 12 direct pointers, then single, double and triple indirect.
    fn indirect(
        &mut self,
        inode: &Inode,
        blocks: u64,
        out: &mut Vec<Run>,
        reads: &mut usize,
    ) -> Result<(), RawError> {
        let mut logical = 0u64;
        let ptrs: Vec<u64> = (0..15)
            .map(|i| le_u32(&inode.block, i * 4).map(u64::from))
            .collect::<Result<_, _>>()?;
        for &p in &ptrs[..12] {
            if logical >= blocks {
                return Ok(());
            }
            push_block(out, logical, p);
            logical += 1;
        }
        for (level, &p) in ptrs[12..].iter().enumerate() {
            if logical >= blocks {
                break;
            }
            self.indirect_level(p, level as u32 + 1, &mut logical, blocks, out, reads)?;
        }
        Ok(())
    }

    fn indirect_level(
        &mut self,
        ptr: u64,
        level: u32,
        logical: &mut u64,
        blocks: u64,
        out: &mut Vec<Run>,
        reads: &mut usize,
    ) -> Result<(), RawError> {
        let per = self.block / 4;
        let span = per.pow(level);
        if ptr == 0 {
            // A hole covering this whole subtree.
            *logical += span;
            return Ok(());
        }
        if ptr >= self.blocks_count {
            return Err(corrupt(format!("indirect block {ptr} past the filesystem")));
        }
        *reads = reads
            .checked_sub(1)
            .ok_or(RawError::Limit("block map has too many indirect blocks"))?;
        let mut buf = vec![0u8; self.block as usize];
        read(&mut self.dev, ptr * self.block, &mut buf)?;
        for i in 0..per as usize {
            if *logical >= blocks {
                return Ok(());
            }
            let p = u64::from(le_u32(&buf, i * 4)?);
            if level == 1 {
                push_block(out, *logical, p);
                *logical += 1;
            } else {
                self.indirect_level(p, level - 1, logical, blocks, out, reads)?;
            }
            if out.len() > MAX_EXTENTS {
                return Err(RawError::Limit("too many blocks"));
            }
        }
        Ok(())
    }

    /// A reader over an inode's bytes (holes and uninitialised extents read as zeros).
    pub fn reader(&mut self, inode: &Inode) -> Result<DataReader<'_>, RawError> {
        // A file can be sparse, but one claiming more bytes than its whole filesystem holds
        // would be hashed as zeros for hours: refuse it.
        if inode.size > self.blocks_count.saturating_mul(self.block) {
            return Err(corrupt(format!(
                "{} bytes is more than the filesystem holds",
                inode.size
            )));
        }
        let runs = self.runs(inode)?;
        Ok(DataReader {
            fs: self,
            runs,
            size: inode.size,
            pos: 0,
        })
    }

    /// Entries of a directory inode: (name, inode number). "." and ".." are left out.
    pub fn dir_entries(&mut self, inode: &Inode) -> Result<Vec<(Vec<u8>, u64)>, RawError> {
        if inode.size > MAX_DIR_BYTES {
            return Err(RawError::Limit("directory too large for the fast path"));
        }
        let mut data = Vec::with_capacity(inode.size as usize);
        self.reader(inode)?
            .read_to_end(&mut data)
            .map_err(|e| RawError::Read {
                at: 0,
                message: e.to_string(),
            })?;
        let mut out = Vec::new();
        for blk in data.chunks(self.block as usize) {
            let mut at = 0usize;
            while at + 8 <= blk.len() {
                let ino = u64::from(le_u32(blk, at)?);
                let rec_len = usize::from(le_u16(blk, at + 4)?);
                let name_len = usize::from(blk[at + 6]);
                if rec_len < 8
                    || rec_len % 4 != 0
                    || at + rec_len > blk.len()
                    || 8 + name_len > rec_len
                {
                    return Err(corrupt(format!("bad directory entry at byte {at}")));
                }
                if ino != 0 {
                    let name = &blk[at + 8..at + 8 + name_len];
                    if name != b"." && name != b".." {
                        out.push((name.to_vec(), ino));
                    }
                }
                at += rec_len;
            }
        }
        Ok(out)
    }

    /// A symlink's target: inline in the inode when short, else in its data.
    pub fn link_target(&mut self, inode: &Inode) -> Result<Vec<u8>, RawError> {
        if inode.size < 60 && inode.flags & FL_EXTENTS == 0 {
            return Ok(inode.block[..inode.size as usize].to_vec());
        }
        let mut v = Vec::new();
        self.reader(inode)?
            .take(4096)
            .read_to_end(&mut v)
            .map_err(|e| RawError::Read {
                at: 0,
                message: e.to_string(),
            })?;
        Ok(v)
    }
}

fn push_block(out: &mut Vec<Run>, logical: u64, physical: u64) {
    if physical == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if !last.zero && last.logical + last.len == logical && last.physical + last.len == physical
        {
            last.len += 1;
            return;
        }
    }
    out.push(Run {
        logical,
        physical,
        len: 1,
        zero: false,
    });
}

fn read(dev: &mut PartReader, at: u64, buf: &mut [u8]) -> Result<(), RawError> {
    use ext4_view::Ext4Read;
    dev.read(at, buf).map_err(|e| RawError::Read {
        at,
        message: e.to_string(),
    })
}

pub struct DataReader<'a> {
    fs: &'a mut RawExt4,
    runs: Vec<Run>,
    size: u64,
    pos: u64,
}

impl Read for DataReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.fs.block;
        let want = (buf.len() as u64).min(self.size - self.pos);
        let lblock = self.pos / bs;
        let within = self.pos % bs;
        // The run holding this block, or the hole before the next run (runs are sorted).
        let idx = self.runs.partition_point(|r| r.logical + r.len <= lblock);
        let run = self.runs.get(idx).filter(|r| r.logical <= lblock).copied();
        let n = match run {
            Some(r) if !r.zero => {
                let avail = (r.logical + r.len - lblock) * bs - within;
                let n = want.min(avail) as usize;
                let at = (r.physical + (lblock - r.logical)) * bs + within;
                read(&mut self.fs.dev, at, &mut buf[..n]).map_err(std::io::Error::other)?;
                n
            }
            Some(r) => {
                let avail = (r.logical + r.len - lblock) * bs - within;
                let n = want.min(avail) as usize;
                buf[..n].fill(0);
                n
            }
            None => {
                let next = self.runs.get(idx).map(|r| r.logical);
                let avail = next.map_or(u64::MAX, |nl| (nl - lblock) * bs - within);
                let n = want.min(avail) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// The [`GuestFs`] for whole-filesystem walks: listings, metadata, link targets and file
/// data through [`RawExt4`]; anything it does not handle, and every lookup that must
/// resolve symlinks, through `ext4-view`.
pub struct FastExt4Fs {
    raw: RawExt4,
    slow: crate::ext4::Ext4Fs,
    /// Directories listed as entries but not yet read themselves.
    dirs: std::collections::HashMap<Vec<u8>, u64>,
    /// The latest listing: its directory and each name's inode (the walk opens a
    /// directory's files right after listing it).
    last: (Vec<u8>, std::collections::HashMap<Vec<u8>, u64>),
}

impl FastExt4Fs {
    pub fn new(raw: RawExt4, slow: crate::ext4::Ext4Fs) -> FastExt4Fs {
        FastExt4Fs {
            raw,
            slow,
            dirs: std::collections::HashMap::new(),
            last: (Vec::new(), std::collections::HashMap::new()),
        }
    }

    fn ino_of(&self, path: &[u8]) -> Option<u64> {
        if path == b"/" {
            return Some(2);
        }
        if let Some(&i) = self.dirs.get(path) {
            return Some(i);
        }
        let cut = path.iter().rposition(|&b| b == b'/')?;
        let dir = if cut == 0 { &b"/"[..] } else { &path[..cut] };
        (self.last.0 == dir)
            .then(|| self.last.1.get(&path[cut + 1..]).copied())
            .flatten()
    }

    fn meta(inode: &Inode) -> crate::fs::Meta {
        crate::fs::Meta {
            kind: inode.kind(),
            mode: u32::from(inode.mode) & 0o7777,
            uid: inode.uid,
            gid: inode.gid,
            size: inode.size,
            mtime: inode.mtime,
            ctime: Some(inode.ctime),
        }
    }
}

use crate::fs::{DirEntry, FsError, GuestFs, Meta};

impl GuestFs for FastExt4Fs {
    fn describe(&self) -> String {
        self.slow.describe()
    }

    fn failed(&self) -> bool {
        self.slow.failed()
    }

    fn read_dir(&mut self, path: &[u8]) -> Result<Vec<DirEntry>, FsError> {
        let fast = self.ino_of(path).and_then(|ino| {
            let inode = self
                .raw
                .inode(ino)
                .ok()
                .filter(|i| !i.needs_fallback() && i.kind() == FileKind::Dir)?;
            let names = self.raw.dir_entries(&inode).ok()?;
            let mut out = Vec::with_capacity(names.len());
            for (name, child) in names {
                let inode = self.raw.inode(child).ok()?;
                out.push(DirEntry {
                    name,
                    meta: Self::meta(&inode),
                    ino: child,
                });
            }
            Some(out)
        });
        let entries = match fast {
            Some(e) => e,
            None => self.slow.read_dir(path)?,
        };
        self.dirs.remove(path);
        let mut names = std::collections::HashMap::with_capacity(entries.len());
        for e in &entries {
            if e.ino == 0 {
                continue;
            }
            if e.meta.kind == FileKind::Dir {
                let mut p = path.to_vec();
                if p.last() != Some(&b'/') {
                    p.push(b'/');
                }
                p.extend_from_slice(&e.name);
                self.dirs.insert(p, e.ino);
            } else {
                names.insert(e.name.clone(), e.ino);
            }
        }
        self.last = (path.to_vec(), names);
        Ok(entries)
    }

    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        let fast = self.ino_of(path).and_then(|ino| {
            let inode = self.raw.inode(ino).ok().filter(|i| !i.needs_fallback())?;
            self.raw.link_target(&inode).ok()
        });
        match fast {
            Some(t) => Ok(t),
            None => self.slow.read_link(path),
        }
    }

    fn open(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        let inode = self
            .ino_of(path)
            .and_then(|i| self.raw.inode(i).ok())
            .filter(|i| !i.needs_fallback());
        match inode {
            Some(inode) => self
                .raw
                .reader(&inode)
                .map(|r| Box::new(r) as Box<dyn Read + '_>)
                .map_err(|e| FsError::new(path, e)),
            None => self.slow.open(path),
        }
    }

    fn open_ino(&mut self, ino: u64) -> Option<Result<Box<dyn Read + '_>, FsError>> {
        let inode = match self.raw.inode(ino) {
            Ok(i) => i,
            Err(e) => return Some(Err(FsError::new(format!("inode {ino}").as_bytes(), e))),
        };
        if inode.needs_fallback() {
            return None;
        }
        Some(
            self.raw
                .reader(&inode)
                .map(|r| Box::new(r) as Box<dyn Read + '_>)
                .map_err(|e| FsError::new(format!("inode {ino}").as_bytes(), e)),
        )
    }

    fn stat_resolved(&mut self, path: &[u8]) -> Result<Meta, FsError> {
        self.slow.stat_resolved(path)
    }

    fn open_resolved(&mut self, path: &[u8]) -> Result<Box<dyn Read + '_>, FsError> {
        self.slow.open_resolved(path)
    }
}
