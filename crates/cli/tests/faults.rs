//! The retry layer through the fault proxy, in front of the real servers `cargo xtask test`
//! starts (SeaweedFS for S3, Azurite for Azure): transient failures on a fifth of the
//! requests lose nothing, a body cut midway is resumed from the byte where it stopped, and
//! a permanent refusal fails at once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_cli::faultproxy::{
    random_faults, test_azure_options, test_s3_options, FaultProxy, ProxyFault, Record, RequestInfo,
};
use s3dlio_store_azure::AzureStore;
use s3dlio_store_core::{
    ErrorKind, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, RetryPolicy, RetryStore,
};
use s3dlio_store_s3::S3Store;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Fast retries, enough attempts that 20% failures never exhaust them.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(100),
        deadline: Some(Duration::from_secs(60)),
        ..RetryPolicy::default()
    }
}

/// A fresh bucket (made on the server directly) and a new proxy in front of the server.
async fn s3_bucket_and_proxy(tag: &str) -> (String, FaultProxy) {
    let real = common::S3::seaweedfs().endpoint;
    let name = common::bucket(tag);
    S3Store::new(&name, test_s3_options(real.clone()))
        .await
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    (name, FaultProxy::start(&real).await.unwrap())
}

/// A fresh bucket (made on the server directly), and a layered store reaching it through
/// a new proxy.
async fn s3_through_proxy(tag: &str, policy: RetryPolicy) -> (FaultProxy, RetryStore) {
    let (name, proxy) = s3_bucket_and_proxy(tag).await;
    let store = S3Store::new(&name, test_s3_options(proxy.url()))
        .await
        .unwrap();
    (proxy, RetryStore::new(Arc::new(store), policy))
}

fn azurite() -> String {
    std::env::var("S3DLIO_TEST_AZURITE").unwrap_or_else(|_| {
        panic!("S3DLIO_TEST_AZURITE is not set: run `cargo xtask test`, or source the env file of `cargo xtask servers`")
    })
}

/// Object `i`'s bytes: sizes from 1 byte to 24 KiB, contents unique per object.
fn object(i: usize) -> Bytes {
    let n = 1 + (i * 7919) % (24 * 1024);
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn transient() -> Vec<ProxyFault> {
    vec![
        ProxyFault::Status(503),
        ProxyFault::Status(500),
        ProxyFault::Reset,
        ProxyFault::CutBody(0.5),
    ]
}

/// Faults injected, by kind.
fn injected(records: &[Record]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        if let Some(f) = r.fault {
            *m.entry(f.name()).or_default() += 1;
        }
    }
    m
}

/// PUT `n` objects, list them, GET each and compare every byte, `jobs` at a time, all
/// through the layer; then check what the proxy did.
async fn bulk_round_trip(store: &RetryStore, proxy: &FaultProxy, n: usize, jobs: usize) {
    stream::iter(0..n)
        .map(|i| async move {
            store
                .put_bytes(&format!("bulk/{i:05}"), object(i))
                .await
                .map(|_| ())
        })
        .buffer_unordered(jobs)
        .try_collect::<()>()
        .await
        .expect("every PUT succeeds");
    let listed = store.list_objects("bulk/").await.expect("listing");
    assert_eq!(listed.len(), n);
    let mismatches: usize = stream::iter(0..n)
        .map(|i| async move {
            let got = store.get_bytes(&format!("bulk/{i:05}")).await.expect("GET");
            usize::from(got != object(i))
        })
        .buffer_unordered(jobs)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    assert_eq!(mismatches, 0, "objects read back differ");

    proxy.settled().await;
    let records = proxy.records();
    let faults = injected(&records);
    let total: usize = faults.values().sum();
    let share = total as f64 / records.len() as f64;
    eprintln!(
        "{} requests, {total} faults injected ({:.1}%): {faults:?}; layer stats {:?}, \
         in-flight limit now {}",
        records.len(),
        share * 100.0,
        store.stats().snapshot(),
        store.concurrency_limit()
    );
    assert!((0.15..0.25).contains(&share), "fault share {share}");
    for kind in ["503", "500", "reset", "cut-body"] {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} injected"
        );
    }
    // Every fault was noticed and recovered from exactly once: by a retry of the request,
    // or (a body cut midway) by a resume from the last byte.
    let (_, retries, resumes, gave_up, throttled) = store.stats().snapshot();
    assert_eq!(
        (retries + resumes) as usize,
        total,
        "retries {retries} + resumes {resumes}"
    );
    assert_eq!(gave_up, 0);
    assert!(throttled > 0);
}

