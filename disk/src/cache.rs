//! A read cache of aligned chunks between the filesystem reader and the image.
//!
//! ext4-view fetches 32 KiB on each miss of its own small block cache, so without this the
//! same inode-table and directory blocks are read from the image again and again (we saw
//! 1.5 GiB read to walk a 300 MiB disk). Chunks are aligned, so a compressed qcow2 cluster
//! is inflated once per chunk rather than once per block.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::error::Result;
use crate::file::ReadAt;

pub const CHUNK: u64 = 128 * 1024;
/// 512 chunks of 128 KiB: 64 MiB.
pub const DEFAULT_BYTES: usize = 64 << 20;

pub struct ChunkCache {
    inner: Box<dyn ReadAt>,
    size: u64,
    chunks: LruCache<u64, Box<[u8]>>,
    capacity: usize,
}

impl ChunkCache {
    /// A cache of at most `bytes` (at least one chunk).
    pub fn new(inner: Box<dyn ReadAt>, bytes: usize) -> ChunkCache {
        let size = inner.size();
        let capacity = (bytes / CHUNK as usize).max(1);
        ChunkCache {
            inner,
            size,
            chunks: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            capacity,
        }
    }

    fn chunk(&mut self, index: u64) -> Result<&[u8]> {
        if !self.chunks.contains(&index) {
            let start = index * CHUNK;
            let len = CHUNK.min(self.size - start) as usize;
            let mut buf = match self.chunks.len() == self.capacity {
                // Reuse the evicted chunk's allocation.
                true => self.chunks.pop_lru().map(|(_, b)| b).unwrap_or_default(),
                false => Box::default(),
            };
            if buf.len() != len {
                buf = vec![0u8; len].into_boxed_slice();
            }
            self.inner.read_at(start, &mut buf)?;
            self.chunks.put(index, buf);
        }
        // Present: inserted just above if it was missing.
        Ok(self.chunks.get(&index).map(|b| &b[..]).unwrap_or_default())
    }
}

impl ReadAt for ChunkCache {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, mut offset: u64, mut buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            // Let the inner reader produce its own precise error.
            return self.inner.read_at(offset, buf);
        }
        // File data read in large pieces is not worth caching: it passes straight through,
        // so the cache keeps metadata and small files.
        if buf.len() as u64 >= 2 * CHUNK {
            return self.inner.read_at(offset, buf);
        }
        while !buf.is_empty() {
            let index = offset / CHUNK;
            let within = (offset % CHUNK) as usize;
            let data = self.chunk(index)?;
            let n = (data.len() - within).min(buf.len());
            let (head, rest) = buf.split_at_mut(n);
            head.copy_from_slice(&data[within..within + n]);
            buf = rest;
            offset += n as u64;
        }
        Ok(())
    }
}
