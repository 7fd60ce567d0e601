//! The async loader end to end on in-memory stores: plans honoured, sharding across ranks x
//! workers, resume, streamed listings, out-of-order completion, the memory bound, TFRecord
//! records, ranged reads, the blocking iterator.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{arc, filled, key, tag, Probe};
use futures::StreamExt;
use s3dlio_loader::plan::{epoch_order, plan};
use s3dlio_loader::{Batch, Dataset, Loader, LoaderOptions, Remainder};
use s3dlio_store_core::{Fault, FaultStore, MemoryStore, ObjectStore, ObjectStoreExt, Operation};
use tokio::time::Instant;

fn opts(batch_size: usize) -> LoaderOptions {
    LoaderOptions {
        batch_size,
        rank: Some(0),
        world_size: Some(1),
        ..LoaderOptions::default()
    }
}

async fn collect(loader: &Loader, epoch: u64, consumed: u64) -> Vec<Batch> {
    let mut s = loader.resume(epoch, consumed);
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.push(b.unwrap());
    }
    out
}

fn indices(batches: &[Batch]) -> Vec<Vec<u64>> {
    batches
        .iter()
        .map(|b| b.samples.iter().map(|s| s.index).collect())
        .collect()
}

#[tokio::test]
async fn ordered_loading_follows_the_plan_and_bytes_match() {
    let store = arc(filled("d/", 50, |i| 100 + i).await);
    for shuffle in [false, true] {
        let o = LoaderOptions {
            shuffle,
            seed: 9,
            ..opts(8)
        };
        let loader =
            Loader::new(Dataset::from_prefix(Arc::clone(&store), "d/"), o.clone()).unwrap();
        let batches = collect(&loader, 2, 0).await;
        let spec = o.shard_spec(0).unwrap();
        let want: Vec<Vec<u64>> = plan(&spec, epoch_order(50, shuffle, 9, 2))
            .into_iter()
            .map(|b| b.items.into_iter().map(|p| p.item).collect())
            .collect();
        assert_eq!(indices(&batches), want);
        for (n, b) in batches.iter().enumerate() {
            assert_eq!(b.number, n as u64);
            assert_eq!(b.epoch, 2);
            for s in &b.samples {
                assert_eq!(tag(&s.data), s.index, "bytes of the right object");
                assert_eq!(s.data.len() as u64, 100 + s.index);
                assert_eq!(s.uri, format!("mem:///{}", key("d/", s.index as usize)));
            }
        }
    }
}

#[tokio::test]
async fn ranks_and_workers_read_every_sample_once_with_equal_batch_counts() {
    let store = arc(filled("d/", 103, |_| 16).await);
    let (world, workers) = (3, 2);
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut batch_counts = Vec::new();
    for rank in 0..world {
        let mut count = 0;
        for worker_id in 0..workers {
            let o = LoaderOptions {
                batch_size: 5,
                shuffle: true,
                seed: 3,
                rank: Some(rank),
                world_size: Some(world),
                num_workers: workers,
                worker_id,
                ordered: rank % 2 == 0,
                remainder: Remainder::Pad,
                ..LoaderOptions::default()
            };
            let loader = Loader::new(Dataset::from_prefix(Arc::clone(&store), "d/"), o).unwrap();
            let batches = collect(&loader, 0, 0).await;
            count += batches.len();
            for s in batches.iter().flat_map(|b| &b.samples) {
                if !s.padding {
                    *seen.entry(s.index).or_default() += 1;
                }
            }
        }
        batch_counts.push(count);
    }
    assert_eq!(seen.len(), 103);
    assert!(seen.values().all(|&n| n == 1));
    assert!(
        batch_counts.iter().all(|&c| c == batch_counts[0]),
        "{batch_counts:?}"
    );
}

