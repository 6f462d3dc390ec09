//! The shared job queue on the test run's real PostgreSQL server: claims by root, many
//! claimers at once taking each job once, one running job per image across runs, leases
//! that run out and fence the worker that lost them, cancel, and the last job ending its
//! run. Images here are only paths: what a job does is the `jobs` crate's (and the e2e
//! tests', with real worker processes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use coldpatch_catalog::queue::{JobOutcome, SharedCancel, WorkerSpec};
use coldpatch_catalog::{CatalogError, RunState};
use coldpatch_testkit::pg::{Kind, TestCatalog};

fn worker(name: &str, roots: &[&str], lease_ms: u64) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        host: "test".into(),
        pid: std::process::id(),
        roots: roots.iter().map(|r| r.to_string()).collect(),
        slots: 1,
        version: "test".into(),
        lease_ms,
    }
}

fn images(dir: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{dir}/img{i:03}.qcow2")).collect()
}

#[test]
fn an_embedded_catalog_has_no_shared_queue() {
    let tc = TestCatalog::new(Kind::Sled).expect("sled");
    let c = tc.open();
    assert!(!c.has_queue());
    let e = c
        .enqueue_run("collect", &images("/a", 1), serde_json::json!({}), None)
        .expect_err("no queue");
    assert!(matches!(e, CatalogError::NotShared { .. }), "{e}");
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
}

#[test]
fn claims_follow_roots_batches_and_runs_end_with_their_last_job() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = tc.open();
    let a = worker("a", &["/fleet/a/"], 30_000);
    let b = worker("b", &["/fleet/b/"], 30_000);
    c.register_worker(&a).expect("a");
    c.register_worker(&b).expect("b");
    // A name a live worker has is refused to another process.
    let mut other = worker("a", &["/x/"], 30_000);
    other.pid += 1;
    let e = c.register_worker(&other).expect_err("taken");
    assert!(matches!(e, CatalogError::WorkerTaken { .. }), "{e}");
    let mut imgs = images("/fleet/a", 3);
    imgs.extend(images("/fleet/b", 2));
    imgs.push("/fleet/c/img.qcow2".into());
    // "/fleet/ab" must not count as under "/fleet/a/".
    imgs.push("/fleet/ab/img.qcow2".into());
    let run = c
        .enqueue_run("apply", &imgs, serde_json::json!({"job": "x"}), None)
        .expect("queue");
    assert!(run.shared);
    let status = c.run_jobs(&run.id).expect("jobs");
    let waiting: Vec<&str> = status
        .iter()
        .filter(|j| j.waiting_for_root)
        .map(|j| j.job.image.as_str())
        .collect();
    assert_eq!(waiting, ["/fleet/c/img.qcow2", "/fleet/ab/img.qcow2"]);

    let got = c.claim_jobs(&a, &|_| 2).expect("claim").expect("a's jobs");
    assert_eq!(
        got.run.state,
        RunState::Running,
        "the first claim starts the run"
    );
    let mine: Vec<&str> = got.jobs.iter().map(|j| j.image.as_str()).collect();
    assert_eq!(mine, ["/fleet/a/img000.qcow2", "/fleet/a/img001.qcow2"]);
    let rest = c.claim_jobs(&a, &|_| 8).expect("claim").expect("the third");
    assert_eq!(rest.jobs.len(), 1);
    assert!(c.claim_jobs(&a, &|_| 8).expect("claim").is_none());
    let bs = c.claim_jobs(&b, &|_| 8).expect("claim").expect("b's jobs");
    assert_eq!(bs.jobs.len(), 2);
    assert_eq!(c.run(&run.id).expect("run").state, RunState::Running);

    let done = |jobs: &[coldpatch_catalog::queue::JobRow], o| {
        jobs.iter()
            .map(|j| (j.id, j.attempts, o))
            .collect::<Vec<_>>()
    };
    let end = c
        .finish_jobs("a", &run.id, &done(&got.jobs, JobOutcome::Ok))
        .expect("finish");
    assert_eq!((end.done, end.finished.is_some()), (2, false));
    // b cannot finish a's jobs.
    let end = c
        .finish_jobs("b", &run.id, &done(&rest.jobs, JobOutcome::Ok))
        .expect("finish");
    assert_eq!(end.done, 0);
    c.finish_jobs("a", &run.id, &done(&rest.jobs, JobOutcome::Ok))
        .expect("finish");
    c.finish_jobs("b", &run.id, &done(&bs.jobs, JobOutcome::Failed))
        .expect("finish");
    // Two jobs no worker covers keep the run open; a worker with a root over them ends it.
    assert_eq!(c.run(&run.id).expect("run").state, RunState::Running);
    let wide = worker("wide", &["/fleet/"], 30_000);
    c.register_worker(&wide).expect("wide");
    let last = c
        .claim_jobs(&wide, &|_| 8)
        .expect("claim")
        .expect("the rest");
    assert_eq!(last.jobs.len(), 2);
    let end = c
        .finish_jobs("wide", &run.id, &done(&last.jobs, JobOutcome::Ok))
        .expect("finish");
    let e = end.finished.expect("the last job ends the run");
    assert_eq!(e.message, "failed");
    let r = c.run(&run.id).expect("run");
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(r.error.as_deref(), Some("2 of 7 image(s) failed"));
    let events = c.events(&run.id).expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "started").count(), 1);
    let ws = c.workers().expect("workers");
    assert_eq!(ws.len(), 3);
    assert!(ws.iter().all(|w| w.alive() && w.held == 0));
}

