//! `cargo xtask bench loader`: samples per second through the data loader, ours
//! (`crates/loader/examples/loader_bench.rs`) beside the original s3dlio wheel's
//! `create_async_loader` and s3torchconnector's `S3IterableDataset` in a PyTorch `DataLoader`
//! (`xtask/bench/loader_peer.py`), on the same data in the same run: 10,000 x 64 KiB from
//! `file://` (page cache) and from the S3 test server (SeaweedFS on 127.0.0.1).
//! s3torchconnector reads only s3://, so it runs on the S3 server alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::{build_example, Options};
use hdrhistogram::Histogram;

use crate::latency;
use crate::measure::{measure, report_count, report_line, report_number, Sample};
use crate::s3bench::{close_target, js, one_line, process_cpu, Target, Tool};
use crate::{root, tools};

/// One loader run's report and cost.
struct Result_ {
    name: String,
    sample: Sample,
    samples: u64,
    /// The loop's own wall time, as the contender measured it (imports excluded).
    wall_s: f64,
    cpu_s: f64,
    server_cpu: Option<f64>,
    /// How long the loop waited for each batch (nanoseconds), where the contender says.
    latency: Option<Histogram<u64>>,
}

/// DataLoader worker processes for s3torchconnector: none (reads in the main process), and
/// one per core.
const TORCH_WORKERS: [usize; 2] = [0, 2];

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

type Make = Box<dyn Fn() -> Command>;
/// A contender's name and its median run, or why it has none.
type Named = (String, Result<Result_, String>);
/// One run, and the server's CPU seconds over it.
type ServerSample = (Sample, Option<f64>);

