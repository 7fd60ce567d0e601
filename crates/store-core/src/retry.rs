//! The retry and timeout layer: [`RetryStore`] wraps any store and retries what is safe to
//! retry, with exponential backoff and full jitter, bounded by a number of attempts and a
//! total deadline per operation; resumes a GET body that fails midway with a ranged GET from
//! the last byte received, pinned to the object's ETag; and lowers the number of requests in
//! flight while the service keeps throttling (additive increase, multiplicative decrease).
//!
//! What is retried (errors whose [`Error::is_retryable`] is true: 503 SlowDown, 429, 500,
//! 502, 504, RequestTimeout, resets, bodies cut short, timeouts):
//!
//! | call | retried |
//! |---|---|
//! | `get`, `head`, `list_page`, `delete`, `delete_many` | always (they change nothing, or end in the same state) |
//! | `get` body | resumed from the last byte received, pinned to the ETag (never unpinned) |
//! | `put` with `PutMode::Overwrite`, `copy` without `create_only` | always: the same bytes land again |
//! | `put` with `Create` or `IfMatch`, `copy` with `create_only` | only on [`ErrorKind::RateLimited`] (the service refused the request without doing it) or a connection never made ([`crate::ConnectionFailure::NotConnected`]). After a reset or a timeout the first attempt may have succeeded, and a second would report `AlreadyExists` or `PreconditionFailed` for our own write, so the error is returned |
//! | `writer` (opening one) | always: nothing is visible before `complete` |
//! | writer `write`, `complete`, `abort` | never here: a stream cannot be replayed; backends retry each part |
//!
//! An error the backend already retried by itself (see the backends' `max_attempts`) comes
//! back with `is_retryable() == false`, so attempts never multiply across layers.
//!
//! No I/O happens here; only tokio's timers.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{Stream, StreamExt};
use futures::FutureExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::store::{Body, ByteStream, DeferredBody, GetResult, ObjectStore, ObjectWriter};
use crate::types::{
    ByteRange, Capabilities, CopyOptions, GetOptions, ListOptions, ListPage, ObjectMeta, PutMode,
    PutOptions, PutResult,
};

