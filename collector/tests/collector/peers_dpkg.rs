//! dpkg status files from trivy, syft, osv-scalibr, fossa-cli and claircore, against the
//! real `dpkg-query` (the oracle files) and, for distroless status.d files, syft's lists.

use std::path::{Path, PathBuf};

use coldpatch_collector::analyzers::dpkg::parse_status;

use crate::util::*;

type Row = (String, String, String, String, String);

fn oracle_rows(oracle: &Path) -> Vec<Row> {
    let o = json(oracle);
    let mut rows: Vec<Row> = o["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| s(p, "status") == "install ok installed")
        .map(|p| {
            (
                s(p, "name"),
                s(p, "version"),
                s(p, "source_name"),
                s(p, "source_version"),
                s(p, "arch"),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn our_rows(status: &Path, distroless: bool) -> (Vec<Row>, Vec<String>) {
    let data = std::fs::read(status).unwrap_or_else(|e| panic!("{}: {e}", status.display()));
    let (pkgs, problems) = parse_status(&data, "status", distroless);
    let mut rows: Vec<Row> = pkgs
        .into_iter()
        .map(|p| (p.name, p.version, p.source_name, p.source_version, p.arch))
        .collect();
    rows.sort();
    (rows, problems)
}

/// (status file, oracle) pairs for every dpkg-query oracle in the data set.
fn oracle_cases(peers: &Path) -> Vec<(PathBuf, PathBuf)> {
    let d = peers.join("dpkg");
    let mut cases = Vec::new();
    for c in [
        "valid",
        "corrupsed",
        "only-apt",
        "digest",
        "md5sums",
        "third-party",
    ] {
        cases.push((
            d.join(format!("trivy/{c}/var/lib/dpkg/status")),
            d.join(format!("trivy/{c}/dpkg-query-oracle.json")),
        ));
    }
    for c in [
        "valid",
        "noversion",
        "nopackage",
        "statusfield",
        "single",
        "trailingnewlines",
        "transitional",
    ] {
        cases.push((
            d.join(format!("osv-scalibr/dpkg/{c}")),
            d.join(format!("osv-scalibr/dpkg-{c}.dpkg-query-oracle.json")),
        ));
    }
    for c in ["texlive", "postgresql", "debian-only", "vcpkg"] {
        cases.push((
            d.join(format!("claircore/{c}.status")),
            d.join(format!("claircore/{c}.dpkg-query-oracle.json")),
        ));
    }
    cases.push((
        d.join("fossa-cli/var/lib/dpkg/status"),
        d.join("fossa-cli/dpkg-query-oracle.json"),
    ));
    cases.push((
        d.join("syft/testdata/image-dpkg/var/lib/dpkg/status"),
        d.join("syft/testdata/image-dpkg/dpkg-query-oracle.json"),
    ));
    cases
}

#[test]
fn status_files_match_dpkg_query() {
    let Some(peers) = peers() else { return };
    let mut checked = 0;
    for (status, oracle) in oracle_cases(&peers) {
        let (got, problems) = our_rows(&status, false);
        if json(&oracle)["exit_code"].as_i64() != Some(0) {
            // dpkg-query gives up on the whole file at the first stanza without a Package or
            // an installed one without a Version, and lists nothing. A scanner keeps the good
            // stanzas and names the bad one, so here we check that instead.
            assert!(
                !problems.is_empty(),
                "{}: no problem reported",
                status.display()
            );
            assert!(!got.is_empty(), "{}", status.display());
            continue;
        }
        assert_eq!(got, oracle_rows(&oracle), "{}", status.display());
        checked += got.len();
    }
    assert!(checked > 500, "only {checked} packages compared");
}

#[test]
fn corrupt_stanzas_are_reported_not_fatal() {
    let Some(peers) = peers() else { return };
    let (rows, problems) = our_rows(
        &peers.join("dpkg/trivy/corrupsed/var/lib/dpkg/status"),
        false,
    );
    assert_eq!(rows.len(), 4);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("invalidpkg") && p.contains("invalid character")),
        "{problems:?}"
    );
}

/// syft's expectations for distroless status.d files, which have no Status field. syft keeps
/// a stanza without a Version (as version ""); dpkg-query drops such a package, and so do
/// we, reporting it as a problem instead.
#[test]
fn distroless_status_d_matches_syft() {
    let Some(peers) = peers() else { return };
    let base = peers.join("dpkg/syft");
    let exp = json(&base.join("expected.json"));
    let mut checked = 0;
    for case in exp["parse_dpkg_db_test.go Test_parseDpkgStatus"]
        .as_array()
        .expect("cases")
    {
        let fixture = s(case, "fixture");
        if !fixture.contains("dpkg/status.d/") {
            continue;
        }
        let (got, problems) = our_rows(&base.join(&fixture), true);
        let want: Vec<(String, String, String)> = case["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|p| !s(p, "version").is_empty())
            .map(|p| (s(p, "name"), s(p, "version"), s(p, "arch")))
            .collect();
        let mut want = want;
        want.sort();
        let got3: Vec<_> = got
            .iter()
            .map(|r| (r.0.clone(), r.1.clone(), r.4.clone()))
            .collect();
        assert_eq!(got3, want, "{fixture}");
        if fixture.ends_with("multiple") {
            assert!(
                problems.iter().any(|p| p.contains("no-version")),
                "{problems:?}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} status.d cases");
}

/// Provides and (Pre-)Depends as the real dpkg-query prints them, on every peer status
/// file dpkg-query accepts (run live here on a private copy of each file).
#[test]
fn relations_match_dpkg_query() {
    let Some(peers) = peers() else { return };
    if std::process::Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        coldpatch_testkit::skip("no dpkg-query on this machine");
        return;
    }
    let split = |v: &str| -> Vec<String> {
        v.split(',')
            .map(|g| g.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|g| !g.is_empty())
            .collect()
    };
    let mut checked = 0;
    for (status, oracle) in oracle_cases(&peers) {
        if json(&oracle)["exit_code"].as_i64() != Some(0) {
            continue;
        }
        let admin = tempfile::tempdir().expect("tmp");
        std::fs::copy(&status, admin.path().join("status")).expect("copy");
        let out = std::process::Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.path().display()))
            .args([
                "-W",
                "-f=${db:Status-Status}\t${Package}\t${Provides}\t${Pre-Depends}\t${Depends}\n",
            ])
            .output()
            .expect("dpkg-query");
        let text = String::from_utf8_lossy(&out.stdout);
        let data = std::fs::read(&status).expect("read");
        let (pkgs, _) = parse_status(&data, "status", false);
        // Every package we list (installed and wanted), against dpkg-query's line.
        for p in &pkgs {
            let Some(f) = text
                .lines()
                .map(|l| l.split('\t').collect::<Vec<_>>())
                .find(|f| f.len() == 5 && f[0] == "installed" && f[1] == p.name)
            else {
                panic!("{}: dpkg-query has no {}", status.display(), p.name);
            };
            assert_eq!(p.provides, split(f[2]), "{} {}", status.display(), p.name);
            let deps: Vec<String> = split(f[3]).into_iter().chain(split(f[4])).collect();
            assert_eq!(p.depends, deps, "{} {}", status.display(), p.name);
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} packages compared");
}
