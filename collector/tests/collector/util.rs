use std::path::{Path, PathBuf};

/// Builds (or finds cached) the named image set of images/ and returns its directory.
pub fn image_dir(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = if root.join("images/build.sh").exists() {
        root
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
    };
    let out = std::process::Command::new("bash")
        .arg(root.join("images/build.sh"))
        .arg(name)
        .output()
        .expect("run images/build.sh");
    assert!(
        out.status.success(),
        "building {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    PathBuf::from(line.split_once(' ').map(|(_, d)| d).unwrap_or_default())
}

/// The peers data set, or None (with a message) when this checkout has no ../shared.
pub fn peers() -> Option<PathBuf> {
    let p = match std::env::var_os("COLDPATCH_PEERS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/peers"),
    };
    if p.join("index.json").is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: peer test data not found at {} (set COLDPATCH_PEERS)",
            p.display()
        );
        None
    }
}

pub fn json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn s(v: &serde_json::Value, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}
