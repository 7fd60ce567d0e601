//! Test helpers: a store wrapper that delays GETs per key and measures the bytes it has
//! returned that the consumer has not yet taken.

#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use s3dlio_store_core::{
    Capabilities, GetOptions, GetResult, ListOptions, ListPage, MemoryStore, ObjectMeta,
    ObjectStore, ObjectStoreExt, ObjectWriter, PutOptions, PutResult, Result,
};

type DelayFn = dyn Fn(&str) -> Duration + Send + Sync;

/// Wraps a store: GETs wait `delay(key)` first; bytes returned by GETs count as
/// outstanding until the test calls [`Probe::consumed`].
pub struct Probe<S> {
    pub inner: S,
    delay: Box<DelayFn>,
    outstanding: AtomicI64,
    max_outstanding: AtomicI64,
    pub gets: AtomicU64,
}

impl<S> std::fmt::Debug for Probe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

impl<S: ObjectStore> Probe<S> {
    pub fn new(inner: S, delay: impl Fn(&str) -> Duration + Send + Sync + 'static) -> Self {
        Self {
            inner,
            delay: Box::new(delay),
            outstanding: AtomicI64::new(0),
            max_outstanding: AtomicI64::new(0),
            gets: AtomicU64::new(0),
        }
    }

    /// The consumer took `bytes`.
    pub fn consumed(&self, bytes: u64) {
        self.outstanding.fetch_sub(bytes as i64, Ordering::SeqCst);
    }

    pub fn max_outstanding(&self) -> u64 {
        self.max_outstanding.load(Ordering::SeqCst) as u64
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Probe<S> {
    fn base_uri(&self) -> &str {
        self.inner.base_uri()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep((self.delay)(key)).await;
        let r = self.inner.get(key, opts).await?;
        let now = self.outstanding.fetch_add(r.len() as i64, Ordering::SeqCst) + r.len() as i64;
        self.max_outstanding.fetch_max(now, Ordering::SeqCst);
        Ok(r)
    }
    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        self.inner.put(key, data, opts).await
    }
    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.inner.writer(key, opts).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        self.inner.list_page(prefix, opts, token).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

/// The key of sample `i` under `prefix`.
pub fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:06}")
}

/// A memory store with `n` objects under `prefix`; object `i` has `size(i)` bytes, each
/// starting with its index.
pub async fn filled(prefix: &str, n: usize, size: impl Fn(usize) -> usize) -> MemoryStore {
    let store = MemoryStore::new();
    for i in 0..n {
        let mut v = vec![(i % 251) as u8; size(i).max(8)];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        store
            .put_bytes(&key(prefix, i), Bytes::from(v))
            .await
            .unwrap();
    }
    store
}

/// The index a sample's bytes carry.
pub fn tag(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..8].try_into().unwrap())
}

pub fn arc<S: ObjectStore>(s: S) -> Arc<dyn ObjectStore> {
    Arc::new(s)
}
