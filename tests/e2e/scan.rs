//! Scanning the real debian-11-old image against real Debian advisory facts
//! (tests/data/feeds, see its README): exactly the expected findings, none from the
//! bookworm-only advisory, none for versions already fixed. The expectation is derived
//! from the image's own dpkg oracle and the real `dpkg --compare-versions`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::util::image_dir;
use crate::{coldpatch, json, on_both, stderr, stdout};

/// (advisory id as stored, source package, bullseye fixed version)
const BULLSEYE: &[(&str, &str, &str)] = &[
    ("CVE-2025-69418", "openssl", "1.1.1w-0+deb11u5"),
    ("CVE-2024-22365", "pam", "1.4.0-9+deb11u2"),
    ("DEBIAN-CVE-2025-6020", "pam", "1.4.0-9+deb11u2"),
    ("CVE-2022-1304", "e2fsprogs", "1.46.2-2+deb11u1"),
    ("CVE-2024-12133", "libtasn1-6", "4.16.0-2+deb11u2"),
    ("CVE-2021-46848", "libtasn1-6", "4.16.0-2+deb11u1"),
    ("CVE-2022-1271", "xz-utils", "5.2.5-2.1~deb11u1"),
];

fn feeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/feeds")
}

fn dpkg_lt(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .expect("dpkg")
        .success()
}

on_both! {
fn debian_11_scan_finds_exactly_the_real_advisories(d: &Path) {
    let dir = image_dir("debian-11-old");
    let image = dir.join("disk.qcow2");
    let image_s = image.to_str().expect("utf8");
    let out = coldpatch(d, &["collect", "--no-files", image_s]);
    assert!(out.status.success(), "{}", stderr(&out));

    let tracker = feeds().join("debian-tracker.json");
    let out = coldpatch(
        d,
        &["feed", "import", tracker.to_str().expect("utf8"), "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = json(&out);
    assert_eq!(rep["feed"], "debian-tracker");
    assert_eq!(rep["imported"], 7);
    assert_eq!(rep["rejected"].as_array().map(Vec::len), Some(0));
    let osv = feeds().join("osv");
    let out = coldpatch(
        d,
        &["feed", "import", osv.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("feed osv-debian: 1 imported"),
        "{}",
        stdout(&out)
    );

    // The expectation: every binary of the image whose source a bullseye advisory
    // names, at a version dpkg orders before the fix.
    let oracle = std::fs::read_to_string(dir.join("packages.tsv")).expect("oracle");
    let mut want = BTreeSet::new();
    for line in oracle.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, version, source, source_version) = (f[0], f[1], f[3], f[4]);
        for (id, src, fixed) in BULLSEYE {
            if *src == source && dpkg_lt(source_version, fixed) {
                want.insert((
                    name.to_string(),
                    version.to_string(),
                    id.to_string(),
                    fixed.to_string(),
                ));
            }
        }
    }
    assert!(want.iter().any(|w| w.0 == "libssl1.1"), "{want:?}");
    assert!(!want
        .iter()
        .any(|w| w.2 == "CVE-2021-46848" || w.2 == "CVE-2022-1271"));

    let out = coldpatch(d, &["scan", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = json(&out);
    let img = &rep["images"][0];
    assert_eq!(img["distro"], "debian:11");
    let got: BTreeSet<(String, String, String, String)> = img["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["package"].as_str().expect("p").to_string(),
                f["installed"].as_str().expect("i").to_string(),
                f["advisory"].as_str().expect("a").to_string(),
                f["fixed"].as_str().expect("fixed").to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        !stdout(&out).contains("CVE-2023-2975"),
        "bookworm-only advisory matched"
    );

    // Table output, --fail-on and --only-fixable.
    let out = coldpatch(d, &["scan", image_s, "--fail-on", "high"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("CVE-2025-69418"));
    let out = coldpatch(d, &["scan", "--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // affected: every image hit by one CVE, found through an OSV record's upstream id.
    let out = coldpatch(d, &["affected", "CVE-2025-6020", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hits = json(&out);
    let pam = want
        .iter()
        .filter(|w| w.2 == "DEBIAN-CVE-2025-6020")
        .count();
    assert_eq!(hits.as_array().map(Vec::len), Some(pam));
    assert!(pam >= 1);
    assert_eq!(hits[0]["fixed"], "1.4.0-9+deb11u2");
    let none = json(&coldpatch(
        d,
        &["affected", "CVE-2023-2975", "--json"],
    ));
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // Feeds are listed with their record counts; a re-import changes nothing.
    let list = json(&coldpatch(d, &["feed", "list", "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let out = coldpatch(
        d,
        &["feed", "import", tracker.to_str().expect("utf8"), "--json"],
    );
    let rep = json(&out);
    assert_eq!(
        (rep["imported"].as_u64(), rep["unchanged"].as_u64()),
        (Some(0), Some(7))
    );
}
}

#[test]
fn a_malformed_feed_is_reported_and_stored_records_survive() {
    let data = tempfile::tempdir().expect("tempdir");
    let feed_dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(feeds().join("osv/DEBIAN-CVE-2025-6020.json")).expect("read");
    std::fs::write(feed_dir.path().join("good.json"), &good).expect("write");
    let d = feed_dir.path().to_str().expect("utf8");
    let out = coldpatch(data.path(), &["feed", "import", d, "--name", "mine"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A truncated record and one with an impossible version: both rejected by name,
    // the good one kept unchanged.
    std::fs::write(feed_dir.path().join("broken.json"), &good[..good.len() / 2]).expect("write");
    let bad_version = String::from_utf8(good.clone())
        .expect("utf8")
        .replace("DEBIAN-CVE-2025-6020", "DEBIAN-CVE-0000-0001")
        .replace("1.4.0-9+deb11u2", "not a version");
    std::fs::write(feed_dir.path().join("badversion.json"), bad_version).expect("write");
    let out = coldpatch(
        data.path(),
        &["feed", "import", d, "--name", "mine", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = json(&out);
    assert_eq!(rep["unchanged"], 1);
    let rejected = rep["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected.iter().any(|r| r["place"]
        .as_str()
        .is_some_and(|p| p.ends_with("broken.json"))));
    assert!(rejected.iter().any(|r| r["reason"]
        .as_str()
        .is_some_and(|p| p.contains("not a valid deb version"))));

    // A file that is no feed at all: an error naming it, and the catalog unchanged.
    let junk = feed_dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x00\x01 not json").expect("write");
    let out = coldpatch(
        data.path(),
        &["feed", "import", junk.to_str().expect("utf8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("junk.bin"), "{}", stderr(&out));
    let list = json(&coldpatch(data.path(), &["feed", "list", "--json"]));
    assert_eq!(list[0]["records"], 1);
}
