//! Exactly which paths each analyzer asks the walk for: a change here changes what every
//! scan reads, so it must be deliberate.

use coldpatch_collector::analyzer::{all, PathPattern};

#[test]
fn every_analyzer_declares_exactly_these_paths() {
    use PathPattern::*;
    let got: Vec<(&str, Vec<PathPattern>)> = all()
        .iter()
        .map(|a| (a.name(), a.patterns().to_vec()))
        .collect();
    let want: Vec<(&str, Vec<PathPattern>)> = vec![
        (
            "os-release",
            vec![
                Exact("/etc/os-release"),
                Exact("/usr/lib/os-release"),
                Exact("/etc/lsb-release"),
                Exact("/etc/redhat-release"),
                Exact("/etc/alpine-release"),
            ],
        ),
        (
            "dpkg",
            vec![
                Exact("/var/lib/dpkg/status"),
                Child("/var/lib/dpkg/status.d", ""),
            ],
        ),
        (
            "rpm",
            vec![
                Exact("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
                Exact("/usr/lib/sysimage/rpm/Packages.db"),
                Exact("/usr/lib/sysimage/rpm/Packages"),
                Exact("/var/lib/rpm/rpmdb.sqlite"),
                Exact("/var/lib/rpm/Packages.db"),
                Exact("/var/lib/rpm/Packages"),
            ],
        ),
        (
            "apk",
            vec![
                Exact("/lib/apk/db/installed"),
                Exact("/usr/lib/apk/db/installed"),
            ],
        ),
        (
            "kernel",
            vec![
                Child("/boot", "vmlinuz-"),
                Child("/lib/modules", ""),
                Child("/usr/lib/modules", ""),
            ],
        ),
        ("accounts", vec![Exact("/etc/passwd"), Exact("/etc/shadow")]),
    ];
    assert_eq!(got, want);
}

#[test]
fn patterns_match_only_what_they_say() {
    let dpkg = PathPattern::Child("/var/lib/dpkg/status.d", "");
    assert!(dpkg.matches("/var/lib/dpkg/status.d/libc6"));
    assert!(!dpkg.matches("/var/lib/dpkg/status.d"));
    assert!(!dpkg.matches("/var/lib/dpkg/status.d/a/b"));
    assert!(!dpkg.matches("/var/lib/dpkg/status.dX/a"));
    let boot = PathPattern::Child("/boot", "vmlinuz-");
    assert!(boot.matches("/boot/vmlinuz-6.1.0-18-amd64"));
    assert!(!boot.matches("/boot/initrd.img-6.1.0-18-amd64"));
    assert!(!PathPattern::Exact("/etc/passwd").matches("/etc/passwd-"));
}

/// Over a whole real image, the walk offers each analyzer only its own paths, and reads the
/// content of just those files plus what hashing needs.
#[test]
fn analyzers_see_only_their_paths_on_a_real_image() {
    let dir = crate::util::image_dir("debian-12-min");
    let inv = coldpatch_collector::collect(
        &dir.join("disk.qcow2"),
        &coldpatch_collector::CollectOptions {
            files: false,
            ..Default::default()
        },
    )
    .expect("collect");
    // Without files and hashes, only the declared files are read: a small fraction of the
    // 160 MiB of content.
    assert!(
        inv.stats.bytes_read_from_image < 40 << 20,
        "read {} bytes",
        inv.stats.bytes_read_from_image
    );
    assert_eq!(inv.stats.bytes_hashed, 0);
    assert!(inv.packages.iter().all(|p| p.db == "/var/lib/dpkg/status"));
    assert_eq!(
        inv.os.as_ref().map(|o| o.source.as_str()),
        Some("/etc/os-release")
    );
}
