//! apk: Alpine images. Planning on apk's model of dependencies, and installing in the
//! appliance with the guest's own `apk upgrade`, chrooted, from a repository made for
//! the run: the planned package files and an `APKINDEX.tar.gz` of exactly them, signed
//! with the catalog's key (`Catalog::signing_key`), whose public half is put into the
//! guest's `/etc/apk/keys` for the run only. It is removed afterwards, the removal is
//! checked in the appliance, and the native verification checks again that no
//! `coldpatch-*` key is left (`leftovers`).
//!
//! No service can start: the appliance boots no init, and openrc's `rc-service` and
//! `openrc` refuse to act when `/run/openrc` does not exist (openrc keeps its state there
//! on the tmpfs it mounts at boot). A `/run/openrc` left on an image's disk (an image
//! copied from a running system) is moved aside for the run and put back.
//!
//! Planning. Targets come from the request as for dpkg (`plan::targets`); the newest
//! repository version for the image's architecture (or `noarch`) is chosen, and every
//! other installed package of the same origin moves to that version too when the
//! repository has it (Alpine builds and ships an origin's subpackages together). Then the
//! state after the upgrade is checked: every `D:` atom of every package that will be
//! installed (`name`, `name>=1.2-r0`, `so:libc.musl-x86_64.so.1`, `cmd:sh`…) must be met
//! by a package's name or one of its `p:` provides (an unversioned provide meets only an
//! unversioned atom); an unmet atom pulls in the newest repository package that meets it,
//! or refuses the plan naming it. A `!name` atom is a conflict and refuses the plan when
//! it would hold. A repository package whose `install_if` atoms all hold afterwards is
//! planned too, as apk would install it. Nothing is ever downgraded. What apk then removes
//! because nothing needs it any more (a library a new version dropped) is apk's own rule,
//! not planned.
//!
//! Written here: no crate resolves apk dependencies; ordering is `vuln::version`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use coldpatch_collector::{Inventory, Package, PackageKind};
use coldpatch_disk::guestfs::Session;
use coldpatch_repo::{RepoIndex, RepoPackage};
use coldpatch_vuln::version::compare;
use coldpatch_vuln::Finding;

use super::{Install, PackageManager};
use crate::appliance::{shell_quote, GuestError};
use crate::plan::{Plan, Refusal, Request, Step};

const KEYS: &str = "/etc/apk/keys";

pub struct Apk;

/// One dependency atom: name, and an optional (operator, version).
#[derive(Debug, PartialEq, Eq)]
struct Atom<'a> {
    conflict: bool,
    name: &'a str,
    op: Option<(&'a str, &'a str)>,
}

fn atom(s: &str) -> Atom<'_> {
    let (conflict, s) = match s.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, s),
    };
    match s.find(['<', '>', '=', '~']) {
        Some(i) => {
            let rest = &s[i..];
            let n = rest
                .find(|c: char| !matches!(c, '<' | '>' | '=' | '~'))
                .unwrap_or(rest.len());
            Atom {
                conflict,
                name: &s[..i],
                op: Some((&rest[..n], &rest[n..])),
            }
        }
        None => Atom {
            conflict,
            name: s,
            op: None,
        },
    }
}

fn holds(op: &str, have: &str, want: &str) -> bool {
    let o = compare(PackageKind::Apk, have, want);
    match op {
        "=" | "==" => o == Ordering::Equal,
        "<" => o == Ordering::Less,
        "<=" | "=<" => o != Ordering::Greater,
        ">" => o == Ordering::Greater,
        ">=" | "=>" => o != Ordering::Less,
        // Fuzzy: the version starts with the wanted one.
        "~" | "~=" => have.starts_with(want),
        // `><`: a checksum pin, which no version comparison meets.
        _ => false,
    }
}

/// What a package offers: (name, version or none) for itself and each provide.
fn offers<'a>(
    name: &'a str,
    version: &'a str,
    provides: &'a [String],
) -> Vec<(&'a str, Option<&'a str>)> {
    let mut v = vec![(name, Some(version))];
    for p in provides {
        match p.split_once('=') {
            Some((n, ver)) => v.push((n, Some(ver))),
            None => v.push((p.as_str(), None)),
        }
    }
    v
}

