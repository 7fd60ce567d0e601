//! What the observing layers cost: 4 KiB GETs, one at a time, through a bare store and
//! through the metrics layer, the op-log layer, and both, on an in-memory store (where
//! the layer's own cost shows most) and on file:// (a real small-object read). Variants
//! alternate round by round; the report gives ns per GET (best and median round) and the
//! overhead against the bare store. `cargo xtask bench metrics` runs it.
//!
//! ```text
//! cargo run --release -p s3dlio-metrics --example overhead [-- --quick]
//! ```
//!
//! Prints a Markdown section on stdout, then one JSON line per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3dlio_metrics::{Metrics, ObservedStore, OpLog, OpLogConfig, OpLogRecorder};
use s3dlio_store_core::{MemoryStore, ObjectStore, ObjectStoreExt};
use s3dlio_store_fs::FsStore;

const OBJECTS: usize = 1000;
const SIZE: usize = 4096;

struct Variant {
    name: &'static str,
    store: Arc<dyn ObjectStore>,
    /// The op-log it writes to: its rounds last until the writer thread has taken every
    /// row, so that its work is counted and does not slow the next variant down.
    log: Option<OpLogRecorder>,
    times: Vec<Duration>,
}

/// The same store bare and behind each layer; the op-logs go to `dir`.
fn variants(
    base: Arc<dyn ObjectStore>,
    dir: &std::path::Path,
    tag: &str,
) -> (Vec<Variant>, Vec<OpLog>, Vec<Arc<Metrics>>) {
    let cfg = || OpLogConfig {
        client_id: "bench".into(),
        ..OpLogConfig::default()
    };
    let log1 = OpLog::with_config(dir.join(format!("{tag}-oplog.tsv.zst")), cfg()).unwrap();
    let log2 = OpLog::with_config(dir.join(format!("{tag}-both.tsv.zst")), cfg()).unwrap();
    let (m1, m2) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let v = |name, store, log| Variant {
        name,
        store,
        log,
        times: Vec::new(),
    };
    let vs = vec![
        v("bare", Arc::clone(&base), None),
        v(
            "metrics",
            Arc::new(ObservedStore::from_arc(Arc::clone(&base), Arc::clone(&m1))),
            None,
        ),
        v(
            "op-log",
            Arc::new(ObservedStore::from_arc(Arc::clone(&base), log1.recorder())),
            Some(log1.recorder()),
        ),
        v(
            "metrics + op-log",
            Arc::new(ObservedStore::from_arc(
                Arc::clone(&base),
                (Arc::clone(&m2), log2.recorder()),
            )),
            Some(log2.recorder()),
        ),
    ];
    (vs, vec![log1, log2], vec![m1, m2])
}

async fn get_loop(v: &Variant, keys: &[String], ops: usize) -> Duration {
    let t = Instant::now();
    let mut n = 0usize;
    for i in 0..ops {
        n += v
            .store
            .get_bytes(&keys[i % keys.len()])
            .await
            .unwrap()
            .len();
    }
    if let Some(log) = &v.log {
        while log.queued() > 0 {
            std::thread::yield_now();
        }
    }
    let d = t.elapsed();
    assert_eq!(n, ops * SIZE);
    d
}

fn ns_per_op(d: Duration, ops: usize) -> f64 {
    d.as_nanos() as f64 / ops as f64
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// One store measured: the ns per GET of each variant, best round and median round.
struct Result {
    store: &'static str,
    ops: usize,
    rounds: usize,
    /// (variant, best round, median round, median over rounds of this round's time over
    /// the bare store's in the same round)
    rows: Vec<(&'static str, Duration, Duration, f64)>,
}

async fn measure(
    store: &'static str,
    base: Arc<dyn ObjectStore>,
    dir: &std::path::Path,
    ops: usize,
    rounds: usize,
) -> Result {
    let keys: Vec<String> = (0..OBJECTS).map(|i| format!("o{i:05}")).collect();
    for k in &keys {
        base.put_bytes(k, Bytes::from(vec![7u8; SIZE]))
            .await
            .unwrap();
    }
    let tag = if store.starts_with("file") {
        "file"
    } else {
        "mem"
    };
    let (mut vs, logs, metrics) = variants(base, dir, tag);
    let warm = ops / 10 + 1;
    for v in &vs {
        get_loop(v, &keys, warm).await;
    }
    // A B C D, then D C B A, so that no variant always runs first.
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..vs.len()).collect()
        } else {
            (0..vs.len()).rev().collect()
        };
        for i in order {
            let d = get_loop(&vs[i], &keys, ops).await;
            vs[i].times.push(d);
        }
    }
    // Nothing was lost: each layer recorded every GET it saw.
    let seen = (warm + ops * rounds) as u64;
    for m in &metrics {
        let total: u64 = m.snapshot().ops.iter().map(|o| o.count).sum();
        assert_eq!(total, seen, "metrics count");
    }
    let bare = vs[0].times.clone();
    let rows = vs
        .iter()
        .map(|v| {
            let mut ratios: Vec<f64> = v
                .times
                .iter()
                .zip(&bare)
                .map(|(t, b)| t.as_secs_f64() / b.as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            let paired = ratios[ratios.len() / 2];
            (
                v.name,
                *v.times.iter().min().unwrap(),
                median(&v.times),
                paired,
            )
        })
        .collect();
    drop(vs);
    for log in logs {
        let s = log.finish().unwrap();
        assert_eq!((s.rows, s.dropped), (seen, 0), "{}", s.path.display());
    }
    Result {
        store,
        ops,
        rounds,
        rows,
    }
}

