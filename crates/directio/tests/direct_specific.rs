//! What direct:// adds to the shared suite: exact round trips of unaligned sizes (up to
//! 1 GiB + 3), ranged reads at unaligned offsets, that reads and writes really bypass the
//! page cache, and the behaviour where a file system refuses O_DIRECT (an error by
//! default, a buffered fallback on request). Each test prints the file system it ran on.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use s3dlio_directio::{DirectOptions, DirectStore, Fallback};
use s3dlio_store_core::conformance::{assert_same, pattern};
use s3dlio_store_core::{
    ByteRange, ErrorKind, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, Registry,
};

/// Small I/Os, so modest objects take many of them, several in flight.
fn small_io() -> DirectOptions {
    DirectOptions {
        io_size: 64 << 10,
        queue_depth: 4,
        ..DirectOptions::default()
    }
}

/// Pages of `path` in the page cache, and the file's pages: `mincore` on a mapping of the
/// file (mapping it does not read it).
fn cached_pages(path: &Path) -> (usize, usize) {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    if len == 0 {
        return (0, 0);
    }
    // SAFETY: plain syscalls on a mapping this function creates and removes; the vector
    // has one byte per page of the mapping, as mincore requires.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
        let pages = len.div_ceil(page);
        let mut v = vec![0u8; pages];
        assert_eq!(libc::mincore(map, len, v.as_mut_ptr()), 0, "mincore");
        libc::munmap(map, len);
        (v.iter().filter(|b| **b & 1 != 0).count(), pages)
    }
}

