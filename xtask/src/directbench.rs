//! `cargo xtask bench direct`: `direct://` (O_DIRECT) against `fio --direct=1` on the same
//! disk, with the same I/O size and queue depth, in the same run: sequential write and read
//! of 128 x 16 MiB (2 GiB) in 1 MiB I/Os, and random 4 KiB reads. Ours is
//! `crates/directio/examples/direct_load.rs`. Both sides read the same files (written by
//! ours), evicted from the page cache first; after each run the report shows how much of
//! the data set is in the page cache (`mincore`) and how `Cached` in /proc/meminfo moved.

use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::bench::{build_example, Options};
use crate::measure::{measure, median, report_count, Sample};

/// I/Os in flight for sequential work (1 MiB each) and for random 4 KiB reads.
const SEQ_DEPTH: usize = 8;
const RAND_DEPTH: usize = 16;
const OBJECT: u64 = 16 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Write,
    Read,
    RandRead,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Self::Write => "sequential write, 1 MiB I/Os",
            Self::Read => "sequential read, 1 MiB I/Os",
            Self::RandRead => "random read, 4 KiB",
        }
    }
}

/// What one contender's run cost and did to the page cache.
struct Run {
    sample: Sample,
    cached_delta_kib: i64,
    /// Per mille of the data set's pages.
    data_pages_cached: usize,
}

