//! `cargo xtask bench loader`: samples per second through the data loader, ours
//! (`crates/loader/examples/loader_bench.rs`) beside the original s3dlio wheel's
//! `create_async_loader` (`xtask/bench/loader_peer.py`), on the same `file://` data in the
//! same run. s3torchconnector's `S3IterableDataset` needs PyTorch, which the harness does not
//! install (about 5 GB with its CUDA libraries): the report says so on its own line.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::bench::{build_example, Options};
use crate::measure::{measure, report_count, report_number, Sample};
use crate::{root, tools};

/// One loader run's report and cost.
struct Result_ {
    name: String,
    sample: Sample,
    samples: u64,
    /// The loop's own wall time, as the contender measured it (imports excluded).
    wall_s: f64,
    cpu_s: f64,
}

/// Write `count` files of `size` bytes (distinct content) under `dir`, unless present.
fn prepare(dir: &Path, count: usize, size: usize) -> Result<(), String> {
    let ready = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0) == count
        && (0..count).all(|i| {
            dir.join(format!("obj-{i:07}"))
                .metadata()
                .is_ok_and(|m| m.len() == size as u64)
        });
    if ready {
        return Ok(());
    }
    eprintln!(
        "xtask: creating {count} files of {size} bytes in {}",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; size];
    for i in 0..count {
        for w in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = w.len();
            w.copy_from_slice(&x.to_le_bytes()[..n]);
        }
        let f = dir.join(format!("obj-{i:07}"));
        std::fs::write(&f, &buf).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}

pub fn loader_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let ours = build_example(opts, "s3dlio-loader", &[], "loader_bench")?;
    let original = tools::install_bench_venv("s3dlio-original");
    let (count, size) = if opts.quick {
        (1_000, 64 << 10)
    } else {
        (10_000, 64 << 10)
    };
    let dir = opts.data_dir.join(format!("loader/{count}"));
    prepare(&dir, count, size)?;
    let uri = format!("file://{}/", dir.display());
    let (n, s) = (count.to_string(), size.to_string());
    // Warm the page cache: every contender reads cached data.
    measure(
        Command::new("cat").args(
            std::fs::read_dir(&dir)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path())),
        ),
        false,
    )?;

    let mut contenders: Vec<(String, Box<dyn Fn() -> Command>)> = vec![
        (
            "ours: s3dlio-loader, ordered".into(),
            Box::new({
                let (ours, uri, n, s) = (ours.clone(), uri.clone(), n.clone(), s.clone());
                move || {
                    let mut c = Command::new(&ours);
                    c.args([&uri, "-n", &n, "-s", &s, "-b", "32"]);
                    c
                }
            }),
        ),
        (
            "ours: s3dlio-loader, out of order".into(),
            Box::new({
                let (ours, uri, n, s) = (ours.clone(), uri.clone(), n.clone(), s.clone());
                move || {
                    let mut c = Command::new(&ours);
                    c.args([&uri, "-n", &n, "-s", &s, "-b", "32", "--unordered"]);
                    c
                }
            }),
        ),
    ];
    let mut not_run = vec![(
        "s3torchconnector S3IterableDataset".to_owned(),
        "needs PyTorch, which the harness does not install (about 5 GB with CUDA libraries); \
         it also reads only s3://"
            .to_owned(),
    )];
    match original.status("s3dlio") {
        Ok(()) => {
            let (py, script) = (
                original.python.clone(),
                root().join("xtask/bench/loader_peer.py"),
            );
            let (uri, n, s) = (uri.clone(), n.clone(), s.clone());
            contenders.push((
                "original s3dlio create_async_loader".into(),
                Box::new(move || {
                    let mut c = Command::new(&py);
                    c.arg(&script).args([
                        "--tool", "s3dlio", "--uri", &uri, "-n", &n, "-s", &s, "-b", "32",
                    ]);
                    c
                }),
            ));
        }
        Err(e) => not_run.push(("original s3dlio create_async_loader".into(), e)),
    }

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
    for run in 0..opts.runs {
        let order: Vec<usize> = if run % 2 == 0 {
            (0..contenders.len()).collect()
        } else {
            (0..contenders.len()).rev().collect()
        };
        for i in order {
            samples[i].push(measure(&mut (contenders[i].1)(), true)?);
        }
    }
    let mut results = Vec::new();
    for ((name, _), s) in contenders.iter().zip(&samples) {
        // The median by the loop's own wall time.
        let mut s: Vec<&Sample> = s.iter().collect();
        s.sort_by(|a, b| {
            let w = |x: &Sample| report_number(&x.stdout, "wall_s").unwrap_or(f64::MAX);
            w(a).total_cmp(&w(b))
        });
        let m = s[(s.len() - 1) / 2].clone();
        let got = report_count(&m.stdout, "samples")?;
        if got != count as u64 {
            return Err(format!("{name}: read {got} samples, expected {count}"));
        }
        results.push(Result_ {
            name: name.clone(),
            samples: got,
            wall_s: report_number(&m.stdout, "wall_s")?,
            cpu_s: report_number(&m.stdout, "cpu_s")?,
            sample: m,
        });
    }

    let _ = writeln!(
        report,
        "## Data loader: {count} x 64 KiB from file:// (page cache)\n"
    );
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, built in the dev profile; a smoke test of \
             the harness, not numbers to judge.\n"
        );
    }
    let _ = writeln!(
        report,
        "Each contender iterates one epoch over the same {count} files (batch size 32; ours \
         keeps 64 requests in flight and 8 batches prefetched) and checks it saw every sample \
         at its size. Samples/s and CPU are the loop's own (imports and set-up excluded); {} \
         runs alternating, the median shown; peak RSS is the whole process's. Ratio against \
         the best peer.\n",
        opts.runs
    );
    let _ = writeln!(
        report,
        "| contender | samples/s | MiB/s | CPU s/GiB | peak RSS MiB | vs best peer |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|");
    let best_peer = results
        .iter()
        .filter(|r| !r.name.starts_with("ours"))
        .map(|r| r.samples as f64 / r.wall_s)
        .fold(0.0, f64::max);
    for r in &results {
        let rate = r.samples as f64 / r.wall_s;
        let gib = (r.samples as f64 * size as f64) / (1u64 << 30) as f64;
        let ratio = if best_peer > 0.0 {
            format!("{:.2}x", rate / best_peer)
        } else {
            "—".into()
        };
        let _ = writeln!(
            report,
            "| {} | {:.0} | {:.1} | {:.3} | {:.1} | {ratio} |",
            r.name,
            rate,
            gib * 1024.0 / r.wall_s,
            r.cpu_s / gib,
            r.sample.max_rss_kib as f64 / 1024.0
        );
        json.push(format!(
            "{{\"suite\":\"loader\",\"backend\":\"file\",\"contender\":\"{}\",\"samples\":{},\
             \"sample_size\":{size},\"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\
             \"samples_per_s\":{:.1},\"max_rss_kib\":{}}}",
            r.name, r.samples, opts.runs, r.wall_s, r.cpu_s, rate, r.sample.max_rss_kib
        ));
    }
    for (name, why) in &not_run {
        let _ = writeln!(report, "| {name} | not run: {why} | | | | |");
    }
    let _ = writeln!(
        report,
        "\nTarget (issue: data loader): at least 2x the best peer. Not yet measured here: the \
         same on the S3 test server.\n"
    );
    Ok(Vec::new())
}
