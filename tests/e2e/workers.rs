//! `coldpatch worker` processes on one PostgreSQL catalog, as hosts would run them:
//! three workers sharing sixty collect jobs, one killed with SIGKILL while it holds a
//! job; a patch run split over two workers with disjoint roots, one killed while its
//! appliance installs packages, and a cancel reaching the worker that holds a job; the
//! database restarted under running workers while two servers' schedulers fire a
//! schedule. Real processes, real images, the real test server (or, for the restart, a
//! server of the test's own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::image_dir;
use crate::util::pg::{Kind, OwnServer};
use crate::{catalog_env, coldpatch, data_dir, json, stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// A child process stopped (SIGKILL) however the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("signal");
    }
}

/// Starts `coldpatch worker --name NAME` on the test's catalog; its log is `NAME.log`.
fn worker(d: &Path, name: &str, roots: &[&Path], lease: &str, env: &[(&str, &str)]) -> Proc {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coldpatch"));
    c.args(["worker", "--name", name, "--lease", lease, "--slots", "2"]);
    for r in roots {
        c.args(["--image-root", s(r)]);
    }
    // The real repository the patch runs name.
    c.arg("--repo-root")
        .arg(image_dir("repo-bullseye-security"));
    for (k, v) in env {
        c.env(k, v);
    }
    let log = std::fs::File::create(d.join(format!("{name}.log"))).expect("log");
    Proc(
        catalog_env(&mut c, d)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a worker"),
    )
}

fn log_of(d: &Path, name: &str) -> String {
    std::fs::read_to_string(d.join(format!("{name}.log"))).unwrap_or_default()
}

/// Hard links (or, across filesystems, copies) of `src` as `dir/NAME-i.qcow2`.
fn copies(src: &Path, dir: &Path, name: &str, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{name}-{i}.qcow2"));
            if std::fs::hard_link(src, &p).is_err() {
                std::fs::copy(src, &p).expect("copy");
            }
            p
        })
        .collect()
}

/// `collect --queue` on runs of `per` images each; returns the run ids.
fn queue_collects(d: &Path, images: &[PathBuf], per: usize) -> Vec<String> {
    images
        .chunks(per)
        .map(|chunk| {
            let mut args = vec!["collect", "--queue"];
            args.extend(chunk.iter().map(|p| s(p)));
            stdout(&ok(coldpatch(d, &args))).trim().to_string()
        })
        .collect()
}

/// `patch apply --queue` for CVE-2025-69418 on `images`; returns the run id.
fn queue_patch(d: &Path, repo: &str, images: &[PathBuf]) -> String {
    let mut args = vec![
        "patch",
        "apply",
        "--queue",
        "--repo",
        repo,
        "--cve",
        "CVE-2025-69418",
    ];
    args.extend(images.iter().map(|p| s(p)));
    stdout(&ok(coldpatch(d, &args))).trim().to_string()
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    out
}

fn run_of(d: &Path, id: &str) -> serde_json::Value {
    json(&ok(coldpatch(d, &["run", id, "--json"])))
}

fn ended(r: &serde_json::Value) -> bool {
    !matches!(r["run"]["state"].as_str(), Some("queued" | "running"))
}

/// Polls `f` every 200 ms until it answers, or panics with `what` after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The test catalog's database and server.
fn db_of(d: &Path) -> (crate::util::pg::Server, String) {
    let url = std::fs::read_to_string(d.join("catalog.url")).expect("url");
    let db = url
        .split('/')
        .nth(3)
        .and_then(|t| t.split('?').next())
        .expect("db")
        .to_string();
    (crate::util::pg::server().expect("server"), db)
}

