//! A scanned image's files by path, and the resolution of a path a package manager lists
//! (`/lib/x86_64-linux-gnu/libc.so.6`, through the merged-/usr symlink `/lib -> usr/lib`)
//! to the path the walk recorded, inside the guest only: from the stored link targets, an
//! absolute target meaning the guest's root.

use std::collections::HashMap;

use coldpatch_collector::{FileRecord, FileType};

/// Most symlinks followed resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

pub struct Tree<'a> {
    by: HashMap<&'a str, &'a FileRecord>,
}

/// `path` without `.`, `..` (never above the root) and empty components.
fn normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl<'a> Tree<'a> {
    pub fn new(files: &'a [FileRecord]) -> Tree<'a> {
        Tree {
            by: files.iter().map(|f| (f.path.as_str(), f)).collect(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&'a FileRecord> {
        self.by.get(path).copied()
    }

    /// The recorded path `path` names: every symlink on the way followed, the last
    /// component too only with `follow_last`. `None` if it loops or goes too deep.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<String> {
        let mut todo = normal(path);
        let mut links = 0;
        'again: loop {
            let parts: Vec<&str> = todo.split('/').filter(|c| !c.is_empty()).collect();
            let mut at = String::new();
            for (i, c) in parts.iter().enumerate() {
                let next = format!("{at}/{c}");
                let last = i + 1 == parts.len();
                match self.get(&next) {
                    Some(f) if f.kind == FileType::Symlink && (!last || follow_last) => {
                        links += 1;
                        if links > MAX_LINKS {
                            return None;
                        }
                        let target = f.target.as_deref().unwrap_or("");
                        let rest = parts[i + 1..].join("/");
                        let base = if target.starts_with('/') {
                            ""
                        } else {
                            at.as_str()
                        };
                        todo = normal(&format!("{base}/{target}/{rest}"));
                        continue 'again;
                    }
                    _ => at = next,
                }
            }
            return Some(if at.is_empty() { "/".to_string() } else { at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, kind: FileType, target: Option<&str>) -> FileRecord {
        FileRecord {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            ctime: None,
            target: target.map(str::to_string),
            sha256: None,
        }
    }

    #[test]
    fn merged_usr_links_resolve_inside_the_guest() {
        let files = vec![
            rec("/", FileType::Dir, None),
            rec("/lib", FileType::Symlink, Some("usr/lib")),
            rec("/usr", FileType::Dir, None),
            rec("/usr/lib", FileType::Dir, None),
            rec("/usr/lib/libc.so.6", FileType::File, None),
            rec("/usr/lib/up", FileType::Symlink, Some("../../../../etc")),
            rec("/etc", FileType::Dir, None),
            rec("/loop", FileType::Symlink, Some("/loop")),
        ];
        let t = Tree::new(&files);
        assert_eq!(
            t.resolve("/lib/libc.so.6", false).as_deref(),
            Some("/usr/lib/libc.so.6")
        );
        assert_eq!(t.resolve("/lib", false).as_deref(), Some("/lib"));
        assert_eq!(t.resolve("/lib", true).as_deref(), Some("/usr/lib"));
        // ".." stops at the guest's root.
        assert_eq!(t.resolve("/usr/lib/up", true).as_deref(), Some("/etc"));
        assert_eq!(t.resolve("/loop/x", false), None);
        assert_eq!(t.resolve("/.", false).as_deref(), Some("/"));
    }
}