#[test]
fn s3_bulk_put_get_of_1000_objects_survives_20_percent_transient_failures() {
    rt().block_on(async {
        let (proxy, store) = s3_through_proxy("faults", policy()).await;
        proxy.set_decider(random_faults(0.2, 13, transient()));
        bulk_round_trip(&store, &proxy, 1000, 16).await;
    });
}

#[test]
fn azurite_bulk_put_get_survives_20_percent_transient_failures() {
    rt().block_on(async {
        let real = azurite();
        let name = common::bucket("azfaults");
        AzureStore::new(None, &name, test_azure_options(real.clone()))
            .unwrap()
            .create_container()
            .await
            .unwrap();
        let proxy = FaultProxy::start(&real).await.unwrap();
        let store = AzureStore::new(None, &name, test_azure_options(proxy.url_for(&real))).unwrap();
        let store = RetryStore::new(Arc::new(store), policy());
        proxy.set_decider(random_faults(0.2, 17, transient()));
        bulk_round_trip(&store, &proxy, 200, 8).await;
        // Azurite slows down as it holds more blobs: leave none behind.
        proxy.set_decider(|_| None);
        store.delete_prefix("bulk/").await.unwrap();
    });
}

/// The GETs of `key` the proxy saw: (Range header, body bytes sent).
async fn gets(proxy: &FaultProxy, key: &str) -> Vec<(Option<String>, u64)> {
    proxy.settled().await;
    proxy
        .records()
        .into_iter()
        .filter(|r| r.request.method == "GET" && r.request.target.contains(key))
        .map(|r| (r.request.range, r.body_bytes))
        .collect()
}

#[test]
fn s3_body_cut_at_half_is_resumed_not_restarted() {
    rt().block_on(async {
        let (proxy, store) = s3_through_proxy("resume", policy()).await;
        let cut_first_get = |key: &'static str| {
            let seen = std::sync::atomic::AtomicBool::new(false);
            move |r: &s3dlio_cli::faultproxy::RequestInfo| {
                (r.method == "GET"
                    && r.target.contains(key)
                    && !seen.swap(true, std::sync::atomic::Ordering::SeqCst))
                .then_some(ProxyFault::CutBody(0.5))
            }
        };
        // 4 MiB: read as one buffer (the backend's pinned part reader resumes), streamed
        // (the layer resumes), and a small object (one streamed response, the layer).
        for (key, size, streamed) in [
            ("whole.bin", 4 << 20, false),
            ("streamed.bin", 4 << 20, true),
            ("small.bin", 100_000, false),
        ] {
            let data: Bytes = (0..size)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();
            store.put_bytes(key, data.clone()).await.unwrap();
            proxy.clear_records();
            proxy.set_decider(cut_first_get(key));
            let res = store.get(key, GetOptions::default()).await.unwrap();
            let got = if streamed {
                let chunks: Vec<Bytes> = res.into_stream().try_collect().await.unwrap();
                Bytes::from(chunks.concat())
            } else {
                res.bytes().await.unwrap()
            };
            assert!(got == data, "{key}: bytes differ");
            let g = gets(&proxy, key).await;
            let half = size as u64 / 2;
            assert_eq!(g.len(), 2, "{key}: {g:?}");
            assert_eq!(g[0].1, half, "{key}: the first GET was cut at half");
            let want_range = format!("bytes={half}-{}", size - 1);
            assert_eq!(g[1].0.as_deref(), Some(want_range.as_str()), "{key}: {g:?}");
            let sent: u64 = g.iter().map(|x| x.1).sum();
            assert_eq!(sent, size as u64, "{key}: bytes sent over the wire");
        }
    });
}

