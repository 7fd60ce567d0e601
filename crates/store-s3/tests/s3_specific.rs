//! Behaviour specific to S3, against the real servers `cargo xtask test` starts.

mod common;
mod relay;

use std::time::Duration;

use bytes::Bytes;
use common::{open_uploads, options, store, store_with, unique_prefix, Server};
use futures::TryStreamExt;
use s3dlio_store_core::conformance::{assert_same, pattern};
use s3dlio_store_core::{
    ByteRange, ErrorKind, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, Registry,
};
use s3dlio_store_s3::{S3Options, S3Store, StaticCredentials};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn wrong_credentials_fail_fast_as_unauthenticated() {
    let mut opts = options(Server::SeaweedFs);
    let good = store_with(Server::SeaweedFs, opts.clone()).await;
    let key = format!("{}obj", unique_prefix("creds"));
    good.put_bytes(&key, Bytes::from_static(b"x"))
        .await
        .unwrap();

    let creds = opts.credentials.as_mut().unwrap();
    creds.secret_access_key = "definitely-wrong".into();
    opts.max_attempts = 5;
    let bad = S3Store::new(Server::SeaweedFs.bucket(), opts.clone())
        .await
        .unwrap();
    let e = bad.get_bytes(&key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(
        !e.is_retryable(),
        "bad credentials must not be retried: {e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("403") && msg.contains("SignatureDoesNotMatch"),
        "{msg}"
    );
    assert!(
        !msg.contains("definitely-wrong"),
        "the secret leaked into the error: {msg}"
    );

    opts.credentials = Some(StaticCredentials {
        access_key_id: "NOSUCHKEY".into(),
        secret_access_key: "x".into(),
        session_token: None,
    });
    let unknown = S3Store::new(Server::SeaweedFs.bucket(), opts)
        .await
        .unwrap();
    let e = unknown.head(&key).await.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
        ),
        "{e}"
    );
}

