//! The shared conformance suite against two real S3 servers on loopback, through the
//! object_store implementation of the backend (feature `object-store-backend`), plus what the
//! suite cannot see of that implementation.

mod common;
mod relay;

use std::sync::Arc;

use common::{open_uploads, options, store, unique_prefix, Server};
use s3dlio_store_core::conformance::{Fixture, Quirk};
use s3dlio_store_s3::ObjectStoreS3;

/// A store on the server's test bucket. object_store cannot create buckets, so the native
/// backend makes sure it exists first.
async fn objstore(server: Server) -> ObjectStoreS3 {
    store(server).await;
    ObjectStoreS3::new(server.bucket(), options(server)).expect("object_store client")
}

mod seaweedfs {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        Fixture::new(
            Arc::new(objstore(Server::SeaweedFs).await),
            unique_prefix(case),
        )
        .with_quirk(
            Quirk::DelimitedPagesOutOfOrder,
            "SeaweedFS 4.48 orders a directory by its bare name across pages (dir/ before \
             dir-x/); every entry still comes exactly once, and within a page we sort",
        )
    }

    s3dlio_store_core::conformance_suite!(fixture);
}

mod moto {
    use super::*;

    async fn fixture(case: &'static str) -> Fixture {
        Fixture::new(Arc::new(objstore(Server::Moto).await), unique_prefix(case)).with_quirk(
            Quirk::CreateOnlyRaces,
            "moto 5 checks If-None-Match before a write but not atomically with it: two racing \
             create-only PUTs can both get 200 (AWS, SeaweedFS and file:// give one winner)",
        )
    }

    s3dlio_store_core::conformance_suite!(fixture);
}

/// What the conformance suite cannot see: real multipart uploads being aborted, parted reads,
/// keys object_store refuses, credentials and configuration.
mod specific {
    use std::time::Duration;

    use bytes::Bytes;
    use futures::TryStreamExt;
    use s3dlio_store_core::conformance::{assert_same, pattern};
    use s3dlio_store_core::{
        ByteRange, ErrorKind, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, Registry,
    };
    use s3dlio_store_s3::{register_object_store, S3Options};

    use super::*;

    const MIB: usize = 1024 * 1024;

    async fn with(server: Server, opts: S3Options) -> ObjectStoreS3 {
        store(server).await;
        ObjectStoreS3::new(server.bucket(), opts).expect("object_store client")
    }

