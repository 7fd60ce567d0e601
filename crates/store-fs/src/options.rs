//! Tuning of an [`FsStore`](crate::FsStore).

use s3dlio_store_core::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// How an [`FsStore`](crate::FsStore) reads and writes. `Default` suits most workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsOptions {
    /// Make each completed write durable: `fsync` the file before the rename that publishes
    /// it, then the directory (and any directories the write created). Default `false`:
    /// writes are atomic but may be lost in a crash.
    pub fsync: bool,
    /// Give the kernel `posix_fadvise` hints on reads (see
    /// [`large_file_threshold`](Self::large_file_threshold)). Default `true`.
    pub fadvise: bool,
    /// With `fadvise` on: a read of at least this many bytes is advised
    /// `POSIX_FADV_SEQUENTIAL` (a larger read-ahead window for this open file only), and a
    /// partial read of a file at least this large is advised `POSIX_FADV_RANDOM` (read only
    /// what is asked). Other reads get no hint: one positional read covers a small file
    /// anyway, and the kernel's own heuristics serve it well. Default 64 MiB.
    pub large_file_threshold: u64,
    /// Size of the chunks a streamed read (`GetResult::into_stream`) yields. Chunks of about
    /// 1 MiB stay in the CPU cache while the caller consumes them, which is what lets a
    /// streamed read outrun `cat`. Default 1 MiB; must not be 0.
    pub read_chunk_size: usize,
    /// Reads of up to this many bytes happen at once, in the task that opens the file, and
    /// come back whole. Larger ones are deferred until the caller consumes them: read whole
    /// into one buffer by `GetResult::bytes`, or in `read_chunk_size` chunks by
    /// `GetResult::into_stream`. Default 1 MiB.
    pub eager_read_max: usize,
    /// Streaming writers gather small writes into a buffer of this size before writing them
    /// to the file; writes at least this large go straight to the file. Default 4 MiB.
    pub write_buffer_size: usize,
    /// Idle memory kept for reuse by large reads (see `s3dlio_store_core::pool`): buffers of reads
    /// of 512 KiB and more return here when the caller drops them, so the next read copies
    /// into memory that is already faulted in. Default 256 MiB; 0 turns pooling off.
    pub buffer_pool_bytes: usize,
    /// Threads doing this store's blocking file I/O (they start on first use and stop with
    /// the store). Page-cache work wants about two per core; slow devices or network file
    /// systems, more to keep requests in flight. Default: twice the available cores, at
    /// least 4.
    pub io_threads: usize,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            fadvise: true,
            large_file_threshold: 64 * MIB,
            read_chunk_size: MIB as usize,
            eager_read_max: MIB as usize,
            write_buffer_size: 4 * MIB as usize,
            buffer_pool_bytes: 256 * MIB as usize,
            io_threads: std::thread::available_parallelism()
                .map_or(4, |n| 2 * n.get())
                .max(4),
        }
    }
}

impl FsOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.io_threads == 0 {
            return Err(Error::invalid_input("FsOptions::io_threads must not be 0"));
        }
        if self.read_chunk_size == 0 {
            return Err(Error::invalid_input(
                "FsOptions::read_chunk_size must not be 0",
            ));
        }
        Ok(())
    }
}
