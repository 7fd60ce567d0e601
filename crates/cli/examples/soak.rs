//! The soak run behind `cargo xtask soak --minutes N`: for N minutes, workers mix PUTs
//! (one-shot and streamed), whole and ranged GETs (whole and streamed), HEADs, listings and
//! DELETEs on `file://`, on SeaweedFS (S3) and on Azurite (Azure), each through the retry
//! layer, while faults are injected: the fault proxy fails a share of the HTTP requests
//! (503, 500, resets, bodies cut at half) and `FaultStore` fails every Nth `file://` call.
//! Every byte read is compared with what was written; at the end every object a worker
//! believes exists is read back once more with the faults off. It reports operations done,
//! errors by kind, faults injected and data mismatches, and fails if any byte was wrong or
//! any object lost.
//!
//! Servers come from the `S3DLIO_TEST_*` variables (`cargo xtask soak` starts them).
//! Usage: `soak [--minutes M] [--seconds S] [--fault-rate R] [--workers W]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use s3dlio_cli::faultproxy::{
    random_faults, test_azure_options, test_s3_options, FaultProxy, ProxyFault,
};
use s3dlio_store_azure::AzureStore;
use s3dlio_store_core::{
    ByteRange, ErrorKind, Fault, FaultStore, GetOptions, ObjectStore, ObjectStoreExt, Operation,
    PutOptions, RetryPolicy, RetryStore,
};
use s3dlio_store_fs::FsStore;
use s3dlio_store_s3::S3Store;

#[derive(Debug, Default)]
struct Tally {
    ops: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    bytes_verified: u64,
    mismatches: u64,
    lost: u64,
}

type Shared = Arc<Mutex<Tally>>;

fn bump(t: &Shared, map: fn(&mut Tally) -> &mut BTreeMap<String, u64>, k: String) {
    *map(&mut t.lock().unwrap()).entry(k).or_default() += 1;
}

/// A small deterministic generator (xorshift), so runs can be repeated by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The bytes of version `seed` of an object of `len` bytes.
fn content(seed: u64, len: usize) -> Bytes {
    let mut r = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v.into()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `cargo xtask soak`, or source the env file of `cargo xtask servers`")
    })
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(200),
        deadline: Some(Duration::from_secs(60)),
        attempt_timeout: Some(Duration::from_secs(20)),
        ..RetryPolicy::default()
    }
}

