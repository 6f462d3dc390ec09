//! The package managers the patcher drives, one module each, behind [`PackageManager`]:
//! how a plan is made from the image's own package model, and how the planned package
//! files are installed inside the appliance with the guest's own tool. dpkg (`dpkg.rs`)
//! is the one implementation; an rpm or apk backend is a sibling module and an entry in
//! [`for_packages`].

pub mod dpkg;

use coldpatch_collector::{Package, PackageKind};
use coldpatch_disk::guestfs::Session;
use coldpatch_repo::RepoIndex;
use coldpatch_vuln::Finding;

use crate::appliance::{GuestError, Notify};
use crate::plan::{Plan, Refusal, Request, Step};

pub trait PackageManager: Sync {
    /// The packages it manages.
    fn kind(&self) -> PackageKind;
    /// What a package file's name ends with (`.deb`).
    fn file_ext(&self) -> &'static str;
    /// Plans the upgrade of one image whose packages are all of [`Self::kind`].
    fn plan(
        &self,
        image: &str,
        installed: &[Package],
        findings: &[Finding],
        repo: &RepoIndex,
        req: &Request,
    ) -> Result<Plan, Refusal>;
    /// Installs the planned package files, already uploaded into the guest (`files`:
    /// each step with its guest path), in the guest mounted in `s`. Everything the tool
    /// prints goes to `log`; nothing it prints decides success (the native read-back
    /// does), but a failing exit status ends the image's change.
    fn install(
        &self,
        s: &mut Session,
        image: &str,
        run: &str,
        files: &[(&Step, String)],
        log: &mut String,
        notify: &mut Notify<'_>,
    ) -> Result<(), GuestError>;
}

/// Plans the upgrade of one image with its package manager.
pub fn plan(
    image: &str,
    installed: &[Package],
    findings: &[Finding],
    repo: &RepoIndex,
    req: &Request,
) -> Result<Plan, Refusal> {
    for_packages(installed)?.plan(image, installed, findings, repo, req)
}

/// The package manager for packages of a kind, if the patcher drives one.
pub fn for_kind(kind: PackageKind) -> Option<&'static dyn PackageManager> {
    static DPKG: dpkg::Dpkg = dpkg::Dpkg;
    match kind {
        PackageKind::Deb => Some(&DPKG),
        PackageKind::Rpm | PackageKind::Apk => None,
    }
}

/// The package manager of an image: every package must be of the one kind it drives.
pub fn for_packages(installed: &[Package]) -> Result<&'static dyn PackageManager, Refusal> {
    let kind = installed.first().map_or(PackageKind::Deb, |p| p.kind);
    match installed.iter().find(|p| p.kind != kind) {
        Some(p) => Err(Refusal::Unsupported(p.kind.as_str().to_string())),
        None => for_kind(kind).ok_or_else(|| Refusal::Unsupported(kind.as_str().to_string())),
    }
}
