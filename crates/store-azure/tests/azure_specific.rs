//! Behaviour specific to Azure Blob, against the Azurite `cargo xtask test` starts.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{options, store, store_in, store_with, unique_prefix, CONTAINER};
use futures::TryStreamExt;
use s3dlio_store_azure::{AccessTier, AzureCredential, AzureOptions, AzureStore};
use s3dlio_store_core::conformance::{assert_same, pattern};
use s3dlio_store_core::{
    Body, ErrorKind, GetOptions, ListItem, ListOptions, ObjectStore, ObjectStoreExt, PutOptions,
    Registry,
};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn wrong_key_fails_fast_as_unauthenticated() {
    let good = store().await;
    let key = format!("{}obj", unique_prefix("creds"));
    good.put_bytes(&key, Bytes::from_static(b"x"))
        .await
        .unwrap();

    // A valid base64 key that is not the account's.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let bad = AzureStore::new(
        None,
        CONTAINER,
        AzureOptions {
            credential: Some(AzureCredential::AccountKey(wrong.into())),
            max_retries: 5,
            ..options()
        },
    )
    .unwrap();
    let t = Instant::now();
    let e = bad.get_bytes(&key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.is_retryable(), "a bad key must not be retried: {e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let msg = e.to_string();
    assert!(
        msg.contains("403") && msg.contains("az://s3dlio-test/"),
        "{msg}"
    );
    assert!(e.request_id().is_some(), "no request id: {msg}");
    assert!(!msg.contains(wrong), "the key leaked: {msg}");
    for r in [
        bad.head(&key).await.map(|_| ()),
        bad.put_bytes(&key, Bytes::from_static(b"y"))
            .await
            .map(|_| ()),
        bad.list_page("", &ListOptions::default(), None)
            .await
            .map(|_| ()),
    ] {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unauthenticated);
    }
    assert_eq!(good.get_bytes(&key).await.unwrap(), "x");
}

