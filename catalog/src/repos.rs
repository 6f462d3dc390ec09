//! Indexed local package repositories. Tree `repos`: canonical root -> zstd JSON
//! `StoredRepo`. Indexing again replaces the stored index in one write.

use coldpatch_repo::RepoIndex;
use serde::{Deserialize, Serialize};

use crate::store::{now, Catalog, CatalogError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRepo {
    /// Seconds since the epoch.
    pub indexed_at: u64,
    pub index: RepoIndex,
}

impl Catalog {
    pub fn store_repo(&self, index: &RepoIndex) -> Result<StoredRepo> {
        let rec = StoredRepo {
            indexed_at: now(),
            index: index.clone(),
        };
        self.repos
            .insert(index.root.as_bytes(), Self::packed(&rec))
            .map_err(|e| self.store_err(e))?;
        self.flush()?;
        Ok(rec)
    }

    /// The stored index of a repository root (canonical path).
    pub fn repo(&self, root: &str) -> Result<StoredRepo> {
        let v = self
            .repos
            .get(root.as_bytes())
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| CatalogError::NoRepo(root.to_string()))?;
        self.unpack("repo", &v)
    }

    pub fn repos(&self) -> Result<Vec<StoredRepo>> {
        self.unpacked("repo", &self.repos)
    }

    /// The roots of the indexed repositories, without reading their indexes.
    pub fn repo_roots(&self) -> Result<Vec<String>> {
        self.repos
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(|e| self.store_err(e))?;
                Ok(String::from_utf8_lossy(&k).into_owned())
            })
            .collect()
    }
}
