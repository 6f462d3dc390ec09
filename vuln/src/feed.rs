//! Reading a feed from disk: format detection, OSV directories and `all.zip` archives,
//! and the limits every untrusted feed file is read under.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{Advisory, Rejected};
use crate::{debian, osv, secdb};

/// Largest single OSV record (the largest real ones are a few hundred KiB).
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Largest single document (the whole Debian tracker JSON is under 100 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 30;
/// Most files in a directory tree or archive.
pub const MAX_FILES: usize = 4_000_000;
/// Deepest directory nesting followed.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Osv,
    DebianTracker,
    AlpineSecdb,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Osv => "osv",
            Format::DebianTracker => "debian-tracker",
            Format::AlpineSecdb => "alpine-secdb",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        [Format::Osv, Format::DebianTracker, Format::AlpineSecdb]
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown feed format {s:?} (osv, debian-tracker, alpine-secdb)"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

fn unreadable(path: &Path, reason: impl Into<String>) -> FeedError {
    FeedError::Unreadable {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Everything read from one feed path.
#[derive(Debug, Default)]
pub struct FeedData {
    pub format: Option<Format>,
    /// The name the feed is stored under unless the user gives one.
    pub suggested_name: String,
    pub advisories: Vec<Advisory>,
    pub rejected: Vec<Rejected>,
    /// Valid records about no distribution (language ecosystems).
    pub skipped: usize,
    /// Ids withdrawn by their publisher.
    pub withdrawn: Vec<String>,
}

impl FeedData {
    /// The newest modification time the records carry (RFC 3339), if any.
    pub fn newest_modified(&self) -> Option<&str> {
        self.advisories
            .iter()
            .filter_map(|a| a.modified.as_deref())
            .max()
    }

    fn add_osv(&mut self, bytes: &[u8], place: String) {
        match osv::parse(bytes) {
            Ok(osv::Parsed::Advisory(a)) => self.advisories.push(a),
            Ok(osv::Parsed::NotOs) => self.skipped += 1,
            Ok(osv::Parsed::Withdrawn(id)) => self.withdrawn.push(id),
            Err(reason) => self.rejected.push(Rejected { place, reason }),
        }
    }

    fn suggest_osv_name(&mut self) {
        let mut fams: Vec<&str> = self
            .advisories
            .iter()
            .flat_map(|a| a.affected.iter().map(|x| x.distro.family.as_str()))
            .collect();
        fams.sort_unstable();
        fams.dedup();
        self.suggested_name = if fams.is_empty() {
            "osv".into()
        } else {
            format!("osv-{}", fams.join("+"))
        };
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, FeedError> {
    let f = std::fs::File::open(path).map_err(|e| unreadable(path, e.to_string()))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| unreadable(path, e.to_string()))?;
    if buf.len() as u64 > limit {
        return Err(unreadable(
            path,
            format!("larger than the {limit}-byte limit"),
        ));
    }
    Ok(buf)
}

/// Reads a feed: a directory of OSV JSON files, an OSV zip archive, one OSV record, a
/// Debian Security Tracker JSON document, or an Alpine secdb (JSON or YAML). `format`
/// forces the reading; otherwise it is detected from the content.
pub fn read(path: &Path, format: Option<Format>) -> Result<FeedData, FeedError> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e.to_string()))?;
    if meta.is_dir() {
        if format.is_some_and(|f| f != Format::Osv) {
            return Err(unreadable(path, "a directory can only hold OSV records"));
        }
        return read_osv_dir(path);
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| unreadable(path, e.to_string()))?;
    if head[..n].starts_with(b"PK\x03\x04") || head[..n].starts_with(b"PK\x05\x06") {
        if format.is_some_and(|f| f != Format::Osv) {
            return Err(unreadable(path, "a zip archive can only hold OSV records"));
        }
        return read_osv_zip(path);
    }
    let bytes = read_limited(path, MAX_DOCUMENT_BYTES)?;
    let file = path.display().to_string();
    let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(json_err) => {
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if !yaml && format != Some(Format::AlpineSecdb) {
                return Err(unreadable(path, format!("not JSON: {json_err}")));
            }
            secdb::yaml_to_json(&bytes).map_err(|e| unreadable(path, e))?
        }
    };
    let detected = if doc.get("id").is_some() && doc.get("affected").is_some() {
        Some(Format::Osv)
    } else if secdb::looks_like(&doc) {
        Some(Format::AlpineSecdb)
    } else if debian::looks_like(&doc) {
        Some(Format::DebianTracker)
    } else {
        None
    };
    let Some(fmt) = format.or(detected) else {
        return Err(unreadable(
            path,
            "not a recognised feed (OSV record, Debian Security Tracker JSON or Alpine secdb)",
        ));
    };
    let mut data = FeedData {
        format: Some(fmt),
        ..FeedData::default()
    };
    match fmt {
        Format::Osv => {
            data.add_osv(&bytes, file);
            data.suggest_osv_name();
        }
        Format::DebianTracker => {
            drop(doc);
            let (a, r) = debian::parse(&bytes, &file).map_err(|e| unreadable(path, e))?;
            data.advisories = a;
            data.rejected = r;
            data.suggested_name = "debian-tracker".into();
        }
        Format::AlpineSecdb => {
            data.suggested_name = secdb::name_of(&doc);
            let (a, r) = secdb::parse(doc, &file).map_err(|e| unreadable(path, e))?;
            data.advisories = a;
            data.rejected = r;
        }
    }
    Ok(data)
}

