//! The shared conformance suite on a directory of a real disk (a file system that accepts
//! O_DIRECT), against a store rooted there and one rooted at `/` (as the registry opens
//! `direct://` URIs).

mod common;

use std::sync::Arc;

use s3dlio_directio::{DirectOptions, DirectStore, Fallback};
use s3dlio_store_core::conformance::Fixture;

/// Small I/Os so that objects of the suite's sizes take several, in flight together.
fn options() -> DirectOptions {
    DirectOptions {
        io_size: 64 << 10,
        queue_depth: 4,
        ..DirectOptions::default()
    }
}

async fn fixture(case: &'static str) -> Fixture {
    match common::tempdir(case) {
        Some((dir, _)) => {
            let store = DirectStore::with_options(dir.path(), options()).expect("store");
            Fixture::new(Arc::new(store), format!("{case}/")).with_guard(dir)
        }
        None => {
            // No O_DIRECT file system here at all: still check the semantics, through the
            // buffered fallback, and say so.
            eprintln!("{case}: no O_DIRECT file system; running through the buffered fallback");
            let dir = tempfile::tempdir().expect("temporary directory");
            let opts = DirectOptions {
                fallback: Fallback::Buffered,
                ..options()
            };
            let store = DirectStore::with_options(dir.path(), opts).expect("store");
            Fixture::new(Arc::new(store), format!("{case}/")).with_guard(dir)
        }
    }
}

s3dlio_store_core::conformance_suite!(fixture);

mod rooted_at_slash {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        let Some((dir, _)) = common::tempdir(case) else {
            // No O_DIRECT file system: the suite above already ran through the fallback.
            let dir = tempfile::tempdir().expect("temporary directory");
            let opts = DirectOptions {
                fallback: Fallback::Buffered,
                ..options()
            };
            let store = DirectStore::with_options(dir.path(), opts).expect("store");
            return Fixture::new(Arc::new(store), format!("{case}/")).with_guard(dir);
        };
        let store = DirectStore::with_options("/", options()).expect("store");
        let path = dir.path().to_str().expect("UTF-8 temporary directory");
        let prefix = format!("{}/{case}/", path.trim_start_matches('/'));
        Fixture::new(Arc::new(store), prefix).with_guard(dir)
    }

    s3dlio_store_core::conformance_suite!(fixture);
}