#[tokio::test]
async fn missing_bucket_and_key_are_not_found_with_the_s3_code() {
    let store = store(Server::Moto).await;
    let e = store.get_bytes("no/such/key").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("NoSuchKey"), "{e}");
    assert!(
        e.to_string().contains("s3://s3dlio-test/no/such/key"),
        "{e}"
    );

    let missing = S3Store::new("s3dlio-no-such-bucket", options(Server::Moto))
        .await
        .unwrap();
    let e = missing.get_bytes("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    let e = missing
        .put_bytes("k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn multipart_uploads_with_small_parts_round_trip() {
    let opts = S3Options {
        part_size: 5 * MIB,
        multipart_threshold: 5 * MIB,
        upload_concurrency: 3,
        ..options(Server::SeaweedFs)
    };
    let store = store_with(Server::SeaweedFs, opts).await;
    let key = format!("{}mpu.bin", unique_prefix("multipart"));
    let data = pattern(5, 23 * MIB + 11);
    let mut w = store.writer(&key, PutOptions::default()).await.unwrap();
    for chunk in data.chunks(777_777) {
        w.write(data.slice_ref(chunk)).await.unwrap();
    }
    let put = w.complete().await.unwrap();
    assert_eq!(put.size, data.len() as u64);
    // A multipart ETag ends in "-<parts>": 23 MiB in 5 MiB parts is 5 parts.
    let etag = put.etag.clone().unwrap();
    assert!(etag.trim_matches('"').ends_with("-5"), "ETag {etag}");
    let got = store.get_bytes(&key).await.unwrap();
    assert_same(&got, &data, "multipart round trip");
    assert_eq!(open_uploads(&store, &key).await, 0);

    // put() of a large payload goes multipart too, from slices of the one buffer.
    let key2 = format!("{key}.put");
    let put = store.put_bytes(&key2, data.clone()).await.unwrap();
    assert!(put.etag.unwrap().trim_matches('"').ends_with("-5"));
    assert_same(
        &store.get_bytes(&key2).await.unwrap(),
        &data,
        "multipart put",
    );
}

#[tokio::test]
async fn aborted_or_dropped_uploads_leave_no_object_and_no_upload() {
    let opts = S3Options {
        part_size: 5 * MIB,
        multipart_threshold: 5 * MIB,
        ..options(Server::Moto)
    };
    let store = store_with(Server::Moto, opts).await;
    let key = format!("{}aborted.bin", unique_prefix("abort"));
    let mut w = store.writer(&key, PutOptions::default()).await.unwrap();
    w.write(pattern(1, 12 * MIB)).await.unwrap();
    assert_eq!(
        open_uploads(&store, &key).await,
        1,
        "the upload should be under way"
    );
    w.abort().await.unwrap();
    assert_eq!(open_uploads(&store, &key).await, 0, "abort left an upload");
    assert_eq!(
        store.head(&key).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let dropped = format!("{key}.dropped");
    let mut w = store.writer(&dropped, PutOptions::default()).await.unwrap();
    w.write(pattern(2, 12 * MIB)).await.unwrap();
    assert_eq!(open_uploads(&store, &dropped).await, 1);
    drop(w);
    // The abort runs in the background; give it a moment.
    let mut left = 1;
    for _ in 0..50 {
        left = open_uploads(&store, &dropped).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "a dropped writer left its upload");
    assert_eq!(
        store.head(&dropped).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // A create-only completion that loses leaves no upload either.
    let taken = format!("{key}.taken");
    store
        .put_bytes(&taken, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let mut w = store.writer(&taken, PutOptions::create()).await.unwrap();
    w.write(pattern(3, 11 * MIB)).await.unwrap();
    assert_eq!(
        w.complete().await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(open_uploads(&store, &taken).await, 0);
    assert_eq!(store.get_bytes(&taken).await.unwrap(), "first");
}

#[tokio::test]
async fn a_200_mib_object_reads_back_exactly_whole_streamed_and_ranged() {
    let store = store(Server::SeaweedFs).await;
    let key = format!("{}big.bin", unique_prefix("big"));
    let size = 200 * MIB + 7;
    let data = pattern(200, size);
    store.put_bytes(&key, data.clone()).await.unwrap();

    let got = store.get_bytes(&key).await.unwrap();
    assert_same(&got, &data, "whole 200 MiB read");
    drop(got);
    let res = store.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(res.meta.size, size as u64);
    let mut off = 0usize;
    let mut chunks = res.into_stream();
    while let Some(c) = chunks.try_next().await.unwrap() {
        assert_same(
            &c,
            &data[off..off + c.len()],
            &format!("streamed chunk at {off}"),
        );
        off += c.len();
    }
    assert_eq!(off, size);

    let ranges = [
        (ByteRange::from(0..1), 0..1),
        (
            ByteRange::from(8 * MIB as u64 - 3..8 * MIB as u64 + 3),
            8 * MIB - 3..8 * MIB + 3,
        ),
        (
            ByteRange::from(10_000_000..90_000_000),
            10_000_000..90_000_000,
        ),
        (ByteRange::From(150 * MIB as u64), 150 * MIB..size),
        (ByteRange::Suffix(MIB as u64 + 1), size - MIB - 1..size),
    ];
    for (r, want) in ranges {
        let got = store.get_range(&key, r).await.unwrap();
        assert_same(&got, &data[want], &format!("{r:?}"));
    }
}

#[tokio::test]
async fn a_read_never_mixes_two_versions() {
    let opts = S3Options {
        get_part_size: 5 * MIB,
        ..options(Server::SeaweedFs)
    };
    let store = store_with(Server::SeaweedFs, opts).await;
    let key = format!("{}versioned.bin", unique_prefix("pinned"));
    store.put_bytes(&key, pattern(1, 20 * MIB)).await.unwrap();
    // The first part is fetched here; the rest only when the body is consumed.
    let res = store.get(&key, GetOptions::default()).await.unwrap();
    store.put_bytes(&key, pattern(2, 20 * MIB)).await.unwrap();
    let e = res.bytes().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert!(
        e.to_string().contains("replaced while it was being read"),
        "{e}"
    );
}

#[tokio::test]
async fn large_reads_reuse_pooled_buffers_once_dropped() {
    // Whole large reads land in pooled buffers (no page faults on reuse): a buffer comes
    // back when the caller drops the bytes, and is never handed out while still held.
    let store = store(Server::SeaweedFs).await;
    let prefix = unique_prefix("pool");
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    // One size read in one request, one read in several ranged parts.
    let (da, db) = (pattern(11, 3 * MIB + 5), pattern(12, 20 * MIB));
    store.put_bytes(&a, da.clone()).await.unwrap();
    store.put_bytes(&b, db.clone()).await.unwrap();
    for (key, data) in [(&a, &da), (&b, &db)] {
        let first = store.get_bytes(key).await.unwrap();
        assert_same(&first, data, "first read");
        let ptr = first.as_ptr();
        // Held: the second read must get other memory, with the right bytes.
        let held = store.get_bytes(key).await.unwrap();
        assert_ne!(held.as_ptr(), ptr, "{key}: a held buffer was reused");
        assert_same(&held, data, "read while another is held");
        let held_ptr = held.as_ptr();
        drop(held);
        drop(first);
        // Dropped: a read of the same size reuses one of the two buffers.
        let again = store.get_bytes(key).await.unwrap();
        assert!(
            again.as_ptr() == ptr || again.as_ptr() == held_ptr,
            "{key}: a dropped buffer was not reused"
        );
        assert_same(&again, data, "read into a reused buffer");
        drop(again);
    }
    // With the pool off, reads still work.
    let off = store_with(
        Server::SeaweedFs,
        S3Options {
            buffer_pool_bytes: 0,
            ..options(Server::SeaweedFs)
        },
    )
    .await;
    assert_same(&off.get_bytes(&b).await.unwrap(), &db, "pool off");
}

#[tokio::test]
async fn small_objects_cost_one_request() {
    // One GET answers size, ETag and bytes: no HEAD first. Checked by reading an object
    // whose single GET we can see succeed with the metadata filled in.
    let store = store(Server::Moto).await;
    let key = format!("{}small", unique_prefix("small"));
    let put = store
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
    let res = store.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(res.meta.size, 10);
    assert_eq!(res.meta.etag, put.etag);
    assert_eq!(res.meta.content_type.as_deref(), Some("text/plain"));
    assert!(matches!(res.body, s3dlio_store_core::Body::Stream(_)));
    assert_eq!(res.bytes().await.unwrap(), "0123456789");
}

#[tokio::test]
async fn registry_opens_buckets_with_one_shared_client() {
    let mut reg = Registry::with_parse_options(Default::default());
    s3dlio_store_s3::register_with(&mut reg, options(Server::Moto));
    let bucket = Server::Moto.bucket();
    store(Server::Moto).await; // the bucket exists
    let prefix = unique_prefix("registry");
    let (s, key) = reg
        .resolve(&format!("s3://{bucket}/{prefix}a"))
        .await
        .unwrap();
    s.put_bytes(&key, Bytes::from_static(b"via registry"))
        .await
        .unwrap();
    let (s2, key2) = reg
        .resolve(&format!("s3://{bucket}/{prefix}a"))
        .await
        .unwrap();
    assert_eq!(s2.get_bytes(&key2).await.unwrap(), "via registry");
    assert_eq!(s.uri_of(&key), format!("s3://{bucket}/{prefix}a"));
}

#[tokio::test]
async fn bucket_create_list_delete() {
    let name = format!("s3dlio-bucket-{}", std::process::id());
    let store = S3Store::new(name.clone(), options(Server::Moto))
        .await
        .unwrap();
    store.create_bucket().await.unwrap();
    // Creating it again: us-east-1 answers 200 for a bucket you own; others say it exists.
    if let Err(e) = store.create_bucket().await {
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    }
    assert!(S3Store::list_buckets(store.client())
        .await
        .unwrap()
        .contains(&name));
    store
        .put_bytes("k", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let e = store.delete_bucket().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "a non-empty bucket: {e}");
    store.delete("k").await.unwrap();
    store.delete_bucket().await.unwrap();
    assert!(!S3Store::list_buckets(store.client())
        .await
        .unwrap()
        .contains(&name));
}

#[tokio::test]
async fn delete_many_batches_over_a_thousand_keys() {
    let store = store(Server::Moto).await;
    let prefix = unique_prefix("batch");
    let keys: Vec<String> = (0..1205).map(|i| format!("{prefix}{i:05}")).collect();
    futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let store = &store;
            async move { store.put_bytes(&k, Bytes::new()).await.unwrap() }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let results = store.delete_many(keys.clone()).await.unwrap();
    assert_eq!(results.len(), keys.len());
    assert!(results.iter().all(|r| r.is_ok()));
    assert!(store.list_objects(&prefix).await.unwrap().is_empty());
}

use futures::StreamExt;

/// Objects written by boto3 read back by us with the same bytes and ETag, and the reverse.
#[tokio::test]
async fn interoperates_with_boto3() {
    let python = std::env::var("S3DLIO_TEST_PYTHON")
        .expect("S3DLIO_TEST_PYTHON is not set: run `cargo xtask test`");
    let store = store(Server::SeaweedFs).await;
    let prefix = unique_prefix("boto3");
    let ours = format!("{prefix}ours.bin");
    let theirs = format!("{prefix}theirs.bin");
    let data = pattern(77, 3 * MIB + 5);
    let put = store.put_bytes(&ours, data.clone()).await.unwrap();

    let (access, secret) = common::keys();
    let script = r#"
import hashlib, sys, boto3
from botocore.config import Config
ep, key, secret, bucket, ours, theirs = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=ep, aws_access_key_id=key, aws_secret_access_key=secret,
                 region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
r = c.get_object(Bucket=bucket, Key=ours)
body = r["Body"].read()
print(hashlib.sha256(body).hexdigest(), r["ETag"])
data = bytes((i * 7 + 3) % 251 for i in range(1_000_003))
out = c.put_object(Bucket=bucket, Key=theirs, Body=data)
print(hashlib.sha256(data).hexdigest(), out["ETag"])
"#;
    let out = std::process::Command::new(python)
        .args([
            "-c",
            script,
            &Server::SeaweedFs.endpoint(),
            &access,
            &secret,
        ])
        .args([Server::SeaweedFs.bucket(), ours.as_str(), theirs.as_str()])
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        lines[0][0],
        sha256_hex(&data),
        "boto3 read different bytes than we wrote"
    );
    assert_eq!(
        Some(lines[0][1].to_owned()),
        put.etag,
        "ETag as seen by boto3"
    );

    let theirs_data: Vec<u8> = (0..1_000_003u64)
        .map(|i| ((i * 7 + 3) % 251) as u8)
        .collect();
    let got = store.get(&theirs, GetOptions::default()).await.unwrap();
    assert_eq!(
        got.meta.etag.as_deref(),
        Some(lines[1][1]),
        "ETag of boto3's object"
    );
    let got = got.bytes().await.unwrap();
    assert_same(&got, &theirs_data, "boto3's object read by us");
    assert_eq!(lines[1][0], sha256_hex(&got));
}

/// SHA-256 by `sha256sum`, to compare with what boto3 saw without a crypto dependency.
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// Every upload integrity mode is accepted by a server that checks signatures, for single
/// and multipart uploads alike.
#[tokio::test]
async fn every_upload_integrity_mode_round_trips() {
    use s3dlio_store_s3::UploadIntegrity;
    for mode in [
        UploadIntegrity::Crc32c,
        UploadIntegrity::SignedPayload,
        UploadIntegrity::None,
    ] {
        let opts = S3Options {
            upload_integrity: mode,
            part_size: 5 * MIB,
            multipart_threshold: 5 * MIB,
            ..options(Server::SeaweedFs)
        };
        let store = store_with(Server::SeaweedFs, opts).await;
        let prefix = unique_prefix("integrity");
        for size in [1000, 11 * MIB + 3] {
            let key = format!("{prefix}{mode:?}-{size}");
            let data = pattern(size as u64, size);
            store
                .put_bytes(&key, data.clone())
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {size}: {e}"));
            assert_same(
                &store.get_bytes(&key).await.unwrap(),
                &data,
                &format!("{mode:?} {size}"),
            );
        }
    }
}

/// How each object was stored, as HeadObject reports it: (encryption, KMS key, storage class).
async fn stored_as(client: &aws_sdk_s3::Client, key: &str) -> (String, Option<String>, String) {
    let h = client
        .head_object()
        .bucket(Server::Moto.bucket())
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    (
        h.server_side_encryption()
            .map_or("none".into(), |e| e.as_str().to_owned()),
        h.ssekms_key_id().map(str::to_owned),
        h.storage_class()
            .map_or("none".into(), |c| c.as_str().to_owned()),
    )
}

#[tokio::test]
async fn encryption_and_storage_class_go_on_every_write_path() {
    use s3dlio_store_core::CopyOptions;
    use s3dlio_store_s3::ServerSideEncryption;
    // moto: SeaweedFS has no KMS to encrypt with. It stores and reports both settings.
    let kms_key = "arn:aws:kms:us-east-1:123456789012:key/s3dlio-test";
    let cases = [
        (
            Some(ServerSideEncryption::Kms {
                key_id: Some(kms_key.to_owned()),
                bucket_key: Some(true),
            }),
            Some("STANDARD_IA"),
        ),
        (Some(ServerSideEncryption::S3), Some("GLACIER_IR")),
        (None, Some("INTELLIGENT_TIERING")),
        (
            Some(ServerSideEncryption::Kms {
                key_id: None,
                bucket_key: None,
            }),
            None,
        ),
    ];
    for (sse, class) in cases {
        let what = format!("{sse:?} {class:?}");
        let opts = S3Options {
            server_side_encryption: sse.clone(),
            storage_class: class.map(str::to_owned),
            part_size: 5 * MIB,
            multipart_threshold: 5 * MIB,
            ..options(Server::Moto)
        };
        let store = store_with(Server::Moto, opts).await;
        let prefix = unique_prefix("stored-as");
        let big = pattern(11, 6 * MIB);
        // A single PUT (lean path), a conditional one, a multipart PUT (SDK), a streamed
        // write, a copy and a create-only copy (a multipart copy).
        let small = format!("{prefix}small");
        store
            .put_bytes(&small, Bytes::from_static(b"x"))
            .await
            .unwrap();
        let created = format!("{prefix}created");
        store
            .put(&created, Bytes::from_static(b"y"), PutOptions::create())
            .await
            .unwrap();
        let multipart = format!("{prefix}multipart");
        store.put_bytes(&multipart, big.clone()).await.unwrap();
        let streamed = format!("{prefix}streamed");
        let mut w = store
            .writer(&streamed, PutOptions::default())
            .await
            .unwrap();
        for chunk in big.chunks(MIB) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        w.complete().await.unwrap();
        let copied = format!("{prefix}copied");
        store
            .copy(&small, &copied, CopyOptions::default())
            .await
            .unwrap();
        let copied_new = format!("{prefix}copied-new");
        store
            .copy(&multipart, &copied_new, CopyOptions { create_only: true })
            .await
            .unwrap();
        let want = (
            sse.as_ref()
                .map_or("none".into(), |e| e.as_str().to_owned()),
            sse.as_ref().and_then(|e| match e {
                ServerSideEncryption::Kms { key_id, .. } => key_id.clone(),
                ServerSideEncryption::S3 => None,
            }),
            class.unwrap_or("none").to_owned(),
        );
        for key in [
            &small,
            &created,
            &multipart,
            &streamed,
            &copied,
            &copied_new,
        ] {
            assert_eq!(stored_as(store.client(), key).await, want, "{what}: {key}");
        }
        assert_same(&store.get_bytes(&streamed).await.unwrap(), &big, &what);
    }
    // Bad settings are refused before any request, naming what is wrong.
    for (opts, needle) in [
        (
            S3Options {
                storage_class: Some("standard ia".into()),
                ..options(Server::Moto)
            },
            "storage class",
        ),
        (
            S3Options {
                server_side_encryption: Some(ServerSideEncryption::Kms {
                    key_id: Some(" ".into()),
                    bucket_key: None,
                }),
                ..options(Server::Moto)
            },
            "KMS key id",
        ),
    ] {
        let e = S3Store::new(Server::Moto.bucket(), opts).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[tokio::test]
async fn requester_pays_goes_on_every_request() {
    use s3dlio_store_core::CopyOptions;
    // Through a relay to moto that records every request, on the wire, lean and SDK paths.
    let target = Server::Moto
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let (url, sent) = relay::relay(target).await;
    let opts = S3Options {
        endpoint_url: Some(url),
        requester_pays: true,
        part_size: 5 * MIB,
        multipart_threshold: 5 * MIB,
        ..options(Server::Moto)
    };
    let store = store_with(Server::Moto, opts).await;
    let prefix = unique_prefix("request-payer");
    let (small, big) = (format!("{prefix}small"), format!("{prefix}big"));
    store
        .put_bytes(&small, Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.put_bytes(&big, pattern(3, 6 * MIB)).await.unwrap();
    assert_eq!(store.get_bytes(&big).await.unwrap().len(), 6 * MIB);
    let part = store.get_range(&big, ByteRange::from(1..10)).await.unwrap();
    assert_eq!(part.len(), 9);
    store.head(&small).await.unwrap();
    let listed: Vec<_> = store
        .list(&prefix, s3dlio_store_core::ListOptions::recursive())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    store
        .copy(&small, &format!("{prefix}copy"), CopyOptions::default())
        .await
        .unwrap();
    store.delete(&small).await.unwrap();
    let deleted = store
        .delete_many(vec![big.clone(), format!("{prefix}copy")])
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let reqs = relay::requests(&sent.lock().unwrap());
    // PUT, create + 2 parts + complete, GET, ranged GET, HEAD(s), LIST, copy, DELETE, batch.
    assert!(reqs.len() >= 12, "{reqs:?}");
    for r in &reqs {
        assert_eq!(
            r.header("x-amz-request-payer"),
            Some("requester"),
            "{}",
            r.line
        );
    }
}
