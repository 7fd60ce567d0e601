//! Streaming writers: `PyWriterOptions` (attributes, as the original's README sets them, or
//! its builder methods) and `create_*_writer`, returning a `PyObjectWriter` that streams
//! chunks to any backend, optionally compressing them (zstd, lz4, gzip). Nothing is visible
//! under the key until `finalize()`; `abort()` (or dropping an unfinished writer) leaves
//! nothing behind.

use std::sync::Mutex;

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use s3dlio_store_core::compress::{CompressingWriter, Compression, WriteStats};
use s3dlio_store_core::PutOptions;

use crate::errors::to_py;
use crate::objects::{bytes_of, open};
use crate::runtime::block_on;

/// How a writer stores what it is given.
#[pyclass(module = "s3dlio", name = "PyWriterOptions")]
#[derive(Debug, Clone)]
pub struct PyWriterOptions {
    /// `"none"`, `"zstd"`, `"lz4"` or `"gzip"`.
    #[pyo3(get, set)]
    compression: String,
    /// The compressor's level (zstd 1-22, default 3; gzip 0-9, default 6).
    #[pyo3(get, set)]
    compression_level: Option<i32>,
    /// Bytes gathered before they go to the backend (and the backend's part size floor).
    #[pyo3(get, set)]
    buffer_size: usize,
}

#[pymethods]
impl PyWriterOptions {
    #[new]
    #[pyo3(signature = (compression="none".to_owned(), compression_level=None, buffer_size=8 << 20), text_signature = "(compression='none', compression_level=None, buffer_size=8388608)")]
    fn new(compression: String, compression_level: Option<i32>, buffer_size: usize) -> Self {
        Self {
            compression,
            compression_level,
            buffer_size,
        }
    }

    /// Builder form: set the compression (and level); returns the options.
    #[pyo3(signature = (compression, level=None))]
    fn with_compression(
        mut slf: PyRefMut<'_, Self>,
        compression: String,
        level: Option<i32>,
    ) -> PyRefMut<'_, Self> {
        slf.compression = compression;
        slf.compression_level = level;
        slf
    }

    /// Builder form: set the buffer size; returns the options.
    fn with_buffer_size(mut slf: PyRefMut<'_, Self>, size: usize) -> PyRefMut<'_, Self> {
        slf.buffer_size = size;
        slf
    }

    fn __repr__(&self) -> String {
        format!(
            "PyWriterOptions(compression={:?}, compression_level={:?}, buffer_size={})",
            self.compression, self.compression_level, self.buffer_size
        )
    }
}

/// A streaming write of one object; see the module documentation.
#[pyclass(module = "s3dlio", name = "PyObjectWriter")]
pub struct PyObjectWriter {
    uri: String,
    writer: Mutex<Option<CompressingWriter>>,
    stats: Mutex<Option<WriteStats>>,
}

impl std::fmt::Debug for PyObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyObjectWriter")
            .field("uri", &self.uri)
            .finish()
    }
}

fn closed(uri: &str) -> PyErr {
    PyValueError::new_err(format!("writer for {uri} is already finalized or aborted"))
}

impl PyObjectWriter {
    fn write(&self, py: Python<'_>, data: Bytes) -> PyResult<()> {
        let mut w = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| closed(&self.uri))?;
        let (w, res) = block_on(py, move |_| async move {
            let r = w.write_chunk(data).await;
            Ok((w, r))
        })?;
        // A failed write keeps the writer, so the caller can still abort it.
        *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
        res.map_err(to_py)
    }
}

#[pymethods]
impl PyObjectWriter {
    /// Append any bytes-like chunk.
    fn write_chunk(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = bytes_of(data)?;
        self.write(py, data)
    }

    /// Append a chunk (the original's zero-copy form; same effect as `write_chunk`).
    fn write_owned_bytes(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.write_chunk(py, data)
    }

