//! Several endpoints of one cluster as one store: [`BalancedStore`] spreads requests over
//! stores that reach the same bucket through different endpoints (S3 gateways of one
//! cluster, say), takes an endpoint whose connections fail out of rotation, and sends the
//! failed request to another endpoint when that is safe.
//!
//! - **Policy**: [`Policy::RoundRobin`] takes the endpoints in turn;
//!   [`Policy::LeastOutstanding`] takes the one with the fewest requests in flight (a GET
//!   counts until its body is read or dropped), ties broken in turn.
//! - **Health**: a request whose connection fails ([`Error::connection_failure`]: refused,
//!   connect timeout, reset or closed before any answer) marks its endpoint down for
//!   `cooldown`. After that one request probes it: an answer (any answer, errors included)
//!   puts it back in rotation, another connection failure keeps it out for another
//!   `cooldown`. Any other error is an answer and says nothing against the endpoint.
//! - **Failover**: a request that never reached its endpoint
//!   ([`ConnectionFailure::NotConnected`]) goes to the next live endpoint. One that may
//!   have reached it ([`ConnectionFailure::NoAnswer`]) goes on only if it is idempotent,
//!   with the rules of the retry layer ([`crate::retry`]): a create-only or If-Match PUT,
//!   or a create-only copy, is not sent twice. Each endpoint is tried at most once per
//!   call; backoff and further attempts are the retry layer's, above this one.
//! - **Pinning**: a streaming writer stays on the endpoint it was opened on (a multipart
//!   upload lives where it started); a GET body is read from the endpoint that answered.
//!   Listing tokens go to any endpoint: the endpoints are one cluster, whose tokens name a
//!   position in the bucket, not a session.
//! - When no endpoint is up (or none of them could be reached in this call), the call fails
//!   with [`ErrorKind::Interrupted`] (retryable) naming every endpoint and why it is down.
//!   The error is marked [`ConnectionFailure::NotConnected`] when no request of the call
//!   reached an endpoint, so the retry layer may send even a conditional write again.
//!
//! No I/O happens here; only the clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::error::{ConnectionFailure, Error, ErrorKind, Operation, Result};
use crate::store::{Body, ByteStream, DeferredBody, GetResult, ObjectStore, ObjectWriter};
use crate::types::{
    Capabilities, CopyOptions, GetOptions, ListOptions, ListPage, ObjectMeta, PutMode, PutOptions,
    PutResult,
};

/// How [`BalancedStore`] picks an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest requests in flight; ties in turn.
    LeastOutstanding,
}

impl Policy {
    /// `round-robin` (`rr`) or `least-outstanding` (`lor`, `least-outstanding-requests`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "round-robin" | "roundrobin" | "rr" => Ok(Self::RoundRobin),
            "least-outstanding" | "least-outstanding-requests" | "lor" => {
                Ok(Self::LeastOutstanding)
            }
            _ => Err(Error::invalid_input(format!(
                "'{s}' is not a load-balancing policy (round-robin or least-outstanding)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::LeastOutstanding => "least-outstanding",
        }
    }
}

/// Settings of [`BalancedStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceOptions {
    pub policy: Policy,
    /// How long an endpoint whose connection failed stays out of rotation before one
    /// request probes it (default 5 s).
    pub cooldown: Duration,
}

impl Default for BalanceOptions {
    fn default() -> Self {
        Self {
            policy: Policy::RoundRobin,
            cooldown: Duration::from_secs(5),
        }
    }
}

/// One endpoint's counters, as of [`BalancedStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    /// The endpoint's name (for S3, its URL).
    pub name: String,
    /// Requests sent to it (a writer counts once, when opened).
    pub requests: u64,
    /// Requests in flight now (GETs until their body is read or dropped).
    pub in_flight: u64,
    /// Requests whose connection failed.
    pub failures: u64,
    /// Whether it is in rotation (false while cooling down or being probed).
    pub up: bool,
}

#[derive(Debug)]
enum Health {
    Up,
    Down {
        /// Probing starts at this time.
        until: Instant,
        /// A probe is in flight.
        probing: bool,
        /// Why it went down, for the all-down error.
        reason: String,
    },
}

#[derive(Debug)]
struct Endpoint {
    name: String,
    store: Arc<dyn ObjectStore>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    failures: AtomicU64,
    health: Mutex<Health>,
}

