//! Stored vulnerability feeds and matching the fleet against them: each feed's record
//! and its advisories, stored by (feed, advisory id).
//!
//! A feed import replaces the feed's record set in one transaction: the records it
//! holds are written, records it no longer holds are removed, and the feed record is
//! updated, all or nothing. Records the file holds but that do not parse are reported
//! and leave what is stored alone.

use std::collections::HashMap;

use crate::clock::now;
use crate::error::Result;
use crate::labels::Scope;
use crate::model::{ImageRecord, Versions};
use crate::store::Catalog;
use coldpatch_vuln::{Advisory, FeedData, Finding, Index, Rejected};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedRecord {
    pub name: String,
    pub format: String,
    /// Where it was imported from.
    pub source: String,
    /// Seconds since the epoch.
    pub imported_at: u64,
    /// How current the data is: the newest record modification the feed carries, else
    /// the source file's modification time (seconds since the epoch).
    pub as_of: u64,
    pub records: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub feed: String,
    pub imported: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub rejected: Vec<Rejected>,
    /// Valid records about no distribution, and withdrawn ones.
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFindings {
    pub image: String,
    /// The image version matched.
    #[serde(default)]
    pub version: u32,
    /// `debian:11`; `None` when the OS is unknown or has no release.
    pub distro: Option<String>,
    pub packages: usize,
    pub findings: Vec<Finding>,
}

/// What a streamed scan used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    pub feeds: Vec<FeedRecord>,
    pub advisories: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub images: Vec<ImageFindings>,
    pub feeds: Vec<FeedRecord>,
    pub advisories: usize,
}

