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
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::pool::BufferPool;
use crate::store::{ByteStream, DeferredBody};

/// Fetches one part of an object, pinned to the version the read began with.
pub trait PartSource: Send + Sync + 'static {
    /// The bytes of `range`, which the body must deliver exactly.
    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, Result<PartBody>>;
}

/// A body that reads straight into the caller's memory (a socket read into the object's
/// buffer), sparing the copy out of a chunk of its own.
#[async_trait]
pub trait BodyReader: Send + 'static {
    /// Read the next bytes into `dst`; `Ok(0)` once the body is complete.
    async fn read(&mut self, dst: &mut [u8]) -> Result<usize>;

    /// The `len` bytes of the body as a stream of chunks (by default read into buffers of
    /// up to 1 MiB; a reader that holds some bytes already may hand them over as they are).
    fn into_stream(self: Box<Self>, len: u64) -> ByteStream {
        stream::try_unfold((self, len), |(mut r, left)| async move {
            if left == 0 {
                // Let the reader see its end (and free its connection).
                let n = r.read(&mut [0u8; 1]).await?;
                if n != 0 {
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        "part body longer than asked",
                    ));
                }
                return Ok(None);
            }
            let mut chunk = BytesMut::zeroed(left.min(READER_CHUNK) as usize);
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    format!("part body ended {left} bytes early"),
                )
                .set_retryable(true));
            }
            chunk.truncate(n);
            Ok(Some((chunk.freeze(), (r, left - n as u64))))
        })
        .boxed()
    }
}

/// The body of one part: chunks as they come, or a reader that fills the caller's memory.
pub enum PartBody {
    Stream(ByteStream),
    Reader(Box<dyn BodyReader>),
}

impl std::fmt::Debug for PartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stream(_) => "PartBody::Stream",
            Self::Reader(_) => "PartBody::Reader",
        })
    }
}

impl From<ByteStream> for PartBody {
    fn from(s: ByteStream) -> Self {
        Self::Stream(s)
    }
}

/// Largest chunk a reader's body is streamed in.
const READER_CHUNK: u64 = 1 << 20;

impl PartBody {
    /// As a stream of chunks (a reader's `len` bytes; see [`BodyReader::into_stream`]).
    pub fn into_stream(self, len: u64) -> ByteStream {
        match self {
            Self::Stream(s) => s,
            Self::Reader(r) => r.into_stream(len),
        }
    }
}

/// The rest of a large read; see the module documentation.
pub struct RangedBody {
    source: Arc<dyn PartSource>,
    uri: String,
    first: PartBody,
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
        first: impl Into<PartBody>,
        first_end: u64,
        target: Range<u64>,
        part_size: u64,
        concurrency: usize,
    ) -> Self {
        Self {
            source,
            uri,
            first: first.into(),
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
    body: PartBody,
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
            Some(PartBody::Stream(b)) => match b.try_next().await {
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
            Some(PartBody::Reader(r)) if at == dst.len() => {
                // Past the part: the body must end here.
                match r.read(&mut [0u8; 1]).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {
                        return Err(short(at as u64 + 1, dst.len() as u64, uri).set_retryable(false))
                    }
                    // Every byte is in: a failure to see the end loses nothing.
                    Err(_) => return Ok(()),
                }
            }
            Some(PartBody::Reader(r)) => match r.read(&mut dst[at..]).await {
                Ok(0) => short(at as u64, dst.len() as u64, uri),
                Ok(n) => {
                    failures = 0;
                    at += n;
                    continue;
                }
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

impl RangedBody {
    /// Every part into its own slice of `dst` (the whole target), `concurrency` at a time.
    async fn fill_all(self: Box<Self>, dst: &mut [u8]) -> Result<()> {
        let rest = self.rest();
        let Self {
            source,
            uri,
            first,
            first_end,
            target,
            concurrency,
            attempts,
            ..
        } = *self;
        let (head, mut tail) = dst.split_at_mut((first_end - target.start) as usize);
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
            .await
    }
}

#[async_trait]
impl DeferredBody for RangedBody {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let len = usize::try_from(self.target.end - self.target.start)
            .map_err(|_| Error::invalid_input("object does not fit in memory"))?;
        // One buffer at the final size (pooled, so usually already faulted in); every part
        // lands straight in its own slice of it.
        let pool = Arc::clone(&self.pool);
        let mut buf = pool.take(len);
        self.fill_all(&mut buf[..len]).await?;
        Ok(pool.wrap(buf, len))
    }

    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        let len = self.target.end - self.target.start;
        if len != expected {
            return Err(short(len, expected, &self.uri).set_retryable(false));
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::invalid_input(format!("{len} bytes do not fit in memory")))?;
        // Parts land straight in the caller's buffer; cut back if any fails.
        let start = buf.len();
        buf.resize(start + len, 0);
        let r = self.fill_all(&mut buf[start..]).await;
        if r.is_err() {
            buf.truncate(start);
        }
        r
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let rest = self.rest();
        let first_len = self.first_end - self.target.start;
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
        first.into_stream(first_len).chain(later).boxed()
    }
}

/// What one answer to a (ranged) GET holds: the bytes `range` of an object of `total` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub range: Range<u64>,
    pub total: u64,
}

