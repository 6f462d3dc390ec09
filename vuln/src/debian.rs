//! The Debian Security Tracker JSON (https://security-tracker.debian.org/tracker/data/json):
//! `{source package: {CVE: {description, releases: {codename: {status, fixed_version,
//! urgency}}}}}`. One advisory per CVE, with an entry per source package and release.
//!
//! Per release: `resolved` with `fixed_version` "0" means the release never had the bug
//! (not affected); `resolved` with a version means fixed in it; `open` and
//! `undetermined` mean affected with no fix yet. Codenames without a Debian release
//! number are skipped.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::distro::debian_release;
use crate::model::{Advisory, Affected, Distro, NameKind, Range, Rejected, Severity, Status};

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    description: Option<String>,
    /// A map; entries without releases are published as `[]`.
    releases: serde_json::Value,
}

#[derive(Deserialize)]
struct Release {
    status: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
}

/// Whether a JSON document looks like the tracker's: an object of objects whose keys look
/// like vulnerability ids.
pub fn looks_like(doc: &serde_json::Value) -> bool {
    let Some(map) = doc.as_object() else {
        return false;
    };
    map.values().take(20).any(|v| {
        v.as_object().is_some_and(|m| {
            m.iter().take(5).any(|(k, e)| {
                (k.starts_with("CVE-") || k.starts_with("TEMP-")) && e.get("releases").is_some()
            })
        })
    })
}

/// Reads the tracker document. Entries that do not parse are rejected one by one.
pub fn parse(bytes: &[u8], file: &str) -> Result<(Vec<Advisory>, Vec<Rejected>), String> {
    let doc: HashMap<String, HashMap<String, Box<RawValue>>> = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a Debian Security Tracker document: {e}"))?;
    let mut by_id: BTreeMap<String, Advisory> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut packages: Vec<_> = doc.into_iter().collect();
    packages.sort_by(|a, b| a.0.cmp(&b.0));
    for (package, cves) in packages {
        let mut cves: Vec<_> = cves.into_iter().collect();
        cves.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, raw) in cves {
            let entry: Entry = match serde_json::from_str(raw.get()) {
                Ok(e) => e,
                Err(e) => {
                    rejected.push(Rejected {
                        place: format!("{file}: {package}/{id}"),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let adv = by_id.entry(id.clone()).or_insert_with(|| Advisory {
                id: id.clone(),
                aliases: Vec::new(),
                summary: String::new(),
                severity: Severity::Unknown,
                modified: None,
                published: None,
                affected: Vec::new(),
            });
            if adv.summary.is_empty() {
                if let Some(d) = &entry.description {
                    adv.summary = d.chars().take(300).collect();
                }
            }
            let releases = match entry.releases {
                serde_json::Value::Object(m) => m,
                serde_json::Value::Array(a) if a.is_empty() => continue,
                _ => {
                    rejected.push(Rejected {
                        place: format!("{file}: {package}/{id}"),
                        reason: "releases is not a map".into(),
                    });
                    continue;
                }
            };
            for (codename, rel) in releases {
                let rel: Release = match serde_json::from_value(rel) {
                    Ok(r) => r,
                    Err(e) => {
                        rejected.push(Rejected {
                            place: format!("{file}: {package}/{id}/{codename}"),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                let Some(number) = debian_release(&codename) else {
                    continue;
                };
                let status = match (rel.status.as_str(), rel.fixed_version.as_deref()) {
                    ("resolved", Some("0")) => Status::NotAffected,
                    ("resolved", Some(v)) if !crate::version::dpkg_valid(v) => {
                        rejected.push(Rejected {
                            place: format!("{file}: {package}/{id}/{codename}"),
                            reason: format!("fixed_version {v:?} is not a valid dpkg version"),
                        });
                        continue;
                    }
                    ("resolved", Some(v)) => Status::Affected {
                        ranges: vec![Range {
                            fixed: Some(v.to_string()),
                            ..Range::default()
                        }],
                        versions: Vec::new(),
                    },
                    ("open" | "undetermined", _) => Status::Affected {
                        ranges: vec![Range::default()],
                        versions: Vec::new(),
                    },
                    (s, v) => {
                        rejected.push(Rejected {
                            place: format!("{file}: {package}/{id}/{codename}"),
                            reason: format!("status {s:?} with fixed_version {v:?}"),
                        });
                        continue;
                    }
                };
                adv.affected.push(Affected {
                    distro: Distro::new("debian", number),
                    package: package.clone(),
                    name_kind: NameKind::Source,
                    status,
                    severity: rel.urgency.as_deref().map(Severity::from_feed_word),
                    arches: Vec::new(),
                    module: None,
                });
            }
        }
    }
    Ok((by_id.into_values().collect(), rejected))
}
