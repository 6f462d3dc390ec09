//! Software bills of materials of an image inventory: CycloneDX 1.6 JSON and SPDX 2.3
//! JSON, every package with its package URL (`pkg:deb/debian/…?distro=debian-11`,
//! `pkg:rpm/rocky/…`, `pkg:apk/alpine/…`).
//!
//! The documents are written as JSON values here rather than through the typed
//! serde-cyclonedx / serde-spdx crates: they add nothing the tests do not check against
//! the official schemas, and the CycloneDX crate's schema copy is not the official one.
//! Package URLs are built with the `packageurl` crate, which does the encoding.

use coldpatch_collector::{Inventory, OsInfo, Package, PackageKind};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    CycloneDx,
    Spdx,
}

impl std::str::FromStr for SbomFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cyclonedx" => Ok(SbomFormat::CycloneDx),
            "spdx" => Ok(SbomFormat::Spdx),
            _ => Err(format!("unknown SBOM format {s:?} (cyclonedx or spdx)")),
        }
    }
}

/// What a document needs besides the inventory: a creation time and a unique id, passed
/// in so that documents are reproducible in tests.
pub struct DocInfo {
    /// RFC 3339 UTC, seconds precision ("2026-11-22T05:49:15Z").
    pub created: String,
    pub uuid: String,
    pub tool_version: String,
}

impl DocInfo {
    pub fn now(tool_version: &str) -> DocInfo {
        DocInfo {
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            uuid: uuid::Uuid::new_v4().to_string(),
            tool_version: tool_version.to_string(),
        }
    }
}

/// The purl namespace and `distro` qualifier of an OS: ("debian", "debian-11").
fn distro_of(os: Option<&OsInfo>, kind: PackageKind) -> (String, Option<String>) {
    let fallback = match kind {
        PackageKind::Deb => "debian",
        PackageKind::Rpm => "redhat",
        PackageKind::Apk => "alpine",
    };
    match os {
        Some(o) if !o.id.is_empty() => {
            let ns = o.id.to_ascii_lowercase();
            let distro = (!o.version_id.is_empty()).then(|| format!("{ns}-{}", o.version_id));
            (ns, distro)
        }
        _ => (fallback.to_string(), None),
    }
}

/// The package URL of an installed package.
pub fn purl(p: &Package, os: Option<&OsInfo>) -> String {
    let (ns, distro) = distro_of(os, p.kind);
    let version = match p.kind {
        PackageKind::Rpm => match &p.release {
            Some(r) => format!("{}-{r}", p.version),
            None => p.version.clone(),
        },
        _ => p.version.clone(),
    };
    let build = || -> Result<String, packageurl::Error> {
        let mut u = packageurl::PackageUrl::new(p.kind.as_str(), p.name.as_str())?;
        u.with_namespace(ns.as_str())?;
        u.with_version(version.as_str())?;
        if !p.arch.is_empty() {
            u.add_qualifier("arch", p.arch.as_str())?;
        }
        if let (PackageKind::Rpm, Some(e)) = (p.kind, p.epoch) {
            u.add_qualifier("epoch", e.to_string())?;
        }
        if let Some(d) = &distro {
            u.add_qualifier("distro", d.as_str())?;
        }
        if !p.source_name.is_empty() && p.source_name != p.name {
            u.add_qualifier("upstream", p.source_name.as_str())?;
        }
        Ok(u.to_string())
    };
    // Names and versions come from package databases; a name purl cannot carry (empty)
    // still gets an identifier rather than failing the whole document.
    build().unwrap_or_else(|_| format!("pkg:{}/{ns}/invalid", p.kind.as_str()))
}

fn image_name(inv: &Inventory) -> String {
    std::path::Path::new(&inv.image.path)
        .file_name()
        .map_or_else(
            || inv.image.path.clone(),
            |n| n.to_string_lossy().into_owned(),
        )
}

fn properties(p: &Package) -> Vec<Value> {
    let mut v = vec![
        json!({"name": "coldpatch:package:type", "value": p.kind.as_str()}),
        json!({"name": "coldpatch:package:db", "value": p.db}),
    ];
    if !p.source_name.is_empty() {
        v.push(json!({"name": "coldpatch:package:source_name", "value": p.source_name}));
        v.push(json!({"name": "coldpatch:package:source_version", "value": p.source_version}));
    }
    v
}