#[test]
fn three_workers_share_sixty_collect_jobs_and_a_killed_one_loses_its_job() {
    let Some(data) = data_dir(Kind::Postgres) else {
        return;
    };
    let d = data.path();
    let fleet = d.join("fleet");
    let min = image_dir("debian-12-min").join("disk.qcow2");
    let images = copies(&min, &fleet.join("min"), "m", 60);
    let workers: Vec<Proc> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| worker(d, n, &[&fleet], "4s", &[]))
        .collect();
    // Twelve runs of five images each: sixty jobs.
    let runs = queue_collects(d, &images, 5);
    for id in &runs {
        let r = wait_for(Duration::from_secs(600), "the collect runs", || {
            Some(run_of(d, id)).filter(ended)
        });
        assert_eq!(r["run"]["state"], "succeeded", "{r}");
        assert!(r["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["attempts"] == 1 && j["outcome"] == "ok"));
    }
    let (srv, db) = db_of(d);
    let scans = srv.query(
        &db,
        "SELECT count(*)::text || ' ' || count(DISTINCT image)::text FROM scans",
    );
    assert_eq!(scans, ["60 60"], "every image collected exactly once");
    let by = srv.query(
        &db,
        "SELECT DISTINCT record->>'worker' FROM events WHERE record->>'kind' = 'collected' ORDER BY 1",
    );
    assert_eq!(by, ["w1", "w2", "w3"], "all three workers took work");

    // A slow image (27,000 files, hashed), claimed, and its worker killed mid-collect.
    let server_img = image_dir("debian-12-server").join("disk.qcow2");
    let slow = copies(&server_img, &fleet.join("server"), "s", 1);
    let id = stdout(&ok(coldpatch(d, &["collect", "--queue", s(&slow[0])])))
        .trim()
        .to_string();
    let holder = wait_for(Duration::from_secs(60), "the claim", || {
        run_of(d, &id)["jobs"][0]["worker"]
            .as_str()
            .map(str::to_string)
    });
    let victim = &workers[holder[1..].parse::<usize>().expect("wN") - 1];
    victim.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    let r = wait_for(Duration::from_secs(120), "the killed worker's job", || {
        Some(run_of(d, &id)).filter(ended)
    });
    let took = killed.elapsed();
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    let job = &r["jobs"][0];
    assert_eq!(job["attempts"], 2, "{job}");
    assert_ne!(job["worker"].as_str(), Some(holder.as_str()), "{job}");
    assert!(
        took < Duration::from_secs(4 + 30),
        "redone within the 4 s lease plus a collect: {took:?}"
    );
    let events = r["events"].as_array().expect("events");
    assert!(events
        .iter()
        .any(|e| e["kind"] == "requeued"
            && e["message"].as_str().unwrap_or_default().contains(&holder)));
    assert_eq!(
        srv.query(
            &db,
            &format!(
                "SELECT count(*)::text FROM scans s JOIN images i ON i.id = s.image \
                 WHERE i.path = '{}'",
                s(&slow[0])
            )
        ),
        ["1"],
        "no duplicate scan"
    );
    // The list of workers: the killed one lost, the others alive.
    let ws = json(&ok(coldpatch(d, &["workers", "--json"])));
    let status: BTreeMap<&str, &str> = ws
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().expect("name"),
                w["status"].as_str().expect("s"),
            )
        })
        .collect();
    assert_eq!(status[holder.as_str()], "lost", "{ws}");
    assert_eq!(
        status.values().filter(|s| **s == "alive").count(),
        2,
        "{ws}"
    );

    // An image under no worker's root waits for one, and says so.
    let outside = copies(&min, &d.join("elsewhere"), "o", 1);
    let id = stdout(&ok(coldpatch(d, &["collect", "--queue", s(&outside[0])])))
        .trim()
        .to_string();
    let r = run_of(d, &id);
    assert_eq!(r["jobs"][0]["waiting_for_root"], true, "{r}");
    let text = stdout(&ok(coldpatch(d, &["run", &id])));
    assert!(
        text.contains("waiting for a worker with a root over it"),
        "{text}"
    );
    // SIGTERM: a worker finishes what it holds, says it stopped, and is listed so.
    let alive: Vec<&Proc> = workers
        .iter()
        .enumerate()
        .filter(|(i, _)| format!("w{}", i + 1) != holder)
        .map(|(_, w)| w)
        .collect();
    alive[0].signal(nix::sys::signal::Signal::SIGTERM);
    let name = wait_for(Duration::from_secs(30), "a stopped worker", || {
        let ws = json(&ok(coldpatch(d, &["workers", "--json"])));
        ws.as_array()
            .expect("workers")
            .iter()
            .find(|w| w["status"] == "stopped")
            .map(|w| w["name"].as_str().expect("name").to_string())
    });
    assert!(
        log_of(d, &name).contains("stopped after"),
        "{}",
        log_of(d, &name)
    );
}

