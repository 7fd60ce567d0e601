//! `cargo xtask bench`: our build and its peers on the same data, in the same run,
//! alternating (A B A B ...), reporting medians and ratios. Every contender is a child
//! process measured the same way (see `measure.rs`). The `file` suite is here, the `s3`
//! suite in `s3bench.rs`, the `az` suite in `azbench.rs`, the `datagen` suite in
//! `datagenbench.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{measure, median, Sample};
use crate::{cargo, root};

const SUITES: &[&str] = &[
    "limits",
    "file",
    "direct",
    "s3",
    "az",
    "loader",
    "checkpoint",
    "datagen",
    "python",
    "metrics",
    "tfrecord",
];

pub struct Options {
    pub quick: bool,
    pub runs: usize,
    pub data_dir: PathBuf,
    /// `--endpoint`: an S3 endpoint to measure instead of a SeaweedFS started here.
    pub endpoint: Option<String>,
    /// `--bucket`: an existing bucket to work in instead of a fresh one.
    pub bucket: Option<String>,
    /// `--compare`: an earlier run's JSON to print the changes against.
    pub compare: Option<PathBuf>,
    /// `--procs`: the number of processes the multi-process rows of the `s3` and `datagen`
    /// suites run (1: none).
    pub procs: usize,
}

/// Processes of the multi-process rows unless `--procs` says otherwise.
pub const DEFAULT_PROCS: usize = 2;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut suites = Vec::new();
    let mut opts = Options {
        quick: false,
        runs: 3,
        data_dir: root().join("target/bench-data"),
        endpoint: None,
        bucket: None,
        compare: None,
        procs: DEFAULT_PROCS,
    };
    let mut runs = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--runs" => {
                let v = it.next().ok_or("--runs needs a number")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--runs: '{v}' is not a number"))?;
                if n == 0 {
                    return Err("--runs must be at least 1".into());
                }
                runs = Some(n);
            }
            "--procs" => {
                let v = it.next().ok_or("--procs needs a number")?;
                opts.procs = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--procs: '{v}' is not a number of processes"))?;
            }
            "--data-dir" => {
                opts.data_dir = PathBuf::from(it.next().ok_or("--data-dir needs a path")?);
            }
            "--endpoint" => {
                let v = it.next().ok_or("--endpoint needs a URL")?;
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!("--endpoint: '{v}' is not an http(s):// URL"));
                }
                opts.endpoint = Some(v.trim_end_matches('/').to_owned());
            }
            "--bucket" => opts.bucket = Some(it.next().ok_or("--bucket needs a name")?.clone()),
            "--compare" => {
                let v = PathBuf::from(it.next().ok_or("--compare needs a JSON file")?);
                // Read now: a bad path should not wait for the whole bench to fail.
                std::fs::read_to_string(&v).map_err(|e| format!("{}: {e}", v.display()))?;
                opts.compare = Some(v);
            }
            "all" => suites.extend(SUITES.iter().map(|s| s.to_string())),
            s if SUITES.contains(&s) => suites.push(s.to_owned()),
            other => {
                return Err(format!(
                    "bench: unknown suite or option '{other}' (suites: {}, all)",
                    SUITES.join(", ")
                ))
            }
        }
    }
    opts.runs = runs.unwrap_or(if opts.quick { 1 } else { 3 });
    if suites.is_empty() {
        suites.extend(SUITES.iter().map(|s| s.to_string()));
    }
    suites.dedup();

    let mut report = String::new();
    let mut json = Vec::new();
    let mut failed = Vec::new();
    let as_json = |lines: &[String]| format!("[\n  {}\n]\n", lines.join(",\n  "));
    for suite in &suites {
        let (mut r, mut j) = (String::new(), Vec::new());
        match suite.as_str() {
            "limits" => crate::limits::limits_suite(&opts, &mut r, &mut j)?,
            "file" => file_suite(&opts, &mut r, &mut j)?,
            "s3" => failed.extend(crate::s3bench::s3_suite(&opts, &mut r, &mut j)?),
            "az" => failed.extend(crate::azbench::az_suite(&opts, &mut r, &mut j)?),
            "datagen" => failed.extend(crate::datagenbench::datagen_suite(&opts, &mut r, &mut j)?),
            "metrics" => crate::metricsbench::metrics_suite(&opts, &mut r, &mut j)?,
            "direct" => crate::directbench::direct_suite(&opts, &mut r, &mut j)?,
            "loader" => failed.extend(crate::loaderbench::loader_suite(&opts, &mut r, &mut j)?),
            "python" => failed.extend(crate::s3bench::python_suite(&opts, &mut r, &mut j)?),
            "checkpoint" => failed.extend(crate::checkpointbench::checkpoint_suite(
                &opts, &mut r, &mut j,
            )?),
            "tfrecord" => {
                failed.extend(crate::tfrecordbench::tfrecord_suite(&opts, &mut r, &mut j)?)
            }
            _ => unreachable!("suites are validated above"),
        }
        // The suite's chart, beside its report (target/bench/ and, for full runs,
        // docs/bench/), linked from it.
        let panels = crate::chart::panels(&j);
        let title = format!(
            "cargo xtask bench {suite}{}",
            if opts.quick { " --quick" } else { "" }
        );
        let mut drawn = false;
        for dir in chart_dirs(&opts) {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            drawn = crate::chart::write_svg(&dir.join(format!("{suite}.svg")), &title, &panels)?;
        }
        if drawn {
            let _ = writeln!(
                r,
                "![{suite}: throughput per contender, ours in blue]({suite}.svg)\n"
            );
        }
        if !opts.quick {
            // Full runs are the published numbers: each suite in docs/bench/SUITE.{md,json}
            // as soon as it is done, so a long `all` cut short still publishes what it ran.
            let docs = root().join("docs/bench");
            std::fs::create_dir_all(&docs).map_err(|e| format!("{}: {e}", docs.display()))?;
            write(&docs.join(format!("{suite}.md")), &r)?;
            write(&docs.join(format!("{suite}.json")), &as_json(&j))?;
        }
        report += &r;
        json.extend(j.iter().cloned());
    }
    print!("\n{report}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    write(&out.join("latest.md"), &report)?;
    write(&out.join("latest.json"), &as_json(&json))?;
    if !opts.quick && SUITES.iter().all(|s| suites.iter().any(|x| x == s)) {
        // All of them together when every suite ran.
        let docs = root().join("docs/bench");
        write(&docs.join("latest.md"), &report)?;
        write(&docs.join("latest.json"), &as_json(&json))?;
    }
    if let Some(old) = &opts.compare {
        let text = std::fs::read_to_string(old).map_err(|e| format!("{}: {e}", old.display()))?;
        println!(
            "\n## Change against {}\n\n{}",
            old.display(),
            crate::compare::compare(&text, &as_json(&json))
                .map_err(|e| format!("{}: {e}", old.display()))?
        );
    }
    if !failed.is_empty() {
        // The report shows what failed; the exit status says that something did.
        return Err(format!("runs failed: {}", failed.join(", ")));
    }
    Ok(())
}

