//! The files a catalog owns on disk besides its records: version overlays
//! (`versions/<image id>/<run id>.qcow2`), per-image run locks (`locks/`), feed uploads
//! being read (`uploads/`) and the running server's address (`server.json`). They live
//! under one state directory; for an embedded catalog, its own directory. Every crate
//! asks here for these paths instead of joining names onto a catalog directory.
//!
//! A PostgreSQL catalog opened without one (`--state-dir`) still answers every question
//! about records; what needs files fails at [`StateDir::ensure`], which every writer of
//! these files calls first, with [`CatalogError::NoStateDir`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
    /// Set when there is no state directory: the catalog it was needed for.
    missing: Option<String>,
}

/// What `coldpatch serve` writes into `server.json` while it holds the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub pid: u32,
    /// The address it listens on, `127.0.0.1:8080`.
    pub listen: String,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir {
            root: root.into(),
            missing: None,
        }
    }

    /// No state directory for `catalog`: paths are relative (they name nothing that
    /// exists) and [`StateDir::ensure`] refuses.
    pub fn absent(catalog: &str) -> StateDir {
        StateDir {
            root: PathBuf::new(),
            missing: Some(catalog.to_string()),
        }
    }

    /// Whether there is a state directory.
    pub fn is_present(&self) -> bool {
        self.missing.is_none()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an image's versions are kept.
    pub fn versions(&self, image_id: u64) -> PathBuf {
        self.root.join("versions").join(image_id.to_string())
    }

    /// The overlay a run builds for an image.
    pub fn overlay(&self, image_id: u64, run: &str) -> PathBuf {
        self.versions(image_id).join(format!("{run}.qcow2"))
    }

    /// Where run locks are kept.
    pub fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Where uploaded files wait while they are read.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// One of the directories above, made if missing.
    pub fn ensure(&self, dir: PathBuf) -> Result<PathBuf> {
        if let Some(catalog) = &self.missing {
            return Err(CatalogError::NoStateDir {
                catalog: catalog.clone(),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|source| CatalogError::State {
            dir: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    fn server_file(&self) -> PathBuf {
        self.root.join("server.json")
    }

    /// Says that this process serves the catalog at `listen`.
    /// (Nothing without a state directory: only an embedded catalog's CLI reads it.)
    pub fn write_server(&self, info: &ServerInfo) -> std::io::Result<()> {
        if !self.is_present() {
            return Ok(());
        }
        let json = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.root)?;
        std::fs::write(self.server_file(), json)
    }

    pub fn clear_server(&self) {
        if !self.is_present() {
            return;
        }
        let _ = std::fs::remove_file(self.server_file());
    }

    /// The server that says it holds the catalog, if its process still lives.
    pub fn server(&self) -> Option<ServerInfo> {
        if !self.is_present() {
            return None;
        }
        let text = std::fs::read(self.server_file()).ok()?;
        let info: ServerInfo = serde_json::from_slice(&text).ok()?;
        Path::new(&format!("/proc/{}", info.pid))
            .exists()
            .then_some(info)
    }
}
