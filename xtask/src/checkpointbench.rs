//! `cargo xtask bench checkpoint`: save and load of one checkpoint with our checkpoint store
//! (`crates/checkpoint/examples/checkpoint_bench.rs`) on `file://` and on the S3 test server,
//! beside `torch.save`/`torch.load` to a local file and s3torchconnector's `S3Checkpoint`
//! (`xtask/bench/checkpoint_peer.py`), and the raw PUT and GET of the same bytes on the same
//! backends (`checkpoint_bench --op raw`), in the same run, alternating. Each phase is a
//! process of its own, so its peak RSS is its own.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use crate::bench::{build_example, Options};
use crate::measure::{measure, report_count, report_number};
use crate::s3bench::{close_target, js, one_line, process_cpu, source_version, Target, Tool};
use crate::{root, servers, tools};

const GIB: f64 = (1u64 << 30) as f64;
/// Shards of our checkpoint: one per rank, the ranks being tasks of one process.
const RANKS: u32 = 4;
/// `s3dlio_checkpoint::Config::default().part_size`, given explicitly so the report says
/// what ran.
const DEFAULT_PART: u64 = 64 << 20;
/// The bound: save and load within 80% of the raw PUT and GET.
const RAW_SHARE: f64 = 0.8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    File,
    S3,
}

impl Backend {
    fn as_str(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::S3 => "s3",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// With the default `Config`.
    Ours,
    /// With `part_size` the shard size: each shard one part, which loads without a copy.
    OursOnePart,
    /// Plain PUTs and GETs of the same bytes through our store: the baseline.
    Raw,
    Torch,
    S3Torch,
}

struct Contender {
    name: String,
    who: Who,
    backend: Backend,
    /// Installed and able to run, or why not.
    ready: Result<(), String>,
}

/// One measured phase.
#[derive(Clone, Debug)]
struct Phase {
    wall: f64,
    cpu: f64,
    bytes: u64,
    max_rss_kib: u64,
    server_cpu: Option<f64>,
}

/// A contender's save and load phases (for the raw baseline: PUT and GET) over the runs.
#[derive(Default)]
struct Runs {
    save: Vec<Phase>,
    load: Vec<Phase>,
}

struct Ctx<'a> {
    bench: PathBuf,
    python: PathBuf,
    script: PathBuf,
    size: u64,
    dir: PathBuf,
    tool: Tool<'a>,
}

