//! Datasets and the async loader from Python (`s3dlio_loader`): `create_dataset(uri,
//! options)` gives a map-style and iterable dataset of objects, `create_async_loader(uri,
//! options)` batches that Python iterates with `for` or `async for`. Options are the
//! loader's (`LoaderOptions`) by name; an unknown name is a ValueError, never ignored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use pyo3::exceptions::{PyIndexError, PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use s3dlio_loader::{BlockingBatches, Dataset, Loader, LoaderOptions, Remainder};

use crate::buffer::BytesView;
use crate::errors::to_py;
use crate::objects::open;
use crate::runtime::{block_on, state};

/// The option names `create_dataset` and `create_async_loader` take.
const OPTION_NAMES: &str = "batch_size, drop_last, shuffle, seed, epoch, consumed, prefetch, \
    max_in_flight, request_timeout (seconds), retries, rank, world_size, num_workers, \
    worker_id, ordered (or out_of_order), remainder (pad, drop, uneven), max_prefetch_bytes, range_threshold, \
    range_part_size, skip_errors";

fn options_from(dict: Option<&Bound<'_, PyDict>>) -> PyResult<LoaderOptions> {
    let mut o = LoaderOptions::default();
    let Some(dict) = dict else { return Ok(o) };
    for (k, v) in dict.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "batch_size" => o.batch_size = v.extract()?,
            "drop_last" => o.drop_last = v.extract()?,
            "shuffle" => o.shuffle = v.extract()?,
            "seed" => o.seed = v.extract()?,
            "epoch" => o.epoch = v.extract()?,
            "consumed" => o.consumed = v.extract()?,
            "prefetch" => o.prefetch = v.extract()?,
            "max_in_flight" => o.max_in_flight = v.extract()?,
            "request_timeout" => {
                o.request_timeout = v
                    .extract::<Option<f64>>()?
                    .map(|s| {
                        Duration::try_from_secs_f64(s).map_err(|_| {
                            PyValueError::new_err(format!("request_timeout {s} is not a duration"))
                        })
                    })
                    .transpose()?
            }
            "retries" => o.retries = v.extract()?,
            "rank" => o.rank = v.extract()?,
            "world_size" => o.world_size = v.extract()?,
            "num_workers" => o.num_workers = v.extract::<usize>()?.max(1),
            "worker_id" => o.worker_id = v.extract()?,
            "ordered" => o.ordered = v.extract()?,
            "out_of_order" => o.ordered = !v.extract::<bool>()?,
            "remainder" => {
                o.remainder = match v.extract::<String>()?.to_ascii_lowercase().as_str() {
                    "pad" => Remainder::Pad,
                    "drop" => Remainder::Drop,
                    "uneven" => Remainder::Uneven,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "remainder '{other}': expected pad, drop or uneven"
                        )))
                    }
                }
            }
            "max_prefetch_bytes" => o.max_prefetch_bytes = v.extract()?,
            "range_threshold" => o.range_threshold = v.extract()?,
            "range_part_size" => o.range_part_size = v.extract()?,
            "skip_errors" => o.skip_errors = v.extract()?,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown loader option '{other}' (options: {OPTION_NAMES})"
                )))
            }
        }
    }
    o.validate().map_err(to_py)?;
    Ok(o)
}

fn make_loader(py: Python<'_>, uri: String, opts: LoaderOptions) -> PyResult<Arc<Loader>> {
    block_on(py, move |s| async move {
        let (store, at) = open(&s, &uri).await?;
        let dataset = Dataset::from_prefix(store, at.key);
        Loader::new(dataset, opts).map(Arc::new).map_err(to_py)
    })
}

/// A Python index (negative from the end) into `len` samples.
fn resolve_index(index: i64, len: usize) -> PyResult<u64> {
    let len = len as i64;
    let i = if index < 0 { index + len } else { index };
    if i < 0 || i >= len {
        return Err(PyIndexError::new_err(format!(
            "index {index} out of range for {len} objects"
        )));
    }
    Ok(i as u64)
}

/// Objects under a URI prefix as a dataset: `len(ds)`, `ds[i]` (the i-th object in listing
/// order), and iteration over the objects (through the loader, in batches behind the scenes).
#[pyclass(module = "s3dlio", name = "PyDataset")]
#[derive(Debug)]
pub struct PyDataset {
    loader: Arc<Loader>,
}

#[pymethods]
impl PyDataset {
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let loader = Arc::clone(&self.loader);
        let n = block_on(py, move |_| async move {
            loader.dataset_len().await.map_err(to_py)
        })?;
        Ok(n as usize)
    }

    fn __getitem__(&self, py: Python<'_>, index: i64) -> PyResult<BytesView> {
        let i = resolve_index(index, self.__len__(py)?)?;
        let loader = Arc::clone(&self.loader);
        block_on(py, move |_| async move {
            let s = loader.get(i).await.map_err(to_py)?;
            Ok(BytesView::new(s.data))
        })
    }

    /// The samples at `indices` (negative from the end), read concurrently (at most the
    /// loader's `max_in_flight` at once), in the order given: a batch of a map-style
    /// dataset in one call (PyTorch's `__getitems__`).
    fn get_many(&self, py: Python<'_>, indices: Vec<i64>) -> PyResult<Vec<BytesView>> {
        let len = self.__len__(py)?;
        let at = indices
            .iter()
            .map(|&index| resolve_index(index, len))
            .collect::<PyResult<Vec<u64>>>()?;
        let loader = Arc::clone(&self.loader);
        let jobs = loader.options().max_in_flight.max(1);
        block_on(py, move |_| async move {
            futures::stream::iter(at)
                .map(|i| {
                    let loader = Arc::clone(&loader);
                    async move { loader.get(i).await.map(|s| BytesView::new(s.data)) }
                })
                .buffered(jobs)
                .try_collect()
                .await
                .map_err(to_py)
        })
    }

    /// Every object of this rank's share, in the loader's order, one at a time.
    fn __iter__(&self) -> PyResult<PyBatches> {
        PyBatches::start(&self.loader, true)
    }
}

