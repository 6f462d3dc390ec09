//! rpm's BerkeleyDB `Packages` file (hash access method), read page by page from memory.
//! Header blobs are stored as overflow ("off-page") items; we follow their page chains
//! with a bound on length and a guard against loops.

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// Largest single value we assemble from overflow pages.
const MAX_VALUE: usize = 64 << 20;

pub fn is_bdb(data: &[u8]) -> bool {
    data.len() >= 16
        && (read32(data, 12, false) == Some(HASH_MAGIC)
            || read32(data, 12, true) == Some(HASH_MAGIC))
}

/// A u32 in the database's byte order (BerkeleyDB writes its host's).
fn read32(b: &[u8], at: usize, be: bool) -> Option<u32> {
    use coldpatch_disk::bytes::{be_u32, le_u32};
    if be { be_u32(b, at) } else { le_u32(b, at) }.ok()
}

fn read16(b: &[u8], at: usize, be: bool) -> Option<u16> {
    use coldpatch_disk::bytes::{be_u16, le_u16};
    if be { be_u16(b, at) } else { le_u16(b, at) }.ok()
}

/// Every value of the database, in page order (the order rpm and go-rpmdb read them).
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let be = if read32(data, 12, false) == Some(HASH_MAGIC) {
        false
    } else if read32(data, 12, true) == Some(HASH_MAGIC) {
        true
    } else {
        return Err("not a BerkeleyDB hash database".into());
    };
    let page_size = read32(data, 20, be).ok_or("truncated metadata page")? as usize;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("invalid page size {page_size}"));
    }
    if data.get(25) != Some(&P_HASHMETA) {
        return Err("first page is not a hash metadata page".into());
    }
    let last_pgno = read32(data, 32, be).ok_or("truncated metadata page")? as usize;
    let pages = (data.len() / page_size).min(last_pgno.saturating_add(1));
    let page = |n: usize| -> Option<&[u8]> { data.get(n * page_size..(n + 1) * page_size) };

    let mut out = Vec::new();
    for n in 1..pages {
        let Some(p) = page(n) else { break };
        if p[25] != P_HASH && p[25] != P_HASH_UNSORTED {
            continue;
        }
        let entries = read16(p, 20, be).unwrap_or(0) as usize;
        if PAGE_HEADER + entries * 2 > page_size {
            return Err(format!("page {n}: {entries} entries do not fit"));
        }
        // Items come in key/value pairs; the value is the odd one.
        for i in (1..entries).step_by(2) {
            let off = read16(p, PAGE_HEADER + i * 2, be).unwrap_or(0) as usize;
            let Some(&kind) = p.get(off) else {
                return Err(format!("page {n}: item offset {off} outside the page"));
            };
            match kind {
                H_OFFPAGE => {
                    let pgno = read32(p, off + 4, be).ok_or("truncated off-page item")? as usize;
                    let len = read32(p, off + 8, be).ok_or("truncated off-page item")? as usize;
                    out.push(overflow_chain(data, page_size, pages, pgno, len, be)?);
                }
                H_KEYDATA => {
                    // Inline values end where the previous item starts (items grow down).
                    let end = read16(p, PAGE_HEADER + (i - 1) * 2, be).unwrap_or(0) as usize;
                    if let Some(v) = p.get(off + 1..end.min(page_size)) {
                        // The 4-byte record 0 of old rpm databases is a counter, not a header.
                        if v.len() > 8 {
                            out.push(v.to_vec());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn overflow_chain(
    data: &[u8],
    page_size: usize,
    pages: usize,
    mut pgno: usize,
    len: usize,
    be: bool,
) -> Result<Vec<u8>, String> {
    if len > MAX_VALUE {
        return Err(format!("value of {len} bytes exceeds {MAX_VALUE}"));
    }
    let mut v = Vec::with_capacity(len);
    let mut hops = 0;
    while pgno != 0 && v.len() < len {
        hops += 1;
        if hops > pages || pgno >= pages {
            return Err(format!("overflow chain broken at page {pgno}"));
        }
        let p = &data[pgno * page_size..(pgno + 1) * page_size];
        if p[25] != P_OVERFLOW {
            return Err(format!(
                "page {pgno} in an overflow chain is not an overflow page"
            ));
        }
        let used = read16(p, 22, be).unwrap_or(0) as usize;
        let chunk = p
            .get(PAGE_HEADER..PAGE_HEADER + used)
            .ok_or_else(|| format!("overflow page {pgno} claims {used} bytes"))?;
        v.extend_from_slice(chunk);
        pgno = read32(p, 16, be).unwrap_or(0) as usize;
    }
    if v.len() < len {
        return Err(format!(
            "overflow chain ended after {} of {len} bytes",
            v.len()
        ));
    }
    v.truncate(len);
    Ok(v)
}
