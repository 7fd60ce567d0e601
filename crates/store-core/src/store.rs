//! The `ObjectStore` trait every backend implements, the streaming writer trait, and the
//! convenience calls built on them.

use std::fmt::Debug;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::types::{
    ByteRange, Capabilities, CopyOptions, GetOptions, ListItem, ListOptions, ListPage, ObjectMeta,
    PutOptions, PutResult,
};

/// A stream of byte chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// The payload of a read: whole, when the backend had it in one piece; a stream; or
/// deferred, when the backend reads it differently depending on how the caller consumes it
/// (all at once into one buffer, or chunk by chunk).
pub enum Body {
    Bytes(Bytes),
    Stream(ByteStream),
    Deferred(Box<dyn DeferredBody>),
}

impl Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Body::Stream"),
            Self::Deferred(d) => write!(f, "Body::Deferred({d:?})"),
        }
    }
}

impl Body {
    /// The body as a stream of chunks, however it is held.
    pub fn into_raw_stream(self) -> ByteStream {
        match self {
            Self::Bytes(b) => stream::once(async move { Ok(b) }).boxed(),
            Self::Stream(s) => s,
            Self::Deferred(d) => d.stream(),
        }
    }
}

/// A body not read yet. A local file can be read whole into one buffer with one positional
/// read, or in small chunks that stay in the CPU cache; an S3 object whole with concurrent
/// ranged GETs into one buffer, or streamed in order. The caller's choice of
/// [`GetResult::bytes`] or [`GetResult::into_stream`] picks the way.
#[async_trait]
pub trait DeferredBody: Send + Debug {
    /// Read everything into one buffer.
    async fn bytes(self: Box<Self>) -> Result<Bytes>;
    /// Read it as a stream of chunks, in order.
    fn stream(self: Box<Self>) -> ByteStream;
    /// Append every byte to `buf`, straight into its spare capacity where the backend can
    /// (a local file: one positional read, no staging buffer). `expected` is the body's
    /// length. On error `buf` is cut back to the length it had. The default streams the
    /// chunks in.
    async fn read_into(self: Box<Self>, buf: &mut BytesMut, expected: u64) -> Result<()> {
        extend_from_stream(self.stream(), buf, expected).await
    }
}

