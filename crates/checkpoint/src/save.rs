//! Saving: each rank streams its shards into parts written in parallel, then writes its
//! marker; rank 0 waits for every rank's marker and commits the manifest and the pointer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use s3dlio_store_core::{
    ByteStream, Error, ErrorKind, ObjectStore, ObjectStoreExt, PutMode, PutOptions, Result,
};

use crate::manifest::{
    check_name, layout, parse_json, to_json, Compression, Manifest, PartEntry, Pointer, RankMarker,
    ShardEntry, FORMAT, FORMAT_VERSION,
};
use crate::store::{permit, CheckpointStore};

/// What a save records and how it runs.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub step: u64,
    pub epoch: Option<u64>,
    /// `"pytorch"`, `"jax"`, ... (recorded only).
    pub framework: Option<String>,
    /// Ranks taking part; rank 0 publishes once all of them have written their shards.
    pub world_size: u32,
    /// The id every rank of one save shares; it names the save's data folder, so two saves
    /// of the same step never write over each other's shards. Required when `world_size > 1`
    /// (broadcast it from rank 0, or take a job id); generated for single-rank saves.
    pub save_id: Option<String>,
    pub compression: Compression,
    /// zstd level, when `compression` is `Zstd`.
    pub zstd_level: i32,
    /// Recorded in the manifest.
    pub metadata: BTreeMap<String, String>,
    /// How long rank 0 waits for the other ranks' shards before giving up.
    pub publish_timeout: Duration,
}

impl SaveOptions {
    /// A single-rank, uncompressed save of `step`.
    pub fn new(step: u64) -> Self {
        Self {
            step,
            epoch: None,
            framework: None,
            world_size: 1,
            save_id: None,
            compression: Compression::None,
            zstd_level: 3,
            metadata: BTreeMap::new(),
            publish_timeout: Duration::from_secs(600),
        }
    }

    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    pub fn framework(mut self, framework: impl Into<String>) -> Self {
        self.framework = Some(framework.into());
        self
    }

    /// A save by `world_size` ranks sharing `save_id`.
    pub fn distributed(mut self, world_size: u32, save_id: impl Into<String>) -> Self {
        self.world_size = world_size;
        self.save_id = Some(save_id.into());
        self
    }

    pub fn zstd(mut self, level: i32) -> Self {
        self.compression = Compression::Zstd;
        self.zstd_level = level;
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }
}

/// A unique enough id for a single-process save: time, process and a counter.
fn fresh_save_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// One rank's part of a save. Write shards with [`put_shard`](Self::put_shard),
/// [`put_shard_stream`](Self::put_shard_stream) or [`shard_writer`](Self::shard_writer), then
/// call [`finish`](Self::finish).
#[derive(Debug)]
pub struct RankSaver {
    ck: CheckpointStore,
    opts: SaveOptions,
    rank: u32,
    save_id: String,
    data_prefix: String,
    shards: Arc<Mutex<Vec<ShardEntry>>>,
}

impl RankSaver {
    pub(crate) fn new(ck: CheckpointStore, opts: SaveOptions, rank: u32) -> Result<Self> {
        if opts.world_size == 0 || rank >= opts.world_size {
            return Err(Error::invalid_input(format!(
                "rank {rank} is not in a world of {} ranks",
                opts.world_size
            )));
        }
        let save_id = match (&opts.save_id, opts.world_size) {
            (Some(id), _) => id.clone(),
            (None, 1) => fresh_save_id(),
            (None, _) => {
                return Err(Error::invalid_input(
                    "a distributed save needs a save_id all ranks share \
                     (SaveOptions::distributed)",
                ))
            }
        };
        check_name("save id", &save_id)?;
        let data_prefix = layout::data_prefix(opts.step, &save_id);
        Ok(Self {
            ck,
            opts,
            rank,
            save_id,
            data_prefix,
            shards: Arc::default(),
        })
    }

    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Store `data` as the shard `name` of this rank, in parts written in parallel.
    pub async fn put_shard(&self, name: &str, data: Bytes) -> Result<ShardEntry> {
        let mut w = self.shard_writer(name)?;
        match w.write(data).await {
            Ok(()) => w.finish().await,
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Store a stream of chunks as the shard `name`; memory stays bounded by the writer's
    /// parts in flight.
    pub async fn put_shard_stream(&self, name: &str, mut data: ByteStream) -> Result<ShardEntry> {
        let mut w = self.shard_writer(name)?;
        loop {
            match data.try_next().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = w.write(chunk).await {
                        let _ = w.abort().await;
                        return Err(e);
                    }
                }
                Ok(None) => return w.finish().await,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            }
        }
    }

