//! The shared job queue on PostgreSQL (schema `V2__queue.sql`; the rules in
//! `catalog/src/queue.rs`). Leases are reckoned by the database's clock, never a
//! worker's, so hosts whose clocks disagree still agree on who holds what.
//!
//! Finishing and cancelling lock the run's row first (`FOR UPDATE`), then its jobs: the
//! last job's end is decided under that lock. A claim does not lock the run: it takes
//! the jobs it wants `FOR UPDATE SKIP LOCKED`, so workers claiming at once take different
//! jobs instead of waiting on each other or on finishers, and only the first claim of a
//! queued run writes the run's row (conditionally). The unique index on running jobs per
//! image turns a race for one image between two runs into a unique violation for the
//! later claim, and a claim caught in a deadlock with a cancel fails; either tries again.

use postgres::error::SqlState;
use postgres::Transaction;

use super::{i64_of, Postgres};
use crate::backend::Queue;
use crate::error::{CatalogError, Result};
use crate::queue::{
    Beat, ClaimReq, Claimed, JobOutcome, JobRow, PartEnd, Requeued, SharedCancel, Tally,
    WorkerRecord, WorkerSpec,
};
use crate::runs::{Event, RunRecord, RunState};

const JOB: &str = "id, run, image, state, worker, attempts, cancel, outcome";

