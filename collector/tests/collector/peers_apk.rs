//! apk installed databases: the real apk binary's output (apk-tools) and the lists of
//! trivy, syft and osv-scalibr.

use coldpatch_collector::analyzers::apk::parse_installed;

use crate::util::*;

type Row = (String, String, String, String);

fn ours(path: &std::path::Path) -> Vec<Row> {
    ours_and_problems(path).0
}

fn ours_and_problems(path: &std::path::Path) -> (Vec<Row>, Vec<String>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (pkgs, problems) = parse_installed(&data, "installed");
    let mut r: Vec<Row> = pkgs
        .into_iter()
        .map(|p| (p.name, p.version, p.arch, p.source_name))
        .collect();
    r.sort();
    (r, problems)
}

/// Peers give an empty origin for a package without `o:`; such a package is its own
/// source, which is what advisories (keyed by origin) need, so we report its name.
fn theirs(list: &serde_json::Value, origin_key: &str) -> Vec<Row> {
    let mut r: Vec<Row> = list
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let origin = Some(s(p, origin_key))
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| s(p, "name"));
            (s(p, "name"), s(p, "version"), s(p, "arch"), origin)
        })
        .collect();
    r.sort();
    r
}

#[test]
fn apk_tools_real_output() {
    let Some(peers) = peers() else { return };
    let exp = json(&peers.join("apk/apk-tools/expected.json"));
    let got = ours(&peers.join("apk/apk-tools/lib/apk/db/installed"));
    assert_eq!(got.len(), 39);
    assert_eq!(got, theirs(&exp["packages"], "origin_source_name"));
}

#[test]
fn trivy_list() {
    let Some(peers) = peers() else { return };
    let exp = json(&peers.join("apk/trivy/expected.json"));
    let (got, problems) = ours_and_problems(&peers.join("apk/trivy/lib/apk/db/installed"));
    assert_eq!(got, theirs(&exp["packages"], "source_name"));
    // trivy skips the package without a version silently; we name it.
    assert_eq!(
        problems,
        vec!["package at line 23 lacks P: or V:".to_string()]
    );
}

#[test]
fn osv_scalibr_cases() {
    let Some(peers) = peers() else { return };
    let exp = json(&peers.join("apk/osv-scalibr/expected.json"));
    let mut checked = 0;
    for case in exp["cases"].as_array().expect("cases") {
        let fixture = peers.join("apk/osv-scalibr").join(s(case, "fixture"));
        if case.get("wantErr").is_some_and(|e| !e.is_null()) || s(case, "fixture") == "invalid" {
            continue;
        }
        let want = theirs(&case["packages"], "origin_source_name");
        let data = std::fs::read(&fixture).expect("fixture");
        let (pkgs, _) = parse_installed(&data, "installed");
        let mut got: Vec<Row> = pkgs
            .into_iter()
            .map(|p| (p.name, p.version, p.arch, p.source_name))
            .collect();
        got.sort();
        assert_eq!(got, want, "{}", fixture.display());
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} cases");
}
