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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Binary package name as installed.
    pub package: String,
    pub source: String,
    pub installed: String,
    pub advisory: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    /// `None`: no fix yet.
    pub fixed: Option<String>,
    pub feed: String,
    pub distro: String,
}

/// Advisories of several feeds, indexed for matching.
pub struct Index {
    feeds: Vec<String>,
    /// (feed number, advisory)
    advisories: Vec<(u32, Advisory)>,
    by_key: HashMap<Distro, HashMap<String, Vec<(u32, u32)>>>,
}

impl Index {
    pub fn new() -> Index {
        Index {
            feeds: Vec::new(),
            advisories: Vec::new(),
            by_key: HashMap::new(),
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
        let n = self.advisories.len() as u32;
        for (i, e) in a.affected.iter().enumerate() {
            self.by_key
                .entry(e.distro.clone())
                .or_default()
                .entry(e.package.clone())
                .or_default()
                .push((n, i as u32));
        }
        self.advisories.push((feed, a));
    }

    /// Every advisory entry that names this package in this release, with its verdict.
    pub fn verdicts<'a>(
        &'a self,
        distro: &'a Distro,
        p: &'a Package,
    ) -> impl Iterator<Item = (&'a str, &'a Advisory, &'a Affected, Verdict)> + 'a {
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
                    let (feed, adv) = &self.advisories[ai as usize];
                    let entry = &adv.affected[ei as usize];
                    if entry.name_kind != nk || !applies(entry, p) {
                        return None;
                    }
                    let verdict = judge(entry, p);
                    Some((self.feeds[*feed as usize].as_str(), adv, entry, verdict))
                })
        })
    }

    /// The findings for one image's packages: every advisory that leaves an installed
    /// package vulnerable. One finding per (package, advisory id), whichever feed says it.
    pub fn findings(&self, distro: &Distro, packages: &[Package]) -> Vec<Finding> {
        let mut out = Vec::new();
        for p in packages {
            let start = out.len();
            for (feed, adv, entry, verdict) in self.verdicts(distro, p) {
                let fixed = match verdict {
                    Verdict::NotAffected => continue,
                    Verdict::Fixed(v) => Some(v),
                    Verdict::Unfixed => None,
                };
                if out[start..].iter().any(|f: &Finding| f.advisory == adv.id) {
                    continue;
                }
                out.push(Finding {
                    package: p.name.clone(),
                    source: p.source_name.clone(),
                    installed: p.full_version(),
                    advisory: adv.id.clone(),
                    aliases: adv.aliases.clone(),
                    severity: entry.severity.unwrap_or(adv.severity),
                    fixed,
                    feed: feed.to_string(),
                    distro: distro.to_string(),
                });
            }
        }
        out
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
fn compared_version(e: &Affected, p: &Package) -> String {
    match (p.kind, e.name_kind) {
        (PackageKind::Rpm, _) | (_, NameKind::Binary) => p.full_version(),
        (_, NameKind::Source) if !p.source_version.is_empty() => p.source_version.clone(),
        _ => p.full_version(),
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
