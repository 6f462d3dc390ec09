//! qcow2 header, L1/L2 tables and cluster reads (plain, zero, zlib/zstd compressed) from
//! arbitrary bytes held in memory.
#![no_main]

use coldpatch_disk::file::{MemImage, ReadAt};
use coldpatch_disk::qcow2::Qcow2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = std::path::PathBuf::from("fuzz.qcow2");
    let img = MemImage { data: data.to_vec(), name: name.clone() };
    if let Ok(mut q) = Qcow2::open(Box::new(img), &name) {
        let size = q.size();
        let mut buf = vec![0u8; 70_000];
        // A few reads spread over the virtual disk, crossing cluster boundaries.
        for i in 0..8u64 {
            let at = size / 8 * i;
            let n = (size - at).min(buf.len() as u64) as usize;
            let _ = q.read_at(at, &mut buf[..n]);
        }
    }
});
