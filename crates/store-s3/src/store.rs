//! `S3Store`: one bucket behind the `ObjectStore` trait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3dlio_store_core::store::DEFAULT_PAGE_SIZE;
use s3dlio_store_core::{
    validate_key, BufferPool, Capabilities, CopyOptions, Error, ErrorKind, GetOptions, GetResult,
    ListItem, ListOptions, ListPage, ObjectMeta, ObjectStore, ObjectWriter, Operation, PutMode,
    PutOptions, PutResult, Result,
};

use crate::config::{S3Options, UploadIntegrity};
use crate::error::sdk_error;
use crate::lean::{crc32c_header, LeanBucket, Payload};
use crate::writer;
use http::HeaderName;

/// What every request of one store needs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: Client,
    pub bucket: String,
    pub base_uri: String,
    pub opts: S3Options,
    /// Buffers of large reads, reused once callers drop them.
    pub pool: Arc<BufferPool>,
    /// GETs and single PUTs without the SDK's per-request machinery, where equivalent (see `lean`).
    pub lean: Option<LeanBucket>,
}

impl Shared {
    pub fn uri(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri)
    }
}

/// One S3 bucket. Cheap to clone; clones share the client and its connection pool.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) fn system_time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

pub(crate) fn meta_from_parts(
    key: &str,
    size: u64,
    last_modified: Option<&DateTime>,
    etag: Option<&str>,
    content_type: Option<&str>,
    metadata: Option<&HashMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size,
        last_modified: system_time(last_modified),
        etag: etag.map(str::to_owned),
        content_type: content_type.map(str::to_owned),
        metadata: metadata
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        storage_class: None,
    }
}

