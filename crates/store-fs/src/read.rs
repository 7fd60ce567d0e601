//! Reads: one positional read into an exact-size buffer, or a stream of chunks.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3dlio_store_core::{
    Body, ByteStream, Error, ErrorKind, GetOptions, GetResult, ObjectMeta, Operation, Result,
};

use crate::keys::check_key;
use crate::store::{blocking, Inner};
use crate::sys::{advise, etag, object_meta, read_exact_at, Access};

/// Chunks a streamed read keeps in flight: one being consumed, one being read.
const READ_AHEAD: usize = 2;

enum Opened {
    Whole(ObjectMeta, Range<u64>, Bytes),
    Streamed(ObjectMeta, Range<u64>, File),
}

pub(crate) async fn get(inner: &Arc<Inner>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = inner.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    check_key(key).map_err(ctx)?;
    if let Some(r) = &opts.range {
        r.validate().map_err(ctx)?;
    }
    let (task_inner, task_key) = (Arc::clone(inner), key.to_owned());
    let opened = blocking(move || open_and_read(&task_inner, task_key, opts))
        .await
        .map_err(ctx)?;
    Ok(match opened {
        Opened::Whole(meta, range, bytes) => GetResult {
            meta,
            range,
            body: Body::Bytes(bytes),
            uri,
        },
        Opened::Streamed(meta, range, file) => {
            let body = Body::Stream(chunks(
                Arc::new(file),
                range.clone(),
                inner.opts.read_chunk_size,
                uri.clone(),
            ));
            GetResult {
                meta,
                range,
                body,
                uri,
            }
        }
    })
}

/// Open, `fstat` the opened file, check If-Match against the ETag of that same `fstat`,
/// resolve the range, and read it now if it is small enough to return whole.
fn open_and_read(inner: &Inner, key: String, opts: GetOptions) -> Result<Opened> {
    let (file, md) = inner.root.open_object(&key, Access::Read)?;
    if let Some(want) = &opts.if_match {
        let have = etag(&md);
        if *want != have {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("ETag is {have}, not {want}"),
            ));
        }
    }
    let size = md.len();
    let range = match opts.range {
        Some(r) => r.resolve(size)?,
        None => 0..size,
    };
    advise(&file, &range, size, &inner.opts);
    let meta = object_meta(key, &md);
    let len = range.end - range.start;
    if len > inner.opts.stream_threshold {
        return Ok(Opened::Streamed(meta, range, file));
    }
    let len = usize::try_from(len)
        .map_err(|_| Error::invalid_input(format!("{len} bytes do not fit in memory")))?;
    let path = inner.root.path_of(&meta.key);
    let buf = read_exact_at(&file, range.start, len)
        .map_err(|e| Error::from_io(e, format!("read {}", path.display())))?;
    Ok(Opened::Whole(meta, range, Bytes::from(buf)))
}

/// The bytes of `range` as chunks of `chunk` bytes, each read with one positional read on
/// the blocking pool, the next one already in flight while the caller consumes this one.
fn chunks(file: Arc<File>, range: Range<u64>, chunk: usize, uri: String) -> ByteStream {
    let step = chunk as u64;
    let starts = (range.start..range.end).step_by(chunk);
    stream::iter(starts)
        .map(move |start| {
            let (file, uri) = (Arc::clone(&file), uri.clone());
            let len = step.min(range.end - start) as usize;
            async move {
                blocking(move || {
                    read_exact_at(&file, start, len)
                        .map(Bytes::from)
                        .map_err(|e| Error::from_io(e, format!("read at byte {start}")))
                })
                .await
                .map_err(|e| e.context(Operation::Get, uri))
            }
        })
        .buffered(READ_AHEAD)
        // End at the first error: chunks after a failed one would not be contiguous.
        .scan(false, |failed, r: Result<Bytes>| {
            let out = if *failed { None } else { Some(r) };
            *failed = matches!(out, Some(Err(_)) | None);
            futures::future::ready(out)
        })
        .boxed()
}
