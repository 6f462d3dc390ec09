//! The records the catalog stores about images: the image, its versions and scans, and
//! the answers of fleet queries. Backends store them; nothing here knows how.

use std::path::PathBuf;

use coldpatch_collector::{AnalyzerInfo, FileRecord, Package, StampInfo};
use serde::{Deserialize, Serialize};

/// What identifies an unchanged image without reading it: every file of its backing chain
/// with size, modification time and inode. Any write to any of them changes this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(pub Vec<(String, u64, i128, u64)>);

impl Fingerprint {
    pub fn of(chain: &[PathBuf]) -> std::io::Result<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let mut v = Vec::with_capacity(chain.len());
        for p in chain {
            let m = std::fs::metadata(p)?;
            let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            v.push((p.display().to_string(), m.len(), mtime, m.ino()));
        }
        Ok(Fingerprint(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanOptions {
    pub files: bool,
    pub hash: bool,
}

impl ScanOptions {
    /// A stored scan serves a request if it recorded at least as much.
    pub fn covers(self, want: ScanOptions) -> bool {
        (self.files || !want.files) && (self.hash || !want.hash)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: u64,
    pub path: String,
    pub format: String,
    pub virtual_size: u64,
    pub first_seen: u64,
    /// The scan of the current version: every query reads this one.
    pub current_scan: Option<u64>,
    /// Versions made by patch runs; empty until the first one, when version 0 (the image
    /// file itself) is written down too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionRecord>,
    #[serde(default)]
    pub current_version: u32,
}

/// One state of an image: the original file (version 0) or a qcow2 overlay a patch run
/// made on top of its parent's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub number: u32,
    /// The file that holds this version.
    pub file: String,
    pub parent: Option<u32>,
    pub scan: Option<u64>,
    /// The run that made it.
    pub run: Option<String>,
    pub created: u64,
    /// Set when a rollback left this version.
    #[serde(default)]
    pub rolled_back: bool,
    /// The check value, hex (see versions.rs); `Catalog::versions_of` fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

impl ImageRecord {
    /// Every version, version 0 included even before any patch run.
    pub fn all_versions(&self) -> Vec<VersionRecord> {
        if !self.versions.is_empty() {
            return self.versions.clone();
        }
        vec![VersionRecord {
            number: 0,
            file: self.path.clone(),
            parent: None,
            scan: self.current_scan,
            run: None,
            created: self.first_seen,
            rolled_back: false,
            check: None,
        }]
    }

    /// The file that holds the current version.
    pub fn current_file(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.number == self.current_version)
            .map_or(self.path.as_str(), |v| v.file.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub id: u64,
    pub image_id: u64,
    /// Seconds since the epoch.
    pub time: u64,
    pub duration_ms: u64,
    pub options: ScanOptions,
    pub fingerprint: Fingerprint,
    pub analyzers: Vec<AnalyzerInfo>,
    pub os: Option<String>,
    pub packages: usize,
    pub files: usize,
    pub unknowns: usize,
    pub bytes_read: u64,
    /// The version stamp the collected file carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageHit {
    pub image: String,
    /// The image version the package is in.
    #[serde(default)]
    pub version: u32,
    pub package: Package,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHit {
    pub image: String,
    #[serde(default)]
    pub version: u32,
    pub file: FileRecord,
}

/// Which versions of each image a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Versions {
    /// The current version: what the image is now.
    #[default]
    Current,
    /// Every version that has a scan, oldest first.
    All,
}

impl ScanRecord {
    /// The record of a scan of `inv`, taken now.
    pub fn of(
        id: u64,
        image_id: u64,
        inv: &coldpatch_collector::Inventory,
        fingerprint: Fingerprint,
        options: ScanOptions,
    ) -> ScanRecord {
        ScanRecord {
            id,
            image_id,
            time: crate::clock::now(),
            duration_ms: inv.stats.duration_ms,
            options,
            fingerprint,
            analyzers: inv.analyzers.clone(),
            os: inv.os.as_ref().map(|o| {
                if o.pretty_name.is_empty() {
                    format!("{} {}", o.id, o.version_id)
                } else {
                    o.pretty_name.clone()
                }
            }),
            packages: inv.packages.len(),
            files: inv.files.len(),
            unknowns: inv.unknowns.len(),
            bytes_read: inv.stats.bytes_read_from_image,
            stamp: inv.image.stamp.clone(),
        }
    }
}
