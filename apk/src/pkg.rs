//! apk v2 package files: `[signature] control data`, each a gzip member. The control
//! member's tar holds `.PKGINFO` (`key = value` lines) and the scripts (`.pre-install`,
//! `.post-upgrade`, `.trigger`…); the data member's tar holds the files, each after a PAX
//! header carrying `APK-TOOLS.checksum.SHA1`, the hex SHA-1 apk records as `Z:`.
//! `.PKGINFO`'s `datahash` is the SHA-256 of the data member; the package's identity
//! (`C:` in indexes and the installed database) is the SHA-1 of the control member.

use std::io::Read;

use crate::{bad, q1, sha1, ApkError, Key, MAX_FILE, MAX_TEXT};

/// Most gzip members and most control entries read.
const MAX_MEMBERS: usize = 8;
const MAX_CONTROL_ENTRIES: usize = 64;

/// What a package file says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `.PKGINFO`'s fields, in order.
    pub fields: Vec<(String, String)>,
    /// `Q1…`: the SHA-1 of the control member.
    pub identity: String,
    /// The file's size.
    pub size: u64,
    /// The signature entry's name (`.SIGN.RSA256.<key>`), if signed.
    pub signed_by: Option<String>,
}

impl Info {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The package's stanza in an `APKINDEX` (and the start of its installed-database
    /// entry), in apk's field order.
    pub fn index_stanza(&self) -> String {
        let mut out = format!("C:{}\n", self.identity);
        let one = |out: &mut String, k: char, f: &str| {
            if let Some(v) = self.get(f) {
                out.push_str(&format!("{k}:{v}\n"));
            }
        };
        one(&mut out, 'P', "pkgname");
        one(&mut out, 'V', "pkgver");
        one(&mut out, 'A', "arch");
        out.push_str(&format!("S:{}\n", self.size));
        one(&mut out, 'I', "size");
        one(&mut out, 'T', "pkgdesc");
        one(&mut out, 'U', "url");
        one(&mut out, 'L', "license");
        one(&mut out, 'o', "origin");
        one(&mut out, 'm', "maintainer");
        one(&mut out, 't', "builddate");
        one(&mut out, 'c', "commit");
        one(&mut out, 'k', "provider_priority");
        for (k, f) in [('D', "depend"), ('p', "provides"), ('i', "install_if")] {
            let v = self.all(f);
            if !v.is_empty() {
                out.push_str(&format!("{k}:{}\n", v.join(" ")));
            }
        }
        let r = self.all("replaces");
        if !r.is_empty() {
            out.push_str(&format!("r:{}\n", r.join(" ")));
        }
        one(&mut out, 'q', "replaces_priority");
        out
    }
}

/// The gzip members of a file: (start, end) byte ranges.
fn members(data: &[u8]) -> Result<Vec<(usize, usize)>, ApkError> {
    let mut out = Vec::new();
    let mut rest: &[u8] = data;
    while !rest.is_empty() {
        if out.len() >= MAX_MEMBERS {
            return Err(bad(format!("more than {MAX_MEMBERS} gzip members")));
        }
        let start = data.len() - rest.len();
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut (&mut d).take(MAX_FILE), &mut std::io::sink())
            .map_err(|e| bad(format!("gzip member at byte {start}: {e}")))?;
        rest = d.into_inner();
        out.push((start, data.len() - rest.len()));
    }
    Ok(out)
}

fn gunzip(member: &[u8], max: u64) -> Result<Vec<u8>, ApkError> {
    let mut out = Vec::new();
    flate2::bufread::GzDecoder::new(member)
        .take(max + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(bad(format!("a member is larger than {max} bytes")));
    }
    Ok(out)
}

/// The entries of a (possibly cut) tar: (name, content), at most `max`.
fn entries(tar_bytes: &[u8], max: usize) -> Result<Vec<(String, Vec<u8>)>, ApkError> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries()? {
        let mut e = e?;
        if out.len() >= max {
            return Err(bad(format!("more than {max} control entries")));
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut v = Vec::new();
        (&mut e).take(MAX_TEXT + 1).read_to_end(&mut v)?;
        if v.len() as u64 > MAX_TEXT {
            return Err(bad(format!("{name} is larger than {MAX_TEXT} bytes")));
        }
        out.push((name, v));
    }
    Ok(out)
}

