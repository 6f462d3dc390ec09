//! rpm databases (BerkeleyDB, SQLite, NDB) and raw header blobs from go-rpmdb, fossa-cli,
//! syft, osv-scalibr and snyk, against `rpm -qa` oracles or the peers' expected lists.

use coldpatch_collector::analyzers::rpm::{header, read_database, RpmHeader};

use crate::util::*;

fn nevra(
    h: &RpmHeader,
) -> (
    String,
    Option<u64>,
    String,
    String,
    Option<String>,
    Option<String>,
) {
    (
        h.name.clone(),
        h.epoch.map(u64::from),
        h.version.clone(),
        h.release.clone(),
        h.arch.clone().filter(|a| !a.is_empty()),
        h.sourcerpm.clone(),
    )
}

fn expected(
    v: &serde_json::Value,
) -> (
    String,
    Option<u64>,
    String,
    String,
    Option<String>,
    Option<String>,
) {
    let opt = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(String::from)
            .filter(|a| !a.is_empty() && a != "(none)")
    };
    (
        s(v, "name"),
        v.get("epoch").and_then(serde_json::Value::as_u64),
        s(v, "version"),
        s(v, "release"),
        opt("arch"),
        opt("sourcerpm"),
    )
}

/// The fields go-rpmdb's records carry beyond NEVRA.
fn assert_detail(h: &RpmHeader, r: &serde_json::Value, set: &str) {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    assert_eq!(
        h.size.map(u64::from),
        r["size"].as_u64(),
        "{set} {}",
        h.name
    );
    assert_eq!(text(&h.license), s(r, "license"), "{set} {}", h.name);
    assert_eq!(text(&h.vendor), s(r, "vendor"), "{set} {}", h.name);
    assert_eq!(text(&h.summary), s(r, "summary"), "{set} {}", h.name);
    assert_eq!(
        text(&h.modularitylabel),
        s(r, "modularitylabel"),
        "{set} {}",
        h.name
    );
    assert_eq!(text(&h.sigmd5), s(r, "sigmd5"), "{set} {}", h.name);
}

fn read(peers: &std::path::Path, rel: &str) -> Vec<RpmHeader> {
    let data = std::fs::read(peers.join(rel)).expect("read db");
    let (h, problems) = read_database(&data).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(problems.is_empty(), "{rel}: {problems:?}");
    h
}

#[test]
fn databases_match_rpm_qa_oracle() {
    let Some(peers) = peers() else { return };
    let cases = [
        (
            "rpmdb/go-rpmdb/cbl-mariner-2.0/rpmdb.sqlite",
            "rpmdb/go-rpmdb/cbl-mariner-2.0/rpm-qa-oracle.json",
            129,
        ),
        (
            "rpmdb/go-rpmdb/libuuid/Packages",
            "rpmdb/go-rpmdb/libuuid/rpm-qa-oracle.json",
            1,
        ),
        (
            "rpmdb/fossa-cli/sles12sp4/Packages",
            "rpmdb/fossa-cli/sles12sp4/rpm-qa-oracle.json",
            108,
        ),
        ("rpmdb/syft/Packages", "rpmdb/syft/rpm-qa-oracle.json", 1),
        (
            "rpmdb/osv-scalibr/Packages_epoch",
            "rpmdb/osv-scalibr/Packages_epoch.rpm-qa-oracle.json",
            1,
        ),
    ];
    for (db, oracle, count) in cases {
        let mut got: Vec<_> = read(&peers, db).iter().map(nevra).collect();
        let oracle = json(&peers.join(oracle));
        let list = oracle
            .as_array()
            .or_else(|| oracle.get("packages").and_then(|p| p.as_array()))
            .expect("oracle list");
        let mut want: Vec<_> = list.iter().map(expected).collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), count, "{db}");
        assert_eq!(got, want, "{db}");
    }
}

#[test]
fn ndb_matches_go_rpmdb_list_with_all_fields() {
    let Some(peers) = peers() else { return };
    let got = read(&peers, "rpmdb/go-rpmdb/sle15-bci/Packages.db");
    let want = json(&peers.join("rpmdb/go-rpmdb/expected/SLE15WithNDB.json"));
    let want = want.as_array().expect("list");
    assert_eq!(got.len(), 35);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(nevra(g), expected(w));
        assert_detail(g, w, "sle15");
    }
}

#[test]
fn sqlite_curl_matches_go_rpmdb_detail() {
    let Some(peers) = peers() else { return };
    let got = read(&peers, "rpmdb/go-rpmdb/cbl-mariner-2.0/rpmdb.sqlite");
    let want = json(&peers.join("rpmdb/go-rpmdb/cbl-mariner-2.0/peer-expected-curl.json"));
    let want = want.get("package").unwrap_or(&want);
    let curl = got.iter().find(|h| h.name == "curl").expect("curl present");
    assert_eq!(curl.version, s(want, "version"));
    assert_eq!(curl.release, s(want, "release"));
    assert_eq!(curl.license.as_deref().unwrap_or(""), s(want, "license"));
}

