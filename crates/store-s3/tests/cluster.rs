//! The multi-endpoint store (`open_balanced`, `S3Options::endpoints`) against the SeaweedFS
//! cluster `cargo xtask test` starts on 127.0.0.1: one master, three volume servers, one
//! filer and two S3 gateways (`S3DLIO_TEST_S3_CLUSTER`). One test starts a gateway of its
//! own in front of the same filer, kills it in the middle of a bulk run and starts it again.
//!
//! Without `S3DLIO_TEST_S3_CLUSTER` these tests are skipped with a message, unless the
//! test servers are known to be up (`S3DLIO_TEST_SERVERS`, set by xtask): then its absence
//! means the cluster did not start, and they fail.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{keys, unique_prefix};
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_store_core::{
    BalanceOptions, BalancedStore, ConnectionFailure, ErrorKind, ListOptions, ObjectStore,
    ObjectStoreExt, Policy, Registry, RetryPolicy, RetryStore,
};
use s3dlio_store_s3::{open_balanced, S3Options, S3Store, StaticCredentials};

const BUCKET: &str = "s3dlio-cluster-test";

struct Cluster {
    gateways: Vec<String>,
    filer: String,
    weed: PathBuf,
}

/// The cluster, or None (with a message) when it is not configured outside xtask.
fn cluster() -> Option<Cluster> {
    let Ok(list) = std::env::var("S3DLIO_TEST_S3_CLUSTER") else {
        if std::env::var_os("S3DLIO_TEST_SERVERS").is_some() {
            panic!(
                "S3DLIO_TEST_S3_CLUSTER is not set although the test servers are up: the \
                 SeaweedFS cluster did not start"
            );
        }
        eprintln!(
            "skipped: S3DLIO_TEST_S3_CLUSTER is not set (run `cargo xtask test`, or source \
             the env file `cargo xtask servers` writes)"
        );
        return None;
    };
    let var = |v: &str| std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set"));
    Some(Cluster {
        gateways: list.split(',').map(str::to_owned).collect(),
        filer: var("S3DLIO_TEST_S3_CLUSTER_FILER"),
        weed: PathBuf::from(var("S3DLIO_TEST_WEED")),
    })
}

fn options(endpoints: Vec<String>, policy: Policy, cooldown: Duration) -> S3Options {
    let (access_key_id, secret_access_key) = keys();
    S3Options {
        endpoints,
        balance: BalanceOptions { policy, cooldown },
        region: Some("us-east-1".into()),
        credentials: Some(StaticCredentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        }),
        // As under the retry layer: one attempt per request, so a dead endpoint is noticed
        // at once and the balancer sends the request elsewhere.
        outer_retries: true,
        ..S3Options::default()
    }
}

/// One gateway alone.
async fn direct(endpoint: &str) -> S3Store {
    let mut o = options(Vec::new(), Policy::RoundRobin, Duration::ZERO);
    o.endpoint_url = Some(endpoint.to_owned());
    S3Store::new(BUCKET, o).await.unwrap()
}

