//! The native half of the Python module `s3dlio` (`s3dlio._s3dlio`), built with maturin and
//! re-exported by the pure-Python package in `python/s3dlio`. A thin layer: every function
//! parses its arguments, releases the GIL, and runs the Rust crates' code on a runtime owned
//! by this process.
//!
//! * [`runtime`]: the per-process runtime and backends, rebuilt after `fork`.
//! * [`errors`]: store errors as Python exceptions (`FileNotFoundError`, `PermissionError`,
//!   `ValueError`, or the `S3dlioError` family).
//! * [`buffer`]: `BytesView`, object bytes shared with Python through the buffer protocol.
//! * [`objects`]: the object API (get, put, list, stat, upload, ...).
//! * [`writer`]: streaming writers with optional compression (`create_*_writer`).
//! * [`checkpoint`]: `PyCheckpointStore`, named and step checkpoints.
//! * [`tfrecord`]: DALI index creation and reading (`create_tfrecord_index`, ...).
//! * [`loader`]: `create_dataset` and `create_async_loader` (batches for `for`/`async for`).

mod buffer;
mod checkpoint;
mod errors;
mod loader;
mod objects;
mod runtime;
mod tfrecord;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _s3dlio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<buffer::BytesView>()?;
    objects::register(m)?;
    writer::register(m)?;
    checkpoint::register(m)?;
    loader::register(m)?;
    tfrecord::register(m)?;
    Ok(())
}
