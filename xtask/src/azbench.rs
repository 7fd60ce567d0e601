//! `cargo xtask bench az`: our Azure backend beside Microsoft's Python SDK
//! (`azure-storage-blob`) on the same Azurite in the same run: PUT and GET of large and
//! small blobs, and LIST.
//!
//! As in the S3 suite, every contender is a child process that does one operation and
//! reports, as one JSON line, the wall and CPU time of the operation phase alone: ours is
//! `crates/store-azure/examples/az_load.rs`, the peer runs `xtask/bench/az_peer.py` in the
//! venv `target/bench-tools/azure`. xtask adds the peak RSS and Azurite's CPU over the run.
//! GET and LIST read one shared data set our tool writes once; each PUT writes a prefix of
//! its own, which is listed (count and bytes checked) and deleted. Azurite slows down as it
//! holds more blobs, so the data stays small and a run's blobs are deleted after it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::{build_example, Options};
use crate::measure::measure;
use crate::s3bench::{js, machine_busy, one_line, process_cpu, source_version, thousands, Phase};
use crate::{servers, tools};

const MIB: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const CONTAINER: &str = "s3dlio-bench";
/// The Python SDK's thread pool (as boto3's in the S3 suite).
const PY_JOBS: usize = 16;

struct Workload {
    name: String,
    op: &'static str,
    count: usize,
    size: usize,
    large: bool,
    shared: &'static str,
}

enum Who {
    Ours(PathBuf),
    Python(PathBuf),
}

struct Contender {
    name: String,
    who: Who,
    ready: Result<(), String>,
}

impl Contender {
    fn jobs(&self, w: &Workload) -> usize {
        match (&self.who, w.large) {
            (Who::Python(_), _) => PY_JOBS,
            (Who::Ours(_), true) => 16,
            (Who::Ours(_), false) => 64,
        }
    }
}

struct Sample {
    wall: f64,
    cpu: f64,
    server_cpu: Option<f64>,
    other_cpu: Option<f64>,
    rss_kib: u64,
}

/// Where contenders work: Azurite's endpoint, in a connection string.
struct Target {
    conn: String,
    az_load: PathBuf,
    server_pid: Option<u32>,
}

impl Target {
    fn env(&self, cmd: &mut Command) {
        servers::scrub_aws(cmd);
        cmd.env("AZURE_STORAGE_CONNECTION_STRING", &self.conn);
    }

    fn uri(&self, prefix: &str) -> String {
        format!("az://{}/{CONTAINER}/{prefix}", servers::AZURITE_ACCOUNT)
    }

