//! The repository commands: index, list, packages, harvest.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use coldpatch_catalog::Catalog;

use crate::outln;
use crate::output;

pub fn index(catalog: &Catalog, dir: &Path, json: bool) -> Result<ExitCode> {
    let index = coldpatch_repo::index(dir)?;
    let stored = catalog.store_repo(&index)?;
    if json {
        output::json(&stored)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &index.rejected {
        eprintln!(
            "rejected: {}",
            coldpatch_catalog::text::clean(&format!("{}: {}", r.place, r.reason))
        );
    }
    let with_file = index.packages.iter().filter(|p| p.file.is_some()).count();
    outln!(
        "repository {}: {} packages ({} with their file here, {} from {} indices only), {} rejected",
        index.root,
        index.packages.len(),
        with_file,
        index.packages.len() - with_file,
        index.indices,
        index.rejected.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(catalog: &Catalog, json: bool) -> Result<ExitCode> {
    let repos = catalog.repos()?;
    output::list(
        json,
        &repos,
        &["REPOSITORY", "PACKAGES", "REJECTED", "INDEXED"],
        |r| {
            vec![
                r.index.root.clone(),
                r.index.packages.len().to_string(),
                r.index.rejected.len().to_string(),
                output::time(r.indexed_at),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn packages(catalog: &Catalog, dir: &str, name: Option<&str>, json: bool) -> Result<ExitCode> {
    let repo = catalog.repo(dir)?;
    let pkgs: Vec<_> = repo
        .index
        .packages
        .iter()
        .filter(|p| name.is_none_or(|n| p.name == n))
        .collect();
    output::list(
        json,
        &pkgs,
        &["PACKAGE", "VERSION", "ARCH", "TYPE", "SOURCE", "FILE"],
        |p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                p.kind.as_str().into(),
                format!("{} {}", p.source_name, p.source_version),
                p.file.clone().unwrap_or_else(|| "(index only)".into()),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `repo harvest IMAGE[@N] --out DIR`: exits 1 if any package was refused.
pub fn harvest(
    catalog: &Catalog,
    image: &str,
    opts: &coldpatch_harvest::Options,
    out: &Path,
    json: bool,
) -> Result<ExitCode> {
    let (key, version) = crate::versioncmd::side(image);
    let report = coldpatch_harvest::harvest(catalog, &key, version, opts, out)?;
    let code = if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if json {
        output::json(&report)?;
        return Ok(code);
    }
    let clean = coldpatch_catalog::text::clean;
    for h in &report.harvested {
        outln!(
            "{} {} {}: {} ({} entries)",
            clean(&h.package),
            clean(&h.version),
            clean(&h.arch),
            out.join(&h.file).display(),
            h.entries
        )?;
        for m in &h.modified {
            outln!("  modified: {}", clean(m))?;
        }
    }
    for r in &report.refused {
        eprintln!(
            "refused: {}: {}",
            clean(&r.package),
            clean(&r.reasons.join("; "))
        );
    }
    outln!(
        "{} package(s) harvested from {}@{} into {}, {} refused",
        report.harvested.len(),
        clean(&report.origin.image),
        report.origin.version,
        out.display(),
        report.refused.len()
    )?;
    Ok(code)
}
