//! GETs. The first request asks for the first part of what was asked for, so a blob that
//! fits in one part costs one request (no HEAD first) and its answer carries the size and
//! the ETag. Larger blobs are read with concurrent ranged GETs pinned to that ETag
//! (If-Match), so a concurrent overwrite fails the read instead of mixing two versions:
//! into one buffer allocated once, or streamed in order.

use std::ops::Range;
use std::sync::Arc;

use azure_core::http::{AsyncResponseBody, Method};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{StreamExt, TryStreamExt};
use s3dlio_store_core::ranged::{self, PartBody, PartSource, RangedBody, Served};
use s3dlio_store_core::{
    validate_key, Body, ByteRange, ByteStream, Error, ErrorKind, GetOptions, GetResult, Operation,
    Result,
};

use crate::client::{meta_from_headers, Response};
use crate::store::Shared;

pub(crate) async fn get(shared: &Arc<Shared>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = shared.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    validate_key(key).map_err(ctx)?;
    if let Some(r) = &opts.range {
        r.validate().map_err(ctx)?;
    }
    let part = shared.opts.get_part_size as u64;
    let if_match = opts.if_match.as_deref();
    let first = match opts.range {
        None => Some(0..part),
        Some(ByteRange::Bounded { start, end }) => Some(start..end.min(start.saturating_add(part))),
        Some(ByteRange::From(start)) => Some(start..start.saturating_add(part)),
        // The service takes no suffix ranges: learn the size first.
        Some(ByteRange::Suffix(n)) => {
            let meta = shared.head_with(key, if_match).await?;
            let target = ByteRange::Suffix(n).resolve(meta.size).map_err(ctx)?;
            if target.is_empty() {
                return Ok(GetResult {
                    meta,
                    range: 0..0,
                    body: Body::Bytes(Bytes::new()),
                    uri,
                });
            }
            let etag = meta.etag.clone();
            let pinned = if_match.or(etag.as_deref());
            let first = target.start..target.end.min(target.start + part);
            let resp = send_get(shared, key, Some(first.clone()), pinned).await?;
            let served = served_range(&resp).map_err(ctx)?;
            return finish(
                shared,
                key,
                uri,
                resp,
                served,
                target,
                pinned.map(str::to_owned),
            );
        }
    };
    let resp = send_get(shared, key, first, if_match).await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::RangeNotSatisfiable => {
            // An empty blob has no byte 0: read it plainly. Otherwise say how big it is.
            let meta = shared.head_with(key, if_match).await?;
            if meta.size == 0 && opts.range.is_none() {
                return Ok(GetResult {
                    meta,
                    range: 0..0,
                    body: Body::Bytes(Bytes::new()),
                    uri,
                });
            }
            let start = match opts.range {
                Some(ByteRange::Bounded { start, .. } | ByteRange::From(start)) => start,
                _ => 0,
            };
            return Err(ctx(Error::new(
                ErrorKind::RangeNotSatisfiable,
                format!(
                    "range starts at byte {start} but the object has {} bytes",
                    meta.size
                ),
            )));
        }
        Err(e) => return Err(e),
    };
    let served = served_range(&resp).map_err(ctx)?;
    let total = served.total;
    let target = match opts.range {
        None => 0..total,
        Some(ByteRange::Bounded { start, end }) => start..end.min(total),
        Some(ByteRange::From(start)) => start..total,
        Some(ByteRange::Suffix(_)) => unreachable!("handled above"),
    };
    let etag = opts
        .if_match
        .clone()
        .or_else(|| resp.header("etag").map(str::to_owned));
    finish(shared, key, uri, resp, served, target, etag)
}

