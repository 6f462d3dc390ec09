//! The version stamp header extension: written into real qemu-img files, kept by qemu-img
//! when it rewrites the header, invisible in the guest view.

use std::path::{Path, PathBuf};
use std::process::Command;

use coldpatch_disk::qcow2::stamp::{self, Stamp};

use crate::util::*;

fn overlay_on(dir: &Path, base: &Path, name: &str, cluster: &str) -> PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("cluster_size={cluster}"),
            "-b",
            path_str(base),
            "-F",
            "raw",
            path_str(&p),
        ],
    );
    p
}

fn qemu_io_write(image: &Path) {
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x5a 64k 128k",
            path_str(image),
        ],
    );
}

fn qemu_img_check(image: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["check", path_str(image)])
        .output()
        .expect("run qemu-img check");
    assert!(
        out.status.success(),
        "qemu-img check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stamp(n: u32) -> Stamp {
    let mut check = [0u8; 32];
    for (i, b) in check.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(n as u8);
    }
    Stamp { number: n, check }
}

#[test]
fn stamp_is_read_back_kept_by_qemu_and_invisible_to_the_guest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write_raw(dir.path(), "base.raw", &pattern(1 << 20, 3));
    let top = overlay_on(dir.path(), &base, "top.qcow2", "64k");
    qemu_io_write(&top);
    let view_before = qemu_raw(&top, dir.path());
    assert_eq!(stamp::read(&top).expect("read"), None);

    stamp::write(&top, &stamp(1)).expect("write stamp");
    assert_eq!(stamp::read(&top).expect("read"), Some(stamp(1)));
    // qemu accepts the file, still finds its backing file and sees the same disk.
    assert!(qemu_img_check(&top).contains("No errors were found"));
    assert_eq!(qemu_raw(&top, dir.path()), view_before);
    assert_eq!(our_raw(&top), view_before);

    // A second stamp replaces the first instead of adding one.
    stamp::write(&top, &stamp(2)).expect("restamp");
    assert_eq!(stamp::read(&top).expect("read"), Some(stamp(2)));
    let disk = coldpatch_disk::open::open_image(&top, &Default::default()).expect("open");
    assert_eq!(
        disk.extensions
            .iter()
            .filter(|(t, _)| *t == stamp::EXT_STAMP)
            .count(),
        1
    );

    // qemu-img rewrites the header on rebase (here onto a copy under a longer name) and
    // keeps the extension it does not know.
    let copy = dir.path().join("base-copy-with-a-longer-name.raw");
    std::fs::copy(&base, &copy).expect("copy base");
    run(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-b",
            path_str(&copy),
            "-F",
            "raw",
            path_str(&top),
        ],
    );
    assert_eq!(stamp::read(&top).expect("read"), Some(stamp(2)));
    assert_eq!(qemu_raw(&top, dir.path()), view_before);
    // ...and so does a write through qemu (which marks the image dirty and clean again).
    qemu_io_write(&top);
    assert_eq!(stamp::read(&top).expect("read"), Some(stamp(2)));
    assert!(qemu_img_check(&top).contains("No errors were found"));
}

#[test]
fn stamp_refused_when_the_header_cluster_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 512-byte header cluster: header (112) + backing format extension (16) + end (8)
    // leaves 376 bytes; a backing name of 340 to 370 bytes leaves no room for 48 more.
    let mut deep = dir.path().to_path_buf();
    while deep.as_os_str().len() < 330 {
        deep.push("d".repeat(40));
    }
    std::fs::create_dir_all(&deep).expect("mkdir");
    let base = write_raw(&deep, "b.raw", &pattern(1 << 16, 1));
    let name_len = base.as_os_str().len();
    assert!((340..=376).contains(&name_len), "{name_len}");
    let top = overlay_on(dir.path(), &base, "top.qcow2", "512");
    let before = std::fs::read(&top).expect("read");
    let err = stamp::write(&top, &stamp(1)).expect_err("no room");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: header cluster bytes with the version stamp exceeds the limit of 512",
            top.display()
        )
    );
    assert_eq!(
        std::fs::read(&top).expect("read"),
        before,
        "nothing written"
    );
}

#[test]
fn raw_file_carries_no_stamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = write_raw(dir.path(), "disk.raw", &pattern(1 << 16, 2));
    assert_eq!(stamp::read(&raw).expect("read"), None);
}
