//! The object API: the original s3dlio's functions and signatures, over every backend this
//! build has. URIs are `s3://`, `file://` (or local paths), and the other schemes the
//! registry knows. Each call releases the GIL for its whole I/O.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use s3dlio_cli::args::{BucketArgs, DataGenMode, DownloadArgs, ObjectType, PutArgs, UploadArgs};
use s3dlio_cli::commands::{self, CliError};
use s3dlio_store_core::{
    ByteRange, ListItem, ListOptions, ObjectMeta, ObjectStore, ObjectStoreExt, ObjectUri,
};

use crate::buffer::{shared_bytes, BytesView};
use crate::errors::{command_error, to_py};
use crate::runtime::{block_on, State};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(get, m)?)?;
    m.add_function(wrap_pyfunction!(get_range, m)?)?;
    m.add_function(wrap_pyfunction!(get_many, m)?)?;
    m.add_function(wrap_pyfunction!(put_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(put_many, m)?)?;
    m.add_function(wrap_pyfunction!(list, m)?)?;
    m.add_function(wrap_pyfunction!(stat, m)?)?;
    m.add_function(wrap_pyfunction!(exists, m)?)?;
    m.add_function(wrap_pyfunction!(delete, m)?)?;
    m.add_function(wrap_pyfunction!(upload, m)?)?;
    m.add_function(wrap_pyfunction!(download, m)?)?;
    m.add_function(wrap_pyfunction!(create_bucket, m)?)?;
    m.add_function(wrap_pyfunction!(delete_bucket, m)?)?;
    m.add_function(wrap_pyfunction!(put, m)?)?;
    m.add_function(wrap_pyfunction!(init_op_log, m)?)?;
    m.add_function(wrap_pyfunction!(finalize_op_log, m)?)?;
    m.add_function(wrap_pyfunction!(is_op_log_active, m)?)?;
    Ok(())
}

/// The store holding `uri` and the URI parsed (its key names the object or prefix).
pub(crate) async fn open(s: &State, uri: &str) -> PyResult<(Arc<dyn ObjectStore>, ObjectUri)> {
    let u = if uri.contains("://") {
        s.ctx.registry.parse(uri).map_err(to_py)?
    } else {
        // A local path, absolute or relative to the current directory.
        s.ctx.location(uri).map_err(command_error)?
    };
    let store = s.ctx.registry.store_for(&u).await.map_err(to_py)?;
    Ok((s.ctx.observe(store), u))
}

/// The bytes of any object exposing the buffer protocol: `bytes` and `BytesView` shared
/// without a copy (they cannot change), anything else (bytearray, memoryview, numpy
/// arrays, ...) copied once while the GIL is held.
pub(crate) fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Some(b) = shared_bytes(data) {
        return Ok(b);
    }
    let buf = PyBuffer::<u8>::get(data)
        .map_err(|_| PyValueError::new_err("data must be bytes-like (the buffer protocol)"))?;
    Ok(Bytes::from(buf.to_vec(data.py())?))
}

/// The whole object, as a zero-copy `BytesView`.
#[pyfunction]
fn get(py: Python<'_>, uri: String) -> PyResult<BytesView> {
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        let data = store.get_bytes(&u.key).await.map_err(to_py)?;
        Ok(BytesView::new(data))
    })
}

/// `length` bytes from `offset` (to the end without `length`).
#[pyfunction]
#[pyo3(signature = (uri, offset, length=None))]
fn get_range(py: Python<'_>, uri: String, offset: u64, length: Option<u64>) -> PyResult<BytesView> {
    let range = match length {
        None => ByteRange::From(offset),
        Some(0) => return Ok(BytesView::new(Bytes::new())),
        Some(n) => ByteRange::Bounded {
            start: offset,
            end: offset
                .checked_add(n)
                .ok_or_else(|| PyValueError::new_err("offset + length overflows"))?,
        },
    };
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        let data = store.get_range(&u.key, range).await.map_err(to_py)?;
        Ok(BytesView::new(data))
    })
}

