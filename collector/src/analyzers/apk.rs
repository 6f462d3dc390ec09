//! Alpine packages from apk's database, `/lib/apk/db/installed`: one `X:value` line per
//! field, blank lines between packages. `D:` (dependencies, `!name` a conflict) and `p:`
//! (provides, `so:`/`cmd:` names among them) are kept one atom per entry, as the patcher
//! plans from them.

use crate::analyzer::{Analyzer, Offer, PathPattern};
use crate::model::{Inventory, Package, PackageKind};

/// Most packages read from one database.
pub const MAX_PACKAGES: usize = 1_000_000;

#[derive(Default)]
pub struct Apk;

impl Analyzer for Apk {
    fn name(&self) -> &'static str {
        "apk"
    }
    fn version(&self) -> u32 {
        // 2: dependencies and provides.
        2
    }
    fn patterns(&self) -> &'static [PathPattern] {
        &[
            PathPattern::Exact("/lib/apk/db/installed"),
            PathPattern::Exact("/usr/lib/apk/db/installed"),
        ]
    }
    fn max_bytes(&self) -> u64 {
        256 << 20
    }
    fn analyze(&mut self, offer: &Offer<'_>, inv: &mut Inventory) -> Result<(), String> {
        let Some(data) = offer.data else {
            return Ok(());
        };
        let (pkgs, problems) = parse_installed(data, offer.path);
        inv.packages.extend(pkgs);
        crate::analyzer::problems_to_unknowns(inv, offer.path, "apk", problems);
        Ok(())
    }
}

#[derive(Default)]
struct Partial {
    line: usize,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    origin: Option<String>,
    license: Option<String>,
    depends: Vec<String>,
    provides: Vec<String>,
}

pub fn parse_installed(data: &[u8], db: &str) -> (Vec<Package>, Vec<String>) {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut cur = Partial::default();
    let flush = |cur: &mut Partial, out: &mut Vec<Package>, problems: &mut Vec<String>| {
        let p = std::mem::take(cur);
        if p.line == 0 {
            return;
        }
        let (Some(name), Some(version)) = (p.name.clone(), p.version.clone()) else {
            problems.push(format!("package at line {} lacks P: or V:", p.line));
            return;
        };
        if out.len() >= MAX_PACKAGES {
            problems.push(format!("more than {MAX_PACKAGES} packages"));
            return;
        }
        out.push(Package {
            kind: PackageKind::Apk,
            source_name: p.origin.unwrap_or_else(|| name.clone()),
            source_version: version.clone(),
            name,
            version,
            epoch: None,
            release: None,
            arch: p.arch.unwrap_or_default(),
            source_rpm: None,
            license: p.license,
            provides: p.provides,
            depends: p.depends,
            module: None,
            db: db.to_string(),
        });
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            flush(&mut cur, &mut out, &mut problems);
            continue;
        }
        if cur.line == 0 {
            cur.line = i + 1;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.to_string();
        match k {
            "P" => cur.name = Some(v),
            "V" => cur.version = Some(v),
            "A" => cur.arch = Some(v),
            "o" => cur.origin = Some(v),
            "L" => cur.license = Some(v),
            "D" => cur.depends.extend(v.split_whitespace().map(str::to_string)),
            "p" => cur
                .provides
                .extend(v.split_whitespace().map(str::to_string)),
            _ => {}
        }
    }
    flush(&mut cur, &mut out, &mut problems);
    (out, problems)
}
