//! Partition tables written by sfdisk, filesystems made by mkfs.ext4 -d, read natively.

use std::io::Read;
use std::path::Path;

use coldpatch_disk::{Disk, FsKind, GuestFs, OpenOptions, TableKind};

use crate::util::*;

fn ext4_with_file(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
    std::fs::write(tree.join("etc/hello"), b"hello from the guest\n").expect("write");
    std::os::unix::fs::symlink("/etc/hello", tree.join("link")).expect("symlink");
    let fs = dir.join("fs.img");
    run("truncate", &["-s", "8M", path_str(&fs)]);
    run(
        "mkfs.ext4",
        &["-q", "-F", "-d", path_str(&tree), path_str(&fs)],
    );
    fs
}

fn place(fs: &Path, disk: &Path, sector: u64) {
    let data = std::fs::read(fs).expect("read fs");
    let mut d = std::fs::read(disk).expect("read disk");
    let at = (sector * 512) as usize;
    d[at..at + data.len()].copy_from_slice(&data);
    std::fs::write(disk, d).expect("write disk");
}

fn sfdisk(disk: &Path, script: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("sfdisk")
        .args(["-q", path_str(disk)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    assert!(child.wait().expect("wait").success());
}

fn read_hello(disk: &Disk) -> String {
    let vol = disk
        .volumes
        .iter()
        .find(|v| v.kind == FsKind::Ext)
        .expect("an ext volume");
    let mut fs = disk.open_ext4(vol).expect("ext4 loads");
    let mut s = String::new();
    fs.open(b"/etc/hello")
        .expect("open")
        .read_to_string(&mut s)
        .expect("read");
    // The symlink is reported as its text, and resolved only inside the guest.
    assert_eq!(fs.read_link(b"/link").expect("readlink"), b"/etc/hello");
    assert_eq!(
        fs.read_resolved(b"/link", 1024).expect("resolve"),
        s.as_bytes()
    );
    s
}

#[test]
fn gpt_root_found_by_content_not_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = ext4_with_file(dir.path());
    let disk = dir.path().join("disk.raw");
    run("truncate", &["-s", "20M", path_str(&disk)]);
    sfdisk(
        &disk,
        "label: gpt\nstart=2048, size=2048\nstart=4096, size=16384, name=\"swap\"\nstart=20480\n",
    );
    // sfdisk keeps the last partition inside the disk; put the fs into partition 2's place.
    place(&fs, &disk, 4096);
    let d = Disk::open(&disk, &OpenOptions::default()).expect("open");
    assert_eq!(d.table, TableKind::Gpt);
    assert_eq!(
        d.volumes
            .iter()
            .map(|v| v.partition.number)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(d.volumes[1].kind, FsKind::Ext);
    assert_eq!(read_hello(&d), "hello from the guest\n");
}

#[test]
fn mbr_logical_partition_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = ext4_with_file(dir.path());
    let disk = dir.path().join("disk.raw");
    run("truncate", &["-s", "32M", path_str(&disk)]);
    sfdisk(&disk, "label: dos\nstart=2048, size=4096, type=82\nstart=8192, type=5\nstart=10240, size=2048, type=83\nstart=14336, size=16384, type=83\n");
    place(&fs, &disk, 14336);
    let d = Disk::open(&disk, &OpenOptions::default()).expect("open");
    assert_eq!(d.table, TableKind::Mbr);
    let numbers: Vec<u32> = d.volumes.iter().map(|v| v.partition.number).collect();
    assert_eq!(numbers, vec![1, 5, 6]);
    assert_eq!(d.volumes[2].kind, FsKind::Ext);
    assert_eq!(d.volumes[2].partition.start, 14336 * 512);
    assert_eq!(read_hello(&d), "hello from the guest\n");
}

#[test]
fn unpartitioned_filesystem_is_the_whole_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = ext4_with_file(dir.path());
    let q = dir.path().join("fs.qcow2");
    run(
        "qemu-img",
        &["convert", "-O", "qcow2", path_str(&fs), path_str(&q)],
    );
    let d = Disk::open(&q, &OpenOptions::default()).expect("open");
    assert_eq!(d.table, TableKind::None);
    assert_eq!(d.volumes.len(), 1);
    assert_eq!(d.volumes[0].partition.number, 0);
    assert_eq!(read_hello(&d), "hello from the guest\n");
}

#[test]
fn ebr_chain_loop_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.raw");
    run("truncate", &["-s", "16M", path_str(&disk)]);
    sfdisk(
        &disk,
        "label: dos\nstart=2048, type=5\nstart=4096, size=2048, type=83\n",
    );
    // Link the first EBR to a second one at relative LBA 4000, and that one to itself.
    let mut d = std::fs::read(&disk).expect("read");
    let ebr = 2048 * 512;
    let link = ebr + 446 + 16;
    d[link + 4] = 0x05;
    d[link + 8..link + 12].copy_from_slice(&4000u32.to_le_bytes());
    d[link + 12..link + 16].copy_from_slice(&100u32.to_le_bytes());
    let ebr2 = (2048 + 4000) * 512;
    d[ebr2 + 510] = 0x55;
    d[ebr2 + 511] = 0xaa;
    let l2 = ebr2 + 446 + 16;
    d[l2 + 4] = 0x05;
    d[l2 + 8..l2 + 12].copy_from_slice(&4000u32.to_le_bytes());
    d[l2 + 12..l2 + 16].copy_from_slice(&100u32.to_le_bytes());
    std::fs::write(&disk, d).expect("write");
    let err = Disk::open(&disk, &OpenOptions::default())
        .err()
        .expect("loop must fail");
    assert!(err.to_string().contains("loops"), "{err}");
}
