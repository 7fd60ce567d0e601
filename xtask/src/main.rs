//! Repository automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test` — rustfmt check, clippy (warnings are errors), then every test of
//!   the workspace against S3-compatible servers and Azurite it starts on 127.0.0.1, the
//!   README's quickstart, then the Python module's pytest suite against a wheel built with
//!   maturin; see
//!   `docs/TESTING.md`.
//! - `cargo xtask wheel` — the release wheel of the Python module, installed into a fresh
//!   virtualenv and imported there.
//! - `cargo xtask servers` — start those servers (and Azurite) for a developer's shell,
//!   until Ctrl-C.
//! - `cargo xtask fuzz [--cases N] [--seconds N]` — the parsers' fuzz properties with many
//!   inputs, then each cargo-fuzz target of `fuzz/` (libFuzzer) for a bounded time.
//! - `cargo xtask soak [--minutes N]` — the soak run (`crates/cli/examples/soak.rs`)
//!   against the servers of `test`, with faults injected; see `docs/RELIABILITY.md`.
//! - `cargo xtask bench [SUITE...] [--quick] [--runs N] [--procs N] [--endpoint URL]
//!   [--bucket NAME] [--compare OLD.json]` — the machine's physical limits (`limits`), then benchmarks
//!   against peers measured in the same run (`file`, `direct` against fio, `s3`, `az`,
//!   `loader`, `checkpoint`, `python`, `datagen`, `tfrecord`), and the cost of the metrics and
//!   op-log layers (`metrics`); Markdown, JSON and SVG charts; see `docs/PERFORMANCE.md`.
//!
//! A plain binary with few dependencies (`libc`, for child-process CPU accounting and
//! process control; `serde_json` to read bench results back; `plotters`, SVG only, for the
//! charts), so it builds in seconds.

mod azbench;
mod bench;
mod chart;
mod checkpointbench;
mod compare;
mod datagenbench;
mod directbench;
mod fuzz;
mod latency;
mod limits;
mod loaderbench;
mod measure;
mod metricsbench;
mod python;
mod s3bench;
mod servers;
mod tfrecordbench;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("wheel") => python::wheel(&args[1..]),
        Some("servers") => serve(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("fuzz") => fuzz_command(&args[1..]),
        // Internal: the memory-copy limit, measured in a process of its own.
        Some("memcpy-rate") => limits::memcpy_command(&args[1..]),
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
  test [options]                rustfmt check and clippy -D warnings, then every test
                                against S3 servers and Azurite started on 127.0.0.1, the
                                README's quickstart, pytest on the Python wheel, then each
                                cargo-fuzz target for 15 s (docs/TESTING.md)
        --no-clippy             skip clippy
        --no-servers            start no servers (tests that need them fail)
        --no-fuzz               skip the cargo-fuzz targets
  wheel                         build the release wheel (target/wheels) and check that it
                                installs and imports in a fresh virtualenv
  servers                       start the test servers, print their variables as
                                `export` lines, and keep them up until Ctrl-C
  soak [--minutes N]            mixed operations on file://, SeaweedFS and Azurite through
                                the retry layer with faults injected (fault proxy, 10% of
                                requests), for N minutes (default 1; fractions allowed);
                                reports operations, errors by kind, faults, mismatches
        --fault-rate R          share of requests that fail (default 0.1)
  fuzz [options]                the parsers' fuzz properties (URI, size/count/duration,
                                TFRecord, DALI index, op-log) with many random inputs, then
                                each cargo-fuzz target (uri, sizes, tfrecord, oplog) for a
                                bounded time; a crash fails, naming its reproducer
        --cases N               inputs per property (default 200000; `test` runs 2000)
        --seconds N             seconds per cargo-fuzz target (default 60; `test` runs 15;
                                0 skips them)
  bench [SUITE...] [options]    benchmarks against peers in the same run (suites: limits,
                                file, s3, direct, az, loader, checkpoint, python, datagen,
                                metrics, tfrecord, all; none given: all)
        --quick                 small data and dev builds, for CI smoke runs (numbers are
                                not judged)
        --runs N                repetitions per contender (default 3, --quick 1; the median
                                is reported)
        --procs N               s3, datagen: also run ours as N processes started
                                together, results merged (default 2; 1: only one process)
        --data-dir DIR          where to create benchmark data (default target/bench-data)
        --endpoint URL          s3: measure this endpoint (keys from AWS_ACCESS_KEY_ID and
                                AWS_SECRET_ACCESS_KEY) instead of a SeaweedFS started here
        --bucket NAME           s3: work under a prefix of this existing bucket instead of
                                in a fresh bucket
        --compare OLD.json      print the change of every metric against an earlier run's
                                JSON (target/bench/latest.json, docs/bench/SUITE.json)
";

