//! The scheduler and the job queue on real images and a real catalog, driven one step
//! at a time ([`Jobs::claim`], [`Jobs::run_next`]), and across a restart.

use std::sync::Arc;

use coldpatch_catalog::{Action, Catalog, RunState, Schedule};
use coldpatch_jobs::{scheduler, JobSpec, Jobs, Queue, Roots};
use coldpatch_testkit::{both, catalog_on, catalog_with};

/// 2026-01-05 00:00:00 UTC, a Monday.
const T0: u64 = 1_767_571_200;
const DAY: u64 = 86_400;

fn nightly(images: Vec<String>) -> Schedule {
    Schedule {
        id: "s1".into(),
        name: "nightly collect".into(),
        cron: "0 3 * * *".into(),
        images,
        action: Action::Collect,
        enabled: true,
        created: T0,
        labels: None,
        last_fired: None,
        last_run: None,
    }
}

fn jobs(c: &Arc<Catalog>) -> Jobs {
    Jobs::new(c.clone(), 1, Roots::everywhere())
}

// The scheduler on either backend: what it stores and finds again is the catalog's.
both!(
    schedules_fire_once_per_occasion_and_catch_up_once_after_a_restart,
    |tc| {
        let (catalog, keys) = catalog_on(tc, &["debian-12-min"]);
        let c = Arc::new(catalog);
        c.put_schedule(&nightly(keys.clone())).expect("put");
        let j = jobs(&c);
        // Before the first 03:00: nothing.
        assert!(scheduler::step(&c, &j, T0 + 2 * 3600)
            .expect("step")
            .is_empty());
        // 03:00 passed: one run, then nothing more at the same time.
        let first = scheduler::step(&c, &j, T0 + 3 * 3600 + 10).expect("step");
        assert_eq!(first.len(), 1);
        assert!(scheduler::step(&c, &j, T0 + 3 * 3600 + 20)
            .expect("step")
            .is_empty());
        let s = c.schedule("s1").expect("schedule");
        assert_eq!(s.last_fired, Some(T0 + 3 * 3600));
        assert_eq!(s.last_run.as_deref(), Some(first[0].as_str()));
        let r = c.run(&first[0]).expect("run");
        assert_eq!(
            (r.state, r.schedule.as_deref()),
            (RunState::Queued, Some("s1"))
        );

        // The server stops with that run still queued and stays down for three days.
        drop(j);
        drop(c);
        let c = Arc::new(tc.open());
        let j = jobs(&c);
        assert_eq!(j.resume_queued().expect("resume"), 1);
        let later = T0 + 3 * DAY + 12 * 3600;
        let caught = scheduler::step(&c, &j, later).expect("step");
        assert_eq!(caught.len(), 1, "three missed occasions make one run");
        assert!(scheduler::step(&c, &j, later + 60)
            .expect("step")
            .is_empty());
        assert_eq!(
            c.schedule("s1").expect("s").last_fired,
            Some(T0 + 3 * DAY + 3 * 3600)
        );
        // Both queued runs run, one step each, in order; then the queue is empty.
        assert_eq!(j.run_next(), Some(first[0].clone()));
        assert_eq!(j.run_next(), Some(caught[0].clone()));
        assert_eq!(j.run_next(), None);
        for id in [&first[0], &caught[0]] {
            let r = c.run(id).expect("run");
            assert_eq!(r.state, RunState::Succeeded, "{r:?}");
            let kinds: Vec<String> = c
                .events(id)
                .expect("events")
                .into_iter()
                .map(|e| e.kind)
                .collect();
            assert!(kinds.contains(&"collected".to_string()), "{kinds:?}");
        }
        assert!(c
            .events(&first[0])
            .expect("e")
            .iter()
            .any(|e| e.kind == "requeued"));
        // A disabled schedule never fires; a bad expression is an error, not a run.
        let mut off = nightly(keys.clone());
        off.id = "s2".into();
        off.enabled = false;
        c.put_schedule(&off).expect("put");
        assert_eq!(
            scheduler::step(&c, &j, later + 2 * DAY)
                .expect("step")
                .len(),
            1
        );
        assert!(scheduler::parse("0 3 * *").is_err());
        assert!(scheduler::parse("0 25 * * *").is_err());
    }
);

