//! SHA-256 of content: of a reader, bounded or not, and of a host file. The one hasher
//! every crate uses (image files, package files, files put into guests, guest content).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Why hashing stopped.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("larger than the {0}-byte limit")]
    TooLarge(u64),
}

/// SHA-256 (hex) and length of everything `r` yields, reading through `buf`; with a
/// limit, stops with [`HashError::TooLarge`] past it.
pub fn sha256_reader(
    mut r: impl Read,
    buf: &mut [u8],
    limit: Option<u64>,
) -> Result<(String, u64), HashError> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok((hex::encode(h.finalize()), n)),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        n = n.saturating_add(k as u64);
        if let Some(max) = limit.filter(|&m| n > m) {
            return Err(HashError::TooLarge(max));
        }
        h.update(&buf[..k]);
    }
}

/// SHA-256 (hex) of a host file's bytes.
pub fn sha256_file(p: &Path) -> std::io::Result<String> {
    let f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 1 << 16];
    match sha256_reader(f, &mut buf, None) {
        Ok((hex, _)) => Ok(hex),
        Err(HashError::Io(e)) => Err(e),
        Err(e @ HashError::TooLarge(_)) => Err(std::io::Error::other(e)),
    }
}

/// SHA-256 (hex) of bytes in memory.
pub fn sha256_bytes(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}
