//! Checkpoints over `file://` (store-fs), which has create-only writes but no If-Match:
//! the advisory pointer, and ranks as separate processes sharing one directory.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::data;
use futures::{stream, StreamExt};
use s3dlio_checkpoint::{CheckpointStore, Config, SaveOptions};
use s3dlio_store_core::ObjectStoreExt;
use s3dlio_store_fs::FsStore;

const RANK: &str = "S3DLIO_CKPT_TEST_RANK";
const WORLD: &str = "S3DLIO_CKPT_TEST_WORLD";
const DIR: &str = "S3DLIO_CKPT_TEST_DIR";
const STEP: &str = "S3DLIO_CKPT_TEST_STEP";

fn ck_in(dir: &std::path::Path) -> CheckpointStore {
    CheckpointStore::new(FsStore::new(dir).unwrap(), "run/ckpt/").with_config(Config {
        part_size: 64 << 10,
        range_size: 16 << 10,
        poll_interval: Duration::from_millis(20),
        ..Config::default()
    })
}

fn rank_data(step: u64, rank: u32, len: usize) -> Bytes {
    data(step * 100 + u64::from(rank), len)
}

/// One rank of a distributed save; does nothing unless started by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_process() {
    let Ok(rank) = std::env::var(RANK) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let rank: u32 = rank.parse().unwrap();
    let world: u32 = var(WORLD).parse().unwrap();
    let step: u64 = var(STEP).parse().unwrap();
    let ck = ck_in(std::path::Path::new(&var(DIR)));
    let opts = SaveOptions::new(step)
        .distributed(world, format!("test-{step}"))
        .framework("pytorch")
        .publish_timeout(Duration::from_secs(3));
    let saver = ck.rank_saver(opts, rank).unwrap();
    saver
        .put_shard("model", rank_data(step, rank, 300_000))
        .await
        .unwrap();
    // The optimizer state arrives as a stream of chunks.
    let optim = rank_data(step + 50, rank, 200_000);
    let chunks: Vec<_> = optim
        .chunks(30_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    saver
        .put_shard_stream("optim", stream::iter(chunks).boxed())
        .await
        .unwrap();
    match saver.finish().await {
        Ok(published) => assert_eq!(published.is_some(), rank == 0),
        Err(e) => {
            eprintln!("RANK-ERROR: {e}");
            std::process::exit(3);
        }
    }
}

/// Start ranks `ranks` of a `world`-rank save of `step` as processes; their exit codes.
fn run_ranks(dir: &std::path::Path, step: u64, world: u32, ranks: &[u32]) -> Vec<(i32, String)> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ranks
        .iter()
        .map(|r| {
            Command::new(&exe)
                .args(["--exact", "rank_process", "--nocapture", "--test-threads=1"])
                .env(RANK, r.to_string())
                .env(WORLD, world.to_string())
                .env(DIR, dir)
                .env(STEP, step.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            (out.status.code().unwrap_or(-1), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranks_as_separate_processes_save_one_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let world = 4;
    // Rank 0 starts first and waits for the others.
    for (code, out) in run_ranks(tmp.path(), 1, world, &[0, 1, 2, 3]) {
        assert_eq!(code, 0, "{out}");
    }
    let ck = ck_in(tmp.path());
    let m = ck.latest().await.unwrap().unwrap();
    assert_eq!((m.step, m.world_size, m.shards.len()), (1, world, 8));
    assert_eq!(m.framework.as_deref(), Some("pytorch"));
    ck.verify(&m).await.unwrap();
    for rank in 0..world {
        let shards = ck.load_rank(&m, rank).await.unwrap();
        assert_eq!(shards[0], ("model".into(), rank_data(1, rank, 300_000)));
        assert_eq!(shards[1], ("optim".into(), rank_data(51, rank, 200_000)));
    }

    // A save where rank 2 never runs: rank 0 gives up naming it; step 1 stays latest.
    let results = run_ranks(tmp.path(), 2, 3, &[0, 1]);
    assert_eq!(results[0].0, 3, "{}", results[0].1);
    assert!(results[0].1.contains("ranks [2] of 3"), "{}", results[0].1);
    assert_eq!(results[1].0, 0, "{}", results[1].1);
    assert_eq!(ck.latest().await.unwrap().unwrap().step, 1);
    assert_eq!(ck.list().await.unwrap(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_if_match_the_pointer_is_advisory_and_the_newest_manifest_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = ck_in(tmp.path());
    assert!(!ck.store().capabilities().put_if_match);
    for step in [1, 2] {
        let d = vec![("model".into(), rank_data(step, 0, 100_000))];
        ck.save_step(SaveOptions::new(step).zstd(1), d)
            .await
            .unwrap();
    }
    assert_eq!(ck.pointer().await.unwrap().unwrap().step, 2);
    // A racing writer that lost left the pointer on step 1: loads still take step 2.
    let p1 = br#"{"format":"s3dlio-checkpoint","version":1,"step":1,"manifest":"manifests/00000000000000000001.json"}"#;
    ck.store()
        .put_bytes("run/ckpt/latest", Bytes::from_static(p1))
        .await
        .unwrap();
    let m = ck.latest().await.unwrap().unwrap();
    assert_eq!(m.step, 2);
    assert_eq!(
        ck.load_shard(&m, 0, "model").await.unwrap(),
        rank_data(2, 0, 100_000)
    );
    // Its files are where docs/CHECKPOINT.md says.
    assert!(tmp
        .path()
        .join("run/ckpt/manifests/00000000000000000002.json")
        .is_file());
    assert!(tmp.path().join("run/ckpt/latest").is_file());
    // Named checkpoints work here too.
    ck.save("model_state", Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(ck.load("model_state").await.unwrap(), "abc");
}
