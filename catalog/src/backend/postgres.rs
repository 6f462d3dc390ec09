//! The shared backend: a PostgreSQL database that any number of coldpatch processes on
//! any number of hosts use at once. The schema is `catalog/migrations/` (see its
//! comments), applied by `refinery` when a catalog is opened; its history table is
//! `coldpatch_schema_history`, so another program's refinery history is never taken
//! for ours.
//!
//! Driver: the synchronous `postgres` crate with an `r2d2` pool. The catalog's callers
//! are threads (rayon batches of a fleet scan, the web server's blocking pool, job
//! workers), never async tasks, and [`Backend`] is a synchronous trait; the sync driver
//! keeps that true without a runtime of our own. The pool is what lets a fleet scan
//! read inventories on several connections at once.
//!
//! Opening refuses, before anything is written: a server that cannot be reached or
//! refuses the login ([`CatalogError::Connect`]); a database holding tables but no
//! coldpatch history ([`CatalogError::Foreign`]); a catalog of a newer schema
//! ([`CatalogError::Newer`]). Migration runs under an advisory lock, so processes that
//! open a new catalog at the same moment migrate it once.
//!
//! Conditional writes lock what they are conditional on: `SELECT … FOR UPDATE` of the
//! image row for a version commit or rescan, an insert that yields to a concurrent one
//! for a new image path, and a transaction-scoped advisory lock on the feed's name for
//! a feed import (the feed row may not exist yet, so there is no row to lock).
//!
//! Blobs (inventories, file lists, run images, repository indexes) are zstd JSON in
//! `bytea`: they are only ever read whole, and a fleet scan reads ten thousand of them,
//! so the compact form that sled also stores is the fast one. Fleet questions that
//! need one package name, one file content or one advisory read the index tables
//! (`scan_packages`, `scan_files`, `advisory_names`) instead of the blobs.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::{AdvisoryRows, Backend, Expect, NewScan, PackageRows, Written, SCHEMA_VERSION};
use crate::error::{CatalogError, Result, StoreCause};
use crate::labels::ImageTags;
use crate::location::{Location, PgLocation};
use crate::model::{ImageRecord, ScanRecord};
use crate::{Event, FeedRecord, RunImage, RunRecord, Schedule, StoredRepo, TokenRecord};

mod queue;

mod embedded {
    refinery::embed_migrations!("migrations");
}

const HISTORY: &str = "coldpatch_schema_history";
/// The advisory lock key migrations run under ("coldpatc").
const MIGRATE_LOCK: i64 = 0x636f_6c64_7061_7463;
/// Connections one process keeps at most.
const POOL: u32 = 8;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

pub(crate) struct Postgres {
    codec: Codec,
    pool: Pool,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The two fields of an advisory its names come from.
#[derive(Deserialize)]
struct AdvisoryNames {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
}

impl Postgres {
    pub(crate) fn open(at: &PgLocation) -> Result<Postgres> {
        let describe = Location::Postgres(Box::new(at.clone())).describe();
        let connect = |e: postgres::Error| CatalogError::Connect {
            catalog: describe.clone(),
            source: e.into(),
        };
        let mut client = at.config.connect(NoTls).map_err(connect)?;
        migrate(&mut client, &describe)?;
        drop(client);
        let manager = PostgresConnectionManager::new(at.config.clone(), NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL)
            .min_idle(Some(0))
            .idle_timeout(Some(Duration::from_secs(60)))
            // A server gone for longer is an error to the caller (a worker then says so
            // and waits it out) rather than a call that hangs.
            .connection_timeout(Duration::from_secs(10))
            .build_unchecked(manager);
        Ok(Postgres {
            codec: Codec { describe },
            pool,
        })
    }

    fn err(&self, e: impl Into<StoreCause>) -> CatalogError {
        self.codec.store(e)
    }

    fn conn(&self) -> Result<Conn> {
        self.pool.get().map_err(|e| self.err(e))
    }

    /// A record as jsonb takes it: JSON text.
    fn json<T: Serialize>(&self, what: &str, v: &T) -> Result<String> {
        serde_json::to_string(v).map_err(|e| self.err(format!("cannot encode {what}: {e}")))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, text: &str) -> Result<T> {
        self.codec.decode(what, text.as_bytes())
    }

