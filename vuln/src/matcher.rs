//! Matching installed packages against advisories. The index is built once per scan:
//! (distribution release, package name) -> advisory entries, so each package costs one
//! hash lookup and a version comparison per entry.
//!
//! Keys: Debian/Ubuntu and Alpine entries name source packages (origins); they are
//! matched by the package's source name and compared with its source version, since
//! feeds give source versions (a binary's own version can differ, as gcc-defaults'
//! binaries show). rpm entries name binary packages and are compared with the full
//! `epoch:version-release`. An entry limited to architectures or to a module stream only
//! applies to packages of those.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coldpatch_collector::{Package, PackageKind};
use serde::{Deserialize, Serialize};

use crate::distro::family_kind;
use crate::model::{Advisory, Affected, Distro, NameKind, Range, Severity, Status};
use crate::version;

/// What one advisory says of one installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "version", rename_all = "snake_case")]
pub enum Verdict {
    /// Vulnerable; fixed in this version.
    Fixed(String),
    /// Vulnerable; no fix published yet.
    Unfixed,
    /// Not affected: the release never was, or the installed version is outside every
    /// affected range.
    NotAffected,
}

/// One vulnerable package. A fleet scan makes millions of findings out of a few
/// thousand distinct names, versions and advisories, so those are shared: package
/// strings within an image, advisory facts across the fleet (one reference count, the
/// one other threads touch too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Binary package name as installed.
    pub package: Arc<str>,
    pub source: Arc<str>,
    pub installed: Arc<str>,
    #[serde(flatten)]
    pub of: Arc<AdvisoryRef>,
    pub severity: Severity,
    /// `None`: no fix yet.
    pub fixed: Option<String>,
    pub distro: Arc<str>,
}

/// Which advisory a finding comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryRef {
    pub advisory: String,
    pub aliases: Vec<String>,
    pub feed: String,
}

impl AdvisoryRef {
    /// Whether the advisory is, or aliases, the given id (case-insensitive).
    pub fn names(&self, id: &str) -> bool {
        self.advisory.eq_ignore_ascii_case(id)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
    }
}

/// (advisory, entry, fixed version) of one vulnerable match.
type Hit = (u32, u32, Option<String>);

/// Remembered results by hash of the package identity (collisions share a bucket).
type Memo = HashMap<u64, Vec<(MemoKey, Arc<[Hit]>)>>;

/// Most package identities remembered per index (a fleet's distinct packages).
const MEMO_LIMIT: usize = 4_000_000;

/// A package's identity for matching: everything `judged` looks at.
struct MemoKey {
    distro: Distro,
    kind: PackageKind,
    name: String,
    source: String,
    version: String,
    epoch: Option<u32>,
    release: Option<String>,
    source_version: String,
    arch: String,
    module: Option<String>,
}

impl MemoKey {
    fn of(distro: &Distro, p: &Package) -> MemoKey {
        MemoKey {
            distro: distro.clone(),
            kind: p.kind,
            name: p.name.clone(),
            source: p.source_name.clone(),
            version: p.version.clone(),
            epoch: p.epoch,
            release: p.release.clone(),
            source_version: p.source_version.clone(),
            arch: p.arch.clone(),
            module: p.module.clone(),
        }
    }

    fn is(&self, distro: &Distro, p: &Package) -> bool {
        self.kind == p.kind
            && self.name == p.name
            && self.source == p.source_name
            && self.source_version == p.source_version
            && self.arch == p.arch
            && self.module == p.module
            && self.distro == *distro
            && self.version == p.version
            && self.epoch == p.epoch
            && self.release == p.release
    }
}

fn memo_hash(distro: &Distro, p: &Package) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    distro.hash(&mut h);
    p.kind.hash(&mut h);
    p.name.hash(&mut h);
    p.source_name.hash(&mut h);
    p.version.hash(&mut h);
    p.epoch.hash(&mut h);
    p.release.hash(&mut h);
    p.source_version.hash(&mut h);
    p.arch.hash(&mut h);
    p.module.hash(&mut h);
    h.finish()
}

