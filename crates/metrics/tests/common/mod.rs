//! Helpers shared by the metrics crate's tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use s3dlio_metrics::{Metrics, MetricsStore};
use s3dlio_store_core::{FaultStore, MemoryStore, ObjectStoreExt};

/// Run `work(t)` on `n` OS threads at once, each with its own single-threaded runtime.
pub fn on_threads<F, Fut>(n: usize, work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()>,
{
    let work = Arc::new(work);
    let threads: Vec<_> = (0..n)
        .map(|t| {
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                rt.block_on(work(t));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// `faulty` behind a metrics layer, holding `k` = `abc`.
pub async fn metered(
    faulty: FaultStore<MemoryStore>,
) -> (Arc<Metrics>, MetricsStore<FaultStore<MemoryStore>>) {
    let metrics = Arc::new(Metrics::new());
    let store = MetricsStore::new(faulty, Arc::clone(&metrics));
    store
        .put_bytes("k", Bytes::from_static(b"abc"))
        .await
        .unwrap();
    (metrics, store)
}
