//! The parser over the places TFRecord files live: local files, readers, byte streams and
//! objects in any store.

use std::io::Read;
use std::path::Path;

use futures::StreamExt;
use s3dlio_store_core::{ByteStream, GetOptions, ObjectStore, Registry};

use crate::error::{Error, Result};
use crate::format::IndexEntry;
use crate::parse::{IndexOptions, Indexer};

/// Read size for streaming through records.
const BUF: usize = 1 << 20;
/// Read size once records are large and bodies are skipped: a header and a little more (a
/// 4 KiB read costs a third more CPU per record than this; a memory map costs as much).
const SMALL_READ: usize = 64;
/// Records this large on average are read a header at a time.
const LARGE_RECORD: u64 = 32 << 10;

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

/// Index a local file. Without data verification, record bodies are not read: reads are
/// positional, skipping every body's remainder, and once records are large (32 KiB and up
/// on average) each read is 64 bytes, little more than a header; small records are parsed in
/// place from 1 MiB reads. With verification every byte is read once, in 1 MiB reads.
pub fn index_file(path: impl AsRef<Path>, opts: IndexOptions) -> Result<Vec<IndexEntry>> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
    if opts.verify_data {
        return index_reader(f, opts).map_err(|e| match e {
            Error::Io(_, io) => Error::io(&shown, io),
            other => other.within(&shown),
        });
    }
    let size = f.metadata().map_err(|e| Error::io(&shown, e))?.len();
    let mut ix = Indexer::with_options(opts);
    let mut buf = vec![0u8; BUF];
    let mut want = BUF;
    loop {
        let pos = ix.position();
        let n = match read_at(&f, &mut buf[..want], pos) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(&shown, e)),
        };
        ix.feed(&buf[..n])
            .map_err(|e| Error::from(e).within(&shown))?;
        // Never past the end: a record cut short stays unfinished and is reported.
        let skip = ix.skippable().min(size.saturating_sub(ix.position()));
        ix.skip(skip);
        let avg = ix.position() / ix.records().max(1);
        want = if ix.records() > 0 && avg >= LARGE_RECORD {
            SMALL_READ
        } else {
            BUF
        };
    }
    ix.finish().map_err(|e| Error::from(e).within(&shown))
}

#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, pos)
}

#[cfg(windows)]
fn read_at(f: &std::fs::File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, pos)
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
