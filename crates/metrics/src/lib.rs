//! Observability for s3dlio, as layers over any [`ObjectStore`](s3dlio_store_core::ObjectStore):
//!
//! * [`MetricsStore`] records, per backend and operation kind (GET, PUT, LIST, HEAD,
//!   DELETE, COPY, and WRITE for each write into a streaming writer), the count, failures
//!   by error kind, bytes, time to first byte and total latency in HDR histograms, into a
//!   shared [`Metrics`]; a [`Snapshot`] prints as a table, JSON or Prometheus text.
//! * [`OpLogStore`] writes one row per operation to an [`OpLog`] in MinIO warp's TSV format
//!   (zstd-compressed), losslessly by default; [`read_op_log`] and [`summarize`] read it
//!   back. [`init_op_log`] / [`finalize_op_log`] keep one process-wide log, as the
//!   original s3dlio API does.
//! * [`TracingStore`] opens a DEBUG `tracing` span per operation, with the URI (secrets
//!   redacted) and the sizes.
//!
//! All three are one layer, [`ObservedStore`], with different [`Observer`]s; a tuple of
//! observers does several things with one measurement.
//!
//! What is measured: every operation from the call to its end. A GET ends when its body has
//! been read to the end (streamed, collected, or deferred and then read either way); its
//! time to first byte is when the first body bytes reached the caller. A body dropped
//! before its end counts as `abandoned`. A streaming writer is one PUT from `writer()` to
//! `complete()`, and each `write` call is one WRITE (metrics only).
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use s3dlio_metrics::{Metrics, MetricsStore, OpKind};
//! use s3dlio_store_core::{MemoryStore, ObjectStoreExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let metrics = Arc::new(Metrics::new());
//! let store = MetricsStore::new(MemoryStore::new(), Arc::clone(&metrics));
//! store.put_bytes("a", Bytes::from_static(b"hello")).await?;
//! assert_eq!(store.get_bytes("a").await?, "hello");
//! let snap = metrics.snapshot();
//! assert_eq!(snap.get("mem", OpKind::Get).unwrap().bytes, 5);
//! println!("{}", snap.to_table());
//! # Ok::<_, s3dlio_store_core::Error>(())
//! # }).unwrap();
//! ```

mod export;
/// The op-log reader's invariants, for the fuzz properties and the cargo-fuzz target.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod layer;
mod metrics;
mod op;
mod oplog;
mod reader;
pub mod redact;
mod time;

pub use export::{human_bytes, human_duration, latency_json_fields};
pub use layer::{ObservedStore, Observer, Tracing, TracingStore};
pub use metrics::{Latency, Metrics, MetricsStore, OpMetrics, Snapshot};
pub use op::{backend_of, error_label, thread_no, OpKind, OpRecord, Outcome};
pub use oplog::{
    finalize_op_log, init_op_log, init_op_log_with, is_op_log_active, GlobalOpLog, OpLog,
    OpLogConfig, OpLogRecorder, OpLogStats, OpLogStore, HEADER,
};
pub use reader::{
    parse_op_log, read_op_log, summarize, OpLogFile, OpLogRow, OpSummary, SummaryTable,
};
pub use time::Timestamp;

/// `hdrhistogram`, whose `Histogram` the snapshots hold.
pub use hdrhistogram;

// The README's example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
