//! The checkpoint store: a root in any object store, its checkpoints, retention and the
//! named (single-shard) mode.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use s3dlio_store_core::{
    Error, ErrorKind, ListItem, ListOptions, ObjectStore, ObjectStoreExt, Registry, Result,
};

use crate::manifest::{check_name, layout, parse_json, Manifest, Pointer};
use crate::save::{RankSaver, SaveOptions};

/// Sizes and concurrency of saves and loads.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bytes per stored part of a shard (before compression). Parts are written and read in
    /// parallel.
    pub part_size: u64,
    /// Parts of one shard uploaded at once; a shard writer holds at most
    /// `(write_concurrency + 1) * part_size` bytes.
    pub write_concurrency: usize,
    /// Ranged reads of one shard in flight at once.
    pub read_concurrency: usize,
    /// Part uploads in flight at once across every shard this store saves (all the shards
    /// and ranks of one process). Each part is itself a streaming upload whose requests the
    /// backend runs concurrently (S3: 8 MiB multipart parts), so without this bound shards
    /// x `write_concurrency` x the backend's concurrency requests would compete at once.
    pub max_uploads: usize,
    /// Ranged reads in flight at once across every shard this store loads.
    pub max_reads: usize,
    /// Bytes per ranged read.
    pub range_size: u64,
    /// How often rank 0 looks for the other ranks' markers.
    pub poll_interval: Duration,
    /// Versions a named checkpoint keeps.
    pub named_keep: usize,
    /// zstd level for named checkpoints' data (`None`: stored as given).
    pub named_zstd: Option<i32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            part_size: 64 << 20,
            write_concurrency: 8,
            read_concurrency: 16,
            max_uploads: 8,
            max_reads: 16,
            range_size: 16 << 20,
            poll_interval: Duration::from_millis(200),
            named_keep: 2,
            named_zstd: None,
        }
    }
}

/// Checkpoints under one prefix of one object store. Cheap to clone.
///
/// ```
/// use bytes::Bytes;
/// use s3dlio_checkpoint::{CheckpointStore, SaveOptions};
/// use s3dlio_store_core::MemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ck = CheckpointStore::new(MemoryStore::new(), "run-1/ckpt/");
/// ck.save_step(SaveOptions::new(100).epoch(3), vec![("model".into(), Bytes::from_static(b"weights"))]).await?;
/// let m = ck.latest().await?.expect("a checkpoint");
/// assert_eq!(m.step, 100);
/// assert_eq!(ck.load_shard(&m, 0, "model").await?, "weights");
///
/// ck.save("model_state", Bytes::from_static(b"state")).await?;
/// assert_eq!(ck.load("model_state").await?, "state");
/// # Ok::<_, s3dlio_store_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Empty, or a prefix ending in `/`.
    pub(crate) root: String,
    pub(crate) config: Config,
    /// The bounds of `config.max_uploads` and `max_reads`, shared by clones.
    pub(crate) limits: Arc<Limits>,
}

/// Permits for part uploads and ranged reads, shared by every clone of a store.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) uploads: Arc<Semaphore>,
    pub(crate) reads: Arc<Semaphore>,
}

impl Limits {
    fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
            reads: Arc::new(Semaphore::new(config.max_reads.max(1))),
        })
    }
}

/// Wait for a permit of `sem` (never closed).
pub(crate) async fn permit(sem: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    Arc::clone(sem)
        .acquire_owned()
        .await
        .map_err(|_| Error::other("checkpoint store: its I/O limiter was closed"))
}

impl CheckpointStore {
    /// Checkpoints under `prefix` of `store`.
    pub fn new(store: impl ObjectStore, prefix: &str) -> Self {
        Self::from_arc(Arc::new(store), prefix)
    }

    pub fn from_arc(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let mut root = prefix.trim_start_matches('/').to_owned();
        if !root.is_empty() && !root.ends_with('/') {
            root.push('/');
        }
        let config = Config::default();
        Self {
            store,
            root,
            limits: Limits::new(&config),
            config,
        }
    }

    /// Checkpoints under a URI (`file:///data/ckpt/`, `s3://bucket/run/ckpt/`), opened through
    /// `registry`.
    pub async fn open(registry: &Registry, uri: &str) -> Result<Self> {
        let (store, key) = registry.resolve(uri).await?;
        Ok(Self::from_arc(store, &key))
    }

