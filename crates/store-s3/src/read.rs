//! GETs. The first request asks for the first part of the range, so an object that fits in
//! one part costs exactly one request (no HEAD first), and its answer carries the size and
//! the ETag. Larger objects are read with concurrent ranged GETs pinned to that ETag with
//! If-Match, so a concurrent overwrite fails the read instead of mixing two versions: into
//! one buffer allocated once (`GetResult::bytes`), or streamed in order
//! (`GetResult::into_stream`).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_smithy_types::byte_stream::ByteStream as SdkStream;
use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_store_core::{
    validate_key, Body, ByteRange, ByteStream, DeferredBody, Error, ErrorKind, GetOptions,
    GetResult, ObjectMeta, Operation, Result,
};

use crate::error::{sdk_error, status_of};
use crate::store::{meta_from_parts, Shared};

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
    let resp = match send_get(shared, key, first, opts.if_match.as_deref()).await {
        Ok(r) => r,
        Err((e, status)) => {
            if status == Some(416) {
                match opts.range {
                    // An empty object has no byte 0: read it plainly.
                    None => send_get(shared, key, None, opts.if_match.as_deref())
                        .await
                        .map_err(|(e, _)| ctx(e))?,
                    // A suffix of an empty object is empty (servers disagree; we do not).
                    Some(ByteRange::Suffix(_)) => {
                        return empty_if_empty(shared, key, &opts, uri.clone())
                            .await
                            .map_err(ctx)
                    }
                    Some(_) => {
                        let size = shared_head_size(shared, key).await.map_err(ctx)?;
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

    let served = served_range(&resp)?;
    let total = served.total;
    let target = match opts.range {
        None => 0..total,
        Some(ByteRange::Bounded { start, end }) => start..end.min(total),
        Some(ByteRange::From(start)) => start..total,
        Some(ByteRange::Suffix(_)) => served.range.clone(),
    };
    let meta = meta_from_get(key, total, &resp);
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
            body: Body::Stream(sdk_stream(body, uri.clone())),
            uri,
        });
    }
    // Large: the rest (if any) fetched concurrently, and one pooled buffer if the caller
    // wants the object whole.
    let deferred = S3Body {
        shared: Arc::clone(shared),
        key: key.to_owned(),
        uri: uri.clone(),
        etag,
        first: body,
        first_end: served.range.end,
        target: target.clone(),
    };
    Ok(GetResult {
        meta,
        range: target,
        body: Body::Deferred(Box::new(deferred)),
        uri,
    })
}

/// Send one GET; on failure also return the HTTP status.
async fn send_get(
    shared: &Shared,
    key: &str,
    range: Option<String>,
    if_match: Option<&str>,
) -> std::result::Result<GetObjectOutput, (Error, Option<u16>)> {
    shared
        .client
        .get_object()
        .bucket(&shared.bucket)
        .key(key)
        .set_range(range)
        .set_if_match(if_match.map(str::to_owned))
        .send()
        .await
        .map_err(|e| {
            let status = status_of(&e);
            (sdk_error(e, Operation::Get, &shared.uri(key)), status)
        })
}

async fn shared_head_size(shared: &Shared, key: &str) -> Result<u64> {
    let out = shared
        .client
        .head_object()
        .bucket(&shared.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error(e, Operation::Head, &shared.uri(key)))?;
    Ok(out.content_length().unwrap_or(0).max(0) as u64)
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

struct Served {
    range: Range<u64>,
    total: u64,
}

/// The bytes a response holds, from `Content-Range` (a 206) or the length (a 200).
fn served_range(resp: &GetObjectOutput) -> Result<Served> {
    let len = resp.content_length().unwrap_or(0).max(0) as u64;
    match resp.content_range() {
        Some(cr) => parse_content_range(cr)
            .ok_or_else(|| Error::other(format!("unparseable Content-Range '{cr}'"))),
        None => Ok(Served {
            range: 0..len,
            total: len,
        }),
    }
}

/// `bytes 0-99/1000` -> 0..100 of 1000.
fn parse_content_range(v: &str) -> Option<Served> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total): (u64, u64, u64) = (a.parse().ok()?, b.parse().ok()?, total.parse().ok()?);
    (a <= b && b < total).then_some(Served {
        range: a..b + 1,
        total,
    })
}

fn meta_from_get(key: &str, total: u64, r: &GetObjectOutput) -> ObjectMeta {
    meta_from_parts(
        key,
        total,
        r.last_modified(),
        r.e_tag(),
        r.content_type(),
        r.metadata(),
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

/// The rest of a large read, fetched when the caller says how it wants it.
struct S3Body {
    shared: Arc<Shared>,
    key: String,
    uri: String,
    etag: Option<String>,
    first: SdkStream,
    first_end: u64,
    target: Range<u64>,
}

impl std::fmt::Debug for S3Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Body")
            .field("uri", &self.uri)
            .field("target", &self.target)
            .finish()
    }
}

