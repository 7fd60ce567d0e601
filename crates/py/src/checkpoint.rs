//! `PyCheckpointStore`: checkpoints over any URI (`s3dlio_checkpoint::CheckpointStore`), in
//! both of the original's forms: named (`save('model_state', data)` / `load('model_state')`,
//! as its README writes them) and by step (`save(step, epoch, framework, data,
//! user_meta=None)`, `load_latest()`, `list_checkpoints()`, `delete_checkpoint(step)`),
//! and the distributed form: `writer(world_size, rank)` gives each rank a
//! `PyCheckpointWriter` that stores its shards (rank 0 waits for the others and commits),
//! `reader()` a `PyCheckpointReader` of any rank's shards. Every save is verified on load
//! (CRC32C per part) and published atomically.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
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
    let info = PyList::empty(py);
    for s in &m.shards {
        let e = PyDict::new(py);
        e.set_item("rank", s.rank)?;
        e.set_item("name", &s.name)?;
        e.set_item("size", s.raw_size)?;
        info.append(e)?;
    }
    d.set_item("shard_info", info)?;
    d.set_item("metadata", m.metadata.clone())?;
    Ok(d)
}

/// Options of a step save shared by the single-process and the distributed forms.
fn step_options(
    step: u64,
    epoch: Option<u64>,
    framework: Option<String>,
    zstd: Option<i32>,
    strategy: Option<&String>,
    user_meta: Option<BTreeMap<String, String>>,
) -> SaveOptions {
    let mut opts = SaveOptions::new(step);
    if let Some(e) = epoch {
        opts = opts.epoch(e);
    }
    if let Some(f) = framework {
        opts = opts.framework(f);
    }
    if let Some(level) = zstd {
        opts = opts.zstd(level);
    }
    if let Some(s) = strategy {
        opts = opts.metadata("strategy", s.clone());
    }
    for (k, v) in user_meta.unwrap_or_default() {
        opts = opts.metadata(k, v);
    }
    opts
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
        let opts = step_options(
            step,
            Some(epoch.extract()?),
            framework.extract()?,
            self.zstd,
            self.strategy.as_ref(),
            user_meta,
        );
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

    /// This process's part of a distributed save: `world_size` ranks (separate processes)
    /// each store their shards under the same step, and rank 0 commits once all have.
    /// `save_id` names the save's data and must be the same on every rank and new for each
    /// attempt; by default it is made from the step (and `TORCHELASTIC_RUN_ID` or
    /// `SLURM_JOB_ID` when set). `timeout`: seconds rank 0 waits for the other ranks.
    #[pyo3(signature = (world_size, rank, save_id=None, timeout=600.0))]
    fn writer(
        &self,
        world_size: u32,
        rank: u32,
        save_id: Option<String>,
        timeout: f64,
    ) -> PyResult<PyCheckpointWriter> {
        if world_size == 0 || rank >= world_size {
            return Err(PyValueError::new_err(format!(
                "rank {rank} is not in a world of {world_size} ranks"
            )));
        }
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| PyValueError::new_err(format!("timeout {timeout} is not a duration")))?;
        Ok(PyCheckpointWriter {
            store: self.store.clone(),
            world_size,
            rank,
            save_id,
            zstd: self.zstd,
            strategy: self.strategy.clone(),
            timeout,
        })
    }

    /// A reader of step checkpoints: manifests and any rank's shards, verified.
    fn reader(&self) -> PyCheckpointReader {
        PyCheckpointReader {
            store: self.store.clone(),
        }
    }

    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    fn __repr__(&self) -> String {
        format!("PyCheckpointStore({:?})", self.uri)
    }
}

/// One rank's writer of distributed step checkpoints (`PyCheckpointStore.writer`).
#[pyclass(module = "s3dlio", name = "PyCheckpointWriter")]
#[derive(Debug)]
pub struct PyCheckpointWriter {
    store: CheckpointStore,
    world_size: u32,
    rank: u32,
    save_id: Option<String>,
    zstd: Option<i32>,
    strategy: Option<String>,
    timeout: Duration,
}

/// The save id every rank derives alike when none is given: the step, after the job's run
/// id where the launcher sets one (characters a save id cannot hold become `-`).
fn default_save_id(step: u64) -> String {
    let run = ["TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty() && v != "none");
    let id = match run {
        Some(r) => format!("{r}-step-{step}"),
        None => format!("step-{step}"),
    };
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

#[pymethods]
impl PyCheckpointWriter {
    /// The original's form: this rank's `data` as its shard `data` of step `step`.
    /// Returns the committed manifest on rank 0 (after every rank has saved), `None` on
    /// the others.
    #[pyo3(signature = (step, epoch, framework, data, user_meta=None))]
    fn save_distributed_shard<'py>(
        &self,
        py: Python<'py>,
        step: u64,
        epoch: Option<u64>,
        framework: Option<String>,
        data: &Bound<'py, PyAny>,
        user_meta: Option<BTreeMap<String, String>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let shards = vec![("data".to_owned(), bytes_of(data)?)];
        self.save(py, step, epoch, framework, user_meta, shards)
    }

    /// This rank's shards of step `step`: a dict (or pairs) of name to bytes-like data.
    /// Returns the committed manifest on rank 0, `None` on the others.
    #[pyo3(signature = (step, shards, epoch=None, framework=None, user_meta=None))]
    fn save_shards<'py>(
        &self,
        py: Python<'py>,
        step: u64,
        shards: &Bound<'py, PyAny>,
        epoch: Option<u64>,
        framework: Option<String>,
        user_meta: Option<BTreeMap<String, String>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let pairs: Vec<(String, Bound<'py, PyAny>)> = match shards.cast::<PyDict>() {
            Ok(d) => d.items().extract()?,
            Err(_) => shards.extract()?,
        };
        let shards = pairs
            .iter()
            .map(|(name, data)| Ok((name.clone(), bytes_of(data)?)))
            .collect::<PyResult<Vec<_>>>()?;
        self.save(py, step, epoch, framework, user_meta, shards)
    }

    #[getter]
    fn rank(&self) -> u32 {
        self.rank
    }

    #[getter]
    fn world_size(&self) -> u32 {
        self.world_size
    }
}

