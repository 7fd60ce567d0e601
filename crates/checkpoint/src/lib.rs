//! The checkpoint store of s3dlio: sharded, verified, atomic checkpoints over any
//! [`ObjectStore`](s3dlio_store_core::ObjectStore).
//!
//! A checkpoint is a JSON [`Manifest`] plus shards per rank, each shard stored as parts
//! written and read in parallel, each part with its CRC32C (Castagnoli) computed as it is
//! written and checked on every load. A save stores every shard, then each rank's marker;
//! rank 0 then writes the manifest create-only (the commit point) and moves the `latest`
//! pointer forward with If-Match. A reader only ever starts from a manifest, so it never
//! sees a checkpoint with a shard missing, and every byte it is given has been verified.
//!
//! - [`CheckpointStore::save_step`] / [`CheckpointStore::rank_saver`]: single-process and
//!   distributed saves, from whole buffers or streams ([`ShardWriter`]).
//! - [`CheckpointStore::latest`], [`CheckpointStore::manifest`], then
//!   [`CheckpointStore::load_shard`], [`CheckpointStore::load_shard_into`] (one buffer,
//!   concurrent ranged reads), [`CheckpointStore::load_shard_stream`].
//! - Retention: [`CheckpointStore::list`], [`CheckpointStore::delete_step`],
//!   [`CheckpointStore::keep_last`], [`CheckpointStore::collect_garbage`].
//! - Named checkpoints: [`CheckpointStore::save`] / [`CheckpointStore::load`].
//!
//! Layout, schema and guarantees per backend: `docs/CHECKPOINT.md`.

mod load;
mod manifest;
mod save;
mod store;

pub use manifest::{Compression, Manifest, PartEntry, Pointer, ShardEntry, FORMAT, FORMAT_VERSION};
pub use save::{RankSaver, SaveOptions, ShardWriter};
pub use store::{CheckpointStore, Config};

// The README's example is compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
