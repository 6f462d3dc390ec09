//! The matcher on Trivy's detector cases (../shared/testdata/peers/vuln/trivy-detector):
//! Trivy's fixtures are its own database, not a feed coldpatch imports, so each fixture
//! advisory is written into coldpatch's model the way its fields read (FixedVersion ""
//! = no fix; AffectedVersion = first affected version; Entries with Arches = per-arch
//! fixes; a "name:stream::pkg" bucket = a module stream), and the case's packages are
//! matched. Findings must equal Trivy's wanted (package, id, fixed version).
//!
//! Cases left out, with the reason:
//! - "invalid"/"broken" fixtures test Trivy's database errors; coldpatch rejects bad
//!   records at import (tested in feeds.rs).
//! - Alpine cases with `repo` newer than the OS: Trivy keys Alpine on
//!   /etc/apk/repositories; coldpatch keys on os-release.
//! - Ubuntu "19.04-ESM is outdated": Trivy drops end-of-life releases; coldpatch reports
//!   what the feed says.
//! - Red Hat: Trivy's fixture is keyed by CPE and content sets, which no feed coldpatch
//!   reads carries.

use std::collections::BTreeSet;

use coldpatch_collector::{Package, PackageKind};
use coldpatch_vuln::distro::from_os_release;
use coldpatch_vuln::{Advisory, Affected, Distro, Index, NameKind, Range, Severity, Status};
use serde_json::Value;

use crate::feeds::{json, vuln_peers};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

fn trivy_severity(v: &Value) -> Option<Severity> {
    v["Severity"].as_u64().map(|n| match n {
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        4 => Severity::Critical,
        _ => Severity::Unknown,
    })
}

