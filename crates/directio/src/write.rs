//! Writes: into a temporary file next to the target, opened with `O_DIRECT`, in aligned
//! I/Os of `io_size` (up to `queue_depth` in flight), published by `rename` and durable on
//! completion (file and directory synced). An unaligned tail is written as a zero-padded
//! last block and the file then cut to its true size (`ftruncate`) before the sync.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use s3dlio_store_core::{Error, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result};
use s3dlio_store_fs::local::{self, TempFile};

use crate::buf::{AlignedBuf, AlignedPool};
use crate::io::{read_at, windowed, write_at, Mode};
use crate::store::Inner;

/// Write `data` at `offset` (aligned) as one aligned I/O: straight from `data` when its
/// memory is aligned and its length a whole number of blocks, else through a pooled
/// aligned buffer, zero-padded to the next block.
fn write_block(
    pool: &AlignedPool,
    file: &File,
    data: &[u8],
    offset: u64,
    mode: Mode,
) -> std::io::Result<()> {
    let align = mode.align();
    if data.as_ptr() as usize % align == 0 && data.len() % align == 0 {
        return write_at(file, data, offset);
    }
    let padded = data.len().next_multiple_of(align);
    let mut buf = pool.take(padded, align);
    let b = buf.as_mut_slice();
    b[..data.len()].copy_from_slice(data);
    b[data.len()..padded].fill(0);
    let res = write_at(file, &b[..padded], offset);
    pool.give(buf);
    res
}

/// Cut the file to `size` if the last block was padded, publish it durably, and drop
/// whatever the cut (or buffered I/O) left in the page cache.
fn finish(tmp: TempFile, size: u64, create_only: bool, mode: Mode) -> Result<PutResult> {
    let file = Arc::clone(tmp.file());
    if size % mode.align() as u64 != 0 {
        rustix::fs::ftruncate(&*file, size)
            .map_err(|e| Error::from_io(e.into(), "cut the temporary file to its size"))?;
    }
    let md = tmp.publish(create_only, true)?;
    let _ = rustix::fs::fadvise(
        &*file,
        0,
        std::num::NonZeroU64::new(size),
        rustix::fs::Advice::DontNeed,
    );
    Ok(PutResult {
        etag: Some(local::etag(&md)),
        size,
    })
}

pub(crate) async fn put(
    inner: &Arc<Inner>,
    key: &str,
    data: Bytes,
    create_only: bool,
) -> Result<PutResult> {
    let (task_inner, task_key) = (Arc::clone(inner), key.to_owned());
    let (tmp, mode) = inner
        .io
        .run(move || task_inner.create_temp(&task_key))
        .await?;
    let path = inner.root.path_of(key);
    let step = inner.io_size(mode.align());
    let file = Arc::clone(tmp.file());
    let jobs = (0..data.len()).step_by(step).map(|off| {
        let (data, file, pool) = (data.clone(), Arc::clone(&file), Arc::clone(&inner.pool));
        let path = path.clone();
        move || {
            let end = (off + step).min(data.len());
            write_block(&pool, &file, &data[off..end], off as u64, mode)
                .map_err(|e| Error::from_io(e, format!("write {}", path.display())))
        }
    });
    windowed(&inner.io, jobs, inner.opts.queue_depth).await?;
    let size = data.len() as u64;
    inner
        .io
        .run(move || finish(tmp, size, create_only, mode))
        .await
}

pub(crate) async fn copy(
    inner: &Arc<Inner>,
    from: &str,
    to: &str,
    create_only: bool,
) -> Result<PutResult> {
    let (task, from, to) = (Arc::clone(inner), from.to_owned(), to.to_owned());
    inner
        .io
        .run(move || {
            let src_uri = task.uri(&from);
            let (src, md, smode) = task.open_read(&from).map_err(|e| e.with_uri(src_uri))?;
            let ctx = |e: Error| e.with_uri(task.uri(&to));
            let (tmp, dmode) = task.create_temp(&to).map_err(ctx)?;
            let align = smode.align().max(dmode.align());
            let step = task.io_size(align);
            let size = md.len();
            let mut buf = task.pool.take(step, align);
            let mut pos = 0u64;
            while pos < size {
                let want = step.min((size - pos).next_multiple_of(align as u64) as usize);
                let need = (size - pos).min(step as u64) as usize;
                let got = read_at(&src, &mut buf.as_mut_slice()[..want], pos, need, align)
                    .map_err(|e| {
                        ctx(Error::from_io(
                            e,
                            format!("copy {}", task.root.path_of(&from).display()),
                        ))
                    })?;
                let n = got.min(need);
                write_block(&task.pool, tmp.file(), &buf.as_slice()[..n], pos, dmode).map_err(
                    |e| {
                        ctx(Error::from_io(
                            e,
                            format!("write {}", task.root.path_of(&to).display()),
                        ))
                    },
                )?;
                pos += n as u64;
            }
            task.pool.give(buf);
            smode.drop_cache(&src, 0..size);
            finish(tmp, size, create_only, dmode).map_err(ctx)
        })
        .await
}