/// Header blobs extracted from eleven CentOS/UBI BerkeleyDB databases (fossa-cli), against
/// the NEVRA in each blob's file name list and go-rpmdb's full expected records.
#[test]
fn header_blobs_match_expected_lists() {
    let Some(peers) = peers() else { return };
    let base = peers.join("rpmdb/fossa-cli-headerblobs");
    let sets = json(&base.join("datasets.json"));
    let mut total = 0;
    let mut detailed = 0;
    for (name, meta) in sets.as_object().expect("object") {
        let dir = tempfile::tempdir().expect("tempdir");
        let tarball = base.join(s(meta, "tarball"));
        let ok = std::process::Command::new("tar")
            .args([
                "-xJf",
                tarball.to_str().expect("utf8"),
                "-C",
                dir.path().to_str().expect("utf8"),
            ])
            .status()
            .expect("tar");
        assert!(ok.success());
        let want = json(&base.join(format!("expected-from-blobs/{name}.json")));
        for w in want.as_array().expect("list") {
            let file = dir.path().join(name).join("bins").join(s(w, "file"));
            let blob = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let h = header::parse(&blob).unwrap_or_else(|e| panic!("{name}/{}: {e}", s(w, "file")));
            assert_eq!(nevra(&h), expected(w), "{name}/{}", s(w, "file"));
            total += 1;
        }
        // go-rpmdb's records carry more fields; compare those that have a blob.
        let full = json(&base.join(s(meta, "go_rpmdb_expected_list")));
        let by_nevra: std::collections::HashMap<_, _> = full
            .as_array()
            .expect("list")
            .iter()
            .map(|r| (expected(r), r))
            .collect();
        for w in want.as_array().expect("list") {
            let blob =
                std::fs::read(dir.path().join(name).join("bins").join(s(w, "file"))).expect("blob");
            let h = header::parse(&blob).expect("parsed above");
            if let Some(r) = by_nevra.get(&nevra(&h)) {
                assert_detail(&h, r, name);
                detailed += 1;
            }
        }
    }
    assert!(total > 2500, "only {total} blobs checked");
    // go-rpmdb's CentOS6Many list is a prefix (44 of 326); every other blob has a record.
    assert!(
        detailed > 2500,
        "only {detailed} blobs compared field by field"
    );
}

#[test]
fn single_blob_parses_its_nevra() {
    let Some(peers) = peers() else { return };
    let blob = std::fs::read(peers.join("rpmdb/go-rpmdb/blob.bin")).expect("blob");
    let h = header::parse(&blob).expect("parses");
    assert_eq!(
        (
            h.name.as_str(),
            h.version.as_str(),
            h.release.as_str(),
            h.arch.as_deref()
        ),
        (
            "publicsuffix-list-dafsa",
            "20210518",
            "2.fc35",
            Some("noarch")
        )
    );
}

#[test]
fn empty_and_garbage_databases_fail_clearly() {
    let Some(peers) = peers() else { return };
    let err =
        read_database(&std::fs::read(peers.join("rpmdb/osv-scalibr/empty.sqlite")).expect("read"))
            .expect_err("empty");
    assert_eq!(err, "empty file");
    let err = read_database(&std::fs::read(peers.join("rpmdb/osv-scalibr/invalid")).expect("read"))
        .expect_err("garbage");
    assert!(err.contains("not an rpm database"), "{err}");
    // An initialised but empty BerkeleyDB is no packages, not an error.
    let (h, problems) = read_database(
        &std::fs::read(peers.join("rpmdb/snyk-rpm-parser/rpm4_empty")).expect("read"),
    )
    .expect("empty db");
    assert!(h.is_empty() && problems.is_empty());
}

/// Every prefix and single-byte corruption of a real database must give an error or a
/// result, never a panic or a hang.
#[test]
fn corrupted_databases_never_panic() {
    let Some(peers) = peers() else { return };
    for rel in [
        "rpmdb/go-rpmdb/libuuid/Packages",
        "rpmdb/go-rpmdb/sle15-bci/Packages.db",
    ] {
        let data = std::fs::read(peers.join(rel)).expect("read");
        for cut in (0..data.len()).step_by(997) {
            let _ = read_database(&data[..cut]);
        }
        for at in (0..data.len()).step_by(331) {
            let mut d = data.clone();
            d[at] ^= 0xff;
            let _ = read_database(&d);
        }
    }
}
