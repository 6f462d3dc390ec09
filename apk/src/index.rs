//! A repository index, `<arch>/APKINDEX.tar.gz`: a signature member, then a gzip member
//! of a tar holding `DESCRIPTION` and `APKINDEX` (one stanza per package, the fields of
//! [`crate::Info::index_stanza`]), signed as a package's control member is.

use crate::{ApkError, Info, Key};

/// The signed index of `packages`.
pub fn write(packages: &[Info], description: &str, key: &Key) -> Result<Vec<u8>, ApkError> {
    let mut text = String::new();
    for p in packages {
        text.push_str(&p.index_stanza());
        text.push('\n');
    }
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, content) in [
        ("DESCRIPTION", description.as_bytes()),
        ("APKINDEX", text.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        t.append_data(&mut h, name, content)?;
    }
    let index = t.into_inner()?.finish()?;
    let (sig_name, sig) = key.sign(&index)?;
    let mut out = crate::pkg::cut_targz(&[(sig_name, sig, 0o644)])?;
    out.extend_from_slice(&index);
    Ok(out)
}
