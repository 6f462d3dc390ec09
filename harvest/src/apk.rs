//! apk packages rebuilt from the image read natively: the installed database's entry
//! gives `.PKGINFO` (its fields under their `.PKGINFO` names) and the paths; the
//! scripts come byte for byte from `lib/apk/db/scripts.tar.gz` (named
//! `<name>-<version>.X1<identity>.<script>`), the trigger paths from `lib/apk/db/triggers`.
//! Every file's content is checked against the scan's SHA-256 and apk's own SHA-1 (`Z:`),
//! every owner and mode against the entry's. The package is signed with the catalog's key
//! (`Catalog::signing_key`); `.PKGINFO` carries the origin as a comment line, which apk
//! skips. The format is `coldpatch-apk`'s.

use std::io::Read;
use std::path::{Path, PathBuf};

use coldpatch_apk::pkg::{Builder, Data, DataEntry};
use coldpatch_apk::{Database, Entry, Key};
use coldpatch_collector::{FileType, Inventory};
use coldpatch_disk::GuestFs;

use crate::tree::Tree;
use crate::{read, HarvestError, Harvested, Options, Origin, Refused};

const DBS: &[&str] = &["/lib/apk/db", "/usr/lib/apk/db"];
/// Largest database, scripts archive and triggers file read.
const MAX_DB: u64 = 256 << 20;
/// Largest file put into a package.
const MAX_CONTENT: u64 = 1 << 30;

/// `.PKGINFO` names of the installed database's single fields, in abuild's order.
const SINGLE: &[(char, &str)] = &[
    ('P', "pkgname"),
    ('V', "pkgver"),
    ('T', "pkgdesc"),
    ('U', "url"),
    ('t', "builddate"),
    ('I', "size"),
    ('A', "arch"),
    ('o', "origin"),
    ('c', "commit"),
    ('m', "maintainer"),
    ('L', "license"),
    ('k', "provider_priority"),
    ('q', "replaces_priority"),
];
/// And its lists, one `.PKGINFO` line per atom.
const LISTS: &[(char, &str)] = &[
    ('r', "replaces"),
    ('i', "install_if"),
    ('D', "depend"),
    ('p', "provides"),
];

/// The scripts archive: (entry name, content).
fn scripts(
    fs: &mut dyn GuestFs,
    tree: &Tree<'_>,
    db: &str,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let (path, gz) = [
        (format!("{db}/scripts.tar.gz"), true),
        (format!("{db}/scripts.tar"), false),
    ]
    .into_iter()
    .find(|(p, _)| tree.get(p).is_some_and(|f| f.kind == FileType::File))
    .unwrap_or_default();
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = read(fs, &path, MAX_DB)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(bytes.as_slice()).take(MAX_DB))
    } else {
        Box::new(bytes.as_slice())
    };
    let mut out = Vec::new();
    let mut a = tar::Archive::new(reader);
    for e in a.entries().map_err(|e| format!("{path}: {e}"))? {
        let mut e = e.map_err(|e| format!("{path}: {e}"))?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut v = Vec::new();
        (&mut e)
            .take(MAX_DB)
            .read_to_end(&mut v)
            .map_err(|e| format!("{path}: {e}"))?;
        out.push((name, v));
    }
    Ok(out)
}

