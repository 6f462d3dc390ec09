//! The normalized advisory: what every feed format is turned into, and what the catalog
//! stores. Field changes here are format changes of the stored feeds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity on one scale for every feed. Feeds that carry none give `Unknown`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Negligible => "negligible",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub const ALL: [Severity; 6] = [
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Reads the words feeds use: Debian urgencies ("unimportant", "low**", "not yet
    /// assigned"), Ubuntu priorities, Red Hat and Alma summaries ("Important: …",
    /// "Moderate"). Anything else is `Unknown`.
    pub fn from_feed_word(word: &str) -> Severity {
        let w = word
            .trim()
            .trim_end_matches('*')
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match w.as_str() {
            "unimportant" | "negligible" | "none" => Severity::Negligible,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" | "important" => Severity::High,
            "critical" => Severity::Critical,
            _ => Severity::Unknown,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown severity {s:?} (expected unknown, negligible, low, medium, high or critical)")
            })
    }
}

/// A distribution release as advisories and images both name it: `debian:11`,
/// `ubuntu:22.04`, `alpine:3.15`, `rocky:9`, `almalinux:8`, `rhel:9`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Distro {
    pub family: String,
    pub release: String,
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.family, self.release)
    }
}

impl Distro {
    pub fn new(family: &str, release: &str) -> Distro {
        Distro {
            family: family.to_string(),
            release: release.to_string(),
        }
    }
}

/// Which package name an advisory entry means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameKind {
    /// Debian/Ubuntu source packages, Alpine origins.
    Source,
    /// rpm binary package names (OSV Rocky/AlmaLinux).
    Binary,
}

/// One affected range, bounds in the ecosystem's own version order. No `introduced`
/// means from the beginning; neither `fixed` nor `last_affected` means no fix yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
}

/// What an advisory says of one package in one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The release was never affected (Debian `fixed_version: 0`, secdb `0:`).
    NotAffected,
    /// Affected within these ranges or at these exact versions.
    Affected {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ranges: Vec<Range>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        versions: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    pub distro: Distro,
    pub package: String,
    pub name_kind: NameKind,
    #[serde(flatten)]
    pub status: Status,
    /// A per-release severity (Debian urgencies are per release); overrides the record's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Architectures the entry is limited to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// rpm modularity stream ("mariadb:10.3") the entry is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    /// CVE and other ids this advisory is, or covers (OSV `aliases` and `related`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    #[serde(default)]
    pub severity: Severity,
    /// RFC 3339, as the feed gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    pub affected: Vec<Affected>,
}

impl Advisory {
    /// Whether this advisory is, or covers, the given id (case-insensitive).
    pub fn names(&self, id: &str) -> bool {
        self.id.eq_ignore_ascii_case(id) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
    }
}

/// A record a feed file holds that could not be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The file (and, inside an archive or a large document, the member or key).
    pub place: String,
    pub reason: String,
}
