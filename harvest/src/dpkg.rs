//! dpkg packages rebuilt as `dpkg-repack` does, from the image read natively: the status
//! stanza less the fields only the status file has is the control file; dpkg's info
//! directory gives the file list, md5sums, conffiles and maintainer scripts (byte for
//! byte); each listed path is read from the image, symlinks on the way resolved inside the
//! guest (`tree.rs`: `/lib` is `usr/lib` in a merged-/usr image, and the package keeps the
//! path it was built with).
//!
//! The package file is a `.deb` (`debian-binary`, `control.tar.gz`, `data.tar.gz`) with a
//! fourth member, `_coldpatch.json` (the origin: image, version, check value), which dpkg
//! ignores (deb(5): members after `data.tar` are ignored). The archives are written with
//! the `tar` and `ar` crates; `debian-packaging`'s builder is not used because it sets
//! every owner to root and takes no directory entries.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use coldpatch_collector::analyzers::dpkg::is_installed;
use coldpatch_collector::{FileType, Inventory};
use coldpatch_disk::GuestFs;
use md5::Digest as _;

use crate::tree::Tree;
use crate::{read, HarvestError, Harvested, Options, Origin, Refused};

const STATUS: &str = "/var/lib/dpkg/status";
/// The `.deb` member that says where the package came from (ar names hold 16 bytes).
pub const ORIGIN: &str = "_coldpatch.json";
const INFO: &str = "/var/lib/dpkg/info";
/// Fields only dpkg's status file holds.
const STATUS_ONLY: &[&str] = &["Status", "Config-Version", "Conffiles"];
/// Control members dpkg keeps in its info directory: scripts (mode 0755), then the others.
const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
const OTHERS: &[&str] = &["templates", "triggers", "shlibs", "symbols"];
/// Largest status file and info file read.
const MAX_STATUS: u64 = 256 << 20;
const MAX_INFO: u64 = 64 << 20;

/// One stanza of the status file, as its lines.
struct Stanza<'a> {
    lines: Vec<&'a str>,
}

impl Stanza<'_> {
    /// A field's value: its first line's text, then each continuation line on its own
    /// line (as written, leading space kept).
    fn field(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for l in &self.lines {
            if l.starts_with([' ', '\t']) {
                if let Some(o) = out.as_mut() {
                    o.push('\n');
                    o.push_str(l);
                }
                continue;
            }
            if out.is_some() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    out = Some(v.trim().to_string());
                }
            }
        }
        out
    }

    /// The control file: every field but those only the status file has.
    fn control(&self) -> String {
        let mut out = String::new();
        let mut keep = true;
        for l in &self.lines {
            if !l.starts_with([' ', '\t']) {
                let k = l.split_once(':').map_or(*l, |(k, _)| k);
                keep = !STATUS_ONLY.iter().any(|s| s.eq_ignore_ascii_case(k));
            }
            if keep {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn stanzas(text: &str) -> Vec<Stanza<'_>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for l in text.lines() {
        if l.trim().is_empty() {
            if !cur.is_empty() {
                out.push(Stanza {
                    lines: std::mem::take(&mut cur),
                });
            }
        } else {
            cur.push(l);
        }
    }
    if !cur.is_empty() {
        out.push(Stanza { lines: cur });
    }
    out
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: sha2::Sha256,
    md5: md5::Md5,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.sha, &buf[..n]);
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

fn header(
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    kind: tar::EntryType,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    if uid == 0 {
        let _ = h.set_username("root");
    }
    if gid == 0 {
        let _ = h.set_groupname("root");
    }
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(size);
    h
}

/// The data archive's header for an entry as the image has it (a size only for a file).
fn entry_header(rec: &coldpatch_collector::FileRecord, kind: tar::EntryType) -> tar::Header {
    let size = if kind == tar::EntryType::Regular {
        rec.size
    } else {
        0
    };
    header(rec.mode, rec.uid, rec.gid, rec.mtime, size, kind)
}

/// A tar.gz being written to a file.
type TarGz = tar::Builder<flate2::write::GzEncoder<std::fs::File>>;

fn targz(path: &Path) -> Result<TarGz, HarvestError> {
    let f = std::fs::File::create(path).map_err(|e| HarvestError::io(path, e))?;
    Ok(tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::default(),
    )))
}

