//! The parser over the places TFRecord files live: local files, readers, byte streams and
//! objects in any store.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use futures::StreamExt;
use s3dlio_store_core::{ByteStream, GetOptions, ObjectStore, Registry};

use crate::error::{Error, Result};
use crate::format::IndexEntry;
use crate::parse::{IndexOptions, Indexer};

/// Read size for streaming through records.
const BUF: usize = 1 << 20;
/// Read size once records are large and bodies are skipped: enough for a header.
const SMALL_READ: usize = 4096;
/// Skip by seeking only when at least this much can be skipped; less is cheaper to read.
const MIN_SEEK: u64 = 64 << 10;

/// Index any reader, reading it to the end in 1 MiB reads.
pub fn index_reader<R: Read>(mut r: R, opts: IndexOptions) -> Result<Vec<IndexEntry>> {
    let mut ix = Indexer::with_options(opts);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading the TFRecord input", e)),
        };
        ix.feed(&buf[..n])?;
    }
    Ok(ix.finish()?)
}

/// Index a local file. Without data verification, record bodies are not read: the reader
/// seeks over them (as `tfrecord2idx` does) once they are large, and reads through them
/// when they are small; with verification every byte is read once, in 1 MiB reads.
pub fn index_file(path: impl AsRef<Path>, opts: IndexOptions) -> Result<Vec<IndexEntry>> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
    let size = f.metadata().map_err(|e| Error::io(&shown, e))?.len();
    if opts.verify_data {
        return index_reader(f, opts).map_err(|e| e.within(&shown));
    }
    let mut ix = Indexer::with_options(opts);
    let mut buf = vec![0u8; BUF];
    let mut want = BUF;
    loop {
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(&shown, e)),
        };
        ix.feed(&buf[..n])
            .map_err(|e| Error::from(e).within(&shown))?;
        let skip = ix.skippable().min(size.saturating_sub(ix.position()));
        if skip >= MIN_SEEK {
            ix.skip(skip);
            f.seek(SeekFrom::Start(ix.position()))
                .map_err(|e| Error::io(&shown, e))?;
        }
        // Large records: read little more than a header; small ones: read many at once.
        let avg = ix.position() / ix.records().max(1);
        want = if ix.records() > 0 && avg >= 4 * MIN_SEEK {
            SMALL_READ
        } else {
            BUF
        };
    }
    ix.finish().map_err(|e| Error::from(e).within(&shown))
}

/// Index a byte stream (the body of a GET, say), chunk by chunk as it arrives.
pub async fn index_stream(mut stream: ByteStream, opts: IndexOptions) -> Result<Vec<IndexEntry>> {
    let mut ix = Indexer::with_options(opts);
    while let Some(chunk) = stream.next().await {
        ix.feed(&chunk?)?;
    }
    Ok(ix.finish()?)
}

/// Index the object `key` of `store` with one streaming GET.
pub async fn index_object(
    store: &dyn ObjectStore,
    key: &str,
    opts: IndexOptions,
) -> Result<Vec<IndexEntry>> {
    let uri = store.uri_of(key);
    let got = store.get(key, GetOptions::default()).await?;
    index_stream(got.into_stream(), opts)
        .await
        .map_err(|e| e.within(&uri))
}

/// Index the TFRecord file at `uri`, any scheme `registry` knows: a local one (`file://`)
/// through [`index_file`], others through a streaming GET.
pub async fn index_uri(
    registry: &Registry,
    uri: &str,
    opts: IndexOptions,
) -> Result<Vec<IndexEntry>> {
    let parsed = registry.parse(uri)?;
    if let Some(path) = parsed.local_path() {
        return blocking(move || index_file(path, opts)).await;
    }
    let store = registry.store_for(&parsed).await?;
    index_object(store.as_ref(), &parsed.key, opts).await
}

/// Run blocking file work on a thread of its own, off the async executor's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the indexing thread does not panic")
}