impl PyCheckpointWriter {
    fn save<'py>(
        &self,
        py: Python<'py>,
        step: u64,
        epoch: Option<u64>,
        framework: Option<String>,
        user_meta: Option<BTreeMap<String, String>>,
        shards: Vec<(String, Bytes)>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let save_id = self
            .save_id
            .clone()
            .unwrap_or_else(|| default_save_id(step));
        let opts = step_options(
            step,
            epoch,
            framework,
            self.zstd,
            self.strategy.as_ref(),
            user_meta,
        )
        .publish_timeout(self.timeout);
        // A single rank without an id of its own gets a fresh one from the crate.
        let opts = if self.world_size > 1 || self.save_id.is_some() {
            opts.distributed(self.world_size, save_id)
        } else {
            opts
        };
        let (ck, rank) = (self.store.clone(), self.rank);
        let m = block_on(py, move |_| async move {
            let saver = ck.rank_saver(opts, rank).map_err(to_py)?;
            for (name, data) in shards {
                if let Err(e) = saver.put_shard(&name, data).await {
                    let _ = saver.abort().await;
                    return Err(to_py(e));
                }
            }
            saver.finish().await.map_err(to_py)
        })?;
        m.map(|m| manifest_dict(py, &m)).transpose()
    }
}

/// A reader of step checkpoints (`PyCheckpointStore.reader`).
#[pyclass(module = "s3dlio", name = "PyCheckpointReader")]
#[derive(Debug)]
pub struct PyCheckpointReader {
    store: CheckpointStore,
}

impl PyCheckpointReader {
    /// The manifest of `step`, or of the latest checkpoint (FileNotFoundError if none).
    async fn manifest_of(ck: &CheckpointStore, step: Option<u64>) -> PyResult<Manifest> {
        match step {
            Some(step) => ck.manifest(step).await.map_err(to_py),
            None => ck.latest().await.map_err(to_py)?.ok_or_else(|| {
                PyFileNotFoundError::new_err(format!("no checkpoint under {}", ck.uri()))
            }),
        }
    }
}

#[pymethods]
impl PyCheckpointReader {
    /// The latest checkpoint's manifest as a dict (`global_step` is `step`, the
    /// original's name), or `None` if there is none.
    fn load_latest_manifest<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let ck = self.store.clone();
        let m = block_on(py, move |_| async move { ck.latest().await.map_err(to_py) })?;
        m.map(|m| {
            let d = manifest_dict(py, &m)?;
            d.set_item("global_step", m.step)?;
            Ok(d)
        })
        .transpose()
    }

    /// The manifest of `step` (default: the latest) as a dict.
    #[pyo3(signature = (step=None))]
    fn manifest<'py>(&self, py: Python<'py>, step: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
        let ck = self.store.clone();
        let m = block_on(
            py,
            move |_| async move { Self::manifest_of(&ck, step).await },
        )?;
        manifest_dict(py, &m)
    }

    /// Shard `name` of `rank` in checkpoint `step` (default: the latest), verified.
    #[pyo3(signature = (rank=0, name="data", step=None))]
    fn load_shard(
        &self,
        py: Python<'_>,
        rank: u32,
        name: &str,
        step: Option<u64>,
    ) -> PyResult<BytesView> {
        let (ck, name) = (self.store.clone(), name.to_owned());
        block_on(py, move |_| async move {
            let m = Self::manifest_of(&ck, step).await?;
            ck.load_shard(&m, rank, &name)
                .await
                .map(BytesView::new)
                .map_err(to_py)
        })
    }

    /// Every shard of `rank` in checkpoint `step` (default: the latest), verified, as a
    /// dict of name to data.
    #[pyo3(signature = (rank=0, step=None))]
    fn load_rank(
        &self,
        py: Python<'_>,
        rank: u32,
        step: Option<u64>,
    ) -> PyResult<BTreeMap<String, BytesView>> {
        let ck = self.store.clone();
        block_on(py, move |_| async move {
            let m = Self::manifest_of(&ck, step).await?;
            let shards = ck.load_rank(&m, rank).await.map_err(to_py)?;
            Ok(shards
                .into_iter()
                .map(|(n, d)| (n, BytesView::new(d)))
                .collect())
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCheckpointStore>()?;
    m.add_class::<PyCheckpointWriter>()?;
    m.add_class::<PyCheckpointReader>()
}
