//! An alternative `s3://` backend on the `object_store` crate (apache arrow-rs-object-store),
//! behind the `object-store-backend` feature, to compare with the native aws-sdk-s3 backend
//! ([`S3Store`](crate::S3Store)) in benchmarks. It implements the same trait with the same
//! semantics and passes the same conformance suite against the same servers.
//!
//! ```no_run
//! use bytes::Bytes;
//! use s3dlio_store_core::{ObjectStoreExt, Registry};
//! use s3dlio_store_s3::{register_object_store, S3Options};
//!
//! # async fn demo() -> s3dlio_store_core::Result<()> {
//! let mut registry = Registry::new();
//! register_object_store(&mut registry, S3Options::default());
//! let (store, key) = registry.resolve("s3://my-bucket/data/sample.bin").await?;
//! store.put_bytes(&key, Bytes::from_static(b"hello")).await?;
//! assert_eq!(store.get_bytes(&key).await?, "hello");
//! # Ok(()) }
//! ```
//!
//! # How the work is done
//!
//! The same strategies as the native backend, on object_store's calls, so that a benchmark
//! compares the clients and not two designs:
//!
//! * Reads: `get_opts` with `GetRange` (bounded, offset, suffix) and If-Match; the first
//!   request asks for the first `get_part_size` bytes, the rest of a larger object comes from
//!   `get_concurrency` concurrent ranged GETs pinned to the first answer's ETag.
//! * Writes: `put_opts` up to `multipart_threshold`, else `put_multipart_opts` with parts of
//!   `part_size` (growing every 1,000 parts as in the native writer), `upload_concurrency` in
//!   flight; failed, aborted and dropped writers abort their upload.
//! * Conditional writes: `PutMode::Create` and `PutMode::Update` (If-None-Match / If-Match).
//! * Listings: object_store's `PaginatedListStore` (one ListObjectsV2 request per page, with
//!   the raw prefix, the delimiter, `max-keys`, `start-after` and the continuation token), so
//!   a page never costs more than one request and prefixes match by string, as in S3.
//!   (`ObjectStore::list*` would append a `/` to the prefix and `list_with_delimiter` reads the
//!   whole listing before returning.)
//! * Deletes: `delete` (a missing key is fine), batches through `delete_stream`
//!   (DeleteObjects, 1,000 keys a request). Copies: `copy`, and `copy_if_not_exists` through a
//!   multipart upload of one UploadPartCopy completed with If-None-Match.
//! * Content type and user metadata go in `Attribute::ContentType` and `Attribute::Metadata`,
//!   and come back from object_store's GET/HEAD attributes.
//!
//! # Options
//!
//! Configuration starts from `AmazonS3Builder::from_env()` (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, web identity and container credentials, and the
//! `AWS_*` HTTP client settings); the [`S3Options`] then override it:
//!
//! | option | here |
//! | --- | --- |
//! | `endpoint_url` | honoured (else `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`); `http://` endpoints are allowed |
//! | `endpoints`, `balance` | one endpoint is `endpoint_url`; **several are not supported** (`NotSupported` at construction): the native backend balances them |
//! | `region` | honoured (else the environment, else `us-east-1`) |
//! | `credentials` | honoured, session token included; else the environment, web identity, container credentials, then the instance metadata service |
//! | `force_path_style` | honoured (else `S3DLIO_FORCE_PATH_STYLE`, else path style for a custom endpoint); virtual-hosted requests to a custom endpoint go to `bucket.host` |
//! | `ca_bundle` | honoured (else `AWS_CA_BUNDLE`, `AWS_CA_BUNDLE_PATH`): its certificates are trusted besides the system roots |
//! | `get_part_size`, `get_concurrency` | honoured (see reads) |
//! | `multipart_threshold`, `part_size`, `upload_concurrency` | honoured (see writes) |
//! | `max_attempts` | honoured, as object_store's `max_retries = max_attempts - 1` with its own backoff; object_store also stops retrying after 3 minutes |
//! | `connect_timeout`, `read_timeout` | honoured |
//! | `attempt_timeout` | honoured as the timeout of each request; unset, requests have none (object_store's default of 30 s would cut off large parts), unless `AWS_TIMEOUT` sets one |
//! | `upload_integrity` | `Crc32c` honoured with another algorithm: object_store has no CRC32C, so uploads carry a CRC64NVME checksum for the server to verify, with an unsigned payload; `SignedPayload` signs a SHA-256 of the payload; `None` sends neither (unless `AWS_CHECKSUM_ALGORITHM` asks for a checksum) |
//! | `profile` | **not supported**: object_store reads no `~/.aws/config` or `~/.aws/credentials` (so no profiles, SSO or `credential_process` either); a profile fails at construction with `NotSupported`, and `AWS_PROFILE` is not read |
//!
//! # Limits and differences from the native backend
//!
//! * Keys: object_store's `Path` refuses empty segments (`a//b`), `.` and `..` segments, ASCII
//!   control characters, and a leading or trailing `/`. Such keys fail with `InvalidInput`
//!   naming the key, before any request. Every other key (spaces, `+`, `%`, quotes, `;=&?#`,
//!   `~*()`, any unicode) round-trips exactly. A listing that meets such a key written by
//!   another client fails; a key ending in `/` (a "directory marker") is listed without it.
//! * Conditional writers (`PutMode::Create`, `PutMode::IfMatch`) are sent as one conditional
//!   PUT, so they buffer the whole object and are limited to 5 GiB (`NotSupported` past it):
//!   object_store's multipart completion carries no condition.
//! * Create-only copies are limited to sources of up to 5 GiB (one UploadPartCopy) and do not
//!   carry the source's content type and user metadata (object_store's multipart copy sets
//!   none); plain copies keep them. A copy's result comes from a HEAD of the target after it.
//! * Each bucket has its own connection pool (object_store binds a client to one bucket).
//! * `AWS_EC2_METADATA_DISABLED` is not read: without credentials in the options or the
//!   environment, object_store asks the instance metadata service.

