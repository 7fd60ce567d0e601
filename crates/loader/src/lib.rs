//! Datasets and the async data loader for s3dlio.
//!
//! This crate will hold datasets over URI prefixes, URI lists and TFRecord files, and an async loader with batching, prefetch, shuffling by seed and epoch, sharding by rank and worker, out-of-order completion and bounded memory; it depends on `s3dlio-store-core` only.
//!
//! It is empty until its issue lands; nothing here is usable yet.
