//! What a loader reads: a [`Dataset`] is an ordered list of samples, known up front (a list
//! of keys or URIs, the records of a TFRecord file) or discovered by a streamed listing (a
//! URI prefix).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use s3dlio_store_core::{
    Error, ErrorKind, ListItem, ListOptions, ObjectStore, ObjectStoreExt, Operation, PutOptions,
    Registry, Result,
};

use crate::fetch::RequestPolicy;

/// How one sample is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// The whole object.
    Object,
    /// One framed TFRecord record at `offset`, `len` bytes with its framing.
    Record { offset: u64, len: u64 },
}

/// One sample of a dataset, before it is read.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Index into the dataset's stores.
    pub store: u32,
    pub key: Arc<str>,
    /// The sample's index in the dataset's own order (listing order, list order, record
    /// number).
    pub index: u64,
    /// Size where known (from a listing or an index); used for the memory bound.
    pub size: Option<u64>,
    pub etag: Option<Arc<str>>,
    pub kind: EntryKind,
}

impl Entry {
    /// Bytes this sample will hold once read, where known.
    pub fn data_size(&self) -> Option<u64> {
        match self.kind {
            EntryKind::Object => self.size,
            EntryKind::Record { len, .. } => Some(len),
        }
    }

    /// Where in the object a record sits.
    pub fn range(&self) -> Option<Range<u64>> {
        match self.kind {
            EntryKind::Object => None,
            EntryKind::Record { offset, len } => Some(offset..offset + len),
        }
    }
}

#[derive(Clone)]
enum Source {
    /// Every object under a prefix, listed page by page (keys ending in `/`, directory
    /// markers, are left out).
    Prefix {
        prefix: String,
        page_size: Option<usize>,
        /// Key of a manifest object caching the listing.
        manifest: Option<String>,
    },
    /// Samples known up front.
    Entries(Arc<Vec<Entry>>),
}

/// An ordered collection of samples in one or more stores.
///
/// | constructor | samples | size known before reading |
/// |---|---|---|
/// | [`from_prefix`](Self::from_prefix), [`from_uri`](Self::from_uri) | every object under a prefix, in listing (lexicographic) order | no: listed as the epoch runs |
/// | [`from_keys`](Self::from_keys), [`from_uris`](Self::from_uris) | the objects given, in the order given | yes |
/// | [`from_tfrecord`](Self::from_tfrecord) | the records of a TFRecord file, by its DALI index | yes |
///
/// A new kind of source (another container format, a manifest object) is one more
/// constructor producing entries; the loader does not change.
#[derive(Clone)]
pub struct Dataset {
    stores: Arc<Vec<Arc<dyn ObjectStore>>>,
    source: Source,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Dataset");
        d.field(
            "stores",
            &self.stores.iter().map(|s| s.base_uri()).collect::<Vec<_>>(),
        );
        match &self.source {
            Source::Prefix { prefix, .. } => d.field("prefix", prefix),
            Source::Entries(e) => d.field("samples", &e.len()),
        };
        d.finish()
    }
}

impl Dataset {
    /// Every object under `prefix` in `store` (a string prefix, as in listings). The
    /// listing is streamed: without shuffle the first batch is read while later pages are
    /// still being listed.
    pub fn from_prefix(store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Self {
        Self {
            stores: Arc::new(vec![store]),
            source: Source::Prefix {
                prefix: prefix.into(),
                page_size: None,
                manifest: None,
            },
        }
    }

    /// Listing page size for a prefix dataset (the backend's default otherwise).
    pub fn with_list_page_size(mut self, n: usize) -> Self {
        if let Source::Prefix { page_size, .. } = &mut self.source {
            *page_size = Some(n.max(1));
        }
        self
    }

    /// Cache the prefix's listing in the manifest object `key` (in the same store): when it
    /// exists, its key list is used and nothing is listed; otherwise the first complete
    /// listing writes it (create-only, so concurrent ranks write it once). A manifest is
    /// never refreshed: delete it when the prefix changes. Format: a line
    /// `s3dlio-manifest 1`, then `<size>\t<key>` per object in listing order.
    pub fn with_manifest(mut self, key: impl Into<String>) -> Self {
        if let Source::Prefix { manifest, .. } = &mut self.source {
            *manifest = Some(key.into());
        }
        self
    }

    /// Every object under a URI prefix such as `s3://bucket/train/` or `file:///data/`.
    pub async fn from_uri(registry: &Registry, uri: &str) -> Result<Self> {
        let (store, prefix) = registry.resolve(uri).await?;
        Ok(Self::from_prefix(store, prefix))
    }

    /// The objects `keys` of `store`, in this order.
    pub fn from_keys<K: Into<String>>(
        store: Arc<dyn ObjectStore>,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        let entries = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| Entry {
                store: 0,
                key: Arc::from(k.into()),
                index: i as u64,
                size: None,
                etag: None,
                kind: EntryKind::Object,
            })
            .collect();
        Self {
            stores: Arc::new(vec![store]),
            source: Source::Entries(Arc::new(entries)),
        }
    }

