//! rpm's NDB `Packages.db` (SUSE): a slot table of (package index, block offset, block
//! count) followed by blobs, each with its own header. Little-endian, 16-byte blocks.

const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const PAGE: usize = 4096;
const BLOCK: usize = 16;
/// Most slot pages accepted (each holds 256 slots).
const MAX_SLOT_PAGES: usize = 4096;

pub fn is_ndb(data: &[u8]) -> bool {
    le32(data, 0) == Some(HEADER_MAGIC)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    coldpatch_disk::bytes::le_u32(b, at).ok()
}

/// Header blobs in slot order.
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if !is_ndb(data) {
        return Err("not an NDB package database".into());
    }
    let version = le32(data, 4).ok_or("truncated header")?;
    if version != 0 {
        return Err(format!("unsupported NDB version {version}"));
    }
    let slot_pages = le32(data, 12).ok_or("truncated header")? as usize;
    if slot_pages == 0 || slot_pages > MAX_SLOT_PAGES {
        return Err(format!(
            "slot page count {slot_pages} outside 1..={MAX_SLOT_PAGES}"
        ));
    }
    let slots_end = slot_pages * PAGE;
    if slots_end > data.len() {
        return Err(format!(
            "{slot_pages} slot pages do not fit in {} bytes",
            data.len()
        ));
    }
    let mut out = Vec::new();
    // The first two 16-byte slots are taken by the file header.
    for at in (2 * BLOCK..slots_end).step_by(BLOCK) {
        let magic = le32(data, at).unwrap_or(0);
        if magic != SLOT_MAGIC {
            return Err(format!("bad slot magic at byte {at}"));
        }
        let pkg = le32(data, at + 4).unwrap_or(0);
        if pkg == 0 {
            continue;
        }
        let blk_off = le32(data, at + 8).unwrap_or(0) as usize;
        let start = blk_off.checked_mul(BLOCK).ok_or("blob offset overflows")?;
        if le32(data, start) != Some(BLOB_MAGIC) {
            return Err(format!("package {pkg}: no blob at byte {start}"));
        }
        if le32(data, start + 4) != Some(pkg) {
            return Err(format!(
                "package {pkg}: blob at byte {start} belongs to another package"
            ));
        }
        let len = le32(data, start + 12).unwrap_or(0) as usize;
        let blob = data
            .get(start + BLOCK..start + BLOCK + len)
            .ok_or_else(|| format!("package {pkg}: blob of {len} bytes runs past the file"))?;
        out.push(blob.to_vec());
    }
    Ok(out)
}
