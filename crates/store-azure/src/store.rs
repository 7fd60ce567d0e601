//! `AzureStore`: one container behind the `ObjectStore` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Method;
use bytes::Bytes;
use s3dlio_store_core::store::{effective_start, DEFAULT_PAGE_SIZE};
use s3dlio_store_core::{
    validate_key, BufferPool, Capabilities, CopyOptions, Error, ErrorKind, GetOptions, GetResult,
    ListItem, ListOptions, ListPage, ObjectMeta, ObjectStore, ObjectWriter, Operation, PutMode,
    PutOptions, PutResult, Result,
};

use crate::client::{meta_from_headers, Client};
use crate::config::AzureOptions;
use crate::writer;

/// What every request of one store needs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: Arc<Client>,
    pub container: String,
    pub base_uri: String,
    pub opts: AzureOptions,
    /// Buffers of large reads, reused once callers drop them.
    pub pool: Arc<BufferPool>,
}

impl Shared {
    pub fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }

    /// Get Blob Properties, optionally pinned to an ETag.
    pub async fn head_with(&self, key: &str, if_match: Option<&str>) -> Result<ObjectMeta> {
        let uri = self.uri(key);
        let url = self.client.url(&self.container, Some(key), &[])?;
        let headers: Vec<(String, String)> =
            if_match.map(|e| h("if-match", e)).into_iter().collect();
        let (h, _) = self
            .client
            .call(Method::Head, url, &headers, None, Operation::Head, &uri)
            .await?;
        let size = h
            .get_optional_str(&"content-length".into())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(meta_from_headers(key, size, &h))
    }

    /// The headers of a Put Blob or Put Block List: the write mode's condition, the content
    /// type and user metadata of the blob, and the store's access tier.
    pub fn write_headers(&self, opts: &PutOptions) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &opts.mode {
            PutMode::Overwrite => {}
            PutMode::Create => out.push(h("if-none-match", "*")),
            PutMode::IfMatch(e) => out.push(h("if-match", e.clone())),
        }
        if let Some(t) = self.opts.access_tier {
            out.push(h("x-ms-access-tier", t.as_str()));
        }
        if let Some(t) = &opts.content_type {
            out.push(h("x-ms-blob-content-type", t.clone()));
        }
        for (k, v) in &opts.metadata {
            out.push((format!("x-ms-meta-{k}"), v.clone()));
        }
        out
    }

    /// Put Blob: the whole blob in one request.
    /// One Put Blob. `op` is `Put` for a one-shot write, `Complete` when it completes a
    /// streamed write (a sub-request a retry layer above cannot repeat).
    pub async fn put_blob(
        &self,
        key: &str,
        data: Bytes,
        opts: &PutOptions,
        op: Operation,
    ) -> Result<PutResult> {
        let uri = self.uri(key);
        let size = data.len() as u64;
        let mut headers = self.write_headers(opts);
        headers.push(h("x-ms-blob-type", "BlockBlob"));
        let url = self.client.url(&self.container, Some(key), &[])?;
        let (resp, _) = self
            .client
            .call(Method::Put, url, &headers, Some(data), op, &uri)
            .await
            .map_err(|e| created_conflict(e, opts.mode == PutMode::Create))?;
        Ok(PutResult {
            etag: resp.get_optional_str(&"etag".into()).map(str::to_owned),
            size,
        })
    }
}

/// A request header.
pub(crate) fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// A failed create-only condition is "already exists", not a generic precondition.
pub(crate) fn created_conflict(e: Error, create_only: bool) -> Error {
    if create_only && e.kind() == ErrorKind::PreconditionFailed {
        let mut out = Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "create-only write found an existing object ({})",
                e.message()
            ),
        );
        if let Some(op) = e.operation() {
            out = out.with_operation(op);
        }
        if let Some(uri) = e.uri() {
            out = out.with_uri(uri);
        }
        if let Some(id) = e.request_id() {
            out = out.with_request_id(id);
        }
        out
    } else {
        e
    }
}

/// One Azure Blob container. Cheap to clone; clones share the pipeline and its connections.
#[derive(Debug, Clone)]
pub struct AzureStore {
    pub(crate) shared: Arc<Shared>,
}

