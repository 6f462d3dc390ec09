//! Repository indexing on real packages, checked against the real tools:
//! - the bullseye-security updates for debian-11-old (images/repo-bullseye-security.sh),
//!   a mirror subset with the archive's own Packages index: every field as `dpkg-deb -f`
//!   reads it from the file;
//! - the rpms rpm-sample built with rpmbuild: every field as `rpm -qp` reads it.
//!
//! And hostile input: a tampered file, a junk file, a broken index.

use coldpatch_testkit as util;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use coldpatch_collector::PackageKind;
use coldpatch_repo::index;

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A relation field as written, split on commas and with blanks normalised, as the
/// index keeps it.
fn relations(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|x| !x.is_empty())
        .collect()
}

#[test]
fn debs_and_their_index_match_dpkg_deb() {
    let dir = util::image_dir("repo-bullseye-security");
    let repo = index(&dir.join("repo")).expect("index");
    assert!(repo.rejected.is_empty(), "{:?}", repo.rejected);
    assert_eq!(repo.indices, 1);
    let updates = std::fs::read_to_string(dir.join("updates.tsv")).expect("updates");
    let want: BTreeSet<(String, String)> = updates
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    let got: BTreeSet<(String, String)> = repo
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(got, want);
    for p in &repo.packages {
        assert_eq!(p.kind, PackageKind::Deb);
        let file = dir
            .join("repo")
            .join(p.file.as_deref().expect("file present"));
        assert!(p.index.is_some(), "{} listed in the index", p.name);
        let f = |field: &str| tool("dpkg-deb", &["-f", file.to_str().expect("utf8"), field]);
        assert_eq!(p.name, f("Package"));
        assert_eq!(p.version, f("Version"));
        assert_eq!(p.arch, f("Architecture"));
        assert_eq!(p.depends, relations(&f("Depends")), "{}", p.name);
        assert_eq!(p.pre_depends, relations(&f("Pre-Depends")), "{}", p.name);
        assert_eq!(p.breaks, relations(&f("Breaks")), "{}", p.name);
        let source = f("Source");
        let source_name = source
            .split(' ')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(&p.name);
        assert_eq!(p.source_name, source_name);
        assert_eq!(p.size, std::fs::metadata(&file).expect("stat").len());
        let sha = tool("sha256sum", &[file.to_str().expect("utf8")]);
        assert_eq!(p.sha256.as_deref(), sha.split(' ').next());
    }
    // login carries an epoch, which dpkg-deb prints and the pool file name does not.
    assert!(repo.packages.iter().any(|p| p.version.contains(':')));
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

#[test]
fn tampered_and_junk_files_are_refused_by_name() {
    let dir = util::image_dir("repo-bullseye-security");
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("repo");
    copy_tree(&dir.join("repo"), &root);
    let before = index(&root).expect("index");
    let victim = before
        .packages
        .iter()
        .find(|p| p.name == "libssl1.1")
        .and_then(|p| p.file.clone())
        .expect("libssl1.1");
    // One byte changed at the end of the file (inside the data member).
    let path = root.join(&victim);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    // A file that only looks like a package, and a loose .deb no index lists.
    std::fs::write(root.join("junk.deb"), b"!<arch>\nnot really").expect("write");
    let loose = before
        .packages
        .iter()
        .find(|p| p.name == "dpkg")
        .and_then(|p| p.file.clone())
        .expect("dpkg");
    std::fs::copy(root.join(&loose), root.join("loose.deb")).expect("copy");

    let after = index(&root).expect("index");
    let reasons: Vec<(&str, &str)> = after
        .rejected
        .iter()
        .map(|r| (r.place.as_str(), r.reason.as_str()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(p, r)| *p == victim && r.contains("differs from its entry")),
        "{reasons:?}"
    );
    assert!(reasons
        .iter()
        .any(|(p, r)| *p == "junk.deb" && r.contains("not a readable .deb")));
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    // The tampered file is not offered; its index entry stays known, without a file.
    let ssl: Vec<_> = after.versions("libssl1.1").collect();
    assert_eq!(ssl.len(), 1);
    assert_eq!(ssl[0].file, None);
    let dpkgs: Vec<_> = after.versions("dpkg").collect();
    assert_eq!(dpkgs.len(), 2);
    assert!(dpkgs
        .iter()
        .any(|p| p.file.as_deref() == Some("loose.deb") && p.index.is_none()));

    // A broken index is reported, and the files are still read.
    let idx = root.join("dists/bullseye-security/main/binary-amd64/Packages");
    std::fs::write(
        &idx,
        b"Package: x\nVersion: not valid\nArchitecture: amd64\n\n",
    )
    .expect("write");
    let broken = index(&root).expect("index");
    assert!(broken
        .rejected
        .iter()
        .any(|r| r.place.ends_with("Packages: stanza 1") && r.reason.contains("invalid version")));
    assert!(broken.versions("dpkg").count() >= 1);
}

#[test]
fn rpms_match_rpm_query() {
    let dir = util::image_dir("rpm-sample");
    let repo = index(&dir.join("rpms")).expect("index");
    assert!(repo.rejected.is_empty(), "{:?}", repo.rejected);
    assert_eq!(repo.packages.len(), 4);
    for p in &repo.packages {
        let file = dir.join("rpms").join(p.file.as_deref().expect("file"));
        let f = file.to_str().expect("utf8");
        let q = |fmt: &str| tool("rpm", &["-qp", "--nosignature", "--qf", fmt, f]);
        assert_eq!(p.kind, PackageKind::Rpm);
        assert_eq!(p.name, q("%{NAME}"));
        let evr = q("%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}");
        assert_eq!(p.version, evr);
        assert_eq!(p.arch, q("%{ARCH}"));
        let list = |flag: &str| -> Vec<String> {
            let out = tool("rpm", &["-qp", "--nosignature", flag, f]);
            out.lines()
                .filter(|l| !l.starts_with("rpmlib(") && !l.is_empty())
                .map(String::from)
                .collect()
        };
        let mut got = p.depends.clone();
        got.sort();
        let mut want = list("--requires");
        want.sort();
        assert_eq!(got, want, "{} requires", p.name);
        let (mut got, mut want) = (p.provides.clone(), list("--provides"));
        got.sort();
        want.sort();
        assert_eq!(got, want, "{} provides", p.name);
        assert_eq!(p.conflicts, list("--conflicts"), "{} conflicts", p.name);
    }
    let tools = repo.versions("cp-tools").next().expect("cp-tools");
    assert!(tools.depends.contains(&"cp-libfoo >= 2:3.4".to_string()));
}
