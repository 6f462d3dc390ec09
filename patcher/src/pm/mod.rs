//! The package managers the patcher drives, one module each, behind [`PackageManager`]:
//! how a plan is made from the image's own package model, and how the planned package
//! files are installed inside the appliance with the guest's own tool: dpkg (`dpkg.rs`)
//! and apk (`apk.rs`); an rpm backend would be a sibling module and an entry in
//! [`for_kind`].

pub mod apk;
pub mod debfile;
pub mod dpkg;

use std::path::PathBuf;

use coldpatch_collector::{Inventory, Package, PackageKind};
use coldpatch_disk::guestfs::Session;
use coldpatch_repo::RepoIndex;
use coldpatch_vuln::Finding;

use crate::appliance::GuestError;
use crate::plan::{Plan, Refusal, Request, Step};

/// A planned package file of one image's install.
pub struct PackageFile<'a> {
    pub step: &'a Step,
    /// Its path inside the guest, during the run.
    pub guest: String,
    /// The copy on the host that was checked against the index and uploaded.
    pub host: PathBuf,
}

/// One image's install, as its package manager sees it.
pub struct Install<'a> {
    /// Where the guest is mounted in the appliance (`/drive0`).
    pub root: &'a str,
    pub run: &'a str,
    pub files: &'a [PackageFile<'a>],
    /// The catalog's signing key, for tools that check signatures (apk).
    pub key: Option<&'a coldpatch_apk::Key>,
}

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
    /// Makes the guest mounted at `inst.root` (an appliance path: `/drive0`) safe to run
    /// the tool in (no service can start) and ready to install from. Undone by
    /// [`Self::restore`].
    fn prepare(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError>;
    /// The commands that install the planned package files, run one after another with
    /// the guest's own `/bin/sh` chrooted into it: (what it does, command). The first
    /// failing one ends the image's change. Nothing a command prints decides success (the
    /// native read-back does).
    fn commands(
        &self,
        s: &mut Session,
        inst: &Install<'_>,
    ) -> Result<Vec<(String, String)>, GuestError>;
    /// Writes a package file as the appliance should get it to `out`, from `staged` (the
    /// copy already checked against the index); `false`: upload `staged` itself.
    fn for_appliance(&self, _staged: &std::path::Path, _out: &std::path::Path) -> bool {
        false
    }
    /// The packages the tool's output says it set up (progress events only).
    fn installed<'a>(&self, output: &'a str) -> Vec<&'a str>;
    /// Puts back what [`Self::prepare`] changed.
    fn restore(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError>;
    /// What the run left in the image that it must not have (read natively afterwards):
    /// each a reason the change is not verified.
    fn leftovers(&self, _inv: &Inventory) -> Vec<String> {
        Vec::new()
    }
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
    static APK: apk::Apk = apk::Apk;
    match kind {
        PackageKind::Deb => Some(&DPKG),
        PackageKind::Apk => Some(&APK),
        PackageKind::Rpm => None,
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
