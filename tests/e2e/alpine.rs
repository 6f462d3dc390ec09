//! Alpine end to end, on the real Alpine 3.23.4 and 3.23.5 images (`images/alpine.sh`):
//! the packages that differ are harvested from 3.23.5 into signed `.apk`s; one run then
//! patches the 3.23.4 image with the guest's own apk, beside debian-11-old patched by
//! its dpkg, in one appliance (`--all-upgradable` from one repository holding both). The
//! patched version is read back by debugfs, not by coldpatch: apk's installed database
//! is 3.23.5's (but the two fields that name the package file itself), every path of every
//! upgraded package has 3.23.5's type, mode, owner and content, the run's key is gone,
//! the original is untouched. Rollback returns to 3.23.4. A package whose file was
//! changed in the source image is refused by name.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::util::image_dir;
use crate::{coldpatch, json, ok, s, stderr, stdout};

/// The whole filesystem of a qcow2 (and its backing chain), extracted by debugfs.
fn extract(qcow2: &Path, into: &Path) {
    let raw = into.with_extension("raw");
    let out = Command::new("qemu-img")
        .args(["convert", "-O", "raw", s(qcow2), s(&raw)])
        .output()
        .expect("qemu-img");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::create_dir_all(into).expect("dir");
    let out = Command::new("debugfs")
        .args(["-R", &format!("rdump / {}", s(into)), s(&raw)])
        .output()
        .expect("debugfs");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&raw).expect("raw");
}

/// apk's database, package by package, without `C:` and `S:` (the identity and size of
/// the package file, which a rebuilt file cannot share with Alpine's signed one).
fn database(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join("lib/apk/db/installed")).expect("installed");
    text.split("\n\n")
        .filter(|st| !st.trim().is_empty())
        .map(|st| {
            let kept: Vec<&str> = st
                .lines()
                .filter(|l| !l.starts_with("C:") && !l.starts_with("S:"))
                .collect();
            let name = kept
                .iter()
                .find_map(|l| l.strip_prefix("P:"))
                .expect("P:")
                .to_string();
            (name, kept.join("\n"))
        })
        .collect()
}

/// Each path a package's database entry lists (relative).
fn paths_of(stanza: &str) -> Vec<String> {
    let mut dir = String::new();
    let mut out = Vec::new();
    for l in stanza.lines() {
        if let Some(d) = l.strip_prefix("F:") {
            dir = d.to_string();
            out.push(dir.clone());
        } else if let Some(f) = l.strip_prefix("R:") {
            out.push(format!("{dir}/{f}"));
        }
    }
    out
}

/// A path as the filesystem has it, or "missing".
fn lstat(root: &Path, rel: &str) -> String {
    crate::lstat(&root.join(rel)).unwrap_or_else(|| "missing".into())
}

