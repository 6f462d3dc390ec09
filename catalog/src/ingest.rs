//! Collecting an image into the catalog: what `coldpatch collect` and the server's
//! collect jobs both do. A patched image is read through its current version's file,
//! with the directories of its versions allowed as backing roots; an image whose backing
//! chain is unchanged since a scan with the same analyzers is not read again.

use std::path::{Path, PathBuf};

use coldpatch_collector::{CollectError, CollectOptions};
use coldpatch_disk::{Disk, DiskError};

use crate::error::CatalogError;
use crate::model::{Fingerprint, ScanOptions, ScanRecord};
use crate::store::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot open")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot stat the backing chain")]
    Chain {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Progress: entries walked, bytes hashed.
pub type Progress<'a> = dyn FnMut(u64, u64) + 'a;

impl Catalog {
    /// Collects one image (a path) and records the scan. Returns the scan and whether it
    /// was the stored one (the image had not changed).
    pub fn ingest(
        &self,
        img: &Path,
        opts: &CollectOptions,
        rescan: bool,
        progress: &mut Progress<'_>,
    ) -> Result<(ScanRecord, bool), IngestError> {
        let want = ScanOptions {
            files: opts.files,
            hash: opts.hash,
        };
        let path = img.canonicalize().map_err(|source| IngestError::Open {
            path: img.to_path_buf(),
            source,
        })?;
        let key = path.display().to_string();
        // A version committed while the image was being read makes what was read stale:
        // read the new current version instead (a few times at most).
        let mut tries = 0;
        loop {
            tries += 1;
            match self.ingest_once(&path, &key, opts, want, rescan, progress) {
                Err(IngestError::Catalog(CatalogError::Moved { .. })) if tries < 3 => continue,
                r => return r,
            }
        }
    }

    fn ingest_once(
        &self,
        path: &Path,
        key: &str,
        opts: &CollectOptions,
        want: ScanOptions,
        rescan: bool,
        progress: &mut Progress<'_>,
    ) -> Result<(ScanRecord, bool), IngestError> {
        let mut open = opts.open.clone();
        let (file, from) = match self.image(key) {
            Ok(rec) if rec.current_version != 0 => {
                let f = PathBuf::from(rec.current_file());
                open.image_roots
                    .push(path.parent().unwrap_or(path).to_path_buf());
                for v in &rec.versions {
                    if let Some(d) = Path::new(&v.file).parent() {
                        open.image_roots.push(d.to_path_buf());
                    }
                }
                (f, rec.current_version)
            }
            _ => (path.to_path_buf(), 0),
        };
        let disk = Disk::open(&file, &open)?;
        let chain: Vec<PathBuf> = disk.chain.iter().map(|l| l.path.clone()).collect();
        let fp = Fingerprint::of(&chain).map_err(|source| IngestError::Chain {
            path: path.to_path_buf(),
            source,
        })?;
        if !rescan {
            let analyzers = coldpatch_collector::analyzer_versions();
            if let Some(scan) = self.unchanged(key, &fp, &analyzers, want)? {
                return Ok((scan, true));
            }
        }
        let mut inv = coldpatch_collector::collect_disk(&disk, opts, &mut |n, h| progress(n, h))?;
        inv.image.path = key.to_string();
        let scan = self.record_from(&inv, fp, want, Some(from))?;
        Ok((scan, false))
    }
}
