//! `cargo xtask bench datagen`: how fast `s3-cli put` generates synthetic data, per core,
//! and whether the dedup and compress factors come out as asked. The generator runs with no
//! storage behind it (`crates/cli/examples/datagen_bench.rs`, the code `put` runs), one
//! thread, so CPU seconds per GiB are the generator's own.

use std::fmt::Write as _;
use std::process::Command;

use crate::bench::{build_example, Options};
use crate::measure::{measure, median, report_count};

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
    let _ = writeln!(
        report,
        "| format | dedup | compress | GiB/s per core | GiB/s wall | dedup measured | \
         compress measured | ratios |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---|");
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
        let _ = writeln!(
            report,
            "| {} | {} | {} | {per_core:.2} | {wall:.2} | {dedup} | {compress} | {verdict} |",
            c.format, c.dedup, c.compress
        );
        json.push(format!(
            "{{\"suite\":\"datagen\",\"format\":\"{}\",\"dedup\":{},\"compress\":{},\
             \"bytes\":{bytes},\"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\
             \"gib_per_cpu_s\":{per_core:.4},\"dedup_measured\":\"{dedup}\",\
             \"compress_measured\":\"{compress}\"}}",
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
