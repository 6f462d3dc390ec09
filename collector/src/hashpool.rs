//! SHA-256 of file content on worker threads, while the main thread walks metadata.
//!
//! `ext4-view`'s `Ext4` is not `Send` and re-resolves every path from the root through a
//! small block cache shared by data and metadata, so one thread reading every file is
//! CPU-bound well below the disk's speed. Each worker therefore gets its own independently
//! opened [`Disk`] (its own file handles, qcow2 tables and read cache) and its own `Ext4`.
//! Jobs go out on one channel, results come back on another.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use coldpatch_disk::{Disk, DiskError, GuestFs, OpenOptions};

use crate::error::CollectError;

/// Read cache of each worker's disk: workers read file data mostly once, in order.
const WORKER_CACHE: usize = 16 << 20;

/// One file's hash, or why it could not be read.
pub struct Outcome {
    pub index: usize,
    pub result: Result<(String, u64), String>,
}

struct WorkerEnd {
    bytes_read: u64,
    fatal: Option<DiskError>,
}

pub struct HashPool {
    jobs: Option<Sender<(usize, Vec<u8>)>>,
    results: Receiver<Outcome>,
    workers: Vec<JoinHandle<WorkerEnd>>,
}

/// What the pool leaves behind when it is drained.
pub struct Drained {
    pub outcomes: Vec<Outcome>,
    pub bytes_read: u64,
    pub fatal: Option<DiskError>,
}

impl HashPool {
    /// Starts `threads` workers on the ext volume numbered `volume` of `disk`'s image.
    pub fn start(
        disk: &Disk,
        open: &OpenOptions,
        volume: u32,
        threads: usize,
    ) -> Result<HashPool, CollectError> {
        let (job_tx, job_rx) = channel::<(usize, Vec<u8>)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = channel();
        let opts = OpenOptions {
            cache_bytes: WORKER_CACHE,
            ..open.clone()
        };
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let own = Disk::open(&disk.path, &opts)?;
            let rx = Arc::clone(&job_rx);
            let tx = res_tx.clone();
            workers.push(std::thread::spawn(move || worker(own, volume, &rx, &tx)));
        }
        Ok(HashPool {
            jobs: Some(job_tx),
            results: res_rx,
            workers,
        })
    }

    pub fn submit(&self, index: usize, path: Vec<u8>) {
        if let Some(tx) = &self.jobs {
            // A send fails only if every worker has gone; `drain` then reports the files
            // without an outcome.
            let _ = tx.send((index, path));
        }
    }

    /// Waits for every job and returns the outcomes.
    pub fn drain(mut self) -> Drained {
        drop(self.jobs.take());
        let mut bytes_read = 0;
        let mut fatal = None;
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(end) => {
                    bytes_read += end.bytes_read;
                    if fatal.is_none() {
                        fatal = end.fatal;
                    }
                }
                Err(_) => {
                    // A worker panicked: its files simply have no outcome.
                }
            }
        }
        Drained {
            outcomes: self.results.try_iter().collect(),
            bytes_read,
            fatal,
        }
    }
}

fn worker(
    disk: Disk,
    volume: u32,
    jobs: &Mutex<Receiver<(usize, Vec<u8>)>>,
    results: &Sender<Outcome>,
) -> WorkerEnd {
    let vol = disk
        .volumes
        .iter()
        .find(|v| v.partition.number == volume)
        .cloned();
    let fs = vol
        .ok_or_else(|| format!("volume {volume} vanished"))
        .and_then(|v| disk.open_ext4(&v).map_err(|e| e.to_string()));
    let mut buf = vec![0u8; 256 * 1024];
    let mut fs = fs;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok((index, path)) = job else { break };
        let result = match fs.as_mut() {
            Ok(fs) => crate::walk::hash_stream(fs as &mut dyn GuestFs, &path, &mut buf),
            Err(e) => Err(e.clone()),
        };
        if results.send(Outcome { index, result }).is_err() {
            break;
        }
    }
    WorkerEnd {
        bytes_read: disk.bytes_read(),
        fatal: disk.take_error(),
    }
}