impl Endpoint {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Shared {
    endpoints: Vec<Endpoint>,
    opts: BalanceOptions,
    next: AtomicUsize,
}

/// One request's hold on an endpoint: counts it in flight until dropped, and reports the
/// outcome of a probe.
#[derive(Debug)]
struct Lease {
    shared: Arc<Shared>,
    i: usize,
    probe: bool,
}

impl Lease {
    fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoints[self.i]
    }

    /// The endpoint answered (successfully or not): it is alive.
    fn answered(&mut self) {
        if self.probe {
            self.probe = false;
            *self.endpoint().health() = Health::Up;
            tracing::info!(endpoint = %self.endpoint().name, "endpoint is back in rotation");
        }
    }

    /// The connection to the endpoint failed: out of rotation for the cooldown.
    fn connection_failed(&mut self, err: &Error) {
        self.probe = false;
        let ep = self.endpoint();
        ep.failures.fetch_add(1, Ordering::Relaxed);
        let mut h = ep.health();
        let was_up = matches!(*h, Health::Up);
        *h = Health::Down {
            until: Instant::now() + self.shared.opts.cooldown,
            probing: false,
            reason: err.to_string(),
        };
        drop(h);
        if was_up {
            tracing::warn!(endpoint = %ep.name, error = %err, "endpoint out of rotation");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let ep = &self.shared.endpoints[self.i];
        ep.in_flight.fetch_sub(1, Ordering::Relaxed);
        // A probe dropped before its answer (cancelled): let another request probe.
        if self.probe {
            if let Health::Down { probing, .. } = &mut *ep.health() {
                *probing = false;
            }
        }
    }
}

impl Shared {
    /// The next endpoint for a request, skipping those in `tried`; None when none is up.
    /// An endpoint whose cooldown is over gets its probe before the policy picks.
    fn pick(self: &Arc<Self>, tried: &[bool]) -> Option<Lease> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let order = || {
            (0..n)
                .map(move |off| (start + off) % n)
                .filter(|i| !tried[*i])
        };
        let now = Instant::now();
        for i in order() {
            if let Health::Down { until, probing, .. } = &mut *self.endpoints[i].health() {
                if !*probing && now >= *until {
                    *probing = true;
                    return Some(self.lease(i, true));
                }
            }
        }
        let up = order().filter(|i| matches!(*self.endpoints[*i].health(), Health::Up));
        let i = match self.opts.policy {
            Policy::RoundRobin => up.into_iter().next(),
            // The first of the least loaded, so ties go in turn.
            Policy::LeastOutstanding => up
                .map(|i| (self.endpoints[i].in_flight.load(Ordering::Relaxed), i))
                .reduce(|best, c| if c.0 < best.0 { c } else { best })
                .map(|(_, i)| i),
        }?;
        Some(self.lease(i, false))
    }

    fn lease(self: &Arc<Self>, i: usize, probe: bool) -> Lease {
        let ep = &self.endpoints[i];
        ep.requests.fetch_add(1, Ordering::Relaxed);
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease {
            shared: Arc::clone(self),
            i,
            probe,
        }
    }

    /// The error when no endpoint may be tried: each endpoint and why it is out.
    fn all_down(&self, op: Operation, uri: String) -> Error {
        let now = Instant::now();
        let why: Vec<String> = self
            .endpoints
            .iter()
            .map(|ep| match &*ep.health() {
                Health::Up => format!("{} (busy)", ep.name),
                Health::Down {
                    until,
                    probing,
                    reason,
                } => {
                    let state = if *probing {
                        "being probed".to_owned()
                    } else {
                        format!(
                            "probed again in {:.1} s",
                            until.saturating_duration_since(now).as_secs_f64()
                        )
                    };
                    format!("{} (down, {state}; last error: {reason})", ep.name)
                }
            })
            .collect();
        Error::new(
            ErrorKind::Interrupted,
            format!(
                "all {} endpoints are out of rotation: {}",
                self.endpoints.len(),
                why.join("; ")
            ),
        )
        .context(op, uri)
    }

