//! Save and load one checkpoint of SIZE bytes as RANKS shards (one per rank, the ranks as
//! concurrent tasks of this process) under a URI, and report each phase as one JSON line on
//! stdout: `{"op":"save|load","bytes":N,"wall_s":W,"cpu_s":C}`.
//!
//! ```text
//! checkpoint_bench file:///tmp/ckpt-bench/ [--size 2GiB] [--ranks 4] [--part-size 64MiB]
//!                  [--zstd LEVEL] [--op both|save|load|raw|raw-put|raw-get] [--keep]
//! ```
//!
//! `--op raw` is the baseline on the same store: one plain PUT of each rank's shard
//! (`raw_put`), then one whole GET of each (`raw_get`), concurrently. `--op raw-put --keep`
//! then `--op raw-get` runs them as two processes.
//!
//! `save` stores every rank's shard and publishes (rank 0 waits for the others' markers,
//! writes the manifest and moves `latest`); `load` reads the latest checkpoint's shards, each
//! into one buffer with concurrent ranged reads, checking every CRC32C. The shard data is
//! generated before the timer starts and dropped before the load. `cpu_s` is this process's
//! user + system CPU over the phase (`getrusage`). Without `--keep`, everything under the
//! URI is deleted at the end (`--op save --keep` then `--op load` measures a cold load).
//!
//! `file://` and `s3://` URIs (the latter with endpoint and credentials from the standard AWS
//! environment: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3dlio_checkpoint::{CheckpointStore, Config, SaveOptions};
use s3dlio_store_core::{parse_size, ObjectStore, ObjectStoreExt, Registry};

const USAGE: &str = "usage: checkpoint_bench URI [--size 2GiB] [--ranks 4] [--part-size 64MiB] \
                     [--zstd LEVEL] [--op both|save|load|raw|raw-put|raw-get] [--keep]";

struct Args {
    uri: String,
    size: u64,
    ranks: u32,
    part_size: u64,
    zstd: Option<i32>,
    op: String,
    keep: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let uri = it.next().ok_or(USAGE)?;
    let mut a = Args {
        uri,
        size: 2 << 30,
        ranks: 4,
        part_size: 64 << 20,
        zstd: None,
        op: "both".into(),
        keep: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            a.keep = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let size = |v: &str| parse_size(v).map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--size" => a.size = size(&v)?,
            "--part-size" => a.part_size = size(&v)?,
            "--ranks" => a.ranks = v.parse().map_err(|_| format!("--ranks: '{v}'"))?,
            "--zstd" => a.zstd = Some(v.parse().map_err(|_| format!("--zstd: '{v}'"))?),
            "--op"
                if ["both", "save", "load", "raw", "raw-put", "raw-get"].contains(&v.as_str()) =>
            {
                a.op = v
            }
            other => return Err(format!("bad option '{other} {v}'\n{USAGE}")),
        }
    }
    if a.ranks == 0 {
        return Err("--ranks must be at least 1".into());
    }
    Ok(a)
}

/// The schemes this benchmark can open.
fn register_backends(registry: &mut Registry) {
    s3dlio_store_fs::register(registry);
    s3dlio_store_s3::register(registry);
}

/// Incompressible bytes, distinct per rank.
fn shard(rank: u32, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    let mut x = (u64::from(rank) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = c.len();
        c.copy_from_slice(&x.to_le_bytes()[..n]);
    }
    Bytes::from(v)
}

