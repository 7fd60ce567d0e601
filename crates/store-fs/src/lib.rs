//! The `file://` backend of s3dlio: an [`ObjectStore`](s3dlio_store_core::ObjectStore) over a
//! local directory tree, with the semantics of an object store.
//!
//! * Writes go to a temporary file next to the target and become visible by `rename`, so a
//!   reader sees the old object or the new one, never a torn one. Create-only writes use
//!   `renameat2(RENAME_NOREPLACE)` (or `link` + `unlink` where that is missing), which fail
//!   atomically when the key exists.
//! * Reads are positional (`pread`) into a buffer allocated once at its final size; large
//!   reads are streamed in chunks. Truncation during a read is an error, never a short body.
//! * Listings are in the byte order of the full key, as in S3, and resume from a token
//!   without walking what lies before it.
//! * Nothing is read or written through a symlink that leads out of the store's root.
//!
//! ```no_run
//! use bytes::Bytes;
//! use s3dlio_store_core::{ByteRange, ObjectStoreExt};
//! use s3dlio_store_fs::FsStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = FsStore::new("/data/scratch")?;
//! store.put_bytes("run1/a.bin", Bytes::from_static(b"hello world")).await?;
//! assert_eq!(store.get_range("run1/a.bin", ByteRange::from(6..11)).await?, "world");
//! # Ok::<_, s3dlio_store_core::Error>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]

mod io;
mod keys;
mod list;
mod options;
mod read;
mod store;
mod sys;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use s3dlio_store_core::{ObjectStore, ObjectUri, Registry, Result, Scheme, StoreFactory};

pub use options::FsOptions;
pub use store::FsStore;

/// Building blocks for other backends over local files (`direct://` in `s3dlio-directio`,
/// which is `file://` with `O_DIRECT`), so that keys, containment, atomic publication and
/// listings mean exactly the same there: key checks, a [`Root`](local::Root) that nothing
/// is read or written outside of, temporary files published by `rename`
/// ([`TempFile`](local::TempFile)), the S3-ordered resumable listing walk, deletes, ETags
/// and the I/O thread pool. `FsStore` is built on the same pieces.
pub mod local {
    pub use crate::io::IoPool;
    pub use crate::keys::{check_key, check_prefix, split_key};
    pub use crate::list::list_page;
    pub use crate::store::{check_put_options, delete_one as delete, head, CAPABILITIES};
    pub use crate::sys::{etag, object_meta, read_err, Access, Root, TempFile};
}

/// Opens `file://` URIs as an [`FsStore`] rooted at `/`, so `file:///data/x` is key `data/x`.
#[derive(Debug, Clone, Default)]
pub struct FsFactory {
    options: FsOptions,
}

impl FsFactory {
    /// A factory whose stores use `options`.
    pub fn new(options: FsOptions) -> Self {
        Self { options }
    }
}

#[async_trait]
impl StoreFactory for FsFactory {
    async fn open(&self, _uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(FsStore::with_options("/", self.options.clone())?))
    }
}

/// Register `file://` in `registry` with default options.
pub fn register(registry: &mut Registry) {
    register_with(registry, FsOptions::default());
}

/// Register `file://` in `registry` with `options`.
pub fn register_with(registry: &mut Registry, options: FsOptions) {
    registry.register(Scheme::File, FsFactory::new(options));
}

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