#[tokio::test]
async fn missing_container_and_blob_are_not_found_with_the_azure_code() {
    let s = store().await;
    let e = s.get_bytes("no/such/blob").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("BlobNotFound"), "{e}");
    assert!(
        e.to_string().contains("az://s3dlio-test/no/such/blob"),
        "{e}"
    );

    let missing = AzureStore::new(None, "s3dlio-no-such-container", options()).unwrap();
    let e = missing.get_bytes("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("ContainerNotFound"), "{e}");
    let e = missing.head("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = missing
        .put_bytes("k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = missing
        .list_page("", &ListOptions::default(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

fn small_blocks() -> AzureOptions {
    AzureOptions {
        block_size: 8 * MIB,
        put_threshold: 8 * MIB,
        upload_concurrency: 4,
        ..options()
    }
}

/// Committed block ids of `key`, or none if the blob does not exist.
async fn committed(s: &AzureStore, key: &str) -> Vec<String> {
    match s.block_list(key).await {
        Ok((c, _)) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("block list of {key}: {e}"),
    }
}

#[tokio::test]
async fn a_64_mib_upload_goes_up_in_blocks_committed_once() {
    let s = store_with(small_blocks()).await;
    let key = format!("{}big.bin", unique_prefix("blocks"));
    let data = pattern(64, 64 * MIB);
    let mut w = s.writer(&key, PutOptions::default()).await.unwrap();
    for chunk in data.chunks(3 * MIB + 7) {
        w.write(data.slice_ref(chunk)).await.unwrap();
    }
    // Blocks are staged but nothing is visible before the commit.
    assert_eq!(s.head(&key).await.unwrap_err().kind(), ErrorKind::NotFound);
    let put = w.complete().await.unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(committed(&s, &key).await.len(), 8, "64 MiB in 8 MiB blocks");
    assert_same(&s.get_bytes(&key).await.unwrap(), &data, "block upload");
    assert_eq!(s.head(&key).await.unwrap().etag, put.etag);
    s.delete(&key).await.unwrap();
}

#[tokio::test]
async fn an_interrupted_64_mib_upload_leaves_no_blob() {
    let s = store_with(small_blocks()).await;
    let prefix = unique_prefix("interrupted");
    let data = pattern(65, 64 * MIB);

    // Aborted midway, after blocks were staged.
    let key = format!("{prefix}aborted.bin");
    let mut w = s.writer(&key, PutOptions::default()).await.unwrap();
    w.write(data.slice(..40 * MIB)).await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(s.head(&key).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(committed(&s, &key).await.is_empty());

    // Dropped midway.
    let key = format!("{prefix}dropped.bin");
    let mut w = s.writer(&key, PutOptions::default()).await.unwrap();
    w.write(data.slice(..40 * MIB)).await.unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.head(&key).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(committed(&s, &key).await.is_empty());

    // A block fails to upload (as a network failure would): the write fails, nothing is
    // committed, and an existing blob under the key is left as it was.
    let key = format!("{prefix}failed.bin");
    s.put_bytes(&key, Bytes::from_static(b"old")).await.unwrap();
    s3dlio_store_azure::inject_block_failure(&key, 5);
    let r = s.put(&key, data.clone(), PutOptions::default()).await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("injected failure of block 5"), "{e}");
    assert_eq!(s.get_bytes(&key).await.unwrap(), "old");
    assert!(
        committed(&s, &key).await.is_empty(),
        "the old blob was a Put Blob"
    );

    let listed = s.list_objects(&prefix).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[tokio::test]
async fn large_reads_are_pinned_to_one_version() {
    let opts = AzureOptions {
        get_part_size: 4 * MIB,
        ..options()
    };
    let s = store_with(opts).await;
    let key = format!("{}versioned.bin", unique_prefix("pinned"));
    let data = pattern(1, 20 * MIB + 3);
    s.put_bytes(&key, data.clone()).await.unwrap();
    // Whole and streamed reads of many parts.
    assert_same(&s.get_bytes(&key).await.unwrap(), &data, "whole");
    let streamed: Vec<Bytes> = s
        .get(&key, GetOptions::default())
        .await
        .unwrap()
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_same(&streamed.concat(), &data, "streamed");
    // The first part is fetched here; the rest only when the body is consumed.
    let res = s.get(&key, GetOptions::default()).await.unwrap();
    assert!(matches!(res.body, Body::Deferred(_)));
    s.put_bytes(&key, pattern(2, 20 * MIB)).await.unwrap();
    let e = res.bytes().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert!(
        e.to_string().contains("replaced while it was being read"),
        "{e}"
    );
    s.delete(&key).await.unwrap();
}

#[tokio::test]
async fn small_blobs_cost_one_request() {
    let s = store().await;
    let key = format!("{}small", unique_prefix("small"));
    let put = s
        .put(
            &key,
            Bytes::from_static(b"0123456789"),
            PutOptions {
                content_type: Some("text/plain".into()),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    let res = s.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(res.meta.size, 10);
    assert_eq!(res.meta.etag, put.etag);
    assert_eq!(res.meta.content_type.as_deref(), Some("text/plain"));
    assert!(matches!(res.body, Body::Stream(_)), "one GET held it all");
    assert_eq!(res.bytes().await.unwrap(), "0123456789");
}

#[tokio::test]
async fn access_tier_is_set_on_upload_and_reported() {
    let s = store_with(AzureOptions {
        access_tier: Some(AccessTier::Cool),
        block_size: 4 * MIB,
        put_threshold: 4 * MIB,
        ..options()
    })
    .await;
    let prefix = unique_prefix("tier");
    let small = format!("{prefix}small");
    let large = format!("{prefix}large");
    s.put_bytes(&small, Bytes::from_static(b"cool"))
        .await
        .unwrap();
    s.put_bytes(&large, pattern(3, 9 * MIB)).await.unwrap();
    for k in [&small, &large] {
        assert_eq!(
            s.head(k).await.unwrap().storage_class.as_deref(),
            Some("Cool"),
            "{k}"
        );
    }
    let listed = s.list_objects(&prefix).await.unwrap();
    assert!(
        listed
            .iter()
            .all(|m| m.storage_class.as_deref() == Some("Cool")),
        "{listed:?}"
    );
    // Without a tier, the account default (Hot) is reported.
    let plain = store().await;
    let k = format!("{prefix}plain");
    plain
        .put_bytes(&k, Bytes::from_static(b"hot"))
        .await
        .unwrap();
    assert_eq!(
        plain.head(&k).await.unwrap().storage_class.as_deref(),
        Some("Hot")
    );
}

#[tokio::test]
async fn registry_opens_containers_of_one_account_with_one_pipeline() {
    let mut reg = Registry::with_parse_options(Default::default());
    s3dlio_store_azure::register_with(&mut reg, options());
    store().await; // the container exists
    let prefix = unique_prefix("registry");
    let uri = format!("az://devstoreaccount1/{CONTAINER}/{prefix}a");
    let (s, key) = reg.resolve(&uri).await.unwrap();
    s.put_bytes(&key, Bytes::from_static(b"via registry"))
        .await
        .unwrap();
    let (s2, key2) = reg.resolve(&uri).await.unwrap();
    assert_eq!(s2.get_bytes(&key2).await.unwrap(), "via registry");
    assert_eq!(s.uri_of(&key), uri);
    let delimited: Vec<ListItem> = s
        .list(&prefix, ListOptions::delimited())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(delimited.len(), 1);
}

#[tokio::test]
async fn containers_are_created_and_deleted() {
    let name = format!("s3dlio-c-{}", std::process::id());
    let s = store_in(&name, options()).await;
    let e = s.create_container().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    s.put_bytes("k", Bytes::from_static(b"x")).await.unwrap();
    s.delete_container().await.unwrap();
    let e = s.get_bytes("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

fn python() -> String {
    std::env::var("S3DLIO_TEST_PYTHON")
        .expect("S3DLIO_TEST_PYTHON is not set: run `cargo xtask test`")
}

/// Run a Python script with the Azure SDK against Azurite; its stdout lines.
fn run_python(script: &str, args: &[&str]) -> Vec<String> {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
        s3dlio_store_azure::DEV_ACCOUNT,
        s3dlio_store_azure::DEV_ACCOUNT_KEY,
        common::endpoint()
    );
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(conn)
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "python script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Blobs written by the Python `azure-storage-blob` SDK read back by us byte for byte, and
/// the reverse, for a single-request and a block upload each.
#[tokio::test]
async fn interoperates_with_the_python_sdk() {
    let s = store_with(small_blocks()).await;
    let prefix = unique_prefix("python");
    let ours_small = format!("{prefix}ours-small.bin");
    let ours_large = format!("{prefix}ours-large.bin");
    let theirs_small = format!("{prefix}theirs-small.bin");
    let theirs_large = format!("{prefix}theirs-large.bin");
    let small = pattern(77, 3 * MIB + 5);
    let large = pattern(78, 20 * MIB + 1);
    s.put_bytes(&ours_small, small.clone()).await.unwrap();
    s.put_bytes(&ours_large, large.clone()).await.unwrap();
    let script = r#"
import sys
from azure.storage.blob import BlobServiceClient
conn, container, a, b, c, d, a_out, b_out = sys.argv[1:9]
svc = BlobServiceClient.from_connection_string(conn, max_single_put_size=4 * 1024 * 1024, max_block_size=4 * 1024 * 1024)
cc = svc.get_container_client(container)
for name, out in ((a, a_out), (b, b_out)):
    with open(out, "wb") as f:
        f.write(cc.download_blob(name).readall())
def data(n, seed):
    return bytes((i * seed + 3) % 251 for i in range(n))
cc.upload_blob(c, data(1_000_003, 7), overwrite=True)
cc.upload_blob(d, data(9 * 1024 * 1024 + 11, 13), overwrite=True)
"#;
    let tmp = std::env::temp_dir().join(format!("s3dlio-az-interop-{}", std::process::id()));
    let (a_out, b_out) = (tmp.with_extension("a"), tmp.with_extension("b"));
    run_python(
        script,
        &[
            CONTAINER,
            &ours_small,
            &ours_large,
            &theirs_small,
            &theirs_large,
            a_out.to_str().unwrap(),
            b_out.to_str().unwrap(),
        ],
    );
    for (path, want) in [(&a_out, &small), (&b_out, &large)] {
        let got = std::fs::read(path).unwrap();
        let _ = std::fs::remove_file(path);
        assert_same(&got, want, "our blob as the Python SDK read it");
    }
    let want =
        |n: u64, seed: u64| -> Vec<u8> { (0..n).map(|i| ((i * seed + 3) % 251) as u8).collect() };
    assert_same(
        &s.get_bytes(&theirs_small).await.unwrap(),
        &want(1_000_003, 7),
        "Python's small blob",
    );
    assert_same(
        &s.get_bytes(&theirs_large).await.unwrap(),
        &want(9 * 1024 * 1024 + 11, 13),
        "Python's block blob",
    );
    assert!(s.block_list(&theirs_large).await.unwrap().0.len() >= 3);
}

/// A SAS made by the Python SDK from the account key authorizes our requests; a tampered
/// one does not.
#[tokio::test]
async fn sas_tokens_authorize_requests() {
    store().await;
    let script = r#"
import sys, datetime
from azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions
conn = dict(p.split("=", 1) for p in sys.argv[1].split(";") if p)
print(generate_account_sas(conn["AccountName"], conn["AccountKey"],
    ResourceTypes(service=True, container=True, object=True),
    AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True, add=True),
    datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))
"#;
    let sas = run_python(script, &[]).remove(0);
    let with_sas = |sas: String| AzureOptions {
        credential: Some(AzureCredential::Sas(sas)),
        ..options()
    };
    let s = AzureStore::new(None, CONTAINER, with_sas(sas.clone())).unwrap();
    let key = format!("{}sas", unique_prefix("sas"));
    s.put_bytes(&key, pattern(5, 9 * MIB)).await.unwrap();
    assert_same(
        &s.get_bytes(&key).await.unwrap(),
        &pattern(5, 9 * MIB),
        "via SAS",
    );
    assert_eq!(s.list_objects(&key).await.unwrap().len(), 1);
    let tampered = sas.replace("sig=", "sig=AAAA");
    let bad = AzureStore::new(None, CONTAINER, with_sas(tampered)).unwrap();
    let e = bad.get_bytes(&key).await.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("AAAA"), "the signature leaked: {e}");
    s.delete(&key).await.unwrap();
}

#[tokio::test]
async fn large_reads_reuse_pooled_buffers_once_dropped() {
    // Whole large reads land in pooled buffers: one comes back when the caller drops the
    // bytes, and is never handed out while still held.
    let store = store().await;
    let key = format!("{}pooled", unique_prefix("pool"));
    let data = pattern(31, 3 * 1024 * 1024 + 5);
    store.put_bytes(&key, data.clone()).await.unwrap();
    let first = store.get_bytes(&key).await.unwrap();
    let held = store.get_bytes(&key).await.unwrap();
    assert_ne!(first.as_ptr(), held.as_ptr(), "a held buffer was reused");
    assert_same(&held, &data, "read while another is held");
    let ptrs = [first.as_ptr(), held.as_ptr()];
    drop((first, held));
    let again = store.get_bytes(&key).await.unwrap();
    assert!(
        ptrs.contains(&again.as_ptr()),
        "a dropped buffer was not reused"
    );
    assert_same(&again, &data, "read into a reused buffer");
    store.delete(&key).await.unwrap();
}