    /// Run `attempt` on one endpoint after another until one answers, or the failure may
    /// not go elsewhere; see the module documentation. Returns the answer with its lease.
    async fn run<T, F>(
        self: &Arc<Self>,
        op: Operation,
        uri: impl Fn() -> String,
        idempotent: bool,
        attempt: F,
    ) -> Result<(T, Lease)>
    where
        F: Fn(Arc<dyn ObjectStore>) -> BoxFuture<'static, Result<T>>,
    {
        let mut tried = vec![false; self.endpoints.len()];
        // Whether a request of this call may have reached an endpoint.
        let mut maybe_sent = false;
        loop {
            let Some(mut lease) = self.pick(&tried) else {
                let how = match maybe_sent {
                    false => ConnectionFailure::NotConnected,
                    true => ConnectionFailure::NoAnswer,
                };
                return Err(self.all_down(op, uri()).with_connection_failure(how));
            };
            tried[lease.i] = true;
            let err = match attempt(Arc::clone(&lease.endpoint().store)).await {
                Ok(v) => {
                    lease.answered();
                    return Ok((v, lease));
                }
                Err(e) => e,
            };
            let Some(how) = err.connection_failure() else {
                lease.answered();
                return Err(err);
            };
            lease.connection_failed(&err);
            if how != ConnectionFailure::NotConnected && !idempotent {
                return Err(err);
            }
            tracing::debug!(endpoint = %lease.endpoint().name, error = %err, "trying another endpoint");
            maybe_sent |= how == ConnectionFailure::NoAnswer;
        }
    }
}

/// Several stores reaching one bucket through different endpoints, as one store; see the
/// module documentation.
#[derive(Clone)]
pub struct BalancedStore {
    shared: Arc<Shared>,
    base_uri: String,
}

impl fmt::Debug for BalancedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .shared
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        f.debug_struct("BalancedStore")
            .field("base_uri", &self.base_uri)
            .field("endpoints", &names)
            .field("opts", &self.shared.opts)
            .finish()
    }
}

impl BalancedStore {
    /// Balance over `endpoints` (a name for messages and stats, and a store). Every store
    /// must have the same base URI (they are one bucket); at least one is needed.
    pub fn new(
        endpoints: Vec<(String, Arc<dyn ObjectStore>)>,
        opts: BalanceOptions,
    ) -> Result<Self> {
        let Some((_, first)) = endpoints.first() else {
            return Err(Error::invalid_input("a balanced store needs an endpoint"));
        };
        let base_uri = first.base_uri().to_owned();
        if let Some((name, s)) = endpoints.iter().find(|(_, s)| s.base_uri() != base_uri) {
            return Err(Error::invalid_input(format!(
                "endpoint {name} reaches {}, not {base_uri}",
                s.base_uri()
            )));
        }
        let endpoints = endpoints
            .into_iter()
            .map(|(name, store)| Endpoint {
                name,
                store,
                requests: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                health: Mutex::new(Health::Up),
            })
            .collect();
        Ok(Self {
            shared: Arc::new(Shared {
                endpoints,
                opts,
                next: AtomicUsize::new(0),
            }),
            base_uri,
        })
    }

    pub fn options(&self) -> &BalanceOptions {
        &self.shared.opts
    }

    /// Each endpoint's counters and state, in the order given to [`BalancedStore::new`].
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.shared
            .endpoints
            .iter()
            .map(|ep| EndpointStats {
                name: ep.name.clone(),
                requests: ep.requests.load(Ordering::Relaxed),
                in_flight: ep.in_flight.load(Ordering::Relaxed),
                failures: ep.failures.load(Ordering::Relaxed),
                up: matches!(*ep.health(), Health::Up),
            })
            .collect()
    }

    async fn call<T, F>(&self, op: Operation, key: &str, idempotent: bool, f: F) -> Result<T>
    where
        F: Fn(Arc<dyn ObjectStore>) -> BoxFuture<'static, Result<T>>,
    {
        let uri = || self.uri_of(key);
        Ok(self.shared.run(op, uri, idempotent, f).await?.0)
    }
}

#[async_trait]
impl ObjectStore for BalancedStore {
    fn base_uri(&self) -> &str {
        &self.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.endpoints[0].store.capabilities()
    }

