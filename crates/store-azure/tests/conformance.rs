//! The shared conformance suite against Azurite on loopback.

mod common;

use std::sync::Arc;

use common::{store, unique_prefix};
use s3dlio_store_core::conformance::Fixture;

async fn fixture(case: &'static str) -> Fixture {
    Fixture::new(Arc::new(store().await), unique_prefix(case))
}

s3dlio_store_core::conformance_suite!(fixture);