#[test]
fn many_claimers_at_once_take_each_job_exactly_once() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = Arc::new(tc.open());
    let runs: Vec<String> = (0..20)
        .map(|r| {
            c.enqueue_run(
                "collect",
                &images(&format!("/f/r{r}"), 5),
                serde_json::json!({}),
                None,
            )
            .expect("queue")
            .id
        })
        .collect();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let me = worker(&format!("w{t}"), &["/f/"], 30_000);
                c.register_worker(&me).expect("register");
                let mut taken = Vec::new();
                while let Some(got) = c.claim_jobs(&me, &|_| 2).expect("claim") {
                    let done: Vec<_> = got
                        .jobs
                        .iter()
                        .map(|j| (j.id, j.attempts, JobOutcome::Ok))
                        .collect();
                    let end = c.finish_jobs(&me.name, &got.run.id, &done).expect("finish");
                    assert_eq!(end.done, got.jobs.len());
                    taken.extend(got.jobs.into_iter().map(|j| j.image));
                }
                taken
            })
        })
        .collect();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut busy = 0;
    for t in threads {
        let taken = t.join().expect("claimer");
        busy += usize::from(!taken.is_empty());
        for i in taken {
            *count.entry(i).or_default() += 1;
        }
    }
    assert_eq!(count.len(), 100, "every job was taken");
    assert!(count.values().all(|&n| n == 1), "none twice: {count:?}");
    assert!(busy > 1, "the claimers shared the work");
    for r in runs {
        assert_eq!(c.run(&r).expect("run").state, RunState::Succeeded);
    }
}

#[test]
fn one_image_is_worked_on_by_one_job_at_a_time_whatever_the_run() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = tc.open();
    let img = vec!["/f/one.qcow2".to_string()];
    let r1 = c
        .enqueue_run("apply", &img, serde_json::json!({}), None)
        .expect("r1");
    let r2 = c
        .enqueue_run("collect", &img, serde_json::json!({}), None)
        .expect("r2");
    let (a, b) = (worker("a", &["/f/"], 30_000), worker("b", &["/f/"], 30_000));
    let first = c.claim_jobs(&a, &|_| 1).expect("claim").expect("r1's job");
    assert_eq!(first.run.id, r1.id);
    assert!(
        c.claim_jobs(&b, &|_| 1).expect("claim").is_none(),
        "r2's job on the same image waits"
    );
    c.finish_jobs("a", &r1.id, &[(first.jobs[0].id, 1, JobOutcome::Ok)])
        .expect("finish");
    let second = c.claim_jobs(&b, &|_| 1).expect("claim").expect("now r2's");
    assert_eq!(second.run.id, r2.id);
}

