//! Which filesystem (or volume) a partition holds, decided by superblock magic alone.

use crate::bytes::le_u16;
use crate::error::Result;
use crate::file::ReadAt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext,
    Xfs,
    Btrfs,
    LvmPv,
    Swap,
    Vfat,
    Unknown,
}

impl FsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Ext => "ext2/3/4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::LvmPv => "lvm2 pv",
            FsKind::Swap => "swap",
            FsKind::Vfat => "vfat",
            FsKind::Unknown => "unknown",
        }
    }
    /// Kinds that only the libguestfs fallback can read.
    pub fn needs_guestfs(self) -> bool {
        matches!(self, FsKind::Xfs | FsKind::Btrfs | FsKind::LvmPv)
    }
}

/// Probes the partition at `start..start+size` of `dev`.
pub fn probe(dev: &mut dyn ReadAt, start: u64, size: u64) -> Result<FsKind> {
    let mut head = vec![0u8; usize::try_from(size.min(4096)).unwrap_or(0)];
    dev.read_at(start, &mut head)?;
    let at = |o: usize, m: &[u8]| head.get(o..o + m.len()) == Some(m);
    if le_u16(&head, 1024 + 56).is_ok_and(|m| m == 0xef53) {
        return Ok(FsKind::Ext);
    }
    if at(0, b"XFSB") {
        return Ok(FsKind::Xfs);
    }
    if at(512, b"LABELONE") && at(512 + 24, b"LVM2 001") {
        return Ok(FsKind::LvmPv);
    }
    if at(4096 - 10, b"SWAPSPACE2") {
        return Ok(FsKind::Swap);
    }
    if at(82, b"FAT32   ") || at(54, b"FAT16   ") || at(54, b"FAT12   ") {
        return Ok(FsKind::Vfat);
    }
    if size >= 65536 + 72 {
        let mut sb = [0u8; 8];
        dev.read_at(start + 65536 + 64, &mut sb)?;
        if &sb == b"_BHRfS_M" {
            return Ok(FsKind::Btrfs);
        }
    }
    Ok(FsKind::Unknown)
}
