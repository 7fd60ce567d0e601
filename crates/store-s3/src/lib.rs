//! The `s3://` backend of s3dlio, on aws-sdk-s3: Amazon S3 and any S3-compatible store
//! (MinIO, Vast, Ceph, SeaweedFS, ...).
//!
//! * Configuration the way AWS users expect: the standard credential chain (environment,
//!   shared files and profiles, SSO, web identity, container and instance metadata), the
//!   standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, `AWS_CA_BUNDLE`),
//!   path-style addressing for custom endpoints; explicit [`S3Options`] override them all.
//! * Reads: one request for objects up to a part (no HEAD first); larger ones as concurrent
//!   ranged GETs pinned to the first response's ETag, into one buffer or streamed in order.
//! * Writes: one PutObject up to `multipart_threshold`, else a multipart upload with
//!   concurrent parts; a CRC32C per request instead of a signed SHA-256 of the payload.
//!   Failed, aborted or dropped writes abort their upload.
//! * Conditional writes (`If-None-Match: *`, `If-Match`), batch deletes (1,000 keys per
//!   request), paged listings, server-side copies (multipart above 5 GiB).
//!
//! ```no_run
//! use bytes::Bytes;
//! use s3dlio_store_core::{ObjectStoreExt, Registry};
//!
//! # async fn demo() -> s3dlio_store_core::Result<()> {
//! let mut registry = Registry::new();
//! s3dlio_store_s3::register(&mut registry);
//! let (store, key) = registry.resolve("s3://my-bucket/data/sample.bin").await?;
//! store.put_bytes(&key, Bytes::from_static(b"hello")).await?;
//! assert_eq!(store.get_bytes(&key).await?, "hello");
//! # Ok(()) }
//! ```

/// Encryption and storage class from the store's options on a PutObject,
/// CreateMultipartUpload or CopyObject request (the SDK's builders share these setters, not
/// a trait).
macro_rules! stored_as {
    ($req:expr, $opts:expr) => {{
        let o: &crate::config::S3Options = $opts;
        let sse = o.server_side_encryption.as_ref();
        $req.set_server_side_encryption(
            sse.map(|e| aws_sdk_s3::types::ServerSideEncryption::from(e.as_str())),
        )
        .set_ssekms_key_id(sse.and_then(|e| e.kms_key_id()).map(str::to_owned))
        .set_bucket_key_enabled(sse.and_then(|e| e.bucket_key()))
        .set_storage_class(
            o.storage_class
                .as_deref()
                .map(aws_sdk_s3::types::StorageClass::from),
        )
    }};
}

mod config;
mod error;
mod lean;
mod list;
mod pending;
mod read;
mod store;
mod wire;
mod writer;

#[cfg(feature = "object-store-backend")]
pub mod objstore;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use s3dlio_store_core::{
    BalancedStore, BufferPool, ObjectStore, ObjectUri, Operation, Registry, Result, RetryPolicy,
    Scheme, StoreFactory,
};
use tokio::sync::OnceCell;

use crate::lean::LeanClient;

pub use config::{
    S3Options, ServerSideEncryption, StaticCredentials, UploadIntegrity, MAX_PARTS, MAX_PART_SIZE,
    MIN_PART_SIZE,
};
pub use store::S3Store;

#[cfg(feature = "object-store-backend")]
pub use objstore::{register_object_store, ObjectStoreS3, ObjectStoreS3Factory};

/// Opens `s3://bucket/...` URIs; every bucket shares one SDK client (one connection pool),
/// built on first use.
#[derive(Debug, Default)]
pub struct S3Factory {
    options: S3Options,
    /// Apply `S3DLIO_*` tuning from the environment when the client is built.
    env_tuning: bool,
    client: OnceCell<(Client, S3Options)>,
    lean: OnceCell<Option<Arc<LeanClient>>>,
    /// The shared client assumed us-east-1 (no region configured anywhere).
    region_assumed: OnceCell<bool>,
    /// With no region configured: each bucket's client, options and lean path, for buckets
    /// the server placed in another region (`None`: the shared client serves it).
    located: std::sync::Mutex<HashMap<String, Arc<Location>>>,
    /// With several endpoints: one client per endpoint, built on first use.
    endpoint_clients: OnceCell<Vec<EndpointClient>>,
    /// The attempts of the retry layer above, which sub-requests get too (see
    /// [`S3Factory::outer_policy`]).
    outer_attempts: Option<u32>,
}

