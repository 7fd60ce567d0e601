//! Metrics and operation logs as layers for s3dlio.
//!
//! This crate will hold a metrics layer with HDR latency histograms per operation and backend, a MinIO-warp compatible operation-log layer with its reader, and tracing spans, each wrapping any `ObjectStore`.
//!
//! It is empty until its issue lands; nothing here is usable yet.
