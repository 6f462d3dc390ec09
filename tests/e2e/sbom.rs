//! `coldpatch sbom` on the real debian-12-server image against Trivy's CycloneDX SBOM of
//! the same tree (the debootstrap root the image was made from, kept by images/): the
//! same package set, name and version for name and version. Trivy comes from
//! images/tools.sh; without it the comparison is skipped with a message.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::util::image_dir;
use crate::{coldpatch, stderr};

fn trivy() -> Option<PathBuf> {
    let p = std::env::var_os("COLDPATCH_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/coldpatch/tools/current"))
        })?
        .join("trivy");
    if p.exists() {
        Some(p)
    } else {
        coldpatch_testkit::skip(&format!(
            "no trivy at {} (run images/tools.sh)",
            p.display()
        ));
        None
    }
}

fn libraries(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    doc["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            assert!(
                c["purl"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("pkg:deb/debian/")),
                "{c}"
            );
            (
                c["name"].as_str().expect("name").to_string(),
                c["version"].as_str().expect("version").to_string(),
            )
        })
        .collect()
}

#[test]
fn sbom_package_set_equals_trivys_on_the_same_tree() {
    let Some(trivy) = trivy() else { return };
    let dir = image_dir("debian-12-server");
    let data = tempfile::tempdir().expect("tempdir");
    let image = dir.join("disk.qcow2");
    let image = image.to_str().expect("utf8");
    let out = coldpatch(data.path(), &["collect", "--no-files", image]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours_path = data.path().join("ours.cdx.json");
    let out = coldpatch(
        data.path(),
        &[
            "sbom",
            image,
            "--format",
            "cyclonedx",
            "-o",
            ours_path.to_str().expect("utf8"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ours_path).expect("read")).expect("json");

    let theirs_path = data.path().join("trivy.cdx.json");
    let st = Command::new(trivy)
        .args([
            "rootfs",
            "--format",
            "cyclonedx",
            "--quiet",
            "--offline-scan",
            "--skip-db-update",
        ])
        .arg("--cache-dir")
        .arg(data.path().join("trivy-cache"))
        .arg("--output")
        .arg(&theirs_path)
        .arg(dir.join("root"))
        .status()
        .expect("run trivy");
    assert!(st.success());
    let theirs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&theirs_path).expect("read")).expect("json");

    let (a, b) = (libraries(&ours), libraries(&theirs));
    assert!(a.len() > 200, "{}", a.len());
    assert_eq!(
        a.symmetric_difference(&b).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "ours {} vs trivy {}",
        a.len(),
        b.len()
    );

    // SPDX of the same image through the CLI: one package per installed package, plus
    // the OS.
    let out = coldpatch(data.path(), &["sbom", image, "--format", "spdx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spdx: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["packages"].as_array().map(Vec::len), Some(a.len() + 1));
}