/// Advisories of several feeds, indexed for matching.
pub struct Index {
    feeds: Vec<String>,
    shared: Vec<Arc<AdvisoryRef>>,
    /// (feed number, advisory)
    advisories: Vec<(u32, Advisory)>,
    by_key: HashMap<Distro, HashMap<String, Vec<(u32, u32)>>>,
    memo: Mutex<Memo>,
}

impl Index {
    pub fn new() -> Index {
        Index {
            feeds: Vec::new(),
            shared: Vec::new(),
            advisories: Vec::new(),
            by_key: HashMap::new(),
            memo: Mutex::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// Adds the advisories of one feed.
    pub fn add_feed(&mut self, feed: &str, advisories: impl IntoIterator<Item = Advisory>) {
        let f = self.feeds.len() as u32;
        self.feeds.push(feed.to_string());
        for a in advisories {
            self.add(f, a);
        }
    }

    fn add(&mut self, feed: u32, a: Advisory) {
        if let Ok(m) = self.memo.get_mut() {
            m.clear();
        }
        let n = self.advisories.len() as u32;
        for (i, e) in a.affected.iter().enumerate() {
            let release = match self.by_key.get_mut(&e.distro) {
                Some(r) => r,
                None => self.by_key.entry(e.distro.clone()).or_default(),
            };
            match release.get_mut(e.package.as_str()) {
                Some(list) => list.push((n, i as u32)),
                None => {
                    release.insert(e.package.clone(), vec![(n, i as u32)]);
                }
            }
        }
        self.shared.push(Arc::new(AdvisoryRef {
            advisory: a.id.clone(),
            aliases: a.aliases.clone(),
            feed: self.feeds[feed as usize].clone(),
        }));
        self.advisories.push((feed, a));
    }

    /// (advisory, entry, verdict) for every entry naming the package in the release.
    fn judged<'a>(
        &'a self,
        distro: &'a Distro,
        p: &'a Package,
    ) -> impl Iterator<Item = (u32, u32, Verdict)> + 'a {
        let kind = family_kind(&distro.family);
        let keys: [Option<(NameKind, &str)>; 2] = if kind == Some(p.kind) {
            let src = if p.source_name.is_empty() {
                &p.name
            } else {
                &p.source_name
            };
            [
                Some((NameKind::Source, src.as_str())),
                Some((NameKind::Binary, p.name.as_str())),
            ]
        } else {
            [None, None]
        };
        let release = self.by_key.get(distro);
        keys.into_iter().flatten().flat_map(move |(nk, name)| {
            release
                .and_then(|r| r.get(name))
                .into_iter()
                .flatten()
                .filter_map(move |&(ai, ei)| {
                    let entry = &self.advisories[ai as usize].1.affected[ei as usize];
                    if entry.name_kind != nk || !applies(entry, p) {
                        return None;
                    }
                    Some((ai, ei, judge(entry, p)))
                })
        })
    }

    /// The release an inventory's os-release names, and its findings (none when the OS
    /// or its release is unknown): what every fleet scan, patch plan and version chart
    /// asks of an inventory.
    pub fn inventory_findings(
        &self,
        inv: &coldpatch_collector::Inventory,
    ) -> (Option<Distro>, Vec<Finding>) {
        let distro = inv.os.as_ref().and_then(|o| {
            crate::distro::from_os_release(&o.id, &o.version_id, &o.version_codename)
        });
        let findings = distro
            .as_ref()
            .map(|d| self.findings(d, &inv.packages))
            .unwrap_or_default();
        (distro, findings)
    }

    /// The findings for one image's packages: every advisory that leaves an installed
    /// package vulnerable. One finding per (package, advisory id), whichever feed says it.
    pub fn findings(&self, distro: &Distro, packages: &[Package]) -> Vec<Finding> {
        let mut out = Vec::new();
        let distro_name: Arc<str> = distro.to_string().into();
        for p in packages {
            let hits = self.hits(distro, p);
            if hits.is_empty() {
                continue;
            }
            let package: Arc<str> = p.name.as_str().into();
            let source: Arc<str> = p.source_name.as_str().into();
            let installed: Arc<str> = p.full_version().into();
            for &(ai, ei, ref fixed) in hits.iter() {
                let adv = &self.advisories[ai as usize].1;
                let entry = &adv.affected[ei as usize];
                out.push(Finding {
                    package: package.clone(),
                    source: source.clone(),
                    installed: installed.clone(),
                    of: self.shared[ai as usize].clone(),
                    severity: entry.severity.unwrap_or(adv.severity),
                    fixed: fixed.clone(),
                    distro: distro_name.clone(),
                });
            }
        }
        out
    }

