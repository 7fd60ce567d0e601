//! Streaming writes. Up to `put_threshold` bytes are buffered and sent as one Put Blob; past
//! it, full blocks are staged concurrently (Put Block, at most `upload_concurrency` in
//! flight, which bounds memory) while the caller keeps writing, and `complete` commits them
//! once with Put Block List and the write mode's condition. Until that commit nothing is
//! visible: a failure, `abort`, or dropping the writer commits nothing, and the service
//! discards uncommitted blocks (after a week, or at the blob's next commit).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::Method;
use bytes::Bytes;
use s3dlio_store_core::pending::Pending;
use s3dlio_store_core::{Error, ObjectWriter, Operation, PutMode, PutOptions, PutResult, Result};
use tokio::task::JoinSet;

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

pub(crate) struct AzureWriter {
    shared: Arc<Shared>,
    key: String,
    opts: PutOptions,
    pending: Pending,
    written: u64,
    /// Block ids are this writer's own (so concurrent writers to one blob never stage
    /// over each other's blocks): a unique prefix and the block number.
    id_prefix: String,
    /// Whether blocks are being staged (past the single-request threshold).
    staging: bool,
    next_block: u32,
    in_flight: JoinSet<Result<()>>,
    finished: bool,
}

impl fmt::Debug for AzureWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureWriter")
            .field("uri", &self.shared.uri(&self.key))
            .field("written", &self.written)
            .field("blocks", &(self.next_block - 1))
            .finish()
    }
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

impl AzureWriter {
    pub(crate) fn new(shared: Arc<Shared>, key: &str, opts: PutOptions) -> Self {
        Self {
            shared,
            key: key.to_owned(),
            opts,
            pending: Pending::default(),
            written: 0,
            id_prefix: unique_prefix(),
            staging: false,
            next_block: 1,
            in_flight: JoinSet::new(),
            finished: false,
        }
    }

    fn uri(&self) -> String {
        self.shared.uri(&self.key)
    }

    /// Stage one block in the background, first waiting for a slot if all are busy.
    async fn send_block(&mut self, body: Bytes) -> Result<()> {
        while self.in_flight.len() >= self.shared.opts.upload_concurrency {
            self.reap_one().await?;
        }
        let n = self.next_block;
        if n > MAX_BLOCKS {
            return Err(Error::invalid_input(format!(
                "upload exceeds Azure's {MAX_BLOCKS} blocks; raise block_size"
            )));
        }
        self.next_block += 1;
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let id = block_id(&self.id_prefix, n);
        self.in_flight.spawn(async move {
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
                .call(Method::Put, url, &[], Some(body), Operation::Write, &uri)
                .await
                .map(|_| ())
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            joined.map_err(|e| Error::other(format!("block upload task failed: {e}")))??;
        }
        Ok(())
    }

    /// Stage every full block that is pending.
    async fn flush_full_blocks(&mut self) -> Result<()> {
        let size = self.shared.opts.block_size;
        while self.pending.len() >= size {
            let body = self.pending.take_contiguous(size);
            self.send_block(body).await?;
        }
        Ok(())
    }

    async fn fail(&mut self, e: Error) -> Error {
        self.abort_now().await;
        e.context(Operation::Write, self.uri())
    }

    /// Stop staging; nothing was committed, so nothing is visible.
    async fn abort_now(&mut self) {
        self.pending.clear();
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.finished = true;
    }

    async fn commit(&mut self) -> Result<PutResult> {
        let rest = self.pending.len();
        if rest > 0 {
            let body = self.pending.take_contiguous(rest);
            self.send_block(body).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for n in 1..self.next_block {
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
            size: self.written,
        })
    }
}

#[async_trait]
impl ObjectWriter for AzureWriter {
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
        if !self.staging {
            if self.pending.len() <= self.shared.opts.put_threshold {
                return Ok(());
            }
            self.staging = true;
        }
        if let Err(e) = self.flush_full_blocks().await {
            return Err(self.fail(e).await);
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        if self.finished {
            return Err(Error::invalid_input("complete after the writer failed")
                .context(Operation::Complete, self.uri()));
        }
        if !self.staging {
            // Small: one Put Blob.
            let n = self.pending.len();
            let body = self.pending.take_contiguous(n);
            self.finished = true;
            return self
                .shared
                .put_blob(&self.key, body, &self.opts, Operation::Complete)
                .await;
        }
        match self.commit().await {
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

impl Drop for AzureWriter {
    fn drop(&mut self) {
        // Blocks still staging are cancelled; nothing was committed, so there is nothing to
        // undo (uncommitted blocks are discarded by the service).
        self.in_flight.abort_all();
    }
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
