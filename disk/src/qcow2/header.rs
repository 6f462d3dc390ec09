//! The qcow2 header (versions 2 and 3) and its extensions, parsed from untrusted bytes.
//!
//! Layout reference: qemu's docs/interop/qcow2.txt. Every field that sizes an allocation
//! or a table is checked against [`Limits`] before anything is allocated.

use crate::bytes::{be_u32, be_u64, Short};

pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Bytes of header we read up front: the v3 header plus room for extensions.
pub const HEADER_READ: usize = 4096;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/// qemu's own cap on the L1 table (QCOW_MAX_L1_SIZE).
pub const MAX_L1_BYTES: u64 = 32 << 20;
pub const MAX_BACKING_NAME: u32 = 1023;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zlib,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub incompatible: u64,
    pub compression: Compression,
    pub backing_file: Option<String>,
    /// From the backing-format extension: `raw`, `qcow2`, ...
    pub backing_format: Option<String>,
    pub header_length: u32,
    /// Extensions we do not interpret, kept so callers can read their own (type, data).
    pub other_extensions: Vec<(u32, Vec<u8>)>,
}

/// Why a header was refused. Mapped to [`crate::DiskError`] by the caller, who knows the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Corrupt(String),
    Unsupported(&'static str),
    Encrypted,
    Limit(String, u64),
}

