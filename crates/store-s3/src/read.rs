//! GETs. The first request asks for the first part of the range, so an object that fits in
//! one part costs exactly one request (no HEAD first), and its answer carries the size and
//! the ETag. Larger objects are read with concurrent ranged GETs pinned to that ETag with
//! If-Match, so a concurrent overwrite fails the read instead of mixing two versions: into
//! one buffer allocated once (`GetResult::bytes`), or streamed in order
//! (`GetResult::into_stream`).

use std::ops::Range;
use std::sync::Arc;

use aws_smithy_types::byte_stream::ByteStream as SdkStream;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_store_core::ranged::{self, PartBody, PartSource, RangedBody, Served};
use s3dlio_store_core::{
    validate_key, Body, ByteRange, ByteStream, Error, ErrorKind, GetOptions, GetResult, ObjectMeta,
    Operation, Result,
};

use crate::error::{sdk_error, status_of};
use crate::store::{head_object, meta_from_parts, Shared};

pub(crate) async fn get(shared: &Arc<Shared>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = shared.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    validate_key(key).map_err(ctx)?;
    if let Some(r) = &opts.range {
        r.validate().map_err(ctx)?;
    }
    let part = shared.opts.get_part_size as u64;
    // The first request: the first part of what was asked for.
    let first = match opts.range {
        None => Some(format!("bytes=0-{}", part - 1)),
        Some(ByteRange::Bounded { start, end }) => Some(format!(
            "bytes={start}-{}",
            end.min(start.saturating_add(part)) - 1
        )),
        Some(ByteRange::From(start)) => {
            Some(format!("bytes={start}-{}", start.saturating_add(part) - 1))
        }
        // Unknown start: one request for the whole suffix.
        Some(ByteRange::Suffix(n)) => Some(format!("bytes=-{n}")),
    };
    let resp = match send_get(shared, key, first, opts.if_match.as_deref(), false).await {
        Ok(r) => r,
        Err((e, status)) => {
            if status == Some(416) {
                match opts.range {
                    // An empty object has no byte 0: read it plainly.
                    None => send_get(shared, key, None, opts.if_match.as_deref(), false)
                        .await
                        .map_err(|(e, _)| ctx(e))?,
                    // A suffix of an empty object is empty (servers disagree; we do not).
                    Some(ByteRange::Suffix(_)) => {
                        return empty_if_empty(shared, key, &opts, uri.clone())
                            .await
                            .map_err(ctx)
                    }
                    Some(_) => {
                        let size = head_object(shared, key).await.map_err(ctx)?.size;
                        let start = match opts.range {
                            Some(ByteRange::Bounded { start, .. } | ByteRange::From(start)) => {
                                start
                            }
                            _ => 0,
                        };
                        return Err(ctx(Error::new(
                            ErrorKind::RangeNotSatisfiable,
                            format!("range starts at byte {start} but the object has {size} bytes"),
                        )));
                    }
                }
            } else {
                return Err(ctx(e));
            }
        }
    };

    let resp = with_known_length(resp).await?;
    let served = served_range(&resp)?;
    let total = served.total;
    let target = match opts.range {
        None => 0..total,
        Some(ByteRange::Bounded { start, end }) => start..end.min(total),
        Some(ByteRange::From(start)) => start..total,
        Some(ByteRange::Suffix(_)) => served.range.clone(),
    };
    let mut meta = resp.meta;
    meta.size = total;
    let etag = meta.etag.clone();
    let body = resp.body;
    let len = target.end - target.start;
    if served.range.end >= target.end
        && !shared
            .pool
            .pools(usize::try_from(len).unwrap_or(usize::MAX))
    {
        // One request held it all, and it is small: its chunks as they come (usually one).
        return Ok(GetResult {
            meta,
            range: target,
            body: Body::Stream(body.into_stream(len)),
            uri,
        });
    }
    // Large: the rest (if any) fetched concurrently, and one pooled buffer if the caller
    // wants the object whole.
    let source = ObjectParts {
        shared: Arc::clone(shared),
        key: key.to_owned(),
        etag,
    };
    let deferred = RangedBody::new(
        Arc::new(source),
        uri.clone(),
        body,
        served.range.end,
        target.clone(),
        shared.opts.get_part_size as u64,
        shared.opts.get_concurrency,
    )
    .with_attempts(shared.opts.max_attempts)
    .with_pool(Arc::clone(&shared.pool));
    Ok(GetResult {
        meta,
        range: target,
        body: Body::Deferred(Box::new(deferred)),
        uri,
    })
}

/// A GET's answer, from either path.
struct Answer {
    /// `None`: not announced (a chunked body).
    content_length: Option<u64>,
    content_range: Option<String>,
    /// Everything but the size, which the caller learns from the range headers.
    meta: ObjectMeta,
    body: PartBody,
}

