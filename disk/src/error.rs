//! The disk crate's one error type: what failed, on which image, where.
//!
//! Messages never repeat their cause; callers print the whole `source()` chain.

use std::path::PathBuf;

/// A small, stable classification that the CLI and web map to messages and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host could not read a file.
    Io,
    /// The bytes are not an image or filesystem this crate understands.
    InvalidFormat,
    /// A real format that is not read natively (vmdk, vhdx, encryption, ...).
    Unsupported,
    /// The format is recognised but a structure in it is inconsistent.
    Corrupt,
    /// A header asks for more than the configured limits allow.
    LimitExceeded,
    /// A running VM holds the image open.
    InUse,
    /// A backing file is missing or outside the allowed image roots.
    Backing,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{image}: cannot open")]
    Open {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{image}: read of {len} bytes at offset {offset} failed")]
    Read {
        image: PathBuf,
        offset: u64,
        len: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("{image}: {what} is not supported natively; {hint}")]
    Unsupported {
        image: PathBuf,
        what: String,
        hint: &'static str,
    },
    #[error("{image}: corrupt {format}: {what}")]
    Corrupt {
        image: PathBuf,
        format: &'static str,
        what: String,
    },
    #[error("{image}: {what} exceeds the limit of {limit}")]
    Limit {
        image: PathBuf,
        what: String,
        limit: u64,
    },
    #[error(
        "{image}: in use by a running VM (qemu holds a lock on it); stop the VM or pass --force"
    )]
    InUse { image: PathBuf },
    #[error("{image}: not a regular file{}", if *block { " or block device" } else { "" })]
    NotAFile { image: PathBuf, block: bool },
    #[error("{image}: backing file {backing:?} {reason}")]
    Backing {
        image: PathBuf,
        backing: String,
        reason: String,
    },
    #[error("{image}: partition {partition}: cannot read the ext filesystem")]
    Ext4 {
        image: PathBuf,
        partition: String,
        #[source]
        source: ext4_view::Ext4Error,
    },
    #[error("{image}: the libguestfs fallback failed")]
    Guestfs {
        image: PathBuf,
        #[source]
        source: crate::guestfs::GuestfsError,
    },
    #[error("{image}: no filesystem found that coldpatch can read natively ({found})")]
    NoFilesystem { image: PathBuf, found: String },
}

impl DiskError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DiskError::Open { .. } | DiskError::Read { .. } | DiskError::NotAFile { .. } => {
                ErrorKind::Io
            }
            DiskError::Unsupported { .. } => ErrorKind::Unsupported,
            DiskError::Corrupt { .. } | DiskError::Ext4 { .. } => ErrorKind::Corrupt,
            DiskError::Limit { .. } => ErrorKind::LimitExceeded,
            DiskError::InUse { .. } => ErrorKind::InUse,
            DiskError::Backing { .. } => ErrorKind::Backing,
            DiskError::NoFilesystem { .. } => ErrorKind::InvalidFormat,
            DiskError::Guestfs { .. } => ErrorKind::Unsupported,
        }
    }
}

pub type Result<T, E = DiskError> = std::result::Result<T, E>;
