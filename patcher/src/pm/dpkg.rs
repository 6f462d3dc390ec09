//! dpkg: Debian-family images. Planning on dpkg's model of relations, and installing in
//! the appliance with the guest's own `dpkg -i`, stage by stage, under a `policy-rc.d`
//! that forbids service starts (an existing one is set aside and put back); the stages
//! run chrooted in the guest, beside other images' (`batch.rs`).
//!
//! Planning. Targets come from the request (named packages, advisories, or every fixable finding).
//! For each, the newest repository version for the package's architecture that fixes
//! what was asked is chosen; every other installed binary of the same source package
//! moves to that source version too, as security updates are built and shipped. Then the
//! whole state after the upgrade is checked: each planned package's Depends and
//! Pre-Depends, and each installed package's, must be satisfied by what will be
//! installed (a real package or a Provides). An unsatisfied relation pulls in the newest
//! repository package that satisfies it; if none does, the plan is refused with the
//! relation named. Breaks and Conflicts of planned packages against what will be
//! installed also refuse the plan. Nothing is ever downgraded.
//!
//! Written here: no crate resolves dpkg relations against an offline inventory;
//! `debian-packaging` parses the relations, ordering is `vuln::version`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use coldpatch_collector::{Package, PackageKind};
use coldpatch_disk::guestfs::Session;
use coldpatch_repo::{RepoIndex, RepoPackage};
use coldpatch_vuln::version::compare;
use coldpatch_vuln::Finding;

use super::{Install, PackageManager};
use crate::appliance::{shell_quote, GuestError};
use crate::plan::{Plan, Refusal, Request, Step};

pub struct Dpkg;

impl PackageManager for Dpkg {
    fn kind(&self) -> PackageKind {
        PackageKind::Deb
    }

    fn file_ext(&self) -> &'static str {
        ".deb"
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
        "dpkg"
    }

    fn database(&self) -> &'static str {
        "/var/lib/dpkg"
    }

    fn for_appliance(&self, staged: &std::path::Path, out: &std::path::Path) -> bool {
        // Any error leaves the checked original to be uploaded (and dpkg to judge it).
        super::debfile::decompressed(staged, out).unwrap_or(false)
    }

    fn prepare(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError> {
        // No service may start in an image that is not running.
        let (policy, saved) = policy_rc(inst.root, inst.run);
        if s.exists(&policy)? || s.is_symlink(&policy).unwrap_or(false) {
            s.mv(&policy, &saved)?;
        }
        s.write(
            &policy,
            b"#!/bin/sh\n# coldpatch: no service starts in an offline image\nexit 101\n",
        )?;
        s.chmod(0o755, &policy)?;
        Ok(())
    }

    fn commands(
        &self,
        _s: &mut Session,
        inst: &Install<'_>,
    ) -> Result<Vec<(String, String)>, GuestError> {
        let files = inst.files;
        // Bounded in time by the batch (`batch::TOOL_TIMEOUT_SECS`).
        let mut stages: Vec<u32> = files.iter().map(|f| f.step.stage).collect();
        stages.sort_unstable();
        stages.dedup();
        Ok(stages
            .into_iter()
            .map(|stage| {
                let args: Vec<String> = files
                    .iter()
                    .filter(|f| f.step.stage == stage)
                    .map(|f| shell_quote(&f.guest))
                    .collect();
                // --force-unsafe-io: no fsync per unpacked file. The overlay is thrown
                // away if anything fails and written out once when the appliance stops.
                let cmd = format!(
                    "cd / && DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C \
                     PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --force-unsafe-io \
                     --force-confdef --force-confold -i {}",
                    args.join(" ")
                );
                (format!("stage {stage}: dpkg -i {} package(s)", args.len()), cmd)
            })
            .collect())
    }

    fn installed<'a>(&self, output: &'a str) -> Vec<&'a str> {
        // dpkg's own words: "Setting up name (v) ...".
        output
            .lines()
            .filter_map(|l| l.strip_prefix("Setting up "))
            .map(|p| p.trim_end_matches(" ...").trim())
            .collect()
    }

    fn restore(&self, s: &mut Session, inst: &Install<'_>) -> Result<(), GuestError> {
        // Leave the guest as it was, apart from the packages.
        let (policy, saved) = policy_rc(inst.root, inst.run);
        s.rm_rf(&policy)?;
        if s.exists(&saved)? || s.is_symlink(&saved).unwrap_or(false) {
            s.mv(&saved, &policy)?;
        }
        Ok(())
    }
}

