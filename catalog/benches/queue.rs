//! The shared queue alone: what claiming, writing a job's events and finishing it cost,
//! with no job work competing for the CPUs. BENCH_CATALOG (a PostgreSQL URL, an empty
//! database) gets BENCH_JOBS jobs (default 2,000) in runs of 50, and BENCH_WORKERS
//! threads (default 4), each a registered worker with its own connection pool, claim a
//! job at a time, write its `collected` event and finish it, as `coldpatch worker` does.
//! Prints jobs per second and milliseconds of coordination per job and worker.
//! `bench/workers.sh` runs it at 1, 2 and 4 workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coldpatch_catalog::queue::{JobOutcome, WorkerSpec};
use coldpatch_catalog::{Catalog, Location};

fn main() {
    let url = std::env::var("BENCH_CATALOG").expect("BENCH_CATALOG: a PostgreSQL URL");
    let jobs: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let workers: usize = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let at = Location::parse(&url).expect("url");
    let c = Catalog::connect(&at, None).expect("catalog");
    for r in 0..jobs.div_ceil(50) {
        let images: Vec<String> = (0..50.min(jobs - r * 50))
            .map(|i| format!("/fleet/r{r}/i{i}.qcow2"))
            .collect();
        c.enqueue_run("collect", &images, serde_json::json!({}), None)
            .expect("queue");
    }
    let t0 = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let at = at.clone();
            std::thread::spawn(move || {
                let name = format!("bench-{w}");
                let c = Arc::new(
                    Catalog::connect(&at, None)
                        .expect("catalog")
                        .acting_as(&name),
                );
                let me = WorkerSpec {
                    name: name.clone(),
                    host: "bench".into(),
                    pid: std::process::id(),
                    roots: vec!["/fleet/".into()],
                    slots: 1,
                    version: "bench".into(),
                    lease_ms: 30_000,
                };
                c.register_worker(&me).expect("register");
                let (mut n, mut spent) = (0usize, Duration::ZERO);
                loop {
                    let t = Instant::now();
                    let Some(got) = c.claim_jobs(&me, &|_| 1).expect("claim") else {
                        break;
                    };
                    let j = &got.jobs[0];
                    c.event(&got.run.id, Some(&j.image), "collected", "bench")
                        .expect("event");
                    c.finish_jobs(&name, &got.run.id, &[(j.id, j.attempts, JobOutcome::Ok)])
                        .expect("finish");
                    spent += t.elapsed();
                    n += 1;
                }
                (n, spent)
            })
        })
        .collect();
    let mut total = 0;
    let mut per_job = Vec::new();
    for t in threads {
        let (n, spent) = t.join().expect("worker");
        total += n;
        per_job.push(spent.as_secs_f64() * 1000.0 / n.max(1) as f64);
    }
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(total, jobs, "every job claimed once");
    println!(
        "queue alone, {workers} worker(s): {jobs} jobs in {wall:.2} s, {:.0} jobs/s; coordination per job {}",
        jobs as f64 / wall,
        per_job
            .iter()
            .map(|m| format!("{m:.2} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