type Pending = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A streaming write: bytes gather in an aligned buffer of `io_size`; each full buffer is
/// written as one I/O while the next fills, up to `queue_depth` in flight. Nothing is
/// visible under the key before `complete`; dropped or aborted, it leaves nothing behind.
pub(crate) struct DirectWriter {
    inner: Arc<Inner>,
    uri: String,
    create_only: bool,
    tmp: TempFile,
    mode: Mode,
    step: usize,
    cur: Option<AlignedBuf>,
    fill: usize,
    /// File offset of `cur`.
    offset: u64,
    pending: VecDeque<Pending>,
    written: u64,
    /// Set while awaiting a write (so a cancelled one is noticed) and after a failure.
    broken: Option<String>,
}

impl fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectWriter")
            .field("uri", &self.uri)
            .field("mode", &self.mode)
            .field("written", &self.written)
            .field("in_flight", &self.pending.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl DirectWriter {
    pub(crate) async fn open(inner: &Arc<Inner>, key: &str, opts: PutOptions) -> Result<Self> {
        let uri = inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Write, uri.clone());
        local::check_put_options("direct", &opts).map_err(ctx)?;
        local::check_key(key).map_err(ctx)?;
        let (task_inner, task_key) = (Arc::clone(inner), key.to_owned());
        let (tmp, mode) = inner
            .io
            .run(move || task_inner.create_temp(&task_key))
            .await
            .map_err(ctx)?;
        Ok(Self {
            step: inner.io_size(mode.align()),
            inner: Arc::clone(inner),
            uri,
            create_only: opts.mode == PutMode::Create,
            tmp,
            mode,
            cur: None,
            fill: 0,
            offset: 0,
            pending: VecDeque::new(),
            written: 0,
            broken: None,
        })
    }

    fn usable(&self, op: Operation) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => {
                Err(Error::other(format!("writer unusable: {why}")).context(op, self.uri.clone()))
            }
        }
    }

    /// Queue the current buffer's `fill` bytes as one I/O at its offset.
    fn submit(&mut self) {
        let Some(buf) = self.cur.take() else { return };
        let (fill, offset, mode) = (self.fill, self.offset, self.mode);
        let (file, pool) = (Arc::clone(self.tmp.file()), Arc::clone(&self.inner.pool));
        let job = self.inner.io.submit(move || {
            let res = write_block(&pool, &file, &buf.as_slice()[..fill], offset, mode)
                .map_err(|e| Error::from_io(e, format!("write at byte {offset}")));
            pool.give(buf);
            res
        });
        self.pending.push_back(Box::pin(job));
        self.offset += fill as u64;
        self.fill = 0;
    }

    /// Wait for the oldest I/Os until at most `keep` are in flight.
    async fn drain(&mut self, keep: usize) -> Result<()> {
        while self.pending.len() > keep {
            self.broken = Some("a write was cancelled before it finished".to_owned());
            let res = self.pending.pop_front().expect("non-empty").await;
            match res {
                Ok(()) => self.broken = None,
                Err(e) => {
                    self.broken = Some(format!("an earlier write failed: {e}"));
                    return Err(e.context(Operation::Write, self.uri.clone()));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for DirectWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.usable(Operation::Write)?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let buf = match &mut self.cur {
                Some(b) => b,
                None => self
                    .cur
                    .insert(self.inner.pool.take(self.step, self.mode.align())),
            };
            let n = rest.len().min(self.step - self.fill);
            buf.as_mut_slice()[self.fill..self.fill + n].copy_from_slice(&rest[..n]);
            self.fill += n;
            rest = &rest[n..];
            if self.fill == self.step {
                self.submit();
                let keep = self.inner.opts.queue_depth.saturating_sub(1);
                self.drain(keep).await?;
            }
        }
        self.written += data.len() as u64;
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        self.usable(Operation::Complete)?;
        if self.fill > 0 {
            self.submit();
        }
        self.drain(0)
            .await
            .map_err(|e| e.with_operation(Operation::Complete))?;
        let Self {
            inner,
            uri,
            create_only,
            tmp,
            mode,
            written,
            ..
        } = *self;
        inner
            .io
            .run(move || finish(tmp, written, create_only, mode))
            .await
            .map_err(|e| e.context(Operation::Complete, uri))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Let queued I/Os finish (their outcome no longer matters), then remove the file.
        while let Some(p) = self.pending.pop_front() {
            let _ = p.await;
        }
        let Self {
            inner, uri, tmp, ..
        } = *self;
        inner
            .io
            .run(move || tmp.discard())
            .await
            .map_err(|e| e.context(Operation::Abort, uri))
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}
