//! The deferred body of a large object read in parts, shared by the object-store backends
//! (S3, Azure): the first part came with the answer that gave the object's size and version;
//! the rest is fetched with concurrent ranged requests, each pinned by the backend to that
//! version, when the caller says how it wants the bytes: all into one buffer allocated once
//! ([`GetResult::bytes`](crate::GetResult::bytes)), each part landing straight in its own
//! slice, or streamed in order with a bounded number of parts fetched ahead
//! ([`GetResult::into_stream`](crate::GetResult::into_stream)).
//!
//! No I/O happens here: the backend's [`PartSource`] sends the requests.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::pool::BufferPool;
use crate::store::{ByteStream, DeferredBody};

/// Fetches one part of an object, pinned to the version the read began with.
pub trait PartSource: Send + Sync + 'static {
    /// The bytes of `range`, which the stream must deliver exactly.
    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, Result<ByteStream>>;
}

/// The rest of a large read; see the module documentation.
pub struct RangedBody {
    source: Arc<dyn PartSource>,
    uri: String,
    first: ByteStream,
    first_end: u64,
    target: Range<u64>,
    part_size: u64,
    concurrency: usize,
    /// Where whole-object buffers and streamed parts come from (a zero-limit pool, i.e.
    /// plain allocations, unless the backend gives its own).
    pool: Arc<BufferPool>,
    /// Attempts per part: a part whose body fails midway is resumed from its last byte
    /// with a fetch of the rest (pinned like every fetch), up to this many times without
    /// progress (default 1: no resumption).
    attempts: u32,
}

impl std::fmt::Debug for RangedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedBody")
            .field("uri", &self.uri)
            .field("target", &self.target)
            .finish()
    }
}

impl RangedBody {
    /// `first` holds the bytes `target.start..first_end`; the rest of `target` is fetched in
    /// parts of `part_size`, `concurrency` at a time.
    pub fn new(
        source: Arc<dyn PartSource>,
        uri: String,
        first: ByteStream,
        first_end: u64,
        target: Range<u64>,
        part_size: u64,
        concurrency: usize,
    ) -> Self {
        Self {
            source,
            uri,
            first,
            first_end,
            target,
            part_size: part_size.max(1),
            concurrency: concurrency.max(1),
            pool: BufferPool::new(0),
            attempts: 1,
        }
    }

    /// Resume a part that fails midway from its last byte, up to `attempts` tries per part
    /// without progress. A part that still fails returns its error as final
    /// (`is_retryable() == false`), so a retry layer above does not multiply the attempts.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Read into buffers from `pool` (reused once callers drop them; see [`crate::pool`]).
    pub fn with_pool(mut self, pool: Arc<BufferPool>) -> Self {
        self.pool = pool;
        self
    }

    /// The ranges after the first part, one per request.
    fn rest(&self) -> Vec<Range<u64>> {
        let part = self.part_size;
        (self.first_end..self.target.end)
            .step_by(part as usize)
            .map(|s| s..(s + part).min(self.target.end))
            .collect()
    }
}

/// Copy the body of `range` into `dst`, which it must fill exactly; a body that fails or
/// ends early is resumed from its last byte with `source`, up to `attempts` tries without
/// progress.
async fn fill(
    source: &dyn PartSource,
    range: Range<u64>,
    body: ByteStream,
    dst: &mut [u8],
    uri: &str,
    attempts: u32,
) -> Result<()> {
    let mut at = 0;
    let mut failures = 0u32;
    let mut body = Some(body);
    loop {
        let err = match body.as_mut() {
            None => match source.fetch(range.start + at as u64..range.end).await {
                Ok(b) => {
                    body = Some(b);
                    continue;
                }
                Err(e) => e,
            },
            Some(b) => match b.try_next().await {
                Ok(Some(chunk)) => {
                    let end = at + chunk.len();
                    if end > dst.len() {
                        return Err(short(end as u64, dst.len() as u64, uri).set_retryable(false));
                    }
                    dst[at..end].copy_from_slice(&chunk);
                    if !chunk.is_empty() {
                        failures = 0;
                    }
                    at = end;
                    continue;
                }
                Ok(None) if at == dst.len() => return Ok(()),
                Ok(None) => short(at as u64, dst.len() as u64, uri),
                Err(e) => e,
            },
        };
        failures += 1;
        if !err.is_retryable() || failures >= attempts {
            // Resumed here already: final for any layer above.
            return Err(if attempts > 1 {
                err.set_retryable(false)
            } else {
                err
            });
        }
        tracing::debug!(uri, at, error = %err, "resuming a part from its last byte");
        let wait = crate::retry::RetryPolicy::default().backoff(failures);
        tokio::time::sleep(wait.min(std::time::Duration::from_secs(1))).await;
        body = None;
    }
}

fn short(got: u64, want: u64, uri: &str) -> Error {
    Error::new(
        ErrorKind::Interrupted,
        format!("part body delivered {got} of {want} bytes"),
    )
    .set_retryable(true)
    .context(Operation::Get, uri)
}

