//! OSV records (https://ossf.github.io/osv-schema/) of distribution ecosystems: Debian,
//! Ubuntu, Alpine, Rocky Linux, AlmaLinux, Red Hat Enterprise Linux. Language ecosystems
//! are skipped: they say nothing about an image's OS packages.

use std::cmp::Ordering;

use serde::Deserialize;

use crate::distro::{family_kind, family_name_kind, from_osv_ecosystem};
use crate::model::{Advisory, Affected, Range, Severity, Status};
use crate::version;

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    severity: Vec<OsvSeverity>,
    #[serde(default)]
    affected: Vec<OsvAffected>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct OsvAffected {
    package: Option<OsvPackage>,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    severity: Vec<OsvSeverity>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<std::collections::BTreeMap<String, String>>,
}

/// What reading one OSV record gave.
pub enum Parsed {
    Advisory(Advisory),
    /// Valid, but with no distribution package in it.
    NotOs,
    /// Marked withdrawn by its publisher.
    Withdrawn(String),
}

/// Parses one OSV record. Errors are reasons for the rejection report.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| format!("not an OSV record: {e}"))?;
    if r.id.trim().is_empty() {
        return Err("OSV record without an id".into());
    }
    if r.withdrawn.is_some() {
        return Ok(Parsed::Withdrawn(r.id));
    }
    let record_severity = record_severity(&r);
    let mut affected = Vec::new();
    for a in &r.affected {
        let Some(pkg) = &a.package else { continue };
        let Some(distro) = from_osv_ecosystem(&pkg.ecosystem) else {
            continue;
        };
        if pkg.name.trim().is_empty() {
            return Err(format!(
                "affected package without a name in {}",
                pkg.ecosystem
            ));
        }
        let kind = family_kind(&distro.family);
        let mut ranges = Vec::new();
        for range in &a.ranges {
            if range.kind != "ECOSYSTEM" {
                continue;
            }
            ranges.extend(build_ranges(&range.events, |x, y| match kind {
                Some(k) => version::compare(k, x, y),
                None => x.cmp(y),
            })?);
        }
        if let Some(k) = kind {
            let bad = ranges
                .iter()
                .flat_map(|r| [&r.introduced, &r.fixed, &r.last_affected])
                .flatten()
                .chain(&a.versions)
                .find(|v| !version::valid(k, v));
            if let Some(v) = bad {
                return Err(format!(
                    "{} {}: version {v:?} is not a valid {} version",
                    pkg.ecosystem,
                    pkg.name,
                    k.as_str()
                ));
            }
        }
        let severity = a
            .severity
            .iter()
            .map(severity_of)
            .chain(specific_severity(a.ecosystem_specific.as_ref()))
            .chain(specific_severity(a.database_specific.as_ref()))
            .max()
            .filter(|s| *s != Severity::Unknown);
        let status = if ranges.is_empty() && a.versions.is_empty() {
            // An entry with neither says nothing; OSV's Debian converter never writes it.
            continue;
        } else {
            Status::Affected {
                ranges,
                versions: a.versions.clone(),
            }
        };
        affected.push(Affected {
            name_kind: family_name_kind(&distro.family),
            module: module_of(&r, &distro.family),
            distro,
            package: pkg.name.clone(),
            status,
            severity,
            arches: Vec::new(),
        });
    }
    if affected.is_empty() {
        return Ok(Parsed::NotOs);
    }
    infer_pro_only_fixes(&mut affected);
    let mut aliases: Vec<String> = Vec::new();
    for a in r.aliases.iter().chain(&r.upstream).chain(&r.related) {
        if *a != r.id && !aliases.contains(a) {
            aliases.push(a.clone());
        }
    }
    let summary = r
        .summary
        .clone()
        .or_else(|| r.details.as_ref().map(|d| first_line(d)))
        .unwrap_or_default();
    Ok(Parsed::Advisory(Advisory {
        id: r.id,
        aliases,
        summary,
        severity: record_severity,
        modified: r.modified,
        published: r.published,
        affected,
    }))
}

