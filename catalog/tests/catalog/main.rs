//! Catalog tests: inventories, feeds, runs and diffs on both backends (`both!` runs a
//! test once on a sled directory, once on a PostgreSQL database), and what only the
//! shared PostgreSQL catalog has (`postgres.rs`).

mod diff;
mod feeds;
mod labels;
mod postgres;
mod queue;
mod runs;
mod store;

/// An inventory of one image holding one openssl package.
pub fn inv(path: &str, openssl: &str) -> coldpatch_collector::Inventory {
    let mut inv = coldpatch_collector::Inventory::default();
    inv.image.path = path.into();
    inv.image.format = "qcow2".into();
    inv.packages = vec![coldpatch_collector::Package {
        arch: "amd64".into(),
        ..coldpatch_collector::Package::new(
            coldpatch_collector::PackageKind::Deb,
            "openssl",
            openssl,
        )
    }];
    inv
}

/// Packages only: what the run and label tests record.
pub const OPTS: coldpatch_catalog::ScanOptions = coldpatch_catalog::ScanOptions {
    files: false,
    hash: false,
};
