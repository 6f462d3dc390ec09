//! Shipping image versions to where they run: `export` decides, from what the consumer
//! holds, what to send (nothing, the one overlay, a chain of overlays or a flattened image,
//! or a diff against a base image both sides hold) and writes it with a manifest;
//! `import` checks everything in the manifest before it writes anything, applies the
//! delta with `qemu-img rebase`, and proves the result by collecting it and comparing its
//! guest view (packages, and files with their hashes) with the digest the manifest carries.
//!
//! A file proves which version it holds by the stamp in its qcow2 header (see
//! `coldpatch_disk::qcow2::stamp`); an unstamped base (an original image, never written
//! by coldpatch) by the SHA-256 of its bytes.

use std::path::{Path, PathBuf};

use coldpatch_catalog::versions::{check_value, parse_check};
use coldpatch_catalog::{Catalog, CatalogError, ImageRecord, VersionRecord};
use coldpatch_collector::{CollectOptions, ViewDigest};
use coldpatch_disk::qcow2::{stamp, Stamp};
use coldpatch_disk::{Disk, OpenOptions};
use serde::{Deserialize, Serialize};

use crate::overlay;
use crate::PatchError;

pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "coldpatch-delta-1";
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
const MAX_FILES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The consumer already holds the version.
    None,
    /// The consumer holds the direct parent: the version's own overlay.
    Incremental,
    /// The consumer holds an older ancestor: the overlays from there on.
    Chain,
    /// A standalone flattened image.
    Full,
    /// An overlay on a base image both sides hold (another image's version).
    Against,
}

/// What the consumer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Version(u32),
    /// A check value; one this image never had means an unrelated image.
    Check(String),
    /// The current version of another image in the catalog.
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub image: String,
    pub number: u32,
    pub check: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub number: u32,
    pub check: String,
    /// The check value of the version this one was made on (`None` for version 0).
    pub parent_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The appliance id of the catalog that made the versions (hex), so check values can
    /// be recomputed from the manifest alone.
    pub appliance: String,
    pub target: VersionRef,
    /// What the delta applies to; `None` for a full image.
    pub base: Option<VersionRef>,
    /// SHA-256 of the base file's bytes, given when the base carries no stamp.
    pub base_sha256: Option<String>,
    pub strategy: Strategy,
    /// Base first, target last.
    pub files: Vec<DeltaFile>,
    /// The target's guest view, as the catalog recorded it.
    pub view: ViewDigest,
    /// The sizes the choice was made from: (what, bytes).
    pub considered: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub strategy: Strategy,
    pub target: VersionRef,
    /// The file that holds the target version now (`None`: the base already did).
    pub result: Option<PathBuf>,
    pub written: Vec<PathBuf>,
    pub view: ViewDigest,
}

fn delta_err(dir: &Path, why: impl Into<String>) -> PatchError {
    PatchError::Delta {
        dir: dir.to_path_buf(),
        why: why.into(),
    }
}

