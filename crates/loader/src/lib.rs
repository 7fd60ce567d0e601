//! Datasets and the async data loader of s3dlio: keep a training loop fed from any backend.
//!
//! A [`Dataset`] is an ordered list of samples: the objects under a URI prefix (listed as
//! the epoch runs), an explicit list of keys or URIs, or the records of a TFRecord file
//! found through its DALI index. A [`Loader`] reads one epoch of it as a stream of
//! [`Batch`]es under [`LoaderOptions`]: batch size, seeded per-epoch shuffling, sharding
//! across ranks and DataLoader workers (every sample once per epoch, equal batch counts per
//! rank), deterministic resume, prefetch, bounded requests in flight and bounded memory,
//! timeouts and retries, ordered or out-of-order batch formation, skip-and-count of bad
//! samples. The rules are in [`plan`] and `docs/LOADER.md`.
//!
//! The crate depends on `s3dlio-store-core` only: any [`ObjectStore`] works.
//!
//! [`ObjectStore`]: s3dlio_store_core::ObjectStore

mod budget;
mod dataset;
mod fetch;
mod loader;
mod options;
pub mod plan;

pub use dataset::Dataset;
pub use loader::{Batch, BatchStream, BlockingBatches, Loader, LoaderStats, Sample, Skipped};
pub use options::LoaderOptions;
pub use plan::{Remainder, ShardSpec};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