fn read_osv_dir(root: &Path) -> Result<FeedData, FeedError> {
    let mut data = FeedData {
        format: Some(Format::Osv),
        ..FeedData::default()
    };
    let mut files = 0usize;
    let entries = walkdir::WalkDir::new(root)
        .min_depth(1)
        .max_depth(MAX_DEPTH + 1)
        .follow_links(false)
        .sort_by_file_name();
    for e in entries {
        let e = e.map_err(|e| {
            let place = e.path().unwrap_or(root).to_path_buf();
            unreadable(&place, e.to_string())
        })?;
        let p = e.path();
        let ft = e.file_type();
        if ft.is_dir() {
            if e.depth() > MAX_DEPTH {
                return Err(unreadable(p, format!("nested deeper than {MAX_DEPTH}")));
            }
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "json") {
            files += 1;
            if files > MAX_FILES {
                return Err(unreadable(root, format!("more than {MAX_FILES} files")));
            }
            match read_limited(p, MAX_RECORD_BYTES) {
                Ok(bytes) => data.add_osv(&bytes, p.display().to_string()),
                Err(e) => data.rejected.push(Rejected {
                    place: p.display().to_string(),
                    reason: e.to_string(),
                }),
            }
        }
    }
    data.suggest_osv_name();
    Ok(data)
}

fn read_osv_zip(path: &Path) -> Result<FeedData, FeedError> {
    let f = std::fs::File::open(path).map_err(|e| unreadable(path, e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| unreadable(path, format!("not a readable zip archive: {e}")))?;
    if zip.len() > MAX_FILES {
        return Err(unreadable(path, format!("more than {MAX_FILES} members")));
    }
    let mut data = FeedData {
        format: Some(Format::Osv),
        ..FeedData::default()
    };
    for i in 0..zip.len() {
        let mut member = match zip.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                data.rejected.push(Rejected {
                    place: format!("{}: member {i}", path.display()),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !member.is_file() || !member.name().ends_with(".json") {
            continue;
        }
        let place = format!("{}: {}", path.display(), member.name());
        if member.size() > MAX_RECORD_BYTES {
            data.rejected.push(Rejected {
                place,
                reason: format!("larger than the {MAX_RECORD_BYTES}-byte limit"),
            });
            continue;
        }
        // The declared size may lie; the read is bounded on its own.
        let mut buf = Vec::new();
        match (&mut member)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut buf)
        {
            Ok(_) if buf.len() as u64 > MAX_RECORD_BYTES => data.rejected.push(Rejected {
                place,
                reason: format!("larger than the {MAX_RECORD_BYTES}-byte limit"),
            }),
            Ok(_) => data.add_osv(&buf, place),
            Err(e) => data.rejected.push(Rejected {
                place,
                reason: e.to_string(),
            }),
        }
    }
    data.suggest_osv_name();
    Ok(data)
}
