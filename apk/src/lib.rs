//! Alpine's apk v2 formats, the ones apk-tools 2 and 3 both read, and that Alpine 3.23
//! still installs from: the installed database (`lib/apk/db/installed`, `db.rs`), package
//! files (`pkg.rs`: a signature, a control and a data gzip member, read and written), the
//! repository index `APKINDEX.tar.gz` (`index.rs`) and the RSA keys that sign both
//! (`key.rs`).
//!
//! Written here: no crate reads or writes apk packages or indexes. The pieces are crates
//! (`tar`, `flate2`, `rsa`, `sha1`, `sha2`, `base64`); what is ours is how apk-tools lays
//! them out (apk-package(5), apk-tools' `src/extract_v2.c`, abuild's `abuild-tar`):
//! concatenated gzip members, the first two of them "cut" tar archives (no end-of-archive
//! blocks, so the three read as one tar), a package's identity being the SHA-1 of its
//! control member, and its signature an RSA PKCS#1 v1.5 signature of that member.

pub mod db;
pub mod index;
pub mod key;
pub mod pkg;

pub use db::{Database, Entry, PathEntry};
pub use key::Key;
pub use pkg::{Built, Info};

/// Largest package or index file read, and largest member decompressed.
pub const MAX_FILE: u64 = 4 << 30;
/// Largest `.PKGINFO` or `APKINDEX` read.
pub const MAX_TEXT: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApkError {
    #[error("{0}")]
    Format(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("signing: {0}")]
    Key(String),
}

pub(crate) fn bad(why: impl Into<String>) -> ApkError {
    ApkError::Format(why.into())
}

/// apk's name for a SHA-1 checksum: `Q1` and its base64.
pub fn q1(sha1: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(sha1)
    )
}

/// The bytes of a `Q1…` checksum; `None` for any other form.
pub fn from_q1(q: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD
        .decode(q.strip_prefix("Q1")?)
        .ok()?;
    (b.len() == 20).then_some(b)
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}
