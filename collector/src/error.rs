//! The collector's error: what stopped a whole scan. Per-file problems are not errors;
//! they become [`crate::model::Unknown`] entries.

use std::path::PathBuf;

pub use coldpatch_disk::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Disk(#[from] coldpatch_disk::DiskError),
    #[error("{image}: no root filesystem found (volumes: {found})")]
    NoRoot { image: PathBuf, found: String },
    #[error("{image}: the root filesystem is on {found}, which needs the libguestfs fallback (drop --no-guestfs)")]
    NeedsGuestfs { image: PathBuf, found: String },
    #[error("{image}: {what} exceeds the limit of {limit}")]
    Limit {
        image: PathBuf,
        what: String,
        limit: u64,
    },
}

impl CollectError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CollectError::Disk(e) => e.kind(),
            CollectError::NoRoot { .. } => ErrorKind::InvalidFormat,
            CollectError::NeedsGuestfs { .. } => ErrorKind::Unsupported,
            CollectError::Limit { .. } => ErrorKind::LimitExceeded,
        }
    }
}