    /// The advisories that leave a package vulnerable, one per advisory id: (advisory,
    /// entry, fixed version). Fleets repeat the same package at the same version in
    /// image after image, so results are kept per (release, package identity).
    fn hits(&self, distro: &Distro, p: &Package) -> Arc<[Hit]> {
        let h = memo_hash(distro, p);
        if let Ok(memo) = self.memo.lock() {
            if let Some(v) = memo
                .get(&h)
                .and_then(|b| b.iter().find(|(k, _)| k.is(distro, p)))
            {
                return v.1.clone();
            }
        }
        let mut hits: Vec<Hit> = Vec::new();
        for (ai, ei, verdict) in self.judged(distro, p) {
            let fixed = match verdict {
                Verdict::NotAffected => continue,
                Verdict::Fixed(v) => Some(v),
                Verdict::Unfixed => None,
            };
            let id = &self.advisories[ai as usize].1.id;
            if hits
                .iter()
                .any(|(x, _, _)| self.advisories[*x as usize].1.id == *id)
            {
                continue;
            }
            hits.push((ai, ei, fixed));
        }
        let hits: Arc<[Hit]> = hits.into();
        if let Ok(mut memo) = self.memo.lock() {
            if memo.len() < MEMO_LIMIT {
                memo.entry(h)
                    .or_default()
                    .push((MemoKey::of(distro, p), hits.clone()));
            }
        }
        hits
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

fn applies(e: &Affected, p: &Package) -> bool {
    if !e.arches.is_empty() && !e.arches.contains(&p.arch) {
        return false;
    }
    match (&e.module, &p.module) {
        (Some(m), Some(pm)) => m == pm,
        // A module's advisory says nothing of the non-modular package of that name, and
        // the reverse.
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => true,
    }
}

/// The version compared against an entry: source version for source-keyed entries of
/// dpkg and apk, the full epoch:version-release for rpm.
fn compared_version<'p>(e: &Affected, p: &'p Package) -> std::borrow::Cow<'p, str> {
    match (p.kind, e.name_kind) {
        (PackageKind::Rpm, _) => p.full_version().into(),
        (_, NameKind::Source) if !p.source_version.is_empty() => p.source_version.as_str().into(),
        _ => p.version.as_str().into(),
    }
}

fn in_range(kind: PackageKind, v: &str, r: &Range) -> bool {
    use std::cmp::Ordering::*;
    let cmp = |a: &str, b: &str| version::compare(kind, a, b);
    if r.introduced.as_deref().is_some_and(|i| cmp(v, i) == Less) {
        return false;
    }
    if r.fixed.as_deref().is_some_and(|f| cmp(v, f) != Less) {
        return false;
    }
    if r.last_affected
        .as_deref()
        .is_some_and(|l| cmp(v, l) == Greater)
    {
        return false;
    }
    true
}

pub fn judge(e: &Affected, p: &Package) -> Verdict {
    let Status::Affected { ranges, versions } = &e.status else {
        return Verdict::NotAffected;
    };
    let v = compared_version(e, p);
    let kind = p.kind;
    if let Some(r) = ranges.iter().find(|r| in_range(kind, &v, r)) {
        return match &r.fixed {
            Some(f) => Verdict::Fixed(f.clone()),
            None => Verdict::Unfixed,
        };
    }
    if versions
        .iter()
        .any(|x| version::compare(kind, x, &v) == std::cmp::Ordering::Equal)
    {
        // Listed as affected; a later range's fix, if any, is the way out.
        let fix = ranges
            .iter()
            .filter_map(|r| r.fixed.as_ref())
            .filter(|f| version::compare(kind, &v, f) == std::cmp::Ordering::Less)
            .min_by(|a, b| version::compare(kind, a, b));
        return match fix {
            Some(f) => Verdict::Fixed(f.clone()),
            None => Verdict::Unfixed,
        };
    }
    Verdict::NotAffected
}
