//! `cargo xtask bench datagen`: how fast `s3-cli put` generates synthetic data, per core,
//! and whether the dedup and compress factors come out as asked. The generator runs with no
//! storage behind it (`crates/cli/examples/datagen_bench.rs`, the code `put` runs), one
//! thread, so CPU seconds per GiB are the generator's own. With `--procs N` (default 2) each
//! case runs again as N processes started together, each generating its rank's share (as
//! `s3-cli put --rank R --ranks N` does), merged: bytes and CPU summed, wall time from the
//! earliest start to the latest end.

use std::fmt::Write as _;
use std::process::Command;

use crate::bench::{build_example, Options};
use crate::measure::{measure, measure_together, median, report_count, report_number, Sample};

struct Case {
    format: &'static str,
    dedup: u64,
    compress: u64,
}

const CASES: &[Case] = &[
    Case {
        format: "raw",
        dedup: 1,
        compress: 1,
    },
    Case {
        format: "raw",
        dedup: 4,
        compress: 1,
    },
    Case {
        format: "raw",
        dedup: 1,
        compress: 3,
    },
    Case {
        format: "raw",
        dedup: 4,
        compress: 3,
    },
    Case {
        format: "npz",
        dedup: 1,
        compress: 1,
    },
    Case {
        format: "tfrecord",
        dedup: 1,
        compress: 1,
    },
];

/// Measured ratios within this fraction of the asked ones pass.
const TOLERANCE: f64 = 0.1;

/// Runs the suite and appends to the report; returns the cases whose ratios were off.
pub fn datagen_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let exe = build_example(opts, "s3dlio-cli", &[], "datagen_bench")?;
    // Objects of 64 MiB (16 MiB quick); ratios on a 64 MiB sample (16 MiB quick).
    let (count, size, sample_count) = if opts.quick {
        ("4", "16MiB", "1")
    } else {
        ("16", "64MiB", "1")
    };
    let _ = writeln!(report, "## Synthetic data generation (`s3-cli put`)\n");
    crate::bench::quick_note(opts, report);
    let _ = writeln!(
        report,
        "One thread generates {count} objects of {size} with `put`'s generator and chunk \
         size and no storage behind it; {} runs, the median by wall time. GiB/s per core is \
         bytes over the process's CPU seconds. Ratios are measured on a {size} sample as a \
         store and a compressor see it: distinct 64 KiB blocks by content, and zstd level 3 \
         per block (within {:.0}% of the asked factor passes).\n",
        opts.runs,
        TOLERANCE * 100.0
    );
    let procs = opts.procs;
    let (multi_head, multi_rule) = if procs > 1 {
        let _ = writeln!(
            report,
            "With {procs} processes: the same objects split between {procs} processes \
             started together (rank r generates objects r, r+{procs}, ...), one thread each; \
             GiB/s wall from the earliest start to the latest end, per core over their CPU \
             seconds summed; scaling is that wall rate over one process's. The machine has \
             {} cores, shared.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        (
            format!(" GiB/s wall, {procs} procs | GiB/s per core, {procs} procs | scaling |"),
            "---:|---:|---:|",
        )
    } else {
        (String::new(), "")
    };
    let _ = writeln!(
        report,
        "| format | dedup | compress | GiB/s per core | GiB/s wall | dedup measured | \
         compress measured | ratios |{multi_head}"
    );
    let _ = writeln!(
        report,
        "|---|---:|---:|---:|---:|---:|---:|---|{multi_rule}"
    );
    let mut failed = Vec::new();
    for c in CASES {
        let (d, x) = (c.dedup.to_string(), c.compress.to_string());
        let args = |mode: &str, n: &str| {
            let mut cmd = Command::new(&exe);
            cmd.args([
                mode, "-n", n, "-s", size, "-d", &d, "-x", &x, "-o", c.format,
            ]);
            cmd
        };
        let samples = (0..opts.runs)
            .map(|_| measure(&mut args("speed", count), true))
            .collect::<Result<Vec<_>, _>>()?;
        let m = median(&samples);
        let bytes = report_count(&m.stdout, "bytes")?;
        let gib = bytes as f64 / (1u64 << 30) as f64;
        let per_core = gib / m.cpu.as_secs_f64().max(1e-9);
        let wall = gib / m.wall.as_secs_f64().max(1e-9);
        // The same objects as `procs` processes, started together; the median run by the
        // span from the earliest start to the latest end.
        let multi = if procs > 1 {
            let mut merged = Vec::new();
            for _ in 0..opts.runs {
                let start_at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
                    + 0.5;
                let cmds = (0..procs)
                    .map(|r| {
                        let mut cmd = args("speed", count);
                        cmd.args(["--rank", &r.to_string(), "--ranks", &procs.to_string()])
                            .args(["--start-at", &format!("{start_at:.3}")]);
                        cmd
                    })
                    .collect();
                merged.push(merge_ranks(&measure_together(cmds)?)?);
            }
            merged.sort_by(|a, b| a.1.total_cmp(&b.1));
            let (b, span, cpu) = merged[(merged.len() - 1) / 2];
            if b != bytes {
                return Err(format!(
                    "datagen {} x{procs}: {b} bytes, one process made {bytes}",
                    c.format
                ));
            }
            Some((gib / span.max(1e-9), gib / cpu.max(1e-9), span, cpu))
        } else {
            None
        };
        // Ratios are defined on the payload; npz and tfrecord wrap the same payload.
        let (dedup, compress, verdict) = if c.format == "raw" {
            let r = measure(&mut args("ratios", sample_count), true)?;
            let n = |k: &str| report_count(&r.stdout, k).map(|v| v as f64);
            let dedup = n("blocks")? / n("distinct")?.max(1.0);
            let compress = n("raw")? / n("packed")?.max(1.0);
            let near = |got: f64, want: u64| (got / want as f64 - 1.0).abs() <= TOLERANCE;
            let ok = near(dedup, c.dedup) && near(compress, c.compress);
            if !ok {
                failed.push(format!(
                    "datagen dedup {} compress {}: measured {dedup:.2} / {compress:.2}",
                    c.dedup, c.compress
                ));
            }
            (
                format!("{dedup:.2}"),
                format!("{compress:.2}"),
                if ok { "ok" } else { "OFF" },
            )
        } else {
            ("—".into(), "—".into(), "—")
        };
        let multi_cells = multi.map_or(String::new(), |(w, core, _, _)| {
            format!(" {w:.2} | {core:.2} | {:.2}x |", w / wall)
        });
        let _ = writeln!(
            report,
            "| {} | {} | {} | {per_core:.2} | {wall:.2} | {dedup} | {compress} | {verdict} |\
             {multi_cells}",
            c.format, c.dedup, c.compress
        );
        let multi_json = multi.map_or(String::new(), |(w, core, span, cpu)| {
            format!(
                ",\"processes\":{procs},\"multi_wall_s\":{span:.6},\"multi_cpu_s\":{cpu:.6},\
                 \"multi_gib_per_s\":{w:.4},\"multi_gib_per_cpu_s\":{core:.4},\
                 \"multi_scaling\":{:.4}",
                w / wall
            )
        });
        json.push(format!(
            "{{\"suite\":\"datagen\",\"format\":\"{}\",\"dedup\":{},\"compress\":{},\
             \"bytes\":{bytes},\"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\
             \"gib_per_cpu_s\":{per_core:.4},\"dedup_measured\":\"{dedup}\",\
             \"compress_measured\":\"{compress}\"{multi_json}}}",
            c.format,
            c.dedup,
            c.compress,
            opts.runs,
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
        ));
    }
    let _ = writeln!(
        report,
        "\nTarget (issue: s3-cli): multi-GiB/s generated per core, ratios as asked.\n"
    );
    Ok(failed)
}

