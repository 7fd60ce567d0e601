//! The async loader: plan, reserve memory, fetch concurrently, form batches, prefetch.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use s3dlio_store_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::budget::Budget;
use crate::dataset::{Dataset, Entry};
use crate::fetch::{Counters, Fetcher, RequestPolicy};
use crate::options::LoaderOptions;
use crate::plan::{self, PlannedBatch, ShardSpec, Sharder};

/// One sample, read.
#[derive(Clone, PartialEq, Eq)]
pub struct Sample {
    /// The object's URI (`s3://bucket/key`, `file:///path`).
    pub uri: String,
    /// The object's key in its store.
    pub key: Arc<str>,
    /// The sample's index in the dataset's own order (listing order, list order, record
    /// number in a TFRecord file).
    pub index: u64,
    /// For a TFRecord record: where its framed bytes sit in the file.
    pub range: Option<Range<u64>>,
    /// The bytes (a record's data, without framing).
    pub data: Bytes,
    /// A repeat added to even out ranks ([`Remainder::Pad`](crate::Remainder::Pad)); skip it
    /// when computing evaluation metrics.
    pub padding: bool,
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("uri", &self.uri)
            .field("index", &self.index)
            .field("range", &self.range)
            .field("bytes", &self.data.len())
            .field("padding", &self.padding)
            .finish()
    }
}

/// A sample that failed and was skipped (with `skip_errors`).
#[derive(Debug)]
pub struct Skipped {
    pub uri: String,
    pub index: u64,
    pub error: Error,
}

/// A batch of samples.
#[derive(Debug)]
pub struct Batch {
    pub epoch: u64,
    /// This worker's batch number in the epoch, from 0 (also after a resume).
    pub number: u64,
    pub samples: Vec<Sample>,
    /// Samples of this batch that failed and were skipped (`skip_errors`): a batch keeps
    /// its place (so ranks stay in step) and holds fewer samples.
    pub skipped: Vec<Skipped>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Bytes of all samples.
    pub fn bytes(&self) -> u64 {
        self.samples.iter().map(|s| s.data.len() as u64).sum()
    }
}

/// What an epoch's stream has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Batches delivered.
    pub batches: u64,
    /// Samples delivered (padding included, skipped excluded). Add this to the resume
    /// point the stream started from to checkpoint the position (ordered mode).
    pub samples: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Samples skipped after failing (`skip_errors`).
    pub skipped: u64,
    /// Padding samples delivered.
    pub padding: u64,
    /// Requests made (GETs, ranged parts, listing pages), retries included.
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// The most bytes reserved at once under the memory bound.
    pub peak_reserved_bytes: u64,
}

#[derive(Debug, Default)]
struct Delivered {
    batches: AtomicU64,
    samples: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    padding: AtomicU64,
}

/// Reads a [`Dataset`] as a stream of [`Batch`]es, one epoch per stream.
///
/// ```
/// use std::sync::Arc;
/// use futures::StreamExt;
/// use s3dlio_loader::{Dataset, Loader, LoaderOptions};
/// use s3dlio_store_core::{MemoryStore, ObjectStoreExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Arc::new(MemoryStore::new());
/// for i in 0..10 {
///     store.put_bytes(&format!("train/{i:03}"), vec![i as u8; 100].into()).await?;
/// }
/// let opts = LoaderOptions { batch_size: 4, shuffle: true, seed: 1, rank: Some(0),
///                            world_size: Some(1), ..Default::default() };
/// let loader = Loader::new(Dataset::from_prefix(store, "train/"), opts)?;
/// let mut batches = loader.stream();
/// let mut n = 0;
/// while let Some(batch) = batches.next().await {
///     n += batch?.len();
/// }
/// assert_eq!(n, 10);
/// # Ok::<_, s3dlio_store_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Loader {
    dataset: Dataset,
    opts: LoaderOptions,
    /// A prefix dataset's complete listing, kept after the first epoch that finished it.
    listed: Listed,
    /// Requests in flight of `get` calls, shared by all of them.
    get_slots: Arc<tokio::sync::Semaphore>,
}

