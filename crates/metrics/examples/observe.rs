//! Wrap a store in the metrics, op-log and tracing layers, do some work, and print the
//! metrics as a table, JSON and Prometheus text, then the op-log's summary.
//!
//! ```text
//! cargo run -p s3dlio-metrics --example observe [-- DIR]
//! RUST_LOG=debug cargo run -p s3dlio-metrics --example observe   # the spans too
//! ```
//!
//! DIR (default: a temporary directory) receives a file:// data set and the op-log.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use s3dlio_metrics::{
    read_op_log, summarize, Metrics, ObservedStore, OpLog, SummaryTable, Tracing,
};
use s3dlio_store_core::{GetOptions, ObjectStore, ObjectStoreExt};
use s3dlio_store_fs::FsStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let log_path = dir.join("ops.tsv.zst");

    let metrics = Arc::new(Metrics::new());
    let log = OpLog::create(&log_path)?;
    let store = ObservedStore::new(
        FsStore::new(&data)?,
        (Arc::clone(&metrics), log.recorder(), Tracing),
    );

    // 64 small objects written and read whole, 4 large ones streamed through writers and
    // read back as streams, a listing and a miss.
    for i in 0..64 {
        store
            .put_bytes(
                &format!("small/{i:03}"),
                Bytes::from(vec![i as u8; 16 << 10]),
            )
            .await?;
    }
    for i in 0..4 {
        let mut w = store
            .writer(&format!("large/{i}"), Default::default())
            .await?;
        for _ in 0..8 {
            w.write(Bytes::from(vec![1u8; 1 << 20])).await?;
        }
        w.complete().await?;
    }
    for m in store.list_objects("").await? {
        let mut body = store
            .get(&m.key, GetOptions::default())
            .await?
            .into_stream();
        while let Some(chunk) = body.next().await {
            chunk?;
        }
    }
    assert!(store.head("no/such/key").await.is_err());

    let snap = metrics.snapshot();
    println!("== table\n{}", snap.to_table());
    println!(
        "== JSON\n{}\n",
        serde_json::to_string_pretty(&snap.to_json())?
    );
    println!("== Prometheus\n{}", snap.to_prometheus());

    drop(store);
    let stats = log.finish()?;
    println!("== op-log: {} rows in {}", stats.rows, stats.path.display());
    let rows = read_op_log(&log_path)?.rows;
    print!("{}", SummaryTable(&summarize(&rows)));
    Ok(())
}
