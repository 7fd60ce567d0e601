//! The conformance suite: one set of cases, written once, that every backend runs.
//!
//! A backend's test file calls [`conformance_suite!`](crate::conformance_suite) with an async
//! factory that returns a [`Fixture`]: a store plus a fresh key prefix for each case. The
//! macro makes one `#[test]` per case, so failures name the case. Cases that need an optional
//! capability check, on backends without it, that the operation fails at once with
//! `NotSupported` instead of being skipped.
//!
//! ```no_run
//! use std::sync::Arc;
//! use s3dlio_store_core::conformance::Fixture;
//! use s3dlio_store_core::MemoryStore;
//!
//! async fn fixture(case: &'static str) -> Fixture {
//!     Fixture::new(Arc::new(MemoryStore::new()), format!("conformance/{case}/"))
//! }
//! s3dlio_store_core::conformance_suite!(fixture);
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::error::ErrorKind;
use crate::store::{ObjectStore, ObjectStoreExt};
use crate::types::{
    ByteRange, CopyOptions, GetOptions, ListItem, ListOptions, PutMode, PutOptions,
};

/// A known deviation of one server from S3's semantics. A fixture that declares one
/// skips only the checks it affects, printing the reason; the rest of the case still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Common prefixes do not come in byte order across pages (e.g. `dir/` before `dir-x/`
    /// when a page holds one entry). Within a page the backend sorts them.
    DelimitedPagesOutOfOrder,
    /// Create-only writes (`If-None-Match: *`) that race on one key may both succeed: the
    /// server checks the condition, but not atomically with the write.
    CreateOnlyRaces,
}

/// A store and the key prefix one case may use (unique per case, ending in `/`).
pub struct Fixture {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
    /// Kept alive for the case (a temporary directory, a server handle).
    pub guard: Option<Box<dyn Any + Send>>,
    /// Known server deviations, each with its reason.
    pub quirks: Vec<(Quirk, &'static str)>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Fixture {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self {
            store,
            prefix,
            guard: None,
            quirks: Vec::new(),
        }
    }

    /// Declare a known deviation of this server, with the reason it is accepted.
    pub fn with_quirk(mut self, quirk: Quirk, reason: &'static str) -> Self {
        self.quirks.push((quirk, reason));
        self
    }

    /// Whether `quirk` applies; prints the reason when it does, so skipped checks show.
    pub fn skips(&self, quirk: Quirk, check: &str) -> bool {
        match self.quirks.iter().find(|(q, _)| *q == quirk) {
            Some((_, reason)) => {
                eprintln!(
                    "conformance: skipping '{check}' for {}: {reason}",
                    self.store.base_uri()
                );
                true
            }
            None => false,
        }
    }

    pub fn with_guard(mut self, guard: impl Any + Send) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// The full key of `name` inside this case's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Deterministic, incompressible bytes: `len` bytes from `seed`.
pub fn pattern(seed: u64, len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    Bytes::from(out)
}

/// Assert two payloads are equal without printing megabytes when they are not.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes, want {}; first difference at {}",
        got.len(),
        want.len(),
        first.map_or("the end of the shorter".to_owned(), |i| format!("byte {i}"))
    );
}

/// The kind of a failed result, or a panic naming what unexpectedly succeeded.
#[track_caller]
fn err_kind<T>(r: crate::Result<T>, what: &str) -> ErrorKind {
    match r {
        Ok(_) => panic!("{what}: succeeded, but should have failed"),
        Err(e) => e.kind(),
    }
}

/// Every listed name under `prefix`.
async fn names(store: &dyn ObjectStore, prefix: &str, opts: ListOptions) -> Vec<String> {
    store
        .list(prefix, opts)
        .map_ok(|i| match i {
            ListItem::Object(m) => m.key,
            ListItem::Prefix(p) => p,
        })
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing {prefix}: {e}"))
}

