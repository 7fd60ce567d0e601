//! Save, load, commit and failure behaviour on the in-memory and fault-injecting stores.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::data;
use futures::{stream, StreamExt, TryStreamExt};
use s3dlio_checkpoint::{CheckpointStore, Compression, Config, SaveOptions};
use s3dlio_store_core::{
    ErrorKind, Fault, FaultStore, MemoryStore, ObjectStore, ObjectStoreExt, Operation,
};

/// Small parts and ranges so that a few KiB exercise multi-part shards and split reads.
fn small() -> Config {
    Config {
        part_size: 1000,
        write_concurrency: 3,
        read_concurrency: 4,
        max_uploads: 8,
        max_reads: 16,
        range_size: 300,
        poll_interval: Duration::from_millis(5),
        named_keep: 2,
        named_zstd: None,
    }
}

fn ck_on(store: impl ObjectStore) -> CheckpointStore {
    CheckpointStore::new(store, "job/ckpt").with_config(small())
}

fn shards(step: u64) -> Vec<(String, Bytes)> {
    vec![
        ("model".into(), data(step, 4321)),
        ("optim".into(), data(step + 1000, 1000)),
        ("empty".into(), Bytes::new()),
    ]
}

/// The latest checkpoint is `step` and every shard loads and verifies with its data.
async fn assert_latest_is(ck: &CheckpointStore, step: u64) {
    let m = ck.latest().await.unwrap().expect("a checkpoint");
    assert_eq!(m.step, step);
    ck.verify(&m).await.unwrap();
    for (name, want) in shards(step) {
        assert_eq!(ck.load_shard(&m, 0, &name).await.unwrap(), want, "{name}");
    }
}

#[tokio::test]
async fn round_trip_in_parts_plain_and_compressed() {
    for zstd in [false, true] {
        let ck = ck_on(MemoryStore::new());
        let mut opts = SaveOptions::new(7)
            .epoch(2)
            .framework("pytorch")
            .metadata("lr", "0.1");
        if zstd {
            opts = opts.zstd(3);
        }
        let m = ck.save_step(opts, shards(7)).await.unwrap();
        assert_eq!((m.step, m.epoch, m.world_size), (7, Some(2), 1));
        assert_eq!(m.framework.as_deref(), Some("pytorch"));
        assert_eq!(m.metadata["lr"], "0.1");
        let model = m.shard(0, "model").unwrap();
        assert_eq!(model.parts.len(), 5, "4321 bytes in parts of 1000");
        assert_eq!(model.raw_crc32c, crc32c::crc32c(&data(7, 4321)));
        let want = if zstd {
            Compression::Zstd
        } else {
            Compression::None
        };
        assert_eq!(model.compression, want);

        assert_latest_is(&ck, 7).await;
        // Loads can run as their own tasks.
        let (ck2, m2) = (ck.clone(), m.clone());
        let spawned = tokio::spawn(async move { ck2.load_shard(&m2, 0, "model").await });
        assert_eq!(spawned.await.unwrap().unwrap(), data(7, 4321));
        // Into a caller's buffer, and as a stream of verified parts.
        let mut buf = vec![0u8; 4321];
        ck.load_shard_into(&m, 0, "model", &mut buf).await.unwrap();
        assert_eq!(buf, data(7, 4321));
        let parts: Vec<Bytes> = ck
            .load_shard_stream(&m, 0, "model")
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(parts.concat(), data(7, 4321));
        let e = ck
            .load_shard_into(&m, 0, "model", &mut [0u8; 5])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = ck.load_shard(&m, 0, "nope").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("0:model"), "{e}");
    }
}

#[tokio::test]
async fn compressible_shards_are_stored_smaller_and_crc_covers_both_forms() {
    let ck = ck_on(MemoryStore::new());
    let zeros = Bytes::from(vec![0u8; 50_000]);
    let m = ck
        .save_step(
            SaveOptions::new(1).zstd(1),
            vec![("z".into(), zeros.clone())],
        )
        .await
        .unwrap();
    let s = m.shard(0, "z").unwrap();
    assert!(s.size < s.raw_size / 10, "{} of {}", s.size, s.raw_size);
    for p in &s.parts {
        assert_ne!((p.size, p.crc32c), (p.raw_size, p.raw_crc32c));
    }
    assert_eq!(ck.load_shard(&m, 0, "z").await.unwrap(), zeros);
}