#[test]
fn s3_persistent_403_fails_fast() {
    rt().block_on(async {
        let (proxy, store) = s3_through_proxy("denied", policy()).await;
        store
            .put_bytes("k", Bytes::from_static(b"x"))
            .await
            .unwrap();
        proxy.clear_records();
        proxy.set_decider(|_| Some(ProxyFault::Status(403)));
        let t = Instant::now();
        let e = store.get_bytes("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let e = store
            .put_bytes("k", Bytes::from_static(b"y"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        proxy.settled().await;
        assert_eq!(proxy.records().len(), 2, "each operation sent once");
        assert_eq!(store.stats().snapshot().1, 0, "no retries");
    });
}

#[test]
fn s3_stalled_requests_time_out_and_are_retried() {
    rt().block_on(async {
        let (proxy, store) = s3_through_proxy(
            "stall",
            RetryPolicy {
                attempt_timeout: Some(Duration::from_millis(500)),
                ..policy()
            },
        )
        .await;
        store
            .put_bytes("k", Bytes::from_static(b"v"))
            .await
            .unwrap();
        let first = std::sync::atomic::AtomicBool::new(false);
        proxy.set_decider(move |r| {
            (r.method == "HEAD" && !first.swap(true, std::sync::atomic::Ordering::SeqCst))
                .then_some(ProxyFault::Stall(Duration::from_secs(30)))
        });
        let t = Instant::now();
        assert_eq!(store.head("k").await.unwrap().size, 1);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}

/// The PUTs the proxy has passed on, once every exchange under way is recorded.
async fn puts_recorded(proxy: &FaultProxy) -> usize {
    proxy.settled().await;
    proxy
        .records()
        .iter()
        .filter(|r| r.request.method == "PUT")
        .count()
}

/// A decider that gives the first PUT it sees `fault`.
fn first_put(fault: ProxyFault) -> impl Fn(&RequestInfo) -> Option<ProxyFault> {
    let seen = std::sync::atomic::AtomicBool::new(false);
    move |r| {
        (r.method == "PUT" && !seen.swap(true, std::sync::atomic::Ordering::SeqCst))
            .then_some(fault)
    }
}

#[test]
fn s3_conditional_puts_settle_unknown_outcomes_by_looking_at_the_object() {
    rt().block_on(async {
        let (proxy, store) = s3_through_proxy("condput", policy()).await;
        let body = Bytes::from_static(b"create-only, through the faults");
        // The first PUT of each write meets `fault`. Throttled and reset (never forwarded):
        // nothing was done, so it is sent again. Answer lost (done, the client cannot know):
        // a HEAD shows our bytes are there, and nothing is sent again.
        for (key, fault, puts_sent, streamed) in [
            ("throttled", ProxyFault::Status(503), 2, true),
            ("reset", ProxyFault::Reset, 2, true),
            ("lost", ProxyFault::LoseAnswer, 1, true),
            ("lost-put", ProxyFault::LoseAnswer, 1, false),
        ] {
            proxy.set_decider(first_put(fault));
            proxy.clear_records();
            let r = if streamed {
                let mut w = store.writer(key, PutOptions::create()).await.unwrap();
                w.write(body.clone()).await.unwrap();
                w.complete().await
            } else {
                store.put(key, body.clone(), PutOptions::create()).await
            };
            proxy.set_decider(|_| None);
            let puts = puts_recorded(&proxy).await;
            r.unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(puts, puts_sent, "{key}: PUTs sent");
            assert_eq!(store.get_bytes(key).await.unwrap(), body, "{key}");
        }
        // A real conflict is still one: someone else's object is not taken for ours, with
        // or without a reset first.
        for fault in [None, Some(ProxyFault::Reset)] {
            proxy.set_decider(first_put(
                fault.unwrap_or(ProxyFault::Stall(Duration::ZERO)),
            ));
            let other = Bytes::from_static(b"other bytes");
            let e = store
                .put("lost", other, PutOptions::create())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{fault:?}: {e}");
        }
        assert_eq!(store.get_bytes("lost").await.unwrap(), body);
    });
}

/// Through a registry with a retry policy, a streamed write's sub-requests (here the one PUT
/// of a small streamed write, which the layer cannot repeat) get as many attempts as the
/// layer makes, not the backend's default 3.
#[test]
fn s3_streamed_writes_get_the_retry_layers_attempts() {
    rt().block_on(async {
        let (name, proxy) = s3_bucket_and_proxy("sub-attempts").await;
        let mut registry = s3dlio_store_core::Registry::new();
        registry.set_retry_policy(Some(RetryPolicy {
            max_attempts: 6,
            ..policy()
        }));
        s3dlio_store_s3::register_with(&mut registry, test_s3_options(proxy.url()));
        let (store, key) = registry
            .resolve(&format!("s3://{name}/patient"))
            .await
            .unwrap();
        // The first 4 PUTs are throttled: more than 3 attempts are needed.
        let throttled = std::sync::atomic::AtomicUsize::new(0);
        proxy.set_decider(move |r| {
            (r.method == "PUT" && throttled.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4)
                .then_some(ProxyFault::Status(503))
        });
        let mut w = store.writer(&key, PutOptions::default()).await.unwrap();
        w.write(Bytes::from_static(b"patient bytes")).await.unwrap();
        w.complete().await.unwrap();
        let puts = puts_recorded(&proxy).await;
        assert_eq!(puts, 5, "4 throttled, then stored");
        assert_eq!(store.get_bytes(&key).await.unwrap(), "patient bytes");
    });
}
