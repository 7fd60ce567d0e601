//! The wire path for plain-http GETs and small PUTs (src/wire.rs) against a scripted
//! HTTP/1.1 server on 127.0.0.1, for what a real S3 server will not do on demand: answer in
//! chunked encoding, send an interim `100 Continue`, close a connection while it is idle in
//! our pool, say `Connection: close`. (The real servers' conformance and fault suites run on
//! this path too: it is the default.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use s3dlio_store_core::{ErrorKind, ObjectStore, ObjectStoreExt};
use s3dlio_store_s3::{S3Options, S3Store, StaticCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw: connections accepted, requests per name, and the last body sent
/// to each name.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: HashMap<String, usize>,
    bodies: HashMap<String, Vec<u8>>,
    /// The CRC32C a PUT sent (what a server stores and shows a HEAD in checksum mode).
    checksums: HashMap<String, String>,
}

/// Serves `/b/<name>`: `plain` (5 bytes, keep-alive), `chunked` (the same bytes in chunked
/// encoding), `close` (keep-alive refused), `drop-idle` (answered, then the connection is
/// closed a moment later while idle), `missing` (404 with an S3 error document); PUTs to
/// `put-ok` (200, no body), `put-continue` (the same after a `100 Continue`),
/// `put-chunked` (200 in chunked encoding), `put-denied` (403 with an error document),
/// `put-refused-early` (the same before the body is read, then the connection closed); a
/// HEAD gets a GET's head without its body, a DELETE of `gone` a 204. As under SSE-KMS
/// (ETags that are not MD5s): a PUT to `kms-lost` is stored and its answer lost, a PUT to
/// `kms-taken` finds someone else's object (its answer lost, then 412); a HEAD of either in
/// checksum mode shows the stored CRC32C.
async fn serve() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            s.lock().unwrap().connections += 1;
            tokio::spawn(connection(conn, Arc::clone(&s)));
        }
    });
    (url, seen)
}

