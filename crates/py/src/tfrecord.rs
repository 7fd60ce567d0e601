//! TFRecord index functions of the original: `create_tfrecord_index(path, index_path=None)`
//! writes an NVIDIA DALI index (`<offset> <size>` per line, byte-identical to
//! `tfrecord2idx`) beside a local file, and `read_tfrecord_index(path)` reads one back.
//! `index_tfrecord(uri, verify=False)` indexes a file or an object on any backend.

use std::path::PathBuf;

use pyo3::prelude::*;
use s3dlio_tfrecord_index::{create_index, read_index_file, IndexEntry, IndexOptions};

use crate::errors::to_py;
use crate::runtime::block_on;

fn opts(verify: bool) -> IndexOptions {
    if verify {
        IndexOptions::verify()
    } else {
        IndexOptions::default()
    }
}

fn pairs(entries: Vec<IndexEntry>) -> Vec<(u64, u64)> {
    entries.into_iter().map(|e| (e.offset, e.size)).collect()
}

/// Index the local TFRecord file `tfrecord_path` into `index_path` (default
/// `<tfrecord_path>.idx`, written atomically); returns the number of records. With
/// `verify`, every record's data CRC is checked too.
#[pyfunction]
#[pyo3(signature = (tfrecord_path, index_path=None, verify=false))]
fn create_tfrecord_index(
    py: Python<'_>,
    tfrecord_path: PathBuf,
    index_path: Option<PathBuf>,
    verify: bool,
) -> PyResult<usize> {
    py.detach(|| create_index(&tfrecord_path, index_path.as_deref(), opts(verify)))
        .map(|e| e.len())
        .map_err(|e| to_py(e.into()))
}

/// The `(offset, size)` pairs of a DALI index file.
#[pyfunction]
fn read_tfrecord_index(py: Python<'_>, index_path: PathBuf) -> PyResult<Vec<(u64, u64)>> {
    py.detach(|| read_index_file(&index_path))
        .map(pairs)
        .map_err(|e| to_py(e.into()))
}

/// The `(offset, size)` pairs of the TFRecord file or object `uri` (a local path or a URI
/// of any backend; objects are read with one streaming GET), without writing an index.
#[pyfunction]
#[pyo3(signature = (uri, verify=false))]
fn index_tfrecord(py: Python<'_>, uri: String, verify: bool) -> PyResult<Vec<(u64, u64)>> {
    if !uri.contains("://") {
        // A local path.
        return py
            .detach(|| s3dlio_tfrecord_index::index_file(&uri, opts(verify)))
            .map(pairs)
            .map_err(|e| to_py(e.into()));
    }
    block_on(py, move |s| async move {
        s3dlio_tfrecord_index::index_uri(&s.ctx.registry, &uri, opts(verify))
            .await
            .map(pairs)
            .map_err(|e| to_py(e.into()))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(create_tfrecord_index, m)?)?;
    m.add_function(wrap_pyfunction!(read_tfrecord_index, m)?)?;
    m.add_function(wrap_pyfunction!(index_tfrecord, m)?)?;
    Ok(())
}
