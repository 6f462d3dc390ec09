//! `repo harvest` against real content: the 11 packages the bullseye-security update
//! installs, harvested from the patched version of debian-11-old, are the real `.deb`s of
//! the repository as dpkg sees them (control fields dpkg keeps, every data entry's path,
//! type, mode, owner, link target and SHA-256, maintainer scripts and the other control
//! members byte for byte), by dpkg-deb's own reading of both. A package whose conffile
//! was changed in the image is refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{coldpatch, json, ok, s, stderr, stdout};

fn dpkg_deb(args: &[&str]) -> std::process::Output {
    let out = Command::new("dpkg-deb")
        .args(args)
        .output()
        .expect("dpkg-deb");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", stderr(&out));
    out
}

/// Control fields as dpkg-deb reads them (continuation lines kept).
fn fields(deb: &Path) -> BTreeMap<String, String> {
    let text = stdout(&dpkg_deb(&["-f", s(deb)]));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last = String::new();
    for l in text.lines() {
        if l.starts_with([' ', '\t']) {
            if let Some(v) = out.get_mut(&last) {
                v.push('\n');
                v.push_str(l);
            }
        } else if let Some((k, v)) = l.split_once(':') {
            last = k.to_string();
            out.insert(last.clone(), v.trim().to_string());
        }
    }
    out
}

/// Every data entry below the extracted root: (type, mode, uid, gid, SHA-256 or target).
fn entries(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if std::fs::symlink_metadata(&p).expect("lstat").is_dir() {
                todo.push(p.clone());
            }
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            out.insert(rel, crate::lstat(&p).expect("lstat"));
        }
    }
    out
}

/// Control members but `control`, by name.
fn members(deb: &Path, into: &Path) -> BTreeMap<String, Vec<u8>> {
    dpkg_deb(&["-e", s(deb), s(into)]);
    std::fs::read_dir(into)
        .expect("members")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "control"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("member"),
            )
        })
        .collect()
}

