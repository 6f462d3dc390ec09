//! Feeds in the store: a re-import replaces the feed's records (new, changed, removed,
//! unchanged counted), survives reopening, and changes what a scan finds.

use coldpatch_catalog::{Fingerprint, ScanOptions};
use coldpatch_collector::{Inventory, OsInfo, Package, PackageKind};
use coldpatch_testkit::both;
use coldpatch_vuln::{Advisory, Affected, Distro, FeedData, NameKind, Range, Severity, Status};

fn advisory(id: &str, fixed: &str) -> Advisory {
    Advisory {
        id: id.into(),
        aliases: Vec::new(),
        summary: String::new(),
        severity: Severity::High,
        modified: None,
        published: None,
        affected: vec![Affected {
            distro: Distro::new("debian", "12"),
            package: "openssl".into(),
            name_kind: NameKind::Source,
            status: Status::Affected {
                ranges: vec![Range {
                    fixed: Some(fixed.into()),
                    ..Range::default()
                }],
                versions: Vec::new(),
            },
            severity: None,
            arches: Vec::new(),
            module: None,
        }],
    }
}

fn feed(advisories: Vec<Advisory>) -> FeedData {
    FeedData {
        advisories,
        ..FeedData::default()
    }
}

both!(reimport_replaces_and_scans_follow, |tc| {
    {
        let c = tc.open();
        let mut inv = Inventory::default();
        inv.image.path = "/img/a.qcow2".into();
        inv.os = Some(OsInfo {
            id: "debian".into(),
            version_id: "12".into(),
            ..OsInfo::default()
        });
        inv.packages = vec![Package {
            arch: "amd64".into(),
            source_name: "openssl".into(),
            ..Package::new(PackageKind::Deb, "libssl3", "3.0.11-1~deb12u2")
        }];
        let opts = ScanOptions {
            files: false,
            hash: false,
        };
        c.record(&inv, Fingerprint(Vec::new()), opts)
            .expect("record");
        let r = c
            .import_feed(
                "t",
                "first",
                100,
                feed(vec![
                    advisory("CVE-1", "3.0.13-1~deb12u1"),
                    advisory("CVE-2", "3.0.9-1"),
                ]),
            )
            .expect("import");
        assert_eq!((r.imported, r.updated, r.removed), (2, 0, 0));
        let s = c.scan_images(&[]).expect("scan");
        let ids: Vec<&str> = s.images[0]
            .findings
            .iter()
            .map(|f| &*f.of.advisory)
            .collect();
        assert_eq!(ids, ["CVE-1"]);
    }
    // Reopened: CVE-1 now fixed earlier (no longer a finding), CVE-2 gone, CVE-3 new.
    let c = tc.open();
    let r = c
        .import_feed(
            "t",
            "second",
            200,
            feed(vec![
                advisory("CVE-1", "3.0.10-1"),
                advisory("CVE-3", "3.0.15-1~deb12u1"),
            ]),
        )
        .expect("import");
    assert_eq!(
        (r.imported, r.updated, r.unchanged, r.removed),
        (1, 1, 0, 1)
    );
    let feeds = c.feeds().expect("feeds");
    assert_eq!(feeds.len(), 1);
    assert_eq!(
        (feeds[0].records, feeds[0].as_of, feeds[0].source.as_str()),
        (2, 200, "second")
    );
    let s = c.scan_images(&[]).expect("scan");
    let f = &s.images[0].findings;
    assert_eq!(f.len(), 1);
    assert_eq!(&*f[0].of.advisory, "CVE-3");
    assert_eq!(f[0].fixed.as_deref(), Some("3.0.15-1~deb12u1"));
    assert_eq!(s.advisories, 2);
});