/// The order contenders run in on run number `run`: A B C ..., then ... C B A, so no one
/// always goes first.
pub fn run_order(run: usize, contenders: usize) -> Vec<usize> {
    if run % 2 == 0 {
        (0..contenders).collect()
    } else {
        (0..contenders).rev().collect()
    }
}

/// The line a `--quick` report starts with.
pub fn quick_note(opts: &Options, report: &mut String) {
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, built in the dev profile; a smoke test of \
             the harness, not numbers to judge.\n"
        );
    }
}

/// Where charts go: target/bench, and docs/bench for full runs.
fn chart_dirs(opts: &Options) -> Vec<PathBuf> {
    let mut dirs = vec![root().join("target/bench")];
    if !opts.quick {
        dirs.push(root().join("docs/bench"));
    }
    dirs
}

pub fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// A set of files to read: `count` files of `size` bytes in `dir`.
struct Workload {
    name: &'static str,
    dir: PathBuf,
    count: usize,
    size: usize,
    /// Reads in flight for our reader.
    jobs: usize,
}

impl Workload {
    fn files(&self) -> Vec<PathBuf> {
        (0..self.count)
            .map(|i| self.dir.join(format!("f{i:06}.bin")))
            .collect()
    }

    fn bytes(&self) -> u64 {
        (self.count * self.size) as u64
    }

