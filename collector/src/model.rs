//! What a scan produces: the inventory of one image. Serialized into the catalog, so field
//! changes here are format changes there.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub image: ImageInfo,
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    pub kernels: Vec<Kernel>,
    /// Empty when collected with `files: false`.
    pub files: Vec<FileRecord>,
    pub security: Security,
    pub unknowns: Vec<Unknown>,
    pub analyzers: Vec<AnalyzerInfo>,
    pub stats: Stats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub path: String,
    pub format: String,
    pub virtual_size: u64,
    /// Backing chain, top image first: (path, format, file size).
    pub chain: Vec<(String, String, u64)>,
    pub partition_table: String,
    pub volumes: Vec<VolumeInfo>,
    /// Partition number of the root filesystem (0 = whole disk).
    pub root_volume: u32,
    /// The version stamp the top file carries (a qcow2 header extension coldpatch writes
    /// into the versions it makes): which version of which image this file says it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampInfo {
    pub number: u32,
    /// The check value, hex.
    pub check: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub fs: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// `ID` from os-release ("debian", "rocky", "alpine"), or the fallback's equivalent.
    pub id: String,
    pub version_id: String,
    pub name: String,
    pub pretty_name: String,
    pub version_codename: String,
    pub id_like: Vec<String>,
    /// The file this came from.
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Deb,
    Rpm,
    Apk,
}

impl PackageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Rpm => "rpm",
            PackageKind::Apk => "apk",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub kind: PackageKind,
    pub name: String,
    /// deb and apk: the full version as the package manager prints it (with epoch and
    /// revision). rpm: VERSION only; see `epoch` and `release`.
    pub version: String,
    pub epoch: Option<u32>,
    pub release: Option<String>,
    pub arch: String,
    pub source_name: String,
    pub source_version: String,
    /// rpm only: the SOURCERPM file name.
    pub source_rpm: Option<String>,
    pub license: Option<String>,
    /// deb: the Provides relations as written; apk: the `p:` atoms; empty for rpm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
    /// deb: the Depends and Pre-Depends relations as written, one group per entry;
    /// apk: the `D:` atoms (`!name` a conflict); empty for rpm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// rpm only: the module stream of a modular package ("mariadb:10.3"), from its
    /// MODULARITYLABEL ("name:stream:version:context").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The database this came from, e.g. /var/lib/dpkg/status.
    pub db: String,
}

impl Package {
    /// A package with only kind, name and version set: its own source, no arch, no
    /// relations. For building inventories by hand (tests, generated fleets).
    pub fn new(kind: PackageKind, name: &str, version: &str) -> Package {
        Package {
            kind,
            name: name.to_string(),
            version: version.to_string(),
            epoch: None,
            release: None,
            arch: String::new(),
            source_name: name.to_string(),
            source_version: version.to_string(),
            source_rpm: None,
            license: None,
            provides: Vec::new(),
            depends: Vec::new(),
            module: None,
            db: String::new(),
        }
    }

    /// The version as users compare it: deb/apk as is, rpm `[epoch:]version-release`.
    pub fn full_version(&self) -> String {
        match (self.kind, &self.release) {
            (PackageKind::Rpm, Some(r)) => match self.epoch {
                Some(e) => format!("{e}:{}-{r}", self.version),
                None => format!("{}-{r}", self.version),
            },
            _ => self.version.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kernel {
    pub version: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
            FileType::Char => "char",
            FileType::Block => "block",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    /// Inode change time, where the filesystem reader knows it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ctime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub setuid: Vec<String>,
    pub setgid: Vec<String>,
    /// Regular files and directories anyone may write (directories with the sticky bit,
    /// like /tmp, are not listed).
    pub world_writable: Vec<String>,
    /// Everything under /root/.ssh.
    pub root_ssh: Vec<String>,
    /// Every authorized_keys / authorized_keys2 file.
    pub authorized_keys: Vec<String>,
    pub weak_accounts: Vec<WeakAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WeakAccount {
    pub name: String,
    /// "empty": /etc/shadow has an empty hash (login without password);
    /// "missing": /etc/passwd defers to shadow ("x") but shadow has no entry.
    pub problem: String,
}

/// A file that an analyzer could not parse; the scan went on without it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unknown {
    pub path: String,
    pub analyzer: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerInfo {
    pub name: String,
    pub version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub entries: u64,
    pub bytes_hashed: u64,
    pub bytes_read_from_image: u64,
    pub duration_ms: u64,
}

/// A digest of what a guest sees: its packages and its files. Two images with equal
/// digests have the same packages at the same versions and the same files with the same
/// metadata and content; deltas carry the digest of the version they make, so the receiver
/// can prove the result by collecting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDigest {
    pub packages: usize,
    pub packages_sha256: String,
    pub files: usize,
    /// `None` unless the file list was recorded with every regular file's SHA-256.
    pub files_sha256: Option<String>,
}

impl Inventory {
    /// Packages by (kind, name, arch, full version); files by (path, type, mode, owner,
    /// size, mtime, link target, SHA-256); each in sorted order, fields separated by NUL.
    pub fn view_digest(&self) -> ViewDigest {
        use sha2::{Digest, Sha256};
        let mut pk: Vec<String> = self
            .packages
            .iter()
            .map(|p| {
                format!(
                    "{:?}\0{}\0{}\0{}\n",
                    p.kind,
                    p.name,
                    p.arch,
                    p.full_version()
                )
            })
            .collect();
        pk.sort();
        let mut h = Sha256::new();
        pk.iter().for_each(|l| h.update(l.as_bytes()));
        let packages_sha256 = hex::encode(h.finalize());
        let hashed = !self.files.is_empty()
            && self
                .files
                .iter()
                .all(|f| f.kind != FileType::File || f.sha256.is_some());
        let files_sha256 = hashed.then(|| {
            let mut fs: Vec<&FileRecord> = self.files.iter().collect();
            fs.sort_by(|a, b| a.path.cmp(&b.path));
            let mut h = Sha256::new();
            for f in fs {
                h.update(
                    format!(
                        "{}\0{}\0{:o}\0{}\0{}\0{}\0{}\0{}\0{}\n",
                        f.path,
                        f.kind.as_str(),
                        f.mode,
                        f.uid,
                        f.gid,
                        f.size,
                        f.mtime,
                        f.target.as_deref().unwrap_or(""),
                        f.sha256.as_deref().unwrap_or("")
                    )
                    .as_bytes(),
                );
            }
            hex::encode(h.finalize())
        });
        ViewDigest {
            packages: self.packages.len(),
            packages_sha256,
            files: self.files.len(),
            files_sha256,
        }
    }
}
