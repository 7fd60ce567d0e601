//! Reading one sample: per-request timeout, retries with backoff for retryable errors only,
//! concurrent ranged GETs for large objects, TFRecord unframing.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use s3dlio_store_core::{ByteRange, Error, ErrorKind, GetOptions, ObjectStore, Operation, Result};

use crate::dataset::{Entry, EntryKind};
use crate::plan::SplitMix64;

/// Counters shared by a loader's pipeline and its consumer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub requests: AtomicU64,
}

/// Timeout and retry rules of every request the loader makes.
#[derive(Debug, Clone)]
pub(crate) struct RequestPolicy {
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub backoff: Duration,
    pub counters: Arc<Counters>,
    /// One permit per request in flight (`max_in_flight`).
    pub slots: Arc<tokio::sync::Semaphore>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl RequestPolicy {
    /// Run `attempt` until it succeeds, fails with an error that is not retryable, or the
    /// retries are spent. Each attempt is bounded by the timeout; a timed-out attempt is a
    /// retryable `Timeout` error naming `op` and `uri`.
    pub async fn run<T, F, Fut>(&self, op: Operation, uri: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut n = 0u32;
        loop {
            let permit = self.slots.acquire().await.ok();
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let res = match self.timeout {
                Some(t) => match tokio::time::timeout(t, attempt()).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        format!("no complete answer within {t:?} (loader request_timeout)"),
                    )
                    .context(op, uri)),
                },
                None => attempt().await,
            };
            drop(permit);
            match res {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < self.retries => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.backoff_for(n, uri)).await;
                    n += 1;
                }
                Err(e) if n > 0 => {
                    let what = format!("after {} attempts", n + 1);
                    return Err(Error::new(e.kind(), what)
                        .context(op, uri)
                        .set_retryable(false)
                        .with_source(e));
                }
                Err(e) => return Err(e.context(op, uri)),
            }
        }
    }

    /// Exponential backoff with jitter in [50%, 100%] of the step.
    fn backoff_for(&self, attempt: u32, uri: &str) -> Duration {
        let step = self
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(MAX_BACKOFF);
        let h = uri.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ b as u64);
        let mut rng = SplitMix64::new(h, attempt as u64);
        let frac = 0.5 + 0.5 * (rng.below(1 << 20) as f64 / (1u64 << 20) as f64);
        step.mul_f64(frac)
    }
}

/// How samples are read.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub stores: Arc<Vec<Arc<dyn ObjectStore>>>,
    pub policy: RequestPolicy,
    pub range_threshold: Option<u64>,
    pub range_part_size: u64,
    /// Parts of one large object read at once.
    pub range_concurrency: usize,
}

impl Fetcher {
    pub fn uri(&self, e: &Entry) -> String {
        self.stores[e.store as usize].uri_of(&e.key)
    }

    /// The sample's bytes: a whole object, a ranged read of one, or a record's data.
    pub async fn fetch(&self, e: &Entry) -> Result<Bytes> {
        let store = &self.stores[e.store as usize];
        let uri = self.uri(e);
        match &e.kind {
            EntryKind::Object => {
                let big = match (self.range_threshold, e.size) {
                    (Some(t), Some(size)) => size >= t && size > self.range_part_size,
                    _ => false,
                };
                if big && store.capabilities().range_get {
                    return self.fetch_parts(store, e, &uri, e.size.unwrap_or(0)).await;
                }
                let b = self
                    .policy
                    .run(Operation::Get, &uri, || async {
                        store
                            .get(&e.key, GetOptions::default())
                            .await?
                            .bytes()
                            .await
                    })
                    .await?;
                if let Some(want) = e.size {
                    expect_len(&b, want, "the listing said", &uri)?;
                }
                Ok(b)
            }
            EntryKind::Record { offset, len } => {
                let range = ByteRange::bounded(*offset, offset + len)
                    .map_err(|err| err.context(Operation::Get, uri.clone()))?;
                let framed = self
                    .policy
                    .run(Operation::Get, &uri, || async {
                        store
                            .get(&e.key, GetOptions::range(range))
                            .await?
                            .bytes()
                            .await
                    })
                    .await?;
                expect_len(&framed, *len, "the TFRecord index said", &uri)?;
                s3dlio_tfrecord_index::decode_record(&framed, *offset, e.index, true).map_err(
                    |err| {
                        Error::from(s3dlio_tfrecord_index::Error::from(err))
                            .context(Operation::Get, format!("{uri} (record at offset {offset})"))
                    },
                )
            }
        }
    }

    /// A large object as concurrent ranged GETs into one buffer, each pinned to the
    /// listing's ETag where the backend can check it.
    async fn fetch_parts(
        &self,
        store: &Arc<dyn ObjectStore>,
        e: &Entry,
        uri: &str,
        size: u64,
    ) -> Result<Bytes> {
        let part = self.range_part_size;
        let if_match = e
            .etag
            .as_deref()
            .filter(|_| store.capabilities().get_if_match)
            .map(str::to_owned);
        let starts: Vec<u64> = (0..size).step_by(part as usize).collect();
        let parts: Vec<Bytes> = futures::stream::iter(starts)
            .map(|start| {
                let end = (start + part).min(size);
                let opts = GetOptions {
                    range: Some(ByteRange::Bounded { start, end }),
                    if_match: if_match.clone(),
                };
                async move {
                    let b = self
                        .policy
                        .run(Operation::Get, uri, || {
                            let opts = opts.clone();
                            async move { store.get(&e.key, opts).await?.bytes().await }
                        })
                        .await?;
                    expect_len(&b, end - start, "the range asked for", uri)?;
                    Ok::<_, Error>(b)
                }
            })
            .buffered(self.range_concurrency.max(1))
            .try_collect()
            .await?;
        let mut buf = BytesMut::with_capacity(size as usize);
        for p in parts {
            buf.extend_from_slice(&p);
        }
        Ok(buf.freeze())
    }
}

/// A read that returned another length than expected (the object changed since it was
/// listed or indexed, or the backend misbehaved) is an error, never a short sample.
fn expect_len(b: &Bytes, want: u64, source: &str, uri: &str) -> Result<()> {
    if b.len() as u64 == want {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Other,
        format!("{} bytes read, {source} {want} (object changed?)", b.len()),
    )
    .context(Operation::Get, uri))
}
