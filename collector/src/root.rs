//! Picks the root filesystem among an image's volumes by what it contains.

use coldpatch_disk::ext4::Ext4Fs;
use coldpatch_disk::guestfs_fs::GuestfsFs;
use coldpatch_disk::{Disk, FileKind, FsKind, GuestFs};

use crate::error::CollectError;

/// Marks of a root filesystem, strongest first.
const ROOT_MARKS: &[&[u8]] = &[
    b"/etc/os-release",
    b"/var/lib/dpkg/status",
    b"/var/lib/rpm",
    b"/usr/lib/sysimage/rpm",
    b"/lib/apk/db/installed",
    b"/etc/passwd",
];

/// The root filesystem, opened: natively if it is on an ext volume, otherwise (root on LVM,
/// XFS or btrfs) through a read-only libguestfs appliance when `allow_guestfs`.
pub fn find_root(
    disk: &Disk,
    allow_guestfs: bool,
) -> Result<(u32, Box<dyn GuestFs>), CollectError> {
    match find_native_root(disk) {
        Err(CollectError::NeedsGuestfs { .. }) if allow_guestfs => {
            let fs = GuestfsFs::open(&disk.path, disk.format.as_str())?;
            // libguestfs names devices, not our partition numbers: report the first volume
            // that needs it.
            let n = disk
                .volumes
                .iter()
                .find(|v| v.kind.needs_guestfs())
                .map_or(0, |v| v.partition.number);
            Ok((n, Box::new(fs)))
        }
        Err(e) => Err(e),
        Ok((n, fs)) => {
            // The volume was chosen through ext4-view; the walk itself takes the fast
            // inode-level path where the filesystem allows it, keeping that ext4-view.
            let vol = disk
                .volumes
                .iter()
                .find(|v| v.partition.number == n)
                .ok_or_else(|| CollectError::NoRoot {
                    image: disk.path.clone(),
                    found: format!("partition {n} vanished"),
                })?;
            Ok((n, disk.ext4_walk(vol, fs)))
        }
    }
}

/// The ext volume with the strongest root marks, opened.
fn find_native_root(disk: &Disk) -> Result<(u32, Ext4Fs), CollectError> {
    let mut best: Option<(usize, u32, Ext4Fs)> = None;
    let mut last_err = None;
    // ext volumes whose features ext4-view does not support (inline_data, ...): libguestfs
    // reads those.
    let mut incompatible = Vec::new();
    for vol in disk.volumes.iter().filter(|v| v.kind == FsKind::Ext) {
        let mut fs = match disk.open_ext4(vol) {
            Ok(fs) => fs,
            Err(coldpatch_disk::DiskError::Ext4 {
                source: ext4_view::Ext4Error::Incompatible(what),
                ..
            }) => {
                incompatible.push(format!("{} ({what})", vol.label()));
                continue;
            }
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let has_etc = fs
            .stat_resolved(b"/etc")
            .is_ok_and(|m| m.kind == FileKind::Dir);
        if !has_etc {
            continue;
        }
        let score = ROOT_MARKS
            .iter()
            .filter(|m| fs.stat_resolved(m).is_ok())
            .count();
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, vol.partition.number, fs));
        }
    }
    if let Some((_, n, fs)) = best {
        return Ok((n, fs));
    }
    if !incompatible.is_empty() {
        return Err(CollectError::NeedsGuestfs {
            image: disk.path.clone(),
            found: incompatible.join(", "),
        });
    }
    if let Some(e) = last_err {
        return Err(e.into());
    }
    let found: Vec<String> = disk
        .volumes
        .iter()
        .map(coldpatch_disk::Volume::label)
        .collect();
    let found = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    };
    if disk.volumes.iter().any(|v| v.kind.needs_guestfs()) {
        return Err(CollectError::NeedsGuestfs {
            image: disk.path.clone(),
            found,
        });
    }
    Err(CollectError::NoRoot {
        image: disk.path.clone(),
        found,
    })
}
