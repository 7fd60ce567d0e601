//! Where the tests put their files: a directory on a file system that accepts O_DIRECT (a
//! real disk), never tmpfs-backed /tmp by accident. Each test prints which file system
//! it ran on.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use s3dlio_directio::{filesystem_of, supports_o_direct};

/// The first candidate directory whose file system takes O_DIRECT: `S3DLIO_TEST_DIRECT_DIR`,
/// then the crate's target temporary directory (on the disk the build is on), `/var/tmp`,
/// and the system temporary directory. `None` (with the reason printed) if none does.
pub fn direct_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("S3DLIO_TEST_DIRECT_DIR") {
            candidates.push(d.into());
        }
        candidates.push(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("directio"));
        candidates.push("/var/tmp".into());
        candidates.push(std::env::temp_dir());
        for dir in &candidates {
            if std::fs::create_dir_all(dir).is_err() {
                continue;
            }
            match supports_o_direct(dir) {
                Ok(true) => return Some(dir.clone()),
                Ok(false) => eprintln!(
                    "directio tests: {} ({}) refuses O_DIRECT",
                    dir.display(),
                    fs(dir)
                ),
                Err(e) => eprintln!("directio tests: {}: {e}", dir.display()),
            }
        }
        eprintln!(
            "directio tests: no directory on a file system that accepts O_DIRECT among {candidates:?}"
        );
        None
    })
    .clone()
}

/// The file system of `dir`, for messages.
pub fn fs(dir: &std::path::Path) -> String {
    filesystem_of(dir).unwrap_or_else(|| "unknown file system".to_owned())
}

/// A fresh temporary directory on an O_DIRECT file system, and that file system's name
/// (printed).
pub fn tempdir(test: &str) -> Option<(tempfile::TempDir, String)> {
    let Some(base) = direct_dir() else {
        eprintln!("{test}: SKIPPED: no directory on a file system that accepts O_DIRECT");
        return None;
    };
    let dir = tempfile::tempdir_in(&base).expect("temporary directory");
    let fs = fs(dir.path());
    eprintln!("{test}: running in {} ({fs})", dir.path().display());
    Some((dir, fs))
}
