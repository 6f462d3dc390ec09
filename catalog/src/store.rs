//! The sled-backed store. Trees: `images` (id -> ImageRecord), `paths` (path -> image id),
//! `scans` (id -> ScanRecord), `image_scans` (image id ++ scan id -> ()), `inventories`
//! and `files` (scan id -> zstd-compressed JSON). Feeds and advisories: see feeds.rs.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use coldpatch_collector::{AnalyzerInfo, FileRecord, Inventory, Package, StampInfo};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog at {dir} is in use by another coldpatch process")]
    Locked { dir: PathBuf },
    #[error("catalog at {dir}: storage failed")]
    Store {
        dir: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("catalog at {dir}: stored record {what} is unreadable")]
    Corrupt { dir: PathBuf, what: String },
    /// A scan's consumer could not take more output (the reader went away).
    #[error("output closed")]
    Output,
    #[error("no repository {0} in the catalog; run `coldpatch repo index {0}`")]
    NoRepo(String),
    #[error("no image {0} in the catalog")]
    NoImage(String),
    #[error("{0} has no recorded scan; run `coldpatch collect` first")]
    NotCollected(String),
    #[error("no run {0} in the catalog")]
    NoRun(String),
    #[error("no token {0} in the catalog")]
    NoToken(String),
    #[error("no schedule {0} in the catalog")]
    NoSchedule(String),
    #[error("{image}: version {base} was patched, but version {current} is current now")]
    Moved {
        image: String,
        base: u32,
        current: u32,
    },
    #[error("{image} has no version {version}")]
    NoVersion { image: String, version: u32 },
    #[error("{0}: the current version has no earlier version to return to")]
    NoParent(String),
    #[error("invalid path pattern {pattern:?}")]
    Pattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

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

