//! API tokens, stored by id. A token's secret is shown once,
//! when it is made; only its SHA-256 is stored. Secrets carry 244 random bits (two v4
//! UUIDs), so a plain hash is enough: there is nothing to brute-force that a slow hash
//! would protect, unlike a password.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::now;
use crate::error::{CatalogError, Result};
use crate::store::Catalog;

/// What a token may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    /// Reads everything.
    Viewer = 0,
    /// Also starts scans and patch runs, and cancels runs.
    Operator = 1,
    /// Also manages tokens, feeds and schedules.
    Admin = 2,
}

impl Role {
    /// The role's rank: each may do what every lower rank may.
    pub const fn rank(self) -> u8 {
        self as u8
    }

    /// The role of a rank, if it is one.
    pub const fn from_rank(rank: u8) -> Option<Role> {
        match rank {
            0 => Some(Role::Viewer),
            1 => Some(Role::Operator),
            2 => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public part of the token, also its key.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// SHA-256 of the whole secret, hex.
    pub hash: String,
    pub created: u64,
}

/// What is shown of a token: never its hash (nor, once made, its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created: u64,
}

impl TokenRecord {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            created: self.created,
        }
    }
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Catalog {
    /// Makes a token; returns its record and the secret, which is never stored.
    pub fn create_token(&self, name: &str, role: Role) -> Result<(TokenRecord, String)> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let secret = format!(
            "cp_{id}_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let rec = TokenRecord {
            id: id.clone(),
            name: name.to_string(),
            role,
            hash: digest(&secret),
            created: now(),
        };
        self.db().put_token(&rec)?;
        Ok((rec, secret))
    }

    /// The token a secret belongs to, if it is one.
    pub fn check_token(&self, secret: &str) -> Result<Option<TokenRecord>> {
        let Some(id) = secret
            .strip_prefix("cp_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id)
        else {
            return Ok(None);
        };
        let Some(rec) = self.db().token(id)? else {
            return Ok(None);
        };
        // Compare digests, not secrets: equal-length, and timing reveals nothing of the
        // secret itself.
        Ok((rec.hash == digest(secret)).then_some(rec))
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.db().tokens()
    }

    pub fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
        self.db()
            .remove_token(id)?
            .ok_or_else(|| CatalogError::NoToken(id.to_string()))
    }
}
