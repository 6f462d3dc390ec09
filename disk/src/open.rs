//! Opening an image: detect the format by magic, open it, and open its backing chain with
//! the same function (depth-limited, confined to the allowed image roots).

use std::path::{Path, PathBuf};

use crate::error::{DiskError, Result};
use crate::file::{Accept, ImageFile, ReadAt, ReadCounter};
use crate::lock;
use crate::qcow2::Qcow2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// How images are opened. Parameters travel together; `Default` is the safe choice.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Backing files must resolve inside one of these directories. Empty means: the
    /// directory that holds the top image.
    pub image_roots: Vec<PathBuf>,
    /// Longest backing chain accepted (the top image counts as depth 0).
    pub max_chain_depth: usize,
    /// Open backing files at all; without, unallocated clusters read as zeros.
    pub follow_backing: bool,
    /// Read an image even while a running VM writes it.
    pub force: bool,
    /// Size of the read cache between filesystems and the image (see [`crate::cache`]).
    pub cache_bytes: usize,
    /// Accept a block device as the top image (the CLI's user named one); backing files
    /// are always regular files.
    pub block_devices: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            image_roots: Vec::new(),
            max_chain_depth: 16,
            follow_backing: true,
            force: false,
            cache_bytes: crate::cache::DEFAULT_BYTES,
            block_devices: false,
        }
    }
}

/// One file of the chain, top image first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub path: PathBuf,
    pub format: Format,
    pub file_size: u64,
}

pub struct Image {
    pub path: PathBuf,
    pub format: Format,
    pub virtual_size: u64,
    pub chain: Vec<ChainLink>,
    /// qcow2 header extensions of the top image that this crate does not interpret.
    pub extensions: Vec<(u32, Vec<u8>)>,
    pub reader: Box<dyn ReadAt>,
    pub counter: ReadCounter,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("virtual_size", &self.virtual_size)
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

/// Formats recognised only to refuse them with a useful message, in probe order.
const FOREIGN: &[(&str, &[u8], usize)] = &[
    ("vmdk", b"KDMV", 0),
    ("vmdk descriptor", b"# Disk DescriptorFile", 0),
    ("vhdx", b"vhdxfile", 0),
    ("vhd", b"conectix", 0),
    ("vdi", b"\x7f\x10\xda\xbe", 64),
    ("LUKS-encrypted", b"LUKS\xba\xbe", 0),
];

pub fn detect(head: &[u8]) -> std::result::Result<Format, &'static str> {
    if head.starts_with(crate::qcow2::header::MAGIC) {
        return Ok(Format::Qcow2);
    }
    for (name, magic, at) in FOREIGN {
        if head.get(*at..at + magic.len()) == Some(*magic) {
            return Err(name);
        }
    }
    Ok(Format::Raw)
}

/// Opens `path` read-only with its whole backing chain.
pub fn open_image(path: &Path, opts: &OpenOptions) -> Result<Image> {
    let roots = if opts.image_roots.is_empty() {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        vec![canonical(path, parent)?]
    } else {
        opts.image_roots
            .iter()
            .map(|r| canonical(path, r))
            .collect::<Result<Vec<_>>>()?
    };
    let counter = ReadCounter::default();
    let mut chain = Vec::new();
    let mut extensions = Vec::new();
    let accept = if opts.block_devices {
        Accept::RegularOrBlock
    } else {
        Accept::Regular
    };
    let file = ImageFile::open(path, counter.clone(), accept)?;
    let reader = open_layer(
        file,
        path,
        None,
        opts,
        &roots,
        &counter,
        &mut chain,
        &mut extensions,
    )?;
    Ok(Image {
        path: path.to_path_buf(),
        format: chain[0].format,
        virtual_size: reader.size(),
        chain,
        extensions,
        reader,
        counter,
    })
}

fn canonical(image: &Path, p: &Path) -> Result<PathBuf> {
    p.canonicalize().map_err(|source| DiskError::Open {
        image: image.join(p),
        source,
    })
}