/// Append a stream's chunks to `buf`, failing (with `buf` cut back) unless exactly
/// `expected` bytes come.
pub(crate) async fn extend_from_stream(
    mut s: ByteStream,
    buf: &mut BytesMut,
    expected: u64,
) -> Result<()> {
    let start = buf.len();
    let cap = usize::try_from(expected)
        .map_err(|_| Error::invalid_input(format!("{expected} bytes do not fit in memory")))?;
    buf.reserve(cap);
    let mut got = 0u64;
    let r = async {
        while let Some(chunk) = s.try_next().await? {
            got += chunk.len() as u64;
            if got > expected {
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        if got != expected {
            return Err(length_mismatch(got, expected));
        }
        Ok(())
    }
    .await;
    if r.is_err() {
        buf.truncate(start);
    }
    r
}

/// The answer to a get: the object's metadata, the byte range returned, and the bytes.
#[derive(Debug)]
pub struct GetResult {
    pub meta: ObjectMeta,
    /// The bytes of the object this body holds (`0..size` for a whole read).
    pub range: Range<u64>,
    pub body: Body,
    /// The URI, for error messages.
    pub uri: String,
}

impl GetResult {
    /// Number of bytes the body will deliver.
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Collect the body into one buffer, allocated once at its final size. A body that ends
    /// early or runs long is an error, never a short result.
    pub async fn bytes(self) -> Result<Bytes> {
        let expected = self.len();
        let uri = self.uri;
        match self.body {
            Body::Bytes(b) => {
                check_length(b.len() as u64, expected, &uri)?;
                Ok(b)
            }
            Body::Deferred(d) => {
                let b = d.bytes().await?;
                check_length(b.len() as u64, expected, &uri)?;
                Ok(b)
            }
            Body::Stream(mut s) => {
                let cap = usize::try_from(expected).map_err(|_| {
                    Error::invalid_input(format!("{expected} bytes do not fit in memory"))
                })?;
                // A single-chunk body is returned as is; more chunks go into one buffer
                // allocated at the final size.
                let mut first: Option<Bytes> = None;
                let mut buf: Option<BytesMut> = None;
                let mut got = 0u64;
                while let Some(chunk) = s.try_next().await? {
                    got += chunk.len() as u64;
                    if got > expected {
                        return Err(length_error(got, expected, &uri));
                    }
                    if let Some(b) = buf.as_mut() {
                        b.extend_from_slice(&chunk);
                    } else if let Some(f) = first.take() {
                        let mut b = BytesMut::with_capacity(cap);
                        b.extend_from_slice(&f);
                        b.extend_from_slice(&chunk);
                        buf = Some(b);
                    } else {
                        first = Some(chunk);
                    }
                }
                check_length(got, expected, &uri)?;
                Ok(match buf {
                    Some(b) => b.freeze(),
                    None => first.unwrap_or_default(),
                })
            }
        }
    }

    /// Append the body to `buf`, exactly [`len`](Self::len) bytes, read straight into its
    /// spare capacity where the backend can (a local file with one positional read): for
    /// callers that own the destination, such as one piece of a larger buffer. On error
    /// `buf` is cut back to the length it had.
    pub async fn read_into(self, buf: &mut BytesMut) -> Result<()> {
        let expected = self.len();
        let uri = self.uri;
        let r = match self.body {
            Body::Bytes(b) => check_length(b.len() as u64, expected, &uri).map(|()| {
                buf.extend_from_slice(&b);
            }),
            Body::Deferred(d) => d.read_into(buf, expected).await,
            Body::Stream(s) => extend_from_stream(s, buf, expected).await,
        };
        r.map_err(|e| match e.uri() {
            None => e.context(Operation::Get, uri),
            Some(_) => e,
        })
    }

    /// The body as a stream that fails if it delivers fewer or more bytes than announced.
    pub fn into_stream(self) -> ByteStream {
        let expected = self.len();
        let uri = self.uri;
        match self.body {
            Body::Bytes(b) => {
                if let Err(e) = check_length(b.len() as u64, expected, &uri) {
                    return stream::once(async move { Err(e) }).boxed();
                }
                stream::once(async move { Ok(b) }).boxed()
            }
            body => {
                let inner = body.into_raw_stream();
                CheckedStream {
                    inner,
                    expected,
                    got: 0,
                    uri,
                    done: false,
                }
                .boxed()
            }
        }
    }
}

fn length_mismatch(got: u64, expected: u64) -> Error {
    let what = if got < expected {
        "ended early"
    } else {
        "ran long"
    };
    Error::new(
        ErrorKind::Interrupted,
        format!("body {what}: got {got} of {expected} bytes"),
    )
}

fn length_error(got: u64, expected: u64, uri: &str) -> Error {
    length_mismatch(got, expected).context(Operation::Get, uri)
}

fn check_length(got: u64, expected: u64, uri: &str) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(length_error(got, expected, uri))
    }
}

struct CheckedStream {
    inner: ByteStream,
    expected: u64,
    got: u64,
    uri: String,
    done: bool,
}

