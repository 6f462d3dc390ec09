//! Local package repositories for offline patching: a directory of real `.deb` / `.rpm` /
//! `.apk` files, or a mirrored apt layout with `Packages` indices, read into one list of
//! installable packages with their relations. No storage here: the catalog keeps the
//! index, the patcher plans from it.
//!
//! `.deb` control data is read with `debian-packaging`, `.rpm` headers with `rpm`, `.apk`
//! `.PKGINFO` with `coldpatch-apk`,
//! `Packages` indices with `debian-packaging`'s control-file reader. When an index names
//! a file that is present, the file must match the index (size and SHA-256); a file that
//! does not is refused, since it is not the package the archive published.
//!
//! The readers (feature `read`, on by default) pull in `debian-packaging` and `rpm`;
//! crates that only keep or use an index (the catalog) take the model alone.

use coldpatch_collector::PackageKind;
use serde::{Deserialize, Serialize};

#[cfg(feature = "read")]
mod read;
#[cfg(feature = "read")]
pub use read::index;

/// Largest package file read.
pub const MAX_PACKAGE_BYTES: u64 = 4 << 30;
/// Largest `Packages` index read (decompressed).
pub const MAX_INDEX_BYTES: u64 = 1 << 30;
/// Most files looked at in a repository tree, and its deepest nesting.
pub const MAX_FILES: usize = 1_000_000;
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

#[cfg(feature = "read")]
pub(crate) fn unreadable(path: &std::path::Path, reason: impl Into<String>) -> RepoError {
    RepoError::Unreadable {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoPackage {
    pub kind: PackageKind,
    pub name: String,
    /// As the package manager prints it: deb `[epoch:]upstream[-revision]`, rpm
    /// `[epoch:]version-release`.
    pub version: String,
    pub arch: String,
    pub source_name: String,
    pub source_version: String,
    /// deb Depends / rpm Requires, one relation per entry as written (`libc6 (>= 2.14)`,
    /// `a | b`; rpm `name >= version`). rpmlib() capabilities are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_depends: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaks: Vec<String>,
    /// apk `install_if`: installed by apk once all of these are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install_if: Vec<String>,
    /// The package file, relative to the repository root; `None` when only an index
    /// names it and the file is not there.
    pub file: Option<String>,
    pub size: u64,
    pub sha256: Option<String>,
    /// The index that lists it, relative to the root, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub place: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoIndex {
    pub root: String,
    pub packages: Vec<RepoPackage>,
    pub rejected: Vec<Rejected>,
    /// `Packages` indices read.
    pub indices: usize,
}

impl RepoIndex {
    /// Every version of a package the repository offers.
    pub fn versions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RepoPackage> + 'a {
        self.packages.iter().filter(move |p| p.name == name)
    }
}