fn meets(a: &Atom<'_>, name: &str, version: &str, provides: &[String]) -> bool {
    offers(name, version, provides).into_iter().any(|(n, v)| {
        n == a.name
            && match (a.op, v) {
                (None, _) => true,
                (Some((op, want)), Some(have)) => holds(op, have, want),
                (Some(_), None) => false,
            }
    })
}

/// What will be installed: name -> (version, provides).
type State<'a> = BTreeMap<&'a str, (&'a str, &'a [String])>;

fn met(state: &State<'_>, a: &Atom<'_>) -> bool {
    state.iter().any(|(n, (v, p))| meets(a, n, v, p))
}

fn arch_ok(image: &str, offered: &str) -> bool {
    offered == image || offered == "noarch" || image == "noarch"
}

impl PackageManager for Apk {
    fn kind(&self) -> PackageKind {
        PackageKind::Apk
    }

    fn file_ext(&self) -> &'static str {
        ".apk"
    }

    fn plan(
        &self,
        image: &str,
        installed: &[Package],
        findings: &[Finding],
        repo: &RepoIndex,
        req: &Request,
    ) -> Result<Plan, Refusal> {
        plan(image, installed, findings, repo, req)
    }

    fn tool(&self) -> &'static str {
        "apk"
    }

    fn database(&self) -> &'static str {
        "/lib/apk/db"
    }

    fn prepare(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError> {
        let key = inst.key.ok_or_else(|| {
            GuestError::Appliance("an apk run needs the catalog's signing key".into())
        })?;
        let (openrc, saved) = openrc(inst);
        if s.exists(&openrc)? || s.is_symlink(&openrc).unwrap_or(false) {
            s.mv(&openrc, &saved)?;
        }
        let keys = format!("{}{KEYS}", inst.root);
        s.mkdir_p(&keys)?;
        s.write(
            &format!("{keys}/{}", key.name()),
            key.public_pem().as_bytes(),
        )?;
        // The repository: the index of exactly the planned files, signed.
        let mut infos = Vec::new();
        for f in inst.files {
            let bytes = std::fs::read(&f.host)
                .map_err(|e| GuestError::Appliance(format!("{}: {e}", f.host.display())))?;
            infos.push(
                coldpatch_apk::pkg::read(&bytes)
                    .map_err(|e| GuestError::Appliance(format!("{}: {e}", f.step.file)))?,
            );
        }
        let index =
            coldpatch_apk::index::write(&infos, &format!("coldpatch run {}", inst.run), key)
                .map_err(|e| GuestError::Appliance(e.to_string()))?;
        let dir = format!("{}{}/{}", inst.root, repo_dir(inst.run), arch(s, inst)?);
        s.mkdir_p(&dir)?;
        s.write(&format!("{dir}/APKINDEX.tar.gz"), &index)?;
        s.write(
            &format!("{}{}/repositories", inst.root, repo_dir(inst.run)),
            b"",
        )?;
        Ok(())
    }

    fn commands(
        &self,
        s: &mut Session,
        inst: &Install<'_>,
    ) -> Result<Vec<(String, String)>, GuestError> {
        // Bounded in time by the batch (`batch::TOOL_TIMEOUT_SECS`).
        let repo = repo_dir(inst.run);
        let arch = arch(s, inst)?;
        // Each planned file under the name apk looks it up by, in the run's repository.
        let links: Vec<String> = inst
            .files
            .iter()
            .map(|f| {
                format!(
                    "ln -sf {} {}",
                    shell_quote(&f.guest),
                    shell_quote(&format!(
                        "{repo}/{arch}/{}-{}.apk",
                        f.step.package, f.step.to
                    ))
                )
            })
            .collect();
        // Only what is installed is named (new packages come as dependencies).
        let names: Vec<String> = inst
            .files
            .iter()
            .filter(|f| f.step.from.is_some())
            .map(|f| shell_quote(&f.step.package))
            .collect();
        let upgrade = format!(
            "cd / && LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin apk upgrade --no-network \
             --cache=no --no-interactive --no-progress --repositories-file {r}/repositories \
             --repository {r} {}",
            names.join(" "),
            r = shell_quote(&repo),
        );
        Ok(vec![
            (
                format!("repository of {} package(s)", links.len()),
                links.join(" && "),
            ),
            (format!("apk upgrade {} package(s)", names.len()), upgrade),
        ])
    }

    fn installed<'a>(&self, output: &'a str) -> Vec<&'a str> {
        // apk's own words: "( 1/10) Upgrading name (a -> b)", "Installing name (v)".
        output
            .lines()
            .filter_map(|l| l.split_once(") ").map(|(_, r)| r))
            .filter_map(|r| {
                r.strip_prefix("Upgrading ")
                    .or_else(|| r.strip_prefix("Installing "))
            })
            .collect()
    }

    fn restore(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError> {
        s.rm_rf(&format!("{}{}", inst.root, repo_dir(inst.run)))?;
        if let Some(key) = inst.key {
            let k = format!("{}{KEYS}/{}", inst.root, key.name());
            s.rm_rf(&k)?;
            if s.exists(&k)? || s.is_symlink(&k).unwrap_or(false) {
                return Err(GuestError::Appliance(format!(
                    "the run's signing key {k} could not be removed"
                )));
            }
        }
        let (openrc, saved) = openrc(inst);
        if s.exists(&saved)? || s.is_symlink(&saved).unwrap_or(false) {
            s.mv(&saved, &openrc)?;
        }
        Ok(())
    }

    fn leftovers(&self, inv: &Inventory) -> Vec<String> {
        let dir = format!("{KEYS}/");
        inv.files
            .iter()
            .filter(|f| {
                f.path
                    .strip_prefix(&dir)
                    .is_some_and(|n| n.starts_with("coldpatch-"))
            })
            .map(|f| format!("{} is still in the image", f.path))
            .collect()
    }
}

