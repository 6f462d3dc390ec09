//! The command line, as one clap table: every command, flag and its help text. Parsed
//! here, validated where each command runs (paths canonicalised, images resolved).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "coldpatch",
    version,
    about = "Inventory, scan and patch stopped VM disk images without booting them"
)]
pub struct Cli {
    /// The catalog: a directory (the embedded store) or a PostgreSQL URL
    /// (postgres://user@host:port/db, ?host=/run/postgresql for a socket) [default: the
    /// user's data directory, e.g. ~/.local/share/coldpatch]
    #[arg(long, global = true, env = "COLDPATCH_CATALOG", value_name = "CATALOG")]
    pub catalog: Option<String>,
    /// Catalog directory (the embedded store; the same as --catalog DIR)
    #[arg(
        long,
        global = true,
        env = "COLDPATCH_DATA_DIR",
        value_name = "DIR",
        conflicts_with = "catalog"
    )]
    pub data_dir: Option<PathBuf>,
    /// Where the catalog's files live (version overlays, run locks, uploads) [default:
    /// beside an embedded catalog; none for PostgreSQL, where patching needs one that
    /// every patching host shares]
    #[arg(long, global = true, env = "COLDPATCH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        #[command(flatten)]
        queue: QueueArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the images in the catalog, with their names and labels
    Images {
        #[command(flatten)]
        labels: Labels,
        #[arg(long)]
        json: bool,
    },
    /// Name and label images: `coldpatch label IMAGE... env=prod owner=web`. An argument
    /// with '=' and no '/' before it is a label (write ./a=b.qcow2 for such a file)
    Label {
        /// Image paths, ids or names, then key=value labels to set
        #[arg(required = true, value_name = "IMAGE|KEY=VALUE")]
        args: Vec<String>,
        /// Remove this label (repeatable)
        #[arg(long = "unlabel", value_name = "KEY")]
        unlabel: Vec<String>,
        /// Give the image this display name (one image only)
        #[arg(long, value_name = "NAME", conflicts_with = "clear_name")]
        name: Option<String>,
        /// Go back to the file name as the display name
        #[arg(long)]
        clear_name: bool,
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
        #[command(flatten)]
        select: Select,
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
        #[command(flatten)]
        labels: Labels,
        #[arg(long)]
        json: bool,
    },
    /// Every image affected by an advisory or CVE id, with installed and fixed versions
    Affected {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        labels: Labels,
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
    /// The exposure of a group of images for a security team: each image's findings,
    /// what patch runs fixed, and what is still open with and without a fix
    Report {
        #[command(flatten)]
        labels: Labels,
        /// html (one self-contained page) or csv (one table)
        #[arg(long, default_value = "html", value_parser = ["html", "csv"])]
        format: String,
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
        /// A directory whose image files requests and schedules may name (repeatable);
        /// without one the server opens no image path
        #[arg(long = "image-root", value_name = "DIR")]
        image_roots: Vec<PathBuf>,
        /// A directory under which requests and schedules may name repositories
        /// (repeatable); without one the server patches from no repository
        #[arg(long = "repo-root", value_name = "DIR")]
        repo_roots: Vec<PathBuf>,
        /// PEM certificate chain: serve https (with --tls-key)
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Take collect and patch jobs from a shared (PostgreSQL) catalog's queue and run them
    /// here, for the images under this host's roots, until SIGTERM
    Worker {
        /// This worker's name, unique among the live workers of the catalog
        #[arg(long)]
        name: String,
        /// A directory whose images this host reaches and may open (repeatable; at least
        /// one, `/` for every image)
        #[arg(long = "image-root", value_name = "DIR")]
        image_roots: Vec<PathBuf>,
        /// A directory under which patch jobs may name repositories (repeatable); without
        /// one this worker's patch jobs fail
        #[arg(long = "repo-root", value_name = "DIR")]
        repo_roots: Vec<PathBuf>,
        /// Parts run side by side (each a collect job, or a batch of one patch run)
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        slots: u16,
        /// libguestfs appliances per patch batch
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        appliances: u16,
        /// Images of one patch run taken together, into one appliance batch
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        batch: u16,
        /// How long a claimed job stays this worker's without a heartbeat; a worker that
        /// dies loses its jobs to the others after this
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        lease: Duration,
    },
    /// The workers registered on a shared catalog: host, roots, slots, last heartbeat,
    /// jobs held, alive or lost
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run queued on a shared catalog: what has not started is dropped, the
    /// workers holding the rest stop at their next step (images not committed stay as
    /// they were)
    Cancel {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// The catalog itself: what it is and holds, and copying it to another backend
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
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
        #[command(flatten)]
        select: Select,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// The backend, schema version and how many records of each kind it holds
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Copy every record of one catalog into another, empty one (any backends)
    Copy {
        /// The catalog to read (a directory or a PostgreSQL URL)
        #[arg(long, value_name = "CATALOG")]
        from: String,
        /// The catalog to write; it must hold nothing yet
        #[arg(long, value_name = "CATALOG")]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
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
pub enum FeedCommand {
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

/// Which images and versions a fleet query reads, and how it answers.
#[derive(clap::Args)]
pub struct Select {
    /// Only this image (path, id or name)
    #[arg(long)]
    pub image: Option<String>,
    #[command(flatten)]
    pub labels: Labels,
    /// Every version of each image, not only the current one
    #[arg(long)]
    pub all_versions: bool,
    #[arg(long)]
    pub json: bool,
}

/// What to fix: advisories, packages, or everything fixable.
#[derive(clap::Args)]
pub struct Fix {
    /// Local repository directory (indexed now if it is not yet)
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Fix this advisory or CVE (repeatable)
    #[arg(long = "cve", value_name = "ID")]
    pub cves: Vec<String>,
    /// Upgrade this installed package to the newest version offered (repeatable)
    #[arg(long = "package", value_name = "NAME")]
    pub packages: Vec<String>,
    /// Fix every finding that has a fix
    #[arg(long)]
    pub all_fixable: bool,
    /// Fix every finding of this severity or worse that has a fix
    #[arg(long, value_name = "SEVERITY")]
    pub min_severity: Option<coldpatch_vuln::Severity>,
    /// Upgrade every installed package the repository has a newer version of
    #[arg(long)]
    pub all_upgradable: bool,
}

impl Fix {
    pub fn request(&self) -> coldpatch_patcher::Request {
        coldpatch_patcher::Request {
            packages: self.packages.clone(),
            advisories: self.cves.clone(),
            all_fixable: self.all_fixable,
            min_severity: self.min_severity,
            all_upgradable: self.all_upgradable,
        }
    }
}

#[derive(clap::Args)]
pub struct Batch {
    /// Split the images over this many libguestfs appliances run side by side (each pays
    /// one launch, 20-60 s under TCG; worth it with CPUs to spare)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub appliances: u16,
}

/// A label selector.
#[derive(clap::Args, Default)]
pub struct Labels {
    /// Only images with these labels: key=value, key!=value, key, !key, comma-separated
    /// or repeated (all must hold)
    #[arg(long = "label", value_name = "SELECTOR")]
    pub label: Vec<String>,
}

/// Queue a run for the workers of a shared catalog instead of running it here.
#[derive(clap::Args)]
pub struct QueueArgs {
    /// Queue it on the shared catalog for `coldpatch worker` processes; prints the run id
    #[arg(long)]
    pub queue: bool,
    /// With --queue: follow the run to its end, with a progress bar
    #[arg(long, requires = "queue")]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum PatchCommand {
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
        /// Image paths, ids or names
        #[arg(required_unless_present = "label", value_name = "IMAGE")]
        images: Vec<String>,
        #[command(flatten)]
        labels: Labels,
        #[command(flatten)]
        fix: Fix,
        #[command(flatten)]
        batch: Batch,
        /// Run the package tool on every image, instead of on one image of each group
        /// with the same plan and replaying its verified change set onto the others
        #[arg(long)]
        no_replay: bool,
        #[command(flatten)]
        queue: QueueArgs,
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
pub enum RepoCommand {
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
    /// Rebuild installed packages of an image version into package files (a newer image
    /// as a repository), read natively and checked against the catalog's hashes
    Harvest {
        /// Image path or id, or IMAGE@N for a version of it
        image: String,
        /// Only this package, NAME or NAME:ARCH (repeatable) [default: every installed one]
        #[arg(long = "package", value_name = "NAME")]
        packages: Vec<String>,
        /// Where the package files go (made if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Build a package even when files it lists are missing or changed in the image
        #[arg(long)]
        allow_modified: bool,
        #[arg(long)]
        json: bool,
    },
}
