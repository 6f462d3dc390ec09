//! Version commands: `diff` between two images or versions, `export` and `import-delta`
//! for shipping versions, and `shared` content across images.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use coldpatch_catalog::diff::{Change, DiffOptions, Side};
use coldpatch_catalog::Catalog;
use coldpatch_patcher::delta::{self, Holder, Strategy};

use crate::outln;
use crate::output;

/// `IMAGE` or `IMAGE@N` / `IMAGE@vN` (a version of it); the image as a path or id.
pub fn side(arg: &str) -> (String, Option<u32>) {
    if let Some((image, v)) = arg.rsplit_once('@') {
        if let Ok(n) = v.trim_start_matches('v').parse::<u32>() {
            return (crate::keys::image_key(image), Some(n));
        }
    }
    (crate::keys::image_key(arg), None)
}

fn mark(c: Change) -> char {
    match c {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Changed => '~',
    }
}

pub fn diff(catalog: &Catalog, a: &str, b: &str, times: bool, json: bool) -> Result<ExitCode> {
    let (ia, va) = side(a);
    let (ib, vb) = side(b);
    let d = catalog.diff(
        &Side {
            image: &ia,
            version: va,
        },
        &Side {
            image: &ib,
            version: vb,
        },
        DiffOptions { times },
    )?;
    if json {
        output::json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}@v{} -> {}@v{}",
        d.a.image,
        d.a.version,
        d.b.image,
        d.b.version
    )?;
    let count = |c: Change| d.packages.iter().filter(|p| p.change == c).count();
    outln!(
        "packages: {} changed, {} added, {} removed",
        count(Change::Changed),
        count(Change::Added),
        count(Change::Removed)
    )?;
    for p in &d.packages {
        outln!(
            "  {} {} {} {} -> {}",
            mark(p.change),
            p.name,
            p.arch,
            p.from.as_deref().unwrap_or("-"),
            p.to.as_deref().unwrap_or("-")
        )?;
    }
    match &d.files {
        None => outln!("files: not compared (a side was collected with --no-files)")?,
        Some(files) => {
            let count = |c: Change| files.iter().filter(|f| f.change == c).count();
            outln!(
                "files: {} changed, {} added, {} removed",
                count(Change::Changed),
                count(Change::Added),
                count(Change::Removed)
            )?;
            for f in files {
                if f.fields.is_empty() {
                    outln!("  {} {}", mark(f.change), f.path)?;
                } else {
                    outln!("  {} {} ({})", mark(f.change), f.path, f.fields.join(", "))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(
    catalog: &Catalog,
    image: &str,
    version: Option<u32>,
    holder: Option<&str>,
    against: Option<&str>,
    out: &Path,
    json: bool,
) -> Result<ExitCode> {
    let holder = match (holder, against) {
        (_, Some(base)) => Holder::Image(crate::keys::image_key(base)),
        (Some(h), None) => match h.trim_start_matches('v').parse::<u32>() {
            Ok(n) if h.len() < 16 => Holder::Version(n),
            _ => Holder::Check(h.to_string()),
        },
        (None, None) => anyhow::bail!("say what the consumer holds: --for or --against"),
    };
    let m = delta::export(catalog, image, version, &holder, out)
        .with_context(|| format!("cannot export {image}"))?;
    if json {
        output::json(&m)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match m.strategy {
        Strategy::None => "nothing to send: the consumer holds this version".to_string(),
        Strategy::Incremental => "incremental: the version's own overlay".to_string(),
        Strategy::Chain => format!("chain of {} overlays", m.files.len()),
        Strategy::Full => "full: a flattened image".to_string(),
        Strategy::Against => "diff against the shared base image".to_string(),
    };
    outln!(
        "{} version {} (check {}) for a holder of {}: {what}",
        m.target.image,
        m.target.number,
        m.target.check.get(..16).unwrap_or(&m.target.check),
        m.base
            .as_ref()
            .map_or("an unrelated image".to_string(), |b| format!(
                "{} version {}",
                b.image, b.number
            ))
    )?;
    for (what, size) in &m.considered {
        outln!("  considered {what}: {}", output::bytes(*size))?;
    }
    for f in &m.files {
        outln!(
            "  {}  {}  version {}  sha256 {}",
            f.name,
            output::bytes(f.size),
            f.number,
            f.sha256
        )?;
    }
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    outln!(
        "wrote {} ({} in {} file(s) and {})",
        out.display(),
        output::bytes(total),
        m.files.len(),
        delta::MANIFEST
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn import_delta(dir: &Path, onto: &Path, out: Option<&Path>, json: bool) -> Result<ExitCode> {
    let r = delta::import(dir, onto, out)
        .with_context(|| format!("cannot import {} onto {}", dir.display(), onto.display()))?;
    if json {
        output::json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &r.result {
        None => outln!(
            "{} already holds version {} of {}; nothing written",
            onto.display(),
            r.target.number,
            r.target.image
        )?,
        Some(res) => outln!(
            "{} holds version {} of {} (check {}); proved by reading it: {} packages, {} files as exported",
            res.display(),
            r.target.number,
            r.target.image,
            r.target.check.get(..16).unwrap_or(&r.target.check),
            r.view.packages,
            r.view.files
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn shared(catalog: &Catalog, images: &[String], json: bool) -> Result<ExitCode> {
    let r = catalog.shared(images)?;
    if json {
        output::json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &["IMAGE", "FILES", "BYTES", "PRIVATE FILES", "PRIVATE BYTES"],
        &r.images
            .iter()
            .map(|i| {
                vec![
                    crate::keys::shown(&i.image, i.version, i.version != 0),
                    i.files.to_string(),
                    output::bytes(i.bytes),
                    i.private_files.to_string(),
                    output::bytes(i.private_bytes),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    outln!(
        "common to all {}: {} files, {}; a shared base image would save {}",
        r.images.len(),
        r.common_files,
        output::bytes(r.common_bytes),
        output::bytes(r.base_saves)
    )?;
    for (n, g) in r.groups.iter().enumerate() {
        outln!(
            "group {}: {} image(s), {} files / {} in common, a base saves {}",
            n + 1,
            g.images.len(),
            g.common_files,
            output::bytes(g.common_bytes),
            output::bytes(g.base_saves)
        )?;
        for i in &g.images {
            outln!("  {i}")?;
        }
    }
    for s in &r.skipped {
        outln!("skipped {s}: collected without file hashes")?;
    }
    Ok(ExitCode::SUCCESS)
}