/// Many objects, `max_in_flight` at a time: `[(uri, data)]` in the order given.
#[pyfunction]
#[pyo3(signature = (uris, max_in_flight=64))]
fn get_many(
    py: Python<'_>,
    uris: Vec<String>,
    max_in_flight: usize,
) -> PyResult<Vec<(String, BytesView)>> {
    let jobs = max_in_flight.max(1);
    block_on(py, move |s| async move {
        futures::stream::iter(uris)
            .map(|uri| {
                let s = Arc::clone(&s);
                async move {
                    let (store, u) = open(&s, &uri).await?;
                    let data = store.get_bytes(&u.key).await.map_err(to_py)?;
                    Ok::<_, PyErr>((uri, BytesView::new(data)))
                }
            })
            .buffered(jobs)
            .try_collect()
            .await
    })
}

/// Write `data` (any bytes-like object) to `uri`, replacing what is there atomically.
#[pyfunction]
fn put_bytes(py: Python<'_>, uri: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = bytes_of(data)?;
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        store.put_bytes(&u.key, data).await.map_err(to_py)?;
        Ok(())
    })
}

/// Write many `(uri, data)` pairs, `max_in_flight` at a time.
#[pyfunction]
#[pyo3(signature = (items, max_in_flight=64))]
fn put_many(
    py: Python<'_>,
    items: Vec<(String, Bound<'_, PyAny>)>,
    max_in_flight: usize,
) -> PyResult<()> {
    let items = items
        .into_iter()
        .map(|(uri, d)| Ok((uri, bytes_of(&d)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let jobs = max_in_flight.max(1);
    block_on(py, move |s| async move {
        futures::stream::iter(items)
            .map(|(uri, data)| {
                let s = Arc::clone(&s);
                async move {
                    let (store, u) = open(&s, &uri).await?;
                    store.put_bytes(&u.key, data).await.map_err(to_py)?;
                    Ok::<_, PyErr>(())
                }
            })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await
    })
}

/// URIs under a prefix: one level (sub-prefixes end in `/`), or every object with
/// `recursive`; `pattern` keeps the keys a regular expression matches (searched anywhere in
/// the key).
#[pyfunction]
#[pyo3(signature = (uri, recursive=false, pattern=None))]
fn list(
    py: Python<'_>,
    uri: String,
    recursive: bool,
    pattern: Option<String>,
) -> PyResult<Vec<String>> {
    let re = pattern
        .map(|p| regex::Regex::new(&p))
        .transpose()
        .map_err(|e| PyValueError::new_err(format!("pattern: {e}")))?;
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        let opts = ListOptions {
            recursive,
            ..ListOptions::default()
        };
        let items: Vec<ListItem> = store
            .list(&u.key, opts)
            .try_collect()
            .await
            .map_err(to_py)?;
        Ok(items
            .iter()
            .map(ListItem::name)
            .filter(|k| re.as_ref().is_none_or(|re| re.is_match(k)))
            .map(|k| store.uri_of(k))
            .collect())
    })
}

fn meta_dict<'py>(py: Python<'py>, m: &ObjectMeta, uri: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("uri", uri)?;
    d.set_item("key", &m.key)?;
    d.set_item("size", m.size)?;
    let modified = m
        .last_modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    d.set_item("last_modified", modified)?;
    d.set_item("e_tag", m.etag.as_deref())?;
    d.set_item("content_type", m.content_type.as_deref())?;
    d.set_item("metadata", m.metadata.clone())?;
    Ok(d)
}

/// `{uri, key, size, last_modified (seconds since the epoch), e_tag, content_type,
/// metadata}`; FileNotFoundError if there is no such object.
#[pyfunction]
fn stat<'py>(py: Python<'py>, uri: String) -> PyResult<Bound<'py, PyDict>> {
    let u2 = uri.clone();
    let meta = block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        store.head(&u.key).await.map_err(to_py)
    })?;
    meta_dict(py, &meta, &u2)
}