impl Stream for CheckedStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.got += chunk.len() as u64;
                if self.got > self.expected {
                    self.done = true;
                    return Poll::Ready(Some(Err(length_error(
                        self.got,
                        self.expected,
                        &self.uri,
                    ))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                match check_length(self.got, self.expected, &self.uri) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streaming (multipart) write of one object.
///
/// Nothing is visible under the key until [`complete`](Self::complete) succeeds; after
/// [`abort`](Self::abort), or if the writer is dropped before completing, nothing is left
/// behind (backends clean up temporary files or abort the multipart upload).
#[async_trait]
pub trait ObjectWriter: Send + Debug {
    /// Append bytes. Backends buffer to their part size; callers may pass any chunk size.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Make the object visible, atomically, with everything written so far.
    async fn complete(self: Box<Self>) -> Result<PutResult>;
    /// Discard everything written; the key is left as it was.
    async fn abort(self: Box<Self>) -> Result<()>;
    /// Bytes accepted by `write` so far.
    fn bytes_written(&self) -> u64;
}

/// One object store: a bucket, a container, or a directory tree.
///
/// Keys are relative to the store, `/`-separated, without a leading `/`. Every method takes
/// an options struct so that new options do not break callers.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug + 'static {
    /// The URI this store is rooted at, e.g. `s3://bucket/` or `file:///`; a key appended to
    /// it gives the object's URI.
    fn base_uri(&self) -> &str;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Read an object, or part of one.
    async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult>;

    /// Write a whole object in one request.
    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult>;

    /// Start a streaming write; see [`ObjectWriter`].
    async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>>;

    /// An object's metadata.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// One page of the keys starting with `prefix`, in lexicographic byte order.
    /// `token` is the `next` of the previous page.
    async fn list_page(
        &self,
        prefix: &str,
        opts: &ListOptions,
        token: Option<String>,
    ) -> Result<ListPage>;

    /// Delete an object. Deleting a missing key succeeds, as in S3.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The URI of `key` in this store.
    fn uri_of(&self, key: &str) -> String {
        format!("{}{key}", self.base_uri())
    }

    /// Every key starting with `prefix`, page by page, as a stream.
    fn list(&self, prefix: &str, opts: ListOptions) -> BoxStream<'_, Result<ListItem>> {
        let prefix = prefix.to_owned();
        paged(move |token| {
            let (prefix, opts) = (prefix.clone(), opts.clone());
            async move { self.list_page(&prefix, &opts, token).await }
        })
    }

    /// Delete many keys; one result per key, in the order given.
    async fn delete_many(&self, keys: Vec<String>) -> Result<Vec<Result<()>>> {
        Ok(stream::iter(keys)
            .map(|k| async move { self.delete(&k).await })
            .buffered(32)
            .collect()
            .await)
    }

    /// Server-side copy within this store.
    async fn copy(&self, from: &str, to: &str, opts: CopyOptions) -> Result<PutResult> {
        let _ = (to, opts);
        Err(
            Error::not_supported(format!("{} cannot copy objects", self.base_uri()))
                .context(Operation::Copy, self.uri_of(from)),
        )
    }
}

/// Convenience calls over any [`ObjectStore`].
#[async_trait]
pub trait ObjectStoreExt: ObjectStore {
    /// The whole object.
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        self.get(key, GetOptions::default()).await?.bytes().await
    }

    /// Part of an object.
    async fn get_range(&self, key: &str, range: ByteRange) -> Result<Bytes> {
        self.get(
            key,
            GetOptions {
                range: Some(range),
                if_match: None,
            },
        )
        .await?
        .bytes()
        .await
    }

    /// Overwrite an object with `data`.
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<PutResult> {
        self.put(key, data, PutOptions::default()).await
    }

    /// Whether the key exists.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object under `prefix` (recursive), collected.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list(prefix, ListOptions::recursive())
            .try_filter_map(|item| async move {
                Ok(match item {
                    ListItem::Object(m) => Some(m),
                    ListItem::Prefix(_) => None,
                })
            })
            .try_collect()
            .await
    }

    /// Write a stream of chunks through a writer; on any error the write is aborted.
    async fn put_stream(
        &self,
        key: &str,
        mut data: ByteStream,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let mut writer = self.writer(key, opts).await?;
        loop {
            match data.try_next().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = writer.write(chunk).await {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                }
                Ok(None) => return writer.complete().await,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
    }

    /// Delete every object under `prefix`; returns how many were deleted.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let keys: Vec<String> = self
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        let mut deleted = 0;
        for chunk in keys.chunks(1000) {
            for r in self.delete_many(chunk.to_vec()).await? {
                r?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

/// A `'static` listing stream over a shared store (for spawning, or holding in a struct).
pub fn list_stream(
    store: Arc<dyn ObjectStore>,
    prefix: impl Into<String>,
    opts: ListOptions,
) -> BoxStream<'static, Result<ListItem>> {
    let prefix = prefix.into();
    paged(move |token| {
        let (store, prefix, opts) = (Arc::clone(&store), prefix.clone(), opts.clone());
        async move { store.list_page(&prefix, &opts, token).await }
    })
}

/// Chain pages fetched by `fetch(token)` into one stream of entries.
fn paged<'a, F, Fut>(fetch: F) -> BoxStream<'a, Result<ListItem>>
where
    F: Fn(Option<String>) -> Fut + Send + 'a,
    Fut: std::future::Future<Output = Result<ListPage>> + Send + 'a,
{
    stream::try_unfold((fetch, Some(None)), |(fetch, state)| async move {
        let Some(token) = state else {
            return Ok::<_, Error>(None);
        };
        let page = fetch(token).await?;
        let next = page.next.map(Some);
        Ok(Some((
            stream::iter(page.items.into_iter().map(Ok)),
            (fetch, next),
        )))
    })
    .try_flatten()
    .boxed()
}

/// Longest key any backend accepts (S3's limit, in bytes).
pub const MAX_KEY_LEN: usize = 1024;

/// Reject keys no backend can store: empty, too long, or holding a NUL byte.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid_input("empty object key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid_input(format!(
            "object key is {} bytes; the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(Error::invalid_input("object key contains a NUL byte"));
    }
    Ok(())
}