    /// A streaming writer of the shard `name`.
    pub fn shard_writer(&self, name: &str) -> Result<ShardWriter> {
        check_name("shard name", name)?;
        if self
            .shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|s| s.name == name)
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("rank {} already saved a shard '{name}'", self.rank),
            ));
        }
        Ok(ShardWriter {
            ctx: Arc::new(PartCtx {
                store: Arc::clone(&self.ck.store),
                root: self.ck.root.clone(),
                compression: self.opts.compression,
                level: self.opts.zstd_level,
            }),
            data_prefix: self.data_prefix.clone(),
            rank: self.rank,
            name: name.to_owned(),
            part_size: self.ck.config.part_size.max(1),
            concurrency: self.ck.config.write_concurrency.max(1),
            uploads: Arc::clone(&self.ck.limits.uploads),
            shards: Arc::clone(&self.shards),
            pending: Vec::new(),
            pending_len: 0,
            inflight: VecDeque::new(),
            done: Vec::new(),
        })
    }

    /// Record this rank's shards (its marker). Rank 0 then waits for every rank's marker and
    /// publishes the checkpoint, returning its manifest; other ranks return `None`.
    pub async fn finish(self) -> Result<Option<Manifest>> {
        let mut shards =
            std::mem::take(&mut *self.shards.lock().unwrap_or_else(|p| p.into_inner()));
        shards.sort_by(|a, b| a.name.cmp(&b.name));
        let marker = RankMarker {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            rank: self.rank,
            save_id: self.save_id.clone(),
            shards,
        };
        let key = self.ck.key(&layout::marker(&self.data_prefix, self.rank));
        self.ck
            .store
            .put(&key, to_json(&marker), create_if_possible(&*self.ck.store))
            .await?;
        if self.rank != 0 {
            return Ok(None);
        }
        self.publish().await.map(Some)
    }

    /// Delete what this rank has stored; the save is abandoned.
    pub async fn abort(self) -> Result<()> {
        let prefix = self
            .ck
            .key(&format!("{}rank-{:05}", self.data_prefix, self.rank));
        self.ck.delete_prefix(&prefix).await
    }

    /// Wait until every rank's marker is there, check their parts are stored at their sizes,
    /// then commit the manifest (create-only) and advance `latest`.
    async fn publish(&self) -> Result<Manifest> {
        let ck = &self.ck;
        let prefix = ck.key(&self.data_prefix);
        let deadline = Instant::now() + self.opts.publish_timeout;
        let stored: HashMap<String, u64> = loop {
            let objects = ck.store.list_objects(&prefix).await?;
            let stored: HashMap<String, u64> =
                objects.into_iter().map(|m| (m.key, m.size)).collect();
            let missing: Vec<u32> = (0..self.opts.world_size)
                .filter(|r| !stored.contains_key(&ck.key(&layout::marker(&self.data_prefix, *r))))
                .collect();
            if missing.is_empty() {
                break stored;
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "checkpoint step {}: ranks {missing:?} of {} did not finish their shards \
                         within {:?}; nothing was published",
                        self.opts.step, self.opts.world_size, self.opts.publish_timeout
                    ),
                )
                .set_retryable(false));
            }
            tokio::time::sleep(ck.config.poll_interval).await;
        };
        let mut shards = Vec::new();
        for r in 0..self.opts.world_size {
            let key = ck.key(&layout::marker(&self.data_prefix, r));
            let marker: RankMarker = parse_json(&ck.store.get_bytes(&key).await?, "marker", &key)?;
            if marker.rank != r || marker.save_id != self.save_id {
                return Err(Error::other(format!(
                    "marker {key} is for rank {} of save {}, not rank {r} of save {}",
                    marker.rank, marker.save_id, self.save_id
                )));
            }
            for s in &marker.shards {
                for p in &s.parts {
                    let have = stored.get(&ck.key(&p.key)).copied();
                    if have != Some(p.size) {
                        return Err(Error::other(format!(
                            "checkpoint step {}: shard '{}' of rank {r}: part {} is {} but \
                             should be {} bytes; nothing was published",
                            self.opts.step,
                            s.name,
                            p.key,
                            have.map_or("missing".into(), |n| format!("{n} bytes")),
                            p.size
                        )));
                    }
                }
            }
            shards.extend(marker.shards);
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            step: self.opts.step,
            epoch: self.opts.epoch,
            framework: self.opts.framework.clone(),
            world_size: self.opts.world_size,
            created_unix_ms: now_ms(),
            save_id: self.save_id.clone(),
            data_prefix: self.data_prefix.clone(),
            shards,
            metadata: self.opts.metadata.clone(),
        };
        let rel = layout::manifest(self.opts.step);
        let key = ck.key(&rel);
        let mut lost = false;
        let committed = ck
            .store
            .put(&key, to_json(&manifest), create_if_possible(&*ck.store))
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    lost = true;
                    Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "checkpoint step {} is already committed; delete it first to save \
                             it again",
                            self.opts.step
                        ),
                    )
                    .with_source(e)
                } else {
                    e
                }
            });
        if let Err(e) = committed {
            if lost {
                // Another save committed this step: this save's data can never be named.
                let _ = ck.delete_prefix(&prefix).await;
            }
            return Err(e);
        }
        ck.advance_pointer(self.opts.step, &rel).await?;
        Ok(manifest)
    }
}

