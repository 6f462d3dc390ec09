//! SHA-256 of file content on worker threads, while the main thread walks metadata.
//!
//! Workers read files by inode number through their own [`RawExt4`] over the image's one
//! shared device (one read cache, one byte counter): hashing runs on every core while
//! reads stay shared. An inode the fast path does not handle (inline data, encryption) is
//! handed back to the walking thread, which reads it through ext4-view.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use coldpatch_disk::ext4raw::RawExt4;
use coldpatch_disk::Disk;

/// A file to hash: its record index and inode number.
type Job = (usize, u64);

pub enum Hashed {
    Done(String, u64),
    Failed(String),
    /// The fast path cannot read this inode; hash it by path instead.
    ByPath,
}

pub struct Outcome {
    pub index: usize,
    pub result: Hashed,
}

pub struct HashPool {
    jobs: Option<Sender<Job>>,
    results: Receiver<Outcome>,
    workers: Vec<JoinHandle<()>>,
}

impl HashPool {
    /// Starts `threads` workers on the ext volume numbered `volume`; `None` when that
    /// filesystem is not one the fast path reads (the walk then hashes by itself).
    pub fn start(disk: &Disk, volume: u32, threads: usize) -> Option<HashPool> {
        let vol = disk.volumes.iter().find(|v| v.partition.number == volume)?;
        let (job_tx, job_rx) = channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = channel();
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let raw = disk.raw_ext4(vol)?;
            let rx = Arc::clone(&job_rx);
            let tx = res_tx.clone();
            workers.push(std::thread::spawn(move || worker(raw, &rx, &tx)));
        }
        Some(HashPool {
            jobs: Some(job_tx),
            results: res_rx,
            workers,
        })
    }

    pub fn submit(&self, index: usize, ino: u64) {
        if let Some(tx) = &self.jobs {
            // A send fails only if every worker has gone; the caller then reports the
            // files without an outcome.
            let _ = tx.send((index, ino));
        }
    }

    /// Waits for every job and returns the outcomes.
    pub fn drain(mut self) -> Vec<Outcome> {
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            // A worker that panicked leaves its files without an outcome.
            let _ = w.join();
        }
        self.results.try_iter().collect()
    }
}

fn worker(mut raw: RawExt4, jobs: &Mutex<Receiver<Job>>, results: &Sender<Outcome>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((index, ino)) = job else { return };
        let result = match raw.inode(ino) {
            Ok(inode) if inode.needs_fallback() => Hashed::ByPath,
            Ok(inode) => match raw.reader(&inode) {
                Ok(r) => match crate::walk::digest(r, &mut buf) {
                    Ok((h, n)) => Hashed::Done(h, n),
                    Err(e) => Hashed::Failed(e),
                },
                Err(e) => Hashed::Failed(e.to_string()),
            },
            Err(e) => Hashed::Failed(e.to_string()),
        };
        if results.send(Outcome { index, result }).is_err() {
            return;
        }
    }
}
