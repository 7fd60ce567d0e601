//! GETs through `object_store`, with the native backend's strategy so the two compare like
//! for like: the first request asks for the first `get_part_size` bytes of the range, so a
//! small object costs one request and its answer carries the size and ETag; the rest of a
//! larger object is read with `get_concurrency` ranged GETs pinned to that ETag (If-Match),
//! so a concurrent overwrite fails the read instead of mixing two versions.

use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, GetRange, ObjectStore as _};
use s3dlio_store_core::ranged::{self, PartBody, PartSource, RangedBody};
use s3dlio_store_core::{
    Body, ByteRange, ByteStream, Error, ErrorKind, GetOptions, GetResult, ObjectMeta, Operation,
    Result,
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

/// The result of a first response: its body alone if it holds everything asked for and is
/// small, else a [`RangedBody`] that reads the rest with ranged GETs pinned to the first
/// answer's ETag, into one pooled buffer or streamed in order (as the native backend does).
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
    if got.start != want.start || got.end > want.end {
        return Err(Error::other(format!(
            "asked for bytes {want:?}, the server answered with {got:?}"
        ))
        .context(Operation::Get, uri));
    }
    let len = want.end - want.start;
    let first = body_stream(res, uri.clone());
    if got == want && !s.pool.pools(usize::try_from(len).unwrap_or(usize::MAX)) {
        return Ok(GetResult {
            meta,
            range: want,
            body: Body::Stream(first),
            uri,
        });
    }
    let source = ObjectParts {
        shared: Arc::clone(s),
        path,
        uri: uri.clone(),
        etag: opts.if_match.clone().or_else(|| meta.etag.clone()),
    };
    let body = RangedBody::new(
        Arc::new(source),
        uri.clone(),
        first,
        got.end,
        want.clone(),
        s.opts.get_part_size as u64,
        s.opts.get_concurrency,
    )
    .with_attempts(s.opts.max_attempts)
    .with_pool(Arc::clone(&s.pool));
    Ok(GetResult {
        meta,
        range: want,
        body: Body::Deferred(Box::new(body)),
        uri,
    })
}

/// Ranged GETs of one object, pinned to the ETag the read began with.
struct ObjectParts {
    shared: Arc<Shared>,
    path: Path,
    uri: String,
    /// Every further part must come from this version.
    etag: Option<String>,
}

impl PartSource for ObjectParts {
    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, Result<PartBody>> {
        let (shared, path, uri, etag) = (
            Arc::clone(&self.shared),
            self.path.clone(),
            self.uri.clone(),
            self.etag.clone(),
        );
        Box::pin(async move {
            let res = request(
                &shared,
                &path,
                Some(GetRange::Bounded(range.clone())),
                etag,
                false,
            )
            .await
            .map_err(|e| ranged::part_error(map_err(e, Operation::Get, &uri), &uri))?;
            ranged::check_part(&range, &res.range, &uri)?;
            Ok(PartBody::Stream(body_stream(res, uri)))
        })
    }
}
