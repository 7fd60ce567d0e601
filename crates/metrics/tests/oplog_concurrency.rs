//! Under 16 concurrent writers the op-log loses nothing, even with a channel of one row
//! (every writer waits for the writer thread); in lossy mode it counts what it drops.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use s3dlio_metrics::{read_op_log, OpLog, OpLogConfig};
use s3dlio_store_core::{MemoryStore, ObjectStore, ObjectStoreExt};

const WRITERS: usize = 16;
const OPS: usize = 500;

/// 16 OS threads, each with its own runtime, doing OPS puts and OPS heads.
fn hammer(store: Arc<dyn ObjectStore>) {
    common::on_threads(WRITERS, move |t| {
        let store = Arc::clone(&store);
        async move {
            for i in 0..OPS {
                let key = format!("t{t}/k{i}");
                store
                    .put_bytes(&key, Bytes::from_static(b"x"))
                    .await
                    .unwrap();
                store.head(&key).await.unwrap();
            }
        }
    });
}

fn run(
    capacity: usize,
    lossy: bool,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    s3dlio_metrics::OpLogStats,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.tsv.zst");
    let log = OpLog::with_config(
        &path,
        OpLogConfig {
            capacity,
            lossy,
            ..OpLogConfig::default()
        },
    )
    .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(log.wrap(MemoryStore::new()));
    hammer(Arc::clone(&store));
    drop(store);
    let stats = log.finish().unwrap();
    (dir, path, stats)
}

#[test]
fn sixteen_writers_lose_nothing_with_back_pressure() {
    for capacity in [1, 4, 65_536] {
        let (_dir, path, stats) = run(capacity, false);
        let total = (WRITERS * OPS * 2) as u64;
        assert_eq!(
            (stats.rows, stats.dropped),
            (total, 0),
            "capacity {capacity}"
        );
        let rows = read_op_log(&path).unwrap().rows;
        assert_eq!(rows.len() as u64, total);
        // Every operation exactly once.
        let seen: HashSet<(String, String)> = rows
            .iter()
            .map(|r| (r.op.clone(), r.file.clone()))
            .collect();
        assert_eq!(seen.len() as u64, total);
        for t in 0..WRITERS {
            for i in [0, OPS - 1] {
                for op in ["PUT", "HEAD"] {
                    assert!(seen.contains(&(op.to_owned(), format!("mem:///t{t}/k{i}"))));
                }
            }
        }
        let idx: Vec<u64> = rows.iter().map(|r| r.idx).collect();
        assert_eq!(idx, (0..total).collect::<Vec<_>>());
        // The rows came from 16 threads.
        let threads: HashSet<u64> = rows.iter().map(|r| r.thread).collect();
        assert_eq!(threads.len(), WRITERS);
    }
}

#[test]
fn lossy_mode_counts_and_reports_drops() {
    let (_dir, path, stats) = run(1, true);
    let total = (WRITERS * OPS * 2) as u64;
    assert_eq!(stats.rows + stats.dropped, total);
    assert!(
        stats.dropped > 0,
        "a one-row channel under 16 writers drops rows"
    );
    let f = read_op_log(&path).unwrap();
    assert_eq!(f.rows.len() as u64, stats.rows);
    let trailer = f.comments.last().unwrap();
    assert!(
        trailer.contains(&format!(
            "rows={} dropped={} lossy=true",
            stats.rows, stats.dropped
        )),
        "{trailer}"
    );
}
