//! GPT and MBR (with the EBR chain) and superblock probing on an arbitrary raw disk.
#![no_main]

use coldpatch_disk::file::MemImage;
use coldpatch_disk::{partition, probe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = std::path::PathBuf::from("fuzz.raw");
    let mut img = MemImage { data: data.to_vec(), name: name.clone() };
    if let Ok((_, parts)) = partition::read_partitions(&mut img, &name) {
        for p in parts {
            let _ = probe::probe(&mut img, p.start, p.size);
        }
    }
});
