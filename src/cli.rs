//! `coldpatch`: parses the arguments (`args.rs`), opens the catalog and hands each
//! command to its module. Errors from the libraries are printed with their whole chain; a
//! failing image does not stop the others.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use coldpatch_catalog::Catalog;
use coldpatch_collector::CollectOptions;
use coldpatch_disk::OpenOptions;

use crate::args::{Cli, Command, FeedCommand, PatchCommand, RepoCommand};
use crate::keys::{image_key, keys, versions};
use crate::{inventorycmd, patchcmd, repocmd, tokencmd, versioncmd, vulncmd};

/// Opens the catalog, or says which server holds it.
fn open_catalog(dir: &Path) -> Result<Catalog> {
    match Catalog::open(dir) {
        Err(coldpatch_catalog::CatalogError::Locked { .. }) => {
            match coldpatch_catalog::StateDir::new(dir).server() {
                Some(s) => anyhow::bail!(
                    "the catalog at {} is held by `coldpatch serve` (pid {}, http://{}/); \
                     use the console or the REST API there, or stop the server first",
                    dir.display(),
                    s.pid,
                    s.listen
                ),
                None => anyhow::bail!(
                    "the catalog at {} is in use by another coldpatch process; \
                     wait for it to finish",
                    dir.display()
                ),
            }
        }
        r => Ok(r?),
    }
}

fn data_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d),
        None => Ok(dirs::data_dir()
            .context("no user data directory; pass --data-dir")?
            .join("coldpatch")),
    }
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
    let dir = data_dir(cli.data_dir)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the catalog directory {}", dir.display()))?;
    let catalog = open_catalog(&dir)?;
    match cli.command {
        Command::Serve {
            listen,
            workers,
            appliances,
            insecure_cookies,
        } => {
            coldpatch_web::serve(
                catalog,
                coldpatch_web::Options {
                    listen,
                    workers: workers.into(),
                    appliances: appliances.into(),
                    secure_cookies: !insecure_cookies,
                },
            )
            .context("the server stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => tokencmd::token(&catalog, command),
        Command::Collect {
            images,
            no_files,
            no_hash,
            force,
            image_roots,
            rescan,
            no_guestfs,
            json,
        } => {
            let opts = CollectOptions {
                open: OpenOptions {
                    image_roots,
                    force,
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
            json,
        } => vulncmd::scan(
            &catalog,
            vulncmd::ScanArgs {
                images: images.iter().map(|i| image_key(i)).collect(),
                json,
                only_fixable,
                fail_on,
                max_feed_age,
                versions: versions(all_versions),
            },
        ),
        Command::Affected { id, json } => vulncmd::affected(&catalog, &id, json),
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
                fix,
                batch,
                json,
            } => patchcmd::apply(
                &catalog,
                &keys(&catalog, &images),
                &coldpatch_patcher::Ask::Packages {
                    req: &fix.request(),
                    repo_root: &fix.repo,
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
        },
        Command::Sbom {
            image,
            format,
            output,
        } => vulncmd::sbom(&catalog, &image_key(&image), format, output.as_deref()),
        Command::Images { json } => {
            inventorycmd::images(&catalog, json).map(|()| ExitCode::SUCCESS)
        }
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
