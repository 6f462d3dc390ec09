//! Alpine secdb (https://secdb.alpinelinux.org/), JSON or YAML: per release and
//! repository, `packages[].pkg = {name, secfixes: {fixed version: [ids]}}`, keyed by
//! origin package. The version "0" lists ids the release was never affected by.
//!
//! An id fixed in several versions of one package (a fix, then a later complete fix)
//! counts as fixed in the smallest: secdb lists the version that first carried a fix.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Advisory, Affected, Distro, NameKind, Range, Rejected, Severity, Status};
use crate::version::apk_compare;

#[derive(Deserialize)]
struct Doc {
    distroversion: String,
    #[serde(default)]
    reponame: Option<String>,
    /// A list; empty repositories have been published as `{}`.
    packages: serde_json::Value,
}

#[derive(Deserialize)]
struct PkgWrap {
    pkg: Pkg,
}

#[derive(Deserialize)]
struct Pkg {
    name: String,
    #[serde(default)]
    secfixes: Option<serde_json::Map<String, serde_json::Value>>,
}

pub fn looks_like(doc: &serde_json::Value) -> bool {
    doc.get("distroversion").is_some()
        && doc
            .get("packages")
            .is_some_and(|p| p.is_array() || p.as_object().is_some_and(|o| o.is_empty()))
}

/// A secdb YAML document as JSON. YAML reads `0:` as a number; keys are turned back into
/// the strings they were written as.
pub fn yaml_to_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(bytes).map_err(|e| format!("not YAML: {e}"))?;
    Ok(to_json(v, 0))
}

fn to_json(v: serde_yaml_ng::Value, depth: usize) -> serde_json::Value {
    use serde_yaml_ng::Value as Y;
    if depth > 64 {
        return serde_json::Value::Null;
    }
    match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => b.into(),
        Y::Number(n) => n.to_string().into(),
        Y::String(s) => s.into(),
        Y::Sequence(s) => s.into_iter().map(|x| to_json(x, depth + 1)).collect(),
        Y::Mapping(m) => m
            .into_iter()
            .map(|(k, v)| {
                let k = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                (k, to_json(v, depth + 1))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Y::Tagged(t) => to_json(t.value, depth + 1),
    }
}

/// The feed name a secdb document suggests: `alpine-secdb-v3.15-main`.
pub fn name_of(doc: &serde_json::Value) -> String {
    let v = doc
        .get("distroversion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let r = doc.get("reponame").and_then(|v| v.as_str()).unwrap_or("");
    format!("alpine-secdb-{v}-{r}")
}

pub fn parse(doc: serde_json::Value, file: &str) -> Result<(Vec<Advisory>, Vec<Rejected>), String> {
    let doc: Doc = serde_json::from_value(doc).map_err(|e| format!("not an Alpine secdb: {e}"))?;
    let release = doc.distroversion.trim_start_matches('v');
    if release.is_empty() {
        return Err("empty distroversion".into());
    }
    let distro = Distro::new("alpine", release);
    let repo = doc.reponame.unwrap_or_default();
    let mut rejected = Vec::new();
    // id -> package -> fixed versions
    let mut fixes: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let packages = match doc.packages {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) if o.is_empty() => Vec::new(),
        _ => return Err("secdb packages is not a list".into()),
    };
    for (i, raw) in packages.into_iter().enumerate() {
        let p: PkgWrap = match serde_json::from_value(raw) {
            Ok(p) => p,
            Err(e) => {
                rejected.push(Rejected {
                    place: format!("{file}: {repo} packages[{i}]"),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        for (version, ids) in p.pkg.secfixes.unwrap_or_default() {
            if version != "0" && !crate::version::apk_valid(&version) {
                rejected.push(Rejected {
                    place: format!("{file}: {}/{version}", p.pkg.name),
                    reason: format!("{version:?} is not a valid apk version"),
                });
                continue;
            }
            // Published secdbs hold a few `version: {}` entries: no ids.
            if ids.is_null() || ids.as_object().is_some_and(|o| o.is_empty()) {
                continue;
            }
            let Some(ids) = ids.as_array() else {
                rejected.push(Rejected {
                    place: format!("{file}: {}/{version}", p.pkg.name),
                    reason: "secfixes entry is not a list".into(),
                });
                continue;
            };
            for id in ids.iter().filter_map(|i| i.as_str()) {
                // Entries may hold several ids, or an id followed by a remark.
                for token in id.split_whitespace().filter(|t| t.contains('-')) {
                    fixes
                        .entry(token.to_string())
                        .or_default()
                        .entry(p.pkg.name.clone())
                        .or_default()
                        .push(version.clone());
                }
            }
        }
    }
    let advisories = fixes
        .into_iter()
        .map(|(id, pkgs)| Advisory {
            affected: pkgs
                .into_iter()
                .map(|(package, versions)| {
                    let fixed = versions
                        .iter()
                        .filter(|v| v.as_str() != "0")
                        .min_by(|a, b| apk_compare(a, b));
                    Affected {
                        distro: distro.clone(),
                        package,
                        name_kind: NameKind::Source,
                        status: match fixed {
                            None => Status::NotAffected,
                            Some(v) => Status::Affected {
                                ranges: vec![Range {
                                    fixed: Some(v.clone()),
                                    ..Range::default()
                                }],
                                versions: Vec::new(),
                            },
                        },
                        severity: None,
                        arches: Vec::new(),
                        module: None,
                    }
                })
                .collect(),
            id,
            aliases: Vec::new(),
            summary: String::new(),
            severity: Severity::Unknown,
            modified: None,
            published: None,
        })
        .collect();
    Ok((advisories, rejected))
}
