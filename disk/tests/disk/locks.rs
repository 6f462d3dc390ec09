//! A running qemu holds the image: refuse unless forced. The lock holder is a real
//! qemu-nbd serving the image read-write on a unix socket (no kernel nbd device needed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldpatch_disk::open::{open_image, OpenOptions};
use coldpatch_disk::ErrorKind;

use crate::util::*;

#[test]
fn image_written_by_running_qemu_is_refused_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("busy.qcow2");
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", path_str(&img), "16M"],
    );
    assert!(
        open_image(&img, &OpenOptions::default()).is_ok(),
        "idle image opens"
    );

    let sock = dir.path().join("nbd.sock");
    let mut child = Command::new("qemu-nbd")
        .args(["-f", "qcow2", "-k", path_str(&sock), path_str(&img)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qemu-nbd");
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy = open_image(&img, &OpenOptions::default());
    let forced = open_image(
        &img,
        &OpenOptions {
            force: true,
            ..Default::default()
        },
    );
    let _ = child.kill();
    let _ = child.wait();

    let err = busy.expect_err("image in use must be refused");
    assert_eq!(err.kind(), ErrorKind::InUse, "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(forced.is_ok(), "--force reads it anyway");
    assert!(
        open_image(&img, &OpenOptions::default()).is_ok(),
        "free again after qemu exits"
    );
}
