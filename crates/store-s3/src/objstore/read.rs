//! GETs through `object_store`, with the native backend's strategy so the two compare like
//! for like: the first request asks for the first `get_part_size` bytes of the range, so a
//! small object costs one request and its answer carries the size and ETag; the rest of a
//! larger object is read with `get_concurrency` ranged GETs pinned to that ETag (If-Match),
//! so a concurrent overwrite fails the read instead of mixing two versions.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, GetRange, ObjectStore as _};
use s3dlio_store_core::{
    Body, ByteRange, ByteStream, DeferredBody, Error, ErrorKind, GetOptions, GetResult, ObjectMeta,
    Operation, Result,
};

use super::error::{map_err, path_of};
use super::Shared;

/// Our metadata from object_store's, plus the content type and user metadata headers.
pub(crate) fn meta_of(key: &str, m: &object_store::ObjectMeta, attrs: &Attributes) -> ObjectMeta {
    let mut out = ObjectMeta::new(key, m.size);
    // object_store reports a missing Last-Modified header as the epoch.
    out.last_modified = Some(SystemTime::from(m.last_modified)).filter(|t| *t != UNIX_EPOCH);
    out.etag = m.e_tag.clone();
    for (k, v) in attrs {
        match k {
            Attribute::ContentType => out.content_type = Some(v.to_string()),
            Attribute::Metadata(name) => {
                out.metadata.insert(name.to_string(), v.to_string());
            }
            _ => {}
        }
    }
    out
}

/// One GET (or HEAD) request.
pub(crate) async fn request(
    s: &Shared,
    path: &Path,
    range: Option<GetRange>,
    if_match: Option<String>,
    head: bool,
) -> object_store::Result<object_store::GetResult> {
    s.inner
        .get_opts(
            path,
            object_store::GetOptions {
                range,
                if_match,
                head,
                ..Default::default()
            },
        )
        .await
}

/// A failure while reading a body: cut short unless object_store knew better.
fn body_error(e: object_store::Error, uri: &str) -> Error {
    let e = map_err(e, Operation::Get, uri);
    if e.kind() == ErrorKind::Other {
        super::error::rekind(e, ErrorKind::Interrupted, "reading the body failed")
    } else {
        e
    }
}

fn body_stream(res: object_store::GetResult, uri: String) -> ByteStream {
    res.into_stream()
        .map_err(move |e| body_error(e, &uri))
        .boxed()
}

pub(crate) async fn get(s: &Arc<Shared>, key: &str, opts: GetOptions) -> Result<GetResult> {
    let uri = s.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    let path = path_of(key).map_err(ctx)?;
    if let Some(r) = &opts.range {
        r.validate().map_err(ctx)?;
    }
    let part = s.opts.get_part_size as u64;
    let first = match opts.range {
        None => GetRange::Bounded(0..part),
        Some(ByteRange::Bounded { start, end }) => {
            GetRange::Bounded(start..end.min(start.saturating_add(part)))
        }
        Some(ByteRange::From(start)) => GetRange::Bounded(start..start.saturating_add(part)),
        // Unknown start: the whole suffix in one request.
        Some(ByteRange::Suffix(n)) => GetRange::Suffix(n),
    };
    match request(s, &path, Some(first), opts.if_match.clone(), false).await {
        Ok(res) => assemble(s, key, path, &opts, res),
        Err(e) => {
            let err = map_err(e, Operation::Get, &uri);
            match err.kind() {
                // An empty object has no byte 0 (416), and servers differ on suffixes of
                // empty or short objects (416, or a 200 object_store refuses): decide from
                // the object's size instead.
                ErrorKind::RangeNotSatisfiable | ErrorKind::InvalidInput | ErrorKind::Other => {
                    sized_get(s, key, path, &opts).await
                }
                _ => Err(err),
            }
        }
    }
}

/// A read decided by a HEAD: the range resolved against the size by S3's rules, then at most
/// one GET for exactly those bytes.
async fn sized_get(s: &Arc<Shared>, key: &str, path: Path, opts: &GetOptions) -> Result<GetResult> {
    let uri = s.uri(key);
    let ctx = |e: Error| e.context(Operation::Get, uri.clone());
    let head = request(s, &path, None, opts.if_match.clone(), true)
        .await
        .map_err(|e| map_err(e, Operation::Get, &uri))?;
    let meta = meta_of(key, &head.meta, &head.attributes);
    let whole = 0..meta.size;
    let want = match &opts.range {
        None => whole.clone(),
        Some(r) => r.resolve(meta.size).map_err(ctx)?,
    };
    if want.is_empty() {
        return Ok(GetResult {
            meta,
            range: want,
            body: Body::Bytes(Bytes::new()),
            uri: uri.clone(),
        });
    }
    let range = (want != whole).then_some(GetRange::Bounded(want));
    let res = request(s, &path, range, opts.if_match.clone(), false)
        .await
        .map_err(|e| map_err(e, Operation::Get, &uri))?;
    assemble(s, key, path, opts, res)
}

