//! Running the built `s3-cli` binary.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::Path;
use std::process::{Command, Output};

pub mod python;

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "stdout: {}\nstderr: {}",
            self.out(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(self.code, code, "stderr: {}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr: {}",
            self.stderr
        );
        self
    }
}

/// The binary with a clean AWS environment (tests pass everything explicitly).
pub fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_s3-cli"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("S3DLIO_") && !k.starts_with("S3DLIO_TEST") {
            c.env_remove(k);
        }
    }
    c.env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

pub fn finish(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn run(args: &[&str]) -> Run {
    finish(cmd().args(args).output().expect("run s3-cli"))
}

/// The S3 test server behind `var` (set by `cargo xtask test`); tests never skip.
#[derive(Clone)]
pub struct S3 {
    pub endpoint: String,
    pub access: String,
    pub secret: String,
}

impl S3 {
    pub fn from_env(var: &str) -> Self {
        let get = |v: &str| {
            std::env::var(v).unwrap_or_else(|_| {
                panic!("{v} is not set: run `cargo xtask test`, or source the env file of `cargo xtask servers`")
            })
        };
        Self {
            endpoint: get(var),
            access: get("S3DLIO_TEST_S3_ACCESS_KEY"),
            secret: get("S3DLIO_TEST_S3_SECRET_KEY"),
        }
    }

    pub fn seaweedfs() -> Self {
        Self::from_env("S3DLIO_TEST_S3_SEAWEEDFS")
    }

    pub fn moto() -> Self {
        Self::from_env("S3DLIO_TEST_S3_MOTO")
    }

    pub fn cmd(&self) -> Command {
        let mut c = cmd();
        c.arg("--endpoint-url")
            .arg(&self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REGION", "us-east-1");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.cmd().args(args).output().expect("run s3-cli"))
    }
}

/// A unique bucket name for one test.
pub fn bucket(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cli-{tag}-{}-{}", std::process::id(), n % 1_000_000_000)
}

/// Write `files` (relative path, contents) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// Every file under `root` as (relative path, contents), sorted.
pub fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Pseudo-random bytes (a fixed LCG: test data, not the generator under test).
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

pub fn sample_tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.log", bytes(100, 1)),
        ("b.txt", bytes(5000, 2)),
        ("empty.bin", Vec::new()),
        ("sub/c.log", bytes(70_000, 3)),
        ("sub/deeper/d.bin", bytes(1_500_000, 4)),
        ("name with spaces+%.dat", bytes(10, 5)),
    ]
}

/// The rows of an op-log as (op, n_objects, bytes, file, failed), after checking that
/// every row's times agree: `end - start == duration_ns`, `start <= first_byte <= end`,
/// and that only GETs have a first byte.
pub fn oplog_rows(path: &Path) -> Vec<(String, u64, u64, String, bool)> {
    let log = s3dlio_metrics::read_op_log(path).unwrap();
    for (i, r) in log.rows.iter().enumerate() {
        assert_eq!(r.idx, i as u64);
        assert_eq!(
            r.end.nanos_since(r.start),
            i128::from(r.duration_ns),
            "{r:?}"
        );
        match r.first_byte {
            Some(fb) => assert!(r.op == "GET" && r.start <= fb && fb <= r.end, "{r:?}"),
            None => assert!(r.op != "GET" || r.is_error(), "{r:?}"),
        }
    }
    log.rows
        .into_iter()
        .map(|r| (r.op, r.n_objects, r.bytes, r.file, !r.error.is_empty()))
        .collect()
}

/// `rows` sorted, for operations that ran concurrently.
pub fn sorted<T: Ord>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort();
    rows
}
