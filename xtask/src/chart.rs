//! SVG charts of a suite's results, drawn from its JSON lines: one panel per workload (the
//! rows' `backend`, `workload`, `file` and `phase`), one bar per contender, its throughput
//! in the suite's own unit, ours in blue and the peers in grey. Latency percentiles get a
//! panel of their own where rows have them (fields `p50_ms`, `p90_ms`, `p99_ms`, ...).

use std::path::Path;

use plotters::prelude::*;
use serde_json::{Map, Value};

/// One panel: a workload, its unit, and (contender, value, ours) bars.
#[derive(Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub unit: &'static str,
    pub bars: Vec<(String, f64, bool)>,
}

/// Throughput fields by preference, with their units.
const RATES: &[(&str, &str)] = &[
    ("gib_per_s", "GiB/s"),
    ("mib_per_s", "MiB/s"),
    ("samples_per_s", "samples/s"),
    ("files_per_s", "files/s"),
    ("ops_per_s", "ops/s"),
];

/// The keys that name a row's workload, in the order their values are shown.
const GROUP_KEYS: &[&str] = &["backend", "workload", "file", "phase"];

/// The unit and value of a row's throughput: ops/s for objects under 1 MiB (where ops/s is
/// what the suites judge), else the first of [`RATES`] present.
fn rate(row: &Map<String, Value>) -> Option<(&'static str, f64)> {
    let small = row
        .get("object_size")
        .and_then(Value::as_f64)
        .is_some_and(|s| s < (1 << 20) as f64);
    if small {
        if let Some(v) = row.get("ops_per_s").and_then(Value::as_f64) {
            return Some(("ops/s", v));
        }
    }
    RATES
        .iter()
        .find_map(|(k, unit)| row.get(*k).and_then(Value::as_f64).map(|v| (*unit, v)))
}

/// The panels of one suite's JSON lines: rows with a `contender` and a throughput, grouped
/// by workload in the order they come; then one panel of latency percentiles per workload
/// whose rows have `pNN_ms` fields.
pub fn panels(lines: &[String]) -> Vec<Panel> {
    let mut out: Vec<Panel> = Vec::new();
    let mut latency: Vec<Panel> = Vec::new();
    for line in lines {
        let Ok(Value::Object(row)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(contender) = row.get("contender").and_then(Value::as_str) else {
            continue;
        };
        let ours = contender.starts_with("ours") || contender.starts_with("s3dlio");
        let group: Vec<&str> = GROUP_KEYS
            .iter()
            .filter_map(|k| row.get(*k).and_then(Value::as_str))
            .collect();
        let title = if group.is_empty() {
            row.get("suite")
                .and_then(Value::as_str)
                .unwrap_or("all")
                .to_owned()
        } else {
            group.join(" / ")
        };
        if let Some((unit, v)) = rate(&row) {
            push(&mut out, &title, unit, contender, v, ours);
        }
        let mut pct: Vec<(u32, f64)> = row
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix('p')?.strip_suffix("_ms")?.parse().ok()?;
                Some((n, v.as_f64()?))
            })
            .collect();
        pct.sort_by_key(|p| p.0);
        for (n, v) in pct {
            push(
                &mut latency,
                &format!("{title}: latency"),
                "ms",
                &format!("{contender} p{n}"),
                v,
                ours,
            );
        }
    }
    out.extend(latency);
    out
}

fn push(panels: &mut Vec<Panel>, title: &str, unit: &'static str, who: &str, v: f64, ours: bool) {
    match panels
        .iter_mut()
        .find(|p| p.title == title && p.unit == unit)
    {
        Some(p) => p.bars.push((who.to_owned(), v, ours)),
        None => panels.push(Panel {
            title: title.to_owned(),
            unit,
            bars: vec![(who.to_owned(), v, ours)],
        }),
    }
}

const WIDTH: u32 = 900;
const BAR: u32 = 22;
const TITLE: u32 = 34;
const LABEL_W: i32 = 390;

/// Draw `panels` under `title` as one SVG file; false if there is nothing to draw.
pub fn write_svg(path: &Path, title: &str, panels: &[Panel]) -> Result<bool, String> {
    if panels.is_empty() {
        return Ok(false);
    }
    let height = 40
        + panels
            .iter()
            .map(|p| TITLE + BAR * p.bars.len() as u32 + 10)
            .sum::<u32>();
    let err = |e: DrawingAreaErrorKind<_>| format!("{}: {e:?}", path.display());
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let font = |size: i32| ("sans-serif", size).into_font();
    root.draw(&Text::new(title.to_owned(), (10, 10), font(18)))
        .map_err(err)?;
    let ours_color = RGBColor(31, 119, 180);
    let peer_color = RGBColor(160, 160, 160);
    let mut y = 40i32;
    for p in panels {
        root.draw(&Text::new(
            format!("{} ({}; longer is better{})", p.title, p.unit, {
                if p.unit == "ms" {
                    ", except here: shorter is better"
                } else {
                    ""
                }
            }),
            (10, y + 8),
            font(14).style(FontStyle::Bold),
        ))
        .map_err(err)?;
        y += TITLE as i32;
        let max = p.bars.iter().map(|b| b.1).fold(0.0, f64::max);
        let span = (WIDTH as i32 - LABEL_W - 110) as f64;
        for (who, v, ours) in &p.bars {
            let label: String = who.chars().take(60).collect();
            root.draw(&Text::new(label, (10, y + 4), font(12)))
                .map_err(err)?;
            let len = if max > 0.0 {
                (v / max * span) as i32
            } else {
                0
            };
            let color = if *ours { ours_color } else { peer_color };
            root.draw(&Rectangle::new(
                [(LABEL_W, y), (LABEL_W + len.max(1), y + BAR as i32 - 6)],
                color.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                format_value(*v),
                (LABEL_W + len + 6, y + 4),
                font(12),
            ))
            .map_err(err)?;
            y += BAR as i32;
        }
        y += 10;
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// 1,234 or 12.3 or 0.123.
fn format_value(v: f64) -> String {
    if v >= 1000.0 {
        crate::s3bench::thousands(v)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_into_panels() {
        let lines = [
            r#"{"suite":"s3","workload":"GET 8 x 16 MiB","contender":"ours: native","op":"get","object_size":16777216,"mib_per_s":900.5,"ops_per_s":56.2}"#,
            r#"{"suite":"s3","workload":"GET 8 x 16 MiB","contender":"boto3","op":"get","object_size":16777216,"mib_per_s":800.0,"ops_per_s":50.0}"#,
            r#"{"suite":"s3","workload":"GET 200 x 4 KiB","contender":"boto3","op":"get","object_size":4096,"mib_per_s":2.0,"ops_per_s":500.0,"p50_ms":1.5,"p99_ms":9.0}"#,
            r#"{"suite":"s3","workload":"GET 200 x 4 KiB","contender":"obstore","error":"boom"}"#,
            r#"{"suite":"datagen","format":"raw","gib_per_cpu_s":6.6}"#,
        ]
        .map(String::from);
        let p = panels(&lines);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].title, "GET 8 x 16 MiB");
        assert_eq!(p[0].unit, "MiB/s");
        assert_eq!(p[0].bars[0], ("ours: native".to_owned(), 900.5, true));
        assert_eq!(p[1].unit, "ops/s");
        assert_eq!(p[2].title, "GET 200 x 4 KiB: latency");
        assert_eq!(p[2].bars.len(), 2);
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("t.svg");
        assert!(write_svg(&svg, "test", &p).unwrap());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg") && text.contains("ours: native"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!write_svg(&svg, "none", &[]).unwrap());
    }
}
