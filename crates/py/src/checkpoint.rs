//! `PyCheckpointStore`: checkpoints over any URI (`s3dlio_checkpoint::CheckpointStore`), in
//! both of the original's forms: named (`save('model_state', data)` / `load('model_state')`,
//! as its README writes them) and by step (`save(step, epoch, framework, data,
//! user_meta=None)`, `load_latest()`, `list_checkpoints()`, `delete_checkpoint(step)`).
//! Every save is verified on load (CRC32C per part) and published atomically.

use std::collections::BTreeMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use s3dlio_checkpoint::{CheckpointStore, Config, Manifest, SaveOptions};

use crate::buffer::BytesView;
use crate::errors::to_py;
use crate::objects::{bytes_of, open};
use crate::runtime::block_on;

#[pyclass(module = "s3dlio", name = "PyCheckpointStore")]
#[derive(Debug)]
pub struct PyCheckpointStore {
    uri: String,
    store: CheckpointStore,
    /// The original's layout strategy name, recorded in each step save's metadata (the
    /// layout itself is always this crate's: manifest plus per-rank shards).
    strategy: Option<String>,
    /// zstd level for saves (`None`: stored as given).
    zstd: Option<i32>,
}

fn manifest_dict<'py>(py: Python<'py>, m: &Manifest) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", m.step)?;
    d.set_item("epoch", m.epoch)?;
    d.set_item("framework", m.framework.as_deref())?;
    d.set_item("world_size", m.world_size)?;
    d.set_item("created_unix_ms", m.created_unix_ms)?;
    d.set_item("size", m.raw_size())?;
    d.set_item(
        "shards",
        m.shards.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
    )?;
    d.set_item("metadata", m.metadata.clone())?;
    Ok(d)
}

#[pymethods]
impl PyCheckpointStore {
    /// Checkpoints under `uri`. `multipart_threshold`: bytes per stored part (parts are
    /// written and read in parallel; default 64 MiB). `compression_level`: zstd level for
    /// the stored data (default: none).
    #[new]
    #[pyo3(signature = (uri, strategy=None, multipart_threshold=None, compression_level=None))]
    fn new(
        py: Python<'_>,
        uri: String,
        strategy: Option<String>,
        multipart_threshold: Option<u64>,
        compression_level: Option<i32>,
    ) -> PyResult<Self> {
        if let Some(l) = compression_level {
            if !(1..=22).contains(&l) {
                return Err(PyValueError::new_err(format!(
                    "compression_level {l} is outside zstd's 1..=22"
                )));
            }
        }
        let mut config = Config {
            named_zstd: compression_level,
            ..Config::default()
        };
        if let Some(t) = multipart_threshold {
            if t == 0 {
                return Err(PyValueError::new_err(
                    "multipart_threshold must be positive",
                ));
            }
            config.part_size = t;
        }
        let u = uri.clone();
        let store = block_on(py, move |s| async move {
            let (store, at) = open(&s, &u).await?;
            let prefix = if at.key.is_empty() || at.key.ends_with('/') {
                at.key.clone()
            } else {
                format!("{}/", at.key)
            };
            Ok(CheckpointStore::from_arc(store, &prefix).with_config(config))
        })?;
        Ok(Self {
            uri,
            store,
            strategy,
            zstd: compression_level,
        })
    }

