//! Put, get or list many objects under an `s3://` prefix with bounded concurrency, and
//! report what was done and what it cost, as one JSON line on stdout:
//! `{"ops":N,"bytes":M,"wall_s":W,"cpu_s":C,"start_unix_s":S,"end_unix_s":E,...}`, and for
//! `put` and `get` each operation's latency: `p50_ms` ... `max_ms`, and the whole HDR
//! histogram as `"latency_ns":[[V,C],...]` (value and count of each recorded bucket, so
//! the histograms of several processes can be merged exactly). The S3 side of
//! `cargo xtask bench s3`; also handy on its own to see what an endpoint sustains.
//!
//! ```text
//! s3_load put    s3://bucket/prefix/ -n 1000 -s 4096 [-j 64]
//! s3_load get    s3://bucket/prefix/ -n 1000 [-s 4096] [-j 64]  # objects written by `put`
//! s3_load get    s3://bucket/prefix/ -n 500 --first 500 --start-at 1767225600.5
//! s3_load head   s3://bucket/prefix/ -n 1000 [-s 4096] [-j 64]  # HEAD (stat) each object
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
//! `--first K` works on objects K .. K+COUNT (`obj-{K:07}` onwards), so N processes can
//! each take a share of one data set; `--start-at T` (Unix seconds) waits, once the client
//! is built and the payloads made, until that moment, so they start together. `start_unix_s`
//! and `end_unix_s` bound the phase, so a caller can take the span from the earliest start
//! to the latest end.
//!
//! Only the operation is timed: the client is built and PUT payloads are generated first
//! (so `put` holds COUNT x SIZE bytes in memory). `wall_s` is the phase's wall time and
//! `cpu_s` this process's user + system CPU over it (`getrusage`), so a benchmark can compare
//! it with other clients measured the same way. With `-s`, `get` and `head` check that every object
//! has that size.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_metrics::hdrhistogram::Histogram;
use s3dlio_store_core::{list_stream, ListItem, ListOptions, ObjectStoreExt, Registry};
use s3dlio_store_s3::{S3Options, S3Store};

const OPS: &[&str] = &[
    "put",
    "get",
    "head",
    "list",
    "delete",
    "create-bucket",
    "delete-bucket",
];

const USAGE: &str = "usage: s3_load put|get|head|list|delete|create-bucket|delete-bucket \
                     s3://bucket/prefix/ [-n COUNT] [-s SIZE] [-j JOBS] [--first K] \
                     [--start-at UNIX_SECONDS] [--backend native|object-store]";

struct Args {
    op: String,
    uri: String,
    count: usize,
    /// For `get`: the size every object must have, if given.
    size: Option<usize>,
    jobs: usize,
    object_store: bool,
    /// Index of the first object.
    first: usize,
    /// When the timed phase starts (Unix seconds), if given.
    start_at: Option<f64>,
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
        first: 0,
        start_at: None,
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
        if flag == "--start-at" {
            let t: f64 = v
                .parse()
                .map_err(|_| format!("--start-at: '{v}' is not a number of seconds"))?;
            a.start_at = Some(t);
            continue;
        }
        let n: usize = v
            .parse()
            .map_err(|_| format!("{flag}: '{v}' is not a number"))?;
        match flag.as_str() {
            "-n" => a.count = n,
            "-s" => a.size = Some(n),
            "-j" => a.jobs = n.max(1),
            "--first" => a.first = n,
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

/// Seconds since the Unix epoch, for lining up the phases of several processes.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sleep until `t` (Unix seconds), if it is still ahead.
async fn wait_until(t: f64) {
    let ahead = t - unix_now();
    if ahead > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(ahead)).await;
    }
}

/// What the timed phase did.
struct Done {
    ops: u64,
    bytes: u64,
    /// Each PUT's or GET's latency, in nanoseconds.
    latency: Option<Histogram<u64>>,
}

impl Done {
    fn new(latency: bool) -> Self {
        Self {
            ops: 0,
            bytes: 0,
            latency: latency.then(|| Histogram::new(3).expect("3 significant figures are valid")),
        }
    }

    fn add(mut self, bytes: u64, took: Duration) -> Self {
        self.ops += 1;
        self.bytes += bytes;
        if let Some(h) = &mut self.latency {
            // Grows to fit (`saturating_record` would clamp to its current range instead).
            let _ = h.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        self
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (done, wall, cpu, start_unix) = rt.block_on(async {
        if a.op.ends_with("-bucket") {
            let store = S3Store::new(bucket_of(&a.uri)?, S3Options::default()).await?;
            let (start, cpu0, unix0) = (Instant::now(), cpu_time(), unix_now());
            if a.op == "create-bucket" {
                store.create_bucket().await?;
            } else {
                store.delete_bucket().await?;
            }
            return Ok::<_, Box<dyn std::error::Error>>((
                Done::new(false).add(0, Duration::ZERO),
                start.elapsed(),
                cpu_time().saturating_sub(cpu0),
                unix0,
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
        let objects = a.first..a.first + a.count;
        let bodies: Vec<Bytes> = if a.op == "put" {
            let size = a.size.unwrap_or(4096);
            objects.clone().map(|i| payload(i, size)).collect()
        } else {
            Vec::new()
        };
        if let Some(t) = a.start_at {
            wait_until(t).await;
        }
        let (start, cpu0, unix0) = (Instant::now(), cpu_time(), unix_now());
        let done = match a.op.as_str() {
            "put" => {
                futures::stream::iter(objects.zip(bodies))
                    .map(|(i, body)| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move {
                            let t = Instant::now();
                            let size = store.put_bytes(&k, body).await?.size;
                            Ok::<_, s3dlio_store_core::Error>((size, t.elapsed()))
                        }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold(Done::new(true), |d, (s, t)| async move { Ok(d.add(s, t)) })
                    .await?
            }
            "get" | "head" => {
                let head = a.op == "head";
                futures::stream::iter(objects)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move {
                            let t = Instant::now();
                            let len = if head {
                                usize::try_from(store.head(&k).await?.size)?
                            } else {
                                store.get_bytes(&k).await?.len()
                            };
                            let took = t.elapsed();
                            match a.size {
                                Some(want) if want != len => Err(format!(
                                    "{}: {len} bytes, expected {want}",
                                    store.uri_of(&k)
                                )
                                .into()),
                                _ => Ok::<_, Box<dyn std::error::Error>>((len as u64, took)),
                            }
                        }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold(Done::new(true), |d, (s, t)| async move { Ok(d.add(s, t)) })
                    .await?
            }
            "delete" => Done {
                ops: store.delete_prefix(&prefix).await?,
                ..Done::new(false)
            },
            _ => {
                list_stream(Arc::clone(&store), prefix.clone(), ListOptions::recursive())
                    .try_fold(Done::new(false), |d, item| async move {
                        Ok(match item {
                            ListItem::Object(m) => Done {
                                ops: d.ops + 1,
                                bytes: d.bytes + m.size,
                                ..d
                            },
                            ListItem::Prefix(_) => d,
                        })
                    })
                    .await?
            }
        };
        Ok((
            done,
            start.elapsed(),
            cpu_time().saturating_sub(cpu0),
            unix0,
        ))
    })?;
    println!(
        "{{\"ops\":{},\"bytes\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\"start_unix_s\":{:.6},\
         \"end_unix_s\":{:.6}{}}}",
        done.ops,
        done.bytes,
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        start_unix,
        start_unix + wall.as_secs_f64(),
        done.latency
            .as_ref()
            .map_or(String::new(), s3dlio_metrics::latency_json_fields)
    );
    Ok(())
}