impl Loader {
    /// A loader over `dataset`; options are checked here (rank and world size resolved
    /// from the environment where not given).
    pub fn new(dataset: Dataset, opts: LoaderOptions) -> Result<Self> {
        opts.validate()?;
        let (rank, world_size) = opts.resolved_rank()?;
        let opts = LoaderOptions {
            rank: Some(rank),
            world_size: Some(world_size),
            ..opts
        };
        Ok(Self {
            get_slots: Arc::new(tokio::sync::Semaphore::new(opts.max_in_flight)),
            dataset,
            opts,
            listed: Arc::default(),
        })
    }

    /// The options in force (rank and world size resolved).
    pub fn options(&self) -> &LoaderOptions {
        &self.opts
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The epoch `options().epoch` from the resume point `options().consumed`.
    pub fn stream(&self) -> BatchStream {
        self.resume(self.opts.epoch, self.opts.consumed)
    }

    /// Epoch `epoch` from its start.
    pub fn epoch(&self, epoch: u64) -> BatchStream {
        self.resume(epoch, 0)
    }

    /// Epoch `epoch`, skipping the first `consumed` samples of this rank's sequence: in
    /// ordered mode exactly the batches not yet consumed (see `docs/LOADER.md`).
    ///
    /// Must be called within a tokio runtime: the pipeline runs as a task on it, reading
    /// ahead while the consumer works. Dropping the stream stops it.
    pub fn resume(&self, epoch: u64, consumed: u64) -> BatchStream {
        let spec = match self.opts.shard_spec(consumed) {
            Ok(s) => s,
            Err(e) => return BatchStream::failed(e),
        };
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => {
                return BatchStream::failed(Error::invalid_input(
                    "the loader must be started within a tokio runtime",
                ))
            }
        };
        let o = &self.opts;
        let counters = Arc::new(Counters::default());
        let slots = Arc::new(tokio::sync::Semaphore::new(o.max_in_flight));
        let fetcher = self.fetcher(Arc::clone(&counters), slots);
        let budget = Arc::new(Budget::new(o.max_prefetch_bytes, o.batch_size));
        let (tx, rx) = mpsc::channel(o.prefetch);
        let job = Job {
            dataset: self.dataset.clone(),
            listed: Arc::clone(&self.listed),
            spec,
            epoch,
            shuffle: o.shuffle,
            seed: o.seed,
            ordered: o.ordered,
            skip_errors: o.skip_errors,
            max_in_flight: o.max_in_flight,
            fetcher,
            budget: Arc::clone(&budget),
        };
        let task = handle.spawn(job.run(tx));
        BatchStream {
            rx: Some(rx),
            task: Some(task),
            budget: Some(budget),
            counters,
            delivered: Arc::default(),
            failed: None,
        }
    }

    fn fetcher(&self, counters: Arc<Counters>, slots: Arc<tokio::sync::Semaphore>) -> Fetcher {
        let o = &self.opts;
        let policy = RequestPolicy {
            timeout: o.request_timeout,
            retries: o.retries,
            backoff: o.retry_backoff,
            counters,
            slots,
        };
        Fetcher {
            stores: Arc::clone(self.dataset.stores()),
            policy,
            range_threshold: o.range_threshold,
            range_part_size: o.range_part_size,
            range_concurrency: o.max_in_flight,
        }
    }

    async fn all(&self, fetcher: &Fetcher) -> Result<Arc<Vec<Entry>>> {
        all_entries(&self.dataset, &self.listed, &fetcher.policy).await
    }

    /// Number of samples in the dataset (all ranks); lists a prefix if not done yet.
    pub async fn dataset_len(&self) -> Result<u64> {
        let fetcher = self.fetcher(Arc::default(), Arc::clone(&self.get_slots));
        Ok(self.all(&fetcher).await?.len() as u64)
    }

    /// Sample `index` of the dataset order, read on its own (map-style access, as
    /// PyTorch's map datasets need), under the loader's timeout, retries and range reads.
    /// A prefix is listed first if it was not yet.
    pub async fn get(&self, index: u64) -> Result<Sample> {
        let fetcher = self.fetcher(Arc::default(), Arc::clone(&self.get_slots));
        let all = self.all(&fetcher).await?;
        let entry = all.get(index as usize).ok_or_else(|| {
            Error::invalid_input(format!(
                "sample {index} is past the dataset's {} samples",
                all.len()
            ))
        })?;
        let data = fetcher.fetch(entry).await?;
        Ok(Sample {
            uri: fetcher.uri(entry),
            key: Arc::clone(&entry.key),
            index: entry.index,
            range: entry.range(),
            data,
            padding: false,
        })
    }

