//! Versions travel: two versions of a private copy of the real debian-11-old (the real
//! bullseye-security updates, then a file put in), diffed from the catalog and against
//! the real packages' own file lists, exported for holders of version 1 (incremental), version 0
//! (chain), an unrelated image (full) and a golden image (against), imported at four
//! other sites, and proved equal to the source by qemu-img and by collecting the results.
//! Tampered deltas are refused and write nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{coldpatch, json, ok, on_both, s, stderr, stdout};

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::copy(from, to).expect("copy image");
}

fn listing(dir: &Path) -> BTreeSet<(String, u64)> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("meta").len(),
            )
        })
        .collect()
}

/// `coldpatch export IMAGE ARGS… --out OUT --json`: the manifest.
fn export(d: &Path, img: &Path, args: &[&str], out: &Path) -> serde_json::Value {
    let mut all = vec!["export", s(img)];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(out), "--json"]);
    json(&ok(coldpatch(d, &all)))
}

/// `coldpatch import-delta DIR --onto FILE ARGS…`
fn import(d: &Path, dir: &Path, onto: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["import-delta", s(dir), "--onto", s(onto)];
    all.extend_from_slice(args);
    coldpatch(d, &all)
}

/// `qemu-img compare`: the two files show the guest the same bytes.
fn same_guest_view(a: &Path, b: &Path) {
    let out = Command::new("qemu-img")
        .args(["compare", "-U", s(a), s(b)])
        .output()
        .expect("qemu-img compare");
    assert!(
        out.status.success(),
        "{} vs {}: {}{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The paths `coldpatch diff --json` reports, with their kind of change.
fn diff_paths(d: &Path, a: &str, b: &str, extra: &[&str]) -> (serde_json::Value, BTreeSet<String>) {
    let mut args = vec!["diff", a, b, "--json"];
    args.extend_from_slice(extra);
    let v = json(&ok(coldpatch(d, &args)));
    let paths = v["files"]
        .as_array()
        .expect("files compared")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    (v, paths)
}

/// The files (not directories and not conffiles) a real `.deb` unpacks, from `dpkg-deb
/// --contents` (`MODE OWNER SIZE DATE TIME ./PATH[ -> TARGET]`) less its `conffiles`
/// member: dpkg leaves a conffile whose packaged content did not change where it is.
fn deb_files(deb: &Path) -> BTreeSet<String> {
    let out = Command::new("dpkg-deb")
        .args(["--contents", s(deb)])
        .output()
        .expect("dpkg-deb");
    assert!(out.status.success(), "dpkg-deb {}", deb.display());
    // A package without conffiles has no such member: dpkg-deb then fails, and says so.
    let conf = Command::new("dpkg-deb")
        .args(["--info", s(deb), "conffiles"])
        .output()
        .expect("dpkg-deb");
    let conf = if conf.status.success() {
        conf.stdout
    } else {
        assert!(
            String::from_utf8_lossy(&conf.stderr).contains("no control component"),
            "dpkg-deb --info {}",
            deb.display()
        );
        Vec::new()
    };
    let conffiles: BTreeSet<String> = String::from_utf8_lossy(&conf)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .filter(|p| !conffiles.contains(p))
        .collect()
}

on_both! {
fn versions_diff_travel_as_deltas_and_prove_what_they_hold(d: &Path) {
    let (cached, repo, _) = crate::patch::setup(d);
    let repo = s(&repo).to_string();
    let src = d.join("src");
    let img = src.join("old.qcow2");
    let twin = src.join("twin.qcow2");
    copy(Path::new(&cached), &img);
    copy(Path::new(&cached), &twin);
    ok(coldpatch(d, &["collect", s(&img), s(&twin)]));
    let plan = json(&ok(coldpatch(
        d,
        &["patch", "plan", s(&img), "--repo", &repo, "--all-fixable", "--json"],
    )));
    let debs: Vec<PathBuf> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|st| Path::new(&repo).join(st["file"].as_str().expect("file")))
        .collect();
    assert_eq!(debs.len(), 11, "{plan}");

    // One run, two images with the same packages: the plan is made once. Without
    // replay, dpkg runs on both, side by side (replay.rs tests the other way).
    let out = ok(coldpatch(
        d,
        &[
            "patch",
            "apply",
            s(&img),
            s(&twin),
            "--repo",
            &repo,
            "--all-fixable",
            "--no-replay",
            "--json",
        ],
    ));
    let report = json(&out);
    for i in 0..2 {
        assert_eq!(report["images"][i]["outcome"]["version"], 1, "{report}");
    }
    let run = json(&ok(coldpatch(
        d,
        &["run", report["run"]["id"].as_str().expect("id"), "--json"],
    )));
    let shared: Vec<&serde_json::Value> = run["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "plan-shared")
        .collect();
    assert_eq!(shared.len(), 1, "{}", run["events"]);
    // One appliance with a CPU per image up to the host's, installing both side by side;
    // the eleven package files went into it once, and each stage's time is recorded.
    let said = |kind: &str, text: &str| {
        run["events"].as_array().expect("events").iter().any(|e| {
            e["kind"] == kind && e["message"].as_str().is_some_and(|m| m.contains(text))
        })
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let started = format!("started with 2 drive(s) and {cpus} CPU(s)");
    assert!(said("appliance", &started), "{started}: {}", run["events"]);
    assert!(said("upload", "11 package file(s), once for 2 image(s)"), "{}", run["events"]);
    assert!(
        !run["events"].as_array().expect("events").iter().any(|e| e["kind"] == "replay"),
        "{}",
        run["events"]
    );
    for stage in ["launch ", "mount ", "upload ", "dpkg stage 0", "fsck ", "verify ", "commit "] {
        assert!(said("timing", stage), "no timing of {stage}: {}", run["events"]);
    }
    assert_eq!(shared[0]["image"], s(&twin));
    assert!(shared[0]["message"]
        .as_str()
        .expect("msg")
        .contains(s(&img)));

    // Version 2: a file put in.
    let note = d.join("note");
    std::fs::write(&note, "patched offline by coldpatch\n").expect("note");
    ok(coldpatch(
        d,
        &[
            "patch",
            "files",
            s(&img),
            "--put",
            &format!("{}:/etc/coldpatch-note", s(&note)),
        ],
    ));
    let show = json(&ok(coldpatch(d, &["show", s(&img), "--json"])));
    let versions = show["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3);
    let file_of = |n: usize| PathBuf::from(versions[n]["file"].as_str().expect("file"));
    let checks: BTreeSet<&str> = versions
        .iter()
        .map(|v| v["check"].as_str().expect("check"))
        .collect();
    assert_eq!(checks.len(), 3, "each version has its own check value");

    // diff: v1 -> v2 is exactly the file put in; v0 -> v1 the eleven upgraded packages
    // and the files they changed.
    let img_at = |n: u32| format!("{}@{n}", s(&img));
    let (v12, paths12) = diff_paths(d, &img_at(1), &img_at(2), &[]);
    assert_eq!(v12["packages"], serde_json::json!([]));
    assert_eq!(paths12, BTreeSet::from(["/etc/coldpatch-note".to_string()]));
    assert_eq!(v12["files"][0]["change"], "added");
    let (v01, paths01) = diff_paths(d, &img_at(0), &img_at(1), &["--times"]);
    let pkgs = v01["packages"].as_array().expect("packages");
    assert_eq!(pkgs.len(), 11, "{pkgs:?}");
    assert!(pkgs.iter().all(|p| p["change"] == "changed"));
    assert!(paths01.contains("/usr/lib/x86_64-linux-gnu/libssl.so.1.1"));
    let (_, content01) = diff_paths(d, &img_at(0), &img_at(1), &[]);
    assert!(content01.len() < paths01.len(), "times add files");
    // dpkg replaces every file a package unpacks but an unchanged conffile (a new inode,
    // so a new ctime): with times, the diff holds each of those files of the update's
    // real .debs, as dpkg-deb lists them; /bin, /sbin and /lib are symlinks into /usr in
    // this merged-/usr image.
    // (The comparison with virt-diff's checksumming walk of both trees, which takes ten
    // minutes and more under TCG, is bench/diff.sh's.)
    for deb in &debs {
        let missing: Vec<String> = deb_files(deb)
            .into_iter()
            .filter(|p| !paths01.contains(p) && !paths01.contains(&format!("/usr{p}")))
            .collect();
        assert!(missing.is_empty(), "{}: not in the diff: {missing:?}", deb.display());
    }

    // Export: for a holder of v1 the v2 overlay alone; for a holder of v0 the chain of
    // both overlays, chosen over a flattened image because it is smaller.
    let inc = d.join("out/inc");
    let m_inc = export(d, &img, &["--for", "1"], &inc);
    assert_eq!(m_inc["strategy"], "incremental");
    let chain = d.join("out/chain");
    let m_chain = export(d, &img, &["--for", "0"], &chain);
    assert_eq!(m_chain["strategy"], "chain", "{m_chain}");
    let full = d.join("out/full");
    let m_full = export(d, &img, &["--for", &"0".repeat(64)], &full);
    assert_eq!(m_full["strategy"], "full");
    let size = |m: &serde_json::Value| -> u64 {
        m["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f["size"].as_u64().expect("size"))
            .sum()
    };
    let (inc_size, chain_size, full_size) = (size(&m_inc), size(&m_chain), size(&m_full));
    eprintln!(
        "delta sizes: incremental (v1 -> v2) {inc_size} bytes, chain (v0 -> v2) {chain_size} bytes, full {full_size} bytes"
    );
    assert!(inc_size * 20 < full_size, "{inc_size} vs {full_size}");
    assert!(chain_size < full_size);
    // Nothing to send to a holder of v2.
    let m_none = export(d, &img, &["--for", "2"], &d.join("out/none"));
    assert_eq!(m_none["strategy"], "none");
    assert_eq!(m_none["files"], serde_json::json!([]));

    // Site A holds v0 (a copy of the original): the chain makes v2.
    let site_a = d.join("site-a");
    copy(&file_of(0), &site_a.join("old.qcow2"));
    ok(import(d, &chain, &site_a.join("old.qcow2"), &[]));
    // Site B holds v1 (imported from v1's own delta), then takes the incremental one.
    let site_b = d.join("site-b");
    copy(&file_of(0), &site_b.join("old.qcow2"));
    let v1_for_0 = d.join("out/v1");
    export(d, &img, &["--version", "1", "--for", "0"], &v1_for_0);
    ok(import(d, &v1_for_0, &site_b.join("old.qcow2"), &[]));
    let b_v1 = site_b.join("old-v1.qcow2");
    same_guest_view(&b_v1, &file_of(1));
    let b_v2 = site_b.join("v2.qcow2");
    let out = ok(import(d, &inc, &b_v1, &["--out", s(&b_v2)]));
    assert!(stdout(&out).contains("holds version 2"), "{}", stdout(&out));
    // Site C holds nothing related: the full image.
    let site_c = d.join("site-c");
    copy(&file_of(0), &site_c.join("unrelated.qcow2"));
    ok(import(d, &full, &site_c.join("unrelated.qcow2"), &[]));
    // Site D holds a golden image (another image in the catalog, here the original
    // collected under its own name): an overlay against it.
    let golden = src.join("golden.qcow2");
    copy(&file_of(0), &golden);
    ok(coldpatch(d, &["collect", s(&golden)]));
    let against = d.join("out/against");
    let m_against = export(d, &img, &["--against", s(&golden)], &against);
    assert_eq!(m_against["strategy"], "against");
    assert!(size(&m_against) * 4 < full_size, "{m_against}");
    let site_d = d.join("site-d");
    copy(&golden, &site_d.join("golden.qcow2"));
    ok(import(d, &against, &site_d.join("golden.qcow2"), &[]));

    // Every result is v2: the same guest bytes as the source, the stamp read back when
    // collected, and the same inventory and file hashes (and times) in the catalog.
    for result in [
        site_a.join("old-v2.qcow2"),
        b_v2.clone(),
        site_c.join("old-v2.qcow2"),
        site_d.join("old-v2.qcow2"),
    ] {
        same_guest_view(&result, &file_of(2));
        let out = ok(coldpatch(d, &["collect", s(&result)]));
        assert!(
            stdout(&out).contains(&format!("stamped: holds version 2 of {}", s(&img))),
            "{}",
            stdout(&out)
        );
        let (v, paths) = diff_paths(d, s(&result), &img_at(2), &["--times"]);
        assert_eq!(v["packages"], serde_json::json!([]), "{}", result.display());
        assert!(paths.is_empty(), "{}: {paths:?}", result.display());
    }

    // Tampered deltas are refused before anything is written.
    let before = listing(&site_b);
    let refused = |dir: &Path, onto: &Path, says: &str| {
        let out = import(d, dir, onto, &[]);
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert_eq!(listing(&site_b), before, "nothing written");
    };
    let tamper = |name: &str| -> PathBuf {
        let t = d.join("out").join(name);
        std::fs::create_dir_all(&t).expect("mkdir");
        for e in std::fs::read_dir(&inc).expect("read") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), t.join(e.file_name())).expect("copy");
        }
        t
    };
    // One byte changed.
    let t1 = tamper("one-byte");
    let f = t1.join("v2.qcow2");
    let mut bytes = std::fs::read(&f).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&f, bytes).expect("write");
    refused(&t1, &b_v1, "v2.qcow2 has SHA-256");
    // A wrong check value in the manifest.
    let t2 = tamper("wrong-check");
    let mpath = t2.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).expect("read")).expect("json");
    m["files"][0]["check"] = serde_json::json!("ab".repeat(32));
    std::fs::write(&mpath, serde_json::to_vec(&m).expect("json")).expect("write");
    refused(&t2, &b_v1, "is not the one version 2 of");
    // The wrong base: a file holding v2 already, and the unstamped original.
    refused(&inc, &b_v2, "holds version 2");
    refused(&inc, &site_b.join("old.qcow2"), "carries no version stamp");

    // Shared content: the twin and the image share nearly everything. Each holds a few
    // files of its own (logs and caches its own dpkg run wrote); the image one more, the
    // note.
    let sh = json(&ok(coldpatch(d, &["shared", s(&img), s(&twin), "--json"])));
    assert!(sh["common_files"].as_u64().expect("n") > 5000, "{sh}");
    let private = |i: usize, what: &str| sh["images"][i][what].as_u64().expect("n");
    assert_eq!(
        private(0, "private_files"),
        private(1, "private_files") + 1,
        "{sh}"
    );
    assert!(
        private(0, "private_bytes") >= std::fs::metadata(&note).expect("note").len(),
        "{sh}"
    );
    assert_eq!(sh["groups"].as_array().expect("groups").len(), 1);
    assert_eq!(
        sh["base_saves"], sh["common_bytes"],
        "two images: a base saves one copy"
    );

    // A catalog with versions, runs, events and feeds survives a copy to PostgreSQL and
    // back: every read command answers the same on all three.
    if !d.join("catalog.url").exists() {
        let run = report["run"]["id"].as_str().expect("id").to_string();
        let at0 = img_at(0);
        let at2 = img_at(2);
        crate::shared::copy_round_trip(
            d,
            &[
                vec!["images"],
                vec!["show", s(&img)],
                vec!["packages", "--name", "libssl1.1", "--all-versions"],
                vec!["files", "--sha256", &sha256_of(&note)],
                vec!["files", "--path", "/etc/coldpatch-*", "--all-versions"],
                vec!["scan", "--all-versions"],
                vec!["runs"],
                vec!["run", &run],
                vec!["diff", &at0, &at2],
                vec!["feed", "list"],
            ],
        );
    }
}
}

fn sha256_of(p: &Path) -> String {
    coldpatch_disk::hash::sha256_file(p).expect("hash")
}