    fn uri_of(&self, key: &str) -> String {
        self.shared.endpoints[0].store.uri_of(key)
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        let k = key.to_owned();
        let uri = || self.uri_of(key);
        let (mut res, lease) = self
            .shared
            .run(Operation::Get, uri, true, move |s| {
                let (k, o) = (k.clone(), opts.clone());
                async move { s.get(&k, o).await }.boxed()
            })
            .await?;
        // The request stays outstanding until its body is read or dropped.
        let body = std::mem::replace(&mut res.body, Body::Bytes(Bytes::new()));
        res.body = match body {
            b @ Body::Bytes(_) => b,
            Body::Stream(s) => Body::Stream(leased_stream(s, lease)),
            Body::Deferred(d) => Body::Deferred(Box::new(LeasedDeferred { inner: d, lease })),
        };
        Ok(res)
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let idempotent = opts.mode == PutMode::Overwrite;
        let k = key.to_owned();
        self.call(Operation::Put, key, idempotent, move |s| {
            let (k, d, o) = (k.clone(), data.clone(), opts.clone());
            async move { s.put(&k, d, o).await }.boxed()
        })
        .await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        // Nothing is visible before `complete`, so opening may go anywhere; the writer
        // then stays on the endpoint that opened it.
        let k = key.to_owned();
        self.call(Operation::Write, key, true, move |s| {
            let (k, o) = (k.clone(), opts.clone());
            async move { s.writer(&k, o).await }.boxed()
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let k = key.to_owned();
        self.call(Operation::Head, key, true, move |s| {
            let k = k.clone();
            async move { s.head(&k).await }.boxed()
        })
        .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let (p, o) = (prefix.to_owned(), opts.clone());
        self.call(Operation::List, prefix, true, move |s| {
            let (p, o, t) = (p.clone(), o.clone(), token.clone());
            async move { s.list_page(&p, &o, t).await }.boxed()
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let k = key.to_owned();
        self.call(Operation::Delete, key, true, move |s| {
            let k = k.clone();
            async move { s.delete(&k).await }.boxed()
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        let first = keys.first().cloned().unwrap_or_default();
        self.call(Operation::DeleteMany, &first, true, move |s| {
            let keys = keys.clone();
            async move { s.delete_many(keys).await }.boxed()
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let idempotent = !opts.create_only;
        let (f, t) = (from.to_owned(), to.to_owned());
        self.call(Operation::Copy, from, idempotent, move |s| {
            let (f, t, o) = (f.clone(), t.clone(), opts.clone());
            async move { s.copy(&f, &t, o).await }.boxed()
        })
        .await
    }
}

/// A streamed body that holds its request's lease until it ends or is dropped.
fn leased_stream(s: ByteStream, lease: Lease) -> ByteStream {
    s.map(Some)
        .chain(futures::stream::once(async move {
            drop(lease);
            None
        }))
        .filter_map(futures::future::ready)
        .boxed()
}

/// A deferred body that holds its request's lease until it is read or dropped.
#[derive(Debug)]
struct LeasedDeferred {
    inner: Box<dyn DeferredBody>,
    lease: Lease,
}

#[async_trait]
impl DeferredBody for LeasedDeferred {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let Self { inner, lease } = *self;
        let r = inner.bytes().await;
        drop(lease);
        r
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let Self { inner, lease } = *self;
        leased_stream(inner.stream(), lease)
    }

    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        let Self { inner, lease } = *self;
        let r = inner.read_into(buf, expected).await;
        drop(lease);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::ObjectStoreExt;
    use std::sync::atomic::AtomicBool;

    /// A shared in-memory bucket reached through an "endpoint" that can be switched off
    /// (connections refused, or reset after the request went through) or slowed down.
    #[derive(Debug)]
    struct Gate {
        inner: Arc<MemoryStore>,
        refuse: AtomicBool,
        /// Refuse this many more connections.
        refuse_next: AtomicU64,
        reset_after: AtomicBool,
        delay: Mutex<Duration>,
    }

    impl Gate {
        fn new(inner: &Arc<MemoryStore>) -> Arc<Self> {
            Arc::new(Self {
                inner: Arc::clone(inner),
                refuse: AtomicBool::new(false),
                refuse_next: AtomicU64::new(0),
                reset_after: AtomicBool::new(false),
                delay: Mutex::new(Duration::ZERO),
            })
        }

        async fn enter(&self) -> Result<()> {
            let next = self
                .refuse_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if self.refuse.load(Ordering::SeqCst) || next.is_ok() {
                return Err(Error::new(ErrorKind::Interrupted, "connection refused")
                    .with_connection_failure(ConnectionFailure::NotConnected));
            }
            let d = *self.delay.lock().unwrap();
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            Ok(())
        }

        fn leave<T>(&self, r: Result<T>) -> Result<T> {
            if self.reset_after.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Interrupted, "connection reset")
                    .with_connection_failure(ConnectionFailure::NoAnswer));
            }
            r
        }
    }

    #[async_trait]
    impl ObjectStore for Gate {
        fn base_uri(&self) -> &str {
            self.inner.base_uri()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
            self.enter().await?;
            // Streamed, as a backend's large reads are.
            let r = self.inner.get(key, opts).await.map(|mut g| {
                let body = std::mem::replace(&mut g.body, Body::Bytes(Bytes::new()));
                g.body = Body::Stream(body.into_raw_stream());
                g
            });
            self.leave(r)
        }
        async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
            self.enter().await?;
            let r = self.inner.put(key, data, opts).await;
            self.leave(r)
        }
        async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
            self.enter().await?;
            self.inner.writer(key, opts).await
        }
        async fn head(&self, key: &str) -> Result<ObjectMeta> {
            self.enter().await?;
            let r = self.inner.head(key).await;
            self.leave(r)
        }
        async fn list_page(
            &self,
            prefix: &str,
            opts: &ListOptions,
            token: Option<String>,
        ) -> Result<ListPage> {
            self.enter().await?;
            self.inner.list_page(prefix, opts, token).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.enter().await?;
            self.inner.delete(key).await
        }
    }

    fn balanced(n: usize, policy: Policy, cooldown: Duration) -> (BalancedStore, Vec<Arc<Gate>>) {
        let mem = Arc::new(MemoryStore::new());
        let gates: Vec<_> = (0..n).map(|_| Gate::new(&mem)).collect();
        let eps = gates
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("ep{i}"), Arc::clone(g) as Arc<dyn ObjectStore>))
            .collect();
        let store = BalancedStore::new(eps, BalanceOptions { policy, cooldown }).unwrap();
        (store, gates)
    }

