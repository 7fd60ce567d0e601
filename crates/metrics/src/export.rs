//! A [`Snapshot`] as a text table, JSON, or the Prometheus text exposition format.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::{Latency, OpMetrics, Snapshot};

/// A duration in the unit that keeps it readable: `850ns`, `41.3µs`, `5.02ms`, `1.250s`.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// A latency histogram (nanoseconds) as fields to append to a flat JSON object:
/// `,"p50_ms":..,"p90_ms":..,"p99_ms":..,"p99.9_ms":..,"max_ms":..,"latency_ns":[[V,C],...]`,
/// the last being every recorded bucket (its highest equivalent value and count), from which
/// a reader can rebuild the histogram exactly and merge several processes' (the bench tools
/// print it; `cargo xtask bench` reads it).
pub fn latency_json_fields(h: &hdrhistogram::Histogram<u64>) -> String {
    let l = Latency::of(h);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = format!(
        ",\"p50_ms\":{:.4},\"p90_ms\":{:.4},\"p99_ms\":{:.4},\"p99.9_ms\":{:.4},\"max_ms\":{:.4}",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max)
    );
    out.push_str(",\"latency_ns\":[");
    for (i, v) in h.iter_recorded().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{sep}[{},{}]",
            v.value_iterated_to(),
            v.count_at_value()
        );
    }
    out.push(']');
    out
}

/// Bytes in binary units: `512 B`, `4.0 KiB`, `1.50 GiB`.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024.0 {
        return format!("{b:.0} B");
    }
    let mut v = b;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

fn latency_json(l: &Latency) -> Value {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    json!({
        "count": l.count,
        "mean": ns(l.mean),
        "min": ns(l.min),
        "p50": ns(l.p50),
        "p90": ns(l.p90),
        "p99": ns(l.p99),
        "p99_9": ns(l.p999),
        "p99_99": ns(l.p9999),
        "max": ns(l.max),
    })
}