/// CycloneDX 1.6 JSON. The image's OS is the described component; every package is a
/// library component it depends on.
pub fn cyclonedx(inv: &Inventory, info: &DocInfo) -> Value {
    let os = inv.os.as_ref();
    let os_ref = "os".to_string();
    let mut seen = std::collections::HashSet::new();
    let mut components = Vec::new();
    let mut refs = Vec::new();
    for p in &inv.packages {
        let purl = purl(p, os);
        // bom-refs must be unique; the same purl twice (a database listing a package
        // twice) gets a numbered ref.
        let mut bom_ref = purl.clone();
        let mut n = 1;
        while !seen.insert(bom_ref.clone()) {
            n += 1;
            bom_ref = format!("{purl}#{n}");
        }
        let mut c = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.full_version(),
            "purl": purl,
            "properties": properties(p),
        });
        if let Some(l) = p.license.as_deref().filter(|l| !l.is_empty()) {
            c["licenses"] = json!([{"license": {"name": l}}]);
        }
        refs.push(c["bom-ref"].clone());
        components.push(c);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", info.uuid),
        "version": 1,
        "metadata": {
            "timestamp": info.created,
            "tools": {"components": [{
                "type": "application",
                "name": "coldpatch",
                "version": info.tool_version,
            }]},
            "component": {
                "type": "operating-system",
                "bom-ref": os_ref,
                "name": os.map_or("unknown", |o| o.id.as_str()),
                "version": os.map_or("", |o| o.version_id.as_str()),
                "description": os.map_or("", |o| o.pretty_name.as_str()),
                "properties": [
                    {"name": "coldpatch:image:path", "value": inv.image.path},
                    {"name": "coldpatch:image:format", "value": inv.image.format},
                ],
            },
        },
        "components": components,
        "dependencies": [{"ref": os_ref, "dependsOn": refs}],
    })
}

/// SPDX 2.3 JSON. The document describes the OS package, which contains every installed
/// package. Licenses are NOASSERTION: package databases hold free-text license names,
/// not SPDX expressions; the raw text is kept in a comment.
pub fn spdx(inv: &Inventory, info: &DocInfo) -> Value {
    let os = inv.os.as_ref();
    let name = image_name(inv);
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-OperatingSystem",
        "name": os.map_or("unknown", |o| o.id.as_str()),
        "versionInfo": os.map_or("", |o| o.version_id.as_str()),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING_SYSTEM",
        "description": os.map_or("", |o| o.pretty_name.as_str()),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-OperatingSystem",
    })];
    for (i, p) in inv.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.full_version(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(p, os),
            }],
        });
        if !p.source_name.is_empty() {
            pkg["sourceInfo"] = json!(format!(
                "built package from: {} {}",
                p.source_name, p.source_version
            ));
        }
        if let Some(l) = p.license.as_deref().filter(|l| !l.is_empty()) {
            pkg["comment"] = json!(format!("license as recorded by the package database: {l}"));
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-OperatingSystem",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://coldpatch.invalid/spdx/{}-{}", name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-', "_"), info.uuid),
        "creationInfo": {
            "created": info.created,
            "creators": [format!("Tool: coldpatch-{}", info.tool_version)],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// The document of the given format.
pub fn document(format: SbomFormat, inv: &Inventory, info: &DocInfo) -> Value {
    match format {
        SbomFormat::CycloneDx => cyclonedx(inv, info),
        SbomFormat::Spdx => spdx(inv, info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageKind, name: &str, version: &str, release: Option<&str>) -> Package {
        Package {
            release: release.map(String::from),
            arch: "amd64".into(),
            source_name: "openssl".into(),
            ..Package::new(kind, name, version)
        }
    }

    #[test]
    fn purls_follow_the_spec() {
        let os = OsInfo {
            id: "debian".into(),
            version_id: "11".into(),
            ..OsInfo::default()
        };
        let p = pkg(PackageKind::Deb, "libssl1.1", "1.1.1w-0+deb11u1", None);
        assert_eq!(
            purl(&p, Some(&os)),
            "pkg:deb/debian/libssl1.1@1.1.1w-0%2Bdeb11u1?arch=amd64&distro=debian-11&upstream=openssl"
        );
        let mut r = pkg(PackageKind::Rpm, "openssl", "3.0.7", Some("27.el9"));
        r.epoch = Some(1);
        r.arch = "x86_64".into();
        let rocky = OsInfo {
            id: "rocky".into(),
            version_id: "9.3".into(),
            ..OsInfo::default()
        };
        assert_eq!(
            purl(&r, Some(&rocky)),
            "pkg:rpm/rocky/openssl@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
        );
    }
}