#[tokio::test]
async fn saves_from_a_stream_of_chunks() {
    let ck = ck_on(MemoryStore::new());
    let whole = data(3, 10_000);
    let chunks: Vec<_> = whole
        .chunks(777)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let saver = ck.rank_saver(SaveOptions::new(3), 0).unwrap();
    let e = saver
        .put_shard_stream("w", stream::iter(chunks).boxed())
        .await
        .unwrap();
    assert_eq!((e.raw_size, e.parts.len()), (10_000, 10));
    let m = saver.finish().await.unwrap().unwrap();
    assert_eq!(ck.load_shard(&m, 0, "w").await.unwrap(), whole);
}

/// Run a save of `step` over a fault store failing call `n` of `op`; return whether it
/// succeeded.
async fn save_with_fault(mem: &MemoryStore, step: u64, op: Operation, n: u64) -> bool {
    let faulty = FaultStore::new(mem.clone()).on_nth(op, n, Fault::Fail(ErrorKind::Other));
    ck_on(faulty)
        .save_step(SaveOptions::new(step), shards(step))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_failure_at_any_step_of_a_save_leaves_the_previous_checkpoint() {
    // Count the calls of a clean save.
    let counter = Arc::new(FaultStore::new(MemoryStore::new()));
    let ck = CheckpointStore::from_arc(counter.clone(), "job/ckpt").with_config(small());
    ck.save_step(SaveOptions::new(1), shards(1)).await.unwrap();
    let (writes, puts, gets, lists) = (
        counter.calls(Operation::Write),
        counter.calls(Operation::Put),
        counter.calls(Operation::Get),
        counter.calls(Operation::List),
    );
    // 5 + 1 + 1 parts (the empty shard has one empty part); marker, manifest, pointer.
    assert_eq!((writes, puts), (7, 3));

    let mem = MemoryStore::new();
    let ck = ck_on(mem.clone());
    ck.save_step(SaveOptions::new(1), shards(1)).await.unwrap();
    let mut step = 1;
    let mut last_good = 1;
    for (op, count) in [
        (Operation::Write, writes),
        (Operation::Put, puts),
        (Operation::Get, gets),
        (Operation::List, lists),
    ] {
        for n in 1..=count {
            step += 1;
            let ok = save_with_fault(&mem, step, op, n).await;
            if matches!(op, Operation::Write | Operation::Put) {
                assert!(!ok, "failing {op} {n} must fail the save");
            }
            if ok {
                last_good = step;
            }
            assert_latest_is(&ck, last_good).await;
        }
    }
    // The manifest committed before a failed pointer update is complete and loads by step.
    let committed = ck.list().await.unwrap();
    for s in committed {
        ck.verify(&ck.manifest(s).await.unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn an_aborted_shard_leaves_nothing_and_a_dropped_save_publishes_nothing() {
    let mem = MemoryStore::new();
    let ck = ck_on(mem.clone());
    let saver = ck.rank_saver(SaveOptions::new(5), 0).unwrap();
    let mut w = saver.shard_writer("big").unwrap();
    for i in 0..7 {
        w.write(data(i, 900)).await.unwrap();
    }
    assert_eq!(w.bytes_written(), 6300);
    w.abort().await.unwrap();
    assert!(mem.is_empty(), "{:?}", mem.list_objects("").await.unwrap());
    // A save whose rank never finishes publishes nothing.
    saver.put_shard("model", data(1, 3000)).await.unwrap();
    drop(saver);
    assert!(ck.latest().await.unwrap().is_none());
    assert!(ck.list().await.unwrap().is_empty());
}

/// Replace the object `key` of `mem` with `f` applied to its bytes.
async fn tamper(mem: &MemoryStore, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
    let mut v = mem.get_bytes(key).await.unwrap().to_vec();
    f(&mut v);
    mem.put_bytes(key, v.into()).await.unwrap();
}

#[tokio::test]
async fn flipped_and_truncated_shards_are_detected_naming_the_shard() {
    for zstd in [false, true] {
        let mem = MemoryStore::new();
        let ck = ck_on(mem.clone());
        let opts = if zstd {
            SaveOptions::new(9).zstd(3)
        } else {
            SaveOptions::new(9)
        };
        let m = ck.save_step(opts, shards(9)).await.unwrap();
        let part = m.shard(0, "model").unwrap().parts[2].key.clone();
        let key = format!("job/ckpt/{part}");
        tamper(&mem, &key, |v| v[17] ^= 0x01).await;
        let e = ck.load_shard(&m, 0, "model").await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("shard 'model' of rank 0"), "{msg}");
        assert!(msg.contains(&part) && msg.contains("corrupt"), "{msg}");
        assert!(msg.contains("CRC32C"), "{msg}");
        assert!(!e.is_retryable());
        assert!(ck.verify(&m).await.is_err());
        let mut buf = vec![0u8; 4321];
        let e = ck
            .load_shard_into(&m, 0, "model", &mut buf)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&part), "{e}");
        let streamed: Result<Vec<Bytes>, _> = ck
            .load_shard_stream(&m, 0, "model")
            .unwrap()
            .try_collect()
            .await;
        assert!(streamed.unwrap_err().to_string().contains("corrupt"));
        // Other shards still load.
        assert_eq!(
            ck.load_shard(&m, 0, "optim").await.unwrap(),
            data(1009, 1000)
        );
        // A single-part shard is checked the same way.
        let optim = m.shard(0, "optim").unwrap().parts[0].key.clone();
        tamper(&mem, &format!("job/ckpt/{optim}"), |v| v[999] ^= 0x80).await;
        let msg = ck.load_shard(&m, 0, "optim").await.unwrap_err().to_string();
        assert!(
            msg.contains("shard 'optim'") && msg.contains("CRC32C"),
            "{msg}"
        );

        tamper(&mem, &key, |v| v.truncate(v.len() / 2)).await;
        let msg = ck.load_shard(&m, 0, "model").await.unwrap_err().to_string();
        assert!(
            msg.contains("shard 'model'") && msg.contains(&part),
            "{msg}"
        );
        assert!(msg.contains("truncated"), "{msg}");
        mem.delete(&key).await.unwrap();
        let msg = ck.load_shard(&m, 0, "model").await.unwrap_err().to_string();
        assert!(msg.contains("missing") && msg.contains(&part), "{msg}");
    }
}

#[tokio::test]
async fn a_body_cut_short_in_flight_is_an_error_not_short_data() {
    let mem = MemoryStore::new();
    ck_on(mem.clone())
        .save_step(SaveOptions::new(1), shards(1))
        .await
        .unwrap();
    // Every read after the manifest's delivers 10 bytes and ends.
    let faulty =
        FaultStore::new(mem).on_calls(Some(Operation::Get), 2, u64::MAX, Fault::TruncateBody(10));
    let ck = ck_on(faulty);
    let m = ck.manifest(1).await.unwrap();
    let e = ck.load_shard(&m, 0, "model").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted);
    let msg = e.to_string();
    assert!(
        msg.contains("shard 'model' of rank 0") && msg.contains("cut short"),
        "{msg}"
    );
    let e = ck.verify(&m).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_never_leave_latest_on_an_incomplete_or_older_checkpoint() {
    let mem = MemoryStore::new();
    let ck = ck_on(mem.clone());
    ck.save_step(SaveOptions::new(0), shards(0)).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader that keeps loading latest while the writers race.
    let reader = {
        let (ck, stop) = (ck.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = 0u64;
            let mut loads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let m = ck.latest().await.unwrap().unwrap();
                assert!(m.step >= seen, "latest went back from {seen} to {}", m.step);
                seen = m.step;
                ck.verify(&m).await.unwrap();
                loads += 1;
                tokio::task::yield_now().await;
            }
            loads
        })
    };
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let ck = ck.clone();
            tokio::spawn(async move {
                for i in 0..6u64 {
                    let step = 1 + i * 8 + w;
                    ck.save_step(SaveOptions::new(step), shards(step))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
    assert_eq!(ck.pointer().await.unwrap().unwrap().step, 48);
    assert_latest_is(&ck, 48).await;

    // Writers of the same step: exactly one commits; latest holds its data, whole.
    let results: Vec<_> = futures::future::join_all((0..6u64).map(|w| {
        let ck = ck.clone();
        async move {
            let d = vec![("model".to_string(), data(w, 3000))];
            (w, ck.save_step(SaveOptions::new(100), d).await)
        }
    }))
    .await;
    let winners: Vec<u64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(w, _)| *w)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, r) in &results {
        if let Err(e) = r {
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        }
    }
    let m = ck.latest().await.unwrap().unwrap();
    assert_eq!(m.step, 100);
    assert_eq!(
        ck.load_shard(&m, 0, "model").await.unwrap(),
        data(winners[0], 3000)
    );
    // The losers removed their data: only the winner's folder is left for step 100.
    let left = mem
        .list_objects("job/ckpt/data/00000000000000000100-")
        .await
        .unwrap();
    assert!(left
        .iter()
        .all(|o| o.key.starts_with(&format!("job/ckpt/{}", m.data_prefix))));
    assert_eq!(left.len(), 4, "three parts and one marker: {left:?}");
}