async fn connection(mut conn: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    loop {
        // One request head, then its body (`content-length` bytes).
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        // The key's last segment, without the query the SDK adds (`?x-id=GetObject`).
        let name = path.split('?').next().unwrap_or("");
        let name = name.rsplit('/').next().unwrap_or("").to_owned();
        if name == "put-refused-early" {
            // Refused on its head alone, the body never read, and the connection closed
            // with it unread (a reset for a client still sending).
            *seen.lock().unwrap().requests.entry(name).or_default() += 1;
            let _ = conn
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 86\r\nconnection: close\r\n\r\n<Error><Code>AccessDenied</Code><Message>no</Message><RequestId>R9</RequestId></Error>")
                .await;
            return;
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .map_or(0, |v| v.parse().unwrap());
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let method = head.split(' ').next().unwrap_or("").to_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let puts = {
            let mut seen = seen.lock().unwrap();
            *seen.requests.entry(format!("{method} {name}")).or_default() += 1;
            *seen.requests.entry(name.clone()).or_default() += 1;
            seen.bodies.insert(name.clone(), body);
            if method == "PUT" && name == "kms-lost" {
                let crc = header("x-amz-checksum-crc32c").unwrap_or_default();
                seen.checksums.insert(name.clone(), crc);
            }
            seen.requests[&format!("{method} {name}")]
        };
        if name.starts_with("kms-") {
            let answer = match (method.as_str(), puts) {
                // Stored (or someone else's is there), and the answer lost.
                ("PUT", 1) => return,
                ("PUT", _) => "HTTP/1.1 412 Precondition Failed\r\ncontent-length: 92\r\n\r\n<Error><Code>PreconditionFailed</Code><Message>no</Message><RequestId>R3</RequestId></Error>".to_owned(),
                _ => {
                    let stored = seen.lock().unwrap().checksums.get(&name).cloned();
                    let crc = match header("x-amz-checksum-mode") {
                        Some(m) if m.eq_ignore_ascii_case("enabled") => format!(
                            "x-amz-checksum-crc32c: {}\r\n",
                            stored.unwrap_or_else(|| "AAAAAA==".into())
                        ),
                        _ => String::new(),
                    };
                    format!("HTTP/1.1 200 OK\r\ncontent-length: 5\r\netag: \"kms-etag\"\r\n{crc}\r\n")
                }
            };
            if conn.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        if let Some(answer) = region_answer(&name, &method) {
            if conn.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let answer: &[u8] = match name.as_str() {
            "plain" | "drop-idle" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\netag: \"e\"\r\n\r\nhello",
            "chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\netag: \"e\"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "close" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            "put-ok" => b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\netag: \"p\"\r\n\r\n",
            "put-continue" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\netag: \"c\"\r\n\r\n",
            "put-chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\netag: \"k\"\r\n\r\n0\r\n\r\n",
            "put-denied" => b"HTTP/1.1 403 Forbidden\r\ncontent-length: 86\r\n\r\n<Error><Code>AccessDenied</Code><Message>no</Message><RequestId>R9</RequestId></Error>",
            _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 83\r\n\r\n<Error><Code>NoSuchKey</Code><Message>no</Message><RequestId>R7</RequestId></Error>",
        };
        if name == "put-denied-split" {
            // The same answer as `put-denied`, its document in two writes: most of it with
            // the head, the rest a moment later.
            let whole = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 86\r\n\r\n<Error><Code>AccessDenied</Code><Message>no</Message><RequestId>R9</RequestId></Error>";
            let (first, rest) = whole.split_at(whole.len() - 20);
            if conn.write_all(first).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if conn.write_all(rest).await.is_err() {
                return;
            }
            continue;
        }
        let answer = match method.as_str() {
            // The same head, no body.
            "HEAD" => {
                let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                &answer[..end]
            }
            "DELETE" if name == "gone" => &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            _ => answer,
        };
        if conn.write_all(answer).await.is_err() {
            return;
        }
        match name.as_str() {
            // The chunked PUT answer: the client must not wait for more, nor reuse this.
            "close" | "put-chunked" => return,
            "drop-idle" => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                return;
            }
            _ => {}
        }
    }
}

/// As AWS answers a request for a bucket in eu-west-1 sent elsewhere: `elsewhere` is
/// redirected to the bucket's regional endpoint (301, the region in a header; a HEAD gets
/// no document), `wrong-region` was signed for another region (400, the region in the
/// document only).
fn region_answer(name: &str, method: &str) -> Option<String> {
    let (status, header, doc) = match name {
        "elsewhere" => (
            "301 Moved Permanently",
            "x-amz-bucket-region: eu-west-1\r\n",
            "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to \
             access must be addressed using the specified endpoint.</Message><Endpoint>\
             b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket><RequestId>R5\
             </RequestId></Error>",
        ),
        "wrong-region" => (
            "400 Bad Request",
            "",
            "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization \
             header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'\
             </Message><Region>eu-west-1</Region><RequestId>R6</RequestId></Error>",
        ),
        _ => return None,
    };
    let doc = if method == "HEAD" { "" } else { doc };
    Some(format!(
        "HTTP/1.1 {status}\r\n{header}content-length: {}\r\n\r\n{doc}",
        doc.len()
    ))
}

fn options(url: &str) -> S3Options {
    S3Options {
        endpoint_url: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        force_path_style: Some(true),
        credentials: Some(StaticCredentials {
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            session_token: None,
        }),
        // One attempt: a stale connection must not be hidden by a retry.
        max_attempts: 1,
        ..S3Options::default()
    }
}

async fn store(url: &str) -> S3Store {
    S3Store::new("b", options(url)).await.unwrap()
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    for _ in 0..5 {
        assert_eq!(s.get_bytes("plain").await.unwrap(), "hello");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests["plain"], 5);
    assert_eq!(
        seen.connections, 1,
        "one connection for five sequential GETs"
    );
}

#[tokio::test]
async fn connections_the_server_closes_are_not_reused() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    // `Connection: close`: each GET on a new connection.
    for _ in 0..3 {
        assert_eq!(s.get_bytes("close").await.unwrap(), "hello");
    }
    assert_eq!(seen.lock().unwrap().connections, 3);
    // Closed while idle in our pool: seen before reuse, so the next GET (one attempt, no
    // retry) still succeeds on a new connection.
    for _ in 0..3 {
        assert_eq!(s.get_bytes("drop-idle").await.unwrap(), "hello");
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    assert_eq!(seen.lock().unwrap().connections, 6);
}

#[tokio::test]
async fn a_chunked_answer_is_read_through_hyper_instead() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    assert_eq!(s.get_bytes("chunked").await.unwrap(), "hello");
    // Sent on the wire path, refused there, sent again through hyper; and from then on
    // every GET of this store goes through hyper (which reads chunked bodies).
    assert_eq!(seen.lock().unwrap().requests["chunked"], 2);
    assert_eq!(s.get_bytes("chunked").await.unwrap(), "hello");
    assert_eq!(seen.lock().unwrap().requests["chunked"], 3);
    assert_eq!(s.get_bytes("plain").await.unwrap(), "hello");
}

#[tokio::test]
async fn error_answers_keep_status_code_and_request_id() {
    let (url, _) = serve().await;
    let s = store(&url).await;
    let e = s.get_bytes("missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let text = e.to_string();
    assert!(text.contains("404") && text.contains("NoSuchKey"), "{text}");
    assert_eq!(e.request_id(), Some("R7"), "{text}");
    // The error body was read whole: the connection is reused.
    assert_eq!(s.get_bytes("plain").await.unwrap(), "hello");
}

#[tokio::test]
async fn small_puts_go_out_whole_and_reuse_the_connection() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for name in ["put-ok", "put-continue"] {
        for _ in 0..3 {
            let r = s.put_bytes(name, Bytes::from(data.clone())).await.unwrap();
            assert_eq!(r.size, data.len() as u64);
        }
    }
    let r = s
        .put_bytes("put-continue", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(
        r.etag.as_deref(),
        Some("\"c\""),
        "the answer after the interim one"
    );
    // Answers read: the GET after them shares the connection too.
    assert_eq!(s.get_bytes("plain").await.unwrap(), "hello");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests["put-ok"], 3);
    assert_eq!(seen.requests["put-continue"], 4);
    assert_eq!(seen.bodies["put-ok"], data, "the body arrived whole");
    assert_eq!(seen.bodies["put-continue"], b"x");
    assert_eq!(seen.connections, 1, "one connection for 7 PUTs and a GET");
}

#[tokio::test]
async fn a_put_answered_chunked_is_not_sent_again() {
    // With a body, and without one (a repeat of a create-only PUT of no bytes would fail
    // its own condition just the same).
    for body in [&b"abc"[..], &b""[..]] {
        let (url, seen) = serve().await;
        let s = store(&url).await;
        let r = s
            .put_bytes("put-chunked", Bytes::from_static(body))
            .await
            .unwrap();
        assert_eq!(r.etag.as_deref(), Some("\"k\""));
        // It may have been performed: its answer stands, it is not repeated through
        // hyper...
        assert_eq!(seen.lock().unwrap().requests["put-chunked"], 1);
        assert_eq!(seen.lock().unwrap().bodies["put-chunked"], body);
        // ...and from then on requests go through hyper: one request for a chunked GET.
        assert_eq!(s.get_bytes("chunked").await.unwrap(), "hello");
        assert_eq!(seen.lock().unwrap().requests["chunked"], 1);
    }
}

/// The scripted server's 403: its status, S3 code and request id kept.
fn assert_refused<T: std::fmt::Debug>(r: s3dlio_store_core::Result<T>) {
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("403") && text.contains("AccessDenied"),
        "{text}"
    );
    assert_eq!(e.request_id(), Some("R9"), "{text}");
}