pub(crate) fn harvest(
    fs: &mut dyn GuestFs,
    inv: &Inventory,
    opts: &Options,
    origin: &Origin,
    key: &Key,
    out: &Path,
) -> Result<(Vec<Harvested>, Vec<Refused>), HarvestError> {
    let tree = Tree::new(&inv.files);
    let image_err = |why: String| HarvestError::Image {
        image: origin.image.clone(),
        why,
    };
    let db = DBS
        .iter()
        .find(|d| {
            tree.get(&format!("{d}/installed"))
                .is_some_and(|f| f.kind == FileType::File)
        })
        .ok_or_else(|| image_err("has no apk database (lib/apk/db/installed)".into()))?;
    let text = read(fs, &format!("{db}/installed"), MAX_DB).map_err(image_err)?;
    let installed = Database::parse(&String::from_utf8_lossy(&text))
        .map_err(|e| image_err(format!("{db}/installed: {e}")))?;
    let scripts = scripts(fs, &tree, db).map_err(image_err)?;
    let triggers = match tree.get(&format!("{db}/triggers")) {
        Some(f) if f.kind == FileType::File => String::from_utf8_lossy(
            &read(fs, &format!("{db}/triggers"), MAX_DB).map_err(image_err)?,
        )
        .into_owned(),
        _ => String::new(),
    };
    let mut refused = Vec::new();
    for want in &opts.packages {
        if !installed.entries.iter().any(|e| e.name() == want) {
            refused.push(Refused {
                package: want.clone(),
                reasons: vec!["not installed in this version".into()],
            });
        }
    }
    let origin_json = serde_json::to_string(origin).unwrap_or_default();
    let mut harvested = Vec::new();
    for e in installed
        .entries
        .iter()
        .filter(|e| opts.packages.is_empty() || opts.packages.iter().any(|w| w == e.name()))
    {
        match build(fs, &tree, e, &scripts, &triggers, &origin_json, key, out)? {
            Ok(h) if h.modified.is_empty() || opts.allow_modified => harvested.push(h),
            Ok(h) => {
                let _ = std::fs::remove_file(out.join(&h.file));
                refused.push(Refused {
                    package: h.package,
                    reasons: h.modified,
                });
            }
            Err(reasons) => refused.push(Refused {
                package: e.name().to_string(),
                reasons,
            }),
        }
    }
    Ok((harvested, refused))
}

