//! rpm header blobs as the package database stores them (rpm's `headerImport` format:
//! index count, data length, index entries, data), read with every offset checked.

/// rpm's own limits (hdrchkTags / hdrchkData in lib/header_internal.h).
pub const MAX_TAGS: u32 = 0xffff;
pub const MAX_DATA: u32 = 0x00ff_ffff;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_BIN: u32 = 7;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

pub const TAG_SIGMD5: i32 = 261;
pub const TAG_NAME: i32 = 1000;
pub const TAG_VERSION: i32 = 1001;
pub const TAG_RELEASE: i32 = 1002;
pub const TAG_EPOCH: i32 = 1003;
pub const TAG_SUMMARY: i32 = 1004;
pub const TAG_SIZE: i32 = 1009;
pub const TAG_VENDOR: i32 = 1011;
pub const TAG_LICENSE: i32 = 1014;
pub const TAG_ARCH: i32 = 1022;
pub const TAG_SOURCERPM: i32 = 1044;
pub const TAG_MODULARITYLABEL: i32 = 5096;

/// The fields of one installed package that the inventory keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmHeader {
    pub name: String,
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
    pub sourcerpm: Option<String>,
    pub size: Option<u32>,
    pub license: Option<String>,
    pub vendor: Option<String>,
    pub summary: Option<String>,
    pub modularitylabel: Option<String>,
    pub sigmd5: Option<String>,
}

struct Entry {
    tag: i32,
    ty: u32,
    offset: usize,
    count: u32,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    coldpatch_disk::bytes::be_u32(b, at).ok()
}

pub fn parse(blob: &[u8]) -> Result<RpmHeader, String> {
    let il = be32(blob, 0).ok_or("header blob shorter than 8 bytes")?;
    let dl = be32(blob, 4).ok_or("header blob shorter than 8 bytes")?;
    if il == 0 || il > MAX_TAGS {
        return Err(format!("header index count {il} outside 1..={MAX_TAGS}"));
    }
    if dl > MAX_DATA {
        return Err(format!("header data length {dl} exceeds {MAX_DATA}"));
    }
    let index_end = 8 + 16 * il as usize;
    let data = blob
        .get(index_end..index_end + dl as usize)
        .ok_or_else(|| {
            format!(
                "header blob of {} bytes is shorter than its index says",
                blob.len()
            )
        })?;
    let mut entries = Vec::with_capacity(il as usize);
    for i in 0..il as usize {
        let at = 8 + 16 * i;
        // `blob` holds at least index_end bytes, so these four reads succeed.
        let tag = be32(blob, at).unwrap_or(0) as i32;
        let ty = be32(blob, at + 4).unwrap_or(0);
        let offset = be32(blob, at + 8).unwrap_or(0) as i32;
        let count = be32(blob, at + 12).unwrap_or(0);
        if offset < 0 || offset as u32 > dl {
            return Err(format!("tag {tag}: data offset {offset} outside 0..={dl}"));
        }
        entries.push(Entry {
            tag,
            ty,
            offset: offset as usize,
            count,
        });
    }

    let string = |e: &Entry| -> Result<String, String> {
        if !matches!(e.ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(format!("tag {} has type {}, not a string", e.tag, e.ty));
        }
        let rest = &data[e.offset..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("tag {}: string is not terminated", e.tag))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let int32 = |e: &Entry| -> Result<u32, String> {
        if e.ty != TYPE_INT32 || e.count == 0 {
            return Err(format!("tag {} has type {}, not int32", e.tag, e.ty));
        }
        be32(data, e.offset).ok_or_else(|| format!("tag {}: int32 past the data", e.tag))
    };

    let mut h = RpmHeader::default();
    let (mut name, mut version, mut release) = (None, None, None);
    for e in &entries {
        match e.tag {
            TAG_NAME => name = Some(string(e)?),
            TAG_VERSION => version = Some(string(e)?),
            TAG_RELEASE => release = Some(string(e)?),
            TAG_EPOCH => h.epoch = Some(int32(e)?),
            TAG_ARCH => h.arch = Some(string(e)?),
            TAG_SOURCERPM => h.sourcerpm = Some(string(e)?),
            TAG_SIZE => h.size = Some(int32(e)?),
            TAG_LICENSE => h.license = Some(string(e)?),
            TAG_VENDOR => h.vendor = Some(string(e)?),
            TAG_SUMMARY => h.summary = Some(string(e)?),
            TAG_MODULARITYLABEL => h.modularitylabel = Some(string(e)?),
            TAG_SIGMD5 if e.ty == TYPE_BIN => {
                let n = e.count as usize;
                h.sigmd5 = data
                    .get(e.offset..e.offset + n)
                    .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
            }
            _ => {}
        }
    }
    // rpm itself stores "(none)" for packages without a source rpm (gpg-pubkey).
    if h.sourcerpm.as_deref() == Some("(none)") {
        h.sourcerpm = None;
    }
    h.name = name.ok_or("header has no NAME")?;
    h.version = version.ok_or("header has no VERSION")?;
    h.release = release.ok_or("header has no RELEASE")?;
    Ok(h)
}
