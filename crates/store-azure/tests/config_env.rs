//! Configuration from the standard Azure environment. One test in its own binary: it sets
//! process-wide environment variables, which parallel tests would race on.

mod common;

use bytes::Bytes;
use common::{endpoint, unique_prefix, CONTAINER};
use s3dlio_store_azure::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use s3dlio_store_core::{ErrorKind, ObjectStoreExt, Registry};

fn clear_azure_env() {
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_") {
            std::env::remove_var(k);
        }
    }
}

async fn round_trip(uri: &str, what: &str) {
    let mut reg = Registry::new();
    s3dlio_store_azure::register(&mut reg);
    let (s, key) = reg
        .resolve(uri)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    s.put_bytes(&key, Bytes::from(what.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(s.get_bytes(&key).await.unwrap(), what);
}

#[tokio::test]
async fn connection_string_account_key_and_endpoint_variables() {
    common::store().await; // the container exists
    let ep = endpoint();
    // Changing the environment is sound here: this binary runs this one test only.
    // 1. A connection string alone: account, key and endpoint from it.
    clear_azure_env();
    std::env::set_var(
        "AZURE_STORAGE_CONNECTION_STRING",
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint={ep}/;"
        ),
    );
    let p = unique_prefix("env");
    round_trip(
        &format!("az://{DEV_ACCOUNT}/{CONTAINER}/{p}conn"),
        "connection-string",
    )
    .await;

    // 2. Account, key and endpoint variables; the short URI form takes the account from
    //    the environment.
    clear_azure_env();
    std::env::set_var("AZURE_STORAGE_ACCOUNT", DEV_ACCOUNT);
    std::env::set_var("AZURE_STORAGE_ACCOUNT_KEY", DEV_ACCOUNT_KEY);
    std::env::set_var("AZURE_STORAGE_ENDPOINT", &ep);
    round_trip(&format!("az://{CONTAINER}/{p}key"), "account-key").await;

    // 3. A wrong key from the environment is refused, not retried.
    std::env::set_var(
        "AZURE_STORAGE_KEY",
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
    );
    std::env::remove_var("AZURE_STORAGE_ACCOUNT_KEY");
    let mut reg = Registry::new();
    s3dlio_store_azure::register(&mut reg);
    let (s, key) = reg
        .resolve(&format!("az://{CONTAINER}/{p}key"))
        .await
        .unwrap();
    assert_eq!(
        s.get_bytes(&key).await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );

    // 4. No credential and an http:// endpoint: Entra ID is refused with a clear message,
    //    before any request.
    clear_azure_env();
    std::env::set_var("AZURE_STORAGE_ACCOUNT", DEV_ACCOUNT);
    std::env::set_var("AZURE_STORAGE_ENDPOINT", &ep);
    let mut reg = Registry::new();
    s3dlio_store_azure::register(&mut reg);
    let e = reg
        .resolve(&format!("az://{CONTAINER}/{p}x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only sent over HTTPS"), "{e}");
    clear_azure_env();
}
