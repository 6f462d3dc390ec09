//! `coldpatch patch apply|files|rollback|flatten` on the real debian-11-old image with
//! the real bullseye-security packages, in a real libguestfs appliance (TCG). Each test
//! pays at least one appliance launch (20–60 s).
//!
//! What is checked is read back, never taken from the patcher's word: the image file's
//! SHA-256, the re-collected inventory against the repository's updates.tsv oracle, the
//! scan, the stored runs and versions, and qemu-img's view of the files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::util::image_dir;
use crate::{coldpatch, json, stderr, stdout};

fn sha256(p: &Path) -> String {
    coldpatch_disk::hash::sha256_file(p).expect("read image")
}

/// The image (collected, packages only), the sample feeds, the repository and its
/// oracle of newest versions (shared with the planning tests).
fn setup(data: &Path) -> (String, String, BTreeMap<String, String>) {
    let (img, repo, newest) = crate::patch::setup(data);
    (img, repo.to_str().expect("utf8").to_string(), newest)
}

/// `coldpatch patch apply IMAGE --repo REPO ARGS…`
fn apply(d: &Path, img: &str, repo: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["patch", "apply", img, "--repo", repo];
    all.extend_from_slice(args);
    coldpatch(d, &all)
}

fn versions_of(data: &Path, img: &str, all: bool) -> BTreeMap<(u64, String), String> {
    let mut args = vec!["packages", "--image", img, "--json"];
    if all {
        args.push("--all-versions");
    }
    let out = coldpatch(data, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| {
            (
                (
                    h["version"].as_u64().expect("version"),
                    h["package"]["name"].as_str().expect("name").to_string(),
                ),
                h["package"]["version"].as_str().expect("v").to_string(),
            )
        })
        .collect()
}

fn findings(data: &Path) -> usize {
    let out = coldpatch(data, &["scan", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["findings"].as_array().map_or(0, Vec::len))
        .sum()
}

fn backing_of(file: &Path) -> Option<String> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(file)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["backing-filename"].as_str().map(str::to_string)
}