pub fn checkpoint_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let bench = build_example(opts, "s3dlio-checkpoint", &[], "checkpoint_bench")?;
    let s3_load = crate::s3bench::build_s3_load(opts)?;
    let peers = tools::install_bench_venv("peers");
    let size: u64 = if opts.quick { 64 << 20 } else { 2 << 30 };
    // A directory of this run's own: two bench runs at once must not delete each other's
    // checkpoints.
    let dir = opts
        .data_dir
        .join(format!("checkpoint/run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let torch = peers.status("torch");
    let s3torch = torch
        .clone()
        .and_then(|()| peers.status("s3torchconnector"));
    let contenders = vec![
        Contender {
            name: "ours: s3dlio-checkpoint".into(),
            who: Who::Ours,
            backend: Backend::File,
            ready: Ok(()),
        },
        Contender {
            name: "ours: s3dlio-checkpoint, one part per shard".into(),
            who: Who::OursOnePart,
            backend: Backend::File,
            ready: Ok(()),
        },
        Contender {
            name: "raw PUT / GET (our file:// store)".into(),
            who: Who::Raw,
            backend: Backend::File,
            ready: Ok(()),
        },
        Contender {
            name: format!("torch.save / torch.load {}", tools::pin("torch")),
            who: Who::Torch,
            backend: Backend::File,
            ready: torch,
        },
        Contender {
            name: "ours: s3dlio-checkpoint".into(),
            who: Who::Ours,
            backend: Backend::S3,
            ready: Ok(()),
        },
        Contender {
            name: "ours: s3dlio-checkpoint, one part per shard".into(),
            who: Who::OursOnePart,
            backend: Backend::S3,
            ready: Ok(()),
        },
        Contender {
            name: "raw PUT / GET (our s3:// store)".into(),
            who: Who::Raw,
            backend: Backend::S3,
            ready: Ok(()),
        },
        Contender {
            name: format!(
                "s3torchconnector {} S3Checkpoint",
                tools::pin("s3torchconnector")
            ),
            who: Who::S3Torch,
            backend: Backend::S3,
            ready: s3torch,
        },
    ];

    let (mut server, target) = crate::s3bench::open_target(opts, &s3_load)?;
    let ctx = Ctx {
        bench,
        python: peers.python.clone(),
        script: root().join("xtask/bench/checkpoint_peer.py"),
        size,
        dir: dir.clone(),
        tool: Tool {
            s3_load: &s3_load,
            target: &target,
        },
    };
    let result = measure_all(opts, &ctx, &contenders);
    let results = close_target(&ctx.tool, &mut server, result)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(write_report(
        opts,
        &target,
        size,
        &contenders,
        &results,
        report,
        json,
    ))
}

type Results = Vec<Result<Runs, String>>;
/// A contender's median save and load, or why it has none.
type Medians = Result<(Phase, Phase), String>;

fn measure_all(opts: &Options, ctx: &Ctx<'_>, contenders: &[Contender]) -> Result<Results, String> {
    let mut results: Results = contenders
        .iter()
        .map(|c| c.ready.clone().map(|()| Runs::default()))
        .collect();
    for run in 0..opts.runs {
        let order = crate::bench::run_order(run, contenders.len());
        for ci in order {
            if servers::caught_signal().is_some() {
                return Err("interrupted".into());
            }
            let c = &contenders[ci];
            let Ok(runs) = &mut results[ci] else {
                continue;
            };
            match one_run(ctx, c, run) {
                Ok((save, load)) => {
                    eprintln!(
                        "xtask:   {:<40} {:<4} save {:>7.3} s  load {:>7.3} s",
                        c.name,
                        c.backend.as_str(),
                        save.wall,
                        load.wall
                    );
                    runs.save.push(save);
                    runs.load.push(load);
                }
                Err(e) => {
                    eprintln!("xtask: {} ({}) failed: {e}", c.name, c.backend.as_str());
                    results[ci] = Err(e);
                }
            }
        }
    }
    Ok(results)
}

/// Where a contender's checkpoint of one run goes: a URI (ours), a path or s3:// URI of one
/// object (peers).
fn location(ctx: &Ctx<'_>, c: &Contender, run: usize) -> (String, String) {
    let slug = match c.who {
        Who::Ours => "ours",
        Who::OursOnePart => "ours-one-part",
        Who::Raw => "raw",
        Who::Torch => "torch",
        Who::S3Torch => "s3torch",
    };
    let prefix = format!("ckpt/{slug}-r{run}/");
    let uri = match c.backend {
        Backend::File => format!("file://{}/{prefix}", ctx.dir.display()),
        Backend::S3 => ctx.tool.target.uri(&prefix),
    };
    (prefix, uri)
}

/// One save and one load (or PUT and GET), checked, then whatever they stored deleted.
fn one_run(ctx: &Ctx<'_>, c: &Contender, run: usize) -> Result<(Phase, Phase), String> {
    let (prefix, uri) = location(ctx, c, run);
    let t = ctx.tool.target;
    let size = ctx.size.to_string();
    let part = if c.who == Who::OursOnePart {
        (ctx.size / u64::from(RANKS)).max(1)
    } else {
        DEFAULT_PART
    };
    let ours = |args: &[&str]| {
        let mut cmd = Command::new(&ctx.bench);
        cmd.arg(&uri)
            .args(["--size", &size, "--ranks", &RANKS.to_string()])
            .args(["--part-size", &part.to_string()])
            .args(args);
        t.env(&mut cmd);
        cmd
    };
    let peer = |op: &str| {
        let mut cmd = Command::new(&ctx.python);
        cmd.arg(&ctx.script)
            .args(["--op", op, "--size", &size])
            .args(["--region", &t.region]);
        match c.who {
            Who::Torch => {
                let path = ctx.dir.join(&prefix).join("state_dict.pt");
                cmd.args(["--tool", "torch", "--uri"]).arg(path);
            }
            _ => {
                cmd.args(["--tool", "s3torchconnector", "--uri"])
                    .arg(format!("{uri}state_dict.pt"))
                    .args(["--endpoint", &t.endpoint]);
            }
        }
        t.env(&mut cmd);
        cmd
    };
    if c.backend == Backend::File {
        let d = ctx.dir.join(&prefix);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let result = match c.who {
        Who::Ours | Who::OursOnePart => phase(ctx, &mut ours(&["--op", "save", "--keep"]), "save")
            .and_then(|s| {
                // Without --keep, the load deletes everything under the URI at its end.
                Ok((s, phase(ctx, &mut ours(&["--op", "load"]), "load")?))
            }),
        Who::Raw => phase(ctx, &mut ours(&["--op", "raw-put", "--keep"]), "raw_put")
            .and_then(|p| Ok((p, phase(ctx, &mut ours(&["--op", "raw-get"]), "raw_get")?))),
        Who::Torch | Who::S3Torch => phase(ctx, &mut peer("save"), "save")
            .and_then(|s| Ok((s, phase(ctx, &mut peer("load"), "load")?))),
    };
    // Whatever the run left, the next starts from the same state.
    match c.backend {
        Backend::File => {
            let _ = std::fs::remove_dir_all(ctx.dir.join(&prefix));
        }
        Backend::S3 => {
            ctx.tool.delete(&prefix)?;
        }
    }
    let (save, load) = result?;
    for p in [&save, &load] {
        // torch counts tensor bytes: its files are a little larger, not smaller.
        if p.bytes != ctx.size {
            return Err(format!("reported {} bytes, expected {}", p.bytes, ctx.size));
        }
    }
    Ok((save, load))
}

/// Run a command that reports the phase `op`, and measure it and the server meanwhile.
fn phase(ctx: &Ctx<'_>, cmd: &mut Command, op: &str) -> Result<Phase, String> {
    let pid = ctx.tool.target.server_pid;
    let server0 = pid.and_then(process_cpu);
    let sample = measure(cmd, true)?;
    let server1 = pid.and_then(process_cpu);
    parse_phase(
        &sample.stdout,
        op,
        sample.max_rss_kib,
        server0.zip(server1).map(|(a, b)| b - a),
    )
}

/// The phase `op` from a report line of `stdout` (`{"op":"save","bytes":..,...}`).
fn parse_phase(
    stdout: &str,
    op: &str,
    max_rss_kib: u64,
    server_cpu: Option<f64>,
) -> Result<Phase, String> {
    let line = stdout
        .lines()
        .find(|l| l.replace(' ', "").contains(&format!("\"op\":\"{op}\"")))
        .ok_or_else(|| format!("no '{op}' line in the report '{}'", stdout.trim()))?;
    Ok(Phase {
        wall: report_number(line, "wall_s")?,
        cpu: report_number(line, "cpu_s")?,
        bytes: report_count(line, "bytes")?,
        max_rss_kib,
        server_cpu,
    })
}

/// The median phase by wall time.
fn median(p: &[Phase]) -> Option<Phase> {
    let mut p = p.to_vec();
    p.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    p.get(p.len().checked_sub(1)? / 2).cloned()
}

fn write_report(
    opts: &Options,
    t: &Target,
    size: u64,
    contenders: &[Contender],
    results: &Results,
    report: &mut String,
    json: &mut Vec<String>,
) -> Vec<String> {
    let gib = size as f64 / GIB;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        report,
        "## Checkpoints: save and load of {} on file:// and on S3 (SeaweedFS on 127.0.0.1)\n",
        human(size)
    );
    crate::bench::quick_note(opts, report);
    let _ = writeln!(
        report,
        "- **Ours**: `checkpoint_bench` (crates/checkpoint example, {} build of {}): {RANKS} \
         ranks as tasks of one process, one shard of {} each, default `Config` (64 MiB parts, \
         8 part uploads and 16 ranged reads of 16 MiB in flight per shard), and again with \
         `part_size` the shard size (\"one part per shard\": each shard is one object, loaded \
         by the backend's whole-object read with no copy; the documented choice where loads \
         matter more than streaming-save memory); save = every shard, the markers, the \
         manifest and `latest`; load = the latest manifest, then every shard into one \
         buffer, every CRC32C checked.\n\
         - **Raw**: the same shards as plain PUTs (`put_bytes`), then whole GETs, through \
         the same store: the baseline the issue's targets are set against.\n\
         - **Peers**: `torch.save`/`torch.load(weights_only=True)` of a state_dict of float32 \
         tensors of the same total size (an embedding and transformer layers of 16 to 64 MiB \
         matrices) to a local file beside ours on file://; s3torchconnector's `S3Checkpoint` \
         writer and reader with `torch.save`/`torch.load` on S3 (endpoint given, \
         `S3ClientConfig(force_path_style=True)`); harness `xtask/bench/checkpoint_peer.py`. \
         Their tensors are generated before the clock starts, as ours are.\n\
         - **Method**: each phase (save, load) is a process of its own, timed inside (wall, \
         user + system CPU); peak RSS from `wait4` (it includes the checkpoint's data in \
         memory, and for the peers PyTorch itself). {} runs per contender, alternating \
         order, the median by wall time. file:// data is in the page cache (nothing is \
         synced, by ours or by torch). Server CPU is SeaweedFS's over the phase; it shares \
         the {cores} cores with the client.\n",
        if opts.quick {
            "dev-profile"
        } else {
            "release (fat LTO)"
        },
        source_version(),
        human(size / u64::from(RANKS)),
        opts.runs,
    );
    let _ = writeln!(
        report,
        "| backend | contender | save GiB/s | load GiB/s | save CPU s/GiB | load CPU s/GiB | \
         save peak RSS MiB | load peak RSS MiB | server CPU s save / load | save vs best \
         peer | load vs best peer |"
    );
    let _ = writeln!(
        report,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut failed = Vec::new();
    let mut targets = Vec::new();
    for backend in [Backend::File, Backend::S3] {
        let rows: Vec<(&Contender, Medians)> = contenders
            .iter()
            .zip(results)
            .filter(|(c, _)| c.backend == backend)
            .map(|(c, r)| {
                let m = match r {
                    Ok(runs) => median(&runs.save)
                        .zip(median(&runs.load))
                        .ok_or_else(|| "no runs".to_owned()),
                    Err(e) => Err(e.clone()),
                };
                (c, m)
            })
            .collect();
        let rate = |p: &Phase| gib / p.wall;
        let best = |load: bool| {
            rows.iter()
                .filter(|(c, _)| matches!(c.who, Who::Torch | Who::S3Torch))
                .filter_map(|(_, r)| r.as_ref().ok())
                .map(|(s, l)| rate(if load { l } else { s }))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let (best_save, best_load) = (best(false), best(true));
        for (c, r) in &rows {
            let b = backend.as_str();
            let (s, l) = match r {
                Ok(v) => v,
                Err(e) => {
                    let what = if c.ready.is_err() {
                        "not run"
                    } else {
                        failed.push(format!("{} ({b})", c.name));
                        "failed"
                    };
                    let _ = writeln!(
                        report,
                        "| {b} | {} | {what}: {} | | | | | | | | |",
                        c.name,
                        one_line(e)
                    );
                    json.push(format!(
                        "{{\"suite\":\"checkpoint\",\"backend\":\"{b}\",\"contender\":{},\
                         \"error\":{}}}",
                        js(&c.name),
                        js(e)
                    ));
                    continue;
                }
            };
            let vs = |v: f64, best: Option<f64>| best.filter(|_| c.who != Who::Raw).map(|b| v / b);
            let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
            let srv = |p: &Phase| p.server_cpu.map_or("-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                report,
                "| {b} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.0} | {:.0} | {} / {} | {} | {} |",
                c.name,
                rate(s),
                rate(l),
                s.cpu / gib,
                l.cpu / gib,
                s.max_rss_kib as f64 / 1024.0,
                l.max_rss_kib as f64 / 1024.0,
                srv(s),
                srv(l),
                x(vs(rate(s), best_save)),
                x(vs(rate(l), best_load)),
            );
            for (phase, p, best) in [("save", s, best_save), ("load", l, best_load)] {
                json.push(format!(
                    "{{\"suite\":\"checkpoint\",\"backend\":\"{b}\",\"contender\":{},\
                     \"phase\":\"{phase}\",\"bytes\":{size},\"runs\":{},\"wall_s\":{:.6},\
                     \"cpu_s\":{:.6},\"gib_per_s\":{:.4},\"cpu_s_per_gib\":{:.4},\
                     \"max_rss_kib\":{},\"server_cpu_s\":{},\"ratio_vs_best_peer\":{}}}",
                    js(&c.name),
                    opts.runs,
                    p.wall,
                    p.cpu,
                    rate(p),
                    p.cpu / gib,
                    p.max_rss_kib,
                    p.server_cpu.map_or("null".into(), |v| format!("{v:.4}")),
                    vs(rate(p), best).map_or("null".into(), |v| format!("{v:.4}")),
                ));
            }
        }
        let get = |who: Who| {
            rows.iter()
                .find(|(c, _)| c.who == who)
                .and_then(|(_, r)| r.as_ref().ok())
        };
        let b = backend.as_str();
        for (who, label) in [
            (Who::Ours, "default config"),
            (Who::OursOnePart, "one part per shard"),
        ] {
            match (get(who), get(Who::Raw)) {
                (Some((s, l)), Some((put, gett))) => {
                    let verdict = |ok: bool| if ok { "met" } else { "not met" };
                    targets.push(format!(
                        "- {b}, {label}: load >= save: **{}** (load {:.2} GiB/s, save {:.2} \
                         GiB/s)",
                        verdict(rate(l) >= rate(s)),
                        rate(l),
                        rate(s)
                    ));
                    for (what, ours, raw, base) in
                        [("save", s, put, "PUT"), ("load", l, gett, "GET")]
                    {
                        targets.push(format!(
                            "- {b}, {label}: {what} within 80% of raw {base}: **{}** ({:.0}%: \
                             {:.2} vs {:.2} GiB/s)",
                            verdict(rate(ours) >= RAW_SHARE * rate(raw)),
                            100.0 * rate(ours) / rate(raw),
                            rate(ours),
                            rate(raw)
                        ));
                    }
                }
                _ => targets.push(format!(
                    "- {b}, {label}: not judged (ours or the raw baseline failed)"
                )),
            }
        }
    }
    let _ = writeln!(
        report,
        "\nRatios compare with the best peer on the same backend (torch on file://, \
         s3torchconnector on S3); the raw rows are the baseline, not peers.\n"
    );
    let _ = writeln!(
        report,
        "### Targets (issue 10: load >= save; both within 80% of the raw PUT/GET of the same \
         backend)\n"
    );
    for t in targets {
        let _ = writeln!(report, "{t}");
    }
    let _ = writeln!(
        report,
        "\nServer: {}.\n",
        if t.local {
            "SeaweedFS started by xtask on 127.0.0.1 (1 GiB volumes)".to_owned()
        } else {
            format!("{} (given with --endpoint)", t.endpoint)
        }
    );
    failed
}

/// 2 GiB, 512 MiB, 64 MiB.
fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