/// User + system CPU time of this whole process (every thread) so far.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct, and getrusage only
    // writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the out-pointer is valid for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn report(op: &str, bytes: u64, wall: Duration, cpu: Duration) {
    println!(
        "{{\"op\":\"{op}\",\"bytes\":{bytes},\"wall_s\":{:.6},\"cpu_s\":{:.6}}}",
        wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn save(ck: &CheckpointStore, a: &Args) -> Result<(), BoxError> {
    let step = ck.latest_step().await?.map_or(1, |s| s + 1);
    let per_rank = (a.size / u64::from(a.ranks)) as usize;
    let shards: Vec<Bytes> = (0..a.ranks).map(|r| shard(r, per_rank)).collect();
    let mut opts = SaveOptions::new(step)
        .distributed(a.ranks, format!("bench-{step}-{}", std::process::id()))
        .framework("bench");
    if let Some(level) = a.zstd {
        opts = opts.zstd(level);
    }
    let (start, cpu0) = (Instant::now(), cpu_time());
    let tasks: Vec<_> = shards
        .into_iter()
        .enumerate()
        .map(|(rank, data)| {
            let (ck, opts) = (ck.clone(), opts.clone());
            tokio::spawn(async move {
                let saver = ck.rank_saver(opts, rank as u32)?;
                saver.put_shard("model", data).await?;
                saver.finish().await
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    report(
        "save",
        per_rank as u64 * u64::from(a.ranks),
        start.elapsed(),
        cpu_time().saturating_sub(cpu0),
    );
    Ok(())
}

async fn load(ck: &CheckpointStore) -> Result<(), BoxError> {
    let (start, cpu0) = (Instant::now(), cpu_time());
    let m = ck.latest().await?.ok_or("no checkpoint to load")?;
    let tasks: Vec<_> = m
        .shards
        .iter()
        .map(|s| {
            let (ck, m, rank, name) = (ck.clone(), m.clone(), s.rank, s.name.clone());
            tokio::spawn(async move { ck.load_shard(&m, rank, &name).await.map(|b| b.len()) })
        })
        .collect();
    let mut bytes = 0u64;
    for t in tasks {
        bytes += t.await?? as u64;
    }
    report(
        "load",
        bytes,
        start.elapsed(),
        cpu_time().saturating_sub(cpu0),
    );
    Ok(())
}

/// Plain PUTs (`put`) then whole GETs (`get`) of the same shards, each concurrently, for
/// comparison.
async fn raw(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    a: &Args,
    put: bool,
    get: bool,
) -> Result<(), BoxError> {
    let per_rank = (a.size / u64::from(a.ranks)) as usize;
    let key = |r: usize| format!("{prefix}raw/shard-{r:05}");
    let total = per_rank as u64 * u64::from(a.ranks);
    if put {
        let shards: Vec<Bytes> = (0..a.ranks).map(|r| shard(r, per_rank)).collect();
        let (start, cpu0) = (Instant::now(), cpu_time());
        let puts: Vec<_> = shards
            .into_iter()
            .enumerate()
            .map(|(r, data)| {
                let (store, k) = (Arc::clone(store), key(r));
                tokio::spawn(async move { store.put_bytes(&k, data).await })
            })
            .collect();
        for t in puts {
            t.await??;
        }
        report(
            "raw_put",
            total,
            start.elapsed(),
            cpu_time().saturating_sub(cpu0),
        );
    }
    if get {
        let (start, cpu0) = (Instant::now(), cpu_time());
        let gets: Vec<_> = (0..a.ranks as usize)
            .map(|r| {
                let (store, k) = (Arc::clone(store), key(r));
                tokio::spawn(async move { store.get_bytes(&k).await.map(|b| b.len()) })
            })
            .collect();
        let mut bytes = 0u64;
        for t in gets {
            bytes += t.await?? as u64;
        }
        if bytes != total {
            return Err(format!("raw GETs read {bytes} bytes, expected {total}").into());
        }
        report(
            "raw_get",
            total,
            start.elapsed(),
            cpu_time().saturating_sub(cpu0),
        );
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut registry = Registry::new();
        register_backends(&mut registry);
        let (store, prefix) = registry.resolve(&a.uri).await?;
        let ck = CheckpointStore::from_arc(store.clone(), &prefix).with_config(Config {
            part_size: a.part_size,
            ..Config::default()
        });
        if a.op == "both" || a.op == "save" {
            save(&ck, &a).await?;
        }
        if a.op.starts_with("raw") {
            raw(&store, &prefix, &a, a.op != "raw-get", a.op != "raw-put").await?;
        } else if a.op != "save" {
            load(&ck).await?;
        }
        if !a.keep {
            let keys = store
                .list_objects(&prefix)
                .await?
                .into_iter()
                .map(|m| m.key)
                .collect();
            for r in store.delete_many(keys).await? {
                r?;
            }
        }
        Ok(())
    })
}