#[test]
fn servers_sharing_a_catalog_fire_an_occasion_once() {
    use coldpatch_testkit::pg::{Kind, TestCatalog};
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let (catalog, keys) = catalog_on(&tc, &["debian-12-min"]);
    catalog.put_schedule(&nightly(keys)).expect("put");
    // Three servers step their schedulers at the same moment, held at the schedule's
    // row until all three are there.
    let (s, db) = tc.postgres().expect("a PostgreSQL catalog");
    let url = tc.location();
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("holder");
    let mut hold = holder.transaction().expect("begin");
    hold.batch_execute("SELECT 1 FROM schedules FOR UPDATE")
        .expect("lock");
    let servers: Vec<_> = (0..3)
        .map(|_| {
            let c = Arc::new(tc.open());
            std::thread::spawn(move || {
                let j = jobs(&c);
                scheduler::step(&c, &j, T0 + 3 * 3600 + 10).expect("step")
            })
        })
        .collect();
    let waiting = s.lock_waiters(db, 3);
    assert_eq!(waiting, 3, "the three schedulers wait at the schedule");
    hold.rollback().expect("release");
    let queued: Vec<String> = servers
        .into_iter()
        .flat_map(|t| t.join().expect("server"))
        .collect();
    assert_eq!(queued.len(), 1, "one run for the occasion: {queued:?}");
    let runs = catalog.runs().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        catalog.schedule("s1").expect("s").last_run.as_deref(),
        Some(queued[0].as_str())
    );
}

#[test]
fn runs_on_one_image_never_overlap_and_a_queued_run_cancels_cleanly() {
    let (dir, catalog, keys) = catalog_with(&["debian-12-min"]);
    let c = Arc::new(catalog);
    let j = Arc::new(jobs(&c));
    let spec = JobSpec::Collect {
        images: keys.clone(),
        rescan: true,
    };
    let a = j.submit(&spec, None).expect("a");
    let b = j.submit(&spec, None).expect("b");
    let gone = j.submit(&spec, None).expect("c");
    assert_eq!(j.cancel(&gone.id).expect("cancel").how, "dequeued");
    assert!(j.cancel(&gone.id).is_err());
    // Two runs on one image: while the first is claimed, the second cannot be.
    let first = j.claim().expect("the first run is runnable");
    assert_eq!(first.run.id, a.id);
    assert!(
        j.claim().is_none(),
        "the second run shares the first's image and must wait"
    );
    assert_eq!(j.run_claimed(first), a.id);
    assert_eq!(j.run_next(), Some(b.id.clone()));
    assert_eq!(j.run_next(), None);
    for id in [&a.id, &b.id] {
        assert_eq!(c.run(id).expect("run").state, RunState::Succeeded);
    }
    let span = |id: &str| {
        let ev = c.events(id).expect("events");
        let t = |k: &str| ev.iter().find(|e| e.kind == k).map(|e| e.time_ms).expect(k);
        (t("started"), t("finished"))
    };
    let (sa, fa) = span(&a.id);
    let (sb, fb) = span(&b.id);
    assert!(
        fa <= sb || fb <= sa,
        "runs overlapped: {sa}-{fa} and {sb}-{fb}"
    );
    assert_eq!(c.run(&gone.id).expect("run").state, RunState::Cancelled);
    let kinds: Vec<String> = c
        .events(&gone.id)
        .expect("e")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["queued", "cancelled", "finished"]);
    drop(dir);
}