fn finish(b: TarGz, path: &Path) -> Result<(), HarvestError> {
    b.into_inner()
        .and_then(flate2::write::GzEncoder::finish)
        .map(drop)
        .map_err(|e| HarvestError::io(path, e))
}

/// What one package needs, read from the image.
struct Listing {
    name: String,
    version: String,
    arch: String,
    control: String,
    /// Paths as dpkg lists them.
    list: Vec<String>,
    md5sums: Option<Vec<u8>>,
    /// Conffile -> the md5 dpkg recorded for it (obsolete ones left out).
    conffiles: BTreeMap<String, String>,
    /// Control members from the info directory: (name, content, mode).
    members: Vec<(&'static str, Vec<u8>, u32)>,
}

fn listing(fs: &mut dyn GuestFs, tree: &Tree<'_>, st: &Stanza<'_>) -> Result<Listing, Vec<String>> {
    let name = st.field("Package").unwrap_or_default();
    let version = st.field("Version").unwrap_or_default();
    let arch = st.field("Architecture").unwrap_or_default();
    let info = |ext: &str| -> Option<String> {
        [
            format!("{INFO}/{name}:{arch}.{ext}"),
            format!("{INFO}/{name}.{ext}"),
        ]
        .into_iter()
        .find(|p| tree.get(p).is_some_and(|f| f.kind == FileType::File))
    };
    let mut wrong = Vec::new();
    let mut get = |ext: &str| -> Option<Vec<u8>> {
        let p = info(ext)?;
        read(fs, &p, MAX_INFO).map_err(|e| wrong.push(e)).ok()
    };
    let list = match get("list") {
        Some(l) => String::from_utf8_lossy(&l)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => {
            return Err(vec![format!("dpkg's file list of {name} is not in {INFO}")]);
        }
    };
    let md5sums = get("md5sums");
    let mut members = Vec::new();
    for s in SCRIPTS {
        if let Some(b) = get(s) {
            members.push((*s, b, 0o755));
        }
    }
    for s in OTHERS {
        if let Some(b) = get(s) {
            members.push((*s, b, 0o644));
        }
    }
    let conffiles = st
        .field("Conffiles")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [p, md5] => Some((p.to_string(), md5.to_string())),
                _ => None,
            }
        })
        .collect();
    if !wrong.is_empty() {
        return Err(wrong);
    }
    Ok(Listing {
        control: st.control(),
        name,
        version,
        arch,
        list,
        md5sums,
        conffiles,
        members,
    })
}

pub(crate) fn harvest(
    fs: &mut dyn GuestFs,
    inv: &Inventory,
    opts: &Options,
    origin: &Origin,
    out: &Path,
) -> Result<(Vec<Harvested>, Vec<Refused>), HarvestError> {
    let tree = Tree::new(&inv.files);
    let status = String::from_utf8_lossy(&read(fs, STATUS, MAX_STATUS).map_err(|why| {
        HarvestError::Image {
            image: origin.image.clone(),
            why,
        }
    })?)
    .into_owned();
    let all = stanzas(&status);
    let installed: Vec<&Stanza<'_>> = all
        .iter()
        .filter(|s| s.field("Status").is_some_and(|v| is_installed(&v)))
        .collect();
    let named = |s: &Stanza<'_>, want: &str| {
        let (n, a) = (s.field("Package"), s.field("Architecture"));
        match want.split_once(':') {
            Some((wn, wa)) => n.as_deref() == Some(wn) && a.as_deref() == Some(wa),
            None => n.as_deref() == Some(want),
        }
    };
    let mut refused = Vec::new();
    let chosen: Vec<&Stanza<'_>> = if opts.packages.is_empty() {
        installed
    } else {
        for want in &opts.packages {
            if !installed.iter().any(|s| named(s, want)) {
                refused.push(Refused {
                    package: want.clone(),
                    reasons: vec!["not installed in this version".into()],
                });
            }
        }
        installed
            .into_iter()
            .filter(|s| opts.packages.iter().any(|w| named(s, w)))
            .collect()
    };
    let mut harvested = Vec::new();
    for st in chosen {
        let l = match listing(fs, &tree, st) {
            Ok(l) => l,
            Err(reasons) => {
                refused.push(Refused {
                    package: st.field("Package").unwrap_or_default(),
                    reasons,
                });
                continue;
            }
        };
        match build(fs, &tree, &l, origin, out)? {
            Ok(h) if h.modified.is_empty() || opts.allow_modified => harvested.push(h),
            Ok(h) => {
                let _ = std::fs::remove_file(out.join(&h.file));
                refused.push(Refused {
                    package: l.name.clone(),
                    reasons: h.modified,
                });
            }
            Err(reasons) => refused.push(Refused {
                package: l.name.clone(),
                reasons,
            }),
        }
    }
    Ok((harvested, refused))
}