/// Create-only where the store has it (every backend but a few file systems over NFS).
fn create_if_possible(store: &dyn ObjectStore) -> PutOptions {
    if store.capabilities().put_create_only {
        PutOptions::create()
    } else {
        PutOptions::default()
    }
}

impl CheckpointStore {
    /// Move `latest` to `step` unless it already names a step at least as new. With If-Match
    /// (or create-only for the first pointer) concurrent writers retry on conflict, so the
    /// pointer only ever moves forward; without conditional writes the replace is atomic but
    /// a racing writer may leave the older step: loads then prefer the newest manifest.
    pub(crate) async fn advance_pointer(&self, step: u64, manifest_rel: &str) -> Result<()> {
        let key = self.key(layout::POINTER);
        let caps = self.store.capabilities();
        let body = to_json(&Pointer {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            step,
            manifest: manifest_rel.to_owned(),
        });
        for _ in 0..1000 {
            let (current, etag) = match self.read_pointer_raw().await? {
                Some((p, etag)) => (p, etag),
                None => (None, None),
            };
            let exists = etag.is_some() || current.is_some();
            if current.as_ref().is_some_and(|p| p.step >= step) {
                return Ok(());
            }
            let mode = match (exists, etag) {
                (false, _) if caps.put_create_only => PutMode::Create,
                (true, Some(etag)) if caps.put_if_match => PutMode::IfMatch(etag),
                _ => PutMode::Overwrite,
            };
            let opts = PutOptions {
                mode,
                ..PutOptions::default()
            };
            match self.store.put(&key, body.clone(), opts).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::AlreadyExists
                            | ErrorKind::PreconditionFailed
                            | ErrorKind::NotFound
                    ) =>
                {
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::other(format!(
            "{key}: gave up advancing the pointer to step {step} after 1000 conflicts"
        )))
    }
}

/// What every part upload of one shard shares.
#[derive(Debug)]
struct PartCtx {
    store: Arc<dyn ObjectStore>,
    root: String,
    compression: Compression,
    level: i32,
}

/// A streaming writer of one shard: bytes are cut into parts of the store's part size, and
/// each full part is uploaded by its own task (at most the write concurrency at once), its
/// CRC32C computed as its chunks go out. Memory held: the parts in flight.
///
/// Nothing is visible until the rank's [`RankSaver::finish`] publishes; [`abort`](Self::abort)
/// deletes the parts already stored. A writer dropped unfinished leaves parts that no
/// manifest names (see [`CheckpointStore::collect_garbage`]).
#[derive(Debug)]
pub struct ShardWriter {
    ctx: Arc<PartCtx>,
    data_prefix: String,
    rank: u32,
    name: String,
    part_size: u64,
    concurrency: usize,
    /// The store's bound on part uploads across all its shard writers.
    uploads: Arc<Semaphore>,
    shards: Arc<Mutex<Vec<ShardEntry>>>,
    pending: Vec<Bytes>,
    pending_len: u64,
    inflight: VecDeque<JoinHandle<Result<PartEntry>>>,
    done: Vec<PartEntry>,
}

