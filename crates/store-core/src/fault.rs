//! A wrapper that injects faults into any store, deterministically: fail the Nth call of an
//! operation, delay it, or cut a GET body short. Tests of retry layers, loaders and
//! checkpoints use it to prove they survive what real networks do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::store::{Body, ByteStream, GetResult, ObjectStore, ObjectWriter};
use crate::types::{
    Capabilities, CopyOptions, GetOptions, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult,
};

/// What to do to a matching call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail before reaching the inner store, with an error of this kind (retryable by the
    /// kind's default).
    Fail(ErrorKind),
    /// Wait, then go on to the inner store.
    Delay(Duration),
    /// (GET only) deliver the first `n` bytes of the body, then end it silently, as a server
    /// that closes the connection early does. Readers must notice the short body.
    TruncateBody(u64),
    /// (GET only) deliver the first `n` bytes, then fail the body with a reset.
    ResetBody(u64),
}

#[derive(Debug, Clone)]
struct Rule {
    op: Option<Operation>,
    first: u64,
    count: u64,
    /// Only every `period`th call of the span (1: each).
    period: u64,
    fault: Fault,
}

/// Wraps a store and applies [`Fault`]s to chosen calls. Calls are numbered from 1 per
/// operation kind (`Get`, `Put`, `Head`, `List`, `Delete`, `Copy`, `Write`).
#[derive(Debug)]
pub struct FaultStore<S> {
    inner: S,
    rules: Mutex<Vec<Rule>>,
    calls: [AtomicU64; OPS.len()],
}

const OPS: [Operation; 7] = [
    Operation::Get,
    Operation::Put,
    Operation::Head,
    Operation::List,
    Operation::Delete,
    Operation::Copy,
    Operation::Write,
];

fn op_index(op: Operation) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(0)
}

impl<S: ObjectStore> FaultStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Default::default(),
        }
    }

    /// Apply `fault` to call number `n` (1-based) of `op`.
    pub fn on_nth(self, op: Operation, n: u64, fault: Fault) -> Self {
        self.on_calls(Some(op), n, 1, fault)
    }

    /// Apply `fault` to `count` calls of `op` (or of every operation, for `None`) starting at
    /// call number `first`; `u64::MAX` for every call from then on.
    pub fn on_calls(self, op: Option<Operation>, first: u64, count: u64, fault: Fault) -> Self {
        self.add_rule(op, first, count, fault);
        self
    }

    /// Add a rule to a store already in use (e.g. behind an `Arc`).
    pub fn add_rule(&self, op: Option<Operation>, first: u64, count: u64, fault: Fault) {
        self.push(op, first, count, 1, fault);
    }

    /// Apply `fault` to every `period`th call of `op` (or of every operation, for `None`),
    /// for ever: calls `period`, `2 * period`, ... A steady trickle of faults for soak runs.
    pub fn add_periodic(&self, op: Option<Operation>, period: u64, fault: Fault) {
        let period = period.max(1);
        self.push(op, period, u64::MAX, period, fault);
    }

    fn push(&self, op: Option<Operation>, first: u64, count: u64, period: u64, fault: Fault) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Rule {
                op,
                first,
                count,
                period,
                fault,
            });
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// How many calls of `op` have been made.
    pub fn calls(&self, op: Operation) -> u64 {
        self.calls[op_index(op)].load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Count this call and return the faults that apply to it.
    fn faults_for(&self, op: Operation) -> Vec<Fault> {
        let n = self.calls[op_index(op)].fetch_add(1, Ordering::SeqCst) + 1;
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.op.is_none_or(|o| o == op))
            .filter(|r| n >= r.first && n - r.first < r.count && (n - r.first) % r.period == 0)
            .map(|r| r.fault.clone())
            .collect()
    }

    /// Apply failures and delays; return body faults for the caller to apply.
    async fn before(&self, op: Operation, uri: impl FnOnce() -> String) -> Result<Option<Fault>> {
        let mut body_fault = None;
        for f in self.faults_for(op) {
            match f {
                Fault::Fail(kind) => {
                    return Err(Error::new(kind, "injected fault").context(op, uri()));
                }
                Fault::Delay(d) => tokio::time::sleep(d).await,
                f @ (Fault::TruncateBody(_) | Fault::ResetBody(_)) => body_fault = Some(f),
            }
        }
        Ok(body_fault)
    }
}

