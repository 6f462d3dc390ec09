-- Schema version 2: the shared job queue (see catalog/src/queue.rs).
--
-- A queued run has one `jobs` row per image. A worker claims rows of one run whose
-- images lie under its roots (`SELECT ... FOR UPDATE SKIP LOCKED`), holding them under a
-- lease it renews; a row whose lease ran out is queued again by the next claim. Only the
-- holding worker may finish its rows (`worker` and `attempts` fence it). At most one row
-- per image is running, whatever the run: the partial unique index says so, so two
-- workers can never work on one image at once.

CREATE TABLE workers (
    name text COLLATE "C" PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    roots text[] NOT NULL,
    slots integer NOT NULL,
    version text NOT NULL,
    lease_ms bigint NOT NULL,
    started timestamptz NOT NULL,
    heartbeat timestamptz NOT NULL,
    stopped timestamptz
);

CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    run text COLLATE "C" NOT NULL REFERENCES runs (id),
    image text COLLATE "C" NOT NULL,
    -- queued, running or done
    state text NOT NULL,
    worker text COLLATE "C",
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    cancel boolean NOT NULL DEFAULT false,
    -- once done: ok, unchanged, failed or cancelled
    outcome text,
    UNIQUE (run, image)
);
-- A claim walks queued jobs in the order they were queued and stops at the first free
-- one (jobs_queued_order), then takes more of that run's (jobs_queued).
CREATE INDEX jobs_queued_order ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_queued ON jobs (run, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (worker) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_one_per_image ON jobs (image) WHERE state = 'running';
