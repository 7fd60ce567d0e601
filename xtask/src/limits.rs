//! `cargo xtask bench limits`: what this machine allows whatever the software, measured by
//! the harness itself: a memory copy, a read of cached file pages into a process, TCP over
//! loopback (one and four connections), and the disk of the data directory written and
//! read with O_DIRECT (`dd`). The other suites' numbers are read against these.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::bench::Options;
use crate::measure::measure;

const MIB: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

pub fn limits_suite(
    opts: &Options,
    report: &mut String,
    json: &mut Vec<String>,
) -> Result<(), String> {
    let (mem, file, net, disk) = if opts.quick {
        (256 * MIB, 128 * MIB, 256 * MIB, 64 * MIB)
    } else {
        (1 << 30, 1 << 30, 2 << 30, 1 << 30)
    };
    let dir = opts.data_dir.join("limits");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let runs = opts.runs.max(1);
    let best = |f: &dyn Fn() -> Result<f64, String>| -> Result<f64, String> {
        let mut v = (0..runs).map(|_| f()).collect::<Result<Vec<_>, _>>()?;
        v.sort_by(f64::total_cmp);
        // The median.
        Ok(v[(v.len() - 1) / 2])
    };
    let mut rows: Vec<(&str, String, f64)> = Vec::new();
    rows.push((
        "memory copy",
        format!("{} MiB copied between two buffers, one thread", mem / MIB),
        best(&|| memcpy_child(mem))?,
    ));
    let cached = dir.join("cached.bin");
    make_file(&cached, file)?;
    // Once to bring it into the page cache.
    read_rate(&cached)?;
    rows.push((
        "page cache -> process",
        format!(
            "a cached file of {} MiB read with 1 MiB read(2) calls, one thread",
            file / MIB
        ),
        best(&|| read_rate(&cached))?,
    ));
    let mut recv_cpu = Vec::new();
    for conns in [1, 4] {
        let rate = best(&|| tcp_rate(net, conns).map(|(r, _)| r))?;
        if conns == 1 {
            // Receiver CPU of separate runs: the floor of any client's GET here.
            recv_cpu = (0..runs)
                .map(|_| tcp_rate(net, 1).map(|(_, c)| c))
                .collect::<Result<Vec<_>, _>>()?;
            recv_cpu.sort_by(f64::total_cmp);
        }
        rows.push((
            if conns == 1 {
                "loopback TCP, 1 connection"
            } else {
                "loopback TCP, 4 connections"
            },
            format!(
                "{} MiB over 127.0.0.1, 1 MiB writes and reads, a thread per sender and receiver",
                net / MIB
            ),
            rate,
        ));
    }
    let target = dir.join("direct.bin");
    let count = (disk / (4 * MIB)).to_string();
    let dd = |args: &[&str]| -> Result<f64, String> {
        let start = Instant::now();
        measure(Command::new("dd").args(args), false)?;
        Ok(disk as f64 / GIB / start.elapsed().as_secs_f64())
    };
    let of = format!("of={}", target.display());
    let inf = format!("if={}", target.display());
    let write = best(&|| {
        dd(&[
            "if=/dev/zero",
            &of,
            "bs=4M",
            &format!("count={count}"),
            "oflag=direct",
            "conv=fsync",
            "status=none",
        ])
    });
    match write {
        Ok(w) => {
            rows.push((
                "disk write (O_DIRECT)",
                format!(
                    "`dd bs=4M oflag=direct conv=fsync`, {} MiB, on the data directory's disk",
                    disk / MIB
                ),
                w,
            ));
            rows.push((
                "disk read (O_DIRECT)",
                format!("`dd bs=4M iflag=direct` of the same {} MiB", disk / MIB),
                best(&|| dd(&[&inf, "of=/dev/null", "bs=4M", "iflag=direct", "status=none"]))?,
            ));
        }
        Err(e) => {
            // tmpfs and some file systems refuse O_DIRECT.
            let _ = writeln!(
                report,
                "Disk rate not measured: {}\n",
                e.lines().next().unwrap_or("")
            );
        }
    }
    let _ = std::fs::remove_file(&target);

    let _ = writeln!(
        report,
        "## Physical limits of this machine (measured by the harness)\n"
    );
    if opts.quick {
        let _ = writeln!(
            report,
            "**Quick run** (`--quick`): small sizes; a smoke test, not numbers to judge.\n"
        );
    }
    let _ = writeln!(
        report,
        "What the hardware and kernel allow whatever the software: the other suites are \
         bound by these. {} cores; the median of {runs} runs each; the machine may be shared \
         (see each suite's note on other load).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(report, "| limit | GiB/s | how |");
    let _ = writeln!(report, "|---|---:|---|");
    for (name, how, rate) in &rows {
        let _ = writeln!(report, "| {name} | {rate:.2} | {how} |");
        json.push(format!(
            "{{\"suite\":\"limits\",\"contender\":\"{name}\",\"runs\":{runs},\"gib_per_s\":{rate:.4}}}"
        ));
    }
    let _ = writeln!(report);
    if let Some(cpu) = recv_cpu.get((recv_cpu.len().max(1) - 1) / 2) {
        let _ = writeln!(
            report,
            "Receiving over loopback TCP (1 connection, 1 MiB reads) costs the receiving thread              **{cpu:.3} CPU s per GiB** (median of {runs}): the kernel's copy out of the socket,              the least any client's GET pays on this machine before doing anything with the              bytes.\n"
        );
        json.push(format!(
            "{{\"suite\":\"limits\",\"contender\":\"loopback TCP receive\",\"runs\":{runs},\"cpu_s_per_gib\":{cpu:.4}}}"
        ));
    }
    Ok(())
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the out-pointer is valid for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// [`memcpy_rate`] in a child process (`xtask memcpy-rate LEN`): its buffers must not raise
/// this process's peak RSS, which every child spawned later would report as its own (a
/// child starts from its parent's memory high-water mark).
fn memcpy_child(len: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let s = measure(
        Command::new(exe).args(["memcpy-rate", &len.to_string()]),
        true,
    )?;
    s.stdout
        .trim()
        .parse()
        .map_err(|_| format!("memcpy-rate printed '{}'", s.stdout.trim()))
}

/// `xtask memcpy-rate LEN`: print [`memcpy_rate`] of LEN bytes.
pub fn memcpy_command(args: &[String]) -> Result<(), String> {
    let len: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("memcpy-rate needs a byte count")?;
    println!("{}", memcpy_rate(len)?);
    Ok(())
}

/// GiB/s of copying `len` bytes between two buffers (both touched first, so no page faults
/// are timed).
fn memcpy_rate(len: usize) -> Result<f64, String> {
    let src = vec![1u8; len];
    let mut dst = vec![2u8; len];
    let start = Instant::now();
    dst.copy_from_slice(&src);
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(&dst);
    Ok(len as f64 / GIB / secs)
}

/// Create `path` with `len` bytes unless it has them.
fn make_file(path: &Path, len: usize) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == len as u64) {
        return Ok(());
    }
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    for _ in 0..len / MIB {
        f.write_all(&block)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// GiB/s of reading `path` to its end with 1 MiB reads into one buffer.
fn read_rate(path: &Path) -> Result<f64, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; MIB];
    let start = Instant::now();
    let mut total = 0usize;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        total += n;
    }
    Ok(total as f64 / GIB / start.elapsed().as_secs_f64())
}

