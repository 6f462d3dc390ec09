//! One PostgreSQL catalog, many processes at once: eight collectors recording scans (one
//! of them on the image being patched), a patch run committing a version and rolling it
//! back, `serve` answering the API and the CLI querying, for a minute. Nothing refuses
//! for a lock, no write is lost, versions stay contiguous, every run finishes. And the
//! ways a shared catalog fails to open: each exits 2, names the catalog, never prints
//! the password, writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve::get;
use crate::util::image_dir;
use crate::{catalog_env, coldpatch, data_dir, json, stderr};
use coldpatch_testkit::pg::Kind;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn writers_a_patch_run_serve_and_queries_share_one_catalog() {
    let Some(data) = data_dir(Kind::Postgres) else {
        return;
    };
    let d = data.path();
    let (patched, repo, _) = crate::patch::setup(d);
    let min = image_dir("debian-12-min").join("disk.qcow2");
    let src = d.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let images: Vec<PathBuf> = (0..7)
        .map(|i| {
            let p = src.join(format!("w{i}.qcow2"));
            std::fs::copy(&min, &p).expect("copy");
            p
        })
        .collect();
    // The image being patched is a copy too, so the cache stays as it is.
    let target = src.join("patched.qcow2");
    std::fs::copy(&patched, &target).expect("copy");
    let mut first = vec!["collect", "--no-files", s(&target)];
    first.extend(images.iter().map(|p| s(p)));
    ok(coldpatch(d, &first));
    let secret = json(&ok(coldpatch(
        d,
        &[
            "token", "create", "--role", "viewer", "--name", "e2e", "--json",
        ],
    )))["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    let server = catalog_env(
        Command::new(env!("CARGO_BIN_EXE_coldpatch")).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
        ]),
        d,
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(d.join("serve.log")).expect("log"))
    .spawn()
    .expect("serve");
    // Stopped however the test ends, so a failing assertion leaves no server behind.
    let server = Stopped(server);
    let file = d.join("state/server.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(d.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    let addr = info["listen"].as_str().expect("listen").to_string();

    let stop = Instant::now() + Duration::from_secs(60);
    // Eight collectors: seven on their own image, one on the image being patched.
    let mut targets: Vec<PathBuf> = images.clone();
    targets.push(target.clone());
    let writers: Vec<_> = targets
        .iter()
        .cloned()
        .map(|img| {
            let d = d.to_path_buf();
            std::thread::spawn(move || {
                let mut done = 0usize;
                while Instant::now() < stop {
                    let out = coldpatch(&d, &["collect", "--no-files", "--rescan", s(&img)]);
                    assert!(out.status.success(), "{}: {}", img.display(), stderr(&out));
                    done += 1;
                }
                (img, done)
            })
        })
        .collect();
    let patcher = {
        let (d, target, repo) = (d.to_path_buf(), target.clone(), repo.clone());
        std::thread::spawn(move || {
            let apply = ok(coldpatch(
                &d,
                &[
                    "patch",
                    "apply",
                    s(&target),
                    "--repo",
                    s(&repo),
                    "--all-fixable",
                    "--json",
                ],
            ));
            let run = json(&apply)["run"]["id"].as_str().expect("id").to_string();
            ok(coldpatch(&d, &["patch", "rollback", s(&target)]));
            run
        })
    };
    // Meanwhile the API and the CLI answer, every time.
    let mut answers = 0;
    while Instant::now() < stop {
        let r = get(&addr, "/api/v1/images", Some(&secret));
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let out = ok(coldpatch(d, &["images", "--json"]));
        // The setup's image, the seven and the one being patched.
        assert_eq!(json(&out).as_array().map(Vec::len), Some(9));
        answers += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let collected: BTreeMap<PathBuf, usize> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let run = patcher.join().expect("patch run");
    assert!(answers > 10, "the API and CLI answered {answers} times");
    eprintln!(
        "shared catalog: {answers} API and CLI answers, collects per writer {:?}",
        collected.values().collect::<Vec<_>>()
    );

    // No lost write: every collect made a scan (plus the first one of each image and the
    // patch run's own), and the image being patched kept its versions whole.
    let imgs = json(&ok(coldpatch(d, &["images", "--json"])));
    for img in imgs.as_array().expect("images") {
        let path = PathBuf::from(img["image"]["path"].as_str().expect("path"));
        let shown = json(&ok(coldpatch(d, &["show", s(&path), "--json"])));
        let scans = shown["scans"].as_array().map_or(0, Vec::len);
        let Some(&mine) = collected.get(&path) else {
            continue; // the setup's own image, which nobody collects again
        };
        if path == target {
            // The setup's collect, the writer's, the committed version's.
            assert_eq!(scans, mine + 2, "{}", path.display());
            let numbers: Vec<u64> = shown["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .map(|v| v["number"].as_u64().expect("number"))
                .collect();
            assert_eq!(numbers, [0, 1], "contiguous versions");
            assert_eq!(shown["image"]["current_version"], 0, "rolled back");
        } else {
            // The setup's collect and the writer's.
            assert_eq!(scans, mine + 1, "{}", path.display());
        }
        assert!(mine >= 2, "{}: {mine} collects in a minute", path.display());
    }
    let runs = json(&ok(coldpatch(d, &["runs", "--json"])));
    for r in runs.as_array().expect("runs") {
        assert_ne!(r["state"], "running", "{r}");
    }
    let ran = json(&ok(coldpatch(d, &["run", &run, "--json"])));
    assert_eq!(ran["run"]["state"], "succeeded", "{ran}");

    drop(server);
}

/// A server process, sent SIGTERM and waited for when dropped.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

/// `catalog copy` of `data`'s embedded catalog into a new PostgreSQL database, and from
/// there into a new directory: each `reads` command (run with `--json`) answers the same
/// on all three. Skips without a test server.
pub(crate) fn copy_round_trip(data: &Path, reads: &[Vec<&str>]) {
    let Some(server) = coldpatch_testkit::pg::server() else {
        return;
    };
    let url = server.url(&server.database());
    let back = tempfile::tempdir().expect("tempdir");
    let answers = |cat: &str| -> Vec<String> {
        reads
            .iter()
            .map(|args| {
                let mut all = vec!["--catalog", cat];
                all.extend_from_slice(args);
                all.push("--json");
                let out = Command::new(env!("CARGO_BIN_EXE_coldpatch"))
                    .args(&all)
                    .env_remove("COLDPATCH_DATA_DIR")
                    .env_remove("COLDPATCH_CATALOG")
                    .output()
                    .expect("run");
                assert!(out.status.success(), "{args:?}: {}", stderr(&out));
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect()
    };
    let original = answers(s(data));
    let copy = |from: &str, to: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_coldpatch"))
            .args(["catalog", "copy", "--from", from, "--to", to, "--json"])
            .output()
            .expect("copy");
        assert!(out.status.success(), "{}", stderr(&out));
        json(&out)["copied"].clone()
    };
    let there = copy(s(data), &url);
    assert!(there["images"].as_u64() > Some(0), "{there}");
    assert!(there["events"].as_u64() > Some(0), "{there}");
    let on_pg = answers(&url);
    for (i, args) in reads.iter().enumerate() {
        assert_eq!(on_pg[i], original[i], "{args:?} on PostgreSQL");
    }
    let again = copy(&url, s(back.path()));
    assert_eq!(again, there, "the same records both ways");
    let on_sled = answers(s(back.path()));
    for (i, args) in reads.iter().enumerate() {
        assert_eq!(on_sled[i], original[i], "{args:?} back on sled");
    }
}

#[test]
fn a_catalog_that_cannot_be_opened_exits_2_naming_it_without_the_password() {
    let Some(server) = coldpatch_testkit::pg::server() else {
        return;
    };
    let run = |catalog: &str| {
        Command::new(env!("CARGO_BIN_EXE_coldpatch"))
            .args(["--catalog", catalog, "images"])
            .env_remove("COLDPATCH_DATA_DIR")
            .env_remove("PGPASSWORD")
            .output()
            .expect("run")
    };
    let db = server.database();
    let foreign = server.database();
    server.sql(&foreign, "CREATE TABLE invoices (id int)");
    for (catalog, says) in [
        (
            server.tcp_url(&db, "hunter2-wrong"),
            "password authentication failed".to_string(),
        ),
        (
            "postgres://coldpatch:hunter2-wrong@127.0.0.1:1/x".to_string(),
            "cannot connect to PostgreSQL catalog postgres://coldpatch@127.0.0.1:1/x".to_string(),
        ),
        (
            "postgres://coldpatch:hunter2-wrong@db:port/x".to_string(),
            "not a PostgreSQL URL".to_string(),
        ),
        (
            server.url(&foreign),
            "holds tables that are not a coldpatch catalog (invoices)".to_string(),
        ),
    ] {
        let out = run(&catalog);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{catalog}: {err}");
        assert!(err.contains(&says), "{catalog}: {err}");
        assert!(
            !err.contains("hunter2"),
            "the password is never printed: {err}"
        );
    }
    assert_eq!(
        server.query(
            &foreign,
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public'"
        ),
        ["invoices"],
        "nothing written"
    );
    // The right password opens it.
    let out = run(&server.tcp_url(&db, "coldpatch"));
    assert!(out.status.success(), "{}", stderr(&out));
}