/// Batches of an epoch: iterate with `for batch in loader` or `async for batch in loader`;
/// each batch is a list of `BytesView`.
#[pyclass(module = "s3dlio", name = "PyAsyncLoader")]
#[derive(Debug)]
pub struct PyAsyncLoader {
    loader: Arc<Loader>,
}

#[pymethods]
impl PyAsyncLoader {
    fn __iter__(&self) -> PyResult<PyBatches> {
        PyBatches::start(&self.loader, false)
    }

    fn __aiter__(&self) -> PyResult<PyBatches> {
        PyBatches::start(&self.loader, false)
    }

    /// The batches of epoch `epoch` (a different order when shuffling), from sample
    /// `consumed` of this rank's sequence (to resume).
    #[pyo3(signature = (epoch, consumed=0))]
    fn epoch(&self, epoch: u64, consumed: u64) -> PyResult<PyBatches> {
        let s = state()?;
        let it = self.loader.blocking_iter(s.rt.handle(), epoch, consumed);
        Ok(PyBatches::from_iter(it, false))
    }
}

/// One pass over an epoch; see [`PyAsyncLoader`].
#[pyclass(module = "s3dlio", name = "PyBatches")]
pub struct PyBatches {
    it: Arc<Mutex<BlockingBatches>>,
    /// Yield samples one by one instead of batches.
    flatten: bool,
    pending: Mutex<std::collections::VecDeque<BytesView>>,
}

impl std::fmt::Debug for PyBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyBatches")
            .field("flatten", &self.flatten)
            .finish()
    }
}

impl PyBatches {
    fn start(loader: &Arc<Loader>, flatten: bool) -> PyResult<Self> {
        let s = state()?;
        let o = loader.options();
        let it = loader.blocking_iter(s.rt.handle(), o.epoch, o.consumed);
        Ok(Self::from_iter(it, flatten))
    }

    fn from_iter(it: BlockingBatches, flatten: bool) -> Self {
        Self {
            it: Arc::new(Mutex::new(it)),
            flatten,
            pending: Mutex::new(Default::default()),
        }
    }

    /// The next batch's samples, or `None` at the end of the epoch (GIL released).
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<Vec<BytesView>>> {
        let it = Arc::clone(&self.it);
        py.detach(move || {
            let mut it = it.lock().unwrap_or_else(|p| p.into_inner());
            match it.next() {
                None => Ok(None),
                Some(Err(e)) => Err(to_py(e)),
                Some(Ok(b)) => Ok(Some(
                    b.samples
                        .into_iter()
                        .map(|s| BytesView::new(s.data))
                        .collect(),
                )),
            }
        })
    }

    fn next_item<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if !self.flatten {
            return match self.next_batch(py)? {
                None => Ok(None),
                Some(b) => Ok(Some(PyList::new(py, b)?.into_any())),
            };
        }
        loop {
            if let Some(v) = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return Ok(Some(Bound::new(py, v)?.into_any()));
            }
            match self.next_batch(py)? {
                None => return Ok(None),
                Some(b) => self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(b),
            }
        }
    }
}

#[pymethods]
impl PyBatches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.next_item(py)
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// An awaitable of the next batch: the blocking step runs in a worker thread (it
    /// releases the GIL), so the event loop keeps running.
    fn __anext__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let step = slf.getattr("_next_or_stop_async")?;
        py.import("asyncio")?.call_method1("to_thread", (step,))
    }

    /// `__next__`, but the end is StopAsyncIteration (for `__anext__`).
    fn _next_or_stop_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.next_item(py)?
            .ok_or_else(|| PyStopAsyncIteration::new_err(()))
    }
}

/// A dataset of the objects under `uri` (see `PyDataset`); `options` as for the loader.
#[pyfunction]
#[pyo3(signature = (uri, options=None))]
fn create_dataset(
    py: Python<'_>,
    uri: String,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyDataset> {
    let opts = options_from(options)?;
    Ok(PyDataset {
        loader: make_loader(py, uri, opts)?,
    })
}

/// The async loader over the objects under `uri`: batches of `batch_size` samples, with
/// prefetch, shuffling, sharding by rank and worker, out-of-order completion and a memory
/// bound, per `options` (a dict of loader options).
#[pyfunction]
#[pyo3(signature = (uri, options=None))]
fn create_async_loader(
    py: Python<'_>,
    uri: String,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyAsyncLoader> {
    let opts = options_from(options)?;
    Ok(PyAsyncLoader {
        loader: make_loader(py, uri, opts)?,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDataset>()?;
    m.add_class::<PyAsyncLoader>()?;
    m.add_class::<PyBatches>()?;
    m.add_function(wrap_pyfunction!(create_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(create_async_loader, m)?)?;
    Ok(())
}
