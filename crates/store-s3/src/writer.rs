//! Streaming writes. Up to `multipart_threshold` bytes are buffered and sent as one
//! PutObject; past it, a multipart upload starts and full parts are uploaded concurrently
//! (at most `upload_concurrency` in flight, which bounds memory) while the caller keeps
//! writing. `complete` sends the last part and completes the upload, with the write mode's
//! condition; any failure, `abort`, or dropping the writer aborts the upload, so neither an
//! object nor a dangling upload is left behind.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use s3dlio_store_core::{Error, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result};
use tokio::task::JoinSet;

use crate::config::{UploadIntegrity, MAX_PARTS, MAX_PART_SIZE};
use crate::error::sdk_error;
use crate::pending::{abort_in_background, Pending};
use crate::store::{abort_upload, conditions, created_conflict, put_object, Shared};

/// Size of part `n` (1-based): the base size, doubled every 1,000 parts, so 10,000 parts
/// of a base of 8 MiB reach past S3's 5 TiB object limit while parts stay within 5 GiB.
pub(crate) fn part_size(base: usize, n: u32) -> usize {
    let doublings = ((n.saturating_sub(1)) / 1000).min(20);
    base.saturating_mul(1usize << doublings).min(MAX_PART_SIZE)
}

pub(crate) struct S3Writer {
    shared: Arc<Shared>,
    key: String,
    opts: PutOptions,
    /// Bytes not yet sent.
    pending: Pending,
    written: u64,
    upload_id: Option<String>,
    next_part: u32,
    in_flight: JoinSet<Result<CompletedPart>>,
    done_parts: Vec<CompletedPart>,
    /// Set once the upload is completed or aborted, so Drop leaves it alone.
    finished: bool,
}

impl fmt::Debug for S3Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Writer")
            .field("uri", &self.shared.uri(&self.key))
            .field("written", &self.written)
            .field("upload_id", &self.upload_id)
            .field("parts", &(self.next_part.saturating_sub(1)))
            .finish()
    }
}

impl S3Writer {
    pub(crate) fn new(shared: Arc<Shared>, key: &str, opts: PutOptions) -> Self {
        Self {
            shared,
            key: key.to_owned(),
            opts,
            pending: Pending::default(),
            written: 0,
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done_parts: Vec::new(),
            finished: false,
        }
    }

    fn uri(&self) -> String {
        self.shared.uri(&self.key)
    }

    async fn start_upload(&mut self) -> Result<()> {
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

    /// Upload one part in the background, first waiting for a slot if all are busy.
    async fn send_part(&mut self, body: Bytes) -> Result<()> {
        while self.in_flight.len() >= self.shared.opts.upload_concurrency {
            self.reap_one().await?;
        }
        let n = self.next_part;
        if n > MAX_PARTS {
            return Err(Error::invalid_input(format!(
                "upload exceeds S3's {MAX_PARTS} parts; raise part_size"
            )));
        }
        self.next_part += 1;
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.in_flight.spawn(async move {
            let uri = shared.uri(&key);
            let mut req = shared
                .client
                .upload_part()
                .bucket(&shared.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(n as i32)
                .body(body.into());
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
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part =
                joined.map_err(|e| Error::other(format!("part upload task failed: {e}")))??;
            self.done_parts.push(part);
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
            let body = self.pending.take_contiguous(size);
            self.send_part(body).await?;
        }
    }

    async fn fail(&mut self, e: Error) -> Error {
        self.abort_now().await;
        e.context(Operation::Write, self.uri())
    }

    async fn abort_now(&mut self) {
        // Buffered bytes are released at once, not when the writer is finally dropped.
        self.pending.clear();
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            abort_upload(&self.shared, &self.key, &id).await;
        }
        self.finished = true;
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
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
        if self.upload_id.is_none() {
            if self.pending.len() <= self.shared.opts.multipart_threshold {
                return Ok(());
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
        let Some(upload_id) = self.upload_id.clone() else {
            // Small: one PutObject.
            let n = self.pending.len();
            let body = self.pending.take_contiguous(n);
            self.finished = true;
            return put_object(&self.shared, &self.key, body, &self.opts, true).await;
        };
        let result: Result<PutResult> = async {
            let rest = self.pending.len();
            if rest > 0 || self.next_part == 1 {
                let body = self.pending.take_contiguous(rest);
                self.send_part(body).await?;
            }
            while !self.in_flight.is_empty() {
                self.reap_one().await?;
            }
            let mut parts = std::mem::take(&mut self.done_parts);
            parts.sort_by_key(|p| p.part_number());
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
            Ok(PutResult {
                etag: out.e_tag().map(str::to_owned),
                size: self.written,
            })
        }
        .await;
        match result {
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

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.in_flight.abort_all();
        if let Some(id) = self.upload_id.take() {
            let (shared, key) = (Arc::clone(&self.shared), self.key.clone());
            abort_in_background(
                self.uri(),
                async move { abort_upload(&shared, &key, &id).await },
            );
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
