-- The coldpatch catalog, schema version 1. Keys are text in the "C" collation so that
-- lists come back in byte order, as the embedded store returns them. Small records are
-- jsonb (readable with psql); inventories, file lists, run images and repository
-- indexes are zstd-compressed JSON in bytea, read only whole. The index tables
-- (scan_packages, scan_files, advisory_names) answer fleet questions without reading
-- those blobs.

CREATE TABLE meta (
    key text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE counters (
    name text COLLATE "C" PRIMARY KEY,
    n bigint NOT NULL
);

CREATE TABLE images (
    id bigint PRIMARY KEY,
    path text COLLATE "C" NOT NULL UNIQUE,
    record jsonb NOT NULL
);

CREATE TABLE scans (
    id bigint PRIMARY KEY,
    image bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX scans_image ON scans (image, id);

CREATE TABLE inventories (
    scan bigint PRIMARY KEY REFERENCES scans (id),
    inventory bytea NOT NULL,
    files bytea NOT NULL
);

-- One row per package of a scan: name and source name, and the package itself as JSON.
CREATE TABLE scan_packages (
    scan bigint NOT NULL REFERENCES scans (id),
    name text COLLATE "C" NOT NULL,
    source_name text COLLATE "C" NOT NULL,
    package bytea NOT NULL
);
CREATE INDEX scan_packages_name ON scan_packages (name, scan);
CREATE INDEX scan_packages_source ON scan_packages (source_name, scan);

-- One row per distinct file content of a scan.
CREATE TABLE scan_files (
    scan bigint NOT NULL REFERENCES scans (id),
    sha256 bytea NOT NULL
);
CREATE INDEX scan_files_sha256 ON scan_files (sha256);

CREATE TABLE runs (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);

-- Events in the order they happened; n breaks ties between processes.
CREATE TABLE events (
    n bigserial PRIMARY KEY,
    run text COLLATE "C" NOT NULL,
    time_ms bigint NOT NULL,
    seq bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX events_run ON events (run, time_ms, seq, n);

CREATE TABLE run_images (
    run text COLLATE "C" NOT NULL,
    image text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (run, image)
);

CREATE TABLE feeds (
    name text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);

CREATE TABLE advisories (
    feed text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (feed, id)
);

-- Every name an advisory answers to (its id and aliases), upper-cased.
CREATE TABLE advisory_names (
    feed text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    FOREIGN KEY (feed, id) REFERENCES advisories (feed, id) ON DELETE CASCADE
);
CREATE INDEX advisory_names_name ON advisory_names (name);
CREATE INDEX advisory_names_advisory ON advisory_names (feed, id);

CREATE TABLE repos (
    root text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);

CREATE TABLE schedules (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);