mod config;
mod error;
mod read;
mod writer;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore as _, ObjectStoreExt as _, PutPayload, UpdateVersion,
};
use s3dlio_store_core::pool::BufferPool;
use s3dlio_store_core::store::DEFAULT_PAGE_SIZE;
use s3dlio_store_core::{
    Capabilities, CopyOptions, Error, ErrorKind, GetOptions, GetResult, ListItem, ListOptions,
    ListPage, ObjectMeta, ObjectStore, ObjectUri, ObjectWriter, Operation, PutMode, PutOptions,
    PutResult, Registry, Result, Scheme, StoreFactory,
};

use crate::config::S3Options;
pub use error::ObjectStoreError;
use error::{map_err, path_of, rekind};
use writer::MAX_SINGLE_PUT;

/// What every request of one store needs.
pub(crate) struct Shared {
    inner: AmazonS3,
    bucket: String,
    base_uri: String,
    opts: S3Options,
    /// Whole-object GET buffers, reused once callers drop them (as the native backend's).
    pool: Arc<BufferPool>,
}

impl Shared {
    fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }
}

/// One S3 bucket through object_store. Cheap to clone; clones share the client.
#[derive(Clone)]
pub struct ObjectStoreS3 {
    shared: Arc<Shared>,
}

impl fmt::Debug for ObjectStoreS3 {
    // The object_store client's own Debug would print its whole configuration, encryption
    // keys included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreS3")
            .field("base_uri", &self.shared.base_uri)
            .field("options", &self.shared.opts)
            .finish()
    }
}

