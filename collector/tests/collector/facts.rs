//! Kernels and security facts on a real ext4 made at test time (mkfs.ext4 -d) from a tree
//! that has what the debootstrap images lack: a kernel, SSH keys, weak accounts,
//! world-writable and setuid files.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use coldpatch_collector::{collect, CollectOptions, WeakAccount};

fn write(root: &Path, rel: &str, body: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn image() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    write(
        &root,
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        0o644,
    );
    write(&root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\ncarol::1002:1002::/home/carol:/bin/sh\n", 0o644);
    write(
        &root,
        "etc/shadow",
        "root:*:19000:0:99999:7:::\nalice::19000:0:99999:7:::\ncarol:!:19000::::::\n",
        0o640,
    );
    write(&root, "boot/vmlinuz-6.1.0-18-amd64", "kernel", 0o644);
    write(&root, "boot/initrd.img-6.1.0-18-amd64", "initrd", 0o644);
    std::fs::create_dir_all(root.join("usr/lib/modules/6.1.0-18-amd64/kernel")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/lib/modules/5.10.0-28-amd64")).expect("mkdir");
    symlink("usr/lib", root.join("lib")).expect("symlink");
    write(
        &root,
        "root/.ssh/authorized_keys",
        "ssh-ed25519 AAAA root@x\n",
        0o600,
    );
    write(&root, "root/.ssh/id_ed25519", "private\n", 0o600);
    write(
        &root,
        "home/alice/.ssh/authorized_keys",
        "ssh-ed25519 AAAA alice@x\n",
        0o600,
    );
    write(&root, "srv/open.txt", "anyone may write\n", 0o666);
    std::fs::create_dir_all(root.join("srv/dropbox")).expect("mkdir");
    std::fs::set_permissions(
        root.join("srv/dropbox"),
        std::fs::Permissions::from_mode(0o777),
    )
    .expect("chmod");
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir");
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    write(&root, "usr/bin/su", "su", 0o4755);
    write(&root, "usr/bin/wall", "wall", 0o2755);
    let fs = dir.path().join("fs.img");
    let ok = Command::new("truncate")
        .args(["-s", "16M"])
        .arg(&fs)
        .status()
        .expect("truncate")
        .success()
        && Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&root)
            .arg(&fs)
            .status()
            .expect("mkfs")
            .success();
    assert!(ok, "mkfs.ext4 -d failed");
    let img = dir.path().join("facts.qcow2");
    assert!(Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&fs)
        .arg(&img)
        .status()
        .expect("qemu-img")
        .success());
    (dir, img)
}

fn weak(name: &str, problem: &str) -> WeakAccount {
    WeakAccount {
        name: name.into(),
        problem: problem.into(),
    }
}

#[test]
fn kernels_and_security_facts() {
    let (_dir, img) = image();
    let inv = collect(&img, &CollectOptions::default()).expect("collect");
    let kernels: Vec<(&str, &str)> = inv
        .kernels
        .iter()
        .map(|k| (k.version.as_str(), k.source.as_str()))
        .collect();
    assert_eq!(
        kernels,
        vec![
            ("5.10.0-28-amd64", "/usr/lib/modules/5.10.0-28-amd64"),
            ("6.1.0-18-amd64", "/boot/vmlinuz-6.1.0-18-amd64")
        ]
    );
    let s = &inv.security;
    assert_eq!(s.setuid, vec!["/usr/bin/su"]);
    assert_eq!(s.setgid, vec!["/usr/bin/wall"]);
    assert_eq!(
        s.world_writable,
        vec!["/srv/dropbox", "/srv/open.txt"],
        "sticky /tmp is not listed"
    );
    assert_eq!(
        s.root_ssh,
        vec!["/root/.ssh/authorized_keys", "/root/.ssh/id_ed25519"]
    );
    assert_eq!(
        s.authorized_keys,
        vec![
            "/home/alice/.ssh/authorized_keys",
            "/root/.ssh/authorized_keys"
        ]
    );
    assert_eq!(
        s.weak_accounts,
        vec![
            weak("alice", "empty"),
            weak("bob", "missing"),
            weak("carol", "empty")
        ]
    );
}

#[test]
fn packages_only_mode_finds_the_same_kernels_and_accounts() {
    let (_dir, img) = image();
    let full = collect(&img, &CollectOptions::default()).expect("collect");
    let quick = collect(
        &img,
        &CollectOptions {
            files: false,
            ..Default::default()
        },
    )
    .expect("collect");
    let versions = |i: &coldpatch_collector::Inventory| {
        i.kernels
            .iter()
            .map(|k| k.version.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&quick), versions(&full));
    assert_eq!(quick.security.weak_accounts, full.security.weak_accounts);
    assert_eq!(quick.os, full.os);
    assert!(quick.security.setuid.is_empty(), "file facts need the walk");
}
