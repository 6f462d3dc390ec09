//! The OS identity: os-release first, then the older per-distribution release files.

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::model::{Inventory, OsInfo};

/// Sources in order of preference; a later one only fills in when no earlier one matched.
const PATTERNS: &[PathPattern] = &[
    PathPattern::Exact("/etc/os-release"),
    PathPattern::Exact("/usr/lib/os-release"),
    PathPattern::Exact("/etc/lsb-release"),
    PathPattern::Exact("/etc/redhat-release"),
    PathPattern::Exact("/etc/alpine-release"),
];

#[derive(Default)]
pub struct OsRelease {
    found: Vec<(usize, OsInfo)>,
}

impl Analyzer for OsRelease {
    fn name(&self) -> &'static str {
        "os-release"
    }
    fn version(&self) -> u32 {
        1
    }
    fn patterns(&self) -> &'static [PathPattern] {
        PATTERNS
    }
    fn max_bytes(&self) -> u64 {
        64 * 1024
    }

    fn analyze(&mut self, offer: &Offer<'_>, _inv: &mut Inventory) -> Result<(), String> {
        let Some(data) = offer.data else {
            return Ok(());
        };
        let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
        let rank = PATTERNS
            .iter()
            .position(|p| p.matches(offer.path))
            .unwrap_or(usize::MAX);
        let info = match offer.path {
            "/etc/os-release" | "/usr/lib/os-release" => parse_os_release(text),
            "/etc/lsb-release" => parse_lsb_release(text),
            "/etc/redhat-release" => parse_redhat_release(text),
            _ => Some(OsInfo {
                id: "alpine".into(),
                version_id: text.trim().to_string(),
                name: "Alpine Linux".into(),
                pretty_name: format!("Alpine Linux v{}", text.trim()),
                ..Default::default()
            }),
        };
        let mut info = info.ok_or_else(|| "no ID or NAME found".to_string())?;
        info.source = offer.path.to_string();
        self.found.push((rank, info));
        Ok(())
    }

    fn finish(&mut self, inv: &mut Inventory) {
        self.found.sort_by_key(|(rank, _)| *rank);
        inv.os = self.found.first().map(|(_, i)| i.clone());
    }
}

/// Reads KEY=value lines with shell quoting, as os-release(5) specifies.
pub fn shell_vars(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            let mut s = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    s.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    s.push(c);
                }
            }
            s
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            inner.to_string()
        } else {
            v.to_string()
        };
        out.push((k.trim().to_string(), v));
    }
    out
}

fn parse_os_release(text: &str) -> Option<OsInfo> {
    let mut info = OsInfo::default();
    for (k, v) in shell_vars(text) {
        match k.as_str() {
            "ID" => info.id = v,
            "VERSION_ID" => info.version_id = v,
            "NAME" => info.name = v,
            "PRETTY_NAME" => info.pretty_name = v,
            "VERSION_CODENAME" => info.version_codename = v,
            "ID_LIKE" => info.id_like = v.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    if info.id.is_empty() && info.name.is_empty() {
        return None;
    }
    if info.id.is_empty() {
        // os-release(5): ID defaults to "linux".
        info.id = "linux".into();
    }
    Some(info)
}

fn parse_lsb_release(text: &str) -> Option<OsInfo> {
    let mut info = OsInfo::default();
    for (k, v) in shell_vars(text) {
        match k.as_str() {
            "DISTRIB_ID" => {
                info.id = v.to_lowercase();
                info.name = v;
            }
            "DISTRIB_RELEASE" => info.version_id = v,
            "DISTRIB_CODENAME" => info.version_codename = v,
            "DISTRIB_DESCRIPTION" => info.pretty_name = v,
            _ => {}
        }
    }
    (!info.id.is_empty()).then_some(info)
}

/// "Rocky Linux release 9.4 (Blue Onyx)", "CentOS release 6.10 (Final)".
fn parse_redhat_release(text: &str) -> Option<OsInfo> {
    let line = text.lines().next()?.trim();
    let (name, rest) = line.split_once(" release ")?;
    let version = rest.split_whitespace().next()?.to_string();
    let id = match name {
        n if n.starts_with("Red Hat Enterprise Linux") => "rhel".to_string(),
        n if n.starts_with("CentOS") => "centos".to_string(),
        n if n.starts_with("Rocky") => "rocky".to_string(),
        n if n.starts_with("AlmaLinux") => "almalinux".to_string(),
        n if n.starts_with("Fedora") => "fedora".to_string(),
        n => n.split_whitespace().next().unwrap_or(n).to_lowercase(),
    };
    Some(OsInfo {
        id,
        version_id: version,
        name: name.to_string(),
        pretty_name: line.to_string(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_os_release_with_quotes() {
        let t = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let i = parse_os_release(t).expect("parses");
        assert_eq!(
            (
                i.id.as_str(),
                i.version_id.as_str(),
                i.version_codename.as_str()
            ),
            ("debian", "12", "bookworm")
        );
        assert_eq!(i.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn id_like_is_split_and_escapes_are_undone() {
        let t = "ID=rocky\nID_LIKE=\"rhel centos fedora\"\nNAME=\"Say \\\"hi\\\"\"\n";
        let i = parse_os_release(t).expect("parses");
        assert_eq!(i.id_like, vec!["rhel", "centos", "fedora"]);
        assert_eq!(i.name, "Say \"hi\"");
    }

    #[test]
    fn redhat_release_fallback() {
        let i = parse_redhat_release("CentOS Linux release 7.9.2009 (Core)\n").expect("parses");
        assert_eq!(
            (i.id.as_str(), i.version_id.as_str()),
            ("centos", "7.9.2009")
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(parse_os_release("hello world\n\0\0"), None);
        assert_eq!(parse_redhat_release(""), None);
    }
}