    /// The blobs `sql` returns as (scan, blob) for `scans`, unpacked in parallel, in the
    /// order asked.
    fn blobs(&self, what: &str, sql: &str, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        let want: Vec<i64> = scans.iter().map(|&s| i64_of(s)).collect();
        let rows = self.query(sql, &[&want])?;
        let mut by_id: HashMap<i64, Vec<u8>> = HashMap::with_capacity(rows.len());
        for r in rows {
            by_id.insert(r.get(0), r.get(1));
        }
        want.iter()
            .map(|id| by_id.remove(id))
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|b| b.map(|b| self.codec.unpack_json(what, &b)).transpose())
            .collect()
    }

    /// The rows of an index query whose first column is a scan id, limited to `scans`.
    /// For a few scans the database filters (`narrow`, with the ids as `$2`); for many,
    /// probing the index once per id costs more than reading every row of the key
    /// (`wide`, 116 ms against 25 ms for 10,000 ids), so they are filtered here.
    fn by_scans(
        &self,
        wide: &str,
        narrow: &str,
        key: &(dyn ToSql + Sync),
        scans: &[u64],
    ) -> Result<Vec<postgres::Row>> {
        const NARROW: usize = 64;
        let mut c = self.conn()?;
        if scans.len() <= NARROW {
            let ids: Vec<i64> = scans.iter().map(|&s| i64_of(s)).collect();
            return c.query(narrow, &[key, &ids]).map_err(|e| self.err(e));
        }
        let keep: std::collections::HashSet<i64> = scans.iter().map(|&s| i64_of(s)).collect();
        let rows = c.query(wide, &[key]).map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter(|r| keep.contains(&r.get::<_, i64>(0)))
            .collect())
    }

    /// One jsonb record by key.
    fn get<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        key: &(dyn ToSql + Sync),
    ) -> Result<Option<T>> {
        let row = self.query_opt(sql, &[key])?;
        row.map(|r| self.decode(what, r.get::<_, &str>(0)))
            .transpose()
    }

    /// Every jsonb record a query returns.
    fn all<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>> {
        let rows = self.query(sql, params)?;
        rows.iter()
            .map(|r| self.decode(what, r.get::<_, &str>(0)))
            .collect()
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        self.conn()?.query(sql, params).map_err(|e| self.err(e))
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>> {
        self.conn()?.query_opt(sql, params).map_err(|e| self.err(e))
    }

    fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<postgres::Row> {
        self.conn()?.query_one(sql, params).map_err(|e| self.err(e))
    }

    /// Writes one keyed jsonb record (`sql` takes the key as `$1`, the JSON as `$2`).
    fn put_record(&self, sql: &str, key: &str, json: &str) -> Result<()> {
        self.exec(sql, &[&key, &json]).map(|_| ())
    }

    /// One scan's blob, unpacked.
    fn blob(&self, what: &str, sql: &str, scan: u64) -> Result<Option<Vec<u8>>> {
        self.query_opt(sql, &[&i64_of(scan)])?
            .map(|r| self.codec.unpack_json(what, r.get(0)))
            .transpose()
    }

    fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.conn()?.execute(sql, params).map_err(|e| self.err(e))
    }

    /// Checks `expect` against the image row, locking it for the transaction. `None`
    /// means the write may go on.
    fn check_image(
        &self,
        tx: &mut postgres::Transaction<'_>,
        image: &ImageRecord,
        expect: Expect,
    ) -> Result<Option<Written>> {
        match expect {
            Expect::Any | Expect::NewImage => Ok(None),
            Expect::Version(want) => {
                let row = tx
                    .query_opt(
                        "SELECT record::text FROM images WHERE id = $1 FOR UPDATE",
                        &[&i64_of(image.id)],
                    )
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| self.codec.corrupt("image"))?;
                let stored: ImageRecord = self.decode("image", row.get::<_, &str>(0))?;
                Ok((stored.current_version != want)
                    .then_some(Written::Moved(stored.current_version)))
            }
        }
    }

    /// Writes the image row. For a new image, yields (false) to a process that made the
    /// same path first.
    fn write_image(
        &self,
        tx: &mut postgres::Transaction<'_>,
        image: &ImageRecord,
        expect: Expect,
    ) -> Result<bool> {
        let json = self.json("image", image)?;
        let id = i64_of(image.id);
        if expect == Expect::NewImage {
            let n = tx
                .execute(
                    "INSERT INTO images (id, path, record) VALUES ($1, $2, $3::text::jsonb) \
                     ON CONFLICT DO NOTHING",
                    &[&id, &image.path, &json],
                )
                .map_err(|e| self.err(e))?;
            return Ok(n == 1);
        }
        tx.execute(
            "INSERT INTO images (id, path, record) VALUES ($1, $2, $3::text::jsonb) \
             ON CONFLICT (id) DO UPDATE SET path = EXCLUDED.path, record = EXCLUDED.record",
            &[&id, &image.path, &json],
        )
        .map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// The index rows of a scan: its packages and its distinct file contents.
    fn index_scan(&self, tx: &mut postgres::Transaction<'_>, new: &NewScan<'_>) -> Result<()> {
        let scan = i64_of(new.scan.id);
        let sink = tx
            .copy_in("COPY scan_packages (scan, name, source_name, package) FROM STDIN BINARY")
            .map_err(|e| self.err(e))?;
        let mut w =
            BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::TEXT, Type::BYTEA]);
        for p in &new.inv.packages {
            let json = self.codec.json("package", p)?;
            w.write(&[&scan, &p.name, &p.source_name, &json])
                .map_err(|e| self.err(e))?;
        }
        w.finish().map_err(|e| self.err(e))?;
        let shas: BTreeSet<[u8; 32]> = new
            .inv
            .files
            .iter()
            .filter_map(|f| f.sha256.as_deref())
            .filter_map(crate::versions::parse_check)
            .collect();
        let sink = tx
            .copy_in("COPY scan_files (scan, sha256) FROM STDIN BINARY")
            .map_err(|e| self.err(e))?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA]);
        for sha in &shas {
            w.write(&[&scan, &sha.as_slice()])
                .map_err(|e| self.err(e))?;
        }
        w.finish().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn commit(&self, tx: postgres::Transaction<'_>) -> Result<()> {
        tx.commit().map_err(|e| self.err(e))
    }

    /// Commits a transaction that wrote images or feeds, moving the change count last
    /// (its row lock is held only from here to the commit).
    fn commit_change(&self, mut tx: postgres::Transaction<'_>) -> Result<()> {
        tx.execute(
            "INSERT INTO counters (name, n) VALUES ('changes', 1) \
             ON CONFLICT (name) DO UPDATE SET n = counters.n + 1",
            &[],
        )
        .map_err(|e| self.err(e))?;
        self.commit(tx)
    }

    fn insert_event(&self, tx: &mut postgres::Transaction<'_>, e: &Event) -> Result<()> {
        let json = self.json("event", e)?;
        tx.execute(
            "INSERT INTO events (run, time_ms, seq, record) VALUES ($1, $2, $3, $4::text::jsonb)",
            &[&e.run, &i64_of(e.time_ms), &i64::from(e.seq), &json],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Brings the schema up to this coldpatch's, or says why it will not.
fn migrate(client: &mut postgres::Client, describe: &str) -> Result<()> {
    let store = |e: StoreCause| store_error(describe, e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .map_err(|e| store(e.into()))?;
    let res = migrate_locked(client, describe);
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]);
    res?;
    unlock.map_err(|e| store(e.into()))?;
    Ok(())
}

/// A storage failure of the catalog `describe` names, before a handle (and its codec)
/// exists.
fn store_error(describe: &str, e: StoreCause) -> CatalogError {
    CatalogError::Store {
        catalog: describe.to_string(),
        source: e,
    }
}

fn migrate_locked(client: &mut postgres::Client, describe: &str) -> Result<()> {
    let store = |e: StoreCause| store_error(describe, e);
    let has_history: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY])
        .map_err(|e| store(e.into()))?
        .get(0);
    if has_history {
        let found: Option<i32> = client
            .query_one(&format!("SELECT max(version) FROM {HISTORY}"), &[])
            .map_err(|e| store(e.into()))?
            .get(0);
        let found = i64::from(found.unwrap_or(0));
        if found > SCHEMA_VERSION {
            return Err(CatalogError::Newer {
                catalog: describe.to_string(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(()); // up to date: nothing for the runner to do
        }
    } else {
        let tables: Vec<String> = client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY 1 LIMIT 4",
                &[],
            )
            .map_err(|e| store(e.into()))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            return Err(CatalogError::Foreign {
                catalog: describe.to_string(),
                tables: tables.join(", "),
            });
        }
    }
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY);
    runner.run(client).map_err(|e| store(e.into()))?;
    Ok(())
}

