//! Reads. The aligned span covering the asked range is read with `O_DIRECT` straight into
//! an aligned pooled buffer, which the caller gets as `Bytes` sliced to the range: no copy.
//! Small ranges (up to one I/O) are read with the open; larger ones when the caller
//! consumes the body: whole (`GetResult::bytes`, one buffer filled by up to `queue_depth`
//! I/Os of `io_size` in flight) or streamed (`GetResult::into_stream`, one I/O per chunk,
//! `queue_depth` chunks ahead).

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3dlio_store_core::{
    Body, ByteStream, DeferredBody, Error, ErrorKind, GetOptions, GetResult, ObjectMeta, Operation,
    Result,
};
use s3dlio_store_fs::local;

use crate::buf::{AlignedPool, Shared};
use crate::io::{covering, read_at, windowed, Mode};
use crate::store::Inner;

enum Opened {
    Read(ObjectMeta, Range<u64>, Bytes),
    Deferred(ObjectMeta, Range<u64>, File, Mode),
}

pub(crate) async fn get(inner: &Arc<Inner>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = inner.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    local::check_key(key).map_err(ctx)?;
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
        Opened::Deferred(meta, range, file, mode) => {
            let body = Body::Deferred(Box::new(DirectBody {
                inner: Arc::clone(inner),
                file: Arc::new(file),
                range: range.clone(),
                mode,
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

/// Open, check If-Match against the `fstat` of the opened file, resolve the range, and
/// read it now if it fits in one I/O.
fn open_and_read(inner: &Inner, key: String, opts: GetOptions) -> Result<Opened> {
    let (file, md, mode) = inner.open_read(&key)?;
    if let Some(want) = &opts.if_match {
        let have = local::etag(&md);
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
    let meta = local::object_meta(key, &md);
    let span = covering(&range, mode.align());
    if span.end - span.start > inner.io_size(mode.align()) as u64 {
        return Ok(Opened::Deferred(meta, range, file, mode));
    }
    let bytes = read_one(&inner.pool, &file, &range, mode).map_err(|e| {
        Error::from_io(
            e,
            format!("read {}", inner.root.path_of(&meta.key).display()),
        )
    })?;
    Ok(Opened::Read(meta, range, bytes))
}

/// `range` with one aligned read into one pooled buffer.
fn read_one(
    pool: &Arc<AlignedPool>,
    file: &File,
    range: &Range<u64>,
    mode: Mode,
) -> std::io::Result<Bytes> {
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    let align = mode.align();
    let span = covering(range, align);
    let total = (span.end - span.start) as usize;
    let mut buf = pool.take(total, align);
    let need = (range.end - span.start) as usize;
    read_at(
        file,
        &mut buf.as_mut_slice()[..total],
        span.start,
        need,
        align,
    )?;
    mode.drop_cache(file, span.clone());
    let skip = (range.start - span.start) as usize;
    Ok(pool.wrap(buf, skip, (range.end - range.start) as usize))
}

/// An open file and the range to read from it, read the way the caller consumes it.
struct DirectBody {
    inner: Arc<Inner>,
    file: Arc<File>,
    range: Range<u64>,
    mode: Mode,
    uri: String,
}

impl std::fmt::Debug for DirectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBody")
            .field("range", &self.range)
            .field("mode", &self.mode)
            .field("uri", &self.uri)
            .finish()
    }
}

#[async_trait]
impl DeferredBody for DirectBody {
    /// One aligned buffer for the whole span, filled by I/Os of `io_size`, up to
    /// `queue_depth` in flight, each into its own part of the buffer.
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let Self {
            inner,
            file,
            range,
            mode,
            uri,
        } = *self;
        let ctx = |e: Error| e.context(Operation::Get, uri.clone());
        let align = mode.align();
        let span = covering(&range, align);
        let total = usize::try_from(span.end - span.start).map_err(|_| {
            ctx(Error::invalid_input(format!(
                "{} bytes do not fit in memory",
                range.end - range.start
            )))
        })?;
        let step = inner.io_size(align);
        let shared = Shared::new(inner.pool.take(total, align));
        let jobs = (0..total).step_by(step).map(|off| {
            let (shared, file) = (shared.clone(), Arc::clone(&file));
            let end = (off + step).min(total);
            let pos = span.start + off as u64;
            // Bytes of this I/O that lie inside the range: the file must have them.
            let need = (range.end.min(pos + (end - off) as u64)).saturating_sub(pos) as usize;
            move || {
                // SAFETY: the jobs' parts `off..end` are disjoint, and the buffer is read
                // only after every job has finished (see below).
                let part = unsafe { shared.slice_mut(off, end) };
                let res = read_at(&file, part, pos, need, align)
                    .map_err(|e| Error::from_io(e, format!("read at byte {pos}")));
                drop(shared);
                res.map(|_| ())
            }
        });
        windowed(&inner.io, jobs, inner.opts.queue_depth)
            .await
            .map_err(ctx)?;
        mode.drop_cache(&file, span.clone());
        // Every job has returned, and each dropped its handle before returning.
        let buf = shared
            .into_inner()
            .ok_or_else(|| ctx(Error::other("read buffer still in use after the reads")))?;
        let skip = (range.start - span.start) as usize;
        Ok(inner
            .pool
            .wrap(buf, skip, (range.end - range.start) as usize))
    }

    /// Chunks of `io_size` (the first and last trimmed to the range), each one aligned
    /// I/O into its own pooled buffer, `queue_depth` of them in flight.
    fn stream(self: Box<Self>) -> ByteStream {
        let Self {
            inner,
            file,
            range,
            mode,
            uri,
        } = *self;
        let align = mode.align();
        let span = covering(&range, align);
        let step = inner.io_size(align) as u64;
        let depth = inner.opts.queue_depth;
        let io = Arc::clone(&inner.io);
        stream::iter((span.start..span.end).step_by(step as usize))
            .map(move |pos| {
                let (file, pool, uri) = (Arc::clone(&file), Arc::clone(&inner.pool), uri.clone());
                let part = pos.max(range.start)..(pos + step).min(range.end);
                let job = io.submit(move || {
                    read_one(&pool, &file, &part, mode)
                        .map_err(|e| Error::from_io(e, format!("read at byte {pos}")))
                });
                async move { job.await.map_err(|e| e.context(Operation::Get, uri)) }
            })
            .buffered(depth)
            // End at the first error: chunks after a failed one would not be contiguous.
            .scan(false, |failed, r: Result<Bytes>| {
                let out = if *failed { None } else { Some(r) };
                *failed = matches!(out, Some(Err(_)) | None);
                futures::future::ready(out)
            })
            .boxed()
    }
}