/// The test bucket, created through the first gateway and waited for on every one (a
/// gateway learns of a new bucket from the filer a moment later).
async fn bucket_on(gateways: &[String]) {
    match direct(&gateways[0]).await.create_bucket().await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => panic!("creating {BUCKET}: {e}"),
    }
    for g in gateways {
        let store = direct(g).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = store.list_page("", &ListOptions::default(), None).await {
            assert!(
                Instant::now() < deadline,
                "{BUCKET} not visible on {g}: {e}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn object(i: usize) -> Bytes {
    let len = 1 + (i * 7919) % (96 * 1024);
    Bytes::from(
        (0..len)
            .map(|j| (j as u32).wrapping_mul(31).wrapping_add(i as u32) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn requests(s: &BalancedStore) -> Vec<u64> {
    s.stats().iter().map(|e| e.requests).collect()
}

#[tokio::test]
async fn a_refused_connection_is_marked_not_connected() {
    // A port nothing listens on.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = S3Options {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        credentials: Some(StaticCredentials {
            access_key_id: "unused".into(),
            secret_access_key: "unused".into(),
            session_token: None,
        }),
        max_attempts: 1,
        ..S3Options::default()
    };
    let store = S3Store::new("b", o).await.unwrap();
    let e = store.head("k").await.unwrap_err();
    assert_eq!(
        e.connection_failure(),
        Some(ConnectionFailure::NotConnected),
        "{e}"
    );
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly_over_both_gateways() {
    let Some(c) = cluster() else { return };
    bucket_on(&c.gateways).await;
    let opts = options(
        c.gateways.clone(),
        Policy::RoundRobin,
        Duration::from_secs(5),
    );
    let store = open_balanced(BUCKET, opts).await.unwrap();
    let prefix = unique_prefix("rr");
    for i in 0..40 {
        store
            .put_bytes(&format!("{prefix}{i:03}"), object(i))
            .await
            .unwrap();
    }
    for i in 0..40 {
        assert_eq!(
            store.get_bytes(&format!("{prefix}{i:03}")).await.unwrap(),
            object(i)
        );
    }
    assert_eq!(requests(&store), [40, 40]);

    // Pages of 7: each continuation token goes to the other gateway, and the listing is
    // whole and in order.
    let opts = ListOptions {
        page_size: Some(7),
        ..ListOptions::recursive()
    };
    let keys: Vec<String> = store
        .list(&prefix, opts)
        .map_ok(|item| item.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    let want: Vec<String> = (0..40).map(|i| format!("{prefix}{i:03}")).collect();
    assert_eq!(keys, want);
    let st = store.stats();
    assert_eq!(st[0].requests + st[1].requests, 80 + 6);
    assert!(st[0].requests.abs_diff(st[1].requests) <= 1, "{st:?}");
    assert!(st
        .iter()
        .all(|e| e.up && e.failures == 0 && e.in_flight == 0));

    // A streamed multipart write stays on one gateway from start to end.
    let big = Bytes::from(vec![5u8; 11 * 1024 * 1024]);
    let mut opts = options(
        c.gateways.clone(),
        Policy::RoundRobin,
        Duration::from_secs(5),
    );
    (opts.multipart_threshold, opts.part_size) = (5 * 1024 * 1024, 5 * 1024 * 1024);
    let store = open_balanced(BUCKET, opts).await.unwrap();
    let chunks: Vec<s3dlio_store_core::Result<Bytes>> = big
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    store
        .put_stream(
            &format!("{prefix}big"),
            stream::iter(chunks).boxed(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(requests(&store).iter().sum::<u64>(), 1);
    assert_eq!(store.get_bytes(&format!("{prefix}big")).await.unwrap(), big);
    store.delete_prefix(&prefix).await.unwrap();
}

#[tokio::test]
async fn least_outstanding_round_trips_through_both_gateways() {
    let Some(c) = cluster() else { return };
    bucket_on(&c.gateways).await;
    let opts = options(
        c.gateways.clone(),
        Policy::LeastOutstanding,
        Duration::from_secs(5),
    );
    let store = open_balanced(BUCKET, opts).await.unwrap();
    let prefix = unique_prefix("lor");
    stream::iter(0..100)
        .map(|i| {
            let s = &store;
            let key = format!("{prefix}{i}");
            async move {
                s.put_bytes(&key, object(i)).await.unwrap();
                assert_eq!(s.get_bytes(&key).await.unwrap(), object(i));
            }
        })
        .buffer_unordered(8)
        .collect::<()>()
        .await;
    let r = requests(&store);
    assert_eq!(r.iter().sum::<u64>(), 200);
    // Both take requests; how many each depends on how fast it answers here (the cli
    // crate's `cluster.rs` slows one down and measures the split).
    assert!(r.iter().all(|n| *n > 0), "{r:?}");
    assert!(store.stats().iter().all(|e| e.in_flight == 0));
    store.delete_prefix(&prefix).await.unwrap();
}

#[tokio::test]
async fn registry_spreads_s3_uris_over_configured_endpoints() {
    let Some(c) = cluster() else { return };
    bucket_on(&c.gateways).await;
    let mut registry = Registry::new();
    registry.set_retry_policy(Some(RetryPolicy::default()));
    let opts = options(
        c.gateways.clone(),
        Policy::RoundRobin,
        Duration::from_secs(5),
    );
    s3dlio_store_s3::register_with(&mut registry, opts);
    let key = format!("{}x", unique_prefix("registry"));
    let (store, key) = registry
        .resolve(&format!("s3://{BUCKET}/{key}"))
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("BalancedStore"), "{store:?}");
    store.put_bytes(&key, object(3)).await.unwrap();
    // Written through one gateway, read through each.
    for g in &c.gateways {
        assert_eq!(direct(g).await.get_bytes(&key).await.unwrap(), object(3));
    }
    store.delete(&key).await.unwrap();
}

/// A `weed s3` gateway of the test's own in front of the cluster's filer; killed when
/// dropped.
struct Gateway {
    child: Option<Child>,
    port: u16,
    grpc: u16,
    dir: tempfile::TempDir,
    cluster: Arc<Cluster>,
}

/// Two ports free on 127.0.0.1 (held until both are chosen).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

impl Gateway {
    fn start(cluster: Arc<Cluster>) -> Self {
        let (port, grpc) = free_ports();
        let mut g = Self {
            child: None,
            port,
            grpc,
            dir: tempfile::tempdir().unwrap(),
            cluster,
        };
        g.spawn();
        g
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let (access, secret) = keys();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3.log"))
            .unwrap();
        let mut cmd = Command::new(&self.cluster.weed);
        cmd.args(["-logtostderr", "s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-port={}", self.port))
            .arg(format!("-port.grpc={}", self.grpc))
            .arg(format!("-filer={}", self.cluster.filer))
            .args(["-port.iceberg=0", "-port.lance=0"])
            .arg(format!(
                "-localSocket={}",
                self.dir.path().join("s3.sock").display()
            ))
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", access)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: runs in the child before exec; prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // Die with the test process, however it ends.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        self.child = Some(cmd.spawn().expect("starting weed s3"));
        // Ready when it refuses an anonymous `GET /` (403).
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(self.port) != Some(403) {
            assert!(
                Instant::now() < deadline,
                "the test's gateway did not start:\n{}",
                std::fs::read_to_string(self.dir.path().join("s3.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of an anonymous `GET /`, or None if nothing answers.
fn status(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_leaves_rotation_and_returns_after_restart() {
    let Some(c) = cluster() else { return };
    let cluster = Arc::new(c);
    let mut gw = Gateway::start(Arc::clone(&cluster));
    let endpoints = vec![cluster.gateways[0].clone(), gw.url()];
    bucket_on(&endpoints).await;
    let cooldown = Duration::from_secs(1);
    let balanced = open_balanced(
        BUCKET,
        options(endpoints.clone(), Policy::RoundRobin, cooldown),
    )
    .await
    .unwrap();
    // As the registry opens it: the retry layer over the balancer.
    let store = RetryStore::new(Arc::new(balanced.clone()), RetryPolicy::default());
    let prefix = unique_prefix("kill");
    const N: usize = 200;

    // 200 PUTs, 8 at a time; the test's gateway is killed after the 60th.
    let done = AtomicUsize::new(0);
    let gw_lock = std::sync::Mutex::new(&mut gw);
    stream::iter(0..N)
        .map(|i| {
            let (store, done, gw_lock, key) = (&store, &done, &gw_lock, format!("{prefix}{i}"));
            async move {
                store.put_bytes(&key, object(i)).await.unwrap();
                if done.fetch_add(1, Ordering::SeqCst) + 1 == 60 {
                    gw_lock.lock().unwrap().kill();
                }
            }
        })
        .buffer_unordered(8)
        .collect::<()>()
        .await;
    let _ = gw_lock.into_inner();
    let st = balanced.stats();
    eprintln!("after {N} PUTs, the test's gateway killed after 60: {st:?}");
    assert!(!st[1].up && st[1].failures >= 1, "{st:?}");
    assert!(
        st[1].requests >= 25,
        "the gateway took its share first: {st:?}"
    );

    // Every byte of every object, while the gateway is still dead: probes after each
    // cooldown find it refusing, and their requests go to the live gateway.
    let (sent_before, failed_before) = (st[1].requests, st[1].failures);
    let t = Instant::now();
    stream::iter(0..N)
        .map(|i| {
            let (store, key) = (&store, format!("{prefix}{i}"));
            async move {
                assert_eq!(store.get_bytes(&key).await.unwrap(), object(i), "{key}");
            }
        })
        .buffer_unordered(8)
        .collect::<()>()
        .await;
    let st = balanced.stats();
    eprintln!("after {N} GETs in {:?}: {st:?}", t.elapsed());
    assert!(!st[1].up, "{st:?}");
    // Only probes went to the dead gateway, at most one per cooldown, and each failed.
    let probes = st[1].requests - sent_before;
    assert_eq!(st[1].failures - failed_before, probes, "{st:?}");
    assert!(
        probes <= 1 + t.elapsed().as_millis() as u64 / cooldown.as_millis() as u64,
        "{probes} probes in {:?}",
        t.elapsed()
    );
    assert!(st[0].requests >= N as u64, "{st:?}");

    // Started again on the same port: after the cooldown, one probe lets it back in and it
    // takes its turns.
    gw.spawn();
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let before = balanced.stats()[1].requests;
    for i in 0..20 {
        assert_eq!(
            store.get_bytes(&format!("{prefix}{i}")).await.unwrap(),
            object(i)
        );
    }
    let st = balanced.stats();
    eprintln!("restarted, after 20 GETs: {st:?}");
    assert!(st[1].up, "{st:?}");
    assert!(st[1].requests - before >= 9, "{st:?}");
    store.delete_prefix(&prefix).await.unwrap();
}
