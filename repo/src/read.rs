//! The readers: walking a repository, .deb control data, .rpm headers, Packages
//! indices.

use std::io::Read;
use std::path::{Path, PathBuf};

use coldpatch_collector::analyzers::dpkg::relations as list;
use coldpatch_collector::PackageKind;

use crate::{
    unreadable, Rejected, RepoError, RepoIndex, RepoPackage, MAX_DEPTH, MAX_FILES, MAX_INDEX_BYTES,
    MAX_PACKAGE_BYTES,
};

/// Reads a repository directory.
pub fn index(root: &Path) -> Result<RepoIndex, RepoError> {
    let root = root
        .canonicalize()
        .map_err(|e| unreadable(root, e.to_string()))?;
    if !root.is_dir() {
        return Err(unreadable(&root, "not a directory"));
    }
    let (files, indices) = walk(&root)?;
    let mut out = RepoIndex {
        root: root.display().to_string(),
        ..RepoIndex::default()
    };
    // Index stanzas first, by file name, so package files can be checked against them.
    let mut listed: Vec<RepoPackage> = Vec::new();
    for idx in &indices {
        out.indices += 1;
        match read_index(&root, idx) {
            Ok((pkgs, rejected)) => {
                listed.extend(pkgs);
                out.rejected.extend(rejected);
            }
            Err(e) => out.rejected.push(Rejected {
                place: rel(&root, idx),
                reason: e.to_string(),
            }),
        }
    }
    for f in &files {
        let relpath = rel(&root, f);
        let read = if relpath.ends_with(".deb") {
            read_deb(f)
        } else if relpath.ends_with(".apk") {
            read_apk(f)
        } else {
            read_rpm(f)
        };
        let mut p = match read {
            Ok(p) => p,
            Err(reason) => {
                out.rejected.push(Rejected {
                    place: relpath,
                    reason,
                });
                continue;
            }
        };
        p.file = Some(relpath.clone());
        if let Some(pos) = listed
            .iter()
            .position(|l| l.file.as_deref() == Some(&relpath))
        {
            let mut l = listed.swap_remove(pos);
            if l.size != p.size
                || l.sha256 != p.sha256
                || l.name != p.name
                || l.version != p.version
            {
                out.rejected.push(Rejected {
                    place: relpath,
                    reason: format!(
                        "differs from its entry in {} (name, version, size or SHA-256)",
                        l.index.as_deref().unwrap_or("the index")
                    ),
                });
                // The archive's entry stays known, with no usable file here.
                l.file = None;
                out.packages.push(l);
                continue;
            }
            p.index = l.index;
        }
        out.packages.push(p);
    }
    // Listed in an index, file not here: known, not installable from this directory.
    for mut l in listed {
        l.file = None;
        out.packages.push(l);
    }
    out.packages.sort_by(|a, b| {
        (&a.name, &a.arch, &a.version, &a.file).cmp(&(&b.name, &b.arch, &b.version, &b.file))
    });
    Ok(out)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Package files and index files under the root. Symlinks are not followed.
fn walk(root: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), RepoError> {
    let (mut files, mut indices) = (Vec::new(), Vec::new());
    let entries = walkdir::WalkDir::new(root)
        .min_depth(1)
        .max_depth(MAX_DEPTH + 1)
        .follow_links(false)
        .sort_by_file_name();
    for (seen, e) in entries.into_iter().enumerate() {
        let e = e.map_err(|e| {
            let place = e.path().unwrap_or(root).to_path_buf();
            unreadable(&place, e.to_string())
        })?;
        if seen >= MAX_FILES {
            return Err(unreadable(root, format!("more than {MAX_FILES} files")));
        }
        let ft = e.file_type();
        let name = e.file_name().to_string_lossy();
        if ft.is_dir() {
            if e.depth() > MAX_DEPTH {
                return Err(unreadable(
                    e.path(),
                    format!("nested deeper than {MAX_DEPTH}"),
                ));
            }
        } else if ft.is_file() {
            if name.ends_with(".deb")
                || name.ends_with(".apk")
                || name.ends_with(".rpm") && !name.ends_with(".src.rpm")
            {
                files.push(e.into_path());
            } else if matches!(&*name, "Packages" | "Packages.gz" | "Packages.xz") {
                indices.push(e.into_path());
            }
        }
    }
    // One index per directory: the uncompressed one when several forms are there.
    indices.sort();
    indices.dedup_by(|b, a| a.parent() == b.parent());
    files.sort();
    Ok((files, indices))
}

fn sha256_of(path: &Path) -> Result<(u64, String), String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let (hex, n) = coldpatch_disk::hash::sha256_reader(f, &mut buf, Some(MAX_PACKAGE_BYTES))
        .map_err(|e| e.to_string())?;
    Ok((n, hex))
}

