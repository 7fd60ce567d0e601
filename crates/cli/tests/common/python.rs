//! The test venv's Python (`cargo xtask test` sets S3DLIO_TEST_PYTHON), for checks against
//! independent implementations. Also used by crates/tfrecord-index/tests (by path).

/// Run `script` with the test Python if it has `modules`, returning its stdout. Under
/// `cargo xtask test` (`S3DLIO_TEST_PYTHON` set) the tools venv must have them; run by hand
/// without it, a Python lacking them skips the check with a note.
pub fn python_with(modules: &[&str], script: &str) -> Option<String> {
    let required = std::env::var("S3DLIO_TEST_PYTHON").ok();
    let py = required.clone().unwrap_or_else(|| "python3".into());
    let import = format!("import {}", modules.join(", "));
    let has = std::process::Command::new(&py)
        .args(["-c", &import])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            required.is_none(),
            "{py} lacks {modules:?}: `cargo xtask test` installs them into its venv"
        );
        eprintln!("note: {py} lacks {modules:?}; checked in Rust only");
        return None;
    }
    let o = std::process::Command::new(&py)
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{py} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}
