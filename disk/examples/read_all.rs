//! Measures how fast every regular file of an image's first ext volume can be read through
//! the native stack (qcow2 -> partition -> ext4), with and without SHA-256.
//! Usage: cargo run --release -p coldpatch-disk --example read_all -- IMAGE [sha]

use std::io::Read;
use std::time::Instant;

use coldpatch_disk::{Disk, FileKind, FsKind, GuestFs, OpenOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: read_all IMAGE [sha]")?;
    let hash = args.get(2).is_some_and(|a| a == "sha");
    let disk = Disk::open(std::path::Path::new(path), &OpenOptions::default())?;
    let vol = disk
        .volumes
        .iter()
        .find(|v| v.kind == FsKind::Ext)
        .ok_or("no ext volume")?;
    let mut fs = disk.open_ext4(vol)?;
    let start = Instant::now();
    let mut stack = vec![b"/".to_vec()];
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; 256 * 1024];
    while let Some(dir) = stack.pop() {
        for e in fs.read_dir(&dir)? {
            let mut p = dir.clone();
            if p.last() != Some(&b'/') {
                p.push(b'/');
            }
            p.extend_from_slice(&e.name);
            match e.meta.kind {
                FileKind::Dir => stack.push(p),
                FileKind::File => {
                    let mut r = fs.open(&p)?;
                    let mut h = <sha2::Sha256 as sha2::Digest>::new();
                    loop {
                        let n = r.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        if hash {
                            sha2::Digest::update(&mut h, &buf[..n]);
                        }
                        bytes += n as u64;
                    }
                    files += 1;
                }
                _ => {}
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!("{files} files, {:.0} MiB in {s:.2} s = {:.0} MiB/s (sha: {hash}); {:.0} MiB read from the image", bytes as f64 / 1048576.0, bytes as f64 / 1048576.0 / s, disk.bytes_read() as f64 / 1048576.0);
    Ok(())
}