/// GiB/s of sending `len` bytes over `conns` loopback connections at once, from the first
/// byte sent to the last one received, and the receiving threads' CPU seconds per GiB.
fn tcp_rate(len: usize, conns: usize) -> Result<(f64, f64), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let per = len / conns;
    let senders: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(addr).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let receivers: Vec<TcpStream> = (0..conns)
        .map(|_| listener.accept().map(|(s, _)| s).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let readers: Vec<_> = receivers
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; MIB];
                let cpu = thread_cpu();
                let mut got = 0usize;
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                (got, thread_cpu() - cpu)
            })
        })
        .collect();
    let writers: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let buf = vec![7u8; MIB];
                let mut sent = 0;
                while sent < per {
                    let n = MIB.min(per - sent);
                    s.write_all(&buf[..n])?;
                    sent += n;
                }
                s.shutdown(std::net::Shutdown::Write)
            })
        })
        .collect();
    for w in writers {
        w.join()
            .map_err(|_| "a sender panicked".to_owned())?
            .map_err(|e| e.to_string())?;
    }
    let (mut got, mut cpu) = (0, 0.0);
    for r in readers {
        let (n, c) = r.join().map_err(|_| "a receiver panicked".to_owned())?;
        got += n;
        cpu += c;
    }
    let secs = start.elapsed().as_secs_f64();
    if got != per * conns {
        return Err(format!("loopback: received {got} bytes of {}", per * conns));
    }
    Ok((got as f64 / GIB / secs, cpu / (got as f64 / GIB)))
}
