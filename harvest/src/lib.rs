//! Harvest: installed packages of a stored image version rebuilt into package files that
//! `repo index` and `patch` accept, from what the image holds, with nothing of the guest
//! run. A newer image of a distribution (a fresh golden image, a patched sibling) is then a
//! repository for an offline site that has no other.
//!
//! The image is read natively (the collector's root, read-only) at the version the catalog
//! scanned with every file hashed, and only while its files are the ones scanned (the
//! fingerprint). Every file's content is checked against that scan's SHA-256 as it is read,
//! and against the package manager's own record of it; a file the package lists that the
//! image no longer holds, or holds changed (a conffile edited locally), refuses the package
//! unless the caller allows it, and is reported either way. Each package file says where
//! it came from (image, version, check value).
//!
//! dpkg (`dpkg.rs`, what `dpkg-repack` does) and apk (`apk.rs`, signed with the catalog's
//! key).

pub mod apk;
pub mod dpkg;
mod tree;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use coldpatch_catalog::{Catalog, CatalogError, Fingerprint};
use coldpatch_collector::{CollectError, PackageKind};
use coldpatch_disk::{Disk, DiskError, GuestFs, OpenOptions};
use serde::Serialize;

/// What to harvest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Package names (`name` or `name:arch`); empty: every installed package.
    pub packages: Vec<String>,
    /// Build a package even when files it lists are missing or changed in the image.
    pub allow_modified: bool,
}

/// Where harvested packages came from; written into each package file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Origin {
    pub image: String,
    pub version: u32,
    /// The version's check value (hex), when it has one (version 0 has none).
    pub check: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Harvested {
    pub package: String,
    pub version: String,
    pub arch: String,
    /// The package file, in the output directory.
    pub file: PathBuf,
    pub sha256: String,
    /// Entries of its data archive.
    pub entries: usize,
    /// What differed from the package manager's record (only with `allow_modified`).
    pub modified: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub package: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub origin: Origin,
    pub harvested: Vec<Harvested>,
    pub refused: Vec<Refused>,
}

#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error("{image}: {why}")]
    Image { image: String, why: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HarvestError {
    fn io(path: &Path, source: std::io::Error) -> HarvestError {
        HarvestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Harvests packages of `image` (a catalog key) at `version` (default: the current one)
/// into `out`, a directory (made if missing).
pub fn harvest(
    catalog: &Catalog,
    image: &str,
    version: Option<u32>,
    opts: &Options,
    out: &Path,
) -> Result<Report, HarvestError> {
    let img = catalog.image(image)?;
    let refuse = |why: String| HarvestError::Image {
        image: img.path.clone(),
        why,
    };
    let number = version.unwrap_or(img.current_version);
    let versions = catalog.versions_of(&img)?;
    let v = versions
        .iter()
        .find(|v| v.number == number)
        .ok_or_else(|| refuse(format!("has no version {number}")))?;
    let scan_id = v
        .scan
        .or((number == img.current_version)
            .then_some(img.current_scan)
            .flatten())
        .ok_or_else(|| refuse(format!("version {number} was never collected")))?;
    let scan = catalog.scan(scan_id)?;
    if !(scan.options.files && scan.options.hash) {
        return Err(refuse(format!(
            "version {number} was collected without every file hashed; collect it again (without --no-files)"
        )));
    }
    let inv = catalog.inventory(scan_id, true)?;
    // Only what exists: an image never patched has no versions directory yet.
    let mut roots = catalog.backing_roots(&img, &inv);
    roots.retain(|r| r.is_dir());
    let disk = Disk::open(
        Path::new(&v.file),
        &OpenOptions {
            image_roots: roots,
            ..OpenOptions::default()
        },
    )?;
    let chain: Vec<PathBuf> = disk.chain.iter().map(|l| l.path.clone()).collect();
    let fp = Fingerprint::of(&chain).map_err(|e| HarvestError::io(Path::new(&v.file), e))?;
    if fp != scan.fingerprint {
        return Err(refuse(format!(
            "version {number}'s files changed since they were collected; collect it again"
        )));
    }
    let (_, mut fs) = coldpatch_collector::root::find_root(&disk, false)?;
    std::fs::create_dir_all(out).map_err(|e| HarvestError::io(out, e))?;
    let origin = Origin {
        image: img.path.clone(),
        version: number,
        check: v.check.clone(),
    };
    match inv.packages.first().map(|p| p.kind) {
        Some(PackageKind::Deb) => {
            let (harvested, refused) = dpkg::harvest(fs.as_mut(), &inv, opts, &origin, out)?;
            Ok(Report {
                origin,
                harvested,
                refused,
            })
        }
        Some(PackageKind::Apk) => {
            let key = catalog.signing_key()?;
            let (harvested, refused) = apk::harvest(fs.as_mut(), &inv, opts, &origin, &key, out)?;
            Ok(Report {
                origin,
                harvested,
                refused,
            })
        }
        Some(kind) => Err(refuse(format!(
            "harvests dpkg and apk packages, not {}",
            kind.as_str()
        ))),
        None => Err(refuse("holds no packages".to_string())),
    }
}

/// Reads a guest file the walk recorded as a regular file, at most `max` bytes.
pub(crate) fn read(fs: &mut dyn GuestFs, path: &str, max: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    fs.open(path.as_bytes())
        .map_err(|e| e.to_string())?
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{path}: {e}"))?;
    if out.len() as u64 > max {
        return Err(format!("{path} is larger than {max} bytes"));
    }
    Ok(out)
}
