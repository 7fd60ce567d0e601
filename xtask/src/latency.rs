//! Per-operation latencies of the bench rows: the `latency_ns` buckets a contender reports
//! (`[[nanoseconds, count], ...]`, from `s3_load`'s HDR histogram or `s3_peer.py`'s
//! timings) put into one HDR histogram, merged across processes, and read as percentiles.

use hdrhistogram::Histogram;
use serde_json::Value;

/// The percentiles the reports show, with their labels (also the JSON keys, `p50_ms`...).
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];

/// An empty histogram of nanoseconds, values kept within 0.1% (as `crates/metrics` does).
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are valid")
}

/// The `latency_ns` field of a report line, if it has one.
pub fn from_json(row: &Value) -> Result<Option<Histogram<u64>>, String> {
    let Some(pairs) = row.get("latency_ns") else {
        return Ok(None);
    };
    let bad = || format!("latency_ns is not [[nanoseconds, count], ...]: {pairs}");
    let mut h = histogram();
    for p in pairs.as_array().ok_or_else(bad)? {
        let (v, c) = match p.as_array().map(Vec::as_slice) {
            Some([v, c]) => (v.as_u64().ok_or_else(bad)?, c.as_u64().ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        // Grows to fit; the saturating variant would clamp to the initial range.
        h.record_n(v, c)
            .map_err(|e| format!("latency_ns: {v} ns: {e:?}"))?;
    }
    Ok(Some(h))
}

/// Every process's histogram in one; `None` unless every process had one (percentiles of
/// a part would pass for the whole).
pub fn merge<'a>(
    parts: impl IntoIterator<Item = Option<&'a Histogram<u64>>>,
) -> Option<Histogram<u64>> {
    let mut all = histogram();
    for p in parts {
        all.add(p?).ok()?;
    }
    Some(all)
}

/// The [`QUANTILES`] of `h`, in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> [f64; 5] {
    QUANTILES.map(|(_, q)| {
        let ns = if q >= 1.0 {
            h.max()
        } else {
            h.value_at_quantile(q)
        };
        ns as f64 / 1e6
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging the buckets two processes report gives the percentiles of one histogram of
    /// all their operations.
    #[test]
    fn merged_buckets_match_one_histogram() {
        let (mut a, mut b, mut all) = (histogram(), histogram(), histogram());
        for i in 0..1000u64 {
            // Two different distributions: a fast one and a slow tail.
            let v = 200_000 + i * 1_337;
            let w = 5_000_000 + i * i * 40;
            a.record(v).unwrap();
            b.record(w).unwrap();
            all.record(v).unwrap();
            all.record(w).unwrap();
        }
        let line = |h: &Histogram<u64>| {
            let pairs: Vec<String> = h
                .iter_recorded()
                .map(|v| format!("[{},{}]", v.value_iterated_to(), v.count_at_value()))
                .collect();
            serde_json::from_str::<Value>(&format!("{{\"latency_ns\":[{}]}}", pairs.join(",")))
                .unwrap()
        };
        let (pa, pb) = (
            from_json(&line(&a)).unwrap().unwrap(),
            from_json(&line(&b)).unwrap().unwrap(),
        );
        let merged = merge([Some(&pa), Some(&pb)]).unwrap();
        assert_eq!(merged.len(), 2000);
        assert_eq!(percentiles_ms(&merged), percentiles_ms(&all));
        // A process without latencies makes the merge unknown, not partial.
        assert!(merge([Some(&pa), None]).is_none());
        assert!(from_json(&serde_json::json!({"ops": 1})).unwrap().is_none());
        assert!(from_json(&serde_json::json!({"latency_ns": [[1]]})).is_err());
        // Python's plain nanosecond timings, one per operation.
        let py = from_json(&serde_json::json!({"latency_ns": [[1_000_000, 99], [9_000_000, 1]]}))
            .unwrap()
            .unwrap();
        let p = percentiles_ms(&py);
        assert!(
            (p[0] - 1.0).abs() < 0.001 && (p[4] - 9.0).abs() < 0.01,
            "{p:?}"
        );
    }
}