#[tokio::test]
async fn resume_continues_exactly_where_the_epoch_stopped() {
    let store = arc(filled("d/", 40, |_| 16).await);
    let o = LoaderOptions {
        shuffle: true,
        seed: 5,
        ..opts(6)
    };
    let loader = Loader::new(Dataset::from_prefix(store, "d/"), o).unwrap();
    let full: Vec<u64> = indices(&collect(&loader, 1, 0).await).concat();
    // Consume three batches, "checkpoint", start again from there.
    let mut s = loader.epoch(1);
    for _ in 0..3 {
        s.next().await.unwrap().unwrap();
    }
    let consumed = s.stats().samples;
    drop(s);
    assert_eq!(consumed, 18);
    let rest: Vec<u64> = indices(&collect(&loader, 1, consumed).await).concat();
    assert_eq!(rest, full[18..]);
    // Another epoch is another order.
    let other: Vec<u64> = indices(&collect(&loader, 2, 0).await).concat();
    assert_ne!(other, full);
}

#[tokio::test(start_paused = true)]
async fn first_batch_arrives_before_a_slow_listing_finishes() {
    let mem = filled("big/", 10_000, |_| 8).await;
    let fs = Arc::new(FaultStore::new(mem).on_calls(
        Some(Operation::List),
        1,
        u64::MAX,
        Fault::Delay(Duration::from_secs(1)),
    ));
    let ds =
        Dataset::from_prefix(fs.clone() as Arc<dyn ObjectStore>, "big/").with_list_page_size(100);
    let loader = Loader::new(ds.clone(), opts(32)).unwrap();
    let t = Instant::now();
    let mut s = loader.stream();
    let b = s.next().await.unwrap().unwrap();
    assert_eq!(b.len(), 32);
    assert_eq!(b.samples[0].index, 0);
    // The whole listing takes 100 pages x 1 s; the first batch came after the first page.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        fs.calls(Operation::List) < 10,
        "{} pages",
        fs.calls(Operation::List)
    );
    drop(s);

    // With shuffle the listing must be complete first (documented).
    let lists = fs.calls(Operation::List);
    let loader = Loader::new(
        ds,
        LoaderOptions {
            shuffle: true,
            ..opts(32)
        },
    )
    .unwrap();
    let t = Instant::now();
    let mut s = loader.stream();
    s.next().await.unwrap().unwrap();
    assert!(t.elapsed() >= Duration::from_secs(100));
    assert_eq!(fs.calls(Operation::List) - lists, 100);
    // The next epoch reuses the complete listing.
    drop(s);
    let lists = fs.calls(Operation::List);
    let batches = collect(&loader, 1, 0).await;
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 10_000);
    assert_eq!(fs.calls(Operation::List), lists);
}

/// Object `i` takes 2 s to arrive when `i % 16 == 0`, else 100 ms.
fn varied(key: &str) -> Duration {
    let i: usize = key.rsplit('/').next().unwrap().parse().unwrap();
    if i % 16 == 0 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(100)
    }
}

async fn timed(ordered: bool) -> (Duration, Duration, Vec<u64>) {
    let store = Arc::new(Probe::new(filled("d/", 64, |_| 64).await, varied));
    let o = LoaderOptions {
        ordered,
        max_in_flight: 8,
        prefetch: 2,
        ..opts(8)
    };
    let loader = Loader::new(Dataset::from_prefix(store, "d/"), o).unwrap();
    let t = Instant::now();
    let mut s = loader.stream();
    let mut first = None;
    let mut all = Vec::new();
    while let Some(b) = s.next().await {
        let b = b.unwrap();
        first.get_or_insert(t.elapsed());
        assert_eq!(b.len(), 8);
        all.extend(b.samples.iter().map(|s| s.index));
    }
    all.sort_unstable();
    (first.unwrap(), t.elapsed(), all)
}