impl From<Short> for HeaderError {
    fn from(e: Short) -> HeaderError {
        HeaderError::Corrupt(format!("header: {e}"))
    }
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / 8
    }

    /// Parses the first [`HEADER_READ`] bytes (or the whole file if shorter) of an image.
    /// `file_len` bounds every offset the header names.
    pub fn parse(b: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        let corrupt = |s: String| Err(HeaderError::Corrupt(s));
        if b.len() < 72 {
            return corrupt(format!("header is {} bytes, needs at least 72", b.len()));
        }
        if &b[0..4] != MAGIC {
            return corrupt("bad magic".into());
        }
        let version = be_u32(b, 4)?;
        if version != 2 && version != 3 {
            return Err(HeaderError::Unsupported("a version other than 2 or 3"));
        }
        let backing_file_offset = be_u64(b, 8)?;
        let backing_file_size = be_u32(b, 16)?;
        let cluster_bits = be_u32(b, 20)?;
        let size = be_u64(b, 24)?;
        let crypt_method = be_u32(b, 32)?;
        let l1_size = be_u32(b, 36)?;
        let l1_table_offset = be_u64(b, 40)?;
        if crypt_method != 0 {
            return Err(HeaderError::Encrypted);
        }
        if !(9..=21).contains(&cluster_bits) {
            return corrupt(format!("cluster_bits {cluster_bits} outside 9..=21"));
        }
        let (incompatible, header_length) = if version == 3 {
            if b.len() < 104 {
                return corrupt(format!("v3 header is {} bytes, needs 104", b.len()));
            }
            (be_u64(b, 72)?, be_u32(b, 100)?)
        } else {
            (0, 72)
        };
        if version == 3 && (header_length < 104 || header_length as usize > b.len()) {
            return corrupt(format!("header_length {header_length}"));
        }
        if incompatible & !INCOMPAT_KNOWN != 0 {
            return Err(HeaderError::Unsupported(
                "unknown incompatible feature bits",
            ));
        }
        if incompatible & INCOMPAT_CORRUPT != 0 {
            return corrupt("image is marked corrupt by qemu".into());
        }
        if incompatible & INCOMPAT_DATA_FILE != 0 {
            return Err(HeaderError::Unsupported("external data files"));
        }
        if incompatible & INCOMPAT_EXTL2 != 0 {
            return Err(HeaderError::Unsupported(
                "extended L2 entries (subclusters)",
            ));
        }
        let mut compression = Compression::Zlib;
        if incompatible & INCOMPAT_COMPRESSION != 0 {
            if header_length < 105 {
                return corrupt("compression type bit set but header too short".into());
            }
            compression = match b[104] {
                0 => Compression::Zlib,
                1 => Compression::Zstd,
                _ => return Err(HeaderError::Unsupported("unknown compression type")),
            };
        }

        let l1_bytes = u64::from(l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(HeaderError::Limit("L1 table size".into(), MAX_L1_BYTES));
        }
        let cluster = 1u64 << cluster_bits;
        // Each L1 entry maps cluster/8 clusters; the table must cover the virtual size.
        let per_l1 = (cluster / 8) * cluster;
        let needed = size.div_ceil(per_l1);
        if u64::from(l1_size) < needed {
            return corrupt(format!(
                "L1 table has {l1_size} entries but the virtual size needs {needed}"
            ));
        }
        if l1_size > 0
            && (l1_table_offset % cluster != 0
                || l1_table_offset.saturating_add(l1_bytes) > file_len)
        {
            return corrupt(format!(
                "L1 table at {l1_table_offset} is misaligned or past end of file"
            ));
        }

        let backing_file = if backing_file_offset != 0 {
            if backing_file_size == 0 || backing_file_size > MAX_BACKING_NAME {
                return corrupt(format!("backing file name length {backing_file_size}"));
            }
            let start = usize::try_from(backing_file_offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(backing_file_size as usize);
            if end > b.len() {
                return corrupt("backing file name lies outside the first 4 KiB".into());
            }
            match std::str::from_utf8(&b[start..end]) {
                Ok(s) => Some(s.to_string()),
                Err(_) => return corrupt("backing file name is not UTF-8".into()),
            }
        } else {
            None
        };

        let mut hdr = Header {
            version,
            cluster_bits,
            size,
            l1_size,
            l1_table_offset,
            incompatible,
            compression,
            backing_file,
            backing_format: None,
            header_length,
            other_extensions: Vec::new(),
        };
        hdr.parse_extensions(
            b,
            if version == 3 {
                header_length as usize
            } else {
                72
            },
            backing_file_offset,
        )?;
        Ok(hdr)
    }

    fn parse_extensions(
        &mut self,
        b: &[u8],
        mut at: usize,
        backing_off: u64,
    ) -> Result<(), HeaderError> {
        // Extensions end at the end marker, at the backing file name, or at the read window.
        let limit = if backing_off != 0 {
            usize::try_from(backing_off).unwrap_or(b.len()).min(b.len())
        } else {
            b.len()
        };
        let mut count = 0;
        while at + 8 <= limit {
            let ty = be_u32(b, at)?;
            let len = be_u32(b, at + 4)? as usize;
            at += 8;
            if ty == EXT_END {
                return Ok(());
            }
            count += 1;
            if count > 64 {
                return Err(HeaderError::Limit("header extension count".into(), 64));
            }
            let end = at.checked_add(len).filter(|&e| e <= limit).ok_or_else(|| {
                HeaderError::Corrupt(format!("header extension 0x{ty:08x} runs past the header"))
            })?;
            let data = &b[at..end];
            match ty {
                EXT_BACKING_FORMAT => {
                    self.backing_format = Some(String::from_utf8_lossy(data).into_owned());
                }
                EXT_ENCRYPTION => return Err(HeaderError::Encrypted),
                EXT_DATA_FILE => return Err(HeaderError::Unsupported("external data files")),
                EXT_FEATURE_TABLE | EXT_BITMAPS => {}
                other => self.other_extensions.push((other, data.to_vec())),
            }
            // Extension data is padded to a multiple of 8 bytes.
            at = end.div_ceil(8) * 8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known-good v3 header: 1 GiB virtual size, 64 KiB clusters, no backing file.
    fn good() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(MAGIC); // magic
        b[4..8].copy_from_slice(&3u32.to_be_bytes()); // version
        b[8..16].copy_from_slice(&0u64.to_be_bytes()); // backing_file_offset: none
        b[16..20].copy_from_slice(&0u32.to_be_bytes()); // backing_file_size
        b[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster_bits: 64 KiB
        b[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes()); // size: 1 GiB
        b[32..36].copy_from_slice(&0u32.to_be_bytes()); // crypt_method: none
        b[36..40].copy_from_slice(&2u32.to_be_bytes()); // l1_size: 2 entries x 512 MiB
        b[40..48].copy_from_slice(&0x30000u64.to_be_bytes()); // l1_table_offset
        b[48..56].copy_from_slice(&0x10000u64.to_be_bytes()); // refcount_table_offset
        b[56..60].copy_from_slice(&1u32.to_be_bytes()); // refcount_table_clusters
        b[60..64].copy_from_slice(&0u32.to_be_bytes()); // nb_snapshots
        b[64..72].copy_from_slice(&0u64.to_be_bytes()); // snapshots_offset
        b[72..80].copy_from_slice(&0u64.to_be_bytes()); // incompatible_features
        b[80..88].copy_from_slice(&0u64.to_be_bytes()); // compatible_features
        b[88..96].copy_from_slice(&0u64.to_be_bytes()); // autoclear_features
        b[96..100].copy_from_slice(&4u32.to_be_bytes()); // refcount_order: 16 bits
        b[100..104].copy_from_slice(&112u32.to_be_bytes()); // header_length
        b[104] = 0; // compression_type: zlib
        b[112..120].copy_from_slice(&[0; 8]); // end of extensions
        b
    }
    const FILE_LEN: u64 = 0x40000;

    fn set_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn set_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn parses_known_good_header() {
        let h = Header::parse(&good(), FILE_LEN).expect("good header");
        assert_eq!(h.version, 3);
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.size, 1 << 30);
        assert_eq!(h.l1_size, 2);
        assert_eq!(h.compression, Compression::Zlib);
        assert_eq!(h.backing_file, None);
    }

    #[test]
    fn rejects_bad_magic() {
        let mut b = good();
        b[3] = 0;
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt("bad magic".into()))
        );
    }

    #[test]
    fn rejects_version_4() {
        let mut b = good();
        set_u32(&mut b, 4, 4);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Unsupported("a version other than 2 or 3"))
        );
    }

    #[test]
    fn rejects_cluster_bits_out_of_range() {
        let mut b = good();
        set_u32(&mut b, 20, 22);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(
                "cluster_bits 22 outside 9..=21".into()
            ))
        );
    }

    #[test]
    fn rejects_encryption() {
        let mut b = good();
        set_u32(&mut b, 32, 2);
        assert_eq!(Header::parse(&b, FILE_LEN), Err(HeaderError::Encrypted));
    }

    #[test]
    fn rejects_l1_table_too_small_for_size() {
        let mut b = good();
        set_u32(&mut b, 36, 1);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(
                "L1 table has 1 entries but the virtual size needs 2".into()
            ))
        );
    }

    #[test]
    fn rejects_huge_l1_before_allocating() {
        let mut b = good();
        set_u32(&mut b, 36, u32::MAX);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Limit("L1 table size".into(), MAX_L1_BYTES))
        );
    }

    #[test]
    fn rejects_l1_past_end_of_file() {
        let mut b = good();
        set_u64(&mut b, 40, FILE_LEN);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(format!(
                "L1 table at {FILE_LEN} is misaligned or past end of file"
            )))
        );
    }

    #[test]
    fn rejects_extended_l2() {
        let mut b = good();
        set_u64(&mut b, 72, INCOMPAT_EXTL2);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Unsupported(
                "extended L2 entries (subclusters)"
            ))
        );
    }

    #[test]
    fn rejects_image_marked_corrupt() {
        let mut b = good();
        set_u64(&mut b, 72, INCOMPAT_CORRUPT);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(
                "image is marked corrupt by qemu".into()
            ))
        );
    }

    #[test]
    fn reads_zstd_compression_type() {
        let mut b = good();
        set_u64(&mut b, 72, INCOMPAT_COMPRESSION);
        b[104] = 1;
        assert_eq!(
            Header::parse(&b, FILE_LEN).map(|h| h.compression),
            Ok(Compression::Zstd)
        );
    }

    #[test]
    fn reads_backing_name_and_format_extension() {
        let mut b = good();
        // extension: backing format "qcow2" (5 bytes, padded to 8), then end marker
        set_u32(&mut b, 112, 0xe279_2aca);
        set_u32(&mut b, 116, 5);
        b[120..125].copy_from_slice(b"qcow2");
        b[128..136].copy_from_slice(&[0; 8]);
        b[200..208].copy_from_slice(b"base.img");
        set_u64(&mut b, 8, 200);
        set_u32(&mut b, 16, 8);
        let h = Header::parse(&b, FILE_LEN).expect("good header with backing");
        assert_eq!(h.backing_file.as_deref(), Some("base.img"));
        assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
    }

    #[test]
    fn rejects_backing_name_outside_header() {
        let mut b = good();
        set_u64(&mut b, 8, 500);
        set_u32(&mut b, 16, 100);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(
                "backing file name lies outside the first 4 KiB".into()
            ))
        );
    }

    #[test]
    fn rejects_extension_running_past_header() {
        let mut b = good();
        set_u32(&mut b, 112, 0x1234_5678);
        set_u32(&mut b, 116, 10_000);
        assert_eq!(
            Header::parse(&b, FILE_LEN),
            Err(HeaderError::Corrupt(
                "header extension 0x12345678 runs past the header".into()
            ))
        );
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        for n in 0..120 {
            let _ = Header::parse(&good()[..n], FILE_LEN);
        }
    }
}
