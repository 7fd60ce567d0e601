//! Behaviour specific to the file system: atomicity on disk, symlink containment, key rules,
//! directories, listing order and resumption (checked against the in-memory store), reads
//! of large files, and the registry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_store_core::conformance::pattern;
use s3dlio_store_core::{
    Body, ByteRange, CopyOptions, ErrorKind, GetOptions, ListItem, ListOptions, MemoryStore,
    ObjectStore, ObjectStoreExt, ParseOptions, PutOptions, Registry,
};
use s3dlio_store_fs::{FsOptions, FsStore};
use tempfile::TempDir;

fn store_with(opts: FsOptions) -> (TempDir, FsStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::with_options(dir.path(), opts).expect("store");
    (dir, store)
}

fn store() -> (TempDir, FsStore) {
    store_with(FsOptions::default())
}

/// Every file and directory under `root`, relative, as the OS sees them.
fn on_disk(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let is_dir = e.file_type().expect("type").is_dir();
            out.insert(if is_dir { format!("{rel}/") } else { rel });
            if is_dir {
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn temp_files(root: &Path) -> Vec<String> {
    on_disk(root)
        .into_iter()
        .filter(|p| p.contains(".s3dlio-tmp-"))
        .collect()
}

async fn names(store: &dyn ObjectStore, prefix: &str, opts: ListOptions) -> Vec<String> {
    store
        .list(prefix, opts)
        .map_ok(|i| i.name().to_owned())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
}

fn kind<T: std::fmt::Debug>(r: s3dlio_store_core::Result<T>) -> ErrorKind {
    r.expect_err("should have failed").kind()
}

#[tokio::test]
async fn writes_are_atomic_and_leave_no_temporary_files() {
    let (dir, s) = store();
    let root = dir.path();

    s.put_bytes("a/b/c.bin", pattern(1, 10_000)).await.unwrap();
    assert_eq!(
        on_disk(root),
        BTreeSet::from(["a/".into(), "a/b/".into(), "a/b/c.bin".into()])
    );

    // An unfinished write exists only as a temporary file, which listings never show.
    let mut w = s.writer("a/b/d.bin", PutOptions::default()).await.unwrap();
    w.write(pattern(2, 3 << 20)).await.unwrap();
    w.write(pattern(3, 5 << 20)).await.unwrap();
    assert_eq!(
        temp_files(root).len(),
        1,
        "the writer's temporary file is in place: {:?}",
        on_disk(root)
    );
    assert!(
        temp_files(root)[0].starts_with("a/b/.d.bin.s3dlio-tmp-"),
        "{:?}",
        temp_files(root)
    );
    assert_eq!(names(&s, "", ListOptions::recursive()).await, ["a/b/c.bin"]);
    assert_eq!(
        names(&s, "a/b/", ListOptions::delimited()).await,
        ["a/b/c.bin"]
    );
    assert_eq!(kind(s.head("a/b/d.bin").await), ErrorKind::NotFound);
    let put = w.complete().await.unwrap();
    assert_eq!(put.size, 8 << 20);
    assert!(temp_files(root).is_empty());
    assert_eq!(s.head("a/b/d.bin").await.unwrap().etag, put.etag);

    // Abort and drop remove the temporary file.
    let mut w = s.writer("a/x", PutOptions::default()).await.unwrap();
    w.write(pattern(4, 100)).await.unwrap();
    w.abort().await.unwrap();
    let mut w = s.writer("a/y", PutOptions::default()).await.unwrap();
    w.write(pattern(5, 9 << 20)).await.unwrap();
    drop(w);
    assert!(temp_files(root).is_empty(), "{:?}", on_disk(root));

    // Refused create-only writes, by put, by writer and by copy.
    let r = s
        .put("a/b/c.bin", Bytes::from_static(b"no"), PutOptions::create())
        .await;
    assert_eq!(kind(r), ErrorKind::AlreadyExists);
    let mut w = s.writer("a/b/c.bin", PutOptions::create()).await.unwrap();
    w.write(pattern(6, 1000)).await.unwrap();
    assert_eq!(kind(w.complete().await), ErrorKind::AlreadyExists);
    let r = s
        .copy("a/b/d.bin", "a/b/c.bin", CopyOptions { create_only: true })
        .await;
    assert_eq!(kind(r), ErrorKind::AlreadyExists);
    assert_eq!(s.get_bytes("a/b/c.bin").await.unwrap(), pattern(1, 10_000));

    // A write that fails (a parent is an object) leaves nothing either.
    assert_eq!(
        kind(s.put_bytes("a/b/c.bin/under", Bytes::new()).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(s.writer("a/b/c.bin/under", PutOptions::default()).await),
        ErrorKind::InvalidInput
    );

    assert!(temp_files(root).is_empty(), "{:?}", on_disk(root));
    assert_eq!(
        on_disk(root),
        BTreeSet::from([
            "a/".into(),
            "a/b/".into(),
            "a/b/c.bin".into(),
            "a/b/d.bin".into()
        ])
    );
}

#[tokio::test]
async fn a_cancelled_write_makes_the_writer_refuse_further_use() {
    let (dir, s) = store_with(FsOptions {
        write_buffer_size: 1024,
        ..FsOptions::default()
    });
    let mut w = s.writer("k", PutOptions::default()).await.unwrap();
    w.write(pattern(1, 10)).await.unwrap();
    {
        let mut fut = w.write(pattern(2, 64 << 20));
        // Polled once, the 64 MiB write is under way on the blocking pool; then abandoned.
        assert!(futures::poll!(&mut fut).is_pending());
    }
    let e = w.write(pattern(3, 10)).await.unwrap_err();
    assert!(e.to_string().contains("cancelled"), "{e}");
    w.abort().await.unwrap();
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(kind(s.head("k").await), ErrorKind::NotFound);
}

#[tokio::test]
async fn writer_buffering_preserves_bytes() {
    for buf in [0, 1, 7, 4096, 1 << 20] {
        let (_dir, s) = store_with(FsOptions {
            write_buffer_size: buf,
            ..FsOptions::default()
        });
        let data = pattern(buf as u64, 3 << 20);
        let mut w = s.writer("w", PutOptions::default()).await.unwrap();
        let mut off = 0;
        for (i, step) in [0usize, 1, 5, 4095, 4096, 4097, 1 << 20, 3, 2 << 20]
            .iter()
            .cycle()
            .enumerate()
        {
            if off == data.len() || i > 1000 {
                break;
            }
            let end = (off + step).min(data.len());
            w.write(data.slice(off..end)).await.unwrap();
            off = end;
        }
        w.write(data.slice(off..)).await.unwrap();
        assert_eq!(w.bytes_written(), data.len() as u64);
        assert_eq!(w.complete().await.unwrap().size, data.len() as u64);
        assert!(
            s.get_bytes("w").await.unwrap() == data,
            "buffer {buf}: content differs"
        );
    }
}

#[tokio::test]
async fn fsync_option_writes_durably_and_correctly() {
    let (dir, s) = store_with(FsOptions {
        fsync: true,
        ..FsOptions::default()
    });
    s.put_bytes("new/dirs/a", pattern(1, 5000)).await.unwrap();
    let mut w = s
        .writer("other/new/dir/b", PutOptions::create())
        .await
        .unwrap();
    w.write(pattern(2, 3 << 20)).await.unwrap();
    w.complete().await.unwrap();
    s.copy("new/dirs/a", "copies/a", CopyOptions { create_only: true })
        .await
        .unwrap();
    assert_eq!(s.get_bytes("new/dirs/a").await.unwrap(), pattern(1, 5000));
    assert_eq!(
        s.get_bytes("other/new/dir/b").await.unwrap(),
        pattern(2, 3 << 20)
    );
    assert_eq!(s.get_bytes("copies/a").await.unwrap(), pattern(1, 5000));
    assert!(s.options().fsync);
    assert!(temp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn etag_is_inode_size_and_mtime_of_the_file_read() {
    use std::os::unix::fs::MetadataExt;
    let (dir, s) = store();
    let put = s
        .put_bytes("e", Bytes::from_static(b"12345"))
        .await
        .unwrap();
    let md = std::fs::metadata(dir.path().join("e")).unwrap();
    let ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    let want = format!("\"{:x}-{:x}-{:x}\"", md.ino(), md.size(), ns);
    assert_eq!(put.etag.as_deref(), Some(want.as_str()));
    let got = s.get("e", GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.etag.as_deref(), Some(want.as_str()));
    assert_eq!(got.meta.last_modified, Some(md.modified().unwrap()));

    // Changed in place by someone else: the old ETag no longer matches.
    std::fs::write(dir.path().join("e"), b"123456").unwrap();
    let r = s
        .get("e", GetOptions::default().with_if_match(want.clone()))
        .await;
    assert_eq!(kind(r), ErrorKind::PreconditionFailed);
    let now = s.head("e").await.unwrap().etag.unwrap();
    assert_ne!(now, want);
    let got = s
        .get("e", GetOptions::range(1..3).with_if_match(now))
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), "23");
}

#[tokio::test]
async fn symlinks_never_lead_out_of_the_root() {
    use std::os::unix::fs::symlink;
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(root.join("real/sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::write(root.join("real/file"), b"inside").unwrap();
    std::fs::write(root.join("real/sub/deep"), b"deep").unwrap();
    symlink(outside.join("secret"), root.join("leak")).unwrap();
    symlink(&outside, root.join("leakdir")).unwrap();
    symlink(root.join("real/file"), root.join("abs-link")).unwrap();
    symlink("real/file", root.join("rel-link")).unwrap();
    symlink(root.join("real/sub"), root.join("dirlink")).unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
    // Cycles: to an ancestor, and two directories pointing at each other.
    symlink(&root, root.join("real/sub/to-root")).unwrap();
    std::fs::create_dir_all(root.join("m/a")).unwrap();
    std::fs::create_dir_all(root.join("m/b")).unwrap();
    symlink(root.join("m/b"), root.join("m/a/to-b")).unwrap();
    symlink(root.join("m/a"), root.join("m/b/to-a")).unwrap();

    let s = FsStore::new(&root).unwrap();
    let listed = names(&s, "", ListOptions::recursive()).await;
    assert_eq!(
        listed,
        [
            "abs-link",
            "dirlink/deep",
            "real/file",
            "real/sub/deep",
            "rel-link",
        ],
        "listing follows only links that stay inside and do not loop"
    );
    assert_eq!(
        names(&s, "", ListOptions::delimited()).await,
        ["abs-link", "dirlink/", "real/", "rel-link"],
        "delimited listing"
    );
    assert_eq!(s.get_bytes("abs-link").await.unwrap(), "inside");
    assert_eq!(s.get_bytes("rel-link").await.unwrap(), "inside");
    assert_eq!(s.get_bytes("dirlink/deep").await.unwrap(), "deep");
    assert_eq!(s.head("dirlink/deep").await.unwrap().size, 4);

    for key in ["leak", "leakdir/secret"] {
        let e = s.get(key, GetOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "get {key}: {e}");
        assert!(e.to_string().contains("outside the store root"), "{e}");
        assert_eq!(
            kind(s.head(key).await),
            ErrorKind::PermissionDenied,
            "head {key}"
        );
        let r = s.copy(key, "stolen", CopyOptions::default()).await;
        assert_eq!(kind(r), ErrorKind::PermissionDenied, "copy {key}");
    }
    assert!(names(&s, "leakdir/", ListOptions::recursive())
        .await
        .is_empty());
    assert_eq!(
        kind(s.put_bytes("leakdir/planted", Bytes::new()).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(s.put_bytes("leakdir/new/planted", Bytes::new()).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(s.delete("leakdir/secret").await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was created or removed outside the root"
    );
    assert!(outside.join("secret").exists());
    assert_eq!(
        kind(s.get("dangling", GetOptions::default()).await),
        ErrorKind::NotFound
    );

    // Deleting a link removes the link, not its target.
    s.delete("leak").await.unwrap();
    assert!(outside.join("secret").exists() && !root.join("leak").exists());

    // Rooted at `/`, every path is inside.
    let slash = FsStore::new("/").unwrap();
    let key = root
        .join("leakdir/secret")
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_owned();
    assert_eq!(slash.get_bytes(&key).await.unwrap(), "secret");
}

#[tokio::test]
async fn invalid_keys_are_refused_naming_the_key() {
    let (dir, s) = store();
    s.put_bytes("ok", Bytes::from_static(b"1")).await.unwrap();
    let bad = [
        "a//b",
        "../x",
        "./x",
        "x/",
        "/abs",
        "a/./b",
        "a/..",
        ".k.s3dlio-tmp-1-2",
        "",
    ];
    for key in bad {
        let e = s.put_bytes(key, Bytes::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "put {key:?}: {e}");
        if !key.is_empty() {
            assert!(e.to_string().contains(&format!("{key:?}")), "{e}");
        }
        assert_eq!(
            kind(s.get(key, GetOptions::default()).await),
            ErrorKind::InvalidInput,
            "get {key:?}"
        );
        assert_eq!(
            kind(s.head(key).await),
            ErrorKind::InvalidInput,
            "head {key:?}"
        );
        assert_eq!(
            kind(s.delete(key).await),
            ErrorKind::InvalidInput,
            "delete {key:?}"
        );
        assert_eq!(
            kind(s.writer(key, PutOptions::default()).await),
            ErrorKind::InvalidInput,
            "writer {key:?}"
        );
        assert_eq!(
            kind(s.copy("ok", key, CopyOptions::default()).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(s.copy(key, "ok2", CopyOptions::default()).await),
            ErrorKind::InvalidInput
        );
    }
    for prefix in ["/", "a//", "../", "./x", "a/../b"] {
        let r = s.list_page(prefix, &ListOptions::recursive(), None).await;
        assert_eq!(kind(r), ErrorKind::InvalidInput, "list {prefix:?}");
    }
    let results = s
        .delete_many(vec!["ok".into(), "a//b".into(), "missing".into()])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(on_disk(dir.path()).is_empty(), "{:?}", on_disk(dir.path()));
}

#[tokio::test]
async fn unsupported_options_fail_before_writing() {
    let (dir, s) = store();
    let with_type = PutOptions {
        content_type: Some("text/plain".into()),
        ..PutOptions::default()
    };
    let with_meta = PutOptions {
        metadata: [("a".into(), "b".into())].into(),
        ..PutOptions::default()
    };
    for opts in [PutOptions::if_match("\"x\""), with_type, with_meta] {
        assert_eq!(
            kind(s.put("k", Bytes::new(), opts.clone()).await),
            ErrorKind::NotSupported
        );
        assert_eq!(kind(s.writer("k/w", opts).await), ErrorKind::NotSupported);
    }
    assert!(on_disk(dir.path()).is_empty());
}

#[tokio::test]
async fn directories_are_not_objects() {
    let (dir, s) = store();
    s.put_bytes("d/inner/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put_bytes("f", Bytes::from_static(b"f")).await.unwrap();
    for key in ["d", "d/inner"] {
        let e = s.get(key, GetOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "get {key}: {e}");
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(kind(s.head(key).await), ErrorKind::NotFound);
        assert!(!s.exists(key).await.unwrap());
        assert_eq!(
            kind(s.delete(key).await),
            ErrorKind::InvalidInput,
            "delete {key}"
        );
        assert_eq!(
            kind(s.put_bytes(key, Bytes::new()).await),
            ErrorKind::InvalidInput,
            "put over {key}"
        );
        assert_eq!(
            kind(s.copy("f", key, CopyOptions::default()).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(s.copy(key, "g", CopyOptions::default()).await),
            ErrorKind::NotFound
        );
    }
    // A file where a directory would have to be: reads say not found, writes are refused.
    assert_eq!(
        kind(s.get("f/x", GetOptions::default()).await),
        ErrorKind::NotFound
    );
    assert_eq!(kind(s.head("f/x/y").await), ErrorKind::NotFound);
    s.delete("f/x").await.unwrap();
    assert_eq!(
        kind(s.put_bytes("f/x", Bytes::new()).await),
        ErrorKind::InvalidInput
    );

    // Empty directories are invisible, in delimited listings too; deletes leave directories.
    std::fs::create_dir_all(dir.path().join("empty/deeper/still")).unwrap();
    std::fs::create_dir_all(dir.path().join("nested/a/b")).unwrap();
    std::fs::write(dir.path().join("nested/a/b/obj"), b"o").unwrap();
    assert_eq!(
        names(&s, "", ListOptions::delimited()).await,
        ["d/", "f", "nested/"]
    );
    assert_eq!(
        names(&s, "", ListOptions::recursive()).await,
        ["d/inner/x", "f", "nested/a/b/obj"]
    );
    s.delete("d/inner/x").await.unwrap();
    assert!(dir.path().join("d/inner").is_dir());
    assert_eq!(
        names(&s, "", ListOptions::delimited()).await,
        ["f", "nested/"]
    );
    let page = s
        .list_page("d/", &ListOptions::delimited(), None)
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
    // A directory left behind does not stop a later put from recreating the key's path.
    s.put_bytes("d/inner/x", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(s.get_bytes("d/inner/x").await.unwrap(), "again");
}

#[tokio::test]
async fn special_files_and_foreign_names_are_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, s) = store();
    s.put_bytes("a", Bytes::from_static(b"a")).await.unwrap();
    let root = dir.path();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
    std::fs::write(root.join(".stale.s3dlio-tmp-999999-0"), b"left by a crash").unwrap();
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    std::fs::write(root.join(".hidden"), b"h").unwrap();
    assert_eq!(
        names(&s, "", ListOptions::recursive()).await,
        [".hidden", "a"]
    );
    // Opening a FIFO must not hang waiting for a writer.
    assert_eq!(
        kind(s.get("fifo", GetOptions::default()).await),
        ErrorKind::NotFound
    );
    assert_eq!(kind(s.head("fifo").await), ErrorKind::NotFound);
}

/// Keys whose order trips naive walks ('-' and '.' sort before '/', '0' after), at depths.
fn tricky_keys() -> Vec<String> {
    let names = [
        "a-b", "a.b", "a/x", "a/x-1", "a/y/z", "a0", "ab", "a~", "a/!", "B", "_", "a/x.d/q",
    ];
    let mut keys = Vec::new();
    for depth in ["", "a/deep/", "a/deep/a/", "z/", "z/a-b/"] {
        for n in names {
            keys.push(format!("{depth}{n}"));
        }
    }
    // Remove keys that would need a name to be both a file and a directory.
    let all: BTreeSet<String> = keys.iter().cloned().collect();
    keys.retain(|k| !all.iter().any(|o| o.starts_with(&format!("{k}/"))));
    keys.sort();
    keys.dedup();
    keys
}

async fn fill(keys: &[String]) -> (TempDir, FsStore, MemoryStore) {
    let (dir, s) = store();
    let mem = MemoryStore::new();
    for k in keys {
        s.put_bytes(k, Bytes::from(k.clone()))
            .await
            .unwrap_or_else(|e| panic!("{k}: {e}"));
        mem.put_bytes(k, Bytes::from(k.clone())).await.unwrap();
    }
    (dir, s, mem)
}

#[tokio::test]
async fn listing_order_is_byte_order_of_full_keys() {
    let keys = tricky_keys();
    assert!(keys.contains(&"a-b".to_owned()) && keys.contains(&"a/x-1".to_owned()));
    let (_dir, s, _) = fill(&keys).await;
    let listed = names(&s, "", ListOptions::recursive()).await;
    assert_eq!(listed, keys);
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, sorted);
    // Degenerate page sizes: 0 behaves as 1, and a huge one returns everything at once.
    let page = s
        .list_page(
            "",
            &ListOptions {
                page_size: Some(0),
                ..ListOptions::recursive()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (page.items.len(), page.next.as_deref()),
        (1, Some(keys[0].as_str()))
    );
    let page = s
        .list_page(
            "",
            &ListOptions {
                page_size: Some(usize::MAX),
                ..ListOptions::recursive()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.next), (keys.len(), None));
    // Listed objects carry size, ETag and mtime.
    let metas = s.list_objects("a/deep/").await.unwrap();
    assert!(!metas.is_empty());
    for m in metas {
        assert_eq!(m.size, m.key.len() as u64, "{}", m.key);
        assert!(m.etag.is_some() && m.last_modified.is_some());
        assert_eq!(s.head(&m.key).await.unwrap().etag, m.etag);
    }
}

/// Every page, token and item of the file store's listing equals the in-memory store's, for
/// page sizes 1 to 7, recursive and delimited, from many prefixes (whole and partial
/// segments) and resume points.
#[tokio::test]
async fn paging_matches_the_in_memory_store() {
    let keys = tricky_keys();
    let (_dir, s, mem) = fill(&keys).await;
    let mut prefixes: BTreeSet<String> =
        BTreeSet::from([String::new(), "nothing/".into(), "a/deep/a/x".into()]);
    for k in &keys {
        for (i, _) in k.match_indices('/') {
            prefixes.insert(k[..=i].to_owned());
            prefixes.insert(k[..i].to_owned());
            if let Some(c) = k[i + 1..].chars().next() {
                prefixes.insert(format!("{}{c}", &k[..=i]));
            }
        }
    }
    let kind_name = |i: &ListItem| (matches!(i, ListItem::Prefix(_)), i.name().to_owned());
    let mut compared = 0;
    for prefix in &prefixes {
        for recursive in [true, false] {
            let sizes: &[usize] = if prefix.is_empty() || prefix == "a/" {
                &[1, 2, 3, 4, 5, 6, 7]
            } else {
                &[1, 3]
            };
            for &size in sizes {
                let opts = ListOptions {
                    recursive,
                    page_size: Some(size),
                    start_after: None,
                };
                let (mut t1, mut t2) = (None, None);
                loop {
                    let p1 = s.list_page(prefix, &opts, t1).await.unwrap();
                    let p2 = mem.list_page(prefix, &opts, t2).await.unwrap();
                    let a: Vec<_> = p1.items.iter().map(kind_name).collect();
                    let b: Vec<_> = p2.items.iter().map(kind_name).collect();
                    assert_eq!(
                        a, b,
                        "prefix {prefix:?} recursive {recursive} page size {size}"
                    );
                    assert_eq!(
                        p1.next, p2.next,
                        "prefix {prefix:?} recursive {recursive} page size {size}"
                    );
                    compared += 1;
                    match p1.next {
                        Some(n) => (t1, t2) = (Some(n.clone()), Some(n)),
                        None => break,
                    }
                }
            }
        }
    }
    // Resuming after any key, or after names that are not keys.
    let mut afters: Vec<String> = keys.clone();
    afters.extend(["a/", "a/deep/", "a/x0", "a", "a/deep/a/y/", "zz", "0"].map(String::from));
    for after in afters {
        for recursive in [true, false] {
            let opts = ListOptions {
                recursive,
                page_size: Some(2),
                start_after: Some(after.clone()),
            };
            let a = names(&s, "", opts.clone()).await;
            let b = names(&mem, "", opts).await;
            assert_eq!(a, b, "start_after {after:?} recursive {recursive}");
            compared += 1;
        }
    }
    assert!(compared > 500, "only {compared} comparisons");
}

#[tokio::test]
async fn large_files_read_whole_ranged_and_streamed() {
    let size = 20 * 1024 * 1024 + 123;
    let data = pattern(42, size);
    for fadvise in [false, true] {
        let opts = FsOptions {
            fadvise,
            large_file_threshold: 1 << 20,
            eager_read_max: 3 << 20,
            read_chunk_size: (1 << 20) + 17,
            ..FsOptions::default()
        };
        let (_dir, s) = store_with(opts);
        s.put_bytes("big", data.clone()).await.unwrap();
        assert!(
            s.get_bytes("big").await.unwrap() == data,
            "whole read, fadvise {fadvise}"
        );
        let ranges: [(ByteRange, std::ops::Range<usize>); 6] = [
            (ByteRange::from(0..1), 0..1),
            (ByteRange::from(5_000_000..5_000_100), 5_000_000..5_000_100),
            (ByteRange::from(1_000_000..4_500_000), 1_000_000..4_500_000),
            (ByteRange::From(size as u64 - 10), size - 10..size),
            (ByteRange::Suffix(7 << 20), size - (7 << 20)..size),
            (ByteRange::from(3..(size as u64 + 99)), 3..size),
        ];
        for (range, want) in ranges {
            let got = s.get("big", GetOptions::range(range)).await.unwrap();
            assert_eq!(got.range, want.start as u64..want.end as u64);
            assert_eq!(got.meta.size, size as u64);
            let deferred = want.len() > 3 << 20;
            assert_eq!(matches!(got.body, Body::Deferred(_)), deferred, "{range:?}");
            if deferred {
                // A deferred body read whole: one buffer, exactly the range.
                let whole = s.get("big", GetOptions::range(range)).await.unwrap();
                let whole = whole.bytes().await.unwrap();
                assert!(
                    whole == data[want.clone()],
                    "{range:?} whole, fadvise {fadvise}"
                );
                let chunks: Vec<Bytes> = got.into_stream().try_collect().await.unwrap();
                assert!(chunks.iter().all(|c| c.len() <= (1 << 20) + 17));
                assert_eq!(chunks.len(), want.len().div_ceil((1 << 20) + 17));
                assert!(
                    chunks.concat() == data[want.clone()],
                    "{range:?} fadvise {fadvise}"
                );
            } else {
                assert!(
                    got.bytes().await.unwrap() == data[want.clone()],
                    "{range:?} fadvise {fadvise}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_file_truncated_while_streaming_is_an_error_not_a_short_body() {
    let (dir, s) = store_with(FsOptions {
        eager_read_max: 1024,
        read_chunk_size: 4096,
        ..FsOptions::default()
    });
    s.put_bytes("t", pattern(1, 100_000)).await.unwrap();
    let got = s.get("t", GetOptions::default()).await.unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("t"))
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let mut stream = got.into_stream();
    let mut total = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(c)) => total += c.len(),
            Some(Err(e)) => break e,
            None => panic!("stream ended after {total} bytes without an error"),
        }
    };
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(err.to_string().contains("file:///"), "{err}");
    assert!(total <= 50_000);
    assert!(
        stream.next().await.is_none(),
        "the stream goes on after an error"
    );
}

#[tokio::test]
async fn read_into_fills_spare_room_and_leaves_the_buffer_as_it_was_on_a_truncated_file() {
    let (dir, s) = store_with(FsOptions {
        eager_read_max: 1024,
        ..FsOptions::default()
    });
    let data = pattern(2, 300_000);
    s.put_bytes("r", data.clone()).await.unwrap();
    // A piece of a larger buffer, as a checkpoint load hands out: filled in place.
    let mut whole = bytes::BytesMut::with_capacity(300_000);
    let mut tail = whole.split_off(100_000);
    for (piece, range) in [(&mut whole, 0..100_000u64), (&mut tail, 100_000..300_000)] {
        let before = piece.as_ptr();
        s.get("r", GetOptions::range(range))
            .await
            .unwrap()
            .read_into(piece)
            .await
            .unwrap();
        assert_eq!(piece.as_ptr(), before, "read in place, not reallocated");
    }
    whole.unsplit(tail);
    assert_eq!(&whole[..], &data[..]);

    let got = s.get("r", GetOptions::default()).await.unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("r"))
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let mut buf = bytes::BytesMut::from(&b"kept"[..]);
    let err = got.read_into(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(err.to_string().contains("file:///"), "{err}");
    assert_eq!(&buf[..], b"kept");
}

#[tokio::test]
async fn registry_resolves_file_uris() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::with_parse_options(ParseOptions::default());
    s3dlio_store_fs::register(&mut reg);
    let path = dir.path().join("sub/x.bin");
    let uri = format!("file://{}", path.display());
    let (store, key) = reg.resolve(&uri).await.unwrap();
    assert_eq!(store.base_uri(), "file:///");
    assert_eq!(PathBuf::from(format!("/{key}")), path);
    assert_eq!(store.uri_of(&key), uri);
    store
        .put_bytes(&key, Bytes::from_static(b"via registry"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"via registry");
    let (again, _) = reg
        .resolve(&format!("file://{}", dir.path().display()))
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(&store, &again),
        "one store for all file:// URIs"
    );
    let prefix = format!("{}/", dir.path().to_str().unwrap().trim_start_matches('/'));
    assert_eq!(
        names(&*again, &prefix, ListOptions::recursive()).await,
        [key.as_str()]
    );
    let e = store.head(&format!("{key}.missing")).await.unwrap_err();
    assert!(e.to_string().contains(&format!("{uri}.missing")), "{e}");
}

#[test]
fn root_validation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let k = |r: s3dlio_store_core::Result<FsStore>| r.unwrap_err().kind();
    assert_eq!(k(FsStore::new("relative/dir")), ErrorKind::InvalidInput);
    assert_eq!(
        k(FsStore::new(dir.path().join("missing"))),
        ErrorKind::NotFound
    );
    assert_eq!(k(FsStore::new(&file)), ErrorKind::InvalidInput);
    assert_eq!(
        k(FsStore::new(dir.path().join("x/.."))),
        ErrorKind::InvalidInput
    );
    let zero = FsOptions {
        read_chunk_size: 0,
        ..FsOptions::default()
    };
    assert_eq!(
        k(FsStore::with_options(dir.path(), zero)),
        ErrorKind::InvalidInput
    );
    let e = FsStore::new(dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");

    let text = dir.path().to_str().unwrap();
    let s = FsStore::new(format!("{text}//./")).unwrap();
    assert_eq!(s.base_uri(), format!("file://{text}/"));
    assert_eq!(s.root(), dir.path());
    assert_eq!(s.uri_of("a/b"), format!("file://{text}/a/b"));
    assert_eq!(FsStore::new("/").unwrap().base_uri(), "file:///");
    let caps = s.capabilities();
    assert!(
        caps.range_get
            && caps.get_if_match
            && caps.put_create_only
            && caps.copy
            && caps.list_delimiter
    );
    assert!(
        !caps.put_if_match
            && !caps.content_type
            && !caps.user_metadata
            && !caps.object_and_prefix_same_name
    );
}

#[tokio::test]
async fn copy_semantics() {
    let (dir, s) = store();
    s.put_bytes("src", pattern(3, 300_000)).await.unwrap();
    let r = s
        .copy("src", "deep/new/dst", CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(r.size, 300_000);
    assert_eq!(s.head("deep/new/dst").await.unwrap().etag, r.etag);
    s.copy("src", "src", CopyOptions::default()).await.unwrap();
    assert_eq!(s.get_bytes("src").await.unwrap(), pattern(3, 300_000));
    assert_eq!(
        kind(s.copy("nope", "x", CopyOptions::default()).await),
        ErrorKind::NotFound
    );
    assert!(temp_files(dir.path()).is_empty());
}