/// The result of a first response: its body alone if it holds everything asked for, else
/// that body followed by the remaining parts.
fn assemble(
    s: &Arc<Shared>,
    key: &str,
    path: Path,
    opts: &GetOptions,
    res: object_store::GetResult,
) -> Result<GetResult> {
    let uri = s.uri(key);
    let meta = meta_of(key, &res.meta, &res.attributes);
    let want = match &opts.range {
        None => 0..meta.size,
        Some(r) => r
            .resolve(meta.size)
            .map_err(|e| e.context(Operation::Get, uri.clone()))?,
    };
    let got = res.range.clone();
    let body = if got == want {
        Body::Stream(body_stream(res, uri.clone()))
    } else if got.start == want.start && got.end < want.end {
        Body::Deferred(Box::new(PartedBody {
            shared: Arc::clone(s),
            path,
            uri: uri.clone(),
            first: body_stream(res, uri.clone()),
            first_len: got.end - got.start,
            rest: got.end..want.end,
            etag: opts.if_match.clone().or_else(|| meta.etag.clone()),
        }))
    } else {
        return Err(Error::other(format!(
            "asked for bytes {want:?}, the server answered with {got:?}"
        ))
        .context(Operation::Get, uri));
    };
    Ok(GetResult {
        meta,
        range: want,
        body,
        uri,
    })
}

/// An object larger than one part: the first response's body, then ranged GETs for the rest.
struct PartedBody {
    shared: Arc<Shared>,
    path: Path,
    uri: String,
    first: ByteStream,
    first_len: u64,
    rest: Range<u64>,
    /// Every further part must come from this version.
    etag: Option<String>,
}

impl fmt::Debug for PartedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartedBody")
            .field("uri", &self.uri)
            .field("first_len", &self.first_len)
            .field("rest", &self.rest)
            .field("etag", &self.etag)
            .finish()
    }
}

impl PartedBody {
    fn len(&self) -> u64 {
        self.first_len + (self.rest.end - self.rest.start)
    }

    /// Every part as one buffer, in order, with `get_concurrency` requests in flight.
    fn parts(self) -> ByteStream {
        let Self {
            shared,
            path,
            uri,
            first,
            first_len,
            rest,
            etag,
        } = self;
        let part = shared.opts.get_part_size as u64;
        let concurrency = shared.opts.get_concurrency;
        let head: BoxFuture<'static, Result<Bytes>> = Box::pin(async move {
            let mut buf = BytesMut::with_capacity(first_len as usize);
            let mut first = first;
            while let Some(chunk) = first.try_next().await? {
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        });
        let tail = (rest.start..rest.end)
            .step_by(part as usize)
            .map(move |start| {
                let end = start.saturating_add(part).min(rest.end);
                let (shared, path, uri, etag) =
                    (Arc::clone(&shared), path.clone(), uri.clone(), etag.clone());
                let fut: BoxFuture<'static, Result<Bytes>> = Box::pin(async move {
                    let res = request(
                        &shared,
                        &path,
                        Some(GetRange::Bounded(start..end)),
                        etag,
                        false,
                    )
                    .await
                    .map_err(|e| map_err(e, Operation::Get, &uri))?;
                    res.bytes().await.map_err(|e| body_error(e, &uri))
                });
                fut
            });
        stream::iter(std::iter::once(head).chain(tail))
            .buffered(concurrency)
            .boxed()
    }
}

#[async_trait]
impl DeferredBody for PartedBody {
    async fn bytes(self: Box<Self>) -> Result<Bytes> {
        let len = usize::try_from(self.len()).map_err(|_| {
            Error::invalid_input(format!("{} bytes do not fit in memory", self.len()))
        })?;
        let mut buf = BytesMut::with_capacity(len);
        let mut parts = self.parts();
        while let Some(p) = parts.try_next().await? {
            buf.extend_from_slice(&p);
        }
        Ok(buf.freeze())
    }

    fn stream(self: Box<Self>) -> ByteStream {
        self.parts()
    }
}
