//! TFRecord on S3 (SeaweedFS started by `cargo xtask test`): indexing with one streaming
//! GET, through a `s3://` URI, and records fetched with coalesced ranged GETs, counted by
//! the metrics layer.

#[path = "../../store-s3/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::Server;
use s3dlio_metrics::{Metrics, MetricsStore, OpKind};
use s3dlio_store_core::{ObjectStore, ObjectStoreExt, Registry};
use s3dlio_tfrecord_index::{
    epoch_order, index_object, index_uri, FetchOptions, IndexOptions, Indexer, RecordReader,
    TfRecordWriter,
};

fn dataset() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut records = Vec::new();
    for i in 0..200usize {
        let n = if i == 100 {
            17 << 20
        } else {
            (i * 997) % 20_000
        };
        records.push((0..n).map(|j| (j ^ i) as u8).collect::<Vec<u8>>());
    }
    let mut w = TfRecordWriter::new(Vec::new());
    for r in &records {
        w.write_record(r).unwrap();
    }
    (w.into_inner(), records)
}

fn gets(m: &Metrics) -> u64 {
    m.snapshot()
        .ops
        .iter()
        .filter(|o| o.op == OpKind::Get)
        .map(|o| o.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn index_and_fetch_on_seaweedfs_with_coalesced_gets() {
    let s3 = common::store(Server::SeaweedFs).await;
    let key = format!("{}train.tfrecord", common::unique_prefix("tfrecord"));
    let (file, records) = dataset();
    s3.put_bytes(&key, Bytes::from(file.clone())).await.unwrap();
    let mut ix = Indexer::new(true);
    ix.feed(&file).unwrap();
    let expected = ix.finish().unwrap();

    let metrics = Arc::new(Metrics::new());
    let store: Arc<dyn ObjectStore> = Arc::new(MetricsStore::new(s3, Arc::clone(&metrics)));
    // One streaming GET indexes the object, every CRC checked.
    let index = index_object(store.as_ref(), &key, IndexOptions::verify())
        .await
        .unwrap();
    assert_eq!(index, expected);
    assert_eq!(gets(&metrics), 1);

    // The same through an s3:// URI and a registry.
    let mut registry = Registry::new();
    s3dlio_store_s3::register_with(&mut registry, common::options(Server::SeaweedFs));
    let uri = format!("s3://{}/{key}", Server::SeaweedFs.bucket());
    assert_eq!(
        index_uri(&registry, &uri, IndexOptions::default())
            .await
            .unwrap(),
        expected
    );

    let reader = RecordReader::new(Arc::clone(&store), &key, index.clone());
    // 50 neighbouring records: one GET.
    let before = gets(&metrics);
    let ids: Vec<usize> = (10..60).collect();
    let got = reader.records(&ids).await.unwrap();
    assert_eq!(gets(&metrics) - before, 1);
    for (g, &i) in got.iter().zip(&ids) {
        assert_eq!(g[..], records[i][..]);
    }
    // Without coalescing: one GET per record.
    let single = reader.clone().with_options(FetchOptions {
        max_request: 0,
        ..FetchOptions::default()
    });
    let before = gets(&metrics);
    assert_eq!(single.records(&ids).await.unwrap(), got);
    assert_eq!(gets(&metrics) - before, 50);

    // A shuffled shard: half the records of rank 0 of 2, in batches of 25; coalescing
    // (default 256 KiB gap) needs far fewer GETs than records, and the data is right.
    let order = epoch_order(reader.len(), Some(7), 0, 2).unwrap();
    assert_eq!(order.len(), 100);
    let before = gets(&metrics);
    let mut n = 0;
    for batch in order.chunks(25) {
        let got = reader.records(batch).await.unwrap();
        for (g, &i) in got.iter().zip(batch) {
            assert_eq!(g[..], records[i][..], "record {i}");
            n += 1;
        }
    }
    let used = gets(&metrics) - before;
    assert_eq!(n, 100);
    assert!(used < 40, "{used} GETs for 100 records in 4 batches");
    let planned: usize = order
        .chunks(25)
        .map(|b| reader.plan(b).unwrap().len())
        .sum();
    assert_eq!(used, planned as u64);

    // The 17 MiB record alone.
    assert_eq!(reader.record(100).await.unwrap()[..], records[100][..]);
    store.delete(&key).await.unwrap();
}
