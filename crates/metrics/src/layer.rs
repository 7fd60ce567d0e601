//! The one layer that times operations: [`ObservedStore`] wraps any store, times each
//! operation (a GET until its body has been read to the end) and hands an [`OpRecord`] to
//! its [`Observer`]: the metrics, the op-log, tracing, or several of them at once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{Stream, StreamExt};
use s3dlio_store_core::{
    Body, ByteStream, Capabilities, CopyOptions, DeferredBody, GetOptions, GetResult, ListOptions,
    ListPage, ObjectMeta, ObjectStore, ObjectWriter, PutOptions, PutResult, Result,
};
use tracing::{Instrument, Span};

use crate::op::{backend_of, thread_no, OpKind, OpRecord, Outcome};
use crate::redact::redact;

/// Receives every finished operation of the stores it observes. Called on the thread that
/// finished the operation, so it must be quick and must not block for long.
pub trait Observer: Clone + Send + Sync + 'static {
    /// Whether records need the key and the wall-clock start (the op-log does; metrics do
    /// not, and skip the cost).
    const DETAIL: bool;
    /// Whether each operation gets a `tracing` span at DEBUG level.
    const SPANS: bool = false;
    fn record(&self, rec: &OpRecord<'_>);
}

impl<O: Observer> Observer for Option<O> {
    const DETAIL: bool = O::DETAIL;
    const SPANS: bool = O::SPANS;
    fn record(&self, rec: &OpRecord<'_>) {
        if let Some(o) = self {
            o.record(rec);
        }
    }
}

impl<A: Observer, B: Observer> Observer for (A, B) {
    const DETAIL: bool = A::DETAIL || B::DETAIL;
    const SPANS: bool = A::SPANS || B::SPANS;
    fn record(&self, rec: &OpRecord<'_>) {
        self.0.record(rec);
        self.1.record(rec);
    }
}

impl<A: Observer, B: Observer, C: Observer> Observer for (A, B, C) {
    const DETAIL: bool = A::DETAIL || B::DETAIL || C::DETAIL;
    const SPANS: bool = A::SPANS || B::SPANS || C::SPANS;
    fn record(&self, rec: &OpRecord<'_>) {
        self.0.record(rec);
        self.1.record(rec);
        self.2.record(rec);
    }
}

/// The tracing observer: a DEBUG span per operation (`s3dlio.op` with `op` and the
/// redacted `uri`) around the backend's work, closed by a DEBUG event with the sizes and
/// the duration. Records nothing else.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing;

impl Observer for Tracing {
    const DETAIL: bool = false;
    const SPANS: bool = true;
    fn record(&self, _: &OpRecord<'_>) {}
}

/// A store whose every operation is spanned and logged with tracing.
pub type TracingStore<S> = ObservedStore<S, Tracing>;

/// Wraps a store (`S`, or `dyn ObjectStore` behind an `Arc`) and reports every operation to
/// `O`. See the crate docs for what is measured when.
pub struct ObservedStore<S: ?Sized, O> {
    inner: Arc<S>,
    ctx: Ctx<O>,
}

impl<S: ?Sized + ObjectStore, O: Observer> fmt::Debug for ObservedStore<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedStore")
            .field("inner", &self.inner)
            .field("backend", &self.ctx.backend)
            .finish()
    }
}

impl<S: ObjectStore, O: Observer> ObservedStore<S, O> {
    pub fn new(inner: S, observer: O) -> Self {
        Self::from_arc(Arc::new(inner), observer)
    }
}