/// The guest's `policy-rc.d`, and where an existing one is kept during the run.
fn policy_rc(root: &str, run: &str) -> (String, String) {
    let policy = format!("{root}/usr/sbin/policy-rc.d");
    let saved = format!("{policy}.coldpatch-{run}");
    (policy, saved)
}

static NO_RELATIONS: Vec<String> = Vec::new();

/// One alternative of a relation: name, optional (operator, version).
struct Rel {
    name: String,
    op: Option<(String, String)>,
}

/// A relation group "a (>= 1) | b" as alternatives; ":any"/":native" qualifiers and
/// architecture restrictions are dropped (one architecture per image here).
fn parse_group(group: &str) -> Vec<Rel> {
    group
        .split('|')
        .filter_map(|alt| {
            let d = debian_packaging::dependency::SingleDependency::parse(alt.trim()).ok()?;
            let name = d
                .package
                .split(':')
                .next()
                .unwrap_or(&d.package)
                .to_string();
            let op = d
                .version_constraint
                .map(|c| (c.relationship.to_string(), c.version.to_string()));
            Some(Rel { name, op })
        })
        .collect()
}

fn holds(op: &str, have: &str, want: &str) -> bool {
    let o = compare(PackageKind::Deb, have, want);
    match op {
        "<<" => o == Ordering::Less,
        "<=" => o != Ordering::Greater,
        "=" => o == Ordering::Equal,
        ">=" => o != Ordering::Less,
        ">>" => o == Ordering::Greater,
        _ => false,
    }
}

/// What will be installed after the plan: name -> (version, provides).
struct State {
    real: BTreeMap<String, (String, Vec<String>)>,
}

impl State {
    fn satisfies(&self, r: &Rel) -> bool {
        if let Some((v, _)) = self.real.get(&r.name) {
            if r.op.as_ref().is_none_or(|(op, want)| holds(op, v, want)) {
                return true;
            }
        }
        // Provides: "name" or "name (= version)".
        self.real.values().any(|(_, provides)| {
            provides.iter().any(|p| {
                parse_group(p).iter().any(|pr| {
                    pr.name == r.name
                        && match (&r.op, &pr.op) {
                            (None, _) => true,
                            (Some((op, want)), Some((_, have))) => holds(op, have, want),
                            (Some(_), None) => false,
                        }
                })
            })
        })
    }

    /// Another installed package a relation names (for Breaks/Conflicts), if its version
    /// matches.
    fn hit(&self, r: &Rel, except: &str) -> Option<(String, String)> {
        let (v, _) = self.real.get(&r.name)?;
        if r.name == except {
            return None;
        }
        r.op.as_ref()
            .is_none_or(|(op, want)| holds(op, v, want))
            .then(|| (r.name.clone(), v.clone()))
    }
}

fn arch_ok(image_arch: &str, offered: &str) -> bool {
    offered == image_arch || offered == "all" || image_arch == "all"
}

/// The newest installable repository version of a package for an architecture.
fn newest<'a>(repo: &'a RepoIndex, name: &str, arch: &str) -> Option<&'a RepoPackage> {
    repo.packages
        .iter()
        .filter(|p| {
            p.name == name
                && p.kind == PackageKind::Deb
                && p.file.is_some()
                && arch_ok(arch, &p.arch)
        })
        .max_by(|a, b| compare(PackageKind::Deb, &a.version, &b.version))
}

