//! Put, get or list many objects under an `s3://` prefix with bounded concurrency, and
//! report what was done: `ops=N bytes=M` on stdout. The S3 side of `cargo xtask bench s3`;
//! also handy on its own to see what an endpoint sustains.
//!
//! ```text
//! s3_load put  s3://bucket/prefix/ -n 1000 -s 4096 [-j 64]
//! s3_load get  s3://bucket/prefix/ -n 1000 [-j 64]    # objects written by `put`
//! s3_load list s3://bucket/prefix/                     # recursive listing, counted
//! ```
//!
//! Endpoint, region and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_store_core::{list_stream, ListItem, ListOptions, ObjectStoreExt, Registry};

struct Args {
    op: String,
    uri: String,
    count: usize,
    size: usize,
    jobs: usize,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: s3_load put|get|list s3://bucket/prefix/ [-n COUNT] [-s SIZE] [-j JOBS]";
    let op = it.next().ok_or(usage)?;
    let uri = it.next().ok_or(usage)?;
    let mut a = Args {
        op,
        uri,
        count: 100,
        size: 4096,
        jobs: 64,
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: usize = v
            .parse()
            .map_err(|_| format!("{flag}: '{v}' is not a number"))?;
        match flag.as_str() {
            "-n" => a.count = n,
            "-s" => a.size = n,
            "-j" => a.jobs = n.max(1),
            other => return Err(format!("unknown option '{other}'\n{usage}")),
        }
    }
    if !["put", "get", "list"].contains(&a.op.as_str()) {
        return Err(usage.into());
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ops, bytes) = rt.block_on(async {
        let mut registry = Registry::new();
        s3dlio_store_s3::register(&mut registry);
        let (store, prefix) = registry.resolve(&a.uri).await?;
        let key = |i: usize| format!("{prefix}obj-{i:07}");
        match a.op.as_str() {
            "put" => {
                futures::stream::iter(0..a.count)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        let body = payload(i, a.size);
                        async move { store.put_bytes(&k, body).await.map(|r| r.size) }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await
            }
            "get" => {
                futures::stream::iter(0..a.count)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move { store.get_bytes(&k).await.map(|b| b.len() as u64) }
                    })
                    .buffer_unordered(a.jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await
            }
            _ => {
                list_stream(Arc::clone(&store), prefix.clone(), ListOptions::recursive())
                    .try_fold((0u64, 0u64), |(n, b), item| async move {
                        Ok(match item {
                            ListItem::Object(m) => (n + 1, b + m.size),
                            ListItem::Prefix(_) => (n, b),
                        })
                    })
                    .await
            }
        }
    })?;
    println!("ops={ops} bytes={bytes}");
    Ok(())
}
