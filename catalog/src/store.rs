//! The catalog itself: one handle over a storage backend (`backend/`) and a state
//! directory (`state.rs`), and the questions about images and scans that every backend
//! answers the same way: which image a key names, its current inventory, the unchanged
//! scan that can stand for a new one, fleet package and file queries.

use std::collections::HashMap;
use std::path::Path;

use coldpatch_collector::{AnalyzerInfo, FileRecord, Inventory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{self, Backend, Expect, NewScan, Written};
use crate::clock::now;
use crate::error::{CatalogError, Result};
use crate::labels::Scope;
use crate::location::Location;
use crate::model::{
    FileHit, Fingerprint, ImageRecord, PackageHit, ScanOptions, ScanRecord, Versions,
};
use crate::state::StateDir;

pub struct Catalog {
    backend: std::sync::Arc<dyn Backend>,
    state: StateDir,
    /// The worker this process is (`coldpatch worker`): every event it writes names it.
    actor: Option<String>,
}

impl Catalog {
    /// Opens (or makes) the embedded catalog in `dir`, which is also its state directory.
    pub fn open(dir: &Path) -> Result<Catalog> {
        Ok(Catalog {
            backend: std::sync::Arc::new(backend::sled::Sled::open(dir)?),
            state: StateDir::new(dir),
            actor: None,
        })
    }

    /// Opens (or makes, migrating its schema) the catalog at `at`. The state directory
    /// defaults to a sled catalog's own directory; a PostgreSQL catalog has none unless
    /// given one, and then refuses what needs files (see [`StateDir::absent`]).
    pub fn connect(at: &Location, state: Option<&Path>) -> Result<Catalog> {
        match at {
            Location::Dir(dir) => Ok(Catalog {
                backend: std::sync::Arc::new(backend::sled::Sled::open(dir)?),
                state: StateDir::new(state.unwrap_or(dir)),
                actor: None,
            }),
            Location::Postgres(pg) => Ok(Catalog {
                backend: std::sync::Arc::new(backend::postgres::Postgres::open(pg)?),
                state: state.map_or_else(|| StateDir::absent(&at.describe()), StateDir::new),
                actor: None,
            }),
        }
    }

    /// The same catalog (one store, one state directory) as seen by a worker: every
    /// event written through it names the worker.
    pub fn acting_as(&self, worker: &str) -> Catalog {
        Catalog {
            backend: self.backend.clone(),
            state: self.state.clone(),
            actor: Some(worker.to_string()),
        }
    }

    /// The worker this process is, if it is one.
    pub(crate) fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// What this catalog is, for messages.
    pub fn describe(&self) -> &str {
        self.backend.describe()
    }

    /// The backend's name: `sled` or `postgresql`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// A number that moves whenever any process wrote images or feeds (see
    /// `Backend::changes`).
    pub fn changes(&self) -> Result<u64> {
        self.backend.changes()
    }

    /// The version of the stored layout.
    pub fn schema_version(&self) -> Result<i64> {
        self.backend.schema_version()
    }

    /// Where the catalog's files (versions, locks, uploads) live.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    pub(crate) fn db(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            catalog: self.describe().to_string(),
            what: what.into(),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|_| self.corrupt(what))
    }

    pub(crate) fn encode<T: Serialize>(&self, what: &str, v: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(v).map_err(|e| CatalogError::Store {
            catalog: self.describe().to_string(),
            source: format!("cannot encode {what}: {e}").into(),
        })
    }

    pub(crate) fn next_id(&self, counter: &str) -> Result<u64> {
        self.db().next_id(counter)
    }

    /// The image a key names: its path, else its id, else its display name (names never
    /// start with '/', so an absolute path that is not in the catalog is never looked up
    /// as one, and a new image costs no reading of the fleet).
    pub fn image(&self, key: &str) -> Result<ImageRecord> {
        let missing = || CatalogError::NoImage(key.to_string());
        let id = match self.db().image_id(key)? {
            Some(id) => id,
            None => match key.parse::<u64>() {
                Ok(id) => id,
                Err(_) if !key.starts_with('/') => {
                    let images = self.db().images()?;
                    let names = crate::labels::display_names(&images, &self.tags()?);
                    return images
                        .into_iter()
                        .find(|i| names.get(&i.id).is_some_and(|n| n == key))
                        .ok_or_else(missing);
                }
                Err(_) => return Err(missing()),
            },
        };
        self.db().image(id)?.ok_or_else(missing)
    }

    /// Every image, by path.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut out = self.db().images()?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub fn scan(&self, id: u64) -> Result<ScanRecord> {
        self.db()
            .scan(id)?
            .ok_or_else(|| self.corrupt(format!("scan {id}")))
    }

    /// Every scan of an image, oldest first.
    pub fn scans_of(&self, image_id: u64) -> Result<Vec<ScanRecord>> {
        self.db()
            .scan_ids(image_id)?
            .into_iter()
            .map(|id| self.scan(id))
            .collect()
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

    /// A view of a scan's stored inventory (without files): the whole [`Inventory`], or
    /// a type that decodes only the fields a reader needs.
    pub(crate) fn inventory_as<T: DeserializeOwned>(&self, scan_id: u64) -> Result<T> {
        let json = self
            .db()
            .inventory_json(scan_id)?
            .ok_or_else(|| self.corrupt(format!("inventory {scan_id}")))?;
        self.decode("inventory", &json)
    }

    /// A scan's file list (empty for a scan without files).
    pub fn scan_files(&self, scan_id: u64) -> Result<Vec<FileRecord>> {
        match self.db().files_json(scan_id)? {
            Some(json) => self.decode("files", &json),
            None => Ok(Vec::new()),
        }
    }

    /// The inventory of a scan; files are loaded only when asked for.
    pub fn inventory(&self, scan_id: u64, with_files: bool) -> Result<Inventory> {
        let mut inv: Inventory = self.inventory_as(scan_id)?;
        if with_files {
            inv.files = self.scan_files(scan_id)?;
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
        self.record_from(inv, fp, options, None)
    }

    /// [`Catalog::record`] of an inventory read from version `from` of the image (`None`:
    /// whichever is current). Another process may record or commit the same image
    /// meanwhile: the write is conditional on the image being as it was read, and is made
    /// again on what is stored then, unless the image moved off `from`
    /// ([`CatalogError::Moved`]: the inventory no longer describes the current version).
    pub fn record_from(
        &self,
        inv: &Inventory,
        fp: Fingerprint,
        options: ScanOptions,
        from: Option<u32>,
    ) -> Result<ScanRecord> {
        const ATTEMPTS: usize = 8;
        let scan_id = self.next_id("scan")?;
        let mut tries = 0;
        loop {
            tries += 1;
            // Only "no such image" means a new one: a storage failure must not make a
            // second record for an image the catalog already holds.
            let existing = match self.image(&inv.image.path) {
                Ok(r) => Some(r),
                Err(CatalogError::NoImage(_)) => None,
                Err(e) => return Err(e),
            };
            let current = existing.as_ref().map_or(0, |r| r.current_version);
            if let Some(base) = from.filter(|&b| b != current) {
                return Err(CatalogError::Moved {
                    image: inv.image.path.clone(),
                    base,
                    current,
                });
            }
            let expect = match &existing {
                Some(r) => Expect::Version(r.current_version),
                None => Expect::NewImage,
            };
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
            let scan = ScanRecord::of(scan_id, image_id, inv, fp.clone(), options);
            match self.write_scan(&image, &scan, inv, None, expect)? {
                Written::Yes => return Ok(scan),
                Written::Moved(_) if tries < ATTEMPTS => continue,
                Written::Moved(current) => {
                    return Err(CatalogError::Moved {
                        image: inv.image.path.clone(),
                        base: image.current_version,
                        current,
                    })
                }
            }
        }
    }

    /// Writes a scan with its inventory and points `image` at it, in one transaction,
    /// if `expect` holds.
    pub(crate) fn write_scan(
        &self,
        image: &ImageRecord,
        scan: &ScanRecord,
        inv: &Inventory,
        run_image: Option<&crate::RunImage>,
        expect: Expect,
    ) -> Result<Written> {
        let files = self.encode("files", &inv.files)?;
        let without_files = Inventory {
            files: Vec::new(),
            ..inv.clone()
        };
        let inventory = self.encode("inventory", &without_files)?;
        self.db().record_scan(NewScan {
            image,
            scan,
            inventory: &inventory,
            files: &files,
            run_image,
            inv,
            expect,
        })
    }

    /// The (image, version, scan) triples a query reads: the images of a scope, at their
    /// current version or at all of them.
    pub fn selection(
        &self,
        scope: &Scope,
        versions: Versions,
    ) -> Result<Vec<(ImageRecord, u32, u64)>> {
        let images = self.scoped(scope)?;
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
        scope: &Scope,
        versions: Versions,
        name: Option<&str>,
        older_than: Option<&str>,
    ) -> Result<Vec<PackageHit>> {
        let selected = self.selection(scope, versions)?;
        let older = |p: &coldpatch_collector::Package| {
            older_than.is_none_or(|v| {
                crate::version::compare(p.kind, &p.full_version(), v) == std::cmp::Ordering::Less
            })
        };
        let mut out = Vec::new();
        let indexed = match name {
            Some(n) => {
                let scans: Vec<u64> = selected.iter().map(|s| s.2).collect();
                self.db().packages_indexed(n, &scans)?
            }
            None => None,
        };
        if let Some(rows) = indexed {
            // One scan may stand for several (image, version) pairs.
            let mut by_scan: HashMap<u64, Vec<(&str, u32)>> = HashMap::new();
            for (img, version, scan) in &selected {
                by_scan
                    .entry(*scan)
                    .or_default()
                    .push((img.path.as_str(), *version));
            }
            for (scan, json) in rows {
                let p: coldpatch_collector::Package = self.decode("package", &json)?;
                if !older(&p) {
                    continue;
                }
                for (image, version) in by_scan.get(&scan).into_iter().flatten() {
                    out.push(PackageHit {
                        image: image.to_string(),
                        version: *version,
                        package: p.clone(),
                    });
                }
            }
        } else {
            for (img, version, scan) in selected {
                let inv = self.inventory(scan, false)?;
                for p in inv.packages {
                    if name.is_some_and(|n| n != p.name) || !older(&p) {
                        continue;
                    }
                    out.push(PackageHit {
                        image: img.path.clone(),
                        version,
                        package: p,
                    });
                }
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
        scope: &Scope,
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
        let mut selected = self.selection(scope, versions)?;
        // With an index, only the scans that hold the content are read.
        if let Some(bytes) = sha.as_deref().and_then(crate::versions::parse_check) {
            let scans: Vec<u64> = selected.iter().map(|s| s.2).collect();
            if let Some(holding) = self.db().files_indexed(&bytes, &scans)? {
                let holding: std::collections::HashSet<u64> = holding.into_iter().collect();
                selected.retain(|s| holding.contains(&s.2));
            }
        }
        let mut out = Vec::new();
        for batch in selected.chunks(256) {
            let ids: Vec<u64> = batch.iter().map(|s| s.2).collect();
            let lists: Vec<Vec<FileRecord>> = self
                .db()
                .files_json_many(&ids)?
                .into_iter()
                .map(|j| match j {
                    Some(json) => self.decode("files", &json),
                    None => Ok(Vec::new()),
                })
                .collect::<Result<_>>()?;
            for ((img, version, _), files) in batch.iter().zip(lists) {
                let version = *version;
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
        }
        Ok(out)
    }

    /// The records of several scans at once, in the order asked.
    /// The history of these images: every scan record of each, oldest first (by time,
    /// then id), by image id; the records are read in batches.
    pub fn scan_history(&self, images: &[ImageRecord]) -> Result<HashMap<u64, Vec<ScanRecord>>> {
        let mut ids = Vec::new();
        let mut owner = Vec::new();
        for img in images {
            for s in self.db().scan_ids(img.id)? {
                ids.push(s);
                owner.push(img.id);
            }
        }
        let mut out: HashMap<u64, Vec<ScanRecord>> = HashMap::new();
        for (rec, img) in self.scans(&ids)?.into_iter().zip(owner) {
            out.entry(img).or_default().push(rec);
        }
        for v in out.values_mut() {
            v.sort_unstable_by_key(|s| (s.time, s.id));
        }
        Ok(out)
    }

    pub fn scans(&self, ids: &[u64]) -> Result<Vec<ScanRecord>> {
        ids.iter()
            .zip(self.db().scans_many(ids)?)
            .map(|(id, s)| s.ok_or_else(|| self.corrupt(format!("scan {id}"))))
            .collect()
    }
}
