//! Names and labels of images, for fleets too large to know by path: every image has a
//! display name (the one given, else its file name made unique by as many parent
//! directories as it takes) and `key=value` labels that selectors (`env=prod,owner!=web`)
//! pick images by.
//!
//! They are kept in their own record per image ([`ImageTags`]), not in the image record:
//! a patch commit rewrites the image record from what it read, and a label written
//! meanwhile would be lost; and a record of their own is kept across versions by
//! construction. A change is a conditional write on the record it was made from
//! (`Backend::replace_tags`), retried, so two processes labelling one image both land.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::model::ImageRecord;
use crate::store::Catalog;

/// The longest label key, value or name accepted.
pub const MAX_KEY: usize = 63;
pub const MAX_VALUE: usize = 128;
pub const MAX_NAME: usize = 128;
/// Labels one image may carry.
pub const MAX_LABELS: usize = 64;

/// An image's name and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTags {
    pub image: u64,
    /// The name given with `label --name`; `None`: the file name, made unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn bad(label: &str, why: impl Into<String>) -> CatalogError {
    CatalogError::Label {
        label: label.to_string(),
        why: why.into(),
    }
}

fn check_key(k: &str, whole: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if k.is_empty() || k.len() > MAX_KEY {
        return Err(bad(whole, format!("a key is 1 to {MAX_KEY} characters")));
    }
    if !k.starts_with(|c: char| c.is_ascii_alphanumeric()) || !k.chars().all(ok_char) {
        return Err(bad(
            whole,
            "a key starts with a letter or digit and holds letters, digits and . _ -",
        ));
    }
    Ok(())
}

fn check_value(v: &str, whole: &str) -> Result<()> {
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+');
    if v.is_empty() || v.len() > MAX_VALUE {
        return Err(bad(
            whole,
            format!("a value is 1 to {MAX_VALUE} characters"),
        ));
    }
    if !v.chars().all(ok_char) {
        return Err(bad(
            whole,
            "a value holds letters, digits and . _ - / : @ +",
        ));
    }
    Ok(())
}

/// `key=value`, checked.
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| bad(s, "a label is key=value"))?;
    check_key(k, s)?;
    check_value(v, s)?;
    Ok((k.to_string(), v.to_string()))
}

/// A display name a person chose: printable, no `/` (paths have those) and no `=`
/// (labels have), not a number (ids are), at most [`MAX_NAME`] bytes.
pub fn check_name(n: &str) -> Result<()> {
    if n.is_empty() || n.len() > MAX_NAME {
        return Err(bad(n, format!("a name is 1 to {MAX_NAME} bytes")));
    }
    if n.chars().any(|c| c.is_control() || c == '/' || c == '=') || n.trim() != n {
        return Err(bad(
            n,
            "a name has no control characters, no '/' or '=' and no surrounding spaces",
        ));
    }
    if n.parse::<u64>().is_ok() {
        return Err(bad(n, "a name is not a number: numbers are image ids"));
    }
    Ok(())
}

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Is(String, String),
    IsNot(String, String),
    Has(String),
    Lacks(String),
}

/// Which images a `--label` picks: every term must hold. Terms are `key=value`,
/// `key!=value` (also true when the key is absent), `key` (has it) and `!key` (lacks it),
/// separated by commas or given one per `--label`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Term>);

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every term of `other` added to this one.
    pub fn and(mut self, other: Selector) -> Selector {
        self.0.extend(other.0);
        self
    }

    /// A selector given or left blank (an empty form field, an absent parameter).
    pub fn optional(s: Option<&str>) -> Result<Option<Selector>> {
        match s.map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some),
        }
    }

    /// The terms of every string, all to hold.
    pub fn parse_all<S: AsRef<str>>(terms: &[S]) -> Result<Selector> {
        let mut s = Selector::default();
        for t in terms {
            s = s.and(t.as_ref().parse()?);
        }
        Ok(s)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|t| match t {
            Term::Is(k, v) => labels.get(k) == Some(v),
            Term::IsNot(k, v) => labels.get(k) != Some(v),
            Term::Has(k) => labels.contains_key(k),
            Term::Lacks(k) => !labels.contains_key(k),
        })
    }
}