impl Backend for Postgres {
    fn queue(&self) -> Option<&dyn super::Queue> {
        Some(self)
    }

    fn describe(&self) -> &str {
        &self.codec.describe
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn schema_version(&self) -> Result<i64> {
        let row = self.query_one(&format!("SELECT max(version) FROM {HISTORY}"), &[])?;
        Ok(i64::from(row.get::<_, Option<i32>>(0).unwrap_or(0)))
    }

    fn changes(&self) -> Result<u64> {
        self.counter("changes")
    }

    fn counter(&self, counter: &str) -> Result<u64> {
        let row = self.query_opt("SELECT n FROM counters WHERE name = $1", &[&counter])?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn raise_counter(&self, counter: &str, n: u64) -> Result<()> {
        self.exec(
            "INSERT INTO counters (name, n) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET n = GREATEST(counters.n, EXCLUDED.n)",
            &[&counter, &i64_of(n)],
        )?;
        Ok(())
    }

    fn next_id(&self, counter: &str) -> Result<u64> {
        let row = self.query_one(
            "INSERT INTO counters (name, n) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET n = counters.n + 1 RETURNING n",
            &[&counter],
        )?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = self.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?;
        Ok(row.map(|r| r.get(0)))
    }

    fn meta_init(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &value],
        )?;
        self.meta(key)?.ok_or_else(|| self.codec.corrupt(key))
    }