#[test]
fn a_lost_lease_requeues_the_job_and_fences_the_worker_that_lost_it() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = tc.open();
    let dead = worker("dead", &["/f/"], 300);
    let live = worker("live", &["/f/"], 30_000);
    c.register_worker(&dead).expect("dead");
    c.register_worker(&live).expect("live");
    let run = c
        .enqueue_run("apply", &images("/f", 2), serde_json::json!({}), None)
        .expect("queue");
    let held = c.claim_jobs(&dead, &|_| 8).expect("claim").expect("jobs");
    assert_eq!(held.jobs.len(), 2);
    // Renewed, the lease holds.
    std::thread::sleep(Duration::from_millis(200));
    let ids: Vec<i64> = held.jobs.iter().map(|j| j.id).collect();
    let renewed = c.heartbeat("dead", &ids).expect("heartbeat");
    assert_eq!(renewed.len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(c.requeue_lost().expect("requeue").is_empty());
    // Silent past its lease, it loses both.
    std::thread::sleep(Duration::from_millis(500));
    let lost = c.requeue_lost().expect("requeue");
    assert_eq!(lost.len(), 2);
    assert!(lost.iter().all(|l| l.lost_by == "dead"));
    let ws = c.workers().expect("workers");
    assert_eq!(
        ws.iter()
            .find(|w| w.spec.name == "dead")
            .expect("dead")
            .status,
        "lost"
    );
    let again = c.claim_jobs(&live, &|_| 8).expect("claim").expect("again");
    assert!(again.jobs.iter().all(|j| j.attempts == 2));
    // The worker that lost them renews nothing and finishes nothing.
    assert!(c.heartbeat("dead", &ids).expect("heartbeat").is_empty());
    let stale: Vec<_> = held
        .jobs
        .iter()
        .map(|j| (j.id, j.attempts, JobOutcome::Ok))
        .collect();
    assert_eq!(
        c.finish_jobs("dead", &run.id, &stale).expect("finish").done,
        0
    );
    assert_eq!(
        c.release_jobs("dead", &[(held.jobs[0].id, 1)])
            .expect("release"),
        0
    );
    let events = c.events(&run.id).expect("events");
    assert_eq!(events.iter().filter(|e| e.kind == "requeued").count(), 2);
    // Handed back by the live one, taken again, finished: the run ends once.
    let back: Vec<_> = again.jobs.iter().map(|j| (j.id, j.attempts)).collect();
    assert_eq!(c.release_jobs("live", &back).expect("release"), 2);
    let third = c.claim_jobs(&live, &|_| 8).expect("claim").expect("third");
    let done: Vec<_> = third
        .jobs
        .iter()
        .map(|j| (j.id, j.attempts, JobOutcome::Ok))
        .collect();
    assert!(c
        .finish_jobs("live", &run.id, &done)
        .expect("finish")
        .finished
        .is_some());
    assert_eq!(c.run(&run.id).expect("run").state, RunState::Succeeded);
    // A dead worker's name is free again; what it held then is queued again.
    c.register_worker(&worker("dead", &["/f/"], 300))
        .expect("re-register");
}

#[test]
fn cancel_dequeues_what_waits_and_flags_what_runs() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = tc.open();
    let w = worker("w", &["/f/"], 30_000);
    c.register_worker(&w).expect("w");
    let waiting = c
        .enqueue_run(
            "collect",
            &images("/elsewhere", 2),
            serde_json::json!({}),
            None,
        )
        .expect("queue");
    assert_eq!(
        c.cancel_shared(&waiting.id).expect("cancel"),
        SharedCancel::Dequeued
    );
    assert_eq!(c.run(&waiting.id).expect("run").state, RunState::Cancelled);
    assert!(matches!(
        c.cancel_shared(&waiting.id).expect("again"),
        SharedCancel::Ended(RunState::Cancelled)
    ));

    let run = c
        .enqueue_run("apply", &images("/f", 3), serde_json::json!({}), None)
        .expect("queue");
    let held = c.claim_jobs(&w, &|_| 1).expect("claim").expect("one job");
    assert_eq!(
        c.cancel_shared(&run.id).expect("cancel"),
        SharedCancel::Signalled
    );
    // The holder learns it with its heartbeat; the other two never start.
    let beat = c.heartbeat("w", &[held.jobs[0].id]).expect("heartbeat");
    assert_eq!(beat, vec![(held.jobs[0].id, true)]);
    assert!(c.claim_jobs(&w, &|_| 8).expect("claim").is_none());
    let end = c
        .finish_jobs("w", &run.id, &[(held.jobs[0].id, 1, JobOutcome::Cancelled)])
        .expect("finish");
    assert!(end.finished.is_some());
    assert_eq!(c.run(&run.id).expect("run").state, RunState::Cancelled);
}

#[test]
fn a_job_its_worker_no_longer_runs_is_queued_again_by_its_heartbeat() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let c = tc.open();
    let w = worker("w", &["/f/"], 30_000);
    c.register_worker(&w).expect("w");
    let run = c
        .enqueue_run("collect", &images("/f", 2), serde_json::json!({}), None)
        .expect("queue");
    let a = c.claim_jobs(&w, &|_| 1).expect("claim").expect("a");
    let b = c.claim_jobs(&w, &|_| 1).expect("claim").expect("b");
    // The worker runs only a; the database still has it holding b (say b's end was
    // committed and then lost in a crash): b goes back to the queue.
    let held = c.heartbeat("w", &[a.jobs[0].id]).expect("heartbeat");
    assert_eq!(held, vec![(a.jobs[0].id, false)]);
    let jobs = c.run_jobs(&run.id).expect("jobs");
    let b_now = jobs.iter().find(|j| j.job.id == b.jobs[0].id).expect("b");
    assert_eq!(b_now.job.state, "queued");
    assert!(c
        .events(&run.id)
        .expect("events")
        .iter()
        .any(|e| e.kind == "requeued" && e.message.contains("no longer runs it")));
}
