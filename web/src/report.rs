//! The exposure report a security team hands on (`coldpatch report`, the console's
//! `/report` download): for the images a label selector picks, each image's exposure,
//! what every patch run fixed on them, and what is still open, with and without a fix.
//! Built from the fleet view (`fleet.rs`: current versions matched against the stored
//! feeds) and the runs' own records of each image's findings before and after; written
//! as CSV (one table, a `section` column saying which part a row is) or as one HTML
//! page (maud, every value escaped).

use std::collections::BTreeSet;

use coldpatch_catalog::{Catalog, CatalogError, Outcome, Selector};
use maud::{html, PreEscaped, DOCTYPE};
use serde::Serialize;

use crate::fleet::{FleetView, SEVERITIES};

#[derive(Debug, Clone, Serialize)]
pub struct ImageRow {
    pub name: String,
    pub path: String,
    pub labels: String,
    pub os: String,
    pub version: u32,
    /// Findings by severity, in [`SEVERITIES`] order.
    pub by_severity: [usize; 6],
    pub fixable: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fixed {
    pub run: String,
    pub finished: Option<u64>,
    pub image: String,
    pub version: u32,
    pub advisory: String,
    pub package: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Open {
    pub image: String,
    pub advisory: String,
    pub severity: &'static str,
    pub package: String,
    pub installed: String,
    /// `None`: no fix yet.
    pub fixed_in: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated: u64,
    pub selector: Option<String>,
    pub catalog: String,
    /// Feeds matched against, with the time their data is from.
    pub feeds: Vec<(String, u64)>,
    pub images: Vec<ImageRow>,
    pub fixed: Vec<Fixed>,
    pub open: Vec<Open>,
}

/// The report on the images `sel` picks (all: `None`).
pub fn build(
    catalog: &Catalog,
    view: &FleetView,
    sel: Option<&Selector>,
) -> Result<Report, CatalogError> {
    let picked: Vec<_> = view
        .images
        .iter()
        .filter(|i| sel.is_none_or(|s| s.matches(&i.labels)))
        .collect();
    let names: std::collections::HashMap<&str, &str> = picked
        .iter()
        .map(|i| (i.path.as_str(), i.name.as_str()))
        .collect();
    let name_of = |p: &str| {
        names
            .get(p)
            .map_or_else(|| p.to_string(), |n| n.to_string())
    };
    let mut images: Vec<ImageRow> = picked
        .iter()
        .map(|i| ImageRow {
            name: i.name.clone(),
            path: i.path.clone(),
            labels: i
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            os: i.os.clone().unwrap_or_else(|| "unknown".into()),
            version: i.version,
            by_severity: i.by_severity,
            fixable: i.fixable,
        })
        .collect();
    images.sort_by(|a, b| b.by_severity.cmp(&a.by_severity).then(a.name.cmp(&b.name)));
    let mut open = Vec::new();
    for i in &picked {
        for f in &i.findings {
            open.push(Open {
                image: i.name.clone(),
                advisory: f.of.advisory.clone(),
                severity: f.severity.as_str(),
                package: f.package.to_string(),
                installed: f.installed.to_string(),
                fixed_in: f.fixed.clone(),
            });
        }
    }
    open.sort_by(|a, b| {
        let sev = |s: &str| SEVERITIES.iter().position(|x| x.as_str() == s);
        (sev(a.severity), &a.image, &a.advisory, &a.package).cmp(&(
            sev(b.severity),
            &b.image,
            &b.advisory,
            &b.package,
        ))
    });
    let mut fixed = Vec::new();
    for run in catalog.runs()? {
        if !run.images.iter().any(|i| names.contains_key(i.as_str())) {
            continue;
        }
        for ri in catalog.run_images(&run.id)? {
            let Outcome::Committed { version } = ri.outcome else {
                continue;
            };
            if !names.contains_key(ri.image.as_str()) {
                continue;
            }
            let after: BTreeSet<(&str, &str)> = ri
                .after
                .iter()
                .map(|f| (f.advisory.as_str(), f.package.as_str()))
                .collect();
            for f in &ri.before {
                if !after.contains(&(f.advisory.as_str(), f.package.as_str())) {
                    fixed.push(Fixed {
                        run: run.id.clone(),
                        finished: run.finished,
                        image: name_of(&ri.image),
                        version,
                        advisory: f.advisory.clone(),
                        package: f.package.clone(),
                    });
                }
            }
        }
    }
    Ok(Report {
        generated: coldpatch_catalog::clock::now(),
        selector: sel.map(ToString::to_string),
        catalog: catalog.describe().to_string(),
        feeds: view
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.as_of))
            .collect(),
        images,
        fixed,
        open,
    })
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so that a spreadsheet never runs a guest's string
/// as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One table: `section` is `image`, `fixed` or `open`; the columns after it are the
/// section's own (the header names them all).
pub fn csv(r: &Report) -> String {
    let mut out = String::from(
        "section,image,path,labels,os,version,critical,high,medium,low,negligible,unknown,fixable,advisory,severity,package,installed,fixed_in,run,run_finished\n",
    );
    let row =
        |cells: Vec<String>| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",") + "\n";
    for i in &r.images {
        let mut c = vec![
            "image".into(),
            i.name.clone(),
            i.path.clone(),
            i.labels.clone(),
            i.os.clone(),
            i.version.to_string(),
        ];
        c.extend(i.by_severity.iter().map(ToString::to_string));
        c.push(i.fixable.to_string());
        c.extend(std::iter::repeat_n(String::new(), 7));
        out.push_str(&row(c));
    }
    for f in &r.fixed {
        let mut c = vec!["fixed".into(), f.image.clone()];
        c.extend(std::iter::repeat_n(String::new(), 3));
        c.push(f.version.to_string());
        c.extend(std::iter::repeat_n(String::new(), 7));
        c.extend([
            f.advisory.clone(),
            String::new(),
            f.package.clone(),
            String::new(),
            String::new(),
            f.run.clone(),
            f.finished
                .map(coldpatch_catalog::clock::rfc3339)
                .unwrap_or_default(),
        ]);
        out.push_str(&row(c));
    }
    for o in &r.open {
        let mut c = vec!["open".into(), o.image.clone()];
        c.extend(std::iter::repeat_n(String::new(), 11));
        c.extend([
            o.advisory.clone(),
            o.severity.to_string(),
            o.package.clone(),
            o.installed.clone(),
            o.fixed_in.clone().unwrap_or_else(|| "no fix".into()),
            String::new(),
            String::new(),
        ]);
        out.push_str(&row(c));
    }
    out
}

