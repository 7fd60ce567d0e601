//! A recording relay for tests that must see what goes on the wire: every request of
//! every request path (wire, lean, SDK), as a server receives it.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A relay on 127.0.0.1 to `target` (host:port) that keeps every byte clients send, one
/// buffer per connection (see [`requests`]).
pub async fn relay(target: String) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let log = Arc::clone(&log);
            let conn = {
                let mut log = log.lock().unwrap();
                log.push(Vec::new());
                log.len() - 1
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = client_rx.read(&mut buf).await {
                    if n == 0 || server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    log.lock().unwrap()[conn].extend_from_slice(&buf[..n]);
                }
                let _ = server_tx.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                let _ = client_tx.shutdown().await;
            });
        }
    });
    (url, sent)
}

/// One request a relay saw: its request line and headers.
#[derive(Debug)]
pub struct Recorded {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The requests in each connection's recorded bytes: heads parsed, bodies skipped by their
/// length or their chunks.
pub fn requests(sent: &[Vec<u8>]) -> Vec<Recorded> {
    let line_end = |b: &[u8]| b.windows(2).position(|w| w == b"\r\n").unwrap();
    let mut out = Vec::new();
    for mut rest in sent.iter().map(Vec::as_slice) {
        while !rest.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(rest) else {
                panic!("a request head that does not parse");
            };
            let r = Recorded {
                line: format!("{} {}", req.method.unwrap(), req.path.unwrap()),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_owned(), v)
                    })
                    .collect(),
            };
            rest = &rest[head..];
            if let Some(len) = r.header("content-length") {
                rest = &rest[len.parse::<usize>().unwrap()..];
            } else if r
                .header("transfer-encoding")
                .is_some_and(|v| v.contains("chunked"))
            {
                loop {
                    let eol = line_end(rest);
                    let size = std::str::from_utf8(&rest[..eol]).unwrap();
                    let size = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
                    rest = &rest[eol + 2..];
                    if size == 0 {
                        // Trailers, then the blank line.
                        loop {
                            let eol = line_end(rest);
                            rest = &rest[eol + 2..];
                            if eol == 0 {
                                break;
                            }
                        }
                        break;
                    }
                    rest = &rest[size + 2..];
                }
            }
            out.push(r);
        }
    }
    out
}

/// The request lines and `Range` headers a [`cutting_proxy`] saw, in order.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An HTTP/1.1 proxy on 127.0.0.1 to `target` (host:port) that cuts one answer short: the
/// first request whose head `cut` picks gets its answer's head and half its body, then the
/// connection closes (a body cut midway). Returns its URL and the request lines and `Range`
/// headers it saw, in order. Bodies must have a `content-length` (S3 answers do).
pub async fn cutting_proxy(
    target: String,
    cut: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let cut = Arc::new(cut);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let (log, cut, done) = (Arc::clone(&log), Arc::clone(&cut), Arc::clone(&done));
            tokio::spawn(async move {
                let (mut client, mut server) = (client, server);
                let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
                loop {
                    // One exchange: the request whole, then the answer whole (or cut).
                    let Some(head) = read_head(&mut client, &mut from_client).await else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or("").to_owned();
                    let range = header_of(&text, "range");
                    log.lock().unwrap().push((line, range));
                    let body = read_body(&mut client, &mut from_client, length_of(&text)).await;
                    if server.write_all(&head).await.is_err()
                        || server.write_all(&body).await.is_err()
                    {
                        return;
                    }
                    let cutting =
                        cut(&text) && !done.swap(true, std::sync::atomic::Ordering::SeqCst);
                    let Some(answer) = read_head(&mut server, &mut from_server).await else {
                        return;
                    };
                    let answer_text = String::from_utf8_lossy(&answer).into_owned();
                    let len = if text.starts_with("HEAD ") {
                        0
                    } else {
                        length_of(&answer_text)
                    };
                    let body = read_body(&mut server, &mut from_server, len).await;
                    let keep = if cutting { len / 2 } else { len };
                    if client.write_all(&answer).await.is_err()
                        || client.write_all(&body[..keep]).await.is_err()
                    {
                        return;
                    }
                    if cutting {
                        return; // both connections close, the body short
                    }
                }
            });
        }
    });
    (url, seen)
}

/// Read up to and including the blank line that ends a message head (`buf` holds bytes
/// read past earlier messages).
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(buf.drain(..i + 4).collect());
        }
        let mut chunk = [0u8; 16 << 10];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_body(conn: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> Vec<u8> {
    while buf.len() < len {
        let mut chunk = vec![0u8; 256 << 10];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let len = len.min(buf.len());
    buf.drain(..len).collect()
}

fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn length_of(head: &str) -> usize {
    header_of(head, "content-length").map_or(0, |v| v.parse().unwrap_or(0))
}