/// How [`RetryStore`] retries. Every field is honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included (1: no retries). A resumed GET body gets
    /// this many attempts for each stretch without progress.
    pub max_attempts: u32,
    /// The first backoff's upper bound; each retry doubles it, up to `max_backoff`. The
    /// wait is drawn uniformly from zero to the bound ("full jitter"), so clients that
    /// failed together do not retry together.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts after this much time since the operation began (waits included).
    pub deadline: Option<Duration>,
    /// One attempt of a request may take this long until its answer (a GET's body is not
    /// included: a stalled body is the backend's read timeout). None: no limit here.
    pub attempt_timeout: Option<Duration>,
    /// Requests in flight on this store at most. Each throttling answer (RateLimited)
    /// halves the current limit (at most once per `initial_backoff`), down to 1; each run
    /// of `limit` successes raises it by one, back up to this.
    pub max_in_flight: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            deadline: Some(Duration::from_secs(300)),
            attempt_timeout: None,
            max_in_flight: 1024,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A duration written as `250ms`, `30s`, `5m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let bad = || Error::invalid_input(format!("'{s}' is not a duration (e.g. 500ms, 30s, 5m)"));
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

impl RetryPolicy {
    /// No retries at all (one attempt, no deadline), for callers that retry themselves.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            deadline: None,
            ..Self::default()
        }
    }

    /// Reject values the layer cannot work with, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 || self.max_in_flight == 0 {
            return Err(Error::invalid_input(
                "retry max_attempts and max_in_flight must be at least 1",
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(Error::invalid_input(
                "retry initial_backoff must not exceed max_backoff",
            ));
        }
        Ok(())
    }

    /// The policy from the environment, or None when `S3DLIO_RETRY` is `off`:
    /// `S3DLIO_MAX_ATTEMPTS`, `S3DLIO_RETRY_BACKOFF` (initial), `S3DLIO_RETRY_MAX_BACKOFF`,
    /// `S3DLIO_RETRY_DEADLINE` (`0`: none), `S3DLIO_ATTEMPT_TIMEOUT`,
    /// `S3DLIO_MAX_IN_FLIGHT`, over [`RetryPolicy::default`]. A value that does not parse is
    /// an error naming the variable.
    pub fn from_env() -> Result<Option<Self>> {
        match env("S3DLIO_RETRY")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("on" | "1" | "true" | "yes") => {}
            Some("off" | "0" | "false" | "no") => return Ok(None),
            Some(v) => {
                return Err(Error::invalid_input(format!(
                    "S3DLIO_RETRY='{v}' is not on or off"
                )))
            }
        }
        fn get<T>(name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
            env(name)
                .map(|v| {
                    parse(&v).map_err(|e| Error::invalid_input(format!("{name}: {}", e.message())))
                })
                .transpose()
        }
        let count = |v: &str| crate::units::parse_count(v);
        let mut p = Self::default();
        if let Some(v) = get("S3DLIO_MAX_ATTEMPTS", count)? {
            p.max_attempts = u32::try_from(v)
                .map_err(|_| Error::invalid_input("S3DLIO_MAX_ATTEMPTS is too large"))?;
        }
        if let Some(v) = get("S3DLIO_RETRY_BACKOFF", parse_duration)? {
            p.initial_backoff = v;
        }
        if let Some(v) = get("S3DLIO_RETRY_MAX_BACKOFF", parse_duration)? {
            p.max_backoff = v;
        }
        if let Some(v) = get("S3DLIO_RETRY_DEADLINE", parse_duration)? {
            p.deadline = (!v.is_zero()).then_some(v);
        }
        if let Some(v) = get("S3DLIO_ATTEMPT_TIMEOUT", parse_duration)? {
            p.attempt_timeout = (!v.is_zero()).then_some(v);
        }
        if let Some(v) = get("S3DLIO_MAX_IN_FLIGHT", count)? {
            p.max_in_flight = usize::try_from(v)
                .map_err(|_| Error::invalid_input("S3DLIO_MAX_IN_FLIGHT is too large"))?;
        }
        p.validate()
            .map_err(|e| Error::invalid_input(format!("retry settings: {}", e.message())))?;
        Ok(Some(p))
    }

    /// The wait before retry number `retry` (1 for the first retry): uniform in
    /// `0..=min(max_backoff, initial_backoff * 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(30))
            .min(self.max_backoff);
        let nanos = cap.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }
}

/// A random number from std's randomly keyed hasher (no dependency, not for secrets).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// What the layer did, for reports and tests. Counts only grow.
#[derive(Debug, Default)]
pub struct RetryStats {
    /// Attempts of requests, first attempts included.
    pub attempts: AtomicU64,
    /// Retries after a retryable error (each one also counted in `attempts`).
    pub retries: AtomicU64,
    /// GET bodies resumed with a ranged GET after failing midway.
    pub resumes: AtomicU64,
    /// Operations that failed for good after at least one retry (attempts or deadline
    /// exhausted).
    pub gave_up: AtomicU64,
    /// Throttling answers seen (each halves the in-flight limit at most once per window).
    pub throttled: AtomicU64,
}

