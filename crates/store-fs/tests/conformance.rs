//! The shared conformance suite, against a store rooted at a temporary directory and
//! against one rooted at `/` (as the registry opens `file://` URIs) using the temporary
//! directory's path as the key prefix.

use std::sync::Arc;

use s3dlio_store_core::conformance::Fixture;
use s3dlio_store_fs::FsStore;

async fn fixture(case: &'static str) -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = FsStore::new(dir.path()).expect("store");
    Fixture::new(Arc::new(store), format!("{case}/")).with_guard(dir)
}

s3dlio_store_core::conformance_suite!(fixture);

mod rooted_at_slash {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = FsStore::new("/").expect("store");
        let path = dir.path().to_str().expect("UTF-8 temporary directory");
        let prefix = format!("{}/{case}/", path.trim_start_matches('/'));
        Fixture::new(Arc::new(store), prefix).with_guard(dir)
    }

    s3dlio_store_core::conformance_suite!(fixture);
}
