//! The checkpoint store for s3dlio.
//!
//! This crate will hold sharded checkpoints with a manifest, real CRC32C per shard, atomic publication through conditional writes, distributed saves and fast concurrent loads; it depends on `s3dlio-store-core` only.
//!
//! It is empty until its issue lands; nothing here is usable yet.