#[tokio::test]
async fn retention_lists_loads_by_step_deletes_and_keeps_the_last_n() {
    let mem = MemoryStore::new();
    let ck = ck_on(mem.clone());
    for step in [10, 20, 30, 40, 50] {
        ck.save_step(SaveOptions::new(step), shards(step))
            .await
            .unwrap();
    }
    assert_eq!(ck.list().await.unwrap(), [10, 20, 30, 40, 50]);
    let m20 = ck.manifest(20).await.unwrap();
    assert_eq!(
        ck.load_shard(&m20, 0, "optim").await.unwrap(),
        data(1020, 1000)
    );
    ck.delete_step(20).await.unwrap();
    assert_eq!(
        ck.manifest(20).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let left = mem
        .list_objects(&format!("job/ckpt/{}", m20.data_prefix))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let e = ck.delete_step(50).await.unwrap_err();
    assert!(e.to_string().contains("latest"), "{e}");
    assert_eq!(ck.keep_last(2).await.unwrap(), [10, 30]);
    assert_eq!(ck.list().await.unwrap(), [40, 50]);
    // keep_last(0) still keeps what latest names.
    assert_eq!(ck.keep_last(0).await.unwrap(), [40]);
    assert_latest_is(&ck, 50).await;
}

#[tokio::test]
async fn garbage_of_crashed_saves_is_collected_and_committed_data_is_not() {
    let mem = MemoryStore::new();
    let ck = ck_on(mem.clone());
    ck.save_step(SaveOptions::new(1), shards(1)).await.unwrap();
    let saver = ck.rank_saver(SaveOptions::new(2), 0).unwrap();
    saver.put_shard("model", data(2, 2500)).await.unwrap();
    drop(saver); // a crash before the marker
    let gone = ck.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].starts_with("data/00000000000000000002-"));
    assert_latest_is(&ck, 1).await;
    assert!(ck.collect_garbage(Duration::ZERO).await.unwrap().is_empty());
}

