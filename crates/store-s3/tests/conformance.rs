//! The shared conformance suite against two real S3 servers on loopback.

mod common;

use std::sync::Arc;

use common::{options, store, store_with, unique_prefix, Server};
use s3dlio_store_core::conformance::{Fixture, Quirk};

const SEAWEEDFS_PAGES: &str =
    "SeaweedFS 4.48 orders a directory by its bare name across pages (dir/ before \
     dir-x/); every entry still comes exactly once, and within a page we sort";

mod seaweedfs {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        let store = store(Server::SeaweedFs).await;
        assert!(
            store.lean_path_active(),
            "GETs and PUTs should take the lean path"
        );
        Fixture::new(Arc::new(store), unique_prefix(case))
            .with_quirk(Quirk::DelimitedPagesOutOfOrder, SEAWEEDFS_PAGES)
    }

    s3dlio_store_core::conformance_suite!(fixture);
}

/// The same suite with every request through the SDK (the path of stores built on a caller's own
/// client), so both GET paths stay equivalent.
mod seaweedfs_sdk_gets {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        let opts = s3dlio_store_s3::S3Options {
            lean_requests: false,
            ..options(Server::SeaweedFs)
        };
        let store = store_with(Server::SeaweedFs, opts).await;
        assert!(!store.lean_path_active());
        Fixture::new(Arc::new(store), unique_prefix(case))
            .with_quirk(Quirk::DelimitedPagesOutOfOrder, SEAWEEDFS_PAGES)
    }

    s3dlio_store_core::conformance_suite!(fixture);
}

mod moto {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        Fixture::new(Arc::new(store(Server::Moto).await), unique_prefix(case)).with_quirk(
            Quirk::CreateOnlyRaces,
            "moto 5 checks If-None-Match before a write but not atomically with it: two racing \
             create-only PUTs can both get 200 (AWS, SeaweedFS and file:// give one winner)",
        )
    }

    s3dlio_store_core::conformance_suite!(fixture);
}
