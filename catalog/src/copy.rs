//! Moving a whole catalog between backends (`coldpatch catalog copy`), and what a
//! catalog holds (`coldpatch catalog info`). Both speak only [`crate::backend::Backend`],
//! so any pair of backends copies the same way: every record keeps its id, and the
//! counters move past the copied ids. Files the catalog owns on disk (version overlays)
//! are not copied: version records name them by path, so they stay where they are.

use serde::Serialize;

use crate::backend::{Expect, NewScan, COUNTERS};
use crate::error::{CatalogError, Result};
use crate::store::Catalog;
use crate::versions::{APPLIANCE_KEY, SIGNING_KEY};

/// How many records of each kind were copied, or a catalog holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub images: usize,
    pub scans: usize,
    pub versions: usize,
    pub runs: usize,
    pub events: usize,
    pub run_images: usize,
    pub feeds: usize,
    pub advisories: usize,
    pub repos: usize,
    pub tokens: usize,
    pub schedules: usize,
    /// Images with a name or labels.
    pub labelled: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub catalog: String,
    pub backend: &'static str,
    pub schema_version: i64,
    pub counts: Counts,
}

impl Catalog {
    /// What this catalog is and holds.
    pub fn info(&self) -> Result<Info> {
        let db = self.db();
        let images = db.images()?;
        let mut counts = Counts {
            images: images.len(),
            ..Counts::default()
        };
        for img in &images {
            counts.scans += db.scan_ids(img.id)?.len();
            counts.versions += img.versions.len();
        }
        let runs = db.runs()?;
        counts.runs = runs.len();
        for r in &runs {
            counts.events += db.events(&r.id)?.len();
            counts.run_images += db.run_images(&r.id)?.len();
        }
        let feeds = db.feeds()?;
        counts.feeds = feeds.len();
        counts.advisories = feeds.iter().map(|f| f.records).sum();
        counts.repos = db.repo_roots()?.len();
        counts.tokens = db.tokens()?.len();
        counts.schedules = db.schedules()?.len();
        counts.labelled = db.tags()?.len();
        Ok(Info {
            catalog: self.describe().to_string(),
            backend: db.kind(),
            schema_version: db.schema_version()?,
            counts,
        })
    }

    /// Copies every record of this catalog into `to`, which must hold none.
    pub fn copy_to(&self, to: &Catalog) -> Result<Counts> {
        let (from, dst) = (self.db(), to.db());
        let empty = dst.images()?.is_empty()
            && dst.runs()?.is_empty()
            && dst.feeds()?.is_empty()
            && dst.repo_roots()?.is_empty()
            && dst.tokens()?.is_empty()
            && dst.schedules()?.is_empty();
        if !empty {
            return Err(CatalogError::NotEmpty {
                catalog: to.describe().to_string(),
            });
        }
        let mut n = Counts::default();
        for key in [APPLIANCE_KEY, SIGNING_KEY] {
            if let Some(v) = from.meta(key)? {
                dst.meta_init(key, &v)?;
            }
        }
        let mut images = from.images()?;
        images.sort_by_key(|i| i.id);
        for img in &images {
            for sid in from.scan_ids(img.id)? {
                let scan = from
                    .scan(sid)?
                    .ok_or_else(|| self.corrupt(format!("scan {sid}")))?;
                let inventory = from
                    .inventory_json(sid)?
                    .ok_or_else(|| self.corrupt(format!("inventory {sid}")))?;
                let files = from.files_json(sid)?.unwrap_or_else(|| b"[]".to_vec());
                let mut inv: coldpatch_collector::Inventory =
                    self.decode("inventory", &inventory)?;
                inv.files = self.decode("files", &files)?;
                dst.record_scan(NewScan {
                    image: img,
                    scan: &scan,
                    inventory: &inventory,
                    files: &files,
                    run_image: None,
                    inv: &inv,
                    expect: Expect::Any,
                })?;
                n.scans += 1;
            }
            // An image without scans (none today, but nothing forbids it) still moves.
            dst.put_image(img, Expect::Any)?;
            n.images += 1;
            n.versions += img.versions.len();
        }
        for t in from.tags()? {
            dst.replace_tags(&t, None)?;
            n.labelled += 1;
        }
        let mut runs = from.runs()?;
        runs.reverse();
        for run in &runs {
            dst.put_run(run, None)?;
            for e in from.events(&run.id)? {
                dst.put_event(&e)?;
                n.events += 1;
            }
            for ri in from.run_images(&run.id)? {
                dst.put_run_image(&ri)?;
                n.run_images += 1;
            }
            n.runs += 1;
        }
        for feed in from.feeds()? {
            let advisories = from.advisories_json(&feed.name)?;
            n.advisories += advisories.len();
            dst.replace_feed(&feed, None, &advisories, &[])?;
            n.feeds += 1;
        }
        for repo in from.repos()? {
            dst.put_repo(&repo)?;
            n.repos += 1;
        }
        for t in from.tokens()? {
            dst.put_token(&t)?;
            n.tokens += 1;
        }
        for s in from.schedules()? {
            dst.put_schedule(&s)?;
            n.schedules += 1;
        }
        for c in COUNTERS {
            dst.raise_counter(c, from.counter(c)?)?;
        }
        Ok(n)
    }
}
