//! Feed readers against the peers' expectations (../shared/testdata/peers/vuln): vunnel's
//! Debian, Alpine and Ubuntu snapshots, osv.dev's Debian converter, claircore's and
//! vuln-list-update's Alpine secdb cases, and the AlmaLinux/Rocky OSV records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use coldpatch_vuln::{feed, Advisory, Format, Status};
use serde_json::Value;

pub fn vuln_peers() -> Option<PathBuf> {
    Some(coldpatch_testkit::peers()?.join("vuln"))
}

pub fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

/// (distro, package, advisory id) -> "0" (not affected), "None" (no fix) or the fixed
/// version, in vunnel's notation.
fn fixed_in(advisories: &[Advisory]) -> BTreeMap<(String, String, String), String> {
    let mut out = BTreeMap::new();
    for a in advisories {
        for e in &a.affected {
            let v = match &e.status {
                Status::NotAffected => "0".to_string(),
                Status::Affected { ranges, .. } => ranges
                    .iter()
                    .find_map(|r| r.fixed.clone())
                    .unwrap_or_else(|| "None".into()),
            };
            out.insert(
                (
                    e.distro.to_string(),
                    e.package.clone(),
                    a.id.to_ascii_uppercase(),
                ),
                v,
            );
        }
    }
    out
}

/// vunnel's snapshot rows: (namespace, package, id) -> version.
fn vunnel_rows(dir: &Path) -> Vec<((String, String, String), String)> {
    let mut rows = Vec::new();
    for ns in files(dir) {
        for f in files(&ns) {
            let v = &json(&f)["item"]["Vulnerability"];
            for fi in v["FixedIn"].as_array().expect("FixedIn") {
                rows.push((
                    (
                        fi["NamespaceName"].as_str().expect("ns").to_string(),
                        fi["Name"].as_str().expect("name").to_string(),
                        v["Name"].as_str().expect("id").to_ascii_uppercase(),
                    ),
                    fi["Version"].as_str().expect("version").to_string(),
                ));
            }
        }
    }
    rows
}

#[test]
fn debian_tracker_matches_vunnel_snapshots() {
    let Some(p) = vuln_peers() else { return };
    let base = p.join("vunnel/debian/test-fixtures");
    let data = feed::read(&base.join("input/debian.json"), None).expect("read");
    assert_eq!(data.format, Some(Format::DebianTracker));
    assert!(data.rejected.is_empty(), "{:?}", data.rejected);
    let ours = fixed_in(&data.advisories);
    let rows = vunnel_rows(&base.join("snapshots"));
    let (mut same, mut elsewhere) = (0, Vec::new());
    for (key, want) in &rows {
        match ours.get(key) {
            Some(got) => {
                assert_eq!(got, want, "{key:?}");
                same += 1;
            }
            None => elsewhere.push(key.clone()),
        }
    }
    // vunnel also reads the DSA list, its legacy wheezy database and other inputs that
    // are not this tracker document: every row we lack must have no entry at all for its
    // (package, id) in the document.
    let raw = json(&base.join("input/debian.json"));
    for (ns, pkg, id) in &elsewhere {
        assert!(raw[pkg.as_str()][id.as_str()].is_null(), "{ns} {pkg} {id}");
    }
    eprintln!(
        "vunnel debian: {same} rows equal, {} rows from vunnel inputs other than the tracker JSON",
        elsewhere.len()
    );
    assert!(same >= 20, "only {same} rows compared");
}

#[test]
fn debian_tracker_matches_osv_dev_converter() {
    let Some(p) = vuln_peers() else { return };
    let dir = p.join("osv.dev-debian-converter");
    let data = feed::read(&dir.join("debian_security_tracker_mock.json"), None).expect("read");
    let expected = json(&dir.join("expected.json"));
    let numbered: BTreeSet<String> = expected["release_map"]
        .as_object()
        .expect("map")
        .values()
        .map(|v| format!("debian:{}", v.as_str().expect("s")))
        .collect();
    let mut compared = 0;
    for (cve, want) in expected["expected"].as_object().expect("expected") {
        let adv = data
            .advisories
            .iter()
            .find(|a| a.id == *cve)
            .expect("advisory");
        // osv.dev writes an affected entry for every affected release: introduced 0 and,
        // when fixed, the fixed version.
        let mut want_set = BTreeSet::new();
        for a in want["affected"].as_array().expect("affected") {
            let fixed = a["events"]
                .as_array()
                .expect("events")
                .iter()
                .find_map(|e| e["fixed"].as_str())
                .map(String::from);
            want_set.insert((
                a["ecosystem"]
                    .as_str()
                    .expect("eco")
                    .replace("Debian:", "debian:"),
                a["name"].as_str().expect("name").to_string(),
                fixed,
            ));
        }
        let got_set: BTreeSet<_> = adv
            .affected
            .iter()
            .filter(|e| numbered.contains(&e.distro.to_string()))
            .filter_map(|e| match &e.status {
                Status::NotAffected => None,
                Status::Affected { ranges, .. } => Some((
                    e.distro.to_string(),
                    e.package.clone(),
                    ranges.iter().find_map(|r| r.fixed.clone()),
                )),
            })
            .collect();
        assert_eq!(got_set, want_set, "{cve}");
        compared += 1;
    }
    assert_eq!(compared, 3);
}

