//! Measuring a child process the same way for every contender: wall time, CPU seconds
//! (user + system, from `wait4`), and peak resident memory.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of one contender cost.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_kib: u64,
    pub stdout: String,
}

/// Run `cmd` to completion and measure it; its stdout is kept when `capture` is set and
/// sent to /dev/null otherwise (so `cat` costs what it costs in a pipeline to nowhere).
/// With `capture`, its stderr is collected too and passed on to ours when it exits.
/// Fails if the command exits non-zero; the error's first line says how it ended and
/// quotes the last line of its stderr, and the command's environment is not shown (it may
/// hold keys).
pub fn measure(cmd: &mut Command, capture: bool) -> Result<Sample, String> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    // Unique per call: several children may be measured at once, from several threads.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp =
        |what: &str| std::env::temp_dir().join(format!("xtask-{what}-{}-{n}", std::process::id()));
    let (out_path, err_path) = if capture {
        (tmp("out"), Some(tmp("err")))
    } else {
        ("/dev/null".into(), None)
    };
    let out =
        std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    if let Some(p) = &err_path {
        let err = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
        cmd.stderr(Stdio::from(err));
    }
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::from(out))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("{line}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 reaps the child and returns its own resource usage, which `Child::wait` cannot.
    // SAFETY: pid is our child, not yet reaped; the out-pointers are valid for the call.
    let r = loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = start.elapsed();
    // The child is reaped; dropping the handle does not wait again.
    drop(child);
    if r != pid {
        return Err(format!(
            "{line}: wait4: {}",
            std::io::Error::last_os_error()
        ));
    }
    let stdout = if capture {
        let s = std::fs::read_to_string(&out_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        s
    } else {
        String::new()
    };
    let stderr = err_path.map_or(String::new(), |p| {
        let s = std::fs::read_to_string(&p).unwrap_or_default();
        let _ = std::fs::remove_file(&p);
        eprint!("{s}");
        s
    });
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "{how}{}\ncommand: {line}\nstdout:\n{stdout}",
            last.map_or(String::new(), |l| format!(": {}", l.trim()))
        ));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
        stdout,
    })
}

/// Run `cmds` at once, each measured as [`measure`] does (stdout captured), and wait for
/// all of them; the first failure, if any, is returned once every one has ended.
pub fn measure_together(cmds: Vec<Command>) -> Result<Vec<Sample>, String> {
    let results: Vec<Result<Sample, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cmds
            .into_iter()
            .map(|mut c| s.spawn(move || measure(&mut c, true)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a measuring thread panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// The median of some samples by wall time (the lower middle for an even count).
pub fn median(samples: &[Sample]) -> Sample {
    let mut s: Vec<&Sample> = samples.iter().collect();
    s.sort_by_key(|x| x.wall);
    s[(s.len() - 1) / 2].clone()
}

/// The report line of a child's stdout: its last non-empty line, trimmed.
pub fn report_line(stdout: &str) -> &str {
    stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// A number from the report line of a child's stdout (see [`report_line`]), a flat JSON
/// object of numbers (a tiny parser, for the tools whose lines hold nothing else).
pub fn report_number(stdout: &str, name: &str) -> Result<f64, String> {
    let line = report_line(stdout);
    let bad = || format!("no number \"{name}\" in the report line '{line}'");
    let inner = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or_else(bad)?;
    for pair in inner.split(',') {
        let (k, v) = pair.split_once(':').ok_or_else(bad)?;
        if k.trim() == format!("\"{name}\"") {
            return v.trim().parse().map_err(|_| bad());
        }
    }
    Err(bad())
}

/// A whole, non-negative number from the report line (see [`report_number`]).
pub fn report_count(stdout: &str, name: &str) -> Result<u64, String> {
    let v = report_number(stdout, name)?;
    if v < 0.0 || v.fract() != 0.0 {
        return Err(format!("\"{name}\" is not a count in '{}'", stdout.trim()));
    }
    Ok(v as u64)
}