pub fn loader_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let ours = build_example(opts, "s3dlio-loader", &[], "loader_bench")?;
    let s3_load = crate::s3bench::build_s3_load(opts)?;
    let original = tools::install_bench_venv("s3dlio-original");
    let peers = tools::install_bench_venv("peers");
    let (count, size) = if opts.quick {
        (1_000, 64 << 10)
    } else {
        (10_000, 64 << 10)
    };
    let dir = opts.data_dir.join(format!("loader/{count}"));
    prepare(&dir, count, size)?;
    // Warm the page cache: every contender reads cached data.
    measure(
        Command::new("cat").args(
            std::fs::read_dir(&dir)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path())),
        ),
        false,
    )?;
    let script = root().join("xtask/bench/loader_peer.py");
    let s3torch = peers
        .status("torch")
        .and_then(|()| peers.status("s3torchconnector"));
    let s3torch_name = |w: usize| {
        format!(
            "s3torchconnector {} S3IterableDataset, DataLoader {}",
            tools::pin("s3torchconnector"),
            if w == 0 {
                "in the main process".to_owned()
            } else {
                format!("with {w} workers")
            }
        )
    };

    let _ = writeln!(
        report,
        "## Data loader: {count} x 64 KiB from file:// (page cache) and from S3 (SeaweedFS on \
         127.0.0.1)\n"
    );
    crate::bench::quick_note(opts, report);
    let _ = writeln!(
        report,
        "Each contender iterates one epoch over the same {count} objects (batch size 32; ours \
         keeps 64 requests in flight and 8 batches prefetched) and checks it saw every sample \
         at its size. Samples/s and CPU are the loop's own (imports and set-up excluded; \
         DataLoader workers' CPU included); {} runs alternating, the median shown; peak RSS is \
         the whole process's (not its workers'). Server CPU is SeaweedFS's over the run, on \
         the same cores. Ratio against the best peer on the same backend. Peers: the original \
         s3dlio wheel's `create_async_loader` (its own virtualenv), and s3torchconnector's \
         `S3IterableDataset.from_prefix` (endpoint, region and \
         `S3ClientConfig(force_path_style=True)` given; each object read whole by its \
         transform) in a `torch.utils.data.DataLoader`, in the main process and with one \
         worker per core (`enable_sharding=True`, so each object is read once); harness \
         `xtask/bench/loader_peer.py`. Batch latency: the time from one batch's delivery to \
         the next one's (the first from the start of the loop), as the training loop would \
         wait for it, in an HDR histogram; the original's loader yields one sample at a \
         time, so its batch is 32 of them.\n",
        opts.runs
    );
    let _ = writeln!(
        report,
        "| backend | contender | samples/s | MiB/s | CPU s/GiB | server CPU s | peak RSS MiB | \
         vs best peer |{}",
        latency::QUANTILES
            .iter()
            .map(|(l, _)| format!(" batch {l} ms |"))
            .collect::<String>()
    );
    let _ = writeln!(
        report,
        "|---|---|---:|---:|---:|---:|---:|---:|{}",
        "---:|".repeat(latency::QUANTILES.len())
    );
    let mut targets = Vec::new();

    // file://
    let uri = format!("file://{}/", dir.display());
    let mut contenders = ours_contenders(&ours, &uri, count, size, None);
    let mut not_run = vec![(
        "s3torchconnector S3IterableDataset".to_owned(),
        "reads only s3:// (it runs on the S3 server below)".to_owned(),
    )];
    original_contender(
        &original,
        &script,
        &uri,
        count,
        size,
        None,
        &mut contenders,
        &mut not_run,
    );
    let results = measure_all(opts, &contenders, count, None)?;
    let (t, mut failed) = write_rows("file", &results, &not_run, size, opts, report, json);
    targets.push(t);

    // s3://
    let (mut server, target) = crate::s3bench::open_target(opts, &s3_load)?;
    let tool = Tool {
        s3_load: &s3_load,
        target: &target,
    };
    let result = (|| {
        tool.fill("loader/", count, size)?;
        let uri = target.uri("loader/");
        let mut contenders = ours_contenders(&ours, &uri, count, size, Some(&target));
        let mut not_run = Vec::new();
        original_contender(
            &original,
            &script,
            &uri,
            count,
            size,
            Some(&target),
            &mut contenders,
            &mut not_run,
        );
        for w in TORCH_WORKERS {
            match &s3torch {
                Ok(()) => {
                    let (py, script, uri, t) = (
                        peers.python.clone(),
                        script.clone(),
                        uri.clone(),
                        (
                            target.endpoint.clone(),
                            target.region.clone(),
                            env_of(&target),
                        ),
                    );
                    let (n, s) = (count.to_string(), size.to_string());
                    contenders.push((
                        s3torch_name(w),
                        Box::new(move || {
                            let mut c = Command::new(&py);
                            c.arg(&script)
                                .args(["--tool", "s3torchconnector", "--uri", &uri])
                                .args(["-n", &n, "-s", &s, "-b", "32"])
                                .args(["--endpoint", &t.0, "--region", &t.1])
                                .args(["--workers", &w.to_string()]);
                            apply(&mut c, &t.2);
                            c
                        }),
                    ));
                }
                Err(e) => not_run.push((s3torch_name(w), e.clone())),
            }
        }
        let results = measure_all(opts, &contenders, count, target.server_pid)?;
        Ok(write_rows(
            "s3", &results, &not_run, size, opts, report, json,
        ))
    })();
    let (t, f) = close_target(&tool, &mut server, result)?;
    targets.push(t);
    failed.extend(f);
    drop(server);

    let _ = writeln!(
        report,
        "\n### Target (issue 9: at least 2x the best peer; judged on ours ordered)\n"
    );
    for t in targets {
        let _ = writeln!(report, "{t}");
    }
    let _ = writeln!(report);
    Ok(failed)
}