/// Put many small objects with bounded concurrency.
async fn put_all(store: &dyn ObjectStore, keys: &[String]) {
    futures::stream::iter(keys.iter().cloned())
        .map(|k| async move {
            store
                .put_bytes(&k, Bytes::from(k.clone().into_bytes()))
                .await
                .unwrap_or_else(|e| panic!("put {k}: {e}"))
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// Sizes every backend must round-trip exactly.
pub const ROUND_TRIP_SIZES: [usize; 4] = [0, 1, 5 * 1024 * 1024 + 1, 64 * 1024 * 1024];

/// Whole-object round trips through `put`, a streaming writer and `head`.
pub async fn round_trip_sizes(f: Fixture) {
    let s = &*f.store;
    for (i, &size) in ROUND_TRIP_SIZES.iter().enumerate() {
        let data = pattern(i as u64, size);
        let key = f.key(&format!("put-{size}"));
        let put = s
            .put(&key, data.clone(), PutOptions::default())
            .await
            .expect("put");
        assert_eq!(put.size, size as u64, "put result size");
        let got = s.get_bytes(&key).await.expect("get");
        assert_same(&got, &data, &format!("put/get of {size} bytes"));
        let meta = s.head(&key).await.expect("head");
        assert_eq!(meta.size, size as u64, "head size of {key}");
        assert_eq!(meta.key, key, "head key");
        if s.capabilities().etag {
            assert!(
                meta.etag.is_some(),
                "{key}: backend promises ETags but head has none"
            );
            assert_eq!(
                meta.etag, put.etag,
                "{key}: head ETag differs from put ETag"
            );
        }
        if s.capabilities().last_modified {
            assert!(meta.last_modified.is_some(), "{key}: no last_modified");
        }

        // The same bytes through a writer, in chunks that straddle any part size.
        let key = f.key(&format!("writer-{size}"));
        let mut w = s.writer(&key, PutOptions::default()).await.expect("writer");
        let mut off = 0;
        let mut step = 1;
        while off < data.len() {
            let end = (off + step).min(data.len());
            w.write(data.slice(off..end)).await.expect("write");
            off = end;
            step = (step * 7 + 3_333).min(3 * 1024 * 1024 + 17);
        }
        assert_eq!(w.bytes_written(), size as u64, "writer bytes_written");
        let put = w.complete().await.expect("complete");
        assert_eq!(put.size, size as u64, "writer result size");
        let got = s.get_bytes(&key).await.expect("get after writer");
        assert_same(&got, &data, &format!("writer round trip of {size} bytes"));

        // And back as a stream.
        let streamed: Vec<Bytes> = s
            .get(&key, GetOptions::default())
            .await
            .expect("get")
            .into_stream()
            .try_collect()
            .await
            .expect("stream");
        assert_same(&streamed.concat(), &data, "streamed get");

        // And appended to a buffer that already holds bytes, straight into its spare room
        // where the backend can.
        let mut buf = BytesMut::from(&b"kept"[..]);
        s.get(&key, GetOptions::default())
            .await
            .expect("get")
            .read_into(&mut buf)
            .await
            .expect("read_into");
        assert_eq!(&buf[..4], b"kept", "read_into kept the bytes before");
        assert_same(&buf[4..], &data, &format!("read_into of {size} bytes"));
    }
}

/// Every range form, clamping, and out-of-range errors.
pub async fn ranges(f: Fixture) {
    let s = &*f.store;
    let key = f.key("ranged");
    let data = pattern(7, 1000);
    s.put_bytes(&key, data.clone()).await.expect("put");
    if !s.capabilities().range_get {
        let r = s.get_range(&key, ByteRange::from(0..10)).await;
        assert_eq!(err_kind(r, "ranged get"), ErrorKind::NotSupported);
        return;
    }
    let cases: [(ByteRange, std::ops::Range<usize>); 7] = [
        (ByteRange::from(0..1), 0..1),
        (ByteRange::from(10..20), 10..20),
        (ByteRange::from(990..2000), 990..1000),
        (ByteRange::From(0), 0..1000),
        (ByteRange::From(999), 999..1000),
        (ByteRange::Suffix(10), 990..1000),
        (ByteRange::Suffix(5000), 0..1000),
    ];
    for (range, want) in cases {
        let res = s
            .get(&key, GetOptions::range(range))
            .await
            .unwrap_or_else(|e| panic!("{range:?}: {e}"));
        assert_eq!(
            res.range,
            want.start as u64..want.end as u64,
            "{range:?}: reported range"
        );
        assert_eq!(
            res.meta.size, 1000,
            "{range:?}: meta.size is the whole object's size"
        );
        let got = res.bytes().await.expect("body");
        assert_same(&got, &data[want.clone()], &format!("{range:?}"));
        let mut buf = BytesMut::new();
        s.get(&key, GetOptions::range(range))
            .await
            .unwrap_or_else(|e| panic!("{range:?}: {e}"))
            .read_into(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{range:?}: read_into: {e}"));
        assert_same(&buf, &data[want.clone()], &format!("{range:?} read_into"));
    }
    for range in [
        ByteRange::From(1000),
        ByteRange::from(1000..1001),
        ByteRange::From(5000),
    ] {
        let r = s.get_range(&key, range).await;
        assert_eq!(
            err_kind(r, &format!("{range:?}")),
            ErrorKind::RangeNotSatisfiable,
            "{range:?}"
        );
    }
    for range in [
        ByteRange::Bounded { start: 5, end: 5 },
        ByteRange::Bounded { start: 9, end: 3 },
        ByteRange::Suffix(0),
    ] {
        let r = s.get_range(&key, range).await;
        assert_eq!(
            err_kind(r, &format!("{range:?}")),
            ErrorKind::InvalidInput,
            "{range:?}"
        );
    }
    // Ranges of an empty object: only a suffix is satisfiable (and empty).
    let empty = f.key("empty");
    s.put_bytes(&empty, Bytes::new()).await.expect("put empty");
    let r = s.get_range(&empty, ByteRange::From(0)).await;
    assert_eq!(
        err_kind(r, "From(0) of empty"),
        ErrorKind::RangeNotSatisfiable
    );
    let got = s
        .get_range(&empty, ByteRange::Suffix(4))
        .await
        .expect("suffix of empty");
    assert!(got.is_empty());
    let r = s.get_range(&f.key("missing"), ByteRange::from(0..4)).await;
    assert_eq!(err_kind(r, "range of a missing key"), ErrorKind::NotFound);
}

/// Keys come back in lexicographic byte order, across many pages, resumable.
pub async fn list_order_and_paging(f: Fixture) {
    let s = &*f.store;
    // 1,050 keys, more than one S3 page, with names whose order trips naive directory
    // walks ('-' and '.' sort before '/', digits after).
    let mut keys: Vec<String> = (0..1000).map(|i| f.key(&format!("many/k{i:04}"))).collect();
    for name in [
        "a", "a-b", "a.b", "a/x", "a/y/z", "a0", "b", "B", "ab/c", "a/x-1", "_u", "~t",
    ] {
        keys.push(f.key(&format!("mixed/{name}")));
    }
    for i in 0..38 {
        keys.push(f.key(&format!(
            "deep/{}/leaf",
            "d/".repeat(i % 7) + &i.to_string()
        )));
    }
    if !s.capabilities().object_and_prefix_same_name {
        // File systems cannot hold both `mixed/a` and `mixed/a/x`.
        keys.retain(|k| !k.ends_with("mixed/a"));
    }
    // `mixed/a` is written after the keys under `mixed/a/` have landed, not racing them:
    // SeaweedFS (a filer of directories) has been seen to lose an acknowledged PUT of `a`
    // made while PUTs of `a/x` were creating the directory `a`. Listing is what this case
    // checks, not that race.
    let (same_name, rest): (Vec<String>, Vec<String>) =
        keys.iter().cloned().partition(|k| k.ends_with("mixed/a"));
    put_all(s, &rest).await;
    put_all(s, &same_name).await;
    keys.sort();

    let listed = names(s, &f.prefix, ListOptions::recursive()).await;
    let missing: Vec<&String> = keys.iter().filter(|k| !listed.contains(k)).collect();
    let extra: Vec<&String> = listed.iter().filter(|k| !keys.contains(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && listed.len() == keys.len(),
        "listed {} keys of {}: missing {missing:?}, extra {extra:?}",
        listed.len(),
        keys.len()
    );
    assert!(
        listed == keys,
        "recursive listing is not in lexicographic order:\n{listed:?}\nwant\n{keys:?}"
    );

    let small_pages = ListOptions {
        page_size: Some(97),
        ..ListOptions::recursive()
    };
    assert!(
        names(s, &f.prefix, small_pages.clone()).await == keys,
        "paged listing differs"
    );

    // Pages chain through `next`, and no page exceeds its size.
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let page = s
            .list_page(&f.prefix, &small_pages, token)
            .await
            .expect("list_page");
        assert!(
            page.items.len() <= 97,
            "page of {} items, asked for 97",
            page.items.len()
        );
        seen.extend(page.items.iter().map(|i| i.name().to_owned()));
        match page.next {
            Some(n) => token = Some(n),
            None => break,
        }
    }
    assert!(seen == keys, "manual paging differs");

    let after = keys[500].clone();
    let resumed = names(
        s,
        &f.prefix,
        ListOptions {
            start_after: Some(after.clone()),
            ..ListOptions::recursive()
        },
    )
    .await;
    assert!(
        resumed == keys[501..],
        "start_after {after} resumed wrongly"
    );

    // A prefix that is not a whole path segment matches by string, as in S3.
    let partial = names(s, &f.key("many/k09"), ListOptions::recursive()).await;
    assert_eq!(
        partial.len(),
        100,
        "prefix many/k09 should match k0900..k0999"
    );
}

/// Delimited listings fold deeper keys into common prefixes.
pub async fn list_delimiter(f: Fixture) {
    let s = &*f.store;
    let keys: Vec<String> = [
        "top.bin",
        "dir/one",
        "dir/two",
        "dir/sub/three",
        "dir-x/y",
        "dirz",
        "files/a",
        "fil.e",
    ]
    .iter()
    .map(|n| f.key(n))
    .collect();
    put_all(s, &keys).await;
    if !s.capabilities().list_delimiter {
        let r = s
            .list_page(&f.prefix, &ListOptions::delimited(), None)
            .await;
        assert_eq!(err_kind(r, "delimited listing"), ErrorKind::NotSupported);
        return;
    }
    let items: Vec<ListItem> = s
        .list(&f.prefix, ListOptions::delimited())
        .try_collect()
        .await
        .expect("delimited list");
    let got: Vec<(bool, String)> = items
        .iter()
        .map(|i| (matches!(i, ListItem::Prefix(_)), i.name().to_owned()))
        .collect();
    let want: Vec<(bool, String)> = [
        (true, "dir-x/"),
        (true, "dir/"),
        (false, "dirz"),
        (false, "fil.e"),
        (true, "files/"),
        (false, "top.bin"),
    ]
    .iter()
    .map(|(p, n)| (*p, f.key(n)))
    .collect();
    assert_eq!(got, want, "delimited listing of the case root");

    let got = names(s, &f.key("dir/"), ListOptions::delimited()).await;
    assert_eq!(
        got,
        vec![f.key("dir/one"), f.key("dir/sub/"), f.key("dir/two")],
        "one level below dir/"
    );

    // A partial last segment: "fil" matches "fil.e" and folds "files/".
    let got = names(s, &f.key("fil"), ListOptions::delimited()).await;
    assert_eq!(got, vec![f.key("fil.e"), f.key("files/")], "partial prefix");

    // Paging through prefixes one entry at a time resumes past each common prefix.
    let one = ListOptions {
        page_size: Some(1),
        ..ListOptions::delimited()
    };
    let mut got = names(s, &f.prefix, one).await;
    if f.skips(
        Quirk::DelimitedPagesOutOfOrder,
        "order of one-entry delimited pages",
    ) {
        got.sort();
    }
    assert_eq!(
        got,
        want.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
        "delimited paging"
    );

    // Objects in a delimited listing carry their sizes.
    let top = items.iter().find_map(|i| match i {
        ListItem::Object(m) if m.key.ends_with("top.bin") => Some(m.size),
        _ => None,
    });
    assert_eq!(top, Some(keys[0].len() as u64), "size of a listed object");
}

/// Listing a prefix with nothing under it is empty, not an error.
pub async fn list_empty_prefixes(f: Fixture) {
    let s = &*f.store;
    assert!(names(s, &f.key("nothing/here/"), ListOptions::recursive())
        .await
        .is_empty());
    assert!(names(s, &f.key("nothing/here/"), ListOptions::delimited())
        .await
        .is_empty());
    assert!(names(s, &f.key("nope"), ListOptions::recursive())
        .await
        .is_empty());
    s.put_bytes(&f.key("x/only"), Bytes::from_static(b"1"))
        .await
        .expect("put");
    assert!(
        names(s, &f.key("x/only/"), ListOptions::recursive())
            .await
            .is_empty(),
        "an object is not a directory"
    );
    assert_eq!(
        names(s, &f.key("x/only"), ListOptions::recursive()).await,
        vec![f.key("x/only")]
    );
    let page = s
        .list_page(&f.key("nothing/"), &ListOptions::recursive(), None)
        .await
        .expect("empty page");
    assert!(page.items.is_empty() && page.next.is_none());
}

/// Keys with spaces, `+`, `%`, unicode, and deep paths round-trip and list exactly.
pub async fn special_keys(f: Fixture) {
    let s = &*f.store;
    let deep = (0..20)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/")
        + "/leaf.bin";
    let names_in: Vec<String> = [
        "with space.txt",
        "plus+sign",
        "percent%20and%2Fslash",
        "ünïcödé/日本語/файл",
        "emoji-🚀.bin",
        "quote'and\"double",
        "semi;colon=eq&amp?q#hash",
        "tilde~star*paren(x)",
        deep.as_str(),
    ]
    .iter()
    .map(|n| f.key(n))
    .collect();
    for (i, k) in names_in.iter().enumerate() {
        let data = pattern(100 + i as u64, 100 + i);
        s.put_bytes(k, data.clone())
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e}"));
        let got = s
            .get_bytes(k)
            .await
            .unwrap_or_else(|e| panic!("get {k:?}: {e}"));
        assert_same(&got, &data, k);
        assert_eq!(
            s.head(k)
                .await
                .unwrap_or_else(|e| panic!("head {k:?}: {e}"))
                .key,
            *k
        );
    }
    let mut want = names_in.clone();
    want.sort();
    assert_eq!(
        names(s, &f.prefix, ListOptions::recursive()).await,
        want,
        "listing of special keys"
    );
    for k in &names_in {
        s.delete(k)
            .await
            .unwrap_or_else(|e| panic!("delete {k:?}: {e}"));
        assert!(
            !s.exists(k).await.expect("exists"),
            "{k:?} still exists after delete"
        );
    }
}

/// Overwrites replace content, size and ETag.
pub async fn overwrite(f: Fixture) {
    let s = &*f.store;
    let key = f.key("obj");
    let first = s.put_bytes(&key, pattern(1, 4096)).await.expect("put 1");
    let second = s.put_bytes(&key, pattern(2, 100)).await.expect("put 2");
    assert_same(
        &s.get_bytes(&key).await.expect("get"),
        &pattern(2, 100),
        "after overwrite",
    );
    let meta = s.head(&key).await.expect("head");
    assert_eq!(meta.size, 100, "size after shrinking overwrite");
    if s.capabilities().etag {
        assert_ne!(first.etag, second.etag, "ETag did not change on overwrite");
        assert_eq!(meta.etag, second.etag);
    }
    assert_eq!(
        names(s, &f.prefix, ListOptions::recursive()).await,
        vec![key],
        "overwrite left extra objects"
    );
}

/// Deletes, including of missing keys and in batches.
pub async fn delete(f: Fixture) {
    let s = &*f.store;
    let key = f.key("victim");
    s.put_bytes(&key, Bytes::from_static(b"x"))
        .await
        .expect("put");
    s.delete(&key).await.expect("delete");
    assert_eq!(
        err_kind(s.head(&key).await, "head after delete"),
        ErrorKind::NotFound
    );
    s.delete(&key)
        .await
        .expect("deleting a missing key succeeds");
    s.delete(&f.key("never/existed"))
        .await
        .expect("deleting a never-existing key succeeds");

    let keys: Vec<String> = (0..25).map(|i| f.key(&format!("batch/{i:02}"))).collect();
    put_all(s, &keys).await;
    let mut batch = keys[..20].to_vec();
    batch.push(f.key("batch/missing"));
    let results = s.delete_many(batch).await.expect("delete_many");
    assert_eq!(results.len(), 21, "one result per key");
    for r in results {
        r.expect("each delete in the batch");
    }
    assert_eq!(
        names(s, &f.key("batch/"), ListOptions::recursive()).await,
        keys[20..].to_vec()
    );
}

/// Missing objects fail with NotFound from every read path.
pub async fn not_found(f: Fixture) {
    let s = &*f.store;
    let key = f.key("absent");
    assert_eq!(
        err_kind(s.get(&key, GetOptions::default()).await, "get"),
        ErrorKind::NotFound
    );
    assert_eq!(err_kind(s.head(&key).await, "head"), ErrorKind::NotFound);
    assert!(!s.exists(&key).await.expect("exists"));
    let e = s.head(&key).await.unwrap_err();
    assert!(
        e.to_string().contains("absent"),
        "error does not name the key: {e}"
    );
    if s.capabilities().copy {
        let r = s.copy(&key, &f.key("dst"), CopyOptions::default()).await;
        assert_eq!(err_kind(r, "copy of a missing key"), ErrorKind::NotFound);
    }
    assert_eq!(
        err_kind(s.put_bytes("", Bytes::new()).await, "put of an empty key"),
        ErrorKind::InvalidInput
    );
}

/// Create-only puts and writers refuse to replace an object.
pub async fn create_only(f: Fixture) {
    let s = &*f.store;
    let key = f.key("once");
    if !s.capabilities().put_create_only {
        let r = s
            .put(&key, Bytes::from_static(b"a"), PutOptions::create())
            .await;
        assert_eq!(err_kind(r, "create-only put"), ErrorKind::NotSupported);
        return;
    }
    s.put(&key, Bytes::from_static(b"first"), PutOptions::create())
        .await
        .expect("first create");
    let r = s
        .put(&key, Bytes::from_static(b"second"), PutOptions::create())
        .await;
    assert_eq!(
        err_kind(r, "second create-only put"),
        ErrorKind::AlreadyExists
    );
    assert_eq!(s.get_bytes(&key).await.expect("get"), "first");

    let mut w = s.writer(&key, PutOptions::create()).await.expect("writer");
    w.write(Bytes::from_static(b"third")).await.expect("write");
    assert_eq!(
        err_kind(w.complete().await, "create-only writer"),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        s.get_bytes(&key).await.expect("get"),
        "first",
        "a refused writer changed the object"
    );

    // Racing create-only writers: exactly one wins.
    let race = f.key("race");
    let results = futures::future::join_all((0..8u64).map(|i| {
        let race = race.clone();
        async move { s.put(&race, pattern(i, 1000), PutOptions::create()).await }
    }))
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    if f.skips(
        Quirk::CreateOnlyRaces,
        "exactly one winner among racing create-only writers",
    ) {
        assert!(winners >= 1, "no create-only writer succeeded");
    } else {
        assert_eq!(winners, 1, "{winners} create-only writers succeeded");
    }
    for r in results.into_iter().filter_map(|r| r.err()) {
        assert_eq!(r.kind(), ErrorKind::AlreadyExists);
    }
}

/// If-Match on reads and writes.
pub async fn if_match(f: Fixture) {
    let s = &*f.store;
    let caps = s.capabilities();
    let key = f.key("cond");
    let put = s
        .put_bytes(&key, Bytes::from_static(b"v1"))
        .await
        .expect("put");
    let bogus = "\"0000-not-an-etag\"".to_owned();

    if caps.get_if_match {
        let etag = put.etag.clone().expect("get_if_match needs ETags");
        let got = s
            .get(&key, GetOptions::default().with_if_match(etag.clone()))
            .await
            .expect("matching get");
        assert_eq!(got.bytes().await.expect("body"), "v1");
        let r = s
            .get(&key, GetOptions::default().with_if_match(bogus.clone()))
            .await;
        assert_eq!(
            err_kind(r, "get with a wrong If-Match"),
            ErrorKind::PreconditionFailed
        );
        let r = s
            .get(&key, GetOptions::range(0..1).with_if_match(bogus.clone()))
            .await;
        assert_eq!(
            err_kind(r, "ranged get with a wrong If-Match"),
            ErrorKind::PreconditionFailed
        );
    } else {
        let r = s
            .get(&key, GetOptions::default().with_if_match(bogus.clone()))
            .await;
        assert_eq!(err_kind(r, "get with If-Match"), ErrorKind::NotSupported);
    }

    if caps.put_if_match {
        let etag = put.etag.clone().expect("put_if_match needs ETags");
        let r = s
            .put(
                &key,
                Bytes::from_static(b"lost"),
                PutOptions::if_match(bogus.clone()),
            )
            .await;
        assert_eq!(
            err_kind(r, "put with a wrong If-Match"),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(s.get_bytes(&key).await.expect("get"), "v1");
        let v2 = s
            .put(
                &key,
                Bytes::from_static(b"v2"),
                PutOptions::if_match(etag.clone()),
            )
            .await
            .expect("matching put");
        assert_eq!(s.get_bytes(&key).await.expect("get"), "v2");
        // The old ETag no longer matches: a second writer holding it loses.
        let r = s
            .put(&key, Bytes::from_static(b"v3"), PutOptions::if_match(etag))
            .await;
        assert_eq!(
            err_kind(r, "put with a stale If-Match"),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(s.head(&key).await.expect("head").etag, v2.etag);
    } else {
        let r = s
            .put(&key, Bytes::from_static(b"x"), PutOptions::if_match(bogus))
            .await;
        assert_eq!(err_kind(r, "put with If-Match"), ErrorKind::NotSupported);
        assert_eq!(s.get_bytes(&key).await.expect("get"), "v1");
    }
}

/// Concurrent writers to one key never produce a torn object, and readers never see one.
pub async fn concurrent_writers(f: Fixture) {
    let s = Arc::clone(&f.store);
    let key = f.key("contended");
    const WRITERS: u64 = 6;
    const SIZE: usize = 3 * 1024 * 1024 + 5;
    let versions: Arc<Vec<Bytes>> =
        Arc::new((0..WRITERS).map(|i| pattern(1000 + i, SIZE)).collect());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let reader = {
        let (s, key, versions, done) = (
            Arc::clone(&s),
            key.clone(),
            Arc::clone(&versions),
            Arc::clone(&done),
        );
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                match s.get_bytes(&key).await {
                    Ok(b) => {
                        assert!(
                            versions.contains(&b),
                            "read a torn object of {} bytes",
                            b.len()
                        );
                        reads += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => panic!("concurrent read failed: {e}"),
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS as usize)
        .map(|i| {
            let (s, key, versions) = (Arc::clone(&s), key.clone(), Arc::clone(&versions));
            tokio::spawn(async move {
                let data = &versions[i];
                if i % 2 == 0 {
                    let mut w = s.writer(&key, PutOptions::default()).await.expect("writer");
                    for part in data.chunks(256 * 1024 + 3) {
                        w.write(data.slice_ref(part)).await.expect("write");
                        tokio::task::yield_now().await;
                    }
                    w.complete().await.expect("complete");
                } else {
                    s.put_bytes(&key, data.clone()).await.expect("put");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer task");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.await.expect("reader task");
    let last = s.get_bytes(&key).await.expect("final get");
    assert!(versions.contains(&last), "final object is torn");
    assert_eq!(
        names(&*s, &f.prefix, ListOptions::recursive()).await,
        vec![key],
        "writers left debris"
    );
}

/// An aborted or dropped writer leaves nothing behind, and an unfinished one is invisible.
pub async fn aborted_writer(f: Fixture) {
    let s = &*f.store;
    let key = f.key("aborted");
    let mut w = s.writer(&key, PutOptions::default()).await.expect("writer");
    w.write(pattern(1, 6 * 1024 * 1024)).await.expect("write");
    assert_eq!(
        err_kind(s.head(&key).await, "head of an unfinished write"),
        ErrorKind::NotFound
    );
    assert!(
        names(s, &f.prefix, ListOptions::recursive())
            .await
            .is_empty(),
        "an unfinished write is listed"
    );
    w.abort().await.expect("abort");
    assert_eq!(
        err_kind(s.head(&key).await, "head after abort"),
        ErrorKind::NotFound
    );

    let dropped = f.key("dropped");
    let mut w = s
        .writer(&dropped, PutOptions::default())
        .await
        .expect("writer");
    w.write(pattern(2, 1024)).await.expect("write");
    drop(w);
    assert_eq!(
        err_kind(s.head(&dropped).await, "head after drop"),
        ErrorKind::NotFound
    );

    // Aborting a replacement keeps the old object intact.
    let kept = f.key("kept");
    s.put_bytes(&kept, Bytes::from_static(b"old"))
        .await
        .expect("put");
    let mut w = s
        .writer(&kept, PutOptions::default())
        .await
        .expect("writer");
    w.write(pattern(3, 1024 * 1024)).await.expect("write");
    w.abort().await.expect("abort");
    assert_eq!(s.get_bytes(&kept).await.expect("get"), "old");

    assert_eq!(
        names(s, &f.prefix, ListOptions::recursive()).await,
        vec![kept],
        "aborted writers left debris"
    );
}

/// Server-side copy.
pub async fn copy(f: Fixture) {
    let s = &*f.store;
    let src = f.key("src");
    let dst = f.key("dst/copied");
    let data = pattern(9, 70_000);
    s.put_bytes(&src, data.clone()).await.expect("put");
    if !s.capabilities().copy {
        let r = s.copy(&src, &dst, CopyOptions::default()).await;
        assert_eq!(err_kind(r, "copy"), ErrorKind::NotSupported);
        return;
    }
    let res = s
        .copy(&src, &dst, CopyOptions::default())
        .await
        .expect("copy");
    assert_eq!(res.size, data.len() as u64);
    assert_same(
        &s.get_bytes(&dst).await.expect("get copy"),
        &data,
        "copied object",
    );
    assert_same(
        &s.get_bytes(&src).await.expect("get source"),
        &data,
        "source after copy",
    );
    s.put_bytes(&src, Bytes::from_static(b"changed"))
        .await
        .expect("overwrite source");
    assert_same(
        &s.get_bytes(&dst).await.expect("get copy"),
        &data,
        "copy changed with its source",
    );
    if s.capabilities().put_create_only {
        let r = s.copy(&src, &dst, CopyOptions { create_only: true }).await;
        assert_eq!(
            err_kind(r, "create-only copy onto an existing key"),
            ErrorKind::AlreadyExists
        );
        assert_same(
            &s.get_bytes(&dst).await.expect("get copy"),
            &data,
            "refused copy changed the target",
        );
    }
}

/// Content type and user metadata are kept, or refused at once where unsupported.
pub async fn metadata(f: Fixture) {
    let s = &*f.store;
    let caps = s.capabilities();
    let key = f.key("meta");
    let mut user = BTreeMap::new();
    user.insert("origin".to_owned(), "conformance".to_owned());
    let with_type = PutOptions {
        content_type: Some("application/x-test".into()),
        ..PutOptions::default()
    };
    let with_meta = PutOptions {
        metadata: user.clone(),
        ..PutOptions::default()
    };
    if caps.content_type {
        s.put(&key, Bytes::from_static(b"m"), with_type)
            .await
            .expect("put with content type");
        assert_eq!(
            s.head(&key).await.expect("head").content_type.as_deref(),
            Some("application/x-test")
        );
    } else {
        let r = s.put(&key, Bytes::from_static(b"m"), with_type).await;
        assert_eq!(
            err_kind(r, "put with a content type"),
            ErrorKind::NotSupported
        );
    }
    if caps.user_metadata {
        s.put(&key, Bytes::from_static(b"m"), with_meta)
            .await
            .expect("put with metadata");
        assert_eq!(s.head(&key).await.expect("head").metadata, user);
        let mut w = s
            .writer(
                &f.key("meta-w"),
                PutOptions {
                    metadata: user.clone(),
                    mode: PutMode::Overwrite,
                    content_type: None,
                },
            )
            .await
            .expect("writer");
        w.write(Bytes::from_static(b"w")).await.expect("write");
        w.complete().await.expect("complete");
        assert_eq!(s.head(&f.key("meta-w")).await.expect("head").metadata, user);
    } else {
        let r = s.put(&key, Bytes::from_static(b"m"), with_meta).await;
        assert_eq!(
            err_kind(r, "put with user metadata"),
            ErrorKind::NotSupported
        );
    }
}

// The one list of cases. It expands into the `CASES` table below and, through
// `conformance_suite!`, into one `#[test]` per case in each backend's tests.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($($mode:tt)*) => {
        $crate::__conformance_expand!([$($mode)*]
            round_trip_sizes,
            ranges,
            list_order_and_paging,
            list_delimiter,
            list_empty_prefixes,
            special_keys,
            overwrite,
            delete,
            not_found,
            create_only,
            if_match,
            concurrent_writers,
            aborted_writer,
            copy,
            metadata,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_expand {
    ([@table] $($case:ident),* $(,)?) => {
        /// Every case of the suite, by name, in the order they run.
        pub const CASES: &[(&str, fn($crate::conformance::Fixture) -> $crate::__private::futures::future::BoxFuture<'static, ()>)] =
            &[$((stringify!($case), |f| $crate::__private::futures::FutureExt::boxed($case(f)))),*];
    };
    ([@tests $factory:path] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(stringify!($case), $factory);
            }
        )*
    };
}

crate::__conformance_cases!(@table);

/// Generate one `#[test]` per conformance case, each calling `factory(case_name).await` for
/// a fresh [`Fixture`].
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::__conformance_cases!(@tests $factory);
    };
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn find_case(name: &str) -> fn(Fixture) -> BoxFuture<'static, ()> {
    CASES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no conformance case named {name}"))
}

/// Run one case on a fresh fixture; panics (fails the test) on a violation. On success the
/// case's prefix is cleaned up.
pub fn run_case<F, Fut>(name: &'static str, factory: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Fixture>,
{
    let case = find_case(name);
    runtime().block_on(async {
        let mut fixture = factory(name).await;
        let guard = fixture.guard.take();
        let (store, prefix) = (Arc::clone(&fixture.store), fixture.prefix.clone());
        case(fixture).await;
        // Tidy up shared servers; a temporary directory goes with its guard anyway.
        let _ = store.delete_prefix(&prefix).await;
        drop(guard);
    });
}

/// The outcome of [`run_all`].
#[derive(Debug, Default)]
pub struct Report {
    pub passed: Vec<&'static str>,
    /// Failed cases and their panic messages.
    pub failed: Vec<(&'static str, String)>,
}

/// Run every case, catching failures, and report which passed. Used to prove the suite
/// catches a broken backend; backends themselves use [`conformance_suite!`].
pub fn run_all<F, Fut>(factory: F) -> Report
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Fixture>,
{
    let rt = runtime();
    let mut report = Report::default();
    for (name, case) in CASES {
        let outcome = rt.block_on(async {
            let fixture = factory(name).await;
            AssertUnwindSafe(case(fixture)).catch_unwind().await
        });
        match outcome {
            Ok(()) => report.passed.push(name),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".to_owned());
                report.failed.push((name, msg));
            }
        }
    }
    report
}
