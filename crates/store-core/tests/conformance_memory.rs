//! The conformance suite against the in-memory store, and proof that it catches a broken
//! backend.

use std::sync::Arc;

use async_trait::async_trait;
use s3dlio_store_core::conformance::{run_all, Fixture};
use s3dlio_store_core::{
    GetOptions, GetResult, ListOptions, ListPage, MemoryStore, ObjectMeta, ObjectStore,
    ObjectWriter, PutOptions, PutResult, Result,
};

async fn memory(case: &'static str) -> Fixture {
    Fixture::new(
        Arc::new(MemoryStore::with_base_uri("mem://conformance/")),
        format!("suite/{case}/"),
    )
}

s3dlio_store_core::conformance_suite!(memory);

/// A backend that gets one thing wrong: it returns each listing page in reverse order.
#[derive(Debug)]
struct ReversedListing(MemoryStore);

#[async_trait]
impl ObjectStore for ReversedListing {
    fn base_uri(&self) -> &str {
        self.0.base_uri()
    }
    fn capabilities(&self) -> s3dlio_store_core::Capabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        self.0.get(key, opts).await
    }
    async fn put(&self, key: &str, data: bytes::Bytes, opts: PutOptions) -> Result<PutResult> {
        self.0.put(key, data, opts).await
    }
    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.0.writer(key, opts).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.0.head(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let mut page = self.0.list_page(prefix, opts, token).await?;
        page.items.reverse();
        Ok(page)
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
}

#[test]
fn suite_fails_a_backend_that_reorders_listings() {
    let report = run_all(|case| async move {
        Fixture::new(
            Arc::new(ReversedListing(MemoryStore::new())),
            format!("broken/{case}/"),
        )
    });
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| *n).collect();
    assert!(
        failed.contains(&"list_order_and_paging"),
        "suite passed a reordered listing: {report:?}"
    );
    assert!(failed.contains(&"list_delimiter"), "{report:?}");
    // Cases that do not depend on listing order still pass: the suite pins the fault.
    assert!(report.passed.contains(&"round_trip_sizes"), "{report:?}");
    assert!(report.passed.contains(&"ranges"), "{report:?}");
}

/// A backend that silently truncates large bodies fails the round-trip case.
#[test]
fn suite_fails_a_backend_that_truncates_bodies() {
    use s3dlio_store_core::{Fault, FaultStore, Operation};
    let report = run_all(|case| async move {
        let store = FaultStore::new(MemoryStore::new()).on_calls(
            Some(Operation::Get),
            1,
            u64::MAX,
            Fault::TruncateBody(4 * 1024 * 1024),
        );
        Fixture::new(Arc::new(store), format!("trunc/{case}/"))
    });
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| *n).collect();
    assert!(failed.contains(&"round_trip_sizes"), "{report:?}");
}

/// The retry layer keeps the guarantees of the store below it, even while that store fails
/// every 4th call of each kind and cuts every 4th body midway.
#[test]
fn suite_passes_through_the_retry_layer_under_faults() {
    use s3dlio_store_core::{ErrorKind, Fault, FaultStore, Operation, RetryPolicy, RetryStore};
    let report = run_all(|case| async move {
        let faulty = FaultStore::new(MemoryStore::with_base_uri("mem://conformance/"));
        for (op, fault) in [
            (Operation::Get, Fault::ResetBody(3)),
            // Throttled writes were not performed: safe to retry even when conditional.
            (Operation::Put, Fault::Fail(ErrorKind::RateLimited)),
            (Operation::Head, Fault::Fail(ErrorKind::Timeout)),
            (Operation::List, Fault::Fail(ErrorKind::Interrupted)),
            (Operation::Delete, Fault::Fail(ErrorKind::Interrupted)),
            (Operation::Write, Fault::Fail(ErrorKind::RateLimited)),
        ] {
            faulty.add_periodic(Some(op), 4, fault);
        }
        let policy = RetryPolicy {
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        Fixture::new(
            Arc::new(RetryStore::new(Arc::new(faulty), policy)),
            format!("retry/{case}/"),
        )
    });
    // One case may fail, and only in one way: a reader whose body was cut while a writer
    // replaced the object cannot resume (the resume is pinned to the version it began
    // with), so it fails with "precondition failed" instead of mixing two versions.
    for (case, msg) in &report.failed {
        assert!(
            *case == "concurrent_writers" && msg.contains("precondition failed"),
            "{case}: {msg}"
        );
    }
    assert!(report.passed.len() >= 14, "{report:?}");
}