impl<S: ?Sized + ObjectStore, O: Observer> ObservedStore<S, O> {
    /// Wrap a shared store, e.g. an `Arc<dyn ObjectStore>` from the registry.
    pub fn from_arc(inner: Arc<S>, observer: O) -> Self {
        let store_uri: Arc<str> = Arc::from(inner.base_uri());
        let backend = Arc::from(backend_of(&store_uri));
        Self {
            inner,
            ctx: Ctx {
                observer,
                backend,
                store_uri,
            },
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn observer(&self) -> &O {
        &self.ctx.observer
    }

    /// Time `fut` as one `op` on `key`; `sizes` gives (objects, bytes) from its result, or
    /// of the attempt when it failed.
    async fn observe<T>(
        &self,
        op: OpKind,
        key: &str,
        fut: impl Future<Output = Result<T>> + Send,
        sizes: impl FnOnce(Option<&T>) -> (u64, u64),
    ) -> Result<T> {
        let started = self.ctx.start(op, key);
        let r = started.run(fut).await;
        let (n, bytes) = sizes(r.as_ref().ok());
        let outcome = match &r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e),
        };
        self.ctx
            .finish(op, key, &started, n, bytes, FirstByte::None, outcome);
        r
    }
}

/// What every timed piece (the store, a body, a writer) needs to report.
#[derive(Clone)]
struct Ctx<O> {
    observer: O,
    backend: Arc<str>,
    store_uri: Arc<str>,
}

struct Started {
    at: Instant,
    wall: Option<SystemTime>,
    span: Span,
}

impl Started {
    async fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        if self.span.is_disabled() {
            fut.await
        } else {
            fut.instrument(self.span.clone()).await
        }
    }
}

/// A redacted URI, formatted only if a span or event is actually recorded.
struct SpanUri<'a>(&'a str, &'a str);

impl fmt::Display for SpanUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&format!("{}{}", self.0, self.1)))
    }
}

impl<O: Observer> Ctx<O> {
    fn start(&self, op: OpKind, key: &str) -> Started {
        let span = if O::SPANS {
            tracing::debug_span!(
                "s3dlio.op",
                op = op.as_str(),
                uri = %SpanUri(&self.store_uri, key)
            )
        } else {
            Span::none()
        };
        Started {
            wall: O::DETAIL.then(SystemTime::now),
            at: Instant::now(),
            span,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        op: OpKind,
        key: &str,
        started: &Started,
        n_objects: u64,
        bytes: u64,
        first_byte: FirstByte,
        outcome: Outcome<'_>,
    ) {
        let duration = started.at.elapsed();
        let first_byte = match first_byte {
            FirstByte::None => None,
            FirstByte::At(d) => Some(d),
            FirstByte::End => Some(duration),
        };
        let rec = OpRecord {
            op,
            backend: &self.backend,
            store_uri: &self.store_uri,
            key: if O::DETAIL { key } else { "" },
            n_objects,
            bytes,
            start: started.wall,
            first_byte,
            duration,
            outcome,
            thread: thread_no(),
        };
        self.observer.record(&rec);
        if O::SPANS && !started.span.is_disabled() {
            let us = duration.as_secs_f64() * 1e6;
            match outcome {
                Outcome::Ok => tracing::debug!(parent: &started.span, bytes, n_objects, us, "done"),
                Outcome::Failed(e) => {
                    let error = redact(&e.to_string()).into_owned();
                    tracing::debug!(parent: &started.span, bytes, us, %error, "failed")
                }
                Outcome::Abandoned(why) => {
                    tracing::debug!(parent: &started.span, bytes, us, why, "abandoned")
                }
            }
        }
    }
}

/// When the first byte of a GET arrived.
#[derive(Clone, Copy)]
enum FirstByte {
    /// Not a GET, or it failed before any byte.
    None,
    At(Duration),
    /// With the last byte: the whole body came at once.
    End,
}

/// A GET whose body is still being read.
struct PendingGet<O: Observer> {
    ctx: Ctx<O>,
    key: String,
    started: Started,
    expected: u64,
    got: u64,
    first: Option<Duration>,
    done: bool,
}

impl<O: Observer> PendingGet<O> {
    fn chunk(&mut self, n: usize) {
        if self.first.is_none() && n > 0 {
            self.first = Some(self.started.at.elapsed());
        }
        self.got += n as u64;
    }

