//! SVG charts of a suite's results, drawn from its JSON lines: one panel per workload (the
//! rows' `backend`, `workload`, `file` and `phase`), one bar per contender, its throughput
//! in the suite's own unit, ours in blue and the peers in grey. Latency percentiles get a
//! panel of their own per workload where rows have them (fields `p50_ms`, `p90_ms`,
//! `p99_ms`, `p99.9_ms`, `max_ms`): one line per contender across the percentiles, on a
//! logarithmic latency axis (a tail 100 times the median stays readable).

use std::path::Path;

use plotters::prelude::*;
use serde_json::{Map, Value};

use crate::latency;

/// One panel: a workload, its unit, and (contender, value, ours) bars; or, for latency,
/// one line per contender over the percentiles.
#[derive(Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub unit: &'static str,
    pub bars: Vec<(String, f64, bool)>,
    /// Latency panels: (contender, ours, milliseconds at each of [`latency::QUANTILES`]).
    pub lines: Vec<(String, bool, Vec<f64>)>,
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
/// whose rows have every one of them (`p50_ms` ... `max_ms`).
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
        let pct: Option<Vec<f64>> = latency::QUANTILES
            .iter()
            .map(|(l, _)| row.get(&format!("{l}_ms")).and_then(Value::as_f64))
            .collect();
        if let Some(pct) = pct {
            let title = format!("{title}: latency percentiles");
            let series = (contender.to_owned(), ours, pct);
            match latency.iter_mut().find(|p| p.title == title) {
                Some(p) => p.lines.push(series),
                None => latency.push(Panel {
                    title,
                    unit: "ms, log scale",
                    bars: Vec::new(),
                    lines: vec![series],
                }),
            }
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
            lines: Vec::new(),
        }),
    }
}

const WIDTH: u32 = 900;
const BAR: u32 = 22;
const TITLE: u32 = 34;
const LABEL_W: i32 = 390;
/// A latency panel's plot area, and its legend's width on the right.
const PLOT_H: u32 = 240;
const LEGEND_W: i32 = 300;

/// The pixel height of a panel.
fn panel_height(p: &Panel) -> u32 {
    if p.lines.is_empty() {
        TITLE + BAR * p.bars.len() as u32 + 10
    } else {
        TITLE + PLOT_H.max(18 * p.lines.len() as u32) + 40
    }
}

