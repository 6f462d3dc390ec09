//! Our qcow2 reads against `qemu-img convert -O raw`, byte for byte.

use crate::util::*;

fn check(options: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = write_raw(dir.path(), "src.raw", &pattern(9 << 20, 42));
    let q = dir.path().join("img.qcow2");
    let mut args = vec!["convert", "-O", "qcow2"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[path_str(&raw), path_str(&q)]);
    run("qemu-img", &args);
    assert!(
        our_raw(&q) == qemu_raw(&q, dir.path()),
        "guest views differ for {options:?}"
    );
}

#[test]
fn qcow2_v3_default_clusters() {
    check(&[]);
}

#[test]
fn qcow2_v2() {
    check(&["-o", "compat=0.10"]);
}

#[test]
fn qcow2_small_clusters() {
    check(&["-o", "cluster_size=512"]);
}

#[test]
fn qcow2_2m_clusters() {
    check(&["-o", "cluster_size=2M"]);
}

#[test]
fn qcow2_zlib_compressed() {
    check(&["-c"]);
}

#[test]
fn qcow2_zstd_compressed() {
    check(&["-c", "-o", "compression_type=zstd"]);
}

#[test]
fn qcow2_overlay_with_zero_and_data_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = write_raw(dir.path(), "src.raw", &pattern(8 << 20, 7));
    let base = dir.path().join("base.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            path_str(&raw),
            path_str(&base),
        ],
    );
    let top = dir.path().join("top.qcow2");
    // A relative backing name, resolved against the overlay's directory.
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            path_str(&top),
            "10M",
        ],
    );
    run(
        "qemu-io",
        &[
            "-c",
            "write -P 0xab 1M 100k",
            "-c",
            "write -z 3M 64k",
            "-c",
            "write -P 0x11 9M 512k",
            path_str(&top),
        ],
    );
    assert!(
        our_raw(&top) == qemu_raw(&top, dir.path()),
        "overlay guest views differ"
    );
}