/// A command line as logged: the program, its arguments and the environment it sets, with
/// the values of secret-looking variables (keys, secrets, tokens, passwords, connection
/// strings) replaced, so logs of test runs never carry credentials.
pub fn shown(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (k, v) in cmd.get_envs() {
        let k = k.to_string_lossy();
        let Some(v) = v else {
            parts.push(format!("-u {k}"));
            continue;
        };
        let upper = k.to_ascii_uppercase();
        let secret = [
            "KEY",
            "SECRET",
            "TOKEN",
            "PASSWORD",
            "CONNECTION_STRING",
            "SAS",
        ]
        .iter()
        .any(|s| upper.contains(s))
            && !upper.ends_with("KEY_ID");
        if secret {
            parts.push(format!("{k}=<redacted>"));
        } else {
            parts.push(format!("{k}={:?}", v.to_string_lossy()));
        }
    }
    parts.push(format!("{:?}", cmd.get_program().to_string_lossy()));
    parts.extend(cmd.get_args().map(|a| format!("{:?}", a.to_string_lossy())));
    parts.join(" ")
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Run a command in the workspace root, failing with its command line if it fails. A signal
/// caught while it runs (see `servers::catch_signals`) is passed on to it.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let line = shown(cmd);
    eprintln!("xtask: running {line}");
    let mut child = cmd
        .current_dir(root())
        .spawn()
        .map_err(|e| format!("{line}: {e}"))?;
    let mut forwarded = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{line}: {e}"))? {
            break status;
        }
        if let (Some(sig), false) = (servers::caught_signal(), forwarded) {
            // SAFETY: a plain syscall; the child is not reaped yet, so its pid is still its.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("{line} failed: {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Optional features whose code the tests cover too (the alternative S3 backend).
/// The fault proxy of the cli crate (`faultproxy`, its fault tests and the soak example)
/// is test-only code behind a feature.
pub const FEATURES: [&str; 2] = [
    "--features",
    "s3dlio-store-s3/object-store-backend,s3dlio-cli/fault-proxy",
];

fn test(args: &[String]) -> Result<(), String> {
    let mut clippy = true;
    let mut start_servers = true;
    let mut fuzz_targets = true;
    for a in args {
        match a.as_str() {
            "--no-clippy" => clippy = false,
            "--no-servers" => start_servers = false,
            "--no-fuzz" => fuzz_targets = false,
            other => return Err(format!("test: unknown option '{other}'")),
        }
    }
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    // The fuzz targets are a workspace of their own (cargo-fuzz's layout).
    run(cargo().args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--all",
        "--",
        "--check",
    ]))?;
    if clippy {
        run(cargo()
            .args(["clippy", "--workspace", "--all-targets"])
            .args(FEATURES)
            .args(["--", "-D", "warnings"]))?;
    }
    // Every build and test step gets the same environment, so cargo does not rebuild.
    let cargo_test = |args: &[&str], env: &[(String, String)]| {
        let mut c = cargo();
        // The Python module is built by maturin and tested with pytest (below).
        c.args(["test", "--workspace", "--exclude", "s3dlio-py"])
            .args(FEATURES)
            .args(args);
        servers::scrub_aws(&mut c);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        c
    };
    // Build first, so the servers do not sit idle while the tests compile.
    run(&mut cargo_test(&["--all-targets", "--no-run"], &[]))?;
    // The servers' programs, and the Python that runs the module's tests.
    let tools = tools::install()?;
    let mut servers = None;
    if start_servers {
        servers::catch_signals();
        let s = servers::start(&tools)?;
        for (k, v) in &s.env {
            eprintln!("xtask: {k}={v}");
        }
        servers = Some(s);
    }
    let env = servers.as_ref().map_or(&[][..], |s| &s.env[..]);
    let result = run(&mut cargo_test(&["--all-targets"], env))
        // Doc tests are not part of --all-targets.
        .and_then(|()| run(&mut cargo_test(&["--doc"], env)))
        // The README's first command, the main job on file://: it writes, lists and reads
        // back objects and fails on any wrong byte (built as the tests were, so only the
        // example links).
        .and_then(|()| run(&mut Command::new(workspace_example("quickstart")?)))
        // The Python module, as a wheel, against the same servers.
        .and_then(|()| python::pytest(&tools.python, env));
    if let (Err(_), Some(s)) = (&result, &mut servers) {
        if servers::caught_signal().is_none() {
            s.keep_logs();
        }
    }
    drop(servers);
    result?;
    if fuzz_targets {
        // Coverage-guided fuzzing, briefly: each cargo-fuzz target for a bounded time.
        fuzz::run_targets(TEST_FUZZ_SECONDS)?;
    }
    Ok(())
}

/// Seconds per cargo-fuzz target in `cargo xtask test`.
const TEST_FUZZ_SECONDS: u64 = 15;