    #[tokio::test]
    async fn aborted_failed_and_dropped_writers_leave_no_upload() {
        let server = Server::Moto;
        let native = store(server).await;
        let s = with(
            server,
            S3Options {
                part_size: 5 * MIB,
                multipart_threshold: 5 * MIB,
                ..options(server)
            },
        )
        .await;
        let key = format!("{}aborted.bin", unique_prefix("objs-abort"));
        let mut w = s.writer(&key, PutOptions::default()).await.unwrap();
        w.write(pattern(1, 12 * MIB)).await.unwrap();
        assert_eq!(open_uploads(&native, &key).await, 1, "no upload under way");
        w.abort().await.unwrap();
        assert_eq!(open_uploads(&native, &key).await, 0, "abort left an upload");
        assert_eq!(s.head(&key).await.unwrap_err().kind(), ErrorKind::NotFound);

        let dropped = format!("{key}.dropped");
        let mut w = s.writer(&dropped, PutOptions::default()).await.unwrap();
        w.write(pattern(2, 12 * MIB)).await.unwrap();
        assert_eq!(open_uploads(&native, &dropped).await, 1);
        drop(w);
        // The abort runs in the background; give it a moment.
        let mut left = 1;
        for _ in 0..50 {
            left = open_uploads(&native, &dropped).await;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0, "a dropped writer left its upload");
        assert_eq!(
            s.head(&dropped).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn multipart_writes_keep_content_type_and_metadata() {
        let server = Server::SeaweedFs;
        let native = store(server).await;
        let s = with(
            server,
            S3Options {
                part_size: 5 * MIB,
                multipart_threshold: 5 * MIB,
                ..options(server)
            },
        )
        .await;
        let key = format!("{}meta.bin", unique_prefix("objs-mpmeta"));
        let mut opts = PutOptions {
            content_type: Some("application/x-parts".into()),
            ..PutOptions::default()
        };
        opts.metadata.insert("origin".into(), "objstore".into());
        let data = pattern(4, 11 * MIB + 7);
        let mut w = s.writer(&key, opts).await.unwrap();
        w.write(data.clone()).await.unwrap();
        assert_eq!(open_uploads(&native, &key).await, 1, "no upload under way");
        let put = w.complete().await.unwrap();
        let meta = s.head(&key).await.unwrap();
        assert_eq!(meta.content_type.as_deref(), Some("application/x-parts"));
        assert_eq!(
            meta.metadata.get("origin").map(String::as_str),
            Some("objstore")
        );
        assert_eq!((meta.size, meta.etag), (data.len() as u64, put.etag));
        assert_same(&s.get_bytes(&key).await.unwrap(), &data, "multipart write");
        s.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn conditional_writers_past_the_threshold_are_one_conditional_put() {
        let server = Server::SeaweedFs;
        let native = store(server).await;
        let s = with(
            server,
            S3Options {
                multipart_threshold: 5 * MIB,
                ..options(server)
            },
        )
        .await;
        let key = format!("{}once.bin", unique_prefix("objs-cond"));
        let data = pattern(5, 11 * MIB);
        let mut w = s.writer(&key, PutOptions::create()).await.unwrap();
        w.write(data.clone()).await.unwrap();
        assert_eq!(open_uploads(&native, &key).await, 0, "went multipart");
        let first = w.complete().await.unwrap();
        assert_same(
            &s.get_bytes(&key).await.unwrap(),
            &data,
            "create-only writer",
        );

        let mut w = s.writer(&key, PutOptions::create()).await.unwrap();
        w.write(pattern(6, 11 * MIB)).await.unwrap();
        assert_eq!(
            w.complete().await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        let mut w = s
            .writer(&key, PutOptions::if_match(first.etag.clone().unwrap()))
            .await
            .unwrap();
        w.write(pattern(7, 11 * MIB)).await.unwrap();
        w.complete().await.expect("matching If-Match writer");
        assert_same(
            &s.get_bytes(&key).await.unwrap(),
            &pattern(7, 11 * MIB),
            "If-Match writer",
        );
        s.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn parted_reads_are_pinned_to_one_version() {
        let server = Server::SeaweedFs;
        let s = with(
            server,
            S3Options {
                get_part_size: MIB,
                get_concurrency: 3,
                ..options(server)
            },
        )
        .await;
        let key = format!("{}parted.bin", unique_prefix("objs-parts"));
        let data = pattern(8, 4 * MIB + 3);
        s.put_bytes(&key, data.clone()).await.unwrap();

        let streamed: Vec<Bytes> = s
            .get(&key, GetOptions::default())
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_same(&streamed.concat(), &data, "streamed parts");
        let from = (MIB + 5) as u64;
        let got = s.get_range(&key, ByteRange::From(from)).await.unwrap();
        assert_same(&got, &data[MIB + 5..], "ranged parts");
        let got = s
            .get_range(&key, ByteRange::from(10..(3 * MIB) as u64))
            .await
            .unwrap();
        assert_same(&got, &data[10..3 * MIB], "bounded parts");

        // Overwritten between the first part and the rest: the read fails, never mixes.
        let res = s.get(&key, GetOptions::default()).await.unwrap();
        s.put_bytes(&key, pattern(9, 4 * MIB + 3)).await.unwrap();
        let e = res.bytes().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
        assert!(
            e.to_string().contains("replaced while it was being read"),
            "{e}"
        );
        s.delete(&key).await.unwrap();
    }

    /// A proxy to `server` that cuts the answer to the GET of bytes 1 to 2 MiB at half.
    async fn cut_second_part(server: Server) -> (String, relay::Seen) {
        let part = format!("range: bytes={}-{}", MIB, 2 * MIB - 1);
        relay::cutting_proxy(
            server.endpoint().trim_start_matches("http://").to_owned(),
            move |head| head.to_ascii_lowercase().contains(&part),
        )
        .await
    }

    #[tokio::test]
    async fn a_part_cut_midway_is_resumed_from_its_last_byte() {
        // object_store resumes a cut body itself (its retries are `max_attempts`), and the
        // shared `RangedBody` would again after it: either way from the last byte received.
        let server = Server::SeaweedFs;
        let direct = with(server, options(server)).await;
        let key = format!("{}cut.bin", unique_prefix("objs-cut"));
        let data = pattern(11, 3 * MIB + 5);
        direct.put_bytes(&key, data.clone()).await.unwrap();
        // The part at 1 MiB is cut at half its body.
        let (url, seen) = cut_second_part(server).await;
        let s = with(
            server,
            S3Options {
                endpoint_url: Some(url),
                get_part_size: MIB,
                get_concurrency: 3,
                ..options(server)
            },
        )
        .await;
        assert_same(
            &s.get_bytes(&key).await.unwrap(),
            &data,
            "read through the cut",
        );
        let ranges: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(line, _)| line.starts_with("GET "))
            .filter_map(|(_, r)| r.clone())
            .collect();
        let resumed = format!("bytes={}-{}", MIB + MIB / 2, 2 * MIB - 1);
        assert!(
            ranges.contains(&resumed),
            "not resumed at its last byte: {ranges:?}"
        );
        let again = format!("bytes={}-{}", MIB, 2 * MIB - 1);
        assert_eq!(
            ranges.iter().filter(|r| **r == again).count(),
            1,
            "the part was fetched whole again: {ranges:?}"
        );

        // With one attempt nothing resumes it: the read fails, never comes back short.
        let (url, _) = cut_second_part(server).await;
        let once = with(
            server,
            S3Options {
                endpoint_url: Some(url),
                get_part_size: MIB,
                max_attempts: 1,
                ..options(server)
            },
        )
        .await;
        let e = once.get_bytes(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
        direct.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn large_reads_land_in_pooled_buffers() {
        // As in the native backend: a whole large read lands in one buffer from the pool,
        // which comes back when the caller drops the bytes and is never handed out while
        // held.
        let server = Server::SeaweedFs;
        let s = with(
            server,
            S3Options {
                get_part_size: 2 * MIB,
                ..options(server)
            },
        )
        .await;
        let key = format!("{}pooled.bin", unique_prefix("objs-pool"));
        let data = pattern(10, 9 * MIB + 7);
        s.put_bytes(&key, data.clone()).await.unwrap();
        let held = s.get_bytes(&key).await.unwrap();
        let first = s.get_bytes(&key).await.unwrap();
        assert_ne!(
            held.as_ptr(),
            first.as_ptr(),
            "a held buffer was handed out"
        );
        assert_same(&first, &data, "first read");
        let ptr = first.as_ptr();
        drop(first);
        // Memory of the same size taken meanwhile: without the pool the allocator would
        // hand the freed buffer's memory to this instead of to the next read.
        let other = vec![1u8; 16 * MIB];
        let again = s.get_bytes(&key).await.unwrap();
        assert_eq!(again.as_ptr(), ptr, "a dropped buffer was not reused");
        assert_same(&again, &data, "read into a reused buffer");
        assert_same(&held, &data, "the held read is untouched");
        drop(other);
    }

    #[tokio::test]
    async fn keys_object_store_cannot_hold_are_refused_by_name() {
        let s = super::objstore(Server::Moto).await;
        let prefix = unique_prefix("objs-keys");
        for bad in ["a//b", "a/./b", "a/../b", "trailing/"] {
            let key = format!("{prefix}{bad}");
            let e = s
                .put_bytes(&key, Bytes::from_static(b"x"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(&format!("{key:?}")), "{e}");
            assert_eq!(
                s.head(&key).await.unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
        let good = format!("{prefix}good");
        s.put_bytes(&good, Bytes::from_static(b"x")).await.unwrap();
        let results = s
            .delete_many(vec![good.clone(), format!("{prefix}bad//key")])
            .await
            .unwrap();
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(!s.exists(&good).await.unwrap());
    }

    #[tokio::test]
    async fn wrong_credentials_are_unauthenticated() {
        let server = Server::SeaweedFs;
        let mut opts = options(server);
        opts.credentials.as_mut().unwrap().secret_access_key = "definitely-wrong".into();
        let s = with(server, opts).await;
        let key = format!("{}obj", unique_prefix("objs-creds"));
        let e = s
            .put_bytes(&key, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("SignatureDoesNotMatch"), "{msg}");
        assert!(
            !msg.contains("definitely-wrong"),
            "the secret leaked: {msg}"
        );
    }

    /// Credentials, endpoint and region from the environment, through a registry. The values
    /// are the SeaweedFS ones, so other tests of this binary, which set everything
    /// explicitly, are unaffected; the metadata endpoint points at loopback so a missing
    /// credential could never reach out.
    #[tokio::test]
    async fn environment_fallback_through_the_registry() {
        let server = Server::SeaweedFs;
        store(server).await;
        let (access, secret) = common::keys();
        std::env::set_var("AWS_ACCESS_KEY_ID", &access);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", &secret);
        std::env::set_var("AWS_ENDPOINT_URL", server.endpoint());
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_METADATA_ENDPOINT", "http://127.0.0.1:1");
        let mut registry = Registry::with_parse_options(Default::default());
        register_object_store(&mut registry, S3Options::default());
        let uri = format!(
            "s3://{}/{}env.txt",
            server.bucket(),
            unique_prefix("objs-env")
        );
        let (s, key) = registry.resolve(&uri).await.unwrap();
        assert!(format!("{s:?}").contains("ObjectStoreS3"), "{s:?}");
        s.put_bytes(&key, Bytes::from_static(b"from env"))
            .await
            .unwrap();
        assert_eq!(s.get_bytes(&key).await.unwrap(), "from env");
        s.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn encryption_and_storage_class_apply_and_a_classed_copy_is_refused() {
        use s3dlio_store_core::CopyOptions;
        use s3dlio_store_s3::ServerSideEncryption;
        let kms_key = "arn:aws:kms:us-east-1:123456789012:key/s3dlio-objs";
        let sse = ServerSideEncryption::Kms {
            key_id: Some(kms_key.to_owned()),
            bucket_key: None,
        };
        let opts = S3Options {
            server_side_encryption: Some(sse.clone()),
            storage_class: Some("STANDARD_IA".into()),
            part_size: 5 * MIB,
            multipart_threshold: 5 * MIB,
            ..options(Server::Moto)
        };
        let s = with(Server::Moto, opts.clone()).await;
        let native = store(Server::Moto).await;
        let prefix = unique_prefix("objs-stored-as");
        let (small, big) = (format!("{prefix}small"), format!("{prefix}big"));
        s.put_bytes(&small, Bytes::from_static(b"x")).await.unwrap();
        let data = Bytes::from(vec![7u8; 6 * MIB]);
        s.put_bytes(&big, data.clone()).await.unwrap();
        for key in [&small, &big] {
            let h = native
                .client()
                .head_object()
                .bucket(Server::Moto.bucket())
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                h.server_side_encryption().map(|e| e.as_str()),
                Some("aws:kms"),
                "{key}"
            );
            assert_eq!(h.ssekms_key_id(), Some(kms_key), "{key}");
            assert_eq!(
                h.storage_class().map(|c| c.as_str()),
                Some("STANDARD_IA"),
                "{key}"
            );
        }
        // object_store's copy cannot set the class: refused, not done without it.
        let e = s
            .copy(&small, &format!("{prefix}copy"), CopyOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
        assert!(e.to_string().contains("storage_class"), "{e}");
        // Encryption alone copies, encrypted.
        let s = with(
            Server::Moto,
            S3Options {
                storage_class: None,
                ..opts
            },
        )
        .await;
        let copy = format!("{prefix}copy");
        s.copy(&small, &copy, CopyOptions::default()).await.unwrap();
        let h = native
            .client()
            .head_object()
            .bucket(Server::Moto.bucket())
            .key(&copy)
            .send()
            .await
            .unwrap();
        assert_eq!(h.ssekms_key_id(), Some(kms_key));
    }
}