impl FromStr for Selector {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Selector> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim) {
            if t.is_empty() {
                continue;
            }
            let term = if let Some((k, v)) = t.split_once("!=") {
                check_key(k, t)?;
                check_value(v, t)?;
                Term::IsNot(k.into(), v.into())
            } else if let Some((k, v)) = t.split_once('=') {
                check_key(k, t)?;
                check_value(v, t)?;
                Term::Is(k.into(), v.into())
            } else if let Some(k) = t.strip_prefix('!') {
                check_key(k, t)?;
                Term::Lacks(k.into())
            } else {
                check_key(t, t)?;
                Term::Has(t.into())
            };
            terms.push(term);
        }
        if terms.is_empty() {
            return Err(bad(s, "an empty selector"));
        }
        Ok(Selector(terms))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match t {
                Term::Is(k, v) => write!(f, "{k}={v}")?,
                Term::IsNot(k, v) => write!(f, "{k}!={v}")?,
                Term::Has(k) => write!(f, "{k}")?,
                Term::Lacks(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

/// Which images a fleet query reads: the named ones (paths, ids or names; none: every
/// image), of those the ones the selector picks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub images: Vec<String>,
    pub labels: Selector,
}

impl Scope {
    /// Every image.
    pub fn all() -> Scope {
        Scope::default()
    }

    /// One image, or every image.
    pub fn image(key: Option<&str>) -> Scope {
        Scope {
            images: key.map(str::to_string).into_iter().collect(),
            ..Scope::default()
        }
    }

    pub fn images(keys: &[String]) -> Scope {
        Scope {
            images: keys.to_vec(),
            ..Scope::default()
        }
    }

    pub fn labelled(mut self, sel: Selector) -> Scope {
        self.labels = sel;
        self
    }
}

/// What `coldpatch label` changes on an image.
#[derive(Debug, Clone, Default)]
pub struct Relabel {
    pub set: Vec<(String, String)>,
    pub unset: Vec<String>,
    /// `Some(None)`: back to the file name.
    pub name: Option<Option<String>>,
}

impl Relabel {
    /// The name change of a `--name`/`--clear-name` pair (`name` wins).
    pub fn name_change(name: Option<String>, clear: bool) -> Option<Option<String>> {
        match (name, clear) {
            (Some(n), _) => Some(Some(n)),
            (None, true) => Some(None),
            (None, false) => None,
        }
    }
}

/// Every image's display name: the name given, else the shortest tail of its path
/// (file name, then `parent/file`, …) that no other image's name is, else the whole
/// path with `#id`. The same catalog always gives the same names.
pub fn display_names(
    images: &[ImageRecord],
    tags: &HashMap<u64, ImageTags>,
) -> HashMap<u64, String> {
    let mut out: HashMap<u64, String> = HashMap::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for img in images {
        if let Some(n) = tags.get(&img.id).and_then(|t| t.name.clone()) {
            *taken.entry(n.clone()).or_default() += 1;
            out.insert(img.id, n);
        }
    }
    // An explicit name two images were given (two processes racing) is made unique too.
    for img in images {
        if let Some(n) = out.get(&img.id) {
            if taken[n] > 1 {
                out.insert(img.id, format!("{n}#{}", img.id));
            }
        }
    }
    let parts: HashMap<u64, Vec<&str>> = images
        .iter()
        .map(|i| (i.id, i.path.split('/').filter(|p| !p.is_empty()).collect()))
        .collect();
    let mut left: Vec<&ImageRecord> = images.iter().filter(|i| !out.contains_key(&i.id)).collect();
    let mut depth = 1;
    while !left.is_empty() {
        let cand: Vec<(u64, Option<String>)> = left
            .iter()
            .map(|i| {
                let p = &parts[&i.id];
                (
                    i.id,
                    (p.len() >= depth).then(|| p[p.len() - depth..].join("/")),
                )
            })
            .collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for c in cand.iter().filter_map(|(_, c)| c.as_deref()) {
            *count.entry(c).or_default() += 1;
        }
        let mut next = Vec::new();
        for (img, (id, c)) in left.iter().zip(&cand) {
            match c {
                Some(c) if count[c.as_str()] == 1 && !taken.contains_key(c) => {
                    out.insert(*id, c.clone());
                }
                Some(_) => next.push(*img),
                None => {
                    out.insert(*id, format!("{}#{id}", img.path));
                }
            }
        }
        left = next;
        depth += 1;
    }
    out
}

impl Catalog {
    /// Every image's name and labels record, by image id (images never labelled have
    /// none).
    pub fn tags(&self) -> Result<HashMap<u64, ImageTags>> {
        Ok(self
            .db()
            .tags()?
            .into_iter()
            .map(|t| (t.image, t))
            .collect())
    }

    /// One image's name and labels.
    pub fn tags_of(&self, image: u64) -> Result<ImageTags> {
        Ok(self.db().tag(image)?.unwrap_or(ImageTags {
            image,
            ..ImageTags::default()
        }))
    }

    /// Every image's display name (see [`display_names`]).
    pub fn names(&self) -> Result<HashMap<u64, String>> {
        Ok(display_names(&self.db().images()?, &self.tags()?))
    }

    /// The images a scope picks: the named ones in the order named, else every image
    /// by path; then those the selector picks.
    pub fn scoped(&self, scope: &Scope) -> Result<Vec<ImageRecord>> {
        let mut images = if scope.images.is_empty() {
            self.images()?
        } else {
            scope
                .images
                .iter()
                .map(|k| self.image(k))
                .collect::<Result<_>>()?
        };
        if !scope.labels.is_empty() {
            let tags = self.tags()?;
            let none = BTreeMap::new();
            images.retain(|i| {
                scope
                    .labels
                    .matches(tags.get(&i.id).map_or(&none, |t| &t.labels))
            });
        }
        Ok(images)
    }

    /// Changes an image's labels and name; the record as it now stands. A name another
    /// image has is refused.
    pub fn relabel(&self, key: &str, change: &Relabel) -> Result<ImageTags> {
        let img = self.image(key)?;
        for (k, v) in &change.set {
            check_key(k, &format!("{k}={v}"))?;
            check_value(v, &format!("{k}={v}"))?;
        }
        for k in &change.unset {
            check_key(k, k)?;
        }
        if let Some(Some(n)) = &change.name {
            check_name(n)?;
        }
        // Conditional on the record read; another writer in between makes us read again.
        for _ in 0..32 {
            // Every image's record only when a name must be checked against the others.
            let all = match &change.name {
                Some(Some(_)) => self.tags()?,
                _ => HashMap::new(),
            };
            let was = self.db().tag(img.id)?;
            let mut new = was.clone().unwrap_or(ImageTags {
                image: img.id,
                ..ImageTags::default()
            });
            for k in &change.unset {
                new.labels.remove(k);
            }
            for (k, v) in &change.set {
                new.labels.insert(k.clone(), v.clone());
            }
            if new.labels.len() > MAX_LABELS {
                return Err(bad(
                    key,
                    format!("an image carries at most {MAX_LABELS} labels"),
                ));
            }
            if let Some(n) = &change.name {
                if let Some(n) = n {
                    if let Some(other) = all
                        .values()
                        .find(|t| t.image != img.id && t.name.as_deref() == Some(n))
                    {
                        let other = self
                            .db()
                            .image(other.image)?
                            .map_or_else(|| other.image.to_string(), |i| i.path);
                        return Err(CatalogError::NameTaken {
                            name: n.clone(),
                            image: other,
                        });
                    }
                }
                new.name = n.clone();
            }
            if was.as_ref() == Some(&new) {
                return Ok(new);
            }
            if self.db().replace_tags(&new, was.as_ref())? {
                return Ok(new);
            }
        }
        Err(CatalogError::Store {
            catalog: self.describe().to_string(),
            source: format!("the labels of {} kept changing under 32 attempts", img.path).into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: u64, path: &str) -> ImageRecord {
        ImageRecord {
            id,
            path: path.into(),
            format: "raw".into(),
            virtual_size: 0,
            first_seen: 0,
            current_scan: None,
            versions: Vec::new(),
            current_version: 0,
        }
    }

    fn named(image: u64, name: &str) -> ImageTags {
        ImageTags {
            image,
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_parse_and_match() {
        let s: Selector = "env=prod, owner!=web,tier,!retired"
            .parse()
            .expect("selector");
        assert_eq!(s.to_string(), "env=prod,owner!=web,tier,!retired");
        assert!(s.matches(&labels(&[("env", "prod"), ("tier", "1")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("tier", "1"), ("owner", "web")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("tier", "1"), ("retired", "y")])));
        assert!(!s.matches(&labels(&[("env", "dev"), ("tier", "1")])));
        let both = Selector::parse_all(&["env=prod", "tier=2"]).expect("selectors");
        assert!(both.matches(&labels(&[("env", "prod"), ("tier", "2")])));
        assert!(!both.matches(&labels(&[("env", "prod"), ("tier", "1")])));
        for bad in [
            "", ",", "=x", "env=", "-a=b", "a/b=c", "a b=c", "a=b c", "k=v\u{7}", "!",
        ] {
            let e = bad.parse::<Selector>().expect_err(bad);
            assert!(matches!(e, CatalogError::Label { .. }), "{bad:?}: {e}");
        }
        assert_eq!(
            parse_label("owner=web").expect("label"),
            ("owner".into(), "web".into())
        );
        assert!(parse_label("owner").is_err());
        assert!(parse_label(&format!("k={}", "v".repeat(MAX_VALUE + 1))).is_err());
    }

    #[test]
    fn names_are_the_shortest_unique_tail() {
        let images = vec![
            img(1, "/srv/a/debian-12/disk.qcow2"),
            img(2, "/srv/b/debian-12/disk.qcow2"),
            img(3, "/srv/c/alpine/disk.qcow2"),
            img(4, "/srv/golden.qcow2"),
            img(5, "/srv/x/web.qcow2"),
            img(6, "/srv/y/db.qcow2"),
        ];
        let mut tags = HashMap::new();
        // A name given wins, and an image whose file name it is yields.
        tags.insert(6, named(6, "web.qcow2"));
        let n = display_names(&images, &tags);
        assert_eq!(n[&1], "a/debian-12/disk.qcow2");
        assert_eq!(n[&2], "b/debian-12/disk.qcow2");
        assert_eq!(n[&3], "alpine/disk.qcow2");
        assert_eq!(n[&4], "golden.qcow2");
        assert_eq!(n[&5], "x/web.qcow2");
        assert_eq!(n[&6], "web.qcow2");
        let mut seen: Vec<&String> = n.values().collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), images.len());
        // The same path twice cannot be, but a name given twice (a race) is split.
        tags.insert(4, named(4, "web.qcow2"));
        let n = display_names(&images, &tags);
        assert_eq!(n[&4], "web.qcow2#4");
        assert_eq!(n[&6], "web.qcow2#6");
    }

    #[test]
    fn names_people_give_are_checked() {
        for ok in ["golden web", "db-01", "Ünïcode"] {
            check_name(ok).expect(ok);
        }
        for no in [
            "",
            "42",
            "a/b",
            "a=b",
            " a",
            "a\u{7}",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(no).is_err(), "{no:?}");
        }
    }
}
