//! Streaming writes. Up to `put_threshold` bytes are buffered and sent as one Put Blob; past
//! it, full blocks are staged concurrently (Put Block, at most `upload_concurrency` in
//! flight, which bounds memory) while the caller keeps writing, and `complete` commits them
//! once with Put Block List and the write mode's condition. Until that commit nothing is
//! visible: a failure, `abort`, or dropping the writer commits nothing, and the service
//! discards uncommitted blocks (after a week, or at the blob's next commit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::Method;
use bytes::Bytes;
use futures::future::BoxFuture;
use s3dlio_store_core::pending::{contiguous, PartedWriter, Parts};
use s3dlio_store_core::{Error, Operation, PutMode, PutOptions, PutResult, Result};

use crate::config::MAX_BLOCKS;
use crate::store::{created_conflict, h, Shared};

/// Faults injected by tests: (key, block number) pairs whose staging fails.
static FAULTS: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());

/// Make the staging of block `n` (1-based) of every upload to `key` fail, as a network
/// failure would. For tests of what a failed upload leaves behind.
#[doc(hidden)]
pub fn inject_block_failure(key: &str, n: u32) {
    FAULTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key.to_owned(), n));
}

fn injected(key: &str, n: u32) -> bool {
    FAULTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(k, b)| k == key && *b == n)
}

/// Azure's side of a streamed write: Put Blob when small, else blocks staged with Put Block
/// and committed once with Put Block List (see [`PartedWriter`]).
pub(crate) struct AzureParts {
    shared: Arc<Shared>,
    key: String,
    opts: PutOptions,
    /// Block ids are this writer's own (so concurrent writers to one blob never stage
    /// over each other's blocks): a unique prefix and the block number.
    id_prefix: String,
}

/// A streamed write to `key`.
pub(crate) fn writer(shared: Arc<Shared>, key: &str, opts: PutOptions) -> PartedWriter<AzureParts> {
    PartedWriter::new(AzureParts {
        shared,
        key: key.to_owned(),
        opts,
        id_prefix: unique_prefix(),
    })
}

/// A prefix no other writer of this process (or, with the time and pid, of another) uses.
fn unique_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{nanos:016x}{:08x}{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) as u32
    )
}

/// The base64 id of block `n`; every id of one blob has the same length, as the service
/// requires.
pub(crate) fn block_id(prefix: &str, n: u32) -> String {
    azure_core::base64::encode(format!("{prefix}-{n:06}"))
}

#[async_trait]
impl Parts for AzureParts {
    type Done = ();

    fn uri(&self) -> String {
        self.shared.uri(&self.key)
    }

    fn single_max(&self) -> usize {
        self.shared.opts.put_threshold
    }

    fn concurrency(&self) -> usize {
        self.shared.opts.upload_concurrency
    }

    fn part_size(&self, _: u32) -> usize {
        self.shared.opts.block_size
    }

    fn max_parts(&self) -> (u32, Error) {
        let e = Error::invalid_input(format!(
            "upload exceeds Azure's {MAX_BLOCKS} blocks; raise block_size"
        ));
        (MAX_BLOCKS, e)
    }

    fn needs_last_part(&self) -> bool {
        false
    }

    async fn put_whole(&mut self, body: Vec<Bytes>) -> Result<PutResult> {
        self.shared
            .put_blob(&self.key, contiguous(body), &self.opts, Operation::Complete)
            .await
    }

    async fn start(&mut self) -> Result<()> {
        Ok(())
    }

    fn part(&mut self, n: u32, body: Vec<Bytes>) -> Result<BoxFuture<'static, Result<()>>> {
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let id = block_id(&self.id_prefix, n);
        Ok(Box::pin(async move {
            let uri = shared.uri(&key);
            if injected(&key, n) {
                return Err(Error::other(format!("injected failure of block {n}"))
                    .context(Operation::Write, uri));
            }
            let url = shared.client.url(
                &shared.container,
                Some(&key),
                &[("comp", "block".into()), ("blockid", id)],
            )?;
            shared
                .client
                .call(
                    Method::Put,
                    url,
                    &[],
                    Some(contiguous(body)),
                    Operation::Write,
                    &uri,
                )
                .await
                .map(|_| ())
        }))
    }

    async fn commit(&mut self, blocks: Vec<()>, size: u64) -> Result<PutResult> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for n in 1..=blocks.len() as u32 {
            xml.push_str("<Latest>");
            xml.push_str(&block_id(&self.id_prefix, n));
            xml.push_str("</Latest>");
        }
        xml.push_str("</BlockList>");
        let s = &self.shared;
        let uri = self.uri();
        let mut headers = s.write_headers(&self.opts);
        headers.push(h("content-type", "application/xml"));
        let url = s.client.url(
            &s.container,
            Some(&self.key),
            &[("comp", "blocklist".into())],
        )?;
        let (resp, _) = s
            .client
            .call(
                Method::Put,
                url,
                &headers,
                Some(Bytes::from(xml)),
                Operation::Complete,
                &uri,
            )
            .await
            .map_err(|e| created_conflict(e, self.opts.mode == PutMode::Create))?;
        Ok(PutResult {
            etag: resp.get_optional_str(&"etag".into()).map(str::to_owned),
            size,
        })
    }

    // Nothing was committed, so nothing is visible: the service discards uncommitted blocks.
    async fn abort(&mut self) {}

    fn abort_detached(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length_and_differ_per_writer() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        assert_eq!(block_id(&a, 1).len(), block_id(&a, 49_999).len());
        assert_ne!(block_id(&a, 1), block_id(&b, 1));
    }
}
