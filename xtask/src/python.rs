//! The Python module: `cargo xtask wheel` (a release wheel, proven to install and import in
//! a fresh virtualenv) and the pytest step of `cargo xtask test` (a dev-profile wheel
//! installed into the test virtualenv, then `crates/py/tests` against it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

/// Build a wheel of crates/py with maturin (from `venv_python`'s environment) into
/// target/wheels and return its path.
fn build_wheel(venv_python: &Path, release: bool) -> Result<PathBuf, String> {
    let out = root().join("target/wheels");
    // Only this build's wheel is left there, so the path below is unambiguous.
    let _ = std::fs::remove_dir_all(&out);
    let maturin = venv_python.with_file_name("maturin");
    let mut c = Command::new(&maturin);
    c.args(["build", "--manifest-path", "crates/py/Cargo.toml", "--out"])
        .arg(&out)
        .args(["--interpreter"])
        .arg(venv_python);
    if release {
        c.arg("--release");
    } else {
        // Reuses the dev-profile artifacts of the Rust tests.
        c.args(["--profile", "dev"]);
    }
    run(&mut c)?;
    let wheel = std::fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("maturin left no wheel in {}", out.display()))?;
    Ok(wheel)
}

fn pip_install(python: &Path, wheel: &Path) -> Result<(), String> {
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--force-reinstall", "--no-deps"])
        .arg(wheel))
}

/// The pytest suite against a freshly built wheel, with the test servers' environment, and
/// mypy's stubtest on the native module's stubs.
pub fn pytest(python: &Path, env: &[(String, String)]) -> Result<(), String> {
    let wheel = build_wheel(python, false)?;
    pip_install(python, &wheel)?;
    let mut c = Command::new(python);
    c.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "crates/py/tests",
    ]);
    crate::servers::scrub_aws(&mut c);
    c.envs(env.iter().map(|(k, v)| (k, v)));
    run(&mut c)?;
    // The type stubs describe the native module as it is.
    run(Command::new(python).args(["-m", "mypy.stubtest", "s3dlio._s3dlio"]))
}

/// `cargo xtask wheel`: the release wheel, installed into a new virtualenv and imported.
pub fn wheel(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("wheel: unknown option '{a}'"));
    }
    let tools = crate::tools::install()?;
    let wheel = build_wheel(&tools.python, true)?;
    let venv = root().join("target/wheel-check");
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let python = venv.join("bin/python");
    pip_install(&python, &wheel)?;
    run(Command::new(&python).args([
        "-c",
        "import s3dlio, tempfile; d = tempfile.mkdtemp(); u = f'file://{d}/x'; \
         s3dlio.put_bytes(u, b'ok'); assert s3dlio.get(u) == b'ok'; \
         print('s3dlio', s3dlio.__version__, 'imports and works from', s3dlio.__file__)",
    ]))?;
    eprintln!("xtask: wheel {}", wheel.display());
    Ok(())
}

/// The benchmark's virtualenv of our module, `target/bench-tools/ours`: a wheel built by
/// maturin (release, or the dev profile for `--quick`, which reuses what the tests built),
/// installed alone (the original s3dlio has the same module name, so it lives in a venv of
/// its own). Returns the venv's Python.
pub fn bench_venv(quick: bool) -> Result<PathBuf, String> {
    let tools = crate::tools::install()?;
    let wheel = build_wheel(&tools.python, !quick)?;
    let venv = root().join("target/bench-tools/ours");
    let python = venv.join("bin/python");
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    pip_install(&python, &wheel)?;
    Ok(python)
}