/// Percent-encode a key for `x-amz-copy-source` (everything but unreserved characters and
/// `/`).
pub(crate) fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl S3Store {
    /// A store for `bucket` using an existing SDK client.
    ///
    /// Every request goes through that client. (Stores built by [`S3Store::new`] or the
    /// registry send GETs and single PUTs on a lean path instead, see `S3Options::lean_requests`.)
    pub fn from_client(client: Client, bucket: impl Into<String>, opts: S3Options) -> Result<Self> {
        let pool = BufferPool::new(opts.buffer_pool_bytes);
        Self::assemble(client, None, bucket.into(), opts, pool)
    }

    /// A store of `bucket` from its parts: the SDK client, the lean path if any, and the
    /// pool of large reads' buffers (shared by the stores of one bucket's endpoints).
    pub(crate) fn assemble(
        client: Client,
        lean: Option<LeanBucket>,
        bucket: String,
        opts: S3Options,
        pool: Arc<BufferPool>,
    ) -> Result<Self> {
        opts.validate()?;
        if bucket.is_empty() {
            return Err(Error::invalid_input("missing bucket name"));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                base_uri: format!("s3://{bucket}/"),
                client,
                bucket,
                pool,
                lean,
                opts,
            }),
        })
    }

    /// A store for `bucket` with a client built from `opts` and the environment. When no
    /// region is configured anywhere, one HEAD of the bucket first asks where it is, and a
    /// bucket in another region than us-east-1 gets a client for its region.
    pub async fn new(bucket: impl Into<String>, opts: S3Options) -> Result<Self> {
        let bucket = bucket.into();
        let (built, opts) = opts
            .build_for_bucket(&bucket)
            .await
            .map_err(|e| e.context(Operation::Open, format!("s3://{bucket}/")))?;
        let (client, lean) = (built.client, built.lean);
        let lean = match lean {
            Some(l) => l.bucket(&bucket).await,
            None => None,
        };
        let pool = BufferPool::new(opts.buffer_pool_bytes);
        Self::assemble(client, lean, bucket, opts, pool)
    }

    pub fn bucket(&self) -> &str {
        &self.shared.bucket
    }

    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    pub fn options(&self) -> &S3Options {
        &self.shared.opts
    }

    /// Whether GETs and single-request PUTs take the lean path (see [`S3Options::lean_requests`]): on for stores built
    /// from options against a plain SigV4 endpoint, off for a caller's own SDK client.
    pub fn lean_path_active(&self) -> bool {
        self.shared.lean.is_some()
    }

    /// Create this store's bucket, in the client's region (S3 wants the region named for
    /// any but us-east-1). An existing bucket you own is `AlreadyExists`.
    pub async fn create_bucket(&self) -> Result<()> {
        let s = &self.shared;
        let region = s.client.config().region().map(|r| r.as_ref().to_owned());
        let location = region.filter(|r| r != "us-east-1").map(|r| {
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    r.as_str(),
                ))
                .build()
        });
        s.client
            .create_bucket()
            .bucket(&s.bucket)
            .set_create_bucket_configuration(location)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(e, Operation::Put, &s.base_uri))
    }

    /// Delete this store's bucket (it must be empty).
    pub async fn delete_bucket(&self) -> Result<()> {
        let s = &self.shared;
        s.client
            .delete_bucket()
            .bucket(&s.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(e, Operation::Delete, &s.base_uri))
    }

    /// The buckets these credentials can see.
    pub async fn list_buckets(client: &Client) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = client.list_buckets().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(e, Operation::List, "s3://"))?;
            names.extend(
                page.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_owned)),
            );
        }
        Ok(names)
    }

    async fn put_single(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<PutResult> {
        put_object(&self.shared, key, data, opts, false).await
    }

    /// Copy through a multipart upload of `UploadPartCopy` parts: needed above 5 GiB, and
    /// for create-only copies, whose condition goes on the completion (which every server
    /// we test honours, unlike a condition on CopyObject itself).
    async fn multipart_copy(
        &self,
        from: &str,
        to: &str,
        src: &ObjectMeta,
        create_only: bool,
    ) -> Result<PutResult> {
        let s = &self.shared;
        let uri = s.uri(to);
        let created = stored_as!(s.client.create_multipart_upload(), &s.opts)
            .bucket(&s.bucket)
            .key(to)
            .set_content_type(src.content_type.clone())
            .set_metadata(Some(src.metadata.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| sdk_error(e, Operation::Copy, &uri))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                Error::other("CreateMultipartUpload returned no upload id")
                    .context(Operation::Copy, uri.clone())
            })?
            .to_owned();
        let upload_id = upload_id.as_str();
        let result = async {
            // 1 GiB parts keep a 5 TiB copy well under 10,000 parts.
            const COPY_PART: u64 = 1 << 30;
            let ranges: Vec<(i32, Option<String>)> = if src.size == 0 {
                vec![(1, None)]
            } else {
                (0..src.size)
                    .step_by(COPY_PART as usize)
                    .enumerate()
                    .map(|(i, start)| {
                        let end = (start + COPY_PART).min(src.size) - 1;
                        (i as i32 + 1, Some(format!("bytes={start}-{end}")))
                    })
                    .collect()
            };
            let source = encode_copy_source(&s.bucket, from);
            let etag = src.etag.clone();
            let parts: Vec<CompletedPart> = stream::iter(ranges)
                .map(|(n, range)| {
                    let (source, etag, uri) = (source.clone(), etag.clone(), uri.clone());
                    async move {
                        let out = s
                            .client
                            .upload_part_copy()
                            .bucket(&s.bucket)
                            .key(to)
                            .upload_id(upload_id)
                            .part_number(n)
                            .copy_source(source)
                            .set_copy_source_range(range)
                            .set_copy_source_if_match(etag)
                            .send()
                            .await
                            .map_err(|e| sdk_error(e, Operation::Copy, &uri))?;
                        let etag = out
                            .copy_part_result()
                            .and_then(|r| r.e_tag())
                            .map(str::to_owned);
                        Ok::<_, Error>(
                            CompletedPart::builder()
                                .part_number(n)
                                .set_e_tag(etag)
                                .build(),
                        )
                    }
                })
                .buffered(4)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?;
            let out = s
                .client
                .complete_multipart_upload()
                .bucket(&s.bucket)
                .key(to)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .set_if_none_match(create_only.then(|| "*".to_owned()))
                .send()
                .await
                .map_err(|e| created_conflict(sdk_error(e, Operation::Copy, &uri), create_only))?;
            Ok(PutResult {
                etag: out.e_tag().map(str::to_owned),
                size: src.size,
            })
        }
        .await;
        if result.is_err() {
            abort_upload(s, to, upload_id).await;
        }
        result
    }
}

