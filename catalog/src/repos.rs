//! Indexed local package repositories, stored by canonical root. Indexing again replaces
//! the stored index in one write.

use coldpatch_repo::RepoIndex;
use serde::{Deserialize, Serialize};

use crate::clock::now;
use crate::error::{CatalogError, Result};
use crate::store::Catalog;

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
        self.db().put_repo(&rec)?;
        Ok(rec)
    }

    /// The stored index of a repository root (canonical path).
    pub fn repo(&self, root: &str) -> Result<StoredRepo> {
        self.db()
            .repo(root)?
            .ok_or_else(|| CatalogError::NoRepo(root.to_string()))
    }

    pub fn repos(&self) -> Result<Vec<StoredRepo>> {
        self.db().repos()
    }

    /// The roots of the indexed repositories, without reading their indexes.
    pub fn repo_roots(&self) -> Result<Vec<String>> {
        self.db().repo_roots()
    }
}