/// The report as one self-contained HTML page.
pub fn html(r: &Report) -> String {
    let with_fix = r.open.iter().filter(|o| o.fixed_in.is_some()).count();
    let when = coldpatch_catalog::clock::rfc3339;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "coldpatch exposure report" }
                style { (PreEscaped("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left;font-size:13px}.sev-critical{color:#8b0000;font-weight:bold}.sev-high{color:#d9480f}")) }
            }
            body {
                h1 { "Exposure report" }
                p { "Generated " (when(r.generated)) " from the " (r.catalog) "; images: "
                    @match &r.selector { Some(s) => { "labelled " code { (s) } }, None => "all" } "." }
                p { "Matched against: " @for (i, (f, at)) in r.feeds.iter().enumerate() { @if i > 0 { ", " } (f) " (data of " (when(*at)) ")" } }
                h2 { "Summary" }
                p #summary { (r.images.len()) " image(s); " (r.open.len()) " open finding(s), " (with_fix) " with a fix and " (r.open.len() - with_fix) " without; " (r.fixed.len()) " fixed by patch runs." }
                h2 { "Exposure by image" }
                table #report-images {
                    tr { th { "Image" } th { "Labels" } th { "OS" } th { "Version" } @for s in SEVERITIES.iter() { th { (s.as_str()) } } th { "fixable" } }
                    @for i in &r.images {
                        tr { td title=(i.path) { (i.name) } td { (i.labels) } td { (i.os) } td { (i.version) } @for n in i.by_severity { td { (n) } } td { (i.fixable) } }
                    }
                }
                h2 { "Fixed by patch runs" }
                @if r.fixed.is_empty() { p { "None yet." } }
                @else {
                    table #report-fixed {
                        tr { th { "Run" } th { "Finished" } th { "Image" } th { "Version" } th { "Advisory" } th { "Package" } }
                        @for f in &r.fixed {
                            tr { td { (f.run) } td { (f.finished.map(when).unwrap_or_default()) } td { (f.image) } td { (f.version) } td { (f.advisory) } td { (f.package) } }
                        }
                    }
                }
                h2 { "Still open" }
                table #report-open {
                    tr { th { "Image" } th { "Advisory" } th { "Severity" } th { "Package" } th { "Installed" } th { "Fixed in" } }
                    @for o in &r.open {
                        tr { td { (o.image) } td { (o.advisory) } td class=(format!("sev-{}", o.severity)) { (o.severity) } td { (o.package) } td { (o.installed) } td { (o.fixed_in.clone().unwrap_or_else(|| "no fix yet".into())) } }
                    }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(super::field("plain"), "plain");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(super::field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::field("-1,2"), "\"'-1,2\"");
    }
}