/// Draw `panels` under `title` as one SVG file; false if there is nothing to draw.
pub fn write_svg(path: &Path, title: &str, panels: &[Panel]) -> Result<bool, String> {
    if panels.is_empty() {
        return Ok(false);
    }
    let height = 40 + panels.iter().map(panel_height).sum::<u32>();
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
        let better = if p.lines.is_empty() {
            "longer is better"
        } else {
            "lower is better"
        };
        root.draw(&Text::new(
            format!("{} ({}; {better})", p.title, p.unit),
            (10, y + 8),
            font(14).style(FontStyle::Bold),
        ))
        .map_err(err)?;
        y += TITLE as i32;
        if !p.lines.is_empty() {
            draw_lines(&root, p, y).map_err(err)?;
            y += panel_height(p) as i32 - TITLE as i32;
            continue;
        }
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

/// A latency panel at `top`: percentiles across, milliseconds up on a log scale with a line
/// at every power of ten, one line per contender (ours in shades of blue), a legend on the
/// right.
fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel,
    top: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = |size: i32| ("sans-serif", size).into_font();
    let values = p.lines.iter().flat_map(|l| l.2.iter().copied());
    let positive: Vec<f64> = values.filter(|v| *v > 0.0).collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().copied().fold(0.0, f64::max);
    if positive.is_empty() {
        return Ok(());
    }
    let (d0, d1) = (
        lo.log10().floor() as i32,
        (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
    );
    let (left, right) = (70, WIDTH as i32 - LEGEND_W);
    let (y0, y1) = (top + PLOT_H as i32 - 20, top + 5);
    let ypos = |v: f64| {
        let f = (v.max(10f64.powi(d0)).log10() - d0 as f64) / (d1 - d0) as f64;
        y0 - (f * (y0 - y1) as f64) as i32
    };
    let grid = RGBColor(225, 225, 225);
    // A line and label at 1, 2 and 5 times every power of ten in range.
    let ticks = (d0..=d1)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(d)))
        .filter(|v| *v <= 10f64.powi(d1) * 1.0001);
    for v in ticks {
        let yy = ypos(v);
        root.draw(&PathElement::new(vec![(left, yy), (right, yy)], grid))?;
        let label = if v >= 1.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        };
        root.draw(&Text::new(label, (10, yy - 6), font(11)))?;
    }
    let n = latency::QUANTILES.len();
    let xpos = |i: usize| left + 20 + (i as i32) * (right - left - 40) / (n as i32 - 1).max(1);
    for (i, (l, _)) in latency::QUANTILES.iter().enumerate() {
        root.draw(&Text::new(l.to_string(), (xpos(i) - 12, y0 + 6), font(12)))?;
    }
    root.draw(&PathElement::new(
        vec![(left, y1), (left, y0), (right, y0)],
        BLACK,
    ))?;
    const OURS: [RGBColor; 3] = [
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(44, 62, 140),
    ];
    const PEERS: [RGBColor; 6] = [
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(127, 127, 127),
    ];
    let (mut nours, mut npeers) = (0, 0);
    for (k, (who, ours, ms)) in p.lines.iter().enumerate() {
        let color = if *ours {
            nours += 1;
            OURS[(nours - 1) % OURS.len()]
        } else {
            npeers += 1;
            PEERS[(npeers - 1) % PEERS.len()]
        };
        let pts: Vec<(i32, i32)> = ms
            .iter()
            .enumerate()
            .map(|(i, v)| (xpos(i), ypos(*v)))
            .collect();
        root.draw(&PathElement::new(pts.clone(), color.stroke_width(2)))?;
        for pt in pts {
            root.draw(&Circle::new(pt, 3, color.filled()))?;
        }
        let ly = top + 10 + 18 * k as i32;
        root.draw(&Rectangle::new(
            [(right + 15, ly), (right + 30, ly + 10)],
            color.filled(),
        ))?;
        // Short enough for the legend to fit the width with its figures.
        let label: String = who.chars().take(28).collect();
        let tail = format!(
            "{label}: p50 {}, max {}",
            format_value(ms[0]),
            format_value(ms[n - 1])
        );
        root.draw(&Text::new(tail, (right + 36, ly), font(11)))?;
    }
    Ok(())
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
            r#"{"suite":"s3","workload":"GET 200 x 4 KiB","contender":"boto3","op":"get","object_size":4096,"mib_per_s":2.0,"ops_per_s":500.0,"p50_ms":1.5,"p90_ms":2.5,"p99_ms":9.0,"p99.9_ms":20.0,"max_ms":31.0}"#,
            r#"{"suite":"s3","workload":"GET 200 x 4 KiB","contender":"ours: native","op":"get","object_size":4096,"ops_per_s":900.0,"p50_ms":0.5,"p90_ms":0.9,"p99_ms":2.0,"p99.9_ms":4.0,"max_ms":4.5}"#,
            r#"{"suite":"s3","workload":"GET 200 x 4 KiB","contender":"s5cmd","op":"get","object_size":4096,"ops_per_s":400.0}"#,
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
        assert_eq!(p[1].bars.len(), 3);
        assert_eq!(p[2].title, "GET 200 x 4 KiB: latency percentiles");
        assert!(p[2].bars.is_empty());
        assert_eq!(p[2].lines.len(), 2, "s5cmd has no percentiles");
        assert_eq!(
            p[2].lines[1],
            (
                "ours: native".to_owned(),
                true,
                vec![0.5, 0.9, 2.0, 4.0, 4.5]
            )
        );
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("t.svg");
        assert!(write_svg(&svg, "test", &p).unwrap());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg") && text.contains("ours: native") && text.contains("p99.9"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!write_svg(&svg, "none", &[]).unwrap());
    }
}