#[test]
fn a_running_patch_run_cancelled_leaves_the_image_as_it_was() {
    let (dir, catalog, keys) = catalog_with(&["debian-11-old"]);
    let repo = coldpatch_testkit::image_dir("repo-bullseye-security").join("repo");
    let c = Arc::new(catalog);
    let j = Arc::new(jobs(&c));
    let run = j
        .submit(
            &JobSpec::Patch {
                images: keys.clone(),
                policy: coldpatch_catalog::PlanPolicy::AllFixable,
                repo: repo.display().to_string(),
                no_replay: false,
            },
            None,
        )
        .expect("queue");
    let _workers = j.spawn_workers(1).expect("workers");
    // Cancel once the overlay exists: the appliance is starting (20 s or more under TCG).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    let overlay = loop {
        let ev = c.events(&run.id).expect("events");
        if let Some(e) = ev.iter().find(|e| e.kind == "overlay") {
            break e.message.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no overlay: {ev:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(j.cancel(&run.id).expect("cancel").how, "signalled");
    while matches!(
        c.run(&run.id).expect("run").state,
        RunState::Running | RunState::Queued
    ) {
        assert!(std::time::Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    j.stop();
    let r = c.run(&run.id).expect("run");
    assert_eq!(r.state, RunState::Cancelled, "{r:?}");
    let img = c.image(&keys[0]).expect("image");
    assert_eq!(img.current_version, 0);
    assert!(img.versions.len() <= 1, "{:?}", img.versions);
    let file = overlay.split(' ').next().expect("file");
    assert!(
        !std::path::Path::new(file).exists(),
        "{file} was left behind"
    );
    let kinds: Vec<String> = c
        .events(&run.id)
        .expect("e")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"cancel-requested".to_string()) && kinds.contains(&"cancelled".to_string()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"committed".to_string()));
    drop(dir);
}

/// A job is checked against the queue's roots again when it runs: a path outside them,
/// and an image swapped for a symlink to a host file after it was queued, fail with the
/// one refusal, and nothing of the host file reaches the catalog.
#[test]
fn a_queued_job_is_checked_against_the_roots_again_when_it_runs() {
    let (dir, catalog, keys) = catalog_with(&["debian-12-min"]);
    let c = Arc::new(catalog);
    let roots = Roots::new(&[dir.path().to_path_buf()], &[]).expect("roots");
    let j = Jobs::new(c.clone(), 1, roots);
    let swapped = dir.path().join("swapped.qcow2");
    std::fs::copy(&keys[0], &swapped).expect("copy");
    let swapped = swapped.canonicalize().expect("canon").display().to_string();
    let images = vec![keys[0].clone(), "/etc/passwd".to_string(), swapped.clone()];
    let run = j
        .submit(
            &JobSpec::Collect {
                images: images.clone(),
                rescan: true,
            },
            None,
        )
        .expect("queue");
    std::fs::remove_file(&swapped).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", &swapped).expect("symlink");
    assert_eq!(j.run_next().as_deref(), Some(run.id.as_str()));
    let r = c.run(&run.id).expect("run");
    assert_eq!(r.state, RunState::Failed, "{r:?}");
    let events = c.events(&run.id).expect("events");
    let of = |img: &str| {
        events
            .iter()
            .find(|e| e.image.as_deref() == Some(img))
            .map(|e| (e.kind.clone(), e.message.clone()))
            .expect("an event for each image")
    };
    assert_eq!(of(&keys[0]).0, "collected");
    for bad in &images[1..] {
        assert_eq!(
            of(bad),
            (
                "failed".to_string(),
                format!("{bad:?}: refused: not an image file under this server's image roots")
            )
        );
    }
    assert_eq!(c.images().expect("images").len(), 1);
}

// A schedule's label selector is read when it fires: an image labelled after the
// schedule was made is in its next run, one unlabelled since is not, and a selector that
// picks nothing queues nothing.
both!(
    a_schedule_picks_images_by_their_labels_when_it_fires,
    |tc| {
        let (catalog, keys) = catalog_on(tc, &["debian-12-min", "debian-11-old"]);
        let c = Arc::new(catalog);
        let mut s = nightly(Vec::new());
        s.labels = Some("tier=gold".into());
        c.put_schedule(&s).expect("put");
        let j = jobs(&c);
        let label = |k: &str, set: bool| {
            let change = coldpatch_catalog::Relabel {
                set: if set {
                    vec![("tier".into(), "gold".into())]
                } else {
                    Vec::new()
                },
                unset: if set { Vec::new() } else { vec!["tier".into()] },
                name: None,
            };
            c.relabel(k, &change).expect("relabel");
        };
        assert!(scheduler::step(&c, &j, T0 + 3 * 3600 + 10)
            .expect("step")
            .is_empty());
        label(&keys[1], true);
        let fired = scheduler::step(&c, &j, T0 + DAY + 3 * 3600 + 10).expect("step");
        assert_eq!(c.run(&fired[0]).expect("run").images, [keys[1].clone()]);
        label(&keys[0], true);
        label(&keys[1], false);
        let fired = scheduler::step(&c, &j, T0 + 2 * DAY + 3 * 3600 + 10).expect("step");
        assert_eq!(c.run(&fired[0]).expect("run").images, [keys[0].clone()]);
    }
);
