//! The package managers the patcher drives, one module each, behind [`PackageManager`]:
//! how a plan is made from the image's own package model, and how the planned package
//! files are installed inside the appliance with the guest's own tool. dpkg (`dpkg.rs`)
//! is the one implementation; an rpm or apk backend is a sibling module and an entry in
//! [`for_packages`].

pub mod debfile;
pub mod dpkg;

use coldpatch_collector::{Package, PackageKind};
use coldpatch_disk::guestfs::Session;
use coldpatch_repo::RepoIndex;
use coldpatch_vuln::Finding;

use crate::appliance::GuestError;
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
    /// The guest tool's name, for events and errors.
    fn tool(&self) -> &'static str;
    /// The directory of the tool's database in the guest (`/var/lib/dpkg`): a replay
    /// (`replay.rs`) needs it equal on the reference and the image.
    fn database(&self) -> &'static str;
    /// Makes the guest mounted at `root` (an appliance path: `/drive0`) safe to run the
    /// tool in: no service can start. Undone by [`Self::restore`].
    fn prepare(&self, s: &mut Session, root: &str, run: &str) -> Result<(), GuestError>;
    /// The commands that install the planned package files (`files`: each step with its
    /// path inside the guest), run one after another with the guest's own `/bin/sh`
    /// chrooted into it: (what it does, command). The first failing one ends the image's
    /// change. Nothing a command prints decides success (the native read-back does).
    fn commands(
        &self,
        s: &mut Session,
        root: &str,
        files: &[(&Step, String)],
    ) -> Result<Vec<(String, String)>, GuestError>;
    /// Writes a package file as the appliance should get it to `out`, from `staged` (the
    /// copy already checked against the index); `false`: upload `staged` itself.
    fn for_appliance(&self, _staged: &std::path::Path, _out: &std::path::Path) -> bool {
        false
    }
    /// The packages the tool's output says it set up (progress events only).
    fn installed<'a>(&self, output: &'a str) -> Vec<&'a str>;
    /// Puts back what [`Self::prepare`] changed.
    fn restore(&self, s: &mut Session, root: &str, run: &str) -> Result<(), GuestError>;
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
