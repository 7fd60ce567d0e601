//! Put, get or list many blobs under an `az://` prefix with bounded concurrency, and report
//! what was done and what it cost, as one JSON line on stdout:
//! `{"ops":N,"bytes":M,"wall_s":W,"cpu_s":C}`. The Azure side of `cargo xtask bench az`;
//! also a short example of the backend.
//!
//! ```text
//! az_load put    az://account/container/prefix/ -n 1000 -s 4096 [-j 64]
//! az_load get    az://account/container/prefix/ -n 1000 [-s 4096] [-j 64]
//! az_load list   az://account/container/prefix/
//! az_load delete az://account/container/prefix/
//! az_load create-container az://account/container/
//! ```
//!
//! Account, endpoint and credential come from the standard Azure environment
//! (`AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY`,
//! `AZURE_STORAGE_SAS_TOKEN` or Entra ID; `AZURE_STORAGE_ENDPOINT` for the emulator). Only
//! the operation is timed: the client is built and payloads generated first. `cpu_s` is
//! this process's user + system CPU over the phase (`getrusage`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use s3dlio_store_azure::{AzureOptions, AzureStore};
use s3dlio_store_core::{list_stream, ListItem, ListOptions, ObjectStoreExt, Registry};

const USAGE: &str = "usage: az_load put|get|list|delete|create-container \
                     az://account/container/prefix/ [-n COUNT] [-s SIZE] [-j JOBS]";

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

/// Distinct, incompressible content per blob.
fn payload(i: usize, size: usize) -> Bytes {
    s3dlio_store_core::conformance::pattern(i as u64 + 1, size)
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let op = args.next().ok_or(USAGE)?;
    let uri = args.next().ok_or(USAGE)?;
    let (mut count, mut size, mut jobs) = (100usize, None, 64usize);
    while let Some(flag) = args.next() {
        let v: usize = args
            .next()
            .ok_or(USAGE)?
            .parse()
            .map_err(|_| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "-n" => count = v,
            "-s" => size = Some(v),
            "-j" => jobs = v.max(1),
            _ => return Err(USAGE.into()),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ops, bytes, wall, cpu) = rt.block_on(async {
        let mut registry = Registry::new();
        s3dlio_store_azure::register(&mut registry);
        let parsed = registry.parse(&uri)?;
        if op == "create-container" {
            let store = AzureStore::new(
                parsed.account.as_deref(),
                &parsed.container,
                AzureOptions::default(),
            )?;
            let (start, cpu0) = (Instant::now(), cpu_time());
            match store.create_container().await {
                Err(e) if e.kind() != s3dlio_store_core::ErrorKind::AlreadyExists => {
                    return Err(e.into())
                }
                _ => {}
            }
            return Res::Ok((1, 0, start.elapsed(), cpu_time().saturating_sub(cpu0)));
        }
        let store = registry.store_for(&parsed).await?;
        let prefix = parsed.key;
        let key = |i: usize| format!("{prefix}obj-{i:07}");
        let bodies: Vec<Bytes> = if op == "put" {
            (0..count)
                .map(|i| payload(i, size.unwrap_or(4096)))
                .collect()
        } else {
            Vec::new()
        };
        let (start, cpu0) = (Instant::now(), cpu_time());
        let (ops, bytes) = match op.as_str() {
            "put" => {
                futures::stream::iter(bodies.into_iter().enumerate())
                    .map(|(i, body)| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move { store.put_bytes(&k, body).await.map(|r| r.size) }
                    })
                    .buffer_unordered(jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await?
            }
            "get" => {
                futures::stream::iter(0..count)
                    .map(|i| {
                        let (store, k) = (Arc::clone(&store), key(i));
                        async move {
                            let len = store.get_bytes(&k).await?.len();
                            match size {
                                Some(want) if want != len => {
                                    Err(format!("{k}: {len} bytes, expected {want}").into())
                                }
                                _ => Res::Ok(len as u64),
                            }
                        }
                    })
                    .buffer_unordered(jobs)
                    .try_fold((0u64, 0u64), |(n, b), s| async move { Ok((n + 1, b + s)) })
                    .await?
            }
            "delete" => (store.delete_prefix(&prefix).await?, 0),
            "list" => {
                list_stream(Arc::clone(&store), prefix.clone(), ListOptions::recursive())
                    .try_fold((0u64, 0u64), |(n, b), item| async move {
                        Ok(match item {
                            ListItem::Object(m) => (n + 1, b + m.size),
                            ListItem::Prefix(_) => (n, b),
                        })
                    })
                    .await?
            }
            _ => return Err(USAGE.into()),
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
