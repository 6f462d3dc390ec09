//! The analyzer contract: each analyzer declares, as data, which guest paths it wants; the
//! one walk over the filesystem offers it exactly those, reading content once and lazily.

use crate::model::Inventory;

/// Which guest paths an analyzer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPattern {
    /// Exactly this path.
    Exact(&'static str),
    /// Any entry directly inside this directory whose name starts with the prefix
    /// (an empty prefix takes every entry).
    Child(&'static str, &'static str),
}

impl PathPattern {
    pub fn matches(&self, path: &str) -> bool {
        match *self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Child(dir, prefix) => path
                .strip_prefix(dir)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|name| {
                    !name.is_empty() && !name.contains('/') && name.starts_with(prefix)
                }),
        }
    }
}

/// What the walk hands an analyzer for a path it asked for.
pub struct Offer<'a> {
    pub path: &'a str,
    pub meta: &'a coldpatch_disk::Meta,
    /// The content, for regular files (and symlinks resolved inside the guest) when the
    /// analyzer wants content; `None` for directories or when `wants_content` is false.
    pub data: Option<&'a [u8]>,
}

pub trait Analyzer {
    fn name(&self) -> &'static str;
    /// Bumped whenever the analyzer's output for the same input may change, so that stored
    /// scans made by an older version can be recognised as stale.
    fn version(&self) -> u32;
    fn patterns(&self) -> &'static [PathPattern];
    fn wants_content(&self) -> bool {
        true
    }
    /// Largest file this analyzer will read; bigger ones become unknowns.
    fn max_bytes(&self) -> u64 {
        16 << 20
    }
    /// Handles one offered path. An `Err` becomes an unknown entry for that path.
    fn analyze(&mut self, offer: &Offer<'_>, inv: &mut Inventory) -> Result<(), String>;
    /// Called once after the walk.
    fn finish(&mut self, _inv: &mut Inventory) {}

    fn wants(&self, path: &str) -> bool {
        self.patterns().iter().any(|p| p.matches(path))
    }
}

/// Records a parser's per-record problems as unknowns of the file they came from.
pub fn problems_to_unknowns(
    inv: &mut Inventory,
    path: &str,
    analyzer: &str,
    problems: Vec<String>,
) {
    inv.unknowns
        .extend(problems.into_iter().map(|reason| crate::model::Unknown {
            path: path.to_string(),
            analyzer: analyzer.to_string(),
            reason,
        }));
}

/// Every analyzer, in the order they are offered files.
pub fn all() -> Vec<Box<dyn Analyzer>> {
    use crate::analyzers::*;
    vec![
        Box::new(os_release::OsRelease::default()),
        Box::new(dpkg::Dpkg::default()),
        Box::new(rpm::Rpm::default()),
        Box::new(apk::Apk),
        Box::new(kernel::Kernels),
        Box::new(accounts::Accounts::default()),
    ]
}