/// SHA-256 of a file's bytes, with the file named in the error.
fn sha256_of(path: &Path) -> Result<String, PatchError> {
    coldpatch_disk::hash::sha256_file(path).map_err(|e| PatchError::io(path, e))
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map_or_else(|| p.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The versions from version 0 to `t`, following parent links.
fn lineage(vs: &[VersionRecord], t: &VersionRecord) -> Vec<VersionRecord> {
    let mut out = vec![t.clone()];
    let mut at = t.parent;
    while let Some(p) = at {
        match vs.iter().find(|v| v.number == p) {
            Some(v) if out.len() <= vs.len() => {
                out.push(v.clone());
                at = v.parent;
            }
            _ => break,
        }
    }
    out.reverse();
    out
}

fn version_format(img: &ImageRecord, v: &VersionRecord) -> String {
    if v.number == 0 {
        img.format.clone()
    } else {
        "qcow2".to_string()
    }
}

fn reference(img: &ImageRecord, v: &VersionRecord) -> VersionRef {
    VersionRef {
        image: img.path.clone(),
        number: v.number,
        check: v.check.clone().unwrap_or_default(),
    }
}

fn stamp_of(v: &VersionRecord) -> Result<Stamp, PatchError> {
    let check = v
        .check
        .as_deref()
        .and_then(parse_check)
        .ok_or_else(|| PatchError::Catalog(CatalogError::NotCollected(v.file.clone())))?;
    Ok(Stamp {
        number: v.number,
        check,
    })
}

/// Writes what a consumer holding `holder` needs to have `target` (default: the current
/// version) of `image` into `out` (a new or empty directory), with its manifest.
pub fn export(
    catalog: &Catalog,
    image: &str,
    target: Option<u32>,
    holder: &Holder,
    out: &Path,
) -> Result<Manifest, PatchError> {
    let img = catalog.image(image)?;
    let vs = catalog.versions_of(&img)?;
    let number = target.unwrap_or(img.current_version);
    let no_version = |n: u32| CatalogError::NoVersion {
        image: img.path.clone(),
        version: n,
    };
    let t = vs
        .iter()
        .find(|v| v.number == number)
        .cloned()
        .ok_or_else(|| no_version(number))?;
    let scan = t
        .scan
        .ok_or_else(|| CatalogError::NotCollected(format!("{}@v{}", img.path, t.number)))?;
    let view = catalog.inventory(scan, true)?.view_digest();
    let appliance = hex::encode(catalog.appliance_id()?);
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| PatchError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(delta_err(out, "the output directory is not empty"));
    }
    std::fs::create_dir_all(out).map_err(|e| PatchError::io(out, e))?;

    let line = lineage(&vs, &t);
    // (base image record, base version) for everything but a full image.
    let base: Option<(ImageRecord, VersionRecord)> = match holder {
        Holder::Version(n) => Some((
            img.clone(),
            vs.iter()
                .find(|v| v.number == *n)
                .cloned()
                .ok_or_else(|| no_version(*n))?,
        )),
        Holder::Check(c) => {
            let c = c.to_ascii_lowercase();
            vs.iter()
                .find(|v| v.check.as_deref() == Some(c.as_str()))
                .map(|v| (img.clone(), v.clone()))
        }
        Holder::Image(other) => {
            let b = catalog.image(other)?;
            let bv = catalog
                .versions_of(&b)?
                .into_iter()
                .find(|v| v.number == b.current_version)
                .ok_or_else(|| CatalogError::NotCollected(b.path.clone()))?;
            Some((b, bv))
        }
    };
    let mut considered = Vec::new();
    let strategy = match (&base, holder) {
        (Some(_), Holder::Image(_)) => Strategy::Against,
        (Some((_, h)), _) if h.number == t.number => Strategy::None,
        (Some((_, h)), _) if t.parent == Some(h.number) => Strategy::Incremental,
        (Some((_, h)), _) if line.iter().any(|v| v.number == h.number) => {
            let chain: u64 = line
                .iter()
                .skip_while(|v| v.number != h.number)
                .skip(1)
                .map(|v| std::fs::metadata(&v.file).map_or(u64::MAX, |m| m.len()))
                .fold(0, u64::saturating_add);
            let full = overlay::measure(Path::new(&t.file), &version_format(&img, &t))?;
            considered.push(("chain".to_string(), chain));
            considered.push(("flattened".to_string(), full));
            if chain <= full {
                Strategy::Chain
            } else {
                Strategy::Full
            }
        }
        _ => Strategy::Full,
    };
    let mut written = Vec::new();
    let r = write_files(&img, &vs, &t, &line, &base, strategy, out, &mut written);
    let files = match r {
        Ok(f) => f,
        Err(e) => {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            return Err(e);
        }
    };
    let (base_ref, base_sha256) = match (&base, strategy) {
        (Some((bi, bv)), s) if s != Strategy::Full => {
            let sha = if stamp::read(Path::new(&bv.file))?.is_some() {
                None
            } else {
                Some(sha256_of(Path::new(&bv.file))?)
            };
            (Some(reference(bi, bv)), sha)
        }
        _ => (None, None),
    };
    let manifest = Manifest {
        format: FORMAT.to_string(),
        appliance,
        target: reference(&img, &t),
        base: base_ref,
        base_sha256,
        strategy,
        files,
        view,
        considered,
    };
    let tmp = out.join(".manifest.json.partial");
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| PatchError::Delta {
        dir: out.to_path_buf(),
        why: format!("cannot encode the manifest: {e}"),
    })?;
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, out.join(MANIFEST)))
        .map_err(|e| PatchError::io(&out.join(MANIFEST), e))?;
    Ok(manifest)
}

