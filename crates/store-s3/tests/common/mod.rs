//! Test servers: `cargo xtask test` starts SeaweedFS and moto on 127.0.0.1 and passes their
//! addresses in the environment. Without them these tests fail loudly rather than skip.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicU64, Ordering};

use s3dlio_store_s3::{S3Options, S3Store, StaticCredentials};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    SeaweedFs,
    Moto,
}

impl Server {
    pub fn env_var(self) -> &'static str {
        match self {
            Server::SeaweedFs => "S3DLIO_TEST_S3_SEAWEEDFS",
            Server::Moto => "S3DLIO_TEST_S3_MOTO",
        }
    }

    pub fn endpoint(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| {
            panic!(
                "{} is not set: run the tests with `cargo xtask test`, or start the servers \
                 with `cargo xtask servers` and export what it prints",
                self.env_var()
            )
        })
    }

    pub fn bucket(self) -> &'static str {
        match self {
            Server::SeaweedFs => "s3dlio-test",
            Server::Moto => "s3dlio-test",
        }
    }
}

pub fn keys() -> (String, String) {
    let get = |v: &str| {
        std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set: run `cargo xtask test`"))
    };
    (
        get("S3DLIO_TEST_S3_ACCESS_KEY"),
        get("S3DLIO_TEST_S3_SECRET_KEY"),
    )
}

pub fn options(server: Server) -> S3Options {
    let (access_key_id, secret_access_key) = keys();
    S3Options {
        endpoint_url: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        credentials: Some(StaticCredentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        }),
        // moto answers concurrent PUTs to one key with an occasional 500 (a race in its
        // in-memory store: "I/O operation on closed file"); a few more retries absorb it.
        max_attempts: if server == Server::Moto { 8 } else { 3 },
        ..S3Options::default()
    }
}

/// A store on the server's test bucket (created if missing), with a fresh client: each test
/// runs on its own runtime, and a client's connections belong to the runtime that made them.
pub async fn store_with(server: Server, opts: S3Options) -> S3Store {
    let store = S3Store::new(server.bucket(), opts)
        .await
        .expect("S3 client");
    match store.create_bucket().await {
        Ok(()) => {}
        Err(e) if e.kind() == s3dlio_store_core::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("creating the test bucket on {server:?}: {e}"),
    }
    store
}

pub async fn store(server: Server) -> S3Store {
    store_with(server, options(server)).await
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

/// Multipart uploads still open for `key`, as the native client sees them.
pub async fn open_uploads(store: &S3Store, key: &str) -> usize {
    let out = store
        .client()
        .list_multipart_uploads()
        .bucket(store.bucket())
        .prefix(key)
        .send()
        .await
        .expect("ListMultipartUploads");
    out.uploads()
        .iter()
        .filter(|u| u.key() == Some(key))
        .count()
}
