//! Partition tables: GPT, MBR with extended/logical partitions, or none.
//!
//! Written by hand rather than with `gptman`/`mbrman`: those are built to edit tables and
//! trust the entry count and entry size from the header; here every count is bounded, the
//! EBR chain is loop-checked, and only the few fields we need are read.

use crate::bytes::{le_u32, le_u64};
use crate::error::{DiskError, Result};
use crate::file::ReadAt;

/// Most partition entries read from a GPT (the spec's usual value is 128).
pub const MAX_GPT_ENTRIES: u32 = 1024;
/// Most logical partitions followed in an MBR extended partition chain.
pub const MAX_LOGICAL: usize = 128;
const SECTOR: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Mbr,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Linux numbering: GPT entry index + 1; MBR 1-4 primary, 5+ logical; 0 = whole disk.
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// GPT type GUID or MBR type byte, for display only: partitions are chosen by content.
    pub type_id: String,
}

fn corrupt(image: &std::path::Path, what: String) -> DiskError {
    DiskError::Corrupt {
        image: image.to_path_buf(),
        format: "partition table",
        what,
    }
}

/// Reads the partition table. An empty disk or a filesystem written directly to the disk
/// yields `TableKind::None` with one partition covering the whole disk.
pub fn read_partitions(
    dev: &mut dyn ReadAt,
    image: &std::path::Path,
) -> Result<(TableKind, Vec<Partition>)> {
    let size = dev.size();
    let whole = || {
        vec![Partition {
            number: 0,
            start: 0,
            size,
            type_id: String::new(),
        }]
    };
    if size < 2 * SECTOR {
        return Ok((TableKind::None, whole()));
    }
    let mut mbr = [0u8; 512];
    dev.read_at(0, &mut mbr)?;
    let mut lba1 = [0u8; 512];
    dev.read_at(SECTOR, &mut lba1)?;
    if &lba1[0..8] == b"EFI PART" {
        return Ok((TableKind::Gpt, read_gpt(dev, image, &lba1)?));
    }
    if mbr[510] != 0x55 || mbr[511] != 0xaa || !plausible_mbr(&mbr) {
        return Ok((TableKind::None, whole()));
    }
    Ok((TableKind::Mbr, read_mbr(dev, image, &mbr)?))
}

/// A FAT or NTFS boot sector also ends in 55 AA; an MBR's status bytes are 0x00 or 0x80.
fn plausible_mbr(mbr: &[u8; 512]) -> bool {
    (0..4).all(|i| matches!(mbr[446 + 16 * i], 0x00 | 0x80))
        && (0..4).any(|i| mbr[446 + 16 * i + 4] != 0)
}

fn read_gpt(
    dev: &mut dyn ReadAt,
    image: &std::path::Path,
    hdr: &[u8; 512],
) -> Result<Vec<Partition>> {
    let size = dev.size();
    let short = |e: crate::bytes::Short| corrupt(image, format!("GPT: {e}"));
    let entries_lba = le_u64(hdr, 72).map_err(short)?;
    let count = le_u32(hdr, 80).map_err(short)?;
    let entry_size = le_u32(hdr, 84).map_err(short)?;
    if count > MAX_GPT_ENTRIES {
        return Err(DiskError::Limit {
            image: image.to_path_buf(),
            what: format!("GPT entry count {count}"),
            limit: u64::from(MAX_GPT_ENTRIES),
        });
    }
    if !(128..=4096).contains(&entry_size) || entry_size % 8 != 0 {
        return Err(corrupt(image, format!("GPT entry size {entry_size}")));
    }
    let bytes = u64::from(count) * u64::from(entry_size);
    let start = entries_lba
        .checked_mul(SECTOR)
        .filter(|s| s.checked_add(bytes).is_some_and(|e| e <= size))
        .ok_or_else(|| {
            corrupt(
                image,
                format!("GPT entries at LBA {entries_lba} lie past the end of the disk"),
            )
        })?;
    // bytes <= 1024 * 4096, small enough to allocate.
    let mut raw = vec![0u8; bytes as usize];
    dev.read_at(start, &mut raw)?;
    let mut parts = Vec::new();
    for (i, e) in raw.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = &e[0..16];
        if type_guid.iter().all(|&b| b == 0) {
            continue;
        }
        let first = le_u64(e, 32).map_err(short)?;
        let last = le_u64(e, 40).map_err(short)?;
        let (Some(pstart), Some(pend)) = (
            first.checked_mul(SECTOR),
            last.checked_add(1).and_then(|l| l.checked_mul(SECTOR)),
        ) else {
            return Err(corrupt(
                image,
                format!("GPT entry {} has LBAs out of range", i + 1),
            ));
        };
        if last < first || pend > size {
            return Err(corrupt(
                image,
                format!(
                    "GPT entry {} spans LBA {first}..={last}, past the disk",
                    i + 1
                ),
            ));
        }
        parts.push(Partition {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            start: pstart,
            size: pend - pstart,
            type_id: guid_string(type_guid).map_err(short)?,
        });
    }
    Ok(parts)
}