    /// The objects at `uris`, in this order; they may live in different stores.
    pub async fn from_uris<U: AsRef<str>>(
        registry: &Registry,
        uris: impl IntoIterator<Item = U>,
    ) -> Result<Self> {
        let mut stores: Vec<Arc<dyn ObjectStore>> = Vec::new();
        let mut entries = Vec::new();
        for (i, uri) in uris.into_iter().enumerate() {
            let (store, key) = registry.resolve(uri.as_ref()).await?;
            let idx = match stores.iter().position(|s| Arc::ptr_eq(s, &store)) {
                Some(p) => p,
                None => {
                    stores.push(store);
                    stores.len() - 1
                }
            };
            entries.push(Entry {
                store: idx as u32,
                key: Arc::from(key),
                index: i as u64,
                size: None,
                etag: None,
                kind: EntryKind::Object,
            });
        }
        if stores.is_empty() {
            return Err(Error::invalid_input(
                "an explicit dataset needs at least one URI",
            ));
        }
        Ok(Self {
            stores: Arc::new(stores),
            source: Source::Entries(Arc::new(entries)),
        })
    }

    /// One sample per record of the TFRecord file `key`, located by the DALI index
    /// object `index_key` (`<offset> <size>` per line). Samples are the records' data,
    /// with framing and checksums verified.
    pub async fn from_tfrecord(
        store: Arc<dyn ObjectStore>,
        key: &str,
        index_key: &str,
    ) -> Result<Self> {
        let text = store.get_bytes(index_key).await?;
        let records: Vec<(u64, u64)> = s3dlio_tfrecord_index::read_index(&text[..])
            .map_err(|e| Error::from(e).context(Operation::Parse, store.uri_of(index_key)))?
            .into_iter()
            .map(|e| (e.offset, e.size))
            .collect();
        Ok(Self::from_tfrecord_records(store, key, &records))
    }

    /// One sample per `(offset, size)` record of the TFRecord file `key`.
    pub fn from_tfrecord_records(
        store: Arc<dyn ObjectStore>,
        key: &str,
        records: &[(u64, u64)],
    ) -> Self {
        let key: Arc<str> = Arc::from(key);
        let entries = records
            .iter()
            .enumerate()
            .map(|(i, &(offset, len))| Entry {
                store: 0,
                key: Arc::clone(&key),
                index: i as u64,
                size: Some(len),
                etag: None,
                kind: EntryKind::Record { offset, len },
            })
            .collect();
        Self {
            stores: Arc::new(vec![store]),
            source: Source::Entries(Arc::new(entries)),
        }
    }

    /// Number of samples, where known without listing.
    pub fn len(&self) -> Option<u64> {
        match &self.source {
            Source::Entries(e) => Some(e.len() as u64),
            Source::Prefix { .. } => None,
        }
    }

    /// Whether the dataset is known to be empty (`false` for an unlisted prefix).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Whether the samples are discovered by a streamed listing.
    pub fn is_listed(&self) -> bool {
        matches!(self.source, Source::Prefix { .. })
    }

    /// The samples, when known without listing.
    pub(crate) fn known(&self) -> Option<Arc<Vec<Entry>>> {
        match &self.source {
            Source::Entries(e) => Some(Arc::clone(e)),
            Source::Prefix { .. } => None,
        }
    }

    pub(crate) fn stores(&self) -> &Arc<Vec<Arc<dyn ObjectStore>>> {
        &self.stores
    }

