//! Content images share: the files (same path, same SHA-256) common to a group of images,
//! what each image holds alone, and what a shared base image would save; images grouped by
//! how much of their content they share. From the stored file lists of current versions.

use std::collections::HashMap;

use coldpatch_collector::FileType;
use serde::Serialize;

use crate::error::{CatalogError, Result};
use crate::store::Catalog;

/// An image joins a group when the group's first image holds at least this share of its
/// regular-file bytes.
pub const GROUP_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct ImageShare {
    pub image: String,
    pub version: u32,
    pub files: usize,
    pub bytes: u64,
    /// Files no other image of the set holds (by path and content).
    pub private_files: usize,
    pub private_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub images: Vec<String>,
    pub common_files: usize,
    pub common_bytes: u64,
    /// Stored once in a base image instead of in each: (images - 1) x common bytes.
    pub base_saves: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedReport {
    pub images: Vec<ImageShare>,
    /// Files every image of the set holds.
    pub common_files: usize,
    pub common_bytes: u64,
    pub base_saves: u64,
    pub groups: Vec<Group>,
    /// Images left out: collected without hashed file lists.
    pub skipped: Vec<String>,
}

/// Ids of (path, sha256) pairs, sorted, with each id's size.
struct Sets {
    sizes: Vec<u64>,
    per_image: Vec<Vec<usize>>,
}

fn common(sets: &Sets, members: &[usize]) -> (usize, u64) {
    let mut count: HashMap<usize, usize> = HashMap::new();
    for &m in members {
        for &id in &sets.per_image[m] {
            *count.entry(id).or_default() += 1;
        }
    }
    let ids: Vec<usize> = count
        .into_iter()
        .filter(|&(_, c)| c == members.len())
        .map(|(id, _)| id)
        .collect();
    (ids.len(), ids.iter().map(|&i| sets.sizes[i]).sum())
}

/// Bytes of `b` that `a` holds too (both sorted).
fn overlap(sets: &Sets, a: usize, b: usize) -> u64 {
    let (x, y) = (&sets.per_image[a], &sets.per_image[b]);
    let (mut i, mut j, mut bytes) = (0, 0, 0u64);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                bytes += sets.sizes[x[i]];
                i += 1;
                j += 1;
            }
        }
    }
    bytes
}

impl Catalog {
    /// Shared content of the named images (all images when `keys` is empty), each at its
    /// current version.
    pub fn shared(&self, keys: &[String]) -> Result<SharedReport> {
        let images = if keys.is_empty() {
            self.images()?
        } else {
            keys.iter().map(|k| self.image(k)).collect::<Result<_>>()?
        };
        let mut ids: HashMap<(String, String), usize> = HashMap::new();
        let mut sets = Sets {
            sizes: Vec::new(),
            per_image: Vec::new(),
        };
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for img in images {
            let scan = img
                .current_scan
                .ok_or_else(|| CatalogError::NotCollected(img.path.clone()))?;
            if !self.scan(scan)?.options.hash {
                skipped.push(img.path.clone());
                continue;
            }
            let inv = self.inventory(scan, true)?;
            let mut mine: Vec<usize> = inv
                .files
                .into_iter()
                .filter(|f| f.kind == FileType::File)
                .filter_map(|f| {
                    let sha = f.sha256?;
                    let next = sets.sizes.len();
                    let id = *ids.entry((f.path, sha)).or_insert(next);
                    if id == next {
                        sets.sizes.push(f.size);
                    }
                    Some(id)
                })
                .collect();
            mine.sort_unstable();
            mine.dedup();
            sets.per_image.push(mine);
            kept.push(img);
        }
        let mut holders = vec![0usize; sets.sizes.len()];
        for s in &sets.per_image {
            for &id in s {
                holders[id] += 1;
            }
        }
        let shares = kept
            .iter()
            .zip(&sets.per_image)
            .map(|(img, s)| {
                let private: Vec<usize> = s.iter().copied().filter(|&i| holders[i] == 1).collect();
                ImageShare {
                    image: img.path.clone(),
                    version: img.current_version,
                    files: s.len(),
                    bytes: s.iter().map(|&i| sets.sizes[i]).sum(),
                    private_files: private.len(),
                    private_bytes: private.iter().map(|&i| sets.sizes[i]).sum(),
                }
            })
            .collect::<Vec<_>>();
        let all: Vec<usize> = (0..kept.len()).collect();
        let (common_files, common_bytes) = if all.is_empty() {
            (0, 0)
        } else {
            common(&sets, &all)
        };
        // Greedy grouping: each image joins the first group whose first image holds
        // GROUP_SHARE of its bytes.
        let mut seeds: Vec<Vec<usize>> = Vec::new();
        for (i, share) in shares.iter().enumerate() {
            let total = share.bytes.max(1) as f64;
            match seeds
                .iter_mut()
                .find(|g| overlap(&sets, g[0], i) as f64 / total >= GROUP_SHARE)
            {
                Some(g) => g.push(i),
                None => seeds.push(vec![i]),
            }
        }
        let groups = seeds
            .iter()
            .map(|g| {
                let (files, bytes) = common(&sets, g);
                Group {
                    images: g.iter().map(|&i| kept[i].path.clone()).collect(),
                    common_files: files,
                    common_bytes: bytes,
                    base_saves: bytes.saturating_mul(g.len().saturating_sub(1) as u64),
                }
            })
            .collect();
        Ok(SharedReport {
            common_files,
            common_bytes,
            base_saves: common_bytes.saturating_mul(kept.len().saturating_sub(1) as u64),
            images: shares,
            groups,
            skipped,
        })
    }
}