/// Where a listing should resume after `after`. Past a common prefix (`a/` in a delimited
/// listing) it skips every key under it: the next candidate is `a0` (`'0'` follows `'/'`).
pub fn resume_point(after: &str, recursive: bool) -> ResumePoint<'_> {
    match after.strip_suffix('/') {
        Some(stem) if !recursive => ResumePoint::AtOrAfter(format!("{stem}0")),
        _ => ResumePoint::After(after),
    }
}

/// See [`resume_point`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumePoint<'a> {
    /// Keys strictly greater than this.
    After(&'a str),
    /// Keys greater than or equal to this.
    AtOrAfter(String),
}

impl ResumePoint<'_> {
    /// Whether `key` lies at or past the resume point.
    pub fn admits(&self, key: &str) -> bool {
        match self {
            Self::After(a) => key > *a,
            Self::AtOrAfter(a) => key >= a.as_str(),
        }
    }
}

/// The listing token to resume after the last item of a page, and the
/// start-after of the options, whichever is later.
pub fn effective_start<'a>(
    opts: &'a ListOptions,
    token: Option<&'a str>,
) -> Option<ResumePoint<'a>> {
    let after = match (opts.start_after.as_deref(), token) {
        (Some(a), Some(t)) => Some(if t > a { t } else { a }),
        (a, t) => a.or(t),
    };
    after.map(|a| resume_point(a, opts.recursive))
}

/// Fold `key` (known to start with `prefix`) into the common prefix of a delimited listing,
/// if it lies deeper than one level.
pub fn common_prefix<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = &key[prefix.len()..];
    rest.find('/').map(|i| &key[..prefix.len() + i + 1])
}

/// Cut one page out of a sorted sequence of listing entries: applies the resume point
/// (checked against raw keys, before folding), folds deeper keys into common prefixes for
/// delimited listings, drops duplicates, and sets `next` when more entries remain.
///
/// Backends that can produce their entries in key order (in-memory maps, directory walks)
/// share this so that paging, folding and resuming behave identically everywhere.
pub fn paginate(
    items: impl IntoIterator<Item = ListItem>,
    prefix: &str,
    opts: &ListOptions,
    token: Option<&str>,
) -> ListPage {
    let start = effective_start(opts, token);
    let limit = opts.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let mut out: Vec<ListItem> = Vec::new();
    for item in items {
        if !item.name().starts_with(prefix) {
            continue;
        }
        if let Some(s) = &start {
            if !s.admits(item.name()) {
                continue;
            }
        }
        let item = match item {
            ListItem::Object(m) if !opts.recursive => match common_prefix(prefix, &m.key) {
                Some(p) => ListItem::Prefix(p.to_owned()),
                None => ListItem::Object(m),
            },
            other => other,
        };
        if out.last().is_some_and(|last| last.name() == item.name()) {
            continue;
        }
        if out.len() == limit {
            let next = out.last().map(|l| l.name().to_owned());
            return ListPage { items: out, next };
        }
        out.push(item);
    }
    ListPage {
        items: out,
        next: None,
    }
}

