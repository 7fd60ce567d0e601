//! An in-memory [`ObjectStore`] with S3's semantics, for tests of everything built on the
//! trait and for users who want a scratch store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::store::{
    effective_start, paginate, validate_key, Body, GetResult, ObjectStore, ObjectWriter,
    ResumePoint,
};
use crate::types::{
    Capabilities, CopyOptions, GetOptions, ListItem, ListOptions, ListPage, ObjectMeta, PutMode,
    PutOptions, PutResult,
};

#[derive(Debug)]
struct Inner {
    base_uri: String,
    objects: RwLock<BTreeMap<String, (Bytes, ObjectMeta)>>,
    generation: AtomicU64,
}

/// Objects in a `BTreeMap`, behind a lock; cheap to clone (clones share the objects).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_base_uri("mem:///")
    }

    /// A store whose objects report URIs under `base_uri` (e.g. `s3://bucket/` in tests).
    pub fn with_base_uri(base_uri: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                base_uri: base_uri.into(),
                objects: RwLock::new(BTreeMap::new()),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, (Bytes, ObjectMeta)>> {
        // A panic while holding the lock cannot leave the map half-updated (every update
        // is a single insert or remove), so a poisoned lock is still consistent.
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, (Bytes, ObjectMeta)>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }

    /// Store `data` under `key` if `opts.mode` allows it, atomically.
    fn commit(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<PutResult> {
        let mut map = self.write();
        check_mode(map.get(key).map(|(_, m)| m), &opts.mode)?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let etag = format!("\"{generation:016x}-{:08x}\"", crc32c::crc32c(&data));
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: data.len() as u64,
            last_modified: Some(SystemTime::now()),
            etag: Some(etag.clone()),
            content_type: opts.content_type.clone(),
            metadata: opts.metadata.clone(),
            storage_class: None,
        };
        let size = meta.size;
        map.insert(key.to_owned(), (data, meta));
        Ok(PutResult {
            etag: Some(etag),
            size,
        })
    }
}

/// Whether a write in `mode` may replace `existing`.
pub fn check_mode(existing: Option<&ObjectMeta>, mode: &PutMode) -> Result<()> {
    match (mode, existing) {
        (PutMode::Overwrite, _) => Ok(()),
        (PutMode::Create, None) => Ok(()),
        (PutMode::Create, Some(_)) => Err(Error::new(
            ErrorKind::AlreadyExists,
            "create-only write found an existing object",
        )),
        (PutMode::IfMatch(want), Some(m)) if m.etag.as_deref() == Some(want.as_str()) => Ok(()),
        (PutMode::IfMatch(want), Some(m)) => Err(Error::new(
            ErrorKind::PreconditionFailed,
            format!(
                "ETag is {}, not {want}",
                m.etag.as_deref().unwrap_or("(none)")
            ),
        )),
        (PutMode::IfMatch(want), None) => Err(Error::new(
            ErrorKind::NotFound,
            format!("conditional write expected ETag {want} but the object does not exist"),
        )),
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn base_uri(&self) -> &str {
        &self.inner.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::FULL
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        let uri = self.inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Get, uri.clone());
        validate_key(key).map_err(ctx)?;
        let (data, meta) = self
            .inner
            .read()
            .get(key)
            .cloned()
            .ok_or_else(|| ctx(Error::not_found("no such key")))?;
        if let Some(want) = &opts.if_match {
            if meta.etag.as_deref() != Some(want.as_str()) {
                return Err(ctx(Error::new(
                    ErrorKind::PreconditionFailed,
                    format!(
                        "ETag is {}, not {want}",
                        meta.etag.as_deref().unwrap_or("(none)")
                    ),
                )));
            }
        }
        let range = match opts.range {
            Some(r) => r.resolve(meta.size).map_err(ctx)?,
            None => 0..meta.size,
        };
        let body = data.slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            meta,
            range,
            body: Body::Bytes(body),
            uri,
        })
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let ctx = |e: Error| e.context(Operation::Put, self.inner.uri(key));
        validate_key(key).map_err(ctx)?;
        self.inner.commit(key, data, &opts).map_err(ctx)
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key).map_err(|e| e.context(Operation::Write, self.inner.uri(key)))?;
        Ok(Box::new(MemoryWriter {
            inner: Arc::clone(&self.inner),
            key: key.to_owned(),
            opts,
            parts: Vec::new(),
            written: 0,
        }))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let ctx = |e: Error| e.context(Operation::Head, self.inner.uri(key));
        validate_key(key).map_err(ctx)?;
        self.inner
            .read()
            .get(key)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| ctx(Error::not_found("no such key")))
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let map = self.inner.read();
        // Seek straight to the resume point so paging costs O(page), not O(n) per page.
        let seek = match effective_start(opts, token.as_deref()) {
            Some(ResumePoint::After(a)) => Some((a.to_owned(), false)),
            Some(ResumePoint::AtOrAfter(a)) => Some((a, true)),
            None => None,
        };
        let from = match &seek {
            Some((a, true)) if a.as_str() >= prefix => Bound::Included(a.as_str()),
            Some((a, false)) if a.as_str() >= prefix => Bound::Excluded(a.as_str()),
            _ => Bound::Included(prefix),
        };
        let items = map
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, (_, m))| ListItem::Object(m.clone()));
        Ok(paginate(items, prefix, opts, token.as_deref()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key).map_err(|e| e.context(Operation::Delete, self.inner.uri(key)))?;
        self.inner.write().remove(key);
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let ctx = |e: Error| e.context(Operation::Copy, self.inner.uri(from));
        validate_key(from).map_err(ctx)?;
        validate_key(to).map_err(ctx)?;
        let (data, meta) = self
            .inner
            .read()
            .get(from)
            .cloned()
            .ok_or_else(|| ctx(Error::not_found("no such key")))?;
        let put = PutOptions {
            mode: if opts.create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            content_type: meta.content_type,
            metadata: meta.metadata,
        };
        self.inner
            .commit(to, data, &put)
            .map_err(|e| e.context(Operation::Copy, self.inner.uri(to)))
    }
}

#[derive(Debug)]
struct MemoryWriter {
    inner: Arc<Inner>,
    key: String,
    opts: PutOptions,
    parts: Vec<Bytes>,
    written: u64,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.written += data.len() as u64;
        self.parts.push(data);
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<PutResult> {
        let mut buf = BytesMut::with_capacity(self.written as usize);
        for p in &self.parts {
            buf.extend_from_slice(p);
        }
        self.inner
            .commit(&self.key, buf.freeze(), &self.opts)
            .map_err(|e| e.context(Operation::Complete, self.inner.uri(&self.key)))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}
