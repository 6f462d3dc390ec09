//! Debian packages from dpkg's database: `/var/lib/dpkg/status` and the distroless
//! `/var/lib/dpkg/status.d/*` files (one stanza per file, often without a Status field).

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::analyzers::deb822;
use crate::model::{Inventory, Package, PackageKind};

#[derive(Default)]
pub struct Dpkg {
    /// Whether the walk met `/var/lib/dpkg/status` at all.
    seen_status: bool,
}

const STATUS: &str = "/var/lib/dpkg/status";

impl Analyzer for Dpkg {
    fn name(&self) -> &'static str {
        "dpkg"
    }
    fn version(&self) -> u32 {
        // 2: Provides and Depends are recorded. 3: a missing or unreadable status on a
        // Debian-family system is an unknown.
        3
    }
    fn patterns(&self) -> &'static [PathPattern] {
        &[
            PathPattern::Exact(STATUS),
            PathPattern::Child("/var/lib/dpkg/status.d", ""),
        ]
    }
    fn max_bytes(&self) -> u64 {
        256 << 20
    }
    fn analyze(&mut self, offer: &Offer<'_>, inv: &mut Inventory) -> Result<(), String> {
        self.seen_status |= offer.path == STATUS;
        let Some(data) = offer.data else {
            if offer.path == STATUS {
                return Err("not a regular file: no package read from it".into());
            }
            return Ok(());
        };
        if offer.path.ends_with(".md5sums") || offer.path.ends_with(".preinst") {
            return Ok(());
        }
        let distroless = offer.path != STATUS;
        let (pkgs, problems) = parse_status(data, offer.path, distroless);
        inv.packages.extend(pkgs);
        crate::analyzer::problems_to_unknowns(inv, offer.path, "dpkg", problems);
        Ok(())
    }
    /// A Debian-family system without a readable package database says so: its packages
    /// are unknown, not none.
    fn finish(&mut self, inv: &mut Inventory) {
        let debian = inv.os.as_ref().is_some_and(|o| {
            o.id == "debian" || o.id == "ubuntu" || o.id_like.iter().any(|l| l == "debian")
        });
        let any_deb = inv.packages.iter().any(|p| p.kind == PackageKind::Deb);
        if debian && !self.seen_status && !any_deb {
            inv.unknowns.push(crate::model::Unknown {
                path: STATUS.into(),
                analyzer: "dpkg".into(),
                reason: "missing or unreadable on a Debian-family system: its packages are \
                         unknown"
                    .into(),
            });
        }
    }
}

/// A relation field split into its comma-separated groups, blanks normalised.
pub fn relations(field: Option<&str>) -> Vec<String> {
    field
        .map(|v| {
            v.split(',')
                .map(|g| g.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|g| !g.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Installed packages from one status file, plus a reason for every stanza left out for
/// being malformed (not for being uninstalled).
pub fn parse_status(data: &[u8], db: &str, status_optional: bool) -> (Vec<Package>, Vec<String>) {
    let text = String::from_utf8_lossy(data);
    let (stanzas, errors) = deb822::parse(&text);
    let mut problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let mut out = Vec::new();
    for s in stanzas {
        let Some(name) = s.get("Package").filter(|n| !n.is_empty()) else {
            problems.push(format!("stanza at line {} has no Package field", s.line));
            continue;
        };
        // A malformed version is reported whatever the package's state; a missing one
        // only matters for an installed package (purged ones legitimately have none).
        let version = s.get("Version").filter(|v| !v.is_empty());
        if let Some(v) = version {
            if let Err(e) = check_version(v) {
                problems.push(format!(
                    "package {name} at line {}: version {v:?}: {e}",
                    s.line
                ));
                continue;
            }
        }
        let installed = match s.get("Status") {
            Some(st) => is_installed(st),
            None => status_optional,
        };
        if !installed {
            continue;
        }
        let Some(version) = version else {
            problems.push(format!("package {name} at line {} has no Version", s.line));
            continue;
        };
        let (source_name, source_version) = match s.get("Source") {
            Some(src) if !src.is_empty() => match src.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim_end_matches(')').trim().to_string(),
                ),
                None => (src.trim().to_string(), version.to_string()),
            },
            _ => (name.to_string(), version.to_string()),
        };
        out.push(Package {
            kind: PackageKind::Deb,
            name: name.to_string(),
            version: version.to_string(),
            epoch: None,
            release: None,
            arch: s.get("Architecture").unwrap_or_default().to_string(),
            source_name,
            source_version,
            source_rpm: None,
            license: None,
            provides: relations(s.get("Provides")),
            depends: relations(s.get("Pre-Depends"))
                .into_iter()
                .chain(relations(s.get("Depends")))
                .collect(),
            module: None,
            db: db.to_string(),
        });
    }
    (out, problems)
}

/// dpkg's notion of "installed": want install or hold, no error flag, state installed.
pub fn is_installed(status: &str) -> bool {
    let w: Vec<&str> = status.split_whitespace().collect();
    matches!(w.as_slice(), [want, "ok", "installed"] if *want == "install" || *want == "hold")
}

/// The checks dpkg makes before accepting a version (lib/dpkg/parsehelp.c), so that what
/// dpkg-query drops, we drop too.
pub fn check_version(v: &str) -> Result<(), &'static str> {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) || e.parse::<i32>().is_err() {
            return Err("epoch is not a number");
        }
        if rest.is_empty() {
            return Err("nothing after colon in version number");
        }
    }
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    if upstream.is_empty() {
        return Err("version number is empty");
    }
    if revision == Some("") {
        return Err("revision number is empty");
    }
    if !upstream
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
    {
        return Err("invalid character in version number");
    }
    if let Some(r) = revision {
        if !r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        {
            return Err("invalid character in revision number");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_with_version_and_status_filter() {
        let st = b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl (3.0.11-1)\nVersion: 3.0.11-1~deb12u2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: held\nStatus: hold ok installed\nVersion: 2\n";
        let (p, problems) = parse_status(st, STATUS, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].source_name.as_str(), p[0].source_version.as_str()),
            ("openssl", "3.0.11-1")
        );
        assert_eq!(
            (p[1].name.as_str(), p[1].source_version.as_str()),
            ("held", "2")
        );
    }

    #[test]
    fn invalid_versions_are_reported_and_dropped() {
        assert_eq!(
            check_version("1:5.#"),
            Err("invalid character in version number")
        );
        assert_eq!(
            check_version("1:"),
            Err("nothing after colon in version number")
        );
        assert_eq!(check_version("x:1"), Err("epoch is not a number"));
        assert_eq!(check_version("1.0-"), Err("revision number is empty"));
        assert_eq!(check_version("2:1.0~rc1+dfsg-3ubuntu1.2"), Ok(()));
    }
}