    fn finish(&mut self, outcome: Outcome<'_>) {
        if self.done {
            return;
        }
        self.done = true;
        // An empty body's first (and last) byte arrives when it ends.
        let first = self.first.map_or(FirstByte::End, FirstByte::At);
        self.ctx.finish(
            OpKind::Get,
            &self.key,
            &self.started,
            1,
            self.got,
            first,
            outcome,
        );
    }
}

impl<O: Observer> Drop for PendingGet<O> {
    fn drop(&mut self) {
        if !self.done {
            let outcome = if self.got == self.expected {
                Outcome::Ok
            } else {
                Outcome::Abandoned("body dropped before its end")
            };
            self.finish(outcome);
        }
    }
}

/// A streamed body, timed until its end (or its error, or until it is dropped).
struct TimedStream<O: Observer> {
    inner: ByteStream,
    pending: PendingGet<O>,
}

// Nothing in it is ever pinned in place: the inner stream is boxed.
impl<O: Observer> Unpin for TimedStream<O> {}

impl<O: Observer> Stream for TimedStream<O> {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let r = this.inner.poll_next_unpin(cx);
        match &r {
            Poll::Ready(Some(Ok(chunk))) => this.pending.chunk(chunk.len()),
            Poll::Ready(Some(Err(e))) => this.pending.finish(Outcome::Failed(e)),
            Poll::Ready(None) => this.pending.finish(Outcome::Ok),
            Poll::Pending => {}
        }
        r
    }
}

/// A deferred body, timed whichever way the caller reads it.
struct TimedDeferred<O: Observer> {
    inner: Box<dyn DeferredBody>,
    pending: PendingGet<O>,
}

impl<O: Observer> fmt::Debug for TimedDeferred<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimedDeferred").field(&self.inner).finish()
    }
}

#[async_trait]
impl<O: Observer> DeferredBody for TimedDeferred<O> {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let TimedDeferred { inner, mut pending } = *self;
        let r = inner.bytes().await;
        match &r {
            Ok(b) => {
                pending.chunk(b.len());
                pending.finish(Outcome::Ok);
            }
            Err(e) => pending.finish(Outcome::Failed(e)),
        }
        r
    }

    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        let TimedDeferred { inner, mut pending } = *self;
        let r = inner.read_into(buf, expected).await;
        match &r {
            Ok(()) => {
                pending.chunk(expected as usize);
                pending.finish(Outcome::Ok);
            }
            Err(e) => pending.finish(Outcome::Failed(e)),
        }
        r
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let TimedDeferred { inner, pending } = *self;
        TimedStream {
            inner: inner.stream(),
            pending,
        }
        .boxed()
    }
}

/// A streaming write: one PUT from `writer()` to `complete()`, one WRITE per `write`.
struct TimedWriter<O: Observer> {
    inner: Option<Box<dyn ObjectWriter>>,
    ctx: Ctx<O>,
    key: String,
    started: Started,
}

impl<O: Observer> TimedWriter<O> {
    fn end(&mut self, outcome: Outcome<'_>, bytes: u64) {
        self.inner = None;
        self.ctx.finish(
            OpKind::Put,
            &self.key,
            &self.started,
            1,
            bytes,
            FirstByte::None,
            outcome,
        );
    }
}

impl<O: Observer> fmt::Debug for TimedWriter<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimedWriter").field(&self.inner).finish()
    }
}

impl<O: Observer> Drop for TimedWriter<O> {
    fn drop(&mut self) {
        if let Some(w) = &self.inner {
            let n = w.bytes_written();
            self.end(Outcome::Abandoned("writer dropped"), n);
        }
    }
}

fn gone() -> s3dlio_store_core::Error {
    s3dlio_store_core::Error::other("writer already completed or aborted")
}