pub struct Catalog {
    dir: PathBuf,
    db: sled::Db,
    images: sled::Tree,
    paths: sled::Tree,
    scans: sled::Tree,
    image_scans: sled::Tree,
    pub(crate) inventories: sled::Tree,
    files: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) feeds: sled::Tree,
    pub(crate) advisories: sled::Tree,
    pub(crate) repos: sled::Tree,
    pub(crate) runs: sled::Tree,
    pub(crate) run_images: sled::Tree,
    pub(crate) events: sled::Tree,
    pub(crate) tokens: sled::Tree,
    pub(crate) schedules: sled::Tree,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Catalog> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|source| match source {
                sled::Error::Io(ref e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("lock") =>
                {
                    CatalogError::Locked {
                        dir: dir.to_path_buf(),
                    }
                }
                source => CatalogError::Store {
                    dir: dir.to_path_buf(),
                    source,
                },
            })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|source| CatalogError::Store {
                dir: dir.to_path_buf(),
                source,
            })
        };
        Ok(Catalog {
            images: tree("images")?,
            paths: tree("paths")?,
            scans: tree("scans")?,
            image_scans: tree("image_scans")?,
            inventories: tree("inventories")?,
            files: tree("files")?,
            meta: tree("meta")?,
            feeds: tree("feeds")?,
            advisories: tree("advisories")?,
            repos: tree("repos")?,
            runs: tree("runs")?,
            run_images: tree("run_images")?,
            events: tree("events")?,
            tokens: tree("tokens")?,
            schedules: tree("schedules")?,
            db,
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn store_err(&self, source: sled::Error) -> CatalogError {
        CatalogError::Store {
            dir: self.dir.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            dir: self.dir.clone(),
            what: what.into(),
        }
    }

    pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|_| self.corrupt(what))
    }

    pub(crate) fn packed<T: Serialize>(v: &T) -> Vec<u8> {
        // Serializing our own plain structs cannot fail; compression of a buffer in memory
        // cannot either.
        let json = serde_json::to_vec(v).unwrap_or_default();
        zstd::bulk::compress(&json, 3).unwrap_or_default()
    }

    pub(crate) fn unpack<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T> {
        let json = zstd::stream::decode_all(bytes).map_err(|_| self.corrupt(what))?;
        self.decode(what, &json)
    }

    /// Every value of a key range, JSON-decoded.
    pub(crate) fn decoded<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        kvs: impl IntoIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<T>> {
        self.each_value(kvs, |v| self.decode(what, v))
    }

    /// Every value of a key range, zstd-unpacked and JSON-decoded.
    pub(crate) fn unpacked<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        kvs: impl IntoIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<T>> {
        self.each_value(kvs, |v| self.unpack(what, v))
    }

    fn each_value<T>(
        &self,
        kvs: impl IntoIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        read: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        kvs.into_iter()
            .map(|kv| {
                let (_, v) = kv.map_err(|e| self.store_err(e))?;
                read(&v)
            })
            .collect()
    }

    /// The next number of a named counter, starting at 1 (sled's own ids jump by large
    /// steps across restarts, which makes poor ids for people to type).
    pub(crate) fn next_id(&self, counter: &str) -> Result<u64> {
        let v = self
            .meta
            .update_and_fetch(counter, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(|e| self.store_err(e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map_or(1, u64::from_be_bytes))
    }

    pub fn image(&self, key: &str) -> Result<ImageRecord> {
        let id = match self
            .paths
            .get(key.as_bytes())
            .map_err(|e| self.store_err(e))?
        {
            Some(id) => id.to_vec(),
            None => match key.parse::<u64>() {
                Ok(n) => n.to_be_bytes().to_vec(),
                Err(_) => return Err(CatalogError::NoImage(key.to_string())),
            },
        };
        let rec = self
            .images
            .get(&id)
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| CatalogError::NoImage(key.to_string()))?;
        self.decode("image", &rec)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut out: Vec<ImageRecord> = self.decoded("image", &self.images)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub fn scan(&self, id: u64) -> Result<ScanRecord> {
        let v = self
            .scans
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| self.corrupt(format!("scan {id}")))?;
        self.decode("scan", &v)
    }

    /// Every scan of an image, oldest first.
    pub fn scans_of(&self, image_id: u64) -> Result<Vec<ScanRecord>> {
        let mut out = Vec::new();
        for kv in self.image_scans.scan_prefix(image_id.to_be_bytes()) {
            let (k, _) = kv.map_err(|e| self.store_err(e))?;
            let mut id = [0u8; 8];
            id.copy_from_slice(
                k.get(8..16)
                    .ok_or_else(|| self.corrupt("image_scans key"))?,
            );
            out.push(self.scan(u64::from_be_bytes(id))?);
        }
        Ok(out)
    }

    /// The stored scan that can stand for a new one: same path, same fingerprint, same
    /// analyzer versions, and at least the requested detail.
    pub fn unchanged(
        &self,
        path: &str,
        fp: &Fingerprint,
        analyzers: &[AnalyzerInfo],
        want: ScanOptions,
    ) -> Result<Option<ScanRecord>> {
        let Ok(img) = self.image(path) else {
            return Ok(None);
        };
        let Some(sid) = img.current_scan else {
            return Ok(None);
        };
        let scan = self.scan(sid)?;
        Ok(
            (scan.fingerprint == *fp && scan.analyzers == analyzers && scan.options.covers(want))
                .then_some(scan),
        )
    }

    /// An image's record and the inventory of its current version (without files).
    pub fn current_inventory(&self, key: &str) -> Result<(ImageRecord, Inventory)> {
        let img = self.image(key)?;
        let scan = img
            .current_scan
            .ok_or_else(|| CatalogError::NotCollected(key.to_string()))?;
        let inv = self.inventory(scan, false)?;
        Ok((img, inv))
    }

    /// The inventory of a scan; files are loaded only when asked for.
    pub fn inventory(&self, scan_id: u64, with_files: bool) -> Result<Inventory> {
        let key = scan_id.to_be_bytes();
        let v = self
            .inventories
            .get(key)
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| self.corrupt(format!("inventory {scan_id}")))?;
        let mut inv: Inventory = self.unpack("inventory", &v)?;
        if with_files {
            if let Some(f) = self.files.get(key).map_err(|e| self.store_err(e))? {
                inv.files = self.unpack("files", &f)?;
            }
        }
        Ok(inv)
    }

    /// Records a finished scan and makes it the image's current one, atomically.
    pub fn record(
        &self,
        inv: &Inventory,
        fp: Fingerprint,
        options: ScanOptions,
    ) -> Result<ScanRecord> {
        let scan_id = self.next_id("scan")?;
        let existing = self.image(&inv.image.path).ok();
        let image_id = match &existing {
            Some(r) => r.id,
            None => self.next_id("image")?,
        };
        let mut image = existing.unwrap_or(ImageRecord {
            id: image_id,
            path: inv.image.path.clone(),
            format: String::new(),
            virtual_size: 0,
            first_seen: now(),
            current_scan: None,
            versions: Vec::new(),
            current_version: 0,
        });
        if image.versions.is_empty() {
            image.format.clone_from(&inv.image.format);
            image.virtual_size = inv.image.virtual_size;
        }
        image.current_scan = Some(scan_id);
        // A patched image is collected through its current version's file.
        let current = image.current_version;
        if let Some(v) = image.versions.iter_mut().find(|v| v.number == current) {
            v.scan = Some(scan_id);
        }
        let scan = self.write_scan(scan_id, image_id, inv, fp, options)?;
        let key = scan_id.to_be_bytes();
        let image_json = serde_json::to_vec(&image).unwrap_or_default();
        let scan_json = serde_json::to_vec(&scan).unwrap_or_default();
        let mut link = image_id.to_be_bytes().to_vec();
        link.extend_from_slice(&key);
        let res: std::result::Result<(), TransactionError<()>> =
            (&self.images, &self.paths, &self.scans, &self.image_scans).transaction(
                |(images, paths, scans, links)| {
                    scans.insert(&key, scan_json.clone())?;
                    links.insert(link.clone(), vec![])?;
                    images.insert(&image_id.to_be_bytes(), image_json.clone())?;
                    paths.insert(image.path.as_bytes(), &image_id.to_be_bytes())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        self.committed(res)?;
        Ok(scan)
    }

    /// A scan's record, with its inventory and file list written under its id (which
    /// nothing refers to yet: the caller's transaction makes it visible).
    pub(crate) fn write_scan(
        &self,
        scan_id: u64,
        image_id: u64,
        inv: &Inventory,
        fp: Fingerprint,
        options: ScanOptions,
    ) -> Result<ScanRecord> {
        let scan = ScanRecord {
            id: scan_id,
            image_id,
            time: now(),
            duration_ms: inv.stats.duration_ms,
            options,
            fingerprint: fp,
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
        };
        let key = scan_id.to_be_bytes();
        let files = Self::packed(&inv.files);
        let without_files = Inventory {
            files: Vec::new(),
            ..inv.clone()
        };
        self.inventories
            .insert(key, Self::packed(&without_files))
            .map_err(|e| self.store_err(e))?;
        self.files
            .insert(key, files)
            .map_err(|e| self.store_err(e))?;
        Ok(scan)
    }

    pub(crate) fn trees(&self) -> (&sled::Tree, &sled::Tree, &sled::Tree, &sled::Tree) {
        (&self.images, &self.paths, &self.scans, &self.image_scans)
    }

    /// The catalog's directory (patch runs keep their image versions and locks beside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.store_err(e))?;
        Ok(())
    }

    /// A transaction's outcome as ours, flushed to disk when it went through.
    pub(crate) fn committed(
        &self,
        res: std::result::Result<(), TransactionError<()>>,
    ) -> Result<()> {
        res.map_err(|e| match e {
            TransactionError::Storage(s) => self.store_err(s),
            TransactionError::Abort(()) => self.corrupt("transaction aborted"),
        })?;
        self.flush()
    }

    /// The (image, version, scan) triples a query reads: every image or the named one,
    /// at its current version or at all of them.
    pub fn selection(
        &self,
        only: Option<&str>,
        versions: Versions,
    ) -> Result<Vec<(ImageRecord, u32, u64)>> {
        let images = match only {
            Some(k) => vec![self.image(k)?],
            None => self.images()?,
        };
        let mut out = Vec::new();
        for img in images {
            match versions {
                Versions::Current => {
                    if let Some(s) = img.current_scan {
                        let v = img.current_version;
                        out.push((img, v, s));
                    }
                }
                Versions::All => {
                    for v in img.all_versions() {
                        if let Some(s) = v.scan {
                            out.push((img.clone(), v.number, s));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Packages across the fleet: by exact name, and/or older than a version (compared by
    /// each package's own ecosystem rules).
    pub fn packages(
        &self,
        image: Option<&str>,
        versions: Versions,
        name: Option<&str>,
        older_than: Option<&str>,
    ) -> Result<Vec<PackageHit>> {
        let mut out = Vec::new();
        for (img, version, scan) in self.selection(image, versions)? {
            let inv = self.inventory(scan, false)?;
            for p in inv.packages {
                if name.is_some_and(|n| n != p.name) {
                    continue;
                }
                if let Some(v) = older_than {
                    if crate::version::compare(p.kind, &p.full_version(), v)
                        != std::cmp::Ordering::Less
                    {
                        continue;
                    }
                }
                out.push(PackageHit {
                    image: img.path.clone(),
                    version,
                    package: p,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.image, a.version, &a.package).cmp(&(&b.image, b.version, &b.package))
        });
        Ok(out)
    }

    /// Files across the fleet by path glob and/or SHA-256.
    pub fn files(
        &self,
        image: Option<&str>,
        versions: Versions,
        path_glob: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<Vec<FileHit>> {
        let matcher = match path_glob {
            Some(g) => Some(
                globset::GlobBuilder::new(g)
                    .literal_separator(false)
                    .build()
                    .map_err(|source| CatalogError::Pattern {
                        pattern: g.to_string(),
                        source,
                    })?
                    .compile_matcher(),
            ),
            None => None,
        };
        let sha = sha256.map(str::to_ascii_lowercase);
        let mut out = Vec::new();
        for (img, version, s) in self.selection(image, versions)? {
            let Some(blob) = self
                .files
                .get(s.to_be_bytes())
                .map_err(|e| self.store_err(e))?
            else {
                continue;
            };
            let files: Vec<FileRecord> = self.unpack("files", &blob)?;
            for f in files {
                if matcher.as_ref().is_some_and(|m| !m.is_match(&f.path)) {
                    continue;
                }
                if sha
                    .as_ref()
                    .is_some_and(|h| f.sha256.as_deref() != Some(h.as_str()))
                {
                    continue;
                }
                out.push(FileHit {
                    image: img.path.clone(),
                    version,
                    file: f,
                });
            }
        }
        Ok(out)
    }
}
