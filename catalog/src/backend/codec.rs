//! What both backends do to records on their way in and out: JSON, zstd for the blobs
//! (inventories, file lists, run images, repository indexes), and errors that name the
//! catalog they happened in.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CatalogError, Result, StoreCause};

pub(crate) struct Codec {
    /// The catalog, as messages name it.
    pub describe: String,
}

impl Codec {
    pub(crate) fn store(&self, e: impl Into<StoreCause>) -> CatalogError {
        CatalogError::Store {
            catalog: self.describe.clone(),
            source: e.into(),
        }
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            catalog: self.describe.clone(),
            what: what.into(),
        }
    }

    pub(crate) fn json<T: Serialize>(&self, what: &str, v: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(v).map_err(|e| self.store(format!("cannot encode {what}: {e}")))
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|_| self.corrupt(what))
    }

    pub(crate) fn compress(&self, what: &str, json: &[u8]) -> Result<Vec<u8>> {
        zstd::bulk::compress(json, 3)
            .map_err(|e| self.store(format!("cannot compress {what}: {e}")))
    }

    pub(crate) fn packed<T: Serialize>(&self, what: &str, v: &T) -> Result<Vec<u8>> {
        self.compress(what, &self.json(what, v)?)
    }

    pub(crate) fn unpack_json(&self, what: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        zstd::stream::decode_all(bytes).map_err(|_| self.corrupt(what))
    }

    pub(crate) fn unpack<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        self.decode(what, &self.unpack_json(what, bytes)?)
    }
}
