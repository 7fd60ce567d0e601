//! The Python module `s3dlio`, built with maturin.
//!
//! This crate will hold a thin PyO3 layer over the Rust crates: the object API with
//! `_async` twins, writers, data generation, datasets and loaders for PyTorch, JAX and
//! TensorFlow, checkpoints, TFRecord indexes, op-logs and metrics, each call releasing the
//! GIL and returning zero-copy buffers.
//!
//! It is empty until its issue lands; nothing here is usable yet.
