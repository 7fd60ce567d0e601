//! The balancing policies against the SeaweedFS cluster `cargo xtask test` starts (two S3
//! gateways, `S3DLIO_TEST_S3_CLUSTER`), with the second gateway slowed down by the fault
//! proxy: least-outstanding sends most requests to the fast one, round-robin splits them
//! evenly whatever the speed.
//!
//! Skipped with a message without `S3DLIO_TEST_S3_CLUSTER`, unless the test servers are
//! known to be up (`S3DLIO_TEST_SERVERS`): then the cluster did not start, and it fails.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3dlio_cli::faultproxy::{test_s3_options, FaultProxy, ProxyFault};
use s3dlio_store_core::{
    BalanceOptions, BalancedStore, ErrorKind, ObjectStore, ObjectStoreExt, Policy,
};
use s3dlio_store_s3::{open_balanced, S3Options, S3Store};

const BUCKET: &str = "s3dlio-cli-cluster-test";

fn gateways() -> Option<Vec<String>> {
    match std::env::var("S3DLIO_TEST_S3_CLUSTER") {
        Ok(v) => Some(v.split(',').map(str::to_owned).collect()),
        Err(_) if std::env::var_os("S3DLIO_TEST_SERVERS").is_some() => panic!(
            "S3DLIO_TEST_S3_CLUSTER is not set although the test servers are up: the \
             SeaweedFS cluster did not start"
        ),
        Err(_) => {
            eprintln!(
                "skipped: S3DLIO_TEST_S3_CLUSTER is not set (run `cargo xtask test`, or \
                 source the env file `cargo xtask servers` writes)"
            );
            None
        }
    }
}

fn options(endpoints: Vec<String>, policy: Policy) -> S3Options {
    S3Options {
        endpoint_url: None,
        endpoints,
        balance: BalanceOptions {
            policy,
            cooldown: Duration::from_secs(5),
        },
        ..test_s3_options(String::new())
    }
}

/// 120 HEADs of one object, 8 at a time; the requests each endpoint got.
async fn spread(store: &BalancedStore, key: &str) -> Vec<u64> {
    let before: Vec<u64> = store.stats().iter().map(|e| e.requests).collect();
    stream::iter(0..120)
        .map(|_| store.head(key))
        .buffer_unordered(8)
        .for_each(|r| {
            assert_eq!(r.unwrap().size, 5);
            futures::future::ready(())
        })
        .await;
    let st = store.stats();
    assert!(st.iter().all(|e| e.up && e.in_flight == 0), "{st:?}");
    st.iter().zip(before).map(|(e, b)| e.requests - b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_favours_the_fast_gateway_and_round_robin_does_not() {
    let Some(gw) = gateways() else { return };
    let first = S3Store::new(BUCKET, test_s3_options(gw[0].clone()))
        .await
        .unwrap();
    match first.create_bucket().await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => panic!("{e}"),
    }
    let key = format!("k-{}", std::process::id());
    first
        .put_bytes(&key, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    // Every request to the second gateway waits 50 ms in the proxy first.
    let proxy = FaultProxy::start(&gw[1]).await.unwrap();
    proxy.set_decider(|_| Some(ProxyFault::Stall(Duration::from_millis(50))));
    let endpoints = vec![gw[0].clone(), proxy.url()];
    // The bucket is visible through the proxy once a HEAD there answers.
    let slow = S3Store::new(BUCKET, test_s3_options(proxy.url()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = slow.head(&key).await {
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let lor = open_balanced(BUCKET, options(endpoints.clone(), Policy::LeastOutstanding))
        .await
        .unwrap();
    let [fast, slow] = spread(&lor, &key).await[..] else {
        unreachable!()
    };
    eprintln!("least-outstanding: fast gateway {fast}, slowed gateway {slow}");
    assert_eq!(fast + slow, 120);
    assert!(fast >= 3 * slow, "fast {fast}, slow {slow}");

    let rr = open_balanced(BUCKET, options(endpoints, Policy::RoundRobin))
        .await
        .unwrap();
    let [fast, slow] = spread(&rr, &key).await[..] else {
        unreachable!()
    };
    eprintln!("round-robin: fast gateway {fast}, slowed gateway {slow}");
    assert_eq!((fast, slow), (60, 60));
    first.delete(&key).await.unwrap();
}

#[test]
fn the_cli_takes_several_endpoints_from_the_flag_or_the_environment() {
    let Some(gw) = gateways() else { return };
    let s3 = common::S3 {
        endpoint: gw.join(","),
        ..common::S3::from_env("S3DLIO_TEST_S3_SEAWEEDFS")
    };
    let b = common::bucket("cluster");
    s3.run(&["create-bucket", &format!("s3://{b}")]).ok();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("tree");
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("f{i:02}"), vec![i as u8; 1000 + i]))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    common::write_tree(&src, &files);
    // A new bucket reaches the second gateway a moment later; the retry layer waits it out.
    s3.run(&["upload", src.to_str().unwrap(), &format!("s3://{b}/in/")])
        .ok();
    // The same cluster through S3DLIO_ENDPOINTS, balanced by least-outstanding.
    let dl = t.path().join("dl");
    let mut c = common::cmd();
    c.env("S3DLIO_ENDPOINTS", gw.join(","))
        .env("S3DLIO_LOAD_BALANCE", "least-outstanding")
        .env("AWS_ACCESS_KEY_ID", &s3.access)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
        .env("AWS_REGION", "us-east-1")
        .args([
            "download",
            "-r",
            &format!("s3://{b}/in/tree/"),
            dl.to_str().unwrap(),
        ]);
    common::finish(c.output().unwrap()).ok();
    assert_eq!(common::read_tree(&dl), common::read_tree(&src));
    s3.run(&["rm", "-r", &format!("s3://{b}/")]).ok();
    s3.run(&["delete-bucket", &format!("s3://{b}")]).ok();
}
