//! Diffs and shared content computed from stored inventories in a real sled store.

use coldpatch_catalog::diff::{self, Change, DiffOptions, Side};
use coldpatch_catalog::{CatalogError, Fingerprint, ScanOptions};
use coldpatch_collector::{FileRecord, FileType, Inventory, Package, PackageKind};
use coldpatch_testkit::both;

fn file(path: &str, kind: FileType, sha: Option<&str>, size: u64) -> FileRecord {
    FileRecord {
        path: path.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        mtime: 100,
        ctime: Some(100),
        target: None,
        sha256: sha.map(|s| s.repeat(64)),
    }
}

fn deb(name: &str, v: &str) -> Package {
    Package {
        arch: "amd64".into(),
        ..Package::new(PackageKind::Deb, name, v)
    }
}

const FULL: ScanOptions = ScanOptions {
    files: true,
    hash: true,
};

#[test]
fn file_changes_name_what_changed_and_times_count_only_when_asked() {
    let dir = |size| file("/etc", FileType::Dir, None, size);
    let a = vec![
        dir(1024),
        file("/etc/same", FileType::File, Some("a"), 1),
        file("/etc/content", FileType::File, Some("a"), 1),
        file("/etc/gone", FileType::File, Some("a"), 1),
        file("/etc/touched", FileType::File, Some("a"), 1),
        file("/etc/replaced", FileType::File, Some("a"), 1),
    ];
    let mut b = a.clone();
    b[0].mtime = 999; // a directory's times never count
    b[2].sha256 = Some("b".repeat(64));
    b.remove(3);
    b[3].mtime = 200; // /etc/touched
    b[3].mode = 0o600;
    b[4].ctime = Some(300); // /etc/replaced: same bytes, same mtime, new inode
    b.push(file("/etc/new", FileType::File, Some("c"), 1));
    let plain = diff::files(&a, &b, DiffOptions::default());
    let got: Vec<(&str, Change, Vec<&str>)> = plain
        .iter()
        .map(|c| (c.path.as_str(), c.change, c.fields.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("/etc/content", Change::Changed, vec!["content"]),
            ("/etc/gone", Change::Removed, vec![]),
            ("/etc/new", Change::Added, vec![]),
            ("/etc/touched", Change::Changed, vec!["mode"]),
        ]
    );
    let timed = diff::files(&a, &b, DiffOptions { times: true });
    let got: Vec<(&str, Vec<&str>)> = timed
        .iter()
        .filter(|c| c.change == Change::Changed)
        .map(|c| (c.path.as_str(), c.fields.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("/etc/content", vec!["content"]),
            ("/etc/replaced", vec!["ctime"]),
            ("/etc/touched", vec!["mode", "mtime"]),
        ]
    );
    // A directory that grew counts, as in virt-diff.
    let mut grown = a.clone();
    grown[0].size = 2048;
    assert_eq!(
        diff::files(&a, &grown, DiffOptions::default())[0].fields,
        ["size"]
    );
    // ctime unknown on one side (ext4-view's reader) is not a change.
    let mut unknown = a.clone();
    unknown[5].ctime = None;
    assert!(diff::files(&a, &unknown, DiffOptions { times: true }).is_empty());
}

both!(diff_and_shared_read_the_store, |tc| {
    let c = tc.open();
    let fp = Fingerprint(vec![("/x".into(), 1, 2, 3)]);
    let common: Vec<FileRecord> = (0..10)
        .map(|i| file(&format!("/usr/f{i}"), FileType::File, Some("0"), 1000))
        .collect();
    let mk = |path: &str, extra: &[(&str, &str)], ssl: &str| {
        let mut inv = Inventory::default();
        inv.image.path = path.into();
        inv.packages = vec![deb("openssl", ssl), deb("bash", "5.2")];
        inv.files = common.clone();
        for (p, h) in extra {
            inv.files.push(file(p, FileType::File, Some(h), 100));
        }
        inv
    };
    c.record(&mk("/img/a", &[("/etc/a", "a")], "3.0.1"), fp.clone(), FULL)
        .expect("a");
    c.record(&mk("/img/b", &[("/etc/a", "b")], "3.0.2"), fp.clone(), FULL)
        .expect("b");
    let mut other = Inventory::default();
    other.image.path = "/img/other".into();
    other.files = vec![file("/bin/x", FileType::File, Some("9"), 5000)];
    c.record(&other, fp.clone(), FULL).expect("other");

    let d = c
        .diff(
            &Side {
                image: "/img/a",
                version: None,
            },
            &Side {
                image: "/img/b",
                version: Some(0),
            },
            DiffOptions::default(),
        )
        .expect("diff");
    assert_eq!(d.packages.len(), 1);
    assert_eq!(
        (d.packages[0].from.as_deref(), d.packages[0].to.as_deref()),
        (Some("3.0.1"), Some("3.0.2"))
    );
    let files = d.files.expect("both with files");
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.as_str(), files[0].fields.clone()),
        ("/etc/a", vec!["content"])
    );
    assert!(matches!(
        c.diff(
            &Side {
                image: "/img/a",
                version: Some(7)
            },
            &Side {
                image: "/img/b",
                version: None
            },
            DiffOptions::default()
        ),
        Err(CatalogError::NoVersion { version: 7, .. })
    ));

    let r = c.shared(&[]).expect("shared");
    assert_eq!(
        (r.common_files, r.common_bytes),
        (0, 0),
        "other shares nothing"
    );
    let by: Vec<(&str, usize, u64)> = r
        .images
        .iter()
        .map(|i| (i.image.as_str(), i.private_files, i.private_bytes))
        .collect();
    assert_eq!(
        by,
        [
            ("/img/a", 1, 100),
            ("/img/b", 1, 100),
            ("/img/other", 1, 5000)
        ]
    );
    let groups: Vec<Vec<&str>> = r
        .groups
        .iter()
        .map(|g| g.images.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(groups, [vec!["/img/a", "/img/b"], vec!["/img/other"]]);
    assert_eq!(
        (r.groups[0].common_files, r.groups[0].common_bytes),
        (10, 10_000)
    );
    assert_eq!(r.groups[0].base_saves, 10_000);
    let two = c
        .shared(&["/img/a".into(), "/img/b".into()])
        .expect("shared");
    assert_eq!((two.common_files, two.base_saves), (10, 10_000));
});
