//! The opt-in fallback says so: one `tracing` warning per file system that refuses
//! O_DIRECT, naming the path and the file system. (Its own test binary: it installs a
//! process-wide subscriber, as the warning comes from the store's I/O threads.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use s3dlio_directio::{DirectOptions, DirectStore, Fallback};
use s3dlio_store_core::ObjectStoreExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fallback_warns_once_per_file_system() {
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("refusing-fs");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "ramfs", "s3dlio-test"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a ramfs here (needs root and mount permission)");
        return;
    }
    eprintln!(
        "running in {} ({})",
        dir.path().display(),
        common::fs(dir.path())
    );
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();
    let store = DirectStore::with_options(
        dir.path(),
        DirectOptions {
            fallback: Fallback::Buffered,
            ..DirectOptions::default()
        },
    )
    .unwrap();
    for k in ["a", "b/c"] {
        store
            .put_bytes(k, Bytes::from_static(b"data"))
            .await
            .unwrap();
        assert_eq!(store.get_bytes(k).await.unwrap(), "data");
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    eprintln!("{log}");
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(
        log.contains("O_DIRECT refused") && log.contains("filesystem=ramfs"),
        "{log}"
    );
    assert!(log.contains(&dir.path().display().to_string()), "{log}");
}