#[test]
fn a_patch_run_split_over_two_workers_survives_one_killed_while_installing() {
    let Some(data) = data_dir(Kind::Postgres) else {
        return;
    };
    let d = data.path();
    let (original, repo, _) = crate::patch::setup(d);
    let original = Path::new(&original);
    let (a, b) = (d.join("fleet/a"), d.join("fleet/b"));
    let mut images = copies(original, &a, "a", 2);
    images.extend(copies(original, &b, "b", 2));
    let before: Vec<String> = images.iter().map(|p| sha256(p)).collect();
    let mut args = vec!["collect", "--no-files"];
    args.extend(images.iter().map(|p| s(p)));
    ok(coldpatch(d, &args));
    let repo = s(&repo).to_string();
    let wa = worker(d, "wa", &[&a], "5s", &[]);
    let _wb = worker(d, "wb", &[&b], "5s", &[]);
    let id = queue_patch(d, &repo, &images);
    // wa's appliance installs its first package: it is killed there.
    let dead_overlays = wait_for(Duration::from_secs(900), "wa installing", || {
        let r = run_of(d, &id);
        let installing = r["events"]
            .as_array()?
            .iter()
            .any(|e| e["worker"] == "wa" && e["kind"] == "installed");
        installing.then(|| {
            r["images"]
                .as_array()
                .expect("images")
                .iter()
                .filter(|i| i["image"].as_str().is_some_and(|p| p.contains("/fleet/a/")))
                .filter_map(|i| i["overlay"].as_str())
                .filter(|o| o.contains(".1.qcow2") && Path::new(o).exists())
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
    });
    wa.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    drop(wa);
    assert!(!dead_overlays.is_empty(), "wa had overlays under way");
    let _wc = worker(d, "wc", &[&a], "5s", &[]);
    let reclaimed = wait_for(Duration::from_secs(60), "wc taking wa's jobs", || {
        let r = run_of(d, &id);
        r["events"]
            .as_array()?
            .iter()
            .any(|e| e["worker"] == "wc" && e["kind"] == "claimed")
            .then(Instant::now)
    });
    assert!(
        reclaimed - killed < Duration::from_secs(5 + 10),
        "taken again within the 5 s lease and a margin: {:?}",
        reclaimed - killed
    );
    let r = wait_for(Duration::from_secs(1500), "the patch run", || {
        Some(run_of(d, &id)).filter(ended)
    });
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    for j in r["jobs"].as_array().expect("jobs") {
        let img = j["image"].as_str().expect("image");
        let (want_worker, want_attempts) = if img.contains("/fleet/a/") {
            ("wc", 2)
        } else {
            ("wb", 1)
        };
        assert_eq!(j["worker"], want_worker, "{j}");
        assert_eq!(j["attempts"], want_attempts, "{j}");
        assert_eq!(j["outcome"], "ok", "{j}");
    }
    for o in &dead_overlays {
        assert!(
            !o.exists(),
            "the dead attempt's overlay {} is gone",
            o.display()
        );
    }
    for (p, sha) in images.iter().zip(&before) {
        assert_eq!(&sha256(p), sha, "{} untouched", p.display());
        let show = json(&ok(coldpatch(d, &["show", s(p), "--json"])));
        assert_eq!(show["image"]["current_version"], 1, "{show}");
        let versions = show["image"]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 2, "one version made, once: {show}");
    }
    let swept = r["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "swept" && e["worker"] == "wc")
        .count();
    assert_eq!(swept, dead_overlays.len(), "{r}");

    // A cancel reaches the worker holding the job: a fresh copy, cancelled while its
    // appliance starts, stays at version 0, and its overlay goes.
    let fresh = copies(original, &b, "c", 1).remove(0);
    let sha = sha256(&fresh);
    ok(coldpatch(d, &["collect", "--no-files", s(&fresh)]));
    let id = queue_patch(d, &repo, std::slice::from_ref(&fresh));
    let overlay = wait_for(Duration::from_secs(120), "its overlay", || {
        let r = run_of(d, &id);
        r["events"].as_array()?.iter().find_map(|e| {
            (e["kind"] == "overlay").then(|| {
                let m = e["message"].as_str().unwrap_or_default();
                PathBuf::from(m.split(' ').next().unwrap_or_default())
            })
        })
    });
    let c = json(&ok(coldpatch(d, &["cancel", &id, "--json"])));
    assert_eq!(c["how"], "signalled", "{c}");
    let r = wait_for(Duration::from_secs(600), "the cancelled run", || {
        Some(run_of(d, &id)).filter(ended)
    });
    assert_eq!(r["run"]["state"], "cancelled", "{r}");
    assert_eq!(r["jobs"][0]["worker"], "wb", "{r}");
    assert_eq!(r["jobs"][0]["outcome"], "cancelled", "{r}");
    assert!(!overlay.exists(), "{} is gone", overlay.display());
    let show = json(&ok(coldpatch(d, &["show", s(&fresh), "--json"])));
    assert_eq!(show["image"]["current_version"], 0, "{show}");
    assert_eq!(sha256(&fresh), sha);
}

#[test]
fn workers_wait_out_a_database_restart_and_two_schedulers_fire_once() {
    if crate::util::pg::server().is_none() {
        return;
    }
    let own = OwnServer::start();
    let db = own.server.database();
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    std::fs::write(d.join("catalog.url"), own.server.url(&db)).expect("url");
    let fleet = d.join("fleet");
    let min = image_dir("debian-12-min").join("disk.qcow2");
    let images = copies(&min, &fleet, "m", 24);
    // A schedule firing every minute, made two minutes ago: its occasion is due when the
    // two servers start, and both step their schedulers at once.
    let at = coldpatch_catalog::Location::parse(&own.server.url(&db)).expect("url");
    let catalog = coldpatch_catalog::Catalog::connect(&at, None).expect("catalog");
    let now = coldpatch_catalog::clock::now();
    catalog
        .put_schedule(&coldpatch_catalog::Schedule {
            id: "every-minute".into(),
            name: "every minute".into(),
            cron: "* * * * *".into(),
            images: vec![s(&images[0]).to_string()],
            action: coldpatch_catalog::Action::Collect,
            enabled: true,
            created: now - 120,
            labels: None,
            last_fired: None,
            last_run: None,
        })
        .expect("schedule");
    drop(catalog);
    let servers: Vec<(Proc, String)> = (0..2)
        .map(|i| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_coldpatch"));
            c.args(["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
                .env("COLDPATCH_STATE_DIR", d.join(format!("serve{i}")));
            let log = std::fs::File::create(d.join(format!("serve{i}.log"))).expect("log");
            let p = Proc(
                catalog_env(&mut c, d)
                    .env("COLDPATCH_STATE_DIR", d.join(format!("serve{i}")))
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("serve"),
            );
            let addr = wait_for(Duration::from_secs(30), "the server", || {
                let log = std::fs::read_to_string(d.join(format!("serve{i}.log"))).ok()?;
                let at = log.split("API on http://").nth(1)?;
                Some(at.split('/').next()?.to_string())
            });
            (p, addr)
        })
        .collect();
    let w1 = worker(d, "w1", &[&fleet], "5s", &[]);
    let w2 = worker(d, "w2", &[&fleet], "5s", &[]);
    let runs = queue_collects(d, &images[1..], 4);
    wait_for(Duration::from_secs(120), "the first collect", || {
        let r = run_of(d, &runs[0]);
        r["events"]
            .as_array()?
            .iter()
            .any(|e| e["kind"] == "collected")
            .then_some(())
    });
    // Down for longer than a connection waits (10 s): every worker notices.
    own.restart(12);
    for id in &runs {
        let r = wait_for(Duration::from_secs(600), "the collect runs", || {
            Some(run_of(d, id)).filter(ended)
        });
        assert_eq!(r["run"]["state"], "succeeded", "{r}");
    }
    for name in ["w1", "w2"] {
        let log = log_of(d, name);
        let lost = log.matches("the catalog is not answering").count();
        let back = log.matches("the catalog answers again").count();
        assert!(
            lost == 1 && back == 1,
            "{name}: said so once each way:\n{log}"
        );
    }
    // The queued images (the schedule's own image aside): nothing lost, nothing twice.
    assert_eq!(
        own.server.query(
            &db,
            &format!(
                "SELECT count(*)::text || ' ' || count(DISTINCT s.image)::text FROM scans s \
                 JOIN images i ON i.id = s.image WHERE i.path <> '{}'",
                s(&images[0])
            )
        ),
        ["23 23"],
        "nothing lost, nothing twice"
    );
    // The schedule: one run per occasion, whichever server's tick came first. The
    // servers stepped at once as they started; another 20 s gives each a tick more.
    let runs_of_schedule = || {
        own.server.query(
            &db,
            "SELECT id FROM runs WHERE record ? 'schedule' ORDER BY id",
        )
    };
    assert!(!runs_of_schedule().is_empty(), "the due occasion fired");
    std::thread::sleep(Duration::from_secs(20));
    let ids = runs_of_schedule();
    let minutes: BTreeSet<&str> = ids.iter().map(|i| &i[..13]).collect();
    assert_eq!(minutes.len(), ids.len(), "one run per occasion: {ids:?}");
    drop((w1, w2, servers));
}

#[test]
fn on_an_embedded_catalog_workers_and_queued_runs_are_refused() {
    let data = data_dir(Kind::Sled).expect("sled");
    let d = data.path();
    for args in [
        &["worker", "--name", "w"][..],
        &["workers"][..],
        &["collect", "--queue", "/nowhere/x.qcow2"][..],
    ] {
        let out = coldpatch(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("PostgreSQL catalog"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
