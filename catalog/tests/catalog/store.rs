//! The sled store on a real directory: scans are recorded atomically, survive reopening,
//! and answer fleet queries.

use coldpatch_catalog::{Fingerprint, ScanOptions, Scope, Versions};
use coldpatch_collector::{Inventory, Package, PackageKind};
use coldpatch_testkit::both;

fn pkg(name: &str, kind: PackageKind, version: &str, release: Option<&str>) -> Package {
    Package {
        release: release.map(String::from),
        arch: "amd64".into(),
        db: "/var/lib/dpkg/status".into(),
        ..Package::new(kind, name, version)
    }
}

fn inventory(path: &str, openssl: &str) -> Inventory {
    let mut inv = Inventory::default();
    inv.image.path = path.into();
    inv.image.format = "qcow2".into();
    inv.packages = vec![
        pkg("openssl", PackageKind::Deb, openssl, None),
        pkg("bash", PackageKind::Deb, "5.2.15-2+b2", None),
    ];
    inv.files = vec![coldpatch_collector::FileRecord {
        path: "/etc/hostname".into(),
        kind: coldpatch_collector::FileType::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 5,
        mtime: 0,
        ctime: None,
        target: None,
        sha256: Some("ab".repeat(32)),
    }];
    inv
}

const FULL: ScanOptions = ScanOptions {
    files: true,
    hash: true,
};

both!(scans_survive_reopening_and_answer_fleet_queries, |tc| {
    let fp = Fingerprint(vec![("/x".into(), 1, 2, 3)]);
    {
        let c = tc.open();
        c.record(
            &inventory("/img/a.qcow2", "3.0.11-1~deb12u2"),
            fp.clone(),
            FULL,
        )
        .expect("record a");
        c.record(
            &inventory("/img/b.qcow2", "3.0.15-1~deb12u1"),
            fp.clone(),
            FULL,
        )
        .expect("record b");
    }
    let c = tc.open();
    assert_eq!(c.images().expect("images").len(), 2);
    let old = c
        .packages(
            &Scope::all(),
            Versions::Current,
            Some("openssl"),
            Some("3.0.13-1~deb12u1"),
        )
        .expect("query");
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].image, "/img/a.qcow2");
    let hits = c
        .files(
            &Scope::all(),
            Versions::Current,
            Some("/etc/host*"),
            Some(&"AB".repeat(32)),
        )
        .expect("files");
    assert_eq!(hits.len(), 2);
    assert!(c
        .files(&Scope::all(), Versions::Current, Some("/usr/**"), None)
        .expect("files")
        .is_empty());
});

both!(rescans_become_current_and_history_is_kept, |tc| {
    let c = tc.open();
    let fp1 = Fingerprint(vec![("/img/a".into(), 1, 1, 1)]);
    let fp2 = Fingerprint(vec![("/img/a".into(), 1, 2, 1)]);
    let s1 = c
        .record(&inventory("/img/a", "1.0-1"), fp1.clone(), FULL)
        .expect("record");
    assert_eq!(
        c.unchanged("/img/a", &fp1, &[], FULL)
            .expect("lookup")
            .map(|s| s.id),
        Some(s1.id)
    );
    assert_eq!(
        c.unchanged("/img/a", &fp2, &[], FULL).expect("lookup"),
        None,
        "changed file"
    );
    let quick = ScanOptions {
        files: false,
        hash: false,
    };
    let s2 = c
        .record(&inventory("/img/a", "1.0-2"), fp2.clone(), quick)
        .expect("record");
    assert_eq!(
        c.unchanged("/img/a", &fp2, &[], FULL).expect("lookup"),
        None,
        "a packages-only scan does not serve a full one"
    );
    assert!(c
        .unchanged("/img/a", &fp2, &[], quick)
        .expect("lookup")
        .is_some());
    let img = c.image("/img/a").expect("image");
    assert_eq!(img.current_scan, Some(s2.id));
    let history: Vec<u64> = c
        .scans_of(img.id)
        .expect("scans")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(history, vec![s1.id, s2.id]);
    assert_eq!(
        c.inventory(s1.id, false).expect("old inventory").packages[0].version,
        "1.0-1"
    );
});
