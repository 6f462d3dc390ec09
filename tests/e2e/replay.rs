//! Replay on real copies of debian-11-old patched with the real bullseye-security update:
//! copies that differ only in host-specific files take the reference's change set and
//! verify; a copy whose pam conffile `/etc/security/namespace.init` (one the update
//! changes) was edited locally is patched by dpkg, which keeps the edit; a copy that lacks
//! one of the planned packages gets a plan of its own. A run killed while replaying
//! leaves no version and the next run finishes the job.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{coldpatch, json, ok, s, stderr};

fn sha256(bytes: &[u8]) -> String {
    coldpatch_disk::hash::sha256_bytes(bytes)
}

fn sha256_file(p: &Path) -> String {
    coldpatch_disk::hash::sha256_file(p).expect("read image")
}

/// Runs a guestfish script (one appliance) on `drives`, added writable in order.
fn guestfish(drives: &[&Path], script: &str) {
    let mut all = String::new();
    for d in drives {
        all.push_str(&format!("add {} format:qcow2\n", s(d)));
    }
    all.push_str("run\n");
    all.push_str(script);
    let mut child = Command::new("guestfish")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("guestfish");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), all.as_bytes())
        .expect("script");
    let out = child.wait_with_output().expect("guestfish");
    assert!(out.status.success(), "guestfish: {}", stderr(&out));
}

/// A guest file's SHA-256 in an image's current version, from the catalog.
fn hash_in(d: &Path, img: &Path, guest: &str) -> Option<String> {
    let hits = json(&ok(coldpatch(
        d,
        &["files", "--image", s(img), "--path", guest, "--json"],
    )));
    hits[0]["file"]["sha256"].as_str().map(str::to_string)
}

/// What `diff A@0 A@1 --times` says changed, by path, as the after-state less its ctime:
/// leaving out what no copy can take from another, a file rewritten by dpkg with the same
/// content and time (only its ctime is new) and a directory whose size or times changed.
fn changed(d: &Path, img: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let v = json(&ok(coldpatch(
        d,
        &[
            "diff",
            &format!("{}@0", s(img)),
            &format!("{}@1", s(img)),
            "--times",
            "--json",
        ],
    )));
    v["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| {
            let dir = f["to"]["type"] == "dir";
            let kept =
                |x: &serde_json::Value| x == "ctime" || (dir && (x == "size" || x == "mtime"));
            f["change"] != "changed" || !f["fields"].as_array().expect("fields").iter().all(kept)
        })
        .map(|f| {
            let mut to = f["to"].clone();
            if let Some(o) = to.as_object_mut() {
                o.remove("ctime");
            }
            (f["path"].as_str().expect("path").to_string(), to)
        })
        .collect()
}

/// The package `odd` goes without: libss2 is planned (e2fsprogs' source), and only
/// e2fsprogs depends on it.
const DROPPED: &str = "libss2";
const CONFFILE: &str = "/etc/security/namespace.init";

