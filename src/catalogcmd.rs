//! `coldpatch catalog info` and `coldpatch catalog copy`: what a catalog is, and moving
//! one between backends.

use std::process::ExitCode;

use anyhow::{Context, Result};
use coldpatch_catalog::copy::Counts;
use coldpatch_catalog::{Catalog, Location};

use crate::cli::{open_catalog, Unavailable};
use crate::output;

/// (label, count) rows of a count set, in the order a reader expects.
fn rows(c: &Counts) -> Vec<(&'static str, usize)> {
    vec![
        ("images", c.images),
        ("scans", c.scans),
        ("versions", c.versions),
        ("runs", c.runs),
        ("events", c.events),
        ("run images", c.run_images),
        ("feeds", c.feeds),
        ("advisories", c.advisories),
        ("repositories", c.repos),
        ("tokens", c.tokens),
        ("schedules", c.schedules),
    ]
}

pub fn info(catalog: &Catalog, json: bool) -> Result<ExitCode> {
    let info = catalog.info()?;
    if json {
        output::json(&info)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!("catalog         {}", info.catalog)?;
    crate::outln!("backend         {}", info.backend)?;
    crate::outln!("schema version  {}", info.schema_version)?;
    for (what, n) in rows(&info.counts) {
        crate::outln!("{what:<16}{n}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn open(at: &str) -> Result<Catalog> {
    let loc = Location::parse(at).map_err(|e| anyhow::Error::new(Unavailable(e.into())))?;
    open_catalog(&loc, None)
}

pub fn copy(from: &str, to: &str, json: bool) -> Result<ExitCode> {
    let src = open(from)?;
    let dst = open(to)?;
    let counts = src
        .copy_to(&dst)
        .with_context(|| format!("copying {} to {}", src.describe(), dst.describe()))?;
    if json {
        output::json(&serde_json::json!({
            "from": src.describe(),
            "to": dst.describe(),
            "copied": counts,
        }))?;
    } else {
        let what: Vec<String> = rows(&counts)
            .into_iter()
            .map(|(w, n)| format!("{n} {w}"))
            .collect();
        eprintln!(
            "copied {} to {}: {}",
            src.describe(),
            dst.describe(),
            what.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
