//! Whole images built by images/ from real Debian packages and real rpm tools, collected
//! natively and compared with the oracles those scripts recorded (dpkg-query, rpm -qa,
//! find, sha256sum).

use std::collections::BTreeMap;
use std::path::Path;

use coldpatch_collector::{collect, CollectOptions, FileType, Inventory, PackageKind};

use crate::util::image_dir;

fn tsv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

fn deb_packages_match(inv: &Inventory, oracle: &Path) {
    let mut got: Vec<Vec<String>> = inv
        .packages
        .iter()
        .map(|p| {
            assert_eq!(p.kind, PackageKind::Deb);
            vec![
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                p.source_name.clone(),
                p.source_version.clone(),
            ]
        })
        .collect();
    got.sort();
    let want = tsv(oracle);
    assert!(want.len() > 50, "oracle too small: {}", want.len());
    assert_eq!(got, want);
}

fn type_letter(t: FileType) -> &'static str {
    match t {
        FileType::File => "f",
        FileType::Dir => "d",
        FileType::Symlink => "l",
        FileType::Char => "c",
        FileType::Block => "b",
        FileType::Fifo => "p",
        FileType::Socket => "s",
    }
}

/// Every file of the oracle, with type, mode, owner, size (files and links), mtime, link
/// target and SHA-256, equals what the collector recorded; and nothing more.
fn files_match(inv: &Inventory, dir: &Path) {
    // sha256sum marks a line whose file name it had to escape with a leading backslash.
    let sha: BTreeMap<String, String> = tsv(&dir.join("sha256.tsv"))
        .into_iter()
        .map(|r| match r[0].strip_prefix('\\') {
            Some(h) => (
                r[1].replace("\\\\", "\\").replace("\\n", "\n"),
                h.to_string(),
            ),
            None => (r[1].clone(), r[0].clone()),
        })
        .collect();
    let want: Vec<Vec<String>> = tsv(&dir.join("files.tsv"))
        .into_iter()
        .map(|r| {
            let size = if r[1] == "f" || r[1] == "l" {
                r[5].clone()
            } else {
                String::new()
            };
            let hash = sha.get(&r[0]).cloned().unwrap_or_default();
            vec![
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                size,
                r[6].clone(),
                r[7].clone(),
                hash,
            ]
        })
        .collect();
    let got: Vec<Vec<String>> = inv
        .files
        .iter()
        .filter(|f| f.path != "/lost+found")
        .map(|f| {
            let size = if matches!(f.kind, FileType::File | FileType::Symlink) {
                f.size.to_string()
            } else {
                String::new()
            };
            vec![
                f.path.clone(),
                type_letter(f.kind).into(),
                format!("{:o}", f.mode),
                f.uid.to_string(),
                f.gid.to_string(),
                size,
                f.mtime.to_string(),
                f.target.clone().unwrap_or_default(),
                f.sha256.clone().unwrap_or_default(),
            ]
        })
        .collect();
    assert!(want.len() > 1000, "oracle too small");
    if got != want {
        let g: std::collections::BTreeSet<_> = got.iter().collect();
        let w: std::collections::BTreeSet<_> = want.iter().collect();
        let extra: Vec<_> = g.difference(&w).take(5).collect();
        let missing: Vec<_> = w.difference(&g).take(5).collect();
        panic!(
            "file lists differ ({} vs {}): ours only {extra:?}; oracle only {missing:?}",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn debian_12_min_every_format_matches_the_oracles() {
    let dir = image_dir("debian-12-min");
    for img in [
        "disk.raw",
        "disk.qcow2",
        "disk-v2.qcow2",
        "disk-zlib.qcow2",
        "disk-zstd.qcow2",
    ] {
        let inv = collect(&dir.join(img), &CollectOptions::default())
            .unwrap_or_else(|e| panic!("{img}: {e}"));
        let os = inv.os.as_ref().expect("os");
        assert_eq!(
            (
                os.id.as_str(),
                os.version_id.as_str(),
                os.version_codename.as_str()
            ),
            ("debian", "12", "bookworm"),
            "{img}"
        );
        assert_eq!(inv.image.partition_table, "gpt");
        assert_eq!(
            inv.image.root_volume, 3,
            "{img}: root is the third GPT partition"
        );
        assert!(inv.unknowns.is_empty(), "{img}: {:?}", inv.unknowns);
        deb_packages_match(&inv, &dir.join("packages.tsv"));
        files_match(&inv, &dir);
    }
}

#[test]
fn debian_12_min_overlay_shows_its_own_changes() {
    let dir = image_dir("debian-12-min");
    let inv =
        collect(&dir.join("overlay.qcow2"), &CollectOptions::default()).expect("collect overlay");
    assert_eq!(inv.image.chain.len(), 2, "overlay + backing");
    deb_packages_match(&inv, &dir.join("overlay/packages.tsv"));
    files_match(&inv, &dir.join("overlay"));
    assert!(
        inv.security.setuid.contains(&"/usr/bin/dpkg".to_string()),
        "setuid bit set in the overlay is reported"
    );
}

#[test]
fn debian_11_old_on_mbr_logical_partition() {
    let dir = image_dir("debian-11-old");
    let inv = collect(&dir.join("disk.qcow2"), &CollectOptions::default()).expect("collect");
    assert_eq!(
        inv.os.as_ref().map(|o| o.version_codename.as_str()),
        Some("bullseye")
    );
    assert_eq!(inv.image.partition_table, "mbr");
    assert_eq!(
        inv.image.root_volume, 5,
        "root is the first logical partition"
    );
    deb_packages_match(&inv, &dir.join("packages.tsv"));
    files_match(&inv, &dir);
}

#[test]
fn rpm_sample_matches_rpm_qa() {
    let dir = image_dir("rpm-sample");
    let inv = collect(&dir.join("disk.qcow2"), &CollectOptions::default()).expect("collect");
    assert_eq!(inv.image.partition_table, "none");
    assert_eq!(
        inv.os.as_ref().map(|o| o.id.as_str()),
        Some("coldpatch-rpm-sample")
    );
    let mut got: Vec<Vec<String>> = inv
        .packages
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.epoch.map_or("(none)".into(), |e| e.to_string()),
                p.version.clone(),
                p.release.clone().unwrap_or_default(),
                p.arch.clone(),
                p.source_rpm.clone().unwrap_or_default(),
            ]
        })
        .collect();
    got.sort();
    assert_eq!(got, tsv(&dir.join("packages.tsv")));
    assert_eq!(got.len(), 4);
    assert!(inv
        .packages
        .iter()
        .all(|p| p.db == "/var/lib/rpm/rpmdb.sqlite"));
    let libfoo = inv
        .packages
        .iter()
        .find(|p| p.name == "cp-libfoo")
        .expect("cp-libfoo");
    assert_eq!(libfoo.full_version(), "2:3.4.1-5.el9");
    assert_eq!(
        (libfoo.source_name.as_str(), libfoo.source_version.as_str()),
        ("cp-libfoo", "3.4.1-5.el9")
    );
}