    fn image_id(&self, path: &str) -> Result<Option<u64>> {
        let row = self.query_opt("SELECT id FROM images WHERE path = $1", &[&path])?;
        Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
    }

    fn image(&self, id: u64) -> Result<Option<ImageRecord>> {
        self.get(
            "image",
            "SELECT record::text FROM images WHERE id = $1",
            &i64_of(id),
        )
    }

    fn images(&self) -> Result<Vec<ImageRecord>> {
        self.all("image", "SELECT record::text FROM images", &[])
    }

    fn put_image(&self, image: &ImageRecord, expect: Expect) -> Result<Written> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        if let Some(w) = self.check_image(&mut tx, image, expect)? {
            return Ok(w);
        }
        if !self.write_image(&mut tx, image, expect)? {
            return Ok(Written::Moved(0));
        }
        self.commit_change(tx)?;
        Ok(Written::Yes)
    }

    fn scan(&self, id: u64) -> Result<Option<ScanRecord>> {
        self.get(
            "scan",
            "SELECT record::text FROM scans WHERE id = $1",
            &i64_of(id),
        )
    }

    fn scan_ids(&self, image: u64) -> Result<Vec<u64>> {
        let rows = self.query(
            "SELECT id FROM scans WHERE image = $1 ORDER BY id",
            &[&i64_of(image)],
        )?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .collect())
    }

    fn inventory_json(&self, scan: u64) -> Result<Option<Vec<u8>>> {
        self.blob(
            "inventory",
            "SELECT inventory FROM inventories WHERE scan = $1",
            scan,
        )
    }

    fn files_json(&self, scan: u64) -> Result<Option<Vec<u8>>> {
        self.blob(
            "files",
            "SELECT files FROM inventories WHERE scan = $1",
            scan,
        )
    }

    fn scans_many(&self, ids: &[u64]) -> Result<Vec<Option<ScanRecord>>> {
        let want: Vec<i64> = ids.iter().map(|&s| i64_of(s)).collect();
        let rows = self.query(
            "SELECT id, record::text FROM scans WHERE id = ANY($1)",
            &[&want],
        )?;
        let mut by_id: HashMap<i64, ScanRecord> = HashMap::with_capacity(rows.len());
        for r in &rows {
            by_id.insert(r.get(0), self.decode("scan", r.get::<_, &str>(1))?);
        }
        Ok(want.iter().map(|id| by_id.remove(id)).collect())
    }

    fn inventories_json(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        self.blobs(
            "inventory",
            "SELECT scan, inventory FROM inventories WHERE scan = ANY($1)",
            scans,
        )
    }

    fn files_json_many(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        self.blobs(
            "files",
            "SELECT scan, files FROM inventories WHERE scan = ANY($1)",
            scans,
        )
    }

    fn record_scan(&self, new: NewScan<'_>) -> Result<Written> {
        let inventory = self.codec.compress("inventory", new.inventory)?;
        let files = self.codec.compress("files", new.files)?;
        let scan_json = self.json("scan", new.scan)?;
        let ri = new
            .run_image
            .map(|ri| self.codec.packed("run image", ri))
            .transpose()?;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        if let Some(w) = self.check_image(&mut tx, new.image, new.expect)? {
            return Ok(w);
        }
        // The image row first: a new image's insert is what tells two collectors of one
        // new path apart.
        if !self.write_image(&mut tx, new.image, new.expect)? {
            return Ok(Written::Moved(0));
        }
        let scan = i64_of(new.scan.id);
        tx.execute(
            "INSERT INTO scans (id, image, record) VALUES ($1, $2, $3::text::jsonb)",
            &[&scan, &i64_of(new.image.id), &scan_json],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO inventories (scan, inventory, files) VALUES ($1, $2, $3)",
            &[&scan, &inventory, &files],
        )
        .map_err(|e| self.err(e))?;
        self.index_scan(&mut tx, &new)?;
        if let (Some(ri), Some(packed)) = (new.run_image, &ri) {
            tx.execute(
                "INSERT INTO run_images (run, image, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (run, image) DO UPDATE SET record = EXCLUDED.record",
                &[&ri.run, &ri.image, packed],
            )
            .map_err(|e| self.err(e))?;
        }
        self.commit_change(tx)?;
        Ok(Written::Yes)
    }

    fn put_run(&self, run: &RunRecord, event: Option<&Event>) -> Result<()> {
        let json = self.json("run", run)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO runs (id, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&run.id, &json],
        )
        .map_err(|e| self.err(e))?;
        if let Some(e) = event {
            self.insert_event(&mut tx, e)?;
        }
        self.commit(tx)
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.get("run", "SELECT record::text FROM runs WHERE id = $1", &id)
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        self.all("run", "SELECT record::text FROM runs ORDER BY id DESC", &[])
    }

    fn put_event(&self, event: &Event) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        self.insert_event(&mut tx, event)?;
        self.commit(tx)
    }

    fn events(&self, run: &str) -> Result<Vec<Event>> {
        self.all(
            "event",
            "SELECT record::text FROM events WHERE run = $1 ORDER BY time_ms, seq, n",
            &[&run],
        )
    }

    fn put_run_image(&self, ri: &RunImage) -> Result<()> {
        let packed = self.codec.packed("run image", ri)?;
        self.exec(
            "INSERT INTO run_images (run, image, record) VALUES ($1, $2, $3) \
             ON CONFLICT (run, image) DO UPDATE SET record = EXCLUDED.record",
            &[&ri.run, &ri.image, &packed],
        )?;
        Ok(())
    }

    fn run_images(&self, run: &str) -> Result<Vec<RunImage>> {
        let rows = self.query(
            "SELECT record FROM run_images WHERE run = $1 ORDER BY image",
            &[&run],
        )?;
        rows.iter()
            .map(|r| self.codec.unpack("run image", r.get(0)))
            .collect()
    }

    fn feeds(&self) -> Result<Vec<FeedRecord>> {
        self.all("feed", "SELECT record::text FROM feeds ORDER BY name", &[])
    }

    fn advisories_json(&self, feed: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = self.query(
            "SELECT id, record FROM advisories WHERE feed = $1 ORDER BY id",
            &[&feed],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn replace_feed(
        &self,
        feed: &FeedRecord,
        expect: Option<&FeedRecord>,
        upsert: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> Result<()> {
        let json = self.json("feed", feed)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('coldpatch feed ' || $1, 0))",
            &[&feed.name],
        )
        .map_err(|e| self.err(e))?;
        let stored: Option<FeedRecord> = tx
            .query_opt(
                "SELECT record::text FROM feeds WHERE name = $1",
                &[&feed.name],
            )
            .map_err(|e| self.err(e))?
            .map(|r| self.decode("feed", r.get::<_, &str>(0)))
            .transpose()?;
        if stored.as_ref() != expect {
            return Err(CatalogError::FeedMoved {
                feed: feed.name.clone(),
            });
        }
        let mut gone: Vec<&str> = remove.iter().map(String::as_str).collect();
        gone.extend(upsert.iter().map(|(id, _)| id.as_str()));
        tx.execute(
            "DELETE FROM advisories WHERE feed = $1 AND id = ANY($2)",
            &[&feed.name, &gone],
        )
        .map_err(|e| self.err(e))?;
        let sink = tx
            .copy_in("COPY advisories (feed, id, record) FROM STDIN BINARY")
            .map_err(|e| self.err(e))?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::BYTEA]);
        for (id, json) in upsert {
            w.write(&[&feed.name, id, json]).map_err(|e| self.err(e))?;
        }
        w.finish().map_err(|e| self.err(e))?;
        let sink = tx
            .copy_in("COPY advisory_names (feed, id, name) FROM STDIN BINARY")
            .map_err(|e| self.err(e))?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT]);
        for (id, json) in upsert {
            let names: AdvisoryNames =
                serde_json::from_slice(json).map_err(|_| self.codec.corrupt("advisory"))?;
            let mut all: BTreeSet<String> = names
                .aliases
                .iter()
                .map(|a| a.to_ascii_uppercase())
                .collect();
            all.insert(names.id.to_ascii_uppercase());
            for n in &all {
                w.write(&[&feed.name, id, n]).map_err(|e| self.err(e))?;
            }
        }
        w.finish().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO feeds (name, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
            &[&feed.name, &json],
        )
        .map_err(|e| self.err(e))?;
        self.commit_change(tx)
    }

    fn packages_indexed(&self, name: &str, scans: &[u64]) -> Result<Option<PackageRows>> {
        let rows = self.by_scans(
            "SELECT scan, package FROM scan_packages WHERE name = $1",
            "SELECT scan, package FROM scan_packages WHERE name = $1 AND scan = ANY($2)",
            &name,
            scans,
        )?;
        Ok(Some(
            rows.iter()
                .map(|r| (r.get::<_, i64>(0).max(0) as u64, r.get(1)))
                .collect(),
        ))
    }

    fn files_indexed(&self, sha256: &[u8; 32], scans: &[u64]) -> Result<Option<Vec<u64>>> {
        let rows = self.by_scans(
            "SELECT DISTINCT scan FROM scan_files WHERE sha256 = $1",
            "SELECT DISTINCT scan FROM scan_files WHERE sha256 = $1 AND scan = ANY($2)",
            &sha256.as_slice(),
            scans,
        )?;
        Ok(Some(
            rows.iter()
                .map(|r| r.get::<_, i64>(0).max(0) as u64)
                .collect(),
        ))
    }

    fn advisories_indexed(&self, id: &str) -> Result<Option<AdvisoryRows>> {
        let rows = self.query(
            "SELECT a.feed, a.record FROM advisories a \
                 WHERE (a.feed, a.id) IN (SELECT feed, id FROM advisory_names WHERE name = $1) \
                 ORDER BY a.feed, a.id",
            &[&id.to_ascii_uppercase()],
        )?;
        Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }

    fn scans_with_packages(&self, names: &[String], scans: &[u64]) -> Result<Option<Vec<u64>>> {
        let rows = self.by_scans(
            "SELECT DISTINCT scan FROM scan_packages WHERE (name = ANY($1) OR source_name = ANY($1))",
            "SELECT DISTINCT scan FROM scan_packages \
             WHERE (name = ANY($1) OR source_name = ANY($1)) AND scan = ANY($2)",
            &names,
            scans,
        )?;
        Ok(Some(
            rows.iter()
                .map(|r| r.get::<_, i64>(0).max(0) as u64)
                .collect(),
        ))
    }

    fn put_repo(&self, repo: &StoredRepo) -> Result<()> {
        let packed = self.codec.packed("repo", repo)?;
        self.exec(
            "INSERT INTO repos (root, record) VALUES ($1, $2) \
             ON CONFLICT (root) DO UPDATE SET record = EXCLUDED.record",
            &[&repo.index.root, &packed],
        )?;
        Ok(())
    }

    fn repo(&self, root: &str) -> Result<Option<StoredRepo>> {
        let row = self.query_opt("SELECT record FROM repos WHERE root = $1", &[&root])?;
        row.map(|r| self.codec.unpack("repo", r.get(0))).transpose()
    }

    fn repos(&self) -> Result<Vec<StoredRepo>> {
        let rows = self.query("SELECT record FROM repos ORDER BY root", &[])?;
        rows.iter()
            .map(|r| self.codec.unpack("repo", r.get(0)))
            .collect()
    }

    fn repo_roots(&self) -> Result<Vec<String>> {
        let rows = self.query("SELECT root FROM repos ORDER BY root", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn put_token(&self, token: &TokenRecord) -> Result<()> {
        self.put_record(
            "INSERT INTO tokens (id, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &token.id,
            &self.json("token", token)?,
        )
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.get(
            "token",
            "SELECT record::text FROM tokens WHERE id = $1",
            &id,
        )
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.all("token", "SELECT record::text FROM tokens ORDER BY id", &[])
    }

    fn remove_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let row = self.query_opt(
            "DELETE FROM tokens WHERE id = $1 RETURNING record::text",
            &[&id],
        )?;
        row.map(|r| self.decode("token", r.get::<_, &str>(0)))
            .transpose()
    }

    fn put_schedule(&self, s: &Schedule) -> Result<()> {
        self.put_record(
            "INSERT INTO schedules (id, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &s.id,
            &self.json("schedule", s)?,
        )
    }

    fn replace_schedule(&self, s: &Schedule, was: &Schedule) -> Result<bool> {
        let json = self.json("schedule", s)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        let stored: Option<Schedule> = tx
            .query_opt(
                "SELECT record::text FROM schedules WHERE id = $1 FOR UPDATE",
                &[&s.id],
            )
            .map_err(|e| self.err(e))?
            .map(|r| self.decode("schedule", r.get::<_, &str>(0)))
            .transpose()?;
        if stored.as_ref() != Some(was) {
            return Ok(false);
        }
        tx.execute(
            "UPDATE schedules SET record = $2::text::jsonb WHERE id = $1",
            &[&s.id, &json],
        )
        .map_err(|e| self.err(e))?;
        self.commit(tx)?;
        Ok(true)
    }

    fn schedule(&self, id: &str) -> Result<Option<Schedule>> {
        self.get(
            "schedule",
            "SELECT record::text FROM schedules WHERE id = $1",
            &id,
        )
    }

    fn schedules(&self) -> Result<Vec<Schedule>> {
        self.all(
            "schedule",
            "SELECT record::text FROM schedules ORDER BY id",
            &[],
        )
    }

    fn remove_schedule(&self, id: &str) -> Result<bool> {
        Ok(self.exec("DELETE FROM schedules WHERE id = $1", &[&id])? > 0)
    }

    fn tags(&self) -> Result<Vec<ImageTags>> {
        self.all(
            "labels",
            "SELECT record::text FROM image_labels ORDER BY image",
            &[],
        )
    }

    fn tag(&self, image: u64) -> Result<Option<ImageTags>> {
        self.get(
            "labels",
            "SELECT record::text FROM image_labels WHERE image = $1",
            &i64_of(image),
        )
    }

    fn replace_tags(&self, new: &ImageTags, was: Option<&ImageTags>) -> Result<bool> {
        let json = self.json("labels", new)?;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        let n = match was {
            // The first record: whoever inserts first wins; the other reads again.
            None => tx.execute(
                "INSERT INTO image_labels (image, record) VALUES ($1, $2::text::jsonb) \
                 ON CONFLICT (image) DO NOTHING",
                &[&i64_of(new.image), &json],
            ),
            Some(w) => tx.execute(
                "UPDATE image_labels SET record = $2::text::jsonb \
                 WHERE image = $1 AND record = $3::text::jsonb",
                &[&i64_of(new.image), &json, &self.json("labels", w)?],
            ),
        }
        .map_err(|e| self.err(e))?;
        if n != 1 {
            return Ok(false);
        }
        self.commit_change(tx)?;
        Ok(true)
    }
}
