//! The patch commands: plan (apply, rollback and flatten come with the rest of issue 4).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use coldpatch_catalog::Catalog;
use coldpatch_patcher::{plan, Request};

use crate::outln;
use crate::output;

pub fn plan_cmd(
    catalog: &Catalog,
    image: &str,
    repo_dir: &Path,
    req: &Request,
    json: bool,
) -> Result<ExitCode> {
    let img = catalog.image(image)?;
    let scan = img
        .current_scan
        .with_context(|| format!("{image} has no recorded scan"))?;
    let inv = catalog.inventory(scan, false)?;
    let root = repo_dir
        .canonicalize()
        .with_context(|| format!("repository {}", repo_dir.display()))?;
    let repo = match catalog.repo(&root.display().to_string()) {
        Ok(r) => r.index,
        Err(coldpatch_catalog::CatalogError::NoRepo(_)) => {
            let index = coldpatch_repo::index(&root)?;
            catalog.store_repo(&index)?;
            index
        }
        Err(e) => return Err(e.into()),
    };
    let findings = catalog
        .scan_images(std::slice::from_ref(&img.path))?
        .images
        .into_iter()
        .next()
        .map(|i| i.findings)
        .unwrap_or_default();
    let plan = plan(&img.path, &inv.packages, &findings, &repo, req)
        .with_context(|| format!("cannot plan {}", img.path))?;
    if json {
        output::json(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &["PACKAGE", "ARCH", "FROM", "TO", "WHY"],
        &plan
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.package.clone(),
                    s.arch.clone(),
                    s.from.clone().unwrap_or_else(|| "(new)".into()),
                    s.to.clone(),
                    s.reasons.join("; "),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    outln!(
        "{} packages to install from {}; fixes {}",
        plan.steps.len(),
        plan.repository,
        if plan.fixes.is_empty() {
            "no advisory (requested packages only)".to_string()
        } else {
            plan.fixes.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
