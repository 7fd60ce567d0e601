//! A run of known operations produces exactly those op-log rows, read back by the reader.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use s3dlio_metrics::{read_op_log, OpLog, OpLogConfig, OpLogRow, HEADER};
use s3dlio_store_core::{
    ByteRange, ErrorKind, Fault, FaultStore, GetOptions, ListOptions, MemoryStore, ObjectStore,
    ObjectStoreExt, Operation, PutOptions,
};
use s3dlio_store_fs::FsStore;

fn config() -> OpLogConfig {
    OpLogConfig {
        client_id: "test-client".into(),
        ..OpLogConfig::default()
    }
}

/// Every row's timestamps agree with each other and with its duration.
fn check_times(r: &OpLogRow) {
    assert_eq!(
        r.end.nanos_since(r.start),
        i128::from(r.duration_ns),
        "end - start == duration_ns: {r:?}"
    );
    if let Some(fb) = r.first_byte {
        assert!(
            r.start <= fb && fb <= r.end,
            "start <= first_byte <= end: {r:?}"
        );
    }
}

/// (op, n_objects, bytes, file, failed, has first byte) of each row.
fn shape(rows: &[OpLogRow]) -> Vec<(String, u64, u64, String, bool, bool)> {
    rows.iter()
        .map(|r| {
            (
                r.op.clone(),
                r.n_objects,
                r.bytes,
                r.file.clone(),
                r.is_error(),
                r.first_byte.is_some(),
            )
        })
        .collect()
}

fn row(
    op: &str,
    n: u64,
    bytes: u64,
    file: &str,
    failed: bool,
    fb: bool,
) -> (String, u64, u64, String, bool, bool) {
    (op.into(), n, bytes, file.into(), failed, fb)
}