/// The dpkg stage of each planned package: one more than the latest stage of any planned
/// package its Pre-Depends names (dpkg refuses to unpack a package whose pre-dependency is
/// not configured yet, so those must be installed by an earlier `dpkg -i`). A cycle of
/// Pre-Depends, which Debian policy forbids, stops at the number of packages.
fn stages(chosen: &BTreeMap<String, (&RepoPackage, Vec<String>)>) -> BTreeMap<String, u32> {
    let mut stage: BTreeMap<String, u32> = chosen.keys().map(|n| (n.clone(), 0)).collect();
    let limit = u32::try_from(chosen.len()).unwrap_or(u32::MAX);
    for _ in 0..chosen.len() {
        let mut changed = false;
        for (n, (p, _)) in chosen {
            let want = p
                .pre_depends
                .iter()
                .flat_map(|g| parse_group(g))
                .filter(|r| r.name != *n)
                .filter_map(|r| stage.get(&r.name).map(|s| s + 1))
                .max()
                .unwrap_or(0)
                .min(limit);
            if stage[n] < want {
                stage.insert(n.clone(), want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    stage
}

/// Plans the upgrade of one Debian-family image.
pub(crate) fn plan(
    image: &str,
    installed: &[Package],
    findings: &[Finding],
    repo: &RepoIndex,
    req: &Request,
) -> Result<Plan, Refusal> {
    let by_name: BTreeMap<&str, &Package> =
        installed.iter().map(|p| (p.name.as_str(), p)).collect();
    let (wanted, fixes) =
        crate::plan::targets(PackageKind::Deb, image, installed, findings, repo, req)?;

    // Choose versions for the targets, then their source siblings.
    let mut chosen: BTreeMap<String, (&RepoPackage, Vec<String>)> = BTreeMap::new();
    for (name, (min_source, reasons)) in &wanted {
        // A finding may name a package the inventory does not hold (feeds and
        // inventories are untrusted): refused, never indexed blindly.
        let Some(&inst) = by_name.get(name.as_str()) else {
            return Err(Refusal::NotInstalled {
                package: name.clone(),
            });
        };
        let candidates: Vec<&RepoPackage> = repo
            .versions(name)
            .filter(|p| p.file.is_some() && arch_ok(&inst.arch, &p.arch))
            .collect();
        let best = candidates
            .iter()
            .copied()
            .filter(|p| {
                min_source.as_ref().is_none_or(|m| {
                    compare(PackageKind::Deb, &p.source_version, m) != Ordering::Less
                })
            })
            .max_by(|a, b| compare(PackageKind::Deb, &a.version, &b.version));
        let Some(best) = best else {
            return Err(Refusal::NoFix {
                package: name.clone(),
                arch: inst.arch.clone(),
                what: reasons.join(", "),
                needs: min_source
                    .as_ref()
                    .map_or("any version".into(), |m| format!("source version >= {m}")),
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
        if compare(PackageKind::Deb, &best.version, &inst.version) == Ordering::Less {
            return Err(Refusal::Downgrade {
                package: name.clone(),
                installed: inst.version.clone(),
                offered: best.version.clone(),
            });
        }
        if best.version == inst.version {
            continue;
        }
        chosen.insert(name.clone(), (best, reasons.clone()));
    }
    if chosen.is_empty() {
        return Err(Refusal::Nothing(format!(
            "{image} already has the newest versions the repository offers"
        )));
    }
    let targets: Vec<(String, String, String)> = chosen
        .iter()
        .map(|(n, (p, _))| (n.clone(), p.source_name.clone(), p.source_version.clone()))
        .collect();
    for (target, source, source_version) in targets {
        for inst in installed.iter().filter(|i| i.source_name == source) {
            if chosen.contains_key(&inst.name) {
                continue;
            }
            let sibling = repo.versions(&inst.name).find(|p| {
                p.file.is_some()
                    && p.source_version == source_version
                    && arch_ok(&inst.arch, &p.arch)
            });
            if let Some(s) = sibling {
                if compare(PackageKind::Deb, &s.version, &inst.version) == Ordering::Greater {
                    chosen.insert(
                        inst.name.clone(),
                        (s, vec![format!("same source as {target}")]),
                    );
                }
            }
        }
    }

    // Settle dependencies: check the whole state, pull in what is missing.
    const ROUNDS: usize = 32;
    for _ in 0..ROUNDS {
        let state = State {
            real: installed
                .iter()
                .map(|p| (p.name.clone(), (p.version.clone(), p.provides.clone())))
                .chain(
                    chosen
                        .iter()
                        .map(|(n, (p, _))| (n.clone(), (p.version.clone(), p.provides.clone()))),
                )
                .collect(),
        };
        let mut added: Vec<(String, &RepoPackage, String)> = Vec::new();
        // Every relation of every package that will be installed: planned ones with
        // their new relations, the others with what dpkg recorded.
        let relations = chosen
            .iter()
            .map(|(n, (p, _))| (n.as_str(), p.version.as_str(), [&p.pre_depends, &p.depends]))
            .chain(
                installed
                    .iter()
                    .filter(|p| !chosen.contains_key(&p.name))
                    .map(|p| {
                        (
                            p.name.as_str(),
                            p.version.as_str(),
                            [&p.depends, &NO_RELATIONS],
                        )
                    }),
            );
        let mut unmet: Vec<(String, String, String)> = Vec::new();
        for (name, version, lists) in relations {
            for g in lists.into_iter().flatten() {
                let alts = parse_group(g);
                if !alts.is_empty() && !alts.iter().any(|r| state.satisfies(r)) {
                    unmet.push((name.to_string(), version.to_string(), g.clone()));
                }
            }
        }
        for (name, version, g) in &unmet {
            let arch = by_name
                .get(name.as_str())
                .map(|p| p.arch.clone())
                .or_else(|| chosen.get(name).map(|(p, _)| p.arch.clone()))
                .unwrap_or_default();
            // The newest repository package that satisfies one of the alternatives.
            let pick = parse_group(g).into_iter().find_map(|r| {
                let p = newest(repo, &r.name, &arch)?;
                let ok =
                    r.op.as_ref()
                        .is_none_or(|(op, want)| holds(op, &p.version, want));
                ok.then_some((r.name.clone(), p))
            });
            match pick {
                Some((n, p)) => {
                    if let Some(i) = by_name.get(n.as_str()) {
                        if compare(PackageKind::Deb, &p.version, &i.version) != Ordering::Greater {
                            return Err(Refusal::Unsatisfied {
                                package: name.clone(),
                                version: version.clone(),
                                relation: g.clone(),
                            });
                        }
                    }
                    added.push((n, p, format!("needed by {name} for {g}")));
                }
                None => {
                    return Err(Refusal::Unsatisfied {
                        package: name.clone(),
                        version: version.clone(),
                        relation: g.clone(),
                    })
                }
            }
        }
        if added.is_empty() {
            // Breaks and Conflicts of what is planned, against what will be installed.
            for (n, (p, _)) in &chosen {
                for (kind, rels) in [("breaks", &p.breaks), ("conflicts with", &p.conflicts)] {
                    for g in rels {
                        for r in parse_group(g) {
                            if let Some((other, ov)) = state.hit(&r, n) {
                                return Err(Refusal::Conflict {
                                    package: n.clone(),
                                    version: p.version.clone(),
                                    kind,
                                    relation: g.clone(),
                                    other: format!("{other} {ov}"),
                                });
                            }
                        }
                    }
                }
            }
            let stages = stages(&chosen);
            let steps = chosen
                .into_iter()
                .map(|(n, (p, reasons))| Step {
                    from: by_name.get(n.as_str()).map(|i| i.version.clone()),
                    arch: p.arch.clone(),
                    to: p.version.clone(),
                    reasons,
                    file: p.file.clone().unwrap_or_default(),
                    sha256: p.sha256.clone(),
                    stage: stages.get(&n).copied().unwrap_or(0),
                    package: n,
                })
                .collect();
            return Ok(Plan {
                kind: PackageKind::Deb,
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
    //! The refusals real repositories rarely show, on small hand-made inventories (the
    //! real cases are in tests/e2e/patch.rs).
    use super::*;
    use crate::plan::{Refusal, Request};

    fn inst(name: &str, version: &str, arch: &str, depends: &[&str]) -> Package {
        Package {
            arch: arch.into(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            ..Package::new(PackageKind::Deb, name, version)
        }
    }

    fn offer(name: &str, version: &str, arch: &str) -> RepoPackage {
        RepoPackage {
            kind: PackageKind::Deb,
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source_name: name.into(),
            source_version: version.into(),
            depends: Vec::new(),
            pre_depends: Vec::new(),
            provides: Vec::new(),
            conflicts: Vec::new(),
            breaks: Vec::new(),
            install_if: Vec::new(),
            file: Some(format!("{name}_{version}_{arch}.deb")),
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

    fn ask(name: &str) -> Request {
        Request {
            packages: vec![name.into()],
            ..Request::default()
        }
    }

    #[test]
    fn a_finding_for_a_package_that_is_not_installed_is_refused() {
        // Findings come from feeds matched against a stored inventory; one naming a
        // package the inventory lacks must refuse, not index past the installed set.
        let f = Finding {
            package: "ghost".into(),
            source: "ghost".into(),
            installed: "1.0".into(),
            of: std::sync::Arc::new(coldpatch_vuln::AdvisoryRef {
                advisory: "CVE-1".into(),
                aliases: Vec::new(),
                feed: "t".into(),
            }),
            severity: coldpatch_vuln::Severity::High,
            fixed: Some("1.1".into()),
            distro: "debian:11".into(),
        };
        let r = plan(
            "img",
            &[inst("libfoo", "2.0-1", "amd64", &[])],
            &[f],
            &repo(vec![offer("ghost", "1.1", "amd64")]),
            &Request {
                all_fixable: true,
                ..Request::default()
            },
        );
        assert!(
            matches!(&r, Err(Refusal::NotInstalled { package }) if package == "ghost"),
            "{r:?}"
        );
    }

    #[test]
    fn never_downgrades() {
        let r = plan(
            "img",
            &[inst("libfoo", "2.0-1", "amd64", &[])],
            &[],
            &repo(vec![offer("libfoo", "1.9-1", "amd64")]),
            &ask("libfoo"),
        );
        assert!(matches!(r, Err(Refusal::Downgrade { .. })), "{r:?}");
    }

    #[test]
    fn another_architecture_is_no_fix() {
        let r = plan(
            "img",
            &[inst("libfoo", "2.0-1", "amd64", &[])],
            &[],
            &repo(vec![offer("libfoo", "2.0-2", "arm64")]),
            &ask("libfoo"),
        );
        match r {
            Err(Refusal::NoFix { arch, has, .. }) => {
                assert_eq!(arch, "amd64");
                assert_eq!(has, "no version");
            }
            other => panic!("{other:?}"),
        }
        // "all" packages fit any architecture.
        let ok = plan(
            "img",
            &[inst("foo-data", "2.0-1", "all", &[])],
            &[],
            &repo(vec![offer("foo-data", "2.0-2", "all")]),
            &ask("foo-data"),
        )
        .expect("plan");
        assert_eq!(ok.steps[0].to, "2.0-2");
    }

    #[test]
    fn an_installed_dependent_the_upgrade_breaks_refuses_the_plan() {
        // app needs libfoo (<< 3); the repository's libfoo 3.0 would break it: refused,
        // naming app's relation. (The planner does not replace a dependent to make room,
        // as apt might.)
        let installed = [
            inst("libfoo", "2.0-1", "amd64", &[]),
            inst("app", "1.0-1", "amd64", &["libfoo (<< 3)"]),
        ];
        let r = plan(
            "img",
            &installed,
            &[],
            &repo(vec![offer("libfoo", "3.0-1", "amd64")]),
            &ask("libfoo"),
        );
        assert!(
            matches!(&r, Err(Refusal::Unsatisfied { package, .. }) if package == "app"),
            "{r:?}"
        );
    }

    #[test]
    fn breaks_refuse() {
        let mut new = offer("libfoo", "3.0-1", "amd64");
        new.breaks = vec!["app (<< 2)".into()];
        let r = plan(
            "img",
            &[
                inst("libfoo", "2.0-1", "amd64", &[]),
                inst("app", "1.0-1", "amd64", &[]),
            ],
            &[],
            &repo(vec![new]),
            &ask("libfoo"),
        );
        assert!(
            matches!(&r, Err(Refusal::Conflict { other, .. }) if other == "app 1.0-1"),
            "{r:?}"
        );
    }

    #[test]
    fn new_dependencies_come_from_the_repository() {
        let mut new = offer("libfoo", "3.0-1", "amd64");
        new.depends = vec!["libbar (>= 1.2) | libbaz".into()];
        let p = plan(
            "img",
            &[inst("libfoo", "2.0-1", "amd64", &[])],
            &[],
            &repo(vec![new, offer("libbar", "1.3-1", "amd64")]),
            &ask("libfoo"),
        )
        .expect("plan");
        let bar = p
            .steps
            .iter()
            .find(|s| s.package == "libbar")
            .expect("libbar");
        assert_eq!(bar.from, None);
        assert!(bar.reasons[0].starts_with("needed by libfoo"));
    }

    #[test]
    fn pre_depends_order_the_stages() {
        // e2fsprogs pre-depends on the exact new libext2fs2, which depends on libc6:
        // e2fsprogs must wait for a second dpkg run; a plain Depends does not delay.
        let mut lib = offer("libext2fs2", "1.46.2-2+deb11u1", "amd64");
        lib.depends = vec!["libc6".into()];
        let mut tool = offer("e2fsprogs", "1.46.2-2+deb11u1", "amd64");
        tool.pre_depends = vec!["libext2fs2 (= 1.46.2-2+deb11u1)".into()];
        let mut user = offer("logsave", "1.46.2-2+deb11u1", "amd64");
        user.depends = vec!["e2fsprogs".into()];
        let p = plan(
            "img",
            &[
                inst("libc6", "2.31-13", "amd64", &[]),
                inst("libext2fs2", "1.46.2-2", "amd64", &[]),
                inst("e2fsprogs", "1.46.2-2", "amd64", &[]),
                inst("logsave", "1.46.2-2", "amd64", &[]),
            ],
            &[],
            &repo(vec![lib, tool, user]),
            &Request {
                packages: vec!["libext2fs2".into(), "e2fsprogs".into(), "logsave".into()],
                ..Request::default()
            },
        )
        .expect("plan");
        let stage = |n: &str| p.steps.iter().find(|s| s.package == n).map(|s| s.stage);
        assert_eq!(stage("libext2fs2"), Some(0));
        assert_eq!(stage("e2fsprogs"), Some(1));
        assert_eq!(stage("logsave"), Some(0));
    }
}
