//! The shared queue from the command line: `worker` (take and run jobs here), `workers`
//! (who is there), and `collect --queue` / `patch apply --queue` with `--wait`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use coldpatch_catalog::{Catalog, PlanPolicy, RunRecord, RunState};
use coldpatch_jobs::shared::SharedJobs;
use coldpatch_jobs::worker::WorkerOptions;
use coldpatch_jobs::{JobSpec, Queue};

use crate::args::{Fix, QueueArgs};
use crate::cli::Unavailable;
use crate::{outln, output};

/// The refusal (exit 2) of what needs a shared queue, on a catalog without one.
fn need_queue(catalog: &Catalog) -> Result<()> {
    if catalog.has_queue() {
        return Ok(());
    }
    Err(anyhow::Error::new(Unavailable(
        coldpatch_catalog::CatalogError::NotShared {
            catalog: catalog.describe().to_string(),
        }
        .into(),
    )))
}

/// The shared queue, or the refusal on a catalog without one.
fn shared(catalog: Catalog) -> Result<(Arc<Catalog>, SharedJobs)> {
    need_queue(&catalog)?;
    let catalog = Arc::new(catalog);
    let q = SharedJobs::new(catalog.clone())?;
    Ok((catalog, q))
}

pub fn worker(catalog: Catalog, opts: WorkerOptions) -> Result<ExitCode> {
    need_queue(&catalog)?;
    if opts.roots.images().is_empty() {
        bail!(
            "a worker opens images only under the directories it is given: name at least \
             one with --image-root DIR (`--image-root /` for every image on this host)"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot handle SIGTERM")?;
    }
    let catalog = Arc::new(catalog.acting_as(&opts.name));
    coldpatch_jobs::worker::run(catalog, opts, stop).map_err(|e| match e {
        coldpatch_jobs::JobError::Catalog(c) if c.is_unavailable() => {
            anyhow::Error::new(Unavailable(c.into()))
        }
        e => e.into(),
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn workers(catalog: &Catalog, json: bool) -> Result<ExitCode> {
    need_queue(catalog)?;
    let ws = catalog.workers()?;
    output::list(
        json,
        &ws,
        &[
            "NAME",
            "HOST",
            "STATUS",
            "HEARTBEAT",
            "HELD",
            "SLOTS",
            "ROOTS",
        ],
        |w| {
            vec![
                w.spec.name.clone(),
                w.spec.host.clone(),
                w.status.to_string(),
                format!("{:.1} s ago", w.silent_ms as f64 / 1000.0),
                w.held.to_string(),
                w.spec.slots.to_string(),
                w.spec.roots.join(" "),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn cancel(catalog: Catalog, run: &str, json: bool) -> Result<ExitCode> {
    let (_, queue) = shared(catalog)?;
    let c = queue.cancel(run)?;
    if json {
        output::json(&c)?;
    } else {
        outln!("run {}: {}", c.run, c.how)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Image files as the workers will see them: absolute, and canonical where this host
/// reaches them (a worker's roots are canonical too).
fn image_paths(images: &[PathBuf]) -> Result<Vec<String>> {
    let cwd = std::env::current_dir().context("no current directory")?;
    Ok(images
        .iter()
        .map(|i| {
            i.canonicalize()
                .unwrap_or_else(|_| cwd.join(i))
                .display()
                .to_string()
        })
        .collect())
}

pub fn queue_collect(
    catalog: Catalog,
    images: &[PathBuf],
    rescan: bool,
    q: &QueueArgs,
    json: bool,
) -> Result<ExitCode> {
    let spec = JobSpec::Collect {
        images: image_paths(images)?,
        rescan,
    };
    submit(catalog, &spec, q, json)
}

pub fn queue_apply(
    catalog: Catalog,
    images: &[String],
    fix: &Fix,
    no_replay: bool,
    q: &QueueArgs,
    json: bool,
) -> Result<ExitCode> {
    if !fix.packages.is_empty() || fix.all_upgradable {
        bail!("--queue takes what to fix as --cve, --all-fixable or --min-severity, not --package or --all-upgradable");
    }
    let policy = match (fix.all_fixable, fix.min_severity, fix.cves.is_empty()) {
        (true, None, true) => PlanPolicy::AllFixable,
        (false, Some(severity), true) => PlanPolicy::MinSeverity { severity },
        (false, None, false) => PlanPolicy::Cves {
            ids: fix.cves.clone(),
        },
        _ => bail!("with --queue, give exactly one of --cve, --all-fixable or --min-severity"),
    };
    let repo = fix
        .repo
        .canonicalize()
        .with_context(|| format!("repository {}", fix.repo.display()))?;
    let images = images
        .iter()
        .map(|i| Ok(catalog.image(&crate::keys::image_key(i))?.path))
        .collect::<Result<Vec<_>>>()?;
    let spec = JobSpec::Patch {
        images,
        policy,
        repo: repo.display().to_string(),
        no_replay,
    };
    submit(catalog, &spec, q, json)
}

fn submit(catalog: Catalog, spec: &JobSpec, q: &QueueArgs, json: bool) -> Result<ExitCode> {
    let (catalog, queue) = shared(catalog)?;
    let run = queue.submit(spec, None)?;
    if !q.wait {
        if json {
            output::json(&run)?;
        } else {
            outln!("{}", run.id)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let end = follow(&catalog, &run)?;
    if json {
        output::json(&end)?;
    } else {
        outln!(
            "run {}: {}{}",
            end.id,
            end.state.as_str(),
            end.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )?;
    }
    Ok(if end.state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Follows a queued run to its end: a bar of its images done, what waits for a worker.
fn follow(catalog: &Catalog, run: &RunRecord) -> Result<RunRecord> {
    let bar = indicatif::ProgressBar::new(run.images.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} image(s) {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("run {}", run.id));
    loop {
        let r = catalog.run(&run.id)?;
        let jobs = catalog.run_jobs(&run.id)?;
        let done = jobs.iter().filter(|j| j.job.state == "done").count();
        let running = jobs.iter().filter(|j| j.job.state == "running").count();
        let waiting = jobs.iter().filter(|j| j.waiting_for_root).count();
        bar.set_position(done as u64);
        bar.set_message(match (running, waiting) {
            (0, 0) => String::new(),
            (r, 0) => format!("({r} running)"),
            (r, w) => format!("({r} running, {w} waiting for a worker with a root over them)"),
        });
        if !matches!(r.state, RunState::Queued | RunState::Running) {
            bar.finish_and_clear();
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
