//! `coldpatch patch plan` on the real debian-11-old image, the real bullseye-security
//! repository (images/repo-bullseye-security.sh) and the real Debian facts of
//! tests/data/feeds: what is planned is exactly what the repository's updates.tsv oracle
//! says for the packages the findings name, and refusals name what is missing.

use std::collections::BTreeMap;

use crate::util::image_dir;
use crate::{coldpatch, json, stderr};

pub(crate) fn setup(
    data: &std::path::Path,
) -> (String, std::path::PathBuf, BTreeMap<String, String>) {
    let img = image_dir("debian-11-old").join("disk.qcow2");
    let img = img.to_str().expect("utf8").to_string();
    let repo_dir = image_dir("repo-bullseye-security");
    let out = coldpatch(data, &["collect", "--no-files", &img]);
    assert!(out.status.success(), "{}", stderr(&out));
    let feeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/feeds");
    for f in ["debian-tracker.json", "osv"] {
        let out = coldpatch(
            data,
            &["feed", "import", feeds.join(f).to_str().expect("utf8")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let updates = std::fs::read_to_string(repo_dir.join("updates.tsv")).expect("updates");
    let newest = updates
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    (img, repo_dir.join("repo"), newest)
}

/// `coldpatch patch plan IMAGE --repo REPO ARGS…`
pub(crate) fn patch_plan(
    d: &std::path::Path,
    img: &str,
    repo: &str,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec!["patch", "plan", img, "--repo", repo];
    all.extend_from_slice(args);
    coldpatch(d, &all)
}

/// A plan's steps as package -> planned version.
pub(crate) fn planned(plan: &serde_json::Value) -> BTreeMap<String, String> {
    plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["package"].as_str().expect("p").to_string(),
                s["to"].as_str().expect("to").to_string(),
            )
        })
        .collect()
}

#[test]
fn plans_fix_exactly_the_findings_from_the_real_repository() {
    let data = tempfile::tempdir().expect("tempdir");
    let (img, repo, newest) = setup(data.path());
    let repo = repo.to_str().expect("utf8");

    let out = patch_plan(
        data.path(),
        &img,
        repo,
        &["--cve", "CVE-2025-69418", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["package"], "libssl1.1");
    assert_eq!(steps[0]["from"], "1.1.1w-0+deb11u1");
    assert_eq!(
        steps[0]["to"].as_str(),
        newest.get("libssl1.1").map(String::as_str)
    );

    // Every fixable finding: the packages the scan names, each to the repository's newest.
    let scan = json(&coldpatch(data.path(), &["scan", "--json"]));
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for f in scan["images"][0]["findings"].as_array().expect("findings") {
        let p = f["package"].as_str().expect("package").to_string();
        let to = newest
            .get(&p)
            .expect("the repository has an update")
            .clone();
        want.insert(p, to);
    }
    let out = patch_plan(data.path(), &img, repo, &["--all-fixable", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(planned(&json(&out)), want);

    // A bookworm-only advisory is nothing to do for this image.
    let out = patch_plan(data.path(), &img, repo, &["--cve", "CVE-2023-2975"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("CVE-2023-2975 is not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_dependency_refuses_the_plan_by_name() {
    let data = tempfile::tempdir().expect("tempdir");
    let (img, repo, _) = setup(data.path());
    // The same repository without libpam-modules-bin's file: libpam-modules' update
    // needs exactly that version.
    let copy = data.path().join("repo");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&repo)
        .arg(&copy)
        .status()
        .expect("cp")
        .success());
    for e in walk(&copy) {
        if e.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libpam-modules-bin_"))
        {
            std::fs::remove_file(&e).expect("rm");
        }
    }
    let out = patch_plan(
        data.path(),
        &img,
        copy.to_str().expect("utf8"),
        &["--package", "libpam-modules"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("needs libpam-modules-bin (= 1.4.0-9+deb11u2)")
            && err.contains("neither the image nor the repository provides"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