/// A deb package from its control paragraph (a .deb's control file or an index stanza).
fn deb_from(c: &debian_packaging::control::ControlParagraph<'_>) -> Result<RepoPackage, String> {
    let need = |f: &str| {
        c.field_str(f)
            .map(str::to_string)
            .ok_or_else(|| format!("no {f} field"))
    };
    let name = need("Package")?;
    let version = need("Version")?;
    if !coldpatch_vuln::version::dpkg_valid(&version) {
        return Err(format!("{name}: invalid version {version:?}"));
    }
    let arch = need("Architecture")?;
    // Source: name, or name (version) when it differs from the binary's.
    let (source_name, source_version) = match c.field_str("Source") {
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (
                n.trim().to_string(),
                v.trim_end_matches(')').trim().to_string(),
            ),
            None => (s.trim().to_string(), version.clone()),
        },
        None => (name.clone(), version.clone()),
    };
    Ok(RepoPackage {
        kind: PackageKind::Deb,
        depends: list(c.field_str("Depends")),
        pre_depends: list(c.field_str("Pre-Depends")),
        provides: list(c.field_str("Provides")),
        conflicts: list(c.field_str("Conflicts")),
        breaks: list(c.field_str("Breaks")),
        install_if: Vec::new(),
        name,
        version,
        arch,
        source_name,
        source_version,
        file: None,
        size: 0,
        sha256: None,
        index: None,
    })
}

/// An apk v2 package from its `.PKGINFO` (`coldpatch-apk`). `depend` atoms starting
/// with `!` are conflicts; the package's identity (`Q1…`, the SHA-1 of its control
/// member) is kept as its index stanza needs it.
fn read_apk(path: &Path) -> Result<RepoPackage, String> {
    let (size, sha) = sha256_of(path)?;
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PACKAGE_BYTES).read_to_end(&mut data))
        .map_err(|e| e.to_string())?;
    let info = coldpatch_apk::pkg::read(&data).map_err(|e| format!("not a readable .apk: {e}"))?;
    let get = |k: &str| info.get(k).unwrap_or_default().to_string();
    let name = get("pkgname");
    let version = get("pkgver");
    if !coldpatch_vuln::version::apk_valid(&version) {
        return Err(format!("{name}: invalid version {version:?}"));
    }
    let atoms = |k: &str| -> Vec<String> {
        info.all(k)
            .into_iter()
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect()
    };
    let (conflicts, depends): (Vec<String>, Vec<String>) = atoms("depend")
        .into_iter()
        .partition(|d| d.starts_with('!'));
    Ok(RepoPackage {
        kind: PackageKind::Apk,
        source_name: info.get("origin").unwrap_or(&name).to_string(),
        source_version: version.clone(),
        arch: get("arch"),
        depends,
        pre_depends: Vec::new(),
        provides: atoms("provides"),
        conflicts: conflicts
            .into_iter()
            .map(|c| c.trim_start_matches('!').to_string())
            .collect(),
        breaks: Vec::new(),
        install_if: atoms("install_if"),
        name,
        version,
        file: None,
        size,
        sha256: Some(sha),
        index: None,
    })
}

fn read_deb(path: &Path) -> Result<RepoPackage, String> {
    let (size, sha) = sha256_of(path)?;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let control = debian_packaging::deb::reader::resolve_control_file(std::io::BufReader::new(f))
        .map_err(|e| format!("not a readable .deb: {e}"))?;
    let mut p = deb_from(&control)?;
    p.size = size;
    p.sha256 = Some(sha);
    Ok(p)
}

