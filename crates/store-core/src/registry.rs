//! Explicit URI dispatch: facades register one factory per scheme at start-up, then resolve
//! URIs to a shared store and a key. (Automatic registration through linker tricks breaks
//! inside Python extension modules, so there is none.)

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::error::{Error, Operation, Result};
use crate::retry::{RetryPolicy, RetryStore};
use crate::store::ObjectStore;
use crate::uri::{ObjectUri, ParseOptions, Scheme};

/// Makes the store a URI lives in (a bucket, a container, the local file system).
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// Open the store for `uri`'s bucket/container/account; the key is ignored.
    async fn open(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>>;
}

type StoreKey = (Scheme, Option<String>, String);

/// Scheme -> factory, plus a cache so every URI in one bucket shares one client.
#[derive(Default)]
pub struct Registry {
    factories: HashMap<Scheme, Arc<dyn StoreFactory>>,
    parse: ParseOptions,
    /// Every store opened is wrapped in a [`RetryStore`] with this policy.
    retry: Option<RetryPolicy>,
    stores: Mutex<HashMap<StoreKey, Arc<dyn ObjectStore>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut schemes: Vec<_> = self.factories.keys().collect();
        schemes.sort();
        f.debug_struct("Registry")
            .field("schemes", &schemes)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Registry {
    /// An empty registry; URI defaults (the Azure account) come from the environment.
    pub fn new() -> Self {
        Self {
            parse: ParseOptions::from_env(),
            ..Self::default()
        }
    }

    /// An empty registry with explicit URI defaults.
    pub fn with_parse_options(parse: ParseOptions) -> Self {
        Self {
            parse,
            ..Self::default()
        }
    }

    /// Register (or replace) the factory for `scheme`.
    pub fn register(&mut self, scheme: Scheme, factory: impl StoreFactory) -> &mut Self {
        self.factories.insert(scheme, Arc::new(factory));
        self
    }

    /// Wrap every store opened from now on in the retry layer with `policy` (None: stores
    /// are used as the backends open them). Facades turn it on; see [`crate::retry`].
    pub fn set_retry_policy(&mut self, policy: Option<RetryPolicy>) -> &mut Self {
        self.retry = policy;
        self
    }

    /// The retry policy stores are opened with, if any.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// The schemes this registry can open, sorted.
    pub fn schemes(&self) -> Vec<Scheme> {
        let mut s: Vec<_> = self.factories.keys().copied().collect();
        s.sort();
        s
    }

    /// Parse `uri` with this registry's defaults.
    pub fn parse(&self, uri: &str) -> Result<ObjectUri> {
        ObjectUri::parse_with(uri, &self.parse)
    }

    /// The store for a parsed URI, opened once and then shared.
    pub async fn store_for(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
        let factory = self.factories.get(&uri.scheme).ok_or_else(|| {
            let have: Vec<String> = self.schemes().iter().map(|s| format!("{s}://")).collect();
            Error::not_supported(format!(
                "this build has no {}:// backend (available: {})",
                uri.scheme,
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ))
            .context(Operation::Open, uri.to_string())
        })?;
        let key = (uri.scheme, uri.account.clone(), uri.container.clone());
        // Held across `open` so two callers racing on a new bucket build one client.
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(&key) {
            return Ok(Arc::clone(s));
        }
        let store = factory
            .open(uri)
            .await
            .map_err(|e| e.context(Operation::Open, uri.store_uri()))?;
        let store: Arc<dyn ObjectStore> = match &self.retry {
            Some(policy) => Arc::new(RetryStore::new(store, policy.clone())),
            None => store,
        };
        stores.insert(key, Arc::clone(&store));
        Ok(store)
    }

    /// Parse `uri` and return its store and key.
    pub async fn resolve(&self, uri: &str) -> Result<(Arc<dyn ObjectStore>, String)> {
        let parsed = self.parse(uri)?;
        let store = self.store_for(&parsed).await?;
        Ok((store, parsed.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::{ErrorKind, ObjectStoreExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingFactory(Arc<AtomicUsize>);

    #[async_trait]
    impl StoreFactory for CountingFactory {
        async fn open(&self, uri: &ObjectUri) -> Result<Arc<dyn ObjectStore>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(MemoryStore::with_base_uri(uri.store_uri())))
        }
    }

    #[tokio::test]
    async fn resolves_and_caches_per_bucket() {
        let opened = Arc::new(AtomicUsize::new(0));
        let mut reg = Registry::with_parse_options(ParseOptions::default());
        reg.register(Scheme::S3, CountingFactory(Arc::clone(&opened)));

        let (a, key) = reg.resolve("s3://one/x/y").await.unwrap();
        assert_eq!(key, "x/y");
        a.put_bytes(&key, "hi".into()).await.unwrap();
        let (b, _) = reg.resolve("s3://one/z").await.unwrap();
        assert_eq!(b.get_bytes("x/y").await.unwrap(), "hi");
        let (c, _) = reg.resolve("s3://two/z").await.unwrap();
        assert!(!c.exists("x/y").await.unwrap());
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(c.uri_of("k"), "s3://two/k");
    }

    #[tokio::test]
    async fn unregistered_scheme_is_not_supported() {
        let reg = Registry::with_parse_options(ParseOptions::default());
        let err = reg.resolve("az://acct/c/k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotSupported);
        assert!(err.to_string().contains("no az:// backend"), "{err}");
        let err = reg.resolve("nope://x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
