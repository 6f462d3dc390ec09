//! The fleet as the console and API show it: every image's current version with its
//! findings, matched against the stored feeds. Matching the whole fleet takes seconds on
//! a large catalog, so it is done once and kept (an `Arc` swapped whole, so readers never
//! wait on a rebuild); whatever changes images or feeds marks it stale, and the next
//! reader after that rebuilds it while the others read the previous view. `generation` says which state of the catalog it shows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use coldpatch_catalog::{Catalog, FeedRecord, Versions};
use coldpatch_vuln::{Finding, Index, Severity};
use serde::Serialize;

/// Severities from worst to least, as the console lists them.
pub const SEVERITIES: [Severity; 6] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Negligible,
    Severity::Unknown,
];

#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub id: u64,
    /// The display name (`coldpatch_catalog::labels`).
    pub name: String,
    pub path: String,
    pub labels: BTreeMap<String, String>,
    pub os: Option<String>,
    pub distro: Option<String>,
    pub version: u32,
    pub versions: usize,
    pub packages: usize,
    pub files: usize,
    pub scanned: Option<u64>,
    /// Findings by severity, in [`SEVERITIES`] order.
    pub by_severity: [usize; 6],
    pub fixable_critical: usize,
    /// Findings with a fixed version available.
    pub fixable: usize,
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

impl ImageSummary {
    fn new(img: &coldpatch_catalog::ImageRecord, tags: &Tags) -> ImageSummary {
        ImageSummary {
            id: img.id,
            name: tags
                .0
                .get(&img.id)
                .cloned()
                .unwrap_or_else(|| img.path.clone()),
            path: img.path.clone(),
            labels: tags
                .1
                .get(&img.id)
                .map(|t| t.labels.clone())
                .unwrap_or_default(),
            os: None,
            distro: None,
            version: img.current_version,
            versions: img.all_versions().len(),
            packages: 0,
            files: 0,
            scanned: None,
            by_severity: [0; 6],
            fixable_critical: 0,
            fixable: 0,
            findings: Vec::new(),
        }
    }
}

/// Display names and label records by image id.
struct Tags(
    std::collections::HashMap<u64, String>,
    std::collections::HashMap<u64, coldpatch_catalog::ImageTags>,
);

/// One value of a label and the images that carry it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The label's value; `None`: images without the label.
    pub value: Option<String>,
    pub images: usize,
    /// Findings by severity, in [`SEVERITIES`] order.
    pub by_severity: [usize; 6],
    pub fixable: usize,
}

#[derive(Default, Serialize)]
pub struct FleetView {
    pub generation: u64,
    pub built_at: u64,
    pub images: Vec<ImageSummary>,
    pub feeds: Vec<FeedRecord>,
    pub advisories: usize,
    /// Findings over time, one point per day (`trend.rs`).
    pub trend: Vec<crate::trend::Point>,
    #[serde(skip)]
    pub index: Arc<Index>,
    /// Computed once per view: what every dashboard request would otherwise recount.
    #[serde(skip)]
    hit: Vec<(String, Severity, usize)>,
    #[serde(skip)]
    totals: [usize; 6],
    /// Pages rendered from this view, by what they were asked with: the same question
    /// of the same view is the same page, so it is rendered once (`dashboard.rs`).
    #[serde(skip)]
    rendered: Mutex<std::collections::HashMap<String, Arc<str>>>,
}

/// Rendered pages a view keeps at most; past it, it starts again.
const RENDERED: usize = 512;

impl FleetView {
    /// The page `key` names, rendered by `render` the first time it is asked of this
    /// view. An error is not kept.
    pub fn rendered<E>(
        &self,
        key: String,
        render: impl FnOnce(&FleetView) -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        if let Some(p) = self
            .rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let page: Arc<str> = render(self)?.into();
        let mut m = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= RENDERED {
            m.clear();
        }
        m.insert(key, page.clone());
        Ok(page)
    }

    pub fn image(&self, id: u64) -> Option<&ImageSummary> {
        self.images.iter().find(|i| i.id == id)
    }

    /// Findings across the fleet by severity.
    pub fn by_severity(&self) -> [usize; 6] {
        self.totals
    }