#[tokio::test]
async fn named_checkpoints_save_and_load_the_newest_version() {
    let mem = MemoryStore::new();
    let ck = CheckpointStore::new(mem.clone(), "").with_config(small());
    ck.save("model_state", data(1, 5000)).await.unwrap();
    ck.save("model_state", data(2, 10)).await.unwrap();
    let m = ck.save("model_state", data(3, 2000)).await.unwrap();
    assert_eq!(m.step, 2);
    ck.save("other", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(ck.load("model_state").await.unwrap(), data(3, 2000));
    assert_eq!(ck.load("other").await.unwrap(), "x");
    let e = ck.load("missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Two versions kept; the top-level store has no checkpoints of its own.
    let manifests = mem
        .list_objects("named/model_state/manifests/")
        .await
        .unwrap();
    assert_eq!(manifests.len(), 2);
    assert!(ck.list().await.unwrap().is_empty());
    ck.delete_named("model_state").await.unwrap();
    assert!(ck.load("model_state").await.is_err());
    assert!(ck.save("bad/name", Bytes::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_named_saves_all_commit_distinct_versions() {
    let ck = CheckpointStore::new(MemoryStore::new(), "n").with_config(Config {
        named_keep: 10,
        ..small()
    });
    let steps: Vec<u64> = futures::future::join_all((0..4u64).map(|i| {
        let ck = ck.clone();
        async move { ck.save("s", data(i, 100)).await.unwrap().step }
    }))
    .await;
    let mut sorted = steps.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3]);
}

#[tokio::test]
async fn rank_zero_times_out_naming_the_ranks_that_did_not_finish() {
    let ck = ck_on(MemoryStore::new());
    let opts = SaveOptions::new(4)
        .distributed(4, "job-17")
        .publish_timeout(Duration::from_millis(100));
    for rank in [1, 3] {
        let s = ck.rank_saver(opts.clone(), rank).unwrap();
        s.put_shard("model", data(rank.into(), 1500)).await.unwrap();
        assert!(s.finish().await.unwrap().is_none());
    }
    let s0 = ck.rank_saver(opts.clone(), 0).unwrap();
    s0.put_shard("model", data(0, 1500)).await.unwrap();
    let e = s0.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("ranks [2]"), "{e}");
    assert!(ck.latest().await.unwrap().is_none());

    // Distributed saves need a shared id, and ranks must be in the world.
    let e = ck
        .rank_saver(
            SaveOptions {
                world_size: 2,
                ..SaveOptions::new(1)
            },
            0,
        )
        .unwrap_err();
    assert!(e.to_string().contains("save_id"), "{e}");
    assert!(ck.rank_saver(opts, 4).is_err());
}

#[tokio::test]
async fn in_process_ranks_publish_once_all_are_done_and_each_loads_its_own() {
    let ck = ck_on(MemoryStore::new());
    let opts = SaveOptions::new(8).distributed(3, "j1").framework("jax");
    let tasks: Vec<_> = (0..3u32)
        .map(|rank| {
            let (ck, opts) = (ck.clone(), opts.clone());
            tokio::spawn(async move {
                // Rank 0 finishes first and must wait for the others.
                tokio::time::sleep(Duration::from_millis(20 * u64::from(2 - rank))).await;
                let s = ck.rank_saver(opts, rank).unwrap();
                s.put_shard("model", data(rank.into(), 2222)).await.unwrap();
                s.finish().await.unwrap()
            })
        })
        .collect();
    let mut published = Vec::new();
    for t in tasks {
        published.push(t.await.unwrap());
    }
    assert!(published[0].is_some() && published[1].is_none() && published[2].is_none());
    let m = ck.latest().await.unwrap().unwrap();
    assert_eq!((m.world_size, m.shards.len()), (3, 3));
    for rank in 0..3u32 {
        let got = ck.load_rank(&m, rank).await.unwrap();
        assert_eq!(got, [("model".to_string(), data(rank.into(), 2222))]);
    }
}

#[tokio::test]
async fn named_checkpoints_can_be_stored_compressed() {
    let ck = CheckpointStore::new(MemoryStore::new(), "z").with_config(Config {
        named_zstd: Some(3),
        ..small()
    });
    let data = Bytes::from(vec![5u8; 50_000]);
    let m = ck.save("state", data.clone()).await.unwrap();
    let shard = &m.shards[0];
    assert_eq!(shard.compression, Compression::Zstd);
    assert!(
        shard.size < shard.raw_size / 10,
        "{} of {}",
        shard.size,
        shard.raw_size
    );
    assert_eq!(ck.load("state").await.unwrap(), data);
}

/// Counts part uploads (writer to complete) and reads (get calls) in flight, each held a
/// few milliseconds so that concurrent ones overlap.
mod gauge {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;
    use s3dlio_store_core::{
        Capabilities, GetOptions, GetResult, ListOptions, ListPage, MemoryStore, ObjectMeta,
        ObjectStore, ObjectWriter, PutOptions, PutResult, Result,
    };

    #[derive(Debug, Default)]
    pub struct Peak {
        now: AtomicUsize,
        pub max: AtomicUsize,
    }

    impl Peak {
        fn enter(&self) {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
        }
        fn leave(&self) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
        pub fn peak(&self) -> usize {
            self.max.load(Ordering::SeqCst)
        }
    }

    const HOLD: Duration = Duration::from_millis(3);

    #[derive(Debug, Default)]
    pub struct Gauged {
        pub inner: MemoryStore,
        pub uploads: Arc<Peak>,
        pub reads: Arc<Peak>,
    }

    #[derive(Debug)]
    struct Writer {
        inner: Box<dyn ObjectWriter>,
        peak: Arc<Peak>,
    }

    #[async_trait]
    impl ObjectWriter for Writer {
        async fn write(&mut self, data: Bytes) -> Result<()> {
            tokio::time::sleep(HOLD).await;
            self.inner.write(data).await
        }
        async fn complete(self: Box<Self>) -> Result<PutResult> {
            let r = self.inner.complete().await;
            self.peak.leave();
            r
        }
        async fn abort(self: Box<Self>) -> Result<()> {
            let r = self.inner.abort().await;
            self.peak.leave();
            r
        }
        fn bytes_written(&self) -> u64 {
            self.inner.bytes_written()
        }
    }

    #[async_trait]
    impl ObjectStore for Gauged {
        fn base_uri(&self) -> &str {
            self.inner.base_uri()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult> {
            self.reads.enter();
            tokio::time::sleep(HOLD).await;
            let r = self.inner.get(key, opts).await;
            self.reads.leave();
            r
        }
        async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
            self.inner.put(key, data, opts).await
        }
        async fn writer(&self, key: &str, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
            let inner = self.inner.writer(key, opts).await?;
            self.uploads.enter();
            Ok(Box::new(Writer {
                inner,
                peak: Arc::clone(&self.uploads),
            }))
        }
        async fn head(&self, key: &str) -> Result<ObjectMeta> {
            self.inner.head(key).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            opts: &ListOptions,
            token: Option<String>,
        ) -> Result<ListPage> {
            self.inner.list_page(prefix, opts, token).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_reads_are_bounded_across_every_shard_of_the_store() {
    let store = Arc::new(gauge::Gauged::default());
    let (uploads, reads) = (Arc::clone(&store.uploads), Arc::clone(&store.reads));
    // Per shard 4 parts and 4 reads may be in flight; the store allows 3 of each in all.
    let ck = CheckpointStore::from_arc(store, "b").with_config(Config {
        write_concurrency: 4,
        read_concurrency: 4,
        max_uploads: 3,
        max_reads: 3,
        ..small()
    });
    let world = 4u32;
    let saves = (0..world).map(|rank| {
        let ck = ck.clone();
        async move {
            let r = ck.rank_saver(SaveOptions::new(5).distributed(world, "s"), rank)?;
            r.put_shard("model", data(u64::from(rank), 9_000)).await?;
            r.finish().await
        }
    });
    futures::future::try_join_all(saves).await.unwrap();
    assert_eq!(uploads.peak(), 3, "part uploads in flight at the peak");

    let m = ck.latest().await.unwrap().unwrap();
    let loads = (0..world).map(|rank| {
        let (ck, m) = (ck.clone(), m.clone());
        async move { ck.load_shard(&m, rank, "model").await }
    });
    let got = futures::future::try_join_all(loads).await.unwrap();
    for (rank, shard) in got.into_iter().enumerate() {
        assert_eq!(shard, data(rank as u64, 9_000));
    }
    assert_eq!(reads.peak(), 3, "ranged reads in flight at the peak");
}
