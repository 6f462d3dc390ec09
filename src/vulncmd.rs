//! The vulnerability commands: feed import/list, scan, affected, sbom.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use std::io::Write;

use coldpatch_catalog::feeds::stale;
use coldpatch_catalog::{Catalog, FeedRecord, ImageFindings};
use coldpatch_vuln::{feed, Format, Severity};

use crate::outln;
use crate::output::{self, table};

/// Exit code of `scan --fail-on` when a finding reaches the severity.
pub const EXIT_FINDINGS: u8 = 3;

use coldpatch_catalog::clock::{now as now_secs, rfc3339 as date};

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
            eprintln!(
                "rejected: {}",
                coldpatch_catalog::text::clean(&format!("{}: {}", r.place, r.reason))
            );
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

fn warn_feeds(feeds: &[FeedRecord], max_age: Duration) {
    if feeds.is_empty() {
        eprintln!("warning: no vulnerability feed imported; run `coldpatch feed import PATH`");
    }
    for f in stale(feeds, max_age.as_secs(), now_secs()) {
        eprintln!(
            "warning: feed {} is stale: its data is as of {} (older than {})",
            f.name,
            date(f.as_of),
            humantime::format_duration(max_age)
        );
    }
}

fn warn_unmatched(i: &ImageFindings) {
    if i.distro.is_none() {
        eprintln!(
            "warning: {}: OS release unknown, its packages were not matched",
            i.image
        );
    }
}

pub struct ScanArgs {
    pub scope: coldpatch_catalog::Scope,
    pub json: bool,
    pub only_fixable: bool,
    pub fail_on: Option<Severity>,
    pub max_feed_age: Duration,
    pub versions: coldpatch_catalog::Versions,
}

/// Streams: each image's findings are written (JSON) or queued as table rows as they
/// come, so a fleet's findings are never all in memory as structures.
pub fn scan(catalog: &Catalog, a: ScanArgs) -> Result<ExitCode> {
    warn_feeds(&catalog.feeds()?, a.max_feed_age);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut rows = Vec::new();
    let (mut images, mut total, mut fixable, mut failed) = (0usize, 0usize, 0usize, false);
    if a.json {
        write!(out, "{{\"images\": [")?;
    }
    let all = a.versions == coldpatch_catalog::Versions::All;
    let summary = catalog.scan_each(&a.scope, a.versions, |mut i| {
        warn_unmatched(&i);
        if a.only_fixable {
            i.findings.retain(|f| f.fixed.is_some());
        }
        images += 1;
        total += i.findings.len();
        fixable += i.findings.iter().filter(|f| f.fixed.is_some()).count();
        failed |= a
            .fail_on
            .is_some_and(|s| i.findings.iter().any(|f| f.severity >= s));
        if a.json {
            let sep = if images > 1 { "," } else { "" };
            let r = writeln!(out, "{sep}")
                .map_err(serde_json::Error::io)
                .and_then(|()| serde_json::to_writer(&mut out, &i));
            if r.is_err() {
                return Err(coldpatch_catalog::CatalogError::Output);
            }
        } else {
            for f in &i.findings {
                rows.push(vec![
                    crate::keys::shown(&i.image, i.version, all),
                    f.package.to_string(),
                    f.installed.to_string(),
                    f.of.advisory.to_string(),
                    f.severity.to_string(),
                    f.fixed.as_deref().unwrap_or("(no fix yet)").to_string(),
                    f.of.feed.to_string(),
                ]);
            }
        }
        Ok(())
    });
    let summary = match summary {
        Err(coldpatch_catalog::CatalogError::Output) => {
            return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into())
        }
        r => r?,
    };
    if a.json {
        write!(out, "],\n\"feeds\": ")?;
        serde_json::to_writer(&mut out, &summary.feeds)?;
        writeln!(out, ",\n\"advisories\": {}}}", summary.advisories)?;
        out.flush()?;
    } else {
        drop(out);
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
        eprintln!(
            "{images} images, {total} findings ({fixable} with a fix), {} advisories from {} feeds",
            summary.advisories,
            summary.feeds.len()
        );
    }
    if failed {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn affected(
    catalog: &Catalog,
    id: &str,
    scope: &coldpatch_catalog::Scope,
    json: bool,
) -> Result<ExitCode> {
    warn_feeds(&catalog.feeds()?, Duration::MAX);
    #[derive(serde::Serialize)]
    struct Hit {
        image: String,
        package: String,
        installed: String,
        fixed: Option<String>,
        advisory: String,
        feed: String,
    }
    // Streamed: only the findings of this advisory are kept, not the fleet's; images
    // that carry none of its packages are not read where the catalog has indexes.
    let mut hits = Vec::new();
    catalog.affected(id, scope, |i| {
        warn_unmatched(&i);
        for f in &i.findings {
            if f.of.names(id) {
                hits.push(Hit {
                    image: i.image.clone(),
                    package: f.package.to_string(),
                    installed: f.installed.to_string(),
                    fixed: f.fixed.clone(),
                    advisory: f.of.advisory.clone(),
                    feed: f.of.feed.clone(),
                });
            }
        }
        Ok(())
    })?;
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
                h.image.clone(),
                h.package.clone(),
                h.installed.clone(),
                h.fixed.clone().unwrap_or_else(|| "(no fix yet)".into()),
                h.advisory.clone(),
                h.feed.clone(),
            ]
        },
    )?;
    if !json {
        let images: std::collections::BTreeSet<&str> =
            hits.iter().map(|h| h.image.as_str()).collect();
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
    let (_, inv) = catalog.current_inventory(image)?;
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