    /// A blocking iterator over epoch `epoch` from `consumed`, driven by `handle` (a
    /// multi-thread runtime; call `next` from outside any async context). For callers
    /// without async, such as the Python facade.
    pub fn blocking_iter(
        &self,
        handle: &tokio::runtime::Handle,
        epoch: u64,
        consumed: u64,
    ) -> BlockingBatches {
        let stream = {
            let _entered = handle.enter();
            self.resume(epoch, consumed)
        };
        BlockingBatches {
            stream,
            handle: handle.clone(),
        }
    }
}

/// The batches of one epoch, as a [`Stream`]. Ends after the last batch, or after the
/// first error (unless `skip_errors`). Dropping it stops the reading.
pub struct BatchStream {
    rx: Option<mpsc::Receiver<Result<Delivery>>>,
    task: Option<JoinHandle<()>>,
    budget: Option<Arc<Budget>>,
    counters: Arc<Counters>,
    delivered: Arc<Delivered>,
    failed: Option<Error>,
}

impl fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchStream")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BatchStream {
    fn failed(e: Error) -> Self {
        Self {
            rx: None,
            task: None,
            budget: None,
            counters: Arc::default(),
            delivered: Arc::default(),
            failed: Some(e),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> LoaderStats {
        let d = &self.delivered;
        LoaderStats {
            batches: d.batches.load(Ordering::Relaxed),
            samples: d.samples.load(Ordering::Relaxed),
            bytes: d.bytes.load(Ordering::Relaxed),
            skipped: d.skipped.load(Ordering::Relaxed),
            padding: d.padding.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            peak_reserved_bytes: self.budget.as_ref().map_or(0, |b| b.peak()),
        }
    }

    fn deliver(&self, d: Delivery) -> Batch {
        if let Some(b) = &self.budget {
            b.release(d.reserved, d.samples);
        }
        let c = &self.delivered;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.samples
            .fetch_add(d.batch.samples.len() as u64, Ordering::Relaxed);
        c.bytes.fetch_add(d.batch.bytes(), Ordering::Relaxed);
        c.skipped
            .fetch_add(d.batch.skipped.len() as u64, Ordering::Relaxed);
        let pads = d.batch.samples.iter().filter(|s| s.padding).count();
        c.padding.fetch_add(pads as u64, Ordering::Relaxed);
        d.batch
    }
}

impl Stream for BatchStream {
    type Item = Result<Batch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(d))) => Poll::Ready(Some(Ok(self.deliver(d)))),
            Poll::Ready(Some(Err(e))) => {
                self.rx = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                // The task ended: normally, or by a panic that must not look like the end
                // of the epoch.
                let Some(task) = self.task.as_mut() else {
                    self.rx = None;
                    return Poll::Ready(None);
                };
                match Pin::new(task).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(r) => {
                        self.task = None;
                        self.rx = None;
                        match r {
                            Err(e) if e.is_panic() => Poll::Ready(Some(Err(Error::new(
                                ErrorKind::Other,
                                format!("the loader's pipeline panicked: {e}"),
                            )))),
                            _ => Poll::Ready(None),
                        }
                    }
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// A blocking iterator over an epoch's batches (see [`Loader::blocking_iter`]).
#[derive(Debug)]
pub struct BlockingBatches {
    stream: BatchStream,
    handle: tokio::runtime::Handle,
}

impl BlockingBatches {
    pub fn stats(&self) -> LoaderStats {
        self.stream.stats()
    }
}

impl Iterator for BlockingBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.handle.block_on(self.stream.next())
    }
}

/// A batch on its way to the consumer, with what it holds of the memory bound.
struct Delivery {
    batch: Batch,
    reserved: u64,
    samples: usize,
}

/// One planned sample on its way through the pipeline.
struct Ps {
    entry: Entry,
    padding: bool,
    batch: u64,
    batch_len: usize,
}