/// The run's repository, a guest path.
fn repo_dir(run: &str) -> String {
    format!("/var/cache/coldpatch-{run}.apk")
}

/// `/run/openrc`, and where an existing one waits during the run.
fn openrc(inst: &Install<'_>) -> (String, String) {
    let p = format!("{}/run/openrc", inst.root);
    let saved = format!("{p}.coldpatch-{}", inst.run);
    (p, saved)
}

/// The image's apk architecture: a planned package's, or `/etc/apk/arch`.
fn arch(s: &mut Session, inst: &Install<'_>) -> Result<String, GuestError> {
    if let Some(f) = inst.files.iter().find(|f| f.step.arch != "noarch") {
        return Ok(f.step.arch.clone());
    }
    let a = s.pread(&format!("{}/etc/apk/arch", inst.root), 64, 0)?;
    let a = String::from_utf8_lossy(&a).trim().to_string();
    if a.is_empty() || a.contains('/') {
        return Err(GuestError::Appliance(
            "the image's /etc/apk/arch names no architecture".into(),
        ));
    }
    Ok(a)
}

/// The newest repository package for `arch` meeting `want`.
fn newest<'a>(repo: &'a RepoIndex, arch: &str, want: &Atom<'_>) -> Option<&'a RepoPackage> {
    repo.packages
        .iter()
        .filter(|p| p.kind == PackageKind::Apk && p.file.is_some() && arch_ok(arch, &p.arch))
        .filter(|p| meets(want, &p.name, &p.version, &p.provides))
        .max_by(|a, b| compare(PackageKind::Apk, &a.version, &b.version))
}

