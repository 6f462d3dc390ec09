//! Arguments (one clap table) and the commands. Errors from the libraries are printed
//! with their whole chain; a failing image does not stop the others.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use coldpatch_catalog::Catalog;
use coldpatch_collector::CollectOptions;
use coldpatch_disk::OpenOptions;

use crate::output::{self, bytes, table};
use crate::{patchcmd, repocmd, versioncmd, vulncmd};

#[derive(Parser)]
#[command(
    name = "coldpatch",
    version,
    about = "Inventory, scan and patch stopped VM disk images without booting them"
)]
struct Cli {
    /// Catalog directory [default: the user's data directory, e.g. ~/.local/share/coldpatch]
    #[arg(long, global = true, env = "COLDPATCH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read images and record their OS, packages and files in the catalog
    Collect {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
        /// Packages and OS only: do not record the file list
        #[arg(long)]
        no_files: bool,
        /// Record files but do not hash their content
        #[arg(long)]
        no_hash: bool,
        /// Read an image even while a running VM writes it
        #[arg(long)]
        force: bool,
        /// Directory backing files may live in (repeatable) [default: the image's directory]
        #[arg(long = "image-root", value_name = "DIR")]
        image_roots: Vec<PathBuf>,
        /// Collect again even if the image is unchanged since its last scan
        #[arg(long)]
        rescan: bool,
        /// Never start a libguestfs appliance (roots on LVM, XFS or btrfs then fail)
        #[arg(long)]
        no_guestfs: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the images in the catalog
    Images {
        #[arg(long)]
        json: bool,
    },
    /// Show one image: OS, disk layout, packages, security facts, scan history
    Show {
        /// Image path or id
        image: String,
        #[arg(long)]
        json: bool,
    },
    /// Packages across the fleet
    Packages {
        /// Exact package name
        #[arg(long)]
        name: Option<String>,
        /// Only versions older than this (compared by each package's own rules)
        #[arg(long, value_name = "VERSION")]
        older_than: Option<String>,
        /// Only this image (path or id)
        #[arg(long)]
        image: Option<String>,
        /// Every version of each image, not only the current one
        #[arg(long)]
        all_versions: bool,
        #[arg(long)]
        json: bool,
    },
    /// Vulnerability feeds: import (OSV, Debian Security Tracker, Alpine secdb) and list
    Feed {
        #[command(subcommand)]
        command: FeedCommand,
    },
    /// Match images' packages against the imported feeds (default: every image)
    Scan {
        /// Image paths or ids
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
        /// Exit with code 3 if a finding has at least this severity
        /// (negligible, low, medium, high, critical, unknown)
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<coldpatch_vuln::Severity>,
        /// Only findings with a fixed version available
        #[arg(long)]
        only_fixable: bool,
        /// Warn when a feed's data is older than this
        #[arg(long, env = "COLDPATCH_MAX_FEED_AGE", default_value = "7days", value_parser = humantime::parse_duration)]
        max_feed_age: Duration,
        /// Every version of each image, not only the current one
        #[arg(long)]
        all_versions: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every image affected by an advisory or CVE id, with installed and fixed versions
    Affected {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Patch runs, newest first
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// One patch run: its images, outcomes, events and logs
    Run {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Offline patching: plan, apply, put files, roll back, flatten
    Patch {
        #[command(subcommand)]
        command: PatchCommand,
    },
    /// Local package repositories for offline patching
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// Write the software bill of materials of an image (its current inventory)
    Sbom {
        /// Image path or id
        image: String,
        /// cyclonedx (CycloneDX 1.6 JSON) or spdx (SPDX 2.3 JSON)
        #[arg(long, default_value = "cyclonedx")]
        format: coldpatch_sbom::SbomFormat,
        /// Write to this file instead of standard output
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// What changed between two images or versions (IMAGE, IMAGE@N): packages and files
    Diff {
        /// The old side: image path or id, optionally @N for its version N
        a: String,
        /// The new side
        b: String,
        /// Count a changed modification time as a change
        #[arg(long)]
        times: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write what a consumer needs to hold a version: nothing, its overlay, a chain of
    /// overlays, a flattened image, or a diff against a shared base image; with a manifest
    Export {
        /// Image path or id
        image: String,
        /// The version to ship [default: the current one]
        #[arg(long)]
        version: Option<u32>,
        /// What the consumer holds: a version number of this image or a check value
        #[arg(
            long = "for",
            value_name = "CHECK|VERSION",
            conflicts_with = "against",
            required_unless_present = "against"
        )]
        holder: Option<String>,
        /// Write a diff against this image's current version, which both sides hold
        #[arg(long, value_name = "BASE")]
        against: Option<String>,
        /// A new or empty directory
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a delta written by export, apply it onto the file the consumer holds (never
    /// written: the result is a new file) and prove the result by reading it
    ImportDelta {
        dir: PathBuf,
        /// The base file the delta applies to
        #[arg(long, value_name = "FILE")]
        onto: PathBuf,
        /// The new file [default: <image>-v<N>.qcow2 beside the base]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Content images share (same path and SHA-256), what each holds alone, and what a
    /// shared base image would save; images grouped by common content
    Shared {
        /// Image paths or ids [default: every image]
        images: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Serve the console and REST API on this catalog, with the job queue and scheduler
    /// (the catalog is held by the server while it runs; the CLI then refuses and names it)
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Job worker threads (runs on different images go side by side)
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
        workers: u16,
        /// libguestfs appliances per patch run
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        appliances: u16,
        /// Send the session cookie without the Secure flag (plain http off localhost)
        #[arg(long)]
        insecure_cookies: bool,
    },
    /// API tokens for the server (made here, before `serve`, or by an admin through the API)
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Files across the fleet
    Files {
        /// Glob on the guest path, e.g. '/etc/ssh/*' or '**/authorized_keys'
        #[arg(long, value_name = "GLOB")]
        path: Option<String>,
        /// SHA-256 of the content
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Only this image (path or id)
        #[arg(long)]
        image: Option<String>,
        /// Every version of each image, not only the current one
        #[arg(long)]
        all_versions: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token; its secret is printed once and only its hash is kept
    Create {
        /// What the token may do: viewer reads, operator also scans and patches, admin also
        /// manages tokens, feeds and schedules
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// A name to tell it by
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token
    Revoke { id: String },
}

#[derive(Subcommand)]
enum FeedCommand {
    /// Import a feed file, OSV directory or OSV zip; replaces the feed's previous records
    Import {
        path: PathBuf,
        /// Store under this name [default: from the content, e.g. debian-tracker]
        #[arg(long)]
        name: Option<String>,
        /// Do not detect the format (osv, debian-tracker, alpine-secdb)
        #[arg(long)]
        format: Option<coldpatch_vuln::Format>,
        #[arg(long)]
        json: bool,
    },
    /// List the imported feeds
    List {
        #[arg(long)]
        json: bool,
    },
}

/// What to fix: advisories, packages, or everything fixable.
#[derive(clap::Args)]
struct Fix {
    /// Local repository directory (indexed now if it is not yet)
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Fix this advisory or CVE (repeatable)
    #[arg(long = "cve", value_name = "ID")]
    cves: Vec<String>,
    /// Upgrade this installed package to the newest version offered (repeatable)
    #[arg(long = "package", value_name = "NAME")]
    packages: Vec<String>,
    /// Fix every finding that has a fix
    #[arg(long)]
    all_fixable: bool,
    /// Fix every finding of this severity or worse that has a fix
    #[arg(long, value_name = "SEVERITY")]
    min_severity: Option<coldpatch_vuln::Severity>,
}

impl Fix {
    fn request(&self) -> coldpatch_patcher::Request {
        coldpatch_patcher::Request {
            packages: self.packages.clone(),
            advisories: self.cves.clone(),
            all_fixable: self.all_fixable,
            min_severity: self.min_severity,
        }
    }
}

#[derive(clap::Args)]
struct Batch {
    /// Split the images over this many libguestfs appliances run side by side (each pays
    /// one launch, 20-60 s under TCG; worth it with CPUs to spare)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    appliances: u16,
}

#[derive(Subcommand)]
enum PatchCommand {
    /// Print what an upgrade would install, and why, without writing anything
    Plan {
        /// Image path or id
        image: String,
        #[command(flatten)]
        fix: Fix,
        #[arg(long)]
        json: bool,
    },
    /// Upgrade images offline on a qcow2 overlay (one appliance for all), verify, and
    /// record each as the image's next version
    Apply {
        /// Image paths or ids
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        #[command(flatten)]
        fix: Fix,
        #[command(flatten)]
        batch: Batch,
        #[arg(long)]
        json: bool,
    },
    /// Add or replace files in images (same overlay, verify and commit path)
    Files {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        /// A host file and the absolute guest path to write it to (repeatable)
        #[arg(long = "put", value_name = "SRC:GUEST_PATH", required = true)]
        puts: Vec<String>,
        #[command(flatten)]
        batch: Batch,
        #[arg(long)]
        json: bool,
    },
    /// Make the current version's parent current again
    Rollback { image: String },
    /// Write a standalone qcow2 image of the current version
    Flatten {
        image: String,
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Read a directory of .deb/.rpm files or a mirrored apt layout into the catalog
    Index {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the indexed repositories
    List {
        #[arg(long)]
        json: bool,
    },
    /// Packages an indexed repository offers
    Packages {
        dir: String,
        /// Exact package name
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Opens the catalog, or says which server holds it.
fn open_catalog(dir: &Path) -> Result<Catalog> {
    match Catalog::open(dir) {
        Err(coldpatch_catalog::CatalogError::Locked { .. }) => {
            let held = std::fs::read_to_string(coldpatch_web::server_file(dir))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .filter(|v| {
                    v["pid"]
                        .as_u64()
                        .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
                });
            match held {
                Some(v) => anyhow::bail!(
                    "the catalog at {} is held by `coldpatch serve` (pid {}, http://{}/); \
                     use the console or the REST API there, or stop the server first",
                    dir.display(),
                    v["pid"],
                    v["listen"].as_str().unwrap_or("?")
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

fn token(catalog: &Catalog, command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create { role, name, json } => {
            let role = coldpatch_catalog::Role::parse(&role).context("unknown role")?;
            let (rec, secret) = catalog.create_token(&name, role)?;
            if json {
                output::json(&serde_json::json!({"token": rec, "secret": secret}))?;
            } else {
                eprintln!(
                    "token {} ({}, {}): the secret below is shown this once",
                    rec.id,
                    rec.name,
                    rec.role.as_str()
                );
                crate::outln!("{secret}")?;
            }
        }
        TokenCommand::List { json } => {
            let list = catalog.tokens()?;
            output::list(json, &list, &["ID", "NAME", "ROLE", "CREATED"], |t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.as_str().to_string(),
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_secs(t.created),
                    )
                    .to_string(),
                ]
            })?;
        }
        TokenCommand::Revoke { id } => {
            let t = catalog.revoke_token(&id)?;
            crate::outln!("token {} ({}) revoked", t.id, t.name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn data_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d),
        None => Ok(dirs::data_dir()
            .context("no user data directory; pass --data-dir")?
            .join("coldpatch")),
    }
}

/// Image keys on the command line may be relative paths; the catalog stores absolute ones.
pub(crate) fn image_key(k: &str) -> String {
    Path::new(k)
        .canonicalize()
        .map_or_else(|_| k.to_string(), |p| p.display().to_string())
}

/// Image arguments as the catalog's image paths (ids resolved); unknown ones as given,
/// for the patcher to refuse by name.
fn versions(all: bool) -> coldpatch_catalog::Versions {
    if all {
        coldpatch_catalog::Versions::All
    } else {
        coldpatch_catalog::Versions::Current
    }
}

/// An image in a table: with `@vN` when rows of several versions are shown.
pub(crate) fn shown(image: &str, version: u32, all: bool) -> String {
    if all {
        format!("{image}@v{version}")
    } else {
        image.to_string()
    }
}

fn keys(catalog: &Catalog, images: &[String]) -> Vec<String> {
    images
        .iter()
        .map(|i| {
            let k = image_key(i);
            catalog.image(&k).map_or(k, |r| r.path)
        })
        .collect()
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
                    data_dir: dir,
                    workers: workers.into(),
                    appliances: appliances.into(),
                    secure_cookies: !insecure_cookies,
                },
            )
            .context("the server stopped")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => token(&catalog, command),
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
            collect(&catalog, &images, &opts, rescan, json)
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
        Command::Images { json } => images(&catalog, json).map(|()| ExitCode::SUCCESS),
        Command::Show { image, json } => {
            show(&catalog, &image_key(&image), json).map(|()| ExitCode::SUCCESS)
        }
        Command::Packages {
            name,
            older_than,
            image,
            all_versions,
            json,
        } => {
            let hits = catalog.packages(
                image.as_deref().map(image_key).as_deref(),
                versions(all_versions),
                name.as_deref(),
                older_than.as_deref(),
            )?;
            output::list(
                json,
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
        Command::Files {
            path,
            sha256,
            image,
            all_versions,
            json,
        } => {
            let hits = catalog.files(
                image.as_deref().map(image_key).as_deref(),
                versions(all_versions),
                path.as_deref(),
                sha256.as_deref(),
            )?;
            output::list(
                json,
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
    }
}

#[derive(serde::Serialize)]
struct CollectResult {
    image: String,
    ok: bool,
    unchanged: bool,
    scan: Option<coldpatch_catalog::ScanRecord>,
    error: Option<String>,
}

fn collect(
    catalog: &Catalog,
    images: &[PathBuf],
    opts: &CollectOptions,
    rescan: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut results = Vec::new();
    for img in images {
        let shown = img.display().to_string();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(shown.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        let outcome = collect_one(catalog, img, opts, rescan, &bar);
        bar.finish_and_clear();
        let r = match outcome {
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
        };
        results.push(r);
    }
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

fn images(catalog: &Catalog, json: bool) -> Result<()> {
    let imgs = catalog.images()?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for i in &imgs {
        let scan = i.current_scan.map(|s| catalog.scan(s)).transpose()?;
        rows.push(vec![
            i.id.to_string(),
            i.path.clone(),
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
        out.push(serde_json::json!({ "image": i, "scan": scan }));
    }
    if json {
        output::json(&out)
    } else {
        table(
            &[
                "ID", "IMAGE", "FORMAT", "OS", "PACKAGES", "FILES", "SCANNED",
            ],
            &rows,
        )
    }
}

fn show(catalog: &Catalog, key: &str, json: bool) -> Result<()> {
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
                v.check.as_deref().map_or("-", |c| &c[..16]).to_string(),
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