/// The package file's name: `name_version_arch.deb`, the version without its epoch.
fn file_name(l: &Listing) -> String {
    let v = l
        .version
        .split_once(':')
        .map_or(l.version.as_str(), |(_, v)| v);
    format!("{}_{v}_{}.deb", l.name, l.arch)
}

/// Writes the package; the inner error is why it cannot be built at all.
fn build(
    fs: &mut dyn GuestFs,
    tree: &Tree<'_>,
    l: &Listing,
    origin: &Origin,
    out: &Path,
) -> Result<Result<Harvested, Vec<String>>, HarvestError> {
    let md5sums: HashMap<String, String> = l
        .md5sums
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (sum, p) = line.split_once(char::is_whitespace)?;
            Some((format!("/{}", p.trim_start()), sum.to_string()))
        })
        .collect();
    let tmp = private_dir(out)?;
    let data_path = tmp.join("data.tar.gz");
    let mut data = targz(&data_path)?;
    let mut modified = Vec::new();
    let mut entries = 0;
    let is_parent = |p: &str| {
        l.list
            .iter()
            .any(|q| q.len() > p.len() && q.starts_with(p) && q.as_bytes()[p.len()] == b'/')
    };
    for path in &l.list {
        if path == "/." {
            continue;
        }
        let rel = path.trim_start_matches('/');
        let Some(real) = tree.resolve(path, false) else {
            modified.push(format!("{path}: its symlinks loop"));
            continue;
        };
        let Some(mut rec) = tree.get(&real) else {
            modified.push(format!("{path} is missing"));
            continue;
        };
        // A directory the package made, which the image has as a symlink (merged /usr).
        if rec.kind == FileType::Symlink && is_parent(path) {
            match tree.resolve(path, true).and_then(|p| tree.get(&p)) {
                Some(d) if d.kind == FileType::Dir => rec = d,
                _ => {
                    modified.push(format!("{path} is not a directory"));
                    continue;
                }
            }
        }
        let io = |e| HarvestError::io(&data_path, e);
        match rec.kind {
            FileType::Dir => {
                let mut h = entry_header(rec, tar::EntryType::Directory);
                data.append_data(&mut h, format!("{rel}/"), std::io::empty())
                    .map_err(io)?;
            }
            FileType::Symlink => {
                let mut h = entry_header(rec, tar::EntryType::Symlink);
                data.append_link(&mut h, rel, rec.target.as_deref().unwrap_or(""))
                    .map_err(io)?;
            }
            FileType::File => {
                let reader = match fs.open(real.as_bytes()) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(vec![format!("{path}: {e}")])),
                };
                let mut hashing = Hashing {
                    inner: reader.take(rec.size),
                    sha: sha2::Sha256::default(),
                    md5: md5::Md5::default(),
                };
                let mut h = entry_header(rec, tar::EntryType::Regular);
                data.append_data(&mut h, rel, &mut hashing).map_err(io)?;
                let sha = hex::encode(sha2::Digest::finalize(hashing.sha));
                let md5 = hex::encode(hashing.md5.finalize());
                if rec.sha256.as_deref() != Some(sha.as_str()) {
                    return Ok(Err(vec![format!(
                        "{path} read back with SHA-256 {sha}, but the scan recorded {}",
                        rec.sha256.as_deref().unwrap_or("none")
                    )]));
                }
                let want = l.conffiles.get(path).or_else(|| md5sums.get(path));
                match want {
                    Some(w) if *w != md5 => modified.push(if l.conffiles.contains_key(path) {
                        format!("{path} is a conffile changed since it was installed")
                    } else {
                        format!("{path} differs from dpkg's md5sums")
                    }),
                    _ => {}
                }
            }
            FileType::Fifo => {
                let mut h = entry_header(rec, tar::EntryType::Fifo);
                data.append_data(&mut h, rel, std::io::empty())
                    .map_err(io)?;
            }
            FileType::Char | FileType::Block | FileType::Socket => {
                modified.push(format!(
                    "{path} is a device or socket, which is not harvested"
                ));
                continue;
            }
        }
        entries += 1;
    }
    finish(data, &data_path)?;

    let control_path = tmp.join("control.tar.gz");
    let mut control = targz(&control_path)?;
    let mut members: Vec<(&str, Vec<u8>, u32)> =
        vec![("control", l.control.clone().into_bytes(), 0o644)];
    if let Some(m) = &l.md5sums {
        members.push(("md5sums", m.clone(), 0o644));
    }
    if !l.conffiles.is_empty() {
        let list: String = l.conffiles.keys().map(|p| format!("{p}\n")).collect();
        members.push(("conffiles", list.into_bytes(), 0o644));
    }
    members.extend(l.members.iter().map(|(n, b, m)| (*n, b.clone(), *m)));
    for (name, bytes, mode) in &members {
        let mut h = header(*mode, 0, 0, 0, bytes.len() as u64, tar::EntryType::Regular);
        control
            .append_data(&mut h, name, bytes.as_slice())
            .map_err(|e| HarvestError::io(&control_path, e))?;
    }
    finish(control, &control_path)?;

    let name = file_name(l);
    let deb = out.join(&name);
    let origin_json = serde_json::to_vec(origin).unwrap_or_default();
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&deb)?;
        let mut ar = ar::Builder::new(std::io::BufWriter::new(file));
        let parts = [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", std::fs::read(&control_path)?),
            ("data.tar.gz", std::fs::read(&data_path)?),
            (ORIGIN, origin_json.clone()),
        ];
        for (name, bytes) in parts {
            let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            h.set_mode(0o644);
            ar.append(&h, bytes.as_slice())?;
        }
        ar.into_inner()?.flush()
    };
    write().map_err(|e| HarvestError::io(&deb, e))?;
    let _ = std::fs::remove_dir_all(&tmp);
    let sha256 = coldpatch_disk::hash::sha256_file(&deb).map_err(|e| HarvestError::io(&deb, e))?;
    Ok(Ok(Harvested {
        package: l.name.clone(),
        version: l.version.clone(),
        arch: l.arch.clone(),
        file: PathBuf::from(name),
        sha256,
        entries,
        modified,
    }))
}