/// Entries per listing page when the caller does not say (S3's maximum).
pub const DEFAULT_PAGE_SIZE: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A deferred body that delivers `have` bytes of a promised range.
    #[derive(Debug)]
    struct Short(usize);

    #[async_trait]
    impl DeferredBody for Short {
        async fn bytes(self: Box<Self>) -> Result<Bytes> {
            Ok(Bytes::from(vec![1u8; self.0]))
        }
        fn stream(self: Box<Self>) -> ByteStream {
            let n = self.0;
            stream::iter([
                Ok(Bytes::from(vec![1u8; n / 2])),
                Ok(Bytes::from(vec![1u8; n - n / 2])),
            ])
            .boxed()
        }
    }

    fn result(have: usize, want: u64) -> GetResult {
        GetResult {
            meta: ObjectMeta::new("k", want),
            range: 0..want,
            body: Body::Deferred(Box::new(Short(have))),
            uri: "mem:///k".into(),
        }
    }

    #[tokio::test]
    async fn deferred_bodies_are_length_checked_both_ways() {
        assert_eq!(result(10, 10).bytes().await.unwrap().len(), 10);
        let chunks: Vec<_> = result(10, 10).into_stream().collect().await;
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.is_ok()));

        let e = result(7, 10).bytes().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert!(e.to_string().contains("got 7 of 10 bytes"), "{e}");
        let last = result(7, 10)
            .into_stream()
            .collect::<Vec<_>>()
            .await
            .pop()
            .unwrap();
        assert_eq!(last.unwrap_err().kind(), ErrorKind::Interrupted);
        let long = result(12, 10).bytes().await.unwrap_err();
        assert!(long.to_string().contains("ran long"), "{long}");
    }

    #[tokio::test]
    async fn read_into_appends_exactly_the_body_or_leaves_the_buffer_as_it_was() {
        let mut buf = BytesMut::from(&b"head"[..]);
        result(10, 10).read_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..], &[&b"head"[..], &[1u8; 10][..]].concat()[..]);
        for (have, want) in [(7, 10), (12, 10)] {
            let e = result(have, want).read_into(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
            assert_eq!(e.uri(), Some("mem:///k"));
            assert_eq!(buf.len(), 14, "cut back after {have} of {want}");
        }
        let whole = GetResult {
            meta: ObjectMeta::new("k", 3),
            range: 0..3,
            body: Body::Bytes(Bytes::from_static(b"xyz")),
            uri: "mem:///k".into(),
        };
        whole.read_into(&mut buf).await.unwrap();
        assert!(buf.ends_with(b"xyz") && buf.len() == 17);
    }

    #[test]
    fn append_with_takes_only_the_prefix_it_was_given() {
        use crate::pool::append_with;
        let mut buf = BytesMut::from(&b"ab"[..]);
        let n = append_with::<()>(&mut buf, 8, |room| {
            assert_eq!(room.len(), 8);
            let init: &mut [u8] = room[..3].write_copy_of_slice(b"cde");
            Ok(init)
        })
        .unwrap();
        assert_eq!((n, &buf[..]), (3, &b"abcde"[..]));
        assert_eq!(append_with(&mut buf, 4, |_| Err("no")), Err("no"));
        assert_eq!(&buf[..], b"abcde");
        let elsewhere = std::panic::catch_unwind(|| {
            let mut buf = BytesMut::new();
            // Not the room given: must not be taken as initialised bytes of `buf`.
            let _ = append_with::<()>(&mut buf, 4, |_| {
                Ok(Box::leak(vec![0u8; 2].into_boxed_slice()))
            });
        });
        assert!(elsewhere.is_err());
    }

    #[tokio::test]
    async fn collecting_a_stream_body_reassembles_chunks() {
        let parts = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cde")),
        ];
        let r = GetResult {
            meta: ObjectMeta::new("k", 5),
            range: 0..5,
            body: Body::Stream(stream::iter(parts).boxed()),
            uri: "mem:///k".into(),
        };
        assert_eq!(r.bytes().await.unwrap(), "abcde");
    }

    #[test]
    fn resume_points_skip_whole_common_prefixes() {
        assert_eq!(
            resume_point("a/", false),
            ResumePoint::AtOrAfter("a0".into())
        );
        assert_eq!(resume_point("a/", true), ResumePoint::After("a/"));
        assert!(!resume_point("a/", false).admits("a/zzz"));
        assert!(resume_point("a/", false).admits("a0"));
        assert_eq!(common_prefix("p/", "p/a/b"), Some("p/a/"));
        assert_eq!(common_prefix("p/", "p/a"), None);
    }
}