struct Fetched {
    ps: Ps,
    reserved: u64,
    result: Result<Bytes>,
}

/// Everything one epoch's task needs.
struct Job {
    dataset: Dataset,
    listed: Listed,
    spec: ShardSpec,
    epoch: u64,
    shuffle: bool,
    seed: u64,
    ordered: bool,
    skip_errors: bool,
    max_in_flight: usize,
    fetcher: Fetcher,
    budget: Arc<Budget>,
}

impl Job {
    /// The epoch's global order of samples.
    async fn order(&self) -> Result<BoxStream<'static, Result<Entry>>> {
        let iter = |all: Arc<Vec<Entry>>, order: Option<Vec<u64>>| {
            let order = order.unwrap_or_else(|| (0..all.len() as u64).collect());
            stream::iter(order.into_iter().map(move |i| Ok(all[i as usize].clone()))).boxed()
        };
        if self.shuffle {
            // A permutation needs the whole list first.
            let all = all_entries(&self.dataset, &self.listed, &self.fetcher.policy).await?;
            let order = plan::permutation(all.len() as u64, self.seed, self.epoch);
            return Ok(iter(all, Some(order)));
        }
        let known = self.dataset.known().or_else(|| cached(&self.listed));
        Ok(match known {
            Some(all) => iter(all, None),
            None => keep_listing(
                self.dataset.entries(self.fetcher.policy.clone()),
                Arc::clone(&self.listed),
            ),
        })
    }

    async fn run(self, tx: mpsc::Sender<Result<Delivery>>) {
        let order = match self.order().await {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // Plan: the global order through this worker's sharder, flattened to samples that
        // know their batch.
        let sharder = Sharder::<Entry>::new(self.spec);
        let planned = stream::unfold(
            (order, sharder, false),
            |(mut order, mut sharder, mut done)| async move {
                let mut out: Vec<PlannedBatch<Entry>> = Vec::new();
                let mut err = None;
                while out.is_empty() && !done {
                    match order.next().await {
                        Some(Ok(e)) => sharder.push(e, &mut out),
                        Some(Err(e)) => {
                            err = Some(e);
                            done = true;
                        }
                        None => {
                            sharder.finish(&mut out);
                            done = true;
                        }
                    }
                }
                if out.is_empty() && err.is_none() {
                    return None;
                }
                let mut items: Vec<Result<Ps>> = Vec::new();
                for b in out {
                    let batch_len = b.items.len();
                    items.extend(b.items.into_iter().map(|p| {
                        Ok(Ps {
                            entry: p.item,
                            padding: p.padding,
                            batch: b.number,
                            batch_len,
                        })
                    }));
                }
                if let Some(e) = err {
                    items.push(Err(e));
                    // End after the error.
                    order = stream::empty().boxed();
                }
                Some((stream::iter(items), (order, sharder, done)))
            },
        )
        .flatten();

        // Reserve memory in plan order, then fetch concurrently.
        let budget = Arc::clone(&self.budget);
        let reserved = planned.then(move |item| {
            let budget = Arc::clone(&budget);
            async move {
                let ps = item?;
                let n = ps.entry.data_size().unwrap_or_else(|| budget.estimate());
                budget.reserve(n).await;
                Ok::<_, Error>((ps, n))
            }
        });
        let (fetcher, budget) = (self.fetcher.clone(), Arc::clone(&self.budget));
        let fetches = reserved.map(move |item| {
            let (fetcher, budget) = (fetcher.clone(), Arc::clone(&budget));
            async move {
                let (ps, reserved) = item?;
                let result = fetcher.fetch(&ps.entry).await;
                let actual = result.as_ref().map_or(0, |b| b.len() as u64);
                budget.settle(reserved, actual);
                Ok::<_, Error>(Fetched {
                    ps,
                    reserved: actual,
                    result,
                })
            }
        });
        let mut fetched: BoxStream<'_, Result<Fetched>> = if self.ordered {
            fetches.buffered(self.max_in_flight).boxed()
        } else {
            fetches.buffer_unordered(self.max_in_flight).boxed()
        };

        let mut former = Former::new(self.epoch, self.spec.batch_size, self.ordered);
        while let Some(item) = fetched.next().await {
            let f = match item {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let uri = self.fetcher.uri(&f.ps.entry);
            let ready = match f.result {
                Ok(data) => former.add(
                    &f.ps,
                    f.reserved,
                    Ok(Sample {
                        uri,
                        key: Arc::clone(&f.ps.entry.key),
                        index: f.ps.entry.index,
                        range: f.ps.entry.range(),
                        data,
                        padding: f.ps.padding,
                    }),
                ),
                Err(error) if self.skip_errors => former.add(
                    &f.ps,
                    0,
                    Err(Skipped {
                        uri,
                        index: f.ps.entry.index,
                        error,
                    }),
                ),
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            };
            if let Some(d) = ready {
                if tx.send(Ok(d)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(d) = former.flush() {
            let _ = tx.send(Ok(d)).await;
        }
    }
}

type Listed = Arc<Mutex<Option<Arc<Vec<Entry>>>>>;

fn cached(listed: &Listed) -> Option<Arc<Vec<Entry>>> {
    listed.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Every sample of `dataset` in dataset order: known ones at once; a prefix is listed
/// completely (or read from its manifest) once, then kept in `listed`.
async fn all_entries(
    dataset: &Dataset,
    listed: &Listed,
    policy: &RequestPolicy,
) -> Result<Arc<Vec<Entry>>> {
    if let Some(e) = dataset.known().or_else(|| cached(listed)) {
        return Ok(e);
    }
    let mut all = Vec::new();
    let mut source = dataset.entries(policy.clone());
    while let Some(e) = source.next().await {
        all.push(e?);
    }
    let all = Arc::new(all);
    *listed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&all));
    Ok(all)
}

/// Pass a listing through, and keep it for the next epochs once it completed.
fn keep_listing(
    source: BoxStream<'static, Result<Entry>>,
    keep: Listed,
) -> BoxStream<'static, Result<Entry>> {
    stream::unfold(
        (Some(source), Vec::new(), keep),
        |(source, mut seen, keep)| async move {
            let mut source = source?;
            match source.next().await {
                Some(Ok(e)) => {
                    seen.push(e.clone());
                    Some((Ok(e), (Some(source), seen, keep)))
                }
                Some(Err(e)) => Some((Err(e), (None, Vec::new(), keep))),
                None => {
                    *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(seen));
                    None
                }
            }
        },
    )
    .boxed()
}