fn pct(x: f64, base: f64) -> f64 {
    (x / base - 1.0) * 100.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Many short rounds, variants alternating: on a busy machine each variant meets the
    // same interference, and the best and median rounds mean something.
    let (mem_ops, file_ops, rounds) = if quick {
        (2_000, 200, 10)
    } else {
        (5_000, 500, 200)
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    // One thread drives the loop: the layer's cost is not hidden behind parallelism.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        vec![
            measure(
                "in-memory",
                Arc::new(MemoryStore::new()),
                dir.path(),
                mem_ops,
                rounds,
            )
            .await,
            measure(
                "file:// (page cache)",
                Arc::new(FsStore::new(&root).unwrap()),
                dir.path(),
                file_ops,
                rounds,
            )
            .await,
        ]
    });

    println!("## Observability layers: overhead on 4 KiB GETs\n");
    if quick {
        println!(
            "**Quick run** (`--quick`): few operations, dev build; a smoke test of the \
             harness, not numbers to judge.\n"
        );
    }
    println!(
        "{OBJECTS} objects of {SIZE} bytes read one at a time (`get_bytes`) in a loop on one \
         thread; the variants alternate round by round (A B C D, then D C B A). ns/GET of the \
         best round (least disturbed by other processes) and of the median round. Overhead: \
         the best round against the bare store's best, and *paired*: the median over rounds \
         of (this round / the bare store's round of the same pass), which cancels load that \
         drifts during the run. The op-log variants write a zstd TSV on their writer thread; \
         each of their rounds lasts until that thread has taken every row, so its work counts \
         and does not spill into the next round. Every op-log is checked to have lost no row \
         and every metrics variant to have counted every GET. {} cores.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| store | layer | GETs x rounds | ns/GET best | ns/GET median | overhead best | overhead paired | added ns/GET (median) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    // (store, layer, ops, rounds, ns best, ns median, overhead best %, overhead paired %,
    // added ns median)
    let lines: Vec<_> = results
        .iter()
        .flat_map(|r| {
            let (bb, bm) = (ns_per_op(r.rows[0].1, r.ops), ns_per_op(r.rows[0].2, r.ops));
            r.rows.iter().map(move |(name, best, med, paired)| {
                let (b, m) = (ns_per_op(*best, r.ops), ns_per_op(*med, r.ops));
                (
                    r.store,
                    *name,
                    r.ops,
                    r.rounds,
                    b,
                    m,
                    pct(b, bb),
                    (paired - 1.0) * 100.0,
                    m - bm,
                )
            })
        })
        .collect();
    for (store, layer, ops, rounds, b, m, pb, pm, added) in &lines {
        println!(
            "| {store} | {layer} | {ops} x {rounds} | {b:.0} | {m:.0} | {pb:+.2}% | {pm:+.2}% | {added:+.0} |"
        );
    }
    println!();
    for (store, layer, ops, rounds, b, m, pb, pm, _) in &lines {
        println!(
            "{{\"suite\":\"metrics\",\"store\":\"{store}\",\"layer\":\"{layer}\",\"ops\":{ops},\"rounds\":{rounds},\"ns_per_get_best\":{b:.1},\"ns_per_get_median\":{m:.1},\"overhead_pct_best\":{pb:.3},\"overhead_pct_paired\":{pm:.3},\"quick\":{quick}}}"
        );
    }
}