#[test]
fn apply_verifies_commits_and_rolls_back_without_touching_the_original() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let (img, repo, newest) = setup(d);
    let original = sha256(Path::new(&img));
    let before = versions_of(d, &img, false);
    assert!(
        findings(d) > 0,
        "the sample feeds find the image's old packages"
    );

    let plan = json(&crate::patch::patch_plan(
        d,
        &img,
        &repo,
        &["--all-fixable", "--json"],
    ));
    let planned = crate::patch::planned(&plan);
    assert!(!planned.is_empty());

    let out = apply(d, &img, &repo, &["--all-fixable", "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["run"]["state"], "succeeded");
    assert_eq!(report["images"][0]["outcome"]["outcome"], "committed");
    assert_eq!(report["images"][0]["outcome"]["version"], 1);
    let run_id = report["run"]["id"].as_str().expect("id").to_string();

    // The original file is bit-identical; the new version is an overlay on it.
    assert_eq!(sha256(Path::new(&img)), original);
    let show = json(&coldpatch(d, &["show", &img, "--json"]));
    assert_eq!(show["image"]["current_version"], 1);
    let v1 = show["image"]["versions"][1]["file"]
        .as_str()
        .expect("file")
        .to_string();
    assert_eq!(show["image"]["versions"][1]["parent"], 0);
    assert_eq!(backing_of(Path::new(&v1)).as_deref(), Some(img.as_str()));

    // The re-collected inventory: each planned package at the repository's newest
    // version (updates.tsv, from apt itself), everything else as before.
    let after = versions_of(d, &img, false);
    for ((_, name), v) in &before {
        let now = &after[&(1, name.clone())];
        match planned.get(name) {
            Some(to) => {
                assert_eq!(now, to, "{name}");
                assert_eq!(Some(to), newest.get(name), "{name}: the oracle's newest");
            }
            None => assert_eq!(now, v, "{name} was not planned and must not change"),
        }
    }
    assert_eq!(findings(d), 0, "every fixable finding is gone");
    // Asked again: nothing to do, which is not a failure, and no version is made.
    let again = apply(d, &img, &repo, &["--all-fixable", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let again = json(&again);
    assert_eq!(
        again["images"][0]["outcome"]["outcome"], "unchanged",
        "{again}"
    );
    assert_eq!(again["run"]["state"], "succeeded");
    // Both versions stay queryable.
    let all = versions_of(d, &img, true);
    assert_eq!(all.len(), before.len() * 2);

    // The run's trail: planned … fsck … verified, committed, each carrying the run id.
    let run = json(&coldpatch(d, &["run", &run_id, "--json"]));
    let kinds: Vec<&str> = run["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            assert_eq!(e["run"], run_id.as_str());
            e["kind"].as_str().expect("kind")
        })
        .collect();
    for k in [
        "planned",
        "overlay",
        "appliance",
        "uploaded",
        "installed",
        "fsck",
        "verified",
        "committed",
        "finished",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let log = run["images"][0]["log"].as_str().expect("log");
    assert!(
        log.contains("Setting up libssl1.1:amd64 (1.1.1w-0+deb11u8)"),
        "{log}"
    );
    assert!(!run["images"][0]["before"].as_array().expect("b").is_empty());
    assert!(run["images"][0]["after"].as_array().expect("a").is_empty());
    let out = coldpatch(d, &["runs"]);
    assert!(stdout(&out).contains(&run_id), "{}", stdout(&out));

    // Configuration files go in through the same path, as version 2: one new, one
    // replacing a file the image has (its mode and owner are kept).
    let conf = d.join("coldpatch-test.conf");
    std::fs::write(&conf, "PermitRootLogin no\n").expect("write");
    let motd = d.join("motd");
    std::fs::write(&motd, "Patched offline by coldpatch\n").expect("write");
    let puts = [
        format!("{}:/etc/default/coldpatch-test", conf.display()),
        format!("{}:/etc/motd", motd.display()),
    ];
    let out = coldpatch(
        d,
        &[
            "patch", "files", &img, "--put", &puts[0], "--put", &puts[1], "--json",
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for (guest, src) in [("/etc/default/coldpatch-test", &conf), ("/etc/motd", &motd)] {
        let out = coldpatch(d, &["files", "--image", &img, "--path", guest, "--json"]);
        let hits = json(&out);
        assert_eq!(hits[0]["version"], 2, "{guest}");
        assert_eq!(
            hits[0]["file"]["sha256"].as_str(),
            Some(sha256(src).as_str()),
            "{guest}"
        );
        assert_eq!(hits[0]["file"]["mode"].as_u64(), Some(0o644), "{guest}");
        assert_eq!(hits[0]["file"]["uid"].as_u64(), Some(0), "{guest}");
    }
    // A path that leaves the guest's plain directories is refused before any appliance.
    let out = coldpatch(
        d,
        &[
            "patch",
            "files",
            &img,
            "--put",
            &format!("{}:/etc/../x", conf.display()),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("absolute and plain"),
        "{}",
        stderr(&out)
    );

    // Flatten: a standalone file with the current version's content.
    let flat = d.join("flat.qcow2");
    let out = coldpatch(
        d,
        &["patch", "flatten", &img, "-o", flat.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(backing_of(&flat), None);
    let other = tempfile::tempdir().expect("tempdir");
    let out = coldpatch(other.path(), &["collect", flat.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let flat_pkgs: BTreeMap<String, String> =
        versions_of(other.path(), flat.to_str().expect("utf8"), false)
            .into_iter()
            .map(|((_, n), v)| (n, v))
            .collect();
    let cur: BTreeMap<String, String> = versions_of(d, &img, false)
        .into_iter()
        .map(|((_, n), v)| (n, v))
        .collect();
    assert_eq!(flat_pkgs, cur);

    // Rollback twice: back to the unpatched original, findings back too.
    for want in [1, 0] {
        let out = coldpatch(d, &["patch", "rollback", &img]);
        assert!(out.status.success(), "{}", stderr(&out));
        let show = json(&coldpatch(d, &["show", &img, "--json"]));
        assert_eq!(show["image"]["current_version"], want);
    }
    assert_eq!(versions_of(d, &img, false), before);
    assert!(findings(d) > 0);
    let out = coldpatch(d, &["patch", "rollback", &img]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no earlier version"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha256(Path::new(&img)), original);
}

/// The state a killed run must leave: the original bit-identical, no new version, and
/// the run not shown as succeeded.
#[cfg(feature = "fault-injection")]
fn assert_untouched(d: &Path, img: &str, original: &str) {
    assert_eq!(sha256(Path::new(img)), original);
    let show = json(&coldpatch(d, &["show", img, "--json"]));
    assert_eq!(show["image"]["current_version"], 0);
    assert!(show["image"]["versions"].is_null(), "{}", show["image"]);
    let runs = json(&coldpatch(d, &["runs", "--json"]));
    assert_eq!(runs[0]["state"], "interrupted", "{runs}");
}

/// Needs the binary built with fault injection (`./run test` turns it on).
#[cfg(feature = "fault-injection")]
#[test]
fn killed_runs_leave_no_trace_and_the_next_run_succeeds() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let (img, repo, _) = setup(d);
    let original = sha256(Path::new(&img));
    let apply = |fault: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_coldpatch"));
        c.args([
            "patch",
            "apply",
            &img,
            "--repo",
            &repo,
            "--cve",
            "CVE-2025-69418",
            "--json",
        ])
        .env("COLDPATCH_DATA_DIR", d);
        if let Some(f) = fault {
            c.env("COLDPATCH_FAULT", f);
        }
        c.output().expect("run coldpatch")
    };
    let mut dead = Vec::new();
    for point in ["upload", "dpkg", "commit"] {
        let out = apply(Some(point));
        assert!(!out.status.success(), "{point}: the process must die");
        assert!(
            stderr(&out).contains("fault injection"),
            "{point}: {}",
            stderr(&out)
        );
        assert_untouched(d, &img, &original);
        let runs = json(&coldpatch(d, &["runs", "--json"]));
        dead.push(runs[0]["id"].as_str().expect("id").to_string());
        // What the killed process left: its overlay file (swept by the next run).
        let ri = json(&coldpatch(d, &["run", &dead[dead.len() - 1], "--json"]));
        let overlay = ri["images"][0]["overlay"].as_str().expect("overlay");
        assert!(Path::new(overlay).exists(), "{point}: {overlay}");
    }

    let out = apply(None);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["images"][0]["outcome"]["version"], 1);
    assert_eq!(sha256(Path::new(&img)), original);
    let show = json(&coldpatch(d, &["show", &img, "--json"]));
    let kept = show["image"]["versions"][1]["file"].as_str().expect("file");
    // Only the committed overlay is left in the versions directory.
    let dir = Path::new(kept).parent().expect("dir");
    let files: Vec<String> = std::fs::read_dir(dir)
        .expect("versions dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    assert_eq!(files, vec![kept.to_string()]);
    for id in &dead {
        let r = json(&coldpatch(d, &["run", id, "--json"]));
        assert_eq!(r["run"]["state"], "interrupted");
        assert_eq!(r["images"][0]["outcome"]["outcome"], "discarded");
    }
    let pkgs = versions_of(d, &img, false);
    assert_eq!(pkgs[&(1, "libssl1.1".to_string())], "1.1.1w-0+deb11u8");
}

#[test]
fn a_run_on_an_image_being_patched_is_refused() {
    // The image lock is what keeps two runs apart inside one process (the server's
    // workers) and across processes; here it is held as a run would hold it, and a run
    // through the library is refused before anything is made.
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let (img, repo, _) = setup(d);
    let catalog = coldpatch_catalog::Catalog::open(d).expect("catalog");
    let _held = coldpatch_patcher::lock::ImageLock::acquire(catalog.state(), &img, "other-run")
        .expect("lock");
    let req = coldpatch_patcher::Request {
        all_fixable: true,
        ..Default::default()
    };
    let report = coldpatch_patcher::execute(
        &catalog,
        std::slice::from_ref(&img),
        &coldpatch_patcher::Ask::Packages {
            req: &req,
            repo_root: Path::new(&repo),
            replay: true,
        },
        1,
        coldpatch_patcher::Control::default(),
        &mut |_| {},
    )
    .expect("run");
    match &report.images[0].outcome {
        coldpatch_catalog::Outcome::Failed { reason } => {
            assert!(
                reason.contains("being patched by run other-run"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(catalog.image(&img).expect("image").current_version, 0);
    // A repository that does not exist is a bad request: refused before a run starts.
    let runs = catalog.runs().expect("runs").len();
    let bad = coldpatch_patcher::execute(
        &catalog,
        std::slice::from_ref(&img),
        &coldpatch_patcher::Ask::Packages {
            req: &req,
            repo_root: &d.join("no-such-repo"),
            replay: true,
        },
        1,
        coldpatch_patcher::Control::default(),
        &mut |_| {},
    );
    assert!(bad.is_err());
    assert_eq!(catalog.runs().expect("runs").len(), runs);
    let made = d
        .join("versions/1")
        .read_dir()
        .is_ok_and(|mut r| r.next().is_some());
    assert!(!made, "no overlay for a refused run");
    drop(catalog);
    // And a second process meets the catalog held by the first.
    let _c = coldpatch_catalog::Catalog::open(d).expect("catalog");
    let out = apply(d, &img, &repo, &["--all-fixable"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another coldpatch process"),
        "{}",
        stderr(&out)
    );
}

/// A run that refused an image: exit 1, the reason in its table, and the image still
/// at version 0 with no version recorded.
fn assert_refused(d: &Path, img: &str, out: &std::process::Output, says: &str) {
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(out).contains(says), "{}", stdout(out));
    let show = json(&coldpatch(d, &["show", img, "--json"]));
    assert_eq!(show["image"]["current_version"], 0);
    assert!(show["image"]["versions"].is_null());
}

/// A private copy of the raw debian-12-min image, collected (packages only).
fn raw_copy(d: &Path, name: &str) -> std::path::PathBuf {
    let img = d.join(name);
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(image_dir("debian-12-min").join("disk.raw"))
        .arg(&img)
        .status()
        .expect("cp");
    assert!(status.success());
    let out = coldpatch(d, &["collect", "--no-files", img.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    img
}

#[test]
fn a_raw_image_takes_an_overlay_and_one_a_vm_holds_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let img = raw_copy(d, "min.raw");
    let img_s = img.to_str().expect("utf8");
    let original = sha256(&img);
    let conf = d.join("issue");
    std::fs::write(&conf, "patched offline\n").expect("write");
    let put = format!("{}:/etc/issue", conf.display());

    // A real qemu serving the image read-write, as a running VM would: refused before
    // any overlay is made.
    let sock = d.join("nbd.sock");
    let mut nbd = Command::new("qemu-nbd")
        .args(["-f", "raw", "-k"])
        .arg(&sock)
        .arg(&img)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("qemu-nbd");
    let start = std::time::Instant::now();
    while !sock.exists() && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let busy = coldpatch(d, &["patch", "files", img_s, "--put", &put]);
    let _ = nbd.kill();
    let _ = nbd.wait();
    assert_refused(d, img_s, &busy, "in use by a running VM");
    assert!(
        std::fs::read_dir(d.join("versions/1")).map_or(0, Iterator::count) == 0,
        "no overlay was made"
    );

    // Free again: the overlay rests on the raw file, named as raw. With a second copy
    // and two appliances side by side, each reporting into the same run.
    let twin = raw_copy(d, "twin.raw");
    let twin_s = twin.to_str().expect("utf8");
    let out = coldpatch(
        d,
        &[
            "patch",
            "files",
            img_s,
            twin_s,
            "--put",
            &put,
            "--appliances",
            "2",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    for i in 0..2 {
        assert_eq!(report["images"][i]["outcome"]["version"], 1, "{report}");
    }
    let run = json(&coldpatch(
        d,
        &["run", report["run"]["id"].as_str().expect("id"), "--json"],
    ));
    let launches = run["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["kind"] == "appliance"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("started with 1 drive"))
        })
        .count();
    assert_eq!(launches, 2, "{}", run["events"]);
    let show = json(&coldpatch(d, &["show", img_s, "--json"]));
    let v1 = show["image"]["versions"][1]["file"].as_str().expect("file");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json", "-U", v1])
        .output()
        .expect("qemu-img");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(info["backing-filename"], img_s);
    assert_eq!(info["backing-filename-format"], "raw");
    let out = coldpatch(
        d,
        &["files", "--image", img_s, "--path", "/etc/issue", "--json"],
    );
    assert_eq!(
        json(&out)[0]["file"]["sha256"].as_str(),
        Some(sha256(&conf).as_str())
    );
    assert_eq!(sha256(&img), original);
}

#[test]
fn an_image_replaced_by_a_format_that_takes_no_overlay_is_refused() {
    // Collected as raw; then the file becomes a vmdk (which coldpatch neither reads nor
    // builds overlays on). The run refuses it with the conversion hint, before any
    // appliance, and stores nothing.
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let img = raw_copy(d, "min.img");
    let img_s = img.to_str().expect("utf8");
    let vmdk = d.join("min.vmdk");
    let status = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "vmdk", img_s])
        .arg(&vmdk)
        .status()
        .expect("qemu-img");
    assert!(status.success());
    std::fs::rename(&vmdk, &img).expect("rename");
    let conf = d.join("issue");
    std::fs::write(&conf, "x\n").expect("write");
    let put = format!("{}:/etc/issue", conf.display());
    let out = coldpatch(d, &["patch", "files", img_s, "--put", &put]);
    assert_refused(d, img_s, &out, "qemu-img convert -O qcow2");
}

#[test]
fn a_guest_whose_dpkg_lies_is_caught_by_the_native_read_back() {
    // A hostile image: its /usr/bin/dpkg claims success and installs nothing (put in with
    // coldpatch itself, as version 1). The run believes nothing the guest prints: the
    // overlay read back natively still has the old libssl1.1, so it is discarded and
    // version 1 stays current.
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let (img, repo, _) = setup(d);
    let fake = d.join("dpkg");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Setting up libssl1.1:amd64 (1.1.1w-0+deb11u8) ...'\nexit 0\n",
    )
    .expect("write");
    let put = format!("{}:/usr/bin/dpkg", fake.display());
    let out = coldpatch(d, &["patch", "files", &img, "--put", &put]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let out = apply(d, &img, &repo, &["--cve", "CVE-2025-69418", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["run"]["state"], "failed");
    let reason = report["images"][0]["outcome"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("libssl1.1 is at 1.1.1w-0+deb11u1 instead of 1.1.1w-0+deb11u8"),
        "{reason}"
    );
    let run = json(&coldpatch(
        d,
        &["run", report["run"]["id"].as_str().expect("id"), "--json"],
    ));
    let kinds: Vec<&str> = run["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"verify-failed"), "{kinds:?}");
    assert!(kinds.contains(&"discarded"), "{kinds:?}");
    assert!(!kinds.contains(&"committed"), "{kinds:?}");
    let show = json(&coldpatch(d, &["show", &img, "--json"]));
    assert_eq!(show["image"]["current_version"], 1);
    assert_eq!(show["image"]["versions"].as_array().map(Vec::len), Some(2));
    assert!(findings(d) > 0);
}
