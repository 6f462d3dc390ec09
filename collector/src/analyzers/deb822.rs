//! Stanzas of `Field: value` lines (deb822), as in dpkg's status file.
//!
//! Written here rather than taken from `debian-packaging`: that crate brings PGP, HTTP and
//! async stacks into the collector for a format this small, and we want hard limits and a
//! fuzz target on exactly the code that reads untrusted status files.

/// Most stanzas read from one file.
pub const MAX_STANZAS: usize = 1_000_000;
/// Most fields in one stanza.
pub const MAX_FIELDS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// 1-based line number of the stanza's first field.
    pub line: usize,
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of a field, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deb822Error {
    /// A line that is neither `Field: value` nor a continuation.
    BadLine(usize),
    TooMany(&'static str, usize),
}

impl std::fmt::Display for Deb822Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deb822Error::BadLine(n) => write!(f, "line {n} is neither a field nor a continuation"),
            Deb822Error::TooMany(what, n) => write!(f, "more than {n} {what}"),
        }
    }
}

/// Splits text into stanzas. A malformed line ends its stanza with an error for that stanza
/// only; the caller gets every good stanza plus the errors.
pub fn parse(text: &str) -> (Vec<Stanza>, Vec<Deb822Error>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut cur: Option<Stanza> = None;
    let mut broken = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            if let Some(s) = cur.take() {
                if !broken {
                    out.push(s);
                }
            }
            broken = false;
            if out.len() >= MAX_STANZAS {
                errors.push(Deb822Error::TooMany("stanzas", MAX_STANZAS));
                return (out, errors);
            }
            continue;
        }
        if broken {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match cur.as_mut().and_then(|s| s.fields.last_mut()) {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim_start());
                }
                None => {
                    errors.push(Deb822Error::BadLine(n));
                    broken = true;
                    cur = None;
                }
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            errors.push(Deb822Error::BadLine(n));
            broken = true;
            cur = None;
            continue;
        };
        let s = cur.get_or_insert_with(|| Stanza {
            line: n,
            fields: Vec::new(),
        });
        if s.fields.len() >= MAX_FIELDS {
            errors.push(Deb822Error::TooMany("fields in a stanza", MAX_FIELDS));
            broken = true;
            cur = None;
            continue;
        }
        s.fields.push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(s) = cur {
        if !broken {
            out.push(s);
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_and_continuations() {
        let (s, e) = parse("Package: a\nDescription: x\n more\n .\n\n\nPackage: b\n");
        assert!(e.is_empty());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("description"), Some("x\nmore\n."));
        assert_eq!(s[1].line, 7);
    }

    #[test]
    fn a_bad_line_drops_only_its_stanza() {
        let (s, e) = parse("Package: a\nthis is junk\nVersion: 1\n\nPackage: b\nVersion: 2\n");
        assert_eq!(e, vec![Deb822Error::BadLine(2)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].get("Package"), Some("b"));
    }
}
