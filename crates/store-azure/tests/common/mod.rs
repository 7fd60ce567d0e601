//! The emulator: `cargo xtask test` starts Azurite on 127.0.0.1 and passes its endpoint in
//! `S3DLIO_TEST_AZURITE`, with the well-known development account and key. Without it these
//! tests fail loudly rather than skip.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicU64, Ordering};

use s3dlio_store_azure::{AzureCredential, AzureOptions, AzureStore, DEV_ACCOUNT, DEV_ACCOUNT_KEY};

pub const CONTAINER: &str = "s3dlio-test";

/// Azurite's blob endpoint, path-style: `http://127.0.0.1:PORT/devstoreaccount1`.
pub fn endpoint() -> String {
    std::env::var("S3DLIO_TEST_AZURITE").unwrap_or_else(|_| {
        panic!(
            "S3DLIO_TEST_AZURITE is not set: run the tests with `cargo xtask test`, or start \
             the servers with `cargo xtask servers` and export what it prints"
        )
    })
}

/// Options for the emulator's account with the development key, given explicitly.
pub fn options() -> AzureOptions {
    AzureOptions {
        account: Some(DEV_ACCOUNT.into()),
        endpoint: Some(endpoint()),
        credential: Some(AzureCredential::AccountKey(DEV_ACCOUNT_KEY.into())),
        ..AzureOptions::default()
    }
}

/// A store on `container` (created if missing).
pub async fn store_in(container: &str, opts: AzureOptions) -> AzureStore {
    let store = AzureStore::new(None, container, opts).expect("Azure store");
    match store.create_container().await {
        Ok(()) => {}
        Err(e) if e.kind() == s3dlio_store_core::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("creating the test container: {e}"),
    }
    store
}

pub async fn store_with(opts: AzureOptions) -> AzureStore {
    store_in(CONTAINER, opts).await
}

pub async fn store() -> AzureStore {
    store_with(options()).await
}

/// A key prefix no other test or run uses.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{name}/{t:x}-{}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
