//! The inode-level ext4 reader: superblock, group descriptors, inodes, extent trees and
//! block maps, directory blocks, file data, from arbitrary bytes.
#![no_main]

use std::io::Read;
use std::sync::{Arc, Mutex};

use coldpatch_disk::ext4::PartReader;
use coldpatch_disk::ext4raw::RawExt4;
use coldpatch_disk::file::{MemImage, ReadAt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let img: Box<dyn ReadAt> = Box::new(MemImage { data: data.to_vec(), name: "fuzz.img".into() });
    let reader = PartReader { dev: Arc::new(Mutex::new(img)), start: 0, size, error: Arc::default() };
    let Some(mut fs) = RawExt4::new(reader) else { return };
    let Ok(root) = fs.inode(2) else { return };
    let Ok(entries) = fs.dir_entries(&root) else { return };
    let mut buf = vec![0u8; 65536];
    for (_, ino) in entries.into_iter().take(16) {
        if let Ok(inode) = fs.inode(ino) {
            if let Ok(mut r) = fs.reader(&inode) {
                let mut budget = 1 << 20;
                while budget > 0 {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => budget -= n.min(budget),
                    }
                }
            }
        }
    }
});
