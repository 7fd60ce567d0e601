//! `cargo xtask bench --compare OLD.json`: the change of every metric of this run against
//! an earlier run's JSON (`target/bench/latest.json`, `docs/bench/*.json`). Rows are matched
//! by all their text fields (suite, workload, contender, ...); metrics are the numbers that
//! rate or cost something (throughput, CPU per unit, peak RSS, ratios), not counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Whether a numeric field is a metric worth comparing (not a count, size or run number).
fn is_metric(key: &str) -> bool {
    [
        "per_s", "per_gib", "per_kop", "rss", "ratio", "per_cpu", "ns_per", "iops", "x_",
        "overhead",
    ]
    .iter()
    .any(|m| key.contains(m))
}

/// A row's identity: its text fields, sorted by name (errors left out).
fn identity(row: &Map<String, Value>) -> String {
    row.iter()
        .filter(|(k, _)| *k != "error")
        .filter_map(|(k, v)| v.as_str().map(|s| format!("{k}={s}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rows(text: &str) -> Result<BTreeMap<String, Map<String, Value>>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not bench JSON: {e}"))?;
    let arr = v.as_array().ok_or("not a JSON array of bench rows")?;
    Ok(arr
        .iter()
        .filter_map(|r| r.as_object())
        .map(|r| (identity(r), r.clone()))
        .collect())
}

/// The comparison as text: one line per metric present in both runs, then the rows only
/// one run has.
pub fn compare(old: &str, new: &str) -> Result<String, String> {
    let (old, new) = (rows(old)?, rows(new)?);
    let mut out = String::new();
    let _ = writeln!(out, "| row | metric | old | new | change |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for (id, n) in &new {
        let Some(o) = old.get(id) else {
            continue;
        };
        for (k, nv) in n {
            let (Some(nv), Some(ov)) = (nv.as_f64(), o.get(k).and_then(Value::as_f64)) else {
                continue;
            };
            if !is_metric(k) {
                continue;
            }
            let change = if ov != 0.0 {
                format!("{:+.1}%", (nv - ov) / ov.abs() * 100.0)
            } else {
                "-".into()
            };
            let _ = writeln!(out, "| {id} | {k} | {ov} | {nv} | {change} |");
        }
    }
    let only = |a: &BTreeMap<String, _>, b: &BTreeMap<String, _>| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    for (what, ids) in [
        ("only in this run", only(&new, &old)),
        ("only in the old run", only(&old, &new)),
    ] {
        if !ids.is_empty() {
            let _ = writeln!(out, "\n{what}:");
            for id in ids {
                let _ = writeln!(out, "- {id}");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_matching_rows() {
        let old = r#"[{"suite":"s3","contender":"a","objects":8,"mib_per_s":100.0,"max_rss_kib":2048},
                      {"suite":"s3","contender":"gone","mib_per_s":1.0}]"#;
        let new = r#"[{"suite":"s3","contender":"a","objects":8,"mib_per_s":150.0,"max_rss_kib":1024},
                      {"suite":"s3","contender":"new","mib_per_s":1.0}]"#;
        let out = super::compare(old, new).unwrap();
        assert!(
            out.contains("| contender=a, suite=s3 | mib_per_s | 100 | 150 | +50.0% |"),
            "{out}"
        );
        assert!(
            out.contains("max_rss_kib | 2048 | 1024 | -50.0% |"),
            "{out}"
        );
        assert!(!out.contains("objects"), "{out}");
        assert!(
            out.contains("only in this run:\n- contender=new, suite=s3"),
            "{out}"
        );
        assert!(
            out.contains("only in the old run:\n- contender=gone"),
            "{out}"
        );
        assert!(super::compare("{", "[]").is_err());
    }
}