impl Served {
    /// From an answer's `Content-Range` (a 206) or, without one, its length (a 200, the
    /// whole object).
    pub fn of_answer(content_range: Option<&str>, content_length: u64) -> Result<Self> {
        match content_range {
            Some(cr) => parse_content_range(cr)
                .ok_or_else(|| Error::other(format!("unparseable Content-Range '{cr}'"))),
            None => Ok(Self {
                range: 0..content_length,
                total: content_length,
            }),
        }
    }
}

/// A `Content-Range` value, `bytes 0-99/1000`, as the bytes it covers (0..100) and the
/// object's size (1000).
pub fn parse_content_range(v: &str) -> Option<Served> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total): (u64, u64, u64) = (a.parse().ok()?, b.parse().ok()?, total.parse().ok()?);
    (a <= b && b < total).then_some(Served {
        range: a..b + 1,
        total,
    })
}

/// A failed part fetch as the caller should see it: a failed If-Match (the ETag the read
/// is pinned to is gone) means the object was replaced midway; anything else is unchanged.
pub fn part_error(e: Error, uri: &str) -> Error {
    if e.kind() != ErrorKind::PreconditionFailed {
        return e;
    }
    let mut out = Error::new(
        ErrorKind::PreconditionFailed,
        "the object was replaced while it was being read (its ETag changed)",
    )
    .context(Operation::Get, e.uri().unwrap_or(uri).to_owned());
    if let Some(id) = e.request_id() {
        out = out.with_request_id(id);
    }
    out.with_source(e)
}

