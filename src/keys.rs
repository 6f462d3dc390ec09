//! Image and version arguments as the catalog names them, and how a row names an image.

use std::path::Path;

use coldpatch_catalog::Catalog;

/// Image keys on the command line may be relative paths; the catalog stores absolute ones.
pub fn image_key(k: &str) -> String {
    Path::new(k)
        .canonicalize()
        .map_or_else(|_| k.to_string(), |p| p.display().to_string())
}

/// Image arguments as the catalog's image paths (ids resolved); unknown ones as given,
/// for the patcher to refuse by name.
pub fn versions(all: bool) -> coldpatch_catalog::Versions {
    if all {
        coldpatch_catalog::Versions::All
    } else {
        coldpatch_catalog::Versions::Current
    }
}

/// An image in a table: with `@vN` when rows of several versions are shown.
pub fn shown(image: &str, version: u32, all: bool) -> String {
    if all {
        format!("{image}@v{version}")
    } else {
        image.to_string()
    }
}

pub fn keys(catalog: &Catalog, images: &[String]) -> Vec<String> {
    images
        .iter()
        .map(|i| {
            let k = image_key(i);
            catalog.image(&k).map_or(k, |r| r.path)
        })
        .collect()
}

/// The images named (none: every image) that a `--label` selector picks.
pub fn scope(
    images: &[String],
    labels: &crate::args::Labels,
) -> anyhow::Result<coldpatch_catalog::Scope> {
    let keys: Vec<String> = images.iter().map(|i| image_key(i)).collect();
    let mut scope = coldpatch_catalog::Scope::images(&keys);
    if let Some(sel) = selector(labels)? {
        scope = scope.labelled(sel);
    }
    Ok(scope)
}

/// Image arguments and a `--label` selector as the catalog's image paths. Without a
/// selector, as [`keys`]; with one, the images it picks (of those named, if any), and
/// an error if it picks none, so that a selector never means "every image".
pub fn labelled_keys(
    catalog: &Catalog,
    images: &[String],
    labels: &crate::args::Labels,
) -> anyhow::Result<Vec<String>> {
    if labels.label.is_empty() {
        return Ok(keys(catalog, images));
    }
    let picked: Vec<String> = catalog
        .scoped(&scope(images, labels)?)?
        .into_iter()
        .map(|i| i.path)
        .collect();
    if picked.is_empty() {
        anyhow::bail!(
            "no image matches --label {}",
            labels.label.join(" --label ")
        );
    }
    Ok(picked)
}

/// The selector `--label` gives, if any.
pub fn selector(
    labels: &crate::args::Labels,
) -> anyhow::Result<Option<coldpatch_catalog::Selector>> {
    if labels.label.is_empty() {
        return Ok(None);
    }
    Ok(Some(coldpatch_catalog::Selector::parse_all(&labels.label)?))
}