    pub fn with_config(mut self, config: Config) -> Self {
        self.limits = Limits::new(&config);
        self.config = config;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URI of the root.
    pub fn uri(&self) -> String {
        self.store.uri_of(&self.root)
    }

    pub(crate) fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.root)
    }

    /// One rank's part of a save: write its shards, then [`RankSaver::finish`].
    pub fn rank_saver(&self, opts: SaveOptions, rank: u32) -> Result<RankSaver> {
        RankSaver::new(self.clone(), opts, rank)
    }

    /// Save `shards` (name, bytes) as a single-rank checkpoint and publish it.
    pub async fn save_step(
        &self,
        opts: SaveOptions,
        shards: Vec<(String, Bytes)>,
    ) -> Result<Manifest> {
        let opts = SaveOptions {
            world_size: 1,
            ..opts
        };
        let saver = self.rank_saver(opts, 0)?;
        for (name, data) in shards {
            if let Err(e) = saver.put_shard(&name, data).await {
                let _ = saver.abort().await;
                return Err(e);
            }
        }
        let manifest = saver.finish().await?;
        manifest.ok_or_else(|| Error::other("rank 0 published nothing"))
    }

    /// `latest`, its ETag, or `None` if absent. A pointer that does not parse is `(None, etag)`.
    pub(crate) async fn read_pointer_raw(
        &self,
    ) -> Result<Option<(Option<Pointer>, Option<String>)>> {
        let key = self.key(layout::POINTER);
        let got = match self.store.get(&key, Default::default()).await {
            Ok(g) => g,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let etag = got.meta.etag.clone();
        let data = got.bytes().await?;
        let pointer = parse_json::<Pointer>(&data, "pointer", &key).ok();
        Ok(Some((pointer, etag)))
    }

    /// What `latest` names, if it exists and parses.
    pub async fn pointer(&self) -> Result<Option<Pointer>> {
        Ok(self.read_pointer_raw().await?.and_then(|(p, _)| p))
    }

    /// The committed steps, oldest first.
    pub async fn list(&self) -> Result<Vec<u64>> {
        let prefix = self.key(layout::MANIFESTS);
        let items: Vec<ListItem> = self
            .store
            .list(&prefix, ListOptions::recursive())
            .try_collect()
            .await?;
        let mut steps: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                ListItem::Object(m) => m.key.strip_prefix(&self.root).and_then(layout::step_of),
                ListItem::Prefix(_) => None,
            })
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    /// The manifest of `step`.
    pub async fn manifest(&self, step: u64) -> Result<Manifest> {
        let key = self.key(&layout::manifest(step));
        let data = self.store.get_bytes(&key).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!("no checkpoint of step {step} under {}", self.uri()))
                    .with_source(e)
            } else {
                e
            }
        })?;
        Manifest::parse(&data, &key)
    }

    /// The step a load of "latest" takes. Where the store has conditional writes the pointer
    /// decides (it only ever moves forward); elsewhere it is advisory and the newest committed
    /// manifest wins. With no usable pointer, the newest manifest.
    pub async fn latest_step(&self) -> Result<Option<u64>> {
        let pointer = self.pointer().await?;
        let caps = self.store.capabilities();
        if let Some(p) = &pointer {
            if caps.put_if_match && caps.put_create_only {
                return Ok(Some(p.step));
            }
        }
        let newest = self.list().await?.last().copied();
        Ok(match (pointer.map(|p| p.step), newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }

    /// The manifest of the latest checkpoint, or `None` if there is none.
    pub async fn latest(&self) -> Result<Option<Manifest>> {
        match self.latest_step().await? {
            Some(step) => self.manifest(step).await.map(Some),
            None => Ok(None),
        }
    }

    /// Delete the checkpoint of `step`: its manifest first (so no reader starts on it), then
    /// its shards. The checkpoint `latest` names is refused.
    pub async fn delete_step(&self, step: u64) -> Result<()> {
        if self.pointer().await?.is_some_and(|p| p.step == step) {
            return Err(Error::invalid_input(format!(
                "checkpoint step {step} is the one 'latest' names; save a newer one first"
            )));
        }
        let m = self.manifest(step).await?;
        self.store
            .delete(&self.key(&layout::manifest(step)))
            .await?;
        self.delete_prefix(&self.key(&m.data_prefix)).await
    }

    /// Keep the newest `n` checkpoints (and always the one `latest` names); delete the rest.
    /// Returns the steps deleted.
    pub async fn keep_last(&self, n: usize) -> Result<Vec<u64>> {
        let steps = self.list().await?;
        let keep_pointer = self.pointer().await?.map(|p| p.step);
        let cut = steps.len().saturating_sub(n);
        let mut deleted = Vec::new();
        for &step in &steps[..cut] {
            if Some(step) == keep_pointer {
                continue;
            }
            self.delete_step(step).await?;
            deleted.push(step);
        }
        Ok(deleted)
    }

    /// Delete shard folders that no manifest names and that are older than `min_age` (saves
    /// that crashed or were abandoned). A save still in progress is younger than `min_age` if
    /// `min_age` is longer than any save takes. Returns the folders deleted.
    pub async fn collect_garbage(&self, min_age: Duration) -> Result<Vec<String>> {
        let mut named = std::collections::HashSet::new();
        for step in self.list().await? {
            named.insert(self.manifest(step).await?.data_prefix);
        }
        let data = self.key("data/");
        let objects = self.store.list_objects(&data).await?;
        let now = std::time::SystemTime::now();
        let mut folders: std::collections::BTreeMap<String, bool> = Default::default();
        for o in objects {
            let Some(rel) = o.key.strip_prefix(&self.root) else {
                continue;
            };
            let Some(folder) = rel
                .strip_prefix("data/")
                .and_then(|r| r.split_once('/'))
                .map(|(f, _)| format!("data/{f}/"))
            else {
                continue;
            };
            let old = o
                .last_modified
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min_age);
            let e = folders.entry(folder).or_insert(true);
            *e &= old;
        }
        let mut deleted = Vec::new();
        for (folder, old) in folders {
            if old && !named.contains(&folder) {
                self.delete_prefix(&self.key(&folder)).await?;
                deleted.push(folder);
            }
        }
        Ok(deleted)
    }

    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let keys: Vec<String> = self
            .store
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        for r in self.store.delete_many(keys).await? {
            r?;
        }
        Ok(())
    }

    /// The store of the named checkpoint `name`.
    fn named(&self, name: &str) -> Result<Self> {
        check_name("checkpoint name", name)?;
        let mut ck = self.clone();
        ck.root = format!("{}{}{name}/", self.root, layout::NAMED);
        Ok(ck)
    }

    /// Save `data` as the named checkpoint `name`: a new version of one shard, committed like
    /// any checkpoint; older versions beyond [`Config::named_keep`] are deleted.
    pub async fn save(&self, name: &str, data: Bytes) -> Result<Manifest> {
        let ck = self.named(name)?;
        let mut last_err = None;
        for _ in 0..8 {
            // After the newest committed version, even one whose pointer update is still
            // under way.
            let newest = ck
                .latest_step()
                .await?
                .max(ck.list().await?.last().copied());
            let step = newest.map_or(0, |s| s + 1);
            let mut opts = SaveOptions::new(step);
            if let Some(level) = self.config.named_zstd {
                opts = opts.zstd(level);
            }
            match ck
                .save_step(opts, vec![("data".into(), data.clone())])
                .await
            {
                Ok(m) => {
                    ck.keep_last(ck.config.named_keep.max(1)).await?;
                    return Ok(m);
                }
                // A concurrent save took this version: take the next one.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::other("named save did not commit")))
    }

    /// The latest version of the named checkpoint `name`, verified.
    pub async fn load(&self, name: &str) -> Result<Bytes> {
        let ck = self.named(name)?;
        let m = ck.latest().await?.ok_or_else(|| {
            Error::not_found(format!("no checkpoint named '{name}' under {}", self.uri()))
        })?;
        ck.load_shard(&m, 0, "data").await
    }

    /// Delete every version of the named checkpoint `name`.
    pub async fn delete_named(&self, name: &str) -> Result<()> {
        let ck = self.named(name)?;
        ck.delete_prefix(&ck.root).await
    }
}
