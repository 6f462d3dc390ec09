//! What the test suites share (a dev-dependency only): the real test images built by
//! `images/`, the peers' data in `../shared`, skips that count, and a catalog holding
//! real images and the repository's real Debian feeds.
//!
//! A test that cannot run here calls [`skip`]: locally it says why on stderr and adds a
//! line to the file `COLDPATCH_SKIP_LOG` names (`./run test` counts them in its closing
//! line); in CI (`CI=true`), where `./run test` has installed everything a test needs, a
//! skip is a failure.

pub mod pg;

use std::io::Write;
use std::path::{Path, PathBuf};

use coldpatch_catalog::Catalog;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Says that a test cannot run here and why; panics in CI.
pub fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and a test would be skipped: {why}");
    }
    eprintln!("SKIP: {why}");
    if let Some(log) = std::env::var_os("COLDPATCH_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{why}");
        }
    }
}

/// Builds (or finds cached) the named image set of images/ and returns its directory.
pub fn image_dir(name: &str) -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(root().join("images/build.sh"))
        .arg(name)
        .output()
        .expect("run images/build.sh");
    assert!(
        out.status.success(),
        "building {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    PathBuf::from(line.split_once(' ').map(|(_, d)| d).unwrap_or_default())
}

/// The peers data set (`../shared/testdata/peers`, or `COLDPATCH_PEERS`), or `None`
/// after a [`skip`] when this checkout has none.
pub fn peers() -> Option<PathBuf> {
    let p = match std::env::var_os("COLDPATCH_PEERS") {
        Some(p) => PathBuf::from(p),
        None => root().join("../shared/testdata/peers"),
    };
    if p.join("index.json").is_file() {
        Some(p)
    } else {
        skip(&format!(
            "peer test data not found at {} (set COLDPATCH_PEERS)",
            p.display()
        ));
        None
    }
}

/// A JSON file, or a panic naming it.
pub fn json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A string field of a JSON object ("" when absent).
pub fn s(v: &serde_json::Value, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}

/// A catalog in a fresh directory holding the named images (copied, so tests that patch
/// do not touch the cache) and the repository's real Debian feeds (tests/data/feeds).
/// Returns the directory, the catalog (in `<dir>/catalog`) and the images' keys.
pub fn catalog_with(images: &[&str]) -> (tempfile::TempDir, Catalog, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::open(&dir.path().join("catalog")).expect("catalog");
    let keys = fill(&catalog, dir.path(), images);
    (dir, catalog, keys)
}

/// [`catalog_with`] on either backend: fills `tc`'s catalog, with the images copied
/// into its scratch directory; returns the catalog and the images' keys.
pub fn catalog_on(tc: &pg::TestCatalog, images: &[&str]) -> (Catalog, Vec<String>) {
    let catalog = tc.open();
    let keys = fill(&catalog, tc.scratch(), images);
    (catalog, keys)
}

fn fill(catalog: &Catalog, dir: &Path, images: &[&str]) -> Vec<String> {
    let mut keys = Vec::new();
    for name in images {
        let src = image_dir(name).join("disk.qcow2");
        let dst = dir.join(format!("{name}.qcow2"));
        std::fs::copy(&src, &dst).expect("copy image");
        let opts = coldpatch_collector::CollectOptions::default();
        let (scan, _) = catalog
            .ingest(&dst, &opts, false, &mut |_, _| {})
            .expect("collect");
        assert!(scan.packages > 0);
        keys.push(dst.canonicalize().expect("path").display().to_string());
    }
    for feed in ["debian-tracker.json", "osv"] {
        let p = root().join("tests/data/feeds").join(feed);
        let data = coldpatch_vuln::feed::read(&p, None).expect("feed");
        let name = data.suggested_name.clone();
        catalog
            .import_feed(&name, &p.display().to_string(), 0, data)
            .expect("import");
    }
    keys
}
