//! The wire path for plain-http GETs (src/wire.rs) against a scripted HTTP/1.1 server on
//! 127.0.0.1, for what a real S3 server will not do on demand: answer in chunked encoding,
//! close a connection while it is idle in our pool, say `Connection: close`. (The real
//! servers' conformance and fault suites run on this path too: it is the default.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use s3dlio_store_core::{ErrorKind, ObjectStoreExt};
use s3dlio_store_s3::{S3Options, S3Store, StaticCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw: connections accepted, and GETs per path.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: HashMap<String, usize>,
}

/// Serves `/b/<name>`: `plain` (5 bytes, keep-alive), `chunked` (the same bytes in chunked
/// encoding), `close` (keep-alive refused), `drop-idle` (answered, then the connection is
/// closed a moment later while idle), `missing` (404 with an S3 error document).
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
        // One request head (GETs have no body).
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
        let name = path.rsplit('/').next().unwrap_or("").to_owned();
        *seen
            .lock()
            .unwrap()
            .requests
            .entry(name.clone())
            .or_default() += 1;
        let answer: &[u8] = match name.as_str() {
            "plain" | "drop-idle" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\netag: \"e\"\r\n\r\nhello",
            "chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\netag: \"e\"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "close" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 83\r\n\r\n<Error><Code>NoSuchKey</Code><Message>no</Message><RequestId>R7</RequestId></Error>",
        };
        if conn.write_all(answer).await.is_err() {
            return;
        }
        match name.as_str() {
            "close" => return,
            "drop-idle" => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                return;
            }
            _ => {}
        }
    }
}

async fn store(url: &str) -> S3Store {
    S3Store::new(
        "b",
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
        },
    )
    .await
    .unwrap()
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
