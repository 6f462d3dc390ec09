//! Check values of image versions: a SHA-256 chained from version 0 through the parent
//! links, over (version number, this catalog's appliance id, image name, the parent's
//! check value). A copy of a version file carries its check value in a qcow2 header
//! extension, so whoever holds it can say which version of which image it is, and a
//! delta can name the exact version it applies to.
//!
//! Hashed input, in order: `coldpatch-version-check-v1`, the number as u32 big-endian,
//! the 16 bytes of the appliance id, the image name's length as u32 big-endian and its
//! UTF-8 bytes (the image's path in the catalog), the parent's 32-byte check value (32
//! zero bytes for version 0).

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::{ImageRecord, VersionRecord};
use crate::store::Catalog;

/// A version's (number, check value).
pub type Numbered = (u32, [u8; 32]);

const DOMAIN: &[u8] = b"coldpatch-version-check-v1";
/// The meta key of the catalog's appliance id (a copy carries it over).
pub(crate) const APPLIANCE_KEY: &str = "appliance_id";
/// The catalog's own apk signing key (private, PEM): see [`Catalog::signing_key`].
pub(crate) const SIGNING_KEY: &str = "apk_signing_key";

pub fn check_value(
    number: u32,
    appliance: &[u8; 16],
    image: &str,
    parent: Option<&[u8; 32]>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(number.to_be_bytes());
    h.update(appliance);
    h.update(u32::try_from(image.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(image.as_bytes());
    h.update(parent.unwrap_or(&[0u8; 32]));
    h.finalize().into()
}

/// A check value from its hex form, if it is one.
pub fn parse_check(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}

/// The number after the highest, and its check value on top of version `base`.
fn next_of(vs: &[VersionRecord], appliance: &[u8; 16], image: &str, base: u32) -> Numbered {
    let number = vs.iter().map(|v| v.number).max().unwrap_or(0) + 1;
    let parent = vs
        .iter()
        .find(|v| v.number == base)
        .and_then(|v| v.check.as_deref().and_then(parse_check));
    (
        number,
        check_value(number, appliance, image, parent.as_ref()),
    )
}

impl Catalog {
    /// Directories the files of an image's versions may be backed from: those of its
    /// recorded chain (`inv`, a scan of it), its own directory and its versions directory
    /// (which may not exist yet).
    pub fn backing_roots(
        &self,
        img: &ImageRecord,
        inv: &coldpatch_collector::Inventory,
    ) -> Vec<std::path::PathBuf> {
        use std::path::{Path, PathBuf};
        let mut v: Vec<PathBuf> = inv
            .image
            .chain
            .iter()
            .filter_map(|(p, _, _)| Path::new(p).parent().map(Path::to_path_buf))
            .collect();
        if let Some(d) = Path::new(&img.path).parent() {
            v.push(d.to_path_buf());
        }
        v.push(self.state().versions(img.id));
        v.sort();
        v.dedup();
        v
    }

    /// This catalog's appliance id: a random UUID made the first time it is asked for.
    pub fn appliance_id(&self) -> Result<[u8; 16]> {
        let stored = match self.db().meta(APPLIANCE_KEY)? {
            Some(id) => id,
            None => self
                .db()
                .meta_init(APPLIANCE_KEY, &uuid::Uuid::new_v4().into_bytes())?,
        };
        <[u8; 16]>::try_from(&stored[..]).map_err(|_| self.corrupt("appliance id"))
    }

    /// This catalog's package signing key: the RSA key harvested apk packages and the
    /// patcher's apk indexes are signed with, made the first time it is asked for and kept
    /// (its private PEM) in the catalog. Every process and host sharing the catalog signs
    /// with the same key; two first callers racing keep the one stored first.
    pub fn signing_key(&self) -> Result<coldpatch_apk::Key> {
        let pem = match self.db().meta(SIGNING_KEY)? {
            Some(k) => k,
            None => {
                let new = coldpatch_apk::Key::generate()
                    .and_then(|k| k.private_pem())
                    .map_err(|_| self.corrupt("apk signing key (it could not be made)"))?;
                self.db().meta_init(SIGNING_KEY, new.as_bytes())?
            }
        };
        std::str::from_utf8(&pem)
            .ok()
            .and_then(|p| coldpatch_apk::Key::from_pem(p).ok())
            .ok_or_else(|| self.corrupt("apk signing key"))
    }

    /// Every version of an image with its check value (computed for records written before
    /// check values existed; they are determined by what is stored).
    pub fn versions_of(&self, img: &ImageRecord) -> Result<Vec<VersionRecord>> {
        self.versions_with(img, &self.appliance_id()?)
    }

    fn versions_with(&self, img: &ImageRecord, appliance: &[u8; 16]) -> Result<Vec<VersionRecord>> {
        let mut vs = img.all_versions();
        vs.sort_by_key(|v| v.number);
        let mut checks: Vec<(u32, [u8; 32])> = Vec::with_capacity(vs.len());
        for v in &mut vs {
            let parent = v
                .parent
                .and_then(|p| checks.iter().find(|(n, _)| *n == p).map(|(_, c)| *c));
            let c = check_value(v.number, appliance, &img.path, parent.as_ref());
            match v.check.as_deref().and_then(parse_check) {
                Some(stored) if stored != c => {
                    return Err(
                        self.corrupt(format!("check value of {} version {}", img.path, v.number))
                    )
                }
                _ => {}
            }
            v.check = Some(hex::encode(c));
            checks.push((v.number, c));
        }
        Ok(vs)
    }

    /// The number and check value the next version made on top of `base` will have.
    pub fn next_version(&self, img: &ImageRecord, base: u32) -> Result<Numbered> {
        let appliance = self.appliance_id()?;
        let vs = self.versions_with(img, &appliance)?;
        Ok(next_of(&vs, &appliance, &img.path, base))
    }

    /// Every version with its check value, and the next one's (number, check value).
    pub(crate) fn versions_and_next(
        &self,
        img: &ImageRecord,
        base: u32,
    ) -> Result<(Vec<VersionRecord>, Numbered)> {
        let appliance = self.appliance_id()?;
        let vs = self.versions_with(img, &appliance)?;
        let next = next_of(&vs, &appliance, &img.path, base);
        Ok((vs, next))
    }

    /// The image version a check value names, if this catalog made it.
    pub fn find_check(&self, check: &str) -> Result<Option<(ImageRecord, VersionRecord)>> {
        let check = check.to_ascii_lowercase();
        for img in self.images()? {
            if let Some(v) = self
                .versions_of(&img)?
                .into_iter()
                .find(|v| v.check.as_deref() == Some(check.as_str()))
            {
                return Ok(Some((img, v)));
            }
        }
        Ok(None)
    }
}
