//! Records by number through ranged GETs, neighbouring ranges coalesced.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use s3dlio_store_core::{ByteRange, GetOptions, ObjectStore, Registry};

use crate::error::{Error, FormatError, FormatErrorKind, Result};
use crate::format::{decode_record, IndexEntry};

/// How [`RecordReader`] turns records into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Records whose ranges are at most this many bytes apart share one GET (the bytes in
    /// between are read and dropped). 0: only adjacent records share.
    pub max_gap: u64,
    /// No coalesced GET grows past this many bytes (a single larger record is still one
    /// GET).
    pub max_request: u64,
    /// GETs in flight for one batch.
    pub concurrency: usize,
    /// Check each record's data CRC (its length CRC is always checked).
    pub verify: bool,
}

impl Default for FetchOptions {
    /// 256 KiB gap, 64 MiB requests, 8 in flight, data CRCs checked.
    fn default() -> Self {
        Self {
            max_gap: 256 << 10,
            max_request: 64 << 20,
            concurrency: 8,
            verify: true,
        }
    }
}

/// One GET of a plan: a byte range and the records in it (their positions in the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub range: Range<u64>,
    /// `(position in the request, record number)`, in file order.
    pub members: Vec<(usize, usize)>,
}

/// Reads records of one TFRecord object by number, given its index.
#[derive(Debug, Clone)]
pub struct RecordReader {
    store: Arc<dyn ObjectStore>,
    key: String,
    index: Arc<[IndexEntry]>,
    opts: FetchOptions,
}

impl RecordReader {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        key: impl Into<String>,
        index: impl Into<Arc<[IndexEntry]>>,
    ) -> Self {
        Self {
            store,
            key: key.into(),
            index: index.into(),
            opts: FetchOptions::default(),
        }
    }

    /// The reader for `uri` in any store `registry` knows.
    pub async fn open(
        registry: &Registry,
        uri: &str,
        index: impl Into<Arc<[IndexEntry]>>,
    ) -> Result<Self> {
        let (store, key) = registry.resolve(uri).await?;
        Ok(Self::new(store, key, index))
    }

    pub fn with_options(mut self, opts: FetchOptions) -> Self {
        self.opts = opts;
        self
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Records in the index.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    fn entry(&self, i: usize) -> Result<IndexEntry> {
        self.index.get(i).copied().ok_or_else(|| {
            Error::InvalidInput(format!(
                "record {i} of {}: the index has {} records",
                self.store.uri_of(&self.key),
                self.index.len()
            ))
        })
    }

    /// The GETs that fetching `ids` takes: records sorted by offset, neighbours within
    /// `max_gap` merged while the request stays within `max_request`.
    pub fn plan(&self, ids: &[usize]) -> Result<Vec<Span>> {
        let mut order = Vec::with_capacity(ids.len());
        for (pos, &i) in ids.iter().enumerate() {
            order.push((self.entry(i)?, pos, i));
        }
        order.sort_unstable_by_key(|&(e, pos, _)| (e.offset, pos));
        let mut spans: Vec<Span> = Vec::new();
        for (e, pos, i) in order {
            if let Some(s) = spans.last_mut() {
                let joins = e.offset <= s.range.end.saturating_add(self.opts.max_gap)
                    && e.end().max(s.range.end) - s.range.start <= self.opts.max_request;
                if joins {
                    s.range.end = s.range.end.max(e.end());
                    s.members.push((pos, i));
                    continue;
                }
            }
            spans.push(Span {
                range: e.offset..e.end(),
                members: vec![(pos, i)],
            });
        }
        Ok(spans)
    }

    /// Record `i`'s data (one ranged GET).
    pub async fn record(&self, i: usize) -> Result<Bytes> {
        Ok(self.records(&[i]).await?.pop().expect("one record asked"))
    }

    /// The data of records `ids`, in the order asked (a number may repeat), with the GETs
    /// of [`plan`](Self::plan), `concurrency` at a time. Record data are slices of the
    /// fetched ranges, not copies.
    pub async fn records(&self, ids: &[usize]) -> Result<Vec<Bytes>> {
        let spans = self.plan(ids)?;
        let mut out = vec![Bytes::new(); ids.len()];
        let mut fetched = stream::iter(spans)
            .map(|s| async move { self.fetch_span(s).await })
            .buffer_unordered(self.opts.concurrency.max(1));
        while let Some(done) = fetched.try_next().await? {
            for (pos, data) in done {
                out[pos] = data;
            }
        }
        Ok(out)
    }

    async fn fetch_span(&self, s: Span) -> Result<Vec<(usize, Bytes)>> {
        let uri = self.store.uri_of(&self.key);
        let range = ByteRange::bounded(s.range.start, s.range.end)?;
        let got = self
            .store
            .get(&self.key, GetOptions::range(range))
            .await?
            .bytes()
            .await?;
        let want = s.range.end - s.range.start;
        if got.len() as u64 != want {
            let (_, first) = s.members[0];
            return Err(FormatError {
                kind: FormatErrorKind::Truncated,
                offset: s.range.start,
                record: first as u64,
                detail: format!(
                    "the object has {} of the {want} bytes the index puts at {}..{} (in {uri}; \
                     is the index for this object?)",
                    got.len(),
                    s.range.start,
                    s.range.end
                ),
            }
            .into());
        }
        s.members
            .iter()
            .map(|&(pos, i)| {
                let e = self.index[i];
                let at = (e.offset - s.range.start) as usize;
                let framed = got.slice(at..at + e.size as usize);
                decode_record(&framed, e.offset, i as u64, self.opts.verify)
                    .map(|d| (pos, d))
                    .map_err(|f| Error::from(f).within(&uri))
            })
            .collect()
    }

    /// Batches of `batch` records in the order `ids` (from [`crate::epoch_order`], say),
    /// the next `prefetch` batches fetched while one is consumed.
    pub fn batches<'a>(
        &'a self,
        ids: &'a [usize],
        batch: usize,
        prefetch: usize,
    ) -> impl Stream<Item = Result<Vec<Bytes>>> + 'a {
        stream::iter(ids.chunks(batch.max(1)))
            .map(move |c| self.records(c))
            .buffered(prefetch.max(1))
    }
}