/// Drop `path`'s pages from the page cache.
fn evict(path: &Path) {
    let f = File::open(path).unwrap();
    // SAFETY: a plain syscall on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[tokio::test(flavor = "multi_thread")]
async fn unaligned_sizes_round_trip_exactly_and_files_end_at_their_size() {
    let Some((dir, _)) = common::tempdir("unaligned_sizes") else {
        return;
    };
    let store = DirectStore::with_options(dir.path(), small_io()).unwrap();
    let sizes = [
        0usize,
        1,
        511,
        512,
        4095,
        4096,
        4097,
        65_535,
        65_536,
        65_537,
        (1 << 20) - 1,
        (3 << 20) + 5,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        let data = pattern(i as u64, size);
        // One-shot put.
        let key = format!("put/{size}");
        let r = store.put_bytes(&key, data.clone()).await.unwrap();
        assert_eq!(r.size, size as u64);
        let on_disk = std::fs::metadata(store.path_of(&key)).unwrap().len();
        assert_eq!(on_disk, size as u64, "file of a {size}-byte put");
        assert_same(&store.get_bytes(&key).await.unwrap(), &data, &key);
        // Streaming writer fed in odd pieces.
        let key = format!("writer/{size}");
        let mut w = store.writer(&key, PutOptions::default()).await.unwrap();
        for piece in data.chunks(7_777) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.complete().await.unwrap();
        let on_disk = std::fs::metadata(store.path_of(&key)).unwrap().len();
        assert_eq!(on_disk, size as u64, "file of a {size}-byte streamed write");
        let streamed: Vec<Bytes> = store
            .get(&key, GetOptions::default())
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_same(&streamed.concat(), &data, &key);
        // And a copy.
        let copy = format!("copy/{size}");
        store.copy(&key, &copy, Default::default()).await.unwrap();
        assert_same(&store.get_bytes(&copy).await.unwrap(), &data, &copy);
        assert_eq!(
            std::fs::metadata(store.path_of(&copy)).unwrap().len(),
            size as u64
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ranged_reads_at_unaligned_offsets() {
    let Some((dir, _)) = common::tempdir("ranged_reads") else {
        return;
    };
    let store = DirectStore::with_options(dir.path(), small_io()).unwrap();
    let size = (3 << 20) + 777;
    let data = pattern(42, size);
    store.put_bytes("obj", data.clone()).await.unwrap();
    let s = size as u64;
    let ranges = [
        ByteRange::from(0..1),
        ByteRange::from(1..2),
        ByteRange::from(4095..4097),
        ByteRange::from(511..513),
        ByteRange::from(5_000..70_000),
        ByteRange::from(65_535..(2 << 20) + 3),
        ByteRange::from(12_345..s),
        ByteRange::from(s - 1..s + 10),
        ByteRange::From(s - 700),
        ByteRange::From(3),
        ByteRange::Suffix(1),
        ByteRange::Suffix(5_000),
        ByteRange::Suffix(s + 5),
    ];
    for r in ranges {
        let want = r.resolve(s).unwrap();
        let want = &data[want.start as usize..want.end as usize];
        let got = store.get_range("obj", r).await.unwrap();
        assert_same(&got, want, &format!("{r:?} whole"));
        let chunks: Vec<Bytes> = store
            .get("obj", GetOptions::range(r))
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_same(&chunks.concat(), want, &format!("{r:?} streamed"));
    }
}

/// Deterministic data addressed by absolute offset (a multiple of 8): each 8-byte word
/// holds its own index, scrambled, so misplaced blocks are caught.
fn fill(buf: &mut [u8], start: u64) {
    assert_eq!(start % 8, 0);
    let first = start / 8;
    for (i, w) in buf.chunks_mut(8).enumerate() {
        let v = (first + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        w.copy_from_slice(&v.to_le_bytes()[..w.len()]);
    }
}

fn expected(start: u64, len: usize) -> Vec<u8> {
    let aligned = start / 8 * 8;
    let mut v = vec![0u8; len + (start - aligned) as usize];
    fill(&mut v, aligned);
    v.drain(..(start - aligned) as usize);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn one_gib_plus_three_round_trips() {
    let Some((dir, _)) = common::tempdir("one_gib_plus_three") else {
        return;
    };
    let store = DirectStore::new(dir.path()).unwrap();
    let size: u64 = (1 << 30) + 3;
    let block = 8usize << 20;
    let mut w = store.writer("big", PutOptions::default()).await.unwrap();
    let mut pos = 0u64;
    while pos < size {
        let len = (size - pos).min(block as u64) as usize;
        let mut b = vec![0u8; len];
        fill(&mut b, pos);
        let b = Bytes::from(b);
        // Unaligned pieces, so the writer gathers and pads across them.
        let cut = len.min(1_000_003);
        w.write(b.slice(..cut)).await.unwrap();
        w.write(b.slice(cut..)).await.unwrap();
        pos += len as u64;
    }
    w.complete().await.unwrap();
    let path = store.path_of("big");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    assert_eq!(store.head("big").await.unwrap().size, size);

    // Streamed back whole, compared chunk by chunk.
    let mut body = store
        .get("big", GetOptions::default())
        .await
        .unwrap()
        .into_stream();
    let mut at = 0u64;
    while let Some(chunk) = body.try_next().await.unwrap() {
        if chunk[..] != expected(at, chunk.len())[..] {
            panic!("bytes differ in the chunk at {at}");
        }
        at += chunk.len() as u64;
    }
    assert_eq!(at, size);
    // Ranges: the tail, across the 1 GiB boundary, and a large unaligned one read whole.
    for (start, end) in [
        (size - 3, size),
        ((1 << 30) - 5, size),
        (123_457, 123_457 + (100 << 20) + 7),
    ] {
        let got = store
            .get_range("big", ByteRange::from(start..end))
            .await
            .unwrap();
        assert!(
            got[..] == expected(start, (end - start) as usize)[..],
            "range {start}..{end}"
        );
    }
    let (cached, pages) = cached_pages(&path);
    eprintln!("one_gib_plus_three: {cached} of {pages} pages in the page cache after the reads");
    assert!(cached <= 2, "{cached} of {pages} pages cached");
    drop(store);
    std::fs::remove_file(&path).unwrap();
}

/// The check that would fail if O_DIRECT were silently not used: after writing and reading
/// through the store, the file's pages are not in the page cache; after one buffered read
/// (the control), they are.
#[tokio::test(flavor = "multi_thread")]
async fn reads_and_writes_bypass_the_page_cache() {
    let Some((dir, _)) = common::tempdir("bypass_page_cache") else {
        return;
    };
    let store = DirectStore::new(dir.path()).unwrap();
    for (key, size) in [("aligned", 32usize << 20), ("unaligned", (32 << 20) + 5)] {
        let data = pattern(7, size);
        store.put_bytes(key, data.clone()).await.unwrap();
        let path = store.path_of(key);
        let (after_write, pages) = cached_pages(&path);
        assert_same(&store.get_bytes(key).await.unwrap(), &data, key);
        let streamed: Vec<Bytes> = store
            .get(key, GetOptions::default())
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_same(&streamed.concat(), &data, key);
        let part = store
            .get_range(key, ByteRange::from(4097..(9 << 20) + 1))
            .await
            .unwrap();
        assert_same(&part, &data[4097..(9 << 20) + 1], key);
        let (after_reads, _) = cached_pages(&path);
        // The control: a buffered read fills the cache, so the check above can see it.
        let buffered = std::fs::read(&path).unwrap();
        assert_eq!(buffered.len(), size);
        let (control, _) = cached_pages(&path);
        evict(&path);
        eprintln!(
            "{key}: {pages} pages; cached after the write {after_write}, after three reads \
             {after_reads}, after one buffered read (control) {control}"
        );
        assert!(after_write <= 1, "{after_write} pages cached by the write");
        assert!(after_reads <= 1, "{after_reads} pages cached by the reads");
        assert!(
            control >= pages * 9 / 10,
            "the control read cached only {control} of {pages} pages: the check is blind"
        );
    }
}

/// A ramfs mount (ramfs refuses O_DIRECT with EINVAL; tmpfs accepts it since Linux 6.6),
/// unmounted on drop.
struct Ramfs {
    dir: tempfile::TempDir,
}

impl Ramfs {
    fn mount(test: &str) -> Option<Self> {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("refusing-fs");
        std::fs::create_dir_all(&base).ok()?;
        let dir = tempfile::tempdir_in(&base).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "ramfs", "s3dlio-test"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "{test}: SKIPPED: cannot mount a ramfs here (needs root and mount permission)"
            );
            return None;
        }
        eprintln!(
            "{test}: running in {} ({})",
            dir.path().display(),
            common::fs(dir.path())
        );
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_o_direct_is_a_clear_error_by_default() {
    let Some(ramfs) = Ramfs::mount("refused_o_direct") else {
        return;
    };
    assert!(!s3dlio_directio::supports_o_direct(ramfs.path()).unwrap());
    let store = DirectStore::new(ramfs.path()).unwrap();
    let e = store
        .put_bytes("a/x", Bytes::from_static(b"hello"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    let msg = e.to_string();
    let path = ramfs.path().join("a/x");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("(ramfs)") && msg.contains("O_DIRECT"), "{msg}");
    assert!(msg.contains("S3DLIO_DIRECT_FALLBACK=buffered"), "{msg}");
    assert_eq!(
        std::fs::read_dir(ramfs.path().join("a")).unwrap().count(),
        0,
        "nothing left behind"
    );
    let mut w = store.writer("w", PutOptions::default()).await;
    assert_eq!(w.as_mut().unwrap_err().kind(), ErrorKind::NotSupported);
    // A file put there by other means cannot be read either.
    std::fs::write(ramfs.path().join("plain"), b"abc").unwrap();
    let e = store.get_bytes("plain").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    // Metadata and listings need no O_DIRECT.
    assert_eq!(store.head("plain").await.unwrap().size, 3);
    assert_eq!(store.list_objects("").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn opt_in_fallback_uses_buffered_io() {
    let Some(ramfs) = Ramfs::mount("fallback") else {
        return;
    };
    // Opted in the way the CLI and Python do: through the environment variable's value.
    let opts = DirectOptions::from_lookup(|k| {
        (k == "S3DLIO_DIRECT_FALLBACK").then(|| "buffered".to_owned())
    })
    .unwrap();
    assert_eq!(opts.fallback, Fallback::Buffered);
    let mut registry = Registry::new();
    s3dlio_directio::register_with(&mut registry, DirectOptions { ..small_io() });
    let mut fallback = Registry::new();
    s3dlio_directio::register_with(&mut fallback, DirectOptions { ..opts });
    let uri = format!("direct://{}/k", ramfs.path().display());
    let (strict, key) = registry.resolve(&uri).await.unwrap();
    assert_eq!(
        strict
            .put_bytes(&key, Bytes::from_static(b"x"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotSupported
    );
    let (store, key) = fallback.resolve(&uri).await.unwrap();
    let store: Arc<dyn ObjectStore> = store;
    for size in [0usize, 1, 4097, (1 << 20) + 3] {
        let data = pattern(size as u64, size);
        store.put_bytes(&key, data.clone()).await.unwrap();
        assert_eq!(
            std::fs::metadata(ramfs.path().join("k")).unwrap().len(),
            size as u64
        );
        assert_same(&store.get_bytes(&key).await.unwrap(), &data, "fallback");
        if size > 10 {
            let got = store
                .get_range(&key, ByteRange::from(3..size as u64 - 2))
                .await
                .unwrap();
            assert_same(&got, &data[3..size - 2], "fallback range");
        }
    }
}

#[test]
fn alignment_comes_from_the_file_system() {
    let Some((dir, fs)) = common::tempdir("alignment") else {
        return;
    };
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let a = s3dlio_directio::alignment_of(&f).unwrap();
    eprintln!("alignment: {a} bytes on {fs}");
    assert!(a.is_power_of_two() && (512..=65536).contains(&a), "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_opens_direct_uris() {
    let Some((dir, _)) = common::tempdir("registry") else {
        return;
    };
    let mut registry = Registry::new();
    s3dlio_directio::register(&mut registry);
    let uri = format!("direct://{}/sub/obj.bin", dir.path().display());
    let (store, key) = registry.resolve(&uri).await.unwrap();
    assert_eq!(store.base_uri(), "direct:///");
    assert_eq!(store.uri_of(&key), uri);
    let data = pattern(1, 10_000);
    store.put_bytes(&key, data.clone()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("sub/obj.bin")).unwrap(), data);
    let e = store.get_bytes("no/such/key").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("direct:///no/such/key"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_symlinks_never_lead_out_of_the_root() {
    use std::os::unix::fs::symlink;
    let Some((dir, _)) = common::tempdir("containment") else {
        return;
    };
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    symlink(outside.join("secret"), root.join("leak")).unwrap();
    symlink(&outside, root.join("leakdir")).unwrap();
    let store = DirectStore::with_options(&root, small_io()).unwrap();
    let data = Bytes::from_static(b"payload");
    for key in [
        "../escape",
        "a/../../escape",
        "..",
        "a/..",
        "/abs",
        "leakdir/new",
        "leakdir/secret",
    ] {
        let put = store.put(key, data.clone(), PutOptions::default()).await;
        assert!(put.is_err(), "put {key:?} succeeded");
        let kind = put.unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::InvalidInput | ErrorKind::PermissionDenied),
            "put {key:?}: {kind:?}"
        );
        assert!(store.get_bytes(key).await.is_err(), "get {key:?} succeeded");
        let w = store.writer(key, PutOptions::default()).await;
        if let Ok(mut w) = w {
            let r = async {
                w.write(data.clone()).await?;
                w.complete().await
            }
            .await;
            assert!(r.is_err(), "writer to {key:?} completed");
        }
        let _ = store.delete(key).await;
    }
    // A write to a key that is a link out of the root replaces the link (temp + rename),
    // never writes through it.
    store
        .put("leak", data.clone(), PutOptions::default())
        .await
        .unwrap();
    assert!(!std::fs::symlink_metadata(root.join("leak"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read(root.join("leak")).unwrap(), b"payload");
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"secret",
        "the file outside is untouched"
    );
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"], "nothing was created outside the root");
    assert!(!dir.path().join("escape").exists() && !Path::new("/abs").exists());
}