/// Forms batches: in planned order and grouping, or as samples arrive.
struct Former {
    epoch: u64,
    batch_size: usize,
    ordered: bool,
    next_number: u64,
    number: u64,
    target: usize,
    count: usize,
    reserved: u64,
    samples: Vec<Sample>,
    skipped: Vec<Skipped>,
}

impl Former {
    fn new(epoch: u64, batch_size: usize, ordered: bool) -> Self {
        Self {
            epoch,
            batch_size,
            ordered,
            next_number: 0,
            number: 0,
            target: batch_size,
            count: 0,
            reserved: 0,
            samples: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Add one sample (or a skipped one, which still takes its place); a complete batch is
    /// returned.
    fn add(
        &mut self,
        ps: &Ps,
        reserved: u64,
        sample: std::result::Result<Sample, Skipped>,
    ) -> Option<Delivery> {
        if self.count == 0 {
            if self.ordered {
                self.number = ps.batch;
                self.target = ps.batch_len;
            } else {
                self.number = self.next_number;
                self.next_number += 1;
                self.target = self.batch_size;
            }
        }
        self.count += 1;
        self.reserved += reserved;
        match sample {
            Ok(s) => self.samples.push(s),
            Err(s) => self.skipped.push(s),
        }
        (self.count == self.target).then(|| self.take())
    }

    /// The last, partial batch (only in out-of-order mode: in order, batches are complete
    /// by plan).
    fn flush(&mut self) -> Option<Delivery> {
        (self.count > 0).then(|| self.take())
    }

    fn take(&mut self) -> Delivery {
        let d = Delivery {
            batch: Batch {
                epoch: self.epoch,
                number: self.number,
                samples: std::mem::take(&mut self.samples),
                skipped: std::mem::take(&mut self.skipped),
            },
            reserved: self.reserved,
            samples: self.count,
        };
        self.count = 0;
        self.reserved = 0;
        d
    }
}
