//! Detects a running VM's hold on an image through qemu's OFD byte-range locks.
//!
//! qemu (since 2.10) locks bytes of every image it opens: byte 100 + n says "I use
//! permission n", byte 200 + n "I forbid others permission n". Permission bit 1 is WRITE,
//! so a lock on byte 101 means some process writes the image right now; reading it would
//! see a filesystem in mid-change. Read-only users (a backing file shared by VMs) take no
//! write lock and do not block us.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::fcntl::{fcntl, FcntlArg};

const QEMU_PERM_WRITE_BYTE: i64 = 101;

/// True if another open file description holds a lock on qemu's "write" byte.
pub fn held_by_writer(file: &File) -> std::io::Result<bool> {
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: QEMU_PERM_WRITE_BYTE,
        l_len: 1,
        l_pid: 0,
    };
    fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut fl)).map_err(std::io::Error::from)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}