fn pkginfo(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Reads a package file's control data. An unsigned package (control first) is read
/// too; whether its signature is trusted is the installing apk's to say.
pub fn read(data: &[u8]) -> Result<Info, ApkError> {
    let ms = members(data)?;
    let mut signed_by = None;
    for (s, e) in ms.iter().take(2) {
        let list = entries(&gunzip(&data[*s..*e], MAX_TEXT)?, MAX_CONTROL_ENTRIES)?;
        if let Some((n, _)) = list.iter().find(|(n, _)| n.starts_with(".SIGN.")) {
            signed_by = Some(n.clone());
            continue;
        }
        let Some((_, text)) = list.iter().find(|(n, _)| n == ".PKGINFO") else {
            return Err(bad("no .PKGINFO in the control member"));
        };
        let fields = pkginfo(&String::from_utf8_lossy(text));
        if !fields.iter().any(|(k, _)| k == "pkgname") || !fields.iter().any(|(k, _)| k == "pkgver")
        {
            return Err(bad(".PKGINFO names no pkgname or pkgver"));
        }
        return Ok(Info {
            fields,
            identity: q1(&sha1(&data[*s..*e])),
            size: data.len() as u64,
            signed_by,
        });
    }
    Err(bad("not an apk package: no control member with .PKGINFO"))
}

/// A file of the data archive.
pub enum Data<'a> {
    Dir,
    File(&'a mut dyn Read, u64),
    Symlink(&'a str),
}

/// One data entry: its path (relative), owner, mode, mtime and content.
pub struct DataEntry<'a> {
    pub path: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: u64,
    pub data: Data<'a>,
}

/// A package being written: the data archive first (its hash goes into `.PKGINFO`).
pub struct Builder {
    data: tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
}

/// A written package.
pub struct Built {
    pub bytes: Vec<u8>,
    pub info: Info,
}

/// An entry's owner, mode and mtime.
#[derive(Clone, Copy)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
}

fn header(kind: tar::EntryType, e: Meta, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(e.mode & 0o7777);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    if e.uid == 0 {
        let _ = h.set_username("root");
    }
    if e.gid == 0 {
        let _ = h.set_groupname("root");
    }
    h.set_mtime(e.mtime);
    h.set_size(size);
    h
}

/// A PAX extended header's records.
fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        // The length counts its own digits.
        let mut n = body.len() + 1;
        while format!("{n}{body}").len() != n {
            n += 1;
        }
        out.extend_from_slice(format!("{n}{body}").as_bytes());
    }
    out
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            data: tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
        }
    }

    /// Adds a data entry; a file's content is hashed as it is written, and the SHA-1
    /// returned (a symlink's is its target's).
    pub fn add(&mut self, e: DataEntry<'_>) -> Result<Option<[u8; 20]>, ApkError> {
        let meta = Meta {
            uid: e.uid,
            gid: e.gid,
            mode: e.mode,
            mtime: e.mtime,
        };
        match e.data {
            Data::Dir => {
                let mut h = header(tar::EntryType::Directory, meta, 0);
                self.data
                    .append_data(&mut h, format!("{}/", e.path), std::io::empty())?;
                Ok(None)
            }
            Data::Symlink(target) => {
                let sum = sha1(target.as_bytes());
                self.pax(&hex::encode(sum))?;
                let mut h = header(tar::EntryType::Symlink, meta, 0);
                self.data.append_link(&mut h, e.path, target)?;
                Ok(Some(sum))
            }
            Data::File(ref_r, size) => {
                // The checksum header comes before the file: read it into memory first
                // (at most MAX_FILE, the size the walk recorded).
                if size > MAX_FILE {
                    return Err(bad(format!("{} is larger than {MAX_FILE} bytes", e.path)));
                }
                let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                ref_r.take(size).read_to_end(&mut content)?;
                if content.len() as u64 != size {
                    return Err(bad(format!(
                        "{} ended after {} of {size} bytes",
                        e.path,
                        content.len()
                    )));
                }
                let sum = sha1(&content);
                self.pax(&hex::encode(sum))?;
                let mut h = header(tar::EntryType::Regular, meta, size);
                self.data.append_data(&mut h, e.path, content.as_slice())?;
                Ok(Some(sum))
            }
        }
    }

    fn pax(&mut self, sha1_hex: &str) -> Result<(), ApkError> {
        let body = pax(&[("APK-TOOLS.checksum.SHA1", sha1_hex)]);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        self.data
            .append_data(&mut h, "PaxHeader", body.as_slice())?;
        Ok(())
    }

    /// Writes the package: `.PKGINFO` (`comment` as comment lines, `fields`, the data's
    /// hash), the control entries (`scripts`: name, content), signed with `key`.
    pub fn finish(
        self,
        fields: &[(String, String)],
        scripts: &[(String, Vec<u8>)],
        key: &Key,
        comment: &str,
    ) -> Result<Built, ApkError> {
        let data = self.data.into_inner()?.finish()?;
        let datahash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        let mut text = String::from("# Generated by coldpatch\n");
        for line in comment.lines() {
            text.push_str(&format!("# {line}\n"));
        }
        for (k, v) in fields {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text.push_str(&format!("datahash = {datahash}\n"));
        let mut control: Vec<(String, Vec<u8>, u32)> =
            vec![(".PKGINFO".into(), text.into_bytes(), 0o644)];
        control.extend(scripts.iter().map(|(n, b)| (n.clone(), b.clone(), 0o755)));
        let control = cut_targz(&control)?;
        let (sig_name, sig) = key.sign(&control)?;
        let signature = cut_targz(&[(sig_name.clone(), sig, 0o644)])?;
        let mut bytes = signature;
        let control_range = (bytes.len(), bytes.len() + control.len());
        bytes.extend_from_slice(&control);
        bytes.extend_from_slice(&data);
        let mut info = read(&bytes)?;
        // read() found the same member; say so plainly rather than trust it.
        debug_assert_eq!(
            info.identity,
            q1(&sha1(&bytes[control_range.0..control_range.1]))
        );
        info.size = bytes.len() as u64;
        Ok(Built { bytes, info })
    }
}

