//! `coldpatch label`: images' display names and labels (stored by the catalog's
//! `labels.rs`); `coldpatch report`: the exposure of the images a selector picks.

use std::process::ExitCode;

use anyhow::{bail, Result};
use coldpatch_catalog::labels::parse_label;
use coldpatch_catalog::{Catalog, Relabel};

use crate::keys::image_key;
use crate::output;

/// An argument is a label when it has '=' and no '/' before it; else an image.
fn is_label(arg: &str) -> bool {
    arg.split_once('=')
        .is_some_and(|(k, _)| !k.is_empty() && !k.contains('/'))
}

/// `key=value key2=value2` of a label map, as a table cell.
pub fn cell(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn label(
    catalog: &Catalog,
    args: &[String],
    unlabel: &[String],
    name: Option<String>,
    clear_name: bool,
    json: bool,
) -> Result<ExitCode> {
    let (labels, images): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| is_label(a));
    if images.is_empty() {
        bail!("name at least one image (path, id or name) before the labels");
    }
    let change = Relabel {
        set: labels
            .iter()
            .map(|l| parse_label(l))
            .collect::<coldpatch_catalog::Result<_>>()?,
        unset: unlabel.to_vec(),
        name: Relabel::name_change(name, clear_name),
    };
    if matches!(change.name, Some(Some(_))) && images.len() > 1 {
        bail!("--name names one image; {} were given", images.len());
    }
    // Every image is resolved first, so a typo changes nothing.
    let records = images
        .iter()
        .map(|k| catalog.image(&image_key(k)))
        .collect::<coldpatch_catalog::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for img in &records {
        out.push(catalog.relabel(&img.path, &change)?);
    }
    let names = catalog.names()?;
    let paths: std::collections::HashMap<u64, &str> =
        records.iter().map(|i| (i.id, i.path.as_str())).collect();
    if json {
        let v: Vec<_> = out
            .iter()
            .map(|t| {
                serde_json::json!({
                    "image": paths[&t.image],
                    "id": t.image,
                    "name": names.get(&t.image),
                    "labels": t.labels,
                })
            })
            .collect();
        output::json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = out
            .iter()
            .map(|t| {
                vec![
                    t.image.to_string(),
                    names.get(&t.image).cloned().unwrap_or_default(),
                    cell(&t.labels),
                ]
            })
            .collect();
        output::table(&["ID", "NAME", "LABELS"], &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `coldpatch report`: the exposure report of `coldpatch_web::report` on the images a
/// selector picks (none: all), as HTML or CSV.
pub fn report(
    catalog: &Catalog,
    labels: &crate::args::Labels,
    format: &str,
    output: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let sel = crate::keys::selector(labels)?;
    let view = coldpatch_web::fleet::Fleet::default().view(catalog)?;
    let r = coldpatch_web::report::build(catalog, &view, sel.as_ref())?;
    if r.images.is_empty() {
        bail!(
            "no image matches --label {}",
            labels.label.join(" --label ")
        );
    }
    let text = match format {
        "csv" => coldpatch_web::report::csv(&r),
        _ => coldpatch_web::report::html(&r),
    };
    match output {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_told_from_images() {
        for l in ["env=prod", "a.b=c/d"] {
            assert!(super::is_label(l), "{l}");
        }
        for i in ["/srv/a=b.qcow2", "./x=y", "disk.qcow2", "12", "=x"] {
            assert!(!super::is_label(i), "{i}");
        }
    }
}
