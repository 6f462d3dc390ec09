//! Offline upgrades of stopped images: planning (`plan.rs`), and applying a plan or a set
//! of files on a qcow2 overlay in one libguestfs appliance (`guest.rs`), verified by
//! reading the result natively and committed as the image's next version (`run.rs`).
//! Overlays and flattened copies are made by `qemu-img` (`overlay.rs`); one run per image
//! at a time (`lock.rs`). Versions travel as deltas (`delta.rs`).

use std::path::{Path, PathBuf};

pub mod delta;
pub mod guest;
pub mod lock;
pub mod overlay;
pub mod plan;
pub mod run;

pub use guest::{Change, Put};
pub use plan::{plan, Plan, Refusal, Request, Step};
pub use run::{
    execute, flatten, repository, rollback, Ask, Control, ImageResult, RunReport, Watch,
};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{image} is being patched by {holder}; try again when it has finished")]
    Busy { image: String, holder: String },
    #[error("cannot plan {0}: {1}")]
    Plan(String, String),
    /// The plan found nothing to do: not a failure of the run.
    #[error("{1}")]
    Nothing(String, String),
    #[error("{tool} on {file}: {message}")]
    Tool {
        tool: &'static str,
        file: PathBuf,
        message: String,
    },
    #[error("delta {dir}: {why}")]
    Delta { dir: PathBuf, why: String },
    #[error("libguestfs appliance: {0}")]
    Appliance(String),
    #[error("{path}: {source}")]
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

/// SHA-256 of a file's bytes, hex.
pub fn sha256_file(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

impl PatchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> PatchError {
        PatchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
