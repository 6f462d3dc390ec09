//! The catalog's one error type. Backend failures arrive as [`CatalogError::Store`] with
//! the backend's error boxed as the cause, so no storage engine's type is part of the
//! public API; every variant names the catalog or the record it is about.

use std::path::PathBuf;

pub type StoreCause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{catalog} has no shared job queue: workers and queued runs need a PostgreSQL catalog (--catalog postgresql://...); on an embedded catalog `coldpatch serve` runs jobs itself")]
    NotShared { catalog: String },
    #[error("a worker named {name} is alive on {host} (pid {pid}): give this one another --name, or stop that one")]
    WorkerTaken {
        name: String,
        host: String,
        pid: u32,
    },
    #[error("catalog at {dir} is in use by another coldpatch process")]
    Locked { dir: PathBuf },
    #[error("{catalog}: {why}")]
    Location { catalog: String, why: String },
    #[error("cannot connect to {catalog}")]
    Connect {
        catalog: String,
        #[source]
        source: StoreCause,
    },
    #[error(
        "{catalog} has schema version {found}, written by a newer coldpatch \
         (this one knows up to {known}); upgrade coldpatch to use it"
    )]
    Newer {
        catalog: String,
        found: i64,
        known: i64,
    },
    #[error(
        "{catalog} holds tables that are not a coldpatch catalog ({tables}); \
         use an empty database"
    )]
    Foreign { catalog: String, tables: String },
    #[error(
        "{catalog} needs a state directory for its files (--state-dir or COLDPATCH_STATE_DIR)"
    )]
    NoStateDir { catalog: String },
    #[error("{catalog} is not empty; copy into a new catalog")]
    NotEmpty { catalog: String },
    #[error("feed {feed} was imported by another process meanwhile; nothing was written, import it again")]
    FeedMoved { feed: String },
    /// `catalog` names the catalog as [`crate::Catalog::describe`] does.
    #[error("{catalog}: storage failed")]
    Store {
        catalog: String,
        #[source]
        source: StoreCause,
    },
    #[error("{catalog}: stored record {what} is unreadable")]
    Corrupt { catalog: String, what: String },
    /// A scan's consumer could not take more output (the reader went away).
    #[error("output closed")]
    Output,
    #[error("no repository {0} in the catalog; run `coldpatch repo index {0}`")]
    NoRepo(String),
    #[error("no image {0} in the catalog")]
    NoImage(String),
    #[error("{0} has no recorded scan; run `coldpatch collect` first")]
    NotCollected(String),
    #[error("no run {0} in the catalog")]
    NoRun(String),
    #[error("no token {0} in the catalog")]
    NoToken(String),
    #[error("no schedule {0} in the catalog")]
    NoSchedule(String),
    #[error("{image}: version {base} was patched, but version {current} is current now")]
    Moved {
        image: String,
        base: u32,
        current: u32,
    },
    #[error("{image} has no version {version}")]
    NoVersion { image: String, version: u32 },
    #[error("{0}: the current version has no earlier version to return to")]
    NoParent(String),
    #[error("invalid label or name {label:?}: {why}")]
    Label { label: String, why: String },
    #[error("the name {name:?} is taken by {image}")]
    NameTaken { name: String, image: String },
    #[error("invalid path pattern {pattern:?}")]
    Pattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("cannot prepare the state directory {dir}")]
    State {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CatalogError {
    /// Whether the catalog could not be opened at all: a bad location, a server that
    /// does not answer or refuses, a schema that is not ours (the CLI exits 2).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CatalogError::Location { .. }
                | CatalogError::Connect { .. }
                | CatalogError::Newer { .. }
                | CatalogError::Foreign { .. }
                | CatalogError::NoStateDir { .. }
                | CatalogError::Locked { .. }
                | CatalogError::NotShared { .. }
                | CatalogError::WorkerTaken { .. }
        )
    }

    /// Whether the error is about what was asked (a missing record, a bad pattern, a
    /// version that moved), not about the catalog failing.
    pub fn is_request(&self) -> bool {
        !matches!(
            self,
            CatalogError::Store { .. }
                | CatalogError::Corrupt { .. }
                | CatalogError::Locked { .. }
                | CatalogError::Location { .. }
                | CatalogError::Connect { .. }
                | CatalogError::Newer { .. }
                | CatalogError::Foreign { .. }
                | CatalogError::NoStateDir { .. }
                | CatalogError::State { .. }
                | CatalogError::Output
        )
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