#[tokio::test(start_paused = true)]
async fn out_of_order_completion_beats_head_of_line_blocking() {
    let (o_first, o_total, o_all) = timed(true).await;
    let (u_first, u_total, u_all) = timed(false).await;
    assert_eq!(o_all, (0..64).collect::<Vec<_>>());
    assert_eq!(u_all, o_all, "same samples either way");
    eprintln!("ordered: first {o_first:?} total {o_total:?}; out of order: first {u_first:?} total {u_total:?}");
    // Ordered waits 2 s for sample 0; out of order forms a batch from the fast ones.
    assert!(o_first >= Duration::from_secs(2), "{o_first:?}");
    assert!(
        u_first * 4 <= o_first,
        "first batch {u_first:?} vs {o_first:?}"
    );
    // And it finishes much sooner: slow samples no longer stall the window.
    assert!(u_total * 2 <= o_total, "total {u_total:?} vs {o_total:?}");
}

async fn bounded(ordered: bool, bound: u64) -> (u64, u64) {
    // Sizes 1..16 KiB known from the listing; a slow consumer lets prefetch pile up.
    bounded_with(ordered, bound, |i| 1024 * (1 + i % 16), false).await
}

async fn bounded_with(
    ordered: bool,
    bound: u64,
    size: fn(usize) -> usize,
    keys_only: bool,
) -> (u64, u64) {
    let mem = filled("d/", 120, size).await;
    let store = Arc::new(Probe::new(mem, |k| {
        let i: u64 = k.rsplit('/').next().unwrap().parse().unwrap();
        Duration::from_millis(5 * (1 + i % 7))
    }));
    let o = LoaderOptions {
        ordered,
        max_in_flight: 16,
        prefetch: 16,
        max_prefetch_bytes: bound,
        ..opts(4)
    };
    let ds = if keys_only {
        Dataset::from_keys(store.clone(), (0..120).map(|i| key("d/", i)))
    } else {
        Dataset::from_prefix(store.clone(), "d/")
    };
    let loader = Loader::new(ds, o).unwrap();
    let mut s = loader.stream();
    let mut n = 0;
    while let Some(b) = s.next().await {
        let b = b.unwrap();
        store.consumed(b.bytes());
        n += b.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 120);
    (store.max_outstanding(), s.stats().peak_reserved_bytes)
}

