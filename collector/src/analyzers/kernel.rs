//! Installed kernels: /boot/vmlinuz-VERSION images and /lib/modules/VERSION trees.

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::model::{Inventory, Kernel};

#[derive(Default)]
pub struct Kernels;

impl Analyzer for Kernels {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn version(&self) -> u32 {
        1
    }
    fn patterns(&self) -> &'static [PathPattern] {
        &[
            PathPattern::Child("/boot", "vmlinuz-"),
            PathPattern::Child("/lib/modules", ""),
            PathPattern::Child("/usr/lib/modules", ""),
        ]
    }
    fn wants_content(&self) -> bool {
        false
    }
    fn analyze(&mut self, offer: &Offer<'_>, inv: &mut Inventory) -> Result<(), String> {
        let name = offer.path.rsplit('/').next().unwrap_or_default();
        let version = if offer.path.starts_with("/boot/") {
            name.strip_prefix("vmlinuz-").unwrap_or_default()
        } else if offer.meta.kind == coldpatch_disk::FileKind::Dir {
            name
        } else {
            return Ok(());
        };
        if !version.is_empty() {
            inv.kernels.push(Kernel {
                version: version.to_string(),
                source: offer.path.to_string(),
            });
        }
        Ok(())
    }
    fn finish(&mut self, inv: &mut Inventory) {
        // /lib/modules and /usr/lib/modules are one directory on merged-/usr systems.
        inv.kernels.sort();
        inv.kernels.dedup_by(|a, b| a.version == b.version);
    }
}