    /// The samples in dataset order, known ones at once, listed ones page by page (each
    /// page request under the loader's timeout and retries).
    pub(crate) fn entries(&self, policy: RequestPolicy) -> BoxStream<'static, Result<Entry>> {
        match &self.source {
            Source::Entries(e) => {
                let e = Arc::clone(e);
                stream::iter((0..e.len()).map(move |i| Ok(e[i].clone()))).boxed()
            }
            Source::Prefix {
                prefix,
                page_size,
                manifest,
            } => {
                let store = Arc::clone(&self.stores[0]);
                let opts = ListOptions {
                    page_size: *page_size,
                    ..ListOptions::recursive()
                };
                let Some(manifest) = manifest.clone() else {
                    return list_entries(store, prefix.clone(), opts, policy);
                };
                let prefix = prefix.clone();
                let uri = store.uri_of(&manifest);
                let load = {
                    let (store, manifest, policy) =
                        (Arc::clone(&store), manifest.clone(), policy.clone());
                    async move {
                        let got = policy
                            .run(Operation::Get, &uri, || store.get_bytes(&manifest))
                            .await;
                        match got {
                            Ok(b) => parse_manifest(&b)
                                .map(Some)
                                .map_err(|e| e.context(Operation::Parse, uri)),
                            Err(e) if e.is_not_found() => Ok(None),
                            Err(e) => Err(e),
                        }
                    }
                };
                stream::once(load)
                    .flat_map(move |r| match r {
                        Ok(Some(entries)) => stream::iter(entries.into_iter().map(Ok)).boxed(),
                        Ok(None) => {
                            let listed = list_entries(
                                Arc::clone(&store),
                                prefix.clone(),
                                opts.clone(),
                                policy.clone(),
                            );
                            save_when_listed(listed, Arc::clone(&store), manifest.clone())
                        }
                        Err(e) => stream::iter([Err(e)]).boxed(),
                    })
                    .boxed()
            }
        }
    }
}

const MANIFEST_HEADER: &str = "s3dlio-manifest 1";

fn parse_manifest(b: &[u8]) -> Result<Vec<Entry>> {
    let text = std::str::from_utf8(b).map_err(|_| Error::invalid_input("manifest is not UTF-8"))?;
    let mut lines = text.split('\n');
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(Error::invalid_input(format!(
            "not a manifest: the first line is not {MANIFEST_HEADER:?}"
        )));
    }
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once('\t')
            .and_then(|(size, key)| Some((size.parse::<u64>().ok()?, key)));
        let Some((size, key)) = parsed else {
            return Err(Error::invalid_input(format!(
                "manifest line {}: {line:?} is not `<size>\\t<key>`",
                n + 2
            )));
        };
        out.push(Entry {
            store: 0,
            key: Arc::from(key),
            index: out.len() as u64,
            size: Some(size),
            etag: None,
            kind: EntryKind::Object,
        });
    }
    Ok(out)
}

/// Pass a listing through; once it completed, write it as the manifest `key`
/// (create-only: an existing manifest is left as it is).
fn save_when_listed(
    listed: BoxStream<'static, Result<Entry>>,
    store: Arc<dyn ObjectStore>,
    key: String,
) -> BoxStream<'static, Result<Entry>> {
    let text = format!("{MANIFEST_HEADER}\n");
    stream::unfold(
        (Some(listed), text, store, key),
        |(listed, mut text, store, key)| async move {
            let mut listed = listed?;
            match listed.next().await {
                Some(Ok(e)) => {
                    text.push_str(&format!("{}\t{}\n", e.size.unwrap_or(0), e.key));
                    Some((Ok(e), (Some(listed), text, store, key)))
                }
                Some(Err(e)) => Some((Err(e), (None, text, store, key))),
                None => {
                    let uri = store.uri_of(&key);
                    let bad_key = text.lines().skip(1).any(|l| !l.contains('\t'));
                    let res = if bad_key {
                        Err(Error::invalid_input(
                            "a key holds a newline; it cannot be written to a manifest",
                        )
                        .context(Operation::Put, uri))
                    } else {
                        match store.put(&key, text.into(), PutOptions::create()).await {
                            Ok(_) => Ok(()),
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                            Err(e) => Err(e.context(Operation::Put, uri)),
                        }
                    };
                    match res {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), (None, String::new(), store, key))),
                    }
                }
            }
        },
    )
    .boxed()
}

struct ListState {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    opts: ListOptions,
    policy: RequestPolicy,
    token: Option<String>,
    done: bool,
    index: u64,
}

fn list_entries(
    store: Arc<dyn ObjectStore>,
    prefix: String,
    opts: ListOptions,
    policy: RequestPolicy,
) -> BoxStream<'static, Result<Entry>> {
    let st = ListState {
        store,
        prefix,
        opts,
        policy,
        token: None,
        done: false,
        index: 0,
    };
    stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let uri = st.store.uri_of(&st.prefix);
        let page = st
            .policy
            .run(Operation::List, &uri, || {
                st.store.list_page(&st.prefix, &st.opts, st.token.clone())
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                st.done = true;
                return Some((vec![Err(e)], st));
            }
        };
        st.done = page.next.is_none();
        st.token = page.next;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            if let ListItem::Object(m) = item {
                if m.key.ends_with('/') {
                    continue;
                }
                out.push(Ok(Entry {
                    store: 0,
                    key: Arc::from(m.key),
                    index: st.index,
                    size: Some(m.size),
                    etag: m.etag.map(Arc::from),
                    kind: EntryKind::Object,
                }));
                st.index += 1;
            }
        }
        Some((out, st))
    })
    .flat_map(stream::iter)
    .boxed()
}
