//! Planning an offline upgrade: from an image's inventory, its findings and a local
//! repository, which packages to install at which versions, or why it cannot be done.
//! What a plan is (steps, the advisories it fixes, refusals) is here; how one is made is
//! the image's package manager's (`pm/`): dpkg today.

use std::collections::BTreeMap;

use coldpatch_collector::PackageKind;
use serde::{Deserialize, Serialize};

/// What to fix.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub packages: Vec<String>,
    pub advisories: Vec<String>,
    pub all_fixable: bool,
    /// Also every finding of this severity or worse that has a fix.
    pub min_severity: Option<coldpatch_vuln::Severity>,
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
    #[error("only Debian packages can be planned yet; the image has {0} packages")]
    Unsupported(String),
}

fn deb() -> PackageKind {
    PackageKind::Deb
}
