//! Coverage-guided fuzzing: the cargo-fuzz targets of `fuzz/` (libFuzzer), each run for a
//! bounded time with its seeds (`fuzz/seeds/<target>`) and, where there is one, its
//! dictionary (`fuzz/dicts/<target>.dict`). cargo-fuzz is installed from crates.io into
//! `target/test-tools/cargo-fuzz` on first use (about a minute), like the other test
//! tools. It asks rustc for `-Z` flags (sanitizer coverage, `cfg(fuzzing)`), which a
//! stable toolchain accepts with `RUSTC_BOOTSTRAP=1`, set here for its build only;
//! libfuzzer-sys compiles libFuzzer with the system's C++ compiler. No sanitizer: the
//! parsers are safe Rust, which panics where ASan would report, and ASan made the `uri`
//! target about 6 times slower (docs/RELIABILITY.md).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{cargo, root, run};

/// The cargo-fuzz release installed; changing it reinstalls on the next run.
pub const CARGO_FUZZ: &str = "0.13.2";

/// The targets of `fuzz/fuzz_targets`, each with its committed seeds in `fuzz/seeds/`.
pub const TARGETS: [&str; 4] = ["uri", "sizes", "tfrecord", "oplog"];

/// Where the targets are built, their corpora grow and crashes are written.
fn dir() -> PathBuf {
    root().join("target/fuzz")
}

/// `cargo-fuzz` under `target/test-tools`, installed unless a previous run did.
pub fn install() -> Result<PathBuf, String> {
    let tools = root().join("target/test-tools/cargo-fuzz");
    let bin = tools.join("bin/cargo-fuzz");
    let stamp = tools.join("xtask-version.txt");
    if bin.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == CARGO_FUZZ) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing cargo-fuzz {CARGO_FUZZ} into {}",
        tools.display()
    );
    run(cargo()
        .args(["install", "cargo-fuzz", "--locked", "--force", "--quiet"])
        .args(["--version", &format!("={CARGO_FUZZ}")])
        .arg("--root")
        .arg(&tools))?;
    if !bin.is_file() {
        return Err(format!("cargo install did not provide {}", bin.display()));
    }
    std::fs::write(&stamp, CARGO_FUZZ).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

/// The figures of one target's run, from libFuzzer's output.
#[derive(Debug, Default)]
pub struct Outcome {
    pub target: &'static str,
    /// libFuzzer's last status line (`#N DONE cov: ... ft: ... corp: ... exec/s: ...`).
    pub last: String,
    pub runs: u64,
    pub execs_per_sec: u64,
    pub new_units: u64,
    pub peak_rss_mb: u64,
}

/// Build every target, then run each for `seconds` with its corpus (in `target/fuzz`) and
/// its seeds, and print what each did. Stops at the first crash, with the reproducer's
/// path in the error.
pub fn run_targets(seconds: u64) -> Result<(), String> {
    let cargo_fuzz = install()?;
    let target_dir = dir();
    // Release with debug assertions and overflow checks (cargo-fuzz's default), every
    // target at once; cargo-fuzz finds `fuzz/` below the directory it runs in, the root.
    run(Command::new(&cargo_fuzz)
        .args(["build", "--sanitizer", "none", "--target-dir"])
        .arg(&target_dir)
        // Stable rustc takes cargo-fuzz's -Z flags with this.
        .env("RUSTC_BOOTSTRAP", "1"))?;
    let bins = target_dir.join(host()).join("release");
    let mut out = Vec::new();
    for t in TARGETS {
        out.push(run_target(t, &bins.join(t), seconds)?);
    }
    eprintln!("xtask: fuzz: every cargo-fuzz target ran {seconds} s without a crash:");
    for o in &out {
        eprintln!(
            "xtask:   {:<8} {:>10} runs {:>7} exec/s {:>5} new inputs  {}",
            o.target, o.runs, o.execs_per_sec, o.new_units, o.last
        );
    }
    Ok(())
}

/// The triple cargo-fuzz builds for: the host's (xtask runs on Linux).
fn host() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

fn run_target(target: &'static str, bin: &Path, seconds: u64) -> Result<Outcome, String> {
    let corpus = dir().join("corpus").join(target);
    let artifacts = dir().join("artifacts").join(target);
    let seeds = root().join("fuzz/seeds").join(target);
    let dict = root().join("fuzz/dicts").join(format!("{target}.dict"));
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log_path = dir().join(format!("{target}.log"));
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut c = Command::new(bin);
    // New inputs go to the first directory; the seeds are only read.
    c.arg(&corpus)
        .arg(&seeds)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(["-max_len=4096", "-timeout=20", "-rss_limit_mb=2048"])
        .args(["-print_final_stats=1", "-close_fd_mask=1"]);
    if dict.is_file() {
        // Tokens of the input's language, which mutations insert.
        c.arg(format!("-dict={}", dict.display()));
    }
    c.stdout(Stdio::null()).stderr(log);
    eprintln!(
        "xtask: fuzzing {target} for {seconds} s (libFuzzer output: {})",
        log_path.display()
    );
    let started = Instant::now();
    let status = c
        .current_dir(root())
        .status()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        // The panic's message (not its backtrace), then libFuzzer's report.
        let lines: Vec<&str> = text.lines().collect();
        let mut tail: Vec<&str> = match lines.iter().position(|l| l.contains(" panicked at ")) {
            Some(p) => lines[p..].iter().take(2).copied().collect(),
            None => Vec::new(),
        };
        let report = lines
            .iter()
            .rposition(|l| l.starts_with("==") && l.contains("ERROR: libFuzzer"))
            .unwrap_or(lines.len().saturating_sub(20));
        tail.extend(&lines[report..]);
        let reproducer = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
            .map(|p| root().join(p));
        return Err(match reproducer {
            Some(p) => format!(
                "fuzz target {target} failed ({status}) after {:.0} s:\n{}\n\
                 reproducer: {}\nrerun it with: {} {}",
                started.elapsed().as_secs_f64(),
                tail.join("\n"),
                p.display(),
                bin.display(),
                p.display()
            ),
            None => format!(
                "fuzz target {target} failed ({status}) without a reproducer:\n{}",
                tail.join("\n")
            ),
        });
    }
    let stat = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
        .unwrap_or("")
        .to_owned();
    let o = Outcome {
        target,
        last,
        runs: stat("number_of_executed_units"),
        execs_per_sec: stat("average_exec_per_sec"),
        new_units: stat("new_units_added"),
        peak_rss_mb: stat("peak_rss_mb"),
    };
    eprintln!(
        "xtask: fuzz {target}: {} runs, {} exec/s, {} new inputs, peak RSS {} MB; {}",
        o.runs, o.execs_per_sec, o.new_units, o.peak_rss_mb, o.last
    );
    Ok(o)
}