/// RFC 3339 to seconds since the epoch (date and time to the second; offsets other than
/// Z are read as Z, which is within a day, enough for a staleness check).
fn rfc3339_secs(s: &str) -> Option<u64> {
    let t = s.get(..19)?;
    humantime::parse_rfc3339_weak(t)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

impl Catalog {
    /// Stores a feed read from `source` under `name`, replacing its previous records.
    pub fn import_feed(
        &self,
        name: &str,
        source: &str,
        source_mtime: u64,
        data: FeedData,
    ) -> Result<ImportReport> {
        let mut report = ImportReport {
            feed: name.to_string(),
            rejected: data.rejected.clone(),
            skipped: data.skipped + data.withdrawn.len(),
            ..ImportReport::default()
        };
        let as_of = data
            .newest_modified()
            .and_then(rfc3339_secs)
            .unwrap_or(source_mtime);
        // What the change is computed from; the write goes through only if the feed is
        // still so (another process may import the same feed meanwhile).
        let before = self.db().feeds()?.into_iter().find(|f| f.name == name);
        let mut old: HashMap<String, Vec<u8>> =
            self.db().advisories_json(name)?.into_iter().collect();
        let mut upsert = Vec::new();
        let mut records = 0;
        let mut seen = std::collections::HashSet::new();
        for a in &data.advisories {
            if !seen.insert(a.id.as_str()) {
                report.rejected.push(Rejected {
                    place: format!("{source}: {}", a.id),
                    reason: "the feed holds this id twice; the first is kept".into(),
                });
                continue;
            }
            records += 1;
            match old.remove(&a.id) {
                None => {
                    report.imported += 1;
                    upsert.push((a.id.clone(), self.encode("advisory", a)?));
                }
                Some(prev) => {
                    let same = self
                        .decode::<Advisory>("advisory", &prev)
                        .is_ok_and(|p| p == *a);
                    if same {
                        report.unchanged += 1;
                    } else {
                        report.updated += 1;
                        upsert.push((a.id.clone(), self.encode("advisory", a)?));
                    }
                }
            }
        }
        let remove: Vec<String> = old.into_keys().collect();
        report.removed = remove.len();
        let rec = FeedRecord {
            name: name.to_string(),
            format: data
                .format
                .map(|f| f.as_str().to_string())
                .unwrap_or_default(),
            source: source.to_string(),
            imported_at: now(),
            as_of,
            records,
        };
        self.db()
            .replace_feed(&rec, before.as_ref(), &upsert, &remove)?;
        Ok(report)
    }

    pub fn feeds(&self) -> Result<Vec<FeedRecord>> {
        self.db().feeds()
    }

    /// Every stored advisory, as one index.
    pub fn advisory_index(&self) -> Result<Index> {
        let mut index = Index::new();
        for f in self.feeds()? {
            let blobs = self.db().advisories_json(&f.name)?;
            let advisories: Vec<Advisory> = blobs
                .par_iter()
                .map(|(_, b)| self.decode::<Advisory>("advisory", b))
                .collect::<Result<_>>()?;
            index.add_feed(&f.name, advisories);
        }
        Ok(index)
    }

    /// Matches the current inventory of each image (all, or the named ones) against
    /// every stored feed, collecting the results. For small sets; fleets go through
    /// [`Catalog::scan_each`].
    pub fn scan_images(&self, only: &[String]) -> Result<ScanReport> {
        let mut images = Vec::new();
        let summary = self.scan_each(&Scope::images(only), Versions::Current, |i| {
            images.push(i);
            Ok(())
        })?;
        Ok(ScanReport {
            images,
            feeds: summary.feeds,
            advisories: summary.advisories,
        })
    }

    /// Matches images in parallel batches and hands each image's findings to `sink`, in
    /// catalog order, so memory holds one batch of results, not the fleet's.
    pub fn scan_each(
        &self,
        scope: &Scope,
        versions: Versions,
        sink: impl FnMut(ImageFindings) -> Result<()>,
    ) -> Result<ScanSummary> {
        self.scan_with(&self.advisory_index()?, scope, versions, sink)
    }

    /// [`Catalog::scan_each`] against an index the caller already loaded (and keeps).
    pub fn scan_with(
        &self,
        index: &Index,
        scope: &Scope,
        versions: Versions,
        mut sink: impl FnMut(ImageFindings) -> Result<()>,
    ) -> Result<ScanSummary> {
        const BATCH: usize = 256;
        let selected = self.selection(scope, versions)?;
        for batch in selected.chunks(BATCH) {
            let ids: Vec<u64> = batch.iter().map(|s| s.2).collect();
            let views = self.match_views(&ids)?;
            let results: Vec<ImageFindings> = batch
                .par_iter()
                .zip(views.par_iter())
                .map(|((img, version, _), inv)| match_image(index, img, *version, inv))
                .collect();
            for r in results {
                sink(r)?;
            }
        }
        Ok(ScanSummary {
            feeds: self.feeds()?,
            advisories: index.len(),
        })
    }
}

impl Catalog {
    /// The findings of one advisory (by id or alias, ignoring case) on the current
    /// version of every image that carries a package it names, in catalog order; images
    /// that carry none are left out. With indexes, only the advisory's records and the
    /// inventories of those images are read; without, every inventory is.
    pub fn affected(
        &self,
        id: &str,
        scope: &Scope,
        mut sink: impl FnMut(ImageFindings) -> Result<()>,
    ) -> Result<()> {
        const BATCH: usize = 256;
        let advisories: Vec<(String, Advisory)> = match self.db().advisories_indexed(id)? {
            Some(rows) => rows
                .into_iter()
                .map(|(feed, json)| Ok((feed, self.decode::<Advisory>("advisory", &json)?)))
                .collect::<Result<_>>()?,
            None => {
                let mut out = Vec::new();
                for f in self.feeds()? {
                    for (_, json) in self.db().advisories_json(&f.name)? {
                        let a: Advisory = self.decode("advisory", &json)?;
                        if a.names(id) {
                            out.push((f.name.clone(), a));
                        }
                    }
                }
                out
            }
        };
        let names: Vec<String> = advisories
            .iter()
            .flat_map(|(_, a)| a.affected.iter().map(|e| e.package.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut index = Index::new();
        let mut by_feed: std::collections::BTreeMap<String, Vec<Advisory>> = Default::default();
        for (feed, a) in advisories {
            by_feed.entry(feed).or_default().push(a);
        }
        for (feed, list) in by_feed {
            index.add_feed(&feed, list);
        }
        let mut selected = self.selection(scope, Versions::Current)?;
        let scans: Vec<u64> = selected.iter().map(|s| s.2).collect();
        if let Some(holding) = self.db().scans_with_packages(&names, &scans)? {
            let holding: std::collections::HashSet<u64> = holding.into_iter().collect();
            selected.retain(|s| holding.contains(&s.2));
        }
        let carries = |inv: &coldpatch_collector::Inventory| {
            inv.packages
                .iter()
                .any(|p| names.contains(&p.name) || names.contains(&p.source_name))
        };
        for batch in selected.chunks(BATCH) {
            let ids: Vec<u64> = batch.iter().map(|s| s.2).collect();
            let views = self.match_views(&ids)?;
            let results: Vec<Option<ImageFindings>> = batch
                .par_iter()
                .zip(views.par_iter())
                .map(|((img, version, _), inv)| {
                    carries(inv).then(|| match_image(&index, img, *version, inv))
                })
                .collect();
            for r in results.into_iter().flatten() {
                sink(r)?;
            }
        }
        Ok(())
    }
}

/// One image's findings from its match view.
fn match_image(
    index: &Index,
    img: &ImageRecord,
    version: u32,
    inv: &coldpatch_collector::Inventory,
) -> ImageFindings {
    let (distro, findings) = index.inventory_findings(inv);
    ImageFindings {
        image: img.path.clone(),
        version,
        distro: distro.map(|d| d.to_string()),
        packages: inv.packages.len(),
        findings,
    }
}

/// The part of a stored inventory matching reads: the OS and, of each package, the
/// fields the matcher looks at. Relations, licenses, files and facts are skipped by the
/// decoder instead of being built and thrown away (a fleet scan decodes every image).
#[derive(Deserialize)]
struct MatchView {
    os: Option<coldpatch_collector::OsInfo>,
    packages: Vec<MatchPackage>,
}

#[derive(Deserialize)]
struct MatchPackage {
    kind: coldpatch_collector::PackageKind,
    name: String,
    version: String,
    epoch: Option<u32>,
    release: Option<String>,
    arch: String,
    source_name: String,
    source_version: String,
    #[serde(default)]
    module: Option<String>,
}

impl Catalog {
    /// The match views of a batch of scans: their inventories read in one go, decoded
    /// in parallel.
    fn match_views(&self, scans: &[u64]) -> Result<Vec<coldpatch_collector::Inventory>> {
        let blobs = self.db().inventories_json(scans)?;
        blobs
            .into_par_iter()
            .zip(scans.par_iter())
            .map(|(b, id)| {
                let json = b.ok_or_else(|| self.corrupt(format!("inventory {id}")))?;
                self.match_view_of(&json)
            })
            .collect()
    }

    fn match_view_of(&self, json: &[u8]) -> Result<coldpatch_collector::Inventory> {
        let view: MatchView = self.decode("inventory", json)?;
        Ok(coldpatch_collector::Inventory {
            os: view.os,
            packages: view
                .packages
                .into_iter()
                .map(|p| coldpatch_collector::Package {
                    kind: p.kind,
                    name: p.name,
                    version: p.version,
                    epoch: p.epoch,
                    release: p.release,
                    arch: p.arch,
                    source_name: p.source_name,
                    source_version: p.source_version,
                    source_rpm: None,
                    license: None,
                    provides: Vec::new(),
                    depends: Vec::new(),
                    module: p.module,
                    db: String::new(),
                })
                .collect(),
            ..coldpatch_collector::Inventory::default()
        })
    }
}

/// Feeds whose data is older than `max_age_secs` at `now_secs`.
pub fn stale(feeds: &[FeedRecord], max_age_secs: u64, now_secs: u64) -> Vec<&FeedRecord> {
    feeds
        .iter()
        .filter(|f| now_secs.saturating_sub(f.as_of) > max_age_secs)
        .collect()
}
