//! The inventory commands: `collect` into the catalog, and `images`, `show`, `packages`,
//! `files` from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use coldpatch_catalog::Catalog;
use coldpatch_collector::CollectOptions;

use crate::args::Select;
use crate::keys::{shown, versions};
use crate::output::{self, bytes, table};

#[derive(serde::Serialize)]
struct CollectResult {
    image: String,
    ok: bool,
    unchanged: bool,
    scan: Option<coldpatch_catalog::ScanRecord>,
    error: Option<String>,
}

pub fn collect(
    catalog: &Catalog,
    images: &[PathBuf],
    opts: &CollectOptions,
    rescan: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut results = Vec::new();
    // One bar over the images, the one being read named with how far it is.
    let bar = indicatif::ProgressBar::new(images.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} image(s) {prefix}: {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    for img in images {
        let shown = img.display().to_string();
        bar.set_prefix(shown.clone());
        bar.set_message("");
        let outcome = collect_one(catalog, img, opts, rescan, &bar);
        bar.inc(1);
        // Lines go out with the bar lifted, so the two never mix on a terminal.
        let r = bar.suspend(|| -> Result<CollectResult> {
            Ok(match outcome {
            Ok((scan, unchanged)) => {
                if !json {
                    let verb = if unchanged {
                        "unchanged since"
                    } else {
                        "recorded as"
                    };
                    crate::outln!(
                        "{shown}: {}, {} packages, {} files, {} unknowns; {} in {:.1} s; {verb} scan {}",
                        scan.os.as_deref().unwrap_or("unknown OS"),
                        scan.packages,
                        scan.files,
                        scan.unknowns,
                        bytes(scan.bytes_read),
                        scan.duration_ms as f64 / 1000.0,
                        scan.id
                    )?;
                    if let Some(st) = &scan.stamp {
                        let says = match catalog.find_check(&st.check)? {
                            Some((i, v)) if v.number == st.number => {
                                format!("version {} of {}", v.number, i.path)
                            }
                            _ => format!(
                                "version {}, of an image this catalog did not make",
                                st.number
                            ),
                        };
                        crate::outln!("  stamped: holds {says} (check {})", st.check)?;
                    }
                }
                CollectResult {
                    image: shown,
                    ok: true,
                    unchanged,
                    scan: Some(scan),
                    error: None,
                }
            }
            Err(e) => {
                let msg = output::chain(&e);
                if !json {
                    eprintln!("error: {msg}");
                }
                CollectResult {
                    image: shown,
                    ok: false,
                    unchanged: false,
                    scan: None,
                    error: Some(msg),
                }
            }
        })
        })?;
        results.push(r);
    }
    bar.finish_and_clear();
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        output::json(&results)?;
    } else {
        let unchanged = results.iter().filter(|r| r.unchanged).count();
        crate::outln!(
            "collected {} image(s): {} unchanged, {failed} failed",
            results.len(),
            unchanged
        )?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn collect_one(
    catalog: &Catalog,
    img: &Path,
    opts: &CollectOptions,
    rescan: bool,
    bar: &indicatif::ProgressBar,
) -> Result<(coldpatch_catalog::ScanRecord, bool)> {
    Ok(catalog.ingest(img, opts, rescan, &mut |n, h| {
        bar.set_message(format!("{n} entries, {} hashed", bytes(h)));
    })?)
}

pub fn images(catalog: &Catalog, scope: &coldpatch_catalog::Scope, json: bool) -> Result<()> {
    let imgs = catalog.scoped(scope)?;
    let tags = catalog.tags()?;
    // Names are unique over the whole catalog, not the images shown.
    let names = coldpatch_catalog::labels::display_names(&catalog.images()?, &tags);
    let none = std::collections::BTreeMap::new();
    let ids: Vec<u64> = imgs.iter().filter_map(|i| i.current_scan).collect();
    let mut scans: std::collections::HashMap<u64, coldpatch_catalog::ScanRecord> = catalog
        .scans(&ids)?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for i in &imgs {
        let scan = i.current_scan.and_then(|s| scans.remove(&s));
        let labels = tags.get(&i.id).map_or(&none, |t| &t.labels);
        let name = names.get(&i.id).cloned().unwrap_or_default();
        rows.push(vec![
            i.id.to_string(),
            name.clone(),
            i.path.clone(),
            crate::labelcmd::cell(labels),
            i.format.clone(),
            scan.as_ref().and_then(|s| s.os.clone()).unwrap_or_default(),
            scan.as_ref()
                .map(|s| s.packages.to_string())
                .unwrap_or_default(),
            scan.as_ref()
                .map(|s| s.files.to_string())
                .unwrap_or_default(),
            scan.as_ref()
                .map(|s| output::time(s.time))
                .unwrap_or_default(),
        ]);
        out.push(serde_json::json!({ "image": i, "name": name, "labels": labels, "scan": scan }));
    }
    if json {
        output::json(&out)
    } else {
        table(
            &[
                "ID", "NAME", "IMAGE", "LABELS", "FORMAT", "OS", "PACKAGES", "FILES", "SCANNED",
            ],
            &rows,
        )
    }
}

pub fn show(catalog: &Catalog, key: &str, json: bool) -> Result<()> {
    let (img, inv) = catalog.current_inventory(key)?;
    let scans = catalog.scans_of(img.id)?;
    if json {
        let versions = catalog.versions_of(&img)?;
        return output::json(
            &serde_json::json!({ "image": img, "versions": versions, "scans": scans, "inventory": inv }),
        );
    }
    let i = &inv.image;
    crate::outln!(
        "image      {} ({}, {} virtual)",
        img.path,
        i.format,
        bytes(i.virtual_size)
    )?;
    if i.chain.len() > 1 {
        let names: Vec<&str> = i.chain.iter().map(|c| c.0.as_str()).collect();
        crate::outln!("chain      {}", names.join(" -> "))?;
    }
    let vols: Vec<String> = i
        .volumes
        .iter()
        .map(|v| format!("{}: {} {}", v.number, v.fs, bytes(v.size)))
        .collect();
    crate::outln!(
        "disk       {} table; root on partition {}; {}",
        i.partition_table,
        i.root_volume,
        vols.join(", ")
    )?;
    match &inv.os {
        Some(os) => crate::outln!(
            "os         {} (id {}, version {}, from {})",
            os.pretty_name,
            os.id,
            os.version_id,
            os.source
        )?,
        None => crate::outln!("os         unknown")?,
    }
    let kernels: Vec<&str> = inv.kernels.iter().map(|k| k.version.as_str()).collect();
    crate::outln!(
        "kernels    {}",
        if kernels.is_empty() {
            "none found".to_string()
        } else {
            kernels.join(", ")
        }
    )?;
    let mut kinds = std::collections::BTreeMap::new();
    for p in &inv.packages {
        *kinds.entry(p.kind.as_str()).or_insert(0) += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    crate::outln!(
        "packages   {}",
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        }
    )?;
    let s = &inv.security;
    crate::outln!(
        "security   {} setuid, {} setgid, {} world-writable, {} in /root/.ssh, {} authorized_keys, {} weak accounts",
        s.setuid.len(),
        s.setgid.len(),
        s.world_writable.len(),
        s.root_ssh.len(),
        s.authorized_keys.len(),
        s.weak_accounts.len()
    )?;
    for (label, list) in [
        ("world-writable", &s.world_writable),
        ("authorized_keys", &s.authorized_keys),
        ("root ssh", &s.root_ssh),
    ] {
        for p in list.iter().take(20) {
            crate::outln!("  {label}: {p}")?;
        }
    }
    for a in &s.weak_accounts {
        crate::outln!("  account {}: {} password", a.name, a.problem)?;
    }
    crate::outln!("unknowns   {}", inv.unknowns.len())?;
    for u in inv.unknowns.iter().take(20) {
        crate::outln!("  {} ({}): {}", u.path, u.analyzer, u.reason)?;
    }
    crate::outln!("versions")?;
    let rows: Vec<Vec<String>> = catalog
        .versions_of(&img)?
        .iter()
        .map(|v| {
            let mut state = Vec::new();
            if v.number == img.current_version {
                state.push("current");
            }
            if v.rolled_back {
                state.push("rolled back");
            }
            vec![
                format!("  {}", v.number),
                v.parent.map_or("-".into(), |p| p.to_string()),
                output::time(v.created),
                v.run.clone().unwrap_or_else(|| "-".into()),
                state.join(", "),
                v.check
                    .as_deref()
                    .and_then(|c| c.get(..16))
                    .unwrap_or("-")
                    .to_string(),
                v.file.clone(),
            ]
        })
        .collect();
    table(
        &[
            "  VERSION",
            "PARENT",
            "CREATED",
            "RUN",
            "STATE",
            "CHECK",
            "FILE",
        ],
        &rows,
    )?;
    crate::outln!("scans")?;
    let rows: Vec<Vec<String>> = scans
        .iter()
        .map(|s| {
            let what = match (s.options.files, s.options.hash) {
                (true, true) => "files+sha256",
                (true, false) => "files",
                _ => "packages",
            };
            vec![
                format!("  {}", s.id),
                output::time(s.time),
                format!("{:.1} s", s.duration_ms as f64 / 1000.0),
                what.into(),
                bytes(s.bytes_read),
            ]
        })
        .collect();
    table(&["  SCAN", "TIME", "DURATION", "DETAIL", "READ"], &rows)
}

/// The images `--image` and `--label` name.
fn select_scope(select: &Select) -> Result<coldpatch_catalog::Scope> {
    crate::keys::scope(select.image.as_slice(), &select.labels)
}

/// `coldpatch packages`: packages across the fleet.
pub fn packages(
    catalog: &Catalog,
    select: &Select,
    name: Option<&str>,
    older_than: Option<&str>,
) -> Result<ExitCode> {
    let all_versions = select.all_versions;
    let hits = catalog.packages(
        &select_scope(select)?,
        versions(all_versions),
        name,
        older_than,
    )?;
    output::list(
        select.json,
        &hits,
        &["IMAGE", "PACKAGE", "VERSION", "ARCH", "TYPE", "SOURCE"],
        |h| {
            let p = &h.package;
            vec![
                shown(&h.image, h.version, all_versions),
                p.name.clone(),
                p.full_version(),
                p.arch.clone(),
                p.kind.as_str().into(),
                format!("{} {}", p.source_name, p.source_version),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `coldpatch files`: files across the fleet by path glob and/or SHA-256.
pub fn files(
    catalog: &Catalog,
    select: &Select,
    path: Option<&str>,
    sha256: Option<&str>,
) -> Result<ExitCode> {
    let all_versions = select.all_versions;
    let hits = catalog.files(&select_scope(select)?, versions(all_versions), path, sha256)?;
    output::list(
        select.json,
        &hits,
        &[
            "IMAGE",
            "PATH",
            "TYPE",
            "MODE",
            "OWNER",
            "SIZE",
            "SHA256 / TARGET",
        ],
        |h| {
            let f = &h.file;
            vec![
                shown(&h.image, h.version, all_versions),
                f.path.clone(),
                f.kind.as_str().into(),
                format!("{:04o}", f.mode),
                format!("{}:{}", f.uid, f.gid),
                f.size.to_string(),
                f.sha256
                    .clone()
                    .or_else(|| f.target.as_ref().map(|t| format!("-> {t}")))
                    .unwrap_or_default(),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
