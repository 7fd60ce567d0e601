//! Streaming writes. Up to `multipart_threshold` bytes are buffered and sent as one
//! PutObject; past it, a multipart upload starts and full parts are uploaded concurrently
//! (at most `upload_concurrency` in flight, which bounds memory) while the caller keeps
//! writing. `complete` sends the last part and completes the upload, with the write mode's
//! condition; any failure, `abort`, or dropping the writer aborts the upload, so neither an
//! object nor a dangling upload is left behind.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::future::BoxFuture;
use s3dlio_store_core::pending::{contiguous, PartedWriter, Parts};
use s3dlio_store_core::{Error, Operation, PutMode, PutOptions, PutResult, Result};

use crate::config::{UploadIntegrity, MAX_PARTS, MAX_PART_SIZE};
use crate::error::sdk_error;
use crate::pending::abort_in_background;
use crate::store::{abort_upload, conditions, created_conflict, put_object, Shared};

/// Size of part `n` (1-based): the base size, doubled every 1,000 parts, so 10,000 parts
/// of a base of 8 MiB reach past S3's 5 TiB object limit while parts stay within 5 GiB.
pub(crate) fn part_size(base: usize, n: u32) -> usize {
    let doublings = ((n.saturating_sub(1)) / 1000).min(20);
    base.saturating_mul(1usize << doublings).min(MAX_PART_SIZE)
}

/// S3's most parts, and the error past them.
pub(crate) fn max_parts() -> (u32, Error) {
    let e = Error::invalid_input(format!(
        "upload exceeds S3's {MAX_PARTS} parts; raise part_size"
    ));
    (MAX_PARTS, e)
}

/// S3's side of a streamed write: one PutObject when small, else a multipart upload (see
/// [`PartedWriter`]), completed with the write mode's condition.
pub(crate) struct S3Parts {
    shared: Arc<Shared>,
    key: String,
    opts: PutOptions,
    upload_id: Option<String>,
}

/// A streamed write to `key`.
pub(crate) fn writer(shared: Arc<Shared>, key: &str, opts: PutOptions) -> PartedWriter<S3Parts> {
    PartedWriter::new(S3Parts {
        shared,
        key: key.to_owned(),
        opts,
        upload_id: None,
    })
}

#[async_trait]
impl Parts for S3Parts {
    type Done = CompletedPart;

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

    fn needs_last_part(&self) -> bool {
        true
    }

    async fn put_whole(&mut self, body: Vec<Bytes>) -> Result<PutResult> {
        put_object(&self.shared, &self.key, contiguous(body), &self.opts, true).await
    }

    async fn start(&mut self) -> Result<()> {
        let s = &self.shared;
        let mut req = stored_as!(s.client.create_multipart_upload(), &s.opts)
            .bucket(&s.bucket)
            .key(&self.key)
            .set_content_type(self.opts.content_type.clone())
            .set_metadata(
                (!self.opts.metadata.is_empty())
                    .then(|| self.opts.metadata.clone().into_iter().collect()),
            );
        if s.opts.upload_integrity == UploadIntegrity::Crc32c {
            req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
        }
        let mut req = req.customize();
        if let Some(retries) = s.opts.part_retries() {
            req = req.config_override(retries);
        }
        let out = req.send().await.map_err(|e| {
            s.opts
                .part_error(sdk_error(e, Operation::Write, &self.uri()))
        })?;
        let id = out
            .upload_id()
            .ok_or_else(|| Error::other("CreateMultipartUpload returned no upload id"))?;
        self.upload_id = Some(id.to_owned());
        Ok(())
    }

    fn part(
        &mut self,
        n: u32,
        body: Vec<Bytes>,
    ) -> Result<BoxFuture<'static, Result<CompletedPart>>> {
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        Ok(Box::pin(async move {
            let uri = shared.uri(&key);
            let mut req = shared
                .client
                .upload_part()
                .bucket(&shared.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(n as i32)
                .body(contiguous(body).into());
            if shared.opts.upload_integrity == UploadIntegrity::Crc32c {
                req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
            }
            let mut req = req.customize();
            if shared.opts.upload_integrity != UploadIntegrity::SignedPayload {
                req = req.disable_payload_signing();
            }
            if let Some(retries) = shared.opts.part_retries() {
                req = req.config_override(retries);
            }
            let out = req
                .send()
                .await
                .map_err(|e| shared.opts.part_error(sdk_error(e, Operation::Write, &uri)))?;
            Ok(CompletedPart::builder()
                .part_number(n as i32)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_owned))
                .build())
        }))
    }

    async fn commit(&mut self, parts: Vec<CompletedPart>, size: u64) -> Result<PutResult> {
        let upload_id = self
            .upload_id
            .clone()
            .ok_or_else(|| Error::other("no multipart upload to complete"))?;
        let (if_none_match, if_match) = conditions(&self.opts.mode);
        let s = &self.shared;
        let out = s
            .client
            .complete_multipart_upload()
            .bucket(&s.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .customize();
        // Under a retry layer, completing is a sub-request of a streamed write; a
        // conditional one is not repeated (a lost answer to our own success would
        // come back as a conflict).
        let retries = s
            .opts
            .part_retries()
            .filter(|_| self.opts.mode == PutMode::Overwrite);
        let out = match retries {
            Some(r) => out.config_override(r),
            None => out,
        }
        .send()
        .await
        .map_err(|e| {
            s.opts.part_error(created_conflict(
                sdk_error(e, Operation::Complete, &s.uri(&self.key)),
                self.opts.mode == PutMode::Create,
            ))
        })?;
        // Completed: nothing to abort any more.
        self.upload_id = None;
        Ok(PutResult {
            etag: out.e_tag().map(str::to_owned),
            size,
        })
    }

    async fn abort(&mut self) {
        if let Some(id) = self.upload_id.take() {
            abort_upload(&self.shared, &self.key, &id).await;
        }
    }

    fn abort_detached(&mut self) {
        if let Some(id) = self.upload_id.take() {
            let (shared, key) = (Arc::clone(&self.shared), self.key.clone());
            abort_in_background(self.uri(), async move {
                abort_upload(&shared, &key, &id).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_grow_to_fit_any_object_s3_accepts() {
        let base = 8 << 20;
        assert_eq!(part_size(base, 1), base);
        assert_eq!(part_size(base, 1000), base);
        assert_eq!(part_size(base, 1001), 2 * base);
        assert_eq!(part_size(base, 2001), 4 * base);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_size(base, n) as u64).sum();
        assert!(total >= 5u64 << 40, "10,000 parts hold only {total} bytes");
        assert!((1..=MAX_PARTS).all(|n| part_size(base, n) <= MAX_PART_SIZE));
        // A huge base is capped at S3's part limit.
        assert_eq!(part_size(MAX_PART_SIZE, 9999), MAX_PART_SIZE);
    }
}