/// A private working directory inside `out` (removed once the package is written).
fn private_dir(out: &Path) -> Result<PathBuf, HarvestError> {
    for i in 0..1000u32 {
        let p = out.join(format!(".harvest-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(HarvestError::io(&p, e)),
        }
    }
    Err(HarvestError::io(
        out,
        std::io::Error::other("no private working directory could be made"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_TEXT: &str = "Package: libss2\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nMulti-Arch: same\nVersion: 1.46.2-2+deb11u1\nConffiles:\n /etc/x 0123\n /etc/y 4567 obsolete\nDescription: command-line interface parsing library\n libss provides a simple command-line interface parser\n .\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";

    #[test]
    fn the_control_file_is_the_stanza_without_status_fields() {
        let all = stanzas(STATUS_TEXT);
        assert_eq!(all.len(), 2);
        let c = all[0].control();
        assert!(
            !c.contains("Status:") && !c.contains("Conffiles") && !c.contains("/etc/x"),
            "{c}"
        );
        assert!(
            c.starts_with("Package: libss2\nPriority: required\n"),
            "{c}"
        );
        assert!(c.ends_with("Description: command-line interface parsing library\n libss provides a simple command-line interface parser\n .\n more\n"), "{c}");
        assert_eq!(
            all[0].field("Conffiles").as_deref(),
            Some("\n /etc/x 0123\n /etc/y 4567 obsolete")
        );
        assert_eq!(all[1].field("Version").as_deref(), Some("1"));
        assert!(!is_installed(&all[1].field("Status").unwrap_or_default()));
    }
}