/// The ranks of one multi-process run as one: (bytes, wall seconds from the earliest start
/// to the latest end, CPU seconds summed).
fn merge_ranks(samples: &[Sample]) -> Result<(u64, f64, f64), String> {
    let (mut bytes, mut first, mut last, mut cpu) = (0, f64::INFINITY, 0.0f64, 0.0);
    for s in samples {
        bytes += report_count(&s.stdout, "bytes")?;
        first = first.min(report_number(&s.stdout, "start_unix_s")?);
        last = last.max(report_number(&s.stdout, "end_unix_s")?);
        cpu += s.cpu.as_secs_f64();
    }
    Ok((bytes, (last - first).max(0.0), cpu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn merges_ranks() {
        let s = |out: &str, cpu: u64| Sample {
            wall: Duration::from_secs(9),
            cpu: Duration::from_millis(cpu),
            max_rss_kib: 0,
            stdout: out.to_owned(),
        };
        let (b, span, cpu) = merge_ranks(&[
            s(
                "{\"bytes\":100,\"start_unix_s\":10.0,\"end_unix_s\":10.5}\n",
                400,
            ),
            s(
                "{\"bytes\":50,\"start_unix_s\":10.2,\"end_unix_s\":10.75}",
                300,
            ),
        ])
        .unwrap();
        assert_eq!(b, 150);
        assert!((span - 0.75).abs() < 1e-9 && (cpu - 0.7).abs() < 1e-9);
        assert!(merge_ranks(&[s("{\"bytes\":1}", 1)]).is_err());
    }
}