#[allow(clippy::too_many_arguments)]
fn open_layer(
    file: ImageFile,
    path: &Path,
    format_hint: Option<&str>,
    opts: &OpenOptions,
    roots: &[PathBuf],
    counter: &ReadCounter,
    chain: &mut Vec<ChainLink>,
    extensions: &mut Vec<(u32, Vec<u8>)>,
) -> Result<Box<dyn ReadAt>> {
    if !opts.force {
        let held = lock::held_by_writer(file.file()).map_err(|source| DiskError::Open {
            image: path.to_path_buf(),
            source,
        })?;
        if held {
            return Err(DiskError::InUse {
                image: path.to_path_buf(),
            });
        }
    }
    let mut head = [0u8; 512];
    let n = usize::try_from(file.size().min(512)).unwrap_or(0);
    file.read_exact_at(0, &mut head[..n])?;
    let format = match format_hint {
        Some("raw") => Format::Raw,
        _ => detect(&head[..n]).map_err(|name| DiskError::Unsupported {
            image: path.to_path_buf(),
            what: format!("a {name} image"),
            hint: "convert it first: qemu-img convert -O qcow2 IMAGE OUT.qcow2",
        })?,
    };
    chain.push(ChainLink {
        path: path.to_path_buf(),
        format,
        file_size: file.size(),
    });
    match format {
        Format::Raw => Ok(Box::new(file)),
        Format::Qcow2 => {
            let mut q = Qcow2::open(Box::new(file), path)?;
            if chain.len() == 1 {
                extensions.clone_from(&q.header().other_extensions);
            }
            if let (Some(name), true) = (q.header().backing_file.clone(), opts.follow_backing) {
                let (bpath, bfile) = resolve_backing(path, &name, roots, chain, opts, counter)?;
                let fmt = q.header().backing_format.clone();
                let backing = open_layer(
                    bfile,
                    &bpath,
                    fmt.as_deref(),
                    opts,
                    roots,
                    counter,
                    chain,
                    extensions,
                )?;
                q.set_backing(backing);
            }
            Ok(Box::new(q))
        }
    }
}

/// Why a backing file is refused when it is missing, unreadable, not a regular file or
/// outside the roots: one reason for all of them, so an error (which a server shows in a
/// run's events) never tells what exists on the host outside the roots.
pub const BACKING_REFUSED: &str = "is not a regular file under the allowed image roots";

/// Finds and opens a backing file: it must resolve (symlinks followed) under one of
/// `roots`, not be in the chain already, and be a regular file on the opened descriptor.
fn resolve_backing(
    image: &Path,
    name: &str,
    roots: &[PathBuf],
    chain: &[ChainLink],
    opts: &OpenOptions,
    counter: &ReadCounter,
) -> Result<(PathBuf, ImageFile)> {
    let refuse = |reason: String| DiskError::Backing {
        image: image.to_path_buf(),
        backing: name.to_string(),
        reason,
    };
    if chain.len() > opts.max_chain_depth {
        return Err(DiskError::Limit {
            image: image.to_path_buf(),
            what: "backing chain depth".into(),
            limit: opts.max_chain_depth as u64,
        });
    }
    if name.starts_with("json:")
        || name.contains("://")
        || name
            .split(':')
            .next()
            .is_some_and(|p| ["nbd", "ssh", "iscsi", "rbd", "gluster", "file"].contains(&p))
    {
        return Err(refuse("is not a plain file name".into()));
    }
    let base = image.parent().unwrap_or(Path::new("."));
    let joined = if Path::new(name).is_absolute() {
        PathBuf::from(name)
    } else {
        base.join(name)
    };
    let real = joined
        .canonicalize()
        .ok()
        .filter(|real| roots.iter().any(|r| real.starts_with(r)))
        .ok_or_else(|| refuse(BACKING_REFUSED.into()))?;
    let seen = chain
        .iter()
        .any(|l| l.path.canonicalize().is_ok_and(|p| p == real));
    if seen {
        return Err(refuse("makes the backing chain a loop".into()));
    }
    let file = ImageFile::open(&real, counter.clone(), Accept::Regular)
        .map_err(|_| refuse(BACKING_REFUSED.into()))?;
    Ok((real, file))
}
