//! `coldpatch`: parses the arguments (`args.rs`), opens the catalog and hands each
//! command to its module. Errors from the libraries are printed with their whole chain; a
//! failing image does not stop the others.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use coldpatch_catalog::{Catalog, Location};
use coldpatch_collector::CollectOptions;
use coldpatch_disk::OpenOptions;

use crate::args::{CatalogCommand, Cli, Command, FeedCommand, PatchCommand, RepoCommand};
use crate::keys::{image_key, keys, versions};
use crate::{
    catalogcmd, inventorycmd, labelcmd, output, patchcmd, repocmd, tokencmd, versioncmd, vulncmd,
    workercmd,
};

/// The catalog could not be opened at all (exit 2): its location, server, login or schema.
#[derive(Debug)]
pub struct Unavailable(pub anyhow::Error);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", output::chain(&self.0))
    }
}

impl std::error::Error for Unavailable {}

/// Opens the catalog, or says why not: for an embedded one held by another process,
/// which server holds it.
pub fn open_catalog(at: &Location, state: Option<&Path>) -> Result<Catalog> {
    if let Location::Dir(dir) = at {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the catalog directory {}", dir.display()))
            .map_err(|e| anyhow::Error::new(Unavailable(e)))?;
    }
    let refusal = match Catalog::connect(at, state) {
        Ok(c) => return Ok(c),
        // Busy, not broken: today's refusal (exit 1), naming the holder.
        Err(coldpatch_catalog::CatalogError::Locked { dir }) => {
            return Err(match coldpatch_catalog::StateDir::new(&dir).server() {
                Some(s) => anyhow::anyhow!(
                    "the catalog at {} is held by `coldpatch serve` (pid {}, http://{}/); \
                     use the console or the REST API there, or stop the server first",
                    dir.display(),
                    s.pid,
                    s.listen
                ),
                None => anyhow::anyhow!(
                    "the catalog at {} is in use by another coldpatch process; \
                     wait for it to finish",
                    dir.display()
                ),
            })
        }
        Err(e) if e.is_unavailable() => anyhow::Error::new(e),
        Err(e) => return Err(e.into()),
    };
    Err(anyhow::Error::new(Unavailable(refusal)))
}

