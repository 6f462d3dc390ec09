//! The patch commands (plan, apply, files, rollback, flatten) and the run history.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use coldpatch_catalog::{Catalog, Outcome, RunRecord, RunState};
use coldpatch_patcher::{plan, Ask, Put, Request};

use crate::outln;
use crate::output;

pub fn plan_cmd(
    catalog: &Catalog,
    image: &str,
    repo_dir: &Path,
    req: &Request,
    json: bool,
) -> Result<ExitCode> {
    let (img, inv) = catalog.current_inventory(image)?;
    let (_, repo) = coldpatch_patcher::repository(catalog, repo_dir)?;
    let findings = catalog
        .scan_images(std::slice::from_ref(&img.path))?
        .images
        .into_iter()
        .next()
        .map(|i| i.findings)
        .unwrap_or_default();
    let plan = plan(&img.path, &inv.packages, &findings, &repo, req)
        .with_context(|| format!("cannot plan {}", img.path))?;
    if json {
        output::json(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &["PACKAGE", "ARCH", "FROM", "TO", "WHY"],
        &plan
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.package.clone(),
                    s.arch.clone(),
                    s.from.clone().unwrap_or_else(|| "(new)".into()),
                    s.to.clone(),
                    s.reasons.join("; "),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    outln!(
        "{} packages to install from {}; fixes {}",
        plan.steps.len(),
        plan.repository,
        if plan.fixes.is_empty() {
            "no advisory (requested packages only)".to_string()
        } else {
            plan.fixes.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// An event as one line (events are cleaned when made: coldpatch_catalog::text).
fn line(e: &coldpatch_catalog::Event) -> String {
    let t = output::time(e.time_ms / 1000);
    match &e.image {
        Some(i) => format!("{t} run {} {}: {}: {}", e.run, i, e.kind, e.message),
        None => format!("{t} run {}: {}: {}", e.run, e.kind, e.message),
    }
}

/// Events as they happen, one line each, on standard error (standard output carries the
/// result).
fn watch(e: &coldpatch_catalog::Event) {
    eprintln!("{}", line(e));
}

/// A patch run on the terminal: every event a line, under a bar of images done with
/// each stage counted (`coldpatch_catalog::progress`, as the console's run page). Off a
/// terminal the bar is hidden and the lines are all there is.
struct RunBar {
    images: Vec<String>,
    events: Vec<coldpatch_catalog::Event>,
    bar: indicatif::ProgressBar,
}

impl RunBar {
    fn new(images: &[String]) -> RunBar {
        let bar = indicatif::ProgressBar::new(images.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} image(s) done {msg} [{elapsed}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        RunBar {
            images: images.to_vec(),
            events: Vec::new(),
            bar,
        }
    }

    fn event(&mut self, e: &coldpatch_catalog::Event) {
        if self.bar.is_hidden() {
            watch(e);
        } else {
            self.bar.println(line(e));
        }
        self.events.push(e.clone());
        let p = coldpatch_catalog::progress::progress(&self.images, &self.events, false);
        let mut at: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, s) in &p.images {
            *at.entry(s.as_str()).or_default() += 1;
        }
        self.bar.set_position(p.done as u64);
        self.bar.set_message(
            at.iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

/// `SRC:GUEST_PATH` pairs, with each source hashed now (the run checks the copy it uploads
/// against this).
pub fn parse_puts(args: &[String]) -> Result<Vec<Put>> {
    args.iter()
        .map(|a| {
            let (src, guest) = a
                .split_once(':')
                .with_context(|| format!("--put {a}: expected SRC:GUEST_PATH"))?;
            let guest_ok = guest.starts_with('/')
                && !guest.ends_with('/')
                && !guest.contains('\0')
                && guest.split('/').all(|c| c != ".." && c != ".");
            anyhow::ensure!(
                guest_ok,
                "--put {a}: the guest path must be absolute and plain (no '.', '..' or trailing '/')"
            );
            let source = Path::new(src)
                .canonicalize()
                .with_context(|| format!("--put {a}: cannot open {src}"))?;
            anyhow::ensure!(source.is_file(), "--put {a}: {src} is not a regular file");
            let sha256 = coldpatch_disk::hash::sha256_file(&source)
                .with_context(|| format!("--put {a}: cannot read {src}"))?;
            Ok(Put {
                source,
                guest: guest.to_string(),
                sha256,
            })
        })
        .collect()
}

pub fn apply(
    catalog: &Catalog,
    images: &[String],
    ask: &Ask<'_>,
    appliances: usize,
    json: bool,
) -> Result<ExitCode> {
    let mut bar = RunBar::new(images);
    let report = coldpatch_patcher::execute(
        catalog,
        images,
        ask,
        appliances,
        coldpatch_patcher::Control::default(),
        &mut |e| bar.event(e),
    );
    bar.bar.finish_and_clear();
    let report = report?;
    if json {
        output::json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .images
            .iter()
            .map(|r| {
                let (outcome, detail) = match &r.outcome {
                    Outcome::Committed { version } => (
                        format!("version {version}"),
                        format!(
                            "findings {} -> {}{}",
                            r.findings_before,
                            r.findings_after.unwrap_or_default(),
                            if r.fixed.is_empty() {
                                String::new()
                            } else {
                                format!("; fixed {}", r.fixed.join(", "))
                            }
                        ),
                    ),
                    Outcome::Failed { reason } => ("failed".into(), reason.clone()),
                    Outcome::Unchanged { reason } => ("unchanged".into(), reason.clone()),
                    Outcome::Pending => ("pending".into(), String::new()),
                    Outcome::Discarded => ("discarded".into(), String::new()),
                };
                vec![r.image.clone(), outcome, detail]
            })
            .collect();
        output::table(&["IMAGE", "OUTCOME", "DETAIL"], &rows)?;
        outln!("run {}: {}", report.run.id, report.run.state.as_str())?;
    }
    Ok(if report.run.state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn rollback(catalog: &Catalog, image: &str) -> Result<ExitCode> {
    let run = coldpatch_patcher::rollback(catalog, image, &mut watch)?;
    let img = catalog.image(image)?;
    outln!(
        "run {}: {image} is at version {}",
        run.id,
        img.current_version
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn flatten(catalog: &Catalog, image: &str, out: &Path) -> Result<ExitCode> {
    let run = coldpatch_patcher::flatten(catalog, image, out, &mut watch)?;
    outln!("run {}: wrote {}", run.id, out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// A run still marked running whose process is gone was interrupted (the next run on its
/// images records that; this shows it already).
fn effective(mut r: RunRecord) -> RunRecord {
    // A shared run's parts run on workers anywhere, under leases: its pid says nothing.
    if r.state == RunState::Running && !r.shared && !Path::new(&format!("/proc/{}", r.pid)).exists()
    {
        r.state = RunState::Interrupted;
    }
    r
}

pub fn runs(catalog: &Catalog, json: bool) -> Result<ExitCode> {
    let runs: Vec<RunRecord> = catalog.runs()?.into_iter().map(effective).collect();
    if json {
        output::json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.kind.clone(),
                r.state.as_str().to_string(),
                output::time(r.started),
                r.finished
                    .map(|f| format!("{} s", f.saturating_sub(r.started)))
                    .unwrap_or_default(),
                r.images.join(", "),
            ]
        })
        .collect();
    output::table(
        &["RUN", "KIND", "STATE", "STARTED", "TOOK", "IMAGES"],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(catalog: &Catalog, id: &str, json: bool) -> Result<ExitCode> {
    let run = effective(catalog.run(id)?);
    let images = catalog.run_images(id)?;
    let events = catalog.events(id)?;
    let jobs = if run.shared {
        catalog.run_jobs(id)?
    } else {
        Vec::new()
    };
    if json {
        output::json(&serde_json::json!({
            "run": run, "images": images, "events": events, "jobs": jobs
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "run {} ({}): {}{}",
        run.id,
        run.kind,
        run.state.as_str(),
        run.error
            .as_ref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    )?;
    for j in &jobs {
        let at = match (&j.job.worker, &j.job.outcome) {
            (_, Some(o)) => o.clone(),
            (Some(w), None) => format!("on worker {w}"),
            (None, None) if j.waiting_for_root => {
                "waiting for a worker with a root over it".to_string()
            }
            (None, None) => "waiting for a free worker".to_string(),
        };
        let tries = if j.job.attempts > 1 {
            format!(" ({} attempts)", j.job.attempts)
        } else {
            String::new()
        };
        outln!("  job {}: {} {at}{tries}", j.job.image, j.job.state)?;
    }
    for e in &events {
        let t = output::time(e.time_ms / 1000);
        outln!(
            "  {t} {:<12} {}{}{}",
            e.kind,
            e.worker
                .as_ref()
                .map(|w| format!("[{w}] "))
                .unwrap_or_default(),
            e.image
                .as_ref()
                .map(|i| format!("{i}: "))
                .unwrap_or_default(),
            e.message
        )?;
    }
    for ri in &images {
        let outcome = match &ri.outcome {
            Outcome::Committed { version } => format!("committed as version {version}"),
            Outcome::Failed { reason } => format!("failed: {reason}"),
            Outcome::Pending => "pending".into(),
            Outcome::Discarded => "discarded".into(),
            Outcome::Unchanged { reason } => format!("unchanged: {reason}"),
        };
        outln!(
            "image {}: {outcome} (built on version {})",
            ri.image,
            ri.base_version
        )?;
        outln!(
            "  findings before {}, after {}",
            ri.before.len(),
            ri.after.len()
        )?;
        if !ri.log.is_empty() {
            outln!("  log:")?;
            for l in ri.log.lines() {
                outln!("    {l}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