pub fn direct_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<(), String> {
    let (count, ops) = if opts.quick {
        (16usize, 5_000usize)
    } else {
        (128, 50_000)
    };
    let _ = writeln!(report, "## direct:// (O_DIRECT) against fio\n");
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small data, our side built in the dev profile; a \
             smoke test of the harness, not numbers to judge.\n"
        );
    }
    let base = opts.data_dir.join("direct");
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let base = std::fs::canonicalize(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    if !o_direct_works(&base) {
        let _ = writeln!(
            report,
            "Not measured: the file system of {} refuses O_DIRECT (use `--data-dir` on a \
             real disk).\n",
            base.display()
        );
        return Ok(());
    }
    let fio = find_fio();
    let exe = build_example(opts, "s3dlio-directio", &[], "direct_load")?;
    let ours_dir = base.join("ours");
    let fio_dir = base.join("fio");
    let names: Vec<String> = (0..count).map(|i| format!("f{i:06}.bin")).collect();
    let files = |dir: &Path| names.iter().map(|n| dir.join(n)).collect::<Vec<_>>();
    let total = count as u64 * OBJECT;

    let ours_cmd = |w: Work| {
        let mut c = Command::new(&exe);
        let (mode, depth) = match w {
            Work::Write => ("write", SEQ_DEPTH),
            Work::Read => ("read", SEQ_DEPTH),
            Work::RandRead => ("randread", RAND_DEPTH),
        };
        c.arg(mode).arg(&ours_dir);
        c.args(["--count", &count.to_string(), "--size", &OBJECT.to_string()]);
        c.args(["--io-size", "1MiB", "--queue-depth", &depth.to_string()]);
        c.args([
            "--io-threads",
            &depth.to_string(),
            "--jobs",
            &depth.to_string(),
        ]);
        if w == Work::RandRead {
            c.args(["--ops", &ops.to_string(), "--block", "4096"]);
        }
        c
    };
    let fio_cmd = |w: Work, fio: &Path| {
        let mut c = Command::new(fio);
        c.args([
            "--name=direct",
            "--direct=1",
            "--ioengine=libaio",
            "--output-format=terse",
            "--group_reporting",
        ]);
        // fio joins --directory to the names when it parses --filename, so it goes first.
        let dir = if w == Work::Write {
            &fio_dir
        } else {
            &ours_dir
        };
        c.arg(format!("--directory={}", dir.display()));
        c.arg(format!("--filename={}", names.join(":")));
        c.arg(format!("--size={total}"));
        match w {
            Work::Write => {
                c.args([
                    "--rw=write",
                    "--bs=1M",
                    "--fallocate=none",
                    "--fsync_on_close=1",
                ]);
                c.arg(format!("--iodepth={SEQ_DEPTH}"));
            }
            Work::Read => {
                c.args(["--rw=read", "--bs=1M"]);
                c.arg(format!("--iodepth={SEQ_DEPTH}"));
            }
            Work::RandRead => {
                c.args([
                    "--rw=randread",
                    "--bs=4k",
                    "--norandommap",
                    "--randrepeat=0",
                ]);
                c.arg(format!("--iodepth={RAND_DEPTH}"));
                c.arg(format!("--number_ios={ops}"));
            }
        }
        c
    };

    let _ = writeln!(
        report,
        "{count} objects of 16 MiB ({:.2} GiB) on {} ({}); {} runs per contender, \
         alternating, the median by wall time (process start included, for both). \
         Sequential work keeps {SEQ_DEPTH} I/Os of 1 MiB in flight: fio with `libaio` \
         `--iodepth={SEQ_DEPTH}` over the {count} files, ours with {SEQ_DEPTH} I/O threads and \
         {SEQ_DEPTH} objects in flight, each object read whole into one buffer or written with \
         one `put` (temporary file, fsync of file and directory, rename; fio: \
         `--fsync_on_close=1`). Random reads: {ops} reads of 4 KiB at random aligned offsets \
         of the same files, {RAND_DEPTH} in flight (fio `--iodepth={RAND_DEPTH}`; ours {RAND_DEPTH} \
         `get_range` calls in flight, each an open, one `pread` and a close). Before each \
         read run the files are evicted from the page cache. \"Cached\" is the change of \
         `Cached` in /proc/meminfo over the run (machine-wide: other processes move it too); \
         \"data cached\" is the share of the data set's pages in the page cache after the run \
         (`mincore`), which a buffered reader or writer would leave at 100%. {} cores.\n",
        total as f64 / (1u64 << 30) as f64,
        base.display(),
        filesystem_of(&base),
        opts.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if fio.is_none() {
        let _ = writeln!(
            report,
            "**fio not available** (install it with `apt-get install fio`): ours only.\n"
        );
    }
    let _ = writeln!(
        report,
        "| workload | contender | GiB/s | IOPS | CPU s/GiB | CPU ms/1k ops | vs fio | Cached MiB | data cached |"
    );
    let _ = writeln!(report, "|---|---|---:|---:|---:|---:|---:|---:|---:|");

    // Our files: the data set both contenders read.
    for w in [Work::Write, Work::Read, Work::RandRead] {
        let mut ours: Vec<Run> = Vec::new();
        let mut theirs: Vec<Run> = Vec::new();
        for run in 0..opts.runs {
            let fio_first = run % 2 == 1 && fio.is_some();
            for side in 0..2 {
                let is_fio = (side == 0) == fio_first;
                if is_fio && fio.is_none() {
                    continue;
                }
                let (dir, mut cmd) = if is_fio {
                    (&fio_dir, fio_cmd(w, fio.as_deref().expect("checked")))
                } else {
                    (&ours_dir, ours_cmd(w))
                };
                let data = if w == Work::Write {
                    let _ = std::fs::remove_dir_all(dir);
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    files(dir)
                } else {
                    let f = files(&ours_dir);
                    evict(&f);
                    f
                };
                sync();
                let before = cached_kib();
                let sample = measure(&mut cmd, true)?;
                let after = cached_kib();
                let (resident, pages) = resident_pages(&data);
                check(w, is_fio, &sample, total, ops, &data)?;
                let r = Run {
                    sample,
                    cached_delta_kib: after - before,
                    data_pages_cached: (resident * 1000).checked_div(pages).unwrap_or(0),
                };
                if is_fio {
                    theirs.push(r);
                } else {
                    ours.push(r);
                }
            }
        }
        let pick = |runs: &[Run]| -> Option<usize> {
            if runs.is_empty() {
                return None;
            }
            let samples: Vec<Sample> = runs.iter().map(|r| r.sample.clone()).collect();
            let m = median(&samples);
            runs.iter().position(|r| r.sample.wall == m.wall)
        };
        let fio_wall = pick(&theirs).map(|i| theirs[i].sample.wall.as_secs_f64());
        for (name, runs) in [("s3dlio direct://", &ours), ("fio --direct=1", &theirs)] {
            let Some(i) = pick(runs) else { continue };
            let r = &runs[i];
            let secs = r.sample.wall.as_secs_f64();
            let cpu = r.sample.cpu.as_secs_f64();
            let (bytes, n_ops) = match w {
                Work::RandRead => (ops as u64 * 4096, ops as u64),
                _ => (total, count as u64),
            };
            let gib = bytes as f64 / (1u64 << 30) as f64;
            let ratio = fio_wall.map(|f| f / secs);
            let (gibs, iops, cpu_gib, cpu_kops) = if w == Work::RandRead {
                (
                    "—".to_owned(),
                    format!("{:.0}", n_ops as f64 / secs),
                    "—".to_owned(),
                    format!("{:.1}", cpu * 1e6 / n_ops as f64),
                )
            } else {
                (
                    format!("{:.2}", gib / secs),
                    "—".to_owned(),
                    format!("{:.3}", cpu / gib),
                    "—".to_owned(),
                )
            };
            let _ = writeln!(
                report,
                "| {} | {name} | {gibs} | {iops} | {cpu_gib} | {cpu_kops} | {} | {:+.1} | {:.1}% |",
                w.name(),
                ratio.map_or("—".to_owned(), |x| format!("{x:.2}x")),
                r.cached_delta_kib as f64 / 1024.0,
                r.data_pages_cached as f64 / 10.0
            );
            json.push(format!(
                "{{\"suite\":\"direct\",\"workload\":\"{}\",\"contender\":\"{name}\",\"ops\":{n_ops},\
                 \"bytes\":{bytes},\"runs\":{},\"wall_s\":{secs:.6},\"cpu_s\":{cpu:.6},\
                 \"gib_per_s\":{:.4},\"iops\":{:.1},\"ratio_vs_fio\":{},\
                 \"cached_delta_kib\":{},\"data_cached_permille\":{}}}",
                w.name(),
                opts.runs,
                gib / secs,
                n_ops as f64 / secs,
                ratio.map_or("null".to_owned(), |x| format!("{x:.4}")),
                r.cached_delta_kib,
                r.data_pages_cached
            ));
        }
    }
    let _ = writeln!(
        report,
        "\nTarget (issue 7): at least 90% of fio's throughput at the same queue depth, and \
         the page cache not growing.\n"
    );
    // The data set is large; keep the disk free for others.
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

/// Checks a run did all its work: our report's byte count; fio's terse line's bytes.
fn check(
    w: Work,
    is_fio: bool,
    s: &Sample,
    total: u64,
    ops: usize,
    files: &[PathBuf],
) -> Result<(), String> {
    let want = match w {
        Work::RandRead => ops as u64 * 4096,
        _ => total,
    };
    let got = if is_fio {
        // Terse v3: field 6 is KiB read, field 47 KiB written (1-based).
        let line = s.stdout.lines().find(|l| l.starts_with("3;")).unwrap_or("");
        let f: Vec<&str> = line.split(';').collect();
        let idx = if w == Work::Write { 46 } else { 5 };
        f.get(idx)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| format!("fio printed no terse report: {}", s.stdout.trim()))?
    } else {
        report_count(&s.stdout, "bytes")?
    };
    if got != want {
        return Err(format!("{} moved {got} bytes, expected {want}", w.name()));
    }
    if w == Work::Write {
        for f in files {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len != OBJECT {
                return Err(format!("{} is {len} bytes after the write", f.display()));
            }
        }
    }
    Ok(())
}

/// fio, installed with apt-get when missing and we are root.
fn find_fio() -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("fio"))
                .find(|f| f.is_file())
        })
    };
    if let Some(f) = find() {
        return Some(f);
    }
    // SAFETY: a plain syscall without arguments.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("xtask: fio is missing; installing it with apt-get");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-q", "fio"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("xtask: apt-get install fio failed");
        }
    }
    let found = find();
    if found.is_none() {
        eprintln!("xtask: fio not available (apt-get install fio); measuring ours only");
    }
    found
}