/// The environment a target gives a command (endpoint, keys, region), captured so a
/// command can be rebuilt without borrowing the target.
fn env_of(t: &Target) -> Vec<(String, Option<String>)> {
    let mut c = Command::new("true");
    t.env(&mut c);
    c.get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn apply(c: &mut Command, env: &[(String, Option<String>)]) {
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
}

fn ours_contenders(
    ours: &Path,
    uri: &str,
    count: usize,
    size: usize,
    target: Option<&Target>,
) -> Vec<(String, Make)> {
    let env = target.map(env_of).unwrap_or_default();
    [("ordered", false), ("out of order", true)]
        .into_iter()
        .map(|(what, unordered)| {
            let (ours, uri, env) = (ours.to_path_buf(), uri.to_owned(), env.clone());
            let (n, s) = (count.to_string(), size.to_string());
            let make: Make = Box::new(move || {
                let mut c = Command::new(&ours);
                c.args([&uri, "-n", &n, "-s", &s, "-b", "32"]);
                if unordered {
                    c.arg("--unordered");
                }
                apply(&mut c, &env);
                c
            });
            (format!("ours: s3dlio-loader, {what}"), make)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn original_contender(
    original: &tools::BenchVenv,
    script: &Path,
    uri: &str,
    count: usize,
    size: usize,
    target: Option<&Target>,
    contenders: &mut Vec<(String, Make)>,
    not_run: &mut Vec<(String, String)>,
) {
    let name = "original s3dlio create_async_loader".to_owned();
    match original.status("s3dlio") {
        Ok(()) => {
            let (py, script): (PathBuf, PathBuf) = (original.python.clone(), script.into());
            let (uri, n, s) = (uri.to_owned(), count.to_string(), size.to_string());
            let env = target.map(env_of).unwrap_or_default();
            contenders.push((
                name,
                Box::new(move || {
                    let mut c = Command::new(&py);
                    c.arg(&script).args([
                        "--tool", "s3dlio", "--uri", &uri, "-n", &n, "-s", &s, "-b", "32",
                    ]);
                    apply(&mut c, &env);
                    c
                }),
            ));
        }
        Err(e) => not_run.push((name, e)),
    }
}

/// Every contender `opts.runs` times, alternating; the median run of each by the loop's own
/// wall time, checked.
fn measure_all(
    opts: &Options,
    contenders: &[(String, Make)],
    count: usize,
    server: Option<u32>,
) -> Result<Vec<Named>, String> {
    // Per contender: its runs with the server's CPU meanwhile, or why it failed.
    let mut samples: Vec<Result<Vec<ServerSample>, String>> =
        contenders.iter().map(|_| Ok(Vec::new())).collect();
    for run in 0..opts.runs {
        let order = crate::bench::run_order(run, contenders.len());
        for i in order {
            let Ok(runs) = &mut samples[i] else {
                continue;
            };
            let cpu0 = server.and_then(process_cpu);
            match measure(&mut (contenders[i].1)(), true) {
                Ok(s) => {
                    let cpu1 = server.and_then(process_cpu);
                    runs.push((s, cpu0.zip(cpu1).map(|(a, b)| b - a)));
                }
                Err(e) => {
                    eprintln!("xtask: {} failed: {e}", contenders[i].0);
                    samples[i] = Err(e);
                }
            }
        }
    }
    let mut results = Vec::new();
    for ((name, _), s) in contenders.iter().zip(samples) {
        results.push(s.and_then(|s| {
            // The median by the loop's own wall time.
            let mut s: Vec<&(Sample, Option<f64>)> = s.iter().collect();
            s.sort_by(|a, b| {
                let w = |x: &Sample| report_number(&x.stdout, "wall_s").unwrap_or(f64::MAX);
                w(&a.0).total_cmp(&w(&b.0))
            });
            let (m, server_cpu) = s[(s.len() - 1) / 2].clone();
            let got = report_count(&m.stdout, "samples")?;
            if got != count as u64 {
                return Err(format!("{name}: read {got} samples, expected {count}"));
            }
            Ok(Result_ {
                name: name.clone(),
                samples: got,
                wall_s: report_number(&m.stdout, "wall_s")?,
                cpu_s: report_number(&m.stdout, "cpu_s")?,
                latency: serde_json::from_str(report_line(&m.stdout))
                    .map_err(|e| format!("{name}: report line: {e}"))
                    .and_then(|row| latency::from_json(&row))?,
                sample: m,
                server_cpu,
            })
        }));
    }
    Ok(contenders
        .iter()
        .map(|(name, _)| name.clone())
        .zip(results)
        .collect())
}

/// The rows of one backend; returns its target line, and the names of our contenders that
/// failed.
fn write_rows(
    backend: &str,
    results: &[Named],
    not_run: &[(String, String)],
    size: usize,
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> (String, Vec<String>) {
    let rate = |r: &Result_| r.samples as f64 / r.wall_s;
    let mut failed = Vec::new();
    let best_peer = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|r| !r.name.starts_with("ours"))
        .map(rate)
        .fold(0.0, f64::max);
    for (name, r) in results {
        let r = match r {
            Ok(r) => r,
            Err(why) => {
                if name.starts_with("ours") {
                    failed.push(format!("{name} ({backend})"));
                }
                let _ = writeln!(
                    report,
                    "| {backend} | {name} | failed: {} | | | | | |{}",
                    one_line(why),
                    " |".repeat(latency::QUANTILES.len())
                );
                json.push(format!(
                    "{{\"suite\":\"loader\",\"backend\":\"{backend}\",\"contender\":{},\
                     \"error\":{}}}",
                    js(name),
                    js(why)
                ));
                continue;
            }
        };
        let gib = (r.samples as f64 * size as f64) / (1u64 << 30) as f64;
        let ratio = (best_peer > 0.0).then(|| rate(r) / best_peer);
        let (lat_cells, lat_json) = match &r.latency {
            Some(h) => {
                let p = latency::percentiles_ms(h);
                (
                    p.iter().map(|v| format!(" {v:.2} |")).collect::<String>(),
                    latency::QUANTILES
                        .iter()
                        .zip(p)
                        .map(|((l, _), v)| format!(",\"{l}_ms\":{v:.4}"))
                        .collect::<String>(),
                )
            }
            None => (
                format!(
                    " not reported |{}",
                    " |".repeat(latency::QUANTILES.len() - 1)
                ),
                String::new(),
            ),
        };
        let _ = writeln!(
            report,
            "| {backend} | {} | {:.0} | {:.1} | {:.3} | {} | {:.1} | {} |{lat_cells}",
            r.name,
            rate(r),
            gib * 1024.0 / r.wall_s,
            r.cpu_s / gib,
            r.server_cpu.map_or("-".into(), |v| format!("{v:.2}")),
            r.sample.max_rss_kib as f64 / 1024.0,
            ratio.map_or("-".into(), |v| format!("{v:.2}x")),
        );
        json.push(format!(
            "{{\"suite\":\"loader\",\"backend\":\"{backend}\",\"contender\":{},\
             \"samples\":{},\"sample_size\":{size},\"runs\":{},\"wall_s\":{:.6},\
             \"cpu_s\":{:.6},\"samples_per_s\":{:.1},\"cpu_s_per_gib\":{:.4},\
             \"server_cpu_s\":{},\"max_rss_kib\":{},\"ratio_vs_best_peer\":{}{lat_json}}}",
            js(&r.name),
            r.samples,
            opts.runs,
            r.wall_s,
            r.cpu_s,
            rate(r),
            r.cpu_s / gib,
            r.server_cpu.map_or("null".into(), |v| format!("{v:.4}")),
            r.sample.max_rss_kib,
            ratio.map_or("null".into(), |v| format!("{v:.4}")),
        ));
    }
    for (name, why) in not_run {
        let _ = writeln!(
            report,
            "| {backend} | {name} | not run: {} | | | | | |{}",
            one_line(why),
            " |".repeat(latency::QUANTILES.len())
        );
    }
    let ours = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .find(|r| r.name.starts_with("ours"));
    let target = match ours {
        Some(o) if best_peer > 0.0 => {
            let ratio = rate(o) / best_peer;
            format!(
                "- {backend}: **{}** ({ratio:.2}x: {:.0} vs {best_peer:.0} samples/s)",
                if ratio >= 2.0 { "met" } else { "not met" },
                rate(o)
            )
        }
        _ => format!("- {backend}: not judged (no measurement of ours or of any peer)"),
    };
    (target, failed)
}
