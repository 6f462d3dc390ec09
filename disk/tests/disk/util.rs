use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Deterministic bytes with runs of zeros, so images get both data and holes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = vec![0u8; len];
    for (i, chunk) in out.chunks_mut(4096).enumerate() {
        if i % 7 == 3 {
            continue; // a hole
        }
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Low-entropy bytes, so that compressed clusters really compress.
            *b = (x % 16) as u8;
        }
    }
    out
}

pub fn write_raw(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write raw");
    p
}

/// The guest view of an image according to qemu itself.
pub fn qemu_raw(image: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu-view.raw");
    run(
        "qemu-img",
        &["convert", "-O", "raw", path_str(image), path_str(&out)],
    );
    std::fs::read(&out).expect("read qemu view")
}

/// Our guest view of an image, read in uneven chunks across cluster boundaries.
pub fn our_raw(image: &Path) -> Vec<u8> {
    let mut img = coldpatch_disk::open::open_image(image, &Default::default()).expect("open image");
    let size = img.virtual_size as usize;
    let mut out = vec![0u8; size];
    let mut at = 0;
    let mut step = 1;
    while at < size {
        let n = (4096 * step + 511).min(size - at);
        img.reader
            .read_at(at as u64, &mut out[at..at + n])
            .expect("read");
        at += n;
        step = step % 37 + 1;
    }
    out
}
