//! The `direct://` backend for s3dlio.
//!
//! This crate will hold the `ObjectStore` trait over O_DIRECT files: aligned buffers from a bounded pool, large I/O sizes with several requests in flight, correct unaligned tails, and atomic durable writes.
//!
//! It is empty until its issue lands; nothing here is usable yet.
