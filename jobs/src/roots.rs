//! Where a server and its workers may reach on the host: the image roots (`--image-root`)
//! and repository roots (`--repo-root`). A path that arrives from a request, a stored
//! schedule or a queued job is resolved first (symlinks and `..` followed, by
//! `canonicalize`) and must then lie under one of the roots and be a regular file (an
//! image) or a directory (a repository). It is checked when the request arrives and again
//! when the job runs, since the file may have changed in between.
//!
//! Every refusal of a path reads the same, whether the path is missing, of another kind,
//! unreadable or outside the roots: the message repeats only what the caller sent, so an
//! answer or a run's event tells nothing about what exists on the host.
//!
//! A server started without roots opens no path at all; the CLI, run by the host's own
//! user, is not confined (it never goes through this module).

use std::path::{Path, PathBuf};

/// The roots a server or worker was started with (canonical).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots {
    images: Vec<PathBuf>,
    repos: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0:?}: refused: not an image file under this server's image roots")]
    Image(String),
    #[error("{0:?}: refused: not a repository directory under this server's repository roots")]
    Repo(String),
    #[error(
        "{0:?}: refused: this server opens no image path (it was started without \
         --image-root); restart it with --image-root DIR"
    )]
    NoImageRoots(String),
    #[error(
        "{0:?}: refused: this server opens no repository (it was started without \
         --repo-root); restart it with --repo-root DIR"
    )]
    NoRepoRoots(String),
    #[error("root {0}: {1}")]
    BadRoot(PathBuf, String),
}

impl Roots {
    /// Roots from the command line: each must be an existing directory; kept canonical.
    pub fn new(images: &[PathBuf], repos: &[PathBuf]) -> Result<Roots, Refused> {
        let canon = |dirs: &[PathBuf]| {
            dirs.iter()
                .map(|d| match d.canonicalize() {
                    Ok(c) if c.is_dir() => Ok(c),
                    Ok(_) => Err(Refused::BadRoot(d.clone(), "is not a directory".into())),
                    Err(e) => Err(Refused::BadRoot(d.clone(), e.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Roots {
            images: canon(images)?,
            repos: canon(repos)?,
        })
    }

    /// Roots that confine nothing: every path under `/` (tests of the queue itself, and a
    /// worker told `--image-root /`).
    pub fn everywhere() -> Roots {
        Roots {
            images: vec![PathBuf::from("/")],
            repos: vec![PathBuf::from("/")],
        }
    }

    pub fn images(&self) -> &[PathBuf] {
        &self.images
    }

    pub fn repos(&self) -> &[PathBuf] {
        &self.repos
    }

    /// The canonical path of an image file under the image roots.
    pub fn image(&self, name: &str) -> Result<String, Refused> {
        if self.images.is_empty() {
            return Err(Refused::NoImageRoots(name.to_string()));
        }
        under(&self.images, name, |m| m.is_file()).ok_or_else(|| Refused::Image(name.into()))
    }

    /// The canonical path of a repository directory under the repository roots.
    pub fn repo(&self, name: &str) -> Result<String, Refused> {
        if self.repos.is_empty() {
            return Err(Refused::NoRepoRoots(name.to_string()));
        }
        under(&self.repos, name, |m| m.is_dir()).ok_or_else(|| Refused::Repo(name.into()))
    }

    /// Whether a catalog image's path lies under the image roots (without touching it).
    pub fn covers_image(&self, path: &str) -> bool {
        self.images.iter().any(|r| Path::new(path).starts_with(r))
    }
}

/// A patch job's paths: every image under the image roots (as stored, so the patcher's
/// catalog keys still match) and the repository under the repository roots; returns the
/// repository's canonical path.
pub fn check_patch(roots: &Roots, images: &[String], repo: &str) -> Result<String, Refused> {
    for i in images {
        roots.image(i)?;
    }
    roots.repo(repo)
}

fn under(
    roots: &[PathBuf],
    name: &str,
    kind: impl Fn(&std::fs::Metadata) -> bool,
) -> Option<String> {
    let p = Path::new(name);
    if !p.is_absolute() || name.chars().any(char::is_control) {
        return None;
    }
    let real = p.canonicalize().ok()?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return None;
    }
    // `real` has no symlink left, so this is the file itself.
    let m = std::fs::metadata(&real).ok()?;
    kind(&m).then(|| real.to_str().map(str::to_string))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reads_the_same_and_symlinks_are_resolved_first() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("imgs");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("a.qcow2"), b"x").expect("write");
        std::os::unix::fs::symlink("/etc", root.join("etc")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("pw")).expect("symlink");
        std::fs::create_dir(root.join("dir")).expect("mkdir");
        let r = Roots::new(std::slice::from_ref(&root), &[]).expect("roots");
        let root_s = root.canonicalize().expect("canon").display().to_string();
        assert_eq!(
            r.image(&format!("{root_s}/a.qcow2")),
            Ok(format!("{root_s}/a.qcow2"))
        );
        for bad in [
            "/etc/shadow".to_string(),
            "/proc/self/environ".into(),
            "/no/such/file".into(),
            format!("{root_s}/etc/passwd"),
            format!("{root_s}/pw"),
            format!("{root_s}/dir"),
            format!("{root_s}/missing"),
            format!("{root_s}/../../etc/passwd"),
            "a/../../etc/passwd".into(),
            format!("{root_s}/a.qcow2\n"),
        ] {
            let e = r.image(&bad).expect_err(&bad);
            assert_eq!(e, Refused::Image(bad.clone()));
            assert_eq!(
                e.to_string(),
                format!("{bad:?}: refused: not an image file under this server's image roots")
            );
        }
        assert!(matches!(r.repo("/usr"), Err(Refused::NoRepoRoots(_))));
        assert!(matches!(
            Roots::default().image(&format!("{root_s}/a.qcow2")),
            Err(Refused::NoImageRoots(_))
        ));
    }
}