#[tokio::test]
async fn a_refused_put_keeps_status_code_and_request_id() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    // The document with the head, or mostly with it and the rest later.
    for name in ["put-denied", "put-denied-split"] {
        let e = s.put_bytes(name, Bytes::from_static(b"abc")).await;
        assert_refused(e);
        assert_eq!(seen.lock().unwrap().requests[name], 1);
    }
    // The error documents were read whole: the connection is reused.
    s.put_bytes("put-ok", Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().connections, 1);
}

#[tokio::test]
async fn a_put_refused_before_its_body_was_taken_reports_the_refusal() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    // The largest body the wire path sends, refused unread. (Here the kernel takes all of
    // it before the close; a send cut short by the close is the unit test in src/wire.rs.)
    let e = s
        .put_bytes("put-refused-early", Bytes::from(vec![7u8; 1 << 20]))
        .await;
    assert_refused(e);
    assert_eq!(seen.lock().unwrap().requests["put-refused-early"], 1);
}

#[tokio::test]
async fn heads_and_deletes_share_the_connection() {
    let (url, seen) = serve().await;
    let s = store(&url).await;
    for _ in 0..3 {
        // The length is the object's, with no body behind it to wait for.
        let m = s.head("plain").await.unwrap();
        assert_eq!((m.size, m.etag.as_deref()), (5, Some("\"e\"")));
        s.delete("gone").await.unwrap();
    }
    let e = s.head("missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(s.get_bytes("plain").await.unwrap(), "hello");
    let seen = seen.lock().unwrap();
    assert_eq!((seen.requests["plain"], seen.requests["gone"]), (4, 3));
    assert_eq!(
        seen.connections, 1,
        "one connection for 4 HEADs, 3 DELETEs and a GET"
    );
}

#[tokio::test]
async fn under_sse_kms_a_lost_conditional_put_is_settled_by_its_crc32c() {
    use s3dlio_store_core::PutOptions;
    use s3dlio_store_s3::ServerSideEncryption;
    let (url, seen) = serve().await;
    let kms = S3Options {
        server_side_encryption: Some(ServerSideEncryption::Kms {
            key_id: None,
            bucket_key: None,
        }),
        max_attempts: 3,
        ..options(&url)
    };
    let store = S3Store::new("b", kms).await.unwrap();
    // Our bytes landed (the stored CRC32C is ours): a success, and no second PUT.
    let r = store
        .put(
            "kms-lost",
            Bytes::from_static(b"hello"),
            PutOptions::create(),
        )
        .await
        .unwrap();
    assert_eq!(r.etag.as_deref(), Some("\"kms-etag\""));
    assert_eq!(seen.lock().unwrap().requests["PUT kms-lost"], 1);
    // Someone else's object (another CRC32C): sent again, and the conflict reported.
    let e = store
        .put(
            "kms-taken",
            Bytes::from_static(b"hello"),
            PutOptions::create(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(seen.lock().unwrap().requests["PUT kms-taken"], 2);
    // Without SSE-KMS the ETag would be the MD5 of the bytes; this one is not, so the same
    // lost answer is not taken for ours.
    let plain = S3Options {
        max_attempts: 3,
        ..options(&url)
    };
    let plain = S3Store::new("b", plain).await.unwrap();
    seen.lock().unwrap().requests.clear();
    let e = plain
        .put(
            "kms-lost",
            Bytes::from_static(b"hello"),
            PutOptions::create(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(seen.lock().unwrap().requests["PUT kms-lost"], 2);
}

#[tokio::test]
async fn a_bucket_in_another_region_is_named_once_not_retried() {
    // Every path (wire, lean over hyper, the SDK) says where the bucket is and how to
    // point requests there, as a configuration error that no retry can mend.
    let (url, seen) = serve().await;
    let paths = [
        ("wire", options(&url)),
        (
            "lean",
            S3Options {
                wire_requests: false,
                ..options(&url)
            },
        ),
        (
            "sdk",
            S3Options {
                lean_requests: false,
                ..options(&url)
            },
        ),
    ];
    for (path, opts) in paths {
        let s = S3Store::new(
            "b",
            S3Options {
                max_attempts: 3,
                ..opts
            },
        )
        .await
        .unwrap();
        for (op, key) in [
            ("GET", "elsewhere"),
            ("HEAD", "elsewhere"),
            ("PUT", "elsewhere"),
            ("DELETE", "elsewhere"),
            ("GET", "wrong-region"),
            ("PUT", "wrong-region"),
        ] {
            let before = seen.lock().unwrap().requests.get(key).copied().unwrap_or(0);
            let e = match op {
                "GET" => s.get_bytes(key).await.unwrap_err(),
                "HEAD" => s.head(key).await.unwrap_err(),
                "PUT" => s
                    .put_bytes(key, Bytes::from_static(b"x"))
                    .await
                    .unwrap_err(),
                _ => s.delete(key).await.unwrap_err(),
            };
            let text = e.to_string();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidInput,
                "{path} {op} {key}: {text}"
            );
            assert!(!e.is_retryable(), "{path} {op} {key}: {text}");
            assert!(
                text.contains("the bucket is in region eu-west-1") && text.contains("AWS_REGION"),
                "{path} {op} {key}: {text}"
            );
            let after = seen.lock().unwrap().requests[key];
            assert_eq!(
                after - before,
                1,
                "{path} {op} {key}: sent {} times",
                after - before
            );
        }
    }
}