#[test]
fn no_files_and_no_hash_options_do_less() {
    let dir = image_dir("debian-12-min");
    let img = dir.join("disk.qcow2");
    let quick = collect(
        &img,
        &CollectOptions {
            files: false,
            ..Default::default()
        },
    )
    .expect("collect");
    assert!(quick.files.is_empty());
    deb_packages_match(&quick, &dir.join("packages.tsv"));
    let nohash = collect(
        &img,
        &CollectOptions {
            hash: false,
            ..Default::default()
        },
    )
    .expect("collect");
    assert!(nohash.files.len() > 1000 && nohash.files.iter().all(|f| f.sha256.is_none()));
    let full = collect(&img, &CollectOptions::default()).expect("collect");
    assert!(
        full.stats.bytes_hashed > 100 << 20,
        "hashed {}",
        full.stats.bytes_hashed
    );
    assert_eq!(nohash.stats.bytes_hashed, 0);
    // Without hashes only metadata and the analyzers' files are read.
    assert!(nohash.stats.bytes_read_from_image * 3 < full.stats.bytes_read_from_image);
}

/// Root on XFS inside LVM: read through one libguestfs appliance (TCG), same oracles.
#[test]
fn lvm_xfs_through_libguestfs_matches_the_oracles() {
    let dir = image_dir("lvm-xfs");
    let inv = collect(&dir.join("disk.qcow2"), &CollectOptions::default()).expect("collect");
    assert!(
        inv.image.volumes.iter().any(|v| v.fs == "lvm2 pv"),
        "{:?}",
        inv.image.volumes
    );
    assert_eq!(
        inv.os.as_ref().map(|o| o.version_codename.as_str()),
        Some("bookworm")
    );
    assert!(inv.unknowns.is_empty(), "{:?}", inv.unknowns);
    deb_packages_match(&inv, &dir.join("packages.tsv"));
    files_match(&inv, &dir);
}

#[test]
fn lvm_xfs_without_the_fallback_says_what_it_needs() {
    let dir = image_dir("lvm-xfs");
    let err = collect(
        &dir.join("disk.qcow2"),
        &CollectOptions {
            guestfs: false,
            ..Default::default()
        },
    )
    .expect_err("needs guestfs");
    assert!(
        err.to_string().contains("needs the libguestfs fallback"),
        "{err}"
    );
}

#[test]
fn debian_12_server_matches_the_oracles() {
    let dir = image_dir("debian-12-server");
    let inv = collect(&dir.join("disk.qcow2"), &CollectOptions::default()).expect("collect");
    assert!(inv.packages.iter().any(|p| p.name == "openssh-server"));
    assert!(inv.unknowns.is_empty(), "{:?}", inv.unknowns);
    deb_packages_match(&inv, &dir.join("packages.tsv"));
    files_match(&inv, &dir);
}
