//! The two parts of the standard credential chain that need a service besides S3: web
//! identity (STS `AssumeRoleWithWebIdentity`, as on EKS) and instance metadata (IMDSv2, as on
//! EC2). Each service is a small scripted HTTP server on 127.0.0.1 that hands out keys with a
//! session token of its own; S3 requests go to moto through a loopback relay that records
//! them, so the test sees that every request, on every request path (wire, lean, SDK),
//! carries that token. (Moto, not SeaweedFS: SeaweedFS checks a session token against its
//! own STS and refuses one it did not issue.) One test in its own binary: it sets
//! process-wide environment variables, which parallel tests would race on.

mod common;
mod relay;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{keys, unique_prefix, Server};
use relay::{relay, requests};
use s3dlio_store_core::{ErrorKind, ListOptions, ObjectStore, ObjectStoreExt};
use s3dlio_store_s3::{S3Options, S3Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request a scripted server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering each request with `handler` (one request per
/// connection); returns its base URL and what it received.
async fn scripted(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
            tokio::spawn(async move {
                let Some(req) = read_request(&mut conn).await else {
                    return;
                };
                let (status, headers, body) = handler(&req);
                log.lock().unwrap().push(req);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (n, v) in headers {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let _ = conn.write_all(out.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, seen)
}

async fn read_request(conn: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(&buf).ok()? {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let (method, path) = (req.method?.to_owned(), req.path?.to_owned());
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap_or(0));
            while buf.len() < head + len {
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[head..head + len]).into_owned();
            return Some(Seen {
                method,
                path,
                headers,
                body,
            });
        }
    }
}

/// Every recorded request is signed and carries `token`, and there were at least `min`.
fn all_carry(sent: &[Vec<u8>], token: &str, min: usize) {
    let reqs = requests(sent);
    assert!(reqs.len() >= min, "{} requests: {reqs:?}", reqs.len());
    for r in &reqs {
        assert_eq!(r.header("x-amz-security-token"), Some(token), "{}", r.line);
        assert!(r.header("authorization").is_some(), "{}", r.line);
    }
}

fn clear_aws_env() {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            std::env::remove_var(k);
        }
    }
}

/// A store on moto's bucket at `endpoint`, credentials from the environment's chain.
async fn store_at(endpoint: &str) -> S3Store {
    let opts = S3Options {
        endpoint_url: Some(endpoint.to_owned()),
        ..S3Options::default()
    };
    S3Store::new(Server::Moto.bucket(), opts).await.unwrap()
}

/// PUT (small, on the wire path, and multipart, through the SDK), GET, stat, list and delete
/// through a store whose credentials come from the environment's chain.
async fn round_trip(endpoint: &str, what: &str) {
    round_trip_with(endpoint, Server::Moto.bucket(), what, S3Options::default()).await;
}

async fn round_trip_with(endpoint: &str, bucket: &str, what: &str, base: S3Options) {
    let opts = S3Options {
        endpoint_url: Some(endpoint.to_owned()),
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        ..base
    };
    let store = S3Store::new(bucket, opts)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let prefix = unique_prefix(what);
    let small = format!("{prefix}small");
    store
        .put_bytes(&small, Bytes::from(what.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(store.get_bytes(&small).await.unwrap(), what);
    let big = format!("{prefix}big");
    let data = Bytes::from(
        (0..(6u32 << 20))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    store.put_bytes(&big, data.clone()).await.unwrap();
    assert_eq!(store.head(&big).await.unwrap().size, data.len() as u64);
    assert!(
        store.get_bytes(&big).await.unwrap() == data,
        "{what}: 6 MiB"
    );
    let page = store
        .list_page(&prefix, &ListOptions::recursive(), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "{what}: {page:?}");
    store.delete(&small).await.unwrap();
    store.delete(&big).await.unwrap();
}

#[tokio::test]
async fn web_identity_and_instance_metadata_credentials() {
    let (access, secret) = keys();
    // The bucket exists (created with explicit options).
    common::store(Server::Moto).await;
    let moto = Server::Moto.endpoint();
    let target = moto.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();

    // 1. Web identity: a token file and a role, STS at a loopback endpoint.
    let web_token = "eyJ-s3dlio-test-web-identity-token";
    let web_session = "s3dlio-sts-session-token";
    let sts_reply = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{access}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{web_session}</SessionToken>\
         <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
         <SubjectFromWebIdentityToken>s3dlio</SubjectFromWebIdentityToken>\
         <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/s3dlio-test/ci</Arn>\
         <AssumedRoleId>AROAS3DLIO:ci</AssumedRoleId></AssumedRoleUser>\
         </AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId>\
         </ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
    );
    let (sts, sts_seen) = scripted(Arc::new(move |_: &Seen| {
        (
            200,
            vec![("content-type", "text/xml".into())],
            sts_reply.clone(),
        )
    }))
    .await;
    let token_file = dir.path().join("web-identity-token");
    std::fs::write(&token_file, web_token).unwrap();
    let (s3, sent) = relay(target.clone()).await;

    // Changing the environment is sound here: this binary runs this one test only.
    clear_aws_env();
    std::env::set_var("AWS_CONFIG_FILE", dir.path().join("none"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"));
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/s3dlio-test");
    std::env::set_var("AWS_ROLE_SESSION_NAME", "ci");
    std::env::set_var("AWS_ENDPOINT_URL_STS", &sts);
    round_trip(&s3, "web-identity").await;
    let calls = sts_seen.lock().unwrap().clone();
    assert!(!calls.is_empty(), "STS was never asked");
    for c in &calls {
        assert_eq!(c.method, "POST", "{c:?}");
        assert!(c.body.contains("Action=AssumeRoleWithWebIdentity"), "{c:?}");
        assert!(
            c.body.contains(&format!("WebIdentityToken={web_token}")),
            "{c:?}"
        );
        assert!(
            c.body
                .contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fs3dlio-test"),
            "{c:?}"
        );
    }
    all_carry(&sent.lock().unwrap(), web_session, 10);

    // 2. Instance metadata (IMDSv2): a session token first, then the role's credentials.
    let imds_session = "s3dlio-imds-session-token";
    let creds_json = format!(
        "{{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-28T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
         \"AccessKeyId\":\"{access}\",\"SecretAccessKey\":\"{secret}\",\
         \"Token\":\"{imds_session}\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}"
    );
    let imds_reply = move |r: &Seen| -> (u16, Vec<(&'static str, String)>, String) {
        const TOKEN: &str = "imds-api-token";
        if r.method == "PUT" && r.path == "/latest/api/token" {
            let ttl = r
                .header("x-aws-ec2-metadata-token-ttl-seconds")
                .unwrap_or("21600");
            return (
                200,
                vec![("x-aws-ec2-metadata-token-ttl-seconds", ttl.into())],
                TOKEN.into(),
            );
        }
        if r.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
            return (401, vec![], String::new());
        }
        // The legacy path and the extended one newer SDKs try first.
        let path = r
            .path
            .replace("security-credentials-extended", "security-credentials");
        match path.as_str() {
            "/latest/meta-data/iam/security-credentials/" => (200, vec![], "s3dlio-role".into()),
            "/latest/meta-data/iam/security-credentials/s3dlio-role" => {
                (200, vec![], creds_json.clone())
            }
            _ => (404, vec![], String::new()),
        }
    };
    let (imds, imds_seen) = scripted(Arc::new(imds_reply)).await;
    let (s3, sent) = relay(target.clone()).await;
    clear_aws_env();
    std::env::set_var("AWS_CONFIG_FILE", dir.path().join("none"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"));
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    round_trip(&s3, "instance-metadata").await;
    let calls = imds_seen.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "PUT" && c.path == "/latest/api/token"),
        "no IMDSv2 session: {calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.path.ends_with("/s3dlio-role")),
        "credentials never fetched: {calls:?}"
    );
    all_carry(&sent.lock().unwrap(), imds_session, 10);

    // 3. Credentials about to expire are fetched again rather than used up: here each
    //    fetch hands out a new token good for two minutes (inside the refresh margin), so
    //    consecutive requests carry different, current tokens.
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let (imds, _) = scripted(Arc::new(move |r: &Seen| {
        let path = r
            .path
            .replace("security-credentials-extended", "security-credentials");
        match (r.method.as_str(), path.as_str()) {
            ("PUT", "/latest/api/token") => (
                200,
                vec![("x-aws-ec2-metadata-token-ttl-seconds", "21600".into())],
                "t".into(),
            ),
            (_, "/latest/meta-data/iam/security-credentials/") => {
                (200, vec![], "s3dlio-role".into())
            }
            (_, "/latest/meta-data/iam/security-credentials/s3dlio-role") => {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let expires = aws_smithy_types::DateTime::from(
                    std::time::SystemTime::now() + Duration::from_secs(120),
                )
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
                let json = format!(
                    "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{access}\",\
                     \"SecretAccessKey\":\"{secret}\",\"Token\":\"rotating-{n}\",\
                     \"Expiration\":\"{expires}\"}}"
                );
                (200, vec![], json)
            }
            _ => (404, vec![], String::new()),
        }
    }))
    .await;
    let (s3, sent) = relay(target.clone()).await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    let store = store_at(&s3).await;
    let key = format!("{}rotating", unique_prefix("imds"));
    store
        .put_bytes(&key, Bytes::from_static(b"r"))
        .await
        .unwrap();
    assert_eq!(store.get_bytes(&key).await.unwrap(), "r");
    let tokens: Vec<_> = requests(&sent.lock().unwrap())
        .into_iter()
        .map(|r| {
            r.header("x-amz-security-token")
                .unwrap_or_else(|| panic!("{}: no session token", r.line))
                .to_owned()
        })
        .collect();
    let issued = fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_ne!(tokens[0], tokens[1], "an expiring token was reused");
    for t in &tokens {
        let n: usize = t.trim_start_matches("rotating-").parse().unwrap();
        assert!(
            (1..=issued).contains(&n),
            "{t} was never issued ({issued} were)"
        );
    }

    // 4. Instance metadata with no role attached: a clear credentials error, promptly.
    let (imds, _) = scripted(Arc::new(|r: &Seen| {
        if r.method == "PUT" {
            (
                200,
                vec![("x-aws-ec2-metadata-token-ttl-seconds", "21600".into())],
                "t".into(),
            )
        } else {
            (404, vec![], String::new())
        }
    }))
    .await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    let store = store_at(&moto).await;
    let e = tokio::time::timeout(Duration::from_secs(60), store.get_bytes("anything"))
        .await
        .expect("a missing credential source must not hang")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("credentials"), "{e}");

    // 5. Unsigned (`no_sign_request`), as for public buckets: no credentials are looked for
    //    (the metadata server above is never asked), and no request carries a signature.
    let (imds, imds_seen) = scripted(Arc::new(|_: &Seen| (404, vec![], String::new()))).await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
    let (s3, sent) = relay(target).await;
    let unsigned = S3Options {
        no_sign_request: true,
        ..S3Options::default()
    };
    // A bucket open to anyone by its policy (a private one refuses unsigned requests).
    let public = "s3dlio-public";
    let owner = S3Store::new(public, common::options(Server::Moto))
        .await
        .unwrap();
    if let Err(e) = owner.create_bucket().await {
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    }
    let policy = format!(
        "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\
         \"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":[\"arn:aws:s3:::{public}\",\
         \"arn:aws:s3:::{public}/*\"]}}]}}"
    );
    owner
        .client()
        .put_bucket_policy()
        .bucket(public)
        .policy(policy)
        .send()
        .await
        .unwrap();
    round_trip_with(&s3, public, "unsigned", unsigned.clone()).await;
    let reqs = requests(&sent.lock().unwrap());
    assert!(reqs.len() >= 10, "{reqs:?}");
    for r in &reqs {
        assert!(
            r.header("authorization").is_none() && r.header("x-amz-security-token").is_none(),
            "{}: signed",
            r.line
        );
    }
    assert!(
        imds_seen.lock().unwrap().is_empty(),
        "credentials looked for"
    );
    // A server that wants signatures refuses it, clearly.
    let seaweed = S3Store::new(
        Server::SeaweedFs.bucket(),
        S3Options {
            endpoint_url: Some(Server::SeaweedFs.endpoint()),
            ..unsigned.clone()
        },
    )
    .await
    .unwrap();
    let e = seaweed.get_bytes("anything").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // With credentials given too, it is refused before any request.
    let e = S3Store::new(
        Server::Moto.bucket(),
        S3Options {
            credentials: common::options(Server::Moto).credentials,
            ..unsigned
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no_sign_request"), "{e}");
    clear_aws_env();
}