#[test]
fn copies_that_differ_in_host_files_are_replayed_and_the_others_patched_by_dpkg() {
    let data = crate::data_dir(coldpatch_testkit::pg::Kind::Sled).expect("sled");
    let d = data.path();
    let (cached, repo, _) = crate::patch::setup(d);
    let repo = s(&repo).to_string();
    let src = d.join("src");
    std::fs::create_dir_all(&src).expect("src");
    let names = ["reference", "host", "conf", "odd"];
    let imgs: Vec<std::path::PathBuf> = names
        .iter()
        .map(|n| src.join(format!("{n}.qcow2")))
        .collect();
    for i in &imgs {
        std::fs::copy(&cached, i).expect("copy");
    }
    let [reference, host, conf, odd] = [&imgs[0], &imgs[1], &imgs[2], &imgs[3]];
    // debian-11-old's root is the logical partition 5 (images/lib.sh).
    guestfish(
        &[host, conf, odd],
        &format!(
            "mount /dev/sda5 /\n\
             write /etc/hostname \"replayed-host\\n\"\n\
             write /etc/machine-id \"0123456789abcdef0123456789abcdef\\n\"\n\
             mkdir-p /etc/ssh\n\
             write /etc/ssh/ssh_host_ed25519_key \"a host key of its own\\n\"\n\
             umount-all\n\
             mount /dev/sdb5 /\n\
             write-append {CONFFILE} \"# edited on this host\\n\"\n\
             umount-all\n\
             mount /dev/sdc5 /\n\
             sh \"sed -i '/^Package: {DROPPED}$/,/^$/d' /var/lib/dpkg/status\"\n\
             umount-all\n"
        ),
    );
    let originals: Vec<String> = imgs.iter().map(|i| sha256_file(i)).collect();
    let all: Vec<&str> = imgs.iter().map(|i| s(i)).collect();
    let mut collect = vec!["collect"];
    collect.extend_from_slice(&all);
    ok(coldpatch(d, &collect));
    let edited = hash_in(d, conf, CONFFILE).expect("conffile");
    assert_ne!(hash_in(d, reference, CONFFILE), Some(edited.clone()));
    let odd_plan = json(&ok(coldpatch(
        d,
        &[
            "patch",
            "plan",
            s(odd),
            "--repo",
            &repo,
            "--all-fixable",
            "--json",
        ],
    )));
    let apply = |images: &[&str]| {
        let mut args = vec!["patch", "apply"];
        args.extend_from_slice(images);
        args.extend_from_slice(&["--repo", &repo, "--all-fixable", "--json"]);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };

    // Killed as the replays start (the reference patched and read, nothing replayed
    // yet): no version, originals untouched.
    let args = apply(&all[..2]);
    let out = crate::catalog_env(Command::new(env!("CARGO_BIN_EXE_coldpatch")).args(&args), d)
        .env("COLDPATCH_FAULT", "replay")
        .output()
        .expect("run");
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("fault injection"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reference: its change set"),
        "{}",
        stderr(&out)
    );
    for (i, img) in imgs.iter().enumerate() {
        assert_eq!(sha256_file(img), originals[i], "{}", img.display());
        let show = json(&ok(coldpatch(d, &["show", s(img), "--json"])));
        assert_eq!(show["versions"].as_array().map(Vec::len), Some(1), "{show}");
    }

    // The whole run: the dead run's overlays are swept, one reference is patched by
    // dpkg, the host copy replayed, the other two patched by dpkg.
    let args = apply(&all);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = json(&ok(coldpatch(d, &args)));
    for i in 0..4 {
        assert_eq!(report["images"][i]["outcome"]["version"], 1, "{report}");
    }
    let run = json(&ok(coldpatch(
        d,
        &["run", report["run"]["id"].as_str().expect("id"), "--json"],
    )));
    let events = run["events"].as_array().expect("events");
    let of = |img: &Path, kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["image"] == s(img) && e["kind"] == kind)
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for img in &imgs[..2] {
        assert_eq!(
            of(img, "swept").len(),
            1,
            "{}: {}",
            img.display(),
            run["events"]
        );
    }
    let r = of(reference, "replay");
    assert!(
        r.len() == 1 && r[0].starts_with("reference: its change set, read natively"),
        "{r:?}"
    );
    let h = of(host, "replay");
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(
        h[0].starts_with(&format!("replayed from {}:", s(reference))),
        "{h:?}"
    );
    assert!(
        of(host, "verified").iter().any(|m| m.contains(&format!(
            "replayed from {} as the reference has them",
            s(reference)
        ))),
        "{}",
        run["events"]
    );
    assert!(of(host, "dpkg").is_empty(), "dpkg ran on the replayed copy");
    assert!(!of(reference, "dpkg").is_empty());
    // The edited conffile is in the change set: dpkg patches that copy and keeps the edit
    // (--force-confold), leaving the packaged version beside it.
    let c = of(conf, "replay");
    assert!(
        c.len() == 1
            && c[0].starts_with(&format!(
                "not replayed from {}: {CONFFILE} differs",
                s(reference)
            )),
        "{c:?}"
    );
    assert!(!of(conf, "dpkg").is_empty());
    assert_eq!(hash_in(d, conf, CONFFILE), Some(edited));
    let packaged = hash_in(d, reference, CONFFILE).expect("reference conffile");
    assert_eq!(
        hash_in(d, conf, &format!("{CONFFILE}.dpkg-dist")),
        Some(packaged.clone())
    );
    assert_eq!(hash_in(d, host, CONFFILE), Some(packaged));
    // The copy without libss2 has a plan of its own (libss2 comes back as a new package
    // e2fsprogs needs) and is not replayed.
    assert!(of(odd, "plan-shared").is_empty(), "{}", run["events"]);
    assert!(of(odd, "replay").is_empty(), "{}", run["events"]);
    assert!(!of(odd, "dpkg").is_empty());
    assert_eq!(of(host, "plan-shared").len(), 1, "{}", run["events"]);
    let back = odd_plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|st| st["package"] == DROPPED)
        .cloned();
    assert!(
        back.as_ref().is_some_and(|st| st["from"].is_null()),
        "{odd_plan}"
    );

    // What changed on the replayed copy is what dpkg changed on the reference; its
    // host-specific files are its own still.
    let (cr, ch) = (changed(d, reference), changed(d, host));
    assert!(
        cr.contains_key("/var/lib/dpkg/status") && cr.len() > 100,
        "{cr:?}"
    );
    let odd_ones: Vec<(&String, &serde_json::Value)> = cr
        .iter()
        .filter(|(p, to)| ch.get(*p) != Some(to))
        .chain(ch.iter().filter(|(p, _)| !cr.contains_key(*p)))
        .collect();
    assert!(
        odd_ones.is_empty(),
        "the replayed copy's diff is not the reference's: {odd_ones:?}"
    );
    assert_eq!(
        hash_in(d, host, "/etc/hostname"),
        Some(sha256(b"replayed-host\n"))
    );
    assert_ne!(
        hash_in(d, reference, "/etc/hostname"),
        hash_in(d, host, "/etc/hostname")
    );
    for (i, img) in imgs.iter().enumerate() {
        assert_eq!(
            sha256_file(img),
            originals[i],
            "{} was written",
            img.display()
        );
    }
    // Nothing of the killed run is left: every overlay is a version's file.
    let mut kept = BTreeSet::new();
    for img in &imgs {
        let show = json(&ok(coldpatch(d, &["show", s(img), "--json"])));
        for v in show["versions"].as_array().expect("versions") {
            kept.insert(v["file"].as_str().expect("file").to_string());
        }
    }
    for dir in std::fs::read_dir(d.join("versions")).expect("versions") {
        for f in std::fs::read_dir(dir.expect("dir").path()).expect("image dir") {
            let f = f.expect("entry").path();
            assert!(kept.contains(s(&f)), "{} is left over", f.display());
        }
    }
}
