//! Backing chains: confinement to image roots, loops, depth, foreign formats.

use coldpatch_disk::open::{open_image, OpenOptions};
use coldpatch_disk::{DiskError, ErrorKind};

use crate::util::*;

fn overlay(dir: &std::path::Path, name: &str, backing: &str, fmt: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            backing,
            "-F",
            fmt,
            path_str(&p),
            "1M",
        ],
    );
    p
}

#[test]
fn backing_outside_image_roots_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let base = write_raw(outside.path(), "secret.raw", &[0u8; 1 << 20]);
    let dir = tempfile::tempdir().expect("tempdir");
    let top = overlay(dir.path(), "top.qcow2", path_str(&base), "raw");
    let err = open_image(&top, &OpenOptions::default()).expect_err("must refuse");
    assert_eq!(err.kind(), ErrorKind::Backing, "{err}");
    assert!(
        err.to_string()
            .contains(coldpatch_disk::open::BACKING_REFUSED),
        "{err}"
    );
    // Naming the other directory as a root allows it.
    let opts = OpenOptions {
        image_roots: vec![dir.path().into(), outside.path().into()],
        ..Default::default()
    };
    assert!(open_image(&top, &opts).is_ok());
}

#[test]
fn backing_symlink_escaping_the_root_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let base = write_raw(outside.path(), "secret.raw", &[0u8; 1 << 20]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(&base, dir.path().join("link.raw")).expect("symlink");
    let top = overlay(dir.path(), "top.qcow2", "link.raw", "raw");
    let err = open_image(&top, &OpenOptions::default()).expect_err("must refuse");
    assert_eq!(err.kind(), ErrorKind::Backing, "{err}");
}

#[test]
fn backing_loop_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    overlay(dir.path(), "a.qcow2", "b.qcow2", "qcow2");
    let b = overlay(dir.path(), "b.qcow2", "a.qcow2", "qcow2");
    let err = open_image(&b, &OpenOptions::default()).expect_err("must refuse");
    assert!(err.to_string().contains("loop"), "{err}");
}

#[test]
fn chain_depth_is_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_raw(dir.path(), "l0.raw", &[0u8; 1 << 20]);
    overlay(dir.path(), "l1.qcow2", "l0.raw", "raw");
    let mut top = overlay(dir.path(), "l2.qcow2", "l1.qcow2", "qcow2");
    for i in 3..=5 {
        top = overlay(
            dir.path(),
            &format!("l{i}.qcow2"),
            &format!("l{}.qcow2", i - 1),
            "qcow2",
        );
    }
    let img = open_image(&top, &OpenOptions::default()).expect("depth 5 is fine");
    assert_eq!(img.chain.len(), 6);
    let opts = OpenOptions {
        max_chain_depth: 3,
        ..Default::default()
    };
    let err = open_image(&top, &opts).expect_err("depth limit");
    assert!(matches!(err, DiskError::Limit { limit: 3, .. }), "{err}");
}

#[test]
fn protocol_backing_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = overlay(dir.path(), "top.qcow2", "nbd://127.0.0.1/x", "raw");
    let err = open_image(&top, &OpenOptions::default()).expect_err("must refuse");
    assert!(err.to_string().contains("not a plain file name"), "{err}");
}

#[test]
fn foreign_formats_get_a_conversion_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    for fmt in ["vmdk", "vdi", "vhdx", "vpc"] {
        let p = dir.path().join(format!("x.{fmt}"));
        run("qemu-img", &["create", "-q", "-f", fmt, path_str(&p), "4M"]);
        let err = open_image(&p, &OpenOptions::default()).expect_err(fmt);
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{fmt}: {err}");
        assert!(err.to_string().contains("qemu-img convert"), "{fmt}: {err}");
    }
}

#[test]
fn truncated_qcow2_is_an_error_naming_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = write_raw(dir.path(), "src.raw", &pattern(4 << 20, 3));
    let q = dir.path().join("img.qcow2");
    run(
        "qemu-img",
        &["convert", "-O", "qcow2", path_str(&raw), path_str(&q)],
    );
    let len = std::fs::metadata(&q).expect("stat").len();
    for cut in [100, 4096, 0x30000, len / 2, len - 1000] {
        let t = dir.path().join(format!("cut{cut}.qcow2"));
        std::fs::copy(&q, &t).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&t)
            .expect("open")
            .set_len(cut)
            .expect("truncate");
        let result = open_image(&t, &OpenOptions::default()).and_then(|mut img| {
            let mut buf = vec![0u8; img.virtual_size as usize];
            img.reader.read_at(0, &mut buf)
        });
        let err = result.expect_err("truncated image must fail");
        assert!(
            err.to_string().contains(path_str(&t)),
            "error does not name the image: {err}"
        );
    }
}

#[test]
fn encrypted_qcow2_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("secret.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "--object",
            "secret,id=sec0,data=123456",
            "-f",
            "qcow2",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=sec0",
            path_str(&p),
            "4M",
        ],
    );
    let err = open_image(&p, &OpenOptions::default()).expect_err("encrypted");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.to_string().contains("encrypted qcow2") && err.to_string().contains("decrypt"),
        "{err}"
    );
}

/// One refusal whatever the backing file is: missing, a directory, outside the roots, a
/// FIFO without a writer, a socket, a character device. Nothing blocks (the FIFO would
/// hang a plain open forever; the test harness would time the test out), and the message
/// is the same for all, so it says nothing about what exists on the host.
#[test]
fn backing_files_that_are_not_regular_files_get_one_refusal_and_never_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("socket");
    std::fs::create_dir(dir.path().join("subdir")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).expect("symlink");
    let secret = write_raw(outside.path(), "secret.raw", &[0u8; 4096]);
    let mut messages = Vec::new();
    let roots = OpenOptions {
        image_roots: vec![dir.path().into(), "/dev".into()],
        ..Default::default()
    };
    for (i, backing) in [
        path_str(&fifo),
        path_str(&sock),
        "/dev/zero",
        "zero",
        "subdir",
        "missing.raw",
        path_str(&secret),
    ]
    .iter()
    .enumerate()
    {
        let top = overlay(dir.path(), &format!("top{i}.qcow2"), backing, "raw");
        let started = std::time::Instant::now();
        let err = open_image(&top, &roots).expect_err("must refuse");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{backing}"
        );
        assert_eq!(err.kind(), ErrorKind::Backing, "{backing}: {err}");
        let DiskError::Backing { reason, .. } = &err else {
            panic!("{backing}: {err:?}");
        };
        messages.push(reason.clone());
    }
    messages.dedup();
    assert_eq!(
        messages,
        [coldpatch_disk::open::BACKING_REFUSED],
        "{messages:?}"
    );
}

/// A FIFO, a socket or /dev/zero as the image itself: refused on the open descriptor, at
/// once; a block device only where the caller allows one.
#[test]
fn an_image_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    for p in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        for block_devices in [false, true] {
            let opts = OpenOptions {
                block_devices,
                ..Default::default()
            };
            let err = open_image(p, &opts).expect_err("must refuse");
            assert!(
                matches!(err, DiskError::NotAFile { .. }),
                "{}: {err:?}",
                p.display()
            );
        }
    }
}
