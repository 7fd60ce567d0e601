//! The process-wide op-log (the original API's init_op_log / finalize_op_log) turned on
//! and off twice in one process: two separate, complete files.

use bytes::Bytes;
use s3dlio_metrics::{
    finalize_op_log, init_op_log, is_op_log_active, read_op_log, GlobalOpLog, ObservedStore, OpLog,
};
use s3dlio_store_core::{MemoryStore, ObjectStore, ObjectStoreExt};

#[tokio::test]
async fn global_op_log_on_and_off_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObservedStore::new(MemoryStore::new(), GlobalOpLog);
    // Off: nothing is recorded anywhere.
    assert!(!is_op_log_active());
    store
        .put_bytes("before", Bytes::from_static(b"0"))
        .await
        .unwrap();

    let first = dir.path().join("one.tsv.zst");
    init_op_log(&first).unwrap();
    assert!(is_op_log_active());
    assert!(init_op_log(dir.path().join("x")).is_err(), "one at a time");
    store
        .put_bytes("a", Bytes::from_static(b"1"))
        .await
        .unwrap();
    store.get_bytes("a").await.unwrap();
    let s1 = finalize_op_log().unwrap().unwrap();
    assert!(!is_op_log_active());
    assert_eq!(s1.rows, 2);
    store
        .put_bytes("between", Bytes::from_static(b"0"))
        .await
        .unwrap();
    assert!(finalize_op_log().unwrap().is_none());

    let second = dir.path().join("two.tsv.zst");
    init_op_log(&second).unwrap();
    store.head("a").await.unwrap();
    store.delete("a").await.unwrap();
    store.delete("between").await.unwrap();
    let s2 = finalize_op_log().unwrap().unwrap();
    assert_eq!(s2.rows, 3);

    let ops = |p| -> Vec<(String, String)> {
        read_op_log(p)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r.op, r.file))
            .collect()
    };
    let v = |x: &[(&str, &str)]| -> Vec<(String, String)> {
        x.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(ops(&first), v(&[("PUT", "mem:///a"), ("GET", "mem:///a")]));
    assert_eq!(
        ops(&second),
        v(&[
            ("HEAD", "mem:///a"),
            ("DELETE", "mem:///a"),
            ("DELETE", "mem:///between")
        ])
    );
}

#[tokio::test]
async fn op_log_instances_start_and_stop_more_than_once() {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemoryStore::new();
    for round in 0..2 {
        let path = dir.path().join(format!("round{round}.tsv.zst"));
        let log = OpLog::create(&path).unwrap();
        let store = log.wrap(mem.clone());
        for i in 0..=round {
            store
                .put_bytes(&format!("r{round}/{i}"), Bytes::new())
                .await
                .unwrap();
        }
        let stats = log.finish().unwrap();
        assert_eq!(stats.rows, round + 1);
        // The store outlives its log: later operations are counted as dropped, not written.
        store.put_bytes("late", Bytes::new()).await.unwrap();
        let rows = read_op_log(&path).unwrap().rows;
        assert_eq!(rows.len() as u64, round + 1);
        assert!(rows
            .iter()
            .all(|r| r.file.starts_with(&format!("mem:///r{round}/"))));
    }
}
