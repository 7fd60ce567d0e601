//! The shared conformance suite against two real S3 servers on loopback.

mod common;

use std::sync::Arc;

use common::{store, unique_prefix, Server};
use s3dlio_store_core::conformance::{Fixture, Quirk};

mod seaweedfs {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        Fixture::new(
            Arc::new(store(Server::SeaweedFs).await),
            unique_prefix(case),
        )
        .with_quirk(
            Quirk::DelimitedPagesOutOfOrder,
            "SeaweedFS 4.48 orders a directory by its bare name across pages (dir/ before \
             dir-x/); every entry still comes exactly once, and within a page we sort",
        )
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