#[pyfunction]
fn exists(py: Python<'_>, uri: String) -> PyResult<bool> {
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        store.exists(&u.key).await.map_err(to_py)
    })
}

/// Delete one object, or with `recursive` every object under the prefix (in batches).
/// Returns how many were deleted.
#[pyfunction]
#[pyo3(signature = (uri, recursive=false))]
fn delete(py: Python<'_>, uri: String, recursive: bool) -> PyResult<u64> {
    block_on(py, move |s| async move {
        let (store, u) = open(&s, &uri).await?;
        if recursive {
            store.delete_prefix(&u.key).await.map_err(to_py)
        } else {
            store.delete(&u.key).await.map_err(to_py)?;
            Ok(1)
        }
    })
}

/// Upload local files (paths, directories, globs, regexes) under `dest_prefix`.
#[pyfunction]
#[pyo3(signature = (src_patterns, dest_prefix, max_in_flight=32, create_bucket=false))]
fn upload(
    py: Python<'_>,
    src_patterns: &Bound<'_, PyAny>,
    dest_prefix: String,
    max_in_flight: u64,
    create_bucket: bool,
) -> PyResult<()> {
    let mut paths: Vec<String> = match src_patterns.extract::<String>() {
        Ok(one) => vec![one],
        Err(_) => src_patterns.extract()?,
    };
    paths.push(dest_prefix);
    let args = UploadArgs {
        paths,
        jobs: max_in_flight.max(1),
        create_bucket,
    };
    run_command(py, move |ctx| Box::pin(commands::upload(ctx, args)))
}

/// Download an object, or every object under a prefix (`recursive`), into `dest_dir`,
/// keeping the key hierarchy; never writes outside `dest_dir`.
#[pyfunction]
#[pyo3(signature = (src_uri, dest_dir, max_in_flight=64, recursive=true))]
fn download(
    py: Python<'_>,
    src_uri: String,
    dest_dir: String,
    max_in_flight: u64,
    recursive: bool,
) -> PyResult<()> {
    let args = DownloadArgs {
        src: src_uri,
        dest_dir,
        recursive,
        jobs: max_in_flight.max(1),
    };
    run_command(py, move |ctx| Box::pin(commands::download(ctx, args)))
}

/// `name`: a bucket name, `s3://name`, or a local directory.
#[pyfunction]
fn create_bucket(py: Python<'_>, name: String) -> PyResult<()> {
    let args = BucketArgs { bucket: name };
    run_command(py, move |ctx| Box::pin(commands::create_bucket(ctx, args)))
}

#[pyfunction]
fn delete_bucket(py: Python<'_>, name: String) -> PyResult<()> {
    let args = BucketArgs { bucket: name };
    run_command(py, move |ctx| Box::pin(commands::delete_bucket(ctx, args)))
}

/// Synthetic objects, as `s3-cli put` makes them: `num` objects named by `template` (`{}`
/// placeholders: index, then total) under `prefix`, with honest dedup and compress ratios.
#[pyfunction]
#[pyo3(signature = (
    prefix, num, template="object_{}_of_{}.dat".to_owned(), max_in_flight=64, size=None,
    should_create_bucket=false, object_type="zeros".to_owned(), dedup_factor=1,
    compress_factor=1, data_gen_mode="streaming".to_owned(), chunk_size=262_144, seed=None
), text_signature = "(prefix, num, template='object_{}_of_{}.dat', max_in_flight=64, \
    size=None, should_create_bucket=False, object_type='zeros', dedup_factor=1, \
    compress_factor=1, data_gen_mode='streaming', chunk_size=262144, seed=None)")]
