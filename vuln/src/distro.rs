//! Naming a distribution release the same way from both sides: from an image's
//! os-release, and from the way each feed names releases (OSV ecosystems, Debian
//! codenames, secdb `v3.15`).

use coldpatch_collector::PackageKind;

use crate::model::{Distro, NameKind};

/// Debian codenames and their release numbers; `sid` is "unstable".
const DEBIAN: &[(&str, &str)] = &[
    ("buzz", "1.1"),
    ("rex", "1.2"),
    ("bo", "1.3"),
    ("hamm", "2.0"),
    ("slink", "2.1"),
    ("potato", "2.2"),
    ("woody", "3.0"),
    ("sarge", "3.1"),
    ("etch", "4"),
    ("lenny", "5"),
    ("squeeze", "6"),
    ("wheezy", "7"),
    ("jessie", "8"),
    ("stretch", "9"),
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
    ("duke", "15"),
    ("sid", "unstable"),
];

/// The release number of a Debian codename.
pub fn debian_release(codename: &str) -> Option<&'static str> {
    DEBIAN
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(codename))
        .map(|(_, n)| *n)
}

/// The package manager whose version order a distribution family uses.
pub fn family_kind(family: &str) -> Option<PackageKind> {
    match family {
        "debian" | "ubuntu" | "ubuntu-pro" => Some(PackageKind::Deb),
        "alpine" => Some(PackageKind::Apk),
        "rocky" | "almalinux" | "rhel" | "centos" | "fedora" | "ol" | "amzn" | "opensuse"
        | "sles" | "mariner" | "azurelinux" => Some(PackageKind::Rpm),
        _ => None,
    }
}

/// Which name advisories of a family key on: Debian and Ubuntu advisories name source
/// packages, Alpine's name origins, the rpm feeds read here name binary packages.
pub fn family_name_kind(family: &str) -> NameKind {
    match family_kind(family) {
        Some(PackageKind::Rpm) => NameKind::Binary,
        _ => NameKind::Source,
    }
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The release an image runs, from its os-release fields. Releases are cut to what feeds
/// key on: Debian's major number (or "unstable" for testing/sid without VERSION_ID),
/// Ubuntu's YY.MM, Alpine's major.minor, Enterprise Linux majors.
pub fn from_os_release(id: &str, version_id: &str, codename: &str) -> Option<Distro> {
    let id = id.trim().to_ascii_lowercase();
    let v = version_id.trim();
    let release = match id.as_str() {
        "debian" => {
            if v.is_empty() {
                // testing and sid carry no VERSION_ID.
                match debian_release(codename) {
                    Some(n) if !codename.is_empty() => n.to_string(),
                    _ => "unstable".to_string(),
                }
            } else {
                major(v).to_string()
            }
        }
        "ubuntu" | "alpine" => {
            if v.is_empty() {
                return None;
            }
            major_minor(v)
        }
        "rocky" | "almalinux" | "rhel" | "centos" | "ol" => {
            if v.is_empty() {
                return None;
            }
            major(v).to_string()
        }
        _ => {
            if v.is_empty() {
                return None;
            }
            v.to_string()
        }
    };
    Some(Distro::new(&id, &release))
}

/// An OSV ecosystem string as a distribution release: `Debian:11`, `Ubuntu:22.04:LTS`,
/// `Ubuntu:Pro:18.04:LTS`, `Alpine:v3.15`, `Rocky Linux:9`, `AlmaLinux:8`. `None` for
/// language ecosystems and for distribution names without a release, which say nothing
/// about any one image.
pub fn from_osv_ecosystem(eco: &str) -> Option<Distro> {
    let mut parts = eco.split(':');
    let name = parts.next()?.trim();
    let rest: Vec<&str> = parts.collect();
    let (family, release) = match name {
        "Debian" => ("debian", rest.first()?.to_string()),
        "Ubuntu" => {
            // Ubuntu:22.04:LTS, Ubuntu:Pro:18.04:LTS, Ubuntu:Pro:FIPS:20.04:LTS. Pro (ESM)
            // fixes need a Pro subscription, which an image is not known to have: they
            // are kept apart as `ubuntu-pro`.
            let v = rest
                .iter()
                .find(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
            let fam = if rest.iter().any(|p| p.starts_with("Pro")) {
                "ubuntu-pro"
            } else {
                "ubuntu"
            };
            (fam, v.to_string())
        }
        "Alpine" => ("alpine", rest.first()?.trim_start_matches('v').to_string()),
        "Rocky Linux" => ("rocky", major(rest.first()?).to_string()),
        "AlmaLinux" => ("almalinux", major(rest.first()?).to_string()),
        // Red Hat:enterprise_linux:9::appstream. The EUS/AUS/E4S streams
        // (rhel_eus:8.4 …) follow their own minor releases; an image's os-release does
        // not say which stream it follows, so they are not matched.
        "Red Hat" => match rest.as_slice() {
            ["enterprise_linux", v, ..] => ("rhel", major(v).to_string()),
            _ => return None,
        },
        _ => return None,
    };
    if release.is_empty() {
        return None;
    }
    Some(Distro::new(family, &release))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_is_cut_to_what_feeds_key_on() {
        let d = |i, v, c| from_os_release(i, v, c).map(|d| d.to_string());
        assert_eq!(d("debian", "11", "bullseye").as_deref(), Some("debian:11"));
        assert_eq!(d("debian", "", "trixie").as_deref(), Some("debian:13"));
        assert_eq!(d("debian", "", "").as_deref(), Some("debian:unstable"));
        assert_eq!(
            d("ubuntu", "22.04", "jammy").as_deref(),
            Some("ubuntu:22.04")
        );
        assert_eq!(d("alpine", "3.15.4", "").as_deref(), Some("alpine:3.15"));
        assert_eq!(d("rocky", "9.3", "").as_deref(), Some("rocky:9"));
        assert_eq!(d("almalinux", "8.8", "").as_deref(), Some("almalinux:8"));
        assert_eq!(d("alpine", "", ""), None);
    }

    #[test]
    fn osv_ecosystems() {
        let e = |s| from_osv_ecosystem(s).map(|d| d.to_string());
        assert_eq!(e("Debian:7").as_deref(), Some("debian:7"));
        assert_eq!(e("Ubuntu:22.04:LTS").as_deref(), Some("ubuntu:22.04"));
        assert_eq!(
            e("Ubuntu:Pro:18.04:LTS").as_deref(),
            Some("ubuntu-pro:18.04")
        );
        assert_eq!(e("Alpine:v3.15").as_deref(), Some("alpine:3.15"));
        assert_eq!(e("Rocky Linux:9").as_deref(), Some("rocky:9"));
        assert_eq!(e("AlmaLinux:8").as_deref(), Some("almalinux:8"));
        assert_eq!(
            e("Red Hat:enterprise_linux:9::appstream").as_deref(),
            Some("rhel:9")
        );
        assert_eq!(e("Red Hat:rhel_eus:8.4::appstream"), None);
        assert_eq!(e("PyPI"), None);
        assert_eq!(e("Debian"), None);
    }
}