/// A failed create-only condition is "already exists", not a generic precondition.
pub(crate) fn created_conflict(e: Error, create_only: bool) -> Error {
    if create_only && e.kind() == ErrorKind::PreconditionFailed {
        let msg = format!(
            "create-only write found an existing object ({})",
            e.message()
        );
        let mut out = Error::new(ErrorKind::AlreadyExists, msg);
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

/// Abort a multipart upload, logging (not returning) a failure: callers are already
/// reporting the error that made them abort.
pub(crate) async fn abort_upload(s: &Shared, key: &str, upload_id: &str) {
    if let Err(e) = s
        .client
        .abort_multipart_upload()
        .bucket(&s.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        tracing::warn!(uri = %s.uri(key), "could not abort multipart upload: {}", sdk_error(e, Operation::Abort, &s.uri(key)));
    }
}

/// One PutObject with the write mode's condition and, optionally, a CRC32C the server
/// verifies instead of a signed SHA-256 of the payload. `part`: it completes a streamed
/// write, a sub-request a retry layer above cannot repeat (see `S3Options::outer_retries`).
pub(crate) async fn put_object(
    s: &Shared,
    key: &str,
    data: Bytes,
    opts: &PutOptions,
    part: bool,
) -> Result<PutResult> {
    let size = data.len() as u64;
    let (if_none_match, if_match) = conditions(&opts.mode);
    if let Some(lean) = &s.lean {
        return lean_put(s, lean, key, data, opts, part, if_none_match, if_match).await;
    }
    let mut req = stored_as!(s.client.put_object(), &s.opts)
        .bucket(&s.bucket)
        .key(key)
        .body(data.into())
        .set_content_type(opts.content_type.clone())
        .set_metadata(
            (!opts.metadata.is_empty()).then(|| opts.metadata.clone().into_iter().collect()),
        )
        .set_if_none_match(if_none_match)
        .set_if_match(if_match);
    if s.opts.upload_integrity == UploadIntegrity::Crc32c {
        req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
    }
    let mut req = req.customize();
    if s.opts.upload_integrity != UploadIntegrity::SignedPayload {
        req = req.disable_payload_signing();
    }
    let retries = s
        .opts
        .part_retries()
        .filter(|_| part && opts.mode == PutMode::Overwrite);
    if let Some(r) = retries {
        req = req.config_override(r);
    }
    let out = req.send().await.map_err(|e| {
        let e = created_conflict(
            sdk_error(e, Operation::Put, &s.uri(key)),
            opts.mode == PutMode::Create,
        );
        if part {
            s.opts.part_error(e)
        } else {
            e
        }
    })?;
    Ok(PutResult {
        etag: out.e_tag().map(str::to_owned),
        size,
    })
}

/// `put_object` on the lean path: the same request, the same attempts as the SDK would
/// make (see `S3Options::outer_retries`).
#[allow(clippy::too_many_arguments)]
async fn lean_put(
    s: &Shared,
    lean: &LeanBucket,
    key: &str,
    data: Bytes,
    opts: &PutOptions,
    part: bool,
    if_none_match: Option<String>,
    if_match: Option<String>,
) -> Result<PutResult> {
    let size = data.len() as u64;
    let uri = s.uri(key);
    let h = HeaderName::from_static;
    let mut headers = vec![(h("content-length"), size.to_string())];
    if let Some(v) = &opts.content_type {
        headers.push((h("content-type"), v.clone()));
    }
    for (name, v) in s.opts.stored_as_headers() {
        headers.push((h(name), v));
    }
    for (k, v) in &opts.metadata {
        let name = HeaderName::try_from(format!("x-amz-meta-{k}")).map_err(|_| {
            Error::invalid_input(format!("metadata name '{k}' is not a valid header name"))
                .context(Operation::Put, uri.clone())
        })?;
        headers.push((name, v.clone()));
    }
    if let Some(v) = if_none_match {
        headers.push((h("if-none-match"), v));
    }
    if let Some(v) = if_match {
        headers.push((h("if-match"), v));
    }
    let payload = match s.opts.upload_integrity {
        UploadIntegrity::Crc32c => {
            headers.push((h("x-amz-checksum-crc32c"), crc32c_header(&data)));
            Payload::Unsigned
        }
        UploadIntegrity::SignedPayload => Payload::Signed,
        UploadIntegrity::None => Payload::Unsigned,
    };
    if opts.mode != PutMode::Overwrite {
        return conditional_put(s, lean, key, &headers, data, payload, part).await;
    }
    // A part (the final PUT of a streamed write) cannot be repeated by a layer above, so it
    // is retried here.
    let attempts = s.opts.lean_attempts(part);
    let out = lean
        .send(
            Operation::Put,
            http::Method::PUT,
            key,
            &headers,
            data,
            payload,
            attempts,
            &uri,
        )
        .await
        .map_err(|(e, _)| if part { s.opts.part_error(e) } else { e })?;
    Ok(PutResult {
        etag: out.header("etag").map(str::to_owned),
        size,
    })
}

/// A create-only or If-Match PUT, with all its attempts here (so a layer above never
/// repeats it). After a failure that surely did nothing (throttled, never connected) it is
/// sent again. After one whose outcome is unknown (a reset, a timeout, a 5xx: it may have
/// landed, and a repeat would then fail its own condition) the object is looked at first:
/// an ETag equal to the MD5 of our bytes (what S3 answers for a single PUT; under SSE-KMS,
/// whose ETags are not MD5s, the stored CRC32C equal to ours) means our write is there, and
/// the PUT succeeded; otherwise it is sent again, and a conflict after an
/// unknown outcome is looked at the same way before it is reported. (Another writer storing
/// the very same bytes in that window is taken for ours: the object is the same either way.)
async fn conditional_put(
    s: &Shared,
    lean: &LeanBucket,
    key: &str,
    headers: &[(HeaderName, String)],
    data: Bytes,
    payload: Payload,
    part: bool,
) -> Result<PutResult> {
    let size = data.len() as u64;
    let uri = s.uri(key);
    let create = headers.iter().any(|(k, _)| k == "if-none-match");
    let backoff = s3dlio_store_core::RetryPolicy::default();
    let mut unknown = false;
    let mut attempt = 1;
    loop {
        let e = match lean
            .send(
                Operation::Put,
                http::Method::PUT,
                key,
                headers,
                data.clone(),
                payload,
                1,
                &uri,
            )
            .await
        {
            Ok(out) => {
                return Ok(PutResult {
                    etag: out.header("etag").map(str::to_owned),
                    size,
                })
            }
            Err((e, _)) => created_conflict(e, create),
        };
        let conflict = matches!(
            e.kind(),
            ErrorKind::AlreadyExists | ErrorKind::PreconditionFailed
        );
        if (conflict && unknown) || (e.is_retryable() && !e.surely_unperformed()) {
            unknown = true;
            if let Some(etag) = landed(s, lean, key, headers, &data).await {
                tracing::debug!(uri, error = %e, "a conditional PUT of unknown outcome had landed");
                return Ok(PutResult {
                    etag: Some(etag),
                    size,
                });
            }
        }
        if conflict || !e.is_retryable() || attempt >= s.opts.max_attempts {
            // Final: every attempt this write may make was made here.
            let e = if part { s.opts.part_error(e) } else { e };
            return Err(if s.opts.max_attempts > 1 {
                e.set_retryable(false)
            } else {
                e
            });
        }
        tracing::debug!(attempt, error = %e, "retrying conditional PUT {uri}");
        tokio::time::sleep(backoff.backoff(attempt)).await;
        attempt += 1;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The object's ETag if the stored object is our write of `data`, judged by what identifies
/// its bytes: the ETag, the MD5 of a single PUT's bytes; under SSE-KMS, whose ETags are not
/// MD5s, the CRC32C the server stored with it (asked for with `x-amz-checksum-mode`), when
/// the PUT sent one. `None` when it is not ours or cannot be told.
async fn landed(
    s: &Shared,
    lean: &LeanBucket,
    key: &str,
    headers: &[(HeaderName, String)],
    data: &Bytes,
) -> Option<String> {
    if s.opts.etag_is_md5() {
        let etag = head_object(s, key).await.ok()?.etag?;
        let ours = hex(&<md5::Md5 as md5::Digest>::digest(data));
        return etag
            .trim_matches('"')
            .eq_ignore_ascii_case(&ours)
            .then_some(etag);
    }
    let (_, crc) = headers.iter().find(|(k, _)| k == "x-amz-checksum-crc32c")?;
    let mode = [(
        HeaderName::from_static("x-amz-checksum-mode"),
        "ENABLED".to_owned(),
    )];
    let r = lean_bodiless(s, lean, Operation::Head, http::Method::HEAD, key, &mode)
        .await
        .ok()?;
    if r.header("x-amz-checksum-crc32c") != Some(crc.as_str()) {
        return None;
    }
    r.header("etag").map(str::to_owned)
}

/// A lean request on `key` without a body (HEAD, DELETE): repeatable, so it gets the
/// attempts of a read (see `S3Options::lean_attempts`).
async fn lean_bodiless(
    s: &Shared,
    lean: &LeanBucket,
    op: Operation,
    method: http::Method,
    key: &str,
    headers: &[(HeaderName, String)],
) -> Result<crate::lean::LeanResponse> {
    let attempts = s.opts.lean_attempts(false);
    lean.send(
        op,
        method,
        key,
        headers,
        Bytes::new(),
        Payload::Unsigned,
        attempts,
        &s.uri(key),
    )
    .await
    .map_err(|(e, _)| e)
}

/// HeadObject, as our metadata.
pub(crate) async fn head_object(s: &Shared, key: &str) -> Result<ObjectMeta> {
    if let Some(lean) = &s.lean {
        let r = lean_bodiless(s, lean, Operation::Head, http::Method::HEAD, key, &[]).await?;
        return Ok(r.meta(key, r.content_length().unwrap_or(0)));
    }
    let out = s
        .client
        .head_object()
        .bucket(&s.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error(e, Operation::Head, &s.uri(key)))?;
    Ok(meta_from_parts(
        key,
        out.content_length().unwrap_or(0).max(0) as u64,
        out.last_modified(),
        out.e_tag(),
        out.content_type(),
        out.metadata(),
    ))
}

/// The If-None-Match and If-Match headers of a write mode.
pub(crate) fn conditions(mode: &PutMode) -> (Option<String>, Option<String>) {
    match mode {
        PutMode::Overwrite => (None, None),
        PutMode::Create => (Some("*".to_owned()), None),
        PutMode::IfMatch(etag) => (None, Some(etag.clone())),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
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
        if data.len() > self.shared.opts.multipart_threshold {
            // Large payloads go up as concurrent parts.
            let mut w = self.writer(key, opts).await?;
            if let Err(e) = w.write(data).await {
                let _ = w.abort().await;
                return Err(e);
            }
            return w.complete().await;
        }
        self.put_single(key, data, &opts).await
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
        let s = &self.shared;
        validate_key(key).map_err(|e| e.context(Operation::Head, s.uri(key)))?;
        head_object(s, key).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage> {
        let s = &self.shared;
        let page_size = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1000);
        if let Some(lean) = &s.lean {
            let query = crate::list::ListQuery {
                prefix,
                delimiter: (!opts.recursive).then_some("/"),
                start_after: opts.start_after.as_deref(),
                token: token.as_deref(),
                max_keys: page_size,
            };
            let attempts = s.opts.lean_attempts(false);
            return lean.list_page(&query, attempts, &s.uri(prefix)).await;
        }
        let out = s
            .client
            .list_objects_v2()
            .bucket(&s.bucket)
            .prefix(prefix)
            .set_delimiter((!opts.recursive).then(|| "/".to_owned()))
            .set_start_after(opts.start_after.clone())
            .set_continuation_token(token)
            .max_keys(page_size as i32)
            .send()
            .await
            .map_err(|e| sdk_error(e, Operation::List, &s.uri(prefix)))?;
        let mut items: Vec<ListItem> = out
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?;
                Some(ListItem::Object(ObjectMeta {
                    key: key.to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: system_time(o.last_modified()),
                    etag: o.e_tag().map(str::to_owned),
                    content_type: None,
                    metadata: BTreeMap::new(),
                    storage_class: None,
                }))
            })
            .collect();
        items.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(|p| ListItem::Prefix(p.to_owned()))),
        );
        // S3 returns objects and prefixes as two sorted lists; one order for callers.
        items.sort_by(|a, b| a.name().cmp(b.name()));
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { items, next })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let s = &self.shared;
        validate_key(key).map_err(|e| e.context(Operation::Delete, s.uri(key)))?;
        if let Some(lean) = &s.lean {
            // Idempotent (S3 answers 204 for a missing key too), so every attempt is safe.
            return lean_bodiless(s, lean, Operation::Delete, http::Method::DELETE, key, &[])
                .await
                .map(|_| ());
        }
        s.client
            .delete_object()
            .bucket(&s.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(e, Operation::Delete, &s.uri(key)))
    }

    /// Batch DeleteObjects, 1,000 keys a request, four requests at a time.
    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        let s = &self.shared;
        let mut results: Vec<Result<()>> = Vec::with_capacity(keys.len());
        let batches: Vec<Vec<String>> = keys.chunks(1000).map(<[String]>::to_vec).collect();
        let answers = stream::iter(batches)
            .map(|batch| async move {
                let ids = batch
                    .iter()
                    .map(|k| ObjectIdentifier::builder().key(k).build())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::invalid_input(format!("delete batch: {e}")))?;
                let delete = Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()
                    .map_err(|e| Error::invalid_input(format!("delete batch: {e}")))?;
                let out = s
                    .client
                    .delete_objects()
                    .bucket(&s.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, Operation::DeleteMany, &s.base_uri))?;
                let failed: HashMap<String, Error> = out
                    .errors()
                    .iter()
                    .filter_map(|e| {
                        let key = e.key()?.to_owned();
                        let f = crate::error::Failure {
                            status: None,
                            code: e.code().map(str::to_owned),
                            message: e.message().map(str::to_owned),
                            ..Default::default()
                        };
                        let kind = crate::error::kind_of(None, f.code.as_deref());
                        let err = Error::new(kind, crate::error::describe(&f))
                            .context(Operation::Delete, s.uri(&key));
                        Some((key, err))
                    })
                    .collect();
                Ok::<_, Error>((batch, failed))
            })
            .buffered(4)
            .collect::<Vec<_>>()
            .await;
        for answer in answers {
            let (batch, mut failed) = answer?;
            for key in batch {
                results.push(match failed.remove(&key) {
                    Some(e) => Err(e),
                    None => {
                        validate_key(&key).map_err(|e| e.context(Operation::Delete, s.uri(&key)))
                    }
                });
            }
        }
        Ok(results)
    }

    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let s = &self.shared;
        validate_key(from).map_err(|e| e.context(Operation::Copy, s.uri(from)))?;
        validate_key(to).map_err(|e| e.context(Operation::Copy, s.uri(to)))?;
        let src = self
            .head(from)
            .await
            .map_err(|e| e.with_operation(Operation::Copy))?;
        const MAX_SINGLE_COPY: u64 = 5 << 30;
        if opts.create_only || src.size > MAX_SINGLE_COPY {
            return self.multipart_copy(from, to, &src, opts.create_only).await;
        }
        let out = stored_as!(s.client.copy_object(), &s.opts)
            .bucket(&s.bucket)
            .key(to)
            .copy_source(encode_copy_source(&s.bucket, from))
            .set_copy_source_if_match(src.etag.clone())
            .send()
            .await
            .map_err(|e| sdk_error(e, Operation::Copy, &s.uri(to)))?;
        Ok(PutResult {
            etag: out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned),
            size: src.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(
            encode_copy_source("b", "a/b c+%.bin"),
            "b/a/b%20c%2B%25.bin"
        );
        assert_eq!(encode_copy_source("b", "ü"), "b/%C3%BC");
    }
}