impl AzureStore {
    /// A store for `container` in the account `opts` and the environment name (see
    /// [`AzureOptions::resolve`]); `account` is the URI's account, if it named one.
    pub fn new(account: Option<&str>, container: &str, opts: AzureOptions) -> Result<Self> {
        let resolved = opts
            .resolve(account)
            .map_err(|e| e.context(Operation::Open, format!("az://{container}/")))?;
        let client = Arc::new(Client::new(
            &resolved,
            opts.max_retries,
            opts.outer_retries,
        )?);
        Self::from_client(client, account.is_some(), container, opts)
    }

    pub(crate) fn from_client(
        client: Arc<Client>,
        account_in_uri: bool,
        container: &str,
        opts: AzureOptions,
    ) -> Result<Self> {
        opts.validate()?;
        if container.is_empty() {
            return Err(Error::invalid_input("missing container name"));
        }
        let base_uri = if account_in_uri {
            format!("az://{}/{container}/", client.account)
        } else {
            format!("az://{container}/")
        };
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                container: container.to_owned(),
                base_uri,
                pool: BufferPool::new(opts.buffer_pool_bytes),
                opts,
            }),
        })
    }

    pub fn container(&self) -> &str {
        &self.shared.container
    }

    pub fn account(&self) -> &str {
        &self.shared.client.account
    }

    /// The endpoint requests go to (no trailing `/`).
    pub fn endpoint(&self) -> &str {
        &self.shared.client.endpoint
    }

    pub fn options(&self) -> &AzureOptions {
        &self.shared.opts
    }

    /// Create this store's container. An existing one is `AlreadyExists`.
    pub async fn create_container(&self) -> Result<()> {
        let s = &self.shared;
        let url = s
            .client
            .url(&s.container, None, &[("restype", "container".into())])?;
        s.client
            .call(Method::Put, url, &[], None, Operation::Put, &s.base_uri)
            .await
            .map(|_| ())
    }

    /// Delete this store's container and everything in it.
    pub async fn delete_container(&self) -> Result<()> {
        let s = &self.shared;
        let url = s
            .client
            .url(&s.container, None, &[("restype", "container".into())])?;
        s.client
            .call(
                Method::Delete,
                url,
                &[],
                None,
                Operation::Delete,
                &s.base_uri,
            )
            .await
            .map(|_| ())
    }

    /// The committed and uncommitted block ids of a blob (`NotFound` if it has neither).
    pub async fn block_list(&self, key: &str) -> Result<(Vec<String>, Vec<String>)> {
        let s = &self.shared;
        let uri = s.uri(key);
        let url = s.client.url(
            &s.container,
            Some(key),
            &[
                ("comp", "blocklist".into()),
                ("blocklisttype", "all".into()),
            ],
        )?;
        let (_, body) = s
            .client
            .call(Method::Get, url, &[], None, Operation::Get, &uri)
            .await?;
        let xml = String::from_utf8_lossy(&body);
        let ids = |section: &str| {
            let open = format!("<{section}>");
            let close = format!("</{section}>");
            let Some(start) = xml.find(&open) else {
                return Vec::new();
            };
            let end = xml[start..].find(&close).map_or(xml.len(), |e| start + e);
            xml[start..end]
                .split("<Name>")
                .skip(1)
                .filter_map(|p| p.split("</Name>").next().map(str::to_owned))
                .collect()
        };
        Ok((ids("CommittedBlocks"), ids("UncommittedBlocks")))
    }

    /// Copy Blob, then wait for the service to finish it (within one account it is
    /// usually done at once).
    async fn copy_blob(&self, from: &str, to: &str, opts: &CopyOptions) -> Result<PutResult> {
        let s = &self.shared;
        let uri = s.uri(to);
        let src = s.head_with(from, None).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                e
            } else {
                e.with_operation(Operation::Copy)
            }
        })?;
        let source = s.client.url(&s.container, Some(from), &[])?;
        let mut headers = vec![h("x-ms-copy-source", source.to_string())];
        if let Some(e) = &src.etag {
            headers.push(h("x-ms-source-if-match", e.clone()));
        }
        if opts.create_only {
            headers.push(h("if-none-match", "*"));
        }
        if let Some(t) = s.opts.access_tier {
            headers.push(h("x-ms-access-tier", t.as_str()));
        }
        let url = s.client.url(&s.container, Some(to), &[])?;
        let (resp, _) = s
            .client
            .call(Method::Put, url, &headers, None, Operation::Copy, &uri)
            .await
            .map_err(|e| created_conflict(e, opts.create_only).with_operation(Operation::Copy))?;
        let get = |hd: &azure_core::http::headers::Headers, name: &'static str| {
            hd.get_optional_str(&name.into()).map(str::to_owned)
        };
        let mut status = get(&resp, "x-ms-copy-status").unwrap_or_else(|| "success".into());
        let mut etag = get(&resp, "etag");
        let mut delay = Duration::from_millis(50);
        while status == "pending" {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let url = s.client.url(&s.container, Some(to), &[])?;
            let (hd, _) = s
                .client
                .call(Method::Head, url, &[], None, Operation::Copy, &uri)
                .await?;
            status = get(&hd, "x-ms-copy-status").unwrap_or_else(|| "success".into());
            etag = get(&hd, "etag");
        }
        if status != "success" {
            return Err(Error::other(format!("copy ended with status '{status}'"))
                .context(Operation::Copy, uri));
        }
        Ok(PutResult {
            etag,
            size: src.size,
        })
    }
}

