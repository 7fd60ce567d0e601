//! `s3-cli`, the s3dlio command line.
//!
//! This crate will hold the `s3-cli` binary: ls, stat, get, put (synthetic data), upload,
//! download, cp, rm and bucket commands on every backend, with glob and regex patterns,
//! progress bars, `-v/-vv` tracing and op-logs.
//!
//! It is empty until its issue lands; nothing here is usable yet.
