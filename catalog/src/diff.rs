//! What changed between two image versions (two images, or two versions of one), from
//! their stored inventories alone: packages added, removed or at another version, and
//! files added, removed or changed in type, content (SHA-256), size, mode, owner or link
//! target. Like `virt-diff --checksum`, without opening either image.
//!
//! Times are not compared unless asked for (a package upgrade touches mtimes of files it
//! rewrites with the same bytes), and never on directories, whose times only say that
//! their entries changed (those are listed themselves); as in virt-diff, a directory's
//! size does count.

use std::collections::BTreeMap;

use coldpatch_collector::{FileRecord, FileType, Package};
use serde::Serialize;

use crate::error::{CatalogError, Result};
use crate::store::Catalog;

/// One side of a diff: an image, at its current version or at a named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side<'a> {
    pub image: &'a str,
    pub version: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Count a changed modification or inode change time as a change (as virt-diff does;
    /// a file replaced by the same bytes with the same mtime changes only its ctime).
    pub times: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffSideInfo {
    pub image: String,
    pub version: u32,
    pub scan: u64,
    pub check: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    pub arch: String,
    pub change: Change,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    /// For a changed file: which of type, content, size, mode, owner, target, mtime, ctime.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    pub from: Option<FileRecord>,
    pub to: Option<FileRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub a: DiffSideInfo,
    pub b: DiffSideInfo,
    pub packages: Vec<PackageChange>,
    /// `None` when either side was collected without its file list.
    pub files: Option<Vec<FileChange>>,
}

pub fn packages(a: &[Package], b: &[Package]) -> Vec<PackageChange> {
    let index = |ps: &[Package]| -> BTreeMap<(String, String), String> {
        ps.iter()
            .map(|p| ((p.name.clone(), p.arch.clone()), p.full_version()))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    let mut out = Vec::new();
    for ((name, arch), va) in &ia {
        match ib.get(&(name.clone(), arch.clone())) {
            None => out.push(PackageChange {
                name: name.clone(),
                arch: arch.clone(),
                change: Change::Removed,
                from: Some(va.clone()),
                to: None,
            }),
            Some(vb) if vb != va => out.push(PackageChange {
                name: name.clone(),
                arch: arch.clone(),
                change: Change::Changed,
                from: Some(va.clone()),
                to: Some(vb.clone()),
            }),
            Some(_) => {}
        }
    }
    for ((name, arch), vb) in &ib {
        if !ia.contains_key(&(name.clone(), arch.clone())) {
            out.push(PackageChange {
                name: name.clone(),
                arch: arch.clone(),
                change: Change::Added,
                from: None,
                to: Some(vb.clone()),
            });
        }
    }
    out.sort_by(|x, y| (&x.name, &x.arch).cmp(&(&y.name, &y.arch)));
    out
}

/// Which fields differ between two records of the same path.
fn changed_fields(a: &FileRecord, b: &FileRecord, opts: DiffOptions) -> Vec<&'static str> {
    let mut f = Vec::new();
    if a.kind != b.kind {
        f.push("type");
    }
    let dir = a.kind == FileType::Dir && b.kind == FileType::Dir;
    match (&a.sha256, &b.sha256) {
        (Some(x), Some(y)) if x != y => f.push("content"),
        _ => {}
    }
    if a.size != b.size {
        f.push("size");
    }
    if a.mode != b.mode {
        f.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        f.push("owner");
    }
    if a.target != b.target {
        f.push("target");
    }
    if opts.times && !dir && a.mtime != b.mtime {
        f.push("mtime");
    }
    if opts.times && !dir && a.ctime.is_some() && b.ctime.is_some() && a.ctime != b.ctime {
        f.push("ctime");
    }
    f
}

pub fn files(a: &[FileRecord], b: &[FileRecord], opts: DiffOptions) -> Vec<FileChange> {
    let ia: BTreeMap<&str, &FileRecord> = a.iter().map(|f| (f.path.as_str(), f)).collect();
    let ib: BTreeMap<&str, &FileRecord> = b.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut out = Vec::new();
    for (path, fa) in &ia {
        match ib.get(path) {
            None => out.push(FileChange {
                path: (*path).to_string(),
                change: Change::Removed,
                fields: Vec::new(),
                from: Some((*fa).clone()),
                to: None,
            }),
            Some(fb) => {
                let fields = changed_fields(fa, fb, opts);
                if !fields.is_empty() {
                    out.push(FileChange {
                        path: (*path).to_string(),
                        change: Change::Changed,
                        fields,
                        from: Some((*fa).clone()),
                        to: Some((*fb).clone()),
                    });
                }
            }
        }
    }
    for (path, fb) in &ib {
        if !ia.contains_key(path) {
            out.push(FileChange {
                path: (*path).to_string(),
                change: Change::Added,
                fields: Vec::new(),
                from: None,
                to: Some((*fb).clone()),
            });
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

impl Catalog {
    /// The stored scan of one side, with its description.
    fn side(&self, s: &Side<'_>) -> Result<DiffSideInfo> {
        let img = self.image(s.image)?;
        let number = s.version.unwrap_or(img.current_version);
        let v = self
            .versions_of(&img)?
            .into_iter()
            .find(|v| v.number == number)
            .ok_or_else(|| CatalogError::NoVersion {
                image: img.path.clone(),
                version: number,
            })?;
        let scan = v
            .scan
            .ok_or_else(|| CatalogError::NotCollected(format!("{}@v{number}", img.path)))?;
        Ok(DiffSideInfo {
            image: img.path,
            version: number,
            scan,
            check: v.check,
        })
    }

    pub fn diff(&self, a: &Side<'_>, b: &Side<'_>, opts: DiffOptions) -> Result<Diff> {
        let (a, b) = (self.side(a)?, self.side(b)?);
        let with_files = self.scan(a.scan)?.options.files && self.scan(b.scan)?.options.files;
        let (ia, ib) = (
            self.inventory(a.scan, with_files)?,
            self.inventory(b.scan, with_files)?,
        );
        Ok(Diff {
            packages: packages(&ia.packages, &ib.packages),
            files: with_files.then(|| files(&ia.files, &ib.files, opts)),
            a,
            b,
        })
    }
}