#[tokio::test]
async fn known_operations_give_exactly_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.tsv.zst");
    let log = OpLog::with_config(&path, config()).unwrap();
    let store = log.wrap(MemoryStore::with_base_uri("s3://bucket/"));

    store
        .put_bytes("a/one", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(store.get_bytes("a/one").await.unwrap(), "hello");
    assert_eq!(
        store
            .get_range("a/one", ByteRange::from(1..3))
            .await
            .unwrap(),
        "el"
    );
    assert_eq!(store.head("a/one").await.unwrap().size, 5);
    let mut w = store.writer("a/two", PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    w.write(Bytes::from_static(b"defg")).await.unwrap();
    w.complete().await.unwrap();
    assert_eq!(store.list_objects("a/").await.unwrap().len(), 2);
    store
        .copy("a/one", "a/three", Default::default())
        .await
        .unwrap();
    let e = store.get_bytes("missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    store.delete("a/one").await.unwrap();
    store
        .delete_many(vec!["a/two".into(), "a/three".into()])
        .await
        .unwrap();
    drop(store);
    let stats = log.finish().unwrap();
    assert_eq!((stats.rows, stats.dropped), (10, 0));

    // The file is zstd (warp's format), header first.
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let text = String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap();
    assert_eq!(text.lines().next().unwrap(), HEADER);

    let f = read_op_log(&path).unwrap();
    let u = |k: &str| format!("s3://bucket/{k}");
    assert_eq!(
        shape(&f.rows),
        vec![
            row("PUT", 1, 5, &u("a/one"), false, false),
            row("GET", 1, 5, &u("a/one"), false, true),
            row("GET", 1, 2, &u("a/one"), false, true),
            row("HEAD", 1, 0, &u("a/one"), false, false),
            row("PUT", 1, 7, &u("a/two"), false, false),
            row("LIST", 2, 0, &u("a/"), false, false),
            row("COPY", 1, 5, &u("a/one"), false, false),
            row("GET", 1, 0, &u("missing"), true, false),
            row("DELETE", 1, 0, &u("a/one"), false, false),
            row("DELETE", 2, 0, &u("a/two"), false, false),
        ]
    );
    for (i, r) in f.rows.iter().enumerate() {
        assert_eq!(r.idx, i as u64);
        assert_eq!(r.client_id, "test-client");
        assert_eq!(r.endpoint, "s3://bucket/");
        assert!(r.thread >= 1);
        check_times(r);
    }
    assert!(f.rows[7].error.contains("not found"), "{}", f.rows[7].error);
    // Rows are in the order the operations ended, and each starts after the last ended
    // (they ran one after another).
    for w in f.rows.windows(2) {
        assert!(w[0].end <= w[1].start, "{:?} then {:?}", w[0], w[1]);
    }
    assert_eq!(
        f.comments,
        vec![
            "s3dlio op-log: client_id=test-client clock_offset_ns=0 rows=10 dropped=0 lossy=false"
        ]
    );
}

#[tokio::test]
async fn file_bodies_are_timed_until_read_and_first_byte_is_real() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let big = vec![7u8; 3 << 20];
    std::fs::write(root.join("big"), &big).unwrap();
    let path = dir.path().join("ops.tsv.zst");
    let log = OpLog::with_config(&path, config()).unwrap();
    let store = log.wrap(FsStore::new(&root).unwrap());

    // Deferred body, read whole 30 ms after get() returned: the GET lasts until then.
    let got = store.get("big", GetOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(got.bytes().await.unwrap().len(), big.len());
    // Streamed: the first chunk comes at once, the rest after a 30 ms pause.
    let mut s = store
        .get("big", GetOptions::default())
        .await
        .unwrap()
        .into_stream();
    let first = s.next().await.unwrap().unwrap().len();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut n = first;
    while let Some(c) = s.next().await {
        n += c.unwrap().len();
    }
    assert_eq!(n, big.len());
    // Dropped half-way: logged as abandoned with the bytes delivered.
    let mut s = store
        .get("big", GetOptions::default())
        .await
        .unwrap()
        .into_stream();
    let part = s.next().await.unwrap().unwrap().len();
    drop(s);
    drop(store);
    log.finish().unwrap();

    let rows = read_op_log(&path).unwrap().rows;
    assert_eq!(rows.len(), 3);
    rows.iter().for_each(check_times);
    let ms30 = 30_000_000;
    assert!(rows
        .iter()
        .all(|r| r.op == "GET" && r.file.ends_with("/data/big")));
    assert!(rows[0].duration_ns >= ms30, "{:?}", rows[0]);
    assert_eq!(rows[0].bytes, big.len() as u64);
    assert!(!rows[0].is_error());
    assert!(rows[1].duration_ns >= ms30);
    let ttfb = rows[1].ttfb().unwrap();
    assert!(
        ttfb < rows[1].duration() - Duration::from_millis(29),
        "first byte before the pause: {ttfb:?} of {:?}",
        rows[1].duration()
    );
    assert_eq!(rows[2].bytes, part as u64);
    assert!(
        rows[2].error.contains("body dropped before its end"),
        "{}",
        rows[2].error
    );
}

#[tokio::test]
async fn failures_and_clock_offset_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.tsv");
    let cfg = OpLogConfig {
        compress: false,
        clock_offset_ns: -3_600_000_000_000,
        ..config()
    };
    let log = OpLog::with_config(&path, cfg).unwrap();
    let faulty = FaultStore::new(MemoryStore::new()).on_nth(
        Operation::Put,
        1,
        Fault::Fail(ErrorKind::RateLimited),
    );
    let store = log.wrap(faulty);
    let before = s3dlio_metrics::Timestamp::now();
    let e = store
        .put_bytes("k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    store
        .list_page("", &ListOptions::recursive(), None)
        .await
        .unwrap();
    drop(store);
    log.finish().unwrap();
    // Plain TSV reads back the same way.
    let rows = read_op_log(&path).unwrap().rows;
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].op.as_str(), rows[0].bytes), ("PUT", 1));
    assert!(rows[0].error.contains("rate limited"), "{}", rows[0].error);
    assert_eq!((rows[1].op.as_str(), rows[1].n_objects), ("LIST", 0));
    // An hour earlier than the local clock.
    let shift = before.nanos_since(rows[0].start);
    assert!(
        shift > 3_599_000_000_000 && shift <= 3_600_000_000_000,
        "{shift}"
    );
}