    /// Named form `save(name, data)`: a new version of the checkpoint `name`. Step form
    /// `save(step, epoch, framework, data, user_meta=None)`: the checkpoint of `step`,
    /// then `latest` points at it. Returns the manifest as a dict.
    #[pyo3(signature = (name_or_step, *args, user_meta=None))]
    fn save<'py>(
        &self,
        py: Python<'py>,
        name_or_step: &Bound<'py, PyAny>,
        args: Vec<Bound<'py, PyAny>>,
        user_meta: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ck = self.store.clone();
        if let Ok(name) = name_or_step.extract::<String>() {
            let [data] = args.as_slice() else {
                return Err(PyValueError::new_err(
                    "save(name, data) takes the data only",
                ));
            };
            let data = bytes_of(data)?;
            let m = block_on(py, move |_| async move {
                ck.save(&name, data).await.map_err(to_py)
            })?;
            return manifest_dict(py, &m);
        }
        let step: u64 = name_or_step.extract().map_err(|_| {
            PyValueError::new_err("save: first argument is a name (str) or a step (int)")
        })?;
        let (epoch, framework, data) = match args.as_slice() {
            [epoch, framework, data] => (epoch, framework, data),
            [epoch, framework, data, meta] if user_meta.is_none() => {
                let meta: BTreeMap<String, String> = meta.extract()?;
                return self.save(
                    py,
                    name_or_step,
                    vec![epoch.clone(), framework.clone(), data.clone()],
                    Some(meta),
                );
            }
            _ => {
                return Err(PyValueError::new_err(
                    "save(step, epoch, framework, data, user_meta=None)",
                ))
            }
        };
        let mut opts = SaveOptions::new(step).epoch(epoch.extract()?);
        if let Some(f) = framework.extract::<Option<String>>()? {
            opts = opts.framework(f);
        }
        if let Some(level) = self.zstd {
            opts = opts.zstd(level);
        }
        if let Some(s) = &self.strategy {
            opts = opts.metadata("strategy", s.clone());
        }
        for (k, v) in user_meta.unwrap_or_default() {
            opts = opts.metadata(k, v);
        }
        let data = bytes_of(data)?;
        let m = block_on(py, move |_| async move {
            ck.save_step(opts, vec![("data".into(), data)])
                .await
                .map_err(to_py)
        })?;
        manifest_dict(py, &m)
    }

    /// The latest version of the named checkpoint `name`, verified (FileNotFoundError if
    /// there is none).
    fn load(&self, py: Python<'_>, name: String) -> PyResult<BytesView> {
        let ck = self.store.clone();
        block_on(py, move |_| async move {
            ck.load(&name).await.map(BytesView::new).map_err(to_py)
        })
    }

    /// The data of the latest step checkpoint (rank 0's `data` shard), verified; `None` if
    /// there is no checkpoint yet.
    fn load_latest(&self, py: Python<'_>) -> PyResult<Option<BytesView>> {
        let ck = self.store.clone();
        block_on(py, move |_| async move {
            let Some(m) = ck.latest().await.map_err(to_py)? else {
                return Ok(None);
            };
            let data = ck.load_shard(&m, 0, "data").await.map_err(to_py)?;
            Ok(Some(BytesView::new(data)))
        })
    }

    /// The data of step `step`'s checkpoint, verified.
    fn load_step(&self, py: Python<'_>, step: u64) -> PyResult<BytesView> {
        let ck = self.store.clone();
        block_on(py, move |_| async move {
            let m = ck.manifest(step).await.map_err(to_py)?;
            ck.load_shard(&m, 0, "data")
                .await
                .map(BytesView::new)
                .map_err(to_py)
        })
    }

    /// Every committed step checkpoint, oldest first, as dicts (step, epoch, framework,
    /// world_size, created_unix_ms, size, shards, metadata).
    fn list_checkpoints<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let ck = self.store.clone();
        let manifests = block_on(py, move |_| async move {
            let mut out = Vec::new();
            for step in ck.list().await.map_err(to_py)? {
                out.push(ck.manifest(step).await.map_err(to_py)?);
            }
            Ok(out)
        })?;
        manifests.iter().map(|m| manifest_dict(py, m)).collect()
    }

    /// Delete step `step`'s checkpoint (refused for the one `latest` names).
    fn delete_checkpoint(&self, py: Python<'_>, step: u64) -> PyResult<()> {
        let ck = self.store.clone();
        block_on(py, move |_| async move {
            ck.delete_step(step).await.map_err(to_py)
        })
    }

    /// Keep the newest `n` step checkpoints (and the one `latest` names); returns the steps
    /// deleted.
    fn keep_last(&self, py: Python<'_>, n: usize) -> PyResult<Vec<u64>> {
        let ck = self.store.clone();
        block_on(
            py,
            move |_| async move { ck.keep_last(n).await.map_err(to_py) },
        )
    }

    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    fn __repr__(&self) -> String {
        format!("PyCheckpointStore({:?})", self.uri)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCheckpointStore>()
}
