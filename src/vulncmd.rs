//! The vulnerability commands: feed import/list, scan, affected, sbom.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use coldpatch_catalog::feeds::{any_at_least, stale};
use coldpatch_catalog::{Catalog, ScanReport};
use coldpatch_vuln::{feed, Format, Severity};

use crate::outln;
use crate::output::{self, table};

/// Exit code of `scan --fail-on` when a finding reaches the severity.
pub const EXIT_FINDINGS: u8 = 3;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn date(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

pub fn feed_import(
    catalog: &Catalog,
    path: &Path,
    name: Option<String>,
    format: Option<Format>,
    json: bool,
) -> Result<ExitCode> {
    let data = feed::read(path, format).with_context(|| "feed import failed; nothing stored")?;
    let name = name.unwrap_or_else(|| data.suggested_name.clone());
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let source = path
        .canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    let report = catalog.import_feed(&name, &source, mtime, data)?;
    if json {
        output::json(&report)?;
    } else {
        for r in &report.rejected {
            eprintln!("rejected: {}: {}", r.place, r.reason);
        }
        outln!(
            "feed {}: {} imported, {} updated, {} unchanged, {} removed, {} rejected, {} skipped",
            report.feed,
            report.imported,
            report.updated,
            report.unchanged,
            report.removed,
            report.rejected.len(),
            report.skipped
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn feed_list(catalog: &Catalog, json: bool) -> Result<ExitCode> {
    let feeds = catalog.feeds()?;
    output::list(
        json,
        &feeds,
        &[
            "FEED",
            "FORMAT",
            "RECORDS",
            "IMPORTED",
            "DATA AS OF",
            "SOURCE",
        ],
        |f| {
            vec![
                f.name.clone(),
                f.format.clone(),
                f.records.to_string(),
                date(f.imported_at),
                date(f.as_of),
                f.source.clone(),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn warn_feeds(report: &ScanReport, max_age: Duration) {
    if report.feeds.is_empty() {
        eprintln!("warning: no vulnerability feed imported; run `coldpatch feed import PATH`");
    }
    for f in stale(&report.feeds, max_age.as_secs(), now_secs()) {
        eprintln!(
            "warning: feed {} is stale: its data is as of {} (older than {})",
            f.name,
            date(f.as_of),
            humantime::format_duration(max_age)
        );
    }
    for i in &report.images {
        if i.distro.is_none() {
            eprintln!(
                "warning: {}: OS release unknown, its packages were not matched",
                i.image
            );
        }
    }
}

pub struct ScanArgs {
    pub images: Vec<String>,
    pub json: bool,
    pub only_fixable: bool,
    pub fail_on: Option<Severity>,
    pub max_feed_age: Duration,
}

pub fn scan(catalog: &Catalog, a: ScanArgs) -> Result<ExitCode> {
    let mut report = catalog.scan_images(&a.images)?;
    if a.only_fixable {
        for i in &mut report.images {
            i.findings.retain(|f| f.fixed.is_some());
        }
    }
    warn_feeds(&report, a.max_feed_age);
    if a.json {
        output::json(&report)?;
    } else {
        let mut rows = Vec::new();
        for i in &report.images {
            for f in &i.findings {
                rows.push(vec![
                    i.image.clone(),
                    f.package.clone(),
                    f.installed.clone(),
                    f.advisory.clone(),
                    f.severity.to_string(),
                    f.fixed.clone().unwrap_or_else(|| "(no fix yet)".into()),
                    f.feed.clone(),
                ]);
            }
        }
        table(
            &[
                "IMAGE",
                "PACKAGE",
                "INSTALLED",
                "ADVISORY",
                "SEVERITY",
                "FIXED IN",
                "FEED",
            ],
            &rows,
        )?;
        let total: usize = report.images.iter().map(|i| i.findings.len()).sum();
        let fixable: usize = report
            .images
            .iter()
            .flat_map(|i| &i.findings)
            .filter(|f| f.fixed.is_some())
            .count();
        eprintln!(
            "{} images, {total} findings ({fixable} with a fix), {} advisories from {} feeds",
            report.images.len(),
            report.advisories,
            report.feeds.len()
        );
    }
    if a.fail_on.is_some_and(|s| any_at_least(&report, s)) {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn affected(catalog: &Catalog, id: &str, json: bool) -> Result<ExitCode> {
    let report = catalog.scan_images(&[])?;
    warn_feeds(&report, Duration::MAX);
    #[derive(serde::Serialize)]
    struct Hit<'a> {
        image: &'a str,
        package: &'a str,
        installed: &'a str,
        fixed: Option<&'a str>,
        advisory: &'a str,
        feed: &'a str,
    }
    let mut hits = Vec::new();
    for i in &report.images {
        for f in &i.findings {
            if f.advisory.eq_ignore_ascii_case(id)
                || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
            {
                hits.push(Hit {
                    image: &i.image,
                    package: &f.package,
                    installed: &f.installed,
                    fixed: f.fixed.as_deref(),
                    advisory: &f.advisory,
                    feed: &f.feed,
                });
            }
        }
    }
    output::list(
        json,
        &hits,
        &[
            "IMAGE",
            "PACKAGE",
            "INSTALLED",
            "FIXED IN",
            "ADVISORY",
            "FEED",
        ],
        |h| {
            vec![
                h.image.to_string(),
                h.package.to_string(),
                h.installed.to_string(),
                h.fixed.unwrap_or("(no fix yet)").to_string(),
                h.advisory.to_string(),
                h.feed.to_string(),
            ]
        },
    )?;
    if !json {
        let images: std::collections::BTreeSet<&str> = hits.iter().map(|h| h.image).collect();
        eprintln!("{} images affected by {id}", images.len());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn sbom(
    catalog: &Catalog,
    image: &str,
    format: coldpatch_sbom::SbomFormat,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let img = catalog.image(image)?;
    let scan = img
        .current_scan
        .with_context(|| format!("{image} has no recorded scan"))?;
    let inv = catalog.inventory(scan, false)?;
    let doc = coldpatch_sbom::document(
        format,
        &inv,
        &coldpatch_sbom::DocInfo::now(env!("CARGO_PKG_VERSION")),
    );
    match output {
        Some(p) => {
            let bytes = serde_json::to_vec_pretty(&doc)?;
            std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        }
        None => output::json(&doc)?,
    }
    Ok(ExitCode::SUCCESS)
}