    fn requests(s: &BalancedStore) -> Vec<u64> {
        s.stats().iter().map(|e| e.requests).collect()
    }

    #[tokio::test]
    async fn round_robin_takes_endpoints_in_turn() {
        let (s, _) = balanced(3, Policy::RoundRobin, Duration::from_secs(5));
        for i in 0..30 {
            s.put_bytes(&format!("k{i}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        assert_eq!(requests(&s), [10, 10, 10]);
        assert!(s.stats().iter().all(|e| e.up && e.in_flight == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn least_outstanding_favours_the_faster_endpoint() {
        let (s, gates) = balanced(2, Policy::LeastOutstanding, Duration::from_secs(5));
        s.put_bytes("k", Bytes::from_static(b"x")).await.unwrap();
        *gates[1].delay.lock().unwrap() = Duration::from_millis(100);
        *gates[0].delay.lock().unwrap() = Duration::from_millis(10);
        let before = requests(&s);
        futures::stream::iter(0..200)
            .map(|_| s.head("k"))
            .buffer_unordered(8)
            .for_each(|r| {
                r.unwrap();
                futures::future::ready(())
            })
            .await;
        let after = requests(&s);
        let (fast, slow) = (after[0] - before[0], after[1] - before[1]);
        assert_eq!(fast + slow, 200);
        assert!(fast > 4 * slow, "fast {fast}, slow {slow}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_endpoint_leaves_rotation_and_returns_after_a_probe() {
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::from_secs(1));
        gates[1].refuse.store(true, Ordering::SeqCst);
        for i in 0..10 {
            s.put_bytes(&format!("k{i}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let st = s.stats();
        // One request found it refusing and went on; nothing else was sent there.
        assert_eq!((st[1].requests, st[1].failures, st[1].up), (1, 1, false));
        assert_eq!(st[0].requests, 10);

        // Still refusing after the cooldown: the probe fails and it stays out.
        tokio::time::advance(Duration::from_millis(1100)).await;
        s.head("k0").await.unwrap();
        assert_eq!(s.stats()[1].failures, 2);
        // Alive again: the next probe lets it back in.
        gates[1].refuse.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_millis(1100)).await;
        for _ in 0..4 {
            s.head("k0").await.unwrap();
        }
        let st = s.stats();
        assert!(st[1].up && st[1].failures == 2, "{st:?}");
        // The probe, then its turns among the other three.
        assert!(st[1].requests >= 2 + 2, "{st:?}");
    }

    #[tokio::test]
    async fn all_down_is_a_clear_retryable_error() {
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::from_secs(60));
        for g in &gates {
            g.refuse.store(true, Ordering::SeqCst);
        }
        // Both tried in this call, then both out of rotation in the next.
        for _ in 0..2 {
            let e = s.head("k").await.unwrap_err();
            assert_eq!(
                e.connection_failure(),
                Some(ConnectionFailure::NotConnected)
            );
        }
        assert_eq!(requests(&s), [1, 1]);
        let e = s.head("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert!(e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("all 2 endpoints are out of rotation")
                && msg.contains("ep0 (down")
                && msg.contains("ep1 (down")
                && msg.contains("connection refused"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn only_safe_requests_go_elsewhere_after_no_answer() {
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::from_secs(60));
        s.put_bytes("k", Bytes::from_static(b"x")).await.unwrap();
        // The reset comes after the write went through on endpoint 1.
        gates[1].reset_after.store(true, Ordering::SeqCst);
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let e = s
            .put("c", Bytes::from_static(b"1"), create.clone())
            .await
            .unwrap_err();
        assert_eq!(e.connection_failure(), Some(ConnectionFailure::NoAnswer));
        // It did land: a second send would have reported our own write as a conflict.
        assert_eq!(gates[0].inner.get_bytes("c").await.unwrap(), "1");
        assert!(!s.stats()[1].up);

        // An overwrite after the same failure goes to the other endpoint and succeeds.
        gates[1].reset_after.store(false, Ordering::SeqCst);
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::from_secs(60));
        gates[0].reset_after.store(true, Ordering::SeqCst);
        s.put_bytes("o", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(requests(&s), [1, 1]);
        // A create-only write refused before connecting goes elsewhere too.
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::from_secs(60));
        gates[0].refuse.store(true, Ordering::SeqCst);
        s.put("c", Bytes::from_static(b"3"), create).await.unwrap();
    }

    #[tokio::test]
    async fn a_create_only_write_that_reached_no_endpoint_is_retried_above() {
        use crate::retry::{RetryPolicy, RetryStore};
        let (s, gates) = balanced(2, Policy::RoundRobin, Duration::ZERO);
        for g in &gates {
            g.refuse_next.store(1, Ordering::SeqCst);
        }
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let r = RetryStore::new(Arc::new(s.clone()), policy);
        r.put("c", Bytes::from_static(b"1"), PutOptions::create())
            .await
            .unwrap();
        assert_eq!(r.stats().snapshot().1, 1, "one retry");
        assert_eq!(requests(&s).iter().sum::<u64>(), 3);
    }

    #[tokio::test]
    async fn answers_that_are_errors_keep_the_endpoint_up() {
        let (s, _) = balanced(2, Policy::RoundRobin, Duration::from_secs(60));
        for _ in 0..4 {
            assert!(s.head("missing").await.unwrap_err().is_not_found());
        }
        assert!(s.stats().iter().all(|e| e.up && e.failures == 0));
        assert_eq!(requests(&s), [2, 2]);
    }

    #[tokio::test]
    async fn get_bodies_count_as_outstanding_until_read() {
        let (s, _) = balanced(2, Policy::LeastOutstanding, Duration::from_secs(60));
        s.put_bytes("k", Bytes::from(vec![7u8; 1000]))
            .await
            .unwrap();
        let r = s
            .get("k", GetOptions::default())
            .await
            .unwrap()
            .into_stream();
        let busy: u64 = s.stats().iter().map(|e| e.in_flight).sum();
        let bytes: Vec<_> = r.collect().await;
        assert_eq!(bytes.len(), 1);
        let idle: u64 = s.stats().iter().map(|e| e.in_flight).sum();
        assert_eq!((busy, idle), (1, 0));
    }

    #[test]
    fn policies_parse_and_mismatched_buckets_are_refused() {
        assert_eq!(
            Policy::parse("least-outstanding").unwrap(),
            Policy::LeastOutstanding
        );
        assert_eq!(Policy::parse(" RR ").unwrap(), Policy::RoundRobin);
        assert!(Policy::parse("random").is_err());
        let a: Arc<dyn ObjectStore> = Arc::new(MemoryStore::with_base_uri("s3://a/"));
        let b: Arc<dyn ObjectStore> = Arc::new(MemoryStore::with_base_uri("s3://b/"));
        let e = BalancedStore::new(
            vec![("x".into(), a), ("y".into(), b)],
            BalanceOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("reaches s3://b/"), "{e}");
    }
}