#[test]
fn alpine_secdb_yaml_matches_vunnel_snapshots() {
    let Some(p) = vuln_peers() else { return };
    let base = p.join("vunnel/alpine/test-fixtures");
    let mut ours = BTreeMap::new();
    for repo in ["main", "community"] {
        let data =
            feed::read(&base.join(format!("input/secdb/v3.15/{repo}.yaml")), None).expect("read");
        assert_eq!(data.format, Some(Format::AlpineSecdb));
        assert_eq!(data.suggested_name, format!("alpine-secdb-v3.15-{repo}"));
        assert!(data.rejected.is_empty(), "{:?}", data.rejected);
        ours.extend(fixed_in(&data.advisories));
    }
    let rows = vunnel_rows(&base.join("snapshots"));
    assert!(rows.len() >= 16);
    for (key, want) in &rows {
        assert_eq!(ours.get(key), Some(want), "{key:?}");
    }
}

#[test]
fn alpine_secdb_json_matches_claircore_and_vuln_list_update() {
    let Some(p) = vuln_peers() else { return };
    let dir = p.join("alpine-secdb/claircore");
    let data = feed::read(&dir.join("v3.10-community.json"), None).expect("read");
    let ours = fixed_in(&data.advisories);
    let expected = json(&dir.join("expected.json"));
    let want = expected["expected_vulnerabilities"]
        .as_array()
        .expect("list");
    assert_eq!(want.len(), 9);
    for w in want {
        let key = (
            "alpine:3.10".to_string(),
            w["source_package"].as_str().expect("pkg").to_string(),
            w["cve"].as_str().expect("cve").to_string(),
        );
        assert_eq!(
            ours.get(&key).map(String::as_str),
            w["fixed_in_version"].as_str(),
            "{key:?}"
        );
    }
    // vuln-list-update's golden files are per package: every (version, id) they list is
    // read back as that package's fix.
    let vlu = p.join("alpine-secdb/vuln-list-update");
    for (input, golden) in [
        ("311-main.json", "311-apache2.json"),
        ("312-main.json", "312-ansible.json"),
        ("edge-main.json", "edge-apk-tools.json"),
    ] {
        let data = feed::read(&vlu.join(input), None).expect("read");
        let ours = fixed_in(&data.advisories);
        let g = json(&vlu.join("golden").join(golden));
        let name = g["name"].as_str().expect("name");
        let mut n = 0;
        for (version, ids) in g["secfixes"].as_object().expect("secfixes") {
            for id in ids.as_array().expect("ids") {
                let id = id
                    .as_str()
                    .expect("id")
                    .split_whitespace()
                    .next()
                    .expect("token");
                let got = ours
                    .iter()
                    .find(|((_, p, i), _)| p == name && i == id)
                    .map(|(_, v)| v.clone());
                assert_eq!(got.as_deref(), Some(version.as_str()), "{golden} {id}");
                n += 1;
            }
        }
        assert!(n > 0, "{golden}");
    }
}