    /// Create the files unless they are already there at the right size.
    fn prepare(&self) -> Result<(), String> {
        let files = self.files();
        let ready = files
            .iter()
            .all(|f| f.metadata().is_ok_and(|m| m.len() == self.size as u64))
            && std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0) == self.count;
        if ready {
            return Ok(());
        }
        eprintln!(
            "xtask: creating {} files of {} bytes in {}",
            self.count,
            self.size,
            self.dir.display()
        );
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut block = vec![0u8; self.size];
        for f in files {
            // Distinct, incompressible content per file.
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = chunk.len();
                chunk.copy_from_slice(&x.to_le_bytes()[..n]);
            }
            std::fs::write(&f, &block).map_err(|e| format!("{}: {e}", f.display()))?;
        }
        Ok(())
    }
}

/// Build an example of one of our crates and return its path: in release mode (fat LTO) for
/// real numbers; for `--quick` in the dev profile, which reuses what `cargo xtask test` has
/// compiled (CI runs the quick bench right after the tests, and a fat-LTO build would take
/// most of its time).
pub fn build_example(
    opts: &Options,
    package: &str,
    features: &[&str],
    example: &str,
) -> Result<PathBuf, String> {
    let profile = if opts.quick { "debug" } else { "release" };
    eprintln!("xtask: building {example} ({profile})");
    let mut c = cargo();
    c.arg("build");
    if opts.quick {
        // Exactly the package set and features of `cargo xtask test`, so cargo resolves the
        // same features and reuses its artifacts instead of rebuilding the SDKs.
        c.arg("--workspace").args(crate::FEATURES);
    } else {
        c.arg("--release").args(["-p", package]);
        if !features.is_empty() {
            c.args(["--features", &features.join(",")]);
        }
    }
    crate::run(c.args(["--example", example]))?;
    Ok(root()
        .join("target")
        .join(profile)
        .join("examples")
        .join(example))
}

type Verify = Box<dyn Fn(&Workload, &Sample) -> Result<(), String>>;

/// One way of reading a workload.
struct Contender {
    name: &'static str,
    command: Box<dyn Fn(&Workload) -> Command>,
    /// Whether its stdout is a report to keep (else it goes to /dev/null).
    capture: bool,
    /// Checks the run's output (our reader reports what it read; cat reports nothing).
    verify: Verify,
}