    fn count_severities(&self) -> [usize; 6] {
        let mut t = [0; 6];
        for i in &self.images {
            for (a, b) in t.iter_mut().zip(i.by_severity) {
                *a += b;
            }
        }
        t
    }

    /// The fleet grouped by one label's value (images without it last), worst first.
    pub fn groups(&self, key: &str) -> Vec<Group> {
        let mut m: BTreeMap<Option<&str>, Group> = BTreeMap::new();
        for i in &self.images {
            let v = i.labels.get(key).map(String::as_str);
            let g = m.entry(v).or_insert_with(|| Group {
                value: v.map(str::to_string),
                images: 0,
                by_severity: [0; 6],
                fixable: 0,
            });
            g.images += 1;
            g.fixable += i.fixable;
            for (a, b) in g.by_severity.iter_mut().zip(i.by_severity) {
                *a += b;
            }
        }
        let mut v: Vec<Group> = m.into_values().collect();
        v.sort_by(|a, b| {
            a.value
                .is_none()
                .cmp(&b.value.is_none())
                .then(b.by_severity.cmp(&a.by_severity))
                .then(a.value.cmp(&b.value))
        });
        v
    }

    /// Every label key images carry, with how many carry it.
    pub fn label_keys(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for i in &self.images {
            for k in i.labels.keys() {
                *m.entry(k.as_str()).or_insert(0) += 1;
            }
        }
        m
    }

    /// The `n` images whose current scan is oldest (never collected first).
    pub fn oldest_scans(&self, n: usize) -> Vec<&ImageSummary> {
        let mut v: Vec<&ImageSummary> = self.images.iter().collect();
        v.sort_by_key(|i| (i.scanned, i.id));
        v.truncate(n);
        v
    }

    /// Images by OS name.
    pub fn os_mix(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for i in &self.images {
            *m.entry(i.os.clone().unwrap_or_else(|| "unknown".into()))
                .or_insert(0) += 1;
        }
        m
    }

    /// Every advisory that hits the fleet: (id, worst severity, images hit), worst and
    /// widest first.
    pub fn advisories_hit(&self) -> &[(String, Severity, usize)] {
        &self.hit
    }

    fn count_advisories(&self) -> Vec<(String, Severity, usize)> {
        let mut m: BTreeMap<&str, (Severity, std::collections::BTreeSet<u64>)> = BTreeMap::new();
        for i in &self.images {
            for f in &i.findings {
                let e = m.entry(&f.of.advisory).or_default();
                e.0 = e.0.max(f.severity);
                e.1.insert(i.id);
            }
        }
        let mut v: Vec<_> = m
            .into_iter()
            .map(|(k, (s, imgs))| (k.to_string(), s, imgs.len()))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        v
    }
}

pub fn severity_slot(s: Severity) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(5)
}

pub struct Fleet {
    view: RwLock<Arc<FleetView>>,
    /// Bumped by every change; the view is stale while it shows an older one.
    changes: AtomicU64,
    /// The catalog's own change count when last looked at: other processes sharing a
    /// PostgreSQL catalog change it too.
    seen: AtomicU64,
    rebuild: Mutex<()>,
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet {
            view: RwLock::new(Arc::new(FleetView::default())),
            changes: AtomicU64::new(1),
            seen: AtomicU64::new(0),
            rebuild: Mutex::new(()),
        }
    }
}