fn rpm_relation(d: &rpm::Dependency) -> Option<String> {
    if d.name.starts_with("rpmlib(") {
        return None;
    }
    let f = d.flags;
    let op = match (
        f.contains(rpm::DependencyFlags::LESS),
        f.contains(rpm::DependencyFlags::GREATER),
        f.contains(rpm::DependencyFlags::EQUAL),
    ) {
        (true, false, false) => "<",
        (true, false, true) => "<=",
        (false, true, false) => ">",
        (false, true, true) => ">=",
        (false, false, true) => "=",
        _ => "",
    };
    Some(if op.is_empty() || d.version.is_empty() {
        d.name.clone()
    } else {
        format!("{} {op} {}", d.name, d.version)
    })
}

fn read_rpm(path: &Path) -> Result<RepoPackage, String> {
    let (size, sha) = sha256_of(path)?;
    let m = rpm::PackageMetadata::open(path).map_err(|e| format!("not a readable .rpm: {e}"))?;
    let s = |r: Result<&str, rpm::Error>| r.map(str::to_string).map_err(|e| e.to_string());
    let name = s(m.get_name())?;
    let (v, r) = (s(m.get_version())?, s(m.get_release())?);
    let version = match m.get_epoch() {
        Ok(e) if e > 0 => format!("{e}:{v}-{r}"),
        _ => format!("{v}-{r}"),
    };
    let (source_name, source_version) = m
        .get_source_rpm()
        .ok()
        .and_then(coldpatch_collector::analyzers::rpm::split_sourcerpm)
        .unwrap_or_else(|| (name.clone(), format!("{v}-{r}")));
    let rel = |d: Result<Vec<rpm::Dependency>, rpm::Error>| -> Vec<String> {
        d.unwrap_or_default()
            .iter()
            .filter_map(rpm_relation)
            .collect()
    };
    Ok(RepoPackage {
        kind: PackageKind::Rpm,
        arch: s(m.get_arch())?,
        depends: rel(m.get_requires()),
        pre_depends: Vec::new(),
        provides: rel(m.get_provides()),
        conflicts: rel(m.get_conflicts()),
        breaks: Vec::new(),
        install_if: Vec::new(),
        name,
        version,
        source_name,
        source_version,
        file: None,
        size,
        sha256: Some(sha),
        index: None,
    })
}

fn read_index(root: &Path, path: &Path) -> Result<(Vec<RepoPackage>, Vec<Rejected>), RepoError> {
    let f = std::fs::File::open(path).map_err(|e| unreadable(path, e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if name.ends_with(".xz") {
        return Err(unreadable(
            path,
            "xz indices are not read; give Packages or Packages.gz",
        ));
    } else {
        Box::new(f)
    };
    let mut text = String::new();
    reader
        .take(MAX_INDEX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(path, e.to_string()))?;
    if text.len() as u64 > MAX_INDEX_BYTES {
        return Err(unreadable(
            path,
            format!("larger than the {MAX_INDEX_BYTES}-byte limit"),
        ));
    }
    let index_rel = rel(root, path);
    let (mut pkgs, mut rejected) = (Vec::new(), Vec::new());
    let reader = debian_packaging::control::ControlParagraphReader::new(std::io::Cursor::new(text));
    for (i, para) in reader.enumerate() {
        let para = match para {
            Ok(p) => p,
            Err(e) => {
                rejected.push(Rejected {
                    place: format!("{index_rel}: stanza {}", i + 1),
                    reason: e.to_string(),
                });
                // The reader cannot resynchronise after a syntax error.
                break;
            }
        };
        let mut p = match deb_from(&para) {
            Ok(p) => p,
            Err(reason) => {
                rejected.push(Rejected {
                    place: format!("{index_rel}: stanza {}", i + 1),
                    reason,
                });
                continue;
            }
        };
        p.size = para
            .field_str("Size")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        p.sha256 = para
            .field_str("SHA256")
            .map(|s| s.trim().to_ascii_lowercase());
        // Filename is relative to the archive root, which is where dists/ is.
        let base = path
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "dists"))
            .and_then(Path::parent)
            .unwrap_or(root);
        p.file = para.field_str("Filename").map(|f| {
            let full = base.join(f.trim());
            rel(root, &full)
        });
        p.index = Some(index_rel.clone());
        pkgs.push(p);
    }
    Ok((pkgs, rejected))
}