/// One worker: its own keys, so it knows what each must hold.
async fn worker(
    backend: &'static str,
    store: Arc<RetryStore>,
    prefix: String,
    seed: u64,
    until: Instant,
    tally: Shared,
) -> HashMap<String, (u64, usize)> {
    let mut rng = Rng(seed | 1);
    let mut have: HashMap<String, (u64, usize)> = HashMap::new();
    while Instant::now() < until {
        let key = format!("{prefix}{:03}", rng.below(48));
        let op = rng.below(100);
        let (name, res): (&str, Result<(), s3dlio_store_core::Error>) = match op {
            0..=24 => {
                // Mostly small objects; some large enough for multipart / ranged parts.
                let len = match rng.below(20) {
                    0 => 3 * 1024 * 1024 + rng.below(1 << 20) as usize,
                    1..=3 => 600 * 1024 + rng.below(100_000) as usize,
                    _ => rng.below(64 * 1024) as usize,
                };
                let s = rng.next();
                let data = content(s, len);
                let r = if rng.below(4) == 0 {
                    let chunks: Vec<Result<Bytes, s3dlio_store_core::Error>> = data
                        .chunks(100_000)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    store
                        .put_stream(&key, stream::iter(chunks).boxed(), PutOptions::default())
                        .await
                        .map(|_| ())
                } else {
                    store.put_bytes(&key, data).await.map(|_| ())
                };
                match &r {
                    Ok(()) => {
                        have.insert(key.clone(), (s, len));
                    }
                    // The write may or may not have landed: forget what the key holds.
                    Err(_) => {
                        have.remove(&key);
                    }
                }
                ("put", r)
            }
            25..=59 => {
                let Some(&(s, len)) = have.get(&key) else {
                    continue;
                };
                let want = content(s, len);
                let streamed = rng.below(2) == 0;
                let ranged = len > 2 && rng.below(3) == 0;
                let (opts, expect) = if ranged {
                    let a = rng.below(len as u64 - 1);
                    let b = a + 1 + rng.below(len as u64 - a - 1);
                    (
                        GetOptions {
                            range: Some(ByteRange::Bounded { start: a, end: b }),
                            if_match: None,
                        },
                        want.slice(a as usize..b as usize),
                    )
                } else {
                    (GetOptions::default(), want)
                };
                let r = async {
                    let res = store.get(&key, opts).await?;
                    let got = if streamed {
                        let c: Vec<Bytes> = res.into_stream().try_collect().await?;
                        Bytes::from(c.concat())
                    } else {
                        res.bytes().await?
                    };
                    let mut t = tally.lock().unwrap();
                    if got == expect {
                        t.bytes_verified += got.len() as u64;
                    } else {
                        t.mismatches += 1;
                        eprintln!(
                            "soak: MISMATCH {backend} {key}: {} bytes, expected {}",
                            got.len(),
                            expect.len()
                        );
                    }
                    Ok(())
                }
                .await;
                (if streamed { "get-stream" } else { "get" }, r)
            }
            60..=74 => {
                let r = match (store.head(&key).await, have.get(&key)) {
                    (Ok(m), Some(&(_, len))) if m.size == len as u64 => Ok(()),
                    (Ok(m), Some(&(_, len))) => {
                        tally.lock().unwrap().mismatches += 1;
                        eprintln!(
                            "soak: MISMATCH {backend} {key}: HEAD says {} bytes, wrote {len}",
                            m.size
                        );
                        Ok(())
                    }
                    (Ok(_), None) | (Err(_), None) => Ok(()), // unknown or absent
                    (Err(e), Some(_)) => Err(e),
                };
                ("head", r)
            }
            75..=89 => {
                let r = store.list_objects(&prefix).await.map(|list| {
                    let listed: std::collections::HashSet<&str> =
                        list.iter().map(|m| m.key.as_str()).collect();
                    let missing = have.keys().filter(|k| !listed.contains(k.as_str())).count();
                    if missing > 0 {
                        tally.lock().unwrap().mismatches += 1;
                        eprintln!("soak: MISMATCH {backend}: {missing} written objects not listed");
                    }
                });
                ("list", r)
            }
            _ => {
                let r = store.delete(&key).await;
                if r.is_ok() {
                    have.remove(&key);
                }
                ("delete", r)
            }
        };
        bump(&tally, |t| &mut t.ops, format!("{backend} {name}"));
        if let Err(e) = res {
            bump(
                &tally,
                |t| &mut t.errors,
                format!("{backend} {name}: {}", e.kind()),
            );
            eprintln!("soak: {backend} {name} {key}: {e}");
        }
    }
    have
}