#[test]
fn harvested_packages_are_the_real_debs_and_a_changed_one_is_refused() {
    let data = crate::data_dir(coldpatch_testkit::pg::Kind::Sled).expect("sled");
    let d = data.path();
    let (cached, repo, _) = crate::patch::setup(d);
    let repo = s(&repo).to_string();
    let img = d.join("old.qcow2");
    std::fs::copy(&cached, &img).expect("copy");
    ok(coldpatch(d, &["collect", s(&img)]));
    let plan = json(&ok(coldpatch(
        d,
        &[
            "patch",
            "plan",
            s(&img),
            "--repo",
            &repo,
            "--all-fixable",
            "--json",
        ],
    )));
    let steps = plan["steps"].as_array().expect("steps").clone();
    assert_eq!(steps.len(), 11, "{plan}");
    ok(coldpatch(
        d,
        &["patch", "apply", s(&img), "--repo", &repo, "--all-fixable"],
    ));

    let out = d.join("harvested");
    let mut args = vec!["repo", "harvest"];
    let at1 = format!("{}@1", s(&img));
    args.push(&at1);
    let names: Vec<String> = steps
        .iter()
        .map(|st| st["package"].as_str().expect("package").to_string())
        .collect();
    for n in &names {
        args.extend_from_slice(&["--package", n]);
    }
    args.extend_from_slice(&["--out", s(&out), "--json"]);
    let report = json(&ok(coldpatch(d, &args)));
    assert_eq!(report["refused"], serde_json::json!([]), "{report}");
    assert_eq!(report["origin"]["version"], 1);
    assert!(report["origin"]["check"].is_string(), "{report}");
    let harvested = report["harvested"].as_array().expect("harvested");
    assert_eq!(harvested.len(), 11, "{report}");

    let work = tempfile::tempdir().expect("work");
    for st in &steps {
        let name = st["package"].as_str().expect("package");
        let real = Path::new(&repo).join(st["file"].as_str().expect("file"));
        let h = harvested
            .iter()
            .find(|h| h["package"] == name)
            .unwrap_or_else(|| panic!("{name} not harvested: {report}"));
        assert_eq!(h["version"], st["to"], "{name}");
        let mine: PathBuf = out.join(h["file"].as_str().expect("file"));

        // Control: every field dpkg kept is the package's; what it did not keep is named.
        let (fr, fh) = (fields(&real), fields(&mine));
        for (k, v) in &fh {
            assert_eq!(fr.get(k), Some(v), "{name}: field {k}");
        }
        let dropped: Vec<&String> = fr.keys().filter(|k| !fh.contains_key(*k)).collect();
        assert!(
            dropped.is_empty(),
            "{name}: fields dpkg did not keep: {dropped:?}"
        );

        // Data: dpkg-deb unpacks both; every entry the same.
        let (xr, xh) = (
            work.path().join(format!("{name}.real")),
            work.path().join(format!("{name}.mine")),
        );
        dpkg_deb(&["-x", s(&real), s(&xr)]);
        dpkg_deb(&["-x", s(&mine), s(&xh)]);
        let (er, eh) = (entries(&xr), entries(&xh));
        let differ: Vec<(&String, Option<&String>, Option<&String>)> = er
            .keys()
            .chain(eh.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| er.get(*k) != eh.get(*k))
            .map(|k| (k, er.get(k), eh.get(k)))
            .collect();
        assert!(differ.is_empty(), "{name}: data entries differ: {differ:?}");
        assert!(!er.is_empty());

        // Maintainer scripts and the other control members, byte for byte.
        let (mr, mh) = (
            members(&real, &work.path().join(format!("{name}.real.control"))),
            members(&mine, &work.path().join(format!("{name}.mine.control"))),
        );
        assert_eq!(
            mr.keys().collect::<Vec<_>>(),
            mh.keys().collect::<Vec<_>>(),
            "{name}: control members"
        );
        for (k, v) in &mr {
            assert!(mh.get(k) == Some(v), "{name}: {k} differs");
        }
    }
    // The repository indexer takes them.
    let idx = json(&ok(coldpatch(d, &["repo", "index", s(&out), "--json"])));
    assert_eq!(
        idx["index"]["packages"].as_array().map(Vec::len),
        Some(11),
        "{idx}"
    );
    assert_eq!(idx["index"]["rejected"], serde_json::json!([]), "{idx}");

    // Version 2: pam's conffile changed in the image. Its package is refused by name;
    // allowed, it is built and the change reported.
    let conf = d.join("namespace.init");
    std::fs::write(&conf, "#!/bin/sh\n# changed on this host\n").expect("conf");
    ok(coldpatch(
        d,
        &[
            "patch",
            "files",
            s(&img),
            "--put",
            &format!("{}:/etc/security/namespace.init", s(&conf)),
        ],
    ));
    let again = d.join("again");
    let at2 = format!("{}@2", s(&img));
    let base = [
        "repo",
        "harvest",
        &at2,
        "--package",
        "libpam-modules",
        "--package",
        "libss2",
        "--out",
        s(&again),
        "--json",
    ];
    let out2 = coldpatch(d, &base);
    assert_eq!(out2.status.code(), Some(1), "{}", stderr(&out2));
    let r2 = json(&out2);
    assert_eq!(r2["refused"][0]["package"], "libpam-modules", "{r2}");
    let why = r2["refused"][0]["reasons"].to_string();
    assert!(
        why.contains("/etc/security/namespace.init is a conffile changed"),
        "{why}"
    );
    assert_eq!(r2["harvested"][0]["package"], "libss2", "{r2}");
    assert!(!again
        .join(format!("libpam-modules_{}_amd64.deb", "1.4.0-9+deb11u2"))
        .exists());
    let mut allowed = base.to_vec();
    allowed.push("--allow-modified");
    let r3 = json(&ok(coldpatch(d, &allowed)));
    let pam = r3["harvested"]
        .as_array()
        .expect("harvested")
        .iter()
        .find(|h| h["package"] == "libpam-modules")
        .cloned()
        .expect("pam harvested when allowed");
    assert!(
        pam["modified"].to_string().contains("namespace.init"),
        "{r3}"
    );
}