fn guid_string(g: &[u8]) -> Result<String, crate::bytes::Short> {
    let tail = g.get(8..16).ok_or(crate::bytes::Short {
        at: 8,
        want: 8,
        have: g.len(),
    })?;
    Ok(format!(
        "{:08X}-{:04X}-{:04X}-{}",
        le_u32(g, 0)?,
        crate::bytes::le_u16(g, 4)?,
        crate::bytes::le_u16(g, 6)?,
        tail.iter().map(|b| format!("{b:02X}")).collect::<String>()
    ))
}

struct MbrEntry {
    kind: u8,
    lba: u64,
    sectors: u64,
}

fn mbr_entries(sector: &[u8; 512]) -> [MbrEntry; 4] {
    // The four entries end at byte 510 of the 512: every read below is in range.
    std::array::from_fn(|i| {
        let at = 446 + 16 * i;
        MbrEntry {
            kind: sector[at + 4],
            lba: le_u32(sector, at + 8).map_or(0, u64::from),
            sectors: le_u32(sector, at + 12).map_or(0, u64::from),
        }
    })
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

fn read_mbr(
    dev: &mut dyn ReadAt,
    image: &std::path::Path,
    mbr: &[u8; 512],
) -> Result<Vec<Partition>> {
    let size = dev.size();
    let mut parts = Vec::new();
    let check = |n: u32, lba: u64, sectors: u64| -> Result<Partition> {
        let start = lba * SECTOR;
        let len = sectors * SECTOR;
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(corrupt(
                image,
                format!("MBR partition {n} lies past the end of the disk"),
            ));
        }
        Ok(Partition {
            number: n,
            start,
            size: len,
            type_id: String::new(),
        })
    };
    let mut extended = None;
    for (i, e) in mbr_entries(mbr).into_iter().enumerate() {
        if e.kind == 0 || e.sectors == 0 {
            continue;
        }
        let n = u32::try_from(i + 1).unwrap_or(0);
        if is_extended(e.kind) {
            if extended.is_none() {
                extended = Some(e.lba);
            }
            continue;
        }
        let mut p = check(n, e.lba, e.sectors)?;
        p.type_id = format!("0x{:02x}", e.kind);
        parts.push(p);
    }
    let Some(ext_base) = extended else {
        return Ok(parts);
    };
    // Each EBR holds one logical partition (relative to the EBR) and a link to the next
    // EBR (relative to the extended partition's start).
    let mut ebr_lba = ext_base;
    let mut seen = std::collections::HashSet::new();
    let mut number = 5;
    loop {
        if !seen.insert(ebr_lba) {
            return Err(corrupt(
                image,
                format!("extended partition chain loops at LBA {ebr_lba}"),
            ));
        }
        if seen.len() > MAX_LOGICAL {
            return Err(DiskError::Limit {
                image: image.to_path_buf(),
                what: "logical partition count".into(),
                limit: MAX_LOGICAL as u64,
            });
        }
        let at = ebr_lba
            .checked_mul(SECTOR)
            .filter(|a| a.checked_add(SECTOR).is_some_and(|e| e <= size));
        let Some(at) = at else {
            return Err(corrupt(
                image,
                format!("EBR at LBA {ebr_lba} lies past the end of the disk"),
            ));
        };
        let mut ebr = [0u8; 512];
        dev.read_at(at, &mut ebr)?;
        if ebr[510] != 0x55 || ebr[511] != 0xaa {
            return Err(corrupt(
                image,
                format!("EBR at LBA {ebr_lba} has no boot signature"),
            ));
        }
        let [logical, next, ..] = mbr_entries(&ebr);
        if logical.kind != 0 && logical.sectors != 0 {
            let lba = ebr_lba
                .checked_add(logical.lba)
                .ok_or_else(|| corrupt(image, "EBR offset overflows".into()))?;
            let mut p = check(number, lba, logical.sectors)?;
            p.type_id = format!("0x{:02x}", logical.kind);
            parts.push(p);
            number += 1;
        }
        if !is_extended(next.kind) || next.lba == 0 {
            break;
        }
        ebr_lba = ext_base
            .checked_add(next.lba)
            .ok_or_else(|| corrupt(image, "EBR link overflows".into()))?;
    }
    Ok(parts)
}