/// Whether a claim lost a race it should just try again.
fn lost_race(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::UNIQUE_VIOLATION | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

fn job_of(r: &postgres::Row) -> JobRow {
    JobRow {
        id: r.get(0),
        run: r.get(1),
        image: r.get(2),
        state: r.get(3),
        worker: r.get(4),
        attempts: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
        cancel: r.get(6),
        outcome: r.get(7),
    }
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Postgres {
    /// The run's record, locked for the transaction; `None` if there is no such run.
    fn lock_run(&self, tx: &mut Transaction<'_>, run: &str) -> Result<Option<RunRecord>> {
        tx.query_opt(
            "SELECT record::text FROM runs WHERE id = $1 FOR UPDATE",
            &[&run],
        )
        .map_err(|e| self.err(e))?
        .map(|r| self.decode("run", r.get::<_, &str>(0)))
        .transpose()
    }

    fn write_run(&self, tx: &mut Transaction<'_>, run: &RunRecord, e: &Event) -> Result<()> {
        let json = self.json("run", run)?;
        tx.execute(
            "UPDATE runs SET record = $2::text::jsonb WHERE id = $1",
            &[&run.id, &json],
        )
        .map_err(|e| self.err(e))?;
        self.insert_event(tx, e)
    }

    /// The run's jobs, counted; ends the run through `finish` when none is left and the
    /// run has not ended.
    fn end_if_done(
        &self,
        tx: &mut Transaction<'_>,
        mut run: RunRecord,
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<Option<Event>> {
        let row = tx
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state <> 'done'), \
                 count(*) FILTER (WHERE outcome = 'failed'), coalesce(bool_or(cancel), false) \
                 FROM jobs WHERE run = $1",
                &[&run.id],
            )
            .map_err(|e| self.err(e))?;
        let left: i64 = row.get(1);
        if left > 0 || !matches!(run.state, RunState::Queued | RunState::Running) {
            return Ok(None);
        }
        let tally = Tally {
            total: u64_of(row.get(0)),
            failed: u64_of(row.get(2)),
            cancel: row.get(3),
        };
        let e = finish(&mut run, tally);
        self.write_run(tx, &run, &e)?;
        Ok(Some(e))
    }

    /// One try at a claim; `Err(None)` when it lost a race and should be tried again.
    fn try_claim(
        &self,
        req: &mut ClaimReq<'_>,
    ) -> std::result::Result<Option<Claimed>, Option<CatalogError>> {
        let (worker, roots) = (req.worker, req.roots);
        let fail = |e: postgres::Error| {
            if lost_race(&e) {
                None
            } else {
                Some(self.err(e))
            }
        };
        let mut conn = self.conn().map_err(Some)?;
        const FREE: &str = "j.state = 'queued' AND NOT j.cancel \
             AND EXISTS (SELECT 1 FROM unnest($1::text[]) r WHERE starts_with(j.image, r)) \
             AND NOT EXISTS (SELECT 1 FROM jobs h WHERE h.image = j.image AND h.state = 'running')";
        let mut tx = conn.transaction().map_err(fail)?;
        // The first free job in the order jobs were queued, locked: an index walk that
        // stops there, whatever the length of the queue, and that steps over jobs other
        // claims hold. Its run is read, not locked: claims of one run do not wait on
        // each other or on the workers finishing its jobs.
        let Some(first) = tx
            .query_opt(
                &format!(
                    "SELECT j.id, j.run FROM jobs j WHERE {FREE} \
                     ORDER BY j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED"
                ),
                &[&roots],
            )
            .map_err(fail)?
        else {
            return Ok(None);
        };
        let (first, id): (i64, String) = (first.get(0), first.get(1));
        let Some(row) = tx
            .query_opt("SELECT record::text FROM runs WHERE id = $1", &[&id])
            .map_err(fail)?
        else {
            return Ok(None);
        };
        let mut run: RunRecord = self.decode("run", row.get::<_, &str>(0)).map_err(Some)?;
        if !matches!(run.state, RunState::Queued | RunState::Running) {
            return Ok(None);
        }
        // More of that run's free jobs, up to the batch.
        let more = i64::try_from((req.batch)(&run).max(1) - 1).unwrap_or(i64::MAX);
        let mut ids: Vec<i64> = vec![first];
        if more > 0 {
            ids.extend(
                tx.query(
                    &format!(
                        "SELECT j.id FROM jobs j WHERE j.run = $2 AND j.id <> $4 AND {FREE} \
                         ORDER BY j.id LIMIT $3 FOR UPDATE OF j SKIP LOCKED"
                    ),
                    &[&roots, &id, &more, &first],
                )
                .map_err(fail)?
                .iter()
                .map(|r| r.get::<_, i64>(0)),
            );
        }
        let jobs: Vec<JobRow> = tx
            .query(
                &format!(
                    "UPDATE jobs SET state = 'running', worker = $2, attempts = attempts + 1, \
                     lease_until = now() + $3 * interval '1 millisecond' \
                     WHERE id = ANY($1) RETURNING {JOB}"
                ),
                &[&ids, &worker, &(i64_of(req.lease_ms) as f64)],
            )
            .map_err(fail)?
            .iter()
            .map(job_of)
            .collect();
        if run.state == RunState::Queued {
            // The first claim starts the run; of claims racing for that, one does (the
            // others find it running). A cancel holding the row makes this wait; if
            // that is a deadlock, the claim is tried again.
            let e = (req.start)(&mut run);
            let json = self.json("run", &run).map_err(Some)?;
            let started = tx
                .execute(
                    "UPDATE runs SET record = $2::text::jsonb \
                     WHERE id = $1 AND record->>'state' = 'queued'",
                    &[&run.id, &json],
                )
                .map_err(fail)?;
            if started == 1 {
                self.insert_event(&mut tx, &e).map_err(Some)?;
            } else {
                run.state = RunState::Running;
            }
        }
        let mut jobs = jobs;
        jobs.sort_by_key(|j| j.id);
        let e = (req.claimed)(&run, &jobs);
        self.insert_event(&mut tx, &e).map_err(Some)?;
        tx.commit().map_err(fail)?;
        Ok(Some(Claimed { run, jobs }))
    }
}

impl Queue for Postgres {
    fn register_worker(&self, w: &WorkerSpec) -> Result<Vec<JobRow>> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(|e| self.err(e))?;
        let pid = i32::try_from(w.pid).unwrap_or(i32::MAX);
        let slots = i32::try_from(w.slots).unwrap_or(i32::MAX);
        let n = tx
            .execute(
                "INSERT INTO workers (name, host, pid, roots, slots, version, lease_ms, started, heartbeat) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now()) \
                 ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, \
                 roots = EXCLUDED.roots, slots = EXCLUDED.slots, version = EXCLUDED.version, \
                 lease_ms = EXCLUDED.lease_ms, started = now(), heartbeat = now(), stopped = NULL \
                 WHERE workers.stopped IS NOT NULL \
                 OR workers.heartbeat < now() - workers.lease_ms * interval '1 millisecond' \
                 OR (workers.host = EXCLUDED.host AND workers.pid = EXCLUDED.pid)",
                &[&w.name, &w.host, &pid, &w.roots, &slots, &w.version, &i64_of(w.lease_ms)],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            let r = tx
                .query_one("SELECT host, pid FROM workers WHERE name = $1", &[&w.name])
                .map_err(|e| self.err(e))?;
            return Err(CatalogError::WorkerTaken {
                name: w.name.clone(),
                host: r.get(0),
                pid: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
            });
        }
        // Whatever a process of this name still held died with it.
        let freed = tx
            .query(
                &format!(
                    "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL \
                     WHERE worker = $1 AND state = 'running' RETURNING {JOB}"
                ),
                &[&w.name],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(job_of)
            .collect();
        self.commit(tx)?;
        Ok(freed)
    }

    fn heartbeat(&self, worker: &str, held: &[i64]) -> Result<Beat> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(|e| self.err(e))?;
        let lease: i64 = tx
            .query_opt(
                "UPDATE workers SET heartbeat = now() WHERE name = $1 RETURNING lease_ms",
                &[&worker],
            )
            .map_err(|e| self.err(e))?
            .map_or(0, |r| r.get(0));
        let renewed = tx
            .query(
                "UPDATE jobs SET lease_until = now() + $2 * interval '1 millisecond' \
                 WHERE worker = $1 AND state = 'running' AND id = ANY($3) RETURNING id, cancel",
                &[&worker, &(lease as f64), &held],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let orphans = tx
            .query(
                &format!(
                    "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL \
                     WHERE worker = $1 AND state = 'running' AND NOT (id = ANY($2)) RETURNING {JOB}"
                ),
                &[&worker, &held],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(job_of)
            .collect();
        self.commit(tx)?;
        Ok(Beat {
            held: renewed,
            orphans,
        })
    }

    fn stop_worker(&self, worker: &str) -> Result<()> {
        self.exec(
            "UPDATE workers SET stopped = now() WHERE name = $1",
            &[&worker],
        )
        .map(|_| ())
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let ms = |col: &str| format!("(extract(epoch FROM {col}) * 1000)::bigint");
        let rows = self.query(
            &format!(
                "SELECT name, host, pid, roots, slots, version, lease_ms, {}, {}, \
                 stopped IS NOT NULL, (extract(epoch FROM now() - heartbeat) * 1000)::bigint, \
                 (SELECT count(*) FROM jobs j WHERE j.worker = w.name AND j.state = 'running') \
                 FROM workers w ORDER BY name",
                ms("started"),
                ms("heartbeat")
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let lease_ms = u64_of(r.get(6));
                let silent_ms = u64_of(r.get(10));
                let stopped: bool = r.get(9);
                WorkerRecord {
                    spec: WorkerSpec {
                        name: r.get(0),
                        host: r.get(1),
                        pid: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
                        roots: r.get(3),
                        slots: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
                        version: r.get(5),
                        lease_ms,
                    },
                    started_ms: u64_of(r.get(7)),
                    heartbeat_ms: u64_of(r.get(8)),
                    silent_ms,
                    held: u32::try_from(r.get::<_, i64>(11)).unwrap_or(u32::MAX),
                    status: if stopped {
                        "stopped"
                    } else if silent_ms > lease_ms {
                        "lost"
                    } else {
                        "alive"
                    },
                }
            })
            .collect())
    }

    fn enqueue(&self, run: &RunRecord, event: &Event) -> Result<()> {
        let json = self.json("run", run)?;
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO runs (id, record) VALUES ($1, $2::text::jsonb)",
            &[&run.id, &json],
        )
        .map_err(|e| self.err(e))?;
        self.insert_event(&mut tx, event)?;
        tx.execute(
            "INSERT INTO jobs (run, image, state) SELECT $1, i, 'queued' FROM unnest($2::text[]) i",
            &[&run.id, &run.images],
        )
        .map_err(|e| self.err(e))?;
        self.commit(tx)
    }

    fn requeue_lost(&self) -> Result<Vec<Requeued>> {
        let rows = self.query(
            "WITH lost AS (SELECT id, worker FROM jobs \
             WHERE state = 'running' AND lease_until < now() FOR UPDATE SKIP LOCKED) \
             UPDATE jobs j SET state = 'queued', worker = NULL, lease_until = NULL \
             FROM lost WHERE j.id = lost.id \
             RETURNING j.id, j.run, j.image, j.state, j.worker, j.attempts, j.cancel, j.outcome, lost.worker",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Requeued {
                job: job_of(r),
                lost_by: r.get::<_, Option<String>>(8).unwrap_or_default(),
            })
            .collect())
    }

    fn claim(&self, req: &mut ClaimReq<'_>) -> Result<Option<Claimed>> {
        for _ in 0..8 {
            match self.try_claim(req) {
                Ok(c) => return Ok(c),
                Err(Some(e)) => return Err(e),
                Err(None) => continue, // another worker took an image first: look again
            }
        }
        Ok(None)
    }

    fn finish_jobs(
        &self,
        worker: &str,
        run: &str,
        done: &[(i64, u32, JobOutcome)],
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<PartEnd> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(|e| self.err(e))?;
        let Some(record) = self.lock_run(&mut tx, run)? else {
            return Err(CatalogError::NoRun(run.to_string()));
        };
        let mut n = 0;
        for &(id, attempt, outcome) in done {
            let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
            n += tx
                .execute(
                    "UPDATE jobs SET state = 'done', outcome = $4, lease_until = NULL \
                     WHERE id = $1 AND worker = $2 AND attempts = $3 AND state = 'running'",
                    &[&id, &worker, &attempt, &outcome.as_str()],
                )
                .map_err(|e| self.err(e))?;
        }
        let finished = self.end_if_done(&mut tx, record, finish)?;
        self.commit(tx)?;
        Ok(PartEnd {
            done: usize::try_from(n).unwrap_or(usize::MAX),
            finished,
        })
    }

    fn release(&self, worker: &str, jobs: &[(i64, u32)]) -> Result<usize> {
        let mut n = 0;
        for &(id, attempt) in jobs {
            let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
            n += self.exec(
                "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL \
                 WHERE id = $1 AND worker = $2 AND attempts = $3 AND state = 'running'",
                &[&id, &worker, &attempt],
            )?;
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn cancel(
        &self,
        run: &str,
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<SharedCancel> {
        // A cancel and the first claim of the run can deadlock (see the module doc); the
        // database ends one of them, and a cancel it ended is tried again.
        let mut tries = 0;
        loop {
            match self.try_cancel(run, finish) {
                Err(e) if tries < 3 && deadlocked(&e) => tries += 1,
                res => return res,
            }
        }
    }

    fn jobs(&self, run: &str) -> Result<Vec<JobRow>> {
        Ok(self
            .query(
                &format!("SELECT {JOB} FROM jobs WHERE run = $1 ORDER BY id"),
                &[&run],
            )?
            .iter()
            .map(job_of)
            .collect())
    }
}

/// Whether a storage failure was the database breaking a deadlock.
fn deadlocked(e: &CatalogError) -> bool {
    let CatalogError::Store { source, .. } = e else {
        return false;
    };
    source
        .downcast_ref::<postgres::Error>()
        .is_some_and(|p| p.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
}

impl Postgres {
    fn try_cancel(
        &self,
        run: &str,
        finish: &mut dyn FnMut(&mut RunRecord, Tally) -> Event,
    ) -> Result<SharedCancel> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(|e| self.err(e))?;
        let Some(record) = self.lock_run(&mut tx, run)? else {
            return Err(CatalogError::NoRun(run.to_string()));
        };
        if !matches!(record.state, RunState::Queued | RunState::Running) {
            return Ok(SharedCancel::Ended(record.state));
        }
        tx.execute("UPDATE jobs SET cancel = true WHERE run = $1", &[&run])
            .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE jobs SET state = 'done', outcome = 'cancelled' WHERE run = $1 AND state = 'queued'",
            &[&run],
        )
        .map_err(|e| self.err(e))?;
        let how = match self.end_if_done(&mut tx, record, finish)? {
            Some(_) => SharedCancel::Dequeued,
            None => SharedCancel::Signalled,
        };
        self.commit(tx)?;
        Ok(how)
    }
}
