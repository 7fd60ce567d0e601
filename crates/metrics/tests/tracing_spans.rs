//! Tracing: a DEBUG span per operation with the URI and the sizes, and no secrets, in the
//! spans or in the op-log, when a key carries a SAS token.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use s3dlio_metrics::{read_op_log, ObservedStore, OpLog, Tracing};
use s3dlio_store_core::{MemoryStore, ObjectStore, ObjectStoreExt};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spans_at_debug_carry_uri_and_sizes_but_no_secrets() {
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || out.clone())
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.tsv.zst");
    let log = OpLog::create(&path).unwrap();
    // An https Azure URI with a SAS token parses into a key holding the query string.
    let key = "data/x.bin?sv=2024-01-01&se=2030&sig=TOPSECRET";
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = ObservedStore::new(
                MemoryStore::with_base_uri("az://acct/cont/"),
                (Tracing, log.recorder()),
            );
            store
                .put_bytes(key, Bytes::from(vec![0u8; 4096]))
                .await
                .unwrap();
            store.get_bytes(key).await.unwrap();
            store.delete("missing?sig=TOPSECRET").await.unwrap();
            assert!(store.head("missing?sig=TOPSECRET").await.is_err());
        });
    });
    log.finish().unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("TOPSECRET"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("DEBUG")
            && lines[0].contains("s3dlio.op{op=\"PUT\" uri=az://acct/cont/data/x.bin?REDACTED}"),
        "{text}"
    );
    assert!(
        lines[1].contains("op=\"GET\"") && lines[1].contains("bytes=4096"),
        "{text}"
    );
    assert!(
        lines[3].contains("op=\"HEAD\"") && lines[3].contains("failed"),
        "{text}"
    );
    let log_text: String = read_op_log(&path)
        .unwrap()
        .rows
        .iter()
        .map(|r| format!("{}\t{}\t{}\n", r.endpoint, r.file, r.error))
        .collect();
    assert!(!log_text.contains("TOPSECRET"), "{log_text}");
    assert!(
        log_text.contains("az://acct/cont/data/x.bin?REDACTED"),
        "{log_text}"
    );
}
