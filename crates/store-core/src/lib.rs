//! The core of s3dlio: one async [`ObjectStore`] trait that every backend implements, the
//! types that cross it, the one [`Error`] type every crate maps into, URI parsing and an
//! explicit scheme registry, plus an in-memory store, a fault-injecting wrapper and (with
//! the `conformance` feature) the conformance suite every backend must pass.
//!
//! This crate does no I/O of its own: backends live in their own crates
//! (`s3dlio-store-fs`, `s3dlio-store-s3`, ...), and features (loader, checkpoint) depend on
//! this crate alone.
//!
//! ```
//! use bytes::Bytes;
//! use s3dlio_store_core::{ByteRange, MemoryStore, ObjectStoreExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.put_bytes("data/a.bin", Bytes::from_static(b"hello world")).await?;
//! assert_eq!(store.get_range("data/a.bin", ByteRange::from(6..11)).await?, "world");
//! assert_eq!(store.list_objects("data/").await?.len(), 1);
//! # Ok::<_, s3dlio_store_core::Error>(())
//! # }).unwrap();
//! ```

pub mod balance;
#[cfg(feature = "compression")]
pub mod compress;
pub mod error;
pub mod fault;
pub mod memory;
pub mod pending;
pub mod pool;
pub mod ranged;
pub mod registry;
pub mod retry;
pub mod store;
pub mod types;
pub mod units;
pub mod uri;

#[cfg(feature = "conformance")]
pub mod conformance;

/// The parsers' invariants, for the fuzz properties and the cargo-fuzz targets.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use balance::{BalanceOptions, BalancedStore, EndpointStats, Policy};
pub use error::{ConnectionFailure, Error, ErrorKind, Operation, Result};
pub use fault::{Fault, FaultStore};
pub use memory::MemoryStore;
pub use pool::BufferPool;
pub use registry::{Registry, StoreFactory};
pub use retry::{RetryPolicy, RetryStore};
pub use store::{
    list_stream, paginate, validate_key, Body, ByteStream, DeferredBody, GetResult, ObjectStore,
    ObjectStoreExt, ObjectWriter,
};
pub use types::{
    ByteRange, Capabilities, CopyOptions, GetOptions, ListItem, ListOptions, ListPage, ObjectMeta,
    PutMode, PutOptions, PutResult,
};
pub use units::{parse_count, parse_size};
pub use uri::{ObjectUri, ParseOptions, Scheme};

/// Re-exports used by exported macros.
#[doc(hidden)]
pub mod __private {
    pub use futures;
}

// Conditional-write semantics shared by stores that evaluate conditions themselves.
pub use memory::check_mode as check_put_mode;

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