/// Plans the upgrade of one Alpine image.
pub(crate) fn plan(
    image: &str,
    installed: &[Package],
    findings: &[Finding],
    repo: &RepoIndex,
    req: &Request,
) -> Result<Plan, Refusal> {
    let by_name: BTreeMap<&str, &Package> =
        installed.iter().map(|p| (p.name.as_str(), p)).collect();
    let arch = installed
        .iter()
        .map(|p| p.arch.as_str())
        .find(|a| *a != "noarch" && !a.is_empty())
        .unwrap_or("noarch")
        .to_string();
    let (wanted, fixes) =
        crate::plan::targets(PackageKind::Apk, image, installed, findings, repo, req)?;
    let mut chosen: BTreeMap<String, (&RepoPackage, Vec<String>)> = BTreeMap::new();
    for (name, (min, reasons)) in &wanted {
        let Some(&inst) = by_name.get(name.as_str()) else {
            return Err(Refusal::NotInstalled {
                package: name.clone(),
            });
        };
        let candidates: Vec<&RepoPackage> = repo
            .versions(name)
            .filter(|p| p.kind == PackageKind::Apk && p.file.is_some() && arch_ok(&arch, &p.arch))
            .collect();
        let best = candidates
            .iter()
            .copied()
            .filter(|p| {
                min.as_ref()
                    .is_none_or(|m| compare(PackageKind::Apk, &p.version, m) != Ordering::Less)
            })
            .max_by(|a, b| compare(PackageKind::Apk, &a.version, &b.version));
        let Some(best) = best else {
            return Err(Refusal::NoFix {
                package: name.clone(),
                arch: arch.clone(),
                what: reasons.join(", "),
                needs: min
                    .as_ref()
                    .map_or("any version".into(), |m| format!("version >= {m}")),
                has: if candidates.is_empty() {
                    "no version".into()
                } else {
                    candidates
                        .iter()
                        .map(|c| c.version.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        match compare(PackageKind::Apk, &best.version, &inst.version) {
            Ordering::Less => {
                return Err(Refusal::Downgrade {
                    package: name.clone(),
                    installed: inst.version.clone(),
                    offered: best.version.clone(),
                })
            }
            Ordering::Equal => continue,
            Ordering::Greater => {
                chosen.insert(name.clone(), (best, reasons.clone()));
            }
        }
    }
    if chosen.is_empty() {
        return Err(Refusal::Nothing(format!(
            "{image} already has the newest versions the repository offers"
        )));
    }
    // Subpackages of the same origin move together.
    let targets: Vec<(String, String, String)> = chosen
        .iter()
        .map(|(n, (p, _))| (n.clone(), p.source_name.clone(), p.version.clone()))
        .collect();
    for (target, origin, version) in targets {
        for inst in installed.iter().filter(|i| i.source_name == origin) {
            if chosen.contains_key(&inst.name) {
                continue;
            }
            let sibling = repo.versions(&inst.name).find(|p| {
                p.kind == PackageKind::Apk
                    && p.file.is_some()
                    && p.version == version
                    && arch_ok(&arch, &p.arch)
            });
            if let Some(s) = sibling {
                if compare(PackageKind::Apk, &s.version, &inst.version) == Ordering::Greater {
                    chosen.insert(
                        inst.name.clone(),
                        (s, vec![format!("same origin as {target}")]),
                    );
                }
            }
        }
    }

    const ROUNDS: usize = 32;
    for _ in 0..ROUNDS {
        let state: State<'_> = installed
            .iter()
            .filter(|p| !chosen.contains_key(&p.name))
            .map(|p| (p.name.as_str(), (p.version.as_str(), p.provides.as_slice())))
            .chain(
                chosen
                    .iter()
                    .map(|(n, (p, _))| (n.as_str(), (p.version.as_str(), p.provides.as_slice()))),
            )
            .collect();
        // Every package that will be installed, with the atoms it depends on.
        let relations: Vec<(&str, &str, Vec<String>)> = chosen
            .iter()
            .map(|(n, (p, _))| {
                let mut d = p.depends.clone();
                d.extend(p.conflicts.iter().map(|c| format!("!{c}")));
                (n.as_str(), p.version.as_str(), d)
            })
            .chain(
                installed
                    .iter()
                    .filter(|p| !chosen.contains_key(&p.name))
                    .map(|p| (p.name.as_str(), p.version.as_str(), p.depends.clone())),
            )
            .collect();
        let mut added: Vec<(String, &RepoPackage, String)> = Vec::new();
        for (name, version, atoms) in &relations {
            for a in atoms {
                let at = atom(a);
                if at.conflict {
                    let hit = state
                        .iter()
                        .find(|(n, (v, p))| **n != *name && meets(&at, n, v, p));
                    if let Some((other, (ov, _))) = hit {
                        return Err(Refusal::Conflict {
                            package: name.to_string(),
                            version: version.to_string(),
                            kind: "conflicts with",
                            relation: a.clone(),
                            other: format!("{other} {ov}"),
                        });
                    }
                    continue;
                }
                if met(&state, &at) {
                    continue;
                }
                let Some(p) = newest(repo, &arch, &at) else {
                    return Err(Refusal::Unsatisfied {
                        package: name.to_string(),
                        version: version.to_string(),
                        relation: a.clone(),
                    });
                };
                if let Some(i) = by_name.get(p.name.as_str()) {
                    if compare(PackageKind::Apk, &p.version, &i.version) != Ordering::Greater {
                        return Err(Refusal::Unsatisfied {
                            package: name.to_string(),
                            version: version.to_string(),
                            relation: a.clone(),
                        });
                    }
                }
                added.push((p.name.clone(), p, format!("needed by {name} for {a}")));
            }
        }
        // install_if: apk installs a package once everything it names is installed.
        if added.is_empty() {
            for p in repo.packages.iter().filter(|p| {
                p.kind == PackageKind::Apk
                    && p.file.is_some()
                    && !p.install_if.is_empty()
                    && arch_ok(&arch, &p.arch)
                    && !state.contains_key(p.name.as_str())
            }) {
                if p.install_if.iter().all(|a| met(&state, &atom(a))) {
                    let newest_of_name =
                        newest(repo, &arch, &atom(&p.name)).is_some_and(|n| n.version == p.version);
                    if newest_of_name {
                        added.push((
                            p.name.clone(),
                            p,
                            format!("installed by apk once {} are", p.install_if.join(" ")),
                        ));
                    }
                }
            }
        }
        if added.is_empty() {
            let steps = chosen
                .into_iter()
                .map(|(n, (p, reasons))| Step {
                    from: by_name.get(n.as_str()).map(|i| i.version.clone()),
                    arch: p.arch.clone(),
                    to: p.version.clone(),
                    reasons,
                    file: p.file.clone().unwrap_or_default(),
                    sha256: p.sha256.clone(),
                    stage: 0,
                    package: n,
                })
                .collect();
            return Ok(Plan {
                kind: PackageKind::Apk,
                image: image.to_string(),
                repository: repo.root.clone(),
                steps,
                fixes,
            });
        }
        for (n, p, why) in added {
            chosen.entry(n).or_insert((p, vec![why]));
        }
    }
    Err(Refusal::TooDeep(ROUNDS))
}

#[cfg(test)]
mod tests {
    //! Refusals and the atom model on small hand-made inventories; the real case is
    //! tests/e2e/alpine.rs.
    use super::*;

    fn inst(name: &str, version: &str, depends: &[&str], provides: &[&str]) -> Package {
        Package {
            arch: "x86_64".into(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            provides: provides.iter().map(|d| d.to_string()).collect(),
            ..Package::new(PackageKind::Apk, name, version)
        }
    }

    fn offer(name: &str, version: &str, depends: &[&str], provides: &[&str]) -> RepoPackage {
        let (conflicts, depends): (Vec<String>, Vec<String>) = depends
            .iter()
            .map(|d| d.to_string())
            .partition(|d| d.starts_with('!'));
        RepoPackage {
            kind: PackageKind::Apk,
            name: name.into(),
            version: version.into(),
            arch: "x86_64".into(),
            source_name: name.into(),
            source_version: version.into(),
            depends,
            pre_depends: Vec::new(),
            provides: provides.iter().map(|d| d.to_string()).collect(),
            conflicts: conflicts.iter().map(|c| c[1..].to_string()).collect(),
            breaks: Vec::new(),
            install_if: Vec::new(),
            file: Some(format!("{name}-{version}.apk")),
            size: 1,
            sha256: None,
            index: None,
        }
    }

    fn repo(p: Vec<RepoPackage>) -> RepoIndex {
        RepoIndex {
            root: "/repo".into(),
            packages: p,
            rejected: Vec::new(),
            indices: 0,
        }
    }

    fn ask(names: &[&str]) -> Request {
        Request {
            packages: names.iter().map(|n| n.to_string()).collect(),
            ..Request::default()
        }
    }

    #[test]
    fn atoms_split_name_operator_and_version() {
        assert_eq!(
            atom("libcurl=8.19.0-r0"),
            Atom {
                conflict: false,
                name: "libcurl",
                op: Some(("=", "8.19.0-r0"))
            }
        );
        assert_eq!(atom("so:libc.musl-x86_64.so.1").op, None);
        let c = atom("!foo<2");
        assert!(c.conflict);
        assert_eq!((c.name, c.op), ("foo", Some(("<", "2"))));
        assert_eq!(atom("a>=1.2").op, Some((">=", "1.2")));
        assert!(holds("~", "1.2.3-r0", "1.2"));
        // An unversioned provide meets only an unversioned atom.
        let p = vec!["cmd:curl".to_string()];
        assert!(meets(&atom("cmd:curl"), "curl", "8", &p));
        assert!(!meets(&atom("cmd:curl>=1"), "curl", "8", &p));
    }

    #[test]
    fn a_new_so_dependency_pulls_its_provider_and_origin_siblings_follow() {
        let mut libcurl_new = offer(
            "libcurl",
            "8.19.0-r0",
            &["so:libnghttp2.so.14"],
            &["so:libcurl.so.4=4.8.0"],
        );
        libcurl_new.source_name = "curl".into();
        let mut curl_new = offer("curl", "8.19.0-r0", &["libcurl=8.19.0-r0"], &[]);
        curl_new.source_name = "curl".into();
        let mut libcurl = inst("libcurl", "8.17.0-r1", &[], &["so:libcurl.so.4=4.8.0"]);
        libcurl.source_name = "curl".into();
        let mut curl = inst("curl", "8.17.0-r1", &["libcurl=8.17.0-r1"], &[]);
        curl.source_name = "curl".into();
        let p = plan(
            "img",
            &[curl, libcurl],
            &[],
            &repo(vec![
                curl_new,
                libcurl_new,
                offer(
                    "nghttp2-libs",
                    "1.69.0-r0",
                    &[],
                    &["so:libnghttp2.so.14=14.29.0"],
                ),
            ]),
            &ask(&["curl"]),
        )
        .expect("plan");
        let names: Vec<(&str, &str)> = p
            .steps
            .iter()
            .map(|s| (s.package.as_str(), s.reasons[0].as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("curl", "requested"),
                ("libcurl", "same origin as curl"),
                ("nghttp2-libs", "needed by libcurl for so:libnghttp2.so.14"),
            ]
        );
        assert_eq!(p.steps[2].from, None);
    }

    #[test]
    fn refusals_name_what_is_missing_or_conflicting() {
        let r = plan(
            "img",
            &[inst("a", "1-r0", &[], &[])],
            &[],
            &repo(vec![offer("a", "2-r0", &["so:libgone.so.1"], &[])]),
            &ask(&["a"]),
        );
        assert!(
            matches!(&r, Err(Refusal::Unsatisfied { relation, .. }) if relation == "so:libgone.so.1"),
            "{r:?}"
        );
        let r = plan(
            "img",
            &[inst("a", "1-r0", &[], &[]), inst("b", "1-r0", &[], &[])],
            &[],
            &repo(vec![offer("a", "2-r0", &["!b"], &[])]),
            &ask(&["a"]),
        );
        assert!(
            matches!(&r, Err(Refusal::Conflict { other, .. }) if other == "b 1-r0"),
            "{r:?}"
        );
        let r = plan(
            "img",
            &[inst("a", "2-r0", &[], &[])],
            &[],
            &repo(vec![offer("a", "1-r0", &[], &[])]),
            &ask(&["a"]),
        );
        assert!(matches!(r, Err(Refusal::Downgrade { .. })), "{r:?}");
        // An installed package whose pinned dependency the upgrade would break.
        let r = plan(
            "img",
            &[
                inst("lib", "1-r0", &[], &[]),
                inst("app", "1-r0", &["lib=1-r0"], &[]),
            ],
            &[],
            &repo(vec![offer("lib", "2-r0", &[], &[])]),
            &ask(&["lib"]),
        );
        assert!(
            matches!(&r, Err(Refusal::Unsatisfied { package, .. }) if package == "app"),
            "{r:?}"
        );
    }

    #[test]
    fn install_if_is_planned_when_it_holds() {
        let mut doc = offer("a-doc", "2-r0", &[], &[]);
        doc.install_if = vec!["a=2-r0".into(), "docs".into()];
        let p = plan(
            "img",
            &[inst("a", "1-r0", &[], &[]), inst("docs", "1-r0", &[], &[])],
            &[],
            &repo(vec![offer("a", "2-r0", &[], &[]), doc]),
            &ask(&["a"]),
        )
        .expect("plan");
        assert!(p
            .steps
            .iter()
            .any(|s| s.package == "a-doc" && s.from.is_none()));
    }
}