#[tokio::test(start_paused = true)]
async fn memory_bound_holds_in_flight_plus_buffered() {
    const BOUND: u64 = 64 * 1024;
    const LARGEST: u64 = 16 * 1024;
    for ordered in [true, false] {
        let (seen, peak) = bounded(ordered, BOUND).await;
        eprintln!("ordered={ordered}: at most {seen} bytes outstanding, {peak} reserved");
        assert!(
            seen <= BOUND + LARGEST,
            "ordered={ordered}: {seen} bytes outstanding"
        );
        assert!(
            peak <= BOUND + LARGEST,
            "ordered={ordered}: {peak} reserved"
        );
        assert!(
            seen >= BOUND / 2,
            "ordered={ordered}: the bound was not even approached ({seen})"
        );
        // Without the bound, the same run holds far more: it is the bound that limits.
        let (unbounded, _) = bounded(ordered, u64::MAX).await;
        eprintln!("ordered={ordered}: unbounded {unbounded} bytes outstanding");
        assert!(
            unbounded > BOUND + LARGEST,
            "ordered={ordered}: {unbounded}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn memory_bound_holds_when_sizes_are_unknown() {
    // A key list: no sizes until read. Reservations use the largest size seen (a batch's
    // share of the bound before the first); with equal sizes the bound holds as well.
    const BOUND: u64 = 32 * 1024;
    for ordered in [true, false] {
        let (seen, _) = bounded_with(ordered, BOUND, |_| 8 * 1024, true).await;
        assert!(seen <= BOUND + 8 * 1024, "ordered={ordered}: {seen}");
        assert!(seen >= BOUND / 2, "ordered={ordered}: {seen}");
    }
}

#[tokio::test]
async fn tfrecord_records_are_samples() {
    let store = MemoryStore::new();
    let mut file = Vec::new();
    let mut index = String::new();
    for i in 0..25u64 {
        let data = vec![i as u8; 10 + i as usize];
        let mut framed = Vec::new();
        s3dlio_tfrecord_index::append_record(&mut framed, &data);
        index.push_str(&format!("{} {}\n", file.len(), framed.len()));
        file.extend_from_slice(&framed);
    }
    store
        .put_bytes("t/train.tfrecord", file.into())
        .await
        .unwrap();
    store
        .put_bytes("t/train.tfrecord.idx", index.into())
        .await
        .unwrap();
    let ds = Dataset::from_tfrecord(
        arc(store.clone()),
        "t/train.tfrecord",
        "t/train.tfrecord.idx",
    )
    .await
    .unwrap();
    assert_eq!(ds.len(), Some(25));
    let loader = Loader::new(
        ds,
        LoaderOptions {
            shuffle: true,
            ..opts(4)
        },
    )
    .unwrap();
    let batches = collect(&loader, 0, 0).await;
    let mut n = 0;
    for s in batches.iter().flat_map(|b| &b.samples) {
        assert_eq!(s.data.len() as u64, 10 + s.index);
        assert!(s.data.iter().all(|&b| b == s.index as u8));
        assert!(s.range.is_some());
        n += 1;
    }
    assert_eq!(n, 25);

    // A corrupt record is an error naming the file and the record.
    let mut file = store.get_bytes("t/train.tfrecord").await.unwrap().to_vec();
    file[12] ^= 0xff;
    store
        .put_bytes("t/train.tfrecord", file.into())
        .await
        .unwrap();
    let ds = Dataset::from_tfrecord(arc(store), "t/train.tfrecord", "t/train.tfrecord.idx")
        .await
        .unwrap();
    let loader = Loader::new(ds, opts(4)).unwrap();
    let err = loader.stream().next().await.unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("mem:///t/train.tfrecord (record at offset 0)"),
        "{msg}"
    );
    assert!(msg.contains("bad data CRC"), "{msg}");
}

#[tokio::test]
async fn large_objects_are_read_as_concurrent_ranges() {
    let mem = filled("d/", 3, |i| if i == 1 { 10_000 } else { 100 }).await;
    let fs = Arc::new(FaultStore::new(mem.clone()));
    let o = LoaderOptions {
        range_threshold: Some(4096),
        range_part_size: 1000,
        ..opts(3)
    };
    let loader = Loader::new(Dataset::from_prefix(fs.clone(), "d/"), o).unwrap();
    let b = collect(&loader, 0, 0).await.pop().unwrap();
    assert_eq!(fs.calls(Operation::Get), 1 + 10 + 1);
    assert_eq!(
        b.samples[1].data,
        mem.get_bytes(&key("d/", 1)).await.unwrap()
    );
}

#[test]
fn blocking_iterator_for_callers_without_async() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(filled("d/", 30, |_| 32));
    let loader = Loader::new(Dataset::from_prefix(arc(store), "d/"), opts(7)).unwrap();
    let it = loader.blocking_iter(rt.handle(), 0, 0);
    let sizes: Vec<usize> = it.map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![7, 7, 7, 7, 2]);
}

#[tokio::test]
async fn file_store_through_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12u8 {
        std::fs::write(dir.path().join(format!("s{i:02}.bin")), vec![i; 500]).unwrap();
    }
    let mut registry = s3dlio_store_core::Registry::new();
    s3dlio_store_fs::register(&mut registry);
    let uri = format!("file://{}/", dir.path().display());
    let ds = Dataset::from_uri(&registry, &uri).await.unwrap();
    let loader = Loader::new(ds, opts(5)).unwrap();
    let batches = collect(&loader, 0, 0).await;
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        vec![5, 5, 2]
    );
    let s = &batches[2].samples[1];
    assert_eq!(s.uri, format!("{uri}s11.bin"));
    assert_eq!(s.data.as_ref(), &[11u8; 500][..]);

    let uris: Vec<String> = (0..3).map(|i| format!("{uri}s{i:02}.bin")).collect();
    let ds = Dataset::from_uris(&registry, uris.iter().rev())
        .await
        .unwrap();
    let loader = Loader::new(ds, opts(5)).unwrap();
    let b = collect(&loader, 0, 0).await;
    let firsts: Vec<u8> = b[0].samples.iter().map(|s| s.data[0]).collect();
    assert_eq!(firsts, vec![2, 1, 0]);
}

