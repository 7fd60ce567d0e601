//! The `direct://` backend of s3dlio: `file://` with `O_DIRECT`. An
//! [`ObjectStore`](s3dlio_store_core::ObjectStore) over a local directory tree whose reads
//! and writes bypass the page cache, for datasets and checkpoints on local NVMe that should
//! neither pollute nor depend on it.
//!
//! * Keys, listings, containment (no access through symlinks out of the root) and atomic
//!   temp+rename writes are exactly those of `file://` (they come from
//!   `s3dlio_store_fs::local`). Writes are durable when they complete.
//! * Every read and write is aligned to what the file system asks (`statx`
//!   `STATX_DIOALIGN`, else the device's logical block size, else 4 KiB), in I/Os of
//!   [`DirectOptions::io_size`] (1 MiB), [`DirectOptions::queue_depth`] (8) of them in
//!   flight per request, on the store's own I/O threads.
//! * Reads land straight in an aligned pooled buffer that the caller gets as `Bytes`,
//!   sliced to the range asked for: no second copy. Objects of any size round-trip; an
//!   unaligned tail is written as a padded block and the file cut to its true size.
//! * Where the file system refuses `O_DIRECT`, an error naming the path and the file
//!   system, unless the caller opts in to a logged buffered fallback
//!   ([`Fallback::Buffered`], `S3DLIO_DIRECT_FALLBACK=buffered`).
//!
//! ```no_run
//! use bytes::Bytes;
//! use s3dlio_store_core::{ByteRange, ObjectStoreExt};
//! use s3dlio_directio::DirectStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = DirectStore::new("/nvme/scratch")?;
//! store.put_bytes("run1/a.bin", Bytes::from_static(b"hello world")).await?;
//! assert_eq!(store.get_range("run1/a.bin", ByteRange::from(6..11)).await?, "world");
//! # Ok::<_, s3dlio_store_core::Error>(())
//! # }).unwrap();
//! ```

mod align;
mod buf;
mod io;
mod options;
mod read;
mod store;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use s3dlio_store_core::{ObjectStore, ObjectUri, Registry, Result, Scheme, StoreFactory};

pub use align::{alignment_of, filesystem_of, supports_o_direct, DEFAULT_ALIGN};
pub use options::{DirectOptions, Fallback};
pub use store::DirectStore;

/// Opens `direct://` URIs as a [`DirectStore`] rooted at `/`, so `direct:///data/x` is key
/// `data/x`.
#[derive(Debug, Clone, Default)]
pub struct DirectFactory {
    /// `None`: read the `S3DLIO_DIRECT_*` variables when a store opens.
    options: Option<DirectOptions>,
}

impl DirectFactory {
    /// A factory whose stores use exactly `options`.
    pub fn new(options: DirectOptions) -> Self {
        Self {
            options: Some(options),
        }
    }

    /// A factory whose stores take their options from the environment
    /// ([`DirectOptions::from_env`]).
    pub fn from_env() -> Self {
        Self { options: None }
    }
}

#[async_trait]
impl StoreFactory for DirectFactory {
    async fn open(&self, _uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        let options = match &self.options {
            Some(o) => o.clone(),
            None => DirectOptions::from_env()?,
        };
        Ok(Arc::new(DirectStore::with_options("/", options)?))
    }
}

/// Register `direct://` in `registry`, with options from the environment.
pub fn register(registry: &mut Registry) {
    registry.register(Scheme::Direct, DirectFactory::from_env());
}

/// Register `direct://` in `registry` with exactly `options`.
pub fn register_with(registry: &mut Registry, options: DirectOptions) {
    registry.register(Scheme::Direct, DirectFactory::new(options));
}

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