/// One Trivy fixture advisory as coldpatch entries.
fn entries(distro: &Distro, bucket: &str, v: &Value, name_kind: NameKind) -> Vec<Affected> {
    let (module, package) = match bucket.split_once("::") {
        Some((m, p)) => (Some(m.to_string()), p.to_string()),
        None => (None, bucket.to_string()),
    };
    let one = |fixed: &str, arches: Vec<String>| Affected {
        distro: distro.clone(),
        package: package.clone(),
        name_kind,
        status: Status::Affected {
            ranges: vec![Range {
                introduced: Some(s(v, "AffectedVersion")).filter(|x| !x.is_empty()),
                fixed: Some(fixed.to_string()).filter(|x| !x.is_empty()),
                last_affected: None,
            }],
            versions: Vec::new(),
        },
        severity: trivy_severity(v),
        arches,
        module: module.clone(),
    };
    match v["Entries"].as_array() {
        Some(list) => list
            .iter()
            .map(|e| {
                let arches = e["Arches"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                one(&s(e, "FixedVersion"), arches)
            })
            .collect(),
        None => vec![one(&s(v, "FixedVersion"), Vec::new())],
    }
}

fn package(kind: PackageKind, p: &Value) -> Package {
    let (version, release) = match kind {
        PackageKind::Rpm => (s(p, "Version"), Some(s(p, "Release"))),
        _ => (s(p, "Version"), None),
    };
    let epoch = p["Epoch"].as_u64().filter(|e| *e > 0).map(|e| e as u32);
    let label = s(p, "Modularitylabel");
    Package {
        epoch,
        release,
        arch: s(p, "Arch"),
        source_name: s(p, "SrcName"),
        source_version: s(p, "SrcVersion"),
        module: {
            let mut it = label.split(':');
            match (it.next(), it.next()) {
                (Some(n), Some(st)) if !n.is_empty() => Some(format!("{n}:{st}")),
                _ => None,
            }
        },
        ..Package::new(kind, &s(p, "Name"), &version)
    }
}

fn run_family(file: &str, os_id: &str, kind: PackageKind, name_kind: NameKind) -> usize {
    let Some(p) = vuln_peers() else { return 0 };
    let d = json(&p.join("trivy-detector").join(file));
    let mut ran = 0;
    for case in d["cases"].as_array().expect("cases") {
        let name = s(case, "name");
        let fixtures: Vec<String> = case["fixtures"]
            .as_array()
            .expect("fixtures")
            .iter()
            .map(|f| f.as_str().expect("f").to_string())
            .collect();
        if !case["want_err"].is_null()
            || fixtures.iter().any(|f| f.contains("invalid"))
            || !case["repo"].is_null()
            || (name.contains("is outdated") && !name.contains("not outdated"))
        {
            continue;
        }
        let mut advisories = Vec::new();
        for f in &fixtures {
            for top in d["fixtures"][f.as_str()].as_array().expect("fixture") {
                let bucket = s(top, "bucket");
                let Some((_, release)) = bucket.split_once(' ') else {
                    continue;
                };
                let distro = Distro::new(os_id, release);
                for pkg in top["pairs"].as_array().expect("pairs") {
                    for adv in pkg["pairs"].as_array().expect("pairs") {
                        advisories.push(Advisory {
                            id: s(adv, "key"),
                            aliases: Vec::new(),
                            summary: String::new(),
                            severity: Severity::Unknown,
                            modified: None,
                            published: None,
                            affected: entries(&distro, &s(pkg, "bucket"), &adv["value"], name_kind),
                        });
                    }
                }
            }
        }
        let mut index = Index::new();
        index.add_feed("trivy-fixture", advisories);
        let os = s(case, "os_version");
        let os = os.trim_end_matches("-ESM");
        let distro = from_os_release(os_id, os, "").expect("distro");
        let packages: Vec<Package> = case["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| package(kind, p))
            .collect();
        let got: BTreeSet<(String, String, String)> = index
            .findings(&distro, &packages)
            .into_iter()
            .map(|f| {
                (
                    f.package.to_string(),
                    f.of.advisory.to_string(),
                    f.fixed.as_deref().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let want: BTreeSet<(String, String, String)> = case["want"]
            .as_array()
            .expect("want")
            .iter()
            .map(|w| {
                (
                    s(w, "PkgName"),
                    s(w, "VulnerabilityID"),
                    s(w, "FixedVersion"),
                )
            })
            .collect();
        assert_eq!(got, want, "{file}: {name}");
        ran += 1;
    }
    ran
}

#[test]
fn trivy_debian_cases() {
    let n = run_family("debian.json", "debian", PackageKind::Deb, NameKind::Source);
    assert!(n == 0 && vuln_peers().is_none() || n == 1, "{n}");
}

#[test]
fn trivy_ubuntu_cases() {
    let n = run_family("ubuntu.json", "ubuntu", PackageKind::Deb, NameKind::Source);
    assert!(n == 0 && vuln_peers().is_none() || n == 2, "{n}");
}

#[test]
fn trivy_alpine_cases() {
    let n = run_family("alpine.json", "alpine", PackageKind::Apk, NameKind::Source);
    assert!(n == 0 && vuln_peers().is_none() || n == 3, "{n}");
}

#[test]
fn trivy_rocky_cases() {
    let n = run_family("rocky.json", "rocky", PackageKind::Rpm, NameKind::Binary);
    assert!(n == 0 && vuln_peers().is_none() || n == 2, "{n}");
}

#[test]
fn trivy_alma_cases() {
    let n = run_family("alma.json", "almalinux", PackageKind::Rpm, NameKind::Binary);
    assert!(n == 0 && vuln_peers().is_none() || n == 3, "{n}");
}

fn deb(name: &str, version: &str, source: &str, source_version: &str) -> Package {
    Package {
        arch: "amd64".into(),
        source_name: source.into(),
        source_version: source_version.into(),
        ..Package::new(PackageKind::Deb, name, version)
    }
}

/// The distinct results, the release boundary and the source key, on one advisory.
#[test]
fn verdicts_are_distinct_and_release_bound() {
    let entry = |rel: &str, status: Status| Affected {
        distro: Distro::new("debian", rel),
        package: "openssl".into(),
        name_kind: NameKind::Source,
        status,
        severity: None,
        arches: Vec::new(),
        module: None,
    };
    let fixed = |v: &str| Status::Affected {
        ranges: vec![Range {
            fixed: Some(v.into()),
            ..Range::default()
        }],
        versions: Vec::new(),
    };
    let adv = Advisory {
        id: "CVE-X".into(),
        aliases: vec![],
        summary: String::new(),
        severity: Severity::High,
        modified: None,
        published: None,
        affected: vec![
            entry("11", fixed("1.1.1w-0+deb11u2")),
            entry("12", fixed("3.0.15-1~deb12u1")),
            entry("10", Status::NotAffected),
            entry(
                "13",
                Status::Affected {
                    ranges: vec![Range::default()],
                    versions: Vec::new(),
                },
            ),
        ],
    };
    let mut index = Index::new();
    index.add_feed("t", [adv]);
    let libssl = deb(
        "libssl1.1",
        "1.1.1w-0+deb11u1",
        "openssl",
        "1.1.1w-0+deb11u1",
    );
    let f = index.findings(&Distro::new("debian", "11"), std::slice::from_ref(&libssl));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].fixed.as_deref(), Some("1.1.1w-0+deb11u2"));
    assert_eq!(&*f[0].package, "libssl1.1");
    assert_eq!(f[0].severity, Severity::High);
    // The same package at the fixed version, and on a release never affected: nothing.
    let patched = deb(
        "libssl1.1",
        "1.1.1w-0+deb11u2",
        "openssl",
        "1.1.1w-0+deb11u2",
    );
    assert!(index
        .findings(&Distro::new("debian", "11"), &[patched])
        .is_empty());
    assert!(index
        .findings(&Distro::new("debian", "10"), std::slice::from_ref(&libssl))
        .is_empty());
    // No fix yet.
    let f = index.findings(&Distro::new("debian", "13"), std::slice::from_ref(&libssl));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].fixed, None);
    // A release the advisory does not name.
    assert!(index
        .findings(&Distro::new("debian", "9"), &[libssl])
        .is_empty());
    // Keyed on the source: a binary called openssl from another source is not it.
    let other = deb("openssl", "1.0", "not-openssl", "1.0");
    assert!(index
        .findings(&Distro::new("debian", "11"), &[other])
        .is_empty());
}
