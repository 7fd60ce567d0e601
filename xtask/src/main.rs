//! Repository automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test` — rustfmt check, clippy (warnings are errors), every test of the
//!   workspace.
//! - `cargo xtask bench [SUITE...] [--quick] [--runs N]` — benchmarks against peers measured
//!   in the same run; see `docs/PERFORMANCE.md`.
//!
//! A plain binary with few dependencies (only `libc`, for child-process CPU accounting), so
//! it builds in seconds.

mod bench;
mod measure;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-clippy]            rustfmt check and clippy -D warnings, then every test
  bench [SUITE...] [options]    benchmarks against peers in the same run (suites: file, all)
        --quick                 small data, for CI smoke runs (numbers are not judged)
        --runs N                repetitions per contender (default 3; the median is reported)
        --data-dir DIR          where to create benchmark data (default target/bench-data)
";

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Run a command in the workspace root, failing with its command line if it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let line = format!("{cmd:?}");
    eprintln!("xtask: running {line}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("{line}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{line} failed: {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test(args: &[String]) -> Result<(), String> {
    let mut clippy = true;
    for a in args {
        match a.as_str() {
            "--no-clippy" => clippy = false,
            other => return Err(format!("test: unknown option '{other}'")),
        }
    }
    if clippy {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    run(cargo().args(["test", "--workspace", "--all-targets"]))?;
    // Doc tests are not part of --all-targets.
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    Ok(())
}