impl RetryStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(attempts, retries, resumes, gave_up, throttled)` now.
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            g(&self.attempts),
            g(&self.retries),
            g(&self.resumes),
            g(&self.gave_up),
            g(&self.throttled),
        )
    }
}

/// The adaptive bound on requests in flight (additive increase, multiplicative decrease).
#[derive(Debug)]
struct Limiter {
    state: Mutex<LimitState>,
    changed: Notify,
    max: usize,
    window: Duration,
}

#[derive(Debug)]
struct LimitState {
    limit: usize,
    in_flight: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

impl Limiter {
    fn new(max: usize, window: Duration) -> Self {
        Self {
            state: Mutex::new(LimitState {
                limit: max,
                in_flight: 0,
                successes: 0,
                last_cut: None,
            }),
            changed: Notify::new(),
            max,
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit(Arc::clone(self));
                }
            }
            notified.await;
        }
    }

    fn limit(&self) -> usize {
        self.lock().limit
    }

    fn throttled(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.last_cut
            .is_none_or(|t| now.duration_since(t) >= self.window)
        {
            s.limit = (s.limit / 2).max(1);
            s.successes = 0;
            s.last_cut = Some(now);
        }
    }

    fn succeeded(&self) {
        let mut s = self.lock();
        if s.limit < self.max {
            s.successes += 1;
            if s.successes >= s.limit {
                s.successes = 0;
                s.limit += 1;
                drop(s);
                self.changed.notify_waiters();
            }
        }
    }
}

/// One request's place among those in flight.
#[derive(Debug)]
struct Permit(Arc<Limiter>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.changed.notify_waiters();
    }
}

#[derive(Debug)]
struct Shared {
    policy: RetryPolicy,
    limiter: Arc<Limiter>,
    stats: RetryStats,
}

impl Shared {
    /// Run `attempt` until it succeeds, fails for good, or may not be retried (`may_retry`
    /// says which retryable errors this operation may retry).
    async fn run<T, F>(&self, mut attempt: F, may_retry: impl Fn(&Error) -> bool) -> Result<T>
    where
        F: FnMut() -> BoxFuture<'static, Result<T>>,
    {
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            n += 1;
            RetryStats::bump(&self.stats.attempts);
            let res = {
                let _permit = self.limiter.acquire().await;
                match self.policy.attempt_timeout {
                    Some(t) => match tokio::time::timeout(t, attempt()).await {
                        Ok(r) => r,
                        Err(_) => Err(Error::new(
                            ErrorKind::Timeout,
                            format!("attempt took longer than {t:?}"),
                        )),
                    },
                    None => attempt().await,
                }
            };
            let err = match res {
                Ok(v) => {
                    self.limiter.succeeded();
                    return Ok(v);
                }
                Err(e) => e,
            };
            if err.kind() == ErrorKind::RateLimited {
                RetryStats::bump(&self.stats.throttled);
                self.limiter.throttled();
            }
            let retryable = err.is_retryable() && may_retry(&err);
            match self.next_wait(retryable, n, start) {
                Some(wait) => {
                    RetryStats::bump(&self.stats.retries);
                    tracing::debug!(attempt = n, ?wait, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                }
                None if retryable && n > 1 => {
                    RetryStats::bump(&self.stats.gave_up);
                    return Err(exhausted(err, n));
                }
                // A final answer (NotFound after a timeout, say), or no retries allowed.
                None => return Err(err),
            }
        }
    }

    /// The wait before the next attempt, or None when there is none.
    fn next_wait(&self, retryable: bool, attempts: u32, start: Instant) -> Option<Duration> {
        if !retryable || attempts >= self.policy.max_attempts {
            return None;
        }
        let wait = self.policy.backoff(attempts);
        if let Some(d) = self.policy.deadline {
            if start.elapsed() + wait >= d {
                return None;
            }
        }
        Some(wait)
    }
}

/// The last error of an operation that was tried `n` times: final for any outer layer.
fn exhausted(err: Error, n: u32) -> Error {
    if n > 1 {
        let msg = format!("gave up after {n} attempts");
        let inner = err.set_retryable(false);
        let (kind, op, uri) = (
            inner.kind(),
            inner.operation(),
            inner.uri().map(str::to_owned),
        );
        let mut e = Error::new(kind, msg)
            .set_retryable(false)
            .with_source(inner);
        if let Some(op) = op {
            e = e.with_operation(op);
        }
        if let Some(uri) = uri {
            e = e.with_uri(uri);
        }
        e
    } else {
        err
    }
}

/// Whether a conditional write may be retried after `e` (see [`Error::surely_unperformed`]).
fn refused_unperformed(e: &Error) -> bool {
    e.surely_unperformed()
}

/// Any store, with retries, timeouts, GET resumption and adaptive concurrency; see the
/// module documentation.
#[derive(Debug, Clone)]
pub struct RetryStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl RetryStore {
    /// Wrap `inner` with `policy`.
    pub fn new(inner: Arc<dyn ObjectStore>, policy: RetryPolicy) -> Self {
        let limiter = Arc::new(Limiter::new(
            policy.max_in_flight,
            policy.initial_backoff.max(Duration::from_millis(1)),
        ));
        Self {
            inner,
            shared: Arc::new(Shared {
                policy,
                limiter,
                stats: RetryStats::default(),
            }),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// What the layer has done so far.
    pub fn stats(&self) -> &RetryStats {
        &self.shared.stats
    }

    /// The current bound on requests in flight (lowered by throttling).
    pub fn concurrency_limit(&self) -> usize {
        self.shared.limiter.limit()
    }

    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn call<T, F>(&self, f: F, may_retry: impl Fn(&Error) -> bool) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn ObjectStore>) -> BoxFuture<'static, Result<T>>,
    {
        let inner = &self.inner;
        self.shared.run(|| f(Arc::clone(inner)), may_retry).await
    }
}

fn always(_: &Error) -> bool {
    true
}

#[async_trait]
impl ObjectStore for RetryStore {
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
        let k = key.to_owned();
        let o = opts.clone();
        let mut res = self
            .call(
                move |s| {
                    let (k, o) = (k.clone(), o.clone());
                    async move { s.get(&k, o).await }.boxed()
                },
                always,
            )
            .await?;
        // Resume only a read that can be pinned to one version.
        let Some(etag) = res.meta.etag.clone() else {
            return Ok(res);
        };
        let resume = Resume {
            store: Arc::clone(&self.inner),
            shared: Arc::clone(&self.shared),
            key: key.to_owned(),
            etag,
            uri: res.uri.clone(),
        };
        let body = std::mem::replace(&mut res.body, Body::Bytes(Bytes::new()));
        res.body = match body {
            b @ Body::Bytes(_) => b,
            Body::Stream(s) => Body::Stream(resume.stream(s, res.range.clone())),
            Body::Deferred(d) => Body::Deferred(Box::new(ResumingDeferred {
                inner: d,
                resume,
                range: res.range.clone(),
            })),
        };
        Ok(res)
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let conditional = opts.mode != PutMode::Overwrite;
        let k = key.to_owned();
        self.call(
            move |s| {
                let (k, d, o) = (k.clone(), data.clone(), opts.clone());
                async move { s.put(&k, d, o).await }.boxed()
            },
            move |e| !conditional || refused_unperformed(e),
        )
        .await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let k = key.to_owned();
        self.call(
            move |s| {
                let (k, o) = (k.clone(), opts.clone());
                async move { s.writer(&k, o).await }.boxed()
            },
            always,
        )
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let k = key.to_owned();
        self.call(
            move |s| {
                let k = k.clone();
                async move { s.head(&k).await }.boxed()
            },
            always,
        )
        .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let (p, o) = (prefix.to_owned(), opts.clone());
        self.call(
            move |s| {
                let (p, o, t) = (p.clone(), o.clone(), token.clone());
                async move { s.list_page(&p, &o, t).await }.boxed()
            },
            always,
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let k = key.to_owned();
        self.call(
            move |s| {
                let k = k.clone();
                async move { s.delete(&k).await }.boxed()
            },
            always,
        )
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        let mut results = self
            .call(
                {
                    let keys = keys.clone();
                    move |s| {
                        let keys = keys.clone();
                        async move { s.delete_many(keys).await }.boxed()
                    }
                },
                always,
            )
            .await?;
        // Keys whose own delete failed transiently are retried one by one.
        for (i, r) in results.iter_mut().enumerate() {
            if r.as_ref().is_err_and(Error::is_retryable) {
                *r = self.delete(&keys[i]).await;
            }
        }
        Ok(results)
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let conditional = opts.create_only;
        let (f, t) = (from.to_owned(), to.to_owned());
        self.call(
            move |s| {
                let (f, t, o) = (f.clone(), t.clone(), opts.clone());
                async move { s.copy(&f, &t, o).await }.boxed()
            },
            move |e| !conditional || refused_unperformed(e),
        )
        .await
    }
}

/// What a GET body needs to fetch the rest of itself.
#[derive(Debug, Clone)]
struct Resume {
    store: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
    key: String,
    etag: String,
    uri: String,
}

impl Resume {
    /// `body` (the bytes of `range`) as a stream that resumes after a failure.
    fn stream(self, body: ByteStream, range: Range<u64>) -> ByteStream {
        ResumingStream {
            resume: self,
            next: range.start,
            end: range.end,
            state: State::Reading(body),
            failures: 0,
            since: Instant::now(),
        }
        .boxed()
    }

    /// The rest of the object from `from`, pinned to the ETag.
    fn fetch(&self, from: u64, end: u64) -> BoxFuture<'static, Result<ByteStream>> {
        let r = self.clone();
        async move {
            let opts = GetOptions {
                range: Some(ByteRange::Bounded { start: from, end }),
                if_match: Some(r.etag.clone()),
            };
            let res = r.store.get(&r.key, opts).await?;
            if res.range != (from..end) {
                return Err(Error::other(format!(
                    "resuming at byte {from}: asked for {from}..{end}, got {:?}",
                    res.range
                ))
                .context(Operation::Get, r.uri.clone()));
            }
            Ok(res.into_stream())
        }
        .boxed()
    }
}

enum State {
    Reading(ByteStream),
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Fetching(BoxFuture<'static, Result<ByteStream>>),
    Done,
}

/// A body that, when it fails or ends early, asks for the bytes it still owes.
struct ResumingStream {
    resume: Resume,
    next: u64,
    end: u64,
    state: State,
    /// Failures since the last byte arrived.
    failures: u32,
    since: Instant,
}

impl ResumingStream {
    /// After `err`: schedule a resume, or give up with the error.
    fn failed(&mut self, err: Error) -> Option<Error> {
        let shared = &self.resume.shared;
        if err.kind() == ErrorKind::RateLimited {
            shared.limiter.throttled();
        }
        self.failures += 1;
        match shared.next_wait(err.is_retryable(), self.failures, self.since) {
            Some(wait) => {
                RetryStats::bump(&shared.stats.resumes);
                RetryStats::bump(&shared.stats.attempts);
                tracing::debug!(at = self.next, ?wait, error = %err, "resuming a GET body");
                self.state = State::Waiting(Box::pin(tokio::time::sleep(wait)));
                None
            }
            None => {
                self.state = State::Done;
                if err.is_retryable() && self.failures > 1 {
                    RetryStats::bump(&shared.stats.gave_up);
                    Some(exhausted(err, self.failures))
                } else {
                    Some(err)
                }
            }
        }
    }
}

impl Stream for ResumingStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let this = &mut *self;
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Reading(s) => match s.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => {
                        let left = this.end - this.next;
                        if chunk.len() as u64 > left {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(Error::new(
                                ErrorKind::Interrupted,
                                format!(
                                    "body ran long: more than {} bytes",
                                    this.end - this.next + chunk.len() as u64
                                ),
                            )
                            .set_retryable(false)
                            .context(Operation::Get, this.resume.uri.clone()))));
                        }
                        if !chunk.is_empty() {
                            this.next += chunk.len() as u64;
                            this.failures = 0;
                            this.since = Instant::now();
                        }
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Poll::Ready(None) if this.next == this.end => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(None) => {
                        let e = Error::new(
                            ErrorKind::Interrupted,
                            format!("body ended early at byte {} of {}", this.next, this.end),
                        )
                        .context(Operation::Get, this.resume.uri.clone());
                        if let Some(e) = this.failed(e) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    // Every byte owed has arrived: a failure now (a reset after the last
                    // byte, before the end was seen) costs nothing, and there is nothing
                    // left to resume (an empty range would be refused).
                    Poll::Ready(Some(Err(_))) if this.next == this.end => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(e) = this.failed(e) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                },
                State::Waiting(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state = State::Fetching(this.resume.fetch(this.next, this.end));
                }
                State::Fetching(f) => match f.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(s)) => this.state = State::Reading(s),
                    Poll::Ready(Err(e)) => {
                        if let Some(e) = this.failed(e) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                },
            }
        }
    }
}

/// After a whole-buffer read of `range` failed with `e`: the range again, as a resuming
/// stream from a fresh pinned GET. Parts landed concurrently, so which arrived is unknown
/// and the read starts over.
async fn reread(resume: Resume, range: Range<u64>, e: Error) -> Result<GetResult> {
    let shared = Arc::clone(&resume.shared);
    RetryStats::bump(&shared.stats.resumes);
    tracing::debug!(error = %e, "re-reading a GET body");
    tokio::time::sleep(shared.policy.backoff(1)).await;
    let first = resume.fetch(range.start, range.end).await?;
    let stream = resume.stream(first, range.clone());
    let expected = range.end - range.start;
    Ok(GetResult {
        meta: ObjectMeta::new("", expected),
        range,
        body: Body::Stream(stream),
        uri: String::new(),
    })
}

/// A deferred body whose whole-buffer read is redone (pinned to the ETag) if it fails
/// transiently, and whose stream resumes from the last byte.
struct ResumingDeferred {
    inner: Box<dyn DeferredBody>,
    resume: Resume,
    range: Range<u64>,
}

impl std::fmt::Debug for ResumingDeferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumingDeferred")
            .field("inner", &self.inner)
            .field("range", &self.range)
            .finish()
    }
}

#[async_trait]
impl DeferredBody for ResumingDeferred {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let Self {
            inner,
            resume,
            range,
        } = *self;
        match inner.bytes().await {
            Err(e) if e.is_retryable() && resume.shared.policy.max_attempts > 1 => {
                reread(resume, range, e).await?.bytes().await
            }
            other => other,
        }
    }

    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        let Self {
            inner,
            resume,
            range,
        } = *self;
        match inner.read_into(buf, expected).await {
            Err(e) if e.is_retryable() && resume.shared.policy.max_attempts > 1 => {
                // `buf` was cut back: the whole range goes in again.
                reread(resume, range, e).await?.read_into(buf).await
            }
            other => other,
        }
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let Self {
            inner,
            resume,
            range,
        } = *self;
        resume.stream(inner.stream(), range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultStore};
    use crate::memory::MemoryStore;
    use crate::ObjectStoreExt;
    use futures::TryStreamExt;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            ..RetryPolicy::default()
        }
    }

    fn layered(policy: RetryPolicy) -> (Arc<FaultStore<MemoryStore>>, RetryStore) {
        let f = Arc::new(FaultStore::new(MemoryStore::new()));
        let r = RetryStore::new(Arc::clone(&f) as Arc<dyn ObjectStore>, policy);
        (f, r)
    }

    fn data(n: usize) -> Bytes {
        (0..n)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let (f, r) = layered(fast());
        f.add_rule(
            Some(Operation::Put),
            1,
            3,
            Fault::Fail(ErrorKind::Interrupted),
        );
        r.put_bytes("k", data(10)).await.unwrap();
        assert_eq!(f.calls(Operation::Put), 4);
        f.add_rule(
            Some(Operation::Get),
            1,
            2,
            Fault::Fail(ErrorKind::RateLimited),
        );
        assert_eq!(r.get_bytes("k").await.unwrap(), data(10));
        assert_eq!(f.calls(Operation::Get), 3);
        let (attempts, retries, _, gave_up, throttled) = r.stats().snapshot();
        assert_eq!((attempts, retries, gave_up, throttled), (7, 5, 0, 2));
    }

    #[tokio::test]
    async fn permanent_errors_fail_at_once() {
        let (f, r) = layered(fast());
        f.add_rule(None, 1, u64::MAX, Fault::Fail(ErrorKind::PermissionDenied));
        let e = r.head("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(f.calls(Operation::Head), 1);
        // A missing key is an answer, not a failure to retry.
        f.clear();
        assert_eq!(r.head("k").await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(f.calls(Operation::Head), 2);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_error_is_final() {
        let (f, r) = layered(RetryPolicy {
            max_attempts: 4,
            ..fast()
        });
        f.add_rule(None, 1, u64::MAX, Fault::Fail(ErrorKind::Timeout));
        let e = r.head("k").await.unwrap_err();
        assert_eq!(f.calls(Operation::Head), 4);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(!e.is_retryable(), "an outer layer must not retry again");
        assert!(e.to_string().contains("gave up after 4 attempts"), "{e}");
        assert_eq!(r.stats().snapshot().3, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_the_total_time() {
        let (f, r) = layered(RetryPolicy {
            max_attempts: 1000,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            deadline: Some(Duration::from_secs(10)),
            ..RetryPolicy::default()
        });
        f.add_rule(None, 1, u64::MAX, Fault::Fail(ErrorKind::Interrupted));
        let t = Instant::now();
        r.delete("k").await.unwrap_err();
        assert!(t.elapsed() <= Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(
            f.calls(Operation::Delete) >= 10,
            "{}",
            f.calls(Operation::Delete)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_attempt_times_out_and_is_retried() {
        let (f, r) = layered(RetryPolicy {
            attempt_timeout: Some(Duration::from_secs(2)),
            ..fast()
        });
        r.put_bytes("k", data(3)).await.unwrap();
        f.add_rule(
            Some(Operation::Head),
            1,
            1,
            Fault::Delay(Duration::from_secs(60)),
        );
        let t = Instant::now();
        assert_eq!(r.head("k").await.unwrap().size, 3);
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(f.calls(Operation::Head), 2);
    }

    #[tokio::test]
    async fn conditional_writes_are_retried_only_when_refused_unperformed() {
        let (f, r) = layered(fast());
        // A reset after a create-only PUT may hide our own success: not retried.
        f.add_rule(
            Some(Operation::Put),
            1,
            1,
            Fault::Fail(ErrorKind::Interrupted),
        );
        let e = r.put("c", data(3), PutOptions::create()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert_eq!(f.calls(Operation::Put), 1);
        // Throttled: the service did nothing, so it is safe to send it again.
        f.add_rule(
            Some(Operation::Put),
            2,
            2,
            Fault::Fail(ErrorKind::RateLimited),
        );
        r.put("c", data(3), PutOptions::create()).await.unwrap();
        assert_eq!(f.calls(Operation::Put), 4);
        // Plain overwrites are idempotent and always retried.
        f.add_rule(
            Some(Operation::Put),
            5,
            1,
            Fault::Fail(ErrorKind::Interrupted),
        );
        r.put_bytes("c", data(4)).await.unwrap();
        assert_eq!(f.calls(Operation::Put), 6);
        let e = r
            .copy("c", "d", CopyOptions { create_only: true })
            .await
            .map(|_| ());
        assert!(e.is_ok() || e.unwrap_err().kind() == ErrorKind::NotSupported);
    }

    #[tokio::test]
    async fn a_body_cut_midway_resumes_from_the_last_byte() {
        let (f, r) = layered(fast());
        let obj = data(1000);
        r.put_bytes("k", obj.clone()).await.unwrap();
        f.add_rule(Some(Operation::Get), 1, 1, Fault::ResetBody(500));
        f.add_rule(Some(Operation::Get), 2, 1, Fault::TruncateBody(100));
        assert_eq!(r.get_bytes("k").await.unwrap(), obj);
        // Three GETs: the first (500 bytes), one for 500.. (cut after 100), one for 600...
        assert_eq!(f.calls(Operation::Get), 3);
        assert_eq!(r.stats().snapshot().2, 2);
        // Streamed readers see one seamless body too, and ranged reads resume inside
        // their range.
        f.add_rule(Some(Operation::Get), 4, 1, Fault::ResetBody(10));
        let got: Vec<Bytes> = r
            .get("k", GetOptions::range(100..300))
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), obj.slice(100..300));
    }

    #[tokio::test]
    async fn a_body_failing_after_its_last_byte_is_complete() {
        let (f, r) = layered(fast());
        let obj = data(1000);
        r.put_bytes("k", obj.clone()).await.unwrap();
        // Reset after all 1,000 bytes: nothing is owed, so no resume (whose range would be
        // empty) and no error.
        f.add_rule(Some(Operation::Get), 1, 1, Fault::ResetBody(1000));
        let got: Vec<Bytes> = r
            .get("k", GetOptions::default())
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), obj);
        assert_eq!(f.calls(Operation::Get), 1);
        f.add_rule(Some(Operation::Get), 2, 1, Fault::ResetBody(200));
        assert_eq!(
            r.get_range(
                "k",
                ByteRange::Bounded {
                    start: 800,
                    end: 1000
                }
            )
            .await
            .unwrap(),
            obj.slice(800..)
        );
    }

    #[tokio::test]
    async fn a_resume_is_pinned_to_the_version_being_read() {
        let (f, r) = layered(fast());
        r.put_bytes("k", data(100)).await.unwrap();
        f.add_rule(Some(Operation::Get), 1, 1, Fault::ResetBody(50));
        let res = r.get("k", GetOptions::default()).await.unwrap();
        // Replaced while being read: the resumed part must not mix two versions.
        f.inner().put_bytes("k", data(99)).await.unwrap();
        let e = res.bytes().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    }

    #[tokio::test]
    async fn a_body_that_keeps_failing_gives_up() {
        let (f, r) = layered(RetryPolicy {
            max_attempts: 3,
            ..fast()
        });
        r.put_bytes("k", data(100)).await.unwrap();
        f.add_rule(Some(Operation::Get), 1, u64::MAX, Fault::ResetBody(0));
        let e = r.get_bytes("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert!(!e.is_retryable());
        assert_eq!(f.calls(Operation::Get), 3);
    }

    #[tokio::test]
    async fn throttling_lowers_the_concurrency_limit_and_success_raises_it() {
        let (f, r) = layered(RetryPolicy {
            max_in_flight: 64,
            max_attempts: 20,
            ..fast()
        });
        r.put_bytes("k", data(1)).await.unwrap();
        assert_eq!(r.concurrency_limit(), 64);
        f.add_rule(
            Some(Operation::Head),
            1,
            6,
            Fault::Fail(ErrorKind::RateLimited),
        );
        r.head("k").await.unwrap();
        let low = r.concurrency_limit();
        assert!(low < 64, "{low}");
        for _ in 0..500 {
            r.head("k").await.unwrap();
        }
        assert!(r.concurrency_limit() > low);
        // The limit is enforced: never more than `limit` requests at once.
        let limiter = Arc::new(Limiter::new(2, Duration::from_millis(1)));
        let p1 = limiter.acquire().await;
        let _p2 = limiter.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(20), limiter.acquire()).await;
        assert!(third.is_err(), "a third request got in with a limit of 2");
        drop(p1);
        let third = tokio::time::timeout(Duration::from_secs(5), limiter.acquire()).await;
        assert!(third.is_ok());
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let waits: Vec<Duration> = (0..200).map(|_| p.backoff(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(400)));
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter");
        assert!((0..200).all(|_| p.backoff(30) <= Duration::from_secs(1)));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "x", "5 parsecs", "-1s", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
