//! The embedded backend: one sled store in the catalog's directory, one tree per kind of
//! record, records as JSON (large ones, inventories, file lists, run images and
//! repository indexes, zstd-compressed). Every key encoding lives here.
//!
//! Trees: `images` (id, u64 BE -> ImageRecord), `paths` (path -> image id), `scans` (id ->
//! ScanRecord), `image_scans` (image id ++ scan id -> ()), `inventories` and `files` (scan
//! id -> zstd JSON), `meta` (name -> bytes: counters, the appliance id), `feeds` (name ->
//! FeedRecord), `advisories` (feed, NUL, advisory id -> JSON; small, and plain JSON loads
//! faster than compressed: a scan reads them all), `repos` (root -> zstd StoredRepo),
//! `runs` (id -> RunRecord), `run_images` (run id, NUL, image path -> zstd RunImage),
//! `events` (run id, NUL, time ms BE, seq BE -> Event), `tokens` (id -> TokenRecord),
//! `schedules` (id -> Schedule).
//!
//! The layout's version is `meta/schema_version` (u64 BE); a catalog without one is
//! from before versions were written down and has layout 1. Layout 2 is the same (it
//! added PostgreSQL's job queue): opening a 1 writes 2.
//!
//! One process at a time: opening takes an exclusive `flock` on `catalog.lock` in the
//! directory (not blocking), so a catalog another process holds is told apart from any
//! other failure by the lock's own answer, before sled is opened at all.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::Codec;
use super::{Backend, Expect, NewScan, Written, SCHEMA_VERSION};
use crate::error::{CatalogError, Result};
use crate::labels::ImageTags;
use crate::model::{ImageRecord, ScanRecord};
use crate::{Event, FeedRecord, RunImage, RunRecord, Schedule, StoredRepo, TokenRecord};

pub(crate) struct Sled {
    codec: Codec,
    db: sled::Db,
    images: sled::Tree,
    paths: sled::Tree,
    scans: sled::Tree,
    image_scans: sled::Tree,
    inventories: sled::Tree,
    files: sled::Tree,
    meta: sled::Tree,
    feeds: sled::Tree,
    advisories: sled::Tree,
    repos: sled::Tree,
    runs: sled::Tree,
    run_images: sled::Tree,
    events: sled::Tree,
    tokens: sled::Tree,
    schedules: sled::Tree,
    /// Image id (big-endian) → `ImageTags`.
    labels: sled::Tree,
    _lock: Flock<File>,
}

/// `a NUL b`: keys of records that belong to a run or a feed.
fn key(a: &str, tail: &[u8]) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(tail);
    k
}

fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Why a transaction gave up.
enum Abort {
    /// The image had moved on to this version.
    Moved(u32),
    Corrupt(&'static str),
    /// The feed record was not what the import started from.
    FeedMoved,
}

const SCHEMA_KEY: &str = "schema_version";

fn be_u64(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

impl Sled {
    pub(crate) fn open(dir: &Path) -> Result<Sled> {
        let describe = format!("sled catalog at {}", dir.display());
        let store = |source: std::io::Error| CatalogError::Store {
            catalog: describe.clone(),
            source: source.into(),
        };
        std::fs::create_dir_all(dir).map_err(store)?;
        let lock_file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("catalog.lock"))
            .map_err(store)?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(CatalogError::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err((_, errno)) => return Err(store(std::io::Error::from(errno))),
        };
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| CatalogError::Store {
                catalog: describe.clone(),
                source: e.into(),
            })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|e| CatalogError::Store {
                catalog: describe.clone(),
                source: e.into(),
            })
        };
        let sled = Sled {
            images: tree("images")?,
            paths: tree("paths")?,
            scans: tree("scans")?,
            image_scans: tree("image_scans")?,
            inventories: tree("inventories")?,
            files: tree("files")?,
            meta: tree("meta")?,
            feeds: tree("feeds")?,
            advisories: tree("advisories")?,
            repos: tree("repos")?,
            runs: tree("runs")?,
            run_images: tree("run_images")?,
            events: tree("events")?,
            tokens: tree("tokens")?,
            schedules: tree("schedules")?,
            labels: tree("labels")?,
            db,
            codec: Codec { describe },
            _lock: lock,
        };
        sled.check_schema()?;
        Ok(sled)
    }

    /// Writes the layout version down, or refuses a catalog of a newer one.
    fn check_schema(&self) -> Result<()> {
        match self.meta.get(SCHEMA_KEY).map_err(|e| self.err(e))? {
            None => {
                self.meta
                    .insert(SCHEMA_KEY, &(SCHEMA_VERSION as u64).to_be_bytes())
                    .map_err(|e| self.err(e))?;
                self.flush()
            }
            Some(v) => {
                let found = be_u64(&v).ok_or_else(|| self.codec.corrupt(SCHEMA_KEY))?;
                let found = i64::try_from(found).map_err(|_| self.codec.corrupt(SCHEMA_KEY))?;
                if found > SCHEMA_VERSION {
                    return Err(CatalogError::Newer {
                        catalog: self.codec.describe.clone(),
                        found,
                        known: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Versions 1 to 3 lay sled out alike (2 added PostgreSQL's queue, 3
                    // a tree of labels, empty until the first one).
                    self.meta
                        .insert(SCHEMA_KEY, &(SCHEMA_VERSION as u64).to_be_bytes())
                        .map_err(|e| self.err(e))?;
                    return self.flush();
                }
                Ok(())
            }
        }
    }

    fn err(&self, e: sled::Error) -> CatalogError {
        self.codec.store(e)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        what: &str,
        k: &[u8],
    ) -> Result<Option<T>> {
        tree.get(k)
            .map_err(|e| self.err(e))?
            .map(|v| self.codec.decode(what, &v))
            .transpose()
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, what: &str, k: &[u8], v: &T) -> Result<()> {
        tree.insert(k, self.codec.json(what, v)?)
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    /// Every value of a key range, decoded with `read`.
    fn each<T>(
        &self,
        kvs: impl IntoIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        read: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        kvs.into_iter()
            .map(|kv| {
                let (_, v) = kv.map_err(|e| self.err(e))?;
                read(&v)
            })
            .collect()
    }

    fn all<T: DeserializeOwned>(
        &self,
        what: &str,
        kvs: impl IntoIterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<T>> {
        self.each(kvs, |v| self.codec.decode(what, v))
    }

    /// A transaction's outcome as ours, flushed to disk when it went through.
    fn committed(&self, res: std::result::Result<(), TransactionError<Abort>>) -> Result<Written> {
        match res {
            Ok(()) => {
                self.flush()?;
                Ok(Written::Yes)
            }
            Err(TransactionError::Abort(Abort::Moved(v))) => Ok(Written::Moved(v)),
            Err(TransactionError::Abort(Abort::Corrupt(what))) => Err(self.codec.corrupt(what)),
            Err(TransactionError::Abort(Abort::FeedMoved)) => Err(CatalogError::FeedMoved {
                feed: String::new(),
            }),
            Err(TransactionError::Storage(e)) => Err(self.err(e)),
        }
    }
}

impl Backend for Sled {
    fn describe(&self) -> &str {
        &self.codec.describe
    }

    fn kind(&self) -> &'static str {
        "sled"
    }

    fn schema_version(&self) -> Result<i64> {
        let v = self.meta.get(SCHEMA_KEY).map_err(|e| self.err(e))?;
        v.and_then(|v| be_u64(&v))
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| self.codec.corrupt(SCHEMA_KEY))
    }

    fn counter(&self, counter: &str) -> Result<u64> {
        let v = self.meta.get(counter).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| be_u64(&v)).unwrap_or(0))
    }

    fn raise_counter(&self, counter: &str, n: u64) -> Result<()> {
        self.meta
            .update_and_fetch(counter, |old| {
                let cur = old.and_then(be_u64).unwrap_or(0);
                Some(cur.max(n).to_be_bytes().to_vec())
            })
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    fn next_id(&self, counter: &str) -> Result<u64> {
        let v = self
            .meta
            .update_and_fetch(counter, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map_or(1, u64::from_be_bytes))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    fn meta_init(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        // Only the first writer wins; everybody reads what is stored.
        let _ = self
            .meta
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))
            .map_err(|e| self.err(e))?;
        self.flush()?;
        self.meta(key)?.ok_or_else(|| self.codec.corrupt(key))
    }

    fn image_id(&self, path: &str) -> Result<Option<u64>> {
        match self.paths.get(path.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| self.codec.corrupt("image path")),
            None => Ok(None),
        }
    }

    fn image(&self, id: u64) -> Result<Option<ImageRecord>> {
        self.get(&self.images, "image", &id_key(id))
    }

    fn images(&self) -> Result<Vec<ImageRecord>> {
        self.all("image", &self.images)
    }

    fn put_image(&self, image: &ImageRecord, expect: Expect) -> Result<Written> {
        let k = id_key(image.id);
        let json = self.codec.json("image", image)?;
        let res = (&self.images, &self.paths).transaction(|(images, paths)| {
            let stored = images.get(k)?;
            let moved = |v| Err(ConflictableTransactionError::Abort(Abort::Moved(v)));
            match (expect, &stored) {
                (Expect::Any, _) | (Expect::NewImage, None) => {}
                (Expect::NewImage, Some(_)) => return moved(0),
                (Expect::Version(_), None) => {
                    return Err(ConflictableTransactionError::Abort(Abort::Corrupt("image")))
                }
                (Expect::Version(want), Some(b)) => {
                    let cur = serde_json::from_slice::<ImageRecord>(b)
                        .map_err(|_| ConflictableTransactionError::Abort(Abort::Corrupt("image")))?
                        .current_version;
                    if cur != want {
                        return moved(cur);
                    }
                }
            }
            images.insert(&k, json.clone())?;
            paths.insert(image.path.as_bytes(), &k)?;
            Ok(())
        });
        self.committed(res)
    }

    fn scan(&self, id: u64) -> Result<Option<ScanRecord>> {
        self.get(&self.scans, "scan", &id_key(id))
    }

    fn scan_ids(&self, image: u64) -> Result<Vec<u64>> {
        self.image_scans
            .scan_prefix(id_key(image))
            .map(|kv| {
                let (k, _) = kv.map_err(|e| self.err(e))?;
                k.get(8..16)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| self.codec.corrupt("image_scans key"))
            })
            .collect()
    }

    fn inventory_json(&self, scan: u64) -> Result<Option<Vec<u8>>> {
        self.inventories
            .get(id_key(scan))
            .map_err(|e| self.err(e))?
            .map(|v| self.codec.unpack_json("inventory", &v))
            .transpose()
    }

    fn files_json(&self, scan: u64) -> Result<Option<Vec<u8>>> {
        self.files
            .get(id_key(scan))
            .map_err(|e| self.err(e))?
            .map(|v| self.codec.unpack_json("files", &v))
            .transpose()
    }

    // Batches are read in parallel: sled serves readers on many threads at once, and a
    // fleet scan is bound by reading and unpacking its blobs.
    fn inventories_json(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        scans.par_iter().map(|&s| self.inventory_json(s)).collect()
    }

    fn files_json_many(&self, scans: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        scans.par_iter().map(|&s| self.files_json(s)).collect()
    }

    fn record_scan(&self, new: NewScan<'_>) -> Result<Written> {
        // The blobs go first, under a scan id nothing refers to yet: a crash before the
        // transaction leaves only unreferenced blobs.
        let key = id_key(new.scan.id);
        self.inventories
            .insert(key, self.codec.compress("inventory", new.inventory)?)
            .map_err(|e| self.err(e))?;
        self.files
            .insert(key, self.codec.compress("files", new.files)?)
            .map_err(|e| self.err(e))?;
        let image_key = id_key(new.image.id);
        let image_json = self.codec.json("image", new.image)?;
        let scan_json = self.codec.json("scan", new.scan)?;
        let mut link = image_key.to_vec();
        link.extend_from_slice(&key);
        let ri = new
            .run_image
            .map(|ri| Ok::<_, CatalogError>((key_ri(ri), self.codec.packed("run image", ri)?)))
            .transpose()?;
        let res = (
            &self.images,
            &self.paths,
            &self.scans,
            &self.image_scans,
            &self.run_images,
        )
            .transaction(|(images, paths, scans, links, ris)| {
                match new.expect {
                    Expect::Any => {}
                    Expect::NewImage => {
                        if paths.get(new.image.path.as_bytes())?.is_some() {
                            return Err(ConflictableTransactionError::Abort(Abort::Moved(0)));
                        }
                    }
                    Expect::Version(want) => {
                        let stored = images
                            .get(image_key)?
                            .ok_or(ConflictableTransactionError::Abort(Abort::Corrupt("image")))?;
                        let stored: ImageRecord =
                            serde_json::from_slice(&stored).map_err(|_| {
                                ConflictableTransactionError::Abort(Abort::Corrupt("image"))
                            })?;
                        if stored.current_version != want {
                            return Err(ConflictableTransactionError::Abort(Abort::Moved(
                                stored.current_version,
                            )));
                        }
                    }
                }
                scans.insert(&key, scan_json.clone())?;
                links.insert(link.clone(), vec![])?;
                images.insert(&image_key, image_json.clone())?;
                paths.insert(new.image.path.as_bytes(), &image_key)?;
                if let Some((k, v)) = &ri {
                    ris.insert(k.clone(), v.clone())?;
                }
                Ok(())
            });
        self.committed(res)
    }

    fn put_run(&self, run: &RunRecord, event: Option<&Event>) -> Result<()> {
        let run_json = self.codec.json("run", run)?;
        let ev = event
            .map(|e| Ok::<_, CatalogError>((key_event(e), self.codec.json("event", e)?)))
            .transpose()?;
        let res = (&self.runs, &self.events).transaction(|(runs, events)| {
            runs.insert(run.id.as_bytes(), run_json.clone())?;
            if let Some((k, v)) = &ev {
                events.insert(k.clone(), v.clone())?;
            }
            Ok(())
        });
        self.committed(res).map(|_| ())
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.get(&self.runs, "run", id.as_bytes())
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        self.all("run", self.runs.iter().rev())
    }

    fn put_event(&self, event: &Event) -> Result<()> {
        self.put(&self.events, "event", &key_event(event), event)
    }

    fn events(&self, run: &str) -> Result<Vec<Event>> {
        self.all("event", self.events.scan_prefix(key(run, &[])))
    }

    fn put_run_image(&self, ri: &RunImage) -> Result<()> {
        self.run_images
            .insert(key_ri(ri), self.codec.packed("run image", ri)?)
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    fn run_images(&self, run: &str) -> Result<Vec<RunImage>> {
        self.each(self.run_images.scan_prefix(key(run, &[])), |v| {
            self.codec.unpack("run image", v)
        })
    }

    fn feeds(&self) -> Result<Vec<FeedRecord>> {
        self.all("feed", &self.feeds)
    }

    fn advisories_json(&self, feed: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = key(feed, &[]);
        self.advisories
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.err(e))?;
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    fn replace_feed(
        &self,
        feed: &FeedRecord,
        expect: Option<&FeedRecord>,
        upsert: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> Result<()> {
        let expect = expect.map(|e| self.codec.json("feed", e)).transpose()?;
        let mut batch = sled::Batch::default();
        for (id, json) in upsert {
            batch.insert(key(&feed.name, id.as_bytes()), json.as_slice());
        }
        for id in remove {
            batch.remove(key(&feed.name, id.as_bytes()));
        }
        let rec = self.codec.json("feed", feed)?;
        let res = (&self.advisories, &self.feeds).transaction(|(adv, feeds)| {
            let stored = feeds.get(feed.name.as_bytes())?;
            let same = match (&stored, &expect) {
                (None, None) => true,
                (Some(s), Some(e)) => {
                    serde_json::from_slice::<FeedRecord>(s).ok()
                        == serde_json::from_slice::<FeedRecord>(e).ok()
                }
                _ => false,
            };
            if !same {
                return Err(ConflictableTransactionError::Abort(Abort::FeedMoved));
            }
            adv.apply_batch(&batch)?;
            feeds.insert(feed.name.as_bytes(), rec.clone())?;
            Ok(())
        });
        match self.committed(res) {
            Err(CatalogError::FeedMoved { .. }) => Err(CatalogError::FeedMoved {
                feed: feed.name.clone(),
            }),
            r => r.map(|_| ()),
        }
    }

    fn put_repo(&self, repo: &StoredRepo) -> Result<()> {
        self.repos
            .insert(repo.index.root.as_bytes(), self.codec.packed("repo", repo)?)
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    fn repo(&self, root: &str) -> Result<Option<StoredRepo>> {
        self.repos
            .get(root.as_bytes())
            .map_err(|e| self.err(e))?
            .map(|v| self.codec.unpack("repo", &v))
            .transpose()
    }

    fn repos(&self) -> Result<Vec<StoredRepo>> {
        self.each(&self.repos, |v| self.codec.unpack("repo", v))
    }

    fn repo_roots(&self) -> Result<Vec<String>> {
        self.repos
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(|e| self.err(e))?;
                Ok(String::from_utf8_lossy(&k).into_owned())
            })
            .collect()
    }

    fn put_token(&self, token: &TokenRecord) -> Result<()> {
        self.put(&self.tokens, "token", token.id.as_bytes(), token)
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.get(&self.tokens, "token", id.as_bytes())
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.all("token", self.tokens.iter())
    }

    fn remove_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let v = self.tokens.remove(id.as_bytes()).map_err(|e| self.err(e))?;
        self.flush()?;
        v.map(|v| self.codec.decode("token", &v)).transpose()
    }

    fn put_schedule(&self, s: &Schedule) -> Result<()> {
        self.put(&self.schedules, "schedule", s.id.as_bytes(), s)
    }

    fn replace_schedule(&self, s: &Schedule, was: &Schedule) -> Result<bool> {
        let new = self.codec.json("schedule", s)?;
        let res = self.schedules.transaction(|t| {
            let stored = t.get(s.id.as_bytes())?;
            let same = stored
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Schedule>(b).ok())
                .is_some_and(|st| st == *was);
            if !same {
                return Err(ConflictableTransactionError::Abort(Abort::Moved(0)));
            }
            t.insert(s.id.as_bytes(), new.clone())?;
            Ok(())
        });
        Ok(self.committed(res)? == Written::Yes)
    }

    fn schedule(&self, id: &str) -> Result<Option<Schedule>> {
        self.get(&self.schedules, "schedule", id.as_bytes())
    }

    fn schedules(&self) -> Result<Vec<Schedule>> {
        self.all("schedule", self.schedules.iter())
    }

    fn remove_schedule(&self, id: &str) -> Result<bool> {
        let v = self
            .schedules
            .remove(id.as_bytes())
            .map_err(|e| self.err(e))?;
        self.flush()?;
        Ok(v.is_some())
    }

    fn tags(&self) -> Result<Vec<ImageTags>> {
        self.all("labels", self.labels.iter())
    }

    fn tag(&self, image: u64) -> Result<Option<ImageTags>> {
        self.get(&self.labels, "labels", &id_key(image))
    }

    fn replace_tags(&self, new: &ImageTags, was: Option<&ImageTags>) -> Result<bool> {
        let json = self.codec.json("labels", new)?;
        let k = id_key(new.image);
        let res = self.labels.transaction(|t| {
            let stored = t.get(k)?;
            let same = match (stored.as_deref(), was) {
                (None, None) => true,
                (Some(b), Some(w)) => {
                    serde_json::from_slice::<ImageTags>(b).is_ok_and(|st| st == *w)
                }
                _ => false,
            };
            if !same {
                return Err(ConflictableTransactionError::Abort(Abort::Moved(0)));
            }
            t.insert(&k, json.clone())?;
            Ok(())
        });
        Ok(self.committed(res)? == Written::Yes)
    }
}

fn key_ri(ri: &RunImage) -> Vec<u8> {
    key(&ri.run, ri.image.as_bytes())
}

/// Time first, then the per-process sequence: events of several processes of one run
/// (a resumed sweep) stay in order.
fn key_event(e: &Event) -> Vec<u8> {
    let mut tail = e.time_ms.to_be_bytes().to_vec();
    tail.extend_from_slice(&e.seq.to_be_bytes());
    key(&e.run, &tail)
}