/// A gzip member holding a tar of `files` (name, content, mode) without its
/// end-of-archive blocks, as abuild-tar `--cut` writes the signature and control.
pub(crate) fn cut_targz(files: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>, ApkError> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, content, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(content.len() as u64);
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        t.append_data(&mut h, name, content.as_slice())?;
    }
    let mut raw = t.into_inner()?;
    // tar::Builder ends with two zero blocks (1024 bytes) and nothing after them.
    raw.truncate(raw.len().saturating_sub(1024));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &raw)?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_lengths_count_themselves() {
        let r = pax(&[("APK-TOOLS.checksum.SHA1", &"a".repeat(40))]);
        let s = String::from_utf8(r).expect("utf8");
        let (n, _) = s.split_once(' ').expect("len");
        assert_eq!(n.parse::<usize>().ok(), Some(s.len()));
    }

    #[test]
    fn a_built_package_reads_back_signed_with_its_members_in_order() {
        let key = Key::generate().expect("key");
        let mut b = Builder::new();
        b.add(DataEntry {
            path: "etc",
            uid: 0,
            gid: 0,
            mode: 0o755,
            mtime: 1,
            data: Data::Dir,
        })
        .expect("dir");
        let mut content: &[u8] = b"hello\n";
        let sum = b
            .add(DataEntry {
                path: "etc/x",
                uid: 0,
                gid: 0,
                mode: 0o600,
                mtime: 1,
                data: Data::File(&mut content, 6),
            })
            .expect("file");
        assert_eq!(sum, Some(sha1(b"hello\n")));
        let fields = vec![
            ("pkgname".to_string(), "x".to_string()),
            ("pkgver".to_string(), "1-r0".to_string()),
            ("depend".to_string(), "so:libc.musl-x86_64.so.1".to_string()),
        ];
        let built = b
            .finish(
                &fields,
                &[(".post-install".into(), b"#!/bin/sh\n".to_vec())],
                &key,
                "origin = test",
            )
            .expect("build");
        let ms = members(&built.bytes).expect("members");
        assert_eq!(ms.len(), 3);
        let info = read(&built.bytes).expect("read");
        assert_eq!(info.get("pkgname"), Some("x"));
        assert_eq!(
            info.signed_by.as_deref(),
            Some(&*format!(".SIGN.RSA256.{}", key.name()))
        );
        assert!(info.get("datahash").is_some_and(|h| h.len() == 64));
        let control = &built.bytes[ms[1].0..ms[1].1];
        assert_eq!(info.identity, q1(&sha1(control)));
        let sig = entries(
            &gunzip(&built.bytes[ms[0].0..ms[0].1], MAX_TEXT).expect("gz"),
            4,
        )
        .expect("sig");
        assert!(key.verifies(control, &sig[0].1));
        assert!(info.index_stanza().contains("D:so:libc.musl-x86_64.so.1\n"));
        // The three members read as one tar (the first two are cut).
        let mut all = Vec::new();
        flate2::bufread::MultiGzDecoder::new(built.bytes.as_slice())
            .read_to_end(&mut all)
            .expect("all");
        let names: Vec<String> = entries(&all, 64)
            .expect("one tar")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.iter().any(|n| n == "etc/x"), "{names:?}");
        assert!(read(b"not gzip").is_err());
    }
}