/// The crates with `tests/fuzz.rs`, the parsers' fuzz properties.
const FUZZED: [&str; 3] = [
    "s3dlio-store-core",
    "s3dlio-tfrecord-index",
    "s3dlio-metrics",
];

/// `cargo xtask fuzz`: the fuzz properties with many more inputs than `test` gives them,
/// then each cargo-fuzz target for a bounded time.
fn fuzz_command(args: &[String]) -> Result<(), String> {
    let mut cases = 200_000u64;
    let mut seconds = 60u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("fuzz: {a} takes a number"))
        };
        match a.as_str() {
            "--cases" => cases = value()?,
            "--seconds" => seconds = value()?,
            other => return Err(format!("fuzz: unknown option '{other}'")),
        }
    }
    let mut c = cargo();
    c.arg("test");
    for p in FUZZED {
        c.args(["-p", p]);
    }
    c.args(["--test", "fuzz"])
        .env("S3DLIO_FUZZ_CASES", cases.to_string());
    run(&mut c)?;
    eprintln!(
        "xtask: fuzz: {cases} inputs for each of the properties in {}",
        FUZZED.join(", ")
    );
    if seconds == 0 {
        return Ok(());
    }
    fuzz::run_targets(seconds)
}

/// Build one example of the workspace as the tests build it (the whole workspace, the same
/// features and environment), so after `cargo xtask test` nothing but the example itself
/// needs compiling; returns its path (example names are unique across the workspace).
fn workspace_example(name: &str) -> Result<PathBuf, String> {
    let mut build = cargo();
    build
        .args(["build", "--workspace", "--exclude", "s3dlio-py"])
        .args(FEATURES)
        .args(["--example", name]);
    servers::scrub_aws(&mut build);
    run(&mut build)?;
    Ok(root().join("target/debug/examples").join(name))
}

/// `cargo xtask soak`: the soak example against freshly started servers.
fn soak(args: &[String]) -> Result<(), String> {
    let mut minutes = 1.0f64;
    let mut rate = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("soak: {a} takes {what}"))
        };
        match a.as_str() {
            "--minutes" => minutes = value("a positive number of minutes")?,
            "--fault-rate" => rate = Some(value("a share such as 0.1")?),
            other => return Err(format!("soak: unknown option '{other}'")),
        }
    }
    let soak = workspace_example("soak")?;
    let tools = tools::install()?;
    servers::catch_signals();
    let mut s = servers::start(&tools)?;
    let mut c = Command::new(soak);
    c.args(["--seconds", &format!("{:.0}", minutes * 60.0)]);
    if let Some(r) = rate {
        c.args(["--fault-rate", &r.to_string()]);
    }
    servers::scrub_aws(&mut c);
    c.envs(s.env.iter().map(|(k, v)| (k, v)));
    let result = run(&mut c);
    if result.is_err() && servers::caught_signal().is_none() {
        s.keep_logs();
    }
    result
}

/// `cargo xtask servers`: the servers of `cargo xtask test`, for running tests by hand.
fn serve(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("servers: unknown option '{a}'"));
    }
    let tools = tools::install()?;
    servers::catch_signals();
    let mut servers = servers::start(&tools)?;
    let mut sh = String::new();
    let unset = servers::inherited_aws_vars();
    if !unset.is_empty() {
        sh += &format!("unset {}\n", unset.join(" "));
    }
    sh += "export AWS_EC2_METADATA_DISABLED=true\n";
    for (k, v) in &servers.env {
        sh += &format!("export {k}='{v}'\n");
    }
    let file = servers.dir.join("env.sh");
    std::fs::write(&file, &sh).map_err(|e| format!("{}: {e}", file.display()))?;
    print!("{sh}");
    eprintln!(
        "xtask: servers are up; in another shell: source {}\nxtask: Ctrl-C stops them",
        file.display()
    );
    servers.wait_for_signal()?;
    eprintln!("xtask: stopping the servers");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_command_lines_hide_secrets() {
        let mut c = std::process::Command::new("prog");
        c.arg("--flag")
            .env("S3DLIO_TEST_S3_SECRET_KEY", "hunter2")
            .env("AWS_ACCESS_KEY_ID", "AKIAVISIBLE")
            .env("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=abc")
            .env("S3DLIO_TEST_AZURITE", "http://127.0.0.1:1/x")
            .env_remove("AWS_CA_BUNDLE");
        let line = super::shown(&c);
        assert!(
            !line.contains("hunter2") && !line.contains("AccountKey"),
            "{line}"
        );
        assert!(
            line.contains("S3DLIO_TEST_S3_SECRET_KEY=<redacted>"),
            "{line}"
        );
        assert!(
            line.contains("AKIAVISIBLE") && line.contains("http://127.0.0.1:1/x"),
            "{line}"
        );
        assert!(
            line.contains("-u AWS_CA_BUNDLE") && line.contains("\"prog\" \"--flag\""),
            "{line}"
        );
    }
}
