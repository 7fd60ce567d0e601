//! Put, get or list many objects under an `s3://` prefix with bounded concurrency, and
//! report what was done and what it cost, as one JSON line on stdout:
//! `{"ops":N,"bytes":M,"wall_s":W,"cpu_s":C}`. The S3 side of `cargo xtask bench s3`;
//! also handy on its own to see what an endpoint sustains.
//!
//! ```text
//! s3_load put    s3://bucket/prefix/ -n 1000 -s 4096 [-j 64]
//! s3_load get    s3://bucket/prefix/ -n 1000 [-s 4096] [-j 64]  # objects written by `put`
//! s3_load list   s3://bucket/prefix/                            # recursive listing, counted
//! s3_load delete s3://bucket/prefix/                            # every object under it
//! s3_load create-bucket s3://bucket/
//! s3_load delete-bucket s3://bucket/                            # must be empty
//! ```
//!
//! `--backend native` (the default) uses the aws-sdk-s3 backend; `--backend object-store`
//! the `object_store` one (built with the feature `object-store-backend`). Endpoint, region
//! and credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, ...).
//!
//! Only the operation is timed: the client is built and PUT payloads are generated first
//! (so `put` holds COUNT x SIZE bytes in memory). `wall_s` is the phase's wall time and
//! `cpu_s` this process's user + system CPU over it (`getrusage`), so a benchmark can compare
//! it with other clients measured the same way. With `-s`, `get` checks that every object
//! has that size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_store_core::{list_stream, ListItem, ListOptions, ObjectStoreExt, Registry};
use s3dlio_store_s3::{S3Options, S3Store};

const OPS: &[&str] = &[
    "put",
    "get",
    "list",
    "delete",
    "create-bucket",
    "delete-bucket",
];

const USAGE: &str = "usage: s3_load put|get|list|delete|create-bucket|delete-bucket \
                     s3://bucket/prefix/ [-n COUNT] [-s SIZE] [-j JOBS] \
                     [--backend native|object-store]";

struct Args {
    op: String,
    uri: String,
    count: usize,
    /// For `get`: the size every object must have, if given.
    size: Option<usize>,
    jobs: usize,
    object_store: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let op = it.next().ok_or(USAGE)?;
    let uri = it.next().ok_or(USAGE)?;
    let mut a = Args {
        op,
        uri,
        count: 100,
        size: None,
        jobs: 64,
        object_store: false,
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--backend" {
            a.object_store = match v.as_str() {
                "native" => false,
                "object-store" => true,
                other => return Err(format!("--backend: '{other}' is not native|object-store")),
            };
            continue;
        }
        let n: usize = v
            .parse()
            .map_err(|_| format!("{flag}: '{v}' is not a number"))?;
        match flag.as_str() {
            "-n" => a.count = n,
            "-s" => a.size = Some(n),
            "-j" => a.jobs = n.max(1),
            other => return Err(format!("unknown option '{other}'\n{USAGE}")),
        }
    }
    if !OPS.contains(&a.op.as_str()) {
        return Err(USAGE.into());
    }
    if a.object_store && !cfg!(feature = "object-store-backend") {
        return Err("--backend object-store needs a build with --features \
                    object-store-backend"
            .into());
    }
    if a.object_store && a.op.ends_with("-bucket") {
        return Err(format!("{}: only with --backend native", a.op));
    }
    Ok(a)
}

/// Object `i` of `n`, with content distinct per object.
fn payload(i: usize, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
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

#[cfg(feature = "object-store-backend")]
fn register_object_store(registry: &mut Registry) {
    s3dlio_store_s3::register_object_store(registry, S3Options::default());
}

#[cfg(not(feature = "object-store-backend"))]
fn register_object_store(_: &mut Registry) {
    unreachable!("refused in parse()");
}

/// `s3://bucket/...` -> `bucket`.
fn bucket_of(uri: &str) -> Result<&str, String> {
    uri.strip_prefix("s3://")
        .and_then(|rest| rest.split('/').next())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("'{uri}' is not s3://bucket/..."))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ops, bytes, wall, cpu) = rt.block_on(async {
        if a.op.ends_with("-bucket") {
            let store = S3Store::new(bucket_of(&a.uri)?, S3Options::default()).await?;
            let (start, cpu0) = (Instant::now(), cpu_time());
            if a.op == "create-bucket" {
                store.create_bucket().await?;
            } else {
                store.delete_bucket().await?;
            }
            return Ok::<_, Box<dyn std::error::Error>>((
                1,
                0,
                start.elapsed(),
                cpu_time().saturating_sub(cpu0),
            ));
        }
        let mut registry = Registry::new();
        if a.object_store {
            register_object_store(&mut registry);
        } else {
            s3dlio_store_s3::register(&mut registry);
        }
        // Builds the client: not part of the timed phase.
        let (store, prefix) = registry.resolve(&a.uri).await?;
        let key = |i: usize| format!("{prefix}obj-{i:07}");
        let bodies: Vec<Bytes> = if a.op == "put" {
            let size = a.size.unwrap_or(4096);
            (0..a.count).map(|i| payload(i, size)).collect()
        } else {
            Vec::new()
        };
        let (start, cpu0) = (Instant::now(), cpu_time());
        let (ops, bytes) = match a.op.as_str() {
            "put" => {
                futures::stream::iter(bodies.into_iter().enumerate())
                    .map(|(i, body)| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move { store.put_bytes(&k, body).await.map(|r| r.size) }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await?
            }
            "get" => {
                futures::stream::iter(0..a.count)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move {
                            let len = store.get_bytes(&k).await?.len();
                            match a.size {
                                Some(want) if want != len => Err(format!(
                                    "{}: {len} bytes, expected {want}",
                                    store.uri_of(&k)
                                )
                                .into()),
                                _ => Ok::<u64, Box<dyn std::error::Error>>(len as u64),
                            }
                        }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await?
            }
            "delete" => (store.delete_prefix(&prefix).await?, 0),
            _ => {
                list_stream(Arc::clone(&store), prefix.clone(), ListOptions::recursive())
                    .try_fold((0u64, 0u64), |(n, b), item| async move {
                        Ok(match item {
                            ListItem::Object(m) => (n + 1, b + m.size),
                            ListItem::Prefix(_) => (n, b),
                        })
                    })
                    .await?
            }
        };
        Ok((ops, bytes, start.elapsed(), cpu_time().saturating_sub(cpu0)))
    })?;
    println!(
        "{{\"ops\":{ops},\"bytes\":{bytes},\"wall_s\":{:.6},\"cpu_s\":{:.6}}}",
        wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
    Ok(())
}