#[test]
fn an_alpine_image_is_patched_from_a_newer_one_beside_a_debian_image() {
    let data = crate::data_dir(coldpatch_testkit::pg::Kind::Sled).expect("sled");
    let d = data.path();
    let cache = image_dir("alpine");
    let (old, new) = (d.join("alpine-3.23.4.qcow2"), d.join("alpine-3.23.5.qcow2"));
    std::fs::copy(cache.join("3.23.4/disk.qcow2"), &old).expect("copy");
    std::fs::copy(cache.join("3.23.5/disk.qcow2"), &new).expect("copy");
    let deb = d.join("debian-11-old.qcow2");
    std::fs::copy(image_dir("debian-11-old").join("disk.qcow2"), &deb).expect("copy");
    let old_sum = coldpatch_disk::hash::sha256_file(&old).expect("hash");
    ok(coldpatch(d, &["collect", s(&old), s(&new), s(&deb)]));

    // The packages 3.23.5 has at another version than 3.23.4 (the image scripts' oracle).
    let tsv = |r: &str| -> BTreeMap<String, String> {
        std::fs::read_to_string(cache.join(r).join("packages.tsv"))
            .expect("packages.tsv")
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].to_string())
            })
            .collect()
    };
    let (before, after) = (tsv("3.23.4"), tsv("3.23.5"));
    let differ: Vec<&String> = after
        .iter()
        .filter(|(n, v)| before.get(*n).is_some_and(|b| b != *v))
        .map(|(n, _)| n)
        .collect();
    assert!(differ.len() >= 8, "{differ:?}");
    assert!(differ.iter().any(|n| *n == "libcrypto3"), "{differ:?}");

    // Harvest them from 3.23.5 into a repository that also holds bullseye-security.
    let (_, debrepo, _) = crate::patch::setup(d);
    let repo = d.join("repo");
    let out = Command::new("cp")
        .args(["-a", s(&debrepo), s(&repo)])
        .output()
        .expect("cp");
    assert!(out.status.success(), "{}", stderr(&out));
    let apks = repo.join("alpine");
    let mut args = vec!["repo".to_string(), "harvest".into(), s(&new).into()];
    for n in &differ {
        args.extend(["--package".to_string(), n.to_string()]);
    }
    args.extend(["--out".into(), s(&apks).into(), "--json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = json(&ok(coldpatch(d, &args)));
    assert_eq!(report["refused"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["harvested"].as_array().map(Vec::len),
        Some(differ.len()),
        "{report}"
    );
    let idx = json(&ok(coldpatch(d, &["repo", "index", s(&repo), "--json"])));
    assert_eq!(idx["index"]["rejected"], serde_json::json!([]), "{idx}");

    // One run, one appliance, each image's own package manager.
    let run = json(&ok(coldpatch(
        d,
        &[
            "patch",
            "apply",
            s(&old),
            s(&deb),
            "--repo",
            s(&repo),
            "--all-upgradable",
            "--json",
        ],
    )));
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let id = run["run"]["id"].as_str().unwrap_or_else(|| panic!("{run}"));
    let shown = json(&ok(coldpatch(d, &["run", id, "--json"])));
    let events = shown["events"].as_array().expect("events");
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["kind"] == kind).collect()
    };
    let started: Vec<&serde_json::Value> = of("appliance")
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("started"))
        })
        .collect();
    assert_eq!(started.len(), 1, "one appliance: {shown}");
    assert!(
        started[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("with 2 drive(s)")),
        "{shown}"
    );
    let tool_of = |kind: &str| -> Vec<String> {
        of(kind)
            .into_iter()
            .filter_map(|e| e["image"].as_str().map(str::to_string))
            .collect()
    };
    assert!(tool_of("apk").iter().all(|i| i == s(&old)), "{shown}");
    assert!(tool_of("apk").iter().any(|i| i == s(&old)), "{shown}");
    assert!(tool_of("dpkg").iter().all(|i| i == s(&deb)), "{shown}");
    assert!(tool_of("dpkg").iter().any(|i| i == s(&deb)), "{shown}");
    assert_eq!(of("verified").len(), 2, "{shown}");

    // Read back by debugfs: the database and every upgraded package's files are 3.23.5's.
    let info = json(&ok(coldpatch(d, &["show", s(&old), "--json"])));
    let v1 = info["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["number"] == 1))
        .and_then(|v| v["file"].as_str())
        .unwrap_or_else(|| panic!("no version 1: {info}"))
        .to_string();
    let work = tempfile::tempdir().expect("work");
    let (patched, reference) = (work.path().join("patched"), work.path().join("reference"));
    extract(Path::new(&v1), &patched);
    extract(&new, &reference);
    let (dp, dr) = (database(&patched), database(&reference));
    let wrong: Vec<&String> = dp
        .keys()
        .chain(dr.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|n| dp.get(*n) != dr.get(*n))
        .collect();
    assert!(wrong.is_empty(), "database entries differ: {wrong:?}");
    let mut checked = 0;
    for n in &differ {
        for p in paths_of(&dr[*n]) {
            assert_eq!(
                lstat(&patched, &p),
                lstat(&reference, &p),
                "{n}: /{p} differs from 3.23.5's"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} paths");
    // nghttp3, which 3.23.5's curl no longer needs, went as apk removes what nothing needs.
    assert_eq!(dp.contains_key("nghttp3"), dr.contains_key("nghttp3"));
    let keys: Vec<String> = std::fs::read_dir(patched.join("etc/apk/keys"))
        .expect("keys")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("alpine-devel@")),
        "{keys:?}"
    );
    assert!(
        !patched
            .join(format!("var/cache/coldpatch-{id}.apk"))
            .exists(),
        "the run's repository is left behind"
    );
    assert_eq!(
        coldpatch_disk::hash::sha256_file(&old).expect("hash"),
        old_sum
    );

    // Rollback: 3.23.4 again.
    ok(coldpatch(d, &["patch", "rollback", s(&old)]));
    let pk = stdout(&ok(coldpatch(
        d,
        &["packages", "--name", "libcrypto3", "--json"],
    )));
    let rows: serde_json::Value = serde_json::from_str(&pk).expect("json");
    let mine = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["image"] == s(&old)))
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(mine["version"], 0, "{rows}");
    assert_eq!(mine["package"]["version"], before["libcrypto3"], "{rows}");

    // A file changed in the source image: its package is refused by name.
    let bundle = d.join("ca-certificates.crt");
    std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\nchanged here\n").expect("write");
    ok(coldpatch(
        d,
        &[
            "patch",
            "files",
            s(&new),
            "--put",
            &format!("{}:/etc/ssl/certs/ca-certificates.crt", s(&bundle)),
        ],
    ));
    let refused = coldpatch(
        d,
        &[
            "repo",
            "harvest",
            &format!("{}@1", s(&new)),
            "--package",
            "ca-certificates-bundle",
            "--package",
            "curl",
            "--out",
            s(&work.path().join("again")),
            "--json",
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let r = json(&refused);
    assert_eq!(r["refused"][0]["package"], "ca-certificates-bundle", "{r}");
    assert!(
        r["refused"][0]["reasons"]
            .to_string()
            .contains("/etc/ssl/certs/ca-certificates.crt differs from apk's checksum"),
        "{r}"
    );
    assert_eq!(r["harvested"][0]["package"], "curl", "{r}");
}