/// A part's answer must hold exactly the bytes asked for: anything else would land in the
/// wrong place of the object.
pub fn check_part(asked: &Range<u64>, served: &Range<u64>, uri: &str) -> Result<()> {
    if served == asked {
        return Ok(());
    }
    Err(Error::other(format!(
        "asked for bytes {asked:?}, the server sent {served:?}"
    ))
    .context(Operation::Get, uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Body, GetResult};
    use crate::types::ObjectMeta;

    #[test]
    fn content_range_parsing() {
        let served = |range, total| Some(Served { range, total });
        assert_eq!(parse_content_range("bytes 0-99/1000"), served(0..100, 1000));
        assert_eq!(
            parse_content_range("bytes 990-999/1000"),
            served(990..1000, 1000)
        );
        assert!(parse_content_range("bytes 5-3/10").is_none());
        assert!(parse_content_range("bytes */1000").is_none());
        assert!(parse_content_range("items 0-1/2").is_none());
        assert_eq!(
            Served::of_answer(None, 42).unwrap(),
            Served {
                range: 0..42,
                total: 42
            }
        );
        let e = Served::of_answer(Some("bytes x"), 1).unwrap_err();
        assert!(e.to_string().contains("unparseable Content-Range"), "{e}");
    }

    #[test]
    fn part_errors_name_a_replaced_object() {
        let lost = Error::new(ErrorKind::PreconditionFailed, "412 Precondition Failed")
            .with_request_id("req-1");
        let e = part_error(lost, "s3://b/k");
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
        assert!(
            e.to_string().contains("replaced while it was being read"),
            "{e}"
        );
        assert_eq!((e.uri(), e.request_id()), (Some("s3://b/k"), Some("req-1")));
        let other = part_error(Error::new(ErrorKind::NotFound, "gone"), "s3://b/k");
        assert_eq!(other.kind(), ErrorKind::NotFound);
        assert!(check_part(&(0..10), &(0..10), "u").is_ok());
        let e = check_part(&(0..10), &(0..9), "s3://b/k").unwrap_err();
        assert!(e.to_string().contains("asked for bytes 0..10"), "{e}");
    }

    /// Serves parts of `data`; the part starting at `bad` comes back one byte short.
    struct Parts {
        data: Bytes,
        bad: Option<u64>,
    }

    impl PartSource for Parts {
        fn fetch(&self, r: Range<u64>) -> BoxFuture<'static, Result<PartBody>> {
            let mut part = self.data.slice(r.start as usize..r.end as usize);
            if self.bad == Some(r.start) {
                part.truncate(part.len() - 1);
            }
            async move { Ok(PartBody::from(stream::iter([Ok(part)]).boxed())) }.boxed()
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

    /// Serves parts of `data`, each body failing after `cut` bytes on its first fetch; as
    /// streams of one chunk, or (`readers`) as readers handing out 2 bytes a read.
    struct Flaky {
        data: Bytes,
        cut: usize,
        readers: bool,
        fetched: std::sync::Mutex<Vec<Range<u64>>>,
    }

    /// Reads of at most `step` bytes from `data`, failing once `cut` bytes are out.
    struct SliceReader {
        data: Bytes,
        step: usize,
        cut: Option<usize>,
    }

    #[async_trait]
    impl BodyReader for SliceReader {
        async fn read(&mut self, dst: &mut [u8]) -> Result<usize> {
            let mut n = dst.len().min(self.step).min(self.data.len());
            if let Some(c) = &mut self.cut {
                if *c == 0 {
                    return Err(Error::new(ErrorKind::Interrupted, "reset"));
                }
                n = n.min(*c);
                *c -= n;
            }
            dst[..n].copy_from_slice(&self.data.split_to(n));
            Ok(n)
        }
    }

    impl PartSource for Flaky {
        fn fetch(&self, r: Range<u64>) -> BoxFuture<'static, Result<PartBody>> {
            let part = self.data.slice(r.start as usize..r.end as usize);
            let mut fetched = self.fetched.lock().unwrap();
            let first = !fetched.iter().any(|f| f.end == r.end);
            fetched.push(r);
            let cut = self.cut.min(part.len());
            if self.readers {
                let cut = (first && cut < part.len()).then_some(cut);
                let r = SliceReader {
                    data: part,
                    step: 2,
                    cut,
                };
                return async move { Ok(PartBody::Reader(Box::new(r))) }.boxed();
            }
            async move {
                let s: ByteStream = if first && cut < part.len() {
                    let reset = Error::new(ErrorKind::Interrupted, "reset");
                    stream::iter([Ok(part.slice(..cut)), Err(reset)]).boxed()
                } else {
                    stream::iter([Ok(part)]).boxed()
                };
                Ok(s.into())
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_part_cut_midway_resumes_from_its_last_byte() {
        let data: Bytes = (0..100u8).collect::<Vec<_>>().into();
        for readers in [false, true] {
            for how in ["bytes", "read_into", "stream"] {
                let source = Arc::new(Flaky {
                    data: data.clone(),
                    cut: 3,
                    readers,
                    fetched: Default::default(),
                });
                let first: PartBody = if readers {
                    PartBody::Reader(Box::new(SliceReader {
                        data: data.slice(0..4),
                        step: 3,
                        cut: None,
                    }))
                } else {
                    PartBody::from(stream::iter([Ok(data.slice(0..4))]).boxed())
                };
                let body = Box::new(
                    RangedBody::new(
                        Arc::clone(&source) as Arc<dyn PartSource>,
                        "mem:///k".into(),
                        first,
                        4,
                        0..20,
                        8,
                        2,
                    )
                    .with_attempts(3),
                );
                let got = match how {
                    "bytes" => body.bytes().await.unwrap(),
                    "read_into" => {
                        let mut buf = BytesMut::from(&b"xy"[..]);
                        body.read_into(&mut buf, 20).await.unwrap();
                        assert_eq!(&buf[..2], b"xy");
                        buf.split_off(2).freeze()
                    }
                    _ => {
                        let chunks: Vec<Bytes> = body.stream().try_collect().await.unwrap();
                        chunks.concat().into()
                    }
                };
                assert_eq!(got, data.slice(0..20), "readers {readers}, {how}");
                let mut fetched = source.fetched.lock().unwrap().clone();
                fetched.sort_by_key(|r| r.start);
                // Each part asked again only for the bytes after the 3 it got.
                assert_eq!(fetched, vec![4..12, 7..12, 12..20, 15..20], "{how}");
            }
        }
    }

    #[tokio::test]
    async fn a_reader_longer_than_its_part_is_refused_and_read_into_leaves_the_buffer() {
        let data: Bytes = (0..100u8).collect::<Vec<_>>().into();
        let long = PartBody::Reader(Box::new(SliceReader {
            data: data.slice(0..5),
            step: 8,
            cut: None,
        }));
        let source = Arc::new(Flaky {
            data: data.clone(),
            cut: 100,
            readers: true,
            fetched: Default::default(),
        });
        let body = RangedBody::new(source, "mem:///k".into(), long, 4, 0..20, 8, 2);
        let mut buf = BytesMut::from(&b"xy"[..]);
        let e = Box::new(body).read_into(&mut buf, 20).await.unwrap_err();
        assert!(e.to_string().contains("delivered 5 of 4 bytes"), "{e}");
        assert_eq!(&buf[..], b"xy");
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
