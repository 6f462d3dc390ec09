//! Planning an offline upgrade: from an image's inventory, its findings and a local
//! repository, which packages to install at which versions, or why it cannot be done.
//! What a plan is (steps, the advisories it fixes, refusals) is here; how one is made is
//! the image's package manager's (`pm/`): dpkg and apk. What to upgrade, from the request
//! and the findings, is common to them ([`targets`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use coldpatch_collector::{Package, PackageKind};
use coldpatch_vuln::version::compare;
use coldpatch_vuln::Finding;
use serde::{Deserialize, Serialize};

/// What to fix.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub packages: Vec<String>,
    pub advisories: Vec<String>,
    pub all_fixable: bool,
    /// Also every finding of this severity or worse that has a fix.
    pub min_severity: Option<coldpatch_vuln::Severity>,
    /// Also every installed package the repository has a newer version of (for the
    /// package's architecture): a fleet of several distributions, one request.
    pub all_upgradable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub package: String,
    pub arch: String,
    /// Installed version; `None` for a package new to the image.
    pub from: Option<String>,
    pub to: String,
    /// Why: "requested", an advisory id, "same source as X", "needed by X for R".
    pub reasons: Vec<String>,
    /// The package file, relative to the repository root.
    pub file: String,
    /// Its SHA-256 as indexed; checked again when the file is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// dpkg installs stage by stage: a package whose Pre-Depends names another planned
    /// package comes in a later stage, after that one is configured.
    #[serde(default)]
    pub stage: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The package manager that made it and installs it.
    #[serde(default = "deb")]
    pub kind: PackageKind,
    pub image: String,
    pub repository: String,
    pub steps: Vec<Step>,
    /// Advisories the plan fixes, with the packages they are found in.
    pub fixes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("nothing to do: {0}")]
    Nothing(String),
    #[error("{package} is not installed in the image")]
    NotInstalled { package: String },
    #[error("no version of {package} ({arch}) in the repository fixes {what}: it needs {needs}, the repository has {has}")]
    NoFix {
        package: String,
        arch: String,
        what: String,
        needs: String,
        has: String,
    },
    #[error("{package} would be downgraded from {installed} to {offered}")]
    Downgrade {
        package: String,
        installed: String,
        offered: String,
    },
    #[error(
        "{package} {version} needs {relation}, which neither the image nor the repository provides"
    )]
    Unsatisfied {
        package: String,
        version: String,
        relation: String,
    },
    /// `other`: the package and version that would be installed.
    #[error("{package} {version} {kind} {relation}, and {other} would be installed")]
    Conflict {
        package: String,
        version: String,
        kind: &'static str,
        relation: String,
        other: String,
    },
    #[error("the plan does not settle after {0} rounds of dependencies")]
    TooDeep(usize),
    #[error("only Debian and Alpine packages can be planned yet; the image has {0} packages")]
    Unsupported(String),
}

fn deb() -> PackageKind {
    PackageKind::Deb
}

/// Package name -> (the lowest version that fixes what was asked, for advisories; why).
pub(crate) type Wanted = BTreeMap<String, (Option<String>, Vec<String>)>;

/// What a request asks to upgrade in an image: named packages (which must be installed),
/// and the packages of every finding it names or its policy takes, with the version
/// that fixes each (the highest when several findings hit one package). Also the
/// advisories fixed, with their packages.
pub(crate) fn targets(
    kind: PackageKind,
    image: &str,
    installed: &[Package],
    findings: &[Finding],
    repo: &coldpatch_repo::RepoIndex,
    req: &Request,
) -> Result<(Wanted, BTreeMap<String, Vec<String>>), Refusal> {
    let by_name: BTreeMap<&str, &Package> =
        installed.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut wanted = Wanted::new();
    let mut fixes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in &req.packages {
        if !by_name.contains_key(name.as_str()) {
            return Err(Refusal::NotInstalled {
                package: name.clone(),
            });
        }
        wanted
            .entry(name.clone())
            .or_default()
            .1
            .push("requested".into());
    }
    if req.all_upgradable {
        for p in installed {
            let newer = repo.versions(&p.name).any(|r| {
                r.kind == kind
                    && r.file.is_some()
                    && (r.arch == p.arch || matches!(r.arch.as_str(), "all" | "noarch"))
                    && compare(kind, &r.version, &p.version) == Ordering::Greater
            });
            if newer {
                wanted
                    .entry(p.name.clone())
                    .or_default()
                    .1
                    .push("upgradable".into());
            }
        }
    }
    for f in findings {
        let by_policy = req.all_fixable || req.min_severity.is_some_and(|s| f.severity >= s);
        let asked = by_policy || req.advisories.iter().any(|a| f.of.names(a));
        if !asked {
            continue;
        }
        let Some(fixed) = &f.fixed else {
            if !by_policy {
                return Err(Refusal::NoFix {
                    package: f.package.to_string(),
                    arch: by_name
                        .get(&*f.package)
                        .map_or(String::new(), |p| p.arch.clone()),
                    what: f.of.advisory.clone(),
                    needs: "a fix".into(),
                    has: "none published".into(),
                });
            }
            continue;
        };
        let e = wanted.entry(f.package.to_string()).or_default();
        if e.0
            .as_ref()
            .is_none_or(|v| compare(kind, fixed, v) == Ordering::Greater)
        {
            e.0 = Some(fixed.clone());
        }
        e.1.push(f.of.advisory.clone());
        fixes
            .entry(f.of.advisory.clone())
            .or_default()
            .push(f.package.to_string());
    }
    for a in &req.advisories {
        if !findings.iter().any(|f| f.of.names(a)) {
            return Err(Refusal::Nothing(format!("{a} is not found in {image}")));
        }
    }
    if wanted.is_empty() {
        return Err(Refusal::Nothing(if req.all_upgradable {
            format!("nothing in {image} is upgradable from the repository")
        } else {
            format!("no fixable finding in {image}")
        }));
    }
    for v in fixes.values_mut() {
        let set: BTreeSet<String> = v.drain(..).collect();
        v.extend(set);
    }
    Ok((wanted, fixes))
}