/// Send one GET (the lean path when the store has one, else the SDK); on failure also
/// return the HTTP status.
async fn send_get(
    shared: &Shared,
    key: &str,
    range: Option<String>,
    if_match: Option<&str>,
    part: bool,
) -> std::result::Result<Answer, (Error, Option<u16>)> {
    let uri = shared.uri(key);
    if let Some(lean) = &shared.lean {
        let attempts = shared.opts.lean_attempts(part);
        return match lean
            .get(key, range.as_deref(), if_match, attempts, &uri)
            .await
        {
            Ok(r) => Ok(Answer {
                content_length: r.content_length(),
                content_range: r.content_range().map(str::to_owned),
                meta: r.meta(key, 0),
                body: r.into_body(uri, lean.read_timeout()),
            }),
            Err((e, status)) => Err((if part { shared.opts.part_error(e) } else { e }, status)),
        };
    }
    let req = shared
        .client
        .get_object()
        .bucket(&shared.bucket)
        .key(key)
        .set_range(range)
        .set_if_match(if_match.map(str::to_owned))
        .customize();
    // The parts after the first are sub-requests a retry layer above cannot see.
    let retries = shared.opts.part_retries().filter(|_| part);
    let out = match retries {
        Some(r) => req.config_override(r),
        None => req,
    }
    .send()
    .await
    .map_err(|e| {
        let status = status_of(&e);
        let err = sdk_error(e, Operation::Get, &uri);
        (
            if part {
                shared.opts.part_error(err)
            } else {
                err
            },
            status,
        )
    })?;
    Ok(Answer {
        content_length: out.content_length().map(|n| n.max(0) as u64),
        content_range: out.content_range().map(str::to_owned),
        meta: meta_from_parts(
            key,
            0,
            out.last_modified(),
            out.e_tag(),
            out.content_type(),
            out.metadata(),
        ),
        body: PartBody::Stream(sdk_stream(out.body, uri)),
    })
}

async fn empty_if_empty(
    shared: &Shared,
    key: &str,
    opts: &GetOptions,
    uri: String,
) -> Result<GetResult> {
    let out = shared
        .client
        .head_object()
        .bucket(&shared.bucket)
        .key(key)
        .set_if_match(opts.if_match.clone())
        .send()
        .await
        .map_err(|e| sdk_error(e, Operation::Head, &uri))?;
    let size = out.content_length().unwrap_or(0).max(0) as u64;
    if size != 0 {
        return Err(Error::other(format!(
            "server refused a suffix range of a {size}-byte object"
        )));
    }
    let meta = meta_from_parts(
        key,
        0,
        out.last_modified(),
        out.e_tag(),
        out.content_type(),
        out.metadata(),
    );
    Ok(GetResult {
        meta,
        range: 0..0,
        body: Body::Bytes(Bytes::new()),
        uri,
    })
}

/// A whole object sent without its length (chunked, as some proxies do): read, so its
/// size is known.
async fn with_known_length(resp: Answer) -> Result<Answer> {
    if resp.content_length.is_some() || resp.content_range.is_some() {
        return Ok(resp);
    }
    let chunks: Vec<Bytes> = resp.body.into_stream(u64::MAX).try_collect().await?;
    let whole = Bytes::from(chunks.concat());
    Ok(Answer {
        content_length: Some(whole.len() as u64),
        body: PartBody::Stream(stream::once(async move { Ok(whole) }).boxed()),
        ..resp
    })
}

/// The bytes a response holds, from `Content-Range` (a 206) or the length (a 200).
fn served_range(resp: &Answer) -> Result<Served> {
    Served::of_answer(
        resp.content_range.as_deref(),
        resp.content_length.unwrap_or(0),
    )
}

/// An SDK body as our stream of chunks.
fn sdk_stream(body: SdkStream, uri: String) -> ByteStream {
    stream::try_unfold(body, move |mut body| {
        let uri = uri.clone();
        async move {
            match body.try_next().await {
                Ok(Some(chunk)) => Ok(Some((chunk, body))),
                Ok(None) => Ok(None),
                Err(e) => Err(
                    Error::new(ErrorKind::Interrupted, format!("reading the body: {e}"))
                        .set_retryable(true)
                        .context(Operation::Get, uri),
                ),
            }
        }
    })
    .boxed()
}

/// Ranged GETs of one object, pinned to the ETag the read began with.
struct ObjectParts {
    shared: Arc<Shared>,
    key: String,
    etag: Option<String>,
}

impl PartSource for ObjectParts {
    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, Result<PartBody>> {
        let (shared, key, etag) = (
            Arc::clone(&self.shared),
            self.key.clone(),
            self.etag.clone(),
        );
        async move { fetch_part(&shared, &key, etag.as_deref(), range).await }.boxed()
    }
}

/// One ranged GET, pinned to `etag`.
async fn fetch_part(
    shared: &Shared,
    key: &str,
    etag: Option<&str>,
    range: Range<u64>,
) -> Result<PartBody> {
    let header = format!("bytes={}-{}", range.start, range.end - 1);
    let uri = shared.uri(key);
    let resp = send_get(shared, key, Some(header), etag, true)
        .await
        .map_err(|(e, _)| ranged::part_error(e, &uri))?;
    ranged::check_part(&range, &served_range(&resp)?.range, &uri)?;
    Ok(resp.body)
}
