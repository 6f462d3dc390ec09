//! Turns a stopped VM image into an [`Inventory`]: OS, packages, kernels, files with
//! hashes, and security facts.
//!
//! Flow: [`coldpatch_disk::Disk::open`] opens the image and probes its volumes;
//! [`root::find_root`] picks the root filesystem by content; [`walk::walk`] walks it once,
//! offering each path to the [`analyzer::Analyzer`]s that declared it. A file an analyzer
//! cannot parse becomes an [`model::Unknown`]; only an unreadable image fails the scan.

pub mod analyzer;
pub mod analyzers;
pub mod error;
pub mod hashpool;
pub mod model;
pub mod root;
pub mod walk;

use std::path::Path;
use std::time::Instant;

pub use coldpatch_disk::OpenOptions;
pub use error::CollectError;
pub use model::*;

#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub open: OpenOptions,
    /// Walk every file and record it (path, type, mode, owner, size, mtime, ctime, link target),
    /// with the security facts that come from the walk. Without it, only the analyzers'
    /// declared paths are read (OS, packages, kernels, accounts).
    pub files: bool,
    /// SHA-256 of every regular file (needs `files`).
    pub hash: bool,
    /// Fall back to a libguestfs appliance when the root is on LVM, XFS or btrfs.
    pub guestfs: bool,
    /// Threads hashing file content (reading by inode over the shared image); 0 hashes on
    /// the walking thread.
    pub hash_threads: usize,
    pub limits: walk::WalkLimits,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            open: OpenOptions::default(),
            files: true,
            hash: true,
            guestfs: true,
            hash_threads: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
            limits: walk::WalkLimits::default(),
        }
    }
}

/// Names and versions of every analyzer, as stored with each scan.
/// The version of what the walk records per file; bumped when a field is added, so stored
/// scans without it are collected again (2: ctime).
pub const WALK_VERSION: u32 = 2;

pub fn analyzer_versions() -> Vec<AnalyzerInfo> {
    let mut v: Vec<AnalyzerInfo> = analyzer::all()
        .iter()
        .map(|a| AnalyzerInfo {
            name: a.name().to_string(),
            version: a.version(),
        })
        .collect();
    v.push(AnalyzerInfo {
        name: "walk".to_string(),
        version: WALK_VERSION,
    });
    v
}

/// Opens and inventories an image.
pub fn collect(path: &Path, opts: &CollectOptions) -> Result<Inventory, CollectError> {
    let disk = coldpatch_disk::Disk::open(path, &opts.open)?;
    collect_disk(&disk, opts, &mut |_, _| {})
}

/// Inventories an image already opened (the caller may have looked at its chain first).
pub fn collect_disk(
    disk: &coldpatch_disk::Disk,
    opts: &CollectOptions,
    progress: walk::Progress<'_>,
) -> Result<Inventory, CollectError> {
    let start = Instant::now();
    let path = disk.path.as_path();
    let image = ImageInfo {
        path: path.display().to_string(),
        format: disk.format.as_str().to_string(),
        virtual_size: disk.virtual_size,
        chain: disk
            .chain
            .iter()
            .map(|l| {
                (
                    l.path.display().to_string(),
                    l.format.as_str().to_string(),
                    l.file_size,
                )
            })
            .collect(),
        partition_table: format!("{:?}", disk.table).to_lowercase(),
        volumes: disk
            .volumes
            .iter()
            .map(|v| VolumeInfo {
                number: v.partition.number,
                start: v.partition.start,
                size: v.partition.size,
                fs: v.kind.as_str().to_string(),
            })
            .collect(),
        root_volume: 0,
        stamp: coldpatch_disk::qcow2::Stamp::from_extensions(&disk.extensions).map(|s| StampInfo {
            number: s.number,
            check: s.check_hex(),
        }),
    };
    let mut inv = Inventory {
        image,
        ..Default::default()
    };
    let (vol, mut fs) = root::find_root(disk, opts.guestfs)?;
    inv.image.root_volume = vol;
    let mut analyzers = analyzer::all();
    inv.analyzers = analyzer_versions();
    let wopts = walk::WalkOptions { hash: opts.hash };
    if opts.files {
        // Native ext roots hash on worker threads; libguestfs hashes inside its appliance.
        let native = disk
            .volumes
            .iter()
            .any(|v| v.partition.number == vol && v.kind == coldpatch_disk::FsKind::Ext);
        let pool = if wopts.hash && native && opts.hash_threads > 0 {
            hashpool::HashPool::start(disk, vol, opts.hash_threads)
        } else {
            None
        };
        walk::walk(
            fs.as_mut(),
            &mut analyzers,
            wopts,
            &opts.limits,
            &mut inv,
            progress,
            pool,
        );
    } else {
        walk::targeted(fs.as_mut(), &mut analyzers, &mut inv);
    }
    if let Some(e) = disk.take_error() {
        return Err(e.into());
    }
    for a in &mut analyzers {
        a.finish(&mut inv);
    }
    inv.packages.sort();
    inv.unknowns.sort();
    let s = &mut inv.security;
    for v in [
        &mut s.setuid,
        &mut s.setgid,
        &mut s.world_writable,
        &mut s.root_ssh,
        &mut s.authorized_keys,
    ] {
        v.sort();
    }
    inv.stats.bytes_read_from_image += disk.bytes_read();
    inv.stats.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(inv)
}