#[test]
fn ubuntu_osv_matches_vunnel_snapshots() {
    let Some(p) = vuln_peers() else { return };
    let base = p.join("vunnel/ubuntu/test-fixtures");
    let data = feed::read(&base.join("osv"), None).expect("read");
    assert!(data.rejected.is_empty(), "{:?}", data.rejected);
    let ours = fixed_in(&data.advisories);
    // Ubuntu withdrew some of its OSV records; vunnel still converts them, coldpatch
    // drops them (OSV: a withdrawn record is not to be used). Those rows are counted
    // apart, and must be exactly the withdrawn ones.
    let withdrawn: BTreeSet<String> = data
        .withdrawn
        .iter()
        .map(|i| i.to_ascii_uppercase())
        .collect();
    let mut skipped_withdrawn = 0;
    let mut compared = 0;
    for ns in files(&base.join("snapshots")) {
        let nsname = ns.file_name().expect("name").to_string_lossy().to_string();
        // ubuntu-18.04-lts and ubuntu-pro-18.04-lts are vunnel's OSV-era namespaces; the
        // ubuntu:12.04 ones come from its older tracker parser, not from these records.
        let Some(rest) = nsname.strip_prefix("ubuntu-") else {
            continue;
        };
        let (fam, rel) = match rest.strip_prefix("pro-") {
            Some(r) => ("ubuntu-pro", r),
            None => ("ubuntu", rest),
        };
        let distro = format!("{fam}:{}", rel.trim_end_matches("-lts"));
        for f in files(&ns) {
            let item = &json(&f)["item"];
            let id = item["id"].as_str().expect("id").to_ascii_uppercase();
            for a in item["affected"].as_array().expect("affected") {
                let pkg = a["package"]["name"].as_str().expect("name");
                let want = a["ranges"][0]["events"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .find_map(|e| e["fixed"].as_str())
                    .unwrap_or("None");
                let key = (distro.clone(), pkg.to_string(), id.clone());
                if withdrawn.contains(&id) {
                    assert_eq!(ours.get(&key), None, "{key:?}");
                    skipped_withdrawn += 1;
                    continue;
                }
                assert_eq!(ours.get(&key).map(String::as_str), Some(want), "{key:?}");
                compared += 1;
            }
        }
    }
    eprintln!(
        "vunnel ubuntu: {compared} rows equal, {skipped_withdrawn} rows of withdrawn records"
    );
    assert!(compared >= 30, "{compared}");
}

#[test]
fn alma_and_rocky_osv_records() {
    let Some(p) = vuln_peers() else { return };
    let alma = feed::read(
        &p.join("vunnel/alma/test-fixtures/osv-database/advisories"),
        None,
    )
    .expect("read");
    assert_eq!(alma.advisories.len(), 5, "{:?}", alma.rejected);
    assert_eq!(alma.suggested_name, "osv-almalinux");
    let maria = alma
        .advisories
        .iter()
        .find(|a| a.id == "ALSA-2023:5259")
        .expect("ALSA-2023:5259");
    assert!(maria.names("CVE-2022-32084"));
    assert!(!maria.affected.is_empty());
    for e in &maria.affected {
        assert_eq!(e.module.as_deref(), Some("mariadb:10.3"), "{}", e.package);
        assert_eq!(e.distro.to_string(), "almalinux:8");
    }
    let rocky = feed::read(&p.join("vunnel/rocky/test-fixtures/osv"), None).expect("read");
    assert_eq!(rocky.advisories.len(), 3, "{:?}", rocky.rejected);
    assert!(rocky
        .advisories
        .iter()
        .all(|a| a.affected.iter().all(|e| e.distro.family == "rocky")));
}

#[test]
fn osv_dev_records() {
    let Some(p) = vuln_peers() else { return };
    let d = feed::read(&p.join("osv-records/DSA-3029-1.json"), None).expect("read");
    let ours = fixed_in(&d.advisories);
    assert_eq!(
        ours.get(&("debian:7".into(), "nginx".into(), "DSA-3029-1".into()))
            .map(String::as_str),
        Some("1.2.1-2.2+wheezy3")
    );
    assert!(d.advisories[0].names("CVE-2014-3616"));
    let u = feed::read(&p.join("osv-records/UBUNTU-CVE-2025-38094.json"), None).expect("read");
    assert_eq!(u.advisories.len(), 1);
}

/// An OSV `all.zip` as osv.dev publishes it: every record a member. A truncated member
/// and one over the size limit are rejected by name; other files are ignored.
#[test]
fn osv_zip_archives() {
    use std::io::Write;
    let record = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/feeds/osv/DEBIAN-CVE-2025-6020.json"),
    )
    .expect("record");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("all.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("DEBIAN-CVE-2025-6020.json", opts)
        .expect("member");
    z.write_all(&record).expect("write");
    z.start_file("broken.json", opts).expect("member");
    z.write_all(&record[..record.len() / 3]).expect("write");
    z.start_file("README.txt", opts).expect("member");
    z.write_all(b"not a record").expect("write");
    z.start_file("huge.json", opts).expect("member");
    let pad = vec![b' '; (feed::MAX_RECORD_BYTES + 1) as usize];
    z.write_all(&pad).expect("write");
    z.finish().expect("finish");

    let data = feed::read(&path, None).expect("read");
    assert_eq!(data.format, Some(Format::Osv));
    assert_eq!(data.suggested_name, "osv-debian");
    assert_eq!(data.advisories.len(), 1);
    assert_eq!(data.advisories[0].id, "DEBIAN-CVE-2025-6020");
    let places: Vec<&str> = data.rejected.iter().map(|r| r.place.as_str()).collect();
    assert_eq!(places.len(), 2, "{:?}", data.rejected);
    assert!(places.iter().any(|p| p.ends_with("broken.json")));
    assert!(data
        .rejected
        .iter()
        .any(|r| r.place.ends_with("huge.json") && r.reason.contains("limit")));
    // A file that only claims to be a zip archive.
    let fake = dir.path().join("fake.zip");
    std::fs::write(&fake, b"PK\x03\x04 and then nothing").expect("write");
    let err = feed::read(&fake, None).expect_err("not a zip");
    assert!(err.to_string().contains("fake.zip"), "{err}");
}
