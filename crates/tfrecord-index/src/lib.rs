//! TFRecord framing and the NVIDIA DALI index format for s3dlio.
//!
//! This crate will hold a streaming TFRecord parser with masked CRC32C checks, a writer, the DALI `offset size` index (byte-identical to `tfrecord2idx`), and record-level ranged access through any `ObjectStore`.
//!
//! It is empty until its issue lands; nothing here is usable yet.
