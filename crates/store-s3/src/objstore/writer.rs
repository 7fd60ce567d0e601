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

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore as _, PutMultipartOptions, PutPayload};
use s3dlio_store_core::pending::{PartedWriter, Parts};
use s3dlio_store_core::{Error, ErrorKind, Operation, PutMode, PutOptions, PutResult, Result};

use super::error::map_err;
use super::{attributes, put_single, Shared};
use crate::config::MAX_PART_SIZE;
use crate::pending::abort_in_background;
use crate::writer::{max_parts, part_size};

/// S3's largest single PUT, and so the largest conditional write this backend can make.
pub(crate) const MAX_SINGLE_PUT: usize = MAX_PART_SIZE;

/// object_store's side of a streamed write (see [`PartedWriter`]).
pub(crate) struct ObjStoreParts {
    shared: Arc<Shared>,
    key: String,
    path: Path,
    opts: PutOptions,
    upload: Option<Box<dyn MultipartUpload>>,
}

/// A streamed write to `key` (at `path`).
pub(crate) fn writer(
    shared: Arc<Shared>,
    key: &str,
    path: Path,
    opts: PutOptions,
) -> PartedWriter<ObjStoreParts> {
    PartedWriter::new(ObjStoreParts {
        shared,
        key: key.to_owned(),
        path,
        opts,
        upload: None,
    })
}

#[async_trait]
impl Parts for ObjStoreParts {
    type Done = ();

    fn uri(&self) -> String {
        self.shared.uri(&self.key)
    }

    fn single_max(&self) -> usize {
        self.shared.opts.multipart_threshold
    }

    fn concurrency(&self) -> usize {
        self.shared.opts.upload_concurrency
    }

    fn part_size(&self, n: u32) -> usize {
        part_size(self.shared.opts.part_size, n)
    }

    fn max_parts(&self) -> (u32, Error) {
        max_parts()
    }

    fn stage_at(&self, pending: usize) -> Result<bool> {
        if self.opts.mode == PutMode::Overwrite {
            return Ok(true);
        }
        if pending <= MAX_SINGLE_PUT {
            return Ok(false);
        }
        Err(Error::new(
            ErrorKind::NotSupported,
            format!(
                "a conditional write through object_store is one PUT, at most \
                 {MAX_SINGLE_PUT} bytes: object_store cannot put a condition on a \
                 multipart completion"
            ),
        ))
    }

    fn needs_last_part(&self) -> bool {
        true
    }

    async fn put_whole(&mut self, body: Vec<Bytes>) -> Result<PutResult> {
        let body: PutPayload = body.into_iter().collect();
        put_single(&self.shared, &self.key, &self.path, body, &self.opts).await
    }

    async fn start(&mut self) -> Result<()> {
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

    fn part(&mut self, _: u32, body: Vec<Bytes>) -> Result<BoxFuture<'static, Result<()>>> {
        let uri = self.uri();
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| Error::other("no multipart upload to send a part to"))?;
        // object_store numbers parts in the order they are asked for, as they are here.
        let sent = upload.put_part(body.into_iter().collect());
        Ok(Box::pin(async move {
            sent.await.map_err(|e| map_err(e, Operation::Write, &uri))
        }))
    }

    async fn commit(&mut self, _: Vec<()>, size: u64) -> Result<PutResult> {
        let uri = self.uri();
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| Error::other("no multipart upload to complete"))?;
        let out = upload
            .complete()
            .await
            .map_err(|e| map_err(e, Operation::Complete, &uri))?;
        self.upload = None;
        Ok(PutResult {
            etag: out.e_tag,
            size,
        })
    }

    async fn abort(&mut self) {
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

    fn abort_detached(&mut self) {
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