/// Writes the delta's image files; each path is pushed to `written` before it is made.
#[allow(clippy::too_many_arguments)]
fn write_files(
    img: &ImageRecord,
    vs: &[VersionRecord],
    t: &VersionRecord,
    line: &[VersionRecord],
    base: &Option<(ImageRecord, VersionRecord)>,
    strategy: Strategy,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Vec<DeltaFile>, PatchError> {
    let parent_check = |v: &VersionRecord| {
        v.parent
            .and_then(|p| vs.iter().find(|x| x.number == p))
            .and_then(|x| x.check.clone())
    };
    // (version, file written, parent check)
    let mut made: Vec<(VersionRecord, PathBuf, Option<String>)> = Vec::new();
    match strategy {
        Strategy::None => {}
        Strategy::Full => {
            let dest = out.join(format!("v{}-full.qcow2", t.number));
            written.push(dest.clone());
            overlay::flatten(Path::new(&t.file), &version_format(img, t), &dest)?;
            made.push((t.clone(), dest, parent_check(t)));
        }
        Strategy::Incremental | Strategy::Chain => {
            let Some((bi, bv)) = base else {
                return Ok(Vec::new());
            };
            let mut backing = (file_name(&bv.file), version_format(bi, bv));
            for v in line.iter().skip_while(|v| v.number != bv.number).skip(1) {
                let dest = out.join(format!("v{}.qcow2", v.number));
                written.push(dest.clone());
                std::fs::copy(&v.file, &dest).map_err(|e| PatchError::io(&dest, e))?;
                overlay::rebase_unsafe(&dest, &backing.0, &backing.1)?;
                backing = (file_name(&dest.to_string_lossy()), "qcow2".into());
                made.push((v.clone(), dest, parent_check(v)));
            }
        }
        Strategy::Against => {
            let Some((bi, bv)) = base else {
                return Ok(Vec::new());
            };
            let dest = out.join(format!("v{}-against.qcow2", t.number));
            written.push(dest.clone());
            overlay::create(&dest, Path::new(&t.file), &version_format(img, t))?;
            let bfmt = version_format(bi, bv);
            overlay::rebase_safe(&dest, Path::new(&bv.file), &bfmt)?;
            overlay::rebase_unsafe(&dest, &file_name(&bv.file), &bfmt)?;
            made.push((t.clone(), dest, parent_check(t)));
        }
    }
    let mut files = Vec::new();
    for (v, dest, parent) in made {
        stamp::write(&dest, &stamp_of(&v)?)?;
        let size = std::fs::metadata(&dest)
            .map_err(|e| PatchError::io(&dest, e))?
            .len();
        files.push(DeltaFile {
            name: file_name(&dest.to_string_lossy()),
            size,
            sha256: sha256_of(&dest)?,
            number: v.number,
            check: v.check.clone().unwrap_or_default(),
            parent_check: parent,
        });
    }
    Ok(files)
}

fn read_manifest(dir: &Path) -> Result<Manifest, PatchError> {
    let p = dir.join(MANIFEST);
    let meta = std::fs::symlink_metadata(&p).map_err(|e| PatchError::io(&p, e))?;
    if !meta.is_file() {
        return Err(delta_err(dir, "manifest.json is not a regular file"));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(delta_err(
            dir,
            format!("manifest.json is larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let bytes = std::fs::read(&p).map_err(|e| PatchError::io(&p, e))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| delta_err(dir, format!("manifest.json is not a delta manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(delta_err(
            dir,
            format!("manifest format {:?}, expected {FORMAT:?}", m.format),
        ));
    }
    Ok(m)
}

/// Checks a delta against its manifest and the file it is to be applied to; writes
/// nothing. Returns the manifest.
pub fn verify(dir: &Path, onto: &Path) -> Result<Manifest, PatchError> {
    let m = read_manifest(dir)?;
    if m.files.len() > MAX_FILES {
        return Err(delta_err(
            dir,
            format!("{} files, more than {MAX_FILES}", m.files.len()),
        ));
    }
    let mut appliance = [0u8; 16];
    hex::decode_to_slice(&m.appliance, &mut appliance)
        .map_err(|_| delta_err(dir, "the appliance id is not 16 bytes of hex"))?;
    // Every file: a plain name in the directory, its size and bytes as listed.
    for f in &m.files {
        let plain = Path::new(&f.name).file_name().map(|n| n.to_string_lossy())
            == Some(f.name.as_str().into());
        if !plain || f.name.starts_with('.') {
            return Err(delta_err(
                dir,
                format!("file name {:?} is not a plain name", f.name),
            ));
        }
        let p = dir.join(&f.name);
        let meta = std::fs::symlink_metadata(&p).map_err(|e| PatchError::io(&p, e))?;
        if !meta.is_file() {
            return Err(delta_err(dir, format!("{} is not a regular file", f.name)));
        }
        if meta.len() != f.size {
            return Err(delta_err(
                dir,
                format!(
                    "{} is {} bytes, the manifest says {}",
                    f.name,
                    meta.len(),
                    f.size
                ),
            ));
        }
        let sha = sha256_of(&p)?;
        if sha != f.sha256 {
            return Err(delta_err(
                dir,
                format!(
                    "{} has SHA-256 {sha}, the manifest says {}",
                    f.name, f.sha256
                ),
            ));
        }
    }
    // Check values: each recomputed from the manifest, each stamped into its file, each
    // made on the one before it (the first on the base), the last the target.
    let mut prev = m.base.as_ref().map(|b| b.check.clone());
    if m.strategy == Strategy::Against {
        // An overlay on another image's version: its own chain does not pass through it.
        prev = None;
    }
    for (i, f) in m.files.iter().enumerate() {
        let parent = match &f.parent_check {
            Some(c) => Some(parse_check(c).ok_or_else(|| {
                delta_err(dir, format!("{}: parent check value is not hex", f.name))
            })?),
            None => None,
        };
        let want = hex::encode(check_value(
            f.number,
            &appliance,
            &m.target.image,
            parent.as_ref(),
        ));
        if f.check != want {
            return Err(delta_err(
                dir,
                format!(
                    "{}: check value {} is not the one version {} of {} has ({want})",
                    f.name, f.check, f.number, m.target.image
                ),
            ));
        }
        if (i > 0 || prev.is_some()) && f.parent_check != prev {
            return Err(delta_err(
                dir,
                format!("{}: not made on the version before it in the delta", f.name),
            ));
        }
        let st = stamp::read(&dir.join(&f.name))?;
        if st.map(|s| (s.number, s.check_hex())) != Some((f.number, f.check.clone())) {
            return Err(delta_err(
                dir,
                format!(
                    "{}: its stamp does not say version {} ({})",
                    f.name, f.number, f.check
                ),
            ));
        }
        prev = Some(f.check.clone());
    }
    let last = m.files.last().map(|f| (f.number, f.check.as_str()));
    let target = (m.target.number, m.target.check.as_str());
    match m.strategy {
        Strategy::None if !m.files.is_empty() => {
            return Err(delta_err(dir, "nothing to send, yet files are listed"))
        }
        Strategy::None => {}
        _ if last != Some(target) => {
            return Err(delta_err(dir, "the last file is not the target version"))
        }
        _ => {}
    }
    // The base: the file we apply to must be it.
    if let Some(b) = &m.base {
        match stamp::read(onto)? {
            Some(s) if s.check_hex() == b.check => {}
            Some(s) => {
                return Err(delta_err(
                    dir,
                    format!(
                        "{} holds version {} (check {}), but the delta applies to version {} of {} (check {})",
                        onto.display(),
                        s.number,
                        s.check_hex(),
                        b.number,
                        b.image,
                        b.check
                    ),
                ))
            }
            None => {
                let want = m.base_sha256.as_deref().ok_or_else(|| {
                    delta_err(
                        dir,
                        format!(
                            "{} carries no version stamp and the delta names no hash for its base",
                            onto.display()
                        ),
                    )
                })?;
                let have = sha256_of(onto)?;
                if have != want {
                    return Err(delta_err(
                        dir,
                        format!(
                            "{} is not version {} of {}: SHA-256 {have}, expected {want}",
                            onto.display(),
                            b.number,
                            b.image
                        ),
                    ));
                }
            }
        }
    } else if m.strategy != Strategy::Full {
        return Err(delta_err(dir, "no base named for a delta"));
    }
    Ok(m)
}

/// Verifies the delta in `dir`, applies it to `onto` (never written) as a new file `out`
/// (default: `<image name>-v<N>.qcow2` beside `onto`), and proves the result's guest view
/// equals the manifest's. On any failure the files it wrote are removed.
pub fn import(dir: &Path, onto: &Path, out: Option<&Path>) -> Result<ImportReport, PatchError> {
    let m = verify(dir, onto)?;
    if m.strategy == Strategy::None {
        return Ok(ImportReport {
            strategy: m.strategy,
            target: m.target,
            result: None,
            written: Vec::new(),
            view: m.view,
        });
    }
    let onto = onto.canonicalize().map_err(|e| PatchError::io(onto, e))?;
    let onto_dir = onto.parent().unwrap_or(Path::new("/")).to_path_buf();
    let stem = Path::new(&m.target.image)
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let out = out.map_or_else(
        || onto_dir.join(format!("{stem}-v{}.qcow2", m.target.number)),
        Path::to_path_buf,
    );
    if out.exists() {
        return Err(delta_err(dir, format!("{} exists already", out.display())));
    }
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut written: Vec<PathBuf> = Vec::new();
    let r = apply(dir, &m, &onto, &out, &out_dir, &mut written)
        .and_then(|()| prove(&m, &out, &[out_dir.clone(), onto_dir.clone()]));
    match r {
        Ok(()) => Ok(ImportReport {
            strategy: m.strategy,
            target: m.target,
            result: Some(out),
            written,
            view: m.view,
        }),
        Err(e) => {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            Err(e)
        }
    }
}

fn apply(
    dir: &Path,
    m: &Manifest,
    onto: &Path,
    out: &Path,
    out_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), PatchError> {
    let out_name = file_name(&out.to_string_lossy());
    let n = m.files.len();
    // The first file rests on `onto` (by file name when it is in the same directory).
    let onto_same_dir = out_dir.canonicalize().ok().as_deref() == onto.parent();
    let mut backing = (
        if onto_same_dir {
            file_name(&onto.to_string_lossy())
        } else {
            onto.display().to_string()
        },
        overlay::format_of(onto)?.to_string(),
    );
    for (i, f) in m.files.iter().enumerate() {
        let dest = if i + 1 == n {
            out.to_path_buf()
        } else {
            out_dir.join(format!("{out_name}.{}", f.name))
        };
        if dest.exists() {
            return Err(delta_err(dir, format!("{} exists already", dest.display())));
        }
        written.push(dest.clone());
        std::fs::copy(dir.join(&f.name), &dest).map_err(|e| PatchError::io(&dest, e))?;
        if m.strategy != Strategy::Full {
            overlay::rebase_unsafe(&dest, &backing.0, &backing.1)?;
        }
        backing = (file_name(&dest.to_string_lossy()), "qcow2".into());
    }
    overlay::sync(out)
}

/// Collects the result natively, with every file hashed, and compares its guest view
/// with the manifest's.
fn prove(m: &Manifest, out: &Path, roots: &[PathBuf]) -> Result<(), PatchError> {
    let opts = CollectOptions {
        open: OpenOptions {
            image_roots: roots.to_vec(),
            ..OpenOptions::default()
        },
        guestfs: true,
        ..CollectOptions::default()
    };
    let disk = Disk::open(out, &opts.open)?;
    let inv = coldpatch_collector::collect_disk(&disk, &opts, &mut |_, _| {})
        .map_err(|e| delta_err(out, format!("the result cannot be read: {e}")))?;
    let got = inv.view_digest();
    let want = &m.view;
    let files_ok = match (&want.files_sha256, &got.files_sha256) {
        (Some(w), Some(g)) => w == g && want.files == got.files,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if got.packages_sha256 != want.packages_sha256 || !files_ok {
        return Err(delta_err(
            out,
            format!(
                "the result does not hold version {} of {}: {} packages / {} files read, the manifest has {} / {}",
                m.target.number, m.target.image, got.packages, got.files, want.packages, want.files
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! `verify` on a real qcow2 delta made with qemu-img, then one change per test case.
    use super::*;
    use coldpatch_disk::hash::sha256_file;

    const APP: [u8; 16] = [7; 16];

    struct Case {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        base: PathBuf,
        manifest: Manifest,
    }

    fn qemu_img(args: &[&str]) {
        let st = std::process::Command::new("qemu-img")
            .args(args)
            .status()
            .expect("qemu-img");
        assert!(st.success(), "qemu-img {args:?}");
    }

    fn case() -> Case {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("base.raw");
        std::fs::write(&base, vec![0x11u8; 1 << 20]).expect("base");
        let dir = tmp.path().join("delta");
        std::fs::create_dir(&dir).expect("mkdir");
        let f = dir.join("v1.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "../base.raw",
            "-F",
            "raw",
            f.to_str().expect("utf8"),
            "1M",
        ]);
        let c0 = check_value(0, &APP, "/img/a.qcow2", None);
        let c1 = check_value(1, &APP, "/img/a.qcow2", Some(&c0));
        stamp::write(
            &f,
            &Stamp {
                number: 1,
                check: c1,
            },
        )
        .expect("stamp");
        let vref = |number, c: [u8; 32]| VersionRef {
            image: "/img/a.qcow2".into(),
            number,
            check: hex::encode(c),
        };
        let manifest = Manifest {
            format: FORMAT.into(),
            appliance: hex::encode(APP),
            target: vref(1, c1),
            base: Some(vref(0, c0)),
            base_sha256: Some(sha256_file(&base).expect("sha")),
            strategy: Strategy::Incremental,
            files: vec![DeltaFile {
                name: "v1.qcow2".into(),
                size: std::fs::metadata(&f).expect("meta").len(),
                sha256: sha256_file(&f).expect("sha"),
                number: 1,
                check: hex::encode(c1),
                parent_check: Some(hex::encode(c0)),
            }],
            view: ViewDigest {
                packages: 0,
                packages_sha256: String::new(),
                files: 0,
                files_sha256: None,
            },
            considered: Vec::new(),
        };
        Case {
            _tmp: tmp,
            dir,
            base,
            manifest,
        }
    }

    fn verify_with(c: &Case, m: &Manifest) -> Result<Manifest, String> {
        std::fs::write(c.dir.join(MANIFEST), serde_json::to_vec(m).expect("json"))
            .expect("write manifest");
        verify(&c.dir, &c.base).map_err(|e| e.to_string())
    }

    fn refused(c: &Case, m: &Manifest, says: &str) {
        let e = verify_with(c, m).expect_err("must refuse");
        assert!(e.contains(says), "{e}");
    }

    #[test]
    fn a_good_delta_verifies() {
        let c = case();
        assert_eq!(verify_with(&c, &c.manifest), Ok(c.manifest.clone()));
    }

    #[test]
    fn manifest_format_names_and_counts_are_checked() {
        let c = case();
        let mut m = c.manifest.clone();
        m.format = "something-else".into();
        refused(&c, &m, "manifest format");
        let mut m = c.manifest.clone();
        m.files[0].name = "../v1.qcow2".into();
        refused(&c, &m, "is not a plain name");
        let mut m = c.manifest.clone();
        m.files = vec![m.files[0].clone(); MAX_FILES + 1];
        refused(&c, &m, "more than 64");
        std::fs::write(c.dir.join(MANIFEST), vec![b' '; 2 << 20]).expect("write");
        let e = verify(&c.dir, &c.base).expect_err("too big").to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_symlinked_file_is_refused() {
        let c = case();
        let real = c.dir.join("v1.qcow2");
        let moved = c.dir.parent().expect("parent").join("elsewhere.qcow2");
        std::fs::rename(&real, &moved).expect("move");
        std::os::unix::fs::symlink(&moved, &real).expect("symlink");
        refused(&c, &c.manifest, "is not a regular file");
    }

    #[test]
    fn check_values_chain_and_stamp_are_checked() {
        let c = case();
        // A parent that is not the base: the recomputed check no longer matches.
        let mut m = c.manifest.clone();
        m.files[0].parent_check = Some("cd".repeat(32));
        refused(&c, &m, "is not the one version 1 of /img/a.qcow2");
        // A target the files do not reach.
        let mut m = c.manifest.clone();
        m.target.number = 2;
        refused(&c, &m, "the last file is not the target version");
        // A restamped file, with the manifest's size and hash updated to match it.
        let f = c.dir.join("v1.qcow2");
        stamp::write(
            &f,
            &Stamp {
                number: 1,
                check: [3; 32],
            },
        )
        .expect("restamp");
        let mut m = c.manifest.clone();
        m.files[0].sha256 = sha256_file(&f).expect("sha");
        refused(&c, &m, "its stamp does not say version 1");
    }

    #[test]
    fn the_wrong_base_is_refused() {
        let c = case();
        let mut m = c.manifest.clone();
        m.base_sha256 = Some("00".repeat(32));
        refused(&c, &m, "is not version 0 of /img/a.qcow2");
        let mut m = c.manifest.clone();
        m.base_sha256 = None;
        refused(&c, &m, "carries no version stamp");
    }
}
