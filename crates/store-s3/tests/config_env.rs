//! Configuration from the standard AWS environment and files. One test in its own binary:
//! it sets process-wide environment variables, which parallel tests would race on.

mod common;
mod relay;

use bytes::Bytes;
use common::{keys, unique_prefix, Server};
use relay::{relay, requests, Recorded};
use s3dlio_store_core::{ErrorKind, ObjectStoreExt, Registry};
use s3dlio_store_s3::{S3Options, S3Store, ServerSideEncryption, UploadIntegrity};

fn clear_aws_env() {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") && k != "AWS_EC2_METADATA_DISABLED" {
            std::env::remove_var(k);
        }
    }
}

async fn round_trip(store: &S3Store, what: &str) {
    let key = format!("{}{what}", unique_prefix("config"));
    store
        .put_bytes(&key, Bytes::from(what.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(store.get_bytes(&key).await.unwrap(), what);
}

#[tokio::test]
async fn environment_profiles_and_explicit_options() {
    let endpoint = Server::SeaweedFs.endpoint();
    let bucket = Server::SeaweedFs.bucket();
    let (access, secret) = keys();
    // The bucket exists (created with explicit options).
    common::store(Server::SeaweedFs).await;
    let dir = std::env::temp_dir().join(format!("s3dlio-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(
        &config,
        format!(
            "[profile s3dlio-test]\nendpoint_url = {endpoint}\n\n[default]\nregion = eu-west-3\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials,
        format!("[s3dlio-test]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();

    // Changing the environment is sound here: this binary runs this one test only.
    // 1. A named profile from the shared files: endpoint and keys from there, no region
    //    anywhere (a custom endpoint needs none), path style chosen for the custom endpoint.
    clear_aws_env();
    std::env::set_var("AWS_CONFIG_FILE", &config);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    std::env::set_var("AWS_PROFILE", "s3dlio-test");
    let store = S3Store::new(bucket, S3Options::default()).await.unwrap();
    round_trip(&store, "profile-from-env").await;

    // 2. The same profile named explicitly wins over AWS_PROFILE.
    std::env::set_var("AWS_PROFILE", "default");
    let opts = S3Options {
        profile: Some("s3dlio-test".into()),
        ..S3Options::default()
    };
    round_trip(
        &S3Store::new(bucket, opts).await.unwrap(),
        "profile-explicit",
    )
    .await;

    // 3. Plain environment variables, no files, no region.
    clear_aws_env();
    std::env::set_var("AWS_CONFIG_FILE", dir.join("none"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"));
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", &access);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &secret);
    round_trip(
        &S3Store::new(bucket, S3Options::default()).await.unwrap(),
        "env-keys",
    )
    .await;

    // 4. Explicit options override the environment: a dead endpoint in the environment
    //    (a closed loopback port) is not used when one is given.
    std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let opts = S3Options {
        endpoint_url: Some(endpoint.clone()),
        ..S3Options::default()
    };
    round_trip(
        &S3Store::new(bucket, opts).await.unwrap(),
        "explicit-endpoint",
    )
    .await;
    // ...and the dead one fails clearly, naming that it could not connect, without hanging.
    let dead = S3Store::new(
        bucket,
        S3Options {
            max_attempts: 1,
            ..S3Options::default()
        },
    )
    .await
    .unwrap();
    let e = dead.get_bytes("anything").await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::Other),
        "{e}"
    );
    assert!(e.to_string().contains("could not send the request"), "{e}");

    // 5. A CA bundle that is not one is refused before any request.
    std::env::set_var("AWS_CA_BUNDLE", &config);
    let e = S3Store::new(bucket, S3Options::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    clear_aws_env();

    // 6. S3DLIO_* tuning from the environment, with units, and clear errors.
    std::env::set_var("S3DLIO_PART_SIZE", "6MiB");
    std::env::set_var("S3DLIO_RANGE_CONCURRENCY", "3");
    let o = S3Options::default().with_env_overrides().unwrap();
    assert_eq!((o.part_size, o.get_concurrency), (6 << 20, 3));
    std::env::set_var("S3DLIO_PART_SIZE", "lots");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("S3DLIO_PART_SIZE"), "{e}");
    std::env::set_var("S3DLIO_PART_SIZE", "1MiB");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("part_size"), "{e}");
    // Through the registry, the error surfaces when the store opens, naming the URI.
    let mut reg = s3dlio_store_core::Registry::with_parse_options(Default::default());
    s3dlio_store_s3::register(&mut reg);
    let e = reg.resolve(&format!("s3://{bucket}/k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains(&format!("s3://{bucket}/")), "{e}");
    std::env::remove_var("S3DLIO_PART_SIZE");
    std::env::remove_var("S3DLIO_RANGE_CONCURRENCY");
    // Switches and the upload integrity, by name.
    std::env::set_var("S3DLIO_UPLOAD_INTEGRITY", "Signed");
    std::env::set_var("S3DLIO_WIRE_REQUESTS", "0");
    let o = S3Options::default().with_env_overrides().unwrap();
    assert_eq!(o.upload_integrity, UploadIntegrity::SignedPayload);
    assert!(!o.wire_requests && o.lean_requests);
    std::env::set_var("S3DLIO_UPLOAD_INTEGRITY", "none");
    let o = S3Options::default().with_env_overrides().unwrap();
    assert_eq!(o.upload_integrity, UploadIntegrity::None);
    std::env::set_var("S3DLIO_UPLOAD_INTEGRITY", "md5");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(
        e.to_string().contains("S3DLIO_UPLOAD_INTEGRITY") && e.to_string().contains("md5"),
        "{e}"
    );
    std::env::remove_var("S3DLIO_UPLOAD_INTEGRITY");
    std::env::remove_var("S3DLIO_WIRE_REQUESTS");

    // 7. Encryption and storage class of what is written.
    std::env::set_var("S3DLIO_SSE", "aws:kms");
    std::env::set_var("S3DLIO_SSE_KMS_KEY_ID", "alias/training-data");
    std::env::set_var("S3DLIO_SSE_BUCKET_KEY", "true");
    std::env::set_var("S3DLIO_STORAGE_CLASS", "INTELLIGENT_TIERING");
    let o = S3Options::default().with_env_overrides().unwrap();
    assert_eq!(
        o.server_side_encryption,
        Some(ServerSideEncryption::Kms {
            key_id: Some("alias/training-data".into()),
            bucket_key: Some(true),
        })
    );
    assert_eq!(o.storage_class.as_deref(), Some("INTELLIGENT_TIERING"));
    std::env::set_var("S3DLIO_STORAGE_CLASS", "cold");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("storage class 'cold'"), "{e}");
    std::env::remove_var("S3DLIO_STORAGE_CLASS");
    // A key with SSE-S3, a key without any encryption, and an unknown kind: refused by name.
    std::env::set_var("S3DLIO_SSE", "AES256");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("S3DLIO_SSE: a KMS key id"), "{e}");
    std::env::remove_var("S3DLIO_SSE");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("need S3DLIO_SSE=aws:kms"), "{e}");
    std::env::remove_var("S3DLIO_SSE_KMS_KEY_ID");
    std::env::remove_var("S3DLIO_SSE_BUCKET_KEY");
    std::env::set_var("S3DLIO_SSE", "rot13");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("S3DLIO_SSE: 'rot13'"), "{e}");
    std::env::set_var("S3DLIO_SSE", "sse-s3");
    let o = S3Options::default().with_env_overrides().unwrap();
    assert_eq!(o.server_side_encryption, Some(ServerSideEncryption::S3));
    std::env::remove_var("S3DLIO_SSE");

    // 8. Unsigned requests (public buckets).
    std::env::set_var("S3DLIO_NO_SIGN_REQUEST", "1");
    assert!(
        S3Options::default()
            .with_env_overrides()
            .unwrap()
            .no_sign_request
    );
    std::env::set_var("S3DLIO_NO_SIGN_REQUEST", "perhaps");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(e.to_string().contains("S3DLIO_NO_SIGN_REQUEST"), "{e}");
    std::env::remove_var("S3DLIO_NO_SIGN_REQUEST");
    std::env::set_var("S3DLIO_REQUEST_PAYER", "Requester");
    assert!(
        S3Options::default()
            .with_env_overrides()
            .unwrap()
            .requester_pays
    );
    std::env::set_var("S3DLIO_REQUEST_PAYER", "owner");
    let e = S3Options::default().with_env_overrides().unwrap_err();
    assert!(
        e.to_string().contains("S3DLIO_REQUEST_PAYER: 'owner'"),
        "{e}"
    );
    std::env::remove_var("S3DLIO_REQUEST_PAYER");

    // 9. No region anywhere: one HEAD asks where the bucket is and its region is used, as
    //    boto3 and s5cmd find it; a bucket is created in the client's region. On moto
    //    (which keeps buckets' regions and refuses a create without the location) through
    //    a recording relay, to see the region every request is signed for.
    clear_aws_env();
    std::env::set_var("AWS_CONFIG_FILE", dir.join("none"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"));
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    common::store(Server::Moto).await; // its test bucket, in us-east-1
    let moto = Server::Moto.endpoint();
    let (url, sent) = relay(moto.trim_start_matches("http://").to_owned()).await;
    let through_relay = |region: Option<&str>| S3Options {
        endpoint_url: Some(url.clone()),
        region: region.map(str::to_owned),
        ..common::options(Server::Moto)
    };
    let eu = format!("s3dlio-eu-{}", std::process::id());
    S3Store::new(eu.clone(), through_relay(Some("eu-west-1")))
        .await
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    let store = S3Store::new(eu.clone(), through_relay(None)).await.unwrap();
    assert_eq!(store.options().region.as_deref(), Some("eu-west-1"));
    round_trip(&store, "found-region").await;
    // Through the registry: asked once per bucket; a us-east-1 bucket keeps the shared client.
    let mut registry = Registry::with_parse_options(Default::default());
    s3dlio_store_s3::register_with(&mut registry, through_relay(None));
    for bucket in [eu.as_str(), eu.as_str(), Server::Moto.bucket()] {
        let (s, key) = registry
            .resolve(&format!(
                "s3://{bucket}/{}via-registry",
                unique_prefix("region")
            ))
            .await
            .unwrap();
        s.put_bytes(&key, Bytes::from_static(b"r")).await.unwrap();
        assert_eq!(s.get_bytes(&key).await.unwrap(), "r", "{bucket}");
    }
    let signed_for = |r: &Recorded| {
        let auth = r.header("authorization").unwrap_or_default();
        let scope = auth.split("Credential=").nth(1).unwrap_or_default();
        scope.split('/').nth(2).unwrap_or_default().to_owned()
    };
    let seen = requests(&sent.lock().unwrap());
    // Bucket-level requests are `HEAD /bucket/` (the probe) and `PUT /bucket/` (the create).
    let on_bucket = |method: &str, bucket: &str, r: &Recorded| {
        r.line == format!("{method} /{bucket}/") || r.line == format!("{method} /{bucket}")
    };
    let on_objects = |bucket: &str| {
        let prefix = format!(" /{bucket}/");
        seen.iter()
            .filter(|r| r.line.contains(&prefix) && !r.line.ends_with(&prefix[1..]))
            .collect::<Vec<_>>()
    };
    let probes: Vec<_> = seen.iter().filter(|r| on_bucket("HEAD", &eu, r)).collect();
    assert_eq!(
        probes.len(),
        2,
        "one probe by S3Store::new, one by the registry"
    );
    assert!(probes.iter().all(|r| signed_for(r) == "us-east-1"));
    let creates: Vec<_> = seen.iter().filter(|r| on_bucket("PUT", &eu, r)).collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(signed_for(creates[0]), "eu-west-1");
    let in_eu = on_objects(&eu);
    assert_eq!(in_eu.len(), 6, "{in_eu:?}");
    for r in in_eu {
        assert_eq!(signed_for(r), "eu-west-1", "{}", r.line);
    }
    let home = Server::Moto.bucket();
    assert_eq!(
        seen.iter().filter(|r| on_bucket("HEAD", home, r)).count(),
        1
    );
    let at_home = on_objects(home);
    assert_eq!(at_home.len(), 2, "{at_home:?}");
    for r in at_home {
        assert_eq!(signed_for(r), "us-east-1", "{}", r.line);
    }
    // A server that cannot be reached: opening still succeeds at once (the probe's failure
    // is not the open's), and the first request reports it.
    let dead = S3Options {
        endpoint_url: Some("http://127.0.0.1:1".into()),
        max_attempts: 1,
        ..through_relay(None)
    };
    let t = std::time::Instant::now();
    let store = S3Store::new(eu.clone(), dead.clone()).await.unwrap();
    assert_eq!(store.options().region, None);
    let e = store.get_bytes("k").await.unwrap_err();
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    let mut registry = Registry::with_parse_options(Default::default());
    s3dlio_store_s3::register_with(&mut registry, dead);
    let (s, key) = registry.resolve(&format!("s3://{eu}/k")).await.unwrap();
    assert!(s.get_bytes(&key).await.is_err());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