/// Build the result of a read whose first response is `resp`.
fn finish(
    shared: &Arc<Shared>,
    key: &str,
    uri: String,
    resp: Response,
    served: Served,
    target: Range<u64>,
    etag: Option<String>,
) -> Result<GetResult> {
    let meta = meta_from_headers(key, served.total, &resp.headers);
    let len = usize::try_from(target.end - target.start).unwrap_or(usize::MAX);
    // One response held it all and it is small: its chunks as they come. Large reads go
    // through the ranged body, whose whole-object form fills one pooled buffer.
    if served.range.end >= target.end && !shared.pool.pools(len) {
        return Ok(GetResult {
            meta,
            range: target,
            body: Body::Stream(body_stream(resp.body, uri.clone())),
            uri,
        });
    }
    let source = BlobParts {
        shared: Arc::clone(shared),
        key: key.to_owned(),
        etag,
    };
    let deferred = RangedBody::new(
        Arc::new(source),
        uri.clone(),
        body_stream(resp.body, uri.clone()),
        served.range.end,
        target.clone(),
        shared.opts.get_part_size as u64,
        shared.opts.get_concurrency,
    )
    .with_attempts(shared.opts.max_retries + 1)
    .with_pool(Arc::clone(&shared.pool));
    Ok(GetResult {
        meta,
        range: target,
        body: Body::Deferred(Box::new(deferred)),
        uri,
    })
}

/// One GET of `range` (or the whole blob), optionally pinned to an ETag.
async fn send_get(
    shared: &Shared,
    key: &str,
    range: Option<Range<u64>>,
    if_match: Option<&str>,
) -> Result<Response> {
    let uri = shared.uri(key);
    let mut headers = Vec::new();
    if let Some(r) = &range {
        headers.push(crate::store::h(
            "range",
            format!("bytes={}-{}", r.start, r.end - 1),
        ));
    }
    if let Some(e) = if_match {
        headers.push(crate::store::h("if-match", e));
    }
    let url = shared.client.url(&shared.container, Some(key), &[])?;
    let resp = shared
        .client
        .send(Method::Get, url, &headers, None, Operation::Get, &uri)
        .await?;
    shared.client.check(resp, Operation::Get, &uri).await
}

/// The bytes a response holds, from `Content-Range` (a 206) or the length (a 200).
fn served_range(resp: &Response) -> Result<Served> {
    let len = resp
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0u64);
    let cr = resp.header("content-range");
    Served::of_answer(cr, len).map_err(|e| match cr.and_then(empty_content_range) {
        // Azurite answers a range that starts at the end with an empty 206
        // (`bytes 1000-999/1000`) where Azure answers 416.
        Some((start, total)) => Error::new(
            ErrorKind::RangeNotSatisfiable,
            format!("range starts at byte {start} but the object has {total} bytes"),
        ),
        None => e,
    })
}

/// `bytes 1000-999/1000`: an empty range at or past the end, as (start, total).
fn empty_content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let start: u64 = span.split('-').next()?.parse().ok()?;
    let total: u64 = total.parse().ok()?;
    (start >= total).then_some((start, total))
}

fn read_error(e: azure_core::Error, uri: &str) -> Error {
    Error::new(
        ErrorKind::Interrupted,
        format!("reading the body: {}", crate::error::redact(&e.to_string())),
    )
    .set_retryable(true)
    .context(Operation::Get, uri)
}

/// A response body as our stream of chunks.
fn body_stream(body: AsyncResponseBody, uri: String) -> ByteStream {
    body.map_err(move |e| read_error(e, &uri)).boxed()
}

/// Ranged GETs of one blob, pinned to the ETag the read began with.
struct BlobParts {
    shared: Arc<Shared>,
    key: String,
    etag: Option<String>,
}

impl PartSource for BlobParts {
    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, Result<PartBody>> {
        let (shared, key, etag) = (
            Arc::clone(&self.shared),
            self.key.clone(),
            self.etag.clone(),
        );
        async move {
            let body = fetch_part(&shared, &key, etag.as_deref(), range).await?;
            Ok(PartBody::Stream(body_stream(body, shared.uri(&key))))
        }
        .boxed()
    }
}

/// One ranged GET pinned to `etag`; a changed ETag means the blob was replaced mid-read.
async fn fetch_part(
    shared: &Shared,
    key: &str,
    etag: Option<&str>,
    range: Range<u64>,
) -> Result<AsyncResponseBody> {
    let uri = shared.uri(key);
    let resp = send_get(shared, key, Some(range.clone()), etag)
        .await
        .map_err(|e| ranged::part_error(e, &uri))?;
    ranged::check_part(&range, &served_range(&resp)?.range, &uri)?;
    Ok(resp.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_ranges() {
        assert_eq!(
            empty_content_range("bytes 1000-999/1000"),
            Some((1000, 1000))
        );
        assert_eq!(empty_content_range("bytes 10-999/1000"), None);
    }
}