#[async_trait]
impl<O: Observer> ObjectWriter for TimedWriter<O> {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let n = data.len() as u64;
        let w = self.inner.as_mut().ok_or_else(gone)?;
        let started = self.ctx.start(OpKind::Write, &self.key);
        let r = started.run(w.write(data)).await;
        let outcome = match &r {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Failed(e),
        };
        self.ctx.finish(
            OpKind::Write,
            &self.key,
            &started,
            1,
            n,
            FirstByte::None,
            outcome,
        );
        r
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        let w = self.inner.take().ok_or_else(gone)?;
        let written = w.bytes_written();
        let r = w.complete().instrument(self.started.span.clone()).await;
        match &r {
            Ok(p) => self.end(Outcome::Ok, p.size),
            Err(e) => self.end(Outcome::Failed(e), written),
        }
        r
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let w = self.inner.take().ok_or_else(gone)?;
        let written = w.bytes_written();
        let r = w.abort().await;
        self.end(Outcome::Abandoned("aborted"), written);
        r
    }

    fn bytes_written(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.bytes_written())
    }
}

#[async_trait]
impl<S: ?Sized + ObjectStore, O: Observer> ObjectStore for ObservedStore<S, O> {
    fn base_uri(&self) -> &str {
        self.inner.base_uri()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn uri_of(&self, key: &str) -> String {
        self.inner.uri_of(key)
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        let started = self.ctx.start(OpKind::Get, key);
        let mut res = match started.run(self.inner.get(key, opts)).await {
            Ok(r) => r,
            Err(e) => {
                let failed = Outcome::Failed(&e);
                self.ctx
                    .finish(OpKind::Get, key, &started, 1, 0, FirstByte::None, failed);
                return Err(e);
            }
        };
        // Already in memory: the read is over (the common case for small objects, timed
        // without building a pending read).
        if let Body::Bytes(b) = &res.body {
            let n = b.len() as u64;
            self.ctx.finish(
                OpKind::Get,
                key,
                &started,
                1,
                n,
                FirstByte::End,
                Outcome::Ok,
            );
            return Ok(res);
        }
        let pending = PendingGet {
            ctx: self.ctx.clone(),
            key: if O::DETAIL {
                key.to_owned()
            } else {
                String::new()
            },
            started,
            expected: res.len(),
            got: 0,
            first: None,
            done: false,
        };
        res.body = match std::mem::replace(&mut res.body, Body::Bytes(Bytes::new())) {
            Body::Stream(s) => Body::Stream(TimedStream { inner: s, pending }.boxed()),
            Body::Deferred(d) => Body::Deferred(Box::new(TimedDeferred { inner: d, pending })),
            Body::Bytes(_) => unreachable!("handled above"),
        };
        Ok(res)
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let n = data.len() as u64;
        self.observe(OpKind::Put, key, self.inner.put(key, data, opts), |_| {
            (1, n)
        })
        .await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let started = self.ctx.start(OpKind::Put, key);
        match started.run(self.inner.writer(key, opts)).await {
            Ok(w) => Ok(Box::new(TimedWriter {
                inner: Some(w),
                ctx: self.ctx.clone(),
                key: key.to_owned(),
                started,
            })),
            Err(e) => {
                self.ctx.finish(
                    OpKind::Put,
                    key,
                    &started,
                    1,
                    0,
                    FirstByte::None,
                    Outcome::Failed(&e),
                );
                Err(e)
            }
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.observe(OpKind::Head, key, self.inner.head(key), |_| (1, 0))
            .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let fut = self.inner.list_page(prefix, opts, token);
        self.observe(OpKind::List, prefix, fut, |p| {
            (p.map_or(1, |p| p.items.len() as u64), 0)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.observe(OpKind::Delete, key, self.inner.delete(key), |_| (1, 0))
            .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        let n = keys.len() as u64;
        let first = keys.first().cloned().unwrap_or_default();
        let started = self.ctx.start(OpKind::Delete, &first);
        let r = started.run(self.inner.delete_many(keys)).await;
        let outcome = match &r {
            Ok(results) => results
                .iter()
                .find_map(|r| r.as_ref().err())
                .map_or(Outcome::Ok, Outcome::Failed),
            Err(e) => Outcome::Failed(e),
        };
        self.ctx.finish(
            OpKind::Delete,
            &first,
            &started,
            n,
            0,
            FirstByte::None,
            outcome,
        );
        r
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        self.observe(OpKind::Copy, from, self.inner.copy(from, to, opts), |p| {
            (1, p.map_or(0, |p| p.size))
        })
        .await
    }
}