impl S3Factory {
    /// A factory using exactly `options` (the AWS environment still supplies what they
    /// leave unset: endpoint, region, credentials).
    pub fn new(options: S3Options) -> Self {
        Self {
            options,
            env_tuning: false,
            client: OnceCell::new(),
            lean: OnceCell::new(),
            region_assumed: OnceCell::new(),
            located: Default::default(),
            endpoint_clients: OnceCell::new(),
            outer_attempts: None,
        }
    }

    /// Set [`S3Options::outer_retries`] (a retry layer above retries whole operations).
    pub fn outer_retries(mut self, on: bool) -> Self {
        self.options.outer_retries = on;
        self
    }

    /// The retry layer above, if any: it retries whole operations, and the sub-requests it
    /// cannot see (multipart parts, the final PUT of a streamed write, ranged parts of a
    /// read) get as many attempts as it makes (at least `max_attempts`), so a streamed write
    /// is as patient with transient faults as a whole PUT.
    pub fn outer_policy(mut self, policy: Option<&RetryPolicy>) -> Self {
        self.options.outer_retries = policy.is_some();
        self.outer_attempts = policy.map(|p| p.max_attempts);
        self
    }

    /// A factory with default options and `S3DLIO_*` tuning from the environment.
    pub fn from_env() -> Self {
        Self {
            options: S3Options::default(),
            env_tuning: true,
            client: OnceCell::new(),
            lean: OnceCell::new(),
            region_assumed: OnceCell::new(),
            located: Default::default(),
            endpoint_clients: OnceCell::new(),
            outer_attempts: None,
        }
    }

    /// The shared client and the options in force, built on first use.
    pub async fn client(&self) -> Result<&(Client, S3Options)> {
        self.client
            .get_or_try_init(|| async {
                let mut opts = if self.env_tuning {
                    self.options.clone().with_env_overrides()?
                } else {
                    self.options.clone()
                };
                if let Some(a) = self.outer_attempts {
                    // Under the layer only sub-requests use it (see `outer_policy`).
                    opts.max_attempts = opts.max_attempts.max(a);
                }
                let built = opts.build().await?;
                // Set once, with the client they were built beside.
                let _ = self.lean.set(built.lean);
                let _ = self.region_assumed.set(built.region_assumed);
                Ok((built.client, opts))
            })
            .await
    }
}

#[async_trait]
impl StoreFactory for S3Factory {
    async fn open(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        let (client, opts) = self
            .client()
            .await
            .map_err(|e| e.context(Operation::Open, uri.store_uri()))?;
        if opts.endpoints.len() > 1 {
            let clients = self
                .endpoint_clients
                .get_or_try_init(|| endpoint_clients(opts))
                .await
                .map_err(|e| e.context(Operation::Open, uri.store_uri()))?;
            return Ok(Arc::new(
                balanced_store(clients, &uri.container, opts).await?,
            ));
        }
        let located = if self.region_assumed.get() == Some(&true) && !uri.container.is_empty() {
            self.locate(&uri.container, client, opts)
                .await
                .map_err(|e| e.context(Operation::Open, uri.store_uri()))?
        } else {
            None
        };
        let (client, lean, opts) = match &located {
            Some(l) => (&l.client, l.lean.as_ref(), &l.opts),
            None => (client, self.lean.get().and_then(Option::as_ref), opts),
        };
        let lean = match lean {
            Some(l) => l.bucket(&uri.container).await,
            None => None,
        };
        Ok(Arc::new(S3Store::assemble(
            client.clone(),
            lean,
            uri.container.clone(),
            opts.clone(),
            BufferPool::new(opts.buffer_pool_bytes),
        )?))
    }
}

/// Where one bucket is, once asked: `None` when the shared client serves it.
type Location = OnceCell<Option<Arc<Located>>>;

