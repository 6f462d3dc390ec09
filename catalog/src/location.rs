//! Where a catalog is: a directory (the embedded sled store) or a PostgreSQL URL
//! (`postgres://user@host:port/db`, `postgresql://…`, `?host=/run/postgresql` for a unix
//! socket). Parsing is `postgres::Config`'s; what is added here is what libpq does and
//! the Rust driver does not: the password from `PGPASSWORD` or the password file
//! (`PGPASSFILE`, else `~/.pgpass`, only when no one but its owner may read it, as libpq
//! insists), the user from `PGUSER` or the login name, and a description with the
//! password left out, which every message uses. No crate reads a pgpass file for
//! rust-postgres; its format is five colon-separated fields with `*` and `\` escapes.

use std::path::{Path, PathBuf};

use crate::error::{CatalogError, Result};

#[derive(Clone)]
pub enum Location {
    Dir(PathBuf),
    Postgres(Box<PgLocation>),
}

/// A PostgreSQL catalog: the driver's configuration (password included) and its
/// description (password left out).
#[derive(Clone)]
pub struct PgLocation {
    pub(crate) config: postgres::Config,
    shown: String,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "Dir({})", d.display()),
            Location::Postgres(p) => write!(f, "Postgres({})", p.shown),
        }
    }
}

/// Whether a catalog argument names PostgreSQL rather than a directory.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `s` with any password (`user:secret@`, `password=secret`) replaced by `***`.
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let auth_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..auth_end].rfind('@') {
            if let Some(colon) = out[rest..rest + at].find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(i) = lower.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
    }
    out
}

impl Location {
    /// A URL is PostgreSQL, anything else a directory.
    pub fn parse(s: &str) -> Result<Location> {
        if !is_url(s) {
            return Ok(Location::Dir(PathBuf::from(s)));
        }
        let bad = |why: String| CatalogError::Location {
            catalog: redact(s),
            why,
        };
        let mut config: postgres::Config = s
            .parse()
            .map_err(|e: postgres::Error| bad(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .ok()
                .filter(|u| !u.is_empty())
                .or_else(login_name)
                .ok_or_else(|| bad("no user in the URL, PGUSER or the login".into()))?;
            config.user(&user);
        }
        if config.get_hosts().is_empty() {
            config.host_path("/run/postgresql");
        }
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or_default().to_string();
            config.dbname(&user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_password().is_none() {
            if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
                config.password(p.as_encoded_bytes());
            } else if let Some(p) = pgpass_password(&config) {
                config.password(p);
            }
        }
        config.application_name("coldpatch");
        let shown = show(&config);
        Ok(Location::Postgres(Box::new(PgLocation { config, shown })))
    }

    /// The catalog as messages name it.
    pub fn describe(&self) -> String {
        match self {
            Location::Dir(d) => format!("sled catalog at {}", d.display()),
            Location::Postgres(p) => format!("PostgreSQL catalog {}", p.shown),
        }
    }
}

impl PgLocation {
    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn login_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// `postgres://user@host:port/db` (or `postgres://user@/db?host=/dir`) from the config.
fn show(c: &postgres::Config) -> String {
    let user = c.get_user().unwrap_or_default();
    let db = c.get_dbname().unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => format!("postgres://{user}@{h}:{port}/{db}"),
        Some(postgres::config::Host::Unix(dir)) => {
            format!("postgres://{user}@/{db}?host={}&port={port}", dir.display())
        }
        None => format!("postgres://{user}@/{db}"),
    }
}

/// The host name a password file entry is matched against: a socket directory counts as
/// `localhost`, as libpq does.
fn pgpass_host(c: &postgres::Config) -> String {
    match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    }
}

fn pgpass_password(c: &postgres::Config) -> Option<Vec<u8>> {
    let file = match std::env::var_os("PGPASSFILE") {
        Some(f) => PathBuf::from(f),
        None => dirs_home()?.join(".pgpass"),
    };
    let text = read_private(&file)?;
    let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [
        pgpass_host(c),
        port,
        c.get_dbname().unwrap_or_default().to_string(),
        c.get_user().unwrap_or_default().to_string(),
    ];
    pgpass_lookup(&text, &want).map(String::into_bytes)
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// A password file, unless others may read it (then libpq ignores it, and so do we).
fn read_private(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line whose four first fields match `want` (host, port,
/// database, user; `*` matches anything).
pub fn pgpass_lookup(text: &str, want: &[String; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_leaves_no_password() {
        assert_eq!(
            redact("postgres://u:s3cret@db:5432/cat"),
            "postgres://u:***@db:5432/cat"
        );
        assert_eq!(
            redact("postgresql://u@db/cat?password=s3cret&sslmode=disable"),
            "postgresql://u@db/cat?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@db/cat"), "postgres://u@db/cat");
        // An @ in the password still ends the user info at the last @.
        assert_eq!(redact("postgres://u:a@b@db/cat"), "postgres://u:***@db/cat");
    }

    #[test]
    fn described_urls_never_show_the_password() {
        let l = Location::parse("postgres://alice:s3cret@db.example:6543/fleet").expect("parse");
        assert_eq!(
            l.describe(),
            "PostgreSQL catalog postgres://alice@db.example:6543/fleet"
        );
        let l = Location::parse("postgresql://bob@/fleet?host=/tmp/pg&password=x").expect("parse");
        assert_eq!(
            l.describe(),
            "PostgreSQL catalog postgres://bob@/fleet?host=/tmp/pg&port=5432"
        );
        assert!(matches!(
            Location::parse("/var/lib/coldpatch"),
            Ok(Location::Dir(_))
        ));
        match Location::parse("postgres://u:s3cret@db:notaport/x") {
            Err(e) => {
                let text = format!("{e}");
                assert!(!text.contains("s3cret"), "{text}");
                assert!(text.contains("postgres://u:***@db:notaport/x"), "{text}");
            }
            Ok(_) => panic!("a bad port parsed"),
        }
    }

    #[test]
    fn password_file_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:*:alice:wrong\n\
                    db:*:fleet:alice:pa\\:ss:word\n\
                    *:*:*:*:fallback\n";
        let want = |h: &str, u: &str| {
            [
                h.to_string(),
                "5432".to_string(),
                "fleet".to_string(),
                u.to_string(),
            ]
        };
        assert_eq!(
            pgpass_lookup(text, &want("db", "alice")).as_deref(),
            Some("pa:ss:word")
        );
        assert_eq!(
            pgpass_lookup(text, &want("elsewhere", "carol")).as_deref(),
            Some("fallback")
        );
        assert_eq!(
            pgpass_lookup("db:5432:fleet:alice\n", &want("db", "alice")),
            None
        );
    }
}
