//! A `.deb` with its control and data members stored uncompressed, for the appliance.
//! dpkg reads `control.tar` and `data.tar` as well as their compressed forms (deb(5)),
//! and under TCG the guest's xz decompression is a tenth of an install (8 copies of
//! debian-11-old without replay: 62.9 s with uncompressed members against 69.0 s). The
//! host decompresses each package file once per run, natively, from the staged copy whose
//! SHA-256 was checked; the contents dpkg unpacks are the same bytes.
//!
//! Read and written with the `ar` crate and the xz2, flate2 and zstd decoders. A file
//! that is not such an archive, or has a member compressed otherwise (bzip2, lzma), or
//! more than [`MAX_MEMBERS`] members, is left as it is: the caller uploads the original.

use std::io::{Read, Write};
use std::path::Path;

/// Most members read from one package file.
pub const MAX_MEMBERS: usize = 16;
/// Largest decompressed member.
pub const MAX_MEMBER: u64 = 4 << 30;

/// Writes `deb` with its members decompressed to `out`. `Ok(false)`: left as it is.
pub fn decompressed(deb: &Path, out: &Path) -> std::io::Result<bool> {
    let mut archive = ar::Archive::new(std::fs::File::open(deb)?);
    let mut members: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::new();
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry?;
        if members.len() == MAX_MEMBERS {
            return Ok(false);
        }
        let name = entry.header().identifier().to_vec();
        let mtime = entry.header().mtime();
        let text = String::from_utf8_lossy(&name).into_owned();
        let (plain, reader): (String, Box<dyn Read + '_>) = match text.rsplit_once('.') {
            Some((base, "xz")) if base.ends_with(".tar") => (
                base.to_string(),
                Box::new(xz2::read::XzDecoder::new(&mut entry)),
            ),
            Some((base, "gz")) if base.ends_with(".tar") => (
                base.to_string(),
                Box::new(flate2::read::GzDecoder::new(&mut entry)),
            ),
            Some((base, "zst")) if base.ends_with(".tar") => (
                base.to_string(),
                Box::new(zstd::stream::read::Decoder::new(&mut entry)?),
            ),
            Some((_, "bz2" | "lzma")) => return Ok(false),
            _ => (text, Box::new(&mut entry)),
        };
        let mut bytes = Vec::new();
        reader.take(MAX_MEMBER + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_MEMBER {
            return Ok(false);
        }
        members.push((plain.into_bytes(), bytes, mtime));
    }
    let names: Vec<&[u8]> = members.iter().map(|(n, _, _)| n.as_slice()).collect();
    if names.len() < 3
        || names[0] != b"debian-binary"
        || names[1] != b"control.tar"
        || names[2] != b"data.tar"
    {
        return Ok(false);
    }
    let mut b = ar::Builder::new(std::io::BufWriter::new(std::fs::File::create(out)?));
    for (name, bytes, mtime) in &members {
        let mut h = ar::Header::new(name.clone(), bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(*mtime);
        b.append(&h, bytes.as_slice())?;
    }
    b.into_inner()?.flush()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar_file(path: &Path, members: &[(&str, Vec<u8>)]) {
        let mut b = ar::Builder::new(std::fs::File::create(path).expect("create"));
        for (n, bytes) in members {
            let h = ar::Header::new(n.as_bytes().to_vec(), bytes.len() as u64);
            b.append(&h, bytes.as_slice()).expect("append");
        }
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(bytes).expect("xz");
        e.finish().expect("xz")
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gz");
        e.finish().expect("gz")
    }

    #[test]
    fn members_come_out_decompressed_in_order_and_other_packages_stay() {
        let d = tempfile::tempdir().expect("tmp");
        let deb = d.path().join("a.deb");
        ar_file(
            &deb,
            &[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.xz", xz(b"control bytes")),
                ("data.tar.xz", xz(b"data bytes")),
            ],
        );
        let out = d.path().join("plain.deb");
        assert!(decompressed(&deb, &out).expect("read"));
        let mut a = ar::Archive::new(std::fs::File::open(&out).expect("open"));
        let mut seen = Vec::new();
        while let Some(e) = a.next_entry() {
            let mut e = e.expect("entry");
            let name = String::from_utf8_lossy(e.header().identifier()).into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).expect("read");
            seen.push((name, b));
        }
        assert_eq!(
            seen,
            [
                ("debian-binary".to_string(), b"2.0\n".to_vec()),
                ("control.tar".to_string(), b"control bytes".to_vec()),
                ("data.tar".to_string(), b"data bytes".to_vec()),
            ]
        );

        let bz = d.path().join("b.deb");
        ar_file(
            &bz,
            &[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", gz(b"control bytes")),
                ("data.tar.bz2", Vec::new()),
            ],
        );
        assert!(!decompressed(&bz, &d.path().join("x.deb")).expect("read"));
        std::fs::write(d.path().join("not.deb"), b"plain text").expect("write");
        assert!(decompressed(&d.path().join("not.deb"), &d.path().join("y.deb")).is_err());
    }
}