    /// Complete the object: `(bytes_written, compressed_bytes)`, the bytes given and the
    /// bytes stored.
    fn finalize(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let w = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| closed(&self.uri))?;
        let stats = block_on(py, move |_| async move { w.finish().await.map_err(to_py) })?;
        let out = (stats.bytes_in, stats.bytes_out);
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
        Ok(out)
    }

    /// Discard everything written; nothing is left under the key.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        block_on(py, move |_| async move { w.abort().await.map_err(to_py) })
    }

    /// CRC32C (Castagnoli) of the bytes given, before compression.
    #[getter]
    fn checksum(&self) -> u32 {
        if let Some(s) = &*self.stats.lock().unwrap_or_else(|p| p.into_inner()) {
            return s.crc32c;
        }
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, CompressingWriter::crc32c)
    }

    /// Bytes given so far.
    #[getter]
    fn bytes_written(&self) -> u64 {
        if let Some(s) = &*self.stats.lock().unwrap_or_else(|p| p.into_inner()) {
            return s.bytes_in;
        }
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |w| w.counts().0)
    }

    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Finalize on a clean exit; abort when the block raised.
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let open = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if exc_type.is_some() {
            self.abort(py)?;
        } else if open {
            self.finalize(py)?;
        }
        Ok(false)
    }
}

fn create(
    py: Python<'_>,
    uri: String,
    options: Option<PyWriterOptions>,
) -> PyResult<PyObjectWriter> {
    let o = options.unwrap_or_else(|| PyWriterOptions::new("none".into(), None, 8 << 20));
    let compression = Compression::parse(&o.compression, o.compression_level).map_err(to_py)?;
    let buffer = o.buffer_size.max(1);
    let u = uri.clone();
    let writer = block_on(py, move |s| async move {
        let (store, key) = open(&s, &u).await?;
        let inner = store
            .writer(&key.key, PutOptions::default())
            .await
            .map_err(to_py)?;
        CompressingWriter::try_new(inner, compression, buffer).map_err(to_py)
    })?;
    Ok(PyObjectWriter {
        uri,
        writer: Mutex::new(Some(writer)),
        stats: Mutex::new(None),
    })
}

/// A streaming writer to `s3://bucket/key` (or any URI).
#[pyfunction]
#[pyo3(signature = (uri, options=None))]
pub fn create_s3_writer(
    py: Python<'_>,
    uri: String,
    options: Option<PyRef<'_, PyWriterOptions>>,
) -> PyResult<PyObjectWriter> {
    create(py, uri, options.map(|o| o.clone()))
}

/// A streaming writer to `az://container/key` (or any URI).
#[pyfunction]
#[pyo3(signature = (uri, options=None))]
pub fn create_azure_writer(
    py: Python<'_>,
    uri: String,
    options: Option<PyRef<'_, PyWriterOptions>>,
) -> PyResult<PyObjectWriter> {
    create(py, uri, options.map(|o| o.clone()))
}

/// A streaming writer to a local path or `file://` URI.
#[pyfunction]
#[pyo3(signature = (path, options=None))]
pub fn create_filesystem_writer(
    py: Python<'_>,
    path: String,
    options: Option<PyRef<'_, PyWriterOptions>>,
) -> PyResult<PyObjectWriter> {
    create(py, path, options.map(|o| o.clone()))
}

/// A streaming writer to a `direct://` URI (O_DIRECT), or a local path given as one.
#[pyfunction]
#[pyo3(signature = (path, options=None))]
pub fn create_direct_filesystem_writer(
    py: Python<'_>,
    path: String,
    options: Option<PyRef<'_, PyWriterOptions>>,
) -> PyResult<PyObjectWriter> {
    let options = options.map(|o| o.clone());
    let uri = if path.starts_with('/') {
        format!("direct://{path}")
    } else {
        path
    };
    create(py, uri, options)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWriterOptions>()?;
    m.add_class::<PyObjectWriter>()?;
    m.add_function(wrap_pyfunction!(create_s3_writer, m)?)?;
    m.add_function(wrap_pyfunction!(create_azure_writer, m)?)?;
    m.add_function(wrap_pyfunction!(create_filesystem_writer, m)?)?;
    m.add_function(wrap_pyfunction!(create_direct_filesystem_writer, m)?)?;
    Ok(())
}
