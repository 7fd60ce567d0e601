//! Streaming writes: bytes go to a temporary file next to the target, published by
//! `rename` on `complete`.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use s3dlio_store_core::{Error, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result};

use crate::keys::check_key;
use crate::store::{check_put_options, Inner};
use crate::sys::{etag, TempFile};

/// Writes an object through a temporary file. Dropped before `complete`, it removes the
/// temporary file (synchronously, best effort); nothing is ever visible under the key
/// before `complete` succeeds.
pub(crate) struct FsWriter {
    inner: Arc<Inner>,
    uri: String,
    create_only: bool,
    tmp: TempFile,
    /// Small writes gathered into one larger write.
    buf: BytesMut,
    written: u64,
    /// Set while a write is in flight (so a cancelled one is noticed) and after a failure:
    /// the file's content is then unknown, and the writer refuses further use.
    broken: Option<String>,
}

impl fmt::Debug for FsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsWriter")
            .field("uri", &self.uri)
            .field("written", &self.written)
            .field("buffered", &self.buf.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl FsWriter {
    pub(crate) async fn open(inner: &Arc<Inner>, key: &str, opts: PutOptions) -> Result<Self> {
        let uri = inner.uri(key);
        let ctx = |e: Error| e.context(Operation::Write, uri.clone());
        check_put_options("file", &opts).map_err(ctx)?;
        check_key(key).map_err(ctx)?;
        let (task_inner, task_key) = (Arc::clone(inner), key.to_owned());
        let tmp = inner
            .io
            .run(move || {
                task_inner
                    .root
                    .create_temp(&task_key, task_inner.opts.fsync)
            })
            .await
            .map_err(ctx)?;
        Ok(Self {
            inner: Arc::clone(inner),
            uri,
            create_only: opts.mode == PutMode::Create,
            tmp,
            buf: BytesMut::new(),
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

    /// Write the gathered bytes, then `direct`, to the file; keep the buffer's allocation.
    async fn flush(&mut self, direct: Option<Bytes>) -> Result<()> {
        let pending = std::mem::take(&mut self.buf).freeze();
        let file = Arc::clone(&self.tmp.file);
        self.broken = Some("a write was cancelled before it finished".to_owned());
        let res = self
            .inner
            .io
            .run(move || {
                let mut f = &*file;
                f.write_all(&pending)
                    .and_then(|()| direct.map_or(Ok(()), |d| f.write_all(&d)))
                    .map_err(|e| Error::from_io(e, "write to the temporary file"))?;
                Ok(pending)
            })
            .await;
        match res {
            Ok(pending) => {
                self.broken = None;
                if let Ok(mut b) = pending.try_into_mut() {
                    b.clear();
                    self.buf = b;
                }
                Ok(())
            }
            Err(e) => {
                self.broken = Some(format!("an earlier write failed: {e}"));
                Err(e.context(Operation::Write, self.uri.clone()))
            }
        }
    }
}

#[async_trait]
impl ObjectWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.usable(Operation::Write)?;
        let cap = self.inner.opts.write_buffer_size;
        let len = data.len();
        if len <= cap.saturating_sub(self.buf.len()) {
            if self.buf.capacity() == 0 && len > 0 {
                self.buf.reserve(cap);
            }
            self.buf.extend_from_slice(&data);
        } else if len >= cap {
            // Large enough on its own: written as is, without a copy.
            self.flush(Some(data)).await?;
        } else {
            self.flush(None).await?;
            if self.buf.capacity() == 0 {
                self.buf.reserve(cap);
            }
            self.buf.extend_from_slice(&data);
        }
        self.written += len as u64;
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<PutResult> {
        self.usable(Operation::Complete)?;
        let Self {
            inner,
            uri,
            create_only,
            tmp,
            buf,
            written,
            ..
        } = *self;
        let pending = buf.freeze();
        let fsync = inner.opts.fsync;
        inner
            .io
            .run(move || {
                (&*tmp.file)
                    .write_all(&pending)
                    .map_err(|e| Error::from_io(e, "write to the temporary file"))?;
                let md = tmp.publish(create_only, fsync)?;
                Ok(PutResult {
                    etag: Some(etag(&md)),
                    size: written,
                })
            })
            .await
            .map_err(|e| e.context(Operation::Complete, uri))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
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