#[allow(clippy::too_many_arguments)]
fn put(
    py: Python<'_>,
    prefix: String,
    num: u64,
    template: String,
    max_in_flight: u64,
    size: Option<u64>,
    should_create_bucket: bool,
    object_type: String,
    dedup_factor: u64,
    compress_factor: u64,
    data_gen_mode: String,
    chunk_size: u64,
    seed: Option<u64>,
) -> PyResult<()> {
    // The original's object types: zeros and random are raw payloads here (with the
    // compress factor deciding how much of each block is random).
    let object_type = match object_type.to_ascii_lowercase().as_str() {
        "zeros" | "random" | "raw" | "bin" => ObjectType::Raw,
        "npz" => ObjectType::Npz,
        "tfrecord" => ObjectType::Tfrecord,
        other => {
            return Err(PyValueError::new_err(format!(
                "object_type '{other}': expected raw (zeros, random), npz or tfrecord"
            )))
        }
    };
    let data_gen_mode = match data_gen_mode
        .to_ascii_lowercase()
        .replace('-', "_")
        .as_str()
    {
        "streaming" => DataGenMode::Streaming,
        "single_pass" | "singlepass" => DataGenMode::SinglePass,
        other => {
            return Err(PyValueError::new_err(format!(
                "data_gen_mode '{other}': expected streaming or single_pass"
            )))
        }
    };
    if dedup_factor == 0 || compress_factor == 0 || max_in_flight == 0 {
        return Err(PyValueError::new_err(
            "dedup_factor, compress_factor and max_in_flight must be at least 1",
        ));
    }
    if chunk_size == 0 || chunk_size > commands::MAX_CHUNK_SIZE {
        return Err(PyValueError::new_err(format!(
            "chunk_size {chunk_size}: expected 1 byte to 1 GiB"
        )));
    }
    // A template in the prefix's last segment (`s3://b/data-{}.bin`, as the original's
    // README writes it) wins over the default one.
    let in_prefix = prefix.rsplit('/').next().is_some_and(|l| l.contains("{}"));
    let template = (!(in_prefix && template == commands::DEFAULT_TEMPLATE)).then_some(template);
    let args = PutArgs {
        prefix,
        num,
        size: size.unwrap_or(20 << 20),
        template,
        jobs: max_in_flight,
        dedup: dedup_factor,
        compress: compress_factor,
        object_type,
        data_gen_mode,
        seed,
        chunk_size,
        create_bucket: should_create_bucket,
        // The whole data set from this process (ranks are `s3-cli put --rank/--ranks`).
        rank: 0,
        ranks: 1,
    };
    run_command(py, move |ctx| Box::pin(commands::put(ctx, args)))
}

type CommandFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + Send + 'a>>;

/// Run one of the CLI's commands (quietly: no progress bars or summary lines).
fn run_command(
    py: Python<'_>,
    f: impl for<'a> FnOnce(&'a commands::Ctx) -> CommandFuture<'a> + Send,
) -> PyResult<()> {
    block_on(py, move |s| async move {
        f(&s.ctx).await.map_err(command_error)
    })
}

/// Start the process-wide operation log (warp TSV, zstd-compressed) at `path`: every
/// operation of this module is recorded until [`finalize_op_log`].
#[pyfunction]
fn init_op_log(path: String) -> PyResult<()> {
    s3dlio_metrics::init_op_log(&path)
        .map_err(|e| crate::errors::runtime_error(format!("op-log {path}: {e}")))
}

/// Finish the op-log (flushes and closes the file); a no-op when none is active.
#[pyfunction]
fn finalize_op_log(py: Python<'_>) -> PyResult<()> {
    py.detach(s3dlio_metrics::finalize_op_log)
        .map(|_| ())
        .map_err(|e| crate::errors::runtime_error(format!("op-log: {e}")))
}

#[pyfunction]
fn is_op_log_active() -> bool {
    s3dlio_metrics::is_op_log_active()
}
