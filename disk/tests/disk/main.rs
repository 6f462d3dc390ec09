//! Integration tests of the disk crate on images made at test time by the real tools
//! (qemu-img, qemu-io, qemu-nbd, sfdisk, mkfs.ext4).

mod chain;
mod differential;
mod locks;
mod partitions;
mod stamp;
mod util;
