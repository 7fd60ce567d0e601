//! Reads. Small ones happen in the task that opens the file; larger ones are deferred until
//! the caller says how it wants them: whole, with one positional read into one buffer
//! (`GetResult::bytes`), or as a stream of chunks small enough to stay in the CPU cache
//! (`GetResult::into_stream`). Large buffers come from a pool (see `s3dlio_store_core::pool`).

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use s3dlio_store_core::{
    Body, ByteStream, DeferredBody, Error, ErrorKind, GetOptions, GetResult, ObjectMeta, Operation,
    Result,
};

use crate::io::IoPool;
use crate::keys::check_key;
use crate::store::Inner;
use crate::sys::{
    advise, etag, object_meta, read_exact_append, read_exact_at, read_exact_into, Access,
};
use s3dlio_store_core::BufferPool;

/// Chunks a streamed read keeps in flight: one being consumed, one being read.
const READ_AHEAD: usize = 2;

enum Opened {
    Read(ObjectMeta, Range<u64>, Bytes),
    Deferred(ObjectMeta, Range<u64>, File),
}

pub(crate) async fn get(inner: &Arc<Inner>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = inner.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    check_key(key).map_err(ctx)?;
    if let Some(r) = &opts.range {
        r.validate().map_err(ctx)?;
    }
    let (task_inner, task_key) = (Arc::clone(inner), key.to_owned());
    let opened = inner
        .io
        .run(move || open_and_read(&task_inner, task_key, opts))
        .await
        .map_err(ctx)?;
    Ok(match opened {
        Opened::Read(meta, range, bytes) => GetResult {
            meta,
            range,
            body: Body::Bytes(bytes),
            uri,
        },
        Opened::Deferred(meta, range, file) => {
            let body = Body::Deferred(Box::new(FileBody {
                file: Arc::new(file),
                range: range.clone(),
                chunk: inner.opts.read_chunk_size,
                pool: Arc::clone(&inner.pool),
                io: Arc::clone(&inner.io),
                uri: uri.clone(),
            }));
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
/// resolve the range, and read it now if it is small.
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
    if len > inner.opts.eager_read_max as u64 {
        return Ok(Opened::Deferred(meta, range, file));
    }
    // eager_read_max is a usize, so len fits.
    let bytes = read_bytes(&inner.pool, &file, range.start, len as usize).map_err(|e| {
        Error::from_io(
            e,
            format!("read {}", inner.root.path_of(&meta.key).display()),
        )
    })?;
    Ok(Opened::Read(meta, range, bytes))
}

/// An open file and the range to read from it, read the way the caller consumes it.
#[derive(Debug)]
struct FileBody {
    file: Arc<File>,
    range: Range<u64>,
    chunk: usize,
    pool: Arc<BufferPool>,
    io: Arc<IoPool>,
    uri: String,
}

#[async_trait]
impl DeferredBody for FileBody {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let Self {
            file,
            range,
            pool,
            io,
            uri,
            ..
        } = *self;
        let len = usize::try_from(range.end - range.start).map_err(|_| {
            Error::invalid_input(format!(
                "{} bytes do not fit in memory",
                range.end - range.start
            ))
        })?;
        io.run(move || {
            read_bytes(&pool, &file, range.start, len)
                .map_err(|e| Error::from_io(e, format!("read at byte {}", range.start)))
        })
        .await
        .map_err(|e| e.context(Operation::Get, uri))
    }

    fn stream(self: Box<Self>) -> ByteStream {
        chunks(*self)
    }

    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        let Self {
            file,
            range,
            io,
            uri,
            ..
        } = *self;
        let n = range.end - range.start;
        if n != expected {
            return Err(Error::other(format!(
                "body of {n} bytes read as {expected} (a layer disagrees with the backend)"
            ))
            .context(Operation::Get, uri));
        }
        let len = usize::try_from(n)
            .map_err(|_| Error::invalid_input(format!("{n} bytes do not fit in memory")))?;
        // The spare capacity, split off as a buffer of its own for the I/O thread and joined
        // back without a copy; `buf` keeps what it had whatever happens to the job.
        buf.reserve(len);
        let mut tail = buf.split_off(buf.len());
        let filled = io
            .run(move || {
                read_exact_append(&file, range.start, &mut tail, len)
                    .map_err(|e| Error::from_io(e, format!("read at byte {}", range.start)))?;
                Ok(tail)
            })
            .await
            .map_err(|e| e.context(Operation::Get, uri))?;
        buf.unsplit(filled);
        Ok(())
    }
}

/// The bytes of `range` as chunks of `chunk` bytes, each read with one positional read on
/// the I/O threads, the next one already in flight while the caller consumes this one.
fn chunks(body: FileBody) -> ByteStream {
    let FileBody {
        file,
        range,
        chunk,
        pool,
        io,
        uri,
    } = body;
    let step = chunk as u64;
    let starts = (range.start..range.end).step_by(chunk);
    stream::iter(starts)
        .map(move |start| {
            let (file, pool, io, uri) = (
                Arc::clone(&file),
                Arc::clone(&pool),
                Arc::clone(&io),
                uri.clone(),
            );
            let len = step.min(range.end - start) as usize;
            async move {
                io.run(move || {
                    read_bytes(&pool, &file, start, len)
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

/// `len` bytes from `offset`: into a pooled buffer for large reads, else into a buffer of
/// exactly that size.
fn read_bytes(
    pool: &Arc<BufferPool>,
    file: &File,
    offset: u64,
    len: usize,
) -> std::io::Result<Bytes> {
    if pool.pools(len) {
        let mut buf = pool.take(len);
        read_exact_into(file, offset, &mut buf[..len])?;
        Ok(pool.wrap(buf, len))
    } else {
        read_exact_at(file, offset, len).map(Bytes::from)
    }
}