/// The `.PKGINFO` fields of an installed entry (and its triggers).
fn fields(e: &Entry, triggers: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SINGLE
        .iter()
        .filter_map(|(k, n)| e.get(*k).map(|v| (n.to_string(), v.to_string())))
        .collect();
    for (k, n) in LISTS {
        out.extend(
            e.atoms(*k)
                .into_iter()
                .map(|a| (n.to_string(), a.to_string())),
        );
    }
    if let Some(c) = e.get('C') {
        if let Some(paths) = triggers
            .lines()
            .find_map(|l| l.strip_prefix(c).and_then(|r| r.strip_prefix(' ')))
        {
            out.push(("triggers".into(), paths.to_string()));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn build(
    fs: &mut dyn GuestFs,
    tree: &Tree<'_>,
    e: &Entry,
    scripts: &[(String, Vec<u8>)],
    triggers: &str,
    origin_json: &str,
    key: &Key,
    out: &Path,
) -> Result<Result<Harvested, Vec<String>>, HarvestError> {
    let mut b = Builder::new();
    let mut modified = Vec::new();
    let mut entries = 0;
    for p in &e.paths {
        let path = format!("/{}", p.path);
        let Some(real) = tree.resolve(&path, false) else {
            modified.push(format!("{path}: its symlinks loop"));
            continue;
        };
        let Some(mut rec) = tree.get(&real) else {
            modified.push(format!("{path} is missing"));
            continue;
        };
        if p.dir && rec.kind == FileType::Symlink {
            match tree.resolve(&path, true).and_then(|q| tree.get(&q)) {
                Some(d) if d.kind == FileType::Dir => rec = d,
                _ => {
                    modified.push(format!("{path} is not a directory"));
                    continue;
                }
            }
        }
        if (rec.uid, rec.gid, rec.mode & 0o7777) != (p.uid, p.gid, p.mode)
            && rec.kind != FileType::Symlink
        {
            modified.push(format!(
                "{path} is {}:{}:{:o}, apk recorded {}:{}:{:o}",
                rec.uid,
                rec.gid,
                rec.mode & 0o7777,
                p.uid,
                p.gid,
                p.mode
            ));
        }
        let entry = |data| DataEntry {
            path: &p.path,
            uid: rec.uid,
            gid: rec.gid,
            mode: rec.mode,
            mtime: u64::try_from(rec.mtime).unwrap_or(0),
            data,
        };
        let io = |err: coldpatch_apk::ApkError| HarvestError::Image {
            image: path.clone(),
            why: err.to_string(),
        };
        let sum = match (p.dir, rec.kind) {
            (true, FileType::Dir) => b.add(entry(Data::Dir)).map_err(io)?,
            (false, FileType::Symlink) => {
                let target = rec.target.clone().unwrap_or_default();
                b.add(entry(Data::Symlink(&target))).map_err(io)?
            }
            (false, FileType::File) => {
                let content = match read(fs, &real, MAX_CONTENT) {
                    Ok(c) => c,
                    Err(why) => return Ok(Err(vec![why])),
                };
                let sha = coldpatch_disk::hash::sha256_bytes(&content);
                if rec.sha256.as_deref() != Some(sha.as_str()) {
                    return Ok(Err(vec![format!(
                        "{path} read back with SHA-256 {sha}, but the scan recorded {}",
                        rec.sha256.as_deref().unwrap_or("none")
                    )]));
                }
                let mut r = content.as_slice();
                b.add(entry(Data::File(&mut r, content.len() as u64)))
                    .map_err(io)?
            }
            (dir, kind) => {
                modified.push(format!(
                    "{path} is a {kind:?} in the image, apk recorded a {}",
                    if dir { "directory" } else { "file" }
                ));
                continue;
            }
        };
        if let (Some(have), Some(want)) = (sum, p.sha1.as_deref()) {
            if have.as_slice() != want {
                modified.push(format!(
                    "{path} differs from apk's checksum (changed since it was installed)"
                ));
            }
        }
        entries += 1;
    }
    let ident = e.identity_hex().unwrap_or_default();
    let prefix = format!("{}-{}.X1{ident}.", e.name(), e.version());
    let mine: Vec<(String, Vec<u8>)> = scripts
        .iter()
        .filter_map(|(n, v)| {
            n.strip_prefix(&prefix)
                .map(|s| (format!(".{s}"), v.clone()))
        })
        .collect();
    let built = b
        .finish(
            &fields(e, triggers),
            &mine,
            key,
            &format!("coldpatch-origin = {origin_json}"),
        )
        .map_err(|err| HarvestError::Image {
            image: e.name().to_string(),
            why: err.to_string(),
        })?;
    let name = format!("{}-{}.apk", e.name(), e.version());
    let file = out.join(&name);
    std::fs::write(&file, &built.bytes).map_err(|err| HarvestError::io(&file, err))?;
    Ok(Ok(Harvested {
        package: e.name().to_string(),
        version: e.version().to_string(),
        arch: e.get('A').unwrap_or_default().to_string(),
        file: PathBuf::from(name),
        sha256: coldpatch_disk::hash::sha256_bytes(&built.bytes),
        entries,
        modified,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkginfo_fields_come_from_the_entry_and_its_triggers() {
        let db = Database::parse(
            "C:Q1VFqm8pEgmviZMrdh2eQiwneFlsw=\nP:ca\nV:1-r0\nA:x86_64\no:ca\nD:so:libc.musl-x86_64.so.1 !old\np:cmd:ca=1-r0\n",
        )
        .expect("db");
        let f = fields(
            &db.entries[0],
            "Q1other= /x\nQ1VFqm8pEgmviZMrdh2eQiwneFlsw= /etc/ssl/certs /usr/share/ca\n",
        );
        let get = |k: &str| -> Vec<&str> {
            f.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("pkgname"), ["ca"]);
        assert_eq!(get("depend"), ["so:libc.musl-x86_64.so.1", "!old"]);
        assert_eq!(get("provides"), ["cmd:ca=1-r0"]);
        assert_eq!(get("triggers"), ["/etc/ssl/certs /usr/share/ca"]);
    }
}