impl Snapshot {
    /// A fixed-width table: one row per backend and operation with counts, errors, bytes,
    /// throughput and total-latency quantiles, plus a `ttfb` row under each GET.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<7} {:<9} {:>9} {:>7} {:>11} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "backend",
            "op",
            "count",
            "errors",
            "bytes",
            "bytes/s",
            "ops/s",
            "mean",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "p99.99",
            "max"
        );
        for o in &self.ops {
            let l = o.latency();
            let _ = writeln!(
                t,
                "{:<7} {:<9} {:>9} {:>7} {:>11} {:>11} {:>10.1} {}",
                o.backend,
                o.op.as_str(),
                o.count,
                o.errors_total(),
                human_bytes(o.bytes as f64),
                human_bytes(o.bytes_per_sec(self.elapsed)) + "/s",
                o.ops_per_sec(self.elapsed),
                quantile_cells(o.mean(), &l)
            );
            if let Some(f) = o.ttfb() {
                let _ = writeln!(
                    t,
                    "{:<7} {:<9} {:>9} {:>7} {:>11} {:>11} {:>10} {}",
                    "",
                    format!("{} ttfb", o.op.as_str()),
                    "",
                    "",
                    "",
                    "",
                    "",
                    quantile_cells(f.mean, &f)
                );
            }
            for (kind, n) in &o.errors {
                let _ = writeln!(t, "{:<7} {:<9}   {n} failed: {kind}", "", "");
            }
        }
        let _ = writeln!(
            t,
            "over {:.3} s; latency of a GET is until its body was read to the end",
            self.elapsed.as_secs_f64()
        );
        t
    }

    /// `{"elapsed_s": .., "ops": [{"backend", "op", "count", "errors", "bytes",
    /// "ops_per_sec", "bytes_per_sec", "latency_ns": {...}, "ttfb_ns": {...} | null}]}`.
    pub fn to_json(&self) -> Value {
        let ops: Vec<Value> = self
            .ops
            .iter()
            .map(|o| {
                json!({
                    "backend": o.backend,
                    "op": o.op.as_str(),
                    "count": o.count,
                    "errors": o.errors,
                    "bytes": o.bytes,
                    "ops_per_sec": o.ops_per_sec(self.elapsed),
                    "bytes_per_sec": o.bytes_per_sec(self.elapsed),
                    "latency_ns": latency_json(&Latency { mean: o.mean(), ..o.latency() }),
                    "ttfb_ns": o.ttfb().map(|l| latency_json(&l)),
                })
            })
            .collect();
        json!({ "elapsed_s": self.elapsed.as_secs_f64(), "ops": ops })
    }

    /// The Prometheus text exposition format (version 0.0.4): counters
    /// `s3dlio_operations_total`, `s3dlio_errors_total`, `s3dlio_bytes_total`, and summaries
    /// `s3dlio_operation_duration_seconds` and `s3dlio_ttfb_seconds` with quantiles.
    pub fn to_prometheus(&self) -> String {
        let mut t = String::new();
        let labels = |o: &OpMetrics| {
            format!(
                "backend=\"{}\",op=\"{}\"",
                escape_label(&o.backend),
                o.op.as_str()
            )
        };
        family(
            &mut t,
            "s3dlio_operations_total",
            "counter",
            "Operations finished, failed ones included.",
        );
        for o in &self.ops {
            let _ = writeln!(t, "s3dlio_operations_total{{{}}} {}", labels(o), o.count);
        }
        family(
            &mut t,
            "s3dlio_errors_total",
            "counter",
            "Operations that failed, by error kind.",
        );
        for o in &self.ops {
            for (kind, n) in &o.errors {
                let _ = writeln!(
                    t,
                    "s3dlio_errors_total{{{},kind=\"{}\"}} {n}",
                    labels(o),
                    escape_label(kind)
                );
            }
        }
        family(
            &mut t,
            "s3dlio_bytes_total",
            "counter",
            "Bytes read or written by operations that succeeded.",
        );
        for o in &self.ops {
            let _ = writeln!(t, "s3dlio_bytes_total{{{}}} {}", labels(o), o.bytes);
        }
        family(
            &mut t,
            "s3dlio_operation_duration_seconds",
            "summary",
            "Latency of operations; a GET until its body was read to the end.",
        );
        for o in &self.ops {
            summary(
                &mut t,
                "s3dlio_operation_duration_seconds",
                &labels(o),
                &o.latency(),
                o.latency_sum,
            );
        }
        family(
            &mut t,
            "s3dlio_ttfb_seconds",
            "summary",
            "Time from the start of a GET to its first body byte.",
        );
        for o in &self.ops {
            if let Some(l) = o.ttfb() {
                let sum = l.mean * u32::try_from(l.count).unwrap_or(u32::MAX);
                summary(&mut t, "s3dlio_ttfb_seconds", &labels(o), &l, sum);
            }
        }
        t
    }
}

fn quantile_cells(mean: Duration, l: &Latency) -> String {
    let mut s = format!("{:>9}", human_duration(mean));
    for (_, _, d) in l.quantiles() {
        let _ = write!(s, " {:>9}", human_duration(d));
    }
    s
}

fn family(t: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(t, "# HELP {name} {help}");
    let _ = writeln!(t, "# TYPE {name} {kind}");
}

fn summary(t: &mut String, name: &str, labels: &str, l: &Latency, sum: Duration) {
    for (_, q, d) in l.quantiles() {
        let _ = writeln!(t, "{name}{{{labels},quantile=\"{q}\"}} {}", d.as_secs_f64());
    }
    let _ = writeln!(t, "{name}_sum{{{labels}}} {}", sum.as_secs_f64());
    let _ = writeln!(t, "{name}_count{{{labels}}} {}", l.count);
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_fields_parse_as_json_and_keep_every_bucket() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for ns in [1_000_000u64, 1_000_000, 2_000_000, 50_000_000] {
            h.record(ns).unwrap();
        }
        let v: Value =
            serde_json::from_str(&format!("{{\"ops\":4{}}}", latency_json_fields(&h))).unwrap();
        assert!((v["p50_ms"].as_f64().unwrap() - 1.0).abs() < 0.01, "{v}");
        assert!((v["max_ms"].as_f64().unwrap() - 50.0).abs() < 0.1, "{v}");
        let buckets = v["latency_ns"].as_array().unwrap();
        assert_eq!(buckets.len(), 3);
        let total: u64 = buckets.iter().map(|b| b[1].as_u64().unwrap()).sum();
        assert_eq!(total, 4);
    }
}
