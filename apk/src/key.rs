//! An RSA key that signs packages and indexes as abuild-sign does: an RSA PKCS#1 v1.5
//! signature of the SHA-256 of the signed gzip member, in a tar entry named
//! `.SIGN.RSA256.<key name>`. apk trusts it when `/etc/apk/keys/<key name>` holds the
//! public key (PEM, SubjectPublicKeyInfo).

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::Digest as _;

use crate::ApkError;

/// The size of a new key, as abuild-keygen makes them.
pub const BITS: usize = 4096;

pub struct Key {
    private: RsaPrivateKey,
    /// `coldpatch-<first 8 hex digits of the public key's SHA-256>.rsa.pub`.
    name: String,
    public_pem: String,
}

fn err(e: impl std::fmt::Display) -> ApkError {
    ApkError::Key(e.to_string())
}

impl Key {
    /// A new random key.
    pub fn generate() -> Result<Key, ApkError> {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, BITS).map_err(err)?;
        Key::from_private(private)
    }

    /// A key from its private PEM (PKCS#8), as [`Key::private_pem`] writes it.
    pub fn from_pem(pem: &str) -> Result<Key, ApkError> {
        Key::from_private(RsaPrivateKey::from_pkcs8_pem(pem).map_err(err)?)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Key, ApkError> {
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(err)?;
        let id = hex::encode(sha2::Sha256::digest(public_pem.as_bytes()));
        Ok(Key {
            private,
            name: format!("coldpatch-{}.rsa.pub", &id[..8]),
            public_pem,
        })
    }

    pub fn private_pem(&self) -> Result<String, ApkError> {
        Ok(self
            .private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(err)?
            .to_string())
    }

    /// The file name apk looks the public key up by.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The signature member's tar entry name and content for signed bytes.
    pub fn sign(&self, signed: &[u8]) -> Result<(String, Vec<u8>), ApkError> {
        let digest = sha2::Sha256::digest(signed);
        let sig = self
            .private
            .sign(Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
            .map_err(err)?;
        Ok((format!(".SIGN.RSA256.{}", self.name), sig))
    }

    /// Whether `sig` is this key's signature of `signed`.
    pub fn verifies(&self, signed: &[u8], sig: &[u8]) -> bool {
        let digest = sha2::Sha256::digest(signed);
        self.private
            .to_public_key()
            .verify(Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, sig)
            .is_ok()
    }
}