/// Where the catalog is: `--catalog`, else `--data-dir`, else the user's data directory.
fn location(catalog: Option<String>, data_dir: Option<PathBuf>) -> Result<Location> {
    let at = match (catalog, data_dir) {
        (Some(c), _) => c,
        (None, Some(d)) => return Ok(Location::Dir(d)),
        (None, None) => dirs::data_dir()
            .context("no user data directory; pass --catalog")?
            .join("coldpatch")
            .display()
            .to_string(),
    };
    Location::parse(&at).map_err(|e| anyhow::Error::new(Unavailable(e.into())))
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    // A consumer of a delta needs no catalog.
    if let Command::ImportDelta {
        dir,
        onto,
        out,
        json,
    } = &cli.command
    {
        return versioncmd::import_delta(dir, onto, out.as_deref(), *json);
    }
    if let Command::Catalog {
        command: CatalogCommand::Copy { from, to, json },
    } = &cli.command
    {
        return catalogcmd::copy(from, to, *json);
    }
    let at = location(cli.catalog, cli.data_dir)?;
    let catalog = open_catalog(&at, cli.state_dir.as_deref())?;
    match cli.command {
        Command::Serve {
            listen,
            workers,
            appliances,
            insecure_cookies,
            image_roots,
            repo_roots,
            tls_cert,
            tls_key,
        } => {
            coldpatch_web::serve(
                catalog,
                coldpatch_web::Options {
                    listen,
                    workers: workers.into(),
                    appliances: appliances.into(),
                    secure_cookies: !insecure_cookies,
                    roots: coldpatch_jobs::Roots::new(&image_roots, &repo_roots)?,
                    tls: tls_cert.zip(tls_key),
                },
            )
            .context("the server stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker {
            name,
            image_roots,
            repo_roots,
            slots,
            appliances,
            batch,
            lease,
        } => workercmd::worker(
            catalog,
            coldpatch_jobs::worker::WorkerOptions {
                roots: coldpatch_jobs::Roots::new(&image_roots, &repo_roots)?,
                slots: slots.into(),
                appliances: appliances.into(),
                batch: batch.into(),
                lease,
                name,
            },
        ),
        Command::Workers { json } => workercmd::workers(&catalog, json),
        Command::Cancel { run, json } => workercmd::cancel(catalog, &run, json),
        Command::Token { command } => tokencmd::token(&catalog, command),
        Command::Catalog { command } => match command {
            CatalogCommand::Info { json } => catalogcmd::info(&catalog, json),
            // Taken before a catalog is opened; kept here so the match stays total.
            CatalogCommand::Copy { from, to, json } => catalogcmd::copy(&from, &to, json),
        },
        Command::Collect {
            images,
            no_files,
            no_hash,
            force,
            image_roots,
            rescan,
            no_guestfs,
            queue,
            json,
        } => {
            if queue.queue {
                return workercmd::queue_collect(catalog, &images, rescan, &queue, json);
            }
            let opts = CollectOptions {
                open: OpenOptions {
                    image_roots,
                    force,
                    // The host's own user may name a block device.
                    block_devices: true,
                    ..Default::default()
                },
                files: !no_files,
                hash: !no_files && !no_hash,
                guestfs: !no_guestfs,
                ..Default::default()
            };
            inventorycmd::collect(&catalog, &images, &opts, rescan, json)
        }
        Command::Feed { command } => match command {
            FeedCommand::Import {
                path,
                name,
                format,
                json,
            } => vulncmd::feed_import(&catalog, &path, name, format, json),
            FeedCommand::List { json } => vulncmd::feed_list(&catalog, json),
        },
        Command::Scan {
            images,
            fail_on,
            only_fixable,
            max_feed_age,
            all_versions,
            labels,
            json,
        } => vulncmd::scan(
            &catalog,
            vulncmd::ScanArgs {
                scope: crate::keys::scope(&images, &labels)?,
                json,
                only_fixable,
                fail_on,
                max_feed_age,
                versions: versions(all_versions),
            },
        ),
        Command::Affected { id, labels, json } => {
            vulncmd::affected(&catalog, &id, &crate::keys::scope(&[], &labels)?, json)
        }
        Command::Patch { command } => match command {
            PatchCommand::Plan { image, fix, json } => patchcmd::plan_cmd(
                &catalog,
                &image_key(&image),
                &fix.repo,
                &fix.request(),
                json,
            ),
            PatchCommand::Apply {
                images,
                labels,
                fix,
                queue,
                no_replay,
                json,
                ..
            } if queue.queue => {
                let images = crate::keys::labelled_keys(&catalog, &images, &labels)?;
                workercmd::queue_apply(catalog, &images, &fix, no_replay, &queue, json)
            }
            PatchCommand::Apply {
                images,
                labels,
                fix,
                batch,
                no_replay,
                json,
                ..
            } => patchcmd::apply(
                &catalog,
                &crate::keys::labelled_keys(&catalog, &images, &labels)?,
                &coldpatch_patcher::Ask::Packages {
                    req: &fix.request(),
                    repo_root: &fix.repo,
                    replay: !no_replay,
                },
                usize::from(batch.appliances),
                json,
            ),
            PatchCommand::Files {
                images,
                puts,
                batch,
                json,
            } => {
                let puts = patchcmd::parse_puts(&puts)?;
                patchcmd::apply(
                    &catalog,
                    &keys(&catalog, &images),
                    &coldpatch_patcher::Ask::Files { puts: &puts },
                    usize::from(batch.appliances),
                    json,
                )
            }
            PatchCommand::Rollback { image } => {
                patchcmd::rollback(&catalog, &keys(&catalog, &[image])[0])
            }
            PatchCommand::Flatten { image, out } => {
                patchcmd::flatten(&catalog, &keys(&catalog, &[image])[0], &out)
            }
        },
        Command::Diff { a, b, times, json } => versioncmd::diff(&catalog, &a, &b, times, json),
        Command::Export {
            image,
            version,
            holder,
            against,
            out,
            json,
        } => versioncmd::export(
            &catalog,
            &image_key(&image),
            version,
            holder.as_deref(),
            against.as_deref(),
            &out,
            json,
        ),
        // Taken before the catalog is opened; kept here so the match stays total.
        Command::ImportDelta {
            dir,
            onto,
            out,
            json,
        } => versioncmd::import_delta(&dir, &onto, out.as_deref(), json),
        Command::Shared { images, json } => {
            versioncmd::shared(&catalog, &keys(&catalog, &images), json)
        }
        Command::Runs { json } => patchcmd::runs(&catalog, json),
        Command::Run { id, json } => patchcmd::run(&catalog, &id, json),
        Command::Repo { command } => match command {
            RepoCommand::Index { dir, json } => repocmd::index(&catalog, &dir, json),
            RepoCommand::List { json } => repocmd::list(&catalog, json),
            RepoCommand::Packages { dir, name, json } => {
                repocmd::packages(&catalog, &image_key(&dir), name.as_deref(), json)
            }
            RepoCommand::Harvest {
                image,
                packages,
                out,
                allow_modified,
                json,
            } => repocmd::harvest(
                &catalog,
                &image,
                &coldpatch_harvest::Options {
                    packages,
                    allow_modified,
                },
                &out,
                json,
            ),
        },
        Command::Sbom {
            image,
            format,
            output,
        } => vulncmd::sbom(&catalog, &image_key(&image), format, output.as_deref()),
        Command::Images { labels, json } => {
            inventorycmd::images(&catalog, &crate::keys::scope(&[], &labels)?, json)
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Report {
            labels,
            format,
            output,
        } => labelcmd::report(&catalog, &labels, &format, output.as_deref()),
        Command::Label {
            args,
            unlabel,
            name,
            clear_name,
            json,
        } => labelcmd::label(&catalog, &args, &unlabel, name, clear_name, json),
        Command::Show { image, json } => {
            inventorycmd::show(&catalog, &image_key(&image), json).map(|()| ExitCode::SUCCESS)
        }
        Command::Packages {
            name,
            older_than,
            select,
        } => inventorycmd::packages(&catalog, &select, name.as_deref(), older_than.as_deref()),
        Command::Files {
            path,
            sha256,
            select,
        } => inventorycmd::files(&catalog, &select, path.as_deref(), sha256.as_deref()),
    }
}