#[async_trait]
impl ObjectStore for AzureStore {
    fn base_uri(&self) -> &str {
        &self.shared.base_uri
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::FULL
    }

    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
        crate::read::get(&self.shared, key, opts).await
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        validate_key(key).map_err(|e| e.context(Operation::Put, self.shared.uri(key)))?;
        if data.len() > self.shared.opts.put_threshold {
            // Large payloads go up as concurrent blocks, committed once.
            let mut w = self.writer(key, opts).await?;
            if let Err(e) = w.write(data).await {
                let _ = w.abort().await;
                return Err(e);
            }
            return w.complete().await;
        }
        self.shared.put_blob(key, data, &opts, Operation::Put).await
    }

    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key).map_err(|e| e.context(Operation::Write, self.shared.uri(key)))?;
        Ok(Box::new(writer::writer(
            Arc::clone(&self.shared),
            key,
            opts,
        )))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key).map_err(|e| e.context(Operation::Head, self.shared.uri(key)))?;
        self.shared.head_with(key, None).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let s = &self.shared;
        let uri = s.uri(prefix);
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 5000);
        // The service has no start-after: pages before it are read and skipped.
        let start = effective_start(opts, None);
        let mut marker = token;
        loop {
            let mut query = vec![
                ("restype", "container".to_owned()),
                ("comp", "list".to_owned()),
                ("maxresults", page_size.to_string()),
            ];
            if !prefix.is_empty() {
                query.push(("prefix", prefix.to_owned()));
            }
            if !opts.recursive {
                query.push(("delimiter", "/".to_owned()));
            }
            if let Some(m) = &marker {
                query.push(("marker", m.clone()));
            }
            let url = s.client.url(&s.container, None, &query)?;
            let (_, body) = s
                .client
                .call(Method::Get, url, &[], None, Operation::List, &uri)
                .await?;
            let parsed = crate::list::parse_list(&String::from_utf8_lossy(&body))
                .map_err(|e| e.context(Operation::List, uri.clone()))?;
            let mut items: Vec<ListItem> = parsed
                .items
                .into_iter()
                .filter(|i| start.as_ref().is_none_or(|s| s.admits(i.name())))
                .collect();
            // Blobs and prefixes come as separate runs on some servers: one order for all.
            items.sort_by(|a, b| a.name().cmp(b.name()));
            marker = parsed.next_marker;
            if !items.is_empty() || marker.is_none() {
                return Ok(ListPage {
                    items,
                    next: marker,
                });
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let s = &self.shared;
        let uri = s.uri(key);
        validate_key(key).map_err(|e| e.context(Operation::Delete, uri.clone()))?;
        let url = s.client.url(&s.container, Some(key), &[])?;
        let r = s
            .client
            .send(Method::Delete, url, &[], None, Operation::Delete, &uri)
            .await?;
        if r.status < 300 {
            return Ok(());
        }
        let e = s.client.failure(r, Operation::Delete, &uri).await;
        // Deleting a missing blob succeeds, as in S3; a missing container does not.
        if e.kind() == ErrorKind::NotFound && !e.message().contains("ContainerNotFound") {
            return Ok(());
        }
        Err(e)
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let uri = self.shared.uri(to);
        validate_key(from).map_err(|e| e.context(Operation::Copy, self.shared.uri(from)))?;
        validate_key(to).map_err(|e| e.context(Operation::Copy, uri.clone()))?;
        self.copy_blob(from, to, &opts).await
    }
}
