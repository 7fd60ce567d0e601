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
/// Fails if the command exits non-zero.
pub fn measure(cmd: &mut Command, capture: bool) -> Result<Sample, String> {
    let line = format!("{cmd:?}");
    let out_path = if capture {
        std::env::temp_dir().join(format!("xtask-out-{}", std::process::id()))
    } else {
        "/dev/null".into()
    };
    let out =
        std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
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
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!(
            "{line} failed (wait status {status}); output:\n{stdout}"
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

/// The median of some samples by wall time (the lower middle for an even count).
pub fn median(samples: &[Sample]) -> Sample {
    let mut s: Vec<&Sample> = samples.iter().collect();
    s.sort_by_key(|x| x.wall);
    s[(s.len() - 1) / 2].clone()
}
