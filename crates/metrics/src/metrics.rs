//! HDR latency metrics per backend and operation, recorded without a global lock.
//!
//! Recording goes to one of several shards, chosen by the recording thread (each thread
//! always uses the same one), each behind its own mutex: threads up to the number of shards
//! never wait for one another. A [`Snapshot`] merges the shards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::layer::{ObservedStore, Observer};
use crate::op::{thread_no, OpKind, OpRecord};

/// A store whose operations are recorded in a [`Metrics`].
pub type MetricsStore<S> = ObservedStore<S, Arc<Metrics>>;

/// Significant digits of the histograms: values are kept within 0.1%.
const SIGFIG: u8 = 3;

/// Counts, bytes, errors and latency histograms, per backend and operation kind.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Shard]>,
    started: Mutex<Instant>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Vec<BackendStats>>);

#[derive(Debug)]
struct BackendStats {
    backend: String,
    ops: [Option<Box<OpStats>>; OpKind::ALL.len()],
}

/// What one shard (or, merged, the whole run) knows of one operation kind on one backend.
#[derive(Debug, Clone)]
struct OpStats {
    count: u64,
    bytes: u64,
    errors: BTreeMap<&'static str, u64>,
    latency_sum: Duration,
    latency: Histogram<u64>,
    ttfb: Option<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("3 significant figures are valid")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl OpStats {
    fn new() -> Self {
        Self {
            count: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            latency_sum: Duration::ZERO,
            latency: histogram(),
            ttfb: None,
        }
    }

    fn record(&mut self, rec: &OpRecord<'_>) {
        self.count += 1;
        match rec.outcome.label() {
            None => self.bytes += rec.bytes,
            Some(label) => *self.errors.entry(label).or_insert(0) += 1,
        }
        self.latency_sum += rec.duration;
        let _ = self.latency.record(nanos(rec.duration));
        if let Some(fb) = rec.first_byte {
            let _ = self.ttfb.get_or_insert_with(histogram).record(nanos(fb));
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.count += other.count;
        self.bytes += other.bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        self.latency_sum += other.latency_sum;
        let _ = self.latency.add(&other.latency);
        if let Some(t) = &other.ttfb {
            let _ = self.ttfb.get_or_insert_with(histogram).add(t);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics; the run's clock (for throughput) starts now.
    pub fn new() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(1, 32)
            * 2;
        Self::with_shards(n)
    }

    /// Empty metrics with `n` shards (at least 1).
    pub fn with_shards(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Shard::default()).collect(),
            started: Mutex::new(Instant::now()),
        }
    }

    /// The process-wide metrics, for code that cannot pass an `Arc` around.
    pub fn global() -> Arc<Metrics> {
        static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| Arc::new(Metrics::new())))
    }

    /// Wrap `store` so that its operations are recorded here.
    pub fn wrap<S: s3dlio_store_core::ObjectStore>(self: &Arc<Self>, store: S) -> MetricsStore<S> {
        ObservedStore::new(store, Arc::clone(self))
    }

    /// Record one operation (the layers call this; so may code that times its own work).
    pub fn record(&self, rec: &OpRecord<'_>) {
        let shard = &self.shards[thread_no() as usize % self.shards.len()];
        let mut backends = shard.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = match backends.iter().position(|b| b.backend == rec.backend) {
            Some(i) => i,
            None => {
                backends.push(BackendStats {
                    backend: rec.backend.to_owned(),
                    ops: Default::default(),
                });
                backends.len() - 1
            }
        };
        backends[i].ops[rec.op.index()]
            .get_or_insert_with(|| Box::new(OpStats::new()))
            .record(rec);
    }

    /// Forget everything recorded and restart the run's clock.
    pub fn reset(&self) {
        for s in self.shards.iter() {
            s.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Everything recorded so far, merged.
    pub fn snapshot(&self) -> Snapshot {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        let mut merged: BTreeMap<(String, OpKind), OpStats> = BTreeMap::new();
        for s in self.shards.iter() {
            let backends = s.0.lock().unwrap_or_else(|p| p.into_inner());
            for b in backends.iter() {
                for (kind, stats) in OpKind::ALL.iter().zip(&b.ops) {
                    if let Some(stats) = stats {
                        merged
                            .entry((b.backend.clone(), *kind))
                            .or_insert_with(OpStats::new)
                            .merge(stats);
                    }
                }
            }
        }
        Snapshot {
            elapsed,
            ops: merged
                .into_iter()
                .map(|((backend, op), s)| OpMetrics {
                    backend,
                    op,
                    count: s.count,
                    bytes: s.bytes,
                    errors: s
                        .errors
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                    latency_sum: s.latency_sum,
                    latency: s.latency,
                    ttfb: s.ttfb,
                })
                .collect(),
        }
    }
}

impl Observer for Arc<Metrics> {
    const DETAIL: bool = false;
    fn record(&self, rec: &OpRecord<'_>) {
        Metrics::record(self, rec);
    }
}

/// The metrics of a run, merged from every shard.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// From the creation (or last reset) of the metrics to the snapshot.
    pub elapsed: Duration,
    /// One entry per backend and operation kind seen, ordered by backend, then kind.
    pub ops: Vec<OpMetrics>,
}

/// One operation kind on one backend.
#[derive(Debug, Clone)]
pub struct OpMetrics {
    pub backend: String,
    pub op: OpKind,
    /// Operations finished, failed ones included.
    pub count: u64,
    /// Bytes of the operations that succeeded.
    pub bytes: u64,
    /// Failures by error kind (`not_found`, `timeout`, ..., `abandoned`).
    pub errors: BTreeMap<String, u64>,
    /// Sum of the latencies (exact; the histograms round to 0.1%).
    pub latency_sum: Duration,
    /// Total latency in nanoseconds: a GET until its body was read to the end.
    pub latency: Histogram<u64>,
    /// GETs only: nanoseconds to the first body byte delivered.
    pub ttfb: Option<Histogram<u64>>,
}

/// Quantiles of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean: Duration,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub p9999: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        Self {
            count: h.len(),
            mean: Duration::from_nanos(h.mean() as u64),
            min: Duration::from_nanos(h.min()),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: Duration::from_nanos(h.max()),
        }
    }

    /// (label, value) pairs in table order.
    pub fn quantiles(&self) -> [(&'static str, f64, Duration); 6] {
        [
            ("p50", 0.5, self.p50),
            ("p90", 0.9, self.p90),
            ("p99", 0.99, self.p99),
            ("p99.9", 0.999, self.p999),
            ("p99.99", 0.9999, self.p9999),
            ("max", 1.0, self.max),
        ]
    }
}

impl OpMetrics {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn latency(&self) -> Latency {
        Latency::of(&self.latency)
    }

    pub fn ttfb(&self) -> Option<Latency> {
        self.ttfb.as_ref().map(Latency::of)
    }

    /// Exact mean latency.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((self.latency_sum.as_nanos() / u128::from(self.count)) as u64)
        }
    }

    /// Operations per second over `elapsed`.
    pub fn ops_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.count as f64, elapsed)
    }

    /// Bytes per second over `elapsed`.
    pub fn bytes_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.bytes as f64, elapsed)
    }
}

fn per_sec(x: f64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        x / s
    } else {
        0.0
    }
}

impl Snapshot {
    /// The entry for one backend and kind.
    pub fn get(&self, backend: &str, op: OpKind) -> Option<&OpMetrics> {
        self.ops.iter().find(|o| o.backend == backend && o.op == op)
    }
}
