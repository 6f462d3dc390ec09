//! Offline upgrades of stopped images: planning (`plan.rs`, made by the image's package
//! manager in `pm/`), and applying a plan or a set of files on a qcow2 overlay in one
//! libguestfs appliance (`guest.rs`), verified by reading the result natively and
//! committed as the image's next version (`run.rs`).
//! Overlays and flattened copies are made by `qemu-img` (`overlay.rs`); one run per image
//! at a time (`lock.rs`). Versions travel as deltas (`delta.rs`).

use std::path::{Path, PathBuf};

pub mod appliance;
pub mod batch;
pub mod delta;
pub mod fault;
pub mod guest;
pub mod lock;
pub mod overlay;
pub mod plan;
pub mod pm;
pub mod replay;
pub mod run;

pub use guest::{Change, GuestError, Put};
pub use plan::{Plan, Refusal, Request, Step};
pub use pm::plan;
pub use run::{
    execute, execute_part, flatten, repository, rollback, Ask, Control, ImageResult, RunReport,
    Watch,
};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{image} is being patched by {holder}; try again when it has finished")]
    Busy { image: String, holder: String },
    #[error("cannot plan {image}")]
    Plan {
        image: String,
        #[source]
        refusal: Box<Refusal>,
    },
    /// The plan found nothing to do: not a failure of the run.
    #[error("{why}")]
    Nothing { image: String, why: String },
    #[error("{tool} on {file}: {message}")]
    Tool {
        tool: &'static str,
        file: PathBuf,
        message: String,
    },
    #[error("delta {dir}: {why}")]
    Delta { dir: PathBuf, why: String },
    #[error("libguestfs appliance")]
    Appliance(#[source] GuestError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] coldpatch_catalog::CatalogError),
    #[error(transparent)]
    Disk(#[from] coldpatch_disk::DiskError),
    #[error(transparent)]
    Repo(#[from] coldpatch_repo::RepoError),
}

impl PatchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> PatchError {
        PatchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the request was at fault (a plan refused, an image busy or unknown, a bad
    /// delta), as opposed to the machine (the appliance, I/O, the catalog's storage).
    pub fn is_request(&self) -> bool {
        match self {
            PatchError::Busy { .. }
            | PatchError::Plan { .. }
            | PatchError::Nothing { .. }
            | PatchError::Delta { .. }
            | PatchError::Repo(_) => true,
            PatchError::Catalog(e) => e.is_request(),
            PatchError::Disk(e) => e.kind() != coldpatch_disk::ErrorKind::Io,
            PatchError::Tool { .. } | PatchError::Appliance(_) | PatchError::Io { .. } => false,
        }
    }
}