/// A bucket's own client, for a bucket in another region than the shared client's.
#[derive(Debug)]
struct Located {
    client: Client,
    lean: Option<Arc<LeanClient>>,
    opts: S3Options,
}

impl S3Factory {
    /// With no region configured: where `bucket` is, asked once per bucket (see
    /// [`S3Options::build_for_bucket`]); a client for its region if that is not the shared
    /// client's. Buckets are asked for concurrently; a probe that got no answer is not
    /// remembered, so the next open asks again.
    async fn locate(
        &self,
        bucket: &str,
        client: &Client,
        opts: &S3Options,
    ) -> Result<Option<Arc<Located>>> {
        let cell = Arc::clone(
            self.located
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(bucket.to_owned())
                .or_default(),
        );
        let found = cell
            .get_or_try_init(|| async {
                let Some(opts) = opts.located_at(client, bucket).await.map_err(|()| None)? else {
                    return Ok(None);
                };
                let built = opts.build().await.map_err(Some)?;
                Ok(Some(Arc::new(Located {
                    client: built.client,
                    lean: built.lean,
                    opts,
                })))
            })
            .await;
        match found {
            Ok(l) => Ok(l.clone()),
            // No answer: the shared client for now; the first request reports the trouble.
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }
}

/// `bucket` through every endpoint of [`S3Options::endpoints`] (one client each, the same
/// credentials and tuning), as one store spreading requests over them with
/// [`S3Options::balance`]; see `s3dlio_store_core::balance`. The registry does this for
/// `s3://` URIs when more than one endpoint is configured; this gives the
/// [`BalancedStore`] itself, with its per-endpoint statistics.
pub async fn open_balanced(bucket: &str, opts: S3Options) -> Result<BalancedStore> {
    let clients = endpoint_clients(&opts)
        .await
        .map_err(|e| e.context(Operation::Open, format!("s3://{bucket}/")))?;
    balanced_store(&clients, bucket, &opts).await
}

/// One client per endpoint: (endpoint, SDK client, lean path).
type EndpointClient = (String, Client, Option<Arc<LeanClient>>);

async fn endpoint_clients(opts: &S3Options) -> Result<Vec<EndpointClient>> {
    opts.validate()?;
    let mut out = Vec::with_capacity(opts.endpoints.len());
    for ep in &opts.endpoints {
        let one = S3Options {
            endpoint_url: Some(ep.clone()),
            endpoints: Vec::new(),
            ..opts.clone()
        };
        let built = one.build().await?;
        out.push((ep.clone(), built.client, built.lean));
    }
    Ok(out)
}

/// One store per endpoint client, sharing one read-buffer pool.
async fn balanced_store(
    clients: &[EndpointClient],
    bucket: &str,
    opts: &S3Options,
) -> Result<BalancedStore> {
    let pool = BufferPool::new(opts.buffer_pool_bytes);
    let mut stores = Vec::with_capacity(clients.len());
    for (ep, client, lean) in clients {
        let lean = match lean {
            Some(l) => l.bucket(bucket).await,
            None => None,
        };
        let store = S3Store::assemble(
            client.clone(),
            lean,
            bucket.to_owned(),
            opts.clone(),
            Arc::clone(&pool),
        )?;
        stores.push((ep.clone(), Arc::new(store) as Arc<dyn ObjectStore>));
    }
    BalancedStore::new(stores, opts.balance.clone())
}

/// Register `s3://` in `registry`, configured from the environment (AWS_* and the
/// `S3DLIO_*` tuning variables, see [`S3Options::with_env_overrides`]).
///
/// In a registry with a retry policy (`Registry::set_retry_policy`, set first), the layer
/// retries whole operations and the SDK only their sub-requests
/// ([`S3Options::outer_retries`]); the same holds for [`register_with`].
pub fn register(registry: &mut Registry) {
    let factory = S3Factory::from_env().outer_policy(registry.retry_policy());
    registry.register(Scheme::S3, factory);
}

/// Register `s3://` in `registry` with explicit options.
pub fn register_with(registry: &mut Registry, options: S3Options) {
    let factory = S3Factory::new(options).outer_policy(registry.retry_policy());
    registry.register(Scheme::S3, factory);
}

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