#[tokio::test]
async fn a_manifest_caches_the_listing_across_loaders() {
    let fs = Arc::new(FaultStore::new(filled("d/", 45, |i| 10 + i).await));
    let store: Arc<dyn ObjectStore> = fs.clone();
    let ds = || {
        Dataset::from_prefix(Arc::clone(&store), "d/")
            .with_list_page_size(10)
            .with_manifest("manifests/d.txt")
    };
    let o = LoaderOptions {
        shuffle: true,
        seed: 11,
        ..opts(8)
    };
    // The first loader lists (5 pages) and writes the manifest...
    let first = indices(&collect(&Loader::new(ds(), o.clone()).unwrap(), 0, 0).await);
    assert_eq!(fs.calls(Operation::List), 5);
    let text = fs.inner().get_bytes("manifests/d.txt").await.unwrap();
    let text = std::str::from_utf8(&text).unwrap();
    assert!(
        text.starts_with("s3dlio-manifest 1\n10\td/000000\n11\td/000001\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 46);
    // ... which a second loader (another process, another rank) reads instead of listing,
    // with the same order.
    let again = indices(&collect(&Loader::new(ds(), o.clone()).unwrap(), 0, 0).await);
    assert_eq!(fs.calls(Operation::List), 5);
    assert_eq!(again, first);
    // Without shuffle too.
    let plain = collect(&Loader::new(ds(), opts(8)).unwrap(), 0, 0).await;
    assert_eq!(indices(&plain).concat(), (0..45).collect::<Vec<_>>());
    assert_eq!(fs.calls(Operation::List), 5);
    // A damaged manifest is an error naming it, not a silent re-list.
    fs.inner()
        .put_bytes("manifests/d.txt", "junk\n".into())
        .await
        .unwrap();
    let err = Loader::new(ds(), opts(8))
        .unwrap()
        .stream()
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("mem:///manifests/d.txt"), "{err}");
}

#[tokio::test]
async fn map_style_access_by_index() {
    let fs = Arc::new(FaultStore::new(filled("d/", 20, |i| 30 + i).await));
    let loader = Loader::new(
        Dataset::from_prefix(fs.clone() as Arc<dyn ObjectStore>, "d/").with_list_page_size(8),
        opts(4),
    )
    .unwrap();
    assert_eq!(loader.dataset_len().await.unwrap(), 20);
    let s = loader.get(13).await.unwrap();
    assert_eq!((s.index, s.data.len(), tag(&s.data)), (13, 43, 13));
    assert_eq!(s.uri, "mem:///d/000013");
    // Listed once (3 pages), then kept: also for the epochs that follow.
    loader.get(2).await.unwrap();
    let batches = collect(&loader, 0, 0).await;
    assert_eq!(batches.len(), 5);
    assert_eq!(fs.calls(Operation::List), 3);
    let err = loader.get(20).await.unwrap_err();
    assert!(
        err.to_string().contains("past the dataset's 20 samples"),
        "{err}"
    );
}

#[tokio::test]
async fn empty_datasets_give_empty_epochs() {
    let store = arc(MemoryStore::new());
    for remainder in [Remainder::Pad, Remainder::Drop, Remainder::Uneven] {
        for shuffle in [false, true] {
            let o = LoaderOptions {
                remainder,
                shuffle,
                world_size: Some(4),
                rank: Some(3),
                ..opts(4)
            };
            let l = Loader::new(Dataset::from_prefix(Arc::clone(&store), "none/"), o).unwrap();
            assert!(collect(&l, 0, 0).await.is_empty());
        }
    }
}
