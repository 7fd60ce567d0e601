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
    /// Size of the chunks a streamed read yields. Default 8 MiB; must not be 0.
    pub read_chunk_size: usize,
    /// Reads of up to this many bytes are returned whole (`Body::Bytes`, one positional read
    /// into one buffer); longer ones as a stream of `read_chunk_size` chunks. Default 64 MiB.
    pub stream_threshold: u64,
    /// Streaming writers gather small writes into a buffer of this size before writing them
    /// to the file; writes at least this large go straight to the file. Default 4 MiB.
    pub write_buffer_size: usize,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            fadvise: true,
            large_file_threshold: 64 * MIB,
            read_chunk_size: 8 * MIB as usize,
            stream_threshold: 64 * MIB,
            write_buffer_size: 4 * MIB as usize,
        }
    }
}

impl FsOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.read_chunk_size == 0 {
            return Err(Error::invalid_input(
                "FsOptions::read_chunk_size must not be 0",
            ));
        }
        Ok(())
    }
}