#[async_trait]
impl DeferredBody for RangedBody {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let len = usize::try_from(self.target.end - self.target.start)
            .map_err(|_| Error::invalid_input("object does not fit in memory"))?;
        let rest = self.rest();
        let Self {
            source,
            uri,
            first,
            first_end,
            target,
            concurrency,
            pool,
            attempts,
            ..
        } = *self;
        // One buffer at the final size (pooled, so usually already faulted in); every part
        // lands straight in its own slice of it.
        let mut buf = pool.take(len);
        let (head, mut tail) = buf[..len].split_at_mut((first_end - target.start) as usize);
        let mut jobs = Vec::with_capacity(rest.len() + 1);
        jobs.push(
            fill(
                &*source,
                target.start..first_end,
                first,
                head,
                &uri,
                attempts,
            )
            .boxed(),
        );
        for r in rest {
            let (slice, next) = tail.split_at_mut((r.end - r.start) as usize);
            tail = next;
            let (source, uri) = (&source, &uri);
            jobs.push(
                async move {
                    let body = source.fetch(r.clone()).await?;
                    fill(&**source, r, body, slice, uri, attempts).await
                }
                .boxed(),
            );
        }
        stream::iter(jobs)
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        Ok(pool.wrap(buf, len))
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let rest = self.rest();
        let Self {
            source,
            uri,
            first,
            concurrency,
            pool,
            attempts,
            ..
        } = *self;
        // Later parts are fetched ahead, in order, each into one chunk: memory stays bounded
        // by `concurrency` parts.
        let later = stream::iter(rest)
            .map(move |r| {
                let (source, uri, pool) = (Arc::clone(&source), uri.clone(), Arc::clone(&pool));
                async move {
                    let len = (r.end - r.start) as usize;
                    let mut buf = pool.take(len);
                    let body = source.fetch(r.clone()).await?;
                    fill(&*source, r, body, &mut buf[..len], &uri, attempts).await?;
                    Ok::<_, Error>(pool.wrap(buf, len))
                }
            })
            .buffered(concurrency);
        first.chain(later).boxed()
    }
}

/// A `Content-Range` value, `bytes 0-99/1000`, as the bytes it covers (0..100) and the
/// object's size (1000).
pub fn parse_content_range(v: &str) -> Option<(Range<u64>, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total): (u64, u64, u64) = (a.parse().ok()?, b.parse().ok()?, total.parse().ok()?);
    (a <= b && b < total).then_some((a..b + 1, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Body, GetResult};
    use crate::types::ObjectMeta;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0..100, 1000)));
        assert_eq!(
            parse_content_range("bytes 990-999/1000"),
            Some((990..1000, 1000))
        );
        assert!(parse_content_range("bytes 5-3/10").is_none());
        assert!(parse_content_range("bytes */1000").is_none());
        assert!(parse_content_range("items 0-1/2").is_none());
    }

    /// Serves parts of `data`; the part starting at `bad` comes back one byte short.
    struct Parts {
        data: Bytes,
        bad: Option<u64>,
    }

    impl PartSource for Parts {
        fn fetch(&self, r: Range<u64>) -> BoxFuture<'static, Result<ByteStream>> {
            let mut part = self.data.slice(r.start as usize..r.end as usize);
            if self.bad == Some(r.start) {
                part.truncate(part.len() - 1);
            }
            async move { Ok(stream::iter([Ok(part)]).boxed()) }.boxed()
        }
    }

    fn result(bad: Option<u64>) -> GetResult {
        let data: Bytes = (0..100u8).collect::<Vec<_>>().into();
        let first = data.slice(10..17);
        let body = RangedBody::new(
            Arc::new(Parts { data, bad }),
            "mem:///k".into(),
            stream::iter([Ok(first)]).boxed(),
            17,
            10..95,
            8,
            3,
        );
        GetResult {
            meta: ObjectMeta::new("k", 100),
            range: 10..95,
            body: Body::Deferred(Box::new(body)),
            uri: "mem:///k".into(),
        }
    }

    /// Serves parts of `data`, each body failing after `cut` bytes on its first fetch.
    struct Flaky {
        data: Bytes,
        cut: usize,
        fetched: std::sync::Mutex<Vec<Range<u64>>>,
    }

    impl PartSource for Flaky {
        fn fetch(&self, r: Range<u64>) -> BoxFuture<'static, Result<ByteStream>> {
            let part = self.data.slice(r.start as usize..r.end as usize);
            let mut fetched = self.fetched.lock().unwrap();
            let first = !fetched.iter().any(|f| f.end == r.end);
            fetched.push(r);
            let cut = self.cut.min(part.len());
            async move {
                let s: ByteStream = if first && cut < part.len() {
                    let reset = Error::new(ErrorKind::Interrupted, "reset");
                    stream::iter([Ok(part.slice(..cut)), Err(reset)]).boxed()
                } else {
                    stream::iter([Ok(part)]).boxed()
                };
                Ok(s)
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_part_cut_midway_resumes_from_its_last_byte() {
        let data: Bytes = (0..100u8).collect::<Vec<_>>().into();
        let source = Arc::new(Flaky {
            data: data.clone(),
            cut: 3,
            fetched: Default::default(),
        });
        let first: ByteStream = stream::iter([Ok(data.slice(0..4))]).boxed();
        let body = RangedBody::new(
            Arc::clone(&source) as Arc<dyn PartSource>,
            "mem:///k".into(),
            first,
            4,
            0..20,
            8,
            2,
        )
        .with_attempts(3);
        assert_eq!(Box::new(body).bytes().await.unwrap(), data.slice(0..20));
        let mut fetched = source.fetched.lock().unwrap().clone();
        fetched.sort_by_key(|r| r.start);
        // Each part asked again only for the bytes after the 3 it got.
        assert_eq!(fetched, vec![4..12, 7..12, 12..20, 15..20]);
    }

    #[tokio::test]
    async fn parts_land_in_order_whole_or_streamed() {
        let want: Vec<u8> = (10..95u8).collect();
        assert_eq!(result(None).bytes().await.unwrap(), want);
        let chunks: Vec<Bytes> = result(None).into_stream().try_collect().await.unwrap();
        assert_eq!(chunks.concat(), want);
        let e = result(Some(25)).bytes().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert!(e.to_string().contains("delivered 7 of 8 bytes"), "{e}");
    }
}
