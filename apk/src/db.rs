//! apk's installed database, `lib/apk/db/installed` (apk-installed(5)): one stanza per
//! package, one `X:value` line per field. The package's own fields come first; then its
//! paths: `F:` a directory (its owner and mode in `M:uid:gid:mode`), each `R:` a file or
//! symlink in it (`a:uid:gid:mode`, `Z:` the SHA-1 of its content, or of a symlink's
//! target). Without `M:` a directory is root's with mode 0755, without `a:` a file is
//! root's with mode 0644.

use crate::{bad, from_q1, ApkError};

/// Most packages, and most paths of one package.
pub const MAX_PACKAGES: usize = 100_000;
pub const MAX_PATHS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    /// Relative to the root, without a leading `/` (as apk writes it).
    pub path: String,
    pub dir: bool,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// SHA-1 of the content (of the target for a symlink); `None` for directories.
    pub sha1: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The package's fields before its paths, in order, as written.
    pub fields: Vec<(char, String)>,
    pub paths: Vec<PathEntry>,
}

impl Entry {
    pub fn get(&self, key: char) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn name(&self) -> &str {
        self.get('P').unwrap_or("")
    }

    pub fn version(&self) -> &str {
        self.get('V').unwrap_or("")
    }

    /// The package's identity (`C:`, the SHA-1 of its control member) in hex, as
    /// `scripts.tar` names it (`X1…`).
    pub fn identity_hex(&self) -> Option<String> {
        self.get('C').and_then(from_q1).map(hex::encode)
    }

    /// The space-separated atoms of a field (`D:`, `p:`, `i:`, `r:`).
    pub fn atoms(&self, key: char) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| *k == key)
            .flat_map(|(_, v)| v.split_whitespace())
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Database {
    pub entries: Vec<Entry>,
}

fn acl(v: &str, what: &str) -> Result<(u32, u32, u32), ApkError> {
    let p: Vec<&str> = v.split(':').collect();
    let n = |s: &str, radix| u32::from_str_radix(s, radix).ok();
    match p.as_slice() {
        [u, g, m, ..] => match (n(u, 10), n(g, 10), n(m, 8)) {
            (Some(u), Some(g), Some(m)) if m <= 0o7777 => Ok((u, g, m)),
            _ => Err(bad(format!("{what}: bad owner and mode {v:?}"))),
        },
        _ => Err(bad(format!("{what}: bad owner and mode {v:?}"))),
    }
}

impl Database {
    /// Parses the database. A line that is not `X:value` is an error naming its line.
    pub fn parse(text: &str) -> Result<Database, ApkError> {
        let mut entries = Vec::new();
        let mut cur = Entry::default();
        // The directory the next R: is in, and whether the last path line was a file.
        let mut dir = String::new();
        let mut last_file = false;
        for (i, line) in text.lines().enumerate() {
            let at = || format!("line {}", i + 1);
            if line.is_empty() {
                if !cur.fields.is_empty() || !cur.paths.is_empty() {
                    if entries.len() >= MAX_PACKAGES {
                        return Err(bad(format!("more than {MAX_PACKAGES} packages")));
                    }
                    entries.push(std::mem::take(&mut cur));
                }
                dir.clear();
                last_file = false;
                continue;
            }
            let mut ch = line.chars();
            let (Some(k), Some(':')) = (ch.next(), ch.next()) else {
                return Err(bad(format!("{}: not a field: {line:?}", at())));
            };
            let v = &line[k.len_utf8() + 1..];
            if cur.paths.len() >= MAX_PATHS {
                return Err(bad(format!("{}: more than {MAX_PATHS} paths", at())));
            }
            match k {
                'F' => {
                    dir = v.trim_end_matches('/').to_string();
                    cur.paths.push(PathEntry {
                        path: dir.clone(),
                        dir: true,
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                        sha1: None,
                    });
                    last_file = false;
                }
                'R' => {
                    let path = if dir.is_empty() {
                        v.to_string()
                    } else {
                        format!("{dir}/{v}")
                    };
                    cur.paths.push(PathEntry {
                        path,
                        dir: false,
                        uid: 0,
                        gid: 0,
                        mode: 0o644,
                        sha1: None,
                    });
                    last_file = true;
                }
                'M' | 'a' | 'Z' => {
                    let want_file = k != 'M';
                    let p = cur
                        .paths
                        .last_mut()
                        .filter(|_| last_file == want_file)
                        .ok_or_else(|| bad(format!("{}: {k}: without its path", at())))?;
                    match k {
                        'Z' => {
                            p.sha1 = Some(from_q1(v).ok_or_else(|| {
                                bad(format!("{}: Z: is not a Q1 checksum: {v:?}", at()))
                            })?);
                        }
                        _ => (p.uid, p.gid, p.mode) = acl(v, &at())?,
                    }
                }
                // Extended attributes of the path before: kept nowhere.
                'x' | 'X' if !cur.paths.is_empty() => {}
                _ if cur.paths.is_empty() => cur.fields.push((k, v.to_string())),
                _ => return Err(bad(format!("{}: field {k}: after the paths", at()))),
            }
        }
        if !cur.fields.is_empty() || !cur.paths.is_empty() {
            entries.push(cur);
        }
        Ok(Database { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_take_their_directory_and_defaults() {
        let db = Database::parse(
            "C:Q1VFqm8pEgmviZMrdh2eQiwneFlsw=\nP:x\nV:1-r0\nD:so:libc.musl-x86_64.so.1 y>=2\nF:etc\nM:0:0:700\nR:a\nZ:Q1SLkS9hBidUbPwwrw+XR0Whv3ww8=\nR:l\na:0:0:777\nZ:Q1SLkS9hBidUbPwwrw+XR0Whv3ww8=\n\nP:z\nV:2\n",
        )
        .expect("parse");
        assert_eq!(db.entries.len(), 2);
        let e = &db.entries[0];
        assert_eq!(
            e.identity_hex().as_deref(),
            Some("545aa6f291209af89932b761d9e422c2778596cc")
        );
        assert_eq!(e.atoms('D'), ["so:libc.musl-x86_64.so.1", "y>=2"]);
        assert_eq!(e.paths.len(), 3);
        assert_eq!((e.paths[0].mode, e.paths[0].dir), (0o700, true));
        assert_eq!(
            (e.paths[1].path.as_str(), e.paths[1].mode),
            ("etc/a", 0o644)
        );
        assert_eq!(e.paths[2].mode, 0o777);
        assert!(Database::parse("P:x\nF:etc\nP:y\n").is_err());
        assert!(Database::parse("P:x\nZ:Q1\n").is_err());
        assert!(Database::parse("nonsense\n").is_err());
    }
}
