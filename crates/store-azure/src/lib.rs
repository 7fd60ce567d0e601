//! The `az://` backend of s3dlio: Azure Blob Storage (and the Azurite emulator) on
//! Microsoft's Azure SDK for Rust: requests go through an `azure_core` pipeline (retries
//! with exponential backoff, client request ids) and Entra ID tokens come from
//! `azure_identity`.
//!
//! * Credentials the way Azure users expect: a connection string, an account key (Shared
//!   Key signing, a policy of this crate), a SAS token, or Entra ID (service principal,
//!   workload identity, managed identity, Azure CLI); a custom endpoint for the emulator
//!   and sovereign clouds. Explicit [`AzureOptions`] override the environment.
//! * Reads: one request for blobs up to a part (no HEAD first); larger ones as concurrent
//!   ranged GETs pinned to the first response's ETag, into one buffer or streamed in order.
//! * Writes: one Put Blob up to `put_threshold`, else blocks staged concurrently and
//!   committed once with Put Block List; a failed, aborted or dropped write commits
//!   nothing. Conditional writes (`If-None-Match: *`, `If-Match`), access tiers.
//! * Listings page by page, recursive or with the `/` delimiter, in key order.
//!
//! ```no_run
//! use bytes::Bytes;
//! use s3dlio_store_core::{ObjectStoreExt, Registry};
//!
//! # async fn demo() -> s3dlio_store_core::Result<()> {
//! let mut registry = Registry::new();
//! s3dlio_store_azure::register(&mut registry);
//! let (store, key) = registry.resolve("az://myaccount/mycontainer/data/sample.bin").await?;
//! store.put_bytes(&key, Bytes::from_static(b"hello")).await?;
//! assert_eq!(store.get_bytes(&key).await?, "hello");
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod config;
mod error;
mod list;
mod read;
mod store;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use s3dlio_store_core::{
    ObjectStore, ObjectUri, Operation, Registry, Result, RetryPolicy, Scheme, StoreFactory,
};
use tokio::sync::Mutex;

pub use client::API_VERSION;
pub use config::{
    entra_id_from_env, AccessTier, AzureCredential, AzureOptions, Resolved, DEV_ACCOUNT,
    DEV_ACCOUNT_KEY, MAX_BLOCKS, MAX_BLOCK_SIZE,
};
pub use store::AzureStore;
#[doc(hidden)]
pub use writer::inject_block_failure;

type AccountClient = (Arc<client::Client>, AzureOptions);

/// Opens `az://` URIs; every container of one account shares one pipeline (one connection
/// pool), built on first use.
#[derive(Debug, Default)]
pub struct AzureFactory {
    options: AzureOptions,
    /// Apply `S3DLIO_*` tuning from the environment.
    env_tuning: bool,
    /// Per account (`None`: the environment's): its pipeline and the options in force.
    clients: Mutex<HashMap<Option<String>, AccountClient>>,
    /// The attempts of the retry layer above, which sub-requests get too (see
    /// [`AzureFactory::outer_policy`]).
    outer_attempts: Option<u32>,
}

impl AzureFactory {
    /// A factory using exactly `options` (the Azure environment still supplies what they
    /// leave unset: account, endpoint, credential).
    pub fn new(options: AzureOptions) -> Self {
        Self {
            options,
            env_tuning: false,
            clients: Mutex::default(),
            outer_attempts: None,
        }
    }

    /// The retry layer above, if any: it retries whole operations, and the sub-requests it
    /// cannot see (the staged blocks and block list of a streamed write) get as many
    /// attempts as it makes (at least `max_retries` + 1).
    pub fn outer_policy(mut self, policy: Option<&RetryPolicy>) -> Self {
        self.options.outer_retries = policy.is_some();
        self.outer_attempts = policy.map(|p| p.max_attempts);
        self
    }

    /// Set [`AzureOptions::outer_retries`] (a retry layer above retries whole operations).
    pub fn outer_retries(mut self, on: bool) -> Self {
        self.options.outer_retries = on;
        self
    }

    /// A factory with default options and `S3DLIO_*` tuning from the environment.
    pub fn from_env() -> Self {
        Self {
            env_tuning: true,
            ..Self::default()
        }
    }
}

#[async_trait]
impl StoreFactory for AzureFactory {
    async fn open(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        let ctx = |e: s3dlio_store_core::Error| e.context(Operation::Open, uri.store_uri());
        let mut clients = self.clients.lock().await;
        let entry = match clients.get(&uri.account) {
            Some(e) => e.clone(),
            None => {
                let mut opts = if self.env_tuning {
                    self.options.clone().with_env_overrides().map_err(ctx)?
                } else {
                    self.options.clone()
                };
                if let Some(a) = self.outer_attempts {
                    // Under the layer only sub-requests are retried here.
                    opts.max_retries = opts.max_retries.max(a.saturating_sub(1));
                }
                let resolved = opts.resolve(uri.account.as_deref()).map_err(ctx)?;
                let client = Arc::new(client::Client::new(
                    &resolved,
                    opts.max_retries,
                    opts.outer_retries,
                )?);
                clients.insert(uri.account.clone(), (Arc::clone(&client), opts.clone()));
                (client, opts)
            }
        };
        Ok(Arc::new(AzureStore::from_client(
            entry.0,
            uri.account.is_some(),
            &uri.container,
            entry.1,
        )?))
    }
}

/// Register `az://` in `registry`, configured from the environment (the `AZURE_STORAGE_*`
/// variables, Entra ID, and the `S3DLIO_*` tuning variables).
///
/// In a registry with a retry policy (`Registry::set_retry_policy`, set first), the layer
/// retries whole operations and this backend only their sub-requests
/// ([`AzureOptions::outer_retries`]); the same holds for [`register_with`].
pub fn register(registry: &mut Registry) {
    let factory = AzureFactory::from_env().outer_policy(registry.retry_policy());
    registry.register(Scheme::Azure, factory);
}

/// Register `az://` in `registry` with explicit options.
pub fn register_with(registry: &mut Registry, options: AzureOptions) {
    let factory = AzureFactory::new(options).outer_policy(registry.retry_policy());
    registry.register(Scheme::Azure, factory);
}

// The README's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
