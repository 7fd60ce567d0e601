//! [`LoaderOptions`]: every knob of the loader, each one honoured.

use std::time::Duration;

use s3dlio_store_core::{Error, Result};

use crate::plan::{Remainder, ShardSpec};

/// How the loader reads an epoch. Every field is used; see `docs/LOADER.md` for the
/// semantics. Build with struct update syntax from [`Default`]:
///
/// ```
/// use s3dlio_loader::LoaderOptions;
/// let opts = LoaderOptions { batch_size: 64, shuffle: true, seed: 7, ..Default::default() };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Samples per batch (at least 1). Default 32.
    pub batch_size: usize,
    /// Drop this rank's last batch if it is not full. Default false.
    pub drop_last: bool,
    /// Shuffle the epoch's order, from `seed` and `epoch`. A prefix dataset is then listed
    /// completely before the first read. Default false.
    pub shuffle: bool,
    /// Seed of the shuffle; the same on every rank. Default 0.
    pub seed: u64,
    /// The epoch [`Loader::stream`](crate::Loader::stream) reads; each epoch has its own
    /// order. Default 0.
    pub epoch: u64,
    /// Samples of this rank's epoch sequence already consumed: resume point for
    /// [`Loader::stream`](crate::Loader::stream). Default 0.
    pub consumed: u64,
    /// Batches fetched ahead of the consumer. Default 8.
    pub prefetch: usize,
    /// Requests in flight at once (ranged parts of one object count one each). Default 64.
    pub max_in_flight: usize,
    /// Limit of one request (a GET with its body, or a listing page). `None`: no limit.
    /// Default 60 s.
    pub request_timeout: Option<Duration>,
    /// Further attempts after a retryable failure (`Error::is_retryable`: timeouts,
    /// resets, rate limiting). Default 3.
    pub retries: u32,
    /// First backoff before a retry; doubles per attempt (capped at 30 s), with jitter.
    /// Default 100 ms.
    pub retry_backoff: Duration,
    /// This process's rank. `None`: from the environment variable `RANK`, else 0.
    pub rank: Option<usize>,
    /// Number of ranks. `None`: from `WORLD_SIZE`, else 1.
    pub world_size: Option<usize>,
    /// Data-loading workers per rank (PyTorch DataLoader workers). Default 1.
    pub num_workers: usize,
    /// This worker, below `num_workers`. Default 0.
    pub worker_id: usize,
    /// How ranks are evened out so every rank gets the same number of batches. Default
    /// [`Remainder::Pad`].
    pub remainder: Remainder,
    /// `true`: batches hold the planned samples in the planned order. `false`: batches are
    /// formed from samples in the order they arrive (no head-of-line blocking); every
    /// planned sample still comes exactly once. Default true.
    pub ordered: bool,
    /// Bound on the bytes fetched but not yet handed to the consumer (in flight, in the
    /// batch being formed, in prefetched batches). Raised to one batch if smaller. Default
    /// 1 GiB.
    pub max_prefetch_bytes: u64,
    /// Objects at least this large (size known from the listing) are read as concurrent
    /// ranged GETs of `range_part_size` bytes. `None`: whole-object GETs, leaving large
    /// objects to the backend (store-s3 already splits its reads). Default `None`.
    pub range_threshold: Option<u64>,
    /// Part size of ranged reads. Default 8 MiB.
    pub range_part_size: u64,
    /// Skip samples that fail (after retries) and count them, instead of ending the epoch
    /// with the error. Default false.
    pub skip_errors: bool,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            drop_last: false,
            shuffle: false,
            seed: 0,
            epoch: 0,
            consumed: 0,
            prefetch: 8,
            max_in_flight: 64,
            request_timeout: Some(Duration::from_secs(60)),
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            rank: None,
            world_size: None,
            num_workers: 1,
            worker_id: 0,
            remainder: Remainder::Pad,
            ordered: true,
            max_prefetch_bytes: 1 << 30,
            range_threshold: None,
            range_part_size: 8 << 20,
            skip_errors: false,
        }
    }
}

fn env_usize(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::invalid_input(format!("environment variable {name}={v:?} is not a number"))
        }),
        Err(_) => Ok(None),
    }
}

impl LoaderOptions {
    /// The rank and world size in force: the fields, else `RANK` / `WORLD_SIZE` (as set by
    /// `torchrun`), else 0 and 1. A set but malformed variable is an error, not ignored.
    pub fn resolved_rank(&self) -> Result<(usize, usize)> {
        let rank = match self.rank {
            Some(r) => r,
            None => env_usize("RANK")?.unwrap_or(0),
        };
        let world = match self.world_size {
            Some(w) => w,
            None => env_usize("WORLD_SIZE")?.unwrap_or(1),
        };
        Ok((rank, world))
    }

    /// The sharding spec for `consumed` samples already read.
    pub fn shard_spec(&self, consumed: u64) -> Result<ShardSpec> {
        let (rank, world_size) = self.resolved_rank()?;
        let spec = ShardSpec {
            rank,
            world_size,
            worker_id: self.worker_id,
            num_workers: self.num_workers,
            batch_size: self.batch_size,
            drop_last: self.drop_last,
            remainder: self.remainder,
            consumed,
        };
        spec.validate().map_err(Error::invalid_input)?;
        Ok(spec)
    }

    /// Reject option values that cannot work.
    pub fn validate(&self) -> Result<()> {
        self.shard_spec(self.consumed)?;
        let bad = |m: &str| Err(Error::invalid_input(format!("loader option {m}")));
        if self.prefetch == 0 {
            return bad("prefetch must be at least 1");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        if self.range_part_size == 0 {
            return bad("range_part_size must be at least 1");
        }
        if self.request_timeout == Some(Duration::ZERO) {
            return bad("request_timeout must be above zero (None for no limit)");
        }
        Ok(())
    }
}
