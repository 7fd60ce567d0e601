//! Streaming writes through `object_store`, with the native writer's shape: up to
//! `multipart_threshold` bytes are buffered and sent as one PUT; past it a multipart upload
//! (`put_multipart_opts`) starts and full parts (of the same growing sizes as the native
//! writer's) are uploaded with at most `upload_concurrency` in flight. A failure, `abort`,
//! or dropping the writer aborts the upload: object_store's `MultipartUpload` does nothing
//! on drop, so the writer spawns the abort itself when a runtime is there to run it.
//!
//! Conditional writers (`PutMode::Create`, `PutMode::IfMatch`) cannot go multipart here:
//! object_store's `MultipartUpload::complete` sends no condition. They keep buffering and send
//! one conditional PUT, which S3 allows up to 5 GiB; past that the write fails with
//! `NotSupported` before anything is sent.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore as _, PutMultipartOptions, PutPayload};
use s3dlio_store_core::{
    Error, ErrorKind, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result,
};
use tokio::task::JoinSet;

use super::error::map_err;
use super::{attributes, put_single, Shared};
use crate::config::{MAX_PARTS, MAX_PART_SIZE};
use crate::pending::{abort_in_background, Pending};
use crate::writer::part_size;

/// S3's largest single PUT, and so the largest conditional write this backend can make.
pub(crate) const MAX_SINGLE_PUT: usize = MAX_PART_SIZE;

pub(crate) struct ObjStoreWriter {
    shared: Arc<Shared>,
    key: String,
    path: Path,
    opts: PutOptions,
    /// Bytes not yet sent, as the caller handed them (parts are cut without copying).
    pending: Pending,
    written: u64,
    upload: Option<Box<dyn MultipartUpload>>,
    next_part: u32,
    in_flight: JoinSet<object_store::Result<()>>,
    /// Set once completed or aborted, so Drop leaves the upload alone.
    finished: bool,
}

impl fmt::Debug for ObjStoreWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjStoreWriter")
            .field("uri", &self.uri())
            .field("written", &self.written)
            .field("multipart", &self.upload.is_some())
            .field("parts", &self.next_part.saturating_sub(1))
            .finish()
    }
}

impl ObjStoreWriter {
    pub(crate) fn new(shared: Arc<Shared>, key: &str, path: Path, opts: PutOptions) -> Self {
        Self {
            shared,
            key: key.to_owned(),
            path,
            opts,
            pending: Pending::default(),
            written: 0,
            upload: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            finished: false,
        }
    }

    fn uri(&self) -> String {
        self.shared.uri(&self.key)
    }

    /// Take exactly `n` pending bytes as one payload, slicing the caller's buffers.
    fn take(&mut self, n: usize) -> PutPayload {
        self.pending.take(n).into_iter().collect()
    }

    async fn start_upload(&mut self) -> Result<()> {
        let upload = self
            .shared
            .inner
            .put_multipart_opts(
                &self.path,
                PutMultipartOptions {
                    attributes: attributes(&self.opts, &self.shared.opts),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err(e, Operation::Write, &self.uri()))?;
        self.upload = Some(upload);
        Ok(())
    }

    /// Upload one part in the background, first waiting for a slot if all are busy.
    async fn send_part(&mut self, body: PutPayload) -> Result<()> {
        while self.in_flight.len() >= self.shared.opts.upload_concurrency {
            self.reap_one().await?;
        }
        if self.next_part > MAX_PARTS {
            return Err(Error::invalid_input(format!(
                "upload exceeds S3's {MAX_PARTS} parts; raise part_size"
            )));
        }
        self.next_part += 1;
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| Error::other("no multipart upload to send a part to"))?;
        self.in_flight.spawn(upload.put_part(body));
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            joined
                .map_err(|e| Error::other(format!("part upload task failed: {e}")))?
                .map_err(|e| map_err(e, Operation::Write, &self.uri()))?;
        }
        Ok(())
    }

    /// Send every full part that is pending.
    async fn flush_full_parts(&mut self) -> Result<()> {
        loop {
            let size = part_size(self.shared.opts.part_size, self.next_part);
            if self.pending.len() < size {
                return Ok(());
            }
            let body = self.take(size);
            self.send_part(body).await?;
        }
    }

    async fn fail(&mut self, e: Error) -> Error {
        self.abort_now().await;
        e.context(Operation::Write, self.uri())
    }

    /// Stop the parts in flight and abort the upload, logging (not returning) a failure to
    /// abort: callers are already reporting the error that made them abort.
    async fn abort_now(&mut self) {
        self.finished = true;
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.pending.clear();
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(
                    uri = %self.uri(),
                    "could not abort multipart upload: {}",
                    map_err(e, Operation::Abort, &self.uri())
                );
            }
        }
    }

    async fn complete_upload(&mut self) -> Result<PutResult> {
        let rest = self.pending.len();
        if rest > 0 || self.next_part == 1 {
            let body = self.take(rest);
            self.send_part(body).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| Error::other("no multipart upload to complete"))?;
        let out = upload
            .complete()
            .await
            .map_err(|e| map_err(e, Operation::Complete, &self.shared.uri(&self.key)))?;
        Ok(PutResult {
            etag: out.e_tag,
            size: self.written,
        })
    }
}

#[async_trait]
impl ObjectWriter for ObjStoreWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.finished {
            return Err(Error::invalid_input("write after the writer failed")
                .context(Operation::Write, self.uri()));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.written += data.len() as u64;
        self.pending.push(data);
        if self.upload.is_none() {
            if self.pending.len() <= self.shared.opts.multipart_threshold {
                return Ok(());
            }
            if self.opts.mode != PutMode::Overwrite {
                if self.pending.len() <= MAX_SINGLE_PUT {
                    return Ok(());
                }
                let e = Error::new(
                    ErrorKind::NotSupported,
                    format!(
                        "a conditional write through object_store is one PUT, at most \
                         {MAX_SINGLE_PUT} bytes: object_store cannot put a condition on a \
                         multipart completion"
                    ),
                );
                return Err(self.fail(e).await);
            }
            if let Err(e) = self.start_upload().await {
                return Err(self.fail(e).await);
            }
        }
        if let Err(e) = self.flush_full_parts().await {
            return Err(self.fail(e).await);
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        if self.finished {
            return Err(Error::invalid_input("complete after the writer failed")
                .context(Operation::Complete, self.uri()));
        }
        if self.upload.is_none() {
            // Small, or conditional: one PUT.
            let n = self.pending.len();
            let body = self.take(n);
            self.finished = true;
            return put_single(&self.shared, &self.key, &self.path, body, &self.opts).await;
        }
        match self.complete_upload().await {
            Ok(r) => {
                self.finished = true;
                Ok(r)
            }
            Err(e) => {
                self.abort_now().await;
                Err(e.with_operation(Operation::Complete).with_uri(self.uri()))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_now().await;
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

impl Drop for ObjStoreWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.in_flight.abort_all();
        // object_store's upload does not abort itself on drop.
        if let Some(mut upload) = self.upload.take() {
            let uri = self.uri();
            abort_in_background(uri.clone(), async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(%uri, "could not abort a dropped writer's upload: {e}");
                }
            });
        }
    }
}
