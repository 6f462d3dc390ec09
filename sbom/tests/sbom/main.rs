//! SBOMs of real images validated against the official schemas:
//! - CycloneDX 1.6: the CycloneDX project's own schema files, as its Python library
//!   ships them (fetched from PyPI by images/tools.sh into ~/.cache/coldpatch/tools).
//! - SPDX 2.3: the spdx-spec JSON schema as the serde-spdx crate ships it (a
//!   dev-dependency, found through `cargo metadata`); the document must also
//!   deserialize into serde-spdx's types.

use coldpatch_testkit as util;

use std::path::PathBuf;

use coldpatch_collector::{collect, CollectOptions, Inventory};
use coldpatch_sbom::{cyclonedx, purl, spdx, DocInfo};
use serde_json::Value;

fn inventory(image: &str, file: &str) -> Inventory {
    let dir = util::image_dir(image);
    let opts = CollectOptions {
        files: false,
        hash: false,
        guestfs: false,
        ..CollectOptions::default()
    };
    collect(&dir.join(file), &opts).expect("collect")
}

fn info() -> DocInfo {
    DocInfo {
        created: "2026-11-22T05:49:15Z".into(),
        uuid: "6f1b8c52-3a57-4d0e-9a44-4f7a1c2d9e10".into(),
        tool_version: "0.1.0".into(),
    }
}

fn read(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("json")
}

fn tools() -> Option<PathBuf> {
    let p = std::env::var_os("COLDPATCH_TOOLS")
        .map(PathBuf::from)
        .or_else(|| dirs_home().map(|h| h.join(".cache/coldpatch/tools/current")))?;
    if p.join("cyclonedx").is_dir() {
        Some(p)
    } else {
        coldpatch_testkit::skip(&format!(
            "no schemas at {} (run images/tools.sh)",
            p.display()
        ));
        None
    }
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Validates against a schema whose external references are served from local files
/// only; anything else it refers to fails the build of the validator.
fn validate(schema: &Value, local: Vec<(String, Value)>, doc: &Value) {
    let v = jsonschema::options()
        .with_retriever(jsonschema_local(local))
        .build(schema)
        .expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(doc)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn cyclonedx_schema(tools: &std::path::Path) -> (Value, Vec<(String, Value)>) {
    let d = tools.join("cyclonedx");
    let local = ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"]
        .iter()
        .map(|n| (format!("http://cyclonedx.org/schema/{n}"), read(&d.join(n))))
        .collect();
    (read(&d.join("bom-1.6.SNAPSHOT.schema.json")), local)
}

/// serde-spdx's source, unpacked by cargo into its registry (it is a dev-dependency, so
/// it is there whenever this test was built).
fn spdx_schema() -> Value {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs_home().map(|h| h.join(".cargo")))
        .expect("cargo home");
    let mut found = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))
        .expect("registry")
        .flatten()
    {
        for c in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = c.file_name().to_string_lossy().into_owned();
            if name.starts_with("serde-spdx-0.10.") {
                found.push(c.path().join("schemas/spdx_2_3.json"));
            }
        }
    }
    found.sort();
    let schema = found.pop().expect("serde-spdx 0.10 in the cargo registry");
    read(&schema)
}

#[test]
fn cyclonedx_documents_are_valid_cyclonedx_1_6() {
    let Some(tools) = tools() else { return };
    let (schema, local) = cyclonedx_schema(&tools);
    for (image, file) in [
        ("debian-11-old", "disk.qcow2"),
        ("rpm-sample", "disk.qcow2"),
    ] {
        let inv = inventory(image, file);
        let doc = cyclonedx(&inv, &info());
        validate(&schema, local.clone(), &doc);
        let comps = doc["components"].as_array().expect("components");
        assert_eq!(comps.len(), inv.packages.len(), "{image}");
        for (c, p) in comps.iter().zip(&inv.packages) {
            assert_eq!(c["purl"].as_str(), Some(purl(p, inv.os.as_ref()).as_str()));
        }
    }
    // A document the schema must refuse, so the check above can fail.
    let mut bad = cyclonedx(&inventory("debian-11-old", "disk.qcow2"), &info());
    bad["components"][0]["type"] = "not-a-type".into();
    let v = jsonschema::options()
        .with_retriever(jsonschema_local(local))
        .build(&schema)
        .expect("schema");
    assert!(!v.is_valid(&bad));
}

fn jsonschema_local(local: Vec<(String, Value)>) -> impl jsonschema::Retrieve {
    struct L(Vec<(String, Value)>);
    impl jsonschema::Retrieve for L {
        fn retrieve(
            &self,
            uri: &jsonschema::Uri<String>,
        ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
            self.0
                .iter()
                .find(|(u, _)| *u == uri.as_str())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("no local copy of {}", uri.as_str()).into())
        }
    }
    L(local)
}

#[test]
fn spdx_documents_are_valid_spdx_2_3() {
    let schema = spdx_schema();
    for (image, file) in [
        ("debian-11-old", "disk.qcow2"),
        ("rpm-sample", "disk.qcow2"),
    ] {
        let inv = inventory(image, file);
        let doc = spdx(&inv, &info());
        validate(&schema, Vec::new(), &doc);
        let typed: serde_spdx::spdx::v_2_3::Spdx =
            serde_json::from_value(doc.clone()).expect("serde-spdx reads it");
        assert_eq!(
            typed.packages.map(|p| p.len()),
            Some(inv.packages.len() + 1)
        );
    }
    let mut bad = spdx(&inventory("debian-11-old", "disk.qcow2"), &info());
    bad["packages"][1]
        .as_object_mut()
        .expect("package")
        .remove("downloadLocation");
    let v = jsonschema::validator_for(&schema).expect("schema");
    assert!(!v.is_valid(&bad));
}