    /// Our tool, unmeasured: setup, checks, cleanup.
    fn tool(&self, args: &[&str]) -> Result<Phase, String> {
        let mut c = Command::new(&self.az_load);
        c.args(args);
        self.env(&mut c);
        let out = c.output().map_err(|e| format!("az_load: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "az_load {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Phase::parse(&String::from_utf8_lossy(&out.stdout))
    }

    fn check(&self, prefix: &str, count: usize, size: usize) -> Result<(), String> {
        let got = self.tool(&["list", &self.uri(prefix)])?;
        if got.ops != count as u64 || got.bytes != (count * size) as u64 {
            return Err(format!(
                "{} holds {} blobs and {} bytes, expected {count} and {}",
                self.uri(prefix),
                got.ops,
                got.bytes,
                count * size
            ));
        }
        Ok(())
    }
}

/// Runs the suite and appends to the report; returns the runs that failed.
pub fn az_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let az_load = build_example(opts, "s3dlio-store-azure", &[], "az_load")?;
    let venv = tools::install_bench_venv("azure");
    let azurite = tools::install_azurite()?;
    servers::catch_signals();
    let server = servers::start_azurite(&azurite, "target/bench-tools/azurite-runs")?;
    let endpoint = server
        .var("S3DLIO_TEST_AZURITE")
        .ok_or("Azurite's endpoint is not set")?
        .to_owned();
    let target = Target {
        conn: format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={endpoint};",
            servers::AZURITE_ACCOUNT,
            servers::AZURITE_KEY
        ),
        az_load,
        server_pid: server.pid("azurite"),
    };
    let script = crate::root().join("xtask/bench/az_peer.py");
    let contenders = [
        Contender {
            name: "ours (s3dlio-store-azure)".into(),
            who: Who::Ours(target.az_load.clone()),
            ready: Ok(()),
        },
        Contender {
            name: format!("Python {}", tools::AZURE_BLOB_PY.replace("==", " ")),
            who: Who::Python(venv.python.clone()),
            ready: venv.status("azure-storage-blob"),
        },
    ];
    let (large, small, keys) = if opts.quick {
        (4, 100, 300)
    } else {
        (16, 500, 2_000)
    };
    let workloads = [
        Workload {
            name: format!("PUT {large} x 16 MiB"),
            op: "put",
            count: large,
            size: 16 * MIB,
            large: true,
            shared: "",
        },
        Workload {
            name: format!("GET {large} x 16 MiB"),
            op: "get",
            count: large,
            size: 16 * MIB,
            large: true,
            shared: "shared/large/",
        },
        Workload {
            name: format!("PUT {small} x 4 KiB"),
            op: "put",
            count: small,
            size: 4 << 10,
            large: false,
            shared: "",
        },
        Workload {
            name: format!("GET {small} x 4 KiB"),
            op: "get",
            count: small,
            size: 4 << 10,
            large: false,
            shared: "shared/small/",
        },
        Workload {
            name: format!("LIST {} keys", thousands(keys as f64)),
            op: "list",
            count: keys,
            size: 4 << 10,
            large: false,
            shared: "shared/list/",
        },
    ];
    target.tool(&["create-container", &target.uri("")])?;
    for w in workloads.iter().filter(|w| w.op != "put") {
        let (n, s) = (w.count.to_string(), w.size.to_string());
        eprintln!(
            "xtask: writing {} blobs of {} bytes to {}",
            w.count,
            w.size,
            target.uri(w.shared)
        );
        target.tool(&["put", &target.uri(w.shared), "-n", &n, "-s", &s, "-j", "16"])?;
        target.check(w.shared, w.count, w.size)?;
    }

    let mut results: Vec<Vec<Result<Vec<Sample>, String>>> = contenders
        .iter()
        .map(|c| {
            workloads
                .iter()
                .map(|_| c.ready.clone().map(|()| Vec::new()))
                .collect()
        })
        .collect();
    for (wi, w) in workloads.iter().enumerate() {
        eprintln!("xtask: {}", w.name);
        for run in 0..opts.runs {
            let order: Vec<usize> = if run % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
            for ci in order {
                if servers::caught_signal().is_some() {
                    return Err("interrupted".into());
                }
                let c = &contenders[ci];
                let Ok(samples) = &mut results[ci][wi] else {
                    continue;
                };
                let prefix = if w.op == "put" {
                    format!("put/{}/c{ci}/r{run}/", w.name.replace(' ', ""))
                } else {
                    w.shared.to_owned()
                };
                match one_run(&target, c, w, &prefix, &script) {
                    Ok(s) => {
                        eprintln!(
                            "xtask:   {:<40} {:>8.3} s  cpu {:>7.3} s",
                            c.name, s.wall, s.cpu
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!("xtask: {} failed on {}: {e}", c.name, w.name);
                        results[ci][wi] = Err(e);
                    }
                }
                if w.op == "put" {
                    target.tool(&["delete", &target.uri(&prefix)])?;
                }
            }
        }
    }
    drop(server);
    write_report(opts, &contenders, &workloads, &results, report, json);
    Ok(contenders
        .iter()
        .zip(&results)
        .flat_map(|(c, per_w)| {
            per_w
                .iter()
                .zip(&workloads)
                .filter(|(r, _)| c.ready.is_ok() && r.is_err())
                .map(move |(_, w)| format!("{} ({})", c.name, w.name))
        })
        .collect())
}

fn one_run(
    t: &Target,
    c: &Contender,
    w: &Workload,
    prefix: &str,
    script: &Path,
) -> Result<Sample, String> {
    let (n, s, j) = (
        w.count.to_string(),
        w.size.to_string(),
        c.jobs(w).to_string(),
    );
    let mut cmd = match &c.who {
        Who::Ours(bin) => {
            let mut cmd = Command::new(bin);
            cmd.args([w.op, &t.uri(prefix), "-n", &n, "-s", &s, "-j", &j]);
            cmd
        }
        Who::Python(python) => {
            let mut cmd = Command::new(python);
            cmd.arg(script)
                .args(["--op", w.op, "--container", CONTAINER, "--prefix", prefix])
                .args(["-n", &n, "-s", &s, "-j", &j]);
            cmd
        }
    };
    t.env(&mut cmd);
    let (server0, busy0) = (t.server_pid.and_then(process_cpu), machine_busy());
    let sample = measure(&mut cmd, true)?;
    let (server1, busy1) = (t.server_pid.and_then(process_cpu), machine_busy());
    let phase = Phase::parse(&sample.stdout)?;
    let want = (w.count * w.size) as u64;
    if phase.ops != w.count as u64 || phase.bytes != want {
        return Err(format!(
            "reported {} blobs and {} bytes, expected {} and {want}",
            phase.ops, phase.bytes, w.count
        ));
    }
    if w.op == "put" {
        t.check(prefix, w.count, w.size)?;
    }
    let server_cpu = server0.zip(server1).map(|(a, b)| b - a);
    let process_cpu = sample.cpu.as_secs_f64();
    Ok(Sample {
        wall: phase.wall_s,
        cpu: phase.cpu_s,
        server_cpu,
        other_cpu: busy0
            .zip(busy1)
            .map(|(a, b)| (b - a - process_cpu - server_cpu.unwrap_or(0.0)).max(0.0)),
        rss_kib: sample.max_rss_kib,
    })
}

fn write_report(
    opts: &Options,
    contenders: &[Contender],
    workloads: &[Workload],
    results: &[Vec<Result<Vec<Sample>, String>>],
    report: &mut String,
    json: &mut Vec<String>,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        report,
        "## Azure Blob: PUT, GET and LIST against Azurite {} (in memory, started by xtask on \
         127.0.0.1, on the same {cores} cores as the clients)\n",
        tools::AZURITE.trim_start_matches("azurite@")
    );
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, our side built in the dev profile; a smoke \
             test of the harness, not numbers to judge.\n"
        );
    }
    let _ = writeln!(
        report,
        "- **Method**: as the S3 suite: each contender is a child process timing only its \
         operation phase (wall, and client CPU as user + system time); {} per contender, \
         alternating, median by wall time. Server CPU is Azurite's over the run.\n\
         - **Ours**: `az_load` (crates/store-azure example) from {}, default `AzureOptions` \
         (Shared Key signing, 16 MiB single-put threshold, 8 MiB blocks and ranged GETs, 8 in \
         flight per blob). **Peer**: the Python SDK with a thread pool of {PY_JOBS} \
         (`upload_blob`, `download_blob`, `list_blobs`), harness `xtask/bench/az_peer.py`.\n\
         - Azurite is single-threaded JavaScript: on this machine it, not the client, bounds \
         throughput; the client CPU columns are the comparison that carries over to Azure.\n\
         - **Reproduce**: `cargo xtask bench az{}`.\n",
        if opts.runs == 1 {
            "one run".to_owned()
        } else {
            format!("{} runs", opts.runs)
        },
        source_version(),
        if opts.quick { " --quick" } else { "" }
    );
    for (wi, w) in workloads.iter().enumerate() {
        let cpu_head = if w.large {
            "client CPU s/GiB"
        } else {
            "client CPU ms/1k ops"
        };
        let _ = writeln!(report, "### {}\n", w.name);
        let _ = writeln!(
            report,
            "| contender | J | MiB/s | ops/s | {cpu_head} | server CPU s | peak RSS MiB | \
             other CPU s | vs Python |"
        );
        let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let rows: Vec<Option<(f64, f64, &Sample)>> = results
            .iter()
            .map(|per_w| {
                let samples = per_w[wi].as_ref().ok()?;
                let mut v: Vec<&Sample> = samples.iter().collect();
                v.sort_by(|a, b| a.wall.total_cmp(&b.wall));
                let m = *v.get(v.len().checked_sub(1)? / 2)?;
                let bytes = (w.count * w.size) as f64;
                let ops_s = w.count as f64 / m.wall;
                let cpu_unit = if w.large {
                    m.cpu / (bytes / GIB)
                } else {
                    m.cpu * 1e6 / w.count as f64
                };
                Some((ops_s, cpu_unit, m))
            })
            .collect();
        let python = rows.get(1).copied().flatten();
        for ((c, row), per_w) in contenders.iter().zip(&rows).zip(results) {
            let j = if w.op == "list" {
                "-".to_owned()
            } else {
                c.jobs(w).to_string()
            };
            let Some((ops_s, cpu_unit, m)) = row else {
                let e = per_w[wi].as_ref().err().map_or("no runs", |e| e.as_str());
                let _ = writeln!(
                    report,
                    "| {} | {j} | failed: {} | | | | | | |",
                    c.name,
                    one_line(e)
                );
                json.push(format!(
                    "{{\"suite\":\"az\",\"workload\":{},\"contender\":{},\"error\":{}}}",
                    js(&w.name),
                    js(&c.name),
                    js(e)
                ));
                continue;
            };
            let mib_s = ops_s * w.size as f64 / MIB as f64;
            let ratio = python.map(|(p, _, _)| ops_s / p);
            let _ = writeln!(
                report,
                "| {} | {j} | {} | {} | {} | {} | {:.0} | {} | {} |",
                c.name,
                if w.op == "list" {
                    "-".into()
                } else {
                    format!("{mib_s:.1}")
                },
                thousands(*ops_s),
                if w.large {
                    format!("{cpu_unit:.3}")
                } else {
                    format!("{cpu_unit:.1}")
                },
                m.server_cpu.map_or("-".into(), |s| format!("{s:.2}")),
                m.rss_kib as f64 / 1024.0,
                m.other_cpu.map_or("-".into(), |s| format!("{s:.1}")),
                ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            );
            json.push(format!(
                "{{\"suite\":\"az\",\"workload\":{},\"contender\":{},\"op\":\"{}\",\"objects\":{},\
                 \"object_size\":{},\"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\"server_cpu_s\":{},\
                 \"max_rss_kib\":{},\"mib_per_s\":{:.3},\"ops_per_s\":{:.1},\"cpu_per_unit\":{:.4},\
                 \"ratio_vs_python\":{}}}",
                js(&w.name),
                js(&c.name),
                w.op,
                w.count,
                w.size,
                opts.runs,
                m.wall,
                m.cpu,
                m.server_cpu.map_or("null".into(), |s| format!("{s:.4}")),
                m.rss_kib,
                mib_s,
                ops_s,
                cpu_unit,
                ratio.map_or("null".into(), |r| format!("{r:.4}")),
            ));
        }
        let _ = writeln!(report);
    }
}