fn arg(args: &[String], name: &str) -> Option<f64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs = arg(&args, "--seconds").unwrap_or(60.0 * arg(&args, "--minutes").unwrap_or(1.0));
    let rate = arg(&args, "--fault-rate").unwrap_or(0.1);
    let workers = arg(&args, "--workers").unwrap_or(4.0) as u64;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let tag = format!("soak-{}", std::process::id());
    let faults = vec![
        ProxyFault::Status(503),
        ProxyFault::Status(500),
        ProxyFault::Reset,
        ProxyFault::CutBody(0.5),
    ];

    // file://, with every 10th call failing transiently.
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let fs = FsStore::new(&dir).unwrap();
    let faulty_fs = Arc::new(FaultStore::new(fs));
    for (op, fault) in [
        (Operation::Put, Fault::Fail(ErrorKind::Interrupted)),
        (Operation::Get, Fault::ResetBody(1000)),
        (Operation::Head, Fault::Fail(ErrorKind::Timeout)),
        (Operation::List, Fault::Fail(ErrorKind::RateLimited)),
    ] {
        faulty_fs.add_periodic(Some(op), (1.0 / rate).round() as u64, fault);
    }
    let fs_prefix = "soak/".to_owned();

    // SeaweedFS and Azurite behind fault proxies.
    let s3_real = env("S3DLIO_TEST_S3_SEAWEEDFS");
    let bucket = tag.clone();
    S3Store::new(&bucket, test_s3_options(s3_real.clone()))
        .await
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    let s3_proxy = FaultProxy::start(&s3_real).await.unwrap();
    s3_proxy.set_decider(random_faults(rate, 1, faults.clone()));
    // Sub-requests get the layer's attempts, as registering under the policy gives them.
    let s3_opts = s3dlio_store_s3::S3Options {
        max_attempts: policy().max_attempts,
        ..test_s3_options(s3_proxy.url())
    };
    let s3 = S3Store::new(&bucket, s3_opts).await.unwrap();

    let az_real = env("S3DLIO_TEST_AZURITE");
    AzureStore::new(None, &tag, test_azure_options(az_real.clone()))
        .unwrap()
        .create_container()
        .await
        .unwrap();
    let az_proxy = FaultProxy::start(&az_real).await.unwrap();
    az_proxy.set_decider(random_faults(rate, 2, faults));
    let az_opts = s3dlio_store_azure::AzureOptions {
        max_retries: policy().max_attempts - 1,
        ..test_azure_options(az_proxy.url_for(&az_real))
    };
    let az = AzureStore::new(None, &tag, az_opts).unwrap();

    let backends: Vec<(&'static str, Arc<RetryStore>, String)> = vec![
        (
            "file",
            Arc::new(RetryStore::new(faulty_fs.clone(), policy())),
            fs_prefix,
        ),
        (
            "s3",
            Arc::new(RetryStore::new(Arc::new(s3), policy())),
            "soak/".into(),
        ),
        (
            "az",
            Arc::new(RetryStore::new(Arc::new(az), policy())),
            "soak/".into(),
        ),
    ];
    let tally: Shared = Arc::default();
    let mut jobs = Vec::new();
    for (b, store, prefix) in &backends {
        for w in 0..workers {
            let (b, store, tally) = (*b, Arc::clone(store), Arc::clone(&tally));
            let prefix = format!("{prefix}w{w}/");
            let seed = 0x5eed ^ (w << 8) ^ b.len() as u64;
            jobs.push(tokio::spawn(async move {
                let have = worker(b, Arc::clone(&store), prefix, seed, until, tally).await;
                (b, store, have)
            }));
        }
    }
    let mut finals = Vec::new();
    for j in jobs {
        finals.push(j.await.expect("worker panicked"));
    }

    // Faults off: everything each worker believes is there must be there, byte for byte.
    s3_proxy.set_decider(|_| None);
    az_proxy.set_decider(|_| None);
    faulty_fs.clear();
    let mut checked = 0u64;
    for (b, store, have) in &finals {
        for (key, &(s, len)) in have {
            checked += 1;
            match store.get_bytes(key).await {
                Ok(got) if got == content(s, len) => {}
                Ok(_) => tally.lock().unwrap().mismatches += 1,
                Err(e) => {
                    eprintln!("soak: LOST {b} {key}: {e}");
                    tally.lock().unwrap().lost += 1;
                }
            }
        }
    }
    for (_, store, prefix) in &backends {
        let _ = store.delete_prefix(prefix).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    s3_proxy.settled().await;
    az_proxy.settled().await;

    let t = tally.lock().unwrap();
    let total: u64 = t.ops.values().sum();
    let failed: u64 = t.errors.values().sum();
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let mut requests = 0;
    for (name, p) in [("s3", &s3_proxy), ("az", &az_proxy)] {
        let recs = p.records();
        requests += recs.len();
        for r in recs {
            if let Some(f) = r.fault {
                *injected.entry(format!("{name} {}", f.name())).or_default() += 1;
            }
        }
    }
    println!(
        "soak: {:.0} s, {total} operations, {failed} failed after retries",
        started.elapsed().as_secs_f64()
    );
    println!("soak: operations by backend: {:?}", t.ops);
    println!("soak: errors by kind: {:?}", t.errors);
    println!("soak: {requests} HTTP requests through the proxies; faults injected: {injected:?}; file:// faults every {} calls", (1.0 / rate).round());
    for (b, s, _) in &backends {
        let (attempts, retries, resumes, gave_up, throttled) = s.stats().snapshot();
        println!("soak: {b} layer: {attempts} attempts, {retries} retries, {resumes} body resumes, {gave_up} gave up, {throttled} throttled, in-flight limit {}", s.concurrency_limit());
    }
    println!(
        "soak: {} bytes verified; {checked} objects checked at the end; {} mismatches, {} lost",
        t.bytes_verified, t.mismatches, t.lost
    );
    if t.mismatches == 0 && t.lost == 0 && total > 0 {
        println!("soak: ok");
        std::process::ExitCode::SUCCESS
    } else {
        println!("soak: FAILED");
        std::process::ExitCode::FAILURE
    }
}