impl ObjectStoreS3 {
    /// A store for `bucket`, configured from `opts` over the environment (see the module
    /// documentation for what each option does here).
    pub fn new(bucket: impl Into<String>, opts: S3Options) -> Result<Self> {
        let bucket = bucket.into();
        let base_uri = format!("s3://{bucket}/");
        if bucket.is_empty() {
            return Err(
                Error::invalid_input("missing bucket name").context(Operation::Open, "s3://")
            );
        }
        let inner = config::build(&bucket, &opts)
            .map_err(|e| e.context(Operation::Open, base_uri.clone()))?;
        Ok(Self {
            shared: Arc::new(Shared {
                inner,
                bucket,
                base_uri,
                pool: BufferPool::new(opts.buffer_pool_bytes),
                opts,
            }),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.shared.bucket
    }

    pub fn options(&self) -> &S3Options {
        &self.shared.opts
    }

    /// The object_store client underneath, for calls this trait does not have.
    pub fn object_store(&self) -> &AmazonS3 {
        &self.shared.inner
    }

    fn uri(&self, key: &str) -> String {
        self.shared.uri(key)
    }
}

/// The attributes of a write: content type, user metadata and the store's storage class
/// (its encryption is in the client's configuration).
fn attributes(opts: &PutOptions, store: &S3Options) -> Attributes {
    let mut attrs = Attributes::with_capacity(opts.metadata.len() + 2);
    if let Some(ct) = &opts.content_type {
        attrs.insert(Attribute::ContentType, ct.clone().into());
    }
    if let Some(c) = &store.storage_class {
        attrs.insert(Attribute::StorageClass, c.clone().into());
    }
    for (k, v) in &opts.metadata {
        attrs.insert(Attribute::Metadata(k.clone().into()), v.clone().into());
    }
    attrs
}

/// A failed condition in the terms of the write mode: a create-only write that finds an
/// object is `AlreadyExists`, an If-Match write that loses (also by a 409 conflict, or
/// because the object is gone) is `PreconditionFailed`.
fn conditional_error(e: Error, mode: &PutMode) -> Error {
    match (mode, e.kind()) {
        (PutMode::Create, ErrorKind::PreconditionFailed) => rekind(
            e,
            ErrorKind::AlreadyExists,
            "create-only write found an existing object",
        ),
        (PutMode::IfMatch(_), ErrorKind::AlreadyExists | ErrorKind::NotFound) => rekind(
            e,
            ErrorKind::PreconditionFailed,
            "the object's ETag no longer matches",
        ),
        _ => e,
    }
}

/// One PUT with the write mode's condition.
async fn put_single(
    s: &Shared,
    key: &str,
    path: &Path,
    payload: PutPayload,
    opts: &PutOptions,
) -> Result<PutResult> {
    let size = payload.content_length() as u64;
    let mode = match &opts.mode {
        PutMode::Overwrite => object_store::PutMode::Overwrite,
        PutMode::Create => object_store::PutMode::Create,
        PutMode::IfMatch(etag) => object_store::PutMode::Update(UpdateVersion {
            e_tag: Some(etag.clone()),
            version: None,
        }),
    };
    let out = s
        .inner
        .put_opts(
            path,
            payload,
            object_store::PutOptions {
                mode,
                attributes: attributes(opts, &s.opts),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| conditional_error(map_err(e, Operation::Put, &s.uri(key)), &opts.mode))?;
    Ok(PutResult {
        etag: out.e_tag,
        size,
    })
}

#[async_trait]
impl ObjectStore for ObjectStoreS3 {
    fn base_uri(&self) -> &str {
        &self.shared.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::FULL
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        read::get(&self.shared, key, opts).await
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let path = path_of(key).map_err(|e| e.context(Operation::Put, self.uri(key)))?;
        if opts.mode == PutMode::Overwrite && data.len() > self.shared.opts.multipart_threshold {
            // Large payloads go up as concurrent parts.
            let mut w = self.writer(key, opts).await?;
            if let Err(e) = w.write(data).await {
                let _ = w.abort().await;
                return Err(e);
            }
            return w.complete().await;
        }
        if data.len() > MAX_SINGLE_PUT {
            return Err(Error::not_supported(format!(
                "a conditional write through object_store is one PUT, at most {MAX_SINGLE_PUT} \
                 bytes"
            ))
            .context(Operation::Put, self.uri(key)));
        }
        put_single(&self.shared, key, &path, data.into(), &opts).await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let path = path_of(key).map_err(|e| e.context(Operation::Write, self.uri(key)))?;
        Ok(Box::new(writer::writer(
            Arc::clone(&self.shared),
            key,
            path,
            opts,
        )))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let uri = self.uri(key);
        let path = path_of(key).map_err(|e| e.context(Operation::Head, uri.clone()))?;
        let res = read::request(&self.shared, &path, None, None, true)
            .await
            .map_err(|e| map_err(e, Operation::Head, &uri))?;
        Ok(read::meta_of(key, &res.meta, &res.attributes))
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let s = &self.shared;
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1000);
        let out = s
            .inner
            .list_paginated(
                (!prefix.is_empty()).then_some(prefix),
                PaginatedListOptions {
                    offset: opts.start_after.clone(),
                    delimiter: (!opts.recursive).then_some(Cow::Borrowed("/")),
                    max_keys: Some(page_size),
                    page_token: token,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err(e, Operation::List, &s.uri(prefix)))?;
        let mut items: Vec<ListItem> = out
            .result
            .objects
            .iter()
            .map(|m| ListItem::Object(read::meta_of(m.location.as_ref(), m, &Attributes::new())))
            .collect();
        // object_store's paths drop the trailing '/' of a common prefix.
        items.extend(
            out.result
                .common_prefixes
                .iter()
                .map(|p| ListItem::Prefix(format!("{p}/"))),
        );
        // S3 returns objects and prefixes as two sorted lists; one order for callers.
        items.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(ListPage {
            items,
            next: out.page_token.filter(|t| !t.is_empty()),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let uri = self.uri(key);
        let path = path_of(key).map_err(|e| e.context(Operation::Delete, uri.clone()))?;
        match self.shared.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e, Operation::Delete, &uri)),
        }
    }

    /// Batch DeleteObjects through `delete_stream` (1,000 keys a request).
    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        let s = &self.shared;
        let mut results: Vec<Option<Result<()>>> = Vec::with_capacity(keys.len());
        let mut paths = Vec::with_capacity(keys.len());
        for key in &keys {
            match path_of(key) {
                Ok(p) => {
                    paths.push(Ok(p));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.context(Operation::Delete, s.uri(key))))),
            }
        }
        let sent = paths.len();
        let answers: Vec<object_store::Result<Path>> = s
            .inner
            .delete_stream(stream::iter(paths).boxed())
            .collect()
            .await;
        if answers.len() != sent {
            // A whole batch request failed; object_store reports it once for the batch.
            let e = answers
                .into_iter()
                .find_map(|a| a.err())
                .ok_or_else(|| Error::other(format!("{sent} deletes sent but not all answered")));
            return Err(match e {
                Ok(e) => map_err(e, Operation::DeleteMany, &s.base_uri),
                Err(e) => e.context(Operation::DeleteMany, s.base_uri.clone()),
            });
        }
        let mut answers = answers.into_iter();
        Ok(results
            .into_iter()
            .zip(&keys)
            .map(|(slot, key)| match slot {
                Some(r) => r,
                None => match answers.next() {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => {
                        let e = map_err(e, Operation::Delete, &s.uri(key));
                        if e.kind() == ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }
                    None => Err(Error::other("no answer for this key")
                        .context(Operation::Delete, s.uri(key))),
                },
            })
            .collect())
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let s = &self.shared;
        if s.opts.storage_class.is_some() {
            // object_store's copy takes no attributes: the copy would not get the class.
            return Err(Error::new(
                ErrorKind::NotSupported,
                "copy with a storage_class is not supported by the object_store backend \
                 (the native backend does it)",
            )
            .context(Operation::Copy, self.uri(to)));
        }
        let from_path = path_of(from).map_err(|e| e.context(Operation::Copy, self.uri(from)))?;
        let to_path = path_of(to).map_err(|e| e.context(Operation::Copy, self.uri(to)))?;
        let copied = if opts.create_only {
            s.inner.copy_if_not_exists(&from_path, &to_path).await
        } else {
            s.inner.copy(&from_path, &to_path).await
        };
        if let Err(e) = copied {
            // A missing source is reported on the target's path; name the source.
            let uri = match &e {
                object_store::Error::NotFound { .. } => self.uri(from),
                _ => self.uri(to),
            };
            return Err(map_err(e, Operation::Copy, &uri));
        }
        let meta = self
            .head(to)
            .await
            .map_err(|e| e.with_operation(Operation::Copy))?;
        Ok(PutResult {
            etag: meta.etag,
            size: meta.size,
        })
    }
}

/// Opens `s3://bucket/...` URIs with [`ObjectStoreS3`], one client per bucket.
#[derive(Debug, Default)]
pub struct ObjectStoreS3Factory {
    options: S3Options,
}

impl ObjectStoreS3Factory {
    pub fn new(options: S3Options) -> Self {
        Self { options }
    }
}

#[async_trait]
impl StoreFactory for ObjectStoreS3Factory {
    async fn open(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(ObjectStoreS3::new(
            uri.container.clone(),
            self.options.clone(),
        )?))
    }
}

/// Register `s3://` in `registry` with the object_store implementation (replacing the native
/// one if it was registered).
pub fn register_object_store(registry: &mut Registry, options: S3Options) {
    registry.register(Scheme::S3, ObjectStoreS3Factory::new(options));
}