impl S3Body {
    /// The ranges after the first response, one per ranged GET.
    fn rest(&self) -> Vec<Range<u64>> {
        let part = self.shared.opts.get_part_size as u64;
        (self.first_end..self.target.end)
            .step_by(part as usize)
            .map(|s| s..(s + part).min(self.target.end))
            .collect()
    }
}

/// One ranged GET, pinned to `etag`.
async fn fetch_part(
    shared: &Shared,
    key: &str,
    etag: Option<&str>,
    range: Range<u64>,
) -> Result<SdkStream> {
    let header = format!("bytes={}-{}", range.start, range.end - 1);
    let resp = send_get(shared, key, Some(header), etag)
        .await
        .map_err(|(e, status)| {
            if status == Some(412) {
                Error::new(
                    ErrorKind::PreconditionFailed,
                    "the object was replaced while it was being read (its ETag changed)",
                )
                .context(Operation::Get, shared.uri(key))
            } else {
                e
            }
        })?;
    let served = served_range(&resp)?;
    if served.range != range {
        return Err(Error::other(format!(
            "asked for bytes {range:?}, the server sent {:?}",
            served.range
        ))
        .context(Operation::Get, shared.uri(key)));
    }
    Ok(resp.body)
}

/// Copy a body into `dst`, which it must fill exactly.
async fn fill(mut body: SdkStream, dst: &mut [u8], uri: &str) -> Result<()> {
    let mut at = 0;
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                let end = at + chunk.len();
                if end > dst.len() {
                    return Err(short(end as u64, dst.len() as u64, uri));
                }
                dst[at..end].copy_from_slice(&chunk);
                at = end;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(
                    Error::new(ErrorKind::Interrupted, format!("reading the body: {e}"))
                        .set_retryable(true)
                        .context(Operation::Get, uri),
                )
            }
        }
    }
    if at != dst.len() {
        return Err(short(at as u64, dst.len() as u64, uri));
    }
    Ok(())
}

fn short(got: u64, want: u64, uri: &str) -> Error {
    Error::new(
        ErrorKind::Interrupted,
        format!("part body delivered {got} of {want} bytes"),
    )
    .set_retryable(true)
    .context(Operation::Get, uri)
}

#[async_trait]
impl DeferredBody for S3Body {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let len = usize::try_from(self.target.end - self.target.start)
            .map_err(|_| Error::invalid_input("object does not fit in memory"))?;
        let rest = self.rest();
        let Self {
            shared,
            key,
            uri,
            etag,
            first,
            first_end,
            target,
        } = *self;
        // One buffer at the final size (pooled, so usually already faulted in); every part
        // lands straight in its own slice of it.
        let mut buf = shared.pool.take(len);
        let (head, mut tail) = buf[..len].split_at_mut((first_end - target.start) as usize);
        let mut jobs = Vec::with_capacity(rest.len() + 1);
        jobs.push(fill(first, head, &uri).boxed());
        for r in rest {
            let (slice, next) = tail.split_at_mut((r.end - r.start) as usize);
            tail = next;
            let (shared, key, etag, uri) = (&shared, &key, etag.as_deref(), &uri);
            jobs.push(
                async move {
                    let body = fetch_part(shared, key, etag, r).await?;
                    fill(body, slice, uri).await
                }
                .boxed(),
            );
        }
        stream::iter(jobs)
            .buffer_unordered(shared.opts.get_concurrency)
            .try_collect::<()>()
            .await?;
        Ok(shared.pool.wrap(buf, len))
    }

    fn stream(self: Box<Self>) -> ByteStream {
        let rest = self.rest();
        let concurrency = self.shared.opts.get_concurrency;
        let Self {
            shared,
            key,
            uri,
            etag,
            first,
            ..
        } = *self;
        let first = sdk_stream(first, uri.clone());
        // Later parts are fetched ahead, in order, each collected to one chunk: memory stays
        // bounded by `get_concurrency` parts.
        let later = stream::iter(rest)
            .map(move |r| {
                let (shared, key, etag, uri) =
                    (Arc::clone(&shared), key.clone(), etag.clone(), uri.clone());
                async move {
                    let len = (r.end - r.start) as usize;
                    let mut buf = shared.pool.take(len);
                    let body = fetch_part(&shared, &key, etag.as_deref(), r).await?;
                    fill(body, &mut buf[..len], &uri).await?;
                    Ok::<_, Error>(shared.pool.wrap(buf, len))
                }
            })
            .buffered(concurrency);
        first.chain(later).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        let s = parse_content_range("bytes 0-99/1000").unwrap();
        assert_eq!((s.range, s.total), (0..100, 1000));
        let s = parse_content_range("bytes 990-999/1000").unwrap();
        assert_eq!((s.range, s.total), (990..1000, 1000));
        assert!(parse_content_range("bytes 5-3/10").is_none());
        assert!(parse_content_range("bytes */1000").is_none());
        assert!(parse_content_range("items 0-1/2").is_none());
    }
}
