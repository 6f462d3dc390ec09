//! The inode-level fast path (disk::ext4raw) on filesystems that exercise its branches and
//! its fallbacks, each checked file by file against the tree the filesystem was made from.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use coldpatch_collector::{collect, CollectOptions, FileType};
use sha2::{Digest, Sha256};

/// A tree with small, medium (single indirect), large (double indirect) and sparse files.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut want = BTreeMap::new();
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").expect("write");
    // What libguestfs' inspection needs to call this a Linux root.
    std::fs::write(root.join("etc/fstab"), "/dev/sda / ext4 defaults 0 1\n").expect("write");
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "lib", "var/lib/dpkg"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    // A Debian root with no package installed (a Debian one without a status file is
    // an unknown).
    std::fs::write(root.join("var/lib/dpkg/status"), b"").expect("write");
    let mut files: Vec<(&str, Vec<u8>)> =
        vec![("tiny", b"hi\n".to_vec()), ("small", vec![7u8; 3000])];
    let pattern = |n: usize| (0..n).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>();
    files.push(("single-indirect", pattern(40 * 4096 + 123)));
    files.push(("double-indirect", pattern(1100 * 4096 + 5)));
    for (name, data) in &files {
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::write(root.join("data").join(name), data).expect("write");
    }
    // Sparse: data, a 3 MiB hole, data.
    let sparse = root.join("data/sparse");
    let mut f = std::fs::File::create(&sparse).expect("create");
    f.write_all(&[1u8; 5000]).expect("write");
    f.seek(SeekFrom::Start(3 << 20)).expect("seek");
    f.write_all(&[2u8; 5000]).expect("write");
    drop(f);
    for entry in [
        "etc/os-release",
        "etc/fstab",
        "var/lib/dpkg/status",
        "data/tiny",
        "data/small",
        "data/single-indirect",
        "data/double-indirect",
        "data/sparse",
    ] {
        let bytes = std::fs::read(root.join(entry)).expect("read");
        want.insert(format!("/{entry}"), hex::encode(Sha256::digest(&bytes)));
    }
    want
}

fn image(
    mkfs_args: &[&str],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    BTreeMap<String, String>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let want = tree(&root);
    let fs = dir.path().join("fs.img");
    assert!(Command::new("truncate")
        .args(["-s", "64M"])
        .arg(&fs)
        .status()
        .expect("truncate")
        .success());
    let mut mkfs = Command::new("mke2fs");
    mkfs.args(["-q", "-F"])
        .args(mkfs_args)
        .arg("-d")
        .arg(&root)
        .arg(&fs);
    assert!(
        mkfs.status().expect("mke2fs").success(),
        "mke2fs {mkfs_args:?}"
    );
    (dir, fs, want)
}

fn hashes(img: &Path) -> BTreeMap<String, String> {
    let inv = collect(img, &CollectOptions::default()).expect("collect");
    assert!(inv.unknowns.is_empty(), "{:?}", inv.unknowns);
    inv.files
        .into_iter()
        .filter(|f| f.kind == FileType::File)
        .map(|f| (f.path, f.sha256.unwrap_or_default()))
        .collect()
}

#[test]
fn ext2_block_maps_with_indirect_blocks_and_holes() {
    let (_d, fs, want) = image(&["-t", "ext2"]);
    assert_eq!(hashes(&fs), want);
}

#[test]
fn ext3_with_journal() {
    let (_d, fs, want) = image(&["-t", "ext3"]);
    assert_eq!(hashes(&fs), want);
}

#[test]
fn ext4_extents() {
    let (_d, fs, want) = image(&["-t", "ext4"]);
    assert_eq!(hashes(&fs), want);
}

/// Small files inside their inodes (inline_data): ext4-view refuses the feature, so the
/// image goes to the libguestfs appliance, which reads it correctly.
#[test]
fn ext4_inline_data_goes_to_libguestfs() {
    let (_d, fs, want) = image(&["-t", "ext4", "-O", "inline_data"]);
    assert_eq!(hashes(&fs), want);
}

/// The fast path refuses meta_bg (group descriptors moved); ext4-view reads it, or if it
/// cannot, the appliance does. Either way the result is exact.
#[test]
fn ext4_meta_bg_is_read_correctly() {
    let (_d, fs, want) = image(&["-t", "ext4", "-O", "meta_bg,^resize_inode"]);
    assert_eq!(hashes(&fs), want);
}

/// Without the fallback, an inline_data filesystem gets a clear error naming the feature.
#[test]
fn ext4_inline_data_without_fallback_says_why() {
    let (_d, fs, _) = image(&["-t", "ext4", "-O", "inline_data"]);
    let err = collect(
        &fs,
        &CollectOptions {
            guestfs: false,
            ..Default::default()
        },
    )
    .expect_err("needs guestfs");
    assert!(
        err.to_string().contains("libguestfs") && err.to_string().contains("DATA_IN_INODE"),
        "{err}"
    );
}

/// Corrupting bytes of a real filesystem gives errors or unknowns, never a panic or hang.
#[test]
fn corrupted_filesystems_never_panic() {
    let (d, fs, _) = image(&["-t", "ext4"]);
    let data = std::fs::read(&fs).expect("read");
    // Superblock, group descriptors, inode table and the first data blocks.
    for at in (1024..600 * 1024).step_by(4099) {
        let mut bad = data.clone();
        bad[at] ^= 0xa5;
        bad[at + 1] ^= 0x5a;
        let p = d.path().join("bad.img");
        std::fs::write(&p, &bad).expect("write");
        let _ = collect(&p, &CollectOptions::default());
    }
}