/// Whether files in `dir` can be opened with O_DIRECT.
fn o_direct_works(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(".o_direct_probe");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// The file system type of the mount holding `dir`.
fn filesystem_of(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2 && dir.starts_with(f[1])).then(|| (f[1].len(), f[2].to_owned()))
        })
        .max_by_key(|(n, _)| *n)
        .map_or("unknown file system".to_owned(), |(_, t)| t)
}

fn cached_kib() -> i64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("Cached:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn sync() {
    // SAFETY: a plain syscall without arguments.
    unsafe { libc::sync() };
}

/// Drop the files' pages from the page cache.
fn evict(files: &[PathBuf]) {
    for f in files {
        if let Ok(file) = std::fs::File::open(f) {
            // SAFETY: a plain syscall on an open descriptor.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// Pages of the files in the page cache, and their pages in all (`mincore` on a mapping of
/// each; mapping a file does not read it).
fn resident_pages(files: &[PathBuf]) -> (usize, usize) {
    // SAFETY: sysconf is a plain query.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let (mut resident, mut total) = (0, 0);
    for f in files {
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        if len == 0 {
            continue;
        }
        let pages = len.div_ceil(page);
        let mut v = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of an open file, checked, then passed to
        // mincore with a vector of one byte per page, and unmapped.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            if map == libc::MAP_FAILED {
                continue;
            }
            if libc::mincore(map, len, v.as_mut_ptr()) == 0 {
                resident += v.iter().filter(|b| **b & 1 != 0).count();
                total += pages;
            }
            libc::munmap(map, len);
        }
    }
    (resident, total)
}