impl ShardWriter {
    /// Append bytes (any chunk size).
    pub async fn write(&mut self, mut data: Bytes) -> Result<()> {
        while !data.is_empty() {
            let room = (self.part_size - self.pending_len) as usize;
            let take = data.split_to(room.min(data.len()));
            self.pending_len += take.len() as u64;
            self.pending.push(take);
            if self.pending_len == self.part_size {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        let parts: u64 = self.done.iter().map(|p| p.raw_size).sum();
        parts + self.inflight.len() as u64 * self.part_size + self.pending_len
    }

    fn part_count(&self) -> usize {
        self.done.len() + self.inflight.len()
    }

    async fn flush_part(&mut self) -> Result<()> {
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let rel = layout::part(&self.data_prefix, self.rank, &self.name, self.part_count());
        let (ctx, uploads) = (Arc::clone(&self.ctx), Arc::clone(&self.uploads));
        self.inflight.push_back(tokio::spawn(async move {
            let _permit = permit(&uploads).await?;
            upload_part(ctx, rel, chunks).await
        }));
        while self.inflight.len() > self.concurrency {
            self.join_oldest().await?;
        }
        Ok(())
    }

    async fn join_oldest(&mut self) -> Result<()> {
        if let Some(h) = self.inflight.pop_front() {
            let part = h
                .await
                .map_err(|e| Error::other(format!("part upload task failed: {e}")))??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Upload what is left, wait for every part, and record the shard.
    pub async fn finish(mut self) -> Result<ShardEntry> {
        if self.pending_len > 0 || self.part_count() == 0 {
            self.flush_part().await?;
        }
        while !self.inflight.is_empty() {
            if let Err(e) = self.join_oldest().await {
                let _ = self.abort().await;
                return Err(e);
            }
        }
        let parts = std::mem::take(&mut self.done);
        let raw_crc32c = parts.iter().fold(0u32, |crc, p| {
            crc32c::crc32c_combine(crc, p.raw_crc32c, p.raw_size as usize)
        });
        let entry = ShardEntry {
            rank: self.rank,
            name: self.name.clone(),
            compression: self.ctx.compression,
            size: parts.iter().map(|p| p.size).sum(),
            raw_size: parts.iter().map(|p| p.raw_size).sum(),
            raw_crc32c,
            parts,
        };
        self.shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry.clone());
        Ok(entry)
    }

    /// Stop, wait for parts in flight, and delete every part stored.
    pub async fn abort(mut self) -> Result<()> {
        self.pending.clear();
        let count = self.part_count();
        while let Some(h) = self.inflight.pop_front() {
            if let Ok(Ok(part)) = h.await {
                self.done.push(part);
            }
        }
        // Parts whose upload failed may still exist if the failure came after the write.
        let keys = (0..count)
            .map(|i| {
                let rel = layout::part(&self.data_prefix, self.rank, &self.name, i);
                format!("{}{rel}", self.ctx.root)
            })
            .collect();
        for r in self.ctx.store.delete_many(keys).await? {
            r?;
        }
        Ok(())
    }
}

/// Store one part through a streaming writer, computing its CRC32C as the chunks go out.
async fn upload_part(ctx: Arc<PartCtx>, rel: String, chunks: Vec<Bytes>) -> Result<PartEntry> {
    let key = format!("{}{rel}", ctx.root);
    let (chunks, raw) = match ctx.compression {
        Compression::None => (chunks, None),
        Compression::Zstd => {
            let level = ctx.level;
            let (raw_size, raw_crc, packed) =
                tokio::task::spawn_blocking(move || compress(&chunks, level))
                    .await
                    .map_err(|e| Error::other(format!("compression task failed: {e}")))??;
            (vec![packed], Some((raw_size, raw_crc)))
        }
    };
    let mut writer = ctx.store.writer(&key, PutOptions::default()).await?;
    let (mut crc, mut size) = (0u32, 0u64);
    for chunk in chunks {
        crc = crc32c::crc32c_append(crc, &chunk);
        size += chunk.len() as u64;
        if let Err(e) = writer.write(chunk).await {
            let _ = writer.abort().await;
            return Err(e);
        }
    }
    writer.complete().await?;
    let (raw_size, raw_crc32c) = raw.unwrap_or((size, crc));
    Ok(PartEntry {
        key: rel,
        size,
        crc32c: crc,
        raw_size,
        raw_crc32c,
    })
}

/// One zstd frame of `chunks`; returns their size and CRC32C and the frame.
fn compress(chunks: &[Bytes], level: i32) -> Result<(u64, u32, Bytes)> {
    let zerr = |e: std::io::Error| Error::other(format!("zstd: {e}")).with_source(e);
    let raw_size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).map_err(zerr)?;
    let mut crc = 0u32;
    for c in chunks {
        crc = crc32c::crc32c_append(crc, c);
        enc.write_all(c).map_err(zerr)?;
    }
    Ok((raw_size, crc, Bytes::from(enc.finish().map_err(zerr)?)))
}