/// An Ubuntu release whose only fix is in Pro (ESM) is, for an image without Pro,
/// affected with no fix: an entry the record does not write but means.
fn infer_pro_only_fixes(affected: &mut Vec<Affected>) {
    let mut extra = Vec::new();
    for a in affected.iter().filter(|a| a.distro.family == "ubuntu-pro") {
        let standard = crate::model::Distro::new("ubuntu", &a.distro.release);
        let covered = affected
            .iter()
            .chain(&extra)
            .any(|b: &Affected| b.distro == standard && b.package == a.package);
        if covered || !matches!(a.status, Status::Affected { .. }) {
            continue;
        }
        extra.push(Affected {
            distro: standard,
            status: Status::Affected {
                ranges: vec![Range::default()],
                versions: Vec::new(),
            },
            ..a.clone()
        });
    }
    affected.extend(extra);
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// Turns OSV events into ranges. OSV does not require events to be sorted, so they are
/// sorted by version first ("0" is the start sentinel), then paired: each `introduced`
/// opens a range that the next `fixed` or `last_affected` closes.
fn build_ranges(
    events: &[std::collections::BTreeMap<String, String>],
    cmp: impl Fn(&str, &str) -> Ordering,
) -> Result<Vec<Range>, String> {
    let mut evs: Vec<(&str, &str)> = Vec::new();
    for e in events {
        let mut it = e.iter();
        let (Some((k, v)), None) = (it.next(), it.next()) else {
            return Err("an OSV event must have exactly one field".into());
        };
        match k.as_str() {
            "introduced" | "fixed" | "last_affected" => evs.push((k, v)),
            "limit" => {}
            other => return Err(format!("unknown OSV event {other:?}")),
        }
    }
    evs.sort_by(|a, b| match (a.1 == "0", b.1 == "0") {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => cmp(a.1, b.1),
    });
    let mut out = Vec::new();
    let mut open: Option<Option<String>> = None;
    for (k, v) in evs {
        match k {
            "introduced" => {
                if open.is_none() {
                    open = Some((v != "0").then(|| v.to_string()));
                }
            }
            "fixed" => {
                if let Some(introduced) = open.take() {
                    out.push(Range {
                        introduced,
                        fixed: Some(v.to_string()),
                        last_affected: None,
                    });
                }
            }
            _ => {
                if let Some(introduced) = open.take() {
                    out.push(Range {
                        introduced,
                        fixed: None,
                        last_affected: Some(v.to_string()),
                    });
                }
            }
        }
    }
    if let Some(introduced) = open {
        out.push(Range {
            introduced,
            ..Range::default()
        });
    }
    Ok(out)
}

fn severity_of(s: &OsvSeverity) -> Severity {
    match s.kind.as_str() {
        "CVSS_V3" | "CVSS_V4" => cvss_severity(&s.score),
        _ => Severity::from_feed_word(&s.score),
    }
}

/// CVSS v3 vectors are scored; v4 and unreadable vectors give `Unknown`.
fn cvss_severity(vector: &str) -> Severity {
    let Ok(base) = vector.parse::<cvss::v3::Base>() else {
        return Severity::Unknown;
    };
    match base.score().severity() {
        cvss::Severity::None => Severity::Negligible,
        cvss::Severity::Low => Severity::Low,
        cvss::Severity::Medium => Severity::Medium,
        cvss::Severity::High => Severity::High,
        cvss::Severity::Critical => Severity::Critical,
    }
}

fn specific_severity(v: Option<&serde_json::Value>) -> Option<Severity> {
    let v = v?;
    ["severity", "urgency"]
        .iter()
        .filter_map(|k| v.get(k)?.as_str())
        .map(Severity::from_feed_word)
        .max()
}

/// The record's own severity: the largest of its `severity` entries, its
/// `database_specific.severity`, and the word Red Hat-style summaries start with
/// ("Important: …").
fn record_severity(r: &Record) -> Severity {
    let summary_word = r
        .summary
        .as_deref()
        .and_then(|s| s.split_once(':'))
        .map(|(w, _)| Severity::from_feed_word(w));
    r.severity
        .iter()
        .map(severity_of)
        .chain(specific_severity(r.database_specific.as_ref()))
        .chain(summary_word)
        .max()
        .unwrap_or_default()
}

/// The module stream an Enterprise Linux advisory is about. AlmaLinux and Rocky OSV
/// records carry it only in their summary ("Moderate: mariadb:10.3 security … update")
/// and in the module release of their fixed versions (`….module_el8…`).
fn module_of(r: &Record, family: &str) -> Option<String> {
    if family_kind(family) != Some(coldpatch_collector::PackageKind::Rpm) {
        return None;
    }
    let modular = r.affected.iter().any(|a| {
        a.ranges.iter().any(|rg| {
            rg.events
                .iter()
                .any(|e| e.values().any(|v| v.contains(".module")))
        })
    });
    if !modular {
        return None;
    }
    let summary = r.summary.as_deref()?;
    let rest = summary.split_once(": ").map_or(summary, |(_, b)| b);
    let word = rest.split_whitespace().next()?;
    let (name, stream) = word.split_once(':')?;
    (!name.is_empty() && !stream.is_empty()).then(|| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pairs: &[(&str, &str)]) -> Vec<std::collections::BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|(k, v)| [(k.to_string(), v.to_string())].into_iter().collect())
            .collect()
    }

    #[test]
    fn unsorted_events_pair_into_ranges() {
        let r = build_ranges(
            &ev(&[
                ("fixed", "1.5"),
                ("introduced", "2.0"),
                ("introduced", "0"),
                ("last_affected", "2.3"),
            ]),
            version::dpkg_compare,
        )
        .expect("ranges");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].introduced, None);
        assert_eq!(r[0].fixed.as_deref(), Some("1.5"));
        assert_eq!(r[1].introduced.as_deref(), Some("2.0"));
        assert_eq!(r[1].last_affected.as_deref(), Some("2.3"));
    }

    #[test]
    fn bad_events_are_reasons_not_panics() {
        assert!(build_ranges(&ev(&[("bogus", "1")]), version::dpkg_compare).is_err());
        assert!(parse(b"{\"id\": \"\"}").is_err());
        assert!(parse(b"[1,2]").is_err());
        assert!(matches!(
            parse(b"{\"id\": \"X\", \"affected\": [{\"package\": {\"ecosystem\": \"PyPI\", \"name\": \"a\"}}]}"),
            Ok(Parsed::NotOs)
        ));
    }

    #[test]
    fn cvss_vectors_are_scored() {
        assert_eq!(
            cvss_severity("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"),
            Severity::High
        );
        assert_eq!(cvss_severity("nonsense"), Severity::Unknown);
    }
}
