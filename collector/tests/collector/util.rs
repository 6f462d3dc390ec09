use std::path::{Path, PathBuf};

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