fn file_suite(opts: &Options, report: &mut String, json: &mut Vec<String>) -> Result<(), String> {
    let reader = build_example(opts, "s3dlio-store-fs", &[], "read_tree")?;

    let (large_count, small_count) = if opts.quick {
        (16, 2_000)
    } else {
        (128, 10_000)
    };
    let workloads = [
        Workload {
            name: "large files (16 MiB)",
            dir: opts.data_dir.join(format!("file/large-{large_count}")),
            count: large_count,
            size: 16 << 20,
            jobs: 4,
        },
        Workload {
            name: "small files (8 KiB)",
            dir: opts.data_dir.join(format!("file/small-{small_count}")),
            count: small_count,
            size: 8 << 10,
            jobs: 16,
        },
    ];

    let ours = |name: &'static str, streamed: bool| {
        let reader = reader.clone();
        Contender {
            name,
            command: Box::new(move |w: &Workload| {
                let mut c = Command::new(&reader);
                c.arg(format!("file://{}/", w.dir.display()));
                c.args(["-j", &w.jobs.to_string()]);
                if streamed {
                    c.arg("--stream");
                }
                c
            }),
            capture: true,
            verify: Box::new(|w: &Workload, s: &Sample| {
                let want = format!("objects={} bytes={}", w.count, w.bytes());
                if s.stdout.trim() == want {
                    Ok(())
                } else {
                    Err(format!(
                        "read_tree reported '{}', expected '{want}'",
                        s.stdout.trim()
                    ))
                }
            }),
        }
    };
    let contenders = [
        ours("s3dlio file://, whole objects", false),
        ours("s3dlio file://, streamed", true),
        Contender {
            name: "cat",
            command: Box::new(|w: &Workload| {
                let mut c = Command::new("cat");
                c.args(w.files());
                c
            }),
            capture: false,
            verify: Box::new(|_, _| Ok(())),
        },
    ];

    let _ = writeln!(report, "## file:// reads from the page cache\n");
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, our side built in the dev profile; a \
             smoke test of the harness, not numbers to judge.\n"
        );
    }
    let _ = writeln!(
        report,
        "{} runs per contender, alternating; the median by wall time is shown. {} cores. \
         Ratio is against `cat` in the same run. Our reader lists the directory through the \
         store and keeps 4 (large) or 16 (small) reads in flight; \"whole objects\" reads each \
         object into one buffer (`GetResult::bytes`), \"streamed\" consumes 1 MiB chunks \
         (`GetResult::into_stream`), as `cat` does with its 128 KiB buffer.\n",
        opts.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        report,
        "| workload | contender | GiB/s | files/s | CPU s/GiB | peak RSS MiB | vs cat |"
    );
    let _ = writeln!(report, "|---|---|---:|---:|---:|---:|---:|");

    for w in &workloads {
        w.prepare()?;
        // Warm the page cache: both contenders read cached data.
        measure(Command::new("cat").args(w.files()), false)?;
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
        for run in 0..opts.runs {
            let order = run_order(run, contenders.len());
            for i in order {
                let c = &contenders[i];
                let s = measure(&mut (c.command)(w), c.capture)?;
                (c.verify)(w, &s)?;
                samples[i].push(s);
            }
        }
        let medians: Vec<Sample> = samples.iter().map(|s| median(s)).collect();
        let gib = w.bytes() as f64 / (1u64 << 30) as f64;
        let cat = &medians[contenders.len() - 1];
        for (c, m) in contenders.iter().zip(&medians) {
            let secs = m.wall.as_secs_f64();
            let ratio = cat.wall.as_secs_f64() / secs;
            let _ = writeln!(
                report,
                "| {} | {} | {:.2} | {:.0} | {:.3} | {:.1} | {:.2}x |",
                w.name,
                c.name,
                gib / secs,
                w.count as f64 / secs,
                m.cpu.as_secs_f64() / gib,
                m.max_rss_kib as f64 / 1024.0,
                ratio
            );
            json.push(format!(
                "{{\"suite\":\"file\",\"workload\":\"{}\",\"contender\":\"{}\",\"files\":{},\"bytes\":{},\
                 \"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\"max_rss_kib\":{},\"gib_per_s\":{:.4},\
                 \"files_per_s\":{:.1},\"cpu_s_per_gib\":{:.4},\"ratio_vs_cat\":{:.4}}}",
                w.name,
                c.name,
                w.count,
                w.bytes(),
                opts.runs,
                secs,
                m.cpu.as_secs_f64(),
                m.max_rss_kib,
                gib / secs,
                w.count as f64 / secs,
                m.cpu.as_secs_f64() / gib,
                ratio
            ));
        }
    }
    let _ = writeln!(
        report,
        "\nTargets (issue: foundation): large files at >= 90% of cat's GiB/s; small files at \
         >= 50,000 files/s on 2 cores.\n"
    );
    Ok(())
}