impl Fleet {
    /// Marks the view stale.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The current view, rebuilt first if stale. One reader rebuilds; the others wait
    /// for it rather than all matching the fleet at once.
    pub fn view(
        &self,
        catalog: &Catalog,
    ) -> Result<Arc<FleetView>, coldpatch_catalog::CatalogError> {
        let mark = catalog.changes()?;
        if self.seen.swap(mark, Ordering::SeqCst) != mark {
            self.changed();
        }
        let want = self.changes.load(Ordering::SeqCst);
        let v = self.current();
        if v.generation == want {
            return Ok(v);
        }
        // While one reader rebuilds, the others keep answering from the view they have
        // (a few seconds stale at most); only before the first view is there nothing to
        // answer from, and then they wait.
        let _g = if v.generation == 0 {
            self.rebuild.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.rebuild.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(v),
            }
        };
        let v = self.current();
        if v.generation >= want {
            return Ok(v);
        }
        let built = Arc::new(build(catalog, want)?);
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = built.clone();
        Ok(built)
    }

    fn current(&self) -> Arc<FleetView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn build(catalog: &Catalog, generation: u64) -> Result<FleetView, coldpatch_catalog::CatalogError> {
    let images = catalog.images()?;
    let labels = catalog.tags()?;
    let tags = Tags(
        coldpatch_catalog::labels::display_names(&images, &labels),
        labels,
    );
    let by_path: std::collections::HashMap<&str, &coldpatch_catalog::ImageRecord> =
        images.iter().map(|i| (i.path.as_str(), i)).collect();
    let mut out = Vec::with_capacity(images.len());
    let index = Arc::new(catalog.advisory_index()?);
    // Every scan record, once: the current ones for the summaries, all for the trend.
    let scans = catalog.scan_history(&images)?;
    let summary = catalog.scan_with(
        &index,
        &coldpatch_catalog::Scope::all(),
        Versions::Current,
        |f| {
            let Some(img) = by_path.get(f.image.as_str()) else {
                return Ok(());
            };
            let scan = img
                .current_scan
                .and_then(|s| scans.get(&img.id)?.iter().find(|r| r.id == s));
            let mut by_severity = [0; 6];
            for x in &f.findings {
                by_severity[severity_slot(x.severity)] += 1;
            }
            out.push(ImageSummary {
                os: scan.as_ref().and_then(|s| s.os.clone()),
                distro: f.distro.clone(),
                packages: f.packages,
                files: scan.as_ref().map_or(0, |s| s.files),
                scanned: scan.as_ref().map(|s| s.time),
                by_severity,
                fixable_critical: f
                    .findings
                    .iter()
                    .filter(|x| x.severity == Severity::Critical && x.fixed.is_some())
                    .count(),
                fixable: f.findings.iter().filter(|x| x.fixed.is_some()).count(),
                findings: f.findings,
                ..ImageSummary::new(img, &tags)
            });
            Ok(())
        },
    )?;
    // Images never collected have no scan to match; list them too.
    for img in &images {
        if img.current_scan.is_none() {
            out.push(ImageSummary::new(img, &tags));
        }
    }
    out.sort_by_key(|i| i.id);
    let trend = history(catalog, &images, &scans, &out, &index)?;
    let mut v = FleetView {
        generation,
        built_at: coldpatch_catalog::clock::now(),
        images: out,
        feeds: summary.feeds,
        advisories: summary.advisories,
        index,
        trend,
        hit: Vec::new(),
        totals: [0; 6],
        rendered: Mutex::default(),
    };
    v.hit = v.count_advisories();
    v.totals = v.count_severities();
    Ok(v)
}

/// The daily series of `trend.rs`: the current scans' counts are the view's; every
/// earlier scan is matched here against the same index.
fn history(
    catalog: &Catalog,
    images: &[coldpatch_catalog::ImageRecord],
    scans: &std::collections::HashMap<u64, Vec<coldpatch_catalog::ScanRecord>>,
    summaries: &[ImageSummary],
    index: &Index,
) -> Result<Vec<crate::trend::Point>, coldpatch_catalog::CatalogError> {
    let history: std::collections::HashMap<u64, Vec<(u64, u64)>> = scans
        .iter()
        .map(|(img, v)| (*img, v.iter().map(|s| (s.time, s.id)).collect()))
        .collect();
    let current: std::collections::HashMap<u64, u64> = images
        .iter()
        .filter_map(|i| i.current_scan.map(|s| (i.id, s)))
        .collect();
    let mut counts: std::collections::HashMap<u64, [usize; 6]> = summaries
        .iter()
        .filter_map(|s| current.get(&s.id).map(|c| (*c, s.by_severity)))
        .collect();
    for scans in history.values() {
        for (_, scan) in scans {
            if counts.contains_key(scan) {
                continue;
            }
            let inv = catalog.inventory(*scan, false)?;
            let (_, found) = index.inventory_findings(&inv);
            let mut t = [0; 6];
            for f in &found {
                t[severity_slot(f.severity)] += 1;
            }
            counts.insert(*scan, t);
        }
    }
    Ok(crate::trend::daily(
        &history,
        &current,
        &counts,
        coldpatch_catalog::clock::now(),
    ))
}