/// Deliver at most `limit` bytes of `body`, then end (or fail, with `reset`).
fn cut(body: Body, limit: u64, reset: bool, uri: String) -> Body {
    let chunks: ByteStream = body.into_raw_stream();
    let out = stream::unfold((chunks, limit, false), move |(mut s, left, done)| {
        let uri = uri.clone();
        async move {
            if done {
                return None;
            }
            if left == 0 {
                return reset.then(|| {
                    let e = Error::new(ErrorKind::Interrupted, "injected connection reset")
                        .context(Operation::Get, uri);
                    (Err(e), (s, 0, true))
                });
            }
            match s.next().await {
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 > left {
                        chunk = chunk.slice(..left as usize);
                    }
                    let n = chunk.len() as u64;
                    Some((Ok(chunk), (s, left - n, false)))
                }
                other => other.map(|r| (r, (s, left, true))),
            }
        }
    });
    Body::Stream(out.boxed())
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultStore<S> {
    fn base_uri(&self) -> &str {
        self.inner.base_uri()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        let body_fault = self.before(Operation::Get, || self.uri_of(key)).await?;
        let mut res = self.inner.get(key, opts).await?;
        if let Some(f) = body_fault {
            let (limit, reset) = match f {
                Fault::TruncateBody(n) => (n, false),
                Fault::ResetBody(n) => (n, true),
                _ => unreachable!("only body faults are returned"),
            };
            let body = std::mem::replace(&mut res.body, Body::Bytes(Bytes::new()));
            res.body = cut(body, limit, reset, res.uri.clone());
        }
        Ok(res)
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        self.before(Operation::Put, || self.uri_of(key)).await?;
        self.inner.put(key, data, opts).await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.before(Operation::Write, || self.uri_of(key)).await?;
        self.inner.writer(key, opts).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.before(Operation::Head, || self.uri_of(key)).await?;
        self.inner.head(key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        self.before(Operation::List, || self.uri_of(prefix)).await?;
        self.inner.list_page(prefix, opts, token).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.before(Operation::Delete, || self.uri_of(key)).await?;
        self.inner.delete(key).await
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        self.before(Operation::Copy, || self.uri_of(from)).await?;
        self.inner.copy(from, to, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::ObjectStoreExt;

    #[tokio::test]
    async fn fails_exactly_the_nth_call() {
        let s = FaultStore::new(MemoryStore::new()).on_nth(
            Operation::Get,
            2,
            Fault::Fail(ErrorKind::RateLimited),
        );
        s.put_bytes("k", Bytes::from_static(b"v")).await.unwrap();
        assert!(s.get_bytes("k").await.is_ok());
        let err = s.get_bytes("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert!(err.is_retryable());
        assert!(s.get_bytes("k").await.is_ok());
        assert_eq!(s.calls(Operation::Get), 3);
    }

    #[tokio::test]
    async fn periodic_faults_hit_every_nth_call() {
        let s = FaultStore::new(MemoryStore::new());
        s.add_periodic(Some(Operation::Head), 3, Fault::Fail(ErrorKind::Timeout));
        s.put_bytes("k", Bytes::new()).await.unwrap();
        let failed: Vec<bool> = futures::future::join_all((0..9).map(|_| s.head("k")))
            .await
            .iter()
            .map(|r| r.is_err())
            .collect();
        assert_eq!(failed.iter().filter(|f| **f).count(), 3);
        assert!(failed[2] && failed[5] && failed[8], "{failed:?}");
    }

    #[tokio::test]
    async fn truncated_body_is_detected_not_returned_short() {
        let s =
            FaultStore::new(MemoryStore::new()).on_nth(Operation::Get, 1, Fault::TruncateBody(3));
        s.put_bytes("k", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let err = s.get_bytes("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Interrupted);
        assert!(err.to_string().contains("got 3 of 10 bytes"), "{err}");
        // Streamed readers see the same error at the end of the stream.
        let s = FaultStore::new(MemoryStore::new()).on_nth(Operation::Get, 1, Fault::ResetBody(4));
        s.put_bytes("k", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let chunks: Vec<_> = s
            .get("k", GetOptions::default())
            .await
            .unwrap()
            .into_stream()
            .collect()
            .await;
        assert_eq!(chunks[0].as_ref().unwrap().as_ref(), b"0123");
        assert_eq!(
            chunks.last().unwrap().as_ref().unwrap_err().kind(),
            ErrorKind::Interrupted
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delays_only_the_chosen_calls() {
        let s = FaultStore::new(MemoryStore::new()).on_calls(
            Some(Operation::Head),
            1,
            1,
            Fault::Delay(Duration::from_secs(5)),
        );
        let t = tokio::time::Instant::now();
        s.put_bytes("k", Bytes::new()).await.unwrap();
        s.head("k").await.unwrap();
        assert!(t.elapsed() >= Duration::from_secs(5));
        let t = tokio::time::Instant::now();
        s.head("k").await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
