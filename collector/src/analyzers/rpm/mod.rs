//! Installed rpm packages from the package database in any of its three forms: SQLite
//! (rpm >= 4.16), BerkeleyDB hash (older), NDB (SUSE), at /var/lib/rpm or
//! /usr/lib/sysimage/rpm.
//!
//! Written here rather than with the `rpmdb` crate: it indexes page buffers without bounds
//! checks (a crafted database panics it) and reports a missing epoch as 0, which is not the
//! same version to rpm.

pub mod bdb;
pub mod header;
pub mod ndb;
pub mod sqlite;

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::model::{Inventory, Package, PackageKind};

pub use header::RpmHeader;

#[derive(Default)]
pub struct Rpm {
    /// Every database found, with its rank in `PATTERNS`; the best-ranked one is kept
    /// (/var/lib/rpm is often a link to the sysimage path, and a migrated system may keep
    /// an old Packages file beside rpmdb.sqlite).
    found: Vec<(usize, String, Vec<RpmHeader>, Vec<String>)>,
}

const PATTERNS: &[PathPattern] = &[
    PathPattern::Exact("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
    PathPattern::Exact("/usr/lib/sysimage/rpm/Packages.db"),
    PathPattern::Exact("/usr/lib/sysimage/rpm/Packages"),
    PathPattern::Exact("/var/lib/rpm/rpmdb.sqlite"),
    PathPattern::Exact("/var/lib/rpm/Packages.db"),
    PathPattern::Exact("/var/lib/rpm/Packages"),
];

/// Reads every package header from a database file's bytes, whatever its format.
/// Headers that fail to parse are returned as reasons beside the good ones.
pub fn read_database(data: &[u8]) -> Result<(Vec<RpmHeader>, Vec<String>), String> {
    let blobs = if data.is_empty() {
        return Err("empty file".into());
    } else if sqlite::is_sqlite(data) {
        sqlite::values(data)?
    } else if ndb::is_ndb(data) {
        ndb::values(data)?
    } else if bdb::is_bdb(data) {
        bdb::values(data)?
    } else {
        return Err("not an rpm database (no SQLite, NDB or BerkeleyDB magic)".into());
    };
    let mut headers = Vec::with_capacity(blobs.len());
    let mut problems = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        match header::parse(b) {
            Ok(h) => headers.push(h),
            Err(e) => problems.push(format!("record {i}: {e}")),
        }
    }
    Ok((headers, problems))
}

/// "openssl-3.0.7-27.el9.src.rpm" -> ("openssl", "3.0.7-27.el9").
pub fn split_sourcerpm(s: &str) -> Option<(String, String)> {
    let base = s.strip_suffix(".rpm")?;
    let base = base
        .strip_suffix(".src")
        .or_else(|| base.strip_suffix(".nosrc"))?;
    let (nv, release) = base.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    Some((name.to_string(), format!("{version}-{release}")))
}

/// The module stream of a MODULARITYLABEL ("name:stream:version:context" -> "name:stream").
fn module_stream(label: &str) -> Option<String> {
    let mut parts = label.split(':');
    let (Some(name), Some(stream)) = (parts.next(), parts.next()) else {
        return None;
    };
    (!name.is_empty() && !stream.is_empty()).then(|| format!("{name}:{stream}"))
}

pub fn to_package(h: RpmHeader, db: &str) -> Package {
    let (source_name, source_version) = h
        .sourcerpm
        .as_deref()
        .and_then(split_sourcerpm)
        .unwrap_or_else(|| (h.name.clone(), format!("{}-{}", h.version, h.release)));
    Package {
        kind: PackageKind::Rpm,
        name: h.name,
        version: h.version,
        epoch: h.epoch,
        release: Some(h.release),
        arch: h.arch.unwrap_or_default(),
        source_name,
        source_version,
        source_rpm: h.sourcerpm,
        license: h.license,
        provides: Vec::new(),
        depends: Vec::new(),
        module: h.modularitylabel.as_deref().and_then(module_stream),
        db: db.to_string(),
    }
}

impl Analyzer for Rpm {
    fn name(&self) -> &'static str {
        "rpm"
    }
    fn version(&self) -> u32 {
        1
    }
    fn patterns(&self) -> &'static [PathPattern] {
        PATTERNS
    }
    fn max_bytes(&self) -> u64 {
        1 << 30
    }
    fn analyze(&mut self, offer: &Offer<'_>, _inv: &mut Inventory) -> Result<(), String> {
        let Some(data) = offer.data else {
            return Ok(());
        };
        let (headers, problems) = read_database(data)?;
        let rank = PATTERNS
            .iter()
            .position(|p| p.matches(offer.path))
            .unwrap_or(usize::MAX);
        self.found
            .push((rank, offer.path.to_string(), headers, problems));
        Ok(())
    }

    fn finish(&mut self, inv: &mut Inventory) {
        self.found.sort_by_key(|f| f.0);
        let Some((_, path, headers, problems)) = self.found.drain(..).next() else {
            return;
        };
        inv.packages
            .extend(headers.into_iter().map(|h| to_package(h, &path)));
        crate::analyzer::problems_to_unknowns(inv, &path, "rpm", problems);
    }
}
