//! A load generator for `direct://`, which `cargo xtask bench direct` runs beside `fio`:
//!
//! ```text
//! direct_load write    DIR --count N --size BYTES [--jobs J] [--io-size B] [--queue-depth Q] [--io-threads T]
//! direct_load read     DIR --count N --size BYTES [--jobs J] ...
//! direct_load randread DIR --count N --size BYTES --ops M [--block B] [--jobs J] ...
//! ```
//!
//! Objects are `DIR/f000000.bin`, ... `write` puts them (J puts in flight, each split
//! into I/Os of `--io-size`, `--queue-depth` of them in flight); `read` gets each whole
//! into one buffer (`GetResult::bytes`) and checks its size; `randread` gets M ranges of
//! `--block` bytes (4 KiB) at random block-aligned offsets of random objects, J in flight.
//! The store's I/O threads (`--io-threads`) bound the I/Os in flight overall. Prints one
//! JSON line: `{"ops":..,"bytes":..,"wall_s":..}` (the timed phase only).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_directio::{DirectOptions, DirectStore};
use s3dlio_store_core::{parse_size, ByteRange, ObjectStoreExt};

struct Args {
    mode: String,
    dir: String,
    count: usize,
    size: usize,
    jobs: usize,
    ops: usize,
    block: u64,
    opts: DirectOptions,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: direct_load write|read|randread DIR [options]")?;
    let dir = it.next().ok_or("missing DIR")?;
    let mut a = Args {
        mode,
        dir,
        count: 16,
        size: 16 << 20,
        jobs: 2,
        ops: 10_000,
        block: 4096,
        opts: DirectOptions::default(),
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let size = || {
            parse_size(&v)
                .map(|n| n as usize)
                .map_err(|e| format!("{flag}: {e}"))
        };
        let num = || v.parse::<usize>().map_err(|_| format!("{flag}: '{v}'"));
        match flag.as_str() {
            "--count" => a.count = num()?,
            "--size" => a.size = size()?,
            "--jobs" => a.jobs = num()?,
            "--ops" => a.ops = num()?,
            "--block" => a.block = size()? as u64,
            "--io-size" => a.opts.io_size = size()?,
            "--queue-depth" => a.opts.queue_depth = num()?,
            "--io-threads" => a.opts.io_threads = num()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// The key of object `i` in a store rooted at `/`, as `direct:///DIR/` opens it.
fn key(dir: &str, i: usize) -> String {
    format!("{}/f{i:06}.bin", dir.trim_matches('/'))
}

/// A small xorshift generator: reproducible offsets without a dependency.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Rooted at `/`, as the registry opens `direct:///DIR/...` for s3-cli and Python.
    let store = Arc::new(DirectStore::with_options("/", a.opts.clone())?);
    let dir = a.dir.clone();
    let (ops, bytes, wall) = rt.block_on(async {
        // Incompressible data made before the clock starts, in ordinary (unaligned) memory
        // as a caller's would be.
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        let payload = if a.mode == "write" {
            let mut v = vec![0u8; a.size];
            for w in v.chunks_mut(8) {
                let n = w.len();
                w.copy_from_slice(&next(&mut x).to_le_bytes()[..n]);
            }
            Bytes::from(v)
        } else {
            Bytes::new()
        };
        let start = Instant::now();
        let (ops, bytes) = match a.mode.as_str() {
            "write" => {
                let n = futures::stream::iter(0..a.count)
                    .map(|i| {
                        let (store, data, dir) = (Arc::clone(&store), payload.clone(), &dir);
                        async move { store.put_bytes(&key(dir, i), data).await.map(|r| r.size) }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold(0u64, |n, s| async move { Ok(n + s) })
                    .await?;
                (a.count, n)
            }
            "read" => {
                let size = a.size as u64;
                let n = futures::stream::iter(0..a.count)
                    .map(|i| {
                        let (store, dir) = (Arc::clone(&store), &dir);
                        async move {
                            let got = store.get_bytes(&key(dir, i)).await?;
                            if got.len() as u64 != size {
                                return Err(s3dlio_store_core::Error::other(format!(
                                    "{}: {} bytes, expected {size}",
                                    key(dir, i),
                                    got.len()
                                )));
                            }
                            Ok(got.len() as u64)
                        }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold(0u64, |n, s| async move { Ok(n + s) })
                    .await?;
                (a.count, n)
            }
            "randread" => {
                let blocks = a.size as u64 / a.block;
                let picks: Vec<(usize, u64)> = (0..a.ops)
                    .map(|_| {
                        let obj = (next(&mut x) % a.count as u64) as usize;
                        (obj, next(&mut x) % blocks * a.block)
                    })
                    .collect();
                let block = a.block;
                let n = futures::stream::iter(picks)
                    .map(|(obj, off)| {
                        let (store, dir) = (Arc::clone(&store), &dir);
                        async move {
                            let r = ByteRange::from(off..off + block);
                            store
                                .get_range(&key(dir, obj), r)
                                .await
                                .map(|b| b.len() as u64)
                        }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold(0u64, |n, s| async move { Ok(n + s) })
                    .await?;
                (a.ops, n)
            }
            other => return Err(format!("unknown mode {other}").into()),
        };
        Ok::<_, Box<dyn std::error::Error>>((ops, bytes, start.elapsed()))
    })?;
    println!(
        "{{\"ops\":{ops},\"bytes\":{bytes},\"wall_s\":{:.6}}}",
        wall.as_secs_f64()
    );
    Ok(())
}
