//! The metrics layer: percentiles of injected latencies, time to first byte versus total,
//! errors by kind, exact counts under 16 threads, and the three exports.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use futures::StreamExt;
use s3dlio_metrics::{Metrics, MetricsStore, OpKind};
use s3dlio_store_core::{
    ErrorKind, Fault, FaultStore, GetOptions, MemoryStore, ObjectStore, ObjectStoreExt, Operation,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn percentiles_match_injected_latencies() {
    // 90 GETs delayed 5 ms, then 10 delayed 50 ms.
    let faulty = FaultStore::new(MemoryStore::new())
        .on_calls(Some(Operation::Get), 1, 90, Fault::Delay(5 * MS))
        .on_calls(Some(Operation::Get), 91, 10, Fault::Delay(50 * MS));
    let metrics = Arc::new(Metrics::new());
    let store = MetricsStore::new(faulty, Arc::clone(&metrics));
    store
        .put_bytes("k", Bytes::from(vec![1u8; 1000]))
        .await
        .unwrap();
    // All at once, so the test takes about 50 ms; each GET still waits its own delay.
    let reads = join_all((0..100).map(|_| store.get_bytes("k"))).await;
    assert!(reads
        .iter()
        .all(|r| r.as_ref().is_ok_and(|b| b.len() == 1000)));

    let snap = metrics.snapshot();
    let get = snap.get("mem", OpKind::Get).unwrap();
    assert_eq!(
        (get.count, get.bytes, get.errors_total()),
        (100, 100_000, 0)
    );
    let l = get.latency();
    // Never below the injected delay (histogram values are within 0.1%); the upper bounds
    // leave room for a busy machine without letting the two groups mix.
    let within = |d: Duration, lo: Duration, hi: Duration| {
        assert!(
            d >= lo.mul_f64(0.999) && d < hi,
            "{d:?} not in {lo:?}..{hi:?}: {l:?}"
        );
    };
    within(l.p50, 5 * MS, 49 * MS);
    within(l.p90, 5 * MS, 49 * MS);
    within(l.p99, 50 * MS, 250 * MS);
    within(l.p999, 50 * MS, 250 * MS);
    within(l.max, 50 * MS, 250 * MS);
    assert!(l.min >= (5 * MS).mul_f64(0.999));
    // MemoryStore bodies are in memory: the first byte comes with the response.
    let t = get.ttfb().unwrap();
    assert_eq!(t.count, 100);
    within(t.p50, 5 * MS, 49 * MS);
    within(t.p99, 50 * MS, 250 * MS);
    let mean = get.mean();
    within(mean, (9 * MS).mul_f64(0.999), 40 * MS); // (90*5 + 10*50) / 100 = 9.5 ms
    let put = snap.get("mem", OpKind::Put).unwrap();
    assert_eq!((put.count, put.bytes), (1, 1000));
    assert!(put.ttfb().is_none());
}

#[tokio::test]
async fn ttfb_and_total_differ_for_a_slowly_read_body() {
    // A body passed through FaultStore's cutter (with no limit) is a stream.
    let faulty = FaultStore::new(MemoryStore::new()).on_calls(
        Some(Operation::Get),
        1,
        u64::MAX,
        Fault::TruncateBody(u64::MAX),
    );
    let (metrics, store) = common::metered(faulty).await;
    let mut s = store
        .get("k", GetOptions::default())
        .await
        .unwrap()
        .into_stream();
    assert_eq!(s.next().await.unwrap().unwrap(), "abc");
    tokio::time::sleep(60 * MS).await;
    assert!(s.next().await.is_none());
    let snap = metrics.snapshot();
    let get = snap.get("mem", OpKind::Get).unwrap();
    let (total, ttfb) = (get.latency(), get.ttfb().unwrap());
    // The first byte came before the pause, the end after it.
    assert!(total.max >= 60 * MS, "{total:?}");
    assert!(ttfb.max < 50 * MS, "{ttfb:?}");
}

#[tokio::test]
async fn errors_are_counted_by_kind() {
    let faulty = FaultStore::new(MemoryStore::new()).on_nth(
        Operation::Head,
        2,
        Fault::Fail(ErrorKind::Timeout),
    );
    let (metrics, store) = common::metered(faulty).await;
    store.head("k").await.unwrap();
    store.head("k").await.unwrap_err();
    store.head("nope").await.unwrap_err();
    // A body dropped unread is abandoned.
    drop(
        store
            .get("k", GetOptions::default())
            .await
            .unwrap()
            .into_stream(),
    );
    let snap = metrics.snapshot();
    let head = snap.get("mem", OpKind::Head).unwrap();
    assert_eq!(head.count, 3);
    assert_eq!(head.errors.get("timeout"), Some(&1));
    assert_eq!(head.errors.get("not_found"), Some(&1));
    // MemoryStore bodies are whole: dropping one loses nothing.
    assert_eq!(snap.get("mem", OpKind::Get).unwrap().errors_total(), 0);
}

#[test]
fn sixteen_threads_count_exactly() {
    let metrics = Arc::new(Metrics::with_shards(4));
    let store: Arc<dyn ObjectStore> =
        Arc::new(MetricsStore::new(MemoryStore::new(), Arc::clone(&metrics)));
    let s = Arc::clone(&store);
    common::on_threads(16, move |t| {
        let store = Arc::clone(&s);
        async move {
            for i in 0..300 {
                let key = format!("{t}/{i}");
                store
                    .put_bytes(&key, Bytes::from(vec![0u8; 10]))
                    .await
                    .unwrap();
                store.get_bytes(&key).await.unwrap();
            }
        }
    });
    let snap = metrics.snapshot();
    for op in [OpKind::Put, OpKind::Get] {
        let m = snap.get("mem", op).unwrap();
        assert_eq!((m.count, m.bytes, m.latency.len()), (4800, 48_000, 4800));
    }
}

#[tokio::test]
async fn writers_and_exports() {
    let metrics = Arc::new(Metrics::new());
    let store = metrics.wrap(MemoryStore::with_base_uri("s3://b/"));
    let mut w = store.writer("obj", Default::default()).await.unwrap();
    for _ in 0..4 {
        w.write(Bytes::from(vec![0u8; 256])).await.unwrap();
    }
    w.complete().await.unwrap();
    store.get_bytes("obj").await.unwrap();
    let snap = metrics.snapshot();
    let write = snap.get("s3", OpKind::Write).unwrap();
    assert_eq!((write.count, write.bytes), (4, 1024));
    assert_eq!(snap.get("s3", OpKind::Put).unwrap().bytes, 1024);

    let table = snap.to_table();
    assert!(table.lines().next().unwrap().contains("p99.99"), "{table}");
    assert!(table.contains("GET ttfb"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("s3") && l.contains("WRITE")),
        "{table}"
    );

    let json = snap.to_json();
    let ops = json["ops"].as_array().unwrap();
    let get = ops.iter().find(|o| o["op"] == "GET").unwrap();
    assert_eq!(get["backend"], "s3");
    assert_eq!(get["count"], 1);
    assert_eq!(get["bytes"], 1024);
    assert!(get["latency_ns"]["p99_99"].as_u64().is_some());
    assert!(get["ttfb_ns"]["p50"].as_u64().is_some());

    let prom = snap.to_prometheus();
    assert!(
        prom.contains("# TYPE s3dlio_operations_total counter"),
        "{prom}"
    );
    assert!(
        prom.contains("s3dlio_operations_total{backend=\"s3\",op=\"WRITE\"} 4"),
        "{prom}"
    );
    assert!(
        prom.contains("s3dlio_bytes_total{backend=\"s3\",op=\"GET\"} 1024"),
        "{prom}"
    );
    assert!(prom.contains(
        "s3dlio_operation_duration_seconds{backend=\"s3\",op=\"GET\",quantile=\"0.99\"}"
    ));
    assert!(prom.contains("s3dlio_ttfb_seconds_count{backend=\"s3\",op=\"GET\"} 1"));
    // Every sample line is `name{labels} number`.
    for l in prom.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = l.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
    metrics.reset();
    assert!(metrics.snapshot().ops.is_empty());
}
